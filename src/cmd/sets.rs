//! Set commands: SADD and friends, random picks (SPOP, SRANDMEMBER), SMOVE,
//! the algebra (SINTER, SUNION, SDIFF, their *STORE forms, SINTERCARD) and
//! SSCAN. Replies, error texts and the order in which arguments and types
//! are checked follow Redis 7.0; SMEMBERS, SINTER, SUNION, SDIFF and SPOP
//! with a count answer a RESP3 set, SRANDMEMBER an array, as Redis's do.

use std::collections::HashSet;

use bytes::Bytes;
use rand::Rng;

use super::args::{Args, CmdResult};
use super::context::Ctx;
use super::hashes::{scan_page, ScanOptions};
use super::keys::parse_cursor;
use super::pubsub::{keymiss, notify, notify_write};
use crate::error;
use crate::keyspace::types::{limits, Collection, Set};
use crate::keyspace::{EntryMut, Txn, Value, ValueRef};
use crate::protocol::{parse_i64, Reply};
use crate::pubsub::notify::{GENERIC, NEW, SET};

/// Most elements a negative SRANDMEMBER or HRANDFIELD count may ask for.
/// Redis builds a reply of any length (a client can make it run out of
/// memory); strata refuses past this many (`error::RANDOM_COUNT_TOO_LARGE`).
pub(super) const MAX_RANDOM_REPLY: u64 = 1 << 20;

fn fail(text: &'static str) -> Reply {
    Reply::StaticError(text)
}

fn as_set(value: ValueRef<'_>) -> Result<&Set, Reply> {
    value.as_set().ok_or(fail(error::WRONGTYPE))
}

/// Runs `f` on the set at `key` (`None` when missing) under its shard lock,
/// counting a hit or miss (and firing `keymiss`, as Redis's `lookupKeyRead`
/// does); WRONGTYPE for a key of another type.
fn read_set<R>(ctx: &Ctx<'_>, key: &[u8], f: impl FnOnce(Option<&Set>) -> R) -> Result<R, Reply> {
    ctx.ks().read(ctx.db(), key, ctx.read_options(), |entry| {
        if entry.is_none() {
            keymiss(ctx, key);
        }
        let set = entry.map(|entry| as_set(entry.value())).transpose()?;
        Ok(f(set))
    })
}

fn txn_set<'t>(txn: &'t Txn<'_>, i: usize) -> Result<Option<&'t Set>, Reply> {
    txn.value(i).map(as_set).transpose()
}

/// The set at key `i` to change in place (its TTL stays), created empty
/// when missing; the keyspace deletes it again if it ends up empty.
fn set_mut<'t>(txn: &'t mut Txn<'_>, i: usize) -> Result<&'t mut Set, Reply> {
    if txn_set(txn, i)?.is_none() {
        txn.insert(i, Value::Set(Set::default()), None);
    }
    txn.entry_mut(i)
        .and_then(EntryMut::set_mut)
        .ok_or(fail(error::WRONGTYPE))
}

fn bulk(data: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(data))
}

fn len_reply(len: usize) -> Reply {
    Reply::Int(i64::try_from(len).unwrap_or(i64::MAX))
}

/// Members in the order Redis lists them: an intset (integers only, at
/// most 512) is sorted by value; a hash table's order is arbitrary anyway.
fn redis_order(mut members: Vec<&[u8]>) -> Vec<&[u8]> {
    if members.len() <= limits::intset_entries() {
        let numbers: Option<Vec<i64>> = members.iter().map(|m| parse_i64(m)).collect();
        if let Some(numbers) = numbers {
            let mut pairs: Vec<(i64, &[u8])> = numbers.into_iter().zip(members).collect();
            pairs.sort_unstable_by_key(|(n, _)| *n);
            members = pairs.into_iter().map(|(_, m)| m).collect();
        }
    }
    members
}

fn set_reply(members: Vec<&[u8]>) -> Reply {
    Reply::Set(redis_order(members).into_iter().map(bulk).collect())
}

/// A SRANDMEMBER/HRANDFIELD count: an integer in `-LONG_MAX..=LONG_MAX`.
pub(super) fn random_count(arg: &[u8]) -> Result<i64, Reply> {
    match parse_i64(arg) {
        None => Err(fail(error::NOT_INTEGER)),
        Some(i64::MIN) => Err(fail(error::COUNT_OUT_OF_LONG_RANGE)),
        Some(count) => Ok(count),
    }
}

// ---------------------------------------------------------------------------
// Members

/// # Format
/// `SADD key member [member ...]`
pub fn sadd(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let members = args.rest();
    let (added, created) = ctx.ks().write(ctx.db(), key, |txn| {
        let created = txn_set(txn, 0)?.is_none();
        let set = set_mut(txn, 0)?;
        Ok::<_, Reply>((members.iter().filter(|m| set.insert(m)).count(), created))
    })?;
    if added > 0 {
        notify_write(ctx, created, SET, "sadd", key);
    }
    Ok(len_reply(added))
}

/// # Format
/// `SREM key member [member ...]`
pub fn srem(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let members = args.rest();
    let (removed, emptied) = ctx.ks().write(ctx.db(), key, |txn| {
        // Only a set that loses a member is written back.
        let present = txn_set(txn, 0)?.is_some_and(|set| members.iter().any(|m| set.contains(m)));
        if !present {
            return Ok::<_, Reply>((0, false));
        }
        let set = set_mut(txn, 0)?;
        let removed = members.iter().filter(|m| set.remove(m)).count();
        Ok((removed, set.is_empty()))
    })?;
    if removed > 0 {
        notify(ctx, SET, "srem", key);
    }
    if emptied {
        notify(ctx, GENERIC, "del", key);
    }
    Ok(len_reply(removed))
}

/// # Format
/// `SMEMBERS key`
pub fn smembers(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    read_set(ctx, key, |set| {
        set_reply(set.into_iter().flat_map(Set::iter).collect())
    })
}

/// # Format
/// `SISMEMBER key member`
pub fn sismember(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let member = args.next_bytes()?;
    read_set(ctx, key, |set| {
        Reply::Int(i64::from(set.is_some_and(|set| set.contains(member))))
    })
}

/// # Format
/// `SMISMEMBER key member [member ...]`
pub fn smismember(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let members = args.rest();
    read_set(ctx, key, |set| {
        Reply::Array(
            members
                .iter()
                .map(|m| Reply::Int(i64::from(set.is_some_and(|set| set.contains(m)))))
                .collect(),
        )
    })
}

/// # Format
/// `SCARD key`
pub fn scard(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    read_set(ctx, key, |set| len_reply(set.map_or(0, |set| set.len())))
}

/// # Format
/// `SMOVE source destination member`
pub fn smove(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let source = args.next_bytes()?;
    let destination = args.next_bytes()?;
    let member = args.next_bytes()?;
    let db = ctx.db();
    let keys = [(db, source.as_ref()), (db, destination.as_ref())];
    // `None`: nothing moved, the reply says whether the member is there.
    let moved = ctx.ks().write_many(keys, |txn| {
        let Some(from) = txn_set(txn, 0)? else {
            return Ok::<_, Reply>((false, None));
        };
        let found = from.contains(member);
        let target = txn_set(txn, 1)?;
        let created = target.is_none();
        // A member the destination has already leaves it untouched: no
        // event, and a WATCH on it stays valid (as Redis 7.0.15).
        let present = target.is_some_and(|set| set.contains(member));
        if source == destination || !found {
            return Ok((found, None));
        }
        let from = set_mut(txn, 0)?;
        from.remove(member);
        let emptied = from.is_empty();
        let added = !present && set_mut(txn, 1)?.insert(member);
        Ok((true, Some((emptied, created, added))))
    })?;
    let (emptied, created, added) = match moved {
        (_, Some(moved)) => moved,
        (found, None) => return Ok(Reply::Int(i64::from(found))),
    };
    // Redis's order: the source's events, then the destination's.
    notify(ctx, SET, "srem", source);
    if emptied {
        notify(ctx, GENERIC, "del", source);
    }
    if created {
        notify(ctx, NEW, "new", destination);
    }
    if added {
        notify(ctx, SET, "sadd", destination);
    }
    Ok(Reply::Int(1))
}

// ---------------------------------------------------------------------------
// Random members

/// # Format
/// `SPOP key [count]`
pub fn spop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    if args.remaining() > 1 {
        return Err(fail(error::SYNTAX));
    }
    let count = match args.next() {
        None => None,
        Some(arg) => Some(
            parse_i64(arg)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or(fail(error::MUST_BE_POSITIVE))?,
        ),
    };
    let (reply, popped, emptied) = ctx.ks().write(ctx.db(), key, |txn| {
        let Some(set) = txn_set(txn, 0)? else {
            let reply = if count.is_some() {
                Reply::Set(Vec::new())
            } else {
                Reply::Nil
            };
            return Ok::<_, Reply>((reply, false, false));
        };
        let len = set.len();
        let Some(count) = count else {
            let set = set_mut(txn, 0)?;
            let popped = set.remove_index(rand::thread_rng().gen_range(0..len));
            let emptied = set.is_empty();
            return Ok((
                popped.as_ref().map_or(Reply::Nil, |m| bulk(m)),
                popped.is_some(),
                emptied,
            ));
        };
        if count == 0 {
            return Ok((Reply::Set(Vec::new()), false, false));
        }
        if count >= len as u64 {
            let reply = set_reply(set.iter().collect());
            txn.remove(0);
            return Ok((reply, true, true));
        }
        let count = count as usize;
        let set = set_mut(txn, 0)?;
        let mut rng = rand::thread_rng();
        let mut popped = Vec::with_capacity(count);
        for _ in 0..count {
            let index = rng.gen_range(0..set.len());
            if let Some(member) = set.remove_index(index) {
                popped.push(bulk(&member));
            }
        }
        // Redis builds a new set of the few members left (its SPOP "case
        // 3"), which is an intset again when they are all integers.
        if (len - count).saturating_mul(5) <= count {
            set.reencode();
        }
        Ok((Reply::Set(popped), true, false))
    })?;
    if popped {
        notify(ctx, SET, "spop", key);
    }
    if emptied {
        notify(ctx, GENERIC, "del", key);
    }
    Ok(reply)
}

/// # Format
/// `SRANDMEMBER key [count]`
///
/// A negative count may repeat members.
pub fn srandmember(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    if args.remaining() > 1 {
        return Err(fail(error::SYNTAX));
    }
    let Some(count) = args.next() else {
        return read_set(ctx, key, |set| {
            set.filter(|set| !set.is_empty())
                .and_then(|set| set.get_index(rand::thread_rng().gen_range(0..set.len())))
                .map_or(Reply::Nil, bulk)
        });
    };
    let count = random_count(count)?;
    read_set(ctx, key, |set| {
        let Some(set) = set.filter(|_| count != 0) else {
            return Ok(Reply::Array(Vec::new()));
        };
        let len = set.len();
        let mut rng = rand::thread_rng();
        let members: Vec<&[u8]> = if count < 0 {
            let picks = count.unsigned_abs();
            if picks > MAX_RANDOM_REPLY {
                return Err(fail(error::RANDOM_COUNT_TOO_LARGE));
            }
            (0..picks)
                .filter_map(|_| set.get_index(rng.gen_range(0..len)))
                .collect()
        } else if count as u64 >= len as u64 {
            redis_order(set.iter().collect())
        } else {
            rand::seq::index::sample(&mut rng, len, count as usize)
                .into_iter()
                .filter_map(|i| set.get_index(i))
                .collect()
        };
        Ok(Reply::Array(members.into_iter().map(bulk).collect()))
    })?
}

// ---------------------------------------------------------------------------
// Algebra

/// The sets at `keys`, keys `first..` of a transaction (`None`: missing, an
/// empty set), read as Redis's `lookupKeyRead` reads each in turn: counted
/// as a hit or miss, a missing one firing `keymiss`; WRONGTYPE as soon as
/// one key holds another type, even after a missing one, as Redis 7 checks
/// them all.
fn read_sets<'t>(
    ctx: &Ctx<'_>,
    txn: &'t mut Txn<'_>,
    first: usize,
    keys: &[Bytes],
) -> Result<Vec<Option<&'t Set>>, Reply> {
    for i in first..first + keys.len() {
        txn.count_read(i);
    }
    let txn: &'t Txn<'_> = txn;
    let mut sets = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let set = txn_set(txn, first + i)?;
        if set.is_none() {
            keymiss(ctx, key);
        }
        sets.push(set);
    }
    Ok(sets)
}

/// Members of every set; empty when one is missing. Stops at `limit`
/// members when it is not 0 (SINTERCARD).
fn intersection<'s>(sets: &[Option<&'s Set>], limit: usize) -> Vec<&'s [u8]> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<&Set>>>() else {
        return Vec::new();
    };
    sets.sort_by_key(|set| set.len());
    let Some((smallest, others)) = sets.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for member in smallest.iter() {
        if others
            .iter()
            .all(|set| std::ptr::eq(*set, *smallest) || set.contains(member))
        {
            out.push(member);
            if out.len() == limit {
                break;
            }
        }
    }
    out
}

fn union<'s>(sets: &[Option<&'s Set>]) -> Vec<&'s [u8]> {
    let mut seen: HashSet<&[u8]> = HashSet::new();
    sets.iter()
        .flatten()
        .flat_map(|set| set.iter())
        .filter(|member| seen.insert(member))
        .collect()
}

/// Members of the first set that no other set has.
fn difference<'s>(sets: &[Option<&'s Set>]) -> Vec<&'s [u8]> {
    let Some((Some(first), others)) = sets.split_first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|member| !others.iter().flatten().any(|set| set.contains(member)))
        .collect()
}

/// Whether Redis 7.0's SDIFFSTORE builds its result as a hash table whatever
/// it ends up holding: its "algorithm 2" (chosen by the sizes) first adds
/// every member of the first set, which converts the new set when one of
/// them is not an integer or there are too many, and then removes the
/// members of the others.
fn diff_holds_first_set(sets: &[Option<&Set>]) -> bool {
    let Some(Some(first)) = sets.first() else {
        return false;
    };
    let present = sets.iter().flatten();
    let one_work = present.clone().map(|_| first.len() as u64).sum::<u64>() / 2;
    let two_work = present.map(|set| set.len() as u64).sum::<u64>();
    let algorithm_two = one_work > two_work;
    algorithm_two
        && (first.len() > limits::intset_entries() || !first.iter().all(|m| parse_i64(m).is_some()))
}

#[derive(Clone, Copy)]
enum Op {
    Inter,
    Union,
    Diff,
}

impl Op {
    fn apply<'s>(self, sets: &[Option<&'s Set>]) -> Vec<&'s [u8]> {
        match self {
            Op::Inter => intersection(sets, 0),
            Op::Union => union(sets),
            Op::Diff => difference(sets),
        }
    }

    fn store_event(self) -> &'static str {
        match self {
            Op::Inter => "sinterstore",
            Op::Union => "sunionstore",
            Op::Diff => "sdiffstore",
        }
    }
}

/// SINTER, SUNION, SDIFF: every key locked at once, each read counted as
/// a hit or miss.
fn combine(ctx: &Ctx<'_>, args: &Args<'_>, op: Op) -> CmdResult {
    let keys = args.rest();
    let db = ctx.db();
    ctx.ks()
        .write_many(keys.iter().map(|key| (db, key.as_ref())), |txn| {
            let sets = read_sets(ctx, txn, 0, keys)?;
            Ok(set_reply(op.apply(&sets)))
        })
}

/// SINTERSTORE, SUNIONSTORE, SDIFFSTORE: the destination (any type) is
/// replaced by the result, or deleted when the result is empty.
fn combine_store(ctx: &Ctx<'_>, args: &mut Args<'_>, op: Op) -> CmdResult {
    let destination = args.next_bytes()?;
    let sources = args.rest();
    let db = ctx.db();
    let keys = std::iter::once(destination)
        .chain(sources)
        .map(|key| (db, key.as_ref()));
    let (len, existed) = ctx.ks().write_many(keys, |txn| {
        let sets = read_sets(ctx, txn, 1, sources)?;
        let mut result = Set::default();
        for member in op.apply(&sets) {
            result.insert(member);
        }
        if matches!(op, Op::Diff) && diff_holds_first_set(&sets) {
            result.convert_to_hashtable();
        }
        let len = result.len();
        let existed = txn.exists(0);
        if len == 0 {
            txn.remove(0);
        } else {
            txn.insert(0, Value::Set(result), None);
        }
        Ok::<_, Reply>((len, existed))
    })?;
    if len > 0 {
        notify_write(ctx, !existed, SET, op.store_event(), destination);
    } else if existed {
        notify(ctx, GENERIC, "del", destination);
    }
    Ok(len_reply(len))
}

/// # Format
/// `SINTER key [key ...]`
pub fn sinter(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    combine(ctx, args, Op::Inter)
}

/// # Format
/// `SUNION key [key ...]`
pub fn sunion(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    combine(ctx, args, Op::Union)
}

/// # Format
/// `SDIFF key [key ...]`
pub fn sdiff(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    combine(ctx, args, Op::Diff)
}

/// # Format
/// `SINTERSTORE destination key [key ...]`
pub fn sinterstore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    combine_store(ctx, args, Op::Inter)
}

/// # Format
/// `SUNIONSTORE destination key [key ...]`
pub fn sunionstore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    combine_store(ctx, args, Op::Union)
}

/// # Format
/// `SDIFFSTORE destination key [key ...]`
pub fn sdiffstore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    combine_store(ctx, args, Op::Diff)
}

/// # Format
/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`
pub fn sintercard(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let numkeys = parse_i64(args.next_bytes()?)
        .filter(|&n| n > 0)
        .ok_or(fail(error::NUMKEYS_POSITIVE))?;
    let numkeys = usize::try_from(numkeys)
        .ok()
        .filter(|&n| n <= args.remaining())
        .ok_or(fail(error::NUMKEYS_OVER_ARGS))?;
    let keys = args.rest().get(..numkeys).unwrap_or_default();
    for _ in 0..numkeys {
        args.next();
    }
    let mut limit = 0;
    while let Some(option) = args.next() {
        if !option.eq_ignore_ascii_case(b"LIMIT") || args.is_empty() {
            return Err(fail(error::SYNTAX));
        }
        let value = parse_i64(args.next_bytes()?)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(fail(error::LIMIT_NEGATIVE))?;
        limit = value;
    }
    let db = ctx.db();
    ctx.ks()
        .write_many(keys.iter().map(|key| (db, key.as_ref())), |txn| {
            let sets = read_sets(ctx, txn, 0, keys)?;
            Ok(len_reply(intersection(&sets, limit).len()))
        })
}

/// # Format
/// `SSCAN key cursor [MATCH pattern] [COUNT count]`
///
/// An intset answers whole in one page with cursor 0, sorted, as Redis's
/// does; a hash-table set pages by position (see [`ScanOptions::window`]).
pub fn sscan(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let cursor = parse_cursor(args.next_bytes()?)?;
    read_set(ctx, key, |set| {
        let Some(set) = set else {
            return Ok(scan_page(0, Vec::new()));
        };
        let options = ScanOptions::parse(args)?;
        if set.encoding() == "intset" {
            let members = redis_order(set.iter().collect());
            let items = members
                .into_iter()
                .filter(|m| options.wants(m))
                .map(bulk)
                .collect();
            return Ok(scan_page(0, items));
        }
        let (positions, next) = options.window(set.len(), cursor);
        let items = positions
            .rev()
            .filter_map(|i| set.get_index(i))
            .filter(|m| options.wants(m))
            .map(bulk)
            .collect();
        Ok(scan_page(next, items))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(members: &[&str]) -> Set {
        let mut set = Set::default();
        for m in members {
            set.insert(m.as_bytes());
        }
        set
    }

    #[test]
    fn algebra() {
        let a = set_of(&["1", "2", "3", "x"]);
        let b = set_of(&["2", "3", "4"]);
        let sets = [Some(&a), Some(&b)];
        let mut inter = intersection(&sets, 0);
        inter.sort();
        assert_eq!(inter, vec![&b"2"[..], b"3"]);
        assert_eq!(intersection(&sets, 1).len(), 1);
        assert!(intersection(&[Some(&a), None], 0).is_empty());
        assert_eq!(union(&sets).len(), 5);
        let mut diff = difference(&[Some(&a), None, Some(&b)]);
        diff.sort();
        assert_eq!(diff, vec![&b"1"[..], b"x"]);
        assert!(difference(&[None, Some(&a)]).is_empty());
        // The same set twice intersects with itself.
        assert_eq!(intersection(&[Some(&a), Some(&a)], 0).len(), 4);
    }

    #[test]
    fn integers_listed_in_order() {
        let members: Vec<&[u8]> = vec![b"10", b"-3", b"2"];
        assert_eq!(redis_order(members), vec![&b"-3"[..], b"2", b"10"]);
        let mixed: Vec<&[u8]> = vec![b"10", b"a", b"2"];
        assert_eq!(redis_order(mixed.clone()), mixed);
    }

    #[test]
    fn random_counts() {
        assert_eq!(random_count(b"-5"), Ok(-5));
        assert_eq!(
            random_count(b"-9223372036854775808"),
            Err(fail(error::COUNT_OUT_OF_LONG_RANGE))
        );
        assert_eq!(random_count(b"x"), Err(fail(error::NOT_INTEGER)));
    }
}
