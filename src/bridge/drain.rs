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

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::Bridge;
use crate::keyspace::link::{Pending, SourceLink};
use crate::source::{Op, OutboxRecord, SourceError};
use crate::state::ServerState;

/// Records per transaction: large enough to share one commit among many
/// writes, small enough that a refused batch is cheap to split.
const BATCH_RECORDS: usize = 2_000;
/// Batches in flight at once: one. Element records are deltas (a push, a
/// field), and the source skips a record older than its key's row; a
/// newer batch committing before an older one touching the same key would
/// make the source skip the older one's deltas for good. One batch at a
/// time still shares each commit among every write queued meanwhile (group
/// commit), and a write waits at most for the batch before its own.
const MAX_LANES: usize = 1;
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

type Flight = (u64, Vec<Pending>, Result<(), SourceError>);

pub(super) async fn run(bridge: Arc<Bridge>, state: Arc<ServerState>) {
    let mut schema = bridge.schema.subscribe();
    if schema.wait_for(|ready| *ready).await.is_err() {
        return;
    }
    let link = &bridge.link;
    let lanes = link.config().pool_size.clamp(1, MAX_LANES);
    let mut backoff = RETRY_MIN;
    // The last outbox sequence handed to a batch, and the batches in
    // flight in sequence order (last sequence, committed yet).
    let mut cursor = 0u64;
    let mut order: VecDeque<(u64, bool)> = VecDeque::new();
    let mut flights: JoinSet<Flight> = JoinSet::new();
    let mut exclusive = false;
    loop {
        if state.is_shutting_down() && flights.is_empty() && link.depth().0 == 0 {
            return;
        }
        while flights.len() < lanes && !exclusive {
            let batch = link.peek(cursor, BATCH_RECORDS);
            let Some(last) = batch.last().map(|p| p.seq) else {
                break;
            };
            let flush = batch.iter().any(|p| {
                p.records
                    .iter()
                    .any(|r| matches!(r.op, Op::FlushDb | Op::FlushAll))
            });
            if flush && !flights.is_empty() {
                break;
            }
            exclusive = flush;
            cursor = last;
            order.push_back((last, false));
            let source = bridge.source.clone();
            flights.spawn(async move {
                let records: Vec<OutboxRecord> = batch
                    .iter()
                    .flat_map(|pending| pending.records.iter().cloned())
                    .collect();
                let outcome = source.ship(&records).await;
                (last, batch, outcome)
            });
        }
        let Some(joined) = flights.join_next().await else {
            tokio::select! {
                _ = link.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let Ok((last, batch, outcome)) = joined else {
            continue;
        };
        if batch.last().map(|p| p.seq) == Some(cursor) {
            exclusive = false;
        }
        match outcome {
            Ok(()) => backoff = RETRY_MIN,
            Err(SourceError::Rejected(_) | SourceError::Invalid(_)) => {
                if let Err(error) = ship_one_by_one(&bridge, &state, &batch).await {
                    cursor = give_up_flights(&mut flights, &mut order, link, &state, error).await;
                    exclusive = false;
                    pause(&state, RETRY_MAX).await;
                    continue;
                }
            }
            Err(error) => {
                // Every write queued by now waits behind this batch: its
                // through reply gets the failure rather than hanging for
                // the whole outage.
                link.failed(last.max(link.last_queued()), &error.to_string());
                let wait = match &error {
                    SourceError::BreakerOpen { retry_in } => (*retry_in).max(RETRY_MIN),
                    _ => backoff,
                };
                backoff = (backoff * 2).min(RETRY_MAX);
                cursor = give_up_flights(&mut flights, &mut order, link, &state, error).await;
                exclusive = false;
                pause(&state, wait).await;
                if state.is_shutting_down() {
                    // The outbox is on disk: the next start ships it.
                    return;
                }
                continue;
            }
        }
        if let Some(slot) = order.iter_mut().find(|(seq, _)| *seq == last) {
            slot.1 = true;
        }
        let mut committed = None;
        while let Some(&(seq, true)) = order.front() {
            committed = Some(seq);
            order.pop_front();
        }
        if let Some(seq) = committed {
            shipped(&state, link, seq);
        }
    }
}

/// After a failure: waits for the batches still in flight, keeps what
/// committed in order before the first failure, and returns the sequence
/// the next batch starts after (the rest ships again).
async fn give_up_flights(
    flights: &mut JoinSet<Flight>,
    order: &mut VecDeque<(u64, bool)>,
    link: &SourceLink,
    state: &Arc<ServerState>,
    error: SourceError,
) -> u64 {
    while let Some(joined) = flights.join_next().await {
        match joined {
            Ok((last, _, Ok(()))) => {
                if let Some(slot) = order.iter_mut().find(|(seq, _)| *seq == last) {
                    slot.1 = true;
                }
            }
            Ok((last, _, Err(_))) => link.failed(last.max(link.last_queued()), &error.to_string()),
            Err(_) => {}
        }
    }
    let mut committed = None;
    while let Some(&(seq, true)) = order.front() {
        committed = Some(seq);
        order.pop_front();
    }
    order.clear();
    if let Some(seq) = committed {
        shipped(state, link, seq);
    }
    link.shipped_seq()
}

async fn pause(state: &ServerState, wait: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = wait_for_stop(state) => {}
    }
}

async fn wait_for_stop(state: &ServerState) {
    let mut stop = state.shutdown_signal();
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Every write up to `seq` is in the source: release its replies, and let
/// the warm tier forget it (off the async workers, not awaited: a record
/// left behind by a crash meanwhile only ships again, to no effect).
fn shipped(state: &Arc<ServerState>, link: &SourceLink, seq: u64) {
    link.shipped(seq);
    if state.keyspace.warm().is_some() {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(warm) = state.keyspace.warm() {
                warm.outbox_shipped(seq);
            }
        });
    }
}

/// Ships a refused batch write by write; `Err` when the source went away
/// meanwhile.
async fn ship_one_by_one(
    bridge: &Arc<Bridge>,
    state: &Arc<ServerState>,
    batch: &[Pending],
) -> Result<(), SourceError> {
    for pending in batch {
        match bridge.source.ship(&pending.records).await {
            Ok(()) => {}
            Err(SourceError::Rejected(reason) | SourceError::Invalid(reason)) => {
                park(bridge, state, pending, &reason).await;
            }
            Err(error) => {
                let link = &bridge.link;
                link.failed(pending.seq.max(link.last_queued()), &error.to_string());
                return Err(error);
            }
        }
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
