//! The source of truth: a PostgreSQL (or Supabase) database behind the
//! tiers. This module owns everything that talks to it: the pool, the schema,
//! loading a key with one query, shipping a batch of outbox records in one
//! transaction, the circuit breaker and retries, and the LISTEN connection
//! whose invalidations travel up to the keyspace through a channel.
//!
//! Versions: every record carries the key's version, which the writer makes
//! grow with each write of the key (a hybrid clock serves several instances
//! too). The source applies a record only when it is newer than the key's
//! row, so a replayed batch, or an old record arriving late, changes nothing.

pub mod breaker;
pub mod outbox;
pub mod postgres;
pub mod schema;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::SourceConfig;
pub use breaker::{Breaker, BreakerState};

/// The Redis type of a collection; its elements are rows of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectionKind {
    List,
    Hash,
    Set,
    ZSet,
}

impl CollectionKind {
    /// The `kind` column's text.
    pub fn name(self) -> &'static str {
        match self {
            CollectionKind::List => "list",
            CollectionKind::Hash => "hash",
            CollectionKind::Set => "set",
            CollectionKind::ZSet => "zset",
        }
    }

    pub fn parse(text: &str) -> Option<CollectionKind> {
        match text {
            "list" => Some(CollectionKind::List),
            "hash" => Some(CollectionKind::Hash),
            "set" => Some(CollectionKind::Set),
            "zset" => Some(CollectionKind::ZSet),
            _ => None,
        }
    }
}

/// One change to ship. Records of one key must keep their order and grow
/// in version; records of different keys are independent.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub db: u32,
    /// Empty for [`Op::FlushDb`] and [`Op::FlushAll`].
    pub key: Bytes,
    /// At least 1 and at most `i64::MAX` (a PostgreSQL `bigint`).
    pub version: u64,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The key becomes this string, whatever it was.
    PutString {
        value: Bytes,
        /// Unix time in milliseconds; `None` = no expiry.
        expire_at_ms: Option<i64>,
    },
    /// The key is gone: DEL, expiry, a collection whose last element went,
    /// the old key of a RENAME. Kept as a tombstone with its version.
    DeleteKey,
    /// EXPIRE / PERSIST on a key of any type, without rewriting its value.
    SetExpire { expire_at_ms: Option<i64> },
    /// One element of a collection is added or changed (a pushed list item
    /// under its position, a hash field, a set member, a sorted-set member
    /// with its score as value). A key of another type is replaced.
    PutElement {
        kind: CollectionKind,
        element: Bytes,
        value: Bytes,
    },
    /// One element is removed. The writer sends [`Op::DeleteKey`] when the
    /// last one goes, as Redis has no empty collections.
    DeleteElement {
        kind: CollectionKind,
        element: Bytes,
    },
    /// `FLUSHDB SOURCE`: every key of `db` older than the record's version.
    FlushDb,
    /// `FLUSHALL SOURCE`: every key older than the record's version.
    FlushAll,
}

/// A key as the source holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    String {
        value: Bytes,
        expire_at_ms: Option<i64>,
        version: u64,
    },
    /// Every element, ordered by element bytes (a list's big-endian
    /// positions come out in list order).
    Collection {
        kind: CollectionKind,
        elements: Vec<(Bytes, Bytes)>,
        expire_at_ms: Option<i64>,
        version: u64,
    },
}

/// What the LISTEN connection reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A key changed in the source; `writer` is the instance that wrote it
    /// (compare with [`Source::instance_id`] to skip one's own writes).
    Invalidate(Invalidation),
    /// LISTEN is in place. After a reconnect, notifications sent while the
    /// connection was down are lost: every cached copy must count as stale.
    Listening { reconnected: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invalidation {
    pub db: u32,
    /// `None`: a key too long for a notification changed in `db`; drop all
    /// of `db`'s cached copies.
    pub key: Option<Bytes>,
    pub writer: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceError {
    /// No connection, a broken one, or the server going away: worth a retry.
    Unavailable(String),
    /// The call took longer than the statement timeout.
    Timeout,
    /// The breaker refuses calls for this much longer.
    BreakerOpen {
        retry_in: Duration,
    },
    /// The database refused the statement (a constraint, a permission): a
    /// retry would fail the same way, so the record is poison.
    Rejected(String),
    /// The collection has more elements than `max-load-elements`.
    TooLarge {
        limit: u64,
    },
    /// A record strata cannot ship (version 0, say) or a row it cannot read.
    Invalid(String),
    Config(String),
}

impl SourceError {
    /// Whether trying again later may succeed (and the failure says the
    /// source is unwell, which the breaker counts).
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Unavailable(_) | SourceError::Timeout)
    }
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::Unavailable(reason) => write!(f, "source unavailable: {reason}"),
            SourceError::Timeout => write!(f, "source timed out"),
            SourceError::BreakerOpen { retry_in } => write!(
                f,
                "source circuit breaker is open (next try in {} ms)",
                retry_in.as_millis()
            ),
            SourceError::Rejected(reason) => write!(f, "source rejected the write: {reason}"),
            SourceError::TooLarge { limit } => write!(
                f,
                "the key has more than {limit} elements in the source (max-load-elements)"
            ),
            SourceError::Invalid(reason) => write!(f, "invalid source data: {reason}"),
            SourceError::Config(reason) => write!(f, "source configuration: {reason}"),
        }
    }
}

impl std::error::Error for SourceError {}

pub type Result<T> = std::result::Result<T, SourceError>;

/// Counters of the source's work; a reading is a [`StatsSnapshot`].
#[derive(Debug, Default)]
pub struct SourceStats {
    loads: AtomicU64,
    load_errors: AtomicU64,
    shipped_records: AtomicU64,
    shipped_batches: AtomicU64,
    ship_errors: AtomicU64,
    retries: AtomicU64,
    breaker_refusals: AtomicU64,
    invalidations: AtomicU64,
    listener_reconnects: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Load queries tried (one per `load` call, plus its retries).
    pub loads: u64,
    pub load_errors: u64,
    pub shipped_records: u64,
    pub shipped_batches: u64,
    pub ship_errors: u64,
    pub retries: u64,
    pub breaker_refusals: u64,
    pub invalidations: u64,
    pub listener_reconnects: u64,
}

impl SourceStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Zeroes every counter (CACHE.STATS RESET, CONFIG RESETSTAT).
    pub fn reset(&self) {
        for counter in [
            &self.loads,
            &self.load_errors,
            &self.shipped_records,
            &self.shipped_batches,
            &self.ship_errors,
            &self.retries,
            &self.breaker_refusals,
            &self.invalidations,
            &self.listener_reconnects,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            loads: get(&self.loads),
            load_errors: get(&self.load_errors),
            shipped_records: get(&self.shipped_records),
            shipped_batches: get(&self.shipped_batches),
            ship_errors: get(&self.ship_errors),
            retries: get(&self.retries),
            breaker_refusals: get(&self.breaker_refusals),
            invalidations: get(&self.invalidations),
            listener_reconnects: get(&self.listener_reconnects),
        }
    }
}

/// How often a failed call is tried again, and how long apart.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts)
            .with_jitter()
    }
}

/// The source of truth, shared by the keyspace and the drainer.
pub struct Source {
    db: postgres::Postgres,
    breaker: Breaker,
    retry: RetryPolicy,
    statement_timeout: Duration,
    call_timeout: Duration,
    instance_id: String,
    stats: Arc<SourceStats>,
}

impl Source {
    /// Builds the pool (no connection yet) from the `[source]` section.
    /// `instance_id` names this strata in the `writer` column and in the
    /// notifications; letters, digits, `-` and `_` only.
    pub fn new(config: &SourceConfig, instance_id: &str) -> Result<Source> {
        if instance_id.is_empty()
            || instance_id.len() > 64
            || !instance_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SourceError::Config(format!(
                "instance id '{instance_id}' must be 1-64 letters, digits, '-' or '_'"
            )));
        }
        if !config.enabled() {
            return Err(SourceError::Config("no source url".into()));
        }
        Ok(Source {
            db: postgres::Postgres::new(config)?,
            breaker: Breaker::new(config.breaker_threshold, config.breaker_retry_after.0),
            retry: RetryPolicy::default(),
            statement_timeout: config.statement_timeout.0,
            call_timeout: config.statement_timeout.0 + config.connect_timeout.0,
            instance_id: instance_id.to_string(),
            stats: Arc::new(SourceStats::default()),
        })
    }

    /// A random instance id, new for each process.
    pub fn random_instance_id() -> String {
        format!("{:016x}", rand::random::<u64>())
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Source {
        self.retry = retry;
        self
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    pub fn schema(&self) -> &str {
        self.db.schema().name()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    pub fn reset_stats(&self) {
        self.stats.reset();
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state(Instant::now())
    }

    /// Creates the schema, tables and trigger when missing (idempotent;
    /// instances starting together serialise on an advisory lock).
    pub async fn ensure_schema(&self) -> Result<()> {
        self.call(|| self.db.ensure_schema()).await
    }

    /// The key as the source holds it (a string, or a whole collection), in
    /// one query; `None` when absent, deleted or expired by strata's clock.
    pub async fn load(&self, db: u32, key: &[u8]) -> Result<Option<Loaded>> {
        let now_ms = unix_ms(SystemTime::now());
        let result = self
            .call(|| {
                SourceStats::add(&self.stats.loads, 1);
                self.db.load(db, key, now_ms, self.statement_timeout)
            })
            .await;
        if result.is_err() {
            SourceStats::add(&self.stats.load_errors, 1);
        }
        result
    }

    /// Applies `batch` in one transaction: all of it or none of it. Records
    /// not newer than the key's row are skipped, so shipping a batch twice
    /// has the effect of shipping it once.
    pub async fn ship(&self, batch: &[OutboxRecord]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        for record in batch {
            if record.version == 0 || i64::try_from(record.version).is_err() {
                return Err(SourceError::Invalid(format!(
                    "version {} is outside 1..=i64::MAX",
                    record.version
                )));
            }
            if i32::try_from(record.db).is_err() {
                return Err(SourceError::Invalid(format!(
                    "database {} is out of range",
                    record.db
                )));
            }
        }
        let result = self
            .call(|| {
                self.db
                    .ship(batch, &self.instance_id, self.statement_timeout)
            })
            .await;
        match &result {
            Ok(()) => {
                SourceStats::add(&self.stats.shipped_batches, 1);
                SourceStats::add(&self.stats.shipped_records, batch.len() as u64);
            }
            Err(_) => SourceStats::add(&self.stats.ship_errors, 1),
        }
        result
    }

    /// Starts the LISTEN connection (on the listen URL) and returns what it
    /// hears. It reconnects with backoff until the receiver is dropped.
    pub fn listen(&self) -> mpsc::Receiver<Notice> {
        let (tx, rx) = mpsc::channel(4096);
        self.db.spawn_listener(tx, self.stats.clone());
        rx
    }

    /// One call through the breaker, the statement timeout and retries of
    /// transient failures with capped exponential backoff and jitter.
    async fn call<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let attempt = || async {
            if let Err(refused) = self.breaker.acquire(Instant::now()) {
                SourceStats::add(&self.stats.breaker_refusals, 1);
                return Err(SourceError::BreakerOpen {
                    retry_in: refused.retry_in,
                });
            }
            // The adapter bounds each statement itself (and cancels an
            // overrun); this also bounds waiting for a connection.
            let outcome = match tokio::time::timeout(self.call_timeout, op()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(SourceError::Timeout),
            };
            match &outcome {
                Err(err) if err.is_transient() => self.breaker.failure(Instant::now()),
                // A refused statement or a too-large key: the database answered.
                _ => self.breaker.success(),
            }
            outcome
        };
        attempt
            .retry(self.retry.backoff())
            .when(SourceError::is_transient)
            .notify(|_, _| SourceStats::add(&self.stats.retries, 1))
            .await
    }
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
