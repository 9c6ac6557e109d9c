//! Collections in the warm tier: the metadata a list, hash, set or sorted set
//! keeps as its key record's payload, and its elements, one sled record each,
//! in the database's tree. A command's journal record carries the metadata
//! and only the elements it changed, so changing one element writes O(1)
//! bytes whatever the collection's size. A collection that is dropped or
//! replaced leaves a garbage marker for its generation (written by the
//! applier in the same step), and [`collect_garbage`] deletes its elements
//! later, a bounded number per call.
//!
//! Layout (integers big-endian):
//! - metadata: `1` (format), kind (`l`/`h`/`s`/`z`), generation u64, len u64,
//!   and for lists only head u64, tail u64 (elements at head..tail).
//! - element key: `e`, generation u64, family tag, then
//!   `h` field | `s` member | `z` member | `l` position u64.
//! - element record: CRC32 (u32) of key ++ payload, then the payload: the
//!   field's value, the list element, nothing for a set member, the score as
//!   f64 bits for a sorted-set member.
//! - garbage marker: `g`, generation u64 → empty.
//!
//! The hot tier loads a collection whole (see ARCHITECTURE.md), so sorted
//! sets keep no score index on disk: the order is rebuilt in memory.

use std::fmt;

use bytes::Bytes;
use sled::Tree;

const META_FORMAT: u8 = 1;
pub const ELEMENT: u8 = b'e';
const GARBAGE: u8 = b'g';
pub const TAG_HASH_FIELD: u8 = b'h';
pub const TAG_SET_MEMBER: u8 = b's';
pub const TAG_LIST_INDEX: u8 = b'l';
pub const TAG_ZSET_MEMBER: u8 = b'z';
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
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Sled(e) => write!(f, "warm tier storage error: {e}"),
            LayoutError::Checksum => f.write_str("collection element failed its checksum"),
            LayoutError::Corrupt(what) => write!(f, "corrupt collection data: {what}"),
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

    /// The family tag of this kind's element keys.
    pub fn element_tag(self) -> u8 {
        match self {
            Kind::List => TAG_LIST_INDEX,
            Kind::Hash => TAG_HASH_FIELD,
            Kind::Set => TAG_SET_MEMBER,
            Kind::ZSet => TAG_ZSET_MEMBER,
        }
    }
}

/// What a collection's envelope stores instead of its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionMeta {
    pub kind: Kind,
    /// Unique over the warm tier's lifetime: names the collection's elements.
    pub generation: u64,
    pub len: u64,
    /// Lists only: position of the first element (meaningless for other kinds).
    pub list_head: u64,
    /// Lists only: one past the last element's position.
    pub list_tail: u64,
}

impl CollectionMeta {
    pub fn new(kind: Kind, generation: u64) -> CollectionMeta {
        CollectionMeta {
            kind,
            generation,
            len: 0,
            list_head: crate::keyspace::types::LIST_ORIGIN,
            list_tail: crate::keyspace::types::LIST_ORIGIN,
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

/// The element key of a hash field, set member or sorted-set member.
pub fn member_key(generation: u64, tag: u8, member: &[u8]) -> Vec<u8> {
    let mut key = family_key(generation, tag, member.len());
    key.extend_from_slice(member);
    key
}

pub fn list_index_key(generation: u64, position: u64) -> Vec<u8> {
    let mut key = family_key(generation, TAG_LIST_INDEX, 8);
    key.extend_from_slice(&position.to_be_bytes());
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

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(payload);
    hasher.finalize()
}

/// The record stored under element key `key`.
pub fn element_record(key: &[u8], payload: &[u8]) -> Vec<u8> {
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

pub fn encode_score(score: f64) -> [u8; 8] {
    score.to_bits().to_be_bytes()
}

pub fn decode_score(payload: &[u8]) -> Result<f64> {
    match payload.try_into() {
        Ok(bits) => Ok(f64::from_bits(u64::from_be_bytes(bits))),
        Err(_) => Err(LayoutError::Corrupt("sorted-set score is not 8 bytes")),
    }
}

/// One element read back: the part of its key after the family tag (field,
/// member, or position as u64 BE) and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub tag: u8,
    pub suffix: Bytes,
    pub payload: Bytes,
}

/// Every element of `generation`, in key order. Elements that fail their
/// check are left out and counted in the second figure.
pub fn load(tree: &Tree, generation: u64) -> Result<(Vec<Element>, usize)> {
    let mut elements = Vec::new();
    let mut damaged = 0;
    for entry in tree.scan_prefix(generation_prefix(generation)) {
        let (key, record) = entry?;
        let (Some(&tag), Ok(payload)) = (key.get(PREFIX_LEN - 1), open(&key, &record)) else {
            damaged += 1;
            continue;
        };
        elements.push(Element {
            tag,
            suffix: Bytes::copy_from_slice(key.get(PREFIX_LEN..).unwrap_or_default()),
            payload: Bytes::copy_from_slice(payload),
        });
    }
    Ok((elements, damaged))
}

/// Deletes up to `budget` records of marked generations: their elements,
/// then each marker once its generation is empty. A marker outlives its
/// elements, so after a crash the next call simply resumes. Returns the
/// records deleted (0 means no garbage is left, when `budget > 0`) and
/// their bytes.
pub fn collect_garbage(tree: &Tree, budget: usize) -> Result<(usize, usize)> {
    let (mut spent, mut bytes) = (0, 0);
    for key in tree.scan_prefix([GARBAGE]).keys() {
        if spent >= budget {
            break;
        }
        let key = key?;
        // A marker of the wrong length names no generation: nothing to collect.
        if let Some(generation) = (key.len() == 9).then(|| be_u64(&key, 1)).flatten() {
            let allowance = budget - spent;
            let mut dropped = 0;
            for entry in tree
                .scan_prefix(generation_prefix(generation))
                .take(allowance)
            {
                let (element, record) = entry?;
                if tree.remove(&element)?.is_some() {
                    bytes += element.len() + record.len();
                }
                dropped += 1;
            }
            spent += dropped;
            if dropped == allowance {
                continue;
            }
        }
        tree.remove(&key)?;
        spent += 1;
    }
    Ok((spent, bytes))
}

/// The generation a key record's payload names, when it is a collection's
/// metadata.
pub fn meta_generation(payload: &[u8]) -> Option<u64> {
    CollectionMeta::decode(payload)
        .ok()
        .map(|meta| meta.generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree() -> (sled::Db, Tree) {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("temporary sled");
        let tree = db.open_tree("db0").expect("tree");
        (db, tree)
    }

    #[test]
    fn metadata_round_trips_every_kind() -> Result<()> {
        for kind in [Kind::List, Kind::Hash, Kind::Set, Kind::ZSet] {
            let mut meta = CollectionMeta::new(kind, 0x0102_0304_0506_0708);
            meta.len = 3;
            if kind == Kind::List {
                meta.list_head -= 1;
                meta.list_tail += 2;
            }
            let encoded = meta.encode();
            assert_eq!(encoded.len(), if kind == Kind::List { 34 } else { 18 });
            assert_eq!(CollectionMeta::decode(&encoded)?, meta);
            assert_eq!(meta_generation(&encoded), Some(meta.generation));
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
    fn elements_load_in_key_order_and_damage_is_left_out() -> Result<()> {
        let (_db, tree) = tree();
        for (position, item) in [(5u64, "five"), (3, "three"), (4, "four")] {
            let key = list_index_key(9, position);
            tree.insert(&key, element_record(&key, item.as_bytes()))?;
        }
        let other = member_key(10, TAG_SET_MEMBER, b"m");
        tree.insert(&other, element_record(&other, b""))?;
        let (elements, damaged) = load(&tree, 9)?;
        assert_eq!(damaged, 0);
        let items: Vec<&[u8]> = elements.iter().map(|e| e.payload.as_ref()).collect();
        assert_eq!(items, [&b"three"[..], b"four", b"five"]);
        assert_eq!(elements[0].suffix.as_ref(), 3u64.to_be_bytes());
        // A record moved under another key fails its check.
        let moved = tree.get(list_index_key(9, 3))?.unwrap();
        tree.insert(list_index_key(9, 6), moved)?;
        let (elements, damaged) = load(&tree, 9)?;
        assert_eq!((elements.len(), damaged), (3, 1));
        Ok(())
    }

    #[test]
    fn garbage_is_collected_within_a_budget() -> Result<()> {
        let (_db, tree) = tree();
        for position in 0..10u64 {
            let key = list_index_key(1, position);
            tree.insert(&key, element_record(&key, b"x"))?;
        }
        let kept = member_key(2, TAG_HASH_FIELD, b"f");
        tree.insert(&kept, element_record(&kept, b"v"))?;
        tree.insert(garbage_key(1), &[][..])?;
        assert_eq!(collect_garbage(&tree, 4)?.0, 4);
        let (spent, bytes) = collect_garbage(&tree, 100)?;
        assert_eq!(spent, 7, "six elements and the marker");
        assert_eq!(bytes, 6 * (18 + 5));
        assert_eq!(collect_garbage(&tree, 100)?.0, 0);
        assert_eq!(load(&tree, 2)?.0.len(), 1);
        assert_eq!(load(&tree, 1)?.0.len(), 0);
        Ok(())
    }

    proptest! {
        #[test]
        fn metadata_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = CollectionMeta::decode(&bytes);
        }

        #[test]
        fn scores_round_trip(score in any::<f64>()) {
            let back = decode_score(&encode_score(score)).unwrap();
            prop_assert_eq!(back.to_bits(), score.to_bits());
        }
    }
}
