//! Commands: the table (`table.rs`), one file per family, and the dispatcher
//! that applies the table's policy once for all of them: lookup, subcommand
//! resolution, arity, authentication, timing, commandstats, errorstats,
//! slowlog and MONITOR; inside MULTI it hands commands to `multi.rs`.

mod args;
mod bits;
mod cache;
mod connection;
mod context;
mod docs;
mod hashes;
mod keys;
mod lists;
mod long_double;
mod multi;
mod pubsub;
mod scripting;
mod server;
mod sets;
mod sort;
mod strings;
pub mod table;
mod zsets;

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

pub use args::{parse_float, Args, CmdResult};
pub use context::{AfterReply, Ctx, ReplyMode, Session};

use crate::error;
use crate::keyspace;
use crate::protocol::Reply;
use crate::state::ServerState;
use table::{Registry, DENYOOM, FAST, NOAUTH, REGISTRY, SKIP_MONITOR, SKIP_SLOWLOG, WRITE};

/// Number of commandstats slots the server must allocate.
pub fn command_count() -> usize {
    REGISTRY.len()
}

/// Runs one request (`args[0]` is the command name) and returns its reply.
pub fn execute(state: &ServerState, session: &mut Session, args: &[Bytes]) -> Reply {
    let Some(name) = args.first() else {
        return Reply::NoReply;
    };
    let registry: &'static Registry = &REGISTRY;
    let Some(mut id) = registry.lookup(name) else {
        return reject(
            state,
            session,
            None,
            error::unknown_command(name, &args[1..]),
        );
    };
    let mut spec = registry.entries[id].spec;
    if !spec.subcommands.is_empty() && args.len() >= 2 {
        match registry.lookup_sub(id, &args[1]) {
            Some(sub) => {
                id = sub;
                spec = registry.entries[id].spec;
            }
            None => {
                let reply = error::unknown_subcommand(spec.name, &args[1]);
                return reject(state, session, None, reply);
            }
        }
    }
    if !arity_ok(spec.arity, args.len()) {
        let reply = error::wrong_arity(&registry.entries[id].full_name);
        return reject(state, session, Some(id), reply);
    }
    if !session.authenticated && spec.flags & NOAUTH == 0 && state.auth_enabled.load(Relaxed) {
        return reject(state, session, Some(id), Reply::StaticError(error::NOAUTH));
    }
    let mut handler = spec.handler;
    if session.client.mailbox.subscribed() {
        match pubsub::subscribed_mode(state, session, &registry.entries[id].full_name) {
            pubsub::Gate::Run => {}
            pubsub::Gate::RunInstead(instead) => handler = instead,
            pubsub::Gate::Refuse(reply) => return reject(state, session, Some(id), reply),
        }
    }
    if let Some(reply) = multi::intercept(state, session, args, id) {
        return reply;
    }

    let _gate = state.exec_gate.read();
    if let Err(reply) = admit(state, session, id, spec.flags) {
        return reply;
    }
    // Wall-clock microseconds, as Redis's ustime(): the same reading dates
    // the command for the keyspace and starts its duration.
    let started_us = keyspace::unix_micros();
    let _clock = keyspace::pin_clock(started_us / 1000);
    session.client.touch(id, started_us / 1000);
    invoke(state, session, args, id, handler, started_us)
}

/// The keys a call will touch, as the source's read-through needs them.
pub struct KeyedCall {
    pub write: bool,
    /// The call replaces its keys whatever they held (SET without options
    /// that read the old value, MSET, SETEX): nothing needs loading first.
    pub overwrite: bool,
    pub keys: Vec<Bytes>,
}

/// The keys `args` names, or `None` when the call touches none now (no
/// keys, an unknown command, a command queued by MULTI). EXEC names the
/// keys of its whole queue.
pub fn keyed_call(session: &Session, args: &[Bytes]) -> Option<KeyedCall> {
    let registry: &'static Registry = &REGISTRY;
    let id = registry.lookup(args.first()?)?;
    let mut spec = registry.entries[id].spec;
    if spec.name == "exec" {
        let mut call = KeyedCall {
            write: false,
            overwrite: false,
            keys: Vec::new(),
        };
        for queued in multi::queued(session) {
            if let Some(inner) = keyed_call_of(queued) {
                call.write |= inner.write;
                call.keys.extend(inner.keys);
            }
        }
        return (!call.keys.is_empty()).then_some(call);
    }
    if session.transaction.is_some() {
        return None;
    }
    if !spec.subcommands.is_empty() {
        let sub = registry.lookup_sub(id, args.get(1)?)?;
        spec = registry.entries[sub].spec;
    }
    if spec.first_key <= 0 && spec.flags & table::MOVABLEKEYS == 0 {
        return None;
    }
    keyed_call_of(args)
}

fn keyed_call_of(args: &[Bytes]) -> Option<KeyedCall> {
    let registry: &'static Registry = &REGISTRY;
    let id = registry.lookup(args.first()?)?;
    let mut spec = registry.entries[id].spec;
    if !spec.subcommands.is_empty() {
        let sub = registry.lookup_sub(id, args.get(1)?)?;
        spec = registry.entries[sub].spec;
    }
    let keys = table::keys_of(spec, args);
    if keys.is_empty() {
        return None;
    }
    let overwrite = match spec.name {
        "mset" | "setex" | "psetex" => true,
        "set" => args.iter().skip(3).all(|option| {
            let option = option.to_ascii_lowercase();
            !matches!(option.as_slice(), b"nx" | b"xx" | b"get" | b"keepttl")
        }),
        _ => false,
    };
    Some(KeyedCall {
        write: spec.flags & WRITE != 0,
        overwrite,
        keys,
    })
}

/// Refuses a request before it ran (the source cannot serve it), counted
/// as Redis counts a rejected call.
pub fn refuse(state: &ServerState, session: &mut Session, args: &[Bytes], reply: Reply) -> Reply {
    let id = args.first().and_then(|name| REGISTRY.lookup(name));
    reject(state, session, id, reply)
}

/// As Redis's processCommand: keep the bounds, then refuse what cannot run.
/// `flags` are the command's, or for EXEC those of its queue.
fn admit(state: &ServerState, session: &mut Session, id: usize, flags: u32) -> Result<(), Reply> {
    if let Err(refusal) = state.keyspace.make_room(flags & DENYOOM != 0) {
        let text = match refusal {
            keyspace::Refusal::OutOfMemory => error::OOM,
            keyspace::Refusal::OutOfDisk => error::OOM_DISK,
        };
        return Err(reject(state, session, Some(id), Reply::StaticError(text)));
    }
    if flags & WRITE != 0 {
        if let Some(reason) = state.keyspace.write_refusal() {
            return Err(reject(state, session, Some(id), error::misconf(&reason)));
        }
    }
    Ok(())
}

/// Calls the handler of an admitted command and accounts for it (stats,
/// errorstats, slowlog, MONITOR). The clock is pinned by the caller:
/// once per command, or once for a whole EXEC.
fn invoke(
    state: &ServerState,
    session: &mut Session,
    args: &[Bytes],
    id: usize,
    handler: table::Handler,
    started_us: u64,
) -> Reply {
    let entry = &REGISTRY.entries[id];
    let spec = entry.spec;
    if spec.flags & WRITE != 0 {
        session.wrote = true;
    }
    // Commands that are not fast (INFO, CONFIG RESETSTAT, ...) see every
    // call made before them on this connection.
    if spec.flags & FAST == 0 {
        session.pending_stats.flush(&state.stats);
    }
    if spec.flags & SKIP_MONITOR == 0 && state.has_monitors() {
        state.feed_monitors(monitor_line(session, args));
    }
    let skip = if entry.parent.is_some() { 2 } else { 1 };
    let mut cmd_args = Args::new(args.get(skip..).unwrap_or_default());
    let reply: Reply = {
        let mut ctx = Ctx { state, session };
        handler(&mut ctx, &mut cmd_args).into()
    };
    // As Redis after each command: clients blocked on keys this command
    // filled are served before anything else runs (after EXEC, not within).
    if !session.in_exec {
        state.blocking.serve_ready(state);
    }
    let micros = keyspace::unix_micros().saturating_sub(started_us);
    account(state, session, id, &reply, micros);
    if spec.flags & SKIP_SLOWLOG == 0
        && session.slowlog_threshold >= 0
        && micros >= session.slowlog_threshold as u64
    {
        record_slow(state, session, args, micros);
    }
    reply
}

/// Commandstats and errorstats of one call.
fn account(state: &ServerState, session: &mut Session, id: usize, reply: &Reply, micros: u64) {
    session.pending_stats.record(id, micros);
    if let Some(text) = reply.error_text() {
        state.stats.commands[id].failed.fetch_add(1, Relaxed);
        state.stats.record_error(error::error_code(text));
    }
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = argc as i64;
    let arity = i64::from(arity);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// A refusal before the command ran; inside MULTI it also dooms the
/// transaction, and refusing EXEC discards it.
fn reject(state: &ServerState, session: &mut Session, id: Option<usize>, reply: Reply) -> Reply {
    let reply = multi::on_reject(state, session, id, reply);
    if let Some(id) = id {
        state.stats.commands[id].rejected.fetch_add(1, Relaxed);
    }
    if let Some(text) = reply.error_text() {
        state.stats.record_error(error::error_code(text));
    }
    reply
}

fn record_slow(state: &ServerState, session: &Session, args: &[Bytes], micros: u64) {
    let max_len = state.config.read().config.server.slowlog_max_len;
    let name = session.client.labels.lock().name.clone();
    state.slowlog.lock().push(
        args,
        micros,
        session.client.peer.to_string(),
        name,
        max_len as usize,
    );
}

/// The full name of a command-table id, `NULL` for none (CLIENT LIST's `cmd=`).
pub fn last_command_name(id: usize) -> String {
    REGISTRY
        .entries
        .get(id)
        .map_or_else(|| "NULL".to_string(), |entry| entry.full_name.clone())
}

/// `1339518083.107412 [0 127.0.0.1:60866] "keys" "*"`, quoted like Redis's `sdscatrepr`.
fn monitor_line(session: &Session, args: &[Bytes]) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = format!(
        "{}.{:06} [{} {}]",
        now.as_secs(),
        now.subsec_micros(),
        session.db,
        session.client.peer
    );
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    Bytes::from(line)
}

/// Redis's `sdscatrepr`: a double-quoted string with C escapes.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}
