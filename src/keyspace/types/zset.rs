//! A sorted set: scores by member (O(1) ZSCORE, positions for random
//! picks) and members ordered by (score, member) as Redis orders them.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use indexmap::IndexMap;

use super::{
    alloc_size, Collection, Common, Hasher, Member, MAX_LISTPACK_ENTRIES, MAX_LISTPACK_VALUE,
};

/// A member's fixed cost: its map entry (hash, member, score) and share of
/// the index table, and its node share in the ordered tree (score, member).
const SLOT: usize =
    (8 + std::mem::size_of::<Member>() + 8 + 12) + (8 + std::mem::size_of::<Member>()) * 3 / 2;

/// A score with a total order. Scores are never NaN (commands refuse
/// them); -0 and 0 compare equal, as Redis compares them.
#[derive(Debug, Clone, Copy)]
pub struct Score(pub f64);

impl PartialEq for Score {
    fn eq(&self, other: &Score) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Score) -> Ordering {
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: IndexMap<Member, f64, Hasher>,
    order: BTreeSet<(Score, Member)>,
    big: bool,
    common: Common,
}

impl Collection for ZSet {
    fn common(&self) -> &Common {
        &self.common
    }
    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
    fn len(&self) -> usize {
        self.scores.len()
    }
}

fn cost(member: &[u8]) -> usize {
    SLOT + 2 * alloc_size(member.len())
}

impl ZSet {
    pub fn restore(members: Vec<(Member, f64)>, generation: u64) -> ZSet {
        let mut zset = ZSet::default();
        for (member, score) in members {
            if score.is_nan() {
                continue;
            }
            zset.note(&member);
            zset.common.bytes += cost(&member);
            zset.order.insert((Score(score), member.clone()));
            zset.scores.insert(member, score);
        }
        zset.common.generation = generation;
        zset.common.track = true;
        zset
    }

    fn note(&mut self, member: &[u8]) {
        if member.len() > MAX_LISTPACK_VALUE || self.scores.len() >= MAX_LISTPACK_ENTRIES {
            self.big = true;
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns the score it had. `score` must not be NaN.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let old = self.scores.get(member).copied();
        match old {
            Some(old) if Score(old) == Score(score) && old.to_bits() == score.to_bits() => {
                return Some(old);
            }
            Some(old) => {
                if let Some((_, kept)) = self.order.take(&(Score(old), Box::from(member))) {
                    self.order.insert((Score(score), kept));
                }
                if let Some(slot) = self.scores.get_mut(member) {
                    *slot = score;
                }
            }
            None => {
                self.note(member);
                self.common.bytes += cost(member);
                self.order.insert((Score(score), member.into()));
                self.scores.insert(member.into(), score);
            }
        }
        self.common.mark_member(member);
        old
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.scores.swap_remove(member)?;
        self.order.remove(&(Score(score), Box::from(member)));
        self.common.bytes -= cost(member);
        self.common.mark_member(member);
        Some(score)
    }

    /// Removes and returns the lowest (or highest) member.
    pub fn pop(&mut self, highest: bool) -> Option<(Member, f64)> {
        let (score, member) = if highest {
            self.order.pop_last()?
        } else {
            self.order.pop_first()?
        };
        self.scores.swap_remove(&member);
        self.common.bytes -= cost(&member);
        self.common.mark_member(&member);
        Some((member, score.0))
    }

    /// Members in (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        self.order.iter().map(|(s, m)| (&**m, s.0))
    }

    /// Members from the first whose score is at least (above, when
    /// `exclusive`) `min`, ascending.
    pub fn iter_from(&self, min: f64, exclusive: bool) -> impl Iterator<Item = (&[u8], f64)> {
        // (score, empty member) sorts before every member of that score.
        let start = if exclusive {
            (min < f64::INFINITY).then(|| (Score(min.next_up()), Member::default()))
        } else {
            Some((Score(min), Member::default()))
        };
        start
            .into_iter()
            .flat_map(move |start| self.order.range(start..))
            .map(|(s, m)| (&**m, s.0))
    }

    /// Members from the last whose score is at most (below, when
    /// `exclusive`) `max`, descending.
    pub fn iter_down_from(&self, max: f64, exclusive: bool) -> impl Iterator<Item = (&[u8], f64)> {
        let end = if exclusive {
            Bound::Excluded((Score(max), Member::default()))
        } else if max < f64::INFINITY {
            Bound::Excluded((Score(max.next_up()), Member::default()))
        } else {
            Bound::Unbounded
        };
        self.order
            .range((Bound::Unbounded, end))
            .rev()
            .map(|(s, m)| (&**m, s.0))
    }

    /// The member's 0-based position in ascending order (O(rank)).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(
            self.order
                .range(..(Score(score), Box::from(member)))
                .count(),
        )
    }

    pub fn get_index(&self, index: usize) -> Option<(&[u8], f64)> {
        self.scores.get_index(index).map(|(m, s)| (&**m, *s))
    }

    pub fn encoding(&self) -> &'static str {
        if self.big {
            "skiplist"
        } else {
            "listpack"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ranks_and_ranges() {
        let mut zset = ZSet::default();
        zset.insert(b"b", 2.0);
        zset.insert(b"a", 1.0);
        zset.insert(b"c", 2.0);
        zset.insert(b"d", 3.0);
        let members: Vec<&[u8]> = zset.iter().map(|(m, _)| m).collect();
        assert_eq!(members, [&b"a"[..], b"b", b"c", b"d"]);
        assert_eq!(zset.rank(b"c"), Some(2));
        let from: Vec<&[u8]> = zset.iter_from(2.0, true).map(|(m, _)| m).collect();
        assert_eq!(from, [&b"d"[..]]);
        let from: Vec<&[u8]> = zset.iter_from(2.0, false).map(|(m, _)| m).collect();
        assert_eq!(from, [&b"b"[..], b"c", b"d"]);
        let down: Vec<&[u8]> = zset.iter_down_from(2.0, false).map(|(m, _)| m).collect();
        assert_eq!(down, [&b"c"[..], b"b", b"a"]);
        let down: Vec<&[u8]> = zset.iter_down_from(2.0, true).map(|(m, _)| m).collect();
        assert_eq!(down, [&b"a"[..]]);
        assert_eq!(zset.insert(b"a", 5.0), Some(1.0));
        assert_eq!(zset.pop(true), Some((Box::from(&b"a"[..]), 5.0)));
        assert_eq!(zset.pop(false), Some((Box::from(&b"b"[..]), 2.0)));
        assert_eq!(zset.common.bytes, 2 * cost(b"c"));
        assert_eq!(zset.remove(b"c"), Some(2.0));
        assert_eq!(zset.len(), 1);
    }
}
