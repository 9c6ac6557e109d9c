//! Typed Redis values and the per-key entry: key, value, expiry and access
//! information, laid out for the hot tier's memory footprint.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

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

/// A hot-tier key's fixed cost beside its own allocation: the 24-byte slot
/// in the shard's dense vector and about 6 bytes of bucket array (4 bytes a
/// bucket, between one and two buckets a key).
pub const ENTRY_OVERHEAD: usize = 30;
/// Extra cost of a key with a deadline in a memory-only shard: its
/// (deadline, position) pair in the B-tree that the active sweep pops from.
pub const EXPIRY_OVERHEAD: usize = 24;
/// Redis keeps strings up to this length in one allocation with their header.
const EMBSTR_MAX: usize = 44;
/// `expire_at` of a key without a deadline.
const NO_DEADLINE: u64 = u64::MAX;
/// `Entry::flags`: the entry's block is a `Box<Apart>`.
const APART: u8 = 1;
/// `Entry::flags`: a plain block carries a deadline.
const DEADLINE: u8 = 2;

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

/// An entry whose value is not a plain string: the key and deadline beside
/// the value. Collections and edited strings are big enough that these few
/// bytes do not matter; plain strings, most keys, never pay them.
#[derive(Debug, Clone)]
struct Apart {
    /// Absolute expiry in Unix milliseconds; [`NO_DEADLINE`] when none.
    expire_at: u64,
    key: Box<[u8]>,
    heap: Heap,
}

/// One key in the hot tier, in 16 bytes: a thin pointer to the one
/// allocation that holds the key (and a plain string's value), and the
/// access information eviction samples without following the pointer.
///
/// A plain string's block is `[body length, LEB128][deadline u64 LE, with
/// DEADLINE][key length, LEB128][key][value]`, allocated at exactly its
/// length: the 100-byte value of a 16-byte key takes 118 bytes, one
/// 128-byte class. The deadline lives in the block because few keys have
/// one (and reading it costs nothing: a lookup reads the block's key
/// anyway). Any other value is a `Box<Apart>` (flag [`APART`]).
pub struct Entry {
    block: NonNull<u8>,
    /// Seconds clock of the last access (LRU and OBJECT IDLETIME).
    access: u32,
    /// Logarithmic access counter (LFU and OBJECT FREQ).
    freq: u8,
    flags: u8,
    /// A plain block's length, or `u16::MAX` when it is that long or
    /// longer (or the entry is apart): eviction measures the key it drops
    /// without a read of the block, usually a cache miss.
    plain_len: u16,
}

// SAFETY: an Entry owns its block alone, as a `Box` owns its contents (no
// shared pointer, no interior mutability), and a block is bytes or an
// `Apart`, which is Send and Sync (checked below).
unsafe impl Send for Entry {}
// SAFETY: as for Send: `&Entry` only reads the block.
unsafe impl Sync for Entry {}

const _: fn() = || {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Apart>();
};

/// Bytes of `n` as LEB128.
fn leb_len(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize
}

fn push_leb(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A LEB128 number at the start of `bytes` and what follows it.
fn read_leb(bytes: &[u8]) -> (usize, &[u8]) {
    // Keys under 128 bytes, nearly all of them, have a one-byte length.
    if let Some((&byte, rest)) = bytes.split_first() {
        if byte < 0x80 {
            return (usize::from(byte), rest);
        }
    }
    let mut n = 0usize;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        n |= usize::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return (n, bytes.get(i + 1..).unwrap_or_default());
        }
    }
    (0, &[])
}

/// A plain string's block (layout at [`Entry`]), leaked: the entry owns
/// it; and its length.
fn plain_block(key: &[u8], value: &[u8], deadline: Option<u64>) -> (NonNull<u8>, usize) {
    let body = deadline.map_or(0, |_| 8) + leb_len(key.len()) + key.len() + value.len();
    // Exactly the size it ends with: shrinking in `into_boxed_slice` would
    // keep the larger block whenever the spare part is too small to split.
    let mut block = Vec::with_capacity(leb_len(body) + body);
    push_leb(&mut block, body);
    if let Some(at) = deadline {
        block.extend_from_slice(&at.to_le_bytes());
    }
    push_leb(&mut block, key.len());
    block.extend_from_slice(key);
    block.extend_from_slice(value);
    let len = block.len();
    (
        NonNull::from(Box::leak(block.into_boxed_slice())).cast(),
        len,
    )
}

fn apart_block(apart: Apart) -> NonNull<u8> {
    NonNull::from(Box::leak(Box::new(apart))).cast()
}

/// What an entry's block holds.
enum Repr<'a> {
    /// A plain string's whole block.
    Plain(&'a [u8]),
    Apart(&'a Apart),
}

/// A plain block's parts: deadline, key, value.
fn plain_parts(block: &[u8], has_deadline: bool) -> (Option<u64>, &[u8], &[u8]) {
    let body = read_leb(block).1;
    let (deadline, rest) = match has_deadline {
        true => match body.split_first_chunk::<8>() {
            Some((at, rest)) => (Some(u64::from_le_bytes(*at)), rest),
            None => (None, body),
        },
        false => (None, body),
    };
    let (key_len, rest) = read_leb(rest);
    let (key, value) = rest.split_at_checked(key_len).unwrap_or((rest, &[]));
    (deadline, key, value)
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
        match self.0.heap_mut() {
            Some(Heap::List(list)) => Some(list),
            _ => None,
        }
    }

    pub fn hash_mut(self) -> Option<&'a mut Hash> {
        match self.0.heap_mut() {
            Some(Heap::Hash(hash)) => Some(hash),
            _ => None,
        }
    }

    pub fn set_mut(self) -> Option<&'a mut Set> {
        match self.0.heap_mut() {
            Some(Heap::Set(set)) => Some(set),
            _ => None,
        }
    }

    pub fn zset_mut(self) -> Option<&'a mut ZSet> {
        match self.0.heap_mut() {
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

impl Entry {
    pub fn new(key: &[u8], value: Value, expire_at: Option<u64>, now_secs: u32) -> Entry {
        let heap = match value {
            Value::Str(data) => return Entry::plain(key, &data, expire_at, now_secs, LFU_INIT),
            Value::List(c) => Heap::List(c),
            Value::Hash(c) => Heap::Hash(c),
            Value::Set(c) => Heap::Set(c),
            Value::ZSet(c) => Heap::ZSet(c),
        };
        let apart = Apart {
            expire_at: expire_at.unwrap_or(NO_DEADLINE),
            key: key.into(),
            heap,
        };
        Entry::apart(apart, now_secs, LFU_INIT)
    }

    fn plain(key: &[u8], value: &[u8], deadline: Option<u64>, access: u32, freq: u8) -> Entry {
        let (block, len) = plain_block(key, value, deadline);
        Entry {
            block,
            access,
            freq,
            flags: if deadline.is_some() { DEADLINE } else { 0 },
            plain_len: u16::try_from(len).unwrap_or(u16::MAX),
        }
    }

    fn apart(apart: Apart, access: u32, freq: u8) -> Entry {
        Entry {
            block: apart_block(apart),
            access,
            freq,
            flags: APART,
            plain_len: u16::MAX,
        }
    }

    /// What the block is: a plain string's bytes or an `Apart`.
    fn repr(&self) -> Repr<'_> {
        if self.flags & APART != 0 {
            // SAFETY: an apart entry's block is a leaked `Box<Apart>` that
            // only this entry owns; `&self` lends it shared.
            return Repr::Apart(unsafe { self.block.cast::<Apart>().as_ref() });
        }
        let start = self.block.as_ptr().cast_const();
        if self.plain_len != u16::MAX {
            // SAFETY: a plain entry's block was made by `plain_block` (or
            // copied whole by `clone`, with its `plain_len`), is
            // `plain_len` bytes long and lives until the entry drops.
            return Repr::Plain(unsafe {
                std::slice::from_raw_parts(start, usize::from(self.plain_len))
            });
        }
        // SAFETY: as above, for a block of 64 KiB or more, whose length is
        // its own: it opens with its body's length in LEB128 (at most 10
        // bytes, inside the block since the body follows them) and is that
        // header plus the body long.
        unsafe {
            let mut body = 0usize;
            let mut header = 0;
            while header < 10 {
                let byte = *start.add(header);
                body |= usize::from(byte & 0x7f) << (7 * header);
                header += 1;
                if byte < 0x80 {
                    break;
                }
            }
            Repr::Plain(std::slice::from_raw_parts(start, header + body))
        }
    }

    fn apart_mut(&mut self) -> Option<&mut Apart> {
        if self.flags & APART == 0 {
            return None;
        }
        // SAFETY: as in `repr`, and `&mut self` makes the loan unique.
        Some(unsafe { self.block.cast::<Apart>().as_mut() })
    }

    /// Takes an apart entry's `Apart` back; a plain entry comes back as is.
    fn into_apart(self) -> Result<Box<Apart>, Entry> {
        if self.flags & APART == 0 {
            return Err(self);
        }
        let entry = ManuallyDrop::new(self);
        // SAFETY: the block is a leaked `Box<Apart>` owned by this entry,
        // which is never dropped, so the box gets exactly one owner back.
        Ok(unsafe { Box::from_raw(entry.block.cast::<Apart>().as_ptr()) })
    }

    /// Deadline, key and (for a plain string) value.
    fn parts(&self) -> (Option<u64>, &[u8], &[u8]) {
        match self.repr() {
            Repr::Plain(block) => plain_parts(block, self.flags & DEADLINE != 0),
            Repr::Apart(apart) => {
                let deadline = (apart.expire_at != NO_DEADLINE).then_some(apart.expire_at);
                (deadline, &apart.key, &[])
            }
        }
    }

    fn heap(&self) -> Option<&Heap> {
        match self.repr() {
            Repr::Plain(_) => None,
            Repr::Apart(apart) => Some(&apart.heap),
        }
    }

    fn heap_mut(&mut self) -> Option<&mut Heap> {
        self.apart_mut().map(|apart| &mut apart.heap)
    }

    pub fn key(&self) -> &[u8] {
        self.parts().1
    }

    pub fn value(&self) -> ValueRef<'_> {
        match self.heap() {
            None => ValueRef::Str(self.parts().2),
            Some(Heap::Raw(data)) => ValueRef::Str(data),
            Some(Heap::List(c)) => ValueRef::List(c),
            Some(Heap::Hash(c)) => ValueRef::Hash(c),
            Some(Heap::Set(c)) => ValueRef::Set(c),
            Some(Heap::ZSet(c)) => ValueRef::ZSet(c),
        }
    }

    /// The value, taken out of the entry.
    pub(super) fn into_value(self) -> Value {
        match self.into_apart() {
            Err(plain) => Value::Str(Bytes::copy_from_slice(plain.parts().2)),
            Ok(apart) => match apart.heap {
                Heap::Raw(data) => Value::Str(Bytes::from(data)),
                Heap::List(c) => Value::List(c),
                Heap::Hash(c) => Value::Hash(c),
                Heap::Set(c) => Value::Set(c),
                Heap::ZSet(c) => Value::ZSet(c),
            },
        }
    }

    /// The value when it is a collection.
    pub fn collection(&self) -> Option<&dyn Collection> {
        self.heap().and_then(Heap::collection)
    }

    pub(super) fn collection_mut(&mut self) -> Option<&mut dyn Collection> {
        self.heap_mut().and_then(Heap::collection_mut)
    }

    /// Absolute expiry in Unix milliseconds.
    pub fn expire_at(&self) -> Option<u64> {
        // Most keys have none, and the flags say so without a read of the
        // block (eviction checks every key it drops).
        if self.flags & (APART | DEADLINE) == 0 {
            return None;
        }
        self.parts().0
    }

    pub(super) fn set_expire_at(&mut self, expire_at: Option<u64>) {
        if let Some(apart) = self.apart_mut() {
            apart.expire_at = expire_at.unwrap_or(NO_DEADLINE);
            return;
        }
        let (old, key, value) = self.parts();
        if old != expire_at {
            *self = Entry::plain(key, value, expire_at, self.access, self.freq);
        }
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
        let (access, freq) = (self.access, self.freq);
        match self.into_apart() {
            Err(plain) => {
                let (deadline, _, value) = plain.parts();
                Entry::plain(key, value, deadline, access, freq)
            }
            Ok(mut apart) => {
                apart.key = key.into();
                Entry::apart(*apart, access, freq)
            }
        }
    }

    /// A copy as COPY makes it: a new object (fresh access information)
    /// with the same value, encoding and deadline.
    pub fn copy(&self, now_secs: u32) -> Entry {
        let mut copy = self.clone();
        copy.access = now_secs;
        copy.freq = LFU_INIT;
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
        match self.heap_mut()? {
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
        if self.flags & APART == 0 {
            let (deadline, key, value) = self.parts();
            let apart = Apart {
                expire_at: deadline.unwrap_or(NO_DEADLINE),
                key: key.into(),
                heap: Heap::Raw(value.to_vec()),
            };
            *self = Entry::apart(apart, self.access, self.freq);
        }
        match self.heap_mut() {
            Some(Heap::Raw(data)) => Some(data),
            _ => None,
        }
    }

    /// Bytes this entry occupies in memory: its fixed cost, its allocation,
    /// and a heap value's own.
    pub fn mem_size(&self) -> usize {
        if self.plain_len != u16::MAX {
            return ENTRY_OVERHEAD + alloc_size(usize::from(self.plain_len));
        }
        ENTRY_OVERHEAD
            + match self.repr() {
                Repr::Plain(block) => alloc_size(block.len()),
                Repr::Apart(apart) => {
                    alloc_size(std::mem::size_of::<Apart>())
                        + alloc_size(apart.key.len())
                        + match &apart.heap {
                            Heap::Raw(data) => alloc_size(data.capacity()),
                            heap => heap.collection().map_or(0, |c| c.common().bytes),
                        }
                }
            }
    }

    /// What `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self.heap() {
            Some(Heap::Raw(_)) => "raw",
            Some(Heap::List(c)) => c.encoding(),
            Some(Heap::Hash(c)) => c.encoding(),
            Some(Heap::Set(c)) => c.encoding(),
            Some(Heap::ZSet(c)) => c.encoding(),
            None => {
                let data = self.parts().2;
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

impl Clone for Entry {
    fn clone(&self) -> Entry {
        let block = match self.repr() {
            Repr::Plain(block) => NonNull::from(Box::leak(Box::<[u8]>::from(block))).cast(),
            Repr::Apart(apart) => apart_block(apart.clone()),
        };
        Entry { block, ..*self }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        match self.repr() {
            Repr::Plain(block) => {
                let whole = std::ptr::slice_from_raw_parts_mut(self.block.as_ptr(), block.len());
                // SAFETY: a plain block is a leaked `Box<[u8]>` of exactly
                // this length (`plain_block`, `clone`), owned by this entry
                // alone; the shared view above ends before it is freed.
                drop(unsafe { Box::from_raw(whole) });
            }
            Repr::Apart(_) => {
                // SAFETY: an apart block is a leaked `Box<Apart>` owned by
                // this entry alone (`into_apart` never lets the entry drop).
                drop(unsafe { Box::from_raw(self.block.cast::<Apart>().as_ptr()) });
            }
        }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value", &self.value())
            .field("expire_at", &self.expire_at())
            .field("access", &self.access)
            .field("freq", &self.freq)
            .finish()
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
    fn deadlines_come_and_go_without_touching_key_or_value() {
        for value in [&b""[..], b"v", &[b'x'; 300]] {
            let key = b"some:key";
            let mut entry = Entry::new(key, Value::Str(Bytes::copy_from_slice(value)), None, 9);
            let without = entry.mem_size();
            for deadline in [
                Some(1),
                Some(u64::MAX - 1),
                None,
                Some(1 << 40),
                Some(1 << 40),
            ] {
                entry.set_expire_at(deadline);
                assert_eq!(entry.expire_at(), deadline);
                assert_eq!(entry.key(), key);
                assert_eq!(entry.value(), ValueRef::Str(value));
                assert_eq!(entry.access(), 9, "the access clock survives a new block");
            }
            entry.set_expire_at(None);
            assert_eq!(entry.mem_size(), without);
            let copy = entry.clone();
            drop(entry);
            assert_eq!(copy.key(), key, "a clone owns its own block");
        }
    }

    #[test]
    fn a_plain_string_is_one_allocation_at_its_size_class() {
        let entry = Entry::new(
            &[b'k'; 16],
            Value::Str(Bytes::from(vec![b'v'; 100])),
            None,
            0,
        );
        // 1 + 1 + 16 + 100 = 118 bytes: jemalloc's 128-byte class.
        assert_eq!(entry.mem_size(), ENTRY_OVERHEAD + 128);
        let with_deadline = Entry::new(b"k", Value::Str(Bytes::from_static(b"v")), Some(5), 0);
        assert_eq!(with_deadline.mem_size(), ENTRY_OVERHEAD + 16);
        // Past what the entry notes of its block's length, the block says.
        for value_len in [65_530, 65_535, 70_000] {
            let value = Bytes::from(vec![b'v'; value_len]);
            let entry = Entry::new(b"k", Value::Str(value), None, 0);
            let body = 1 + 1 + value_len;
            let block = leb_len(body) + body;
            assert_eq!(
                entry.mem_size(),
                ENTRY_OVERHEAD + alloc_size(block),
                "{value_len}"
            );
        }
    }

    #[test]
    fn values_apart_keep_key_deadline_and_move_whole() {
        let list = Value::List(List::default());
        let mut entry = Entry::new(b"list", list, Some(42), 3);
        assert_eq!(entry.key(), b"list");
        assert_eq!(entry.expire_at(), Some(42));
        assert!(entry.collection().is_some());
        entry.set_expire_at(None);
        assert_eq!(entry.expire_at(), None);
        let moved = entry.rekey(b"other");
        assert_eq!(moved.key(), b"other");
        assert!(matches!(moved.value(), ValueRef::List(_)));
        assert!(matches!(moved.clone().into_value(), Value::List(_)));
        let plain = Entry::new(b"s", Value::Str(Bytes::from_static(b"abc")), Some(8), 0);
        match plain.rekey(b"t").into_value() {
            Value::Str(data) => assert_eq!(&data[..], b"abc"),
            other => panic!("a string came back as {other:?}"),
        }
    }

    #[test]
    fn entry_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }
}
