//! The listener: the source's notifications of changed keys (a trigger on
//! strata's tables calls `pg_notify` with the key and the writing
//! instance) drop this instance's cached copies of keys other instances
//! wrote, so the next read loads the new value. After the LISTEN connection
//! comes back, notifications sent meanwhile are lost: every cached copy is
//! then stale, and all are dropped.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use std::time::Duration;

use super::Bridge;
use crate::config::WriteMode;
use crate::keyspace::link::SourceLink;
use crate::source::{BreakerState, Notice};

/// Longest a reconnect waits for the breaker before dropping the copies.
const BREAKER_WAIT: Duration = Duration::from_secs(30);
use crate::state::ServerState;

pub(super) async fn run(bridge: Arc<Bridge>, state: Arc<ServerState>) {
    let mut notices = bridge.source.listen();
    let me = bridge.source.instance_id().to_string();
    let mut stop = state.shutdown_signal();
    loop {
        let notice = tokio::select! {
            notice = notices.recv() => notice,
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        let Some(notice) = notice else { return };
        if matches!(&notice, Notice::Invalidate(change) if change.writer == me) {
            continue;
        }
        let notice = match notice {
            Notice::Listening { reconnected } => Notice::Listening {
                reconnected: bridge.first_listen_was_late() || reconnected,
            },
            other => other,
        };
        if matches!(notice, Notice::Listening { reconnected: true }) {
            // The source just came back: while its breaker is not yet
            // closed, loads would fail; the stale copies serve better
            // than an error until it is (bounded).
            let deadline = tokio::time::Instant::now() + BREAKER_WAIT;
            while bridge.source.breaker_state() != BreakerState::Closed
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let state = state.clone();
        let link = bridge.link.clone();
        // Dropping a key takes its shard lock and may touch sled.
        let drop_copies = move || match notice {
            Notice::Invalidate(change) => {
                link.counters.invalidations.fetch_add(1, Relaxed);
                let db = change.db as usize;
                if db >= state.databases() {
                    return;
                }
                match change.key {
                    Some(key) => {
                        state.keyspace.drop_cached(db, &key);
                    }
                    None => drop_db_copies(&state, &link, &link.pending_keys(), db),
                }
            }
            Notice::Listening { reconnected: true } => {
                tracing::warn!(
                    "source: LISTEN (re)connected late; changes made meanwhile were not heard, so the cached copies are dropped"
                );
                drop_stale_copies(&state, &link);
            }
            _ => {}
        };
        let _ = tokio::task::spawn_blocking(drop_copies).await;
    }
}

/// Copies a drop of "everything" keeps: keys with writes still in the
/// outbox (newer here than in the source) and keys whose rule ships
/// nothing (they exist nowhere else).
fn keeps(
    link: &SourceLink,
    pending: &std::collections::HashSet<(usize, bytes::Bytes)>,
    db: usize,
    key: &bytes::Bytes,
) -> bool {
    pending.contains(&(db, key.clone())) || link.policy(key).write_mode == WriteMode::None
}

/// Drops every cached copy but those [`keeps`] spares: after a LISTEN
/// reconnect, and at start on a warm tier that holds keys (what changed in
/// the source while strata was down was heard by nobody). A database with
/// nothing to keep is flushed whole.
pub(super) fn drop_stale_copies(state: &ServerState, link: &SourceLink) {
    let pending = link.pending_keys();
    let keeps_some = pending.iter().any(|(db, _)| *db < state.databases())
        || link
            .config()
            .rule
            .iter()
            .any(|rule| rule.write_mode == Some(WriteMode::None))
        || link.config().write_mode == WriteMode::None;
    for db in 0..state.databases() {
        if keeps_some {
            drop_db_copies(state, link, &pending, db);
        } else {
            state.keyspace.flush_db(db, true);
        }
        link.forget_all_absent(Some(db));
    }
}

/// Drops the cached copies of `db`'s keys but those [`keeps`] spares.
fn drop_db_copies(
    state: &ServerState,
    link: &SourceLink,
    pending: &std::collections::HashSet<(usize, bytes::Bytes)>,
    db: usize,
) {
    for key in state.keyspace.keys(db, b"*") {
        if !keeps(link, pending, db, &key) {
            state.keyspace.drop_cached(db, &key);
        }
    }
}
