//! The keyspace's side of the source of truth: which keys ship and how (the
//! `[source]` rules), the versions writes carry, the outbox of writes not yet
//! in the source, what a `through` reply waits for, and the negative cache.
//!
//! A transaction turns each changed key into outbox records while it still
//! holds the key's shard lock, so the records of one key queue in the order
//! the key changed. The same records go into the warm tier's journal record
//! of the change, so a crash keeps both or neither; the drainer (`bridge`)
//! ships them from this queue and tells the warm tier what it may forget.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Notify};

use crate::config::{KeyPolicy, SourceConfig};
use crate::source::{outbox, CollectionKind, Op, OutboxRecord};

use super::types::{Hash, List, Set, ZSet};
use super::value::{Entry, ValueRef};
use super::warm::collections::{
    decode_score, TAG_HASH_FIELD, TAG_LIST_INDEX, TAG_SET_MEMBER, TAG_ZSET_MEMBER,
};
use super::warm::Warm;

thread_local! {
    /// The highest outbox sequence a `through` write of the running command
    /// queued: its reply waits for the source's commit of it.
    static THROUGH_WAIT: Cell<u64> = const { Cell::new(0) };
    /// Set while the keyspace mirrors the source instead of changing it.
    static MIRROR: Cell<Mirror> = const { Cell::new(Mirror::Off) };
    /// The keys the running command had loaded from the source first.
    static LOADED: RefCell<Vec<Bytes>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f`, a command whose `keys` were just loaded from the source: its
/// reads of them count as misses, as neither tier had them (the load is
/// what answered, at the cost of a database call).
pub fn reading_loaded<R>(keys: &[Bytes], f: impl FnOnce() -> R) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            LOADED.with(|loaded| loaded.borrow_mut().clear());
        }
    }
    LOADED.with(|loaded| loaded.borrow_mut().extend_from_slice(keys));
    let _clear = Clear;
    f()
}

/// Whether the running command's read of `key` found it only because it
/// was loaded from the source for this command.
pub(super) fn read_was_loaded(key: &[u8]) -> bool {
    LOADED.with(|loaded| {
        loaded
            .try_borrow()
            .is_ok_and(|keys| !keys.is_empty() && keys.iter().any(|k| k.as_ref() == key))
    })
}

/// Changes that mirror the source rather than the user's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mirror {
    Off,
    /// A cached copy dropped (invalidation): nothing ships; WATCH sees it.
    Drop,
    /// A key loaded from the source: nothing ships and, as the key's value
    /// did not change, WATCH does not see it.
    Load,
}

/// The outbox sequence the command that just ran must see committed before
/// its reply (0: none); resets it.
pub fn take_through_wait() -> u64 {
    THROUGH_WAIT.with(|w| w.replace(0))
}

fn mirroring<R>(mode: Mirror, f: impl FnOnce() -> R) -> R {
    struct Restore(Mirror);
    impl Drop for Restore {
        fn drop(&mut self) {
            MIRROR.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(MIRROR.with(|m| m.replace(mode)));
    f()
}

/// Runs `f` as a drop of cached copies: nothing it changes ships.
pub(super) fn dropping<R>(f: impl FnOnce() -> R) -> R {
    mirroring(Mirror::Drop, f)
}

/// Runs `f` as a load from the source: nothing ships, no watcher is told.
pub(super) fn loading<R>(f: impl FnOnce() -> R) -> R {
    mirroring(Mirror::Load, f)
}

pub(super) fn shipping_off() -> bool {
    MIRROR.with(Cell::get) != Mirror::Off
}

pub(super) fn is_loading() -> bool {
    MIRROR.with(Cell::get) == Mirror::Load
}

/// A loaded copy's cache deadline and the expiry the source holds.
type CacheDeadline = (u64, Option<i64>);

/// One write's records, waiting to be shipped.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: u64,
    pub records: Vec<OutboxRecord>,
    pub bytes: u64,
    pub queued_at: Instant,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Pending>,
    next_seq: u64,
    bytes: u64,
    /// (db, key) → the newest queued write of the key and whether it
    /// deletes the key (a flush: the empty key of its database, or of
    /// [`ALL_DBS`]). Until it ships, the source holds an older state than
    /// this instance.
    pending: HashMap<(usize, Bytes), (u64, bool)>,
}

/// Why a write did not reach the source.
#[derive(Debug, Clone)]
pub enum ShipFailure {
    /// No commit was seen (the source is away); the write stays queued.
    Unconfirmed(Arc<str>),
    /// The source refused it (a constraint): it is parked as a dead letter.
    Refused(Arc<str>),
}

impl ShipFailure {
    pub fn reason(&self) -> &Arc<str> {
        match self {
            ShipFailure::Unconfirmed(reason) | ShipFailure::Refused(reason) => reason,
        }
    }
}

/// A key's writes still in the outbox, as read-through sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingState {
    None,
    Deleted,
    ShipFirst(u64),
}

/// The database a `FLUSHALL SOURCE` is pending under.
const ALL_DBS: usize = usize::MAX;

impl Queue {
    fn push(&mut self, pending: Pending) {
        for record in &pending.records {
            let deletes = matches!(
                record.op,
                crate::source::Op::DeleteKey
                    | crate::source::Op::FlushDb
                    | crate::source::Op::FlushAll
            );
            self.pending
                .insert(pending_slot(record), (pending.seq, deletes));
        }
        self.bytes += pending.bytes;
        self.entries.push_back(pending);
    }
}

fn pending_slot(record: &OutboxRecord) -> (usize, Bytes) {
    match record.op {
        crate::source::Op::FlushAll => (ALL_DBS, Bytes::new()),
        _ => (record.db as usize, record.key.clone()),
    }
}

/// How far the source has confirmed the outbox: every sequence up to
/// `shipped` is committed; a `through` write up to `failed` (and above
/// `shipped`) got no commit in time, for `reason`.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub shipped: u64,
    pub failed: u64,
    pub reason: Arc<str>,
    /// Recent writes the source refused for good (dead letters).
    pub poisoned: VecDeque<(u64, Arc<str>)>,
}

#[derive(Debug, Default)]
pub struct LinkCounters {
    pub negative_hits: AtomicU64,
    pub invalidations: AtomicU64,
}

pub struct SourceLink {
    config: SourceConfig,
    /// Versions: a hybrid clock (Unix microseconds, never going back, pushed
    /// above every version loaded from the source), so a later write on
    /// any instance carries a higher version than what it overwrites.
    clock: AtomicU64,
    queue: Mutex<Queue>,
    /// Wakes the drainer.
    pub wake: Notify,
    progress: watch::Sender<Progress>,
    /// The `through` replies waiting, by the outbox sequence they wait for:
    /// a commit wakes only the replies it covers (a watch would wake every
    /// waiting connection at every commit).
    waiters: Mutex<BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
    /// (db, key) → Unix ms until which the key is known absent in the source.
    negative: Mutex<HashMap<(usize, Bytes), u64>>,
    /// Keys loaded with a rule's `ttl`: (db, key) → (that deadline, the
    /// expiry the source holds). The deadline bounds the cached copy only:
    /// a write ships the source's expiry, and reaching it drops the copy
    /// without deleting in the source.
    cache_deadlines: Mutex<HashMap<(usize, Bytes), CacheDeadline>>,
    pub counters: LinkCounters,
}

impl SourceLink {
    pub fn new(config: SourceConfig) -> SourceLink {
        SourceLink {
            config,
            clock: AtomicU64::new(0),
            queue: Mutex::new(Queue {
                next_seq: super::unix_micros(),
                ..Queue::default()
            }),
            wake: Notify::new(),
            progress: watch::channel(Progress::default()).0,
            waiters: Mutex::new(BTreeMap::new()),
            negative: Mutex::new(HashMap::new()),
            cache_deadlines: Mutex::new(HashMap::new()),
            counters: LinkCounters::default(),
        }
    }

    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    pub fn policy(&self, key: &[u8]) -> KeyPolicy {
        self.config.policy(key)
    }

    /// A version above every one handed out or seen before.
    pub fn next_version(&self) -> u64 {
        let now = super::unix_micros();
        let mut current = self.clock.load(Ordering::Relaxed);
        loop {
            let next = now.max(current + 1);
            match self.clock.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => current = seen,
            }
        }
    }

    /// A version read from the source: later writes must go above it.
    pub fn observe_version(&self, version: u64) {
        self.clock.fetch_max(version, Ordering::AcqRel);
    }

    /// Takes back what the warm tier's outbox held at open.
    pub(super) fn restore(&self, warm: &Warm) {
        let mut queue = self.queue.lock();
        for (seq, raw) in warm.outbox_pending() {
            match outbox::decode(&raw) {
                Some(records) => {
                    for record in &records {
                        self.observe_version(record.version);
                    }
                    let bytes = records.iter().map(outbox::record_cost).sum::<usize>() as u64;
                    queue.next_seq = queue.next_seq.max(seq + 1);
                    queue.push(Pending {
                        seq,
                        records,
                        bytes,
                        queued_at: Instant::now(),
                    });
                }
                None => {
                    tracing::error!(seq, "outbox: a damaged entry is parked as a dead letter");
                    warm.dead_letter(seq, &raw, "damaged outbox entry");
                }
            }
        }
    }

    /// Queues one write's records; returns its outbox sequence. Called with
    /// the shard locks of its keys held, so each key's records keep order.
    pub(super) fn enqueue(&self, records: Vec<OutboxRecord>, through: bool) -> u64 {
        let bytes = records.iter().map(outbox::record_cost).sum::<usize>() as u64;
        let seq = {
            let mut queue = self.queue.lock();
            let seq = queue.next_seq;
            queue.next_seq += 1;
            queue.push(Pending {
                seq,
                records,
                bytes,
                queued_at: Instant::now(),
            });
            seq
        };
        if through {
            THROUGH_WAIT.with(|w| w.set(w.get().max(seq)));
        }
        self.wake.notify_one();
        seq
    }

    /// The oldest queued writes after outbox sequence `after`, up to
    /// `max_records` records (at least one write), for the drainer. A flush
    /// travels alone: it touches every row, so it must not race a batch.
    pub fn peek(&self, after: u64, max_records: usize) -> Vec<Pending> {
        let queue = self.queue.lock();
        let start = queue.entries.partition_point(|p| p.seq <= after);
        let mut taken: Vec<Pending> = Vec::new();
        let mut records = 0;
        for pending in queue.entries.range(start..) {
            let flush = pending.records.iter().any(|r| {
                matches!(
                    r.op,
                    crate::source::Op::FlushDb | crate::source::Op::FlushAll
                )
            });
            if !taken.is_empty() && (flush || records + pending.records.len() > max_records) {
                break;
            }
            records += pending.records.len();
            taken.push(pending.clone());
            if flush {
                break;
            }
        }
        taken
    }

    /// Writes up to `seq` are in the source (or parked): drop them from
    /// the queue and release the replies waiting for them.
    pub fn shipped(&self, seq: u64) {
        {
            let mut queue = self.queue.lock();
            while queue.entries.front().is_some_and(|p| p.seq <= seq) {
                if let Some(done) = queue.entries.pop_front() {
                    queue.bytes = queue.bytes.saturating_sub(done.bytes);
                    for record in &done.records {
                        let slot = pending_slot(record);
                        if queue
                            .pending
                            .get(&slot)
                            .is_some_and(|&(last, _)| last <= seq)
                        {
                            queue.pending.remove(&slot);
                        }
                    }
                }
            }
        }
        self.progress
            .send_modify(|p| p.shipped = p.shipped.max(seq));
        self.wake_waiters(seq);
    }

    /// Wakes the replies waiting for sequences up to `seq`; each reads the
    /// outcome from `progress`, updated before this.
    fn wake_waiters(&self, seq: u64) {
        let woken = {
            let mut waiters = self.waiters.lock();
            let later = waiters.split_off(&seq.saturating_add(1));
            std::mem::replace(&mut *waiters, later)
        };
        for sender in woken.into_values().flatten() {
            let _ = sender.send(());
        }
    }

    /// The newest queued write's outbox sequence (0: none queued).
    pub fn last_queued(&self) -> u64 {
        self.queue.lock().entries.back().map_or(0, |p| p.seq)
    }

    /// The keys with writes still waiting for the source: their cached
    /// copies are newer than the source's and must not be dropped.
    pub fn pending_keys(&self) -> std::collections::HashSet<(usize, Bytes)> {
        self.queue.lock().pending.keys().cloned().collect()
    }

    /// What the outbox says of `key`, which neither tier holds: nothing
    /// (ask the source), deleted here (the source still has it: do not
    /// load it back), or written here and then dropped (a plain FLUSHALL,
    /// an invalidation): the load must wait until the write has shipped.
    pub fn pending_state(&self, db: usize, key: &[u8]) -> PendingState {
        let queue = self.queue.lock();
        if queue.pending.is_empty() {
            return PendingState::None;
        }
        let newest = [
            (db, Bytes::copy_from_slice(key)),
            (db, Bytes::new()),
            (ALL_DBS, Bytes::new()),
        ]
        .iter()
        .filter_map(|slot| queue.pending.get(slot).copied())
        .max_by_key(|&(seq, _)| seq);
        match newest {
            None => PendingState::None,
            Some((_, true)) => PendingState::Deleted,
            Some((seq, false)) => PendingState::ShipFirst(seq),
        }
    }

    /// Every outbox sequence up to this one is committed (or parked).
    pub fn shipped_seq(&self) -> u64 {
        self.progress.borrow().shipped
    }

    /// Shipping writes up to `seq` failed: the replies waiting for them get
    /// `reason` (the writes stay queued and ship later).
    pub fn failed(&self, seq: u64, reason: &str) {
        self.progress.send_modify(|p| {
            p.failed = p.failed.max(seq);
            p.reason = Arc::from(reason);
        });
        self.wake_waiters(seq);
    }

    /// The source refused the write `seq` for good (it is parked).
    pub fn poisoned(&self, seq: u64, reason: &str) {
        self.progress.send_modify(|p| {
            if p.poisoned.len() >= 1024 {
                p.poisoned.pop_front();
            }
            p.poisoned.push_back((seq, Arc::from(reason)));
        });
    }

    /// Waits until the write with outbox sequence `seq` is committed
    /// (`Ok`), its shipping failed, or the source refused it for good.
    pub async fn wait_shipped(&self, seq: u64) -> Result<(), ShipFailure> {
        let settled = |p: &Progress| p.shipped >= seq || p.failed >= seq;
        let woken = {
            let mut waiters = self.waiters.lock();
            if settled(&self.progress.borrow()) {
                None
            } else {
                let (sender, receiver) = oneshot::channel();
                waiters.entry(seq).or_default().push(sender);
                Some(receiver)
            }
        };
        if let Some(receiver) = woken {
            if receiver.await.is_err() {
                return Err(ShipFailure::Unconfirmed(Arc::from(
                    "the server is stopping",
                )));
            }
        }
        let p = self.progress.borrow();
        if let Some((_, reason)) = p.poisoned.iter().find(|(s, _)| *s == seq) {
            Err(ShipFailure::Refused(reason.clone()))
        } else if p.shipped >= seq {
            Ok(())
        } else {
            Err(ShipFailure::Unconfirmed(p.reason.clone()))
        }
    }

    /// (writes queued, their bytes, age of the oldest in ms).
    pub fn depth(&self) -> (u64, u64, u64) {
        let queue = self.queue.lock();
        let oldest = queue
            .entries
            .front()
            .map_or(0, |p| p.queued_at.elapsed().as_millis() as u64);
        (queue.entries.len() as u64, queue.bytes, oldest)
    }

    pub fn full(&self) -> bool {
        self.queue.lock().bytes >= self.config.outbox_max_bytes.0
    }

    /// Whether `key` is known absent in the source (with `count`, counted
    /// as a negative hit).
    pub fn known_absent(&self, db: usize, key: &[u8], now_ms: u64, count: bool) -> bool {
        let mut negative = self.negative.lock();
        if negative.is_empty() {
            return false;
        }
        let probe = (db, Bytes::copy_from_slice(key));
        match negative.get(&probe) {
            Some(&until) if until > now_ms => {
                if count {
                    self.counters.negative_hits.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Some(_) => {
                negative.remove(&probe);
                false
            }
            None => false,
        }
    }

    pub fn remember_absent(&self, db: usize, key: Bytes, until_ms: u64) {
        let mut negative = self.negative.lock();
        // Bounded: a scan of random missing keys must not grow it forever.
        if negative.len() >= 1 << 20 {
            let now = super::now_ms();
            negative.retain(|_, until| *until > now);
            if negative.len() >= 1 << 20 {
                negative.clear();
            }
        }
        negative.insert((db, key), until_ms);
    }

    /// The key exists now (written here, or changed in the source).
    pub fn forget_absent(&self, db: usize, key: &[u8]) {
        let mut negative = self.negative.lock();
        if !negative.is_empty() {
            negative.remove(&(db, Bytes::copy_from_slice(key)));
        }
    }

    /// `key` was loaded with the rule's cache `deadline`; the source's row
    /// expires at `source_expiry`.
    pub fn note_cache_deadline(
        &self,
        db: usize,
        key: Bytes,
        deadline: u64,
        source_expiry: Option<i64>,
    ) {
        let mut deadlines = self.cache_deadlines.lock();
        if deadlines.len() >= 1 << 20 {
            let now = super::now_ms();
            deadlines.retain(|_, (at, _)| *at > now);
        }
        deadlines.insert((db, key), (deadline, source_expiry));
    }

    /// The expiry to ship for `key` whose deadline here is `local`: the
    /// source's own while `local` is still the cache deadline of a load.
    fn shipped_expiry(&self, db: usize, key: &[u8], local: Option<u64>) -> Option<i64> {
        let mut deadlines = self.cache_deadlines.lock();
        if !deadlines.is_empty() {
            let slot = (db, Bytes::copy_from_slice(key));
            if let Some(&(cache, source)) = deadlines.get(&slot) {
                if local == Some(cache) {
                    return source;
                }
                // Set by a command since: the user's expiry from now on.
                deadlines.remove(&slot);
            }
        }
        local.map(|at| at as i64)
    }

    /// Whether `key`'s deadline, just reached, was a cache deadline (then
    /// only the copy goes); forgets it either way.
    pub(super) fn take_cache_deadline(&self, db: usize, key: &[u8]) -> bool {
        let mut deadlines = self.cache_deadlines.lock();
        !deadlines.is_empty()
            && deadlines
                .remove(&(db, Bytes::copy_from_slice(key)))
                .is_some()
    }

    pub fn forget_all_absent(&self, db: Option<usize>) {
        let mut negative = self.negative.lock();
        match db {
            Some(db) => negative.retain(|(d, _), _| *d != db),
            None => negative.clear(),
        }
    }
}

/// How a transaction's change of one key reaches the source.
pub(super) struct KeyChange<'a> {
    pub db: usize,
    pub key: &'a [u8],
    /// The entry as the transaction leaves it; `None`: deleted.
    pub entry: Option<&'a Entry>,
    /// Replaced or created whole (SET, RENAME, a new collection): the
    /// source drops what it had and takes every element.
    pub whole: bool,
    /// The warm tier's element writes the change made (collections).
    pub elements: &'a [(Vec<u8>, Option<Vec<u8>>)],
}

/// The records for one key's change, with versions from `link`.
pub(super) fn records_for(link: &SourceLink, change: &KeyChange<'_>, out: &mut Vec<OutboxRecord>) {
    let record = |op| OutboxRecord {
        db: change.db as u32,
        key: Bytes::copy_from_slice(change.key),
        version: link.next_version(),
        op,
    };
    let Some(entry) = change.entry else {
        link.take_cache_deadline(change.db, change.key);
        out.push(record(Op::DeleteKey));
        return;
    };
    let expire_at_ms = link.shipped_expiry(change.db, change.key, entry.expire_at());
    let kind = match entry.value() {
        ValueRef::Str(value) => {
            out.push(record(Op::PutString {
                value: Bytes::copy_from_slice(value),
                expire_at_ms,
            }));
            return;
        }
        ValueRef::List(_) => CollectionKind::List,
        ValueRef::Hash(_) => CollectionKind::Hash,
        ValueRef::Set(_) => CollectionKind::Set,
        ValueRef::ZSet(_) => CollectionKind::ZSet,
    };
    if change.whole {
        out.push(record(Op::DeleteKey));
        let mut put = |element: Bytes, value: Bytes| {
            out.push(record(Op::PutElement {
                kind,
                element,
                value,
            }))
        };
        match entry.value() {
            ValueRef::List(list) => all_list(list, &mut put),
            ValueRef::Hash(hash) => all_hash(hash, &mut put),
            ValueRef::Set(set) => all_set(set, &mut put),
            ValueRef::ZSet(zset) => all_zset(zset, &mut put),
            ValueRef::Str(_) => {}
        }
    } else {
        for (sled_key, record_bytes) in change.elements {
            let Some(element) = element_of(sled_key) else {
                continue;
            };
            let op = match record_bytes {
                Some(raw) => {
                    let payload = raw.get(4..).unwrap_or_default();
                    let value = if kind == CollectionKind::ZSet {
                        match decode_score(payload) {
                            Ok(score) => score_text(score),
                            Err(_) => continue,
                        }
                    } else {
                        Bytes::copy_from_slice(payload)
                    };
                    Op::PutElement {
                        kind,
                        element,
                        value,
                    }
                }
                None => Op::DeleteElement { kind, element },
            };
            out.push(record(op));
        }
    }
    out.push(record(Op::SetExpire { expire_at_ms }));
}

/// The element a warm-tier element key names: `e`, generation (8 bytes),
/// family tag, then the field, member or list position.
fn element_of(sled_key: &[u8]) -> Option<Bytes> {
    let tag = *sled_key.get(9)?;
    let suffix = sled_key.get(10..)?;
    matches!(
        tag,
        TAG_HASH_FIELD | TAG_SET_MEMBER | TAG_ZSET_MEMBER | TAG_LIST_INDEX
    )
    .then(|| Bytes::copy_from_slice(suffix))
}

/// A score as the `elements.value` column holds it: the shortest text that
/// reads back as the same double (`inf`, `-inf` included).
pub fn score_text(score: f64) -> Bytes {
    if score.fract() == 0.0 && score.abs() < 1e15 {
        Bytes::from((score as i64).to_string())
    } else {
        Bytes::from(format!("{score:?}"))
    }
}

fn all_list(list: &List, put: &mut impl FnMut(Bytes, Bytes)) {
    let head = list.head();
    for (i, item) in list.iter().enumerate() {
        let position = head + i as u64;
        put(
            Bytes::copy_from_slice(&position.to_be_bytes()),
            Bytes::copy_from_slice(item),
        );
    }
}

fn all_hash(hash: &Hash, put: &mut impl FnMut(Bytes, Bytes)) {
    for (field, value) in hash.iter() {
        put(Bytes::copy_from_slice(field), Bytes::copy_from_slice(value));
    }
}

fn all_set(set: &Set, put: &mut impl FnMut(Bytes, Bytes)) {
    for member in set.iter() {
        put(Bytes::copy_from_slice(member), Bytes::new());
    }
}

fn all_zset(zset: &ZSet, put: &mut impl FnMut(Bytes, Bytes)) {
    for (member, score) in zset.iter() {
        put(Bytes::copy_from_slice(member), score_text(score));
    }
}
