//! Transactions: MULTI opens a queue, EXEC runs it as one step that no
//! other client observes or interleaves with, DISCARD drops it, and
//! WATCH/UNWATCH make EXEC conditional on keys staying unchanged (the
//! registry of watched keys lives in `keyspace::watch`).
//!
//! The dispatcher hands every resolved command to [`intercept`] first: in a
//! transaction, commands other than EXEC, DISCARD, MULTI, WATCH, QUIT and
//! RESET are checked as Redis's processCommand checks them and queued.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::LazyLock;

use bytes::Bytes;

use super::table::{DENYOOM, NO_MULTI, REGISTRY, WRITE};
use super::{Args, CmdResult, Ctx, Session};
use crate::error;
use crate::keyspace;
use crate::protocol::Reply;
use crate::state::ServerState;

/// The queue between MULTI and EXEC.
#[derive(Default)]
pub struct Transaction {
    queue: Vec<Queued>,
    /// Union of the queued commands' flags: EXEC is admitted by them (OOM, MISCONF).
    flags: u32,
    /// A command was refused while queuing (Redis's `CLIENT_DIRTY_EXEC`).
    aborted: bool,
}

struct Queued {
    id: usize,
    /// Copied: slices of the read buffer would pin a buffer per command.
    args: Vec<Bytes>,
}

/// The argument vectors MULTI has queued on this session.
pub fn queued(session: &Session) -> impl Iterator<Item = &[Bytes]> {
    session
        .transaction
        .iter()
        .flat_map(|t| t.queue.iter().map(|q| q.args.as_slice()))
}

/// Command-table ids the transaction logic tests against.
struct Ids {
    exec: usize,
    discard: usize,
    multi: usize,
    watch: usize,
    quit: usize,
    reset: usize,
    monitor: usize,
}

static IDS: LazyLock<Ids> = LazyLock::new(|| {
    let id = |name: &str| REGISTRY.lookup(name.as_bytes()).unwrap_or(usize::MAX);
    Ids {
        exec: id("exec"),
        discard: id("discard"),
        multi: id("multi"),
        watch: id("watch"),
        quit: id("quit"),
        reset: id("reset"),
        monitor: id("monitor"),
    }
});

/// Takes over a resolved command (name, arity and auth checked) while a
/// transaction is open, and RESET: `Some` is the reply, `None` lets the
/// dispatcher run it as usual.
pub(super) fn intercept(
    state: &ServerState,
    session: &mut Session,
    args: &[Bytes],
    id: usize,
) -> Option<Reply> {
    let ids = &*IDS;
    if id == ids.reset {
        end_transaction(session);
        return None;
    }
    session.transaction.as_ref()?;
    if id == ids.exec {
        return Some(exec_queue(state, session, args));
    }
    if id == ids.discard || id == ids.quit {
        return None;
    }
    if id != ids.multi && id != ids.watch {
        return Some(queue(state, session, args, id));
    }
    // MULTI and WATCH run (to fail), but in a transaction an out-of-memory
    // server refuses them as it refuses queuing.
    let _gate = state.exec_gate.read();
    super::admit(state, session, id, DENYOOM).err()
}

/// The dispatcher refused a command (`id` when it is known): in a
/// transaction that dooms EXEC; refusing EXEC itself discards the
/// transaction with `-EXECABORT` naming the reason.
pub(super) fn on_reject(
    state: &ServerState,
    session: &mut Session,
    id: Option<usize>,
    reply: Reply,
) -> Reply {
    if let Some(transaction) = &mut session.transaction {
        transaction.aborted = true;
    }
    if id != Some(IDS.exec) {
        return reply;
    }
    end_transaction(session);
    if state.has_monitors() {
        state.feed_monitors(super::monitor_line(session, &[Bytes::from_static(b"EXEC")]));
    }
    error::exec_abort(reply.error_text().unwrap_or_default())
}

fn queue(state: &ServerState, session: &mut Session, args: &[Bytes], id: usize) -> Reply {
    let flags = REGISTRY.entries[id].spec.flags;
    if flags & NO_MULTI != 0 {
        return super::reject(
            state,
            session,
            Some(id),
            Reply::StaticError(error::NOT_IN_MULTI),
        );
    }
    {
        let _gate = state.exec_gate.read();
        if let Err(reply) = super::admit(state, session, id, flags | DENYOOM) {
            return reply;
        }
    }
    session.client.touch(id, keyspace::now_ms());
    let dirty = session.watched.flag().is_dirty();
    if let Some(transaction) = &mut session.transaction {
        // A doomed transaction keeps answering QUEUED but holds nothing.
        if !transaction.aborted && !dirty {
            transaction.queue.push(Queued {
                id,
                args: args.iter().map(|arg| Bytes::copy_from_slice(arg)).collect(),
            });
            transaction.flags |= flags;
            session
                .client
                .multi
                .store(transaction.queue.len() as i64, Relaxed);
        }
    }
    Reply::Simple("QUEUED")
}

/// EXEC inside a transaction.
fn exec_queue(state: &ServerState, session: &mut Session, args: &[Bytes]) -> Reply {
    let exec = IDS.exec;
    let queued_flags = session.transaction.as_ref().map_or(0, |t| t.flags);
    {
        // Admitted by what the queue will do, as Redis admits EXEC.
        let _gate = state.exec_gate.read();
        let flags = REGISTRY.entries[exec].spec.flags | (queued_flags & (DENYOOM | WRITE));
        if let Err(reply) = super::admit(state, session, exec, flags) {
            return reply;
        }
    }
    let _gate = state.exec_gate.write();
    // One clock reading for the whole transaction: Redis freezes time in EXEC.
    let started_us = keyspace::unix_micros();
    let _clock = keyspace::pin_clock(started_us / 1000);
    session.client.touch(exec, started_us / 1000);
    session.pending_stats.flush(&state.stats);
    let transaction = session.transaction.take().unwrap_or_default();
    let reply = if transaction.aborted {
        Reply::StaticError(error::EXECABORT)
    } else if session.watched.flag().is_dirty()
        || state.keyspace.watched_key_expired(&session.watched)
    {
        Reply::NilArray
    } else {
        session.watched.release();
        // Blocking commands answer at once, and blocked clients wait for
        // the whole transaction before they are served.
        session.in_exec = true;
        let mut replies = Vec::with_capacity(transaction.queue.len());
        for queued in &transaction.queue {
            let reply = if queued.id == IDS.monitor {
                // Streaming would break the one-reply-per-command contract.
                Reply::StaticError(error::MONITOR_IN_EXEC)
            } else {
                let started_us = keyspace::unix_micros();
                let handler = REGISTRY.entries[queued.id].spec.handler;
                super::invoke(state, session, &queued.args, queued.id, handler, started_us)
            };
            // CLIENT REPLY OFF|SKIP answers nothing, but an array needs every element.
            replies.push(match reply {
                Reply::NoReply => Reply::OK,
                reply => reply,
            });
        }
        session.in_exec = false;
        state.blocking.serve_ready(state);
        Reply::Array(replies)
    };
    end_transaction(session);
    let micros = keyspace::unix_micros().saturating_sub(started_us);
    super::account(state, session, exec, &reply, micros);
    // After the queued commands, as Redis feeds them.
    if state.has_monitors() {
        state.feed_monitors(super::monitor_line(session, args));
    }
    reply
}

/// Redis's `discardTransaction`: the queue, the watched keys and the CAS
/// mark go.
fn end_transaction(session: &mut Session) {
    session.transaction = None;
    session.client.multi.store(-1, Relaxed);
    session.watched.release();
    session.watched.flag().clear();
}

/// # Format
/// `MULTI`
pub fn multi(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    if ctx.session.transaction.is_some() {
        return Err(Reply::StaticError(error::MULTI_NESTED));
    }
    ctx.session.transaction = Some(Transaction::default());
    ctx.session.client.multi.store(0, Relaxed);
    Ok(Reply::OK)
}

/// # Format
/// `EXEC` (inside a transaction the dispatcher runs it, see [`intercept`])
pub fn exec(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Err(Reply::StaticError(error::EXEC_WITHOUT_MULTI))
}

/// # Format
/// `DISCARD`
pub fn discard(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    if ctx.session.transaction.is_none() {
        return Err(Reply::StaticError(error::DISCARD_WITHOUT_MULTI));
    }
    end_transaction(ctx.session);
    Ok(Reply::OK)
}

/// # Format
/// `WATCH key [key ...]`
pub fn watch(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    if ctx.session.transaction.is_some() {
        return Err(Reply::StaticError(error::WATCH_IN_MULTI));
    }
    // Already doomed: watching more changes nothing.
    if ctx.session.watched.flag().is_dirty() {
        return Ok(Reply::OK);
    }
    let db = ctx.session.db;
    for key in args.rest() {
        ctx.state.keyspace.watch(&mut ctx.session.watched, db, key);
    }
    Ok(Reply::OK)
}

/// # Format
/// `UNWATCH`
pub fn unwatch(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    ctx.session.watched.release();
    ctx.session.watched.flag().clear();
    Ok(Reply::OK)
}
