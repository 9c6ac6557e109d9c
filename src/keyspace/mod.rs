//! The keyspace: the only API commands see. It owns typed values, expiry
//! (lazy on access and an active sweep), and the tiers behind them: the hot
//! tier (sharded in-memory tables bounded by `maxmemory`) over the warm tier
//! (sled, every live key; see [`warm`]).
//!
//! Every read goes through [`Keyspace::read`] / [`Keyspace::read_many`] /
//! [`Keyspace::peek`] and every change through a [`Txn`]. A read that misses
//! memory consults sled and promotes what it finds, under the same shard lock
//! a writer of that key would take; a [`Txn`] writes each changed key to sled
//! before its locks are released, so the two tiers never disagree and
//! evicting from memory loses nothing. Hits, misses and promotions are
//! counted at the one spot where the outcome is known.

pub mod events;
pub mod link;
mod shard;
pub mod types;
mod value;
pub mod warm;
mod watch;

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use smallvec::SmallVec;

use crate::config::{SourceConfig, WriteMode};
use events::EventKind;
use shard::Shard;
pub use shard::ShardCounters;
use types::ElementWrite;
pub use value::{Entry, EntryMut, Value, ValueRef, ValueType};
use warm::{CollectionMeta, Stored, Warm, WarmFigures, WarmOptions, KIND_STRING};
pub use watch::{WatchFlag, WatchSet};

const SHARD_BITS: u32 = 5;
const SHARDS: usize = 1 << SHARD_BITS;
/// Most keys one shard's active sweep removes per tick, so a burst of
/// deadlines never stalls the shard's clients for long.
const SWEEP_BUDGET_PER_SHARD: usize = 200;
/// Most expired records one database's sweep removes from disk per tick.
const SWEEP_BUDGET_PER_DB: usize = 2_000;
/// Most keys one command evicts before it runs; the next command goes on.
const EVICTIONS_PER_CALL: usize = 1_024;

/// Microseconds since the Unix epoch, from the system clock.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

thread_local! {
    /// The running command's time in Unix ms (0 = none), as Redis's
    /// command-time snapshot: one clock reading serves every key a command
    /// touches, and expiry decisions within one command agree.
    static COMMAND_TIME_MS: Cell<u64> = const { Cell::new(0) };
}

/// Keeps [`now_ms`] fixed on this thread until dropped.
pub struct ClockPin(());

impl Drop for ClockPin {
    fn drop(&mut self) {
        COMMAND_TIME_MS.with(|time| time.set(0));
    }
}

/// Fixes the time the keyspace sees on this thread for one command.
pub fn pin_clock(unix_ms: u64) -> ClockPin {
    COMMAND_TIME_MS.with(|time| time.set(unix_ms));
    ClockPin(())
}

/// Milliseconds since the Unix epoch: the running command's pinned time, or
/// the system clock outside a command.
pub fn now_ms() -> u64 {
    match COMMAND_TIME_MS.with(Cell::get) {
        0 => unix_micros() / 1000,
        pinned => pinned,
    }
}

fn secs_clock(now_ms: u64) -> u32 {
    (now_ms / 1000) as u32
}

struct Db {
    shards: Box<[Mutex<Shard>]>,
    /// Bytes in memory over this database's shards: eviction picks a
    /// database by it, so empty databases cost nothing to skip.
    hot_bytes: AtomicI64,
}

impl Db {
    fn new(memory_only: bool) -> Db {
        Db {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(memory_only)))
                .collect(),
            hot_bytes: AtomicI64::new(0),
        }
    }
}

/// Options a session applies to its reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// `CLIENT NO-TOUCH on`: reads leave LRU/LFU information alone.
    pub no_touch: bool,
}

/// Totals over every shard and the warm tier, for INFO and CACHE.STATS.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyspaceTotals {
    /// Keys in memory.
    pub keys: u64,
    pub volatile: u64,
    /// Bytes of keys, values and per-entry overhead in memory.
    pub bytes: u64,
    pub counters: ShardCounters,
    pub warm: Option<WarmFigures>,
}

impl KeyspaceTotals {
    /// Redis's `keyspace_hits`: a hit in either tier.
    pub fn hits(&self) -> u64 {
        self.counters.hits + self.counters.warm_hits
    }

    /// Redis's `expired_keys`: keys that expired, counted once whatever
    /// tiers held a copy.
    pub fn expired(&self) -> u64 {
        match &self.warm {
            Some(warm) => warm.expired,
            None => self.counters.expired,
        }
    }
}

/// One page of a SCAN.
pub struct ScanPage {
    pub cursor: u64,
    pub keys: Vec<Bytes>,
}

/// Which keys `maxmemory` eviction may choose and how it ranks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionPolicy {
    NoEviction,
    AllKeys(Rank),
    Volatile(Rank),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    Lru,
    Lfu,
    Random,
    Ttl,
}

impl EvictionPolicy {
    /// Redis's `maxmemory-policy` names.
    pub fn parse(name: &str) -> Option<EvictionPolicy> {
        Some(match name {
            "noeviction" => EvictionPolicy::NoEviction,
            "allkeys-lru" => EvictionPolicy::AllKeys(Rank::Lru),
            "allkeys-lfu" => EvictionPolicy::AllKeys(Rank::Lfu),
            "allkeys-random" => EvictionPolicy::AllKeys(Rank::Random),
            "volatile-lru" => EvictionPolicy::Volatile(Rank::Lru),
            "volatile-lfu" => EvictionPolicy::Volatile(Rank::Lfu),
            "volatile-random" => EvictionPolicy::Volatile(Rank::Random),
            "volatile-ttl" => EvictionPolicy::Volatile(Rank::Ttl),
            _ => return None,
        })
    }

    fn code(self) -> u8 {
        match self {
            EvictionPolicy::NoEviction => 0,
            EvictionPolicy::AllKeys(rank) => 1 + rank as u8,
            EvictionPolicy::Volatile(rank) => 5 + rank as u8,
        }
    }

    fn from_code(code: u8) -> EvictionPolicy {
        let rank = |n: u8| match n {
            0 => Rank::Lru,
            1 => Rank::Lfu,
            2 => Rank::Random,
            _ => Rank::Ttl,
        };
        match code {
            0 => EvictionPolicy::NoEviction,
            1..=4 => EvictionPolicy::AllKeys(rank(code - 1)),
            _ => EvictionPolicy::Volatile(rank(code - 5)),
        }
    }
}

/// Why a command that may grow the data set was refused before it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Redis's `-OOM`: `maxmemory` is reached and the policy may not evict.
    OutOfMemory,
    /// `max-disk` is reached and the policy may not evict from disk.
    OutOfDisk,
}

/// How the keyspace is built.
pub struct KeyspaceOptions {
    pub databases: usize,
    /// `None`: memory only.
    pub warm: Option<WarmOptions>,
    pub maxmemory: u64,
    pub policy: EvictionPolicy,
    pub samples: u32,
    /// The `[source]` section when a source of truth is configured.
    pub source: Option<SourceConfig>,
}

pub struct Keyspace {
    dbs: Box<[Db]>,
    hasher: foldhash::quality::FixedState,
    lfu_log_factor: u32,
    warm: Option<Warm>,
    /// Bytes in memory over all shards, kept beside the per-shard figures so
    /// the `maxmemory` check is one load.
    hot_bytes: AtomicI64,
    maxmemory: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    /// True while memory holds every key sled holds (a fresh directory,
    /// nothing evicted yet): a miss in memory is then a miss, and sled is
    /// not asked.
    hot_complete: AtomicBool,
    /// Collection generations when memory is the only tier (the warm tier
    /// hands them out otherwise).
    generations: AtomicU64,
    /// Clients blocked on keys (BLPOP, BZPOPMIN, ...): while there are any,
    /// every list or sorted set stored under a key marks the key ready.
    blocked_clients: AtomicUsize,
    ready_keys: Mutex<Vec<(usize, Bytes)>>,
    watches: std::sync::Arc<watch::Registry>,
    events: events::EventHook,
    /// The source of truth's side of the keyspace: rules, outbox, versions.
    link: Option<std::sync::Arc<link::SourceLink>>,
}

/// Where a key stands once its shard is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Hot,
    /// Copied from the warm tier into memory just now.
    Promoted,
    Absent,
    /// A large collection on disk only: the caller releases its locks, reads
    /// it ([`Keyspace::preload`]) and tries again.
    Deferred,
}

/// Collections with more elements than this are read from disk without
/// their shard lock held, so a long load does not stall the shard's other keys.
const LOAD_UNLOCKED_OVER: u64 = 1024;

/// A collection this thread read from disk without its shard lock, until
/// the retry that installs it: (db, key, record version, value).
type Preloaded = (usize, Box<[u8]>, u64, Option<Value>);

thread_local! {
    static PRELOADED: std::cell::RefCell<Option<Preloaded>> = const { std::cell::RefCell::new(None) };
}

impl Keyspace {
    /// A memory-only keyspace with no bound (tests, benches).
    pub fn new(databases: usize) -> Keyspace {
        Keyspace::build(databases, None, 0, EvictionPolicy::AllKeys(Rank::Lru), 5)
    }

    /// Opens the keyspace, and the warm tier when the options ask for one.
    pub fn open(options: KeyspaceOptions) -> Result<Keyspace, String> {
        let warm = options.warm.as_ref().map(Warm::open).transpose()?;
        let mut keyspace = Keyspace::build(
            options.databases,
            warm,
            options.maxmemory,
            options.policy,
            options.samples,
        );
        if let Some(config) = options.source.filter(SourceConfig::enabled) {
            let link = link::SourceLink::new(config);
            if let Some(warm) = &keyspace.warm {
                link.restore(warm);
            }
            keyspace.link = Some(std::sync::Arc::new(link));
        }
        Ok(keyspace)
    }

    /// The source of truth's side, when one is configured.
    pub fn link(&self) -> Option<&std::sync::Arc<link::SourceLink>> {
        self.link.as_ref()
    }

    /// Whether collections record which elements change: a warm tier or a
    /// source writes only those.
    fn tracks_changes(&self) -> bool {
        self.warm.is_some() || self.link.is_some()
    }

    fn build(
        databases: usize,
        warm: Option<Warm>,
        maxmemory: u64,
        policy: EvictionPolicy,
        samples: u32,
    ) -> Keyspace {
        let memory_only = warm.is_none();
        let hot_complete = warm.as_ref().is_none_or(|w| w.figures().keys == 0);
        Keyspace {
            dbs: (0..databases.max(1))
                .map(|_| Db::new(memory_only))
                .collect(),
            hasher: foldhash::quality::FixedState::with_seed(rand::random()),
            lfu_log_factor: 10,
            warm,
            hot_bytes: AtomicI64::new(0),
            maxmemory: AtomicU64::new(maxmemory),
            policy: AtomicU8::new(policy.code()),
            samples: AtomicU32::new(samples.max(1)),
            hot_complete: AtomicBool::new(hot_complete),
            generations: AtomicU64::new(0),
            blocked_clients: AtomicUsize::new(0),
            ready_keys: Mutex::new(Vec::new()),
            watches: Default::default(),
            events: Default::default(),
            link: None,
        }
    }

    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    pub fn warm(&self) -> Option<&Warm> {
        self.warm.as_ref()
    }

    pub fn set_maxmemory(&self, bytes: u64) {
        self.maxmemory.store(bytes, Ordering::Relaxed);
    }

    pub fn set_policy(&self, policy: EvictionPolicy) {
        self.policy.store(policy.code(), Ordering::Relaxed);
    }

    pub fn set_samples(&self, samples: u32) {
        self.samples.store(samples.max(1), Ordering::Relaxed);
    }

    fn policy(&self) -> EvictionPolicy {
        EvictionPolicy::from_code(self.policy.load(Ordering::Relaxed))
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard_of(hash: u64) -> usize {
        ((hash >> 32) as usize) & (SHARDS - 1)
    }

    fn lock(&self, db: usize, hash: u64) -> MutexGuard<'_, Shard> {
        self.dbs[db].shards[Self::shard_of(hash)].lock()
    }

    /// The warm tier when a miss in memory must consult it.
    fn warm_behind(&self) -> Option<&Warm> {
        self.warm
            .as_ref()
            .filter(|_| !self.hot_complete.load(Ordering::Relaxed))
    }

    /// Brings a key's shard up to date: drops it if its deadline has passed
    /// (in every tier), promotes it from sled if memory lacks it.
    fn settle(&self, shard: &mut Shard, db: usize, hash: u64, key: &[u8], now: u64) -> Presence {
        if let Some(entry) = shard.get(hash, key) {
            if !entry.is_expired(now) {
                return Presence::Hot;
            }
            shard.remove(hash, key);
            shard.counters.expired += 1;
            if let Some(warm) = &self.warm {
                warm.delete_expired(db, key);
            }
            self.signal_deleted(db, hash, key);
            self.note_expired(db, key);
            return Presence::Absent;
        }
        let Some(warm) = self.warm_behind() else {
            return Presence::Absent;
        };
        let Some(stored) = warm.get(db, key) else {
            return Presence::Absent;
        };
        if stored.expire_at.is_some_and(|at| at <= now) {
            warm.delete_expired(db, key);
            self.signal_deleted(db, hash, key);
            self.note_expired(db, key);
            return Presence::Absent;
        }
        let preloaded = PRELOADED.with(|slot| slot.borrow_mut().take());
        let entry = match preloaded {
            Some((pdb, pkey, version, value))
                if pdb == db && *pkey == *key && version == stored.version =>
            {
                value.map(|value| Entry::new(key, value, stored.expire_at, secs_clock(now)))
            }
            // Changed meanwhile (or another key's): read it under the lock.
            Some(_) => self.entry_from_stored(db, key, stored, secs_clock(now)),
            None if is_large_collection(&stored) => return Presence::Deferred,
            None => self.entry_from_stored(db, key, stored, secs_clock(now)),
        };
        match entry {
            Some(entry) => {
                shard.insert(hash, entry);
                shard.counters.promotions += 1;
                self.events.emit(EventKind::Loaded, db, key);
                Presence::Promoted
            }
            None => Presence::Absent,
        }
    }

    /// Reads the collection at `key` from disk with no lock held, for the
    /// retry of a `Presence::Deferred` settle.
    fn preload(&self, db: usize, key: &[u8]) {
        let Some(stored) = self.warm.as_ref().and_then(|warm| warm.get(db, key)) else {
            return;
        };
        let version = stored.version;
        let value = self
            .entry_from_stored(db, key, stored, 0)
            .map(|entry| entry.into_value());
        PRELOADED.with(|slot| *slot.borrow_mut() = Some((db, key.into(), version, value)));
    }

    /// Builds the entry for a record read from sled; a collection's
    /// elements are read whole (a record that cannot be read is a miss).
    fn entry_from_stored(
        &self,
        db: usize,
        key: &[u8],
        stored: Stored,
        now_secs: u32,
    ) -> Option<Entry> {
        let value = match stored.kind {
            KIND_STRING => Value::Str(stored.payload),
            kind if warm::is_collection(kind) => {
                let warm = self.warm.as_ref()?;
                let meta = match CollectionMeta::decode(&stored.payload) {
                    Ok(meta) => meta,
                    Err(error) => {
                        tracing::warn!(
                            "warm tier: key {:?}: {error}; treated as a miss",
                            String::from_utf8_lossy(key)
                        );
                        return None;
                    }
                };
                let elements = warm.load_elements(db, key, meta.generation)?;
                types::restore(&meta, elements)?
            }
            _ => return None,
        };
        Some(Entry::new(key, value, stored.expire_at, now_secs))
    }

    /// Counts a client blocking on keys (`true`) or leaving (`false`).
    pub fn set_blocked(&self, blocking: bool) {
        if blocking {
            self.blocked_clients.fetch_add(1, Ordering::SeqCst);
        } else {
            self.blocked_clients.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Keys that received a list or sorted set since the last call, for the
    /// blocked clients waiting on them.
    pub fn take_ready_keys(&self) -> Vec<(usize, Bytes)> {
        if self.blocked_clients.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        std::mem::take(&mut *self.ready_keys.lock())
    }

    /// Marks a key that now holds a list or sorted set ready, when clients
    /// are blocked.
    pub fn mark_ready(&self, db: usize, key: &[u8]) {
        if self.blocked_clients.load(Ordering::SeqCst) > 0 {
            self.ready_keys
                .lock()
                .push((db, Bytes::copy_from_slice(key)));
        }
    }

    /// A generation for a new collection.
    fn next_generation(&self) -> u64 {
        match &self.warm {
            Some(warm) => warm.next_generation(),
            None => self.generations.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    /// Adds a shard's change in bytes to its database's and the global figure.
    fn account(&self, db: usize, shard: &Shard, bytes_before: usize) {
        let delta = shard.bytes as i64 - bytes_before as i64;
        if delta != 0 {
            self.hot_bytes.fetch_add(delta, Ordering::Relaxed);
            self.dbs[db].hot_bytes.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// Reads one key: `f` sees the live entry or `None`. Counts a keyspace
    /// hit (in memory or on disk) or miss and records the access.
    pub fn read<R>(
        &self,
        db: usize,
        key: &[u8],
        options: ReadOptions,
        f: impl FnOnce(Option<&Entry>) -> R,
    ) -> R {
        let hash = self.hash(key);
        let now = now_ms();
        let mut shard = self.lock(db, hash);
        let mut before = shard.bytes;
        let mut presence = self.settle(&mut shard, db, hash, key, now);
        if presence == Presence::Deferred {
            self.account(db, &shard, before);
            drop(shard);
            self.preload(db, key);
            shard = self.lock(db, hash);
            before = shard.bytes;
            presence = self.settle(&mut shard, db, hash, key, now);
            forget_preloaded();
        }
        let touch = self.touch_for(options, now);
        let promoted = presence == Presence::Promoted;
        let result = f(shard.read(hash, key, touch, promoted));
        self.account(db, &shard, before);
        result
    }

    /// What a read records of an access: nothing under `CLIENT NO-TOUCH`.
    fn touch_for(&self, options: ReadOptions, now_ms: u64) -> Option<(u32, u32)> {
        (!options.no_touch).then_some((secs_clock(now_ms), self.lfu_log_factor))
    }

    /// Looks at a key without counting a hit or miss, touching it or
    /// promoting it (EXISTS, TYPE, TTL, OBJECT).
    pub fn peek<R>(&self, db: usize, key: &[u8], f: impl FnOnce(Option<&Entry>) -> R) -> R {
        let hash = self.hash(key);
        let now = now_ms();
        let mut shard = self.lock(db, hash);
        let before = shard.bytes;
        if shard.purge_if_expired(hash, key, now) {
            if let Some(warm) = &self.warm {
                warm.delete_expired(db, key);
            }
            self.signal_deleted(db, hash, key);
            self.note_expired(db, key);
        }
        self.account(db, &shard, before);
        if let Some(entry) = shard.get(hash, key) {
            return f(Some(entry));
        }
        let Some(warm) = self.warm_behind() else {
            return f(None);
        };
        match warm.get(db, key) {
            Some(stored) if stored.expire_at.is_some_and(|at| at <= now) => {
                warm.delete_expired(db, key);
                self.signal_deleted(db, hash, key);
                self.note_expired(db, key);
                f(None)
            }
            Some(stored) => {
                // Nothing is installed, so a long read needs no lock (the
                // answer is what the key held when the read began).
                if is_large_collection(&stored) {
                    drop(shard);
                }
                f(self
                    .entry_from_stored(db, key, stored, secs_clock(now))
                    .as_ref())
            }
            None => f(None),
        }
    }

    /// Whether either tier holds a live `key`, without counting, touching
    /// or promoting it: the source is asked only about keys neither has.
    pub fn holds(&self, db: usize, key: &[u8]) -> bool {
        let hash = self.hash(key);
        let now = now_ms();
        let shard = self.lock(db, hash);
        if let Some(entry) = shard.get(hash, key) {
            return entry.expire_at().is_none_or(|at| at > now);
        }
        match self.warm_behind() {
            Some(warm) => warm
                .get(db, key)
                .is_some_and(|stored| stored.expire_at.is_none_or(|at| at > now)),
            None => false,
        }
    }

    /// Stores a key loaded from the source unless a tier holds it by now
    /// (a write got there first). Nothing ships back, unless `write_back`
    /// (the value was repaired on the way in). True when stored.
    pub fn install_loaded(
        &self,
        db: usize,
        key: &[u8],
        value: Value,
        expire_at: Option<u64>,
        write_back: bool,
    ) -> bool {
        let install = || {
            self.write(db, key, |txn| {
                if txn.exists(0) || expire_at.is_some_and(|at| at <= txn.now_ms()) {
                    return false;
                }
                txn.insert(0, value, expire_at);
                true
            })
        };
        if write_back {
            install()
        } else {
            link::loading(install)
        }
    }

    /// Drops the cached copies of `key` (both tiers) so the next read loads
    /// it from the source; nothing ships. True when a tier held it.
    pub fn drop_cached(&self, db: usize, key: &[u8]) -> bool {
        if let Some(link) = &self.link {
            link.forget_absent(db, key);
        }
        link::dropping(|| self.write(db, key, |txn| txn.remove(0).is_some()))
    }

    /// A key expired (found due by a read or the sweep, with its shard
    /// locked): tell subscribers, and delete it in the source too. The
    /// source's row carries the deadline, so it never loads again anyway;
    /// the delete keeps the tables from filling with dead rows.
    fn note_expired(&self, db: usize, key: &[u8]) {
        self.events.emit(EventKind::Expired, db, key);
        let Some(link) = &self.link else { return };
        // A copy whose rule's cache TTL ran out: the source keeps the key.
        if link.take_cache_deadline(db, key) || link.policy(key).write_mode == WriteMode::None {
            return;
        }
        let record = crate::source::OutboxRecord {
            db: db as u32,
            key: Bytes::copy_from_slice(key),
            version: link.next_version(),
            op: crate::source::Op::DeleteKey,
        };
        self.ship_alone(link, db, record, false);
    }

    /// Queues one record for the source that changes no key here (an
    /// expiry's tombstone, a flush), journaled as a record of its own.
    fn ship_alone(
        &self,
        link: &link::SourceLink,
        db: usize,
        record: crate::source::OutboxRecord,
        through: bool,
    ) {
        let mut encoded = Vec::new();
        crate::source::outbox::encode(std::slice::from_ref(&record), &mut encoded);
        let seq = link.enqueue(vec![record], through);
        if let Some(warm) = &self.warm {
            warm.apply(db, &[], &[], Some((seq, &encoded)));
        }
    }

    /// Queues `FLUSHDB SOURCE` (`Some(db)`) or `FLUSHALL SOURCE` for the
    /// source, journaled like any write; false without a source.
    pub fn ship_flush(&self, db: Option<usize>) -> bool {
        let Some(link) = &self.link else {
            return false;
        };
        let record = crate::source::OutboxRecord {
            db: db.unwrap_or(0) as u32,
            key: Bytes::new(),
            version: link.next_version(),
            op: match db {
                Some(_) => crate::source::Op::FlushDb,
                None => crate::source::Op::FlushAll,
            },
        };
        link.forget_all_absent(db);
        let through = link.config().write_mode == WriteMode::Through;
        // The journal record and the queue take the same order: hold one
        // shard lock of the database across both.
        let _order = self.lock(db.unwrap_or(0), 0);
        self.ship_alone(link, db.unwrap_or(0), record, through);
        true
    }

    /// Drops the cached copies of every key of `db` matching `pattern`.
    pub fn drop_cached_matching(&self, db: usize, pattern: &[u8]) -> usize {
        if let Some(link) = &self.link {
            link.forget_all_absent(Some(db));
        }
        self.keys(db, pattern)
            .iter()
            .filter(|key| self.drop_cached(db, key))
            .count()
    }

    /// Reads several keys atomically (MGET): every shard involved is locked
    /// before the first key is read.
    pub fn read_many<R>(
        &self,
        db: usize,
        keys: &[Bytes],
        options: ReadOptions,
        mut f: impl FnMut(usize, Option<&Entry>) -> R,
    ) -> Vec<R> {
        let mut txn = self.lock_keys(keys.iter().map(|key| (db, key.as_ref())));
        let touch = self.touch_for(options, txn.now_ms);
        (0..keys.len())
            .map(|i| {
                let TxnKey {
                    key,
                    hash,
                    guard,
                    promoted,
                    ..
                } = txn.keys[i];
                let shard = &mut txn.guards[guard];
                f(i, shard.read(hash, key, touch, promoted))
            })
            .collect()
    }

    /// Locks one key for a read-modify-write.
    pub fn write<'a, R>(
        &'a self,
        db: usize,
        key: &'a [u8],
        f: impl FnOnce(&mut Txn<'a>) -> R,
    ) -> R {
        let mut txn = self.lock_keys(std::iter::once((db, key)));
        f(&mut txn)
    }

    /// Locks several keys (possibly in several databases) and changes them
    /// atomically: nobody sees a state between two of `f`'s steps.
    pub fn write_many<'a, R>(
        &'a self,
        keys: impl IntoIterator<Item = (usize, &'a [u8])>,
        f: impl FnOnce(&mut Txn<'a>) -> R,
    ) -> R {
        let mut txn = self.lock_keys(keys);
        f(&mut txn)
    }

    fn lock_keys<'a>(&'a self, keys: impl IntoIterator<Item = (usize, &'a [u8])>) -> Txn<'a> {
        let keys: SmallVec<[(usize, &'a [u8]); 2]> = keys.into_iter().collect();
        let mut preloaded = false;
        loop {
            match self.try_lock_keys(keys.iter().copied()) {
                Ok(txn) => {
                    if preloaded {
                        forget_preloaded();
                    }
                    return txn;
                }
                // Each retry finds one more large collection in memory.
                Err((db, key)) => {
                    self.preload(db, key);
                    preloaded = true;
                }
            }
        }
    }

    /// Locks the keys' shards and settles each key; `Err` names a large
    /// collection to read from disk with the locks released first.
    fn try_lock_keys<'a>(
        &'a self,
        keys: impl IntoIterator<Item = (usize, &'a [u8])>,
    ) -> Result<Txn<'a>, (usize, &'a [u8])> {
        let now = now_ms();
        let mut txn = Txn {
            keyspace: self,
            keys: SmallVec::new(),
            guards: SmallVec::new(),
            bytes_before: SmallVec::new(),
            now_ms: now,
            pending_resize: SmallVec::new(),
            changed: SmallVec::new(),
            removed_generations: SmallVec::new(),
            whole: SmallVec::new(),
            unchanged: SmallVec::new(),
        };
        for (db, key) in keys {
            let hash = self.hash(key);
            // `guard` is fixed below, once every shard to lock is known.
            txn.keys.push(TxnKey {
                key,
                hash,
                guard: Self::shard_of(hash),
                db,
                promoted: false,
            });
        }
        // Shards are always locked in (db, shard) order, so two transactions never deadlock.
        let mut order: SmallVec<[(usize, usize); 4]> =
            txn.keys.iter().map(|k| (k.db, k.guard)).collect();
        order.sort_unstable();
        order.dedup();
        for &(db, shard) in &order {
            let guard = self.dbs[db].shards[shard].lock();
            txn.bytes_before.push((db, guard.bytes));
            txn.guards.push(guard);
        }
        for key in txn.keys.iter_mut() {
            key.guard = order.binary_search(&(key.db, key.guard)).unwrap_or(0);
        }
        for i in 0..txn.keys.len() {
            let TxnKey {
                key,
                hash,
                guard,
                db,
                ..
            } = txn.keys[i];
            let presence = self.settle(&mut txn.guards[guard], db, hash, key, now);
            if presence == Presence::Deferred {
                return Err((db, key));
            }
            txn.keys[i].promoted = presence == Presence::Promoted;
        }
        Ok(txn)
    }

    /// Number of keys in `db` (keys past their deadline but not yet swept
    /// included, as Redis does). With a warm tier: the keys on disk, which
    /// include every key in memory.
    pub fn dbsize(&self, db: usize) -> usize {
        if let Some(warm) = &self.warm {
            return warm.dbsize(db) as usize;
        }
        self.dbs[db]
            .shards
            .iter()
            .map(|shard| shard.lock().len())
            .sum()
    }

    /// Live keys matching `pattern`.
    pub fn keys(&self, db: usize, pattern: &[u8]) -> Vec<Bytes> {
        let now = now_ms();
        let all = pattern == b"*";
        if let Some(warm) = &self.warm {
            return warm.keys(db, now, |key, _| {
                all || crate::glob::matches(pattern, key, false)
            });
        }
        let mut out = Vec::new();
        for shard in self.dbs[db].shards.iter() {
            let shard = shard.lock();
            out.extend(
                shard
                    .iter()
                    .filter(|entry| {
                        !entry.is_expired(now)
                            && (all || crate::glob::matches(pattern, entry.key(), false))
                    })
                    .map(|entry| Bytes::copy_from_slice(entry.key())),
            );
        }
        out
    }

    /// One SCAN step from `cursor`, visiting about `count` keys.
    pub fn scan(
        &self,
        db: usize,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
        value_type: Option<ValueType>,
    ) -> ScanPage {
        let now = now_ms();
        // Redis skips matching for a lone `*`, so it also returns the empty key.
        let pattern = pattern.filter(|p| *p != b"*");
        if let Some(warm) = &self.warm {
            let (cursor, keys) = warm.scan(db, cursor, count, now, |key, kind| {
                value_type.is_none_or(|t| ValueType::from_kind(kind) == Some(t))
                    && pattern.is_none_or(|p| crate::glob::matches(p, key, false))
            });
            return ScanPage { cursor, keys };
        }
        // The cursor is the shard (low bits) and the bucket cursor within
        // it: shards are walked one after the other, each as Redis walks
        // its dict, so a key present for the whole scan is returned at
        // least once whatever resizes (and may come twice, as in Redis).
        let mut shard_index = (cursor & (SHARDS as u64 - 1)) as usize;
        let mut bucket = (cursor >> SHARD_BITS) as u32;
        let mut keys = Vec::new();
        let mut visited = 0usize;
        // As Redis, empty buckets count too (ten to a key), so a sparse
        // table cannot make one call walk it all.
        let mut steps = 0usize;
        let max_steps = count.saturating_mul(10);
        while shard_index < SHARDS {
            let shard = self.dbs[db].shards[shard_index].lock();
            loop {
                bucket = shard.scan(bucket, |entry| {
                    visited += 1;
                    let key = entry.key();
                    if entry.is_expired(now)
                        || value_type.is_some_and(|t| entry.value().value_type() != t)
                        || pattern.is_some_and(|p| !crate::glob::matches(p, key, false))
                    {
                        return;
                    }
                    keys.push(Bytes::copy_from_slice(key));
                });
                steps += 1;
                if bucket == 0 {
                    break;
                }
                if visited >= count || steps >= max_steps {
                    let cursor = (u64::from(bucket) << SHARD_BITS) | shard_index as u64;
                    return ScanPage { cursor, keys };
                }
            }
            drop(shard);
            shard_index += 1;
            if shard_index < SHARDS && (visited >= count || steps >= max_steps) {
                return ScanPage {
                    cursor: shard_index as u64,
                    keys,
                };
            }
        }
        ScanPage { cursor: 0, keys }
    }

    /// A random live key, or `None` when `db` is empty.
    pub fn random_key(&self, db: usize) -> Option<Bytes> {
        let now = now_ms();
        if let Some(warm) = &self.warm {
            return warm.random_key(db, now);
        }
        // Expired keys found on the way are dropped; bounded so a database
        // full of expired keys cannot spin here.
        for _ in 0..100 {
            let start = rand::random::<usize>() % SHARDS;
            let mut found_expired = false;
            for offset in 0..SHARDS {
                let mut shard = self.dbs[db].shards[(start + offset) % SHARDS].lock();
                let Some((at, entry)) = shard.sample() else {
                    continue;
                };
                if !entry.is_expired(now) {
                    return Some(Bytes::copy_from_slice(entry.key()));
                }
                let key = Bytes::copy_from_slice(entry.key());
                let before = shard.bytes;
                self.purge_at_if_expired(&mut shard, db, at, now);
                self.note_expired(db, &key);
                self.account(db, &shard, before);
                found_expired = true;
                break;
            }
            if !found_expired {
                return None;
            }
        }
        None
    }

    pub fn flush_db(&self, db: usize, background: bool) {
        let mut guards: Vec<_> = self.dbs[db].shards.iter().map(|s| s.lock()).collect();
        self.signal_flush(db, &guards);
        let old: Vec<Shard> = guards.iter_mut().map(|shard| shard.clear()).collect();
        if let Some(warm) = &self.warm {
            warm.flush_db(db, background);
        }
        drop(guards);
        self.forget(db, &old);
        drop_maybe_in_background(old, background);
    }

    pub fn flush_all(&self, background: bool) {
        for db in 0..self.dbs.len() {
            self.flush_db(db, background);
        }
    }

    /// Subtracts dropped shards' bytes from the figures.
    fn forget(&self, db: usize, old: &[Shard]) {
        let bytes: usize = old.iter().map(|shard| shard.bytes).sum();
        self.hot_bytes.fetch_sub(bytes as i64, Ordering::Relaxed);
        self.dbs[db]
            .hot_bytes
            .fetch_sub(bytes as i64, Ordering::Relaxed);
    }

    /// Swaps two databases' contents atomically (every shard of both locked first).
    pub fn swap_db(&self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let (first, second) = (a.min(b), a.max(b));
        let mut first_guards: Vec<_> = self.dbs[first].shards.iter().map(|s| s.lock()).collect();
        let mut second_guards: Vec<_> = self.dbs[second].shards.iter().map(|s| s.lock()).collect();
        self.signal_swap((first, &first_guards), (second, &second_guards));
        for (x, y) in first_guards.iter_mut().zip(second_guards.iter_mut()) {
            x.swap_contents(y);
        }
        let moved = self.dbs[first].hot_bytes.load(Ordering::Relaxed);
        let other = self.dbs[second].hot_bytes.swap(moved, Ordering::Relaxed);
        self.dbs[first].hot_bytes.store(other, Ordering::Relaxed);
        if let Some(warm) = &self.warm {
            warm.swap_db(a, b);
        }
    }

    /// Active expiry: removes expired keys, a bounded number per tick. With
    /// a warm tier the expiry index on disk drives it and both copies go.
    pub fn sweep_expired(&self) -> usize {
        let now = now_ms();
        let Some(warm) = &self.warm else {
            self.expire_watched(now);
            let mut removed = 0;
            for (db, shards) in self.dbs.iter().enumerate() {
                for shard in shards.shards.iter() {
                    let mut shard = shard.lock();
                    let before = shard.bytes;
                    removed += shard.sweep_expired(now, SWEEP_BUDGET_PER_SHARD, |key| {
                        self.note_expired(db, key)
                    });
                    self.account(db, &shard, before);
                }
            }
            return removed;
        };
        let mut removed = 0;
        for db in 0..self.dbs.len() {
            for (deadline, key) in warm.due_expiries(db, now, SWEEP_BUDGET_PER_DB) {
                let hash = self.hash(&key);
                let mut shard = self.lock(db, hash);
                let before = shard.bytes;
                if shard.purge_if_expired(hash, &key, now) {
                    removed += 1;
                }
                self.account(db, &shard, before);
                if warm.expire_due(db, deadline, &key, now) {
                    self.signal_deleted(db, hash, &key);
                    self.note_expired(db, &key);
                }
            }
        }
        removed
    }

    /// Per-database key counts (keys, keys with a TTL, average TTL in ms) for INFO keyspace.
    pub fn db_stats(&self, db: usize) -> (u64, u64, u64) {
        let now = now_ms();
        let (mut keys, mut volatile, mut ttl_sum, mut ttl_count) = (0, 0, 0, 0);
        for shard in self.dbs[db].shards.iter() {
            let shard = shard.lock();
            keys += shard.len() as u64;
            volatile += shard.volatile_count() as u64;
            let (sum, count) = shard.expires_sum_ttl(now);
            ttl_sum += sum;
            ttl_count += count;
        }
        let avg = ttl_sum.checked_div(ttl_count).unwrap_or(0);
        match &self.warm {
            Some(warm) => (warm.dbsize(db), warm.volatile(db), avg),
            None => (keys, volatile, avg),
        }
    }

    pub fn totals(&self) -> KeyspaceTotals {
        let mut totals = KeyspaceTotals::default();
        for db in self.dbs.iter() {
            for shard in db.shards.iter() {
                let shard = shard.lock();
                totals.keys += shard.len() as u64;
                totals.volatile += shard.volatile_count() as u64;
                totals.bytes += shard.bytes as u64;
                totals.counters.add(&shard.counters);
            }
        }
        totals.warm = self.warm.as_ref().map(Warm::figures);
        totals
    }

    /// CONFIG RESETSTAT / CACHE.STATS RESET: zero hits, misses, promotions,
    /// evictions and expiry counts in every tier.
    pub fn reset_stats(&self) {
        for db in self.dbs.iter() {
            for shard in db.shards.iter() {
                let mut shard = shard.lock();
                let changes = shard.counters.changes;
                shard.counters = ShardCounters {
                    changes,
                    ..ShardCounters::default()
                };
            }
        }
        if let Some(warm) = &self.warm {
            warm.reset_counters();
        }
    }

    /// Memory in use by the hot tier, as `maxmemory` counts it.
    pub fn hot_bytes(&self) -> u64 {
        self.hot_bytes.load(Ordering::Relaxed).max(0) as u64
    }

    /// Runs before a command, as Redis's `performEvictions`: evicts from
    /// memory down to `maxmemory`, and from disk down to `max-disk`. A
    /// command that may grow the data set (`may_grow`) is refused when a
    /// bound cannot be kept.
    pub fn make_room(&self, may_grow: bool) -> Result<(), Refusal> {
        let limit = self.maxmemory.load(Ordering::Relaxed);
        if limit > 0 && self.hot_bytes() > limit {
            let mut evicted = 0;
            while self.hot_bytes() > limit && evicted < EVICTIONS_PER_CALL {
                if !self.evict_from_memory() {
                    break;
                }
                evicted += 1;
            }
            // Without a warm tier eviction is loss: a policy that may not
            // evict (or finds nothing it may) refuses growth, as Redis.
            if may_grow && self.warm.is_none() && self.hot_bytes() > limit {
                return Err(Refusal::OutOfMemory);
            }
        }
        let Some(warm) = &self.warm else {
            return Ok(());
        };
        let mut evicted = 0;
        while may_grow && warm.over_max_disk() && evicted < EVICTIONS_PER_CALL {
            if !self.evict_from_disk(warm) {
                return Err(Refusal::OutOfDisk);
            }
            evicted += 1;
        }
        Ok(())
    }

    /// Why writes must be refused with `-MISCONF` now, if they must.
    pub fn write_refusal(&self) -> Option<String> {
        self.warm.as_ref().and_then(Warm::write_refusal)
    }

    /// Drops one sampled key from memory, chosen by the policy. With a warm
    /// tier this loses nothing, so `noeviction` and a volatile policy that
    /// finds no key with a TTL fall back to LRU over all keys.
    fn evict_from_memory(&self) -> bool {
        let policy = self.policy();
        let lossless = self.warm.is_some();
        let (volatile_only, rank) = match policy {
            EvictionPolicy::NoEviction if lossless => (false, Rank::Lru),
            EvictionPolicy::NoEviction => return false,
            EvictionPolicy::AllKeys(rank) => (false, rank),
            EvictionPolicy::Volatile(rank) => (true, rank),
        };
        let samples = self.samples.load(Ordering::Relaxed) as usize;
        let now_secs = secs_clock(now_ms());
        let Some(first_db) = self.pick_db_by_memory() else {
            return false;
        };
        // The chosen database first, then the others with keys in memory
        // (a volatile policy may find keys with a TTL only there).
        let dbs = (0..self.dbs.len())
            .map(|offset| (first_db + offset) % self.dbs.len())
            .filter(|&db| self.dbs[db].hot_bytes.load(Ordering::Relaxed) > 0);
        for db in dbs {
            // Random shards first (a walk from one would drain the shards
            // that follow empty ones), then every shard in turn.
            let start = rand::random::<usize>() % SHARDS;
            let order = (0..8)
                .map(|_| rand::random::<usize>() % SHARDS)
                .chain((0..SHARDS).map(|offset| (start + offset) % SHARDS));
            // With a warm tier a volatile policy that finds no key with a
            // TTL falls back to every key: eviction loses nothing.
            let passes: &[bool] = if volatile_only && lossless {
                &[true, false]
            } else {
                std::slice::from_ref(&volatile_only)
            };
            for &volatile in passes {
                for index in order.clone() {
                    if self.evict_sampled(db, index, volatile, rank, samples, now_secs) {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Evicts the best of `samples` random entries of one shard (only keys
    /// with a TTL when `volatile`); false if it found none.
    fn evict_sampled(
        &self,
        db: usize,
        index: usize,
        volatile: bool,
        rank: Rank,
        samples: usize,
        now_secs: u32,
    ) -> bool {
        let mut shard = self.dbs[db].shards[index].lock();
        if shard.len() == 0 {
            return false;
        }
        let mut best: Option<(u64, usize)> = None;
        for _ in 0..samples {
            let Some((at, entry)) = shard.sample() else {
                break;
            };
            if volatile && entry.expire_at().is_none() {
                continue;
            }
            let score = match rank {
                Rank::Lru => u64::from(now_secs.saturating_sub(entry.access())),
                Rank::Lfu => u64::from(u8::MAX - entry.freq()),
                Rank::Random => rand::random(),
                Rank::Ttl => u64::MAX - entry.expire_at().unwrap_or(u64::MAX),
            };
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, at));
            }
        }
        let Some((_, at)) = best else {
            return false;
        };
        let before = shard.bytes;
        if let Some(entry) = self.evict_at(&mut shard, db, at) {
            let kind = match self.warm {
                Some(_) => EventKind::EvictedToDisk,
                None => EventKind::Evicted,
            };
            self.events.emit(kind, db, entry.key());
        }
        self.account(db, &shard, before);
        // Memory no longer holds every key on disk.
        self.hot_complete.store(false, Ordering::Relaxed);
        true
    }

    /// A database chosen with a probability in proportion to its bytes in
    /// memory; `None` when memory is empty.
    fn pick_db_by_memory(&self) -> Option<usize> {
        let weights: SmallVec<[u64; 16]> = self
            .dbs
            .iter()
            .map(|db| db.hot_bytes.load(Ordering::Relaxed).max(0) as u64)
            .collect();
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return None;
        }
        let mut pick = rand::random::<u64>() % total;
        for (db, weight) in weights.iter().enumerate() {
            if pick < *weight {
                return Some(db);
            }
            pick -= weight;
        }
        None
    }

    /// Drops one key from both tiers to respect `max-disk` (real loss the
    /// user chose with an `allkeys-*` or `volatile-*` policy): among sampled
    /// records, one not in memory (so not recently used) with the oldest
    /// write.
    fn evict_from_disk(&self, warm: &Warm) -> bool {
        let volatile_only = match self.policy() {
            EvictionPolicy::NoEviction => return false,
            EvictionPolicy::AllKeys(_) => false,
            EvictionPolicy::Volatile(_) => true,
        };
        let samples = self.samples.load(Ordering::Relaxed) as usize;
        let start = rand::random::<usize>() % self.dbs.len();
        for offset in 0..self.dbs.len() {
            let db = (start + offset) % self.dbs.len();
            if warm.dbsize(db) == 0 {
                continue;
            }
            let mut best: Option<(bool, u64, Bytes)> = None;
            for (key, version, deadline) in warm.sample(db, samples.max(1)) {
                if volatile_only && deadline.is_none() {
                    continue;
                }
                let hash = self.hash(&key);
                let in_memory = self.lock(db, hash).get(hash, &key).is_some();
                let candidate = (in_memory, version, key);
                if best
                    .as_ref()
                    .is_none_or(|b| (candidate.0, candidate.1) < (b.0, b.1))
                {
                    best = Some(candidate);
                }
            }
            let Some((_, _, key)) = best else {
                continue;
            };
            let hash = self.hash(&key);
            let mut shard = self.lock(db, hash);
            let before = shard.bytes;
            shard.remove(hash, &key);
            self.account(db, &shard, before);
            warm.delete(db, &key);
            self.signal_deleted(db, hash, &key);
            warm.count_eviction();
            self.events.emit(EventKind::Evicted, db, &key);
            return true;
        }
        false
    }

    /// Flushes and closes the warm tier (shutdown). Blocks on disk I/O.
    pub fn close(&self) {
        if let Some(warm) = &self.warm {
            warm.close();
        }
    }
}

/// Rebuilds a hot-tier entry from a warm record; `None` for a kind this
/// version cannot decode.
/// Drops a preloaded collection another thread installed first, so it
/// does not stay in this thread's slot.
fn forget_preloaded() {
    PRELOADED.with(|slot| slot.borrow_mut().take());
}

/// Whether a record is a collection too large to read under its shard lock.
fn is_large_collection(stored: &Stored) -> bool {
    warm::is_collection(stored.kind)
        && CollectionMeta::decode(&stored.payload).is_ok_and(|meta| meta.len > LOAD_UNLOCKED_OVER)
}

/// What the warm tier stores for a string entry: (kind, payload).
fn entry_payload(entry: &Entry) -> (u8, &[u8]) {
    match entry.value() {
        ValueRef::Str(data) => (KIND_STRING, data),
        // Collections are written through `Entry::collection_changes`.
        _ => (KIND_STRING, &[]),
    }
}

fn drop_maybe_in_background(old: Vec<Shard>, background: bool) {
    if background {
        std::thread::spawn(move || drop(old));
    } else {
        drop(old);
    }
}

struct TxnKey<'a> {
    key: &'a [u8],
    hash: u64,
    db: usize,
    /// Index into `Txn::guards` of the shard holding the key.
    guard: usize,
    /// Copied from sled into memory when the transaction opened.
    promoted: bool,
}

/// Keys locked for a change. Index `i` is the position of the key in the
/// list the transaction was opened with. Every key changed is written to
/// the warm tier when the transaction ends, before its locks are released.
// Most commands touch one or two keys: those transactions allocate nothing.
pub struct Txn<'a> {
    keyspace: &'a Keyspace,
    keys: SmallVec<[TxnKey<'a>; 2]>,
    guards: SmallVec<[MutexGuard<'a, Shard>; 2]>,
    /// Each guard's (database, shard bytes when locked), for the figures.
    bytes_before: SmallVec<[(usize, usize); 2]>,
    now_ms: u64,
    /// Entries handed out by `entry_mut`, re-measured when the transaction ends.
    pending_resize: SmallVec<[(usize, usize); 2]>,
    /// Keys changed, to be written to the warm tier.
    changed: SmallVec<[usize; 2]>,
    /// (database, generation) of collections removed by this transaction:
    /// one inserted again in the same database (RENAME) keeps its elements.
    removed_generations: SmallVec<[(usize, u64); 1]>,
    /// Keys stored or removed whole (not changed in place): the source
    /// replaces what it holds for them.
    whole: SmallVec<[usize; 2]>,
    /// Keys handed out by `entry_mut` and left as they were
    /// ([`Txn::left_unchanged`]).
    unchanged: SmallVec<[usize; 1]>,
}

impl<'a> Txn<'a> {
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn key(&self, i: usize) -> &[u8] {
        self.keys[i].key
    }

    fn shard(&self, i: usize) -> &Shard {
        &self.guards[self.keys[i].guard]
    }

    fn shard_mut(&mut self, i: usize) -> (&mut Shard, u64, &'a [u8]) {
        let TxnKey {
            key, hash, guard, ..
        } = self.keys[i];
        (&mut self.guards[guard], hash, key)
    }

    fn mark_changed(&mut self, i: usize) {
        if !self.changed.contains(&i) {
            self.changed.push(i);
        }
    }

    pub fn get(&self, i: usize) -> Option<&Entry> {
        let k = &self.keys[i];
        self.shard(i).get(k.hash, k.key)
    }

    pub fn value(&self, i: usize) -> Option<ValueRef<'_>> {
        self.get(i).map(Entry::value)
    }

    pub fn exists(&self, i: usize) -> bool {
        self.get(i).is_some()
    }

    /// Counts a keyspace hit or miss for key `i`, for commands that read
    /// through a write (GETDEL, GETEX, SET ... GET) as Redis's `lookupKeyRead` does.
    pub fn count_read(&mut self, i: usize) {
        let promoted = self.keys[i].promoted;
        let (shard, hash, key) = self.shard_mut(i);
        shard.read(hash, key, None, promoted);
    }

    /// The entry to change in place; its size is re-measured when the
    /// transaction ends.
    pub fn entry_mut(&mut self, i: usize) -> Option<EntryMut<'_>> {
        let size = self.get(i).map(Entry::mem_size)?;
        if !self.pending_resize.iter().any(|(index, _)| *index == i) {
            self.pending_resize.push((i, size));
        }
        self.mark_changed(i);
        let (shard, hash, key) = self.shard_mut(i);
        shard.get_mut(hash, key).map(EntryMut)
    }

    /// The entry taken with `entry_mut` was left as it was (SETBIT of a bit
    /// already set, say): as in Redis nothing is written, no change is
    /// counted and no watcher is told. Its size is still re-measured.
    pub fn left_unchanged(&mut self, i: usize) {
        if !self.whole.contains(&i) {
            self.changed.retain(|&mut changed| changed != i);
            self.unchanged.push(i);
        }
    }

    /// Counts `extra` changes of key `i` beyond the one its write counts
    /// (BITFIELD counts each field it changed, as Redis).
    pub fn count_changes(&mut self, i: usize, extra: u64) {
        let (shard, _, _) = self.shard_mut(i);
        shard.counters.changes += extra;
    }

    /// Whether re-measuring key `i` counts as a change: not for a key
    /// stored whole by this transaction (counted then) or left unchanged.
    fn resize_counts(&self, i: usize) -> bool {
        !self.whole.contains(&i) && !self.unchanged.contains(&i)
    }

    /// Stores a value with the given absolute deadline, replacing what was there.
    /// A new collection (generation 0) gets its generation here, and all
    /// its elements are written.
    pub fn insert(&mut self, i: usize, value: Value, expire_at: Option<u64>) -> Option<Entry> {
        let now_secs = secs_clock(self.now_ms);
        self.insert_entry(i, Entry::new(self.keys[i].key, value, expire_at, now_secs))
    }

    /// Stores an entry under key `i` (taken from another key: RENAME, MOVE,
    /// COPY), replacing what was there. A collection keeps its elements on
    /// disk only when it was removed from the same database by this
    /// transaction (RENAME); otherwise (a copy, a move to another database's
    /// tree) it gets a new generation and all its elements are written.
    pub fn insert_entry(&mut self, i: usize, mut entry: Entry) -> Option<Entry> {
        let db = self.keys[i].db;
        let track = self.keyspace.tracks_changes();
        if let Some(collection) = entry.collection_mut() {
            let generation = collection.common().generation;
            if generation == 0 || !self.removed_generations.contains(&(db, generation)) {
                collection
                    .common_mut()
                    .adopt(self.keyspace.next_generation(), track);
            }
        }
        self.pending_resize.retain(|(index, _)| *index != i);
        self.mark_changed(i);
        if !self.whole.contains(&i) {
            self.whole.push(i);
        }
        let TxnKey {
            key, hash, guard, ..
        } = self.keys[i];
        if matches!(entry.value(), ValueRef::List(_) | ValueRef::ZSet(_)) {
            self.keyspace.mark_ready(db, key);
        }
        self.guards[guard].insert(hash, entry.rekey(key))
    }

    /// Replaces the value and keeps the key's TTL.
    pub fn replace_value(&mut self, i: usize, value: Value) {
        let expire_at = self.get(i).and_then(Entry::expire_at);
        self.insert(i, value, expire_at);
    }

    pub fn remove(&mut self, i: usize) -> Option<Entry> {
        self.pending_resize.retain(|(index, _)| *index != i);
        let TxnKey {
            key, hash, guard, ..
        } = &self.keys[i];
        let removed = self.guards[*guard].remove(*hash, key);
        if let Some(entry) = &removed {
            if let Some(collection) = entry.collection() {
                let db = self.keys[i].db;
                self.removed_generations
                    .push((db, collection.common().generation));
            }
            self.mark_changed(i);
        }
        removed
    }

    /// Sets or clears the deadline; false when the key is absent.
    pub fn set_expire(&mut self, i: usize, expire_at: Option<u64>) -> bool {
        self.flush_resize(i);
        let TxnKey {
            key, hash, guard, ..
        } = &self.keys[i];
        let present = self.guards[*guard].set_expire(*hash, key, expire_at);
        if present {
            self.mark_changed(i);
        }
        present
    }

    fn flush_resize(&mut self, i: usize) {
        if let Some(position) = self
            .pending_resize
            .iter()
            .position(|(index, _)| *index == i)
        {
            let (_, old_size) = self.pending_resize.swap_remove(position);
            let counts = self.resize_counts(i);
            let TxnKey {
                key, hash, guard, ..
            } = &self.keys[i];
            self.guards[*guard].resize(*hash, key, old_size, counts);
        }
    }

    /// Writes every changed key to the warm tier: its entry as it now is in
    /// memory, or its absence, with the records that ship it to the source.
    /// The changes of one database go in one atomic batch; across databases
    /// (MOVE, COPY ... DB) databases that gain a key go first, so a crash
    /// between them may leave a copy, never a loss.
    fn write_through(&mut self) {
        let link = self
            .keyspace
            .link
            .as_deref()
            .filter(|_| !link::shipping_off());
        let warm = self.keyspace.warm.as_ref();
        if warm.is_none() && link.is_none() {
            return;
        }
        if let ([i], Some(warm), None) = (&self.changed[..], warm, link) {
            let TxnKey {
                key,
                hash,
                guard,
                db,
                ..
            } = self.keys[*i];
            match self.guards[guard].get_mut(hash, key) {
                Some(entry) => {
                    let mut elements = Vec::new();
                    match entry.collection_changes(&mut elements) {
                        Some((kind, meta)) => {
                            let record = warm::Record {
                                kind,
                                expire_at: entry.expire_at(),
                                payload: &meta,
                            };
                            warm.apply(db, &[(key, Some(record))], &elements, None);
                        }
                        None => {
                            let (kind, payload) = entry_payload(entry);
                            warm.put(db, key, kind, entry.expire_at(), payload);
                        }
                    }
                }
                None => {
                    warm.delete(db, key);
                }
            }
            return;
        }
        let mut dbs: SmallVec<[(bool, usize); 2]> = SmallVec::new();
        for &i in &self.changed {
            let k = &self.keys[i];
            let gains = self.guards[k.guard].get(k.hash, k.key).is_some();
            match dbs.iter_mut().find(|(_, db)| *db == k.db) {
                Some(group) => group.0 |= gains,
                None => dbs.push((gains, k.db)),
            }
        }
        dbs.sort_by_key(|&(gains, db)| (!gains, db));
        for &(_, db) in &dbs {
            // Collections' metadata and elements, taken first (it needs the
            // entries mutably), then every key's record.
            let mut elements: Vec<ElementWrite> = Vec::new();
            let mut metas: SmallVec<[(usize, u8, Vec<u8>); 2]> = SmallVec::new();
            let mut records: Vec<crate::source::OutboxRecord> = Vec::new();
            let mut through = false;
            let mut done: SmallVec<[&[u8]; 4]> = SmallVec::new();
            for &i in &self.changed {
                let k = &self.keys[i];
                // A key named twice (MSET k 1 k 2) is written once, as it ends.
                if k.db != db || done.contains(&k.key) {
                    continue;
                }
                done.push(k.key);
                let start = elements.len();
                if let Some(entry) = self.guards[k.guard].get_mut(k.hash, k.key) {
                    if let Some((kind, meta)) = entry.collection_changes(&mut elements) {
                        metas.push((i, kind, meta));
                    }
                }
                let Some(link) = link else { continue };
                let mode = link.policy(k.key).write_mode;
                if mode == WriteMode::None {
                    continue;
                }
                through |= mode == WriteMode::Through;
                let change = link::KeyChange {
                    db,
                    key: k.key,
                    entry: self.guards[k.guard].get(k.hash, k.key),
                    whole: self.whole.contains(&i),
                    elements: &elements[start..],
                };
                link::records_for(link, &change, &mut records);
                link.forget_absent(db, k.key);
            }
            let mut encoded = Vec::new();
            let outbox = match link {
                Some(link) if !records.is_empty() => {
                    crate::source::outbox::encode(&records, &mut encoded);
                    Some((link.enqueue(records, through), encoded.as_slice()))
                }
                _ => None,
            };
            let Some(warm) = warm else { continue };
            let mut changes: SmallVec<[(&[u8], Option<warm::Record<'_>>); 4]> = SmallVec::new();
            for &i in &self.changed {
                let k = &self.keys[i];
                if k.db != db || changes.iter().any(|(key, _)| *key == k.key) {
                    continue;
                }
                let meta = metas
                    .iter()
                    .find(|(j, ..)| self.keys[*j].key == k.key)
                    .map(|(_, kind, meta)| (*kind, meta.as_slice()));
                let record = self.guards[k.guard].get(k.hash, k.key).map(|entry| {
                    let (kind, payload) = meta.unwrap_or_else(|| entry_payload(entry));
                    warm::Record {
                        kind,
                        expire_at: entry.expire_at(),
                        payload,
                    }
                });
                changes.push((k.key, record));
            }
            warm.apply(db, &changes, &elements, outbox);
        }
    }
}

impl Txn<'_> {
    /// A collection left empty is deleted, as Redis never keeps an empty one.
    fn drop_empty_collections(&mut self) {
        for n in 0..self.changed.len() {
            let i = self.changed[n];
            let TxnKey {
                key, hash, guard, ..
            } = self.keys[i];
            let empty = self.guards[guard]
                .get(hash, key)
                .and_then(Entry::collection)
                .is_some_and(|c| c.is_empty());
            if empty {
                self.pending_resize.retain(|(index, _)| *index != i);
                self.guards[guard].remove(hash, key);
            }
        }
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        self.drop_empty_collections();
        while let Some((i, old_size)) = self.pending_resize.pop() {
            let counts = self.resize_counts(i);
            let TxnKey {
                key, hash, guard, ..
            } = &self.keys[i];
            self.guards[*guard].resize(*hash, key, old_size, counts);
        }
        if !self.changed.is_empty() {
            self.write_through();
            if !link::is_loading() {
                self.signal_changes();
            }
        }
        for (shard, &(db, before)) in self.guards.iter().zip(self.bytes_before.iter()) {
            self.keyspace.account(db, shard, before);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ks: &Keyspace, key: &str, value: &str, expire_at: Option<u64>) {
        ks.write(0, key.as_bytes(), |txn| {
            txn.insert(
                0,
                Value::Str(Bytes::copy_from_slice(value.as_bytes())),
                expire_at,
            )
        });
    }

    #[test]
    fn scan_visits_every_key_once() {
        let ks = Keyspace::new(1);
        for i in 0..1000 {
            set(&ks, &format!("key:{i}"), "v", None);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut calls = 0;
        loop {
            let page = ks.scan(0, cursor, 10, None, None);
            for key in page.keys {
                assert!(seen.insert(key), "duplicate key");
            }
            cursor = page.cursor;
            calls += 1;
            if cursor == 0 {
                break;
            }
            assert!(calls < 10_000);
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn expiry_is_lazy_and_swept() {
        let ks = Keyspace::new(1);
        set(&ks, "gone", "v", Some(now_ms() - 1));
        set(&ks, "swept", "v", Some(now_ms() - 1));
        set(&ks, "kept", "v", Some(now_ms() + 60_000));
        assert!(ks.read(0, b"gone", ReadOptions::default(), |e| e.is_none()));
        assert_eq!(ks.dbsize(0), 2);
        assert_eq!(ks.sweep_expired(), 1);
        assert_eq!(ks.dbsize(0), 1);
        assert_eq!(ks.totals().counters.expired, 2);
    }

    #[test]
    fn byte_accounting_returns_to_zero() {
        let ks = Keyspace::new(1);
        set(&ks, "a", "hello", None);
        set(&ks, "a", "a much longer value", Some(now_ms() + 10_000));
        ks.write(0, b"a", |txn| {
            if let Some(data) = txn.entry_mut(0).and_then(EntryMut::string_mut) {
                *data = b"x".to_vec();
            }
        });
        assert!(ks.totals().bytes > 0);
        ks.write(0, b"a", |txn| txn.remove(0));
        assert_eq!(ks.totals().bytes, 0);
    }

    #[test]
    fn eviction_spreads_over_the_shards_of_the_databases_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keyspace::open(KeyspaceOptions {
            databases: 16,
            warm: Some(WarmOptions {
                dir: dir.path().to_path_buf(),
                databases: 16,
                cache_size: 4 << 20,
                fsync: warm::FsyncPolicy::No,
                max_disk: 0,
                min_free_disk: 0,
            }),
            maxmemory: 400 * 1024,
            policy: EvictionPolicy::AllKeys(Rank::Random),
            samples: 5,
            source: None,
        })
        .unwrap();
        let value = "v".repeat(100);
        for i in 0..10_000 {
            set(&ks, &format!("key:{i}"), &value, None);
            ks.make_room(true).unwrap();
        }
        assert!(ks.hot_bytes() <= 400 * 1024);
        // A small hot set, read again and again, stays in memory: evictions
        // land anywhere among some 2,000 keys, not on the few shards after
        // the fifteen empty databases.
        let hot: Vec<String> = (0..50).map(|i| format!("key:{i}")).collect();
        let read_all = || {
            for key in &hot {
                ks.read(0, key.as_bytes(), ReadOptions::default(), |e| {
                    assert!(e.is_some())
                });
                ks.make_room(false).unwrap();
            }
        };
        read_all();
        let before = ks.totals().counters.warm_hits;
        for _ in 0..4 {
            read_all();
        }
        let from_disk = ks.totals().counters.warm_hits - before;
        assert!(from_disk < 20, "{from_disk} of 200 hot reads went to disk");
    }

    fn open_warm(dir: &std::path::Path) -> Keyspace {
        Keyspace::open(KeyspaceOptions {
            databases: 2,
            warm: Some(WarmOptions {
                dir: dir.to_path_buf(),
                databases: 2,
                cache_size: 4 << 20,
                fsync: warm::FsyncPolicy::No,
                max_disk: 0,
                min_free_disk: 0,
            }),
            maxmemory: 0,
            policy: EvictionPolicy::AllKeys(Rank::Lru),
            samples: 5,
            source: None,
        })
        .unwrap()
    }

    fn list_of(ks: &Keyspace, db: usize, key: &[u8]) -> Option<Vec<Vec<u8>>> {
        ks.read(db, key, ReadOptions::default(), |entry| {
            let list = entry?.value().as_list()?;
            Some(list.iter().map(<[u8]>::to_vec).collect())
        })
    }

    fn with_list(ks: &Keyspace, db: usize, key: &[u8], f: impl FnOnce(&mut types::List)) {
        ks.write(db, key, |txn| {
            if !txn.exists(0) {
                txn.insert(0, Value::List(types::List::default()), None);
            }
            if let Some(list) = txn.entry_mut(0).and_then(EntryMut::list_mut) {
                f(list);
            }
        });
    }

    #[test]
    fn collections_survive_a_reopen_element_by_element() {
        let dir = tempfile::tempdir().unwrap();
        let mut model: std::collections::VecDeque<Vec<u8>> = Default::default();
        {
            let ks = open_warm(dir.path());
            with_list(&ks, 0, b"l", |list| {
                for i in 0..300 {
                    list.push_back(format!("{i}").as_bytes());
                }
            });
            model.extend((0..300).map(|i| format!("{i}").into_bytes()));
            with_list(&ks, 0, b"l", |list| {
                list.push_front(b"front");
                list.pop_back();
                list.set(10, b"ten");
                list.insert(200, b"inserted");
                list.remove(3);
            });
            model.push_front(b"front".to_vec());
            model.pop_back();
            model[10] = b"ten".to_vec();
            model.insert(200, b"inserted".to_vec());
            model.remove(3);
            ks.write(0, b"h", |txn| {
                let mut hash = types::Hash::default();
                hash.insert(b"f", b"v");
                hash.insert(b"g", b"w");
                txn.insert(0, Value::Hash(hash), None);
            });
            ks.write(0, b"h", |txn| {
                if let Some(hash) = txn.entry_mut(0).and_then(EntryMut::hash_mut) {
                    hash.remove(b"f");
                }
            });
            // RENAME keeps the elements; MOVE writes them to the other tree.
            ks.write_many([(0, &b"h"[..]), (0, &b"renamed"[..])], |txn| {
                let entry = txn.remove(0).unwrap();
                txn.insert_entry(1, entry);
            });
            ks.write(0, b"s", |txn| {
                let mut set = types::Set::default();
                set.insert(b"m");
                txn.insert(0, Value::Set(set), None);
            });
            ks.write_many([(0, &b"s"[..]), (1, &b"s"[..])], |txn| {
                let entry = txn.remove(0).unwrap();
                txn.insert_entry(1, entry);
            });
            // Emptied: deleted.
            with_list(&ks, 0, b"gone", |list| list.push_back(b"x"));
            with_list(&ks, 0, b"gone", |list| {
                list.pop_front();
            });
            ks.close();
        }
        let ks = open_warm(dir.path());
        assert_eq!(list_of(&ks, 0, b"l"), Some(model.iter().cloned().collect()));
        let fields = ks.read(0, b"renamed", ReadOptions::default(), |entry| {
            let hash = entry.unwrap().value().as_hash().unwrap();
            hash.iter()
                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                .collect::<Vec<_>>()
        });
        assert_eq!(fields, [(b"g".to_vec(), b"w".to_vec())]);
        assert!(ks.read(0, b"h", ReadOptions::default(), |e| e.is_none()));
        assert!(ks.read(0, b"s", ReadOptions::default(), |e| e.is_none()));
        let moved = ks.read(1, b"s", ReadOptions::default(), |e| {
            e.unwrap().value().as_set().unwrap().contains(b"m")
        });
        assert!(moved);
        assert!(ks.read(0, b"gone", ReadOptions::default(), |e| e.is_none()));
        assert_eq!(ks.dbsize(0), 2);
    }

    #[test]
    fn large_collections_load_without_their_shard_lock() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<Vec<u8>> = (0..3 * LOAD_UNLOCKED_OVER)
            .map(|i| format!("item-{i}").into_bytes())
            .collect();
        {
            let ks = open_warm(dir.path());
            with_list(&ks, 0, b"read", |list| {
                items.iter().for_each(|i| list.push_back(i))
            });
            with_list(&ks, 0, b"written", |list| {
                items.iter().for_each(|i| list.push_back(i))
            });
            ks.close();
        }
        let ks = open_warm(dir.path());
        // Read path: deferred, preloaded, installed on the retry.
        assert_eq!(list_of(&ks, 0, b"read"), Some(items.clone()));
        // Write path (a transaction over two keys, one of them large).
        ks.write_many([(0, &b"written"[..]), (0, &b"other"[..])], |txn| {
            let list = txn.entry_mut(0).and_then(EntryMut::list_mut).unwrap();
            list.push_back(b"last");
        });
        let mut expected = items.clone();
        expected.push(b"last".to_vec());
        assert_eq!(list_of(&ks, 0, b"written"), Some(expected));
        assert_eq!(ks.totals().counters.promotions, 2);
        assert!(PRELOADED.with(|slot| slot.borrow().is_none()));
    }

    #[test]
    fn a_push_writes_the_same_bytes_whatever_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let ks = open_warm(dir.path());
        let appended = |ks: &Keyspace| ks.warm().unwrap().journal_bytes();
        with_list(&ks, 0, b"small", |list| list.push_back(b"x"));
        with_list(&ks, 0, b"big", |list| {
            for _ in 0..10_000 {
                list.push_back(b"x");
            }
        });
        let before = appended(&ks);
        with_list(&ks, 0, b"small", |list| list.push_back(b"y"));
        let small = appended(&ks) - before;
        let before = appended(&ks);
        with_list(&ks, 0, b"big", |list| list.push_back(b"y"));
        let big = appended(&ks) - before;
        assert!(small > 0);
        assert_eq!(small, big + 2, "the small list's key is two bytes longer");
    }

    #[test]
    fn dropped_collections_are_collected_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let ks = open_warm(dir.path());
        with_list(&ks, 0, b"l", |list| {
            for _ in 0..2_000 {
                list.push_back(&[b'x'; 100]);
            }
        });
        let disk = |ks: &Keyspace| {
            ks.warm().unwrap().catch_up();
            ks.warm().unwrap().figures().bytes
        };
        assert!(disk(&ks) > 200_000);
        ks.write(0, b"l", |txn| txn.remove(0));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while disk(&ks) > 1_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "garbage never collected"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    #[test]
    fn random_key_and_swap() {
        let ks = Keyspace::new(2);
        assert!(ks.random_key(0).is_none());
        set(&ks, "only", "v", None);
        assert_eq!(ks.random_key(0).unwrap(), Bytes::from("only"));
        ks.swap_db(0, 1);
        assert!(ks.random_key(0).is_none());
        assert_eq!(ks.dbsize(1), 1);
    }
}
