//! Collections as the hot tier holds them: decoded, whole, with what a
//! command changed since the last write to the warm tier. The transaction
//! that changed a collection writes only those elements (its [`Dirty`]
//! set) and the collection's metadata, so a push onto a list of a million
//! elements writes what a push onto an empty one writes.

mod hash;
mod list;
mod set;
mod zset;

pub use hash::Hash;
pub use list::{List, ORIGIN as LIST_ORIGIN};
pub use set::Set;
pub use zset::{LexBound, LexRange, Score, ScoreRange, ZSet};

/// A list element, hash field or value, set or sorted-set member: an exact
/// size allocation (16 bytes where it is kept, against 32 for `Bytes`).
pub type Member = Box<[u8]>;

pub(crate) type Hasher = foldhash::fast::RandomState;

/// What the allocator hands out for `len` bytes: jemalloc's size class (the
/// binary's allocator), so the figures `maxmemory` compares count the
/// memory the process really uses. 8 bytes, then 16-byte steps up to 128,
/// then four classes per doubling.
pub(crate) fn alloc_size(len: usize) -> usize {
    match len {
        0 => 0,
        1..=8 => 8,
        9..=128 => len.next_multiple_of(16),
        _ => {
            let spacing = 1 << ((len - 1).ilog2() - 2);
            len.next_multiple_of(spacing)
        }
    }
}

/// What changed in a collection since the transaction that owns it last
/// wrote it to the warm tier.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dirty {
    /// Every element must be written: a new collection, a copy, or one
    /// that moved to another database's tree.
    pub all: bool,
    /// Hash fields, set or sorted-set members whose state changed (present
    /// now: write it; absent now: delete it).
    pub members: Vec<Member>,
    /// Lists: absolute positions `[from, to)` whose element changed.
    pub ranges: Vec<(u64, u64)>,
}

/// What every collection keeps beside its elements.
#[derive(Debug, Default, Clone)]
pub struct Common {
    /// Names the collection's element records in the warm tier; 0 until
    /// the keyspace stores the collection and gives it one.
    pub generation: u64,
    /// Changes are recorded only when a warm tier will write them.
    pub track: bool,
    /// Bytes the elements take in memory, kept up to date by every change
    /// so measuring a collection is O(1).
    pub bytes: usize,
    dirty: Option<Box<Dirty>>,
}

impl Common {
    fn dirty(&mut self) -> Option<&mut Dirty> {
        if !self.track {
            return None;
        }
        Some(self.dirty.get_or_insert_with(Default::default))
    }

    pub(crate) fn mark_member(&mut self, member: &[u8]) {
        if let Some(dirty) = self.dirty() {
            if !dirty.all {
                dirty.members.push(member.into());
            }
        }
    }

    pub(crate) fn mark_range(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        if let Some(dirty) = self.dirty() {
            if dirty.all {
                return;
            }
            // Pushes and pops at one end extend the last range.
            if let Some(last) = dirty.ranges.last_mut() {
                if from <= last.1 && to >= last.0 {
                    *last = (last.0.min(from), last.1.max(to));
                    return;
                }
            }
            dirty.ranges.push((from, to));
        }
    }

    pub(crate) fn mark_all(&mut self) {
        if let Some(dirty) = self.dirty() {
            *dirty = Dirty {
                all: true,
                ..Dirty::default()
            };
        }
    }

    /// The changes recorded since the last call.
    pub fn take_dirty(&mut self) -> Option<Box<Dirty>> {
        self.dirty.take()
    }

    /// Adopted by the keyspace: `generation` names its elements from now
    /// on; with `track`, every element is to be written.
    pub fn adopt(&mut self, generation: u64, track: bool) {
        self.generation = generation;
        self.track = track;
        self.dirty = None;
        self.mark_all();
    }
}

/// The collection types' shared verbs, for the keyspace.
pub trait Collection {
    fn common(&self) -> &Common;
    fn common_mut(&mut self) -> &mut Common;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Redis 7.0's encoding thresholds (`*-max-listpack-entries`, `-value`,
/// `set-max-intset-entries`), the defaults of its configuration.
pub const MAX_LISTPACK_ENTRIES: usize = 128;
pub const MAX_LISTPACK_VALUE: usize = 64;
pub const MAX_INTSET_ENTRIES: usize = 512;

/// The encoding thresholds in force: the defaults above until CONFIG SET
/// changes them. They decide only the encoding a collection reports
/// (OBJECT ENCODING, and the orders Redis's encodings give), never what
/// it holds, so one set per process, as Redis has, is enough.
pub mod limits {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    static HASH_ENTRIES: AtomicUsize = AtomicUsize::new(super::hash::MAX_LISTPACK_ENTRIES);
    static HASH_VALUE: AtomicUsize = AtomicUsize::new(super::MAX_LISTPACK_VALUE);
    static ZSET_ENTRIES: AtomicUsize = AtomicUsize::new(super::MAX_LISTPACK_ENTRIES);
    static ZSET_VALUE: AtomicUsize = AtomicUsize::new(super::MAX_LISTPACK_VALUE);
    static INTSET_ENTRIES: AtomicUsize = AtomicUsize::new(super::MAX_INTSET_ENTRIES);

    pub fn hash_entries() -> usize {
        HASH_ENTRIES.load(Relaxed)
    }
    pub fn hash_value() -> usize {
        HASH_VALUE.load(Relaxed)
    }
    pub fn zset_entries() -> usize {
        ZSET_ENTRIES.load(Relaxed)
    }
    pub fn zset_value() -> usize {
        ZSET_VALUE.load(Relaxed)
    }
    pub fn intset_entries() -> usize {
        INTSET_ENTRIES.load(Relaxed)
    }

    /// Sets the threshold a configuration parameter names (either of
    /// Redis's names, `listpack` or the older `ziplist`); false for a
    /// parameter that is not one.
    pub fn set(name: &str, value: usize) -> bool {
        let slot = match name {
            "hash-max-listpack-entries" | "hash-max-ziplist-entries" => &HASH_ENTRIES,
            "hash-max-listpack-value" | "hash-max-ziplist-value" => &HASH_VALUE,
            "zset-max-listpack-entries" | "zset-max-ziplist-entries" => &ZSET_ENTRIES,
            "zset-max-listpack-value" | "zset-max-ziplist-value" => &ZSET_VALUE,
            "set-max-intset-entries" => &INTSET_ENTRIES,
            _ => return false,
        };
        slot.store(value, Relaxed);
        true
    }
}

/// An element record to write (`Some`) or delete (`None`) under its sled key.
pub type ElementWrite = (Vec<u8>, Option<Vec<u8>>);

/// How a collection is stored in the warm tier.
pub trait Stored: Collection {
    const KIND: Kind;

    /// The metadata its key record holds.
    fn meta(&self) -> CollectionMeta {
        let mut meta = CollectionMeta::new(Self::KIND, self.common().generation);
        meta.len = self.len() as u64;
        meta
    }

    /// The element records the recorded changes call for; clears them.
    fn drain_changes(&mut self, out: &mut Vec<ElementWrite>);
}

use super::warm::collections::{
    element_record, encode_score, list_index_key, member_key, TAG_HASH_FIELD, TAG_SET_MEMBER,
    TAG_ZSET_MEMBER,
};
use super::warm::{CollectionMeta, Kind};

impl Stored for List {
    const KIND: Kind = Kind::List;

    fn meta(&self) -> CollectionMeta {
        let mut meta = CollectionMeta::new(Kind::List, self.common().generation);
        meta.len = self.len() as u64;
        meta.list_head = self.head();
        meta.list_tail = self.head() + meta.len;
        meta
    }

    fn drain_changes(&mut self, out: &mut Vec<ElementWrite>) {
        let Some(dirty) = self.common_mut().take_dirty() else {
            return;
        };
        let generation = self.common().generation;
        let write = |position: u64, item: Option<&[u8]>| {
            let key = list_index_key(generation, position);
            let record = item.map(|item| element_record(&key, item));
            (key, record)
        };
        if dirty.all {
            let head = self.head();
            out.extend(
                self.iter()
                    .enumerate()
                    .map(|(i, item)| write(head + i as u64, Some(item))),
            );
        } else {
            out.extend(
                self.changed_positions(&dirty.ranges)
                    .map(|(position, item)| write(position, item)),
            );
        }
    }
}

/// The records for `dirty`'s members of a keyed collection: `payload` gives
/// a member's stored payload, `None` when it is gone.
fn keyed_changes<'a>(
    generation: u64,
    tag: u8,
    dirty: &Dirty,
    every: impl Iterator<Item = &'a [u8]>,
    payload: impl Fn(&[u8]) -> Option<Vec<u8>>,
    out: &mut Vec<ElementWrite>,
) {
    let mut write = |member: &[u8]| {
        let key = member_key(generation, tag, member);
        let record = payload(member).map(|p| element_record(&key, &p));
        out.push((key, record));
    };
    if dirty.all {
        every.for_each(&mut write);
    } else {
        dirty.members.iter().for_each(|member| write(member));
    }
}

impl Stored for Hash {
    const KIND: Kind = Kind::Hash;

    fn drain_changes(&mut self, out: &mut Vec<ElementWrite>) {
        let Some(dirty) = self.common_mut().take_dirty() else {
            return;
        };
        let every = self.iter().map(|(field, _)| field);
        keyed_changes(
            self.common().generation,
            TAG_HASH_FIELD,
            &dirty,
            every,
            |field| self.get(field).map(<[u8]>::to_vec),
            out,
        );
    }
}

impl Stored for Set {
    const KIND: Kind = Kind::Set;

    fn drain_changes(&mut self, out: &mut Vec<ElementWrite>) {
        let Some(dirty) = self.common_mut().take_dirty() else {
            return;
        };
        keyed_changes(
            self.common().generation,
            TAG_SET_MEMBER,
            &dirty,
            self.iter(),
            |member| self.contains(member).then(Vec::new),
            out,
        );
    }
}

impl Stored for ZSet {
    const KIND: Kind = Kind::ZSet;

    fn drain_changes(&mut self, out: &mut Vec<ElementWrite>) {
        let Some(dirty) = self.common_mut().take_dirty() else {
            return;
        };
        keyed_changes(
            self.common().generation,
            TAG_ZSET_MEMBER,
            &dirty,
            self.iter().map(|(member, _)| member),
            |member| self.score(member).map(|s| encode_score(s).to_vec()),
            out,
        );
    }
}

/// A collection read back from the warm tier; `None` (logged) when its
/// elements disagree with its metadata in a way that cannot be repaired
/// (a list with a hole: its positions would no longer match sled's).
pub fn restore(
    meta: &CollectionMeta,
    elements: Vec<crate::keyspace::warm::Element>,
) -> Option<super::Value> {
    use super::warm::collections::decode_score;
    use super::Value;
    let generation = meta.generation;
    let tag = meta.kind.element_tag();
    let elements = elements.into_iter().filter(|e| e.tag == tag);
    let value = match meta.kind {
        Kind::List => {
            let mut items = std::collections::VecDeque::new();
            let mut expected = meta.list_head;
            for element in elements {
                let position = <[u8; 8]>::try_from(element.suffix.as_ref())
                    .ok()
                    .map(u64::from_be_bytes);
                if position != Some(expected) {
                    tracing::warn!("warm tier: a list's element positions have a gap; the list reads as missing");
                    return None;
                }
                expected += 1;
                items.push_back(Member::from(element.payload.as_ref()));
            }
            if expected != meta.list_tail {
                tracing::warn!("warm tier: a list is shorter than its metadata says; the list reads as missing");
                return None;
            }
            Value::List(List::restore(meta.list_head, items, generation))
        }
        Kind::Hash => Value::Hash(Hash::restore(
            elements
                .map(|e| {
                    (
                        Member::from(e.suffix.as_ref()),
                        Member::from(e.payload.as_ref()),
                    )
                })
                .collect(),
            generation,
        )),
        Kind::Set => Value::Set(Set::restore(
            elements.map(|e| Member::from(e.suffix.as_ref())).collect(),
            generation,
        )),
        Kind::ZSet => Value::ZSet(ZSet::restore(
            elements
                .filter_map(|e| {
                    Some((
                        Member::from(e.suffix.as_ref()),
                        decode_score(&e.payload).ok()?,
                    ))
                })
                .collect(),
            generation,
        )),
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::alloc_size;

    #[test]
    fn allocations_are_counted_at_jemallocs_size_classes() {
        let classes: Vec<usize> = [0, 1, 8, 9, 16, 17, 117, 128, 129, 160, 161, 256, 257, 4097]
            .iter()
            .map(|&len| alloc_size(len))
            .collect();
        assert_eq!(
            classes,
            [0, 8, 8, 16, 16, 32, 128, 128, 160, 160, 192, 256, 320, 5120]
        );
    }
}
