//! Connection family: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET and CLIENT.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

use super::args::{parse_int, Args, CmdResult};
use super::context::{AfterReply, Ctx, ReplyMode};
use crate::error;
use crate::protocol::{Reply, Version};

/// The Redis version strata behaves as (HELLO, INFO).
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
const BAD_PROTOCOL_VERSION: &str = "ERR Protocol version is not an integer or out of range";
const BAD_CLIENT_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
const NO_SUCH_CLIENT: &str = "ERR No such client";

/// # Format
/// `PING [message]`
pub fn ping(_ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    match args.remaining() {
        0 => Ok(Reply::Simple("PONG")),
        1 => Ok(Reply::Bulk(args.next_bytes()?.clone())),
        _ => Err(error::wrong_arity("ping")),
    }
}

/// # Format
/// `ECHO message`
pub fn echo(_ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Bulk(args.next_bytes()?.clone()))
}

/// # Format
/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
pub fn hello(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let mut version = None;
    if let Some(raw) = args.next() {
        let number = parse_int(raw).map_err(|_| Reply::StaticError(BAD_PROTOCOL_VERSION))?;
        version = Some(match number {
            2 => Version::Resp2,
            3 => Version::Resp3,
            _ => return Err(Reply::StaticError(error::NOPROTO)),
        });
    }
    let mut credentials = None;
    let mut name = None;
    while let Some(option) = args.next() {
        if option.eq_ignore_ascii_case(b"AUTH") && args.remaining() >= 2 {
            let user = args.next_bytes()?;
            let password = args.next_bytes()?;
            credentials = Some((user, password));
        } else if option.eq_ignore_ascii_case(b"SETNAME") && args.remaining() >= 1 {
            let value = args.next_bytes()?;
            validate_name(value)?;
            name = Some(value);
        } else {
            return Err(Reply::Error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(option)
            )));
        }
    }
    if let Some((user, password)) = credentials {
        check_password(ctx, Some(user), password)?;
        ctx.session.authenticated = true;
    }
    if !ctx.session.authenticated && ctx.state.auth_enabled.load(Relaxed) {
        return Err(Reply::StaticError(HELLO_NOAUTH));
    }
    if let Some(name) = name {
        ctx.session.client.labels.lock().name = String::from_utf8_lossy(name).into_owned();
    }
    if let Some(version) = version {
        ctx.session.set_version(version);
    }
    let field = |name: &'static str, value: Reply| (Reply::bulk_str(name), value);
    Ok(Reply::Map(vec![
        field("server", Reply::bulk_str("redis")),
        field("version", Reply::bulk_str(REDIS_COMPAT_VERSION)),
        field("proto", Reply::Int(ctx.session.version.number())),
        field("id", Reply::Int(ctx.session.client.id as i64)),
        field("mode", Reply::bulk_str("standalone")),
        field("role", Reply::bulk_str("master")),
        field("modules", Reply::Array(Vec::new())),
    ]))
}

/// # Format
/// `AUTH [username] password`
pub fn auth(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let (user, password) = match args.remaining() {
        1 => (None, args.next_bytes()?),
        2 => (Some(args.next_bytes()?), args.next_bytes()?),
        _ => return Err(Reply::StaticError(error::SYNTAX)),
    };
    if user.is_none() && !ctx.state.auth_enabled.load(Relaxed) {
        return Err(Reply::StaticError(error::AUTH_NOT_CONFIGURED));
    }
    check_password(ctx, user, password)?;
    ctx.session.authenticated = true;
    Ok(Reply::OK)
}

/// Only the `default` user exists; without `requirepass` it accepts any password, as Redis's `nopass`.
fn check_password(ctx: &Ctx<'_>, user: Option<&Bytes>, password: &[u8]) -> Result<(), Reply> {
    if user.is_some_and(|user| user.as_ref() != b"default") {
        return Err(Reply::StaticError(error::WRONGPASS));
    }
    let config = ctx.state.config.read();
    let expected = config.config.server.requirepass.as_bytes();
    if expected.is_empty() || constant_time_eq(expected, password) {
        Ok(())
    } else {
        Err(Reply::StaticError(error::WRONGPASS))
    }
}

/// Compares without an early exit so the time taken does not reveal how much of a guess was right.
fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut difference = expected.len() ^ given.len();
    for (index, byte) in expected.iter().enumerate() {
        let other = given.get(index).copied().unwrap_or(!byte);
        difference |= usize::from(byte ^ other);
    }
    difference == 0
}

/// # Format
/// `SELECT index`
pub fn select(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let index = args.next_i64()?;
    let db = db_index(ctx, index)?;
    ctx.session.select(db);
    Ok(Reply::OK)
}

/// Checks a database index a client gave.
pub fn db_index(ctx: &Ctx<'_>, index: i64) -> Result<usize, Reply> {
    usize::try_from(index)
        .ok()
        .filter(|db| *db < ctx.state.databases())
        .ok_or(Reply::StaticError(error::DB_INDEX_OUT_OF_RANGE))
}

/// # Format
/// `QUIT`
pub fn quit(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    ctx.session.after_reply = AfterReply::Close;
    Ok(Reply::OK)
}

/// # Format
/// `RESET`
pub fn reset(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    let session = &mut *ctx.session;
    session.select(0);
    session.set_version(Version::Resp2);
    session.reply_mode = ReplyMode::On;
    session.no_touch = false;
    session.client.no_touch.store(false, Relaxed);
    session.client.no_evict.store(false, Relaxed);
    session.client.labels.lock().name.clear();
    session.authenticated = !ctx.state.auth_enabled.load(Relaxed);
    Ok(Reply::Simple("RESET"))
}

/// CLIENT with a subcommand the table does not know never reaches here;
/// this answers the bare container name, which arity already refuses.
pub fn client_container(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Err(error::wrong_arity("client"))
}

/// # Format
/// `CLIENT UNBLOCK client-id [TIMEOUT | ERROR]`
pub fn client_unblock(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let id = args.next_i64()?;
    let with_error = match args.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"timeout") => false,
        Some(word) if word.eq_ignore_ascii_case(b"error") => true,
        Some(_) => {
            return Err(Reply::StaticError(
                "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    let unblocked = u64::try_from(id).is_ok_and(|id| {
        ctx.state
            .blocking
            .unblock(&ctx.state.keyspace, id, with_error)
    });
    Ok(Reply::Int(i64::from(unblocked)))
}

/// # Format
/// `CLIENT ID`
pub fn client_id(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Int(ctx.session.client.id as i64))
}

fn validate_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reply::StaticError(BAD_CLIENT_NAME));
    }
    Ok(())
}

/// # Format
/// `CLIENT SETNAME connection-name`
pub fn client_setname(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let name = args.next_bytes()?;
    validate_name(name)?;
    ctx.session.client.labels.lock().name = String::from_utf8_lossy(name).into_owned();
    Ok(Reply::OK)
}

/// # Format
/// `CLIENT GETNAME`
pub fn client_getname(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    let name = ctx.session.client.labels.lock().name.clone();
    Ok(if name.is_empty() {
        Reply::Nil
    } else {
        Reply::bulk(name)
    })
}

/// # Format
/// `CLIENT LIST [TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID client-id [client-id ...]]`
pub fn client_list(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let mut only_ids: Option<Vec<u64>> = None;
    let mut only_type: Option<String> = None;
    while let Some(option) = args.next() {
        if option.eq_ignore_ascii_case(b"TYPE") {
            let kind = String::from_utf8_lossy(args.next_bytes()?).to_ascii_lowercase();
            if !["normal", "master", "replica", "slave", "pubsub"].contains(&kind.as_str()) {
                return Err(Reply::Error(format!("ERR Unknown client type '{kind}'")));
            }
            only_type = Some(kind);
        } else if option.eq_ignore_ascii_case(b"ID") {
            let mut ids = Vec::new();
            for raw in args.by_ref() {
                let id = parse_int(raw)
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or(Reply::StaticError("ERR Invalid client ID"))?;
                ids.push(id as u64);
            }
            if ids.is_empty() {
                return Err(Reply::StaticError(error::SYNTAX));
            }
            only_ids = Some(ids);
        } else {
            return Err(Reply::StaticError(error::SYNTAX));
        }
    }
    let mut text = String::new();
    for client in ctx.state.clients.all() {
        if only_ids
            .as_ref()
            .is_some_and(|ids| !ids.contains(&client.id))
        {
            continue;
        }
        // No replicas or masters: those types match no client.
        if only_type
            .as_deref()
            .is_some_and(|kind| kind != client.kind())
        {
            continue;
        }
        text.push_str(&client.info_line(super::last_command_name));
        text.push('\n');
    }
    Ok(Reply::Verbatim("txt", Bytes::from(text)))
}

/// # Format
/// `CLIENT INFO`
pub fn client_info(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    let mut line = ctx.session.client.info_line(super::last_command_name);
    line.push('\n');
    Ok(Reply::Verbatim("txt", Bytes::from(line)))
}

/// # Format
/// `CLIENT KILL ip:port` or
/// `CLIENT KILL [ID id] [TYPE type] [USER user] [ADDR ip:port] [LADDR ip:port] [SKIPME yes|no]`
pub fn client_kill(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    if args.remaining() == 1 {
        let addr = String::from_utf8_lossy(args.next_bytes()?).into_owned();
        let target = ctx
            .state
            .clients
            .all()
            .into_iter()
            .find(|client| client.peer.to_string() == addr);
        return match target {
            Some(client) => {
                kill_client(ctx, &client);
                Ok(Reply::OK)
            }
            None => Err(Reply::StaticError(NO_SUCH_CLIENT)),
        };
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut kind = None;
    let mut skip_me = true;
    while args.remaining() > 0 {
        let option = args.next_bytes()?.to_ascii_lowercase();
        let value = args.next_bytes()?;
        let text = String::from_utf8_lossy(value).into_owned();
        match option.as_slice() {
            b"id" => {
                id = Some(
                    parse_int(value)
                        .ok()
                        .filter(|id| *id > 0)
                        .ok_or(Reply::StaticError("ERR client-id should be greater than 0"))?
                        as u64,
                )
            }
            b"addr" => addr = Some(text),
            b"laddr" => laddr = Some(text),
            b"type" => {
                let lower = text.to_ascii_lowercase();
                if !["normal", "master", "replica", "slave", "pubsub"].contains(&lower.as_str()) {
                    return Err(Reply::Error(format!("ERR Unknown client type '{text}'")));
                }
                kind = Some(lower)
            }
            // strata's only user is Redis's `default`: every client is its.
            b"user" if text != "default" => {
                return Err(Reply::Error(format!("ERR No such user '{text}'")));
            }
            b"user" => {}
            b"skipme" => {
                skip_me = match text.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(Reply::StaticError(error::SYNTAX)),
                }
            }
            _ => return Err(Reply::StaticError(error::SYNTAX)),
        }
    }
    let mut killed = 0;
    for client in ctx.state.clients.all() {
        let matches = id.is_none_or(|id| client.id == id)
            && addr.as_ref().is_none_or(|a| &client.peer.to_string() == a)
            && laddr
                .as_ref()
                .is_none_or(|a| &client.local.to_string() == a)
            && kind.as_deref().is_none_or(|k| k == client.kind());
        if !matches || (skip_me && client.id == ctx.session.client.id) {
            continue;
        }
        kill_client(ctx, &client);
        killed += 1;
    }
    Ok(Reply::Int(killed))
}

/// Closes a client's connection; the calling client's own closes after
/// this reply, as Redis's does.
fn kill_client(ctx: &mut Ctx<'_>, client: &crate::clients::ClientHandle) {
    if client.id == ctx.session.client.id {
        ctx.session.after_reply = AfterReply::Close;
    } else {
        client.kill();
    }
}

/// # Format
/// `CLIENT SETINFO LIB-NAME libname | LIB-VER libver`
pub fn client_setinfo(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let attribute = args.next_bytes()?;
    let value = args.next_bytes()?;
    let label = if attribute.eq_ignore_ascii_case(b"lib-name") {
        "lib-name"
    } else if attribute.eq_ignore_ascii_case(b"lib-ver") {
        "lib-ver"
    } else {
        return Err(Reply::Error(format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(attribute)
        )));
    };
    if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reply::Error(format!(
            "ERR {label} cannot contain spaces, newlines or special characters."
        )));
    }
    let text = String::from_utf8_lossy(value).into_owned();
    let mut labels = ctx.session.client.labels.lock();
    if label == "lib-name" {
        labels.lib_name = text;
    } else {
        labels.lib_ver = text;
    }
    Ok(Reply::OK)
}

/// # Format
/// `CLIENT REPLY ON|OFF|SKIP`
pub fn client_reply(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let mode = args.next_bytes()?;
    if mode.eq_ignore_ascii_case(b"on") {
        ctx.session.reply_mode = ReplyMode::On;
        ctx.session.skipping_reply = false;
        Ok(Reply::OK)
    } else if mode.eq_ignore_ascii_case(b"off") {
        ctx.session.reply_mode = ReplyMode::Off;
        Ok(Reply::NoReply)
    } else if mode.eq_ignore_ascii_case(b"skip") {
        // The connection skips the reply of the command after this one.
        if ctx.session.reply_mode != ReplyMode::Off {
            ctx.session.reply_mode = ReplyMode::Skip;
        }
        Ok(Reply::NoReply)
    } else {
        Err(Reply::StaticError(error::SYNTAX))
    }
}

fn on_off(args: &mut Args<'_>) -> Result<bool, Reply> {
    let value = args.next_bytes()?;
    if value.eq_ignore_ascii_case(b"on") {
        Ok(true)
    } else if value.eq_ignore_ascii_case(b"off") {
        Ok(false)
    } else {
        Err(Reply::StaticError(error::SYNTAX))
    }
}

/// # Format
/// `CLIENT NO-EVICT ON|OFF`
pub fn client_no_evict(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let on = on_off(args)?;
    ctx.session.client.no_evict.store(on, Relaxed);
    Ok(Reply::OK)
}

/// # Format
/// `CLIENT NO-TOUCH ON|OFF`
pub fn client_no_touch(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let on = on_off(args)?;
    ctx.session.no_touch = on;
    ctx.session.client.no_touch.store(on, Relaxed);
    Ok(Reply::OK)
}

/// # Format
/// `CLIENT HELP`
pub fn client_help(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(super::server::help(
        "CLIENT",
        &[
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "    * ID <client-id>",
            "      Kill connections by client id.",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "NO-TOUCH (ON|OFF)",
            "    Will not touch LRU/LFU stats when this mode is on.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn password_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"secret", b""));
    }
}
