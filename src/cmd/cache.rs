//! The cache family: strata's own commands for what Redis lacks (the tiers).

use super::args::{Args, CmdResult};
use super::context::Ctx;
use crate::metrics::tier_figures;
use crate::protocol::Reply;

/// # Format
/// `CACHE.STATS [RESET]`
///
/// The `# Tiers` figures of INFO: a map in RESP3, a flat name/value array in
/// RESP2 (the encoder flattens the map). `RESET` zeroes the counters first.
pub fn stats(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let reset = args.eat("reset");
    args.finish()?;
    if reset {
        ctx.state.keyspace.reset_stats();
    }
    let totals = ctx.state.keyspace.totals();
    Ok(Reply::Map(
        tier_figures(&totals)
            .into_iter()
            .map(|(name, value)| (Reply::bulk_str(name), Reply::Int(value as i64)))
            .collect(),
    ))
}
