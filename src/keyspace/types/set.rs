//! A set: members with O(1) lookup and O(1) access by position (SPOP and
//! SRANDMEMBER pick positions).

use indexmap::IndexSet;

use super::{alloc_size, limits, Collection, Common, Hasher, Member};

/// A member's fixed cost: its entry (hash, member) and its share of the
/// index table.
const SLOT: usize = 8 + std::mem::size_of::<Member>() + 12;

#[derive(Debug, Clone, Default)]
pub struct Set {
    members: IndexSet<Member, Hasher>,
    /// Outgrew Redis's intset (a non-integer or too many members): it
    /// stays `hashtable`, as Redis never converts back.
    big: bool,
    common: Common,
}

impl Collection for Set {
    fn common(&self) -> &Common {
        &self.common
    }
    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
    fn len(&self) -> usize {
        self.members.len()
    }
}

fn cost(member: &[u8]) -> usize {
    SLOT + alloc_size(member.len())
}

/// Whether Redis would keep `member` in an intset: a canonical 64-bit integer.
fn is_intset_member(member: &[u8]) -> bool {
    member.len() <= 20 && crate::protocol::parse_i64(member).is_some()
}

impl Set {
    pub fn restore(members: Vec<Member>, generation: u64) -> Set {
        let mut set = Set::default();
        for member in members {
            set.common.bytes += cost(&member);
            set.note(&member);
            set.members.insert(member);
        }
        set.common.generation = generation;
        set.common.track = true;
        set
    }

    fn note(&mut self, member: &[u8]) {
        if !self.big
            && (self.members.len() >= limits::intset_entries() || !is_intset_member(member))
        {
            self.big = true;
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    /// Adds `member`; true when it is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        if self.members.contains(member) {
            return false;
        }
        self.note(member);
        self.common.bytes += cost(member);
        self.common.mark_member(member);
        self.members.insert(member.into());
        true
    }

    /// Removes `member`; true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        if self.members.swap_remove(member) {
            self.common.bytes -= cost(member);
            self.common.mark_member(member);
            true
        } else {
            false
        }
    }

    /// Removes and returns the member at `index` (SPOP).
    pub fn remove_index(&mut self, index: usize) -> Option<Member> {
        let member = self.members.swap_remove_index(index)?;
        self.common.bytes -= cost(&member);
        self.common.mark_member(&member);
        Some(member)
    }

    pub fn get_index(&self, index: usize) -> Option<&[u8]> {
        self.members.get_index(index).map(|m| &**m)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.members.iter().map(|m| &**m)
    }

    /// Takes the encoding a set built afresh from these members would have:
    /// SPOP rebuilds the set when it keeps only a few members, and Redis's
    /// new set is an intset again when they are all integers.
    pub fn reencode(&mut self) {
        self.big = self.members.len() > limits::intset_entries()
            || !self.members.iter().all(|m| is_intset_member(m));
    }

    /// Reports `hashtable` from now on, whatever the members: the set Redis
    /// builds for SDIFFSTORE holds every member of the first set for a while.
    pub fn convert_to_hashtable(&mut self) {
        self.big = true;
    }

    pub fn encoding(&self) -> &'static str {
        if self.big {
            "hashtable"
        } else {
            "intset"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_bytes_and_encoding() {
        let mut set = Set::default();
        assert!(set.insert(b"1"));
        assert!(!set.insert(b"1"));
        assert!(set.insert(b"2"));
        assert_eq!(set.encoding(), "intset");
        assert!(set.insert(b"x"));
        assert_eq!(set.encoding(), "hashtable");
        assert!(set.remove(b"x"));
        assert_eq!(set.encoding(), "hashtable");
        assert_eq!(set.common.bytes, cost(b"1") + cost(b"2"));
        let popped = set.remove_index(0).unwrap();
        assert!(!set.contains(&popped));
        assert_eq!(set.len(), 1);
        set.reencode();
        assert_eq!(set.encoding(), "intset");
        set.insert(b"-0");
        set.reencode();
        assert_eq!(set.encoding(), "hashtable");
        set.remove(b"-0");
        set.reencode();
        assert_eq!(set.encoding(), "intset");
        set.convert_to_hashtable();
        assert_eq!(set.encoding(), "hashtable");
    }

    #[test]
    fn intset_up_to_its_limit() {
        let mut set = Set::default();
        for i in 0..super::super::MAX_INTSET_ENTRIES {
            set.insert(i.to_string().as_bytes());
        }
        assert_eq!(set.encoding(), "intset");
        set.insert(b"0");
        assert_eq!(set.encoding(), "intset");
        set.insert(b"-1");
        assert_eq!(set.encoding(), "hashtable");
        let restored = Set::restore(set.iter().map(Member::from).collect(), 1);
        assert_eq!(restored.encoding(), "hashtable");
    }
}
