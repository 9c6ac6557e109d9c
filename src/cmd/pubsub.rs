//! Pub/sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH,
//! PUBSUB, and what a RESP2 connection in subscribed mode may run.
//!
//! Confirmations are push frames, one per channel, so the subscribe
//! commands queue them in the client's mailbox (the connection writes them
//! in order with any messages) and reply nothing themselves.

use super::args::{Args, CmdResult};
use super::context::{Ctx, Session};
use super::table::Handler;
use crate::error;
use crate::protocol::{Reply, Version};
use crate::pubsub::Kind;
use crate::state::ServerState;

fn subscribe_kind(ctx: &mut Ctx<'_>, args: &mut Args<'_>, kind: Kind) -> CmdResult {
    ctx.state
        .pubsub
        .subscribe(&ctx.session.client, kind, args.rest());
    Ok(Reply::NoReply)
}

fn unsubscribe_kind(ctx: &mut Ctx<'_>, args: &mut Args<'_>, kind: Kind) -> CmdResult {
    ctx.state
        .pubsub
        .unsubscribe(&ctx.session.client, kind, args.rest());
    Ok(Reply::NoReply)
}

/// # Format
/// `SUBSCRIBE channel [channel ...]`
pub fn subscribe(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    subscribe_kind(ctx, args, Kind::Channel)
}

/// # Format
/// `UNSUBSCRIBE [channel [channel ...]]`
pub fn unsubscribe(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    unsubscribe_kind(ctx, args, Kind::Channel)
}

/// # Format
/// `PSUBSCRIBE pattern [pattern ...]`
pub fn psubscribe(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    subscribe_kind(ctx, args, Kind::Pattern)
}

/// # Format
/// `PUNSUBSCRIBE [pattern [pattern ...]]`
pub fn punsubscribe(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    unsubscribe_kind(ctx, args, Kind::Pattern)
}

/// # Format
/// `SSUBSCRIBE shardchannel [shardchannel ...]`
pub fn ssubscribe(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    subscribe_kind(ctx, args, Kind::Shard)
}

/// # Format
/// `SUNSUBSCRIBE [shardchannel [shardchannel ...]]`
pub fn sunsubscribe(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    unsubscribe_kind(ctx, args, Kind::Shard)
}

/// # Format
/// `PUBLISH channel message`
pub fn publish(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let channel = args.next_bytes()?;
    let message = args.next_bytes()?;
    let receivers = ctx.state.pubsub.publish(Kind::Channel, channel, message);
    Ok(Reply::Int(receivers as i64))
}

/// # Format
/// `SPUBLISH shardchannel message`
pub fn spublish(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let channel = args.next_bytes()?;
    let message = args.next_bytes()?;
    let receivers = ctx.state.pubsub.publish(Kind::Shard, channel, message);
    Ok(Reply::Int(receivers as i64))
}

fn channel_list(ctx: &Ctx<'_>, args: &Args<'_>, kind: Kind, name: &str) -> CmdResult {
    let pattern = match args.rest() {
        [] => None,
        [pattern] => Some(pattern.as_ref()),
        _ => return Err(error::subcommand_syntax("pubsub", name.as_bytes())),
    };
    Ok(Reply::from_bulks(ctx.state.pubsub.channels(kind, pattern)))
}

fn numsub_list(ctx: &Ctx<'_>, args: &Args<'_>, kind: Kind) -> CmdResult {
    let names = args.rest();
    let counts = ctx.state.pubsub.numsub(kind, names);
    let mut out = Vec::with_capacity(names.len() * 2);
    for (name, count) in names.iter().zip(counts) {
        out.push(Reply::Bulk(name.clone()));
        out.push(Reply::Int(count as i64));
    }
    Ok(Reply::Array(out))
}

/// # Format
/// `PUBSUB CHANNELS [pattern]`
pub fn pubsub_channels(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    channel_list(ctx, args, Kind::Channel, "channels")
}

/// # Format
/// `PUBSUB SHARDCHANNELS [pattern]`
pub fn pubsub_shardchannels(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    channel_list(ctx, args, Kind::Shard, "shardchannels")
}

/// # Format
/// `PUBSUB NUMSUB [channel [channel ...]]`
pub fn pubsub_numsub(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    numsub_list(ctx, args, Kind::Channel)
}

/// # Format
/// `PUBSUB SHARDNUMSUB [shardchannel [shardchannel ...]]`
pub fn pubsub_shardnumsub(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    numsub_list(ctx, args, Kind::Shard)
}

/// # Format
/// `PUBSUB NUMPAT`: unique patterns with a subscriber.
pub fn pubsub_numpat(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Int(ctx.state.pubsub.totals().1 as i64))
}

/// # Format
/// `PUBSUB HELP`
pub fn pubsub_help(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(super::server::help(
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    ))
}

/// PING in RESP2 subscribed mode: a `pong` array, as Redis, since a plain
/// reply could not be told apart from a message.
fn ping_subscribed(_ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let message = match args.rest() {
        [] => Reply::bulk_str(""),
        [message] => Reply::Bulk(message.clone()),
        _ => return Err(error::wrong_arity("ping")),
    };
    Ok(Reply::Array(vec![Reply::bulk_str("pong"), message]))
}

/// What the dispatcher does with a command from a client that has
/// subscriptions.
pub enum Gate {
    Run,
    /// Run this handler instead of the table's.
    RunInstead(Handler),
    Refuse(Reply),
}

/// Redis's subscribed-mode rules: in RESP2 only the subscribe commands,
/// PING, QUIT and RESET run; RESET (in any protocol) drops every
/// subscription without confirmations.
pub fn subscribed_mode(state: &ServerState, session: &Session, full_name: &str) -> Gate {
    match full_name {
        "reset" => {
            state.pubsub.remove_client(&session.client);
            Gate::Run
        }
        _ if session.version != Version::Resp2 => Gate::Run,
        "subscribe" | "ssubscribe" | "psubscribe" | "unsubscribe" | "sunsubscribe"
        | "punsubscribe" | "quit" => Gate::Run,
        "ping" => Gate::RunInstead(ping_subscribed),
        _ => Gate::Refuse(error::subscribed_context(full_name)),
    }
}

/// A keyspace notification from a command, in the client's database.
pub(super) fn notify(ctx: &Ctx<'_>, class: u32, event: &str, key: &[u8]) {
    ctx.state.notify(class, event, ctx.db(), key);
}

/// A write that may have created its key: Redis's `new` (from `dbAdd`)
/// comes first, then the command's own event.
pub(super) fn notify_write(ctx: &Ctx<'_>, created: bool, class: u32, event: &str, key: &[u8]) {
    if created {
        notify(ctx, crate::pubsub::notify::NEW, "new", key);
    }
    notify(ctx, class, event, key);
}

/// A read found no key (Redis's `keymiss`, class `m`): fired where Redis's
/// read lookups count a keyspace miss.
pub(super) fn keymiss(ctx: &Ctx<'_>, key: &[u8]) {
    notify(ctx, crate::pubsub::notify::KEY_MISS, "keymiss", key);
}

/// [`keymiss`] for the `i`th of several keys read at once.
pub(super) fn keymiss_nth(ctx: &Ctx<'_>, keys: &[bytes::Bytes], i: usize) {
    if let Some(key) = keys.get(i) {
        keymiss(ctx, key);
    }
}
