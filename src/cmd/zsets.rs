//! Sorted-set commands: ZADD and friends, ranges by rank, score and member
//! (lex), pops, set algebra (ZUNION, ZINTER, ZDIFF and their STORE forms),
//! ZRANDMEMBER and ZSCAN. Argument parsing, the order in which errors are
//! found, reply shapes and number formats follow Redis 7.0's `t_zset.c`;
//! ZRANK/ZREVRANK also take Redis 7.2's WITHSCORE.
//!
//! Scores are parsed as Redis parses them: `strtod` over the whole
//! argument (hexadecimal included, NaN refused), with `string2d`'s extra
//! rules for scores and weights and `zslParseRange`'s looser ones for range
//! ends. With scores, RESP2 replies are flat arrays and RESP3 replies are
//! `[member, score]` pairs, as Redis 7.0 answers each protocol.

use bytes::Bytes;
use indexmap::IndexMap;

use super::args::{parse_int, Args, CmdResult};
use super::context::Ctx;
use super::pubsub::{keymiss, notify, notify_write};
use crate::error;
use crate::keyspace::types::{
    limits, Collection, LexBound, LexRange, Member, Score, ScoreRange, Set, ZSet,
};
use crate::keyspace::{EntryMut, Txn, Value, ValueRef};
use crate::protocol::{format_double, parse_i64, Reply, Version};
use crate::pubsub::notify::{GENERIC as GENERIC_EVENTS, ZSET as ZSET_EVENTS};
use crate::state::ServerState;

/// Above this many elements a ZRANDMEMBER with a negative count is refused:
/// Redis would stream them, strata builds the reply first.
const RANDOM_REPLY_MAX: u64 = 1 << 20;

/// Redis's `ZRANDMEMBER_SUB_STRATEGY_MUL`: asking for more than a third of
/// the set copies it and removes random members instead of picking them.
const RANDOM_SUB_STRATEGY_MUL: u64 = 3;

fn fail(text: &'static str) -> Reply {
    Reply::StaticError(text)
}

fn wrongtype() -> Reply {
    fail(error::WRONGTYPE)
}

fn resp3(ctx: &Ctx<'_>) -> bool {
    ctx.session.version == Version::Resp3
}

/// The sorted set a value holds; WRONGTYPE for every other type.
fn zset_of(value: ValueRef<'_>) -> Result<&ZSet, Reply> {
    value.as_zset().ok_or_else(wrongtype)
}

/// Runs `f` on the sorted set at `key` under its shard lock, counting a hit
/// or miss (a miss fires `keymiss`, as Redis's `lookupKeyRead` does);
/// `None` when the key is missing.
fn with_zset<R>(ctx: &Ctx<'_>, key: &[u8], f: impl FnOnce(&ZSet) -> R) -> Result<Option<R>, Reply> {
    ctx.ks().read(ctx.db(), key, ctx.read_options(), |entry| {
        if entry.is_none() {
            keymiss(ctx, key);
        }
        entry.map(|entry| zset_of(entry.value()).map(f)).transpose()
    })
}

/// The sorted set at key `i` of a transaction, to change in place.
fn zset_mut<'t>(txn: &'t mut Txn<'_>, i: usize) -> Result<&'t mut ZSet, Reply> {
    txn.entry_mut(i)
        .and_then(EntryMut::zset_mut)
        .ok_or_else(wrongtype)
}

/// Whether key `i` holds no members after a change: the keyspace deletes an
/// emptied collection only when the transaction ends.
fn left_empty(txn: &Txn<'_>, i: usize) -> bool {
    txn.value(i)
        .and_then(ValueRef::as_zset)
        .is_none_or(|zset| zset.is_empty())
}

/// Redis's `del` for a key the command deleted (emptied, or replaced by an
/// empty result).
fn notify_deleted(ctx: &Ctx<'_>, deleted: bool, key: &[u8]) {
    if deleted {
        notify(ctx, GENERIC_EVENTS, "del", key);
    }
}

fn bulk(member: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(member))
}

fn count_reply(count: usize) -> Reply {
    Reply::Int(i64::try_from(count).unwrap_or(i64::MAX))
}

/// Appends a member, and its score when `withscores`: as a `[member,
/// score]` pair when `nested` (RESP3), else flat.
fn push_scored(out: &mut Vec<Reply>, member: &[u8], score: f64, withscores: bool, nested: bool) {
    if !withscores {
        out.push(bulk(member));
    } else if nested {
        out.push(Reply::Array(vec![bulk(member), Reply::Double(score)]));
    } else {
        out.push(bulk(member));
        out.push(Reply::Double(score));
    }
}

fn scored_reply<'a>(
    items: impl Iterator<Item = (&'a [u8], f64)>,
    withscores: bool,
    nested: bool,
) -> Reply {
    let mut out = Vec::new();
    for (member, score) in items {
        push_scored(&mut out, member, score, withscores, nested);
    }
    Reply::Array(out)
}

// ---------------------------------------------------------------------------
// Numbers as Redis reads them

/// C's `strtod` on a prefix of `text`: the value, the bytes it used (0 when
/// nothing converts, leading spaces included), and whether the result is
/// out of range (`ERANGE`: overflow to infinity or underflow to zero).
fn strtod(text: &[u8]) -> (f64, usize, bool) {
    let start = text
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .unwrap_or(text.len());
    let body = text.get(start..).unwrap_or_default();
    let (negative, signed) = match body.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let rest = body.get(signed..).unwrap_or_default();
    let sign = if negative { -1.0 } else { 1.0 };
    let lower = |n: usize| rest.get(..n).map(<[u8]>::to_ascii_lowercase);
    if lower(3).as_deref() == Some(b"inf") {
        let used = if lower(8).as_deref() == Some(b"infinity") {
            8
        } else {
            3
        };
        return (sign * f64::INFINITY, start + signed + used, false);
    }
    if lower(3).as_deref() == Some(b"nan") {
        // Every caller refuses NaN, so how much of `nan(chars)` strtod
        // would take does not matter.
        return (f64::NAN, start + signed + 3, false);
    }
    if let [b'0', b'x' | b'X', hex @ ..] = rest {
        if let Some((value, used, range)) = hex_float(hex) {
            return (sign * value, start + signed + 2 + used, range);
        }
    }
    let digits = |from: usize| {
        rest.get(from..)
            .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count())
    };
    let int_digits = digits(0);
    let mut used = int_digits;
    let mut frac_digits = 0;
    if rest.get(used) == Some(&b'.') {
        frac_digits = digits(used + 1);
        if int_digits + frac_digits > 0 {
            used += 1 + frac_digits;
        }
    }
    if int_digits + frac_digits == 0 {
        return (0.0, 0, false);
    }
    if matches!(rest.get(used), Some(b'e' | b'E')) {
        let signed_exp = usize::from(matches!(rest.get(used + 1), Some(b'+' | b'-')));
        let exp_digits = digits(used + 1 + signed_exp);
        if exp_digits > 0 {
            used += 1 + signed_exp + exp_digits;
        }
    }
    let number = rest.get(..used).unwrap_or_default();
    let value: f64 = std::str::from_utf8(number)
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    let nonzero = number
        .iter()
        .take_while(|b| !matches!(b, b'e' | b'E'))
        .any(|b| matches!(b, b'1'..=b'9'));
    let range = value.is_infinite() || (value == 0.0 && nonzero);
    (sign * value, start + signed + used, range)
}

/// The hexadecimal part of a `0x` float (`1f.8p-3`): value, bytes used,
/// out of range. `None` when no hex digit follows (strtod then reads `0`).
fn hex_float(text: &[u8]) -> Option<(f64, usize, bool)> {
    let mut mantissa: u64 = 0;
    let mut exponent: i64 = 0;
    let mut sticky = false;
    let mut any = false;
    let mut used = 0;
    let mut after_point = false;
    while let Some(&b) = text.get(used) {
        let digit = match b {
            b'.' if !after_point => {
                after_point = true;
                used += 1;
                continue;
            }
            _ => match (b as char).to_digit(16) {
                Some(d) => u64::from(d),
                None => break,
            },
        };
        any = true;
        if mantissa >> 60 == 0 {
            mantissa = mantissa << 4 | digit;
            if after_point {
                exponent -= 4;
            }
        } else {
            // Digits past 64 bits only decide rounding.
            sticky |= digit != 0;
            if !after_point {
                exponent += 4;
            }
        }
        used += 1;
    }
    if !any {
        return None;
    }
    if matches!(text.get(used), Some(b'p' | b'P')) {
        let signed = usize::from(matches!(text.get(used + 1), Some(b'+' | b'-')));
        let negative = text.get(used + 1) == Some(&b'-');
        let digits: Vec<u8> = text
            .get(used + 1 + signed..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        if !digits.is_empty() {
            let mut value: i64 = 0;
            for d in &digits {
                value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
            }
            exponent = exponent.saturating_add(if negative { -value } else { value });
            used += 1 + signed + digits.len();
        }
    }
    if sticky {
        mantissa |= 1;
    }
    let mut value = mantissa as f64;
    // Scale in steps that stay exact until the last one.
    let mut e = exponent.clamp(-3000, 3000);
    while e != 0 && value != 0.0 && value.is_finite() {
        let step = e.clamp(-1000, 1000);
        value *= 2f64.powi(step as i32);
        e -= step;
    }
    let range = value.is_infinite() || (value == 0.0 && mantissa != 0);
    Some((value, used, range))
}

/// A score, increment or weight as Redis's `string2d` accepts it: all of
/// the argument, no leading space, no NaN, no overflow or underflow to 0.
pub(super) fn parse_score(arg: &[u8]) -> Option<f64> {
    if arg
        .first()
        .is_none_or(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
    {
        return None;
    }
    let (value, used, range) = strtod(arg);
    let out_of_range = range && (value.is_infinite() || value == 0.0);
    (used == arg.len() && !out_of_range && !value.is_nan()).then_some(value)
}

/// One end of a score range as `zslParseRange` reads it: `(` for an open
/// end, then plain `strtod` up to the first NUL (so an empty string is 0
/// and 1e400 is inf).
fn parse_range_end(arg: &[u8]) -> Option<(f64, bool)> {
    let text = arg.split(|&b| b == 0).next().unwrap_or_default();
    let (exclusive, body) = match text.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, text),
    };
    let (value, used, _) = strtod(body);
    (used == body.len() && !value.is_nan()).then_some((value, exclusive))
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
    let invalid = || fail(error::MIN_MAX_NOT_FLOAT);
    let (min, min_ex) = parse_range_end(min).ok_or_else(invalid)?;
    let (max, max_ex) = parse_range_end(max).ok_or_else(invalid)?;
    Ok(ScoreRange {
        min,
        max,
        min_ex,
        max_ex,
    })
}

fn parse_lex_end(arg: &[u8]) -> Option<LexBound<'_>> {
    // Redis reads the C string: `+` followed by a NUL byte is still `+`.
    let alone = arg.get(1).is_none_or(|&b| b == 0);
    match arg.split_first() {
        Some((b'+', _)) if alone => Some(LexBound::Max),
        Some((b'-', _)) if alone => Some(LexBound::Min),
        Some((b'(', rest)) => Some(LexBound::Exclusive(rest)),
        Some((b'[', rest)) => Some(LexBound::Inclusive(rest)),
        _ => None,
    }
}

fn parse_lex_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<LexRange<'a>, Reply> {
    let invalid = || fail(error::MIN_MAX_NOT_LEX);
    Ok(LexRange {
        min: parse_lex_end(min).ok_or_else(invalid)?,
        max: parse_lex_end(max).ok_or_else(invalid)?,
    })
}

/// Redis's `getRangeLongFromObjectOrReply(0 or 1, LONG_MAX, msg)`: both a
/// non-integer and a value below `min` answer `msg`.
fn parse_at_least(arg: &[u8], min: i64, msg: &'static str) -> Result<i64, Reply> {
    parse_i64(arg).filter(|&n| n >= min).ok_or(fail(msg))
}

// ---------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK

#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

enum Added {
    New,
    Updated,
    /// Processed, the score unchanged.
    Same,
    /// Not processed: NX, XX, GT or LT said no.
    Skipped,
}

/// Redis's `zsetAdd`: the outcome and the member's score after it;
/// `Err` when an increment makes NaN.
fn add_one(zset: &mut ZSet, member: &[u8], score: f64, f: AddFlags) -> Result<(Added, f64), Reply> {
    match zset.score(member) {
        Some(_) if f.nx => Ok((Added::Skipped, score)),
        Some(current) => {
            let score = if f.incr { score + current } else { score };
            if score.is_nan() {
                return Err(fail(error::SCORE_NAN));
            }
            if (f.lt && score >= current) || (f.gt && score <= current) {
                return Ok((Added::Skipped, score));
            }
            // -0 and 0 are equal: the stored score stays as it was.
            if score != current {
                zset.insert(member, score);
                Ok((Added::Updated, score))
            } else {
                Ok((Added::Same, score))
            }
        }
        None if f.xx => Ok((Added::Skipped, score)),
        None => {
            zset.insert(member, score);
            Ok((Added::New, score))
        }
    }
}

fn zadd_generic(ctx: &mut Ctx<'_>, args: &mut Args<'_>, incr: bool) -> CmdResult {
    let key = args.next_bytes()?;
    let mut f = AddFlags {
        incr,
        ..AddFlags::default()
    };
    let mut ch = false;
    loop {
        if args.eat("nx") {
            f.nx = true;
        } else if args.eat("xx") {
            f.xx = true;
        } else if args.eat("ch") {
            ch = true;
        } else if args.eat("incr") {
            f.incr = true;
        } else if args.eat("gt") {
            f.gt = true;
        } else if args.eat("lt") {
            f.lt = true;
        } else {
            break;
        }
    }
    let pairs = args.rest();
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(fail(error::SYNTAX));
    }
    if f.nx && f.xx {
        return Err(fail(error::ZADD_XX_AND_NX));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(fail(error::ZADD_GT_LT_NX));
    }
    if f.incr && pairs.len() > 2 {
        return Err(fail(error::ZADD_INCR_PAIR));
    }
    let scores = pairs
        .iter()
        .step_by(2)
        .map(|arg| parse_score(arg).ok_or(fail(error::NOT_FLOAT)))
        .collect::<Result<Vec<f64>, Reply>>()?;
    let members = pairs.iter().skip(1).step_by(2);
    let (reply, changed, created) = ctx.ks().write(ctx.db(), key, |txn| {
        let (mut added, mut updated, mut processed) = (0usize, 0usize, 0usize);
        let mut last = 0.0;
        let exists = match txn.value(0) {
            Some(value) => zset_of(value).map(|_| true)?,
            None => false,
        };
        if exists || !f.xx {
            if !exists {
                txn.insert(0, Value::ZSet(ZSet::default()), None);
            }
            let zset = zset_mut(txn, 0)?;
            for (member, &score) in members.zip(&scores) {
                let (outcome, score) = add_one(zset, member, score, f)?;
                match outcome {
                    Added::New => added += 1,
                    Added::Updated => updated += 1,
                    Added::Same | Added::Skipped => {}
                }
                if !matches!(outcome, Added::Skipped) {
                    processed += 1;
                }
                last = score;
            }
        }
        let reply = if f.incr {
            if processed > 0 {
                Reply::Double(last)
            } else {
                Reply::Nil
            }
        } else {
            count_reply(if ch { added + updated } else { added })
        };
        Ok::<_, Reply>((reply, added + updated > 0, !exists))
    })?;
    // An INCR that leaves the score as it was changes nothing: no event.
    if changed {
        let event = if f.incr { "zincr" } else { "zadd" };
        notify_write(ctx, created, ZSET_EVENTS, event, key);
    }
    Ok(reply)
}

/// # Format
/// `ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]`
pub fn zadd(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zadd_generic(ctx, args, false)
}

/// # Format
/// `ZINCRBY key increment member`
///
/// Parsed as ZADD INCR is, as Redis does (so `ZINCRBY key nx m` is a
/// syntax error, not a bad float).
pub fn zincrby(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zadd_generic(ctx, args, true)
}

/// # Format
/// `ZREM key member [member ...]`
pub fn zrem(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let members = args.rest();
    let (deleted, emptied) = ctx.ks().write(ctx.db(), key, |txn| {
        let Some(value) = txn.value(0) else {
            return Ok::<_, Reply>((0, false));
        };
        let zset = zset_of(value)?;
        if !members.iter().any(|m| zset.score(m).is_some()) {
            return Ok((0, false));
        }
        let zset = zset_mut(txn, 0)?;
        let mut deleted = 0;
        for member in members {
            if zset.remove(member).is_some() {
                deleted += 1;
            }
            if zset.is_empty() {
                break;
            }
        }
        Ok((deleted, zset.is_empty()))
    })?;
    if deleted > 0 {
        notify(ctx, ZSET_EVENTS, "zrem", key);
    }
    notify_deleted(ctx, emptied, key);
    Ok(count_reply(deleted))
}

/// # Format
/// `ZCARD key`
pub fn zcard(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    Ok(count_reply(with_zset(ctx, key, |z| z.len())?.unwrap_or(0)))
}

/// # Format
/// `ZSCORE key member`
pub fn zscore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let member = args.next_bytes()?;
    let score = with_zset(ctx, key, |z| z.score(member))?.flatten();
    Ok(score.map_or(Reply::Nil, Reply::Double))
}

/// # Format
/// `ZMSCORE key member [member ...]`
pub fn zmscore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let members = args.rest();
    let scores = with_zset(ctx, key, |z| {
        members
            .iter()
            .map(|m| z.score(m).map_or(Reply::Nil, Reply::Double))
            .collect::<Vec<_>>()
    })?;
    Ok(Reply::Array(
        scores.unwrap_or_else(|| vec![Reply::Nil; members.len()]),
    ))
}

fn zrank_generic(ctx: &mut Ctx<'_>, args: &mut Args<'_>, reverse: bool, name: &str) -> CmdResult {
    let key = args.next_bytes()?;
    let member = args.next_bytes()?;
    if args.remaining() > 1 {
        return Err(error::wrong_arity(name));
    }
    let withscore = match args.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"withscore") => true,
        Some(_) => return Err(fail(error::SYNTAX)),
    };
    let found = with_zset(ctx, key, |z| {
        let score = z.score(member)?;
        let rank = z.rank(member)?;
        let rank = if reverse { z.len() - 1 - rank } else { rank };
        Some((rank, score))
    })?
    .flatten();
    Ok(match found {
        Some((rank, score)) if withscore => {
            Reply::Array(vec![count_reply(rank), Reply::Double(score)])
        }
        Some((rank, _)) => count_reply(rank),
        None if withscore => Reply::NilArray,
        None => Reply::Nil,
    })
}

/// # Format
/// `ZRANK key member [WITHSCORE]`
pub fn zrank(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zrank_generic(ctx, args, false, "zrank")
}

/// # Format
/// `ZREVRANK key member [WITHSCORE]`
pub fn zrevrank(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zrank_generic(ctx, args, true, "zrevrank")
}

// ---------------------------------------------------------------------------
// ZRANGE and its older forms, ZRANGESTORE, ZCOUNT, ZLEXCOUNT

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeBy {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

/// A parsed range request.
enum Range<'a> {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange<'a>),
}

struct RangeRequest<'a> {
    range: Range<'a>,
    reverse: bool,
    offset: i64,
    /// Negative: no limit.
    limit: i64,
}

impl<'a> RangeRequest<'a> {
    /// The members the request selects, in reply order (Redis's
    /// `genericZrangeby{rank,score,lex}Command`).
    fn select<'z>(&self, zset: &'z ZSet) -> Vec<(&'z [u8], f64)>
    where
        'a: 'z,
    {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        match &self.range {
            Range::Rank(start, end) => {
                let len = zset.len() as i64;
                let mut start = if *start < 0 { start + len } else { *start };
                let mut end = if *end < 0 { end + len } else { *end };
                start = start.max(0);
                if start > end || start >= len {
                    return Vec::new();
                }
                end = end.min(len - 1);
                // Both within 0..len here.
                let (start, n) = (start as usize, (end - start + 1) as usize);
                if self.reverse {
                    zset.iter().rev().skip(start).take(n).collect()
                } else {
                    zset.iter().skip(start).take(n).collect()
                }
            }
            // A negative offset walks past the end in Redis: nothing.
            _ if self.offset < 0 => Vec::new(),
            Range::Score(range) => {
                let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
                zset.score_start(range, self.reverse)
                    .skip(offset)
                    .take_while(|&(_, score)| {
                        if self.reverse {
                            range.gte_min(score)
                        } else {
                            range.lte_max(score)
                        }
                    })
                    .take(limit)
                    .collect()
            }
            Range::Lex(range) => {
                let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
                zset.lex_start(range, self.reverse)
                    .skip(offset)
                    .take_while(|&(member, _)| {
                        if self.reverse {
                            range.gte_min(member)
                        } else {
                            range.lte_max(member)
                        }
                    })
                    .take(limit)
                    .collect()
            }
        }
    }
}

/// Redis's `zrangeGenericCommand`: options first, then their
/// combinations, then the range's two ends, then the key.
fn zrange_generic(
    ctx: &mut Ctx<'_>,
    args: &mut Args<'_>,
    store: bool,
    mut by: RangeBy,
    mut direction: Direction,
) -> CmdResult {
    let dst = if store {
        Some(args.next_bytes()?)
    } else {
        None
    };
    let key = args.next_bytes()?;
    let mut min = args.next_bytes()?;
    let mut max = args.next_bytes()?;
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    while let Some(option) = args.next() {
        if !store && option.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
        } else if option.eq_ignore_ascii_case(b"limit") && args.remaining() >= 2 {
            offset = args.next_i64()?;
            limit = args.next_i64()?;
        } else if direction == Direction::Auto && option.eq_ignore_ascii_case(b"rev") {
            direction = Direction::Reverse;
        } else if by == RangeBy::Auto && option.eq_ignore_ascii_case(b"bylex") {
            by = RangeBy::Lex;
        } else if by == RangeBy::Auto && option.eq_ignore_ascii_case(b"byscore") {
            by = RangeBy::Score;
        } else {
            return Err(fail(error::SYNTAX));
        }
    }
    let reverse = direction == Direction::Reverse;
    if by == RangeBy::Auto {
        by = RangeBy::Rank;
    }
    if limit != -1 && by == RangeBy::Rank {
        return Err(fail(error::LIMIT_NEEDS_BY));
    }
    if withscores && by == RangeBy::Lex {
        return Err(fail(error::WITHSCORES_WITH_BYLEX));
    }
    if reverse && by != RangeBy::Rank {
        std::mem::swap(&mut min, &mut max);
    }
    let range = match by {
        RangeBy::Score => Range::Score(parse_score_range(min, max)?),
        RangeBy::Lex => Range::Lex(parse_lex_range(min, max)?),
        _ => Range::Rank(parse_int(min)?, parse_int(max)?),
    };
    let request = RangeRequest {
        range,
        reverse,
        offset,
        limit,
    };
    if let Some(dst) = dst {
        return zrange_store(ctx, dst, key, &request);
    }
    let nested = resp3(ctx);
    let reply = with_zset(ctx, key, |zset| {
        scored_reply(request.select(zset).into_iter(), withscores, nested)
    })?;
    Ok(reply.unwrap_or(Reply::Array(Vec::new())))
}

fn zrange_store(ctx: &Ctx<'_>, dst: &[u8], key: &[u8], request: &RangeRequest<'_>) -> CmdResult {
    let db = ctx.db();
    let stored = ctx.ks().write_many([(db, dst), (db, key)], |txn| {
        txn.count_read(1);
        if !txn.exists(1) {
            keymiss(ctx, key);
        }
        let result = match txn.value(1) {
            Some(value) => {
                let selected = request.select(zset_of(value)?);
                // Redis creates a skiplist at once for a rank range it
                // knows to be large, else a listpack that may convert.
                let large = matches!(request.range, Range::Rank(..))
                    && selected.len() > limits::zset_entries();
                let mut result = if large {
                    ZSet::skiplist()
                } else {
                    ZSet::default()
                };
                for (member, score) in selected {
                    result.insert(member, score);
                }
                result
            }
            None => ZSet::default(),
        };
        Ok::<_, Reply>(store_result(txn, 0, result))
    })?;
    Ok(stored.notify(ctx, "zrangestore", dst))
}

/// What a STORE form did to its destination.
struct Stored {
    len: usize,
    /// The destination held a key (of any type) before.
    existed: bool,
}

impl Stored {
    /// Redis's events for the destination (`new` and `event` for a stored
    /// result, `del` when an empty one removed a key); the reply is the
    /// stored size.
    fn notify(&self, ctx: &Ctx<'_>, event: &str, dst: &[u8]) -> Reply {
        if self.len > 0 {
            notify_write(ctx, !self.existed, ZSET_EVENTS, event, dst);
        } else {
            notify_deleted(ctx, self.existed, dst);
        }
        count_reply(self.len)
    }
}

/// Replaces key `i` with `result` (its TTL cleared), or deletes it when
/// `result` is empty.
fn store_result(txn: &mut Txn<'_>, i: usize, result: ZSet) -> Stored {
    let len = result.len();
    let existed = if len == 0 {
        txn.remove(i).is_some()
    } else {
        txn.insert(i, Value::ZSet(result), None).is_some()
    };
    Stored { len, existed }
}

/// # Format
/// `ZRANGE key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`
pub fn zrange(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, false, RangeBy::Auto, Direction::Auto)
}

/// # Format
/// `ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]`
pub fn zrangestore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, true, RangeBy::Auto, Direction::Auto)
}

/// # Format
/// `ZREVRANGE key start stop [WITHSCORES]`
pub fn zrevrange(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, false, RangeBy::Rank, Direction::Reverse)
}

/// # Format
/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`
pub fn zrangebyscore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, false, RangeBy::Score, Direction::Forward)
}

/// # Format
/// `ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]`
pub fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, false, RangeBy::Score, Direction::Reverse)
}

/// # Format
/// `ZRANGEBYLEX key min max [LIMIT offset count]`
pub fn zrangebylex(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, false, RangeBy::Lex, Direction::Forward)
}

/// # Format
/// `ZREVRANGEBYLEX key max min [LIMIT offset count]`
pub fn zrevrangebylex(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, false, RangeBy::Lex, Direction::Reverse)
}

/// # Format
/// `ZCOUNT key min max`
pub fn zcount(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let range = parse_score_range(args.next_bytes()?, args.next_bytes()?)?;
    let count = with_zset(ctx, key, |z| z.count_in_scores(&range))?;
    Ok(count_reply(count.unwrap_or(0)))
}

/// # Format
/// `ZLEXCOUNT key min max`
pub fn zlexcount(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let range = parse_lex_range(args.next_bytes()?, args.next_bytes()?)?;
    let count = with_zset(ctx, key, |z| z.count_in_lex(&range))?;
    Ok(count_reply(count.unwrap_or(0)))
}

// ---------------------------------------------------------------------------
// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX

fn zremrange(ctx: &Ctx<'_>, key: &[u8], range: Range<'_>, event: &str) -> CmdResult {
    let (removed, emptied) = ctx.ks().write(ctx.db(), key, |txn| {
        let Some(value) = txn.value(0) else {
            return Ok::<_, Reply>((0, false));
        };
        let zset = zset_of(value)?;
        let rank = match range {
            Range::Rank(start, end) => {
                let len = zset.len() as i64;
                let start = if start < 0 { start + len } else { start }.max(0);
                let end = if end < 0 { end + len } else { end };
                if start > end || start >= len {
                    return Ok((0, false));
                }
                // Both within 0..len here.
                Some((start as usize, end.min(len - 1) as usize))
            }
            _ => None,
        };
        let removed = match (&range, rank) {
            (_, Some((start, end))) => zset_mut(txn, 0)?.remove_range_by_rank(start, end),
            (Range::Score(r), _) if zset.count_in_scores(r) > 0 => {
                zset_mut(txn, 0)?.remove_range_by_score(r)
            }
            (Range::Lex(r), _) if zset.count_in_lex(r) > 0 => {
                zset_mut(txn, 0)?.remove_range_by_lex(r)
            }
            _ => 0,
        };
        Ok((removed, removed > 0 && left_empty(txn, 0)))
    })?;
    if removed > 0 {
        notify(ctx, ZSET_EVENTS, event, key);
    }
    notify_deleted(ctx, emptied, key);
    Ok(count_reply(removed))
}

/// # Format
/// `ZREMRANGEBYRANK key start stop`
pub fn zremrangebyrank(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let start = args.next_i64()?;
    let end = args.next_i64()?;
    zremrange(ctx, key, Range::Rank(start, end), "zremrangebyrank")
}

/// # Format
/// `ZREMRANGEBYSCORE key min max`
pub fn zremrangebyscore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let range = parse_score_range(args.next_bytes()?, args.next_bytes()?)?;
    zremrange(ctx, key, Range::Score(range), "zremrangebyscore")
}

/// # Format
/// `ZREMRANGEBYLEX key min max`
pub fn zremrangebylex(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let range = parse_lex_range(args.next_bytes()?, args.next_bytes()?)?;
    zremrange(ctx, key, Range::Lex(range), "zremrangebylex")
}

// ---------------------------------------------------------------------------
// ZPOPMIN, ZPOPMAX, ZMPOP

/// Pops up to `count` members from the low end (or the high end, with
/// `highest`) of the sorted set at key `i` of `txn`; the key goes when it
/// is emptied. `Ok(None)` when the key is missing, WRONGTYPE for another
/// type. The blocking pops (BZPOPMIN, BZPOPMAX, BZMPOP) call this once one
/// of their keys has members.
pub(super) fn pop(
    txn: &mut Txn<'_>,
    i: usize,
    highest: bool,
    count: usize,
) -> Result<Option<Vec<(Member, f64)>>, Reply> {
    let Some(value) = txn.value(i) else {
        return Ok(None);
    };
    let len = zset_of(value)?.len();
    if count == 0 || len == 0 {
        return Ok(Some(Vec::new()));
    }
    let zset = zset_mut(txn, i)?;
    let mut popped = Vec::with_capacity(count.min(len));
    while popped.len() < count {
        match zset.pop(highest) {
            Some(item) => popped.push(item),
            None => break,
        }
    }
    Ok(Some(popped))
}

/// Popped members with their scores: `[member, score]` pairs when
/// `nested`, else flat (Redis's `use_nested_array`).
pub(super) fn popped_reply(popped: &[(Member, f64)], nested: bool) -> Vec<Reply> {
    let mut out = Vec::with_capacity(popped.len() * if nested { 1 } else { 2 });
    for (member, score) in popped {
        push_scored(&mut out, member, *score, true, nested);
    }
    out
}

fn zpop_generic(ctx: &mut Ctx<'_>, args: &mut Args<'_>, highest: bool) -> CmdResult {
    let key = args.next_bytes()?;
    if args.remaining() > 1 {
        return Err(fail(error::SYNTAX));
    }
    let count = args
        .next()
        .map(|arg| parse_at_least(arg, 0, error::MUST_BE_POSITIVE))
        .transpose()?;
    // RESP3 nests pairs only when a count was given (Redis 7.0).
    let nested = resp3(ctx) && count.is_some();
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    let (popped, emptied) = ctx.ks().write(ctx.db(), key, |txn| {
        let popped = pop(txn, 0, highest, count)?.unwrap_or_default();
        let emptied = !popped.is_empty() && left_empty(txn, 0);
        Ok::<_, Reply>((popped, emptied))
    })?;
    if !popped.is_empty() {
        notify(ctx, ZSET_EVENTS, pop_event(highest), key);
    }
    notify_deleted(ctx, emptied, key);
    Ok(Reply::Array(popped_reply(&popped, nested)))
}

fn pop_event(highest: bool) -> &'static str {
    if highest {
        "zpopmax"
    } else {
        "zpopmin"
    }
}

/// # Format
/// `ZPOPMIN key [count]`
pub fn zpopmin(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zpop_generic(ctx, args, false)
}

/// # Format
/// `ZPOPMAX key [count]`
pub fn zpopmax(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    zpop_generic(ctx, args, true)
}

/// The keys, end and count of ZMPOP (`numkeys key... MIN|MAX [COUNT n]`),
/// as Redis's `zmpopGenericCommand` checks them; BZMPOP passes what
/// follows its timeout.
pub(super) fn parse_mpop(args: &[Bytes]) -> Result<(&[Bytes], bool, usize), Reply> {
    let numkeys = args.first().ok_or(fail(error::SYNTAX))?;
    let numkeys = parse_at_least(numkeys, 1, error::NUMKEYS_POSITIVE)?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    let keys = args
        .get(1..numkeys.saturating_add(1))
        .ok_or(fail(error::SYNTAX))?;
    let mut rest = args.get(numkeys + 1..).unwrap_or_default().iter();
    let highest = match rest.next() {
        Some(word) if word.eq_ignore_ascii_case(b"min") => false,
        Some(word) if word.eq_ignore_ascii_case(b"max") => true,
        _ => return Err(fail(error::SYNTAX)),
    };
    let mut count = None;
    while let Some(option) = rest.next() {
        match rest.as_slice().first() {
            Some(value) if count.is_none() && option.eq_ignore_ascii_case(b"count") => {
                count = Some(parse_at_least(value, 1, error::COUNT_POSITIVE)?);
                rest.next();
            }
            _ => return Err(fail(error::SYNTAX)),
        }
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Ok((keys, highest, count))
}

/// # Format
/// `ZMPOP numkeys key [key ...] MIN | MAX [COUNT count]`
pub fn zmpop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let (keys, highest, count) = parse_mpop(args.rest())?;
    let db = ctx.db();
    let popped = ctx
        .ks()
        .write_many(keys.iter().map(|k| (db, k.as_ref())), |txn| {
            // The first key that exists decides, as in Redis: a later
            // key of another type is not looked at.
            for (i, key) in keys.iter().enumerate() {
                if let Some(popped) = pop(txn, i, highest, count)? {
                    let emptied = !popped.is_empty() && left_empty(txn, i);
                    return Ok::<_, Reply>(Some((key, popped, emptied)));
                }
            }
            Ok(None)
        })?;
    let Some((key, popped, emptied)) = popped else {
        return Ok(Reply::NilArray);
    };
    if !popped.is_empty() {
        notify(ctx, ZSET_EVENTS, pop_event(highest), key);
    }
    notify_deleted(ctx, emptied, key);
    Ok(Reply::Array(vec![
        Reply::Bulk(key.clone()),
        Reply::Array(popped_reply(&popped, true)),
    ]))
}

/// Pops from the sorted set at `key` for a blocking command: `None` when
/// it holds nothing, with the notifications a pop fires.
fn pop_for_blocked(
    state: &ServerState,
    db: usize,
    key: &[u8],
    highest: bool,
    count: usize,
) -> Result<Option<Vec<(Member, f64)>>, Reply> {
    let popped = state.keyspace.write(db, key, |txn| {
        let popped = pop(txn, 0, highest, count)?;
        let emptied = left_empty(txn, 0);
        Ok::<_, Reply>(popped.map(|p| (p, emptied)))
    })?;
    let Some((popped, emptied)) = popped.filter(|(p, _)| !p.is_empty()) else {
        return Ok(None);
    };
    state.notify(ZSET_EVENTS, pop_event(highest), db, key);
    if emptied {
        state.notify(GENERIC_EVENTS, "del", db, key);
    }
    Ok(Some(popped))
}

fn blocking_pop(ctx: &mut Ctx<'_>, args: &mut Args<'_>, highest: bool) -> CmdResult {
    let all = args.rest();
    let (timeout, keys) = all.split_last().ok_or(fail(error::SYNTAX))?;
    let timeout = crate::blocking::parse_timeout(timeout)?;
    let serve: crate::blocking::Serve = Box::new(move |state, db, key| {
        Ok(
            pop_for_blocked(state, db, key, highest, 1)?.and_then(|mut popped| {
                let (member, score) = popped.pop()?;
                Some(Reply::Array(vec![
                    Reply::Bulk(Bytes::copy_from_slice(key)),
                    Reply::Bulk(Bytes::from(member.into_vec())),
                    Reply::Double(score),
                ]))
            }),
        )
    });
    super::lists::block_on(ctx, keys, timeout, Reply::NilArray, serve)
}

/// # Format
/// `BZPOPMIN key [key ...] timeout`
pub fn bzpopmin(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, false)
}

/// # Format
/// `BZPOPMAX key [key ...] timeout`
pub fn bzpopmax(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, true)
}

/// # Format
/// `BZMPOP timeout numkeys key [key ...] <MIN | MAX> [COUNT count]`
pub fn bzmpop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let timeout = crate::blocking::parse_timeout(args.next_bytes()?)?;
    let (keys, highest, count) = parse_mpop(args.rest())?;
    let serve: crate::blocking::Serve = Box::new(move |state, db, key| {
        Ok(
            pop_for_blocked(state, db, key, highest, count)?.map(|popped| {
                Reply::Array(vec![
                    Reply::Bulk(Bytes::copy_from_slice(key)),
                    Reply::Array(popped_reply(&popped, true)),
                ])
            }),
        )
    });
    super::lists::block_on(ctx, keys, timeout, Reply::NilArray, serve)
}

// ---------------------------------------------------------------------------
// ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// Redis's `zunionInterAggregate`: a NaN sum (inf + -inf) is 0.
    fn fold(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => *target = if value < *target { value } else { *target },
            Aggregate::Max => *target = if value > *target { value } else { *target },
        }
    }
}

/// An input of the set algebra: a sorted set, or a set whose members all
/// score 1.
#[derive(Clone, Copy)]
enum Source<'a> {
    Missing,
    ZSet(&'a ZSet),
    Set(&'a Set),
}

impl<'a> Source<'a> {
    fn len(&self) -> usize {
        match self {
            Source::Missing => 0,
            Source::ZSet(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&'a [u8], f64)> + 'a> {
        match *self {
            Source::Missing => Box::new(std::iter::empty()),
            Source::ZSet(z) => Box::new(z.iter()),
            Source::Set(s) => Box::new(s.iter().map(|m| (m, 1.0))),
        }
    }

    fn find(&self, member: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::ZSet(z) => z.score(member),
            Source::Set(s) => s.contains(member).then_some(1.0),
        }
    }

    /// The same stored value (a key named twice).
    fn same(&self, other: &Source<'_>) -> bool {
        match (self, other) {
            (Source::ZSet(a), Source::ZSet(b)) => std::ptr::eq(*a, *b),
            (Source::Set(a), Source::Set(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

struct Input<'a> {
    source: Source<'a>,
    weight: f64,
}

/// Redis's `zunionInterDiffGenericCommand`. `dst` for the STORE forms;
/// `args` starts at numkeys.
fn set_op_generic(
    ctx: &mut Ctx<'_>,
    args: &mut Args<'_>,
    name: &str,
    op: SetOp,
    store: bool,
    cardinality_only: bool,
) -> CmdResult {
    let dst = if store {
        Some(args.next_bytes()?)
    } else {
        None
    };
    let setnum = args.next_i64()?;
    if setnum < 1 {
        return Err(error::at_least_one_input_key(name));
    }
    let rest = args.rest();
    let setnum = usize::try_from(setnum).unwrap_or(usize::MAX);
    if setnum > rest.len() {
        return Err(fail(error::SYNTAX));
    }
    let (keys, options) = rest.split_at(setnum);
    let db = ctx.db();
    // The destination, when there is one, is key 0 of the transaction.
    let first = usize::from(store);
    let locked = dst.into_iter().chain(keys).map(|key| (db, key.as_ref()));
    let nested = resp3(ctx);
    let done = ctx.ks().write_many(locked, |txn| {
        for i in first..first + setnum {
            txn.count_read(i);
        }
        let mut inputs = Vec::with_capacity(setnum);
        for (i, key) in (first..first + setnum).zip(keys) {
            let source = match txn.value(i) {
                None => {
                    keymiss(ctx, key);
                    Source::Missing
                }
                Some(value) => match (value.as_zset(), value.as_set()) {
                    (Some(z), _) => Source::ZSet(z),
                    (_, Some(s)) => Source::Set(s),
                    _ => return Err(wrongtype()),
                },
            };
            inputs.push(Input {
                source,
                weight: 1.0,
            });
        }
        let mut aggregate = Aggregate::Sum;
        let mut withscores = false;
        let mut limit = 0usize;
        let mut options = options.iter();
        while let Some(option) = options.next() {
            let remaining = options.len() + 1;
            let algebra = op != SetOp::Diff && !cardinality_only;
            if algebra && remaining > setnum && option.eq_ignore_ascii_case(b"weights") {
                for input in inputs.iter_mut() {
                    let weight = options.next().ok_or(fail(error::SYNTAX))?;
                    input.weight = parse_score(weight).ok_or(fail(error::WEIGHT_NOT_FLOAT))?;
                }
            } else if algebra && remaining >= 2 && option.eq_ignore_ascii_case(b"aggregate") {
                let word = options.next().ok_or(fail(error::SYNTAX))?;
                aggregate = if word.eq_ignore_ascii_case(b"sum") {
                    Aggregate::Sum
                } else if word.eq_ignore_ascii_case(b"min") {
                    Aggregate::Min
                } else if word.eq_ignore_ascii_case(b"max") {
                    Aggregate::Max
                } else {
                    return Err(fail(error::SYNTAX));
                };
            } else if !store && !cardinality_only && option.eq_ignore_ascii_case(b"withscores") {
                withscores = true;
            } else if cardinality_only && remaining >= 2 && option.eq_ignore_ascii_case(b"limit") {
                let value = options.next().ok_or(fail(error::SYNTAX))?;
                let value = parse_at_least(value, 0, error::LIMIT_NEGATIVE)?;
                limit = usize::try_from(value).unwrap_or(usize::MAX);
            } else {
                return Err(fail(error::SYNTAX));
            }
        }
        if cardinality_only {
            return Ok(Done::Reply(count_reply(inter_card(
                &mut inputs,
                aggregate,
                limit,
            ))));
        }
        let result = match op {
            SetOp::Union => union(&mut inputs, aggregate),
            SetOp::Inter => inter(&mut inputs, aggregate),
            SetOp::Diff => diff(&inputs),
        };
        if !store {
            return Ok(Done::Reply(scored_reply(
                result.into_iter(),
                withscores,
                nested,
            )));
        }
        let result = ZSet::from_members(result);
        drop(inputs);
        Ok(Done::Stored(store_result(txn, 0, result)))
    })?;
    match (done, dst) {
        // The STORE forms' names are their events.
        (Done::Stored(stored), Some(dst)) => Ok(stored.notify(ctx, name, dst)),
        (Done::Stored(stored), None) => Ok(count_reply(stored.len)),
        (Done::Reply(reply), _) => Ok(reply),
    }
}

/// How [`set_op_generic`] ended: a reply, or a result stored.
enum Done {
    Reply(Reply),
    Stored(Stored),
}

/// A member's weighted score; 0 for NaN (a zero weight times infinity).
fn weighted(score: f64, weight: f64) -> f64 {
    let value = weight * score;
    if value.is_nan() {
        0.0
    } else {
        value
    }
}

/// Smallest input first, as Redis sorts them (stably, as glibc's qsort
/// does for these sizes), which decides the order scores are summed in.
fn by_size(inputs: &mut [Input<'_>]) {
    inputs.sort_by_key(|input| input.source.len());
}

fn union<'a>(inputs: &mut [Input<'a>], aggregate: Aggregate) -> Vec<(&'a [u8], f64)> {
    by_size(inputs);
    let mut acc: IndexMap<&[u8], f64, foldhash::fast::RandomState> = IndexMap::default();
    for input in inputs.iter() {
        for (member, score) in input.source.iter() {
            let score = weighted(score, input.weight);
            match acc.get_mut(member) {
                Some(target) => aggregate.fold(target, score),
                None => {
                    acc.insert(member, score);
                }
            }
        }
    }
    sorted(acc.into_iter().collect())
}

/// Members in (score, member) order, as a sorted set holds them.
fn sorted(mut items: Vec<(&[u8], f64)>) -> Vec<(&[u8], f64)> {
    items.sort_by(|a, b| Score(a.1).cmp(&Score(b.1)).then_with(|| a.0.cmp(b.0)));
    items
}

/// Members of the smallest input found in every other input, with their
/// aggregated score; `each` sees every one until it returns false.
fn inter_walk<'a>(
    inputs: &mut [Input<'a>],
    aggregate: Aggregate,
    mut each: impl FnMut(&'a [u8], f64) -> bool,
) {
    by_size(inputs);
    let Some((first, others)) = inputs.split_first() else {
        return;
    };
    'members: for (member, score) in first.source.iter() {
        let mut total = weighted(score, first.weight);
        for other in others {
            let value = if other.source.same(&first.source) {
                score * other.weight
            } else {
                match other.source.find(member) {
                    Some(found) => found * other.weight,
                    None => continue 'members,
                }
            };
            aggregate.fold(&mut total, value);
        }
        if !each(member, total) {
            return;
        }
    }
}

fn inter<'a>(inputs: &mut [Input<'a>], aggregate: Aggregate) -> Vec<(&'a [u8], f64)> {
    let mut result = Vec::new();
    inter_walk(inputs, aggregate, |member, score| {
        result.push((member, score));
        true
    });
    sorted(result)
}

fn inter_card(inputs: &mut [Input<'_>], aggregate: Aggregate, limit: usize) -> usize {
    let mut count = 0;
    inter_walk(inputs, aggregate, |_, _| {
        count += 1;
        limit == 0 || count < limit
    });
    count
}

/// The first input's members found in no other input, with their scores
/// (weights do not apply). A key named twice leaves nothing.
fn diff<'a>(inputs: &[Input<'a>]) -> Vec<(&'a [u8], f64)> {
    let Some((first, others)) = inputs.split_first() else {
        return Vec::new();
    };
    if others.iter().any(|o| o.source.same(&first.source)) {
        return Vec::new();
    }
    let result = first
        .source
        .iter()
        .filter(|(member, _)| others.iter().all(|o| o.source.find(member).is_none()))
        .collect();
    sorted(result)
}

/// # Format
/// `ZUNION numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]`
pub fn zunion(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_op_generic(ctx, args, "zunion", SetOp::Union, false, false)
}

/// # Format
/// `ZINTER numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]`
pub fn zinter(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_op_generic(ctx, args, "zinter", SetOp::Inter, false, false)
}

/// # Format
/// `ZDIFF numkeys key [key ...] [WITHSCORES]`
pub fn zdiff(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_op_generic(ctx, args, "zdiff", SetOp::Diff, false, false)
}

/// # Format
/// `ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]`
pub fn zunionstore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_op_generic(ctx, args, "zunionstore", SetOp::Union, true, false)
}

/// # Format
/// `ZINTERSTORE destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]`
pub fn zinterstore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_op_generic(ctx, args, "zinterstore", SetOp::Inter, true, false)
}

/// # Format
/// `ZDIFFSTORE destination numkeys key [key ...]`
pub fn zdiffstore(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_op_generic(ctx, args, "zdiffstore", SetOp::Diff, true, false)
}

/// # Format
/// `ZINTERCARD numkeys key [key ...] [LIMIT limit]`
pub fn zintercard(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    set_op_generic(ctx, args, "zintercard", SetOp::Inter, false, true)
}

// ---------------------------------------------------------------------------
// ZRANDMEMBER, ZSCAN

/// # Format
/// `ZRANDMEMBER key [count [WITHSCORES]]`
pub fn zrandmember(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let Some(count) = args.next() else {
        let picked = with_zset(ctx, key, |z| {
            random_index(z.len())
                .and_then(|i| z.get_index(i))
                .map(|(m, _)| bulk(m))
        })?;
        return Ok(picked.flatten().unwrap_or(Reply::Nil));
    };
    let count = parse_int(count)?;
    let withscores = match args.rest() {
        [] => false,
        [word] if word.eq_ignore_ascii_case(b"withscores") => true,
        _ => return Err(fail(error::SYNTAX)),
    };
    if withscores && !(i64::MIN / 2..=i64::MAX / 2).contains(&count) {
        return Err(fail(error::OUT_OF_RANGE));
    }
    let unique = count >= 0;
    let wanted = count.unsigned_abs();
    if !unique && wanted > RANDOM_REPLY_MAX {
        return Err(fail(error::OUT_OF_RANGE));
    }
    let nested = resp3(ctx);
    let reply = with_zset(ctx, key, |z| {
        let mut out = Vec::new();
        let len = z.len();
        let mut push = |(member, score): (&[u8], f64)| {
            push_scored(&mut out, member, score, withscores, nested);
        };
        if wanted == 0 || len == 0 {
        } else if !unique || wanted == 1 {
            for _ in 0..wanted {
                if let Some(item) = random_index(len).and_then(|i| z.get_index(i)) {
                    push(item);
                }
            }
        } else if wanted >= len as u64 {
            z.iter().for_each(push);
        } else if wanted.saturating_mul(RANDOM_SUB_STRATEGY_MUL) > len as u64 {
            // Most of the set: drop random positions until `wanted` remain.
            let mut kept: Vec<usize> = (0..len).collect();
            while kept.len() as u64 > wanted {
                if let Some(i) = random_index(kept.len()) {
                    kept.swap_remove(i);
                }
            }
            kept.into_iter()
                .filter_map(|i| z.get_index(i))
                .for_each(push);
        } else {
            let mut seen = std::collections::HashSet::new();
            while (seen.len() as u64) < wanted {
                if let Some(i) = random_index(len) {
                    if seen.insert(i) {
                        if let Some(item) = z.get_index(i) {
                            push(item);
                        }
                    }
                }
            }
        }
        Reply::Array(out)
    })?;
    Ok(reply.unwrap_or(Reply::Array(Vec::new())))
}

fn random_index(len: usize) -> Option<usize> {
    (len > 0).then(|| rand::random::<usize>() % len)
}

/// A SCAN cursor as Redis's `strtoul`-based parser accepts it: optional
/// sign (a minus wraps, as in C), decimal digits; the empty string is 0.
fn parse_cursor(arg: &[u8]) -> Result<u64, Reply> {
    let invalid = || fail(error::INVALID_CURSOR);
    let (negative, digits) = match arg.split_first() {
        None => return Ok(0),
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        Some(_) => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let mut value: u64 = 0;
    for &digit in digits {
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
/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`
///
/// A small (listpack) sorted set is returned whole with cursor 0, in
/// order, as Redis does. A large one is walked by position in its member
/// map from the last position down: removing a member moves the last one
/// into its place, and new members go last, so a member present for the
/// whole scan lies ahead of the cursor until it is returned; one may come
/// twice (when a removal moves a returned member back ahead), as Redis
/// allows.
pub fn zscan(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let cursor = parse_cursor(args.next_bytes()?)?;
    let options = args.rest();
    let page = with_zset(ctx, key, |z| -> Result<(u64, Vec<Reply>), Reply> {
        let mut count: usize = 10;
        let mut pattern: Option<&[u8]> = None;
        let mut rest = options.iter();
        while let Some(option) = rest.next() {
            match rest.as_slice().first() {
                Some(value) if option.eq_ignore_ascii_case(b"count") => {
                    let n = parse_int(value)?;
                    if n < 1 {
                        return Err(fail(error::SYNTAX));
                    }
                    count = usize::try_from(n).unwrap_or(usize::MAX);
                }
                Some(value) if option.eq_ignore_ascii_case(b"match") => {
                    pattern = (value.as_ref() != b"*").then_some(value.as_ref());
                }
                _ => return Err(fail(error::SYNTAX)),
            }
            rest.next();
        }
        let mut out = Vec::new();
        let mut push = |member: &[u8], score: f64| {
            if pattern.is_none_or(|p| crate::glob::matches(p, member, false)) {
                out.push(bulk(member));
                out.push(Reply::Bulk(Bytes::from(format_double(score))));
            }
        };
        if z.encoding() == "listpack" {
            z.iter().for_each(|(m, s)| push(m, s));
            return Ok((0, out));
        }
        let len = z.len();
        let mut position = match usize::try_from(cursor) {
            Ok(0) | Err(_) => len,
            Ok(c) => c.min(len),
        };
        let stop = position.saturating_sub(count);
        while position > stop {
            position -= 1;
            if let Some((m, s)) = z.get_index(position) {
                push(m, s);
            }
        }
        Ok((position as u64, out))
    })?;
    let (cursor, items) = page.transpose()?.unwrap_or((0, Vec::new()));
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(cursor.to_string())),
        Reply::Array(items),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_as_string2d_does() {
        for (text, value) in [
            ("1", 1.0),
            ("-2.5", -2.5),
            ("+.5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("1E-2", 0.01),
            ("inf", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("0x10", 16.0),
            ("0x1.8p1", 3.0),
            ("-0x.8", -0.5),
            ("5e-324", 5e-324),
        ] {
            assert_eq!(parse_score(text.as_bytes()), Some(value), "{text}");
        }
        for text in [
            "",
            " 1",
            "1 ",
            "nan",
            "-nan",
            "1e400",
            "1e-400",
            "0x",
            "1e",
            "abc",
            "1\0",
            ".",
            "--1",
            "infx",
            "0x1p99999",
        ] {
            assert_eq!(parse_score(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn range_ends_parse_as_zsl_parse_range_does() {
        assert_eq!(parse_range_end(b"(1.5"), Some((1.5, true)));
        assert_eq!(parse_range_end(b""), Some((0.0, false)));
        assert_eq!(parse_range_end(b"("), Some((0.0, true)));
        assert_eq!(parse_range_end(b" 2"), Some((2.0, false)));
        assert_eq!(parse_range_end(b"1e400"), Some((f64::INFINITY, false)));
        assert_eq!(parse_range_end(b"3\0junk"), Some((3.0, false)));
        for bad in [&b"(nan"[..], b"[1", b"1 ", b"((1", b" "] {
            assert_eq!(parse_range_end(bad), None, "{bad:?}");
        }
        assert_eq!(parse_lex_end(b"+"), Some(LexBound::Max));
        assert_eq!(parse_lex_end(b"-\0"), Some(LexBound::Min));
        assert_eq!(parse_lex_end(b"(a\0b"), Some(LexBound::Exclusive(b"a\0b")));
        assert_eq!(parse_lex_end(b"["), Some(LexBound::Inclusive(b"")));
        for bad in [&b""[..], b"a", b"+a", b"\0"] {
            assert_eq!(parse_lex_end(bad), None, "{bad:?}");
        }
    }

    fn zset(pairs: &[(&str, f64)]) -> ZSet {
        let mut z = ZSet::default();
        for (m, s) in pairs {
            z.insert(m.as_bytes(), *s);
        }
        z
    }

    fn named<'a>(items: &[(&'a [u8], f64)]) -> Vec<(&'a str, f64)> {
        items
            .iter()
            .map(|(m, s)| (std::str::from_utf8(m).unwrap_or("?"), *s))
            .collect()
    }

    #[test]
    fn sets_take_part_with_score_one() {
        let z = zset(&[("a", 5.0), ("b", 2.0), ("c", -1.0)]);
        let mut s = Set::default();
        s.insert(b"b");
        s.insert(b"x");
        let inputs = || {
            vec![
                Input {
                    source: Source::ZSet(&z),
                    weight: 1.0,
                },
                Input {
                    source: Source::Set(&s),
                    weight: 3.0,
                },
            ]
        };
        assert_eq!(
            named(&union(&mut inputs(), Aggregate::Sum)),
            [("c", -1.0), ("x", 3.0), ("a", 5.0), ("b", 5.0)]
        );
        assert_eq!(named(&inter(&mut inputs(), Aggregate::Max)), [("b", 3.0)]);
        assert_eq!(named(&diff(&inputs())), [("c", -1.0), ("a", 5.0)]);
        assert_eq!(inter_card(&mut inputs(), Aggregate::Sum, 0), 1);
        // A set first: its members score 1.
        let reversed = vec![
            Input {
                source: Source::Set(&s),
                weight: 1.0,
            },
            Input {
                source: Source::ZSet(&z),
                weight: 1.0,
            },
        ];
        assert_eq!(named(&diff(&reversed)), [("x", 1.0)]);
    }
}
