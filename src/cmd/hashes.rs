//! Hash commands: HSET and friends, counters (HINCRBY, HINCRBYFLOAT),
//! HRANDFIELD and HSCAN, plus the MATCH/COUNT cursor walk HSCAN shares with
//! SSCAN. Replies, error texts and the order in which arguments and types
//! are checked follow Redis 7.0.

use bytes::Bytes;
use rand::Rng;

use super::args::{Args, CmdResult};
use super::context::Ctx;
use super::keys::parse_cursor;
use super::long_double::{self, Finite, LongDouble};
use super::pubsub::{keymiss, notify, notify_write};
use super::sets::{random_count, MAX_RANDOM_REPLY};
use crate::error;
use crate::keyspace::types::{Collection, Hash};
use crate::keyspace::{EntryMut, Txn, Value, ValueRef};
use crate::protocol::{int_text, parse_i64, Reply, Version};
use crate::pubsub::notify::{GENERIC, HASH};

fn fail(text: &'static str) -> Reply {
    Reply::StaticError(text)
}

fn as_hash(value: ValueRef<'_>) -> Result<&Hash, Reply> {
    value.as_hash().ok_or(fail(error::WRONGTYPE))
}

/// Runs `f` on the hash at `key` (`None` when missing) under its shard lock,
/// counting a hit or miss (and firing `keymiss`, as Redis's `lookupKeyRead`
/// does); WRONGTYPE for a key of another type.
fn read_hash<R>(ctx: &Ctx<'_>, key: &[u8], f: impl FnOnce(Option<&Hash>) -> R) -> Result<R, Reply> {
    ctx.ks().read(ctx.db(), key, ctx.read_options(), |entry| {
        if entry.is_none() {
            keymiss(ctx, key);
        }
        let hash = entry.map(|entry| as_hash(entry.value())).transpose()?;
        Ok(f(hash))
    })
}

/// The hash at key `i` of a transaction, `None` when missing.
fn txn_hash<'t>(txn: &'t Txn<'_>, i: usize) -> Result<Option<&'t Hash>, Reply> {
    txn.value(i).map(as_hash).transpose()
}

/// The hash at key `i` to change in place (its TTL stays), created empty
/// when missing; the keyspace deletes it again if it ends up empty.
fn hash_mut<'t>(txn: &'t mut Txn<'_>, i: usize) -> Result<&'t mut Hash, Reply> {
    if txn_hash(txn, i)?.is_none() {
        txn.insert(i, Value::Hash(Hash::default()), None);
    }
    txn.entry_mut(i)
        .and_then(EntryMut::hash_mut)
        .ok_or(fail(error::WRONGTYPE))
}

fn bulk(data: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(data))
}

fn len_reply(len: usize) -> Reply {
    Reply::Int(i64::try_from(len).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------------------
// HSCAN and SSCAN

/// MATCH and COUNT of HSCAN/SSCAN. Redis reads them only once the key is
/// found and of the right type: a missing key answers an empty page even
/// when they are invalid.
pub(super) struct ScanOptions<'a> {
    pattern: Option<&'a [u8]>,
    count: usize,
}

impl ScanOptions<'_> {
    pub(super) fn parse<'a>(args: &mut Args<'a>) -> Result<ScanOptions<'a>, Reply> {
        let mut options = ScanOptions {
            pattern: None,
            count: 10,
        };
        while !args.is_empty() {
            if args.remaining() < 2 {
                return Err(fail(error::SYNTAX));
            }
            if args.eat("COUNT") {
                let count = args.next_i64()?;
                if count < 1 {
                    return Err(fail(error::SYNTAX));
                }
                options.count = usize::try_from(count).unwrap_or(usize::MAX);
            } else if args.eat("MATCH") {
                let pattern: &[u8] = args.next_bytes()?;
                options.pattern = (pattern != b"*").then_some(pattern);
            } else {
                return Err(fail(error::SYNTAX));
            }
        }
        Ok(options)
    }

    pub(super) fn wants(&self, item: &[u8]) -> bool {
        self.pattern
            .is_none_or(|pattern| crate::glob::matches(pattern, item, false))
    }

    /// The positions one page of a big collection visits and the cursor
    /// of the next page. Pages walk positions from the end down: removing
    /// an element moves the last one into its place, which a downward walk
    /// has either visited already (the element is seen twice, as Redis
    /// allows) or not at all, so an element present for the whole scan is
    /// never missed. The cursor is the number of positions still to visit.
    pub(super) fn window(&self, len: usize, cursor: u64) -> (std::ops::Range<usize>, u64) {
        let end = if cursor == 0 {
            len
        } else {
            usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
        };
        let start = end.saturating_sub(self.count);
        (start..end, start as u64)
    }
}

/// A SCAN-family page: `[cursor, [items]]`.
pub(super) fn scan_page(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(cursor.to_string())),
        Reply::Array(items),
    ])
}

/// # Format
/// `HSCAN key cursor [MATCH pattern] [COUNT count]`
///
/// A listpack-sized hash answers whole in one page with cursor 0, as Redis's
/// does; a larger one pages by position (see [`ScanOptions::window`]).
pub fn hscan(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let cursor = parse_cursor(args.next_bytes()?)?;
    read_hash(ctx, key, |hash| {
        let Some(hash) = hash else {
            return Ok(scan_page(0, Vec::new()));
        };
        let options = ScanOptions::parse(args)?;
        let mut items = Vec::new();
        let mut emit = |(field, value): (&[u8], &[u8])| {
            if options.wants(field) {
                items.push(bulk(field));
                items.push(bulk(value));
            }
        };
        if hash.encoding() == "listpack" {
            hash.iter().for_each(&mut emit);
            return Ok(scan_page(0, items));
        }
        let (positions, next) = options.window(hash.len(), cursor);
        positions
            .rev()
            .filter_map(|i| hash.get_index(i))
            .for_each(&mut emit);
        Ok(scan_page(next, items))
    })?
}

// ---------------------------------------------------------------------------
// Setting and reading fields

/// HSET and HMSET: field-value pairs, all stored; `reply` gets the number
/// of new fields.
fn set_pairs(
    ctx: &Ctx<'_>,
    args: &mut Args<'_>,
    command: &str,
    reply: fn(usize) -> Reply,
) -> CmdResult {
    let key = args.next_bytes()?;
    let pairs = args.rest();
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(error::wrong_arity(command));
    }
    let (added, created) = ctx.ks().write(ctx.db(), key, |txn| {
        let created = txn_hash(txn, 0)?.is_none();
        let hash = hash_mut(txn, 0)?;
        let added = pairs
            .chunks_exact(2)
            .filter(|pair| match pair {
                [field, value] => hash.insert(field, value),
                _ => false,
            })
            .count();
        Ok::<_, Reply>((added, created))
    })?;
    // Fired even when every field was already there with that value.
    notify_write(ctx, created, HASH, "hset", key);
    Ok(reply(added))
}

/// # Format
/// `HSET key field value [field value ...]`
pub fn hset(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_pairs(ctx, args, "hset", len_reply)
}

/// # Format
/// `HMSET key field value [field value ...]`
pub fn hmset(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_pairs(ctx, args, "hmset", |_| Reply::OK)
}

/// # Format
/// `HSETNX key field value`
pub fn hsetnx(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let field = args.next_bytes()?;
    let value = args.next_bytes()?;
    let set = ctx.ks().write(ctx.db(), key, |txn| {
        let hash = txn_hash(txn, 0)?;
        if hash.is_some_and(|hash| hash.contains(field)) {
            return Ok::<_, Reply>(None);
        }
        let created = hash.is_none();
        hash_mut(txn, 0)?.insert(field, value);
        Ok(Some(created))
    })?;
    let Some(created) = set else {
        return Ok(Reply::Int(0));
    };
    notify_write(ctx, created, HASH, "hset", key);
    Ok(Reply::Int(1))
}

/// # Format
/// `HGET key field`
pub fn hget(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let field = args.next_bytes()?;
    read_hash(ctx, key, |hash| {
        hash.and_then(|hash| hash.get(field))
            .map_or(Reply::Nil, bulk)
    })
}

/// # Format
/// `HMGET key field [field ...]`
pub fn hmget(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let fields = args.rest();
    read_hash(ctx, key, |hash| {
        Reply::Array(
            fields
                .iter()
                .map(|field| {
                    hash.and_then(|hash| hash.get(field))
                        .map_or(Reply::Nil, bulk)
                })
                .collect(),
        )
    })
}

/// # Format
/// `HDEL key field [field ...]`
pub fn hdel(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let fields = args.rest();
    let (removed, emptied) = ctx.ks().write(ctx.db(), key, |txn| {
        // Only a hash that loses a field is written back.
        let present =
            txn_hash(txn, 0)?.is_some_and(|hash| fields.iter().any(|field| hash.contains(field)));
        if !present {
            return Ok::<_, Reply>((0, false));
        }
        let hash = hash_mut(txn, 0)?;
        let removed = fields.iter().filter(|field| hash.remove(field)).count();
        Ok((removed, hash.is_empty()))
    })?;
    if removed > 0 {
        notify(ctx, HASH, "hdel", key);
    }
    if emptied {
        notify(ctx, GENERIC, "del", key);
    }
    Ok(len_reply(removed))
}

/// # Format
/// `HEXISTS key field`
pub fn hexists(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let field = args.next_bytes()?;
    read_hash(ctx, key, |hash| {
        Reply::Int(i64::from(hash.is_some_and(|hash| hash.contains(field))))
    })
}

/// # Format
/// `HLEN key`
pub fn hlen(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    read_hash(ctx, key, |hash| {
        len_reply(hash.map_or(0, |hash| hash.len()))
    })
}

/// # Format
/// `HSTRLEN key field`
pub fn hstrlen(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let field = args.next_bytes()?;
    read_hash(ctx, key, |hash| {
        len_reply(hash.and_then(|hash| hash.get(field)).map_or(0, <[u8]>::len))
    })
}

/// # Format
/// `HKEYS key`
pub fn hkeys(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    read_hash(ctx, key, |hash| {
        Reply::Array(
            hash.into_iter()
                .flat_map(Hash::iter)
                .map(|(field, _)| bulk(field))
                .collect(),
        )
    })
}

/// # Format
/// `HVALS key`
pub fn hvals(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    read_hash(ctx, key, |hash| {
        Reply::Array(
            hash.into_iter()
                .flat_map(Hash::iter)
                .map(|(_, value)| bulk(value))
                .collect(),
        )
    })
}

/// # Format
/// `HGETALL key`
///
/// A map in RESP3, a flat array of fields and values in RESP2.
pub fn hgetall(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    read_hash(ctx, key, |hash| {
        Reply::Map(
            hash.into_iter()
                .flat_map(Hash::iter)
                .map(|(field, value)| (bulk(field), bulk(value)))
                .collect(),
        )
    })
}

// ---------------------------------------------------------------------------
// Counters

/// # Format
/// `HINCRBY key field increment`
pub fn hincrby(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let field = args.next_bytes()?;
    // Redis reads the increment before it looks the key up.
    let increment = args.next_i64()?;
    let (value, created) = ctx.ks().write(ctx.db(), key, |txn| {
        let hash = txn_hash(txn, 0)?;
        let created = hash.is_none();
        let current = match hash.and_then(|hash| hash.get(field)) {
            Some(text) => parse_i64(text).ok_or(fail(error::HASH_NOT_INTEGER))?,
            None => 0,
        };
        let value = current
            .checked_add(increment)
            .ok_or(fail(error::OVERFLOW))?;
        hash_mut(txn, 0)?.insert(field, &int_text(value));
        Ok::<_, Reply>((value, created))
    })?;
    notify_write(ctx, created, HASH, "hincrby", key);
    Ok(Reply::Int(value))
}

/// # Format
/// `HINCRBYFLOAT key field increment`
///
/// Added in x87 `long double` and printed as Redis prints it, by the code
/// INCRBYFLOAT uses (`long_double`), so replies and stored text match Redis
/// byte for byte.
pub fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let field = args.next_bytes()?;
    // Unlike INCRBYFLOAT, the increment is checked before the key.
    let increment = long_double::parse(args.next_bytes()?).ok_or(fail(error::NOT_FLOAT))?;
    if matches!(increment, LongDouble::Infinite { .. }) {
        return Err(fail(error::VALUE_NAN_OR_INFINITY));
    }
    let (text, created) = ctx.ks().write(ctx.db(), key, |txn| {
        let hash = txn_hash(txn, 0)?;
        let created = hash.is_none();
        let current = match hash.and_then(|hash| hash.get(field)) {
            Some(text) => long_double::parse(text).ok_or(fail(error::HASH_NOT_FLOAT))?,
            None => LongDouble::Finite(Finite::ZERO),
        };
        let sum = current
            .finite_sum(increment)
            .ok_or(fail(error::NAN_OR_INFINITY))?;
        let text = Bytes::from(sum.to_human());
        hash_mut(txn, 0)?.insert(field, &text);
        Ok::<_, Reply>((text, created))
    })?;
    notify_write(ctx, created, HASH, "hincrbyfloat", key);
    Ok(Reply::Bulk(text))
}

// ---------------------------------------------------------------------------
// HRANDFIELD

/// # Format
/// `HRANDFIELD key [count [WITHVALUES]]`
///
/// A negative count may repeat fields. WITHVALUES pairs come as two-element
/// arrays in RESP3 and flat in RESP2, the one reply shape Redis decides by
/// protocol inside the command.
pub fn hrandfield(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let Some(count) = args.next() else {
        return read_hash(ctx, key, |hash| {
            hash.filter(|hash| !hash.is_empty())
                .and_then(|hash| hash.get_index(rand::thread_rng().gen_range(0..hash.len())))
                .map_or(Reply::Nil, |(field, _)| bulk(field))
        });
    };
    let count = random_count(count)?;
    let with_values = match args.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"WITHVALUES") && args.is_empty() => true,
        Some(_) => return Err(fail(error::SYNTAX)),
    };
    // Redis's bound keeps `count * 2` (the RESP2 reply length) in range.
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(fail(error::VALUE_OUT_OF_RANGE));
    }
    let resp3 = ctx.session.version == Version::Resp3;
    read_hash(ctx, key, |hash| {
        let Some(hash) = hash.filter(|_| count != 0) else {
            return Ok(Reply::Array(Vec::new()));
        };
        let len = hash.len();
        let positions: Vec<usize> = if count < 0 {
            let picks = count.unsigned_abs();
            if picks > MAX_RANDOM_REPLY {
                return Err(fail(error::RANDOM_COUNT_TOO_LARGE));
            }
            let mut rng = rand::thread_rng();
            (0..picks).map(|_| rng.gen_range(0..len)).collect()
        } else if count as u64 >= len as u64 {
            (0..len).collect()
        } else {
            rand::seq::index::sample(&mut rand::thread_rng(), len, count as usize).into_vec()
        };
        let picked = positions.into_iter().filter_map(|i| hash.get_index(i));
        let items = if !with_values {
            picked.map(|(field, _)| bulk(field)).collect()
        } else if resp3 {
            picked
                .map(|(field, value)| Reply::Array(vec![bulk(field), bulk(value)]))
                .collect()
        } else {
            picked
                .flat_map(|(field, value)| [bulk(field), bulk(value)])
                .collect()
        };
        Ok(Reply::Array(items))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_windows_walk_down_to_zero() {
        let options = ScanOptions {
            pattern: None,
            count: 10,
        };
        assert_eq!(options.window(25, 0), (15..25, 15));
        assert_eq!(options.window(25, 15), (5..15, 5));
        assert_eq!(options.window(25, 5), (0..5, 0));
        // A cursor past the end (the collection shrank) starts at the end.
        assert_eq!(options.window(8, 15), (0..8, 0));
        assert_eq!(options.window(25, u64::MAX), (15..25, 15));
    }
}
