//! The generic keyspace family: DEL/UNLINK, EXISTS, TYPE, the EXPIRE and TTL
//! families, PERSIST, RENAME(NX), COPY, MOVE, KEYS, SCAN, RANDOMKEY, TOUCH,
//! OBJECT and MEMORY (its per-key and allocator parts). Replies, error texts and keyspace-hit accounting follow Redis 7.
//!
//! Which lookups count a keyspace hit or miss follows Redis's `lookupKey*`
//! flags: EXISTS, TYPE, the TTL family and OBJECT count without touching
//! (`LOOKUP_NOTOUCH`); TOUCH and COPY's source count and touch; the write
//! commands (DEL, EXPIRE, PERSIST, RENAME, MOVE) count nothing.

use bytes::Bytes;

use super::args::{parse_int, Args, CmdResult};
use super::context::Ctx;
use super::pubsub::{keymiss, keymiss_nth, notify};
use crate::error;
use crate::keyspace::{now_ms, Entry, ReadOptions, ValueType};
use crate::protocol::Reply;
use crate::pubsub::notify::{GENERIC, NEW};

/// Lookups that count a hit or miss but leave LRU/LFU information alone.
const NO_TOUCH: ReadOptions = ReadOptions { no_touch: true };

static OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// UNLINK shares DEL's body: values are flat strings, cheap to free inline
/// (background freeing matters once large collections arrive).
///
/// # Format
/// `DEL key [key ...]`, `UNLINK key [key ...]`
pub fn del(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let db = ctx.db();
    let keys = args.rest();
    let removed = ctx
        .ks()
        .write_many(keys.iter().map(|key| (db, key.as_ref())), |txn| {
            // A key named twice is removed once and counted once, as in Redis.
            (0..keys.len())
                .filter(|&i| {
                    let removed = txn.remove(i).is_some();
                    if removed {
                        notify(ctx, GENERIC, "del", txn.key(i));
                    }
                    removed
                })
                .count()
        });
    Ok(Reply::Int(removed as i64))
}

/// A key named twice counts twice.
///
/// # Format
/// `EXISTS key [key ...]`
pub fn exists(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let keys = args.rest();
    let found = ctx.ks().read_many(ctx.db(), keys, NO_TOUCH, |i, entry| {
        if entry.is_none() {
            keymiss_nth(ctx, keys, i);
        }
        entry.is_some()
    });
    Ok(Reply::Int(found.iter().filter(|&&hit| hit).count() as i64))
}

/// # Format
/// `TYPE key`
pub fn type_of(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let name = ctx.ks().read(ctx.db(), key, NO_TOUCH, |entry| {
        if entry.is_none() {
            keymiss(ctx, key);
        }
        entry.map_or("none", |entry| entry.value().value_type().name())
    });
    Ok(Reply::Simple(name))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
}

#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl ExpireFlags {
    /// Whether a key whose deadline is `current` (None: no TTL) may get `when`.
    fn allow(&self, current: Option<i64>, when: i64) -> bool {
        if self.nx && current.is_some() {
            return false;
        }
        if self.xx && current.is_none() {
            return false;
        }
        // A key without a TTL counts as an infinite TTL: GT never beats it, LT always does.
        if self.gt && current.is_none_or(|at| when <= at) {
            return false;
        }
        if self.lt && current.is_some_and(|at| when >= at) {
            return false;
        }
        true
    }
}

fn parse_expire_flags(options: &[Bytes]) -> Result<ExpireFlags, Reply> {
    let mut flags = ExpireFlags::default();
    for option in options {
        let slot = match option.to_ascii_lowercase().as_slice() {
            b"nx" => &mut flags.nx,
            b"xx" => &mut flags.xx,
            b"gt" => &mut flags.gt,
            b"lt" => &mut flags.lt,
            _ => return Err(error::unsupported_option(option)),
        };
        *slot = true;
    }
    if flags.nx && (flags.xx || flags.gt || flags.lt) {
        return Err(Reply::StaticError(error::NX_XX_GT_LT));
    }
    if flags.gt && flags.lt {
        return Err(Reply::StaticError(error::GT_AND_LT));
    }
    Ok(flags)
}

/// The shared body of EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT (`expireGenericCommand`).
fn expire_generic(
    ctx: &mut Ctx<'_>,
    args: &mut Args<'_>,
    name: &str,
    unit: Unit,
    relative: bool,
) -> CmdResult {
    let key = args.next_bytes()?;
    let param = args.next_bytes()?;
    // Redis rejects a bad option before it looks at the number.
    let flags = parse_expire_flags(args.rest())?;
    let mut when = parse_int(param)?;
    if unit == Unit::Seconds {
        when = when
            .checked_mul(1000)
            .ok_or_else(|| error::invalid_expire(name))?;
    }
    ctx.ks().write(ctx.db(), key, |txn| {
        let now = i64::try_from(txn.now_ms()).unwrap_or(i64::MAX);
        let base = if relative { now } else { 0 };
        let when = when
            .checked_add(base)
            .ok_or_else(|| error::invalid_expire(name))?;
        let Some(entry) = txn.get(0) else {
            return Ok(Reply::Int(0));
        };
        let current = entry
            .expire_at()
            .map(|at| i64::try_from(at).unwrap_or(i64::MAX));
        if !flags.allow(current, when) {
            return Ok(Reply::Int(0));
        }
        if when <= now {
            txn.remove(0);
            notify(ctx, GENERIC, "del", key);
        } else {
            // `when > now >= 0`, so the conversion cannot fail.
            txn.set_expire(0, u64::try_from(when).ok());
            notify(ctx, GENERIC, "expire", key);
        }
        Ok(Reply::Int(1))
    })
}

/// # Format
/// `EXPIRE key seconds [NX | XX | GT | LT]`
pub fn expire(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    expire_generic(ctx, args, "expire", Unit::Seconds, true)
}

/// # Format
/// `PEXPIRE key milliseconds [NX | XX | GT | LT]`
pub fn pexpire(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    expire_generic(ctx, args, "pexpire", Unit::Millis, true)
}

/// # Format
/// `EXPIREAT key unix-time-seconds [NX | XX | GT | LT]`
pub fn expireat(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    expire_generic(ctx, args, "expireat", Unit::Seconds, false)
}

/// # Format
/// `PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT]`
pub fn pexpireat(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    expire_generic(ctx, args, "pexpireat", Unit::Millis, false)
}

/// The shared body of TTL, PTTL, EXPIRETIME and PEXPIRETIME (`ttlGenericCommand`).
fn ttl_generic(ctx: &mut Ctx<'_>, args: &mut Args<'_>, unit: Unit, absolute: bool) -> CmdResult {
    let key = args.next_bytes()?;
    let reply = ctx.ks().read(ctx.db(), key, NO_TOUCH, |entry| {
        let Some(entry) = entry else {
            keymiss(ctx, key);
            return -2;
        };
        let Some(at) = entry.expire_at() else {
            return -1;
        };
        let at = i64::try_from(at).unwrap_or(i64::MAX);
        let ms = if absolute {
            at
        } else {
            at.saturating_sub(i64::try_from(now_ms()).unwrap_or(0))
                .max(0)
        };
        match unit {
            Unit::Millis => ms,
            // Redis rounds to the nearest second.
            Unit::Seconds => ms.saturating_add(500) / 1000,
        }
    });
    Ok(Reply::Int(reply))
}

/// # Format
/// `TTL key`
pub fn ttl(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, Unit::Seconds, false)
}

/// # Format
/// `PTTL key`
pub fn pttl(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, Unit::Millis, false)
}

/// # Format
/// `EXPIRETIME key`
pub fn expiretime(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, Unit::Seconds, true)
}

/// # Format
/// `PEXPIRETIME key`
pub fn pexpiretime(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, Unit::Millis, true)
}

/// # Format
/// `PERSIST key`
pub fn persist(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let removed = ctx.ks().write(ctx.db(), key, |txn| {
        let volatile = txn.get(0).is_some_and(|entry| entry.expire_at().is_some());
        volatile && txn.set_expire(0, None)
    });
    if removed {
        notify(ctx, GENERIC, "persist", key);
    }
    Ok(Reply::Int(i64::from(removed)))
}

/// The shared body of RENAME and RENAMENX: the entry moves whole, so its TTL
/// and access information go with it, as Redis moves the same object.
fn rename_generic(ctx: &mut Ctx<'_>, args: &mut Args<'_>, nx: bool) -> CmdResult {
    let src = args.next_bytes()?;
    let dst = args.next_bytes()?;
    let db = ctx.db();
    if src == dst {
        let exists = ctx.ks().write(db, src, |txn| txn.exists(0));
        return match (exists, nx) {
            (false, _) => Err(Reply::StaticError(error::NO_SUCH_KEY)),
            (true, false) => Ok(Reply::OK),
            (true, true) => Ok(Reply::Int(0)),
        };
    }
    ctx.ks()
        .write_many([(db, src.as_ref()), (db, dst.as_ref())], |txn| {
            if !txn.exists(0) {
                return Err(Reply::StaticError(error::NO_SUCH_KEY));
            }
            if nx && txn.exists(1) {
                return Ok(Reply::Int(0));
            }
            if let Some(entry) = txn.remove(0) {
                txn.insert_entry(1, entry);
                // Redis deletes the destination, then adds it (`new`).
                notify(ctx, NEW, "new", dst);
                notify(ctx, GENERIC, "rename_from", src);
                notify(ctx, GENERIC, "rename_to", dst);
            }
            Ok(if nx { Reply::Int(1) } else { Reply::OK })
        })
}

/// # Format
/// `RENAME key newkey`
pub fn rename(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    rename_generic(ctx, args, false)
}

/// # Format
/// `RENAMENX key newkey`
pub fn renamenx(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    rename_generic(ctx, args, true)
}

/// A database index as Redis's `getIntFromObjectOrReply` + `selectDb` check it.
fn parse_db_index(ctx: &Ctx<'_>, arg: &[u8]) -> Result<usize, Reply> {
    let index = parse_int(arg)?;
    let index = i32::try_from(index).map_err(|_| Reply::StaticError(error::INT_OUT_OF_RANGE))?;
    usize::try_from(index)
        .ok()
        .filter(|&index| index < ctx.state.databases())
        .ok_or(Reply::StaticError(error::DB_INDEX_OUT_OF_RANGE))
}

/// # Format
/// `COPY source destination [DB destination-db] [REPLACE]`
pub fn copy(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let src = args.next_bytes()?;
    let dst = args.next_bytes()?;
    let src_db = ctx.db();
    let mut dst_db = src_db;
    let mut replace = false;
    while !args.is_empty() {
        if args.eat("REPLACE") {
            replace = true;
        } else if args.remaining() >= 2 && args.eat("DB") {
            dst_db = parse_db_index(ctx, args.next_bytes()?)?;
        } else {
            return Err(Reply::StaticError(error::SYNTAX));
        }
    }
    if src_db == dst_db && src == dst {
        return Err(Reply::StaticError(error::SAME_OBJECT));
    }
    // Redis looks the source up as a read (a counted, touching lookup) and
    // the destination as a write; the copy itself happens under both locks.
    let found = ctx
        .ks()
        .read(src_db, src, ctx.read_options(), |entry| entry.is_some());
    if !found {
        keymiss(ctx, src);
        return Ok(Reply::Int(0));
    }
    let copied = ctx
        .ks()
        .write_many([(src_db, src.as_ref()), (dst_db, dst.as_ref())], |txn| {
            let Some(source) = txn.get(0) else {
                return false;
            };
            if !replace && txn.exists(1) {
                return false;
            }
            let now_secs = u32::try_from(txn.now_ms() / 1000).unwrap_or(u32::MAX);
            // A copy is a new object: fresh access information, same encoding.
            let entry = source.copy(now_secs);
            txn.insert_entry(1, entry);
            ctx.state.notify(NEW, "new", dst_db, dst);
            ctx.state.notify(GENERIC, "copy_to", dst_db, dst);
            true
        });
    Ok(Reply::Int(i64::from(copied)))
}

/// # Format
/// `MOVE key db`
pub fn move_key(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let dst_db = parse_db_index(ctx, args.next_bytes()?)?;
    let src_db = ctx.db();
    if src_db == dst_db {
        return Err(Reply::StaticError(error::SAME_OBJECT));
    }
    let moved = ctx
        .ks()
        .write_many([(src_db, key.as_ref()), (dst_db, key.as_ref())], |txn| {
            if !txn.exists(0) || txn.exists(1) {
                return false;
            }
            match txn.remove(0) {
                Some(entry) => {
                    txn.insert_entry(1, entry);
                    ctx.state.notify(NEW, "new", dst_db, key);
                    ctx.state.notify(GENERIC, "move_from", src_db, key);
                    ctx.state.notify(GENERIC, "move_to", dst_db, key);
                    true
                }
                None => false,
            }
        });
    Ok(Reply::Int(i64::from(moved)))
}

/// # Format
/// `KEYS pattern`
pub fn keys(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let pattern = args.next_bytes()?;
    Ok(Reply::from_bulks(ctx.ks().keys(ctx.db(), pattern)))
}

/// A SCAN cursor as Redis's `strtoul`-based parser accepts it: optional sign
/// (a minus wraps, as in C), decimal digits, nothing else; the empty string is 0.
pub(super) fn parse_cursor(arg: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::StaticError(error::INVALID_CURSOR);
    let (negative, digits) = match arg.split_first() {
        None => return Ok(0),
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        Some(_) => (false, arg),
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut value: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return Err(invalid());
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// # Format
/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
pub fn scan(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.next_bytes()?)?;
    let mut count: i64 = 10;
    let mut pattern: Option<&[u8]> = None;
    // Outer None: no TYPE filter; inner None: a type name no value can have.
    let mut type_filter: Option<Option<ValueType>> = None;
    while !args.is_empty() {
        if args.remaining() < 2 {
            return Err(Reply::StaticError(error::SYNTAX));
        }
        if args.eat("COUNT") {
            count = args.next_i64()?;
            if count < 1 {
                return Err(Reply::StaticError(error::SYNTAX));
            }
        } else if args.eat("MATCH") {
            let text: &[u8] = args.next_bytes()?;
            pattern = (text != b"*").then_some(text);
        } else if args.eat("TYPE") {
            type_filter = Some(ValueType::from_name(args.next_bytes()?));
        } else {
            return Err(Reply::StaticError(error::SYNTAX));
        }
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let page = ctx
        .ks()
        .scan(ctx.db(), cursor, count, pattern, type_filter.flatten());
    // Redis 7 answers an unknown TYPE with empty pages, not an error; the
    // cursor still advances so the client's loop ends.
    let keys = if type_filter == Some(None) {
        Vec::new()
    } else {
        page.keys
    };
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(page.cursor.to_string())),
        Reply::from_bulks(keys),
    ]))
}

/// # Format
/// `RANDOMKEY`
pub fn randomkey(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::opt_bulk(ctx.ks().random_key(ctx.db())))
}

/// Touches even under CLIENT NO-TOUCH, as Redis 7.2 does.
///
/// # Format
/// `TOUCH key [key ...]`
pub fn touch(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let keys = args.rest();
    let found = ctx.ks().read_many(
        ctx.db(),
        keys,
        ReadOptions { no_touch: false },
        |i, entry| {
            if entry.is_none() {
                keymiss_nth(ctx, keys, i);
            }
            entry.is_some()
        },
    );
    Ok(Reply::Int(found.iter().filter(|&&hit| hit).count() as i64))
}

fn lfu_policy(ctx: &Ctx<'_>) -> bool {
    ctx.state
        .config
        .read()
        .config
        .memory
        .maxmemory_policy
        .ends_with("-lfu")
}

/// OBJECT lookups count a hit or miss without touching; a missing key is nil.
fn object_lookup<R>(
    ctx: &Ctx<'_>,
    args: &mut Args<'_>,
    f: impl FnOnce(&Entry) -> R,
) -> Result<Option<R>, Reply> {
    let key = args.next_bytes()?;
    Ok(ctx.ks().read(ctx.db(), key, NO_TOUCH, |entry| entry.map(f)))
}

/// # Format
/// `OBJECT ENCODING key`
pub fn object_encoding(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let encoding = object_lookup(ctx, args, |entry| entry.encoding())?;
    Ok(encoding.map_or(Reply::Nil, |name| {
        Reply::bulk(Bytes::from_static(name.as_bytes()))
    }))
}

/// # Format
/// `OBJECT FREQ key`
pub fn object_freq(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let lfu = lfu_policy(ctx);
    let decay_minutes = ctx
        .state
        .config
        .read()
        .get("lfu-decay-time")
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(1);
    let now_minutes = now_ms() / 60_000;
    let freq = object_lookup(ctx, args, |entry| {
        // Redis's LFUDecrAndReturn: the counter loses one per decay period idle.
        let idle_minutes = now_minutes.saturating_sub(u64::from(entry.access()) / 60);
        let periods = idle_minutes.checked_div(decay_minutes).unwrap_or(0);
        u64::from(entry.freq()).saturating_sub(periods)
    })?;
    let Some(freq) = freq else {
        return Ok(Reply::Nil);
    };
    if !lfu {
        return Err(Reply::StaticError(error::LFU_NOT_SELECTED));
    }
    Ok(Reply::Int(i64::try_from(freq).unwrap_or(0)))
}

/// # Format
/// `OBJECT IDLETIME key`
pub fn object_idletime(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let lfu = lfu_policy(ctx);
    let now_secs = now_ms() / 1000;
    let idle = object_lookup(ctx, args, |entry| {
        now_secs.saturating_sub(u64::from(entry.access()))
    })?;
    let Some(idle) = idle else {
        return Ok(Reply::Nil);
    };
    if lfu {
        return Err(Reply::StaticError(error::LFU_SELECTED));
    }
    Ok(Reply::Int(i64::try_from(idle).unwrap_or(i64::MAX)))
}

/// # Format
/// `OBJECT REFCOUNT key`
pub fn object_refcount(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let sharing = ctx.state.config.read().config.memory.shares_integers();
    let refcount = object_lookup(ctx, args, |entry| entry.refcount(sharing))?;
    Ok(refcount.map_or(Reply::Nil, Reply::Int))
}

/// # Format
/// `OBJECT HELP`
pub fn object_help(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Array(
        OBJECT_HELP.iter().copied().map(Reply::Simple).collect(),
    ))
}

/// The bytes a key and its value take in memory, as `maxmemory` counts
/// them: collections keep their size up to date with every change, so
/// there is nothing to sample and SAMPLES is only checked.
///
/// # Format
/// `MEMORY USAGE key [SAMPLES count]`
pub fn memory_usage(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    while !args.is_empty() {
        if !args.eat("samples") || args.is_empty() {
            return Err(Reply::StaticError(error::SYNTAX));
        }
        if args.next_i64()? < 0 {
            return Err(Reply::StaticError(error::SYNTAX));
        }
    }
    let size = ctx
        .ks()
        .read(ctx.db(), key, NO_TOUCH, |entry| entry.map(Entry::mem_size));
    Ok(size.map_or(Reply::Nil, |size| {
        Reply::Int(i64::try_from(size).unwrap_or(i64::MAX))
    }))
}

/// # Format
/// `MEMORY MALLOC-STATS`
pub fn memory_malloc_stats(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    // Redis's answer when it is built without jemalloc, as strata is.
    Ok(Reply::bulk(Bytes::from_static(
        b"Stats not supported for the current allocator",
    )))
}

/// # Format
/// `MEMORY PURGE`
pub fn memory_purge(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Simple("OK"))
}

/// # Format
/// `MEMORY HELP`
pub fn memory_help(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(super::server::help(
        "MEMORY",
        &[
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_parses_like_strtoul() {
        assert_eq!(parse_cursor(b"").ok(), Some(0));
        assert_eq!(parse_cursor(b"0").ok(), Some(0));
        assert_eq!(parse_cursor(b"+17").ok(), Some(17));
        assert_eq!(parse_cursor(b"007").ok(), Some(7));
        assert_eq!(parse_cursor(b"-1").ok(), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615").ok(), Some(u64::MAX));
        for bad in [
            &b"18446744073709551616"[..],
            b"+",
            b"-",
            b" 1",
            b"1 ",
            b"0x1",
            b"1.0",
        ] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expire_flags_follow_redis_7() {
        let flags = |words: &[&str]| {
            let args: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
            parse_expire_flags(&args)
        };
        assert!(flags(&["NX", "XX"]).is_err());
        assert!(flags(&["nx", "lt"]).is_err());
        assert!(flags(&["GT", "LT"]).is_err());
        assert!(flags(&["maybe"]).is_err());
        let Ok(gt) = flags(&["gt", "XX"]) else {
            panic!("GT XX is valid");
        };
        assert!(!gt.allow(None, 10));
        assert!(!gt.allow(Some(10), 10));
        assert!(gt.allow(Some(10), 11));
        let Ok(lt) = flags(&["LT"]) else {
            panic!("LT is valid");
        };
        // No TTL is an infinite one: any deadline is less.
        assert!(lt.allow(None, i64::MIN));
        assert!(!lt.allow(Some(10), 10));
        assert!(lt.allow(Some(10), 9));
    }
}
