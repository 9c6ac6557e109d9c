//! SORT and SORT_RO, as Redis 7.0's `sort.c`: the elements of a list, set
//! or sorted set ordered by their own value or by weights read from other
//! keys (`BY`), then either replied (with `GET` lookups) or stored as a list.
//!
//! What Redis leaves to its C library is reproduced here: numbers are read
//! as `strtod` reads them (hex floats, leading blanks, `inf`, and a range
//! error for overflow or an inexact subnormal), `ALPHA` compares as
//! `strcoll` in the C locale (bytes up to the first NUL), a full sort is
//! stable as glibc's merge-sort `qsort`, and a `BY` sort with a `LIMIT` is
//! Redis's partial quicksort (`pqsort.c`), so ties come out where Redis puts
//! them.
//!
//! The sorted key is read once and copied; each `BY`/`GET` lookup is a read
//! of its own (counting a hit or miss, as Redis's `lookupKeyRead`), and
//! `STORE` writes the destination last. Unlike Redis, other clients may
//! change a weight key between two of those steps (MULTI/EXEC excepted).

use std::cmp::Ordering;

use bytes::Bytes;

use super::args::{parse_int, Args, CmdResult};
use super::context::Ctx;
use super::pubsub::{keymiss, notify, notify_write};
use crate::error;
use crate::keyspace::types::{Collection, List};
use crate::keyspace::{Value, ValueRef};
use crate::protocol::Reply;
use crate::pubsub::notify::{GENERIC, LIST};

/// # Format
/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]]
/// [ASC | DESC] [ALPHA] [STORE destination]`
pub fn sort(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    sort_generic(ctx, args, false)
}

/// # Format
/// `SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]]
/// [ASC | DESC] [ALPHA]`
pub fn sort_ro(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    sort_generic(ctx, args, true)
}

/// The options of one SORT, as `sortCommandGeneric` collects them.
struct Request<'a> {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    by: Option<&'a [u8]>,
    /// A `BY` pattern without `*` was given (even if a later one has one,
    /// as in Redis): the elements keep their order.
    dont_sort: bool,
    gets: Vec<&'a [u8]>,
    store: Option<&'a [u8]>,
}

fn parse_request(items: &[Bytes], readonly: bool) -> Result<Request<'_>, Reply> {
    let mut request = Request {
        desc: false,
        alpha: false,
        limit_start: 0,
        limit_count: -1,
        by: None,
        dont_sort: false,
        gets: Vec::new(),
        store: None,
    };
    let syntax = || Reply::StaticError(error::SYNTAX);
    let mut j = 0;
    while let Some(word) = items.get(j) {
        let left = items.len() - j - 1;
        let next = items.get(j + 1).map(|b| b.as_ref());
        if word.eq_ignore_ascii_case(b"asc") {
            request.desc = false;
        } else if word.eq_ignore_ascii_case(b"desc") {
            request.desc = true;
        } else if word.eq_ignore_ascii_case(b"alpha") {
            request.alpha = true;
        } else if word.eq_ignore_ascii_case(b"limit") && left >= 2 {
            request.limit_start = parse_int(next.ok_or_else(syntax)?)?;
            request.limit_count = parse_int(items.get(j + 2).ok_or_else(syntax)?)?;
            j += 2;
        } else if !readonly && word.eq_ignore_ascii_case(b"store") && left >= 1 {
            request.store = next;
            j += 1;
        } else if word.eq_ignore_ascii_case(b"by") && left >= 1 {
            let pattern = next.ok_or_else(syntax)?;
            if !c_str(pattern).contains(&b'*') {
                request.dont_sort = true;
            }
            request.by = Some(pattern);
            j += 1;
        } else if word.eq_ignore_ascii_case(b"get") && left >= 1 {
            request.gets.push(next.ok_or_else(syntax)?);
            j += 1;
        } else {
            return Err(syntax());
        }
        j += 1;
    }
    Ok(request)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Set,
    ZSet,
}

/// One element to sort and what it sorts by.
struct Item {
    element: Bytes,
    score: f64,
    /// The `BY` value of an `ALPHA` sort; `None` (a missing weight) sorts first.
    weight: Option<Bytes>,
}

impl Item {
    fn new(element: &[u8]) -> Item {
        Item {
            element: Bytes::copy_from_slice(element),
            score: 0.0,
            weight: None,
        }
    }
}

/// Redis's LIMIT sanity checks: the first and last positions to return
/// (`end < start` for none), clamped to `len` so nothing overflows.
fn limits(len: usize, limit_start: i64, limit_count: i64) -> (i64, i64) {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let mut start = limit_start.max(0).min(len);
    let count = limit_count.max(-1).min(len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// What the sorted key holds, copied out: every element, or for a list or
/// sorted set left in its order only the LIMIT range (already reversed
/// for DESC, `start`/`end` then index the copy).
struct Loaded {
    items: Vec<Item>,
    start: i64,
    end: i64,
}

fn load(value: Option<ValueRef<'_>>, request: &Request<'_>) -> Result<Loaded, Reply> {
    let (kind, len) = match value {
        None => (Kind::List, 0),
        Some(ValueRef::List(list)) => (Kind::List, list.len()),
        Some(ValueRef::Set(set)) => (Kind::Set, set.len()),
        Some(ValueRef::ZSet(zset)) => (Kind::ZSet, zset.len()),
        Some(_) => return Err(Reply::StaticError(error::WRONGTYPE)),
    };
    let (start, end) = limits(len, request.limit_start, request.limit_count);
    let in_order = request.dont_sort && kind != Kind::Set;
    if !in_order {
        let items = match value {
            Some(ValueRef::List(list)) => list.iter().map(Item::new).collect(),
            Some(ValueRef::Set(set)) => set.iter().map(Item::new).collect(),
            Some(ValueRef::ZSet(zset)) => zset.iter().map(|(m, _)| Item::new(m)).collect(),
            _ => Vec::new(),
        };
        return Ok(Loaded { items, start, end });
    }
    let count = usize::try_from(end - start + 1).unwrap_or(0);
    let skip = usize::try_from(start).unwrap_or(0);
    let items: Vec<Item> = match value {
        _ if count == 0 => Vec::new(),
        Some(ValueRef::List(list)) if skip + count <= list.len() => {
            if request.desc {
                let last = list.len() - 1 - skip;
                list.range(last + 1 - count, last)
                    .rev()
                    .map(Item::new)
                    .collect()
            } else {
                list.range(skip, skip + count - 1).map(Item::new).collect()
            }
        }
        Some(ValueRef::ZSet(zset)) if request.desc => zset
            .iter()
            .rev()
            .skip(skip)
            .take(count)
            .map(|(m, _)| Item::new(m))
            .collect(),
        Some(ValueRef::ZSet(zset)) => zset
            .iter()
            .skip(skip)
            .take(count)
            .map(|(m, _)| Item::new(m))
            .collect(),
        _ => Vec::new(),
    };
    let end = items.len() as i64 - 1;
    Ok(Loaded {
        items,
        start: 0,
        end,
    })
}

fn sort_generic(ctx: &mut Ctx<'_>, args: &mut Args<'_>, readonly: bool) -> CmdResult {
    let key = args.next_bytes()?;
    let mut request = parse_request(args.rest(), readonly)?;
    let read_options = ctx.read_options();
    let (found, loaded) = ctx.ks().read(ctx.db(), key, read_options, |entry| {
        let value = entry.map(|e| e.value());
        let kind = match value {
            Some(ValueRef::Set(_)) => Kind::Set,
            _ => Kind::List,
        };
        // A set has no order of its own: one stored (or replicated) must
        // not depend on its layout, so Redis sorts it ALPHA instead.
        if request.dont_sort && kind == Kind::Set && request.store.is_some() {
            request.dont_sort = false;
            request.alpha = true;
            request.by = None;
        }
        Ok::<_, Reply>((entry.is_some(), load(value, &request)?))
    })?;
    if !found {
        keymiss(ctx, key);
    }
    let Loaded {
        mut items,
        start,
        end,
    } = loaded;

    if !request.dont_sort {
        let mut not_a_number = false;
        for item in items.iter_mut() {
            let weight = match request.by {
                Some(pattern) => match lookup(ctx, pattern, &item.element) {
                    Some(weight) => weight,
                    None => continue,
                },
                None => item.element.clone(),
            };
            if request.alpha {
                if request.by.is_some() {
                    item.weight = Some(weight);
                }
            } else {
                match strtod(&weight) {
                    Some(score) => item.score = score,
                    None => not_a_number = true,
                }
            }
        }
        if not_a_number {
            return Err(Reply::StaticError(error::SORT_SCORES_NOT_DOUBLE));
        }
        let order = Order {
            desc: request.desc,
            alpha: request.alpha,
            by_pattern: request.by.is_some(),
            binary: request.store.is_some(),
        };
        let compare = |a: &Item, b: &Item| order.compare(a, b);
        let whole = start == 0 && end == items.len() as i64 - 1;
        if end >= start {
            if request.by.is_some() && !whole {
                pqsort(&mut items, &compare, start as usize, end as usize);
            } else {
                items.sort_by(compare);
            }
        }
    }

    let chosen: &[Item] = if end >= start {
        items.get(start as usize..=end as usize).unwrap_or_default()
    } else {
        &[]
    };
    match request.store {
        None => {
            let per_item = request.gets.len().max(1);
            let mut reply = Vec::with_capacity(chosen.len().saturating_mul(per_item));
            for item in chosen {
                if request.gets.is_empty() {
                    reply.push(Reply::Bulk(item.element.clone()));
                }
                for pattern in &request.gets {
                    reply.push(lookup(ctx, pattern, &item.element).map_or(Reply::Nil, Reply::Bulk));
                }
            }
            Ok(Reply::Array(reply))
        }
        Some(destination) => {
            let mut list = List::default();
            for item in chosen {
                if request.gets.is_empty() {
                    list.push_back(&item.element);
                }
                for pattern in &request.gets {
                    let value = lookup(ctx, pattern, &item.element).unwrap_or_default();
                    list.push_back(&value);
                }
            }
            let stored = list.len();
            store(ctx, destination, list);
            Ok(Reply::Int(stored as i64))
        }
    }
}

/// Replaces `destination` with `list` (TTL cleared), or deletes it when
/// the list is empty, with Redis's notifications.
fn store(ctx: &Ctx<'_>, destination: &[u8], list: List) {
    if list.is_empty() {
        let removed = ctx
            .ks()
            .write(ctx.db(), destination, |txn| txn.remove(0).is_some());
        if removed {
            notify(ctx, GENERIC, "del", destination);
        }
        return;
    }
    let created = ctx.ks().write(ctx.db(), destination, |txn| {
        let created = !txn.exists(0);
        txn.insert(0, Value::List(list), None);
        created
    });
    notify_write(ctx, created, LIST, "sortstore", destination);
}

/// How two items compare: `sortCompare`.
struct Order {
    desc: bool,
    alpha: bool,
    by_pattern: bool,
    /// STORE compares bytes; a reply compares with `strcoll`.
    binary: bool,
}

impl Order {
    fn compare(&self, a: &Item, b: &Item) -> Ordering {
        let text = |x: &[u8], y: &[u8]| {
            if self.binary {
                x.cmp(y)
            } else {
                collate(x, y)
            }
        };
        let ordering = if !self.alpha {
            if a.score > b.score {
                Ordering::Greater
            } else if a.score < b.score {
                Ordering::Less
            } else {
                // Equal scores fall back to the elements' bytes, so the
                // result does not depend on the order the sort saw them in.
                a.element.cmp(&b.element)
            }
        } else if self.by_pattern {
            match (&a.weight, &b.weight) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => text(x, y),
            }
        } else {
            text(&a.element, &b.element)
        };
        if self.desc {
            ordering.reverse()
        } else {
            ordering
        }
    }
}

/// `strcoll` in the C locale: `strcmp`, which stops at the first NUL.
fn collate(a: &[u8], b: &[u8]) -> Ordering {
    c_str(a).cmp(c_str(b))
}

/// The bytes C functions see: up to the first NUL.
fn c_str(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

/// Where a `BY`/`GET` pattern leads for one element.
#[derive(Debug, PartialEq, Eq)]
enum Target<'p> {
    /// `#`: the element itself.
    Itself,
    /// A string key, or with `->field` a field of a hash key.
    Key(Vec<u8>, Option<&'p [u8]>),
    /// No `*`: a fixed key, which Redis never looks up.
    Nothing,
}

/// `lookupKeyByPattern`'s reading of a pattern: the first `*` takes the
/// element, and a `->` after it (not at the very end) names a hash field.
/// The searches stop at a NUL as C's `strchr`/`strstr` do; the parts they
/// delimit keep their full length.
fn target<'p>(pattern: &'p [u8], element: &[u8]) -> Target<'p> {
    let text = c_str(pattern);
    if text == b"#" {
        return Target::Itself;
    }
    let Some(star) = text.iter().position(|&b| b == b'*') else {
        return Target::Nothing;
    };
    let after = text.get(star + 1..).unwrap_or_default();
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&f| f + 2 < after.len());
    let tail = pattern.get(star + 1..).unwrap_or_default();
    let (postfix, field) = match arrow {
        Some(f) => (
            tail.get(..f).unwrap_or_default(),
            Some(tail.get(f + 2..).unwrap_or_default()),
        ),
        None => (tail, None),
    };
    let prefix = pattern.get(..star).unwrap_or_default();
    let mut key = Vec::with_capacity(prefix.len() + element.len() + postfix.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(element);
    key.extend_from_slice(postfix);
    Target::Key(key, field)
}

/// The value a pattern names for `element`: a string key's value or a hash
/// field's; `None` for a missing key or field, or another type.
fn lookup(ctx: &Ctx<'_>, pattern: &[u8], element: &Bytes) -> Option<Bytes> {
    let (key, field) = match target(pattern, element) {
        Target::Itself => return Some(element.clone()),
        Target::Nothing => return None,
        Target::Key(key, field) => (key, field),
    };
    let (found, value) = ctx.ks().read(ctx.db(), &key, ctx.read_options(), |entry| {
        let value = match (entry.map(|e| e.value()), field) {
            (Some(ValueRef::Str(s)), None) => Some(Bytes::copy_from_slice(s)),
            (Some(ValueRef::Hash(hash)), Some(field)) => {
                hash.get(field).map(Bytes::copy_from_slice)
            }
            _ => None,
        };
        (entry.is_some(), value)
    });
    if !found {
        keymiss(ctx, &key);
    }
    value
}

/// A weight as Redis reads it: `strtod` must convert everything up to the
/// end (or a NUL), without a range error and not to NaN.
fn strtod(text: &[u8]) -> Option<f64> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let blanks = text.iter().take_while(|b| is_space(b)).count();
    let mut i = blanks;
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let rest = text.get(i..).unwrap_or_default();
    let starts = |word: &[u8]| {
        rest.get(..word.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(word))
    };
    let hex_digit = |at: usize| rest.get(at).is_some_and(u8::is_ascii_hexdigit);
    let (magnitude, used, range_error) = if starts(b"infinity") {
        (f64::INFINITY, 8, false)
    } else if starts(b"inf") {
        (f64::INFINITY, 3, false)
    } else if starts(b"nan") {
        return None;
    } else if starts(b"0x") && (hex_digit(2) || (rest.get(2) == Some(&b'.') && hex_digit(3))) {
        let (value, used, range_error) = hex_float(rest.get(2..).unwrap_or_default());
        (value, used + 2, range_error)
    } else {
        match decimal(rest) {
            Some(parsed) => parsed,
            // No conversion: strtod points back at the very start.
            None => return text.first().is_none_or(|&b| b == 0).then_some(0.0),
        }
    };
    let end = text.get(i + used..).unwrap_or_default();
    if end.first().is_some_and(|&b| b != 0) || range_error {
        return None;
    }
    Some(if negative { -magnitude } else { magnitude })
}

/// A decimal number at the start of `text`: its value, the bytes it took,
/// and whether strtod would report a range error. `None`: no digits.
fn decimal(text: &[u8]) -> Option<(f64, usize, bool)> {
    let digits = |from: usize| {
        text.get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let whole = digits(0);
    let mut used = whole;
    let mut fraction = 0;
    if text.get(used) == Some(&b'.') {
        fraction = digits(used + 1);
        used += 1 + fraction;
    }
    if whole + fraction == 0 {
        return None;
    }
    let mantissa = text.get(..used).unwrap_or_default();
    let nonzero = mantissa.iter().any(|b| (b'1'..=b'9').contains(b));
    if matches!(text.get(used), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(text.get(used + 1), Some(b'+' | b'-')));
        let exponent = digits(used + 1 + sign);
        if exponent > 0 {
            used += 1 + sign + exponent;
        }
    }
    let value: f64 = std::str::from_utf8(text.get(..used).unwrap_or_default())
        .ok()?
        .parse()
        .ok()?;
    // glibc reports overflow, and underflow when the result lost precision
    // below the normal range (a decimal subnormal is never exact in practice).
    let range_error = value.is_infinite()
        || (value == 0.0 && nonzero)
        || (value != 0.0 && value.abs() < f64::MIN_POSITIVE);
    Some((value, used, range_error))
}

/// A hexadecimal float after its `0x`: digits, an optional point, an
/// optional binary exponent `p[+-]digits`. Rounded to nearest-even as
/// glibc does, with a range error on overflow or an inexact subnormal.
fn hex_float(text: &[u8]) -> (f64, usize, bool) {
    let mut mantissa: u64 = 0;
    let mut sticky = false;
    let mut exponent: i64 = 0;
    let mut used = 0;
    let mut seen_point = false;
    while let Some(&b) = text.get(used) {
        if b == b'.' && !seen_point {
            seen_point = true;
            used += 1;
            continue;
        }
        let Some(digit) = (b as char).to_digit(16) else {
            break;
        };
        if mantissa >> 60 == 0 {
            mantissa = mantissa * 16 + u64::from(digit);
            if seen_point {
                exponent -= 4;
            }
        } else {
            sticky |= digit != 0;
            if !seen_point {
                exponent = exponent.saturating_add(4);
            }
        }
        used += 1;
    }
    if matches!(text.get(used), Some(b'p' | b'P')) {
        let negative = text.get(used + 1) == Some(&b'-');
        let sign = usize::from(matches!(text.get(used + 1), Some(b'+' | b'-')));
        let digits = text
            .get(used + 1 + sign..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit());
        let mut count = 0;
        let mut power: i64 = 0;
        for digit in digits {
            power = power
                .saturating_mul(10)
                .saturating_add(i64::from(digit - b'0'));
            count += 1;
        }
        if count > 0 {
            used += 1 + sign + count;
            exponent = if negative {
                exponent.saturating_sub(power)
            } else {
                exponent.saturating_add(power)
            };
        }
    }
    let (value, range_error) = binary_float(mantissa, sticky, exponent);
    (value, used, range_error)
}

/// `mantissa * 2^exponent` (plus a nonzero tail when `sticky`) rounded to
/// a double, and whether that overflowed or was tiny and inexact.
fn binary_float(mantissa: u64, sticky: bool, exponent: i64) -> (f64, bool) {
    if mantissa == 0 {
        return (0.0, false);
    }
    let shift = mantissa.leading_zeros();
    let m = mantissa << shift;
    let low = exponent.saturating_sub(i64::from(shift));
    // m * 2^low with m in [2^63, 2^64): round to 53 bits.
    let round = |m: u64, drop: u32| -> (u64, bool) {
        if drop == 0 {
            return (m, sticky);
        }
        if drop >= 64 {
            return (0, true);
        }
        let kept = m >> drop;
        let rest = m & ((1u64 << drop) - 1);
        let half = 1u64 << (drop - 1);
        let up = rest > half || (rest == half && (sticky || kept & 1 == 1));
        (kept + u64::from(up), rest != 0 || sticky)
    };
    let (mut q, _) = round(m, 11);
    let mut top = low.saturating_add(63);
    if q == 1 << 53 {
        q >>= 1;
        top += 1;
    }
    if top > 1023 {
        return (f64::INFINITY, true);
    }
    if top >= -1022 {
        let bits = (((top + 1023) as u64) << 52) | (q & ((1 << 52) - 1));
        return (f64::from_bits(bits), false);
    }
    // Tiny after rounding: round again on the subnormal grid (2^-1074).
    let drop = -1074i64 - low;
    let (q, inexact) = match u32::try_from(drop) {
        Ok(drop) if drop < 64 => round(m, drop),
        _ => (0, true),
    };
    (f64::from_bits(q), inexact)
}

/// Redis's `pqsort`: NetBSD's quicksort that only sorts the parts which
/// overlap positions `lrange..=rrange`. Ported step for step so elements
/// that compare equal end up where Redis puts them. The left part is
/// queued instead of recursed into (the parts are disjoint, so the result
/// is the same) to keep the stack flat whatever the input.
fn pqsort<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> Ordering, lrange: usize, rrange: usize) {
    let c = |v: &[T], i: usize, j: usize| match (v.get(i), v.get(j)) {
        (Some(x), Some(y)) => cmp(x, y),
        _ => Ordering::Equal,
    };
    let swap = |v: &mut [T], i: usize, j: usize| {
        if i < v.len() && j < v.len() {
            v.swap(i, j);
        }
    };
    let insertion = |v: &mut [T], a: usize, n: usize| {
        for pm in a + 1..a + n {
            let mut pl = pm;
            while pl > a && c(v, pl - 1, pl) == Ordering::Greater {
                swap(v, pl, pl - 1);
                pl -= 1;
            }
        }
    };
    let med3 = |v: &[T], a: usize, b: usize, cc: usize| {
        if c(v, a, b) == Ordering::Less {
            if c(v, b, cc) == Ordering::Less {
                b
            } else if c(v, a, cc) == Ordering::Less {
                cc
            } else {
                a
            }
        } else if c(v, b, cc) == Ordering::Greater {
            b
        } else if c(v, a, cc) == Ordering::Less {
            a
        } else {
            cc
        }
    };
    let overlaps = |lo: usize, len: usize| !(rrange < lo || lrange >= lo + len);
    let mut pending = vec![(0, v.len())];
    while let Some((mut a, mut n)) = pending.pop() {
        loop {
            if n < 7 {
                insertion(v, a, n);
                break;
            }
            let mut pm = a + n / 2;
            if n > 7 {
                let mut pl = a;
                let mut pn = a + n - 1;
                if n > 40 {
                    let d = n / 8;
                    pl = med3(v, pl, pl + d, pl + 2 * d);
                    pm = med3(v, pm - d, pm, pm + d);
                    pn = med3(v, pn - 2 * d, pn - d, pn);
                }
                pm = med3(v, pl, pm, pn);
            }
            swap(v, a, pm);
            let mut swapped = false;
            let (mut pa, mut pb) = (a + 1, a + 1);
            let (mut pc, mut pd) = (a + n - 1, a + n - 1);
            loop {
                while pb <= pc {
                    let order = c(v, pb, a);
                    if order == Ordering::Greater {
                        break;
                    }
                    if order == Ordering::Equal {
                        swapped = true;
                        swap(v, pa, pb);
                        pa += 1;
                    }
                    pb += 1;
                }
                while pb <= pc {
                    let order = c(v, pc, a);
                    if order == Ordering::Less {
                        break;
                    }
                    if order == Ordering::Equal {
                        swapped = true;
                        swap(v, pc, pd);
                        pd -= 1;
                    }
                    pc -= 1;
                }
                if pb > pc {
                    break;
                }
                swap(v, pb, pc);
                swapped = true;
                pb += 1;
                pc -= 1;
            }
            if !swapped {
                insertion(v, a, n);
                break;
            }
            let pn = a + n;
            let r = (pa - a).min(pb - pa);
            for k in 0..r {
                swap(v, a + k, pb - r + k);
            }
            let r = (pd - pc).min(pn - pd - 1);
            for k in 0..r {
                swap(v, pb + k, pn - r + k);
            }
            let r = pb - pa;
            if r > 1 && overlaps(a, r) {
                pending.push((a, r));
            }
            let r = pd - pc;
            if r > 1 && overlaps(pn - r, r) {
                a = pn - r;
                n = r;
                continue;
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_reads_what_redis_accepts() {
        // Each case checked against redis-server 7.0 with SORT on a one-element list.
        let accepted: &[(&str, f64)] = &[
            ("", 0.0),
            (" 5", 5.0),
            ("\t5", 5.0),
            ("0x10", 16.0),
            ("inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("INF", f64::INFINITY),
            ("infinity", f64::INFINITY),
            ("2.5e-308", 2.5e-308),
            ("2.2250738585072014e-308", f64::MIN_POSITIVE),
            ("2.2250738585072013e-308", f64::MIN_POSITIVE),
            ("0e-400", 0.0),
            ("0.0000", 0.0),
            ("1e308", 1e308),
            ("+5", 5.0),
            ("5.", 5.0),
            (".5", 0.5),
            ("-.5e1", -5.0),
            ("0x1p3", 8.0),
            ("0x1p-1074", 5e-324),
            ("0x1p-1022", f64::MIN_POSITIVE),
            ("0x1.fffffffffffff8p-1023", f64::MIN_POSITIVE),
            ("0x1.fffffffffffffp1023", f64::MAX),
            ("0X.8", 0.5),
            ("0x1P+2", 4.0),
            ("7\0junk", 7.0),
            ("\0junk", 0.0),
        ];
        for (text, value) in accepted {
            assert_eq!(strtod(text.as_bytes()), Some(*value), "{text:?}");
        }
        let refused = [
            "abc",
            "1e-310",
            "2.2250738585072011e-308",
            "4.9e-324",
            "1e-400",
            "1.8e308",
            "0x1.8p-1074",
            "0x1p1024",
            "0x1.fffffffffffff8p1023",
            "0x",
            "0x.p1",
            "0x1p",
            "0x1p-1075",
            "nan",
            "-nan",
            "NaN(123)",
            "infinit",
            "1e",
            "1e+",
            "1 ",
            "  ",
            "-",
            "1e-324",
        ];
        for text in refused {
            assert_eq!(strtod(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn patterns_split_like_lookup_key_by_pattern() {
        let key = |k: &str, f: Option<&'static str>| {
            Target::Key(k.as_bytes().to_vec(), f.map(str::as_bytes))
        };
        assert_eq!(target(b"#", b"e"), Target::Itself);
        assert_eq!(target(b"#\0x", b"e"), Target::Itself);
        assert_eq!(target(b"##", b"e"), Target::Nothing);
        assert_eq!(target(b"nosort", b"e"), Target::Nothing);
        assert_eq!(target(b"w_*", b"e"), key("w_e", None));
        assert_eq!(target(b"w_*_x", b"e"), key("w_e_x", None));
        assert_eq!(target(b"w_**", b"e"), key("w_e*", None));
        assert_eq!(target(b"h_*->f", b"e"), key("h_e", Some("f")));
        assert_eq!(target(b"h_*->f->g", b"e"), key("h_e", Some("f->g")));
        // An arrow at the very end names no field.
        assert_eq!(target(b"h_*->", b"e"), key("h_e->", None));
        // An arrow before the star is part of the key.
        assert_eq!(target(b"a->*", b"e"), key("a->e", None));
        // The star is only searched before a NUL; a field keeps its bytes.
        assert_eq!(target(b"a\0*", b"e"), Target::Nothing);
        assert_eq!(target(b"h*->f\0g", b"e"), key("he", Some("f\0g")));
    }

    /// `pqsort` puts in `lrange..=rrange` what a full sort puts there.
    #[test]
    fn partial_sort_matches_a_full_sort_in_its_range() {
        let mut seed: u64 = 7;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for round in 0..400 {
            let len = (next() % 120) as usize + 1;
            let spread = if round % 3 == 0 { 5 } else { 1000 };
            let values: Vec<u64> = (0..len).map(|_| next() % spread).collect();
            let mut sorted = values.clone();
            sorted.sort();
            let l = (next() as usize) % len;
            let r = l + (next() as usize) % (len - l);
            let mut partial = values.clone();
            pqsort(&mut partial, &|a: &u64, b: &u64| a.cmp(b), l, r);
            assert_eq!(partial[l..=r], sorted[l..=r], "{values:?} {l}..={r}");
            let mut whole = values.clone();
            pqsort(&mut whole, &|a: &u64, b: &u64| a.cmp(b), 0, len - 1);
            assert_eq!(whole, sorted);
        }
    }

    #[test]
    fn limits_clamp_as_redis() {
        assert_eq!(limits(5, 0, -1), (0, 4));
        assert_eq!(limits(5, 1, 2), (1, 2));
        assert_eq!(limits(5, -3, 2), (0, 1));
        assert_eq!(limits(5, 3, 100), (3, 4));
        assert_eq!(limits(5, 5, 1), (4, 3));
        assert_eq!(limits(5, i64::MAX, i64::MAX), (4, 3));
        assert_eq!(limits(5, 2, 0), (2, 1));
        assert_eq!(limits(5, 2, -5), (2, 4));
        assert_eq!(limits(0, 0, -1), (-1, -2));
    }
}
