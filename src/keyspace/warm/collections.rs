//! Collections in the warm tier: the metadata a list, hash, set or sorted set
//! keeps as its envelope's payload, and its elements, one sled record each, in
//! the database's tree. Changing one element writes O(1) bytes whatever the
//! collection's size; dropping a collection only marks its generation as
//! garbage, and [`collect_garbage`] deletes the elements later, a bounded
//! number per call.
//!
//! Layout (integers big-endian):
//! - metadata: `1` (format), kind (`l`/`h`/`s`/`z`), generation u64, len u64,
//!   and for lists only head u64, tail u64 (elements at head..tail).
//! - element key: `e`, generation u64, family tag, then
//!   `h` field | `s` member | `z` member | `l` index u64 |
//!   `o` ordered score (8 bytes, see [`ordered_score`]) + member.
//! - element record: CRC32 (u32) of key ++ payload, then the payload: the
//!   field's value, the list element, nothing for set members and score-index
//!   entries, the score as f64 bits for `z` and `o`.
//! - garbage marker: `g`, generation u64 → empty.

use std::fmt;
use std::ops::Bound;

use bytes::Bytes;
use sled::{Batch, IVec, Tree};

const META_FORMAT: u8 = 1;
/// Where an empty list's head and tail start, so it can grow 2^63 elements
/// at either end.
pub const LIST_ORIGIN: u64 = 1 << 63;
const ELEMENT: u8 = b'e';
const GARBAGE: u8 = b'g';
const TAG_HASH_FIELD: u8 = b'h';
const TAG_SET_MEMBER: u8 = b's';
const TAG_LIST_INDEX: u8 = b'l';
const TAG_ZSET_MEMBER: u8 = b'z';
const TAG_ZSET_SCORE: u8 = b'o';
/// `e` + generation + family tag.
const PREFIX_LEN: usize = 10;
const CRC_LEN: usize = 4;

pub type Result<T, E = LayoutError> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum LayoutError {
    Sled(sled::Error),
    /// An element record whose CRC does not match its key and payload.
    Checksum,
    /// Stored bytes that no version of this layout writes.
    Corrupt(&'static str),
    /// Sorted-set scores are ordered numbers; NaN has no place in the index.
    NanScore,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Sled(e) => write!(f, "warm tier storage error: {e}"),
            LayoutError::Checksum => f.write_str("collection element failed its checksum"),
            LayoutError::Corrupt(what) => write!(f, "corrupt collection data: {what}"),
            LayoutError::NanScore => f.write_str("sorted-set score is NaN"),
        }
    }
}

impl std::error::Error for LayoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LayoutError::Sled(e) => Some(e),
            _ => None,
        }
    }
}

impl From<sled::Error> for LayoutError {
    fn from(e: sled::Error) -> Self {
        LayoutError::Sled(e)
    }
}

/// A collection's type; the discriminant is its byte in the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    List = b'l',
    Hash = b'h',
    Set = b's',
    ZSet = b'z',
}

impl Kind {
    fn from_tag(tag: u8) -> Option<Kind> {
        [Kind::List, Kind::Hash, Kind::Set, Kind::ZSet]
            .into_iter()
            .find(|kind| *kind as u8 == tag)
    }
}

/// What a collection's envelope stores instead of its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionMeta {
    pub kind: Kind,
    /// Unique over the database's lifetime: names the collection's elements.
    pub generation: u64,
    pub len: u64,
    /// Lists only: index of the first element (meaningless for other kinds).
    pub list_head: u64,
    /// Lists only: one past the last element's index.
    pub list_tail: u64,
}

impl CollectionMeta {
    pub fn new(kind: Kind, generation: u64) -> CollectionMeta {
        CollectionMeta {
            kind,
            generation,
            len: 0,
            list_head: LIST_ORIGIN,
            list_tail: LIST_ORIGIN,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(34);
        out.push(META_FORMAT);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        // Other kinds never read head and tail, so they don't pay 16 bytes for them.
        if self.kind == Kind::List {
            out.extend_from_slice(&self.list_head.to_be_bytes());
            out.extend_from_slice(&self.list_tail.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<CollectionMeta> {
        if bytes.first() != Some(&META_FORMAT) {
            return Err(LayoutError::Corrupt("unknown collection metadata format"));
        }
        let kind = bytes
            .get(1)
            .copied()
            .and_then(Kind::from_tag)
            .ok_or(LayoutError::Corrupt("unknown collection kind"))?;
        let expected = if kind == Kind::List { 34 } else { 18 };
        if bytes.len() != expected {
            return Err(LayoutError::Corrupt(
                "collection metadata has the wrong length",
            ));
        }
        let field = |at| be_u64(bytes, at).ok_or(LayoutError::Corrupt("short metadata"));
        let mut meta = CollectionMeta::new(kind, field(2)?);
        meta.len = field(10)?;
        if kind == Kind::List {
            meta.list_head = field(18)?;
            meta.list_tail = field(26)?;
            // Checked here so list operations can trust head + position < tail.
            if meta.list_tail.checked_sub(meta.list_head) != Some(meta.len) {
                return Err(LayoutError::Corrupt("list bounds disagree with its length"));
            }
        }
        Ok(meta)
    }
}

/// A change's answer and the bytes it handed to sled (keys plus records
/// inserted, keys removed), so callers and tests can see it is O(1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Written<T> {
    pub value: T,
    pub bytes: usize,
}

impl<T> Written<T> {
    fn new(value: T, bytes: usize) -> Written<T> {
        Written { value, bytes }
    }
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(raw.try_into().ok()?))
}

fn family_key(generation: u64, tag: u8, extra: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(PREFIX_LEN + extra);
    key.push(ELEMENT);
    key.extend_from_slice(&generation.to_be_bytes());
    key.push(tag);
    key
}

fn member_key(generation: u64, tag: u8, member: &[u8]) -> Vec<u8> {
    let mut key = family_key(generation, tag, member.len());
    key.extend_from_slice(member);
    key
}

/// The prefix every element key of `generation` starts with.
pub fn generation_prefix(generation: u64) -> [u8; 9] {
    let mut prefix = [ELEMENT; 9];
    prefix[1..].copy_from_slice(&generation.to_be_bytes());
    prefix
}

pub fn garbage_key(generation: u64) -> [u8; 9] {
    let mut key = [GARBAGE; 9];
    key[1..].copy_from_slice(&generation.to_be_bytes());
    key
}

pub fn hash_field_key(generation: u64, field: &[u8]) -> Vec<u8> {
    member_key(generation, TAG_HASH_FIELD, field)
}

pub fn set_member_key(generation: u64, member: &[u8]) -> Vec<u8> {
    member_key(generation, TAG_SET_MEMBER, member)
}

pub fn zset_member_key(generation: u64, member: &[u8]) -> Vec<u8> {
    member_key(generation, TAG_ZSET_MEMBER, member)
}

pub fn list_index_key(generation: u64, index: u64) -> Vec<u8> {
    let mut key = family_key(generation, TAG_LIST_INDEX, 8);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

pub fn zset_score_key(generation: u64, score: f64, member: &[u8]) -> Vec<u8> {
    let mut key = family_key(generation, TAG_ZSET_SCORE, 8 + member.len());
    key.extend_from_slice(&ordered_score(score));
    key.extend_from_slice(member);
    key
}

/// Eight bytes that compare (as bytes) in the order of the scores, -inf first.
pub fn ordered_score(score: f64) -> [u8; 8] {
    // Both zeros share one encoding, so members scored -0 and 0 tie and
    // order by member, as Redis compares them.
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    // Negative: flip everything (larger magnitude sorts first); positive:
    // set the sign bit so they sort above every negative.
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    };
    ordered.to_be_bytes()
}

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(payload);
    hasher.finalize()
}

fn seal(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(CRC_LEN + payload.len());
    record.extend_from_slice(&checksum(key, payload).to_be_bytes());
    record.extend_from_slice(payload);
    record
}

/// The payload of `record` read under `key`; the CRC covers the key, so a
/// record found under the wrong key fails too.
fn open<'r>(key: &[u8], record: &'r [u8]) -> Result<&'r [u8]> {
    let stored = record.get(..CRC_LEN).ok_or(LayoutError::Checksum)?;
    let payload = record.get(CRC_LEN..).unwrap_or_default();
    if stored != checksum(key, payload).to_be_bytes() {
        return Err(LayoutError::Checksum);
    }
    Ok(payload)
}

fn decode_score(payload: &[u8]) -> Result<f64> {
    match payload.try_into() {
        Ok(bits) => Ok(f64::from_bits(u64::from_be_bytes(bits))),
        Err(_) => Err(LayoutError::Corrupt("sorted-set score is not 8 bytes")),
    }
}

fn put(tree: &Tree, key: &[u8], payload: &[u8]) -> Result<(Option<IVec>, usize)> {
    let record = seal(key, payload);
    let bytes = key.len() + record.len();
    Ok((tree.insert(key, record)?, bytes))
}

fn read(tree: &Tree, key: &[u8]) -> Result<Option<Bytes>> {
    match tree.get(key)? {
        Some(record) => Ok(Some(Bytes::copy_from_slice(open(key, &record)?))),
        None => Ok(None),
    }
}

/// The verified (suffix after the family prefix, payload) of every record of a family.
fn scan_family(
    tree: &Tree,
    generation: u64,
    tag: u8,
) -> impl Iterator<Item = Result<(Bytes, Bytes)>> {
    tree.scan_prefix(family_key(generation, tag, 0))
        .map(|entry| {
            let (key, record) = entry?;
            let payload = Bytes::copy_from_slice(open(&key, &record)?);
            let suffix = key.get(PREFIX_LEN..).unwrap_or_default();
            Ok((Bytes::copy_from_slice(suffix), payload))
        })
}

/// Stores `field`; the answer is true when the field is new.
pub fn hash_set(
    tree: &Tree,
    meta: &mut CollectionMeta,
    field: &[u8],
    value: &[u8],
) -> Result<Written<bool>> {
    let (old, bytes) = put(tree, &hash_field_key(meta.generation, field), value)?;
    meta.len = meta.len.saturating_add(u64::from(old.is_none()));
    Ok(Written::new(old.is_none(), bytes))
}

pub fn hash_get(tree: &Tree, meta: &CollectionMeta, field: &[u8]) -> Result<Option<Bytes>> {
    read(tree, &hash_field_key(meta.generation, field))
}

/// Removes `field`; the answer is true when it existed.
pub fn hash_delete(tree: &Tree, meta: &mut CollectionMeta, field: &[u8]) -> Result<Written<bool>> {
    remove_member(tree, meta, hash_field_key(meta.generation, field))
}

/// Every (field, value), in field byte order.
pub fn hash_iter(
    tree: &Tree,
    meta: &CollectionMeta,
) -> impl Iterator<Item = Result<(Bytes, Bytes)>> {
    scan_family(tree, meta.generation, TAG_HASH_FIELD)
}

fn remove_member(tree: &Tree, meta: &mut CollectionMeta, key: Vec<u8>) -> Result<Written<bool>> {
    let removed = tree.remove(&key)?.is_some();
    meta.len = meta.len.saturating_sub(u64::from(removed));
    Ok(Written::new(removed, key.len()))
}

/// Adds `member`; the answer is true when it is new.
pub fn set_add(tree: &Tree, meta: &mut CollectionMeta, member: &[u8]) -> Result<Written<bool>> {
    let (old, bytes) = put(tree, &set_member_key(meta.generation, member), &[])?;
    meta.len = meta.len.saturating_add(u64::from(old.is_none()));
    Ok(Written::new(old.is_none(), bytes))
}

pub fn set_remove(tree: &Tree, meta: &mut CollectionMeta, member: &[u8]) -> Result<Written<bool>> {
    remove_member(tree, meta, set_member_key(meta.generation, member))
}

pub fn set_contains(tree: &Tree, meta: &CollectionMeta, member: &[u8]) -> Result<bool> {
    Ok(read(tree, &set_member_key(meta.generation, member))?.is_some())
}

/// Every member, in byte order.
pub fn set_iter(tree: &Tree, meta: &CollectionMeta) -> impl Iterator<Item = Result<Bytes>> {
    scan_family(tree, meta.generation, TAG_SET_MEMBER).map(|entry| entry.map(|(member, _)| member))
}

const LIST_FULL: LayoutError = LayoutError::Corrupt("list index out of range");
const LIST_HOLE: LayoutError = LayoutError::Corrupt("list element missing");

pub fn list_push_back(tree: &Tree, meta: &mut CollectionMeta, value: &[u8]) -> Result<Written<()>> {
    let next = meta.list_tail.checked_add(1).ok_or(LIST_FULL)?;
    let (_, bytes) = put(
        tree,
        &list_index_key(meta.generation, meta.list_tail),
        value,
    )?;
    meta.list_tail = next;
    meta.len = meta.len.saturating_add(1);
    Ok(Written::new((), bytes))
}

pub fn list_push_front(
    tree: &Tree,
    meta: &mut CollectionMeta,
    value: &[u8],
) -> Result<Written<()>> {
    let head = meta.list_head.checked_sub(1).ok_or(LIST_FULL)?;
    let (_, bytes) = put(tree, &list_index_key(meta.generation, head), value)?;
    meta.list_head = head;
    meta.len = meta.len.saturating_add(1);
    Ok(Written::new((), bytes))
}

pub fn list_pop_front(tree: &Tree, meta: &mut CollectionMeta) -> Result<Written<Option<Bytes>>> {
    list_pop(tree, meta, true)
}

pub fn list_pop_back(tree: &Tree, meta: &mut CollectionMeta) -> Result<Written<Option<Bytes>>> {
    list_pop(tree, meta, false)
}

/// The element is read (and checked) before it is removed, so a failed
/// checksum leaves the list as it was.
fn list_pop(tree: &Tree, meta: &mut CollectionMeta, front: bool) -> Result<Written<Option<Bytes>>> {
    if meta.len == 0 {
        return Ok(Written::new(None, 0));
    }
    let (index, head, tail) = if front {
        let head = meta.list_head.checked_add(1).ok_or(LIST_FULL)?;
        (meta.list_head, head, meta.list_tail)
    } else {
        let tail = meta.list_tail.checked_sub(1).ok_or(LIST_FULL)?;
        (tail, meta.list_head, tail)
    };
    let key = list_index_key(meta.generation, index);
    let value = read(tree, &key)?.ok_or(LIST_HOLE)?;
    tree.remove(&key)?;
    (meta.list_head, meta.list_tail, meta.len) = (head, tail, meta.len - 1);
    Ok(Written::new(Some(value), key.len()))
}

/// The index of the element at `position` (0 = head), if there is one.
fn list_index(meta: &CollectionMeta, position: u64) -> Option<u64> {
    let index = meta.list_head.checked_add(position)?;
    (index < meta.list_tail).then_some(index)
}

pub fn list_get(tree: &Tree, meta: &CollectionMeta, position: u64) -> Result<Option<Bytes>> {
    match list_index(meta, position) {
        Some(index) => Ok(Some(
            read(tree, &list_index_key(meta.generation, index))?.ok_or(LIST_HOLE)?,
        )),
        None => Ok(None),
    }
}

/// Replaces the element at `position`; the answer is false when out of range.
pub fn list_set(
    tree: &Tree,
    meta: &CollectionMeta,
    position: u64,
    value: &[u8],
) -> Result<Written<bool>> {
    let Some(index) = list_index(meta, position) else {
        return Ok(Written::new(false, 0));
    };
    let (_, bytes) = put(tree, &list_index_key(meta.generation, index), value)?;
    Ok(Written::new(true, bytes))
}

/// The elements from `position` to the tail, in order.
pub fn list_iter(
    tree: &Tree,
    meta: &CollectionMeta,
    position: u64,
) -> impl Iterator<Item = Result<Bytes>> {
    let from = list_index(meta, position).unwrap_or(meta.list_tail);
    let generation = meta.generation;
    let range = list_index_key(generation, from)..list_index_key(generation, meta.list_tail);
    // Pairing records with the indexes they must have turns a hole into an
    // error instead of a silently shorter list.
    tree.range(range)
        .zip(from..meta.list_tail)
        .map(|(entry, expected)| {
            let (key, record) = entry?;
            if be_u64(&key, PREFIX_LEN) != Some(expected) {
                return Err(LIST_HOLE);
            }
            Ok(Bytes::copy_from_slice(open(&key, &record)?))
        })
}

/// Sets `member`'s score; the answer is its previous score. The old
/// score-index entry goes in the same atomic batch as the new one.
pub fn zset_add(
    tree: &Tree,
    meta: &mut CollectionMeta,
    member: &[u8],
    score: f64,
) -> Result<Written<Option<f64>>> {
    if score.is_nan() {
        return Err(LayoutError::NanScore);
    }
    let old = zset_score(tree, meta, member)?;
    if old == Some(score) {
        return Ok(Written::new(old, 0));
    }
    let mut batch = Batch::default();
    let mut bytes = 0;
    if let Some(old) = old {
        let stale = zset_score_key(meta.generation, old, member);
        bytes += stale.len();
        batch.remove(stale);
    }
    // Both records keep the exact score so -0 reads back as -0.
    let payload = score.to_be_bytes();
    for key in [
        zset_member_key(meta.generation, member),
        zset_score_key(meta.generation, score, member),
    ] {
        let record = seal(&key, &payload);
        bytes += key.len() + record.len();
        batch.insert(key, record);
    }
    tree.apply_batch(batch)?;
    meta.len = meta.len.saturating_add(u64::from(old.is_none()));
    Ok(Written::new(old, bytes))
}

pub fn zset_remove(tree: &Tree, meta: &mut CollectionMeta, member: &[u8]) -> Result<Written<bool>> {
    let Some(score) = zset_score(tree, meta, member)? else {
        return Ok(Written::new(false, 0));
    };
    let mut batch = Batch::default();
    let mut bytes = 0;
    for key in [
        zset_member_key(meta.generation, member),
        zset_score_key(meta.generation, score, member),
    ] {
        bytes += key.len();
        batch.remove(key);
    }
    tree.apply_batch(batch)?;
    meta.len = meta.len.saturating_sub(1);
    Ok(Written::new(true, bytes))
}

pub fn zset_score(tree: &Tree, meta: &CollectionMeta, member: &[u8]) -> Result<Option<f64>> {
    match read(tree, &zset_member_key(meta.generation, member))? {
        Some(payload) => Ok(Some(decode_score(&payload)?)),
        None => Ok(None),
    }
}

/// (member, score) with `min <= score <= max` (per the bounds), ascending by
/// score, then by member.
pub fn zset_range_by_score(
    tree: &Tree,
    meta: &CollectionMeta,
    min: Bound<f64>,
    max: Bound<f64>,
) -> impl Iterator<Item = Result<(Bytes, f64)>> {
    let generation = meta.generation;
    let at = |score: f64| {
        let mut key = family_key(generation, TAG_ZSET_SCORE, 8);
        key.extend_from_slice(&ordered_score(score));
        key
    };
    // The first key above every key with this score: the next 8-byte score encoding.
    let past = |score: f64| match u64::from_be_bytes(ordered_score(score)).checked_add(1) {
        Some(next) => {
            let mut key = family_key(generation, TAG_ZSET_SCORE, 8);
            key.extend_from_slice(&next.to_be_bytes());
            key
        }
        None => family_key(generation, TAG_ZSET_SCORE + 1, 0),
    };
    let start = match min {
        Bound::Included(score) => at(score),
        Bound::Excluded(score) => past(score),
        Bound::Unbounded => family_key(generation, TAG_ZSET_SCORE, 0),
    };
    let end = match max {
        Bound::Included(score) => past(score),
        Bound::Excluded(score) => at(score),
        Bound::Unbounded => family_key(generation, TAG_ZSET_SCORE + 1, 0),
    };
    // sled yields nothing (rather than panicking) when start > end.
    tree.range(start..end).map(|entry| {
        let (key, record) = entry?;
        let score = decode_score(open(&key, &record)?)?;
        let member = key
            .get(PREFIX_LEN + 8..)
            .ok_or(LayoutError::Corrupt("short score-index key"))?;
        Ok((Bytes::copy_from_slice(member), score))
    })
}

/// Every (member, score), ascending by score, then by member.
pub fn zset_iter(tree: &Tree, meta: &CollectionMeta) -> impl Iterator<Item = Result<(Bytes, f64)>> {
    zset_range_by_score(tree, meta, Bound::Unbounded, Bound::Unbounded)
}

/// Records that `generation`'s elements are garbage. The caller removes the
/// metadata that named them; [`collect_garbage`] deletes them later.
pub fn mark_garbage(tree: &Tree, generation: u64) -> Result<Written<()>> {
    let key = garbage_key(generation);
    tree.insert(key, &[][..])?;
    Ok(Written::new((), key.len()))
}

/// Deletes up to `budget` element records of `generation`, in one atomic
/// batch; returns how many it deleted (fewer than `budget`: none are left).
pub fn drop_elements(tree: &Tree, generation: u64, budget: usize) -> Result<usize> {
    let mut batch = Batch::default();
    let mut count = 0;
    for key in tree
        .scan_prefix(generation_prefix(generation))
        .keys()
        .take(budget)
    {
        batch.remove(key?);
        count += 1;
    }
    if count > 0 {
        tree.apply_batch(batch)?;
    }
    Ok(count)
}

/// Deletes up to `budget` records of marked generations: their elements,
/// then each marker once its generation is empty. A marker outlives its
/// elements, so after a crash the next call simply resumes. Returns the
/// records deleted; 0 means no garbage is left (when `budget > 0`).
pub fn collect_garbage(tree: &Tree, budget: usize) -> Result<usize> {
    let mut spent = 0;
    for key in tree.scan_prefix([GARBAGE]).keys() {
        if spent >= budget {
            break;
        }
        let key = key?;
        // A marker of the wrong length names no generation: nothing to collect.
        if let Some(generation) = (key.len() == 9).then(|| be_u64(&key, 1)).flatten() {
            let allowance = budget - spent;
            let dropped = drop_elements(tree, generation, allowance)?;
            spent += dropped;
            if dropped == allowance {
                continue;
            }
        }
        tree.remove(&key)?;
        spent += 1;
    }
    Ok(spent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type TestResult = Result<(), LayoutError>;

    fn tree() -> (sled::Db, Tree) {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("temporary sled");
        let tree = db.open_tree("db0").expect("tree");
        (db, tree)
    }

    fn b(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    #[test]
    fn metadata_round_trips_every_kind() -> TestResult {
        for kind in [Kind::List, Kind::Hash, Kind::Set, Kind::ZSet] {
            let mut meta = CollectionMeta::new(kind, 0x0102_0304_0506_0708);
            meta.len = 3;
            if kind == Kind::List {
                meta.list_head = LIST_ORIGIN - 1;
                meta.list_tail = LIST_ORIGIN + 2;
            }
            let encoded = meta.encode();
            assert_eq!(encoded.len(), if kind == Kind::List { 34 } else { 18 });
            assert_eq!(CollectionMeta::decode(&encoded)?, meta);
            for cut in 0..encoded.len() {
                assert!(CollectionMeta::decode(&encoded[..cut]).is_err());
            }
        }
        let mut bad = CollectionMeta::new(Kind::List, 1);
        bad.len = 5;
        assert!(CollectionMeta::decode(&bad.encode()).is_err());
        Ok(())
    }

    #[test]
    fn hash_round_trip() -> TestResult {
        let (_db, tree) = tree();
        let mut meta = CollectionMeta::new(Kind::Hash, 7);
        assert!(hash_set(&tree, &mut meta, b"b", b"2")?.value);
        assert!(hash_set(&tree, &mut meta, b"a", b"1")?.value);
        assert!(!hash_set(&tree, &mut meta, b"a", b"one")?.value);
        assert_eq!(meta.len, 2);
        assert_eq!(hash_get(&tree, &meta, b"a")?, Some(b("one")));
        assert_eq!(hash_get(&tree, &meta, b"zz")?, None);
        let all: Vec<_> = hash_iter(&tree, &meta).collect::<Result<_, _>>()?;
        assert_eq!(all, vec![(b("a"), b("one")), (b("b"), b("2"))]);
        assert!(hash_delete(&tree, &mut meta, b"a")?.value);
        assert!(!hash_delete(&tree, &mut meta, b"a")?.value);
        assert_eq!(meta.len, 1);
        assert_eq!(hash_get(&tree, &meta, b"a")?, None);
        Ok(())
    }

    #[test]
    fn set_round_trip() -> TestResult {
        let (_db, tree) = tree();
        let mut meta = CollectionMeta::new(Kind::Set, 8);
        assert!(set_add(&tree, &mut meta, b"y")?.value);
        assert!(set_add(&tree, &mut meta, b"x")?.value);
        assert!(!set_add(&tree, &mut meta, b"x")?.value);
        assert!(set_add(&tree, &mut meta, b"")?.value);
        assert_eq!(meta.len, 3);
        assert!(set_contains(&tree, &meta, b"x")? && set_contains(&tree, &meta, b"")?);
        let all: Vec<_> = set_iter(&tree, &meta).collect::<Result<_, _>>()?;
        assert_eq!(all, vec![b(""), b("x"), b("y")]);
        assert!(set_remove(&tree, &mut meta, b"x")?.value);
        assert!(!set_contains(&tree, &meta, b"x")?);
        assert_eq!(meta.len, 2);
        Ok(())
    }

    #[test]
    fn list_round_trip() -> TestResult {
        let (_db, tree) = tree();
        let mut meta = CollectionMeta::new(Kind::List, 9);
        list_push_back(&tree, &mut meta, b"b")?;
        list_push_back(&tree, &mut meta, b"c")?;
        list_push_front(&tree, &mut meta, b"a")?;
        assert_eq!(
            (meta.len, meta.list_head, meta.list_tail),
            (3, LIST_ORIGIN - 1, LIST_ORIGIN + 2)
        );
        assert_eq!(CollectionMeta::decode(&meta.encode())?, meta);
        assert_eq!(list_get(&tree, &meta, 0)?, Some(b("a")));
        assert_eq!(list_get(&tree, &meta, 3)?, None);
        assert!(list_set(&tree, &meta, 1, b"B")?.value);
        assert!(!list_set(&tree, &meta, 3, b"x")?.value);
        let all: Vec<_> = list_iter(&tree, &meta, 0).collect::<Result<_, _>>()?;
        assert_eq!(all, vec![b("a"), b("B"), b("c")]);
        let tail: Vec<_> = list_iter(&tree, &meta, 2).collect::<Result<_, _>>()?;
        assert_eq!(tail, vec![b("c")]);
        assert_eq!(list_iter(&tree, &meta, 9).count(), 0);
        assert_eq!(list_pop_back(&tree, &mut meta)?.value, Some(b("c")));
        assert_eq!(list_pop_front(&tree, &mut meta)?.value, Some(b("a")));
        assert_eq!(list_pop_front(&tree, &mut meta)?.value, Some(b("B")));
        assert_eq!(list_pop_front(&tree, &mut meta)?.value, None);
        assert_eq!(list_pop_back(&tree, &mut meta)?.value, None);
        assert_eq!(meta.len, 0);
        assert_eq!(tree.len(), 0);
        Ok(())
    }

    #[test]
    fn zset_round_trip() -> TestResult {
        let (_db, tree) = tree();
        let mut meta = CollectionMeta::new(Kind::ZSet, 10);
        assert_eq!(zset_add(&tree, &mut meta, b"m", 1.5)?.value, None);
        assert_eq!(zset_add(&tree, &mut meta, b"m", 2.5)?.value, Some(1.5));
        assert_eq!(zset_add(&tree, &mut meta, b"m", 2.5)?.bytes, 0);
        assert_eq!(meta.len, 1);
        // The old score's index entry is gone: one member record, one index record.
        assert_eq!(tree.len(), 2);
        assert_eq!(zset_score(&tree, &meta, b"m")?, Some(2.5));
        assert!(matches!(
            zset_add(&tree, &mut meta, b"n", f64::NAN),
            Err(LayoutError::NanScore)
        ));
        assert!(zset_remove(&tree, &mut meta, b"m")?.value);
        assert!(!zset_remove(&tree, &mut meta, b"m")?.value);
        assert_eq!((meta.len, tree.len()), (0, 0));
        Ok(())
    }

    #[test]
    fn range_by_score_is_ascending() -> TestResult {
        let (_db, tree) = tree();
        let mut meta = CollectionMeta::new(Kind::ZSet, 11);
        let entries: [(&str, f64); 10] = [
            ("pinf", f64::INFINITY),
            ("big", 1e300),
            ("one", 1.0),
            ("b-zero", 0.0),
            ("a-negzero", -0.0),
            ("tiny", f64::MIN_POSITIVE),
            ("c-neg", -1.5),
            ("a-neg", -1.5),
            ("huge-neg", -1e300),
            ("ninf", f64::NEG_INFINITY),
        ];
        for (member, score) in entries {
            zset_add(&tree, &mut meta, member.as_bytes(), score)?;
        }
        let names = |min, max| -> Result<Vec<String>, LayoutError> {
            zset_range_by_score(&tree, &meta, min, max)
                .map(|e| e.map(|(m, _)| String::from_utf8_lossy(&m).into_owned()))
                .collect()
        };
        let all = names(Bound::Unbounded, Bound::Unbounded)?;
        let expected = [
            "ninf",
            "huge-neg",
            "a-neg",
            "c-neg",
            "a-negzero",
            "b-zero",
            "tiny",
            "one",
            "big",
            "pinf",
        ];
        assert_eq!(all, expected);
        assert_eq!(
            names(Bound::Included(-1.5), Bound::Excluded(1.0))?,
            ["a-neg", "c-neg", "a-negzero", "b-zero", "tiny"]
        );
        assert_eq!(
            names(Bound::Excluded(-1.5), Bound::Included(0.0))?,
            ["a-negzero", "b-zero"]
        );
        assert_eq!(
            names(Bound::Included(f64::INFINITY), Bound::Unbounded)?,
            ["pinf"]
        );
        assert_eq!(
            names(Bound::Unbounded, Bound::Included(f64::NEG_INFINITY))?,
            ["ninf"]
        );
        assert!(names(Bound::Included(5.0), Bound::Included(1.0))?.is_empty());
        let scores: Vec<f64> = zset_iter(&tree, &meta)
            .map(|e| e.map(|(_, s)| s))
            .collect::<Result<_, _>>()?;
        // The exact score survives the shared zero key.
        assert!(scores[4] == 0.0 && scores[4].is_sign_negative());
        Ok(())
    }

    #[test]
    fn generations_never_mix() -> TestResult {
        let (_db, tree) = tree();
        let mut metas = [1u64, 2, 256, u64::MAX].map(|g| CollectionMeta::new(Kind::Hash, g));
        for meta in metas.iter_mut() {
            let value = meta.generation.to_string();
            hash_set(&tree, meta, b"f", value.as_bytes())?;
            hash_set(&tree, meta, b"\xff\xff", value.as_bytes())?;
        }
        for meta in &metas {
            let all: Vec<_> = hash_iter(&tree, meta).collect::<Result<_, _>>()?;
            let value = b(&meta.generation.to_string());
            let high = Bytes::from_static(b"\xff\xff");
            assert_eq!(all, vec![(b("f"), value.clone()), (high, value)]);
        }
        let mut list = CollectionMeta::new(Kind::List, 3);
        list_push_back(&tree, &mut list, b"x")?;
        assert_eq!(drop_elements(&tree, 2, 100)?, 2);
        assert_eq!(hash_get(&tree, &metas[0], b"f")?, Some(b("1")));
        assert_eq!(hash_get(&tree, &metas[1], b"f")?, None);
        assert_eq!(list_get(&tree, &list, 0)?, Some(b("x")));
        Ok(())
    }

    #[test]
    fn one_change_writes_the_same_bytes_at_any_size() -> TestResult {
        let (_db, tree) = tree();
        let mut cost = Vec::new();
        for (generation, size) in [(1u64, 10u32), (2, 10_000)] {
            let mut hash = CollectionMeta::new(Kind::Hash, generation * 10);
            let mut list = CollectionMeta::new(Kind::List, generation * 10 + 1);
            let mut zset = CollectionMeta::new(Kind::ZSet, generation * 10 + 2);
            for i in 0..size {
                let name = format!("{i:08}");
                hash_set(&tree, &mut hash, name.as_bytes(), b"value")?;
                list_push_back(&tree, &mut list, b"value")?;
                zset_add(&tree, &mut zset, name.as_bytes(), f64::from(i))?;
            }
            let records = tree.len();
            cost.push([
                hash_set(&tree, &mut hash, b"new-field", b"value")?.bytes,
                hash_set(&tree, &mut hash, b"00000003", b"other")?.bytes,
                list_push_back(&tree, &mut list, b"value")?.bytes,
                list_push_front(&tree, &mut list, b"value")?.bytes,
                zset_add(&tree, &mut zset, b"new-member", 0.5)?.bytes,
                zset_add(&tree, &mut zset, b"00000003", -7.0)?.bytes,
            ]);
            // 1 hash field + 2 list elements + 2 zset records (the update replaced one).
            assert_eq!(tree.len(), records + 5);
        }
        assert_eq!(cost[0], cost[1]);
        Ok(())
    }

    #[test]
    fn garbage_collection_is_budgeted_and_spares_live_generations() -> TestResult {
        let (_db, tree) = tree();
        let mut keep = CollectionMeta::new(Kind::Set, 3);
        for generation in 1..=3 {
            let mut meta = CollectionMeta::new(Kind::Set, generation);
            for i in 0..100u32 {
                set_add(&tree, &mut meta, &i.to_be_bytes())?;
            }
            if generation == 3 {
                keep = meta;
            }
        }
        mark_garbage(&tree, 1)?;
        mark_garbage(&tree, 2)?;
        // A marker whose elements are already gone is just removed.
        mark_garbage(&tree, 99)?;
        let (mut calls, mut total) = (0, 0);
        loop {
            let deleted = collect_garbage(&tree, 30)?;
            assert!(deleted <= 30);
            if deleted == 0 {
                break;
            }
            total += deleted;
            calls += 1;
        }
        assert!(calls > 5);
        assert_eq!(total, 200 + 3);
        assert_eq!(tree.scan_prefix([GARBAGE]).count(), 0);
        assert_eq!(tree.scan_prefix(generation_prefix(1)).count(), 0);
        assert_eq!(tree.scan_prefix(generation_prefix(2)).count(), 0);
        assert_eq!(set_iter(&tree, &keep).count(), 100);
        assert_eq!(keep.len, 100);
        assert_eq!(collect_garbage(&tree, 0)?, 0);
        Ok(())
    }

    #[test]
    fn garbage_collection_resumes_after_reopen() -> TestResult {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || -> Result<(sled::Db, Tree)> {
            let db = sled::Config::new().path(dir.path()).open()?;
            let tree = db.open_tree("db0")?;
            Ok((db, tree))
        };
        {
            let (_db, tree) = open()?;
            let mut meta = CollectionMeta::new(Kind::List, 4);
            for i in 0..50u32 {
                list_push_back(&tree, &mut meta, &i.to_be_bytes())?;
            }
            mark_garbage(&tree, 4)?;
            assert_eq!(collect_garbage(&tree, 20)?, 20);
            tree.flush()?;
        }
        let (_db, tree) = open()?;
        assert_eq!(tree.scan_prefix(generation_prefix(4)).count(), 30);
        assert_eq!(collect_garbage(&tree, 100)?, 31);
        assert_eq!(tree.len(), 0);
        Ok(())
    }

    #[test]
    fn corrupted_elements_report_checksum() -> TestResult {
        let (_db, tree) = tree();
        let mut meta = CollectionMeta::new(Kind::Hash, 5);
        hash_set(&tree, &mut meta, b"a", b"value")?;
        hash_set(&tree, &mut meta, b"b", b"value")?;
        let key = hash_field_key(5, b"a");
        let good = tree.get(&key)?.map(|v| v.to_vec()).unwrap_or_default();
        let mut flipped = good.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        tree.insert(&key, flipped)?;
        assert!(matches!(
            hash_get(&tree, &meta, b"a"),
            Err(LayoutError::Checksum)
        ));
        assert!(hash_iter(&tree, &meta).any(|e| matches!(e, Err(LayoutError::Checksum))));
        // A sound record under another field's key fails too.
        tree.insert(hash_field_key(5, b"b"), good)?;
        assert!(matches!(
            hash_get(&tree, &meta, b"b"),
            Err(LayoutError::Checksum)
        ));
        tree.insert(&key, &[1u8, 2][..])?;
        assert!(matches!(
            hash_get(&tree, &meta, b"a"),
            Err(LayoutError::Checksum)
        ));

        let mut list = CollectionMeta::new(Kind::List, 6);
        list_push_back(&tree, &mut list, b"x")?;
        tree.insert(list_index_key(6, LIST_ORIGIN), &b"garbage"[..])?;
        assert!(matches!(
            list_pop_front(&tree, &mut list),
            Err(LayoutError::Checksum)
        ));
        // The failed pop changed nothing.
        assert_eq!(list.len, 1);
        Ok(())
    }

    #[test]
    fn scores_encode_in_numeric_order() {
        let mut scores = vec![f64::NEG_INFINITY, f64::MIN, -1.0, -f64::MIN_POSITIVE, -0.0];
        scores.extend([0.0, 5e-324, 1.0, f64::MAX, f64::INFINITY]);
        for pair in scores.windows(2) {
            let (low, high) = (ordered_score(pair[0]), ordered_score(pair[1]));
            assert!(low < high || pair[0] == pair[1], "{pair:?}");
        }
        assert_eq!(ordered_score(-0.0), ordered_score(0.0));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = CollectionMeta::decode(&bytes);
            let _ = open(b"key", &bytes);
            let _ = decode_score(&bytes);
        }

        #[test]
        fn decode_of_mutated_metadata_never_panics(
            generation: u64, len in 0u64..1000, flip in 0usize..34, bit in 0u8..8,
        ) {
            let mut meta = CollectionMeta::new(Kind::List, generation);
            meta.len = len;
            meta.list_tail = LIST_ORIGIN + len;
            let mut bytes = meta.encode();
            if let Some(byte) = bytes.get_mut(flip) {
                *byte ^= 1 << bit;
            }
            let _ = CollectionMeta::decode(&bytes);
        }

        #[test]
        fn score_order_matches_numbers(a in any::<f64>(), c in any::<f64>()) {
            prop_assume!(!a.is_nan() && !c.is_nan());
            let order = a.partial_cmp(&c);
            prop_assert_eq!(Some(ordered_score(a).cmp(&ordered_score(c))), order);
        }
    }
}
