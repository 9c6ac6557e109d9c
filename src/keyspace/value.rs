//! Typed Redis values and the per-key entry: key, value, expiry and access
//! information, laid out for the hot tier's memory footprint.

use bytes::Bytes;

use super::types::{alloc_size, Collection, ElementWrite, Hash, List, Set, Stored, ZSet};
use crate::protocol::parse_i64;

/// A value handed to the keyspace to store. The keyspace keeps its own
/// compact copy, so a string may be a slice of a read buffer; a collection
/// moves in as it is. Every command matches on this type, so a new variant
/// is a compile error where it matters.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Bytes),
    List(List),
    Hash(Hash),
    Set(Set),
    ZSet(ZSet),
}

/// A stored value as commands read it (a view into the entry).
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Str(&'a [u8]),
    List(&'a List),
    Hash(&'a Hash),
    Set(&'a Set),
    ZSet(&'a ZSet),
}

impl PartialEq for ValueRef<'_> {
    /// Strings compare by content; collections only by identity (tests
    /// compare strings).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ValueRef::Str(a), ValueRef::Str(b)) => a == b,
            (ValueRef::List(a), ValueRef::List(b)) => std::ptr::eq(*a, *b),
            (ValueRef::Hash(a), ValueRef::Hash(b)) => std::ptr::eq(*a, *b),
            (ValueRef::Set(a), ValueRef::Set(b)) => std::ptr::eq(*a, *b),
            (ValueRef::ZSet(a), ValueRef::ZSet(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

/// The type names `TYPE` and `SCAN ... TYPE` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    List,
    Hash,
    Set,
    ZSet,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::List => "list",
            ValueType::Hash => "hash",
            ValueType::Set => "set",
            ValueType::ZSet => "zset",
        }
    }

    /// The type of a warm-tier record of `kind`.
    pub fn from_kind(kind: u8) -> Option<ValueType> {
        use super::warm::{KIND_HASH, KIND_LIST, KIND_SET, KIND_STRING, KIND_ZSET};
        match kind {
            KIND_STRING => Some(ValueType::String),
            KIND_LIST => Some(ValueType::List),
            KIND_HASH => Some(ValueType::Hash),
            KIND_SET => Some(ValueType::Set),
            KIND_ZSET => Some(ValueType::ZSet),
            _ => None,
        }
    }

    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        match name.to_ascii_lowercase().as_slice() {
            b"string" => Some(ValueType::String),
            b"list" => Some(ValueType::List),
            b"hash" => Some(ValueType::Hash),
            b"set" => Some(ValueType::Set),
            b"zset" => Some(ValueType::ZSet),
            _ => None,
        }
    }
}

impl<'a> ValueRef<'a> {
    pub fn value_type(self) -> ValueType {
        match self {
            ValueRef::Str(_) => ValueType::String,
            ValueRef::List(_) => ValueType::List,
            ValueRef::Hash(_) => ValueType::Hash,
            ValueRef::Set(_) => ValueType::Set,
            ValueRef::ZSet(_) => ValueType::ZSet,
        }
    }

    pub fn as_str(self) -> Option<&'a [u8]> {
        match self {
            ValueRef::Str(data) => Some(data),
            _ => None,
        }
    }

    pub fn as_list(self) -> Option<&'a List> {
        match self {
            ValueRef::List(list) => Some(list),
            _ => None,
        }
    }

    pub fn as_hash(self) -> Option<&'a Hash> {
        match self {
            ValueRef::Hash(hash) => Some(hash),
            _ => None,
        }
    }

    pub fn as_set(self) -> Option<&'a Set> {
        match self {
            ValueRef::Set(set) => Some(set),
            _ => None,
        }
    }

    pub fn as_zset(self) -> Option<&'a ZSet> {
        match self {
            ValueRef::ZSet(zset) => Some(zset),
            _ => None,
        }
    }
}

/// A hot-tier key's fixed cost beside its own allocation: the 48-byte slot
/// in the shard's dense vector and about 6 bytes of bucket array (4 bytes a
/// bucket, between one and two buckets a key).
pub const ENTRY_OVERHEAD: usize = 54;
/// Extra cost of a key with a deadline in a memory-only shard: its
/// (deadline, position) pair in the B-tree that the active sweep pops from.
pub const EXPIRY_OVERHEAD: usize = 24;
/// Redis keeps strings up to this length in one allocation with their header.
const EMBSTR_MAX: usize = 44;
/// `expire_at` of a key without a deadline.
const NO_DEADLINE: u64 = u64::MAX;

/// A value that lives apart from the entry's own allocation. Boxed behind
/// one pointer, so variants added here never make a plain string bigger.
#[derive(Debug, Clone)]
enum Heap {
    /// A string changed in place (APPEND, SETRANGE, SETBIT, BITFIELD) or
    /// BITOP's result: Redis's `raw` encoding, with room to grow so repeated
    /// edits stay amortised O(1).
    Raw(Vec<u8>),
    List(List),
    Hash(Hash),
    Set(Set),
    ZSet(ZSet),
}

impl Heap {
    fn collection(&self) -> Option<&dyn Collection> {
        match self {
            Heap::Raw(_) => None,
            Heap::List(c) => Some(c),
            Heap::Hash(c) => Some(c),
            Heap::Set(c) => Some(c),
            Heap::ZSet(c) => Some(c),
        }
    }

    fn collection_mut(&mut self) -> Option<&mut dyn Collection> {
        match self {
            Heap::Raw(_) => None,
            Heap::List(c) => Some(c),
            Heap::Hash(c) => Some(c),
            Heap::Set(c) => Some(c),
            Heap::ZSet(c) => Some(c),
        }
    }
}

/// One key in the hot tier. Its key and, for a plain string, its value share
/// one heap allocation (`bytes`: the key length as LEB128, the key, the
/// value), so a key costs one allocation and this 40-byte record.
#[derive(Debug, Clone)]
pub struct Entry {
    bytes: Box<[u8]>,
    /// The value when it is not a plain string stored after the key.
    heap: Option<Box<Heap>>,
    /// Absolute expiry in Unix milliseconds; [`NO_DEADLINE`] when none.
    expire_at: u64,
    /// Seconds clock of the last access (LRU and OBJECT IDLETIME).
    access: u32,
    /// Logarithmic access counter (LFU and OBJECT FREQ).
    freq: u8,
}

/// An entry handed out for a change in place (`Txn::entry_mut`): its value
/// may change, its key and deadline, which the shard indexes, may not.
pub struct EntryMut<'a>(pub(super) &'a mut Entry);

impl<'a> EntryMut<'a> {
    /// The string to change in place; `None` for a value of another type.
    /// A plain string moves to its own growable buffer first and from then
    /// on reports the `raw` encoding, as Redis's does.
    pub fn string_mut(self) -> Option<&'a mut Vec<u8>> {
        self.0.string_mut()
    }

    /// Moves a plain string to its own buffer, as Redis stores BITOP's
    /// result unencoded (OBJECT ENCODING says `raw`).
    pub fn make_raw(self) {
        self.0.string_mut();
    }

    pub fn list_mut(self) -> Option<&'a mut List> {
        match self.0.heap.as_deref_mut() {
            Some(Heap::List(list)) => Some(list),
            _ => None,
        }
    }

    pub fn hash_mut(self) -> Option<&'a mut Hash> {
        match self.0.heap.as_deref_mut() {
            Some(Heap::Hash(hash)) => Some(hash),
            _ => None,
        }
    }

    pub fn set_mut(self) -> Option<&'a mut Set> {
        match self.0.heap.as_deref_mut() {
            Some(Heap::Set(set)) => Some(set),
            _ => None,
        }
    }

    pub fn zset_mut(self) -> Option<&'a mut ZSet> {
        match self.0.heap.as_deref_mut() {
            Some(Heap::ZSet(zset)) => Some(zset),
            _ => None,
        }
    }
}

impl std::ops::Deref for EntryMut<'_> {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        self.0
    }
}

/// Redis shares the objects of the integers `0..OBJ_SHARED_INTEGERS`.
const SHARED_INTEGERS: i64 = 10_000;
/// Redis's `OBJ_SHARED_REFCOUNT`: the refcount it prints for a shared object.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// Redis's initial LFU counter for a new key.
pub const LFU_INIT: u8 = 5;

/// `bytes` for `key` followed by `tail`.
fn pack(key: &[u8], tail: &[u8]) -> Box<[u8]> {
    let header = (usize::BITS - key.len().leading_zeros()).div_ceil(7).max(1) as usize;
    // Exactly the size it ends with: shrinking in `into_boxed_slice` would
    // keep the larger block whenever the spare part is too small to split.
    let mut bytes = Vec::with_capacity(header + key.len() + tail.len());
    let mut len = key.len();
    while len >= 0x80 {
        bytes.push((len as u8) | 0x80);
        len >>= 7;
    }
    bytes.push(len as u8);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(tail);
    bytes.into_boxed_slice()
}

/// Splits `bytes` into (key, tail).
fn unpack(bytes: &[u8]) -> (&[u8], &[u8]) {
    // Keys under 128 bytes, nearly all of them, have a one-byte length.
    if let Some((&len, rest)) = bytes.split_first() {
        if len < 0x80 {
            return rest
                .split_at_checked(usize::from(len))
                .unwrap_or((rest, &[]));
        }
    }
    let mut len = 0usize;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            let rest = bytes.get(i + 1..).unwrap_or_default();
            return rest.split_at_checked(len).unwrap_or((rest, &[]));
        }
    }
    (&[], &[])
}

impl Entry {
    pub fn new(key: &[u8], value: Value, expire_at: Option<u64>, now_secs: u32) -> Entry {
        let (bytes, heap) = match value {
            Value::Str(data) => (pack(key, &data), None),
            Value::List(c) => (pack(key, &[]), Some(Box::new(Heap::List(c)))),
            Value::Hash(c) => (pack(key, &[]), Some(Box::new(Heap::Hash(c)))),
            Value::Set(c) => (pack(key, &[]), Some(Box::new(Heap::Set(c)))),
            Value::ZSet(c) => (pack(key, &[]), Some(Box::new(Heap::ZSet(c)))),
        };
        Entry {
            bytes,
            heap,
            expire_at: expire_at.unwrap_or(NO_DEADLINE),
            access: now_secs,
            freq: LFU_INIT,
        }
    }

    pub fn key(&self) -> &[u8] {
        unpack(&self.bytes).0
    }

    pub fn value(&self) -> ValueRef<'_> {
        match self.heap.as_deref() {
            None => ValueRef::Str(unpack(&self.bytes).1),
            Some(Heap::Raw(data)) => ValueRef::Str(data),
            Some(Heap::List(c)) => ValueRef::List(c),
            Some(Heap::Hash(c)) => ValueRef::Hash(c),
            Some(Heap::Set(c)) => ValueRef::Set(c),
            Some(Heap::ZSet(c)) => ValueRef::ZSet(c),
        }
    }

    /// The value, taken out of the entry.
    pub(super) fn into_value(self) -> Value {
        match self.heap.map(|heap| *heap) {
            None => Value::Str(Bytes::copy_from_slice(unpack(&self.bytes).1)),
            Some(Heap::Raw(data)) => Value::Str(Bytes::from(data)),
            Some(Heap::List(c)) => Value::List(c),
            Some(Heap::Hash(c)) => Value::Hash(c),
            Some(Heap::Set(c)) => Value::Set(c),
            Some(Heap::ZSet(c)) => Value::ZSet(c),
        }
    }

    /// The value when it is a collection.
    pub fn collection(&self) -> Option<&dyn Collection> {
        self.heap.as_deref().and_then(Heap::collection)
    }

    pub(super) fn collection_mut(&mut self) -> Option<&mut dyn Collection> {
        self.heap.as_deref_mut().and_then(Heap::collection_mut)
    }

    /// Absolute expiry in Unix milliseconds.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != NO_DEADLINE).then_some(self.expire_at)
    }

    pub(super) fn set_expire_at(&mut self, expire_at: Option<u64>) {
        self.expire_at = expire_at.unwrap_or(NO_DEADLINE);
    }

    /// Seconds clock of the last access.
    pub fn access(&self) -> u32 {
        self.access
    }

    /// Logarithmic access counter (LFU).
    pub fn freq(&self) -> u8 {
        self.freq
    }

    /// The same entry under another key (RENAME, MOVE): a plain string's
    /// bytes are copied next to the new key; a heap value moves as it is.
    pub(super) fn rekey(self, key: &[u8]) -> Entry {
        if self.key() == key {
            return self;
        }
        let tail = match self.heap {
            None => unpack(&self.bytes).1,
            Some(_) => &[],
        };
        Entry {
            bytes: pack(key, tail),
            ..self
        }
    }

    /// A copy as COPY makes it: a new object (fresh access information)
    /// with the same value, encoding and deadline.
    pub fn copy(&self, now_secs: u32) -> Entry {
        let mut copy = Entry {
            access: now_secs,
            freq: LFU_INIT,
            ..self.clone()
        };
        // A copied collection is a new one: the keyspace gives it its own
        // generation and writes all its elements.
        if let Some(collection) = copy.collection_mut() {
            collection.common_mut().generation = 0;
        }
        copy
    }

    /// For a collection: its key record (kind, metadata) for the warm
    /// tier, with the element records its recorded changes call for added
    /// to `out` (and the record cleared).
    pub(super) fn collection_changes(
        &mut self,
        out: &mut Vec<ElementWrite>,
    ) -> Option<(u8, Vec<u8>)> {
        use super::warm::{KIND_HASH, KIND_LIST, KIND_SET, KIND_ZSET};
        fn one<T: Stored>(c: &mut T, kind: u8, out: &mut Vec<ElementWrite>) -> (u8, Vec<u8>) {
            c.drain_changes(out);
            (kind, c.meta().encode())
        }
        match self.heap.as_deref_mut()? {
            Heap::Raw(_) => None,
            Heap::List(c) => Some(one(c, KIND_LIST, out)),
            Heap::Hash(c) => Some(one(c, KIND_HASH, out)),
            Heap::Set(c) => Some(one(c, KIND_SET, out)),
            Heap::ZSet(c) => Some(one(c, KIND_ZSET, out)),
        }
    }

    /// The string to change in place; `None` for a value of another type.
    /// A plain string moves out to its own growable buffer first, and from
    /// then on reports the `raw` encoding, as Redis's does.
    fn string_mut(&mut self) -> Option<&mut Vec<u8>> {
        if self.heap.is_none() {
            let (key, value) = unpack(&self.bytes);
            let raw = Heap::Raw(value.to_vec());
            self.bytes = pack(key, &[]);
            self.heap = Some(Box::new(raw));
        }
        match self.heap.as_deref_mut() {
            Some(Heap::Raw(data)) => Some(data),
            _ => None,
        }
    }

    /// Bytes this entry occupies in memory: its fixed cost, its allocation,
    /// and a heap value's own.
    pub fn mem_size(&self) -> usize {
        ENTRY_OVERHEAD
            + alloc_size(self.bytes.len())
            + match self.heap.as_deref() {
                None => 0,
                Some(Heap::Raw(data)) => {
                    alloc_size(std::mem::size_of::<Heap>()) + alloc_size(data.capacity())
                }
                Some(heap) => {
                    alloc_size(std::mem::size_of::<Heap>())
                        + heap.collection().map_or(0, |c| c.common().bytes)
                }
            }
    }

    /// What `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self.heap.as_deref() {
            Some(Heap::Raw(_)) => "raw",
            Some(Heap::List(c)) => c.encoding(),
            Some(Heap::Hash(c)) => c.encoding(),
            Some(Heap::Set(c)) => c.encoding(),
            Some(Heap::ZSet(c)) => c.encoding(),
            None => {
                let data = unpack(&self.bytes).1;
                if data.len() <= 20 && parse_i64(data).is_some() {
                    "int"
                } else if data.len() <= EMBSTR_MAX {
                    "embstr"
                } else {
                    "raw"
                }
            }
        }
    }

    /// What OBJECT REFCOUNT and DEBUG OBJECT report. Redis shares one object
    /// per small integer (0..10000) unless `shared_integers` is off (an
    /// LRU/LFU policy with a memory bound tracks each key's own object).
    pub fn refcount(&self, shared_integers: bool) -> i64 {
        match self.value() {
            ValueRef::Str(data) => {
                let small = parse_i64(data).is_some_and(|n| (0..SHARED_INTEGERS).contains(&n));
                if shared_integers && small && self.encoding() == "int" {
                    SHARED_REFCOUNT
                } else {
                    1
                }
            }
            _ => 1,
        }
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at().is_some_and(|at| at <= now_ms)
    }

    /// Records an access: LRU clock and Redis's probabilistic LFU increment.
    pub(super) fn touch(&mut self, now_secs: u32, lfu_log_factor: u32) {
        self.access = now_secs;
        if self.freq < 255 {
            let base = f64::from(self.freq.saturating_sub(LFU_INIT));
            let probability = 1.0 / (base * f64::from(lfu_log_factor) + 1.0);
            if rand::random::<f64>() < probability {
                self.freq += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_every_length_round_trip() {
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let key = vec![b'k'; len];
            let entry = Entry::new(&key, Value::Str(Bytes::from_static(b"v")), None, 0);
            assert_eq!(entry.key(), key.as_slice(), "key of {len} bytes");
            assert_eq!(entry.value(), ValueRef::Str(b"v"));
        }
    }

    #[test]
    fn an_edited_string_turns_raw_and_keeps_its_key() {
        let mut entry = Entry::new(b"key", Value::Str(Bytes::from_static(b"12")), Some(7), 0);
        assert_eq!(entry.encoding(), "int");
        if let Some(data) = entry.string_mut() {
            data.extend_from_slice(b"34");
        }
        assert_eq!(entry.encoding(), "raw");
        assert_eq!(entry.value(), ValueRef::Str(b"1234"));
        let moved = entry.rekey(b"other");
        assert_eq!(moved.key(), b"other");
        assert_eq!(moved.value(), ValueRef::Str(b"1234"));
        assert_eq!(moved.expire_at(), Some(7));
    }

    #[test]
    fn entry_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }
}
