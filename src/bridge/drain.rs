//! The drainer: ships the outbox to the source in batches, one transaction
//! each, oldest first, and tells the keyspace (and through it the waiting
//! `through` replies and the warm tier's outbox tree) what is committed.
//!
//! A batch the source refuses as a whole is shipped again one write at a
//! time, so a poison write is found, parked as a dead letter and counted,
//! and the writes behind it go on. A source that is down keeps the batch at
//! the head of the queue: the drainer waits (the breaker's retry time, or a
//! capped backoff) and ships it again; versioned upserts make a batch
//! shipped twice count once.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::Bridge;
use crate::keyspace::link::Pending;
use crate::source::{OutboxRecord, SourceError};
use crate::state::ServerState;

/// Records per transaction: large enough to share one commit among many
/// writes, small enough that a refused batch is cheap to split.
const BATCH_RECORDS: usize = 2_000;
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

pub(super) async fn run(bridge: Arc<Bridge>, state: Arc<ServerState>, schema_ready: Arc<Notify>) {
    schema_ready.notified().await;
    let link = &bridge.link;
    let mut backoff = RETRY_MIN;
    loop {
        if state.is_shutting_down() && link.depth().0 == 0 {
            return;
        }
        let batch = link.peek(BATCH_RECORDS);
        let Some(last) = batch.last().map(|p| p.seq) else {
            tokio::select! {
                _ = link.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let records: Vec<OutboxRecord> = batch
            .iter()
            .flat_map(|pending| pending.records.iter().cloned())
            .collect();
        match bridge.source.ship(&records).await {
            Ok(()) => {
                backoff = RETRY_MIN;
                shipped(&state, link, last).await;
            }
            Err(SourceError::Rejected(_) | SourceError::Invalid(_)) => {
                backoff = RETRY_MIN;
                if let Err(wait) = ship_one_by_one(&bridge, &state, &batch).await {
                    tokio::time::sleep(wait).await;
                }
            }
            Err(error) => {
                link.failed(last, &error.to_string());
                let wait = match error {
                    SourceError::BreakerOpen { retry_in } => retry_in.max(RETRY_MIN),
                    _ => backoff,
                };
                backoff = (backoff * 2).min(RETRY_MAX);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wait_for_stop(&state) => {}
                }
                if state.is_shutting_down() {
                    // The outbox is on disk: the next start ships it.
                    return;
                }
            }
        }
    }
}

async fn wait_for_stop(state: &ServerState) {
    let mut stop = state.shutdown_signal();
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Every write up to `seq` is in the source.
async fn shipped(state: &Arc<ServerState>, link: &crate::keyspace::link::SourceLink, seq: u64) {
    link.shipped(seq);
    if state.keyspace.warm().is_some() {
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(warm) = state.keyspace.warm() {
                warm.outbox_shipped(seq);
            }
        })
        .await;
    }
}

/// Ships a refused batch write by write; `Err` is how long to wait when the
/// source went away meanwhile.
async fn ship_one_by_one(
    bridge: &Arc<Bridge>,
    state: &Arc<ServerState>,
    batch: &[Pending],
) -> Result<(), Duration> {
    for pending in batch {
        match bridge.source.ship(&pending.records).await {
            Ok(()) => {}
            Err(SourceError::Rejected(reason) | SourceError::Invalid(reason)) => {
                park(bridge, state, pending, &reason).await;
            }
            Err(error) => {
                bridge.link.failed(pending.seq, &error.to_string());
                return Err(RETRY_MAX);
            }
        }
        shipped(state, &bridge.link, pending.seq).await;
    }
    Ok(())
}

async fn park(bridge: &Arc<Bridge>, state: &Arc<ServerState>, pending: &Pending, reason: &str) {
    let key = pending
        .records
        .first()
        .map(|r| r.key.clone())
        .unwrap_or_default();
    tracing::error!(
        seq = pending.seq,
        key = %String::from_utf8_lossy(&key),
        "source refused a write; parked as a dead letter: {reason}"
    );
    bridge.counters.dead_letters.fetch_add(1, Relaxed);
    // A through write waiting for it gets the reason.
    bridge.link.poisoned(pending.seq, reason);
    if state.keyspace.warm().is_none() {
        bridge.park(pending.seq, reason, key);
        return;
    }
    let mut encoded = Vec::new();
    crate::source::outbox::encode(&pending.records, &mut encoded);
    let (state, seq, reason) = (state.clone(), pending.seq, reason.to_string());
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(warm) = state.keyspace.warm() {
            warm.dead_letter(seq, &encoded, &reason);
        }
    })
    .await;
}
