//! The list family: pushes and pops at both ends, ranges, positions and
//! moves between lists, with Redis 7's replies and error texts. The
//! blocking variants (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) try the
//! non-blocking operation first and otherwise wait in `crate::blocking`.
//!
//! Write commands look keys up without counting hits or misses, as Redis's
//! `lookupKeyWrite`; the read commands (LLEN, LRANGE, LINDEX, LPOS) count.

use bytes::Bytes;

use super::args::{parse_int, Args, CmdResult};
use super::context::Ctx;
use super::pubsub::{keymiss, notify, notify_write};
use crate::blocking::{parse_timeout, Block, Serve};
use crate::error;
use crate::keyspace::types::{Collection, List, Member};
use crate::keyspace::{EntryMut, Txn, Value, ValueRef};
use crate::protocol::Reply;
use crate::pubsub::notify::{GENERIC, LIST, NEW};
use crate::state::ServerState;

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

impl End {
    pub fn parse(word: &[u8]) -> Result<End, Reply> {
        if word.eq_ignore_ascii_case(b"left") {
            Ok(End::Left)
        } else if word.eq_ignore_ascii_case(b"right") {
            Ok(End::Right)
        } else {
            Err(Reply::StaticError(error::SYNTAX))
        }
    }
}

fn wrongtype() -> Reply {
    Reply::StaticError(error::WRONGTYPE)
}

/// The list a read found, `None` for no key, WRONGTYPE for another type.
fn as_list(value: Option<ValueRef<'_>>) -> Result<Option<&List>, Reply> {
    match value {
        None => Ok(None),
        Some(ValueRef::List(list)) => Ok(Some(list)),
        Some(_) => Err(wrongtype()),
    }
}

/// Whether key `i` of a transaction holds a list (false: no key);
/// WRONGTYPE for another type.
fn txn_has_list(txn: &Txn<'_>, i: usize) -> Result<bool, Reply> {
    Ok(as_list(txn.value(i))?.is_some())
}

/// The list at key `i`, created empty when `create` and the key is absent.
fn txn_list<'t>(txn: &'t mut Txn<'_>, i: usize, create: bool) -> Option<&'t mut List> {
    if create && !txn.exists(i) {
        txn.insert(i, Value::List(List::default()), None);
    }
    txn.entry_mut(i).and_then(EntryMut::list_mut)
}

fn pop(list: &mut List, end: End) -> Option<Member> {
    match end {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    }
}

fn push(list: &mut List, end: End, item: &[u8]) {
    match end {
        End::Left => list.push_front(item),
        End::Right => list.push_back(item),
    }
}

fn bulk(item: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(item))
}

fn bulks(items: impl IntoIterator<Item = Member>) -> Reply {
    Reply::Array(
        items
            .into_iter()
            .map(|item| Reply::Bulk(Bytes::from(item.into_vec())))
            .collect(),
    )
}

fn push_command(
    ctx: &mut Ctx<'_>,
    args: &mut Args<'_>,
    end: End,
    existing_only: bool,
) -> CmdResult {
    let key = args.next_bytes()?;
    let items = args.rest();
    let pushed = ctx.ks().write(ctx.db(), key, |txn| {
        let exists = txn_has_list(txn, 0)?;
        if existing_only && !exists {
            return Ok::<_, Reply>(None);
        }
        let list = txn_list(txn, 0, true).ok_or_else(wrongtype)?;
        for item in items {
            push(list, end, item);
        }
        Ok(Some((list.len(), !exists)))
    })?;
    let Some((len, created)) = pushed else {
        return Ok(Reply::Int(0));
    };
    notify_write(ctx, created, LIST, push_event(end), key);
    Ok(Reply::Int(len as i64))
}

/// # Format
/// `LPUSH key element [element ...]`
pub fn lpush(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    push_command(ctx, args, End::Left, false)
}

/// # Format
/// `RPUSH key element [element ...]`
pub fn rpush(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    push_command(ctx, args, End::Right, false)
}

/// # Format
/// `LPUSHX key element [element ...]`
pub fn lpushx(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    push_command(ctx, args, End::Left, true)
}

/// # Format
/// `RPUSHX key element [element ...]`
pub fn rpushx(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    push_command(ctx, args, End::Right, true)
}

/// A count as Redis's `getPositiveLongFromObjectOrReply` reads it.
fn positive_count(raw: &[u8]) -> Result<usize, Reply> {
    let count = parse_int(raw)?;
    if count < 0 {
        return Err(Reply::StaticError(error::MUST_BE_POSITIVE));
    }
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

fn pop_command(ctx: &mut Ctx<'_>, args: &mut Args<'_>, end: End) -> CmdResult {
    let key = args.next_bytes()?;
    let count = args.next().map(|raw| positive_count(raw)).transpose()?;
    if !args.is_empty() {
        let name = if end == End::Left { "lpop" } else { "rpop" };
        return Err(error::wrong_arity(name));
    }
    match (
        count,
        pop_some(ctx.state, ctx.db(), key, end, count.unwrap_or(1))?,
    ) {
        (None, None) => Ok(Reply::Nil),
        (Some(_), None) => Ok(Reply::NilArray),
        (None, Some(mut items)) => Ok(items
            .pop()
            .map_or(Reply::Nil, |item| Reply::Bulk(Bytes::from(item.into_vec())))),
        (Some(_), Some(items)) => Ok(bulks(items)),
    }
}

/// # Format
/// `LPOP key [count]`
pub fn lpop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    pop_command(ctx, args, End::Left)
}

/// # Format
/// `RPOP key [count]`
pub fn rpop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    pop_command(ctx, args, End::Right)
}

/// Runs `f` on the list at `key` (a read that counts a hit or miss).
fn read_list<R>(ctx: &Ctx<'_>, key: &[u8], f: impl FnOnce(Option<&List>) -> R) -> Result<R, Reply> {
    let (result, missed) = ctx.ks().read(ctx.db(), key, ctx.read_options(), |entry| {
        let missed = entry.is_none();
        (as_list(entry.map(|e| e.value())).map(f), missed)
    });
    // Where Redis's read lookup counts a miss, it fires `keymiss`.
    if missed {
        keymiss(ctx, key);
    }
    result
}

/// # Format
/// `LLEN key`
pub fn llen(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let len = read_list(ctx, key, |list| list.map_or(0, |l| l.len()))?;
    Ok(Reply::Int(len as i64))
}

/// Redis's range clamping: negative indexes count from the end; `None`
/// for an empty range.
fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

/// # Format
/// `LRANGE key start stop`
pub fn lrange(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let start = parse_int(args.next_bytes()?)?;
    let stop = parse_int(args.next_bytes()?)?;
    read_list(ctx, key, |list| {
        let Some(list) = list else {
            return Reply::Array(Vec::new());
        };
        match clamp_range(start, stop, list.len()) {
            Some((start, stop)) => Reply::bulk_array(list.range(start, stop)),
            None => Reply::Array(Vec::new()),
        }
    })
}

/// The position of index `index` (negative: from the end) in a list of `len`.
fn position(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let index = if index < 0 { len + index } else { index };
    (0..len).contains(&index).then_some(index as usize)
}

/// # Format
/// `LINDEX key index`
pub fn lindex(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let index = parse_int(args.next_bytes()?)?;
    read_list(ctx, key, |list| {
        list.and_then(|list| list.get(position(index, list.len())?))
            .map_or(Reply::Nil, bulk)
    })
}

/// # Format
/// `LSET key index element`
pub fn lset(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let index = parse_int(args.next_bytes()?)?;
    let item = args.next_bytes()?;
    ctx.ks().write(ctx.db(), key, |txn| {
        if !txn_has_list(txn, 0)? {
            return Err(Reply::StaticError(error::NO_SUCH_KEY));
        }
        let list = txn_list(txn, 0, false).ok_or_else(wrongtype)?;
        match position(index, list.len()) {
            Some(at) if list.set(at, item) => Ok(()),
            _ => Err(Reply::StaticError(error::INDEX_OUT_OF_RANGE)),
        }
    })?;
    notify(ctx, LIST, "lset", key);
    Ok(Reply::OK)
}

/// # Format
/// `LINSERT key <BEFORE | AFTER> pivot element`
pub fn linsert(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let after = match args.next_bytes()? {
        w if w.eq_ignore_ascii_case(b"after") => true,
        w if w.eq_ignore_ascii_case(b"before") => false,
        _ => return Err(Reply::StaticError(error::SYNTAX)),
    };
    let pivot = args.next_bytes()?;
    let item = args.next_bytes()?;
    let reply = ctx.ks().write(ctx.db(), key, |txn| {
        if !txn_has_list(txn, 0)? {
            return Ok::<_, Reply>(Reply::Int(0));
        }
        let list = txn_list(txn, 0, false).ok_or_else(wrongtype)?;
        let Some(found) = list.iter().position(|x| x == pivot.as_ref()) else {
            return Ok(Reply::Int(-1));
        };
        list.insert(found + usize::from(after), item);
        Ok(Reply::Int(list.len() as i64))
    })?;
    if matches!(reply, Reply::Int(len) if len > 0) {
        notify(ctx, LIST, "linsert", key);
    }
    Ok(reply)
}

/// # Format
/// `LREM key count element`
pub fn lrem(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let count = parse_int(args.next_bytes()?)?;
    let item = args.next_bytes()?;
    let (removed, emptied) = ctx.ks().write(ctx.db(), key, |txn| {
        if !txn_has_list(txn, 0)? {
            return Ok::<_, Reply>((0, false));
        }
        let list = txn_list(txn, 0, false).ok_or_else(wrongtype)?;
        let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
        let removed = list.remove_matching(|x| x == item.as_ref(), limit, count < 0);
        Ok((removed, list.is_empty()))
    })?;
    if removed > 0 {
        notify(ctx, LIST, "lrem", key);
    }
    if emptied {
        notify(ctx, GENERIC, "del", key);
    }
    Ok(Reply::Int(removed as i64))
}

/// # Format
/// `LTRIM key start stop`
pub fn ltrim(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let start = parse_int(args.next_bytes()?)?;
    let stop = parse_int(args.next_bytes()?)?;
    let trimmed = ctx.ks().write(ctx.db(), key, |txn| {
        if !txn_has_list(txn, 0)? {
            return Ok::<_, Reply>(None);
        }
        let list = txn_list(txn, 0, false).ok_or_else(wrongtype)?;
        match clamp_range(start, stop, list.len()) {
            Some((start, stop)) => list.retain_range(start, stop),
            None => list.retain_range(1, 0),
        }
        Ok(Some(list.is_empty()))
    })?;
    if let Some(emptied) = trimmed {
        notify(ctx, LIST, "ltrim", key);
        if emptied {
            notify(ctx, GENERIC, "del", key);
        }
    }
    Ok(Reply::OK)
}

/// # Format
/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`
pub fn lpos(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let item = args.next_bytes()?;
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    while let Some(option) = args.next() {
        let has_value = !args.is_empty();
        if option.eq_ignore_ascii_case(b"rank") && has_value {
            rank = parse_int(args.next_bytes()?)?;
            if rank == 0 {
                return Err(Reply::StaticError(error::LPOS_RANK_ZERO));
            }
            if rank == i64::MIN {
                return Err(Reply::StaticError(error::LPOS_RANK_RANGE));
            }
        } else if option.eq_ignore_ascii_case(b"count") && has_value {
            let n = parse_int(args.next_bytes()?)?;
            if n < 0 {
                return Err(Reply::StaticError(error::LPOS_COUNT_NEGATIVE));
            }
            count = Some(n);
        } else if option.eq_ignore_ascii_case(b"maxlen") && has_value {
            maxlen = parse_int(args.next_bytes()?)?;
            if maxlen < 0 {
                return Err(Reply::StaticError(error::LPOS_MAXLEN_NEGATIVE));
            }
        } else {
            return Err(Reply::StaticError(error::SYNTAX));
        }
    }
    read_list(ctx, key, |list| {
        let Some(list) = list else {
            return if count.is_some() {
                Reply::Array(Vec::new())
            } else {
                Reply::Nil
            };
        };
        let len = list.len();
        let from_tail = rank < 0;
        let skip = rank.unsigned_abs() - 1;
        let scan = if maxlen == 0 {
            len
        } else {
            len.min(usize::try_from(maxlen).unwrap_or(usize::MAX))
        };
        let positions: Box<dyn Iterator<Item = usize>> = if from_tail {
            Box::new((0..len).rev().take(scan))
        } else {
            Box::new((0..scan).take(len))
        };
        let mut matches = positions
            .filter(|&at| list.get(at) == Some(item.as_ref()))
            .skip(usize::try_from(skip).unwrap_or(usize::MAX));
        match count {
            None => matches
                .next()
                .map_or(Reply::Nil, |at| Reply::Int(at as i64)),
            Some(0) => Reply::Array(matches.map(|at| Reply::Int(at as i64)).collect()),
            Some(n) => Reply::Array(
                matches
                    .take(usize::try_from(n).unwrap_or(usize::MAX))
                    .map(|at| Reply::Int(at as i64))
                    .collect(),
            ),
        }
    })
}

/// Pops from `source` and pushes onto `destination` in one transaction.
/// `None`: the source is empty or absent (nothing moved).
fn move_one(
    state: &ServerState,
    db: usize,
    source: &[u8],
    destination: &[u8],
    from: End,
    to: End,
) -> Result<Option<Bytes>, Reply> {
    match try_move(state, db, source, destination, from, to)? {
        Moved::Item(item) => Ok(Some(item)),
        Moved::Nothing => Ok(None),
        Moved::DestinationNotList => Err(wrongtype()),
    }
}

/// What [`try_move`] did.
enum Moved {
    Item(Bytes),
    /// The source is absent (or empty).
    Nothing,
    /// The source has an element but the destination holds another type:
    /// nothing moved. A blocked BLMOVE is answered with the error then,
    /// while a source of another type keeps it waiting, as in Redis.
    DestinationNotList,
}

/// LMOVE's body. `Err`: the source holds another type.
fn try_move(
    state: &ServerState,
    db: usize,
    source: &[u8],
    destination: &[u8],
    from: End,
    to: End,
) -> Result<Moved, Reply> {
    let moved = state
        .keyspace
        .write_many([(db, source), (db, destination)], |txn| {
            if !txn_has_list(txn, 0)? {
                return Ok::<_, Reply>(None);
            }
            let Ok(has_destination) = txn_has_list(txn, 1) else {
                return Ok(Some(None));
            };
            let created = !has_destination;
            let item = txn_list(txn, 0, false)
                .and_then(|list| pop(list, from))
                .ok_or_else(wrongtype)?;
            let target = txn_list(txn, 1, true).ok_or_else(wrongtype)?;
            push(target, to, &item);
            let emptied = txn
                .value(0)
                .and_then(ValueRef::as_list)
                .is_none_or(|list| list.is_empty());
            Ok(Some(Some((Bytes::from(item.into_vec()), created, emptied))))
        })?;
    let (item, created, emptied) = match moved {
        None => return Ok(Moved::Nothing),
        Some(None) => return Ok(Moved::DestinationNotList),
        Some(Some(moved)) => moved,
    };
    if created {
        state.notify(NEW, "new", db, destination);
    }
    state.notify(LIST, push_event(to), db, destination);
    state.notify(LIST, pop_event(from), db, source);
    if emptied {
        state.notify(GENERIC, "del", db, source);
    }
    Ok(Moved::Item(item))
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

/// # Format
/// `LMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT>`
pub fn lmove(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let source = args.next_bytes()?;
    let destination = args.next_bytes()?;
    let from = End::parse(args.next_bytes()?)?;
    let to = End::parse(args.next_bytes()?)?;
    Ok(Reply::opt_bulk(move_one(
        ctx.state,
        ctx.db(),
        source,
        destination,
        from,
        to,
    )?))
}

/// # Format
/// `RPOPLPUSH source destination`
pub fn rpoplpush(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let source = args.next_bytes()?;
    let destination = args.next_bytes()?;
    Ok(Reply::opt_bulk(move_one(
        ctx.state,
        ctx.db(),
        source,
        destination,
        End::Right,
        End::Left,
    )?))
}

/// LMPOP's and BLMPOP's arguments after the timeout.
pub(super) struct MultiPop<'a> {
    pub keys: &'a [Bytes],
    pub end: End,
    pub count: usize,
}

/// Parses `numkeys key [key ...] <LEFT | RIGHT> [COUNT count]`.
pub(super) fn parse_multi_pop<'a>(args: &mut Args<'a>) -> Result<MultiPop<'a>, Reply> {
    // Redis's getRangeLongFromObjectOrReply: one message for a number
    // out of range and for no number at all.
    let numkeys = parse_int(args.next_bytes()?)
        .ok()
        .filter(|&n| n > 0)
        .ok_or(Reply::StaticError(error::NUMKEYS_POSITIVE))?;
    let rest = args.rest();
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys >= rest.len() {
        return Err(Reply::StaticError(error::SYNTAX));
    }
    let keys = rest.get(..numkeys).unwrap_or_default();
    for _ in 0..numkeys {
        args.next();
    }
    let end = End::parse(args.next_bytes()?)?;
    let mut count = None;
    while let Some(option) = args.next() {
        if count.is_none() && option.eq_ignore_ascii_case(b"count") && !args.is_empty() {
            let n = parse_int(args.next_bytes()?)
                .ok()
                .filter(|&n| n > 0)
                .ok_or(Reply::StaticError(error::COUNT_POSITIVE))?;
            count = Some(usize::try_from(n).unwrap_or(usize::MAX));
        } else {
            return Err(Reply::StaticError(error::SYNTAX));
        }
    }
    Ok(MultiPop {
        keys,
        end,
        count: count.unwrap_or(1),
    })
}

/// Pops up to `count` elements from `key` when it holds a non-empty list:
/// `Ok(None)` when it holds nothing to pop.
fn pop_some(
    state: &ServerState,
    db: usize,
    key: &[u8],
    end: End,
    count: usize,
) -> Result<Option<Vec<Member>>, Reply> {
    let popped = state.keyspace.write(db, key, |txn| {
        if !txn_has_list(txn, 0)? {
            return Ok::<_, Reply>(None);
        }
        let list = txn_list(txn, 0, false).ok_or_else(wrongtype)?;
        let taken = count.min(list.len());
        let items: Vec<Member> = (0..taken).filter_map(|_| pop(list, end)).collect();
        Ok(Some((items, list.is_empty())))
    })?;
    let Some((items, emptied)) = popped else {
        return Ok(None);
    };
    if !items.is_empty() {
        state.notify(LIST, pop_event(end), db, key);
    }
    if emptied {
        state.notify(GENERIC, "del", db, key);
    }
    Ok(Some(items))
}

/// LMPOP's reply for one key: the key and what was popped from it.
fn multi_pop_one(
    state: &ServerState,
    db: usize,
    key: &[u8],
    end: End,
    count: usize,
) -> Result<Option<Reply>, Reply> {
    Ok(pop_some(state, db, key, end, count)?
        .map(|items| Reply::Array(vec![Reply::Bulk(Bytes::copy_from_slice(key)), bulks(items)])))
}

/// # Format
/// `LMPOP numkeys key [key ...] <LEFT | RIGHT> [COUNT count]`
pub fn lmpop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let request = parse_multi_pop(args)?;
    for key in request.keys {
        if let Some(reply) = multi_pop_one(ctx.state, ctx.db(), key, request.end, request.count)? {
            return Ok(reply);
        }
    }
    Ok(Reply::NilArray)
}

/// The blocking commands' common part: `serve` is tried on each key in
/// order (an error ends the command, as the non-blocking command would);
/// when none serves, the client blocks until a key is ready or `timeout`
/// runs out (then: `timeout_reply`). Inside MULTI/EXEC it never blocks.
pub(super) fn block_on(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    timeout: Option<std::time::Duration>,
    timeout_reply: Reply,
    mut serve: Serve,
) -> CmdResult {
    let db = ctx.db();
    for key in keys {
        if let Some(reply) = serve(ctx.state, db, key)? {
            return Ok(reply);
        }
    }
    if ctx.session.in_exec {
        return Ok(timeout_reply);
    }
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    match ctx.state.blocking.block(
        ctx.state,
        ctx.session.client.id,
        db,
        keys,
        serve,
        deadline,
        timeout_reply,
    ) {
        Block::Served(reply) => Ok(reply),
        Block::Waiting(blocked) => {
            ctx.session.blocked = Some(blocked);
            Ok(Reply::NoReply)
        }
    }
}

fn blocking_pop(ctx: &mut Ctx<'_>, args: &mut Args<'_>, end: End) -> CmdResult {
    let all = args.rest();
    let (timeout, keys) = all.split_last().ok_or(Reply::StaticError(error::SYNTAX))?;
    let timeout = parse_timeout(timeout)?;
    let serve: Serve = Box::new(move |state, db, key| {
        Ok(pop_some(state, db, key, end, 1)?.and_then(|mut items| {
            let item = items.pop()?;
            Some(Reply::Array(vec![
                Reply::Bulk(Bytes::copy_from_slice(key)),
                Reply::Bulk(Bytes::from(item.into_vec())),
            ]))
        }))
    });
    block_on(ctx, keys, timeout, Reply::NilArray, serve)
}

/// # Format
/// `BLPOP key [key ...] timeout`
pub fn blpop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, End::Left)
}

/// # Format
/// `BRPOP key [key ...] timeout`
pub fn brpop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, End::Right)
}

fn blocking_move(
    ctx: &mut Ctx<'_>,
    source: &Bytes,
    destination: &Bytes,
    from: End,
    to: End,
    timeout: Option<std::time::Duration>,
) -> CmdResult {
    let target = destination.clone();
    let serve: Serve = Box::new(move |state, db, key| {
        Ok(match try_move(state, db, key, &target, from, to)? {
            Moved::Item(item) => Some(Reply::Bulk(item)),
            Moved::Nothing => None,
            Moved::DestinationNotList => Some(wrongtype()),
        })
    });
    block_on(
        ctx,
        std::slice::from_ref(source),
        timeout,
        Reply::Nil,
        serve,
    )
}

/// # Format
/// `BLMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT> timeout`
pub fn blmove(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let source = args.next_bytes()?;
    let destination = args.next_bytes()?;
    let from = End::parse(args.next_bytes()?)?;
    let to = End::parse(args.next_bytes()?)?;
    let timeout = parse_timeout(args.next_bytes()?)?;
    blocking_move(ctx, source, destination, from, to, timeout)
}

/// # Format
/// `BRPOPLPUSH source destination timeout`
pub fn brpoplpush(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let source = args.next_bytes()?;
    let destination = args.next_bytes()?;
    let timeout = parse_timeout(args.next_bytes()?)?;
    blocking_move(ctx, source, destination, End::Right, End::Left, timeout)
}

/// # Format
/// `BLMPOP timeout numkeys key [key ...] <LEFT | RIGHT> [COUNT count]`
pub fn blmpop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let timeout = parse_timeout(args.next_bytes()?)?;
    let request = parse_multi_pop(args)?;
    let (end, count) = (request.end, request.count);
    let serve: Serve = Box::new(move |state, db, key| multi_pop_one(state, db, key, end, count));
    block_on(ctx, request.keys, timeout, Reply::NilArray, serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(5, 10, 3), None);
        assert_eq!(clamp_range(0, -4, 3), None);
        assert_eq!(clamp_range(0, 0, 0), None);
        assert_eq!(position(-1, 3), Some(2));
        assert_eq!(position(3, 3), None);
        assert_eq!(position(-4, 3), None);
    }
}
