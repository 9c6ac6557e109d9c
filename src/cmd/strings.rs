//! String commands: GET/SET and their variants, counters, ranges, LCS, and the
//! bit commands (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD). Replies,
//! error texts and the order in which arguments are checked follow Redis 7.

use bytes::Bytes;

use super::args::{parse_int, Args, CmdResult};
use super::context::Ctx;
use super::long_double::{self, Finite, LongDouble};
use super::pubsub::{keymiss, keymiss_nth, notify, notify_write};
use crate::error;
use crate::keyspace::{now_ms, Entry, Txn, Value, ValueRef};
use crate::protocol::{int_text, Reply};
use crate::pubsub::notify::{GENERIC, STRING};

/// Redis's `SDS_MAX_PREALLOC`: a growing string over-allocates by at most this.
const MAX_PREALLOC: usize = 1024 * 1024;
/// Largest LCS table (4 bytes per cell) we allocate; Redis tries `malloc` and
/// fails with `error::LCS_NO_MEMORY`, but an overcommitting OS would rather kill us.
const LCS_MAX_TABLE_BYTES: u64 = 1 << 30;

pub(super) fn fail(text: &'static str) -> Reply {
    Reply::StaticError(text)
}

/// The string a value holds; WRONGTYPE for every other type.
pub(super) fn as_str(value: ValueRef<'_>) -> Result<&[u8], Reply> {
    match value {
        ValueRef::Str(data) => Ok(data),
        #[allow(unreachable_patterns)]
        _ => Err(fail(error::WRONGTYPE)),
    }
}

/// Runs `f` on the string at `key` under its shard lock, counting a hit or
/// miss. Commands that need a part of the string (a length, a range, a bit)
/// read it here rather than copy it all out, as Redis reads in place.
pub(super) fn with_string<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&[u8]) -> R,
) -> Result<Option<R>, Reply> {
    ctx.ks().read(ctx.db(), key, ctx.read_options(), |entry| {
        if entry.is_none() {
            keymiss(ctx, key);
        }
        entry.map(|entry| as_str(entry.value()).map(f)).transpose()
    })
}

/// A copy of the string at `key`, counting a hit or miss.
pub(super) fn read_string(ctx: &Ctx<'_>, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    with_string(ctx, key, Bytes::copy_from_slice)
}

/// The string at key `i` of a transaction; WRONGTYPE for other types.
pub(super) fn txn_str<'t>(txn: &'t Txn<'_>, i: usize) -> Result<Option<&'t [u8]>, Reply> {
    txn.value(i).map(as_str).transpose()
}

/// A string argument to store: the keyspace copies it next to its key, so
/// the read buffer it points into is not held.
pub(super) fn new_string(data: &Bytes) -> Value {
    Value::Str(data.clone())
}

pub(super) fn len_reply(len: usize) -> Reply {
    Reply::Int(i64::try_from(len).unwrap_or(i64::MAX))
}

/// Uppercases a short option word; anything long cannot be an option, so it
/// is not copied.
pub(super) fn keyword(arg: &[u8]) -> Vec<u8> {
    if arg.len() <= 16 {
        arg.to_ascii_uppercase()
    } else {
        Vec::new()
    }
}

/// Runs `f` on the string at key `i` grown with zero bytes to at least
/// `min_len`, creating it when missing. The change happens in place (the TTL
/// stays) and the string moves to its own growable buffer: Redis then
/// reports `raw`.
pub(super) fn edit_string<R>(
    txn: &mut Txn<'_>,
    i: usize,
    min_len: usize,
    f: impl FnOnce(&mut [u8]) -> R,
) -> Result<(R, usize), Reply> {
    if !txn.exists(i) {
        txn.insert(i, Value::Str(Bytes::new()), None);
    }
    let Some(entry) = txn.entry_mut(i) else {
        return Err(fail(error::WRONGTYPE));
    };
    let data = entry.string_mut().ok_or(fail(error::WRONGTYPE))?;
    if data.capacity() == 0 {
        // A new string gets no spare room, as Redis creates it at its size,
        // and is zeroed by the allocator: the pages of a large one cost
        // nothing until written.
        *data = vec![0; min_len];
    } else if min_len > data.capacity() {
        // Like Redis's sds, a string that grows gets room to spare: double a
        // small one, add 1MB to a large one. Repeated APPENDs stay amortised
        // O(1) without doubling the footprint of a huge value.
        let room = min_len.min(MAX_PREALLOC);
        data.reserve_exact(min_len.saturating_add(room) - data.len());
    }
    if min_len > data.len() {
        data.resize(min_len, 0);
    }
    let out = f(data);
    Ok((out, data.len()))
}

// ---------------------------------------------------------------------------
// GET, SET and friends

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpireKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl ExpireKind {
    fn from_word(word: &[u8]) -> Option<ExpireKind> {
        match word {
            b"EX" => Some(ExpireKind::Ex),
            b"PX" => Some(ExpireKind::Px),
            b"EXAT" => Some(ExpireKind::ExAt),
            b"PXAT" => Some(ExpireKind::PxAt),
            _ => None,
        }
    }

    fn is_absolute(self) -> bool {
        matches!(self, ExpireKind::ExAt | ExpireKind::PxAt)
    }

    /// The absolute deadline in Unix ms, or `invalid expire time in '<command>'`
    /// for values that are not positive or overflow once converted.
    fn deadline(self, raw: &[u8], now_ms: u64, command: &str) -> Result<u64, Reply> {
        let amount = parse_int(raw)?;
        let invalid = || error::invalid_expire(command);
        if amount <= 0 {
            return Err(invalid());
        }
        let ms = match self {
            ExpireKind::Ex | ExpireKind::ExAt => amount.checked_mul(1000).ok_or_else(invalid)?,
            ExpireKind::Px | ExpireKind::PxAt => amount,
        };
        let at = if self.is_absolute() {
            ms
        } else {
            let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
            ms.checked_add(now).ok_or_else(invalid)?
        };
        u64::try_from(at).map_err(|_| invalid())
    }
}

/// The options of SET and GETEX.
#[derive(Default)]
struct ExtOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expire: Option<(ExpireKind, &'a [u8])>,
}

/// Parses SET's (`for_set`) or GETEX's options with Redis's rules: repeating
/// an option is accepted, combining conflicting ones is a syntax error.
fn parse_ext_options<'a>(args: &mut Args<'a>, for_set: bool) -> Result<ExtOptions<'a>, Reply> {
    let mut o = ExtOptions::default();
    let syntax = || fail(error::SYNTAX);
    while let Some(arg) = args.next() {
        let word = keyword(arg);
        match word.as_slice() {
            b"NX" if for_set && !o.xx => o.nx = true,
            b"XX" if for_set && !o.nx => o.xx = true,
            b"GET" if for_set => o.get = true,
            b"KEEPTTL" if for_set && !o.persist && o.expire.is_none() => o.keep_ttl = true,
            b"PERSIST" if !for_set && !o.keep_ttl && o.expire.is_none() => o.persist = true,
            _ => {
                let kind = ExpireKind::from_word(&word).ok_or_else(syntax)?;
                let compatible = !o.keep_ttl
                    && !o.persist
                    && o.expire.is_none_or(|(previous, _)| previous == kind);
                let amount = args.next().filter(|_| compatible).ok_or_else(syntax)?;
                o.expire = Some((kind, amount));
            }
        }
    }
    Ok(o)
}

/// # Format
/// `GET key`
pub fn get(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    Ok(Reply::opt_bulk(read_string(ctx, key)?))
}

/// # Format
/// `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds |
/// EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]`
pub fn set(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    let o = parse_ext_options(args, true)?;
    let deadline = o
        .expire
        .map(|(kind, raw)| kind.deadline(raw, now_ms(), "set"))
        .transpose()?;
    ctx.ks().write(ctx.db(), key, |txn| {
        if o.get {
            txn.count_read(0);
            if !txn.exists(0) {
                keymiss(ctx, key);
            }
        }
        let old = if o.get {
            txn_str(txn, 0)?.map(Bytes::copy_from_slice)
        } else {
            None
        };
        let found = txn.exists(0);
        let done = |old: Option<Bytes>, otherwise: Reply| {
            if o.get {
                Reply::opt_bulk(old)
            } else {
                otherwise
            }
        };
        if (o.nx && found) || (o.xx && !found) {
            return Ok(done(old, Reply::Nil));
        }
        let expire_at = if o.keep_ttl {
            txn.get(0).and_then(Entry::expire_at)
        } else {
            deadline
        };
        let created = txn.insert(0, new_string(value), expire_at).is_none();
        notify_write(ctx, created, STRING, "set", key);
        if deadline.is_some() {
            notify(ctx, GENERIC, "expire", key);
        }
        Ok(done(old, Reply::OK))
    })
}

/// # Format
/// `SETNX key value`
pub fn setnx(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    ctx.ks().write(ctx.db(), key, |txn| {
        if txn.exists(0) {
            return Ok(Reply::Int(0));
        }
        txn.insert(0, new_string(value), None);
        notify_write(ctx, true, STRING, "set", key);
        Ok(Reply::Int(1))
    })
}

fn set_with_expire(
    ctx: &Ctx<'_>,
    args: &mut Args<'_>,
    kind: ExpireKind,
    command: &str,
) -> CmdResult {
    let key = args.next_bytes()?;
    let amount = args.next_bytes()?;
    let value = args.next_bytes()?;
    ctx.ks().write(ctx.db(), key, |txn| {
        let deadline = kind.deadline(amount, txn.now_ms(), command)?;
        let created = txn.insert(0, new_string(value), Some(deadline)).is_none();
        notify_write(ctx, created, STRING, "set", key);
        notify(ctx, GENERIC, "expire", key);
        Ok(Reply::OK)
    })
}

/// # Format
/// `SETEX key seconds value`
pub fn setex(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_with_expire(ctx, args, ExpireKind::Ex, "setex")
}

/// # Format
/// `PSETEX key milliseconds value`
pub fn psetex(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_with_expire(ctx, args, ExpireKind::Px, "psetex")
}

/// # Format
/// `GETSET key value`
pub fn getset(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    ctx.ks().write(ctx.db(), key, |txn| {
        txn.count_read(0);
        if !txn.exists(0) {
            keymiss(ctx, key);
        }
        let old = txn_str(txn, 0)?.map(Bytes::copy_from_slice);
        let created = txn.insert(0, new_string(value), None).is_none();
        notify_write(ctx, created, STRING, "set", key);
        Ok(Reply::opt_bulk(old))
    })
}

/// # Format
/// `GETDEL key`
pub fn getdel(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    ctx.ks().write(ctx.db(), key, |txn| {
        txn.count_read(0);
        let Some(data) = txn_str(txn, 0)?.map(Bytes::copy_from_slice) else {
            keymiss(ctx, key);
            return Ok(Reply::Nil);
        };
        txn.remove(0);
        notify(ctx, GENERIC, "del", key);
        Ok(Reply::Bulk(data))
    })
}

/// # Format
/// `GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds |
/// PXAT unix-time-milliseconds | PERSIST]`
pub fn getex(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let o = parse_ext_options(args, false)?;
    ctx.ks().write(ctx.db(), key, |txn| {
        txn.count_read(0);
        let Some(data) = txn_str(txn, 0)?.map(Bytes::copy_from_slice) else {
            keymiss(ctx, key);
            return Ok(Reply::Nil);
        };
        let now = txn.now_ms();
        match o.expire {
            Some((kind, raw)) => {
                let at = kind.deadline(raw, now, "getex")?;
                // An absolute deadline already past deletes the key, as Redis does.
                if kind.is_absolute() && at <= now {
                    txn.remove(0);
                    notify(ctx, GENERIC, "del", key);
                } else {
                    txn.set_expire(0, Some(at));
                    notify(ctx, GENERIC, "expire", key);
                }
            }
            None if o.persist && txn.get(0).is_some_and(|e| e.expire_at().is_some()) => {
                txn.set_expire(0, None);
                notify(ctx, GENERIC, "persist", key);
            }
            None => {}
        }
        Ok(Reply::Bulk(data))
    })
}

/// # Format
/// `MGET key [key ...]`
pub fn mget(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let keys = args.rest();
    let replies = ctx
        .ks()
        .read_many(ctx.db(), keys, ctx.read_options(), |i, entry| {
            if entry.is_none() {
                keymiss_nth(ctx, keys, i);
            }
            match entry.map(|entry| as_str(entry.value())) {
                Some(Ok(data)) => Reply::Bulk(Bytes::copy_from_slice(data)),
                _ => Reply::Nil,
            }
        });
    Ok(Reply::Array(replies))
}

/// Checks MSET/MSETNX pairs and runs `f` with every key locked; the value of
/// key `i` is `values[i]`.
fn with_pairs(
    ctx: &Ctx<'_>,
    args: &Args<'_>,
    command: &str,
    f: impl FnOnce(&mut Txn<'_>, &[&Bytes]) -> Reply,
) -> CmdResult {
    let pairs = args.rest();
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(error::wrong_arity(command));
    }
    let db = ctx.db();
    let keys = pairs.iter().step_by(2).map(|key| (db, key.as_ref()));
    let values: Vec<&Bytes> = pairs.iter().skip(1).step_by(2).collect();
    Ok(ctx.ks().write_many(keys, |txn| f(txn, &values)))
}

/// # Format
/// `MSET key value [key value ...]`
pub fn mset(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    with_pairs(ctx, args, "mset", |txn, values| {
        for (i, value) in values.iter().enumerate() {
            let created = txn.insert(i, new_string(value), None).is_none();
            notify_write(ctx, created, STRING, "set", txn.key(i));
        }
        Reply::OK
    })
}

/// # Format
/// `MSETNX key value [key value ...]`
pub fn msetnx(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    with_pairs(ctx, args, "msetnx", |txn, values| {
        if (0..values.len()).any(|i| txn.exists(i)) {
            return Reply::Int(0);
        }
        for (i, value) in values.iter().enumerate() {
            txn.insert(i, new_string(value), None);
            notify_write(ctx, true, STRING, "set", txn.key(i));
        }
        Reply::Int(1)
    })
}

/// # Format
/// `APPEND key value`
pub fn append(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    let max = ctx.max_string_len();
    ctx.ks().write(ctx.db(), key, |txn| {
        let Some(old_len) = txn_str(txn, 0)?.map(<[u8]>::len) else {
            txn.insert(0, new_string(value), None);
            notify_write(ctx, true, STRING, "append", key);
            return Ok(len_reply(value.len()));
        };
        let total = old_len as u64 + value.len() as u64;
        if total > max {
            return Err(fail(error::STRING_TOO_LONG));
        }
        let total = usize::try_from(total).map_err(|_| fail(error::STRING_TOO_LONG))?;
        let ((), len) = edit_string(txn, 0, total, |buf| {
            if let Some(tail) = buf.get_mut(old_len..total) {
                tail.copy_from_slice(value);
            }
        })?;
        notify(ctx, STRING, "append", key);
        Ok(len_reply(len))
    })
}

/// # Format
/// `STRLEN key`
pub fn strlen(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    Ok(len_reply(with_string(ctx, key, <[u8]>::len)?.unwrap_or(0)))
}

/// # Format
/// `GETRANGE key start end` (also `SUBSTR`)
pub fn getrange(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let start = args.next_i64()?;
    let end = args.next_i64()?;
    let range = with_string(ctx, key, |data| {
        if start < 0 && end < 0 && start > end {
            return Bytes::new();
        }
        let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let start = if start < 0 { len + start } else { start }.max(0);
        // Redis 7 clamps a too-negative end to 0, so `GETRANGE k 0 -100` is the first byte.
        let end = if end < 0 { len + end } else { end }.max(0).min(len - 1);
        if start > end {
            return Bytes::new();
        }
        // 0 <= start <= end < len, so the range is inside the string.
        data.get(start as usize..=end as usize)
            .map_or_else(Bytes::new, Bytes::copy_from_slice)
    })?;
    Ok(Reply::Bulk(range.unwrap_or_default()))
}

/// # Format
/// `SETRANGE key offset value`
pub fn setrange(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let offset = args.next_i64()?;
    let value = args.next_bytes()?;
    if offset < 0 {
        return Err(fail(error::OFFSET_OUT_OF_RANGE));
    }
    let max = ctx.max_string_len();
    ctx.ks().write(ctx.db(), key, |txn| {
        let old_len = txn_str(txn, 0)?.map(<[u8]>::len);
        if value.is_empty() {
            // Nothing to write: nothing is created either.
            return Ok(len_reply(old_len.unwrap_or(0)));
        }
        let too_long = || fail(error::STRING_TOO_LONG);
        let end = (offset as u64)
            .checked_add(value.len() as u64)
            .filter(|&end| end <= max)
            .ok_or_else(too_long)?;
        let end = usize::try_from(end).map_err(|_| too_long())?;
        let start = end - value.len();
        let ((), len) = edit_string(txn, 0, end, |buf| {
            if let Some(target) = buf.get_mut(start..end) {
                target.copy_from_slice(value);
            }
        })?;
        notify_write(ctx, old_len.is_none(), STRING, "setrange", key);
        Ok(len_reply(len))
    })
}

// ---------------------------------------------------------------------------
// Counters

fn incr_by(ctx: &Ctx<'_>, key: &[u8], delta: i64) -> CmdResult {
    ctx.ks().write(ctx.db(), key, |txn| {
        let current = match txn_str(txn, 0)? {
            Some(data) => parse_int(data)?,
            None => 0,
        };
        let value = current.checked_add(delta).ok_or(fail(error::OVERFLOW))?;
        let created = !txn.exists(0);
        txn.replace_value(0, Value::Str(int_text(value)));
        notify_write(ctx, created, STRING, "incrby", key);
        Ok(Reply::Int(value))
    })
}

/// # Format
/// `INCR key`
pub fn incr(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    incr_by(ctx, key, 1)
}

/// # Format
/// `DECR key`
pub fn decr(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    incr_by(ctx, key, -1)
}

/// # Format
/// `INCRBY key increment`
pub fn incrby(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let delta = args.next_i64()?;
    incr_by(ctx, key, delta)
}

/// # Format
/// `DECRBY key decrement`
pub fn decrby(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let delta = args.next_i64()?;
    let delta = delta.checked_neg().ok_or(fail(error::DECREMENT_OVERFLOW))?;
    incr_by(ctx, key, delta)
}

/// # Format
/// `INCRBYFLOAT key increment`
///
/// Redis adds in x87 `long double` and prints with `%.17Lf`; the
/// `long_double` module reproduces both exactly, so replies and stored text
/// match Redis byte for byte.
pub fn incrbyfloat(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    // Parsed before the shard lock; its error still comes after WRONGTYPE
    // and after the stored value's own, as in Redis.
    let increment = long_double::parse(args.next_bytes()?);
    ctx.ks().write(ctx.db(), key, |txn| {
        let current = match txn_str(txn, 0)? {
            Some(data) => parse_long_double(data)?,
            None => LongDouble::Finite(Finite::ZERO),
        };
        let increment = increment.ok_or(fail(error::NOT_FLOAT))?;
        let sum = current
            .finite_sum(increment)
            .ok_or(fail(error::NAN_OR_INFINITY))?;
        let text = Bytes::from(sum.to_human());
        let created = !txn.exists(0);
        txn.replace_value(0, Value::Str(text.clone()));
        notify_write(ctx, created, STRING, "incrbyfloat", key);
        Ok(Reply::Bulk(text))
    })
}

/// A stored value or an increment read as Redis's `string2ld` reads it.
fn parse_long_double(data: &[u8]) -> Result<LongDouble, Reply> {
    long_double::parse(data).ok_or(fail(error::NOT_FLOAT))
}

// ---------------------------------------------------------------------------
// LCS

/// # Format
/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]`
pub fn lcs(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let keys = args.rest().get(..2).ok_or(fail(error::SYNTAX))?;
    let values = ctx
        .ks()
        .read_many(ctx.db(), keys, ctx.read_options(), |i, entry| {
            if entry.is_none() {
                keymiss_nth(ctx, keys, i);
            }
            entry
                .map(|entry| as_str(entry.value()).map(Bytes::copy_from_slice))
                .transpose()
        });
    // A missing key is an empty string; any other type is an error.
    let mut strings = values
        .into_iter()
        .map(|value| value.map(Option::unwrap_or_default))
        .collect::<Result<Vec<Bytes>, Reply>>()
        .map_err(|_| fail(error::LCS_NOT_STRINGS))?
        .into_iter();
    let (Some(a), Some(b)) = (strings.next(), strings.next()) else {
        return Err(fail(error::SYNTAX));
    };
    args.next_bytes()?;
    args.next_bytes()?;

    let (mut want_len, mut want_idx, mut with_match_len, mut min_match_len) =
        (false, false, false, 0);
    while let Some(arg) = args.next() {
        match keyword(arg).as_slice() {
            b"IDX" => want_idx = true,
            b"LEN" => want_len = true,
            b"WITHMATCHLEN" => with_match_len = true,
            b"MINMATCHLEN" if !args.is_empty() => min_match_len = args.next_i64()?.max(0),
            _ => return Err(fail(error::SYNTAX)),
        }
    }
    if want_idx && want_len {
        return Err(fail(error::LCS_LEN_AND_IDX));
    }
    let limit = u64::from(u32::MAX - 1);
    if a.len() as u64 >= limit || b.len() as u64 >= limit {
        return Err(fail(error::LCS_TOO_LONG));
    }
    let table = LcsTable::build(&a, &b)?;
    let total = table.at(a.len(), b.len());
    if want_len {
        return Ok(Reply::Int(i64::from(total)));
    }
    let (text, ranges) = table.walk(&a, &b, total as usize);
    if !want_idx {
        return Ok(Reply::Bulk(Bytes::from(text)));
    }
    let matches = ranges
        .into_iter()
        .filter(|range| min_match_len == 0 || i64::from(range.len) >= min_match_len)
        .map(|range| {
            let pair =
                |start: usize, end: usize| Reply::Array(vec![len_reply(start), len_reply(end)]);
            let mut item = vec![
                pair(range.a_start, range.a_end),
                pair(range.b_start, range.b_end),
            ];
            if with_match_len {
                item.push(Reply::Int(i64::from(range.len)));
            }
            Reply::Array(item)
        })
        .collect();
    Ok(Reply::Map(vec![
        (Reply::bulk_str("matches"), Reply::Array(matches)),
        (Reply::bulk_str("len"), Reply::Int(i64::from(total))),
    ]))
}

/// The classic dynamic-programming table: `at(i, j)` is the LCS length of the
/// first `i` bytes of A and the first `j` bytes of B.
struct LcsTable {
    cells: Vec<u32>,
    width: usize,
}

/// One common run, as positions in A and in B (both inclusive).
struct LcsRange {
    a_start: usize,
    a_end: usize,
    b_start: usize,
    b_end: usize,
    len: u32,
}

impl LcsTable {
    fn build(a: &[u8], b: &[u8]) -> Result<LcsTable, Reply> {
        let width = b.len() + 1;
        let count = (a.len() as u64 + 1)
            .checked_mul(width as u64)
            .filter(|&count| count.saturating_mul(4) <= LCS_MAX_TABLE_BYTES)
            .and_then(|count| usize::try_from(count).ok())
            .ok_or(fail(error::LCS_NO_MEMORY))?;
        let mut cells = Vec::new();
        cells
            .try_reserve_exact(count)
            .map_err(|_| fail(error::LCS_NO_MEMORY))?;
        cells.resize(count, 0u32);
        let mut rows = cells.chunks_exact_mut(width);
        if let Some(mut previous) = rows.next().map(|row| &*row) {
            for (row, &byte_a) in rows.zip(a) {
                let mut left = 0;
                for ((cell, &byte_b), above) in
                    row.iter_mut().skip(1).zip(b).zip(previous.windows(2))
                {
                    let value = match above {
                        [diagonal, _] if byte_a == byte_b => diagonal + 1,
                        [_, up] => (*up).max(left),
                        _ => 0,
                    };
                    *cell = value;
                    left = value;
                }
                previous = row;
            }
        }
        Ok(LcsTable { cells, width })
    }

    fn at(&self, i: usize, j: usize) -> u32 {
        self.cells.get(i * self.width + j).copied().unwrap_or(0)
    }

    /// Walks back from the end as Redis does, collecting the common
    /// subsequence and its runs (last run first, like Redis's IDX reply).
    fn walk(&self, a: &[u8], b: &[u8], total: usize) -> (Vec<u8>, Vec<LcsRange>) {
        let mut text = vec![0u8; total];
        let mut ranges = Vec::new();
        let mut current: Option<LcsRange> = None;
        let (mut i, mut j, mut k) = (a.len(), b.len(), total);
        while i > 0 && j > 0 {
            let (byte_a, byte_b) = (a.get(i - 1).copied(), b.get(j - 1).copied());
            let mut emit = false;
            if byte_a == byte_b {
                if let (Some(slot), Some(byte)) =
                    (k.checked_sub(1).and_then(|k| text.get_mut(k)), byte_a)
                {
                    *slot = byte;
                }
                match current.as_mut() {
                    None => {
                        current = Some(LcsRange {
                            a_start: i - 1,
                            a_end: i - 1,
                            b_start: j - 1,
                            b_end: j - 1,
                            len: 0,
                        });
                    }
                    // Still contiguous in both strings: extend the run backwards.
                    Some(range) if range.a_start == i && range.b_start == j => {
                        range.a_start -= 1;
                        range.b_start -= 1;
                    }
                    Some(_) => emit = true,
                }
                if current
                    .as_ref()
                    .is_some_and(|r| r.a_start == 0 || r.b_start == 0)
                {
                    emit = true;
                }
                i -= 1;
                j -= 1;
                k = k.saturating_sub(1);
            } else {
                if self.at(i - 1, j) > self.at(i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                emit = current.is_some();
            }
            if emit {
                if let Some(mut range) = current.take() {
                    range.len = u32::try_from(range.a_end - range.a_start + 1).unwrap_or(u32::MAX);
                    ranges.push(range);
                }
            }
        }
        (text, ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_matches_redis_example() {
        let (a, b) = (b"ohmytext".as_slice(), b"mynewtext".as_slice());
        let Ok(table) = LcsTable::build(a, b) else {
            panic!("the table fits");
        };
        let total = table.at(a.len(), b.len());
        assert_eq!(total, 6);
        let (text, ranges) = table.walk(a, b, total as usize);
        assert_eq!(text, b"mytext");
        let spans: Vec<_> = ranges
            .iter()
            .map(|r| (r.a_start, r.a_end, r.b_start, r.b_end, r.len))
            .collect();
        assert_eq!(spans, vec![(4, 7, 5, 8, 4), (2, 3, 0, 1, 2)]);
    }
}
