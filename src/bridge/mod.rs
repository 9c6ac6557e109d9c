//! The bridge between the keyspace and the source of truth: read-through
//! (a key neither tier holds is loaded with one query, shared by every
//! client asking at once, and remembered as absent for the negative TTL),
//! the admission of writes that need the source, the drainer that ships
//! the outbox (`drain.rs`) and the listener that drops cached copies other
//! instances changed (`listen.rs`).
//!
//! Data flows one way: the connection asks the bridge before a command runs;
//! the bridge fills the keyspace from the source and ships what the
//! keyspace queued. The keyspace never calls the bridge.

mod drain;
mod listen;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::cmd::{keyed_call, Session};
use crate::config::WriteMode;
use crate::error;
use crate::keyspace::link::{PendingState, SourceLink};
use crate::keyspace::types::{Hash, List, Member, Set, ZSet};
use crate::keyspace::{now_ms, Value};
use crate::protocol::Reply;
use crate::source::{BreakerState, CollectionKind, Loaded, Source};
use crate::state::ServerState;

/// What must happen before a command runs.
pub enum Prepared {
    Ready,
    /// Load these keys of the session's database first.
    Load(Vec<Bytes>),
    /// Refuse the command with this reply.
    Refuse(Reply),
}

type Waiters = Vec<oneshot::Sender<Result<(), Arc<str>>>>;

#[derive(Debug, Default)]
pub struct BridgeCounters {
    pub coalesced_loads: AtomicU64,
    pub dead_letters: AtomicU64,
}

pub struct Bridge {
    /// Weak: the state holds the bridge.
    state: std::sync::Weak<ServerState>,
    source: Arc<Source>,
    link: Arc<SourceLink>,
    /// Loads in flight, and the callers waiting for each besides its own.
    inflight: Mutex<HashMap<(usize, Bytes), Waiters>>,
    pub counters: BridgeCounters,
    /// Microseconds from a `through` write's queuing to its commit.
    through_latency: Mutex<hdrhistogram::Histogram<u64>>,
    /// Poison records parked when there is no warm tier to keep them:
    /// (outbox sequence, reason, key).
    parked: Mutex<Vec<(u64, String, Bytes)>>,
    /// Whether the source's tables exist (created at start, or found).
    schema: tokio::sync::watch::Sender<bool>,
    /// Whether the listener's first LISTEN is active.
    listening: tokio::sync::watch::Sender<bool>,
    /// Loads wait for the first LISTEN until then, no longer.
    listen_window_end: tokio::time::Instant,
}

impl Bridge {
    /// Drops the copies a warm tier kept across a restart (changes made in
    /// the source meanwhile were not heard); writes still in the outbox
    /// stay. Blocks on disk I/O.
    pub fn drop_stale_copies(state: &ServerState) {
        if let Some(link) = state.keyspace.link() {
            listen::drop_stale_copies(state, link);
        }
    }

    /// Builds the bridge when a source is configured and starts its tasks
    /// (schema, drainer, listener) on the current runtime.
    pub fn start(state: &Arc<ServerState>) -> Result<Option<Arc<Bridge>>, String> {
        let Some(link) = state.keyspace.link().cloned() else {
            return Ok(None);
        };
        let source =
            Source::new(link.config(), &Source::random_instance_id()).map_err(|e| e.to_string())?;
        let link_connect_timeout = link.config().connect_timeout.0;
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2)
            .map_err(|e| format!("latency histogram: {e}"))?;
        let bridge = Arc::new(Bridge {
            state: Arc::downgrade(state),
            source: Arc::new(source),
            link,
            inflight: Mutex::new(HashMap::new()),
            counters: BridgeCounters::default(),
            through_latency: Mutex::new(histogram),
            parked: Mutex::new(Vec::new()),
            schema: tokio::sync::watch::channel(false).0,
            listening: tokio::sync::watch::channel(false).0,
            listen_window_end: tokio::time::Instant::now() + link_connect_timeout,
        });
        let schema = bridge.clone();
        tokio::spawn(async move {
            // The drainer needs the tables; a source that is down at start
            // is waited for, while cached keys are served meanwhile.
            let mut delay = Duration::from_millis(100);
            loop {
                match schema.source.ensure_schema().await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!("source: cannot create the schema yet: {e}");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            schema.schema.send_replace(true);
        });
        tokio::spawn(drain::run(bridge.clone(), state.clone()));
        tokio::spawn(listen::run(bridge.clone(), state.clone()));
        Ok(Some(bridge))
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn link(&self) -> &SourceLink {
        &self.link
    }

    /// Decides, before a command runs, whether it needs keys from the
    /// source or must be refused because the source cannot take it.
    /// `again`: its keys were just loaded (a key known absent is not
    /// counted as a negative hit twice).
    pub fn prepare(
        &self,
        state: &ServerState,
        session: &Session,
        args: &[Bytes],
        again: bool,
    ) -> Prepared {
        let Some(call) = keyed_call(session, args) else {
            return Prepared::Ready;
        };
        if call.write {
            for key in &call.keys {
                match self.link.policy(key).write_mode {
                    // Half-open too: the breaker's one trial call decides,
                    // and a through write admitted now would only wait.
                    WriteMode::Through if self.source.breaker_state() != BreakerState::Closed => {
                        return Prepared::Refuse(error::source_down(
                            "the circuit breaker is open; through writes fail until it closes",
                        ));
                    }
                    WriteMode::Behind | WriteMode::Through if self.link.full() => {
                        return Prepared::Refuse(Reply::StaticError(error::OUTBOX_FULL));
                    }
                    _ => {}
                }
            }
        }
        if !self.link.config().read_through || call.overwrite {
            return Prepared::Ready;
        }
        let db = session.db;
        let now = now_ms();
        let missing: Vec<Bytes> = call
            .keys
            .into_iter()
            .filter(|key| {
                !state.keyspace.holds(db, key)
                    && !self.link.known_absent(db, key, now, !again)
                    && self.link.pending_state(db, key) != PendingState::Deleted
            })
            .collect();
        if missing.is_empty() {
            Prepared::Ready
        } else {
            Prepared::Load(missing)
        }
    }

    /// Loads `keys` of `db` (concurrently, each at most once at a time over
    /// every client); `Err` is the reply for the command that needed them.
    pub async fn load(self: &Arc<Self>, db: usize, keys: Vec<Bytes>) -> Result<(), Reply> {
        let Some(state) = self.state.upgrade() else {
            return Err(error::source_down("the server is stopping"));
        };
        let mut waits = Vec::with_capacity(keys.len());
        for key in keys {
            waits.push(self.load_one(&state, db, key));
        }
        for wait in waits {
            if let Err(reason) = wait.await {
                return Err(error::source_down(&reason));
            }
        }
        Ok(())
    }

    /// Single flight: the first caller starts the query in a task of its
    /// own (a caller that goes away does not cancel it for the others);
    /// everyone waits for its outcome.
    fn load_one(
        self: &Arc<Self>,
        state: &Arc<ServerState>,
        db: usize,
        key: Bytes,
    ) -> impl std::future::Future<Output = Result<(), Arc<str>>> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut inflight = self.inflight.lock();
            match inflight.get_mut(&(db, key.clone())) {
                Some(waiters) => {
                    waiters.push(tx);
                    self.counters.coalesced_loads.fetch_add(1, Relaxed);
                    false
                }
                None => {
                    inflight.insert((db, key.clone()), vec![tx]);
                    true
                }
            }
        };
        if start {
            let bridge = self.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let outcome = bridge.fetch(&state, db, &key).await;
                let waiters = bridge
                    .inflight
                    .lock()
                    .remove(&(db, key))
                    .unwrap_or_default();
                for waiter in waiters {
                    let _ = waiter.send(outcome.clone());
                }
            });
        }
        async move {
            rx.await
                .unwrap_or_else(|_| Err(Arc::from("the load was abandoned")))
        }
    }

    async fn fetch(
        &self,
        state: &Arc<ServerState>,
        db: usize,
        key: &Bytes,
    ) -> Result<(), Arc<str>> {
        // The source lags this instance for the key: wait for it, or the
        // load would bring back what was deleted or overwritten here.
        if let PendingState::ShipFirst(seq) = self.link.pending_state(db, key) {
            let shipped = self.link.wait_shipped(seq);
            match tokio::time::timeout(self.through_deadline(), shipped).await {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => return Err(failure.reason().clone()),
                Err(_) => {
                    return Err(Arc::from(
                        "writes of the key are still on their way to the source",
                    ))
                }
            }
        }
        self.schema_ready().await?;
        self.listener_ready().await;
        let loaded = self
            .source
            .load(db as u32, key)
            .await
            .map_err(|e| Arc::<str>::from(e.to_string()))?;
        let policy = self.link.policy(key);
        let now = now_ms();
        let Some(loaded) = loaded else {
            let until = now.saturating_add(policy.negative_ttl.as_millis() as u64);
            self.link.remember_absent(db, key.clone(), until);
            return Ok(());
        };
        let (version, expire_at_ms) = match &loaded {
            Loaded::String {
                version,
                expire_at_ms,
                ..
            }
            | Loaded::Collection {
                version,
                expire_at_ms,
                ..
            } => (*version, *expire_at_ms),
        };
        self.link.observe_version(version);
        let rule_deadline = policy
            .ttl
            .map(|ttl| now.saturating_add(ttl.as_millis() as u64));
        let source_deadline = expire_at_ms.map(|at| at.max(0) as u64);
        let expire_at = match (rule_deadline, source_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(cache) = rule_deadline.filter(|&at| Some(at) == expire_at) {
            self.link
                .note_cache_deadline(db, key.clone(), cache, expire_at_ms);
        }
        let Some((value, renumbered)) = value_of(loaded) else {
            return Err(Arc::from("the source holds a value strata cannot read"));
        };
        let state = state.clone();
        let key = key.clone();
        // Installing writes the warm tier's journal and may read sled.
        tokio::task::spawn_blocking(move || {
            // A renumbered list is written back whole, so the source's
            // positions match the ones strata will write from now on.
            state
                .keyspace
                .install_loaded(db, &key, value, expire_at, renumbered);
        })
        .await
        .map_err(|_| Arc::<str>::from("the load was abandoned"))
    }

    /// The longest a `through` reply waits for its commit: a call's bound
    /// (connection and statement timeouts) for the batch ahead of it and
    /// for its own.
    pub fn through_deadline(&self) -> Duration {
        let config = self.link.config();
        (config.statement_timeout.0 + config.connect_timeout.0) * 2
    }

    /// Waits (bounded) until the source's tables exist: a load before
    /// would fail on a missing table.
    async fn schema_ready(&self) -> Result<(), Arc<str>> {
        let mut ready = self.schema.subscribe();
        let waited = tokio::time::timeout(self.through_deadline(), ready.wait_for(|r| *r)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Arc::from(
                "strata's tables in the source are not ready yet (the source is unreachable)",
            )),
        }
    }

    /// Waits for the listener's first LISTEN, within the connect timeout
    /// of the start: a row loaded before it could change with nobody told.
    /// Past that window (the listen address is down) loads go on, and the
    /// first LISTEN drops every copy ([`Bridge::first_listen_was_late`]).
    async fn listener_ready(&self) {
        let mut listening = self.listening.subscribe();
        let _ = tokio::time::timeout_at(self.listen_window_end, listening.wait_for(|l| *l)).await;
    }

    /// Notes that LISTEN is active; true when it came after loads stopped
    /// waiting for it, so copies loaded meanwhile may be stale.
    fn first_listen_was_late(&self) -> bool {
        let first = !self.listening.send_replace(true);
        first && tokio::time::Instant::now() >= self.listen_window_end
    }

    /// A `through` write's reply waited this long for its commit.
    pub fn record_through_latency(&self, micros: u64) {
        let _ = self.through_latency.lock().record(micros.max(1));
    }

    /// (p50, p99) of `through` commit waits in microseconds.
    pub fn through_latency(&self) -> (u64, u64) {
        let histogram = self.through_latency.lock();
        (
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99),
        )
    }

    /// Zeroes the counters (the outbox's depth and the breaker are state,
    /// not counters, and stay).
    pub fn reset_figures(&self) {
        self.through_latency.lock().reset();
        self.source.reset_stats();
        self.counters.coalesced_loads.store(0, Relaxed);
        self.link.counters.negative_hits.store(0, Relaxed);
        self.link.counters.invalidations.store(0, Relaxed);
    }

    /// Poison records parked (memory-only mode keeps them here).
    pub fn parked(&self) -> Vec<(u64, String, Bytes)> {
        self.parked.lock().clone()
    }

    fn park(&self, seq: u64, reason: &str, key: Bytes) {
        let mut parked = self.parked.lock();
        if parked.len() < 1000 {
            parked.push((seq, reason.to_string(), key));
        }
    }
}

/// A figure of INFO's `# Source` section and CACHE.STATS.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    Int(u64),
    Text(&'static str),
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Figure::Int(n) => write!(f, "{n}"),
            Figure::Text(text) => f.write_str(text),
        }
    }
}

impl Bridge {
    /// The source's figures. A request's database calls are the change in
    /// `source_queries` (every load query, retries included, and every
    /// shipped or failed batch) across it; a hit in either tier costs none.
    pub fn figures(
        &self,
        warm: Option<&crate::keyspace::warm::Warm>,
    ) -> Vec<(&'static str, Figure)> {
        use Figure::{Int, Text};
        let stats = self.source.stats();
        let (depth, bytes, oldest) = self.link.depth();
        let (p50, p99) = self.through_latency();
        let dead_letters = match warm {
            Some(warm) => warm.dead_letter_count() as u64,
            None => self.counters.dead_letters.load(Relaxed),
        };
        let breaker = match self.source.breaker_state() {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        };
        vec![
            (
                "source_queries",
                Int(stats.loads + stats.shipped_batches + stats.ship_errors),
            ),
            ("source_loads", Int(stats.loads)),
            ("source_load_errors", Int(stats.load_errors)),
            (
                "coalesced_loads",
                Int(self.counters.coalesced_loads.load(Relaxed)),
            ),
            (
                "negative_hits",
                Int(self.link.counters.negative_hits.load(Relaxed)),
            ),
            ("outbox_depth", Int(depth)),
            ("outbox_bytes", Int(bytes)),
            ("outbox_oldest_age_ms", Int(oldest)),
            ("shipped_records", Int(stats.shipped_records)),
            ("shipped_batches", Int(stats.shipped_batches)),
            ("ship_errors", Int(stats.ship_errors)),
            ("dead_letters", Int(dead_letters)),
            ("write_through_latency_p50_us", Int(p50)),
            ("write_through_latency_p99_us", Int(p99)),
            ("breaker_state", Text(breaker)),
            ("breaker_refusals", Int(stats.breaker_refusals)),
            ("source_retries", Int(stats.retries)),
            (
                "invalidations_received",
                Int(self.link.counters.invalidations.load(Relaxed)),
            ),
            ("listener_reconnects", Int(stats.listener_reconnects)),
        ]
    }
}

/// The in-memory value of what the source holds, and whether a list's
/// positions had to be renumbered; `None` when a row cannot be read (a list
/// position that is not 8 bytes, a score that is not a number).
fn value_of(loaded: Loaded) -> Option<(Value, bool)> {
    let member = |bytes: &Bytes| Member::from(bytes.as_ref());
    let mut renumbered = false;
    let value = match loaded {
        Loaded::String { value, .. } => Value::Str(value),
        Loaded::Collection { kind, elements, .. } => match kind {
            CollectionKind::List => {
                let mut head = None;
                let mut items = std::collections::VecDeque::with_capacity(elements.len());
                for (position, item) in &elements {
                    let position = u64::from_be_bytes(position.as_ref().try_into().ok()?);
                    let expected = head.map(|h: u64| h + items.len() as u64);
                    if head.is_none() {
                        head = Some(position);
                    } else if expected != Some(position) {
                        // Rows edited by hand can leave a gap: the list keeps
                        // its order, renumbered from its first position.
                        renumbered = true;
                    }
                    items.push_back(member(item));
                }
                // strata's lists start in the middle of the u64 range and
                // grow at both ends; rows numbered from 0 by hand would
                // underflow at the first LPUSH: renumber from the middle.
                let origin = crate::keyspace::types::LIST_ORIGIN;
                let head = match head {
                    Some(h) if (origin / 2..=origin + origin / 2).contains(&h) => h,
                    Some(_) => {
                        renumbered = true;
                        origin
                    }
                    None => origin,
                };
                Value::List(List::restore(head, items, 0))
            }
            CollectionKind::Hash => Value::Hash(Hash::restore(
                elements
                    .iter()
                    .map(|(f, v)| (member(f), member(v)))
                    .collect(),
                0,
            )),
            CollectionKind::Set => Value::Set(Set::restore(
                elements.iter().map(|(m, _)| member(m)).collect(),
                0,
            )),
            CollectionKind::ZSet => {
                let mut members = Vec::with_capacity(elements.len());
                for (m, score) in &elements {
                    let score: f64 = std::str::from_utf8(score).ok()?.trim().parse().ok()?;
                    if score.is_nan() {
                        return None;
                    }
                    members.push((member(m), score));
                }
                Value::ZSet(ZSet::restore(members, 0))
            }
        },
    };
    Some((value, renumbered))
}
