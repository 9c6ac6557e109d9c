//! The cache family: strata's own commands for what Redis lacks (the tiers).

use super::args::{Args, CmdResult};
use super::context::Ctx;
use crate::metrics::tier_figures;
use crate::protocol::Reply;

/// # Format
/// `CACHE.STATS [RESET]`
///
/// The `# Tiers` figures of INFO, and with a source those of `# Source`: a
/// map in RESP3, a flat name/value array in RESP2 (the encoder flattens the
/// map). `RESET` zeroes the counters first.
pub fn stats(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let reset = args.eat("reset");
    args.finish()?;
    if reset {
        ctx.state.keyspace.reset_stats();
        if let Some(bridge) = ctx.state.bridge.get() {
            bridge.reset_figures();
        }
    }
    let totals = ctx.state.keyspace.totals();
    let tiers = tier_figures(&totals)
        .into_iter()
        .map(|(name, value)| (name, crate::bridge::Figure::Int(value)));
    let source = ctx
        .state
        .bridge
        .get()
        .map(|bridge| bridge.figures(ctx.state.keyspace.warm()))
        .unwrap_or_default();
    Ok(figures_reply(tiers.chain(source)))
}

/// # Format
/// `CACHE.INVALIDATE key [key ...]` | `CACHE.INVALIDATE PATTERN glob`
///
/// Drops the cached copies (memory and disk) so the next read loads the key
/// from the source; nothing ships. Replies with the number of keys dropped.
/// A key literally named `PATTERN` is dropped with `CACHE.INVALIDATE
/// PATTERN` alone or among other keys.
pub fn invalidate(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let rest = args.rest();
    let db = ctx.db();
    if let [word, pattern] = rest {
        if word.eq_ignore_ascii_case(b"pattern") {
            return Ok(Reply::Int(
                ctx.state.keyspace.drop_cached_matching(db, pattern) as i64,
            ));
        }
    }
    let dropped = rest
        .iter()
        .filter(|key| ctx.state.keyspace.drop_cached(db, key))
        .count();
    Ok(Reply::Int(dropped as i64))
}

/// # Format
/// `CACHE.OUTBOX [DEADLETTERS [count]]`
///
/// The outbox's figures (writes waiting for the source, their bytes, the
/// oldest one's age, dead letters), a map in RESP3; with `DEADLETTERS`,
/// the parked writes (up to `count`, default 10), oldest first, each as
/// [sequence, key, reason].
pub fn outbox(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let Some(bridge) = ctx.state.bridge.get() else {
        return Err(Reply::StaticError(crate::error::NO_SOURCE));
    };
    if args.eat("deadletters") {
        let count = if args.is_empty() {
            10
        } else {
            args.next_i64()?.clamp(0, 100_000) as usize
        };
        args.finish()?;
        let entry = |seq: u64, key: bytes::Bytes, reason: String| {
            Reply::Array(vec![
                Reply::Int(seq as i64),
                Reply::Bulk(key),
                Reply::Bulk(bytes::Bytes::from(reason)),
            ])
        };
        let letters: Vec<Reply> = match ctx.state.keyspace.warm() {
            Some(warm) => warm
                .dead_letters(count)
                .into_iter()
                .map(|(seq, reason, records)| {
                    let key = crate::source::outbox::decode(&records)
                        .and_then(|r| r.first().map(|r| r.key.clone()))
                        .unwrap_or_default();
                    entry(seq, key, reason)
                })
                .collect(),
            None => bridge
                .parked()
                .into_iter()
                .take(count)
                .map(|(seq, reason, key)| entry(seq, key, reason))
                .collect(),
        };
        return Ok(Reply::Array(letters));
    }
    args.finish()?;
    let wanted = [
        "outbox_depth",
        "outbox_bytes",
        "outbox_oldest_age_ms",
        "shipped_records",
        "shipped_batches",
        "dead_letters",
        "breaker_state",
    ];
    Ok(figures_reply(
        bridge
            .figures(ctx.state.keyspace.warm())
            .into_iter()
            .filter(|(name, _)| wanted.contains(name)),
    ))
}

fn figures_reply(figures: impl Iterator<Item = (&'static str, crate::bridge::Figure)>) -> Reply {
    Reply::Map(
        figures
            .map(|(name, value)| {
                let value = match value {
                    crate::bridge::Figure::Int(n) => Reply::Int(n as i64),
                    crate::bridge::Figure::Text(text) => Reply::bulk_str(text),
                };
                (Reply::bulk_str(name), value)
            })
            .collect(),
    )
}
