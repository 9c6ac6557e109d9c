//! A list: a ring buffer of elements, and the absolute position of its
//! first one, so each element keeps one position in the warm tier while the
//! list grows and shrinks at both ends.

use std::collections::VecDeque;

use super::{alloc_size, Collection, Common, Member};

/// A list element's fixed cost: its slot in the ring buffer.
const SLOT: usize = std::mem::size_of::<Member>();
/// Where an empty list starts, so it can grow 2^63 elements either way.
pub const ORIGIN: u64 = 1 << 63;

#[derive(Debug, Clone)]
pub struct List {
    items: VecDeque<Member>,
    /// Absolute position of `items[0]`.
    head: u64,
    common: Common,
}

impl Default for List {
    fn default() -> List {
        List {
            items: VecDeque::new(),
            head: ORIGIN,
            common: Common::default(),
        }
    }
}

impl Collection for List {
    fn common(&self) -> &Common {
        &self.common
    }
    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
    fn len(&self) -> usize {
        self.items.len()
    }
}

fn cost(item: &[u8]) -> usize {
    SLOT + alloc_size(item.len())
}

impl List {
    /// A list read back from the warm tier: its elements in position order
    /// from `head`.
    pub fn restore(head: u64, items: VecDeque<Member>, generation: u64) -> List {
        let bytes = items.iter().map(|item| cost(item)).sum();
        List {
            items,
            head,
            common: Common {
                generation,
                track: true,
                bytes,
                ..Common::default()
            },
        }
    }

    pub fn head(&self) -> u64 {
        self.head
    }

    /// The element at absolute position `position`, if the list has one there.
    pub fn at_position(&self, position: u64) -> Option<&[u8]> {
        let offset = position.checked_sub(self.head)?;
        self.items.get(usize::try_from(offset).ok()?).map(|m| &**m)
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.items.get(index).map(|m| &**m)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(|m| &**m)
    }

    /// Elements `start..=stop` (already clamped by the caller).
    pub fn range(
        &self,
        start: usize,
        stop: usize,
    ) -> impl DoubleEndedIterator<Item = &[u8]> + Clone {
        self.items.range(start..=stop).map(|m| &**m)
    }

    pub fn push_back(&mut self, item: &[u8]) {
        let position = self.head + self.items.len() as u64;
        self.common.bytes += cost(item);
        self.items.push_back(item.into());
        self.common.mark_range(position, position + 1);
    }

    pub fn push_front(&mut self, item: &[u8]) {
        self.head -= 1;
        self.common.bytes += cost(item);
        self.items.push_front(item.into());
        self.common.mark_range(self.head, self.head + 1);
    }

    pub fn pop_front(&mut self) -> Option<Member> {
        let item = self.items.pop_front()?;
        self.common.bytes -= cost(&item);
        self.common.mark_range(self.head, self.head + 1);
        self.head += 1;
        Some(item)
    }

    pub fn pop_back(&mut self) -> Option<Member> {
        let item = self.items.pop_back()?;
        self.common.bytes -= cost(&item);
        let position = self.head + self.items.len() as u64;
        self.common.mark_range(position, position + 1);
        Some(item)
    }

    /// Replaces the element at `index` (LSET); false when out of range.
    pub fn set(&mut self, index: usize, item: &[u8]) -> bool {
        let Some(slot) = self.items.get_mut(index) else {
            return false;
        };
        self.common.bytes = self.common.bytes - cost(slot) + cost(item);
        *slot = item.into();
        let position = self.head + index as u64;
        self.common.mark_range(position, position + 1);
        true
    }

    /// Inserts before `index` (LINSERT). The shorter side moves, so the
    /// positions rewritten in the warm tier are at most half the list.
    pub fn insert(&mut self, index: usize, item: &[u8]) {
        let index = index.min(self.items.len());
        self.common.bytes += cost(item);
        if index < self.items.len() / 2 {
            self.head -= 1;
            self.common
                .mark_range(self.head, self.head + index as u64 + 1);
        } else {
            let len = self.items.len() as u64;
            self.common
                .mark_range(self.head + index as u64, self.head + len + 1);
        }
        self.items.insert(index, item.into());
    }

    /// Removes the element at `index` (LREM), moving the shorter side.
    pub fn remove(&mut self, index: usize) -> Option<Member> {
        let len = self.items.len() as u64;
        let item = self.items.remove(index)?;
        self.common.bytes -= cost(&item);
        if index < self.items.len() / 2 {
            self.common
                .mark_range(self.head, self.head + index as u64 + 1);
            self.head += 1;
        } else {
            self.common
                .mark_range(self.head + index as u64, self.head + len);
        }
        Some(item)
    }

    /// Keeps only elements `start..=stop`; an empty range (start > stop)
    /// empties the list (LTRIM).
    pub fn retain_range(&mut self, start: usize, stop: usize) {
        let len = self.items.len();
        if start > stop || start >= len {
            while self.pop_back().is_some() {}
            return;
        }
        let stop = stop.min(len - 1);
        for _ in stop + 1..len {
            self.pop_back();
        }
        for _ in 0..start {
            self.pop_front();
        }
    }

    /// Removes every element for which `remove` says so, scanning from the
    /// head (or the tail when `from_tail`), at most `limit` of them (0: no
    /// limit); returns how many went (LREM). One pass, O(n).
    pub fn remove_matching(
        &mut self,
        mut remove: impl FnMut(&[u8]) -> bool,
        limit: usize,
        from_tail: bool,
    ) -> usize {
        let len = self.items.len();
        let mut doomed = vec![false; len];
        let mut count = 0;
        let order: Box<dyn Iterator<Item = usize>> = if from_tail {
            Box::new((0..len).rev())
        } else {
            Box::new(0..len)
        };
        for index in order {
            if limit != 0 && count == limit {
                break;
            }
            if remove(&self.items[index]) {
                doomed[index] = true;
                count += 1;
            }
        }
        if count == 0 {
            return 0;
        }
        // Compact towards the head; every position from the first removed
        // one to the old tail changes.
        let first = doomed.iter().position(|d| *d).unwrap_or(len);
        let old = std::mem::take(&mut self.items);
        let mut kept = VecDeque::with_capacity(len - count);
        for (item, gone) in old.into_iter().zip(doomed) {
            if gone {
                self.common.bytes -= cost(&item);
            } else {
                kept.push_back(item);
            }
        }
        self.items = kept;
        self.common
            .mark_range(self.head + first as u64, self.head + len as u64);
        count
    }

    /// What `OBJECT ENCODING` reports (Redis 7.0 keeps every list in a quicklist).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Elements to write or delete for the recorded changes: `(position,
    /// element now there or None)`.
    pub fn changed_positions<'a>(
        &'a self,
        ranges: &'a [(u64, u64)],
    ) -> impl Iterator<Item = (u64, Option<&'a [u8]>)> + 'a {
        ranges
            .iter()
            .flat_map(|&(from, to)| from..to)
            .map(move |position| (position, self.at_position(position)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked() -> List {
        let mut list = List::default();
        list.common.adopt(1, true);
        list.common.take_dirty();
        list
    }

    fn contents(list: &List) -> Vec<&[u8]> {
        list.iter().collect()
    }

    #[test]
    fn pushes_and_pops_mark_one_position_each() {
        let mut list = tracked();
        list.push_back(b"b");
        list.push_front(b"a");
        list.push_back(b"c");
        assert_eq!(contents(&list), [&b"a"[..], b"b", b"c"]);
        let dirty = list.common.take_dirty().unwrap();
        assert_eq!(dirty.ranges, [(ORIGIN - 1, ORIGIN + 2)]);
        assert_eq!(list.pop_front().as_deref(), Some(&b"a"[..]));
        let dirty = list.common.take_dirty().unwrap();
        assert_eq!(dirty.ranges, [(ORIGIN - 1, ORIGIN)]);
        assert_eq!(list.at_position(ORIGIN), Some(&b"b"[..]));
    }

    #[test]
    fn insert_and_remove_move_the_shorter_side() {
        let mut list = tracked();
        for item in [b"a", b"b", b"c", b"d", b"e", b"f"] {
            list.push_back(item);
        }
        list.common.take_dirty();
        list.insert(1, b"x");
        assert_eq!(
            contents(&list),
            [&b"a"[..], b"x", b"b", b"c", b"d", b"e", b"f"]
        );
        assert_eq!(
            list.common.take_dirty().unwrap().ranges,
            [(ORIGIN - 1, ORIGIN + 1)]
        );
        list.remove(5);
        assert_eq!(contents(&list), [&b"a"[..], b"x", b"b", b"c", b"d", b"f"]);
        assert_eq!(
            list.common.take_dirty().unwrap().ranges,
            [(ORIGIN + 4, ORIGIN + 6)]
        );
        let removed = list.remove_matching(|item| item == b"x" || item == b"d", 0, false);
        assert_eq!(removed, 2);
        assert_eq!(contents(&list), [&b"a"[..], b"b", b"c", b"f"]);
        let bytes: usize = list.iter().map(cost).sum();
        assert_eq!(list.common.bytes, bytes);
    }

    #[test]
    fn trim_keeps_the_range() {
        let mut list = tracked();
        for item in [b"a", b"b", b"c", b"d"] {
            list.push_back(item);
        }
        list.retain_range(1, 2);
        assert_eq!(contents(&list), [&b"b"[..], b"c"]);
        list.retain_range(5, 1);
        assert!(list.is_empty());
        assert_eq!(list.common.bytes, 0);
    }
}
