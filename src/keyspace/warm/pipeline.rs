//! The write path of the warm tier: commands append records to the journal
//! buffer (in memory, under one short lock) and carry on; a writer thread
//! puts the buffer in the journal file and syncs it as `appendfsync` asks;
//! an applier thread applies the same bytes to sled, in order.
//!
//! Until the applier has caught up, the newest state of a key written
//! through the journal is in the overlay, which reads consult before sled.
//! Reads of a whole database (DBSIZE, SCAN, KEYS, RANDOMKEY, the expiry
//! sweep) wait for the applier instead: they are rare, and the backlog is
//! bounded, so the wait is short.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::journal::{self, Op, Segment};
use super::FsyncPolicy;

/// Under `everysec`, writers wait for the writer thread once it is this far
/// behind, so a crash never loses much more than the promised second.
const MAX_SYNC_LAG_MS: u64 = 2_000;
const EVERYSEC_INTERVAL: Duration = Duration::from_secs(1);
/// Without a reason to hurry, the writer thread gathers this long's records
/// into one write: one system call for many commands, as Redis's AOF does
/// once per event-loop turn.
const GATHER: Duration = Duration::from_millis(1);
/// The applier may trail the journal by this many sled writes (a record
/// counts each key and element it changes: an MSET of ten keys is ten) or
/// bytes; beyond that, writers wait until it is back within both bounds,
/// no further, so a full backlog slows writers to the applier's pace
/// instead of stopping them while it drains (reads of whole databases wait
/// for it anyway, and a crash replays at most this much).
const MAX_BACKLOG_WRITES: u64 = 100_000;
const MAX_BACKLOG_BYTES: u64 = 8 << 20;
/// A journal file is closed and a new one begun past this size; closed files
/// are deleted once a sled flush covers them.
const SEGMENT_BYTES: u64 = 8 << 20;

/// What a connection waits for before its replies leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurableWait {
    /// Every record up to this sequence number synced to the journal file.
    Writes(u64),
    /// A sync that started after the request (SAVE).
    Flush(u64),
    /// The applier's backlog is back within its bounds, and every record up
    /// to this sequence number (0: none) synced to the journal file.
    Backlog(u64),
}

/// What the writer and applier threads have done so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Durable {
    /// Records covered by the last completed sync.
    pub writes: u64,
    /// Syncs completed.
    pub flushes: u64,
    /// Records applied to sled.
    pub applied: u64,
    pub failed: bool,
}

/// A key's newest state not yet in sled: (sequence number, envelope or
/// `None` when deleted).
type OverlayEntry = (u64, Option<Bytes>);

struct Pending {
    /// Encoded records not yet taken by the writer thread.
    buf: Vec<u8>,
    /// Sequence number of `buf`'s first record.
    buf_first: u64,
    /// Sequence number the next record gets.
    next_seq: u64,
    /// Per database: keys whose newest record the applier has not reached.
    overlay: Vec<HashMap<Box<[u8]>, OverlayEntry>>,
    applied: u64,
    /// The highest record a connection waits to see synced.
    sync_wanted: u64,
    /// A sync was asked for whatever is pending (SAVE, BGSAVE, shutdown).
    forced: bool,
    /// Syncs the writer has started; a forced request waits for the next.
    syncs_started: u64,
    /// Someone waits for the applier: write now, do not gather.
    urgent: bool,
}

/// A stretch of the journal on its way to the appliers.
pub struct Chunk {
    pub first_seq: u64,
    pub bytes: Vec<u8>,
    /// Appliers done with it; the last one reports it applied.
    pub finished: std::sync::atomic::AtomicUsize,
}

pub struct Pipeline {
    policy: AtomicU8,
    pending: Mutex<Pending>,
    wake_writer: Condvar,
    applied_cv: Condvar,
    wake_checkpointer: Condvar,
    durable_tx: watch::Sender<Durable>,
    /// Copies of `next_seq - 1` and `applied`, and the bytes appended but
    /// not applied, readable without the lock.
    appended: AtomicU64,
    applied_fast: AtomicU64,
    backlog_bytes: AtomicU64,
    backlog_writes: AtomicU64,
    stop: AtomicBool,
    pub last_sync_ms: AtomicU64,
    /// Unix ms of the oldest record not yet synced (0: none).
    pub oldest_unsynced_ms: AtomicU64,
    /// Closed journal files: (path, last sequence number in it).
    closed_segments: Mutex<Vec<(PathBuf, u64)>>,
}

fn now_ms() -> u64 {
    crate::keyspace::unix_micros() / 1000
}

impl Pipeline {
    /// `next_seq`: the sequence number the first new record gets (every
    /// earlier one is in sled).
    pub fn new(policy: FsyncPolicy, databases: usize, next_seq: u64) -> Pipeline {
        let applied = next_seq.saturating_sub(1);
        let (durable_tx, _) = watch::channel(Durable {
            writes: applied,
            applied,
            ..Durable::default()
        });
        Pipeline {
            policy: AtomicU8::new(policy.code()),
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                buf_first: next_seq,
                next_seq,
                overlay: (0..databases).map(|_| HashMap::new()).collect(),
                applied,
                sync_wanted: 0,
                forced: false,
                syncs_started: 0,
                urgent: false,
            }),
            wake_writer: Condvar::new(),
            applied_cv: Condvar::new(),
            wake_checkpointer: Condvar::new(),
            durable_tx,
            appended: AtomicU64::new(applied),
            applied_fast: AtomicU64::new(applied),
            backlog_bytes: AtomicU64::new(0),
            backlog_writes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            last_sync_ms: AtomicU64::new(now_ms()),
            oldest_unsynced_ms: AtomicU64::new(0),
            closed_segments: Mutex::new(Vec::new()),
        }
    }

    pub fn policy(&self) -> FsyncPolicy {
        FsyncPolicy::from_code(self.policy.load(Ordering::Relaxed))
    }

    pub fn set_policy(&self, policy: FsyncPolicy) {
        self.policy.store(policy.code(), Ordering::Relaxed);
        self.wake_writer.notify_one();
    }

    pub fn durable(&self) -> Durable {
        *self.durable_tx.borrow()
    }

    /// Appends one record. `state`: for a record about keys, each key's new
    /// state, which reads see from now on. Returns the record's length.
    pub fn append(&self, op: &Op<'_>, with_state: bool) -> usize {
        let mut pending = self.pending.lock();
        let was_empty = pending.buf.is_empty();
        let start = pending.buf.len();
        op.encode(&mut pending.buf);
        let len = pending.buf.len() - start;
        let seq = pending.next_seq;
        pending.next_seq += 1;
        self.appended.store(seq, Ordering::Release);
        self.backlog_bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.backlog_writes
            .fetch_add(op.sled_writes(), Ordering::Relaxed);
        if with_state {
            let pending = &mut *pending;
            let mut set = |db: u32, key: &[u8], raw: Option<&[u8]>| {
                let Some(overlay) = pending.overlay.get_mut(db as usize) else {
                    return;
                };
                let state = (seq, raw.map(Bytes::copy_from_slice));
                match overlay.get_mut(key) {
                    Some(slot) => *slot = state,
                    None => {
                        overlay.insert(key.into(), state);
                    }
                }
            };
            match op {
                Op::Put { db, key, raw } => set(*db, key, Some(raw)),
                Op::Delete { db, key } => set(*db, key, None),
                Op::Batch { db, changes, .. } => {
                    for (key, raw) in changes {
                        set(*db, key, *raw);
                    }
                }
                _ => {}
            }
        }
        drop(pending);
        if was_empty {
            self.wake_writer.notify_one();
        }
        if self.oldest_unsynced_ms.load(Ordering::Relaxed) == 0 {
            let _ = self.oldest_unsynced_ms.compare_exchange(
                0,
                now_ms().max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        len
    }

    /// A key's newest state if the applier has not reached it yet:
    /// `Some(None)` when it was deleted.
    pub fn overlay(&self, db: usize, key: &[u8]) -> Option<Option<Bytes>> {
        // Everything appended is applied: sled has the newest state of every
        // key. (The caller holds the key's shard lock, so its last write has
        // published its sequence number before this reads it.)
        if self.appended.load(Ordering::Acquire) == self.applied_fast.load(Ordering::Acquire) {
            return None;
        }
        let pending = self.pending.lock();
        let (_, raw) = pending.overlay.get(db)?.get(key)?;
        Some(raw.clone())
    }

    /// Blocks until every record appended so far is in sled (or the
    /// pipeline has stopped: after `close`, nothing applies any more).
    pub fn catch_up(&self) {
        let mut pending = self.pending.lock();
        let target = pending.next_seq - 1;
        while pending.applied < target
            && !self.durable().failed
            && !self.stop.load(Ordering::SeqCst)
        {
            pending.urgent = true;
            self.wake_writer.notify_one();
            self.applied_cv
                .wait_for(&mut pending, Duration::from_millis(50));
        }
    }

    /// What a write batch must wait for before its replies leave, if
    /// anything: under `always` the sync covering it; under `everysec` a
    /// sync only when syncing has fallen behind; the applier when its
    /// backlog is full. `forced` (SAVE) asks for a sync whatever the policy.
    pub fn target(&self, forced: bool) -> Option<DurableWait> {
        let policy = self.policy();
        if !forced && policy != FsyncPolicy::Always {
            // The common case, without the lock every append takes.
            if !self.sync_lagging(policy) && !self.backlog_full() {
                return None;
            }
        }
        let mut pending = self.pending.lock();
        if forced {
            pending.forced = true;
            let ticket = pending.syncs_started + 1;
            self.wake_writer.notify_one();
            return Some(DurableWait::Flush(ticket));
        }
        let appended = pending.next_seq - 1;
        let sync_wanted = appended > self.durable().writes
            && (policy == FsyncPolicy::Always || self.sync_lagging(policy));
        if sync_wanted && pending.sync_wanted < appended {
            pending.sync_wanted = appended;
            self.wake_writer.notify_one();
        }
        if self.backlog_full() {
            pending.urgent = true;
            self.wake_writer.notify_one();
            return Some(DurableWait::Backlog(if sync_wanted { appended } else { 0 }));
        }
        sync_wanted.then_some(DurableWait::Writes(appended))
    }

    /// Under `everysec`: the oldest record not yet synced has waited past
    /// the bound, so writers must wait for a sync.
    fn sync_lagging(&self, policy: FsyncPolicy) -> bool {
        let oldest = self.oldest_unsynced_ms.load(Ordering::Relaxed);
        policy == FsyncPolicy::EverySec
            && oldest != 0
            && now_ms().saturating_sub(oldest) > MAX_SYNC_LAG_MS
    }

    fn backlog_full(&self) -> bool {
        self.backlog_writes.load(Ordering::Relaxed) > MAX_BACKLOG_WRITES
            || self.backlog_bytes.load(Ordering::Relaxed) > MAX_BACKLOG_BYTES
    }

    pub async fn wait(&self, wait: DurableWait) {
        let mut durable = self.durable_tx.subscribe();
        let _ = durable
            .wait_for(|state| {
                state.failed
                    || match wait {
                        DurableWait::Writes(seq) => state.writes >= seq,
                        DurableWait::Flush(ticket) => state.flushes >= ticket,
                        DurableWait::Backlog(seq) => state.writes >= seq && !self.backlog_full(),
                    }
            })
            .await;
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _pending = self.pending.lock();
        self.wake_writer.notify_one();
        self.wake_checkpointer.notify_one();
    }

    /// Whether records appended so far must be synced now: a connection
    /// waits for them, or (`always`) any are unsynced, or (`everysec`) the
    /// last sync is a second old.
    fn sync_due(&self, pending: &Pending, policy: FsyncPolicy) -> bool {
        let synced = self.durable().writes;
        pending.next_seq - 1 > synced
            && (pending.sync_wanted > synced
                || match policy {
                    FsyncPolicy::Always => true,
                    FsyncPolicy::EverySec => {
                        now_ms().saturating_sub(self.last_sync_ms.load(Ordering::Relaxed))
                            >= EVERYSEC_INTERVAL.as_millis() as u64
                    }
                    FsyncPolicy::No => false,
                })
    }

    /// The writer thread: moves the buffer to the journal file, syncs it as
    /// the policy asks, and hands it to the applier. Returns when stopped,
    /// after writing and syncing everything.
    pub fn run_writer(
        &self,
        mut segment: Segment,
        journal_dir: PathBuf,
        to_appliers: Vec<mpsc::Sender<Arc<Chunk>>>,
        on_error: impl Fn(String),
    ) {
        let mut spare = Vec::new();
        let mut last_write = Instant::now();
        loop {
            let (chunk, last_seq, sync, ticket, stopping) = {
                let mut pending = self.pending.lock();
                loop {
                    let stopping = self.stop.load(Ordering::SeqCst);
                    let policy = self.policy();
                    let sync_due = self.sync_due(&pending, policy);
                    let has_data = !pending.buf.is_empty();
                    if pending.urgent && !has_data {
                        // Everything is on its way to the applier already.
                        pending.urgent = false;
                    }
                    let must = stopping || pending.forced || sync_due || pending.urgent;
                    let may = has_data
                        && (policy == FsyncPolicy::Always || last_write.elapsed() >= GATHER);
                    if must || may {
                        break;
                    }
                    let timeout = if pending.buf.is_empty() {
                        EVERYSEC_INTERVAL
                    } else {
                        GATHER.saturating_sub(last_write.elapsed())
                    };
                    self.wake_writer.wait_for(&mut pending, timeout);
                }
                let stopping = self.stop.load(Ordering::SeqCst);
                let appended = pending.next_seq - 1;
                let sync = stopping || pending.forced || self.sync_due(&pending, self.policy());
                let ticket = if sync {
                    pending.forced = false;
                    pending.syncs_started += 1;
                    Some(pending.syncs_started)
                } else {
                    None
                };
                pending.urgent = false;
                let chunk = Chunk {
                    first_seq: pending.buf_first,
                    bytes: std::mem::replace(&mut pending.buf, std::mem::take(&mut spare)),
                    finished: Default::default(),
                };
                pending.buf_first = pending.next_seq;
                (chunk, appended, sync, ticket, stopping)
            };
            last_write = Instant::now();
            let began = now_ms();
            if !chunk.bytes.is_empty() {
                if let Err(error) = segment.append(&chunk.bytes) {
                    on_error(format!("cannot write the journal: {error}"));
                    self.durable_tx.send_modify(|state| state.failed = true);
                }
                if segment.len >= SEGMENT_BYTES {
                    match segment
                        .sync()
                        .and_then(|_| Segment::create(&journal_dir, last_seq + 1))
                    {
                        Ok(next) => {
                            let old = std::mem::replace(&mut segment, next);
                            self.closed_segments.lock().push((old.path, last_seq));
                        }
                        Err(error) => on_error(format!("cannot start a journal file: {error}")),
                    }
                }
            }
            if sync {
                match segment.sync() {
                    Ok(()) => {
                        let unsynced_left = self.pending.lock().next_seq - 1 > last_seq;
                        self.oldest_unsynced_ms.store(
                            if unsynced_left { began.max(1) } else { 0 },
                            Ordering::Relaxed,
                        );
                        self.last_sync_ms.store(now_ms(), Ordering::Relaxed);
                        self.durable_tx.send_modify(|state| {
                            state.writes = state.writes.max(last_seq);
                            state.flushes = state.flushes.max(ticket.unwrap_or(0));
                            state.failed = false;
                        });
                    }
                    Err(error) => {
                        on_error(format!("cannot sync the journal: {error}"));
                        self.durable_tx.send_modify(|state| state.failed = true);
                    }
                }
            }
            if chunk.bytes.is_empty() {
                spare = chunk.bytes;
            } else {
                let chunk = Arc::new(chunk);
                for to_applier in &to_appliers {
                    if to_applier.send(chunk.clone()).is_err() {
                        return;
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Called by the applier once the records of `chunk` are in sled:
    /// the overlay forgets the states they gave (unless a newer record
    /// replaced them) and waiters are told.
    pub fn applied(&self, chunk: &Chunk) {
        let mut count = 0u64;
        let mut writes = 0u64;
        let mut pending = self.pending.lock();
        for (i, op) in journal::Records::new(&chunk.bytes).enumerate() {
            let seq = chunk.first_seq + i as u64;
            count += 1;
            writes += op.sled_writes();
            for (db, key) in op.keys() {
                let Some(overlay) = pending.overlay.get_mut(db as usize) else {
                    continue;
                };
                if overlay.get(key).is_some_and(|(at, _)| *at == seq) {
                    overlay.remove(key);
                }
            }
        }
        let applied = chunk.first_seq + count.saturating_sub(1);
        if count > 0 {
            pending.applied = pending.applied.max(applied);
            self.applied_fast.store(pending.applied, Ordering::Release);
        }
        self.backlog_bytes
            .fetch_sub(chunk.bytes.len() as u64, Ordering::Relaxed);
        self.backlog_writes.fetch_sub(writes, Ordering::Relaxed);
        self.applied_cv.notify_all();
        drop(pending);
        if count > 0 {
            self.durable_tx
                .send_modify(|state| state.applied = state.applied.max(applied));
        }
    }

    /// Records applied so far.
    pub fn applied_seq(&self) -> u64 {
        self.pending.lock().applied
    }

    /// Closed journal files whose every record is at or before `seq`.
    pub fn take_covered_segments(&self, seq: u64) -> Vec<PathBuf> {
        let mut closed = self.closed_segments.lock();
        let (covered, kept): (Vec<_>, Vec<_>) =
            closed.drain(..).partition(|(_, last)| *last <= seq);
        *closed = kept;
        covered.into_iter().map(|(path, _)| path).collect()
    }

    /// Waits up to `timeout` unless stopping; true once stopped.
    pub fn pause(&self, timeout: Duration) -> bool {
        let mut pending = self.pending.lock();
        if !self.stop.load(Ordering::SeqCst) {
            self.wake_checkpointer.wait_for(&mut pending, timeout);
        }
        self.stop.load(Ordering::SeqCst)
    }

    /// Marks a sync as done without the writer (the final flush at close).
    pub fn published(&self, flushes: u64) {
        let appended = self.pending.lock().next_seq - 1;
        self.last_sync_ms.store(now_ms(), Ordering::Relaxed);
        self.durable_tx.send_modify(|state| {
            state.writes = state.writes.max(appended);
            state.flushes = state.flushes.max(flushes);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &[u8]) -> Op<'_> {
        Op::Put {
            db: 0,
            key,
            raw: b"v",
        }
    }

    fn chunk_of(first_seq: u64, ops: &[Op<'_>]) -> Chunk {
        let mut bytes = Vec::new();
        for op in ops {
            op.encode(&mut bytes);
        }
        Chunk {
            first_seq,
            bytes,
            finished: Default::default(),
        }
    }

    #[test]
    fn a_full_backlog_holds_writers_only_until_it_is_within_bounds() {
        let pipeline = Pipeline::new(FsyncPolicy::No, 1, 1);
        for _ in 0..MAX_BACKLOG_WRITES {
            pipeline.append(&put(b"k"), false);
        }
        assert_eq!(pipeline.target(false), None);
        pipeline.append(&put(b"k"), false);
        let wait = pipeline.target(false);
        assert_eq!(wait, Some(DurableWait::Backlog(0)));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let waited = |pipeline: &Pipeline| {
            runtime.block_on(async {
                tokio::time::timeout(Duration::from_millis(50), pipeline.wait(wait.unwrap()))
                    .await
                    .is_ok()
            })
        };
        assert!(!waited(&pipeline), "the backlog is still over its bound");
        // One record applied is enough: the writer goes on at the
        // applier's pace, not after half the backlog has drained.
        pipeline.applied(&chunk_of(1, &[put(b"k")]));
        assert!(waited(&pipeline));
        assert_eq!(pipeline.target(false), None);
    }

    #[test]
    fn the_backlog_counts_every_key_a_record_changes() {
        let pipeline = Pipeline::new(FsyncPolicy::No, 1, 1);
        let keys: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'k', i]).collect();
        let mset = Op::Batch {
            db: 0,
            changes: keys
                .iter()
                .map(|key| (key.as_slice(), Some(&b"v"[..])))
                .collect(),
            elements: Vec::new(),
            outbox: None,
        };
        assert_eq!(mset.sled_writes(), 10);
        for _ in 0..MAX_BACKLOG_WRITES / 10 {
            pipeline.append(&mset, false);
        }
        assert_eq!(pipeline.target(false), None);
        pipeline.append(&mset, false);
        assert_eq!(pipeline.target(false), Some(DurableWait::Backlog(0)));
    }

    #[test]
    fn always_under_a_full_backlog_still_waits_for_its_sync() {
        let pipeline = Pipeline::new(FsyncPolicy::Always, 1, 1);
        for _ in 0..=MAX_BACKLOG_WRITES {
            pipeline.append(&put(b"k"), false);
        }
        assert_eq!(
            pipeline.target(false),
            Some(DurableWait::Backlog(MAX_BACKLOG_WRITES + 1))
        );
    }
}
