//! A sorted set: scores by member (O(1) ZSCORE, positions for random
//! picks) and members ordered by (score, member) as Redis orders them.
//! Ranges by score and by member (lex) start where Redis's start and run
//! open-ended, so commands apply a LIMIT offset before the far end's check
//! exactly as Redis does.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use indexmap::IndexMap;

use super::{alloc_size, limits, Collection, Common, Hasher, Member};

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

/// A score range as ZRANGEBYSCORE takes it: `(` makes an end exclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub min_ex: bool,
    pub max_ex: bool,
}

impl ScoreRange {
    pub fn gte_min(&self, score: f64) -> bool {
        if self.min_ex {
            score > self.min
        } else {
            score >= self.min
        }
    }

    pub fn lte_max(&self, score: f64) -> bool {
        if self.max_ex {
            score < self.max
        } else {
            score <= self.max
        }
    }

    /// Ranges no score can be in (Redis's `zslIsInRange` first test).
    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.min_ex || self.max_ex))
    }
}

/// One end of a lex range: `-`, `+`, `[member` or `(member`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LexBound<'a> {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    Inclusive(&'a [u8]),
    Exclusive(&'a [u8]),
}

impl LexBound<'_> {
    /// `-` and `+` count as exclusive, as Redis parses them.
    fn exclusive(&self) -> bool {
        !matches!(self, LexBound::Inclusive(_))
    }

    /// Where `member` lies against this bound (Redis's `sdscmplex`).
    fn compare(&self, member: &[u8]) -> Ordering {
        match self {
            LexBound::Min => Ordering::Greater,
            LexBound::Max => Ordering::Less,
            LexBound::Inclusive(bound) | LexBound::Exclusive(bound) => member.cmp(bound),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LexRange<'a> {
    pub min: LexBound<'a>,
    pub max: LexBound<'a>,
}

impl LexRange<'_> {
    pub fn gte_min(&self, member: &[u8]) -> bool {
        let order = self.min.compare(member);
        if self.min.exclusive() {
            order == Ordering::Greater
        } else {
            order != Ordering::Less
        }
    }

    pub fn lte_max(&self, member: &[u8]) -> bool {
        let order = self.max.compare(member);
        if self.max.exclusive() {
            order == Ordering::Less
        } else {
            order != Ordering::Greater
        }
    }

    /// Ranges no member can be in: min above max, or equal with an
    /// exclusive end (so `- -` and `+ +` are empty, as in Redis).
    pub fn is_empty(&self) -> bool {
        use LexBound::*;
        let order = match (self.min, self.max) {
            (Min, Min) | (Max, Max) => Ordering::Equal,
            (Min, _) | (_, Max) => Ordering::Less,
            (Max, _) | (_, Min) => Ordering::Greater,
            (Inclusive(a) | Exclusive(a), Inclusive(b) | Exclusive(b)) => a.cmp(b),
        };
        order == Ordering::Greater
            || (order == Ordering::Equal && (self.min.exclusive() || self.max.exclusive()))
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

    /// An empty sorted set in Redis's skiplist encoding from the start, as
    /// Redis creates a result it knows to be large (it then keeps -0).
    pub fn skiplist() -> ZSet {
        ZSet {
            big: true,
            ..ZSet::default()
        }
    }

    /// A result built whole (ZUNIONSTORE and friends): Redis builds it as
    /// a skiplist and converts it to a listpack when small enough.
    pub fn from_members<'a>(members: impl IntoIterator<Item = (&'a [u8], f64)> + Clone) -> ZSet {
        let (mut count, mut longest) = (0, 0);
        for (member, _) in members.clone() {
            count += 1;
            longest = longest.max(member.len());
        }
        let mut zset = if count > limits::zset_entries() || longest > limits::zset_value() {
            ZSet::skiplist()
        } else {
            ZSet::default()
        };
        for (member, score) in members {
            zset.insert(member, score);
        }
        zset
    }

    fn note(&mut self, member: &[u8]) {
        if member.len() > limits::zset_value() || self.scores.len() >= limits::zset_entries() {
            self.big = true;
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns the score it had. `score` must not be NaN.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let old = self.scores.get(member).copied();
        if old.is_none() {
            self.note(member);
        }
        // Redis 7.0's listpack stores an integral score as an integer, so a
        // small sorted set keeps -0 as 0; its skiplist keeps the sign.
        let score = if score == 0.0 && !self.big {
            0.0
        } else {
            score
        };
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

    /// Members from the first in `range` (ascending), or from the last in
    /// it (`reverse`), on to the end of the set: the caller stops at the
    /// range's far end. Empty when that first member is out of range, as
    /// Redis's `zslFirstInRange`/`zslLastInRange`.
    pub fn score_start<'s>(
        &'s self,
        range: &ScoreRange,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = (&'s [u8], f64)> + 's> {
        if range.is_empty() {
            return Box::new(std::iter::empty());
        }
        if reverse {
            let mut it = self.iter_down_from(range.max, range.max_ex).peekable();
            match it.peek() {
                Some(&(_, score)) if range.gte_min(score) => Box::new(it),
                _ => Box::new(std::iter::empty()),
            }
        } else {
            let mut it = self.iter_from(range.min, range.min_ex).peekable();
            match it.peek() {
                Some(&(_, score)) if range.lte_max(score) => Box::new(it),
                _ => Box::new(std::iter::empty()),
            }
        }
    }

    /// As [`ZSet::score_start`] for a range of members. Redis defines lex
    /// ranges for members of one score only; when every score is equal the
    /// start is found in O(log n), otherwise members are walked in order as
    /// Redis's listpack walks them (its skiplist's answer then depends on
    /// its random levels).
    pub fn lex_start<'s>(
        &'s self,
        range: &LexRange<'s>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = (&'s [u8], f64)> + 's> {
        let range = *range;
        let none =
            || -> Box<dyn Iterator<Item = (&'s [u8], f64)> + 's> { Box::new(std::iter::empty()) };
        let (Some((first_score, first)), Some((last_score, last))) =
            (self.order.first(), self.order.last())
        else {
            return none();
        };
        if range.is_empty() || !range.gte_min(last) || !range.lte_max(first) {
            return none();
        }
        let uniform = first_score == last_score;
        let at = |member: &[u8]| (*first_score, Member::from(member));
        if reverse {
            let it: Box<dyn Iterator<Item = (&'s [u8], f64)> + 's> = if uniform {
                let end = match range.max {
                    LexBound::Min => return none(),
                    LexBound::Max => Bound::Unbounded,
                    LexBound::Inclusive(m) => Bound::Included(at(m)),
                    LexBound::Exclusive(m) => Bound::Excluded(at(m)),
                };
                Box::new(
                    self.order
                        .range((Bound::Unbounded, end))
                        .rev()
                        .map(|(s, m)| (&**m, s.0)),
                )
            } else {
                Box::new(
                    self.iter()
                        .rev()
                        .skip_while(move |(m, _)| !range.lte_max(m)),
                )
            };
            let mut it = it.peekable();
            match it.peek() {
                Some(&(member, _)) if range.gte_min(member) => Box::new(it),
                _ => none(),
            }
        } else {
            let it: Box<dyn Iterator<Item = (&'s [u8], f64)> + 's> = if uniform {
                let start = match range.min {
                    LexBound::Max => return none(),
                    LexBound::Min => Bound::Unbounded,
                    LexBound::Inclusive(m) => Bound::Included(at(m)),
                    LexBound::Exclusive(m) => Bound::Excluded(at(m)),
                };
                Box::new(
                    self.order
                        .range((start, Bound::Unbounded))
                        .map(|(s, m)| (&**m, s.0)),
                )
            } else {
                Box::new(self.iter().skip_while(move |(m, _)| !range.gte_min(m)))
            };
            let mut it = it.peekable();
            match it.peek() {
                Some(&(member, _)) if range.lte_max(member) => Box::new(it),
                _ => none(),
            }
        }
    }

    /// Members with a score in `range` (O(log n + matches)).
    pub fn count_in_scores(&self, range: &ScoreRange) -> usize {
        self.score_start(range, false)
            .take_while(|&(_, score)| range.lte_max(score))
            .count()
    }

    /// Members in the lex `range`.
    pub fn count_in_lex(&self, range: &LexRange<'_>) -> usize {
        self.lex_start(range, false)
            .take_while(|&(member, _)| range.lte_max(member))
            .count()
    }

    /// Removes the members with a score in `range`; returns how many.
    pub fn remove_range_by_score(&mut self, range: &ScoreRange) -> usize {
        let doomed: Vec<Member> = self
            .score_start(range, false)
            .take_while(|&(_, score)| range.lte_max(score))
            .map(|(member, _)| Member::from(member))
            .collect();
        self.remove_all(doomed)
    }

    /// Removes the members in the lex `range`; returns how many.
    pub fn remove_range_by_lex(&mut self, range: &LexRange<'_>) -> usize {
        let doomed: Vec<Member> = self
            .lex_start(range, false)
            .take_while(|&(member, _)| range.lte_max(member))
            .map(|(member, _)| Member::from(member))
            .collect();
        self.remove_all(doomed)
    }

    /// Removes the members at ascending positions `start..=end` (O(end)).
    pub fn remove_range_by_rank(&mut self, start: usize, end: usize) -> usize {
        if start > end {
            return 0;
        }
        let doomed: Vec<Member> = self
            .iter()
            .skip(start)
            .take(end - start + 1)
            .map(|(member, _)| Member::from(member))
            .collect();
        self.remove_all(doomed)
    }

    fn remove_all(&mut self, members: Vec<Member>) -> usize {
        members
            .iter()
            .filter(|member| self.remove(member).is_some())
            .count()
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

    fn members<'a>(it: impl Iterator<Item = (&'a [u8], f64)>) -> Vec<&'a [u8]> {
        it.map(|(m, _)| m).collect()
    }

    fn range(min: f64, min_ex: bool, max: f64, max_ex: bool) -> ScoreRange {
        ScoreRange {
            min,
            max,
            min_ex,
            max_ex,
        }
    }

    #[test]
    fn score_ranges_start_where_redis_starts() {
        let mut zset = ZSet::default();
        for (i, m) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            zset.insert(*m, i as f64);
        }
        zset.insert(b"z", f64::INFINITY);
        let r = range(1.0, true, 3.0, false);
        let up: Vec<&[u8]> = members(zset.score_start(&r, false));
        assert_eq!(up, [&b"c"[..], b"d", b"z"]);
        let down: Vec<&[u8]> = members(zset.score_start(&r, true));
        assert_eq!(down, [&b"d"[..], b"c", b"b", b"a"]);
        assert_eq!(zset.count_in_scores(&r), 2);
        assert_eq!(
            zset.count_in_scores(&range(f64::NEG_INFINITY, false, f64::INFINITY, false)),
            5
        );
        assert_eq!(
            zset.count_in_scores(&range(f64::INFINITY, true, f64::INFINITY, false)),
            0
        );
        // The first member at or above min is above max: nothing.
        assert_eq!(
            zset.score_start(&range(1.5, false, 1.7, false), false)
                .count(),
            0
        );
        assert!(range(2.0, true, 2.0, false).is_empty());
        assert!(!range(2.0, false, 2.0, false).is_empty());
    }

    #[test]
    fn lex_ranges_on_one_score_and_on_mixed_scores() {
        let mut zset = ZSet::default();
        for m in ["a", "b", "c", "d", "e"] {
            zset.insert(m.as_bytes(), 0.0);
        }
        let r = LexRange {
            min: LexBound::Exclusive(b"a"),
            max: LexBound::Inclusive(b"d"),
        };
        assert_eq!(
            members(zset.lex_start(&r, false)),
            [&b"b"[..], b"c", b"d", b"e"]
        );
        assert_eq!(
            members(zset.lex_start(&r, true)),
            [&b"d"[..], b"c", b"b", b"a"]
        );
        assert_eq!(zset.count_in_lex(&r), 3);
        let all = LexRange {
            min: LexBound::Min,
            max: LexBound::Max,
        };
        assert_eq!(zset.count_in_lex(&all), 5);
        for empty in [
            LexRange {
                min: LexBound::Min,
                max: LexBound::Min,
            },
            LexRange {
                min: LexBound::Max,
                max: LexBound::Max,
            },
            LexRange {
                min: LexBound::Exclusive(b"b"),
                max: LexBound::Inclusive(b"b"),
            },
            LexRange {
                min: LexBound::Inclusive(b"c"),
                max: LexBound::Inclusive(b"b"),
            },
        ] {
            assert!(empty.is_empty(), "{empty:?}");
            assert_eq!(zset.count_in_lex(&empty), 0, "{empty:?}");
        }
        // Mixed scores: walked in (score, member) order, as a listpack is.
        let mut mixed = ZSet::default();
        mixed.insert(b"c", 1.0);
        mixed.insert(b"a", 2.0);
        mixed.insert(b"b", 3.0);
        let r = LexRange {
            min: LexBound::Inclusive(b"b"),
            max: LexBound::Max,
        };
        assert_eq!(members(mixed.lex_start(&r, false)), [&b"c"[..], b"a", b"b"]);
    }

    #[test]
    fn range_removals_keep_bytes_and_mark_members() {
        let mut zset = ZSet::default();
        for (i, m) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            zset.insert(m.as_bytes(), i as f64);
        }
        zset.common.track = true;
        assert_eq!(zset.remove_range_by_score(&range(0.0, true, 2.0, false)), 2);
        assert_eq!(members(zset.iter()), [&b"a"[..], b"d", b"e", b"f"]);
        assert_eq!(zset.remove_range_by_rank(1, 2), 2);
        assert_eq!(members(zset.iter()), [&b"a"[..], b"f"]);
        assert_eq!(zset.remove_range_by_rank(3, 5), 0);
        let lex = LexRange {
            min: LexBound::Min,
            max: LexBound::Exclusive(b"f"),
        };
        // Scores differ: the walk starts at "a" and stops at "f".
        assert_eq!(zset.remove_range_by_lex(&lex), 1);
        assert_eq!(members(zset.iter()), [&b"f"[..]]);
        assert_eq!(zset.common.bytes, cost(b"f"));
        let dirty = zset.common.take_dirty().expect("changes recorded");
        let mut marked: Vec<&[u8]> = dirty.members.iter().map(|m| &**m).collect();
        marked.sort();
        assert_eq!(marked, [&b"a"[..], b"b", b"c", b"d", b"e"]);
    }

    #[test]
    fn negative_zero_is_zero_while_small() {
        let mut zset = ZSet::default();
        zset.insert(b"a", -0.0);
        assert!(zset.score(b"a").is_some_and(|s| s.is_sign_positive()));
        let long = [b'x'; 100];
        zset.insert(&long, -0.0);
        assert_eq!(zset.encoding(), "skiplist");
        assert!(zset.score(&long).is_some_and(|s| s.is_sign_negative()));
    }

    #[test]
    fn results_built_whole_are_encoded_as_redis_converts_them() {
        let small = ZSet::from_members([(&b"a"[..], -0.0), (&b"b"[..], 1.0)]);
        assert_eq!(small.encoding(), "listpack");
        assert!(small.score(b"a").is_some_and(|s| s.is_sign_positive()));
        assert_eq!(small.common.bytes, cost(b"a") + cost(b"b"));
        let names: Vec<String> = (0..129).map(|i| format!("m{i}")).collect();
        let large = ZSet::from_members(names.iter().map(|n| (n.as_bytes(), -0.0)));
        assert_eq!(large.encoding(), "skiplist");
        assert_eq!(large.len(), 129);
        assert!(large.iter().all(|(_, s)| s.is_sign_negative()));
    }
}
