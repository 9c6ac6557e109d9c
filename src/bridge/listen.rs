//! The listener: the source's notifications of changed keys (a trigger on
//! strata's tables calls `pg_notify` with the key and the writing
//! instance) drop this instance's cached copies of keys other instances
//! wrote, so the next read loads the new value. After the LISTEN connection
//! comes back, notifications sent meanwhile are lost: every cached copy is
//! then stale, and all are dropped.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::Bridge;
use crate::source::Notice;
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
                    None => {
                        state.keyspace.drop_cached_matching(db, b"*");
                    }
                }
            }
            Notice::Listening { reconnected: true } => {
                tracing::warn!(
                    "source: LISTEN reconnected; changes made meanwhile were not heard, so every cached copy is dropped"
                );
                for db in 0..state.databases() {
                    state.keyspace.drop_cached_matching(db, b"*");
                }
            }
            _ => {}
        };
        let _ = tokio::task::spawn_blocking(drop_copies).await;
    }
}
