//! The warm tier: every live key of every database, in sled under `dir`.
//!
//! A write is durable once its record is in the journal ([`journal`]), as
//! Redis's AOF: commands append to an in-memory buffer and go on, a writer
//! thread writes and syncs the journal file as `appendfsync` asks, and an
//! applier thread brings sled up to date from the same bytes ([`pipeline`]).
//! sled stays the index that answers reads, SCAN and DBSIZE; a key written
//! but not yet applied is read from the pipeline's overlay. A checkpointer
//! thread flushes sled and deletes the journal files it covers; after a
//! crash, the journal left is replayed into sled before the server answers.
//!
//! This module also owns the free-space guard that turns a filling disk into
//! `-MISCONF` before sled meets it, and the per-database figures (`DBSIZE`
//! without a scan). The keyspace calls it under the shard lock of the key
//! concerned, so the hot and warm copies of a key change together.
//!
//! Each database is one sled tree; `strata:meta` maps database numbers to
//! tree names, so FLUSHDB and SWAPDB are one atomic record change. The record
//! layout is in [`record`].

pub mod collections;
mod journal;
mod pipeline;
mod record;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use smallvec::SmallVec;

pub use collections::{CollectionMeta, Element, Kind};
use journal::Op;
pub use pipeline::DurableWait;
use pipeline::{Chunk, Pipeline};
pub use record::{is_collection, KIND_HASH, KIND_LIST, KIND_SET, KIND_STRING, KIND_ZSET};
use record::{Header, EXPIRY_PREFIX, KEY_PREFIX};

const META_TREE: &[u8] = b"strata:meta";
/// Writes waiting to be shipped to the source: outbox sequence (u64 BE) →
/// the write's records (`source::outbox`).
const OUTBOX_TREE: &[u8] = b"strata:outbox";
/// Records the source refused (poison): outbox sequence (u64 BE) →
/// reason length (u32 LE), reason, records.
const DEAD_LETTER_TREE: &[u8] = b"strata:dead-letters";
const DBMAP_KEY: &[u8] = b"dbmap";
/// Present only between a clean close and the next open: the figures it
/// holds are then exact and no recount is needed.
const CLEAN_KEY: &[u8] = b"clean";
/// The sequence number of the last journal record whose effect is in sled
/// without being safe to replay (FLUSHDB, SWAPDB); stored in the same batch
/// as the database map, and replay starts after it.
const JOURNAL_KEY: &[u8] = b"journal";
/// Threads applying the journal to sled. Records of one key always go to
/// the same one, so each key's changes apply in order; a record about
/// several keys or databases waits for all of them (a barrier).
const APPLIERS: usize = 2;
/// Replay flushes sled after this many records.
const REPLAY_FLUSH_EVERY: u64 = 1_000;
/// The sequence number of the last record applied before a checkpoint's
/// flush: sled holds it and every earlier one.
const CHECKPOINT_KEY: &[u8] = b"checkpoint";
/// How often the checkpointer flushes sled so journal files can go.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// The highest collection generation sled's records may name, stored at
/// each checkpoint (generations after it are in the journal, seen by replay).
const GENERATION_KEY: &[u8] = b"generation";
/// Element records of dropped collections deleted per checkpoint and tree.
const GARBAGE_PER_CHECKPOINT: usize = 20_000;
/// An applier takes the chunks waiting for it together, up to about this
/// many bytes: one gathering of their records, one report when applied.
const GROUP_BYTES: usize = 1 << 20;

/// Redis's `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    EverySec,
    No,
}

impl FsyncPolicy {
    pub fn parse(name: &str) -> Option<FsyncPolicy> {
        match name.to_ascii_lowercase().as_str() {
            "always" => Some(FsyncPolicy::Always),
            "everysec" => Some(FsyncPolicy::EverySec),
            "no" => Some(FsyncPolicy::No),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> FsyncPolicy {
        match code {
            0 => FsyncPolicy::Always,
            1 => FsyncPolicy::EverySec,
            _ => FsyncPolicy::No,
        }
    }
}

pub struct WarmOptions {
    pub dir: PathBuf,
    pub databases: usize,
    pub cache_size: u64,
    pub fsync: FsyncPolicy,
    pub max_disk: u64,
    pub min_free_disk: u64,
}

/// A key's record to store.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub kind: u8,
    pub expire_at: Option<u64>,
    pub payload: &'a [u8],
}

/// A key's record as read back from disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub kind: u8,
    pub expire_at: Option<u64>,
    pub version: u64,
    pub payload: Bytes,
}

/// One database's tree and its figures (kept in memory, exact after a clean
/// close, recounted after a crash).
struct DbTree {
    name: Vec<u8>,
    tree: sled::Tree,
    keys: AtomicI64,
    volatile: AtomicI64,
    bytes: AtomicI64,
}

impl DbTree {
    fn new(name: Vec<u8>, tree: sled::Tree) -> DbTree {
        DbTree {
            name,
            tree,
            keys: AtomicI64::new(0),
            volatile: AtomicI64::new(0),
            bytes: AtomicI64::new(0),
        }
    }

    /// Adds `[keys, keys with a deadline, bytes]` to the figures.
    fn add(&self, [keys, volatile, bytes]: Figures) {
        self.keys.fetch_add(keys, Ordering::Relaxed);
        self.volatile.fetch_add(volatile, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn figures(&self) -> Figures {
        [
            self.keys.load(Ordering::Relaxed),
            self.volatile.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        ]
    }

    /// Counts keys, keys with a deadline and record bytes by reading every
    /// key record; returns the highest version seen.
    fn recount(&self) -> u64 {
        let (mut figures, mut version) = ([0; 3], 0);
        for (raw_key, raw) in self.tree.scan_prefix([KEY_PREFIX]).flatten() {
            let header = record::peek_header(&raw).ok();
            version = version.max(header.map_or(0, |h| h.version));
            let deadline = header.and_then(|h| h.expire_at);
            figures = plus(figures, footprint(raw_key.len(), raw.len(), deadline));
        }
        for (raw_key, raw) in self.tree.scan_prefix([collections::ELEMENT]).flatten() {
            figures[2] += (raw_key.len() + raw.len()) as i64;
        }
        let [keys, volatile, bytes] = figures;
        self.keys.store(keys, Ordering::Relaxed);
        self.volatile.store(volatile, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        version
    }
}

/// A tree's figures or a change of them: [keys, keys with a deadline, bytes].
type Figures = [i64; 3];

/// What one stored record counts for in its tree's figures.
fn footprint(record_key_len: usize, record_len: usize, deadline: Option<u64>) -> Figures {
    [
        1,
        i64::from(deadline.is_some()),
        (record_key_len + record_len) as i64,
    ]
}

fn plus(a: Figures, b: Figures) -> Figures {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn minus(a: Figures, b: Figures) -> Figures {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// The deadline of a stored record, read without its CRC check (the record
/// is being replaced or removed).
fn stored_deadline(raw: &[u8]) -> Option<u64> {
    record::peek_header(raw).ok().and_then(|h| h.expire_at)
}

/// Figures only the warm tier knows.
#[derive(Debug, Default)]
pub struct WarmCounters {
    pub crc_errors: AtomicU64,
    pub expired: AtomicU64,
    pub evictions: AtomicU64,
}

/// A snapshot for INFO and CACHE.STATS.
#[derive(Debug, Default, Clone, Copy)]
pub struct WarmFigures {
    pub keys: u64,
    pub bytes: u64,
    pub disk_bytes: u64,
    pub crc_errors: u64,
    pub expired: u64,
    pub evictions: u64,
    /// Unix ms of the last completed sync of the journal.
    pub last_flush_ms: u64,
    /// Age in ms of the oldest write not yet synced (0 = all synced).
    pub flush_lag_ms: u64,
    pub flushes: u64,
}

/// sled and what is kept beside it: the applier, the replay and the readers
/// share it.
struct Store {
    db: sled::Db,
    meta: sled::Tree,
    dbs: Box<[RwLock<Arc<DbTree>>]>,
    /// Trees of databases beyond the configured count (a restart with fewer
    /// `databases`): kept on disk untouched, and in the map.
    spare_trees: Vec<Vec<u8>>,
    counters: WarmCounters,
    guard: DiskGuard,
    /// The highest collection generation applied to sled.
    max_generation: AtomicU64,
    outbox: sled::Tree,
    dead_letters: sled::Tree,
    /// Every outbox sequence up to this one is in the source: the applier
    /// does not store those records (the drainer shipped them from memory
    /// before the applier reached them).
    shipped: AtomicU64,
    /// Outbox records the appliers reached that are neither shipped nor in
    /// `outbox` yet. The journal keeps them until a checkpoint lets it go,
    /// and the checkpoint first stores those still unshipped: most writes
    /// ship within milliseconds, so they never cost sled an insert and a
    /// remove (a quarter of strata's CPU per `through` write, measured).
    unstored_outbox: Mutex<BTreeMap<u64, Vec<u8>>>,
    /// Whether `outbox` may hold records: a shipment scans it only then.
    /// Changed under `unstored_outbox`'s lock.
    outbox_on_disk: AtomicBool,
}

pub struct Warm {
    store: Arc<Store>,
    pipeline: Arc<Pipeline>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    version: AtomicU64,
    /// The last collection generation handed out.
    generation: AtomicU64,
    /// Bytes appended to the journal since open.
    journal_bytes: AtomicU64,
    max_disk: AtomicU64,
    closed: AtomicBool,
}

impl Warm {
    /// Opens (or creates) the warm tier under `options.dir`, replaying what
    /// the journal holds beyond sled. The error says what could not be
    /// opened and why, for the operator.
    pub fn open(options: &WarmOptions) -> Result<Warm, String> {
        let fail = |what: String| {
            format!(
                "cannot open the warm tier at {}: {what}",
                options.dir.display()
            )
        };
        std::fs::create_dir_all(&options.dir).map_err(|e| fail(e.to_string()))?;
        let config = sled::Config::new()
            .path(&options.dir)
            .cache_capacity(options.cache_size)
            .mode(sled::Mode::HighThroughput)
            // The journal is the durability point: sled is flushed by the
            // checkpointer, never on its own timer.
            .flush_every_ms(None);
        // sled's recovery asserts on some damage instead of returning an
        // error: a corrupt file must stop strata with a message, not a panic.
        let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
            .map_err(|_| fail("the files are corrupt (sled's recovery failed)".into()))?
            .map_err(|e| fail(describe_sled_error(&e)))?;
        let meta = db
            .open_tree(META_TREE)
            .map_err(|e| fail(describe_sled_error(&e)))?;
        let outbox = db
            .open_tree(OUTBOX_TREE)
            .map_err(|e| fail(describe_sled_error(&e)))?;
        let dead_letters = db
            .open_tree(DEAD_LETTER_TREE)
            .map_err(|e| fail(describe_sled_error(&e)))?;

        let mut names = match meta.get(DBMAP_KEY).map_err(|e| fail(e.to_string()))? {
            Some(raw) => {
                decode_names(&raw).ok_or_else(|| fail("the database map is corrupt".into()))?
            }
            None => Vec::new(),
        };
        let seed = crate::keyspace::unix_micros();
        while names.len() < options.databases.max(1) {
            names.push(format!("db:{}:{seed}", names.len()).into_bytes());
        }
        let mut trees = Vec::with_capacity(names.len());
        for name in &names[..options.databases.max(1)] {
            let tree = db.open_tree(name).map_err(|e| fail(e.to_string()))?;
            trees.push(Arc::new(DbTree::new(name.clone(), tree)));
        }
        let mut applied_before = 0;
        for key in [JOURNAL_KEY, CHECKPOINT_KEY] {
            if let Some(raw) = meta.get(key).map_err(|e| fail(e.to_string()))? {
                let seq =
                    decode_seq(&raw).ok_or_else(|| fail("the journal mark is corrupt".into()))?;
                applied_before = applied_before.max(seq);
            }
        }
        let clean = meta.get(CLEAN_KEY).map_err(|e| fail(e.to_string()))?;
        let stored_generation = match meta.get(GENERATION_KEY).map_err(|e| fail(e.to_string()))? {
            Some(raw) => decode_seq(&raw)
                .ok_or_else(|| fail("the collection generation mark is corrupt".into()))?,
            None => 0,
        };
        let guard = DiskGuard::new(options.dir.clone(), options.min_free_disk);
        let outbox_on_disk = AtomicBool::new(!outbox.is_empty());
        let store = Store {
            spare_trees: names[trees.len()..].to_vec(),
            dbs: trees.into_iter().map(RwLock::new).collect(),
            db,
            meta,
            counters: WarmCounters::default(),
            guard,
            max_generation: AtomicU64::new(stored_generation),
            outbox,
            dead_letters,
            shipped: AtomicU64::new(0),
            unstored_outbox: Mutex::new(BTreeMap::new()),
            outbox_on_disk,
        };

        let journal_dir = journal::dir(&options.dir);
        std::fs::create_dir_all(&journal_dir).map_err(|e| fail(e.to_string()))?;
        let (last_seq, replayed) = store
            .replay(&journal_dir, applied_before)
            .map_err(|e| fail(format!("cannot replay the journal: {e}")))?;

        // Versions count up from the highest on disk, so they stay short
        // (LEB128) and still order every write of a key across restarts.
        let mut version = 0;
        match clean.as_deref().and_then(decode_clean) {
            Some((saved_version, figures)) if replayed == 0 => {
                version = version.max(saved_version);
                for tree in store.dbs.iter() {
                    let tree = tree.read();
                    if let Some((_, f)) = figures.iter().find(|(name, _)| *name == tree.name) {
                        tree.keys.store(f[0], Ordering::Relaxed);
                        tree.volatile.store(f[1], Ordering::Relaxed);
                        tree.bytes.store(f[2], Ordering::Relaxed);
                    }
                }
            }
            _ => {
                for tree in store.dbs.iter() {
                    version = version.max(tree.read().recount());
                }
            }
        }
        // From here on the figures change with every write: a crash must
        // find no marker and recount.
        let names = store.names();
        store
            .meta
            .insert(DBMAP_KEY, encode_names(&names))
            .and_then(|_| store.meta.remove(CLEAN_KEY))
            .map_err(|e| fail(e.to_string()))?;
        store.db.flush().map_err(|e| fail(e.to_string()))?;
        // Everything replayed is in sled now, and flushed.
        for (_, path) in journal::segments(&journal_dir).map_err(|e| fail(e.to_string()))? {
            std::fs::remove_file(&path).map_err(|e| fail(e.to_string()))?;
        }
        drop_unmapped_trees(&store.db, &names);
        store.guard.refresh();

        let next_seq = last_seq.max(applied_before) + 1;
        let segment = journal::Segment::create(&journal_dir, next_seq)
            .map_err(|e| fail(format!("cannot create the journal: {e}")))?;
        let pipeline = Arc::new(Pipeline::new(options.fsync, store.dbs.len(), next_seq));
        // Above every generation on disk (the checkpoint's mark and what
        // replay applied) and, across a lost mark, the clock.
        let generation = store
            .max_generation
            .load(Ordering::Relaxed)
            .max(crate::keyspace::unix_micros());
        let store = Arc::new(store);
        let warm = Warm {
            store,
            pipeline,
            threads: Mutex::new(Vec::new()),
            version: AtomicU64::new(version),
            generation: AtomicU64::new(generation),
            journal_bytes: AtomicU64::new(0),
            max_disk: AtomicU64::new(options.max_disk),
            closed: AtomicBool::new(false),
        };
        warm.start_threads(segment, journal_dir)
            .map_err(|e| fail(format!("cannot start the warm tier's threads: {e}")))?;
        Ok(warm)
    }

    fn start_threads(
        &self,
        segment: journal::Segment,
        journal_dir: PathBuf,
    ) -> std::io::Result<()> {
        let mut threads = self.threads.lock();
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..APPLIERS).map(|_| mpsc::channel::<Arc<Chunk>>()).unzip();
        let (pipeline, store) = (self.pipeline.clone(), self.store.clone());
        threads.push(
            std::thread::Builder::new()
                .name("strata-journal".into())
                .spawn(move || {
                    pipeline.run_writer(segment, journal_dir, senders, |reason| {
                        tracing::error!("warm tier: {reason}");
                        store.guard.fail(reason);
                    })
                })?,
        );
        let barrier = Arc::new(std::sync::Barrier::new(APPLIERS));
        for (part, chunks) in receivers.into_iter().enumerate() {
            let (pipeline, store) = (self.pipeline.clone(), self.store.clone());
            let barrier = barrier.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("strata-applier-{part}"))
                    .spawn(move || {
                        yield_to_commands();
                        store.run_applier(&pipeline, &chunks, part, &barrier);
                    })?,
            );
        }
        let (pipeline, store) = (self.pipeline.clone(), self.store.clone());
        threads.push(
            std::thread::Builder::new()
                .name("strata-checkpoint".into())
                .spawn(move || {
                    let mut covered = 0;
                    let mut trim_owed = false;
                    while !pipeline.pause(CHECKPOINT_INTERVAL) {
                        let applied = pipeline.applied_seq();
                        if applied == covered {
                            if std::mem::take(&mut trim_owed) {
                                return_freed_memory();
                            }
                            continue;
                        }
                        trim_owed = true;
                        store.collect_garbage();
                        if let Err(error) = store.store_unstored_outbox() {
                            store.io_error(&error);
                            continue;
                        }
                        // Stored before the flush, so once sled has it, it
                        // has every record up to it: replay starts after it.
                        // The generation is read after the sequence number,
                        // so it covers every record the mark covers.
                        let generation = store.max_generation.load(Ordering::Acquire);
                        let mark = store
                            .meta
                            .insert(GENERATION_KEY, &generation.to_le_bytes()[..])
                            .and_then(|_| {
                                store
                                    .meta
                                    .insert(CHECKPOINT_KEY, &applied.to_le_bytes()[..])
                            });
                        if let Err(error) = mark {
                            store.io_error(&error);
                            continue;
                        }
                        if let Err(error) = store.db.flush() {
                            tracing::error!("warm tier: flush failed: {error}");
                            continue;
                        }
                        covered = applied;
                        for path in pipeline.take_covered_segments(applied) {
                            if let Err(error) = std::fs::remove_file(&path) {
                                tracing::warn!(
                                    "warm tier: cannot delete {}: {error}",
                                    path.display()
                                );
                            }
                        }
                    }
                })?,
        );
        Ok(())
    }

    fn tree(&self, db: usize) -> RwLockReadGuard<'_, Arc<DbTree>> {
        self.store.dbs[db].read()
    }

    fn next_version(&self) -> u64 {
        self.version.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Reads a key's record. A record that fails its check is a miss,
    /// logged and counted, never returned.
    pub fn get(&self, db: usize, key: &[u8]) -> Option<Stored> {
        let decoded = |raw: &[u8]| match record::decode(key, raw) {
            Ok((header, payload)) => Some(Stored {
                kind: header.kind,
                expire_at: header.expire_at,
                version: header.version,
                payload: Bytes::copy_from_slice(payload),
            }),
            Err(error) => {
                self.store.count_corrupt(key, error);
                None
            }
        };
        if let Some(state) = self.pipeline.overlay(db, key) {
            return decoded(&state?);
        }
        let tree = self.tree(db);
        match tree.tree.get(record::record_key(key)) {
            Ok(found) => decoded(&found?),
            Err(error) => {
                self.store.io_error(&error);
                None
            }
        }
    }

    /// Stores a key's record, replacing what was there.
    pub fn put(&self, db: usize, key: &[u8], kind: u8, expire_at: Option<u64>, payload: &[u8]) {
        let header = Header {
            kind,
            expire_at,
            version: self.next_version(),
        };
        let raw = record::encode(key, header, payload);
        let op = Op::Put {
            db: db as u32,
            key,
            raw: &raw,
        };
        self.append(&op, true);
    }

    /// Removes a key's record.
    pub fn delete(&self, db: usize, key: &[u8]) {
        self.append(&Op::Delete { db: db as u32, key }, true);
    }

    /// Bytes appended to the journal since open: what writes cost on disk.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes.load(Ordering::Relaxed)
    }

    /// Blocks until sled holds every write made so far.
    pub fn catch_up(&self) {
        self.pipeline.catch_up();
    }

    /// A generation for a new collection, never used before in this
    /// directory.
    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Applies several changes to one database as one journal record: after
    /// a crash either all of them are in sled or none. `None` deletes.
    /// `elements` are collection element records (sled key, record or
    /// `None`) changed with the keys.
    pub fn apply(
        &self,
        db: usize,
        changes: &[(&[u8], Option<Record<'_>>)],
        elements: &[(Vec<u8>, Option<Vec<u8>>)],
        outbox: Option<(u64, &[u8])>,
    ) {
        let raws: Vec<Option<record::Buf>> = changes
            .iter()
            .map(|(key, change)| {
                change.map(|r| {
                    let header = Header {
                        kind: r.kind,
                        expire_at: r.expire_at,
                        version: self.next_version(),
                    };
                    record::encode(key, header, r.payload)
                })
            })
            .collect();
        let op = Op::Batch {
            db: db as u32,
            changes: changes
                .iter()
                .zip(&raws)
                .map(|((key, _), raw)| (*key, raw.as_deref()))
                .collect(),
            elements: elements
                .iter()
                .map(|(key, record)| (key.as_slice(), record.as_deref()))
                .collect(),
            outbox,
        };
        self.append(&op, true);
    }

    /// The writes not yet shipped to the source, oldest first (at open: the
    /// drainer starts from these).
    pub fn outbox_pending(&self) -> Vec<(u64, Vec<u8>)> {
        let unstored = self.store.unstored_outbox.lock();
        let mut pending = BTreeMap::new();
        for item in self.store.outbox.iter() {
            match item {
                Ok((seq, records)) => {
                    if let Some(seq) = decode_outbox_seq(&seq) {
                        pending.insert(seq, records.to_vec());
                    }
                }
                Err(error) => {
                    self.store.io_error(&error);
                    break;
                }
            }
        }
        pending.extend(
            unstored
                .iter()
                .map(|(&seq, records)| (seq, records.clone())),
        );
        pending.into_iter().collect()
    }

    /// Every write up to outbox sequence `seq` is in the source: forget them.
    pub fn outbox_shipped(&self, seq: u64) {
        let store = &self.store;
        store.shipped.fetch_max(seq, Ordering::AcqRel);
        {
            let mut unstored = store.unstored_outbox.lock();
            let unshipped = unstored.split_off(&seq.saturating_add(1));
            *unstored = unshipped;
            // A checkpoint stores under this lock: past it, the scan below
            // sees every record stored before the shipment was known.
            if !store.outbox_on_disk.load(Ordering::Acquire) {
                return;
            }
        }
        let shipped: Vec<sled::IVec> = store
            .outbox
            .range(..=seq.to_be_bytes())
            .keys()
            .filter_map(Result::ok)
            .collect();
        for key in shipped {
            if let Err(error) = store.outbox.remove(key) {
                return store.io_error(&error);
            }
        }
        let _unstored = store.unstored_outbox.lock();
        if store.outbox.is_empty() {
            store.outbox_on_disk.store(false, Ordering::Release);
        }
    }

    /// Parks a write the source refused, with the reason.
    pub fn dead_letter(&self, seq: u64, records: &[u8], reason: &str) {
        let mut entry = Vec::with_capacity(4 + reason.len() + records.len());
        entry.extend_from_slice(&(reason.len() as u32).to_le_bytes());
        entry.extend_from_slice(reason.as_bytes());
        entry.extend_from_slice(records);
        if let Err(error) = self.store.dead_letters.insert(seq.to_be_bytes(), entry) {
            self.store.io_error(&error);
        }
    }

    /// Parked writes, oldest first: (outbox sequence, reason, records).
    pub fn dead_letters(&self, limit: usize) -> Vec<(u64, String, Vec<u8>)> {
        self.store
            .dead_letters
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(seq, entry)| {
                let seq = decode_outbox_seq(&seq)?;
                let (len, rest) = entry.split_first_chunk::<4>()?;
                let len = u32::from_le_bytes(*len) as usize;
                let reason = rest.get(..len)?;
                let records = rest.get(len..)?;
                Some((
                    seq,
                    String::from_utf8_lossy(reason).into_owned(),
                    records.to_vec(),
                ))
            })
            .take(limit)
            .collect()
    }

    pub fn dead_letter_count(&self) -> usize {
        self.store.dead_letters.len()
    }

    fn append(&self, op: &Op<'_>, with_state: bool) {
        let len = self.pipeline.append(op, with_state);
        self.journal_bytes.fetch_add(len as u64, Ordering::Relaxed);
        // The bytes land twice (journal, then sled), and sled rewrites the
        // pages around them: counted four times, so the free space is read
        // again well before a burst can eat the margin.
        self.store.guard.spend(4 * len as u64);
    }

    /// Every element of a collection, read from sled once the appliers
    /// have brought its last change there. `None` when sled fails.
    pub fn load_elements(&self, db: usize, key: &[u8], generation: u64) -> Option<Vec<Element>> {
        if self.pipeline.overlay(db, key).is_some() {
            self.pipeline.catch_up();
        }
        let tree = self.tree(db);
        match collections::load(&tree.tree, generation) {
            Ok((elements, damaged)) => {
                for _ in 0..damaged {
                    self.store.count_corrupt(key, record::RecordError::Checksum);
                }
                Some(elements)
            }
            Err(collections::LayoutError::Sled(error)) => {
                self.store.io_error(&error);
                None
            }
            Err(_) => None,
        }
    }

    /// Removes a key found past its deadline on access.
    pub fn delete_expired(&self, db: usize, key: &[u8]) {
        self.delete(db, key);
        self.store.counters.expired.fetch_add(1, Ordering::Relaxed);
    }

    /// Why writes must be refused now (`-MISCONF`), if they must.
    pub fn write_refusal(&self) -> Option<String> {
        self.store.guard.refusal()
    }

    /// Whether the records on disk exceed `max-disk`. With a bound set,
    /// this waits for the applier first: the figure must count every write,
    /// so a bounded disk costs writers the wait for sled.
    pub fn over_max_disk(&self) -> bool {
        let bound = self.max_disk.load(Ordering::Relaxed);
        if bound == 0 {
            return false;
        }
        self.pipeline.catch_up();
        self.store.stored_bytes() > bound
    }

    pub fn set_max_disk(&self, bytes: u64) {
        self.max_disk.store(bytes, Ordering::Relaxed);
    }

    pub fn set_min_free_disk(&self, bytes: u64) {
        self.store.guard.min_free.store(bytes, Ordering::Relaxed);
        self.store.guard.refresh();
    }

    /// Keys of `db`, once every write so far is in sled.
    pub fn dbsize(&self, db: usize) -> u64 {
        self.pipeline.catch_up();
        self.tree(db).keys.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn volatile(&self, db: usize) -> u64 {
        self.pipeline.catch_up();
        self.tree(db).volatile.load(Ordering::Relaxed).max(0) as u64
    }

    /// One SCAN step: up to about `count` key records from scan position
    /// `cursor`, those `keep` accepts; the next cursor is 0 at the end.
    /// Keys sharing a hash are returned together, so no cursor splits them.
    pub fn scan(
        &self,
        db: usize,
        cursor: u64,
        count: usize,
        now_ms: u64,
        mut keep: impl FnMut(&[u8], u8) -> bool,
    ) -> (u64, Vec<Bytes>) {
        // Positions are 32-bit hashes: a larger cursor is past the end.
        let Ok(cursor) = u32::try_from(cursor) else {
            return (0, Vec::new());
        };
        self.pipeline.catch_up();
        let tree = self.tree(db).clone();
        let mut keys = Vec::new();
        let mut visited = 0usize;
        let mut last_hash = None;
        let start = record::record_key_from(cursor);
        let end = [KEY_PREFIX + 1];
        for item in tree.tree.range(start.as_slice()..end.as_slice()) {
            let Ok((raw_key, raw)) = item else { break };
            let Some((hash, key)) = record::parse_record_key(&raw_key) else {
                continue;
            };
            if visited >= count && last_hash != Some(hash) {
                return (u64::from(hash), keys);
            }
            visited += 1;
            last_hash = Some(hash);
            if let Ok(header) = record::peek_header(&raw) {
                if header.expire_at.is_some_and(|at| at <= now_ms) || !keep(key, header.kind) {
                    continue;
                }
                keys.push(Bytes::copy_from_slice(key));
            }
        }
        (0, keys)
    }

    /// Every live key `keep` accepts (KEYS).
    pub fn keys(&self, db: usize, now_ms: u64, keep: impl FnMut(&[u8], u8) -> bool) -> Vec<Bytes> {
        self.scan(db, 0, usize::MAX, now_ms, keep).1
    }

    /// A random live key (RANDOMKEY): the first key record at or after a
    /// random scan position, wrapping around.
    pub fn random_key(&self, db: usize, now_ms: u64) -> Option<Bytes> {
        self.pipeline.catch_up();
        let tree = self.tree(db).clone();
        for _ in 0..16 {
            let (raw_key, raw) = random_record(&tree.tree)?;
            let (_, key) = record::parse_record_key(&raw_key)?;
            let live =
                record::peek_header(&raw).is_ok_and(|h| h.expire_at.is_none_or(|at| at > now_ms));
            if live {
                return Some(Bytes::copy_from_slice(key));
            }
        }
        // Mostly expired keys: walk in order for a live one.
        let found = self.scan(db, 0, 1, now_ms, |_, _| true).1;
        found.into_iter().next()
    }

    /// Up to `budget` (deadline, key) entries of the expiry index due at `now_ms`.
    pub fn due_expiries(&self, db: usize, now_ms: u64, budget: usize) -> Vec<(u64, Bytes)> {
        self.pipeline.catch_up();
        let tree = self.tree(db).clone();
        let end = record::expiry_key(now_ms.saturating_add(1), b"");
        tree.tree
            .range([EXPIRY_PREFIX].as_slice()..end.as_slice())
            .take(budget)
            .filter_map(|item| {
                let (raw_key, _) = item.ok()?;
                let (at, key) = record::parse_expiry_key(&raw_key)?;
                Some((at, Bytes::copy_from_slice(key)))
            })
            .collect()
    }

    /// Removes a key whose deadline has passed, and the index entry that
    /// pointed at it (also when stale: the key's deadline has changed since).
    /// Call it under the key's shard lock. True if a key was removed.
    pub fn expire_due(&self, db: usize, deadline: u64, key: &[u8], now_ms: u64) -> bool {
        let current = self.get(db, key).map(|stored| stored.expire_at);
        let due = current.is_some_and(|at| at.is_some_and(|at| at <= now_ms));
        if due {
            self.delete_expired(db, key);
            return true;
        }
        if current.flatten() != Some(deadline) {
            let op = Op::Unindex {
                db: db as u32,
                deadline,
                key,
            };
            self.append(&op, false);
        }
        false
    }

    /// Random key records of `db` (for eviction from disk): (key, version,
    /// has a deadline, deadline). Records the applier has not reached yet
    /// are not among them: a sample need not be exact.
    pub fn sample(&self, db: usize, count: usize) -> Vec<(Bytes, u64, Option<u64>)> {
        let tree = self.tree(db).clone();
        (0..count)
            .filter_map(|_| {
                let (raw_key, raw) = random_record(&tree.tree)?;
                let (_, key) = record::parse_record_key(&raw_key)?;
                let header = record::peek_header(&raw).ok()?;
                Some((
                    Bytes::copy_from_slice(key),
                    header.version,
                    header.expire_at,
                ))
            })
            .collect()
    }

    /// Counts a key removed from disk to respect `max-disk`.
    pub fn count_eviction(&self) {
        self.store
            .counters
            .evictions
            .fetch_add(1, Ordering::Relaxed);
    }

    /// FLUSHDB: the database gets a fresh tree; the old one is dropped after
    /// (in the background for FLUSHDB ASYNC). Returns once sled has it, so
    /// call it with every shard of the database locked.
    pub fn flush_db(&self, db: usize, background: bool) {
        let name = format!("db:{db}:{}", self.next_version()).into_bytes();
        let op = Op::FlushDb {
            db: db as u32,
            name: &name,
            background,
        };
        self.append(&op, false);
        self.pipeline.catch_up();
    }

    /// SWAPDB: two entries of the map change places. Returns once sled has
    /// it, so call it with every shard of both databases locked.
    pub fn swap_db(&self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.append(
            &Op::SwapDb {
                a: a as u32,
                b: b as u32,
            },
            false,
        );
        self.pipeline.catch_up();
    }

    /// What a write batch must wait for before its replies leave, if
    /// anything (see [`Pipeline::target`]). `forced` (SAVE) asks for a sync
    /// whatever the policy.
    pub fn durability_target(&self, forced: bool) -> Option<DurableWait> {
        self.pipeline.target(forced)
    }

    /// Resolves once what `wait` names is done (or the journal failed).
    pub async fn wait_durable(&self, wait: DurableWait) {
        self.pipeline.wait(wait).await;
    }

    pub fn set_fsync(&self, policy: FsyncPolicy) {
        self.pipeline.set_policy(policy);
    }

    /// Re-reads the free disk space (housekeeping, every 100 ms).
    pub fn refresh_disk(&self) {
        self.store.guard.refresh();
    }

    pub fn figures(&self) -> WarmFigures {
        self.pipeline.catch_up();
        let (keys, bytes) = self.store.dbs.iter().fold((0, 0), |(k, b), tree| {
            let [keys, _, bytes] = tree.read().figures();
            (k + keys.max(0) as u64, b + bytes.max(0) as u64)
        });
        let p = &self.pipeline;
        let oldest = p.oldest_unsynced_ms.load(Ordering::Relaxed);
        let counters = &self.store.counters;
        WarmFigures {
            keys,
            bytes,
            disk_bytes: self.store.db.size_on_disk().unwrap_or(0),
            crc_errors: counters.crc_errors.load(Ordering::Relaxed),
            expired: counters.expired.load(Ordering::Relaxed),
            evictions: counters.evictions.load(Ordering::Relaxed),
            last_flush_ms: p.last_sync_ms.load(Ordering::Relaxed),
            flush_lag_ms: if oldest == 0 {
                0
            } else {
                (crate::keyspace::unix_micros() / 1000).saturating_sub(oldest)
            },
            flushes: p.durable().flushes,
        }
    }

    pub fn reset_counters(&self) {
        let counters = &self.store.counters;
        counters.crc_errors.store(0, Ordering::Relaxed);
        counters.expired.store(0, Ordering::Relaxed);
        counters.evictions.store(0, Ordering::Relaxed);
    }

    /// Writes and applies everything, flushes sled, records the figures as
    /// exact and deletes the journal. Blocks: call it from a thread that may
    /// (shutdown, drop).
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.pipeline.stop();
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
        let store = &self.store;
        if store.guard.failed() {
            // The journal keeps what sled may lack; the next open replays it.
            return;
        }
        let figures: Vec<(Vec<u8>, [i64; 3])> = store
            .dbs
            .iter()
            .map(|t| {
                let t = t.read();
                (t.name.clone(), t.figures())
            })
            .collect();
        let marker = encode_clean(self.version.load(Ordering::Relaxed), &figures);
        let generation = store.max_generation.load(Ordering::Acquire);
        let result = store
            .store_unstored_outbox()
            .and_then(|_| store.db.flush())
            .and_then(|_| {
                store
                    .meta
                    .insert(GENERATION_KEY, &generation.to_le_bytes()[..])?;
                store.meta.insert(CLEAN_KEY, marker)?;
                store.db.flush()
            });
        match result {
            Ok(_) => {
                let journal_dir = journal::dir(self.dir());
                if let Ok(segments) = journal::segments(&journal_dir) {
                    for (_, path) in segments {
                        let _ = std::fs::remove_file(path);
                    }
                }
                self.pipeline.published(self.pipeline.durable().flushes + 1);
            }
            Err(error) => tracing::error!("warm tier: final flush failed: {error}"),
        }
    }

    /// The directory sled keeps its files in.
    pub fn dir(&self) -> &Path {
        &self.store.guard.dir
    }

    #[cfg(test)]
    fn counters(&self) -> &WarmCounters {
        &self.store.counters
    }
}

impl Drop for Warm {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store {
    fn tree(&self, db: usize) -> Option<Arc<DbTree>> {
        self.dbs.get(db).map(|tree| tree.read().clone())
    }

    fn names(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = self.dbs.iter().map(|t| t.read().name.clone()).collect();
        names.extend(self.spare_trees.iter().cloned());
        names
    }

    /// Applies the journal's records after `applied_before` to sled, in
    /// order, stopping at the first damaged one (the tail of a write cut
    /// short by a crash). Returns the last sequence number seen and how many
    /// records were applied.
    fn replay(&self, journal_dir: &Path, applied_before: u64) -> std::io::Result<(u64, u64)> {
        let (mut last, mut replayed) = (0, 0);
        let segments = journal::segments(journal_dir)?;
        if !segments.is_empty() {
            // Let sled finish what its own recovery started (it may shorten
            // its file in the background) before writing to it.
            self.db.flush().map_err(std::io::Error::other)?;
        }
        // Collections the replayed records leave named: (db, key, generation).
        let mut named: Vec<(usize, Vec<u8>, u64)> = Vec::new();
        for (first, path) in segments {
            let buf = journal::read_segment(&path)?;
            let mut records = journal::Records::new(&buf);
            let mut seq = first;
            for op in records.by_ref() {
                if seq > applied_before {
                    let states: Vec<(u32, &[u8], &[u8])> = match &op {
                        Op::Put { db, key, raw } => vec![(*db, *key, *raw)],
                        Op::Batch { db, changes, .. } => changes
                            .iter()
                            .filter_map(|(key, raw)| raw.map(|raw| (*db, *key, raw)))
                            .collect(),
                        _ => Vec::new(),
                    };
                    for (db, key, raw) in states {
                        if let Some(generation) = record::peek_generation(raw) {
                            named.push((db as usize, key.to_vec(), generation));
                        }
                    }
                    self.apply_op(seq, &op);
                    replayed += 1;
                    if replayed % REPLAY_FLUSH_EVERY == 0 {
                        // A burst of writes straight after sled's recovery
                        // can deadlock sled 0.34 (ARCHITECTURE.md, "sled
                        // 0.34's deadlock"); flushing as it goes keeps its
                        // log writes in step.
                        self.db.flush().map_err(std::io::Error::other)?;
                    }
                }
                last = last.max(seq);
                seq += 1;
            }
            if let Some(damage) = records.damage {
                tracing::warn!(
                    "warm tier: the journal {} ends in a {damage:?} record after sequence {}; \
                     what follows it is ignored",
                    path.display(),
                    seq.saturating_sub(1)
                );
                break;
            }
        }
        self.unmark_live_generations(named);
        if replayed > 0 {
            tracing::info!("warm tier: replayed {replayed} journal records");
        }
        Ok((last, replayed))
    }

    /// sled may hold states newer than the checkpoint's mark (the appliers
    /// go on while it flushes), so replay applies older records over newer
    /// ones: replaying a DEL marks as garbage the generation of the list
    /// created after it, and the later record brings the list back but not
    /// the mark away. A mark whose generation a key's final record still
    /// names is removed, or the collector would delete live elements.
    fn unmark_live_generations(&self, mut named: Vec<(usize, Vec<u8>, u64)>) {
        named.sort_unstable();
        named.dedup();
        for (db, key, generation) in named {
            let Some(tree) = self.tree(db) else { continue };
            let mark = collections::garbage_key(generation);
            if !tree.tree.contains_key(mark).unwrap_or(false) {
                continue;
            }
            let live = tree
                .tree
                .get(record::record_key(&key))
                .ok()
                .flatten()
                .and_then(|raw| record::peek_generation(&raw));
            if live == Some(generation) {
                if let Err(error) = tree.tree.remove(mark) {
                    return self.io_error(&error);
                }
            }
        }
    }

    /// An applier thread: applies its share of every chunk the writer
    /// sends, taking the chunks already waiting together, so the longer
    /// the backlog, the more writes of one key are gathered into one.
    fn run_applier(
        &self,
        pipeline: &Pipeline,
        chunks: &mpsc::Receiver<Arc<Chunk>>,
        part: usize,
        barrier: &std::sync::Barrier,
    ) {
        let mut group = Vec::new();
        while let Ok(first) = chunks.recv() {
            let mut bytes = first.bytes.len();
            group.push(first);
            while bytes < GROUP_BYTES {
                let Ok(next) = chunks.try_recv() else { break };
                bytes += next.bytes.len();
                group.push(next);
            }
            self.apply_part(&group, part, barrier);
            for chunk in group.drain(..) {
                if chunk.finished.fetch_add(1, Ordering::AcqRel) + 1 == APPLIERS {
                    pipeline.applied(&chunk);
                }
            }
        }
    }

    /// Applies this applier's share of some chunks: the single-key records
    /// of keys in its part, and, between two barriers, the records every
    /// applier must wait for (applied by part 0; consecutive ones share
    /// their barriers). The records between two barriers are gathered and
    /// written once per sled key ([`Gathered`]): a key changed by every
    /// command costs one sled write per chunk, not one per command. The
    /// overlay keeps every key of a chunk until the whole chunk is applied,
    /// so readers never see the order of the writes.
    fn apply_part(&self, chunks: &[Arc<Chunk>], part: usize, barrier: &std::sync::Barrier) {
        let mut gathered = Gathered::default();
        for chunk in chunks {
            self.apply_chunk_part(chunk, &mut gathered, part, barrier);
        }
        self.write_gathered(&mut gathered);
    }

    /// One chunk of [`Store::apply_part`]'s. Barriers never span two
    /// chunks: the appliers may group chunks differently, and must still
    /// wait at the same records.
    fn apply_chunk_part<'a>(
        &self,
        chunk: &'a Chunk,
        gathered: &mut Gathered<'a>,
        part: usize,
        barrier: &std::sync::Barrier,
    ) {
        let mut in_barrier = false;
        for (i, op) in journal::Records::new(&chunk.bytes).enumerate() {
            let seq = chunk.first_seq + i as u64;
            let owner = match &op {
                Op::Put { db, key, .. } | Op::Delete { db, key } | Op::Unindex { db, key, .. } => {
                    Owner::One(applier_of(*db, key))
                }
                // One key's change with its collection elements.
                Op::Batch { db, changes, .. } if changes.len() == 1 => changes
                    .first()
                    .map_or(Owner::One(0), |(key, _)| Owner::One(applier_of(*db, key))),
                // Records for the source alone (an expiry, a flush): they
                // touch no key, so any applier may store them, unordered.
                Op::Batch {
                    changes, elements, ..
                } if changes.is_empty() && elements.is_empty() => Owner::One(0),
                Op::Batch {
                    changes, elements, ..
                } if elements.is_empty()
                    && changes.iter().all(|(_, raw)| {
                        raw.is_none_or(|raw| record::peek_generation(raw).is_none())
                    }) =>
                {
                    Owner::EachKey
                }
                _ => Owner::All,
            };
            match owner {
                Owner::One(_) | Owner::EachKey => {
                    if in_barrier {
                        if part == 0 {
                            self.write_gathered(gathered);
                        }
                        barrier.wait();
                        in_barrier = false;
                    }
                    match owner {
                        Owner::One(owner) if owner == part => {
                            self.gather_or_apply(gathered, seq, &op)
                        }
                        Owner::EachKey => self.gather_own_keys(gathered, &op, part),
                        _ => {}
                    }
                }
                Owner::All => {
                    if !in_barrier {
                        self.write_gathered(gathered);
                        barrier.wait();
                        in_barrier = true;
                    }
                    if part == 0 {
                        self.gather_or_apply(gathered, seq, &op);
                    }
                }
            }
        }
        if in_barrier {
            if part == 0 {
                self.write_gathered(gathered);
            }
            barrier.wait();
        }
    }

    /// Gathers the changes of a record of several keys that names no
    /// collection (MSET, DEL of strings, ...) which belong to this applier:
    /// each is what a record of its key alone would be. Its records for
    /// the source go with part 0.
    fn gather_own_keys<'a>(&self, gathered: &mut Gathered<'a>, op: &Op<'a>, part: usize) {
        let Op::Batch {
            db,
            changes,
            outbox,
            ..
        } = op
        else {
            return;
        };
        gathered.keys.extend(
            changes
                .iter()
                .filter(|(key, _)| applier_of(*db, key) == part)
                .map(|&(key, raw)| (*db, key, raw)),
        );
        if let (0, Some((outbox_seq, records))) = (part, outbox) {
            self.store_outbox(*outbox_seq, records);
        }
    }

    /// Gathers a record's key changes; applies any other record in its
    /// turn, after what was gathered before it: an index entry's removal
    /// must precede a later write that indexes it again, FLUSHDB and SWAPDB
    /// change the trees the gathered writes go to.
    fn gather_or_apply<'a>(&self, gathered: &mut Gathered<'a>, seq: u64, op: &Op<'a>) {
        if !gathered.add(op) {
            self.write_gathered(gathered);
            self.apply_op(seq, op);
            return;
        }
        // The source's records have a tree of their own, in no order with
        // the keys' writes: stored at once, as `apply_op` stores them.
        if let Op::Batch {
            outbox: Some((outbox_seq, records)),
            ..
        } = op
        {
            self.store_outbox(*outbox_seq, records);
        }
    }

    /// Applies one journal record to sled (the appliers, and replay).
    fn apply_op(&self, seq: u64, op: &Op<'_>) {
        match op {
            Op::Put { db, key, raw } => self.store_put(*db as usize, key, raw),
            Op::Delete { db, key } => self.store_delete(*db as usize, key),
            Op::Batch {
                db,
                changes,
                elements,
                outbox,
            } => {
                self.store_batch(*db as usize, changes, elements);
                if let Some((outbox_seq, records)) = outbox {
                    self.store_outbox(*outbox_seq, records);
                }
            }
            Op::Unindex { db, deadline, key } => {
                if let Some(tree) = self.tree(*db as usize) {
                    if let Err(error) = tree.tree.remove(record::expiry_key(*deadline, key)) {
                        self.io_error(&error);
                    }
                }
            }
            Op::FlushDb {
                db,
                name,
                background,
            } => self.store_flush_db(seq, *db as usize, name, *background),
            Op::SwapDb { a, b } => self.store_swap_db(seq, *a as usize, *b as usize),
        }
    }

    /// Keeps a write's records for the source until they are shipped: in
    /// memory, while the journal holds them too (`store_unstored_outbox`).
    fn store_outbox(&self, outbox_seq: u64, records: &[u8]) {
        let mut unstored = self.unstored_outbox.lock();
        if outbox_seq <= self.shipped.load(Ordering::Acquire) {
            return;
        }
        unstored.insert(outbox_seq, records.to_vec());
    }

    /// Stores in sled the outbox records still unshipped, before the
    /// journal that holds them is let go (checkpoint, close). `Err`: they
    /// stay where they were, and so must the journal.
    fn store_unstored_outbox(&self) -> Result<(), sled::Error> {
        let mut unstored = self.unstored_outbox.lock();
        if unstored.is_empty() {
            return Ok(());
        }
        // Set first: a shipment that reads it unset finds nothing on disk.
        self.outbox_on_disk.store(true, Ordering::Release);
        let shipped = self.shipped.load(Ordering::Acquire);
        for (seq, records) in unstored.range(shipped.saturating_add(1)..) {
            self.outbox.insert(seq.to_be_bytes(), records.as_slice())?;
        }
        unstored.clear();
        Ok(())
    }

    fn store_put(&self, db: usize, key: &[u8], raw: &[u8]) {
        self.store_batch(db, &[(key, Some(raw))], &[]);
    }

    fn store_delete(&self, db: usize, key: &[u8]) {
        self.store_batch(db, &[(key, None)], &[]);
    }

    /// Stores a key's record with its expiry index entry and figures;
    /// returns the record it replaced (`None`: sled failed).
    fn put_record(&self, tree: &DbTree, key: &[u8], raw: &[u8]) -> Option<Option<sled::IVec>> {
        let expire_at = stored_deadline(raw);
        // The expiry entry goes first and leaves last, so after any crash
        // every record with a deadline still has its entry in the index.
        if let Some(at) = expire_at {
            if let Err(error) = tree.tree.insert(record::expiry_key(at, key), &[][..]) {
                self.io_error(&error);
                return None;
            }
        }
        let record_key = record::record_key(key);
        let new = footprint(record_key.len(), raw.len(), expire_at);
        let old = match tree.tree.insert(record_key.as_slice(), raw) {
            Ok(old) => old,
            Err(error) => {
                self.io_error(&error);
                return None;
            }
        };
        let mut delta = new;
        if let Some(old) = &old {
            let old_deadline = stored_deadline(old);
            if let Some(at) = old_deadline.filter(|&at| Some(at) != expire_at) {
                if let Err(error) = tree.tree.remove(record::expiry_key(at, key)) {
                    self.io_error(&error);
                    return None;
                }
            }
            delta = minus(new, footprint(record_key.len(), old.len(), old_deadline));
        }
        tree.add(delta);
        Some(old)
    }

    /// Removes a key's record, its expiry index entry and its figures;
    /// returns the removed record (`None`: sled failed).
    fn delete_record(&self, tree: &DbTree, key: &[u8]) -> Option<Option<sled::IVec>> {
        let record_key = record::record_key(key);
        let old = match tree.tree.remove(record_key.as_slice()) {
            Ok(Some(old)) => old,
            Ok(None) => return Some(None),
            Err(error) => {
                self.io_error(&error);
                return None;
            }
        };
        let deadline = stored_deadline(&old);
        tree.add(minus(
            [0; 3],
            footprint(record_key.len(), old.len(), deadline),
        ));
        if let Some(at) = deadline {
            if let Err(error) = tree.tree.remove(record::expiry_key(at, key)) {
                self.io_error(&error);
            }
        }
        Some(Some(old))
    }

    /// Several keys' changes, with collection elements. Applied one sled
    /// operation at a time, not as a sled batch: a batch makes sled seal
    /// and write its log buffer (measured: MSET and collection writes fell
    /// to about 3,000/s). Atomicity comes from the journal instead: readers
    /// see the record's keys in the overlay until the whole record is
    /// applied, whole-database reads wait for the appliers, and after a
    /// crash replay applies the record again from its start.
    fn store_batch(
        &self,
        db: usize,
        changes: &[(&[u8], Option<&[u8]>)],
        elements: &[(&[u8], Option<&[u8]>)],
    ) {
        let mut gathered = Gathered::default();
        gathered.add_changes(db as u32, changes, elements);
        self.write_gathered(&mut gathered);
    }

    /// Writes the final state of every sled key `gathered` holds, and
    /// empties it. Elements first: a reader that finds the metadata finds
    /// them. Garbage marks last, so no element of a marked generation is
    /// written after its mark (the checkpointer collects concurrently).
    ///
    /// A generation becomes garbage when a state of its key that named it,
    /// in sled or gathered, is replaced, unless a final state names it
    /// (RENAME moves a generation from one key to another in one record).
    fn write_gathered(&self, gathered: &mut Gathered<'_>) {
        if gathered.keys.is_empty() && gathered.elements.is_empty() {
            return;
        }
        // Stable: each sled key's states stay in journal order.
        gathered.keys.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        gathered
            .elements
            .sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        self.write_final_states(gathered);
        gathered.keys.clear();
        gathered.elements.clear();
    }

    fn write_final_states(&self, gathered: &Gathered<'_>) {
        let same_key = |a: &GatheredChange<'_>, b: &GatheredChange<'_>| a.0 == b.0 && a.1 == b.1;
        let mut trees = TreeCache::default();
        let mut element_bytes = 0i64;
        let mut element_db = None;
        for run in gathered.elements.chunk_by(same_key) {
            let Some(&(db, key, record)) = run.last() else {
                continue;
            };
            if element_db != Some(db) {
                if let Some(tree) = element_db.and_then(|db| trees.get(self, db)) {
                    tree.add([0, 0, std::mem::take(&mut element_bytes)]);
                }
                element_db = Some(db);
            }
            let Some(tree) = trees.get(self, db) else {
                continue;
            };
            let old = match record {
                Some(record) => tree.tree.insert(key, record),
                None => tree.tree.remove(key),
            };
            match old {
                Ok(old) => {
                    element_bytes += record.map_or(0, |r| (key.len() + r.len()) as i64);
                    element_bytes -= old.map_or(0, |r| (key.len() + r.len()) as i64);
                }
                Err(error) => {
                    tree.add([0, 0, element_bytes]);
                    return self.io_error(&error);
                }
            }
        }
        if let Some(tree) = element_db.and_then(|db| trees.get(self, db)) {
            tree.add([0, 0, element_bytes]);
        }

        // (db, generation) pairs replaced, and named by a final state.
        let mut dropped: SmallVec<[(u32, u64); 4]> = SmallVec::new();
        let mut named: SmallVec<[(u32, u64); 4]> = SmallVec::new();
        let mut highest = 0;
        for run in gathered.keys.chunk_by(same_key) {
            let Some((&(db, key, last), earlier)) = run.split_last() else {
                continue;
            };
            for &(_, _, state) in earlier {
                if let Some(generation) = state.and_then(record::peek_generation) {
                    highest = highest.max(generation);
                    // A collection's every command repeats its generation.
                    if dropped.last() != Some(&(db, generation)) {
                        dropped.push((db, generation));
                    }
                }
            }
            let Some(tree) = trees.get(self, db) else {
                continue;
            };
            let old = match last {
                Some(raw) => self.put_record(tree, key, raw),
                None => self.delete_record(tree, key),
            };
            let Some(old) = old else { return };
            if let Some(generation) = old.as_deref().and_then(record::peek_generation) {
                dropped.push((db, generation));
            }
            if let Some(generation) = last.and_then(record::peek_generation) {
                highest = highest.max(generation);
                named.push((db, generation));
            }
        }
        if highest > 0 {
            self.max_generation.fetch_max(highest, Ordering::AcqRel);
        }
        named.sort_unstable();
        dropped.sort_unstable();
        dropped.dedup();
        for (db, generation) in dropped {
            if named.binary_search(&(db, generation)).is_ok() {
                continue;
            }
            let Some(tree) = trees.get(self, db) else {
                continue;
            };
            if let Err(error) = tree
                .tree
                .insert(collections::garbage_key(generation), &[][..])
            {
                return self.io_error(&error);
            }
        }
    }

    /// Deletes some elements of dropped collections in every tree.
    fn collect_garbage(&self) {
        for slot in self.dbs.iter() {
            let tree = slot.read().clone();
            match collections::collect_garbage(&tree.tree, GARBAGE_PER_CHECKPOINT) {
                Ok((_, bytes)) => tree.add([0, 0, -(bytes as i64)]),
                // FLUSHDB dropped the tree meanwhile: its garbage went with it.
                Err(collections::LayoutError::Sled(sled::Error::CollectionNotFound(_))) => {}
                Err(collections::LayoutError::Sled(error)) => return self.io_error(&error),
                Err(_) => {}
            }
        }
    }

    /// FLUSHDB: a fresh tree named by the record takes the database's place
    /// (nothing happens when it already has, in a replay), then the old one
    /// is dropped.
    fn store_flush_db(&self, seq: u64, db: usize, name: &[u8], background: bool) {
        let Some(slot) = self.dbs.get(db) else { return };
        if slot.read().name == name {
            return;
        }
        let tree = match self.db.open_tree(name) {
            Ok(tree) => tree,
            Err(error) => return self.io_error(&error),
        };
        let old = std::mem::replace(
            &mut *slot.write(),
            Arc::new(DbTree::new(name.to_vec(), tree)),
        );
        self.save_names(seq);
        let name = old.name.clone();
        drop(old);
        if background {
            let db_handle = self.db.clone();
            std::thread::spawn(move || db_handle.drop_tree(name));
        } else if let Err(error) = self.db.drop_tree(name) {
            self.io_error(&error);
        }
    }

    fn store_swap_db(&self, seq: u64, a: usize, b: usize) {
        if a == b || a.max(b) >= self.dbs.len() {
            return;
        }
        let (first, second) = (a.min(b), a.max(b));
        let mut x = self.dbs[first].write();
        let mut y = self.dbs[second].write();
        std::mem::swap(&mut *x, &mut *y);
        drop((x, y));
        self.save_names(seq);
    }

    /// Stores the database map with the sequence number of the record that
    /// changed it, in one batch: replay never applies that record twice.
    fn save_names(&self, seq: u64) {
        let mut batch = sled::Batch::default();
        batch.insert(DBMAP_KEY, encode_names(&self.names()));
        batch.insert(JOURNAL_KEY, &seq.to_le_bytes()[..]);
        if let Err(error) = self.meta.apply_batch(batch) {
            self.io_error(&error);
        }
    }

    fn count_corrupt(&self, key: &[u8], error: record::RecordError) {
        let seen = self.counters.crc_errors.fetch_add(1, Ordering::Relaxed);
        // Logged for the first few and then every thousandth, so a damaged
        // file cannot flood the log.
        if seen < 16 || seen.is_multiple_of(1000) {
            tracing::warn!(
                "warm tier: record of key {:?} failed its check ({error:?}); treated as a miss",
                String::from_utf8_lossy(key)
            );
        }
    }

    /// A sled error: sled refuses every later write, so writes are refused
    /// with the reason until the operator restarts strata.
    fn io_error(&self, error: &sled::Error) {
        let reason = describe_sled_error(error);
        tracing::error!("warm tier: {reason}");
        self.guard.fail(reason);
    }

    fn stored_bytes(&self) -> u64 {
        self.dbs
            .iter()
            .map(|tree| tree.read().bytes.load(Ordering::Relaxed).max(0) as u64)
            .sum()
    }
}

/// A change gathered by an applier: database, sled key (a key's name for
/// key records, the element key for elements), and the new state (`None`:
/// deleted).
type GatheredChange<'a> = (u32, &'a [u8], Option<&'a [u8]>);

/// The key changes of consecutive single-key journal records, borrowed from
/// the journal bytes, gathered so that each sled key is written once, with
/// its last state ([`Store::write_gathered`]). Every figure stays exact:
/// what a key's final write replaces is what sled held before the first.
#[derive(Default)]
struct Gathered<'a> {
    keys: Vec<GatheredChange<'a>>,
    elements: Vec<GatheredChange<'a>>,
}

impl<'a> Gathered<'a> {
    /// Gathers a record's changes; false for a record that is not a change
    /// of keys, which the caller applies in its turn.
    fn add(&mut self, op: &Op<'a>) -> bool {
        match op {
            Op::Put { db, key, raw } => self.keys.push((*db, key, Some(raw))),
            Op::Delete { db, key } => self.keys.push((*db, key, None)),
            Op::Batch {
                db,
                changes,
                elements,
                ..
            } => self.add_changes(*db, changes, elements),
            _ => return false,
        }
        true
    }

    fn add_changes(
        &mut self,
        db: u32,
        changes: &[(&'a [u8], Option<&'a [u8]>)],
        elements: &[(&'a [u8], Option<&'a [u8]>)],
    ) {
        self.keys
            .extend(changes.iter().map(|&(key, raw)| (db, key, raw)));
        self.elements
            .extend(elements.iter().map(|&(key, record)| (db, key, record)));
    }
}

/// The tree of the database last asked for, so a run of writes to one
/// database takes its slot's lock once.
#[derive(Default)]
struct TreeCache {
    current: Option<(u32, Arc<DbTree>)>,
}

impl TreeCache {
    fn get(&mut self, store: &Store, db: u32) -> Option<&DbTree> {
        if self.current.as_ref().is_none_or(|(at, _)| *at != db) {
            self.current = store.tree(db as usize).map(|tree| (db, tree));
        }
        self.current.as_ref().map(|(_, tree)| &**tree)
    }
}

/// Gives the memory freed since the last call back to the system when
/// glibc's malloc is the allocator (the library's own tests, embedders): a
/// burst of writes leaves the appliers' and sled's freed buffers in glibc's
/// per-thread arenas, which glibc keeps (after one million 100-byte SETs
/// with `--maxmemory 2mb`, RSS fell from 299 MB to 191 MB). The `strata`
/// binary runs on jemalloc, which returns pages by its own decay; there
/// glibc's heaps are empty and this costs one call. Called once the
/// appliers are idle, so no write waits on the arenas' locks meanwhile.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of glibc's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Lowers the calling thread's scheduling priority to the least (nice 19).
/// The appliers do the sled work the journal has made safe to defer: when
/// the cores are busy, commands go first and the backlog grows (up to its
/// bound, where writers wait); when they are not, the appliers catch up.
fn yield_to_commands() {
    // SAFETY: plain system calls on the calling thread, no memory involved.
    // On Linux the nice value belongs to the thread named by its id.
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19)
    };
    if result != 0 {
        tracing::debug!("warm tier: cannot lower the applier's priority");
    }
}

/// Which applier writes a journal record.
enum Owner {
    /// One applier: the record changes one key, or none.
    One(usize),
    /// Each applier the changes of its own keys: a record of several keys
    /// that names no collection generation, so no change's bookkeeping
    /// (garbage marks) depends on another's.
    EachKey,
    /// Part 0, between two barriers: records that change several trees
    /// or whose keys share a collection (RENAME, COPY, FLUSHDB, SWAPDB).
    All,
}

/// Which applier owns a key's single-key records.
fn applier_of(db: u32, key: &[u8]) -> usize {
    (record::key_hash(key) as usize ^ db as usize) % APPLIERS
}

fn decode_outbox_seq(raw: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(raw.try_into().ok()?))
}

fn decode_seq(raw: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}

/// The first key record at or after a random scan position, wrapping round
/// to the first one; `None` when the tree has no key record (or on a read
/// error, which the caller's next write will meet and report).
fn random_record(tree: &sled::Tree) -> Option<(sled::IVec, sled::IVec)> {
    let start = record::record_key_from(rand::random());
    let end = [KEY_PREFIX + 1];
    tree.range(start.as_slice()..end.as_slice())
        .next()
        .or_else(|| tree.scan_prefix([KEY_PREFIX]).next())?
        .ok()
}

fn describe_sled_error(error: &sled::Error) -> String {
    match error {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock") =>
        {
            "the directory is locked by another process (is another strata using it?)".into()
        }
        sled::Error::Io(io) => format!("I/O error: {io}"),
        sled::Error::Corruption { .. } => format!("the files are corrupt ({error})"),
        other => other.to_string(),
    }
}

fn drop_unmapped_trees(db: &sled::Db, names: &[Vec<u8>]) {
    let orphans: Vec<_> = db
        .tree_names()
        .into_iter()
        .filter(|name| {
            name.as_ref() != META_TREE
                && name.as_ref() != OUTBOX_TREE
                && name.as_ref() != DEAD_LETTER_TREE
                && name.as_ref() != b"__sled__default"
                && !names.iter().any(|n| n.as_slice() == name.as_ref())
        })
        .collect();
    if orphans.is_empty() {
        return;
    }
    let db = db.clone();
    std::thread::spawn(move || {
        for name in orphans {
            let _ = db.drop_tree(name);
        }
    });
}

fn encode_names(names: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name);
    }
    out
}

fn decode_names(mut raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    while !raw.is_empty() {
        let len = u32::from_le_bytes(raw.get(..4)?.try_into().ok()?) as usize;
        names.push(raw.get(4..4 + len)?.to_vec());
        raw = raw.get(4 + len..)?;
    }
    Some(names)
}

fn encode_clean(version: u64, figures: &[(Vec<u8>, [i64; 3])]) -> Vec<u8> {
    let mut out = version.to_le_bytes().to_vec();
    for (name, f) in figures {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name);
        for value in f {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out
}

type CleanFigures = Vec<(Vec<u8>, [i64; 3])>;

fn decode_clean(raw: &[u8]) -> Option<(u64, CleanFigures)> {
    let version = u64::from_le_bytes(raw.get(..8)?.try_into().ok()?);
    let mut rest = raw.get(8..)?;
    let mut figures = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let name = rest.get(4..4 + len)?.to_vec();
        let mut f = [0i64; 3];
        for (i, value) in f.iter_mut().enumerate() {
            let at = 4 + len + i * 8;
            *value = i64::from_le_bytes(rest.get(at..at + 8)?.try_into().ok()?);
        }
        figures.push((name, f));
        rest = rest.get(4 + len + 24..)?;
    }
    Some((version, figures))
}

/// sled's log segment: the guard keeps this much free beyond `min-free-disk`.
const SLED_SEGMENT: u64 = 8 << 20;

/// Keeps sled away from a full disk: writes are refused while free space is
/// under `min-free-disk` plus one sled segment, and accepted again once
/// there is room.
struct DiskGuard {
    dir: PathBuf,
    min_free: AtomicU64,
    free: AtomicU64,
    /// Bytes written since the free space was last read.
    spent: AtomicU64,
    low: AtomicBool,
    /// A sled I/O error: permanent for this process.
    error: Mutex<Option<String>>,
    has_error: AtomicBool,
}

impl DiskGuard {
    fn new(dir: PathBuf, min_free: u64) -> DiskGuard {
        DiskGuard {
            dir,
            min_free: AtomicU64::new(min_free),
            free: AtomicU64::new(u64::MAX),
            spent: AtomicU64::new(0),
            low: AtomicBool::new(false),
            error: Mutex::new(None),
            has_error: AtomicBool::new(false),
        }
    }

    fn refresh(&self) {
        let Ok(free) = fs2::available_space(&self.dir) else {
            return;
        };
        self.free.store(free, Ordering::Relaxed);
        self.spent.store(0, Ordering::Relaxed);
        // sled writes its log a segment (8 MiB) at a time: that much must
        // stay free beyond the bound, or a segment started just above it
        // hits a full disk.
        let low = free < self.min_free.load(Ordering::Relaxed) + SLED_SEGMENT;
        if self.low.swap(low, Ordering::Relaxed) != low {
            if low {
                tracing::warn!("warm tier: {free} bytes free on disk; refusing writes");
            } else {
                tracing::warn!("warm tier: the disk has room again; accepting writes");
            }
        }
    }

    /// Re-reads free space early when writes may have used a good part of
    /// the margin since the last reading.
    fn spend(&self, bytes: u64) {
        let spent = self.spent.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let free = self.free.load(Ordering::Relaxed);
        let margin = free.saturating_sub(self.min_free.load(Ordering::Relaxed) + SLED_SEGMENT);
        if spent > margin / 8 {
            self.refresh();
        }
    }

    fn fail(&self, reason: String) {
        let mut error = self.error.lock();
        if error.is_none() {
            *error = Some(reason);
            self.has_error.store(true, Ordering::SeqCst);
        }
    }

    fn failed(&self) -> bool {
        self.has_error.load(Ordering::Relaxed)
    }

    fn refusal(&self) -> Option<String> {
        if self.has_error.load(Ordering::Relaxed) {
            return self.error.lock().clone();
        }
        if self.low.load(Ordering::Relaxed) {
            return Some(format!(
                "the disk of {} has {} bytes free, under min-free-disk ({})",
                self.dir.display(),
                self.free.load(Ordering::Relaxed),
                self.min_free.load(Ordering::Relaxed)
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> WarmOptions {
        WarmOptions {
            dir: dir.to_path_buf(),
            databases: 2,
            cache_size: 8 << 20,
            fsync: FsyncPolicy::EverySec,
            max_disk: 0,
            min_free_disk: 0,
        }
    }

    #[test]
    fn records_survive_a_reopen_with_their_figures() {
        let dir = tempfile::tempdir().unwrap();
        {
            let warm = Warm::open(&options(dir.path())).unwrap();
            warm.put(0, b"a", KIND_STRING, None, b"1");
            warm.put(0, b"b", KIND_STRING, Some(u64::MAX / 2), b"2");
            warm.put(1, b"a", KIND_STRING, None, b"other db");
            warm.put(0, b"a", KIND_STRING, Some(u64::MAX / 4), b"3");
            warm.delete(0, b"b");
            assert_eq!((warm.dbsize(0), warm.volatile(0)), (1, 1));
        }
        let warm = Warm::open(&options(dir.path())).unwrap();
        let found = warm.get(0, b"a").unwrap();
        assert_eq!(
            (found.payload.as_ref(), found.expire_at),
            (&b"3"[..], Some(u64::MAX / 4))
        );
        assert_eq!(warm.get(1, b"a").unwrap().payload.as_ref(), b"other db");
        assert_eq!(warm.get(0, b"b"), None);
        assert_eq!(
            (warm.dbsize(0), warm.volatile(0), warm.dbsize(1)),
            (1, 1, 1)
        );
    }

    #[test]
    fn without_the_clean_marker_the_figures_are_recounted() {
        let dir = tempfile::tempdir().unwrap();
        let figures = {
            let warm = Warm::open(&options(dir.path())).unwrap();
            for i in 0..50u32 {
                let deadline = (i % 5 == 0).then_some(1 << 50);
                warm.put(0, &i.to_be_bytes(), KIND_STRING, deadline, b"v");
            }
            warm.delete(0, &7u32.to_be_bytes());
            warm.pipeline.catch_up();
            let t = warm.tree(0).figures();
            t
        };
        {
            // What a crash leaves: the records without the marker.
            let raw = sled::Config::new().path(dir.path()).open().unwrap();
            raw.open_tree(META_TREE).unwrap().remove(CLEAN_KEY).unwrap();
            raw.flush().unwrap();
        }
        let warm = Warm::open(&options(dir.path())).unwrap();
        assert_eq!(warm.tree(0).figures(), figures);
        assert_eq!((warm.dbsize(0), warm.volatile(0)), (49, 10));
    }

    /// What a crash leaves behind: journal records sled never got.
    fn write_journal(dir: &Path, first_seq: u64, ops: &[Op<'_>]) {
        let mut buf = Vec::new();
        for op in ops {
            op.encode(&mut buf);
        }
        let mut segment = journal::Segment::create(&journal::dir(dir), first_seq).unwrap();
        segment.append(&buf).unwrap();
        // A torn tail: half of one more record.
        let mut torn = Vec::new();
        Op::Delete { db: 0, key: b"a" }.encode(&mut torn);
        segment.append(&torn[..torn.len() / 2]).unwrap();
    }

    fn envelope(key: &[u8], expire_at: Option<u64>, payload: &[u8]) -> Vec<u8> {
        let header = Header {
            kind: KIND_STRING,
            expire_at,
            version: 1,
        };
        record::encode(key, header, payload).to_vec()
    }

    #[test]
    fn replaying_an_older_delete_leaves_the_live_collection_unmarked() {
        let dir = tempfile::tempdir().unwrap();
        let generation = 1 << 40;
        let live = list_envelope(b"l", generation, 1);
        {
            let warm = Warm::open(&options(dir.path())).unwrap();
            let (element_key, element_record) =
                element(generation, crate::keyspace::types::LIST_ORIGIN);
            warm.apply(
                0,
                &[(
                    b"l",
                    Some(Record {
                        kind: KIND_LIST,
                        expire_at: None,
                        payload: record::decode(b"l", &live).unwrap().1,
                    }),
                )],
                &[(element_key, Some(element_record))],
                None,
            );
        }
        // sled holds the list; the journal still has the DEL of an older
        // list under the key and the record that created this one.
        write_journal(
            dir.path(),
            1 << 30,
            &[
                Op::Delete { db: 0, key: b"l" },
                Op::Put {
                    db: 0,
                    key: b"l",
                    raw: &live,
                },
            ],
        );
        let warm = Warm::open(&options(dir.path())).unwrap();
        let tree = warm.tree(0);
        assert!(!tree
            .tree
            .contains_key(collections::garbage_key(generation))
            .unwrap());
        assert_eq!(
            warm.load_elements(0, b"l", generation).map(|e| e.len()),
            Some(1)
        );
    }

    #[test]
    fn after_a_crash_the_journal_is_replayed_into_sled() {
        let dir = tempfile::tempdir().unwrap();
        {
            let warm = Warm::open(&options(dir.path())).unwrap();
            warm.put(1, b"old", KIND_STRING, None, b"flushed away");
        }
        let (a, b, c) = (
            envelope(b"a", None, b"1"),
            envelope(b"b", Some(1 << 50), b"2"),
            envelope(b"c", None, b"3"),
        );
        write_journal(
            dir.path(),
            7,
            &[
                Op::Put {
                    db: 0,
                    key: b"a",
                    raw: &a,
                },
                Op::FlushDb {
                    db: 1,
                    name: b"db:1:replayed",
                    background: false,
                },
                Op::Batch {
                    db: 1,
                    changes: vec![(b"b", Some(&b)), (b"c", Some(&c))],
                    elements: Vec::new(),
                    outbox: None,
                },
                Op::Delete { db: 1, key: b"c" },
                Op::SwapDb { a: 0, b: 1 },
            ],
        );
        let warm = Warm::open(&options(dir.path())).unwrap();
        assert_eq!(warm.get(1, b"a").unwrap().payload.as_ref(), b"1");
        assert_eq!(warm.get(0, b"b").unwrap().expire_at, Some(1 << 50));
        assert_eq!(warm.get(0, b"c"), None);
        assert_eq!(warm.get(0, b"old"), None);
        assert_eq!(
            (warm.dbsize(0), warm.volatile(0), warm.dbsize(1)),
            (1, 1, 1)
        );
        // The journal is gone once sled holds it, and new records follow on.
        let files = journal::segments(&journal::dir(dir.path())).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, 12);
    }

    #[test]
    fn replay_skips_what_a_swap_or_flush_already_put_in_sled() {
        let dir = tempfile::tempdir().unwrap();
        {
            let warm = Warm::open(&options(dir.path())).unwrap();
            warm.put(0, b"x", KIND_STRING, None, b"in 0");
        }
        let x = envelope(b"y", None, b"before the swap");
        // sled already holds records 1..=2 (the swap stored its number);
        // replaying the swap again would undo it.
        let raw = sled::Config::new().path(dir.path()).open().unwrap();
        let meta = raw.open_tree(META_TREE).unwrap();
        let mut names = decode_names(&meta.get(DBMAP_KEY).unwrap().unwrap()).unwrap();
        names.swap(0, 1);
        meta.insert(DBMAP_KEY, encode_names(&names)).unwrap();
        meta.insert(JOURNAL_KEY, &2u64.to_le_bytes()[..]).unwrap();
        raw.flush().unwrap();
        drop((meta, raw));
        write_journal(
            dir.path(),
            1,
            &[
                Op::Put {
                    db: 0,
                    key: b"y",
                    raw: &x,
                },
                Op::SwapDb { a: 0, b: 1 },
            ],
        );
        let warm = Warm::open(&options(dir.path())).unwrap();
        assert_eq!(warm.get(1, b"x").unwrap().payload.as_ref(), b"in 0");
        assert_eq!(warm.get(0, b"x"), None);
        assert_eq!(warm.get(0, b"y"), None);
        assert_eq!(warm.get(1, b"y"), None);
    }

    #[test]
    fn reads_see_writes_the_applier_has_not_reached() {
        let dir = tempfile::tempdir().unwrap();
        let warm = Warm::open(&options(dir.path())).unwrap();
        for round in 0..200u32 {
            let value = round.to_string();
            warm.put(0, b"k", KIND_STRING, None, value.as_bytes());
            assert_eq!(
                warm.get(0, b"k").unwrap().payload.as_ref(),
                value.as_bytes()
            );
            warm.delete(0, b"k");
            assert_eq!(warm.get(0, b"k"), None);
            warm.apply(
                0,
                &[(
                    b"k",
                    Some(Record {
                        kind: KIND_STRING,
                        expire_at: None,
                        payload: value.as_bytes(),
                    }),
                )],
                &[],
                None,
            );
            assert_eq!(
                warm.get(0, b"k").unwrap().payload.as_ref(),
                value.as_bytes()
            );
        }
        assert_eq!(warm.dbsize(0), 1);
    }

    #[test]
    fn outbox_records_wait_until_shipped_and_dead_letters_stay() {
        let dir = tempfile::tempdir().unwrap();
        let record = Record {
            kind: KIND_STRING,
            expire_at: None,
            payload: b"v",
        };
        {
            let warm = Warm::open(&options(dir.path())).unwrap();
            for seq in [10, 11, 12] {
                let records = format!("records {seq}");
                warm.apply(
                    0,
                    &[(b"k", Some(record))],
                    &[],
                    Some((seq, records.as_bytes())),
                );
            }
            warm.catch_up();
            assert_eq!(warm.outbox_pending().len(), 3);
            warm.outbox_shipped(11);
            let pending = warm.outbox_pending();
            assert_eq!(pending, [(12, b"records 12".to_vec())]);
            // A record the drainer shipped before the applier reached it
            // is never stored.
            warm.apply(0, &[(b"k", Some(record))], &[], Some((5, b"old")));
            warm.dead_letter(12, b"records 12", "refused");
            warm.catch_up();
            assert_eq!(warm.outbox_pending().len(), 1);
            assert_eq!(warm.dead_letter_count(), 1);
            // Dropped: a clean close stores what is still unshipped.
        }
        let warm = Warm::open(&options(dir.path())).unwrap();
        let pending: Vec<u64> = warm.outbox_pending().iter().map(|p| p.0).collect();
        // A parked record may still be pending: shipping is idempotent at
        // the source, so a repeat is harmless.
        assert!(pending.contains(&12), "{pending:?}");
        assert_eq!(
            warm.dead_letters(10),
            [(12, "refused".to_string(), b"records 12".to_vec())]
        );
    }

    #[test]
    fn outbox_records_reach_sled_only_if_a_checkpoint_finds_them_unshipped() {
        let dir = tempfile::tempdir().unwrap();
        let record = Record {
            kind: KIND_STRING,
            expire_at: None,
            payload: b"v",
        };
        let on_disk = |warm: &Warm| -> Vec<u64> {
            warm.store
                .outbox
                .iter()
                .keys()
                .map(|key| decode_outbox_seq(&key.unwrap()).unwrap())
                .collect()
        };
        {
            let warm = Warm::open(&options(dir.path())).unwrap();
            for seq in [20, 21, 22] {
                warm.apply(0, &[(b"k", Some(record))], &[], Some((seq, b"r")));
            }
            warm.catch_up();
            warm.outbox_shipped(20);
            assert_eq!(on_disk(&warm), Vec::<u64>::new());
            let pending: Vec<u64> = warm.outbox_pending().iter().map(|p| p.0).collect();
            assert_eq!(pending, [21, 22]);
            // The checkpoint stores what is still unshipped before it lets
            // the journal go.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while on_disk(&warm).is_empty() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(on_disk(&warm), [21, 22]);
            warm.outbox_shipped(21);
            assert_eq!(on_disk(&warm), [22]);
            warm.apply(0, &[(b"k", Some(record))], &[], Some((23, b"r")));
            warm.catch_up();
            // A clean close deletes the journal: it stores 23 first.
        }
        let warm = Warm::open(&options(dir.path())).unwrap();
        let pending: Vec<u64> = warm.outbox_pending().iter().map(|p| p.0).collect();
        assert_eq!(pending, [22, 23]);
        warm.outbox_shipped(23);
        assert_eq!(on_disk(&warm), Vec::<u64>::new());
        assert_eq!(warm.outbox_pending(), []);
    }

    #[test]
    fn a_batch_applies_puts_and_deletes_with_their_figures() {
        let dir = tempfile::tempdir().unwrap();
        let warm = Warm::open(&options(dir.path())).unwrap();
        warm.put(0, b"a", KIND_STRING, Some(1 << 50), b"1");
        warm.put(0, b"b", KIND_STRING, None, b"2");
        let record = |payload: &'static [u8], expire_at| Record {
            kind: KIND_STRING,
            expire_at,
            payload,
        };
        warm.apply(
            0,
            &[
                (b"a", None),
                (b"c", Some(record(b"3", Some(1 << 51)))),
                (b"b", Some(record(b"4", None))),
            ],
            &[],
            None,
        );
        assert_eq!(warm.get(0, b"a"), None);
        assert_eq!(warm.get(0, b"b").unwrap().payload.as_ref(), b"4");
        assert_eq!(warm.get(0, b"c").unwrap().expire_at, Some(1 << 51));
        assert_eq!((warm.dbsize(0), warm.volatile(0)), (2, 1));
        // The index holds only c's deadline now.
        assert_eq!(warm.due_expiries(0, u64::MAX - 1, 10).len(), 1);
        let figures = warm.tree(0).figures();
        warm.tree(0).recount();
        assert_eq!(warm.tree(0).figures(), figures);
    }

    /// A list's envelope: metadata of `generation` holding `len` elements.
    fn list_envelope(key: &[u8], generation: u64, len: u64) -> Vec<u8> {
        let mut meta = CollectionMeta::new(Kind::List, generation);
        meta.len = len;
        meta.list_tail = meta.list_head + len;
        let header = Header {
            kind: KIND_LIST,
            expire_at: None,
            version: 1,
        };
        record::encode(key, header, &meta.encode()).to_vec()
    }

    fn element(generation: u64, position: u64) -> (Vec<u8>, Vec<u8>) {
        let key = collections::list_index_key(generation, position);
        let record = collections::element_record(&key, b"item");
        (key, record)
    }

    fn dump(warm: &Warm) -> Vec<(sled::IVec, sled::IVec)> {
        warm.tree(0)
            .tree
            .iter()
            .map(|entry| entry.unwrap())
            .collect()
    }

    #[test]
    fn gathered_records_leave_sled_as_one_at_a_time_would() {
        let (gen_a, gen_b, gen_c) = (1 << 40, (1 << 40) + 1, (1 << 40) + 2);
        let (a1, a2, a3) = (element(gen_a, 1), element(gen_a, 2), element(gen_a, 3));
        let (b1, c1) = (element(gen_b, 1), element(gen_c, 1));
        let list_a2 = list_envelope(b"list", gen_a, 2);
        let list_a3 = list_envelope(b"list", gen_a, 3);
        let list_a2_again = list_envelope(b"list", gen_a, 2);
        let (list_b, list_c) = (
            list_envelope(b"list", gen_b, 1),
            list_envelope(b"list", gen_c, 1),
        );
        let (s1, s2, s3) = (
            envelope(b"s", Some(1000), b"1"),
            envelope(b"s", Some(2000), b"2"),
            envelope(b"s", Some(3000), b"3"),
        );
        let t = envelope(b"t", Some(4000), b"short-lived");
        let moved_c = list_envelope(b"moved", gen_c, 1);
        let x = envelope(b"x", None, b"after the rename");
        let before = [
            Op::Batch {
                db: 0,
                changes: vec![(b"list", Some(&list_a2))],
                elements: vec![(&a1.0, Some(&a1.1)), (&a2.0, Some(&a2.1))],
                outbox: None,
            },
            Op::Put {
                db: 0,
                key: b"s",
                raw: &s1,
            },
        ];
        let run = [
            // A push and a pop: the metadata changes twice, generation A stays.
            Op::Batch {
                db: 0,
                changes: vec![(b"list", Some(&list_a3))],
                elements: vec![(&a3.0, Some(&a3.1))],
                outbox: Some((7, b"for the source")),
            },
            Op::Batch {
                db: 0,
                changes: vec![(b"list", Some(&list_a2_again))],
                elements: vec![(&a1.0, None)],
                outbox: None,
            },
            Op::Put {
                db: 0,
                key: b"s",
                raw: &s2,
            },
            // The list is dropped, made again (B), and replaced (C): A and
            // B are garbage, C is not.
            Op::Delete {
                db: 0,
                key: b"list",
            },
            Op::Batch {
                db: 0,
                changes: vec![(b"list", Some(&list_b))],
                elements: vec![(&b1.0, Some(&b1.1))],
                outbox: None,
            },
            Op::Batch {
                db: 0,
                changes: vec![(b"list", Some(&list_c))],
                elements: vec![(&c1.0, Some(&c1.1))],
                outbox: None,
            },
            Op::Unindex {
                db: 0,
                deadline: 1000,
                key: b"s",
            },
            Op::Put {
                db: 0,
                key: b"t",
                raw: &t,
            },
            Op::Put {
                db: 0,
                key: b"s",
                raw: &s3,
            },
            Op::Delete { db: 0, key: b"t" },
            // RENAME (a barrier, applied by part 0 with what follows it):
            // generation C moves to another key and stays live.
            Op::Batch {
                db: 0,
                changes: vec![(b"list", None), (b"moved", Some(&moved_c))],
                elements: Vec::new(),
                outbox: None,
            },
            Op::Put {
                db: 0,
                key: b"x",
                raw: &x,
            },
        ];
        let (dir_one, dir_gathered) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let one = Warm::open(&options(dir_one.path())).unwrap();
        let gathered = Warm::open(&options(dir_gathered.path())).unwrap();
        for (seq, op) in before.iter().enumerate() {
            one.store.apply_op(seq as u64 + 1, op);
            gathered.store.apply_op(seq as u64 + 1, op);
        }
        for (seq, op) in run.iter().enumerate() {
            one.store.apply_op(seq as u64 + 10, op);
        }
        let mut bytes = Vec::new();
        for op in &run {
            op.encode(&mut bytes);
        }
        let chunk = Arc::new(Chunk {
            first_seq: 10,
            bytes,
            finished: Default::default(),
        });
        let barrier = std::sync::Barrier::new(1);
        for part in 0..APPLIERS {
            gathered
                .store
                .apply_part(std::slice::from_ref(&chunk), part, &barrier);
        }

        assert_eq!(dump(&gathered), dump(&one));
        assert_eq!(gathered.outbox_pending(), [(7, b"for the source".to_vec())]);
        let figures = gathered.tree(0).figures();
        assert_eq!(figures, one.tree(0).figures());
        gathered.tree(0).recount();
        assert_eq!(gathered.tree(0).figures(), figures);
        assert_eq!(figures[..2], [3, 1]);
        let tree = gathered.tree(0).tree.clone();
        for (generation, garbage) in [(gen_a, true), (gen_b, true), (gen_c, false)] {
            let marked = tree.contains_key(collections::garbage_key(generation));
            assert_eq!(marked.unwrap(), garbage, "generation {generation}");
        }
        assert_eq!(gathered.store.max_generation.load(Ordering::Relaxed), gen_c);
        // Only s's last deadline is indexed.
        assert_eq!(
            gathered.due_expiries(0, u64::MAX - 1, 10),
            vec![(3000, Bytes::from_static(b"s"))]
        );
    }

    #[test]
    fn a_record_of_several_string_keys_is_shared_between_the_appliers() {
        let dir = tempfile::tempdir().unwrap();
        let warm = Warm::open(&options(dir.path())).unwrap();
        let keys: Vec<Vec<u8>> = (0..16u8).map(|i| vec![b'k', i]).collect();
        let values: Vec<Vec<u8>> = keys.iter().map(|key| envelope(key, None, b"v")).collect();
        // The list's new key belongs to part 1, so only a record part 0
        // applies whole can put it there while part 1 does nothing.
        let renamed = (0..)
            .map(|i: u32| format!("renamed{i}").into_bytes())
            .find(|key| applier_of(0, key) == 1)
            .unwrap();
        let generation = 1 << 40;
        let list = list_envelope(&renamed, generation, 1);
        let run = [
            // MSET: each applier writes its own keys, with no barrier.
            Op::Batch {
                db: 0,
                changes: keys
                    .iter()
                    .zip(&values)
                    .map(|(key, raw)| (key.as_slice(), Some(raw.as_slice())))
                    .collect(),
                elements: Vec::new(),
                outbox: None,
            },
            // RENAME of a list: both keys name one generation, so part 0
            // applies the whole record between barriers.
            Op::Batch {
                db: 0,
                changes: vec![(b"list", None), (&renamed, Some(&list))],
                elements: Vec::new(),
                outbox: None,
            },
        ];
        let mut bytes = Vec::new();
        for op in &run {
            op.encode(&mut bytes);
        }
        let chunk = Arc::new(Chunk {
            first_seq: 1,
            bytes,
            finished: Default::default(),
        });
        let barrier = std::sync::Barrier::new(1);
        warm.store
            .apply_part(std::slice::from_ref(&chunk), 0, &barrier);
        for key in &keys {
            let owner = applier_of(0, key);
            assert_eq!(warm.get(0, key).is_some(), owner == 0, "key {key:?}");
        }
        assert!(warm.get(0, &renamed).is_some());
        assert!(keys.iter().any(|key| applier_of(0, key) == 1));

        warm.store
            .apply_part(std::slice::from_ref(&chunk), 1, &barrier);
        assert!(keys.iter().all(|key| warm.get(0, key).is_some()));
        assert_eq!(warm.tree(0).figures()[0], keys.len() as i64 + 1);
        // The renamed list's generation is live: nothing marked it.
        let tree = warm.tree(0).tree.clone();
        assert!(!tree
            .contains_key(collections::garbage_key(generation))
            .unwrap());
    }

    #[test]
    fn appliers_grouping_chunks_differently_meet_at_the_same_barriers() {
        let dir = tempfile::tempdir().unwrap();
        let warm = Warm::open(&options(dir.path())).unwrap();
        let (a, b, c) = (
            envelope(b"a", None, b"1"),
            envelope(b"b", None, b"2"),
            envelope(b"c", None, b"3"),
        );
        let mset = |first: &[u8], second: &[u8]| {
            let mut bytes = Vec::new();
            Op::Put {
                db: 0,
                key: b"c",
                raw: &c,
            }
            .encode(&mut bytes);
            // Multi-key records at the end of one chunk and the start of
            // the next: a barrier run cut by the chunk boundary.
            Op::Batch {
                db: 0,
                changes: vec![(b"a", Some(first)), (b"b", Some(second))],
                elements: Vec::new(),
                outbox: None,
            }
            .encode(&mut bytes);
            bytes
        };
        let (a2, b2) = (envelope(b"a", None, b"2"), envelope(b"b", None, b"1"));
        let mut second = Vec::new();
        Op::Batch {
            db: 0,
            changes: vec![(b"a", Some(&a2)), (b"b", Some(&b2))],
            elements: Vec::new(),
            outbox: None,
        }
        .encode(&mut second);
        let chunks = [
            Arc::new(Chunk {
                first_seq: 1,
                bytes: mset(&a, &b),
                finished: Default::default(),
            }),
            Arc::new(Chunk {
                first_seq: 3,
                bytes: second,
                finished: Default::default(),
            }),
        ];
        let barrier = Arc::new(std::sync::Barrier::new(APPLIERS));
        let (done_tx, done_rx) = mpsc::channel();
        for part in 0..APPLIERS {
            let (store, chunks, barrier, done) = (
                warm.store.clone(),
                chunks.clone(),
                barrier.clone(),
                done_tx.clone(),
            );
            std::thread::spawn(move || {
                if part == 0 {
                    store.apply_part(&chunks, part, &barrier);
                } else {
                    for chunk in &chunks {
                        store.apply_part(std::slice::from_ref(chunk), part, &barrier);
                    }
                }
                let _ = done.send(part);
            });
        }
        for _ in 0..APPLIERS {
            let finished = done_rx.recv_timeout(Duration::from_secs(20));
            assert!(finished.is_ok(), "the appliers wait at different barriers");
        }
        assert_eq!(warm.get(0, b"a").unwrap().payload.as_ref(), b"2");
        assert_eq!(warm.get(0, b"b").unwrap().payload.as_ref(), b"1");
        assert_eq!(warm.tree(0).figures()[0], 3);
    }

    #[test]
    fn corrupt_records_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let warm = Warm::open(&options(dir.path())).unwrap();
        warm.put(0, b"k", KIND_STRING, None, b"value");
        warm.pipeline.catch_up();
        let tree = warm.tree(0).tree.clone();
        let key = record::record_key(b"k");
        let mut raw = tree.get(&key).unwrap().unwrap().to_vec();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        tree.insert(&key, raw).unwrap();
        assert_eq!(warm.get(0, b"k"), None);
        tree.insert(&key, &b"short"[..]).unwrap();
        assert_eq!(warm.get(0, b"k"), None);
        assert_eq!(warm.counters().crc_errors.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn scan_expiry_and_flush() {
        let dir = tempfile::tempdir().unwrap();
        let warm = Warm::open(&options(dir.path())).unwrap();
        for i in 0..100u32 {
            let deadline = (i < 10).then_some(1000 + u64::from(i));
            warm.put(0, format!("k{i}").as_bytes(), KIND_STRING, deadline, b"v");
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            let (next, keys) = warm.scan(0, cursor, 7, 0, |_, _| true);
            for key in keys {
                assert!(seen.insert(key));
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 100);
        assert_eq!(warm.keys(0, 2000, |_, _| true).len(), 90);
        let due = warm.due_expiries(0, 1004, 100);
        assert_eq!(due.len(), 5);
        for (at, key) in due {
            assert!(warm.expire_due(0, at, &key, 1004));
        }
        assert_eq!((warm.dbsize(0), warm.volatile(0)), (95, 5));
        assert!(warm.random_key(0, 0).is_some());
        warm.swap_db(0, 1);
        assert_eq!((warm.dbsize(0), warm.dbsize(1)), (0, 95));
        warm.flush_db(1, false);
        assert_eq!(warm.dbsize(1), 0);
        assert_eq!(warm.random_key(1, 0), None);
    }

    #[test]
    fn always_waits_for_a_flush_that_covers_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.fsync = FsyncPolicy::Always;
        let warm = Warm::open(&opts).unwrap();
        assert_eq!(warm.durability_target(false), None);
        warm.put(0, b"k", KIND_STRING, None, b"v");
        let target = warm.durability_target(false).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(warm.wait_durable(target));
        assert!(warm.pipeline.durable().writes >= 1);
        assert_eq!(warm.durability_target(false), None);
        // SAVE with nothing pending still waits for a flush of its own, and
        // a write after it is not taken as covered.
        let flushes = warm.pipeline.durable().flushes;
        let forced = warm.durability_target(true).unwrap();
        runtime.block_on(warm.wait_durable(forced));
        assert!(warm.pipeline.durable().flushes > flushes);
        warm.put(0, b"k2", KIND_STRING, None, b"v");
        let after = warm.durability_target(false).unwrap();
        assert_eq!(after, DurableWait::Writes(2));
        runtime.block_on(warm.wait_durable(after));
        assert!(warm.pipeline.durable().writes >= 2);
    }

    #[test]
    fn damaged_files_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        {
            let warm = Warm::open(&options(dir.path())).unwrap();
            for i in 0..2000u32 {
                warm.put(0, &i.to_be_bytes(), KIND_STRING, None, &[7; 64]);
            }
        }
        let pristine = std::fs::read(dir.path().join("db")).unwrap();
        for seed in 0..12usize {
            let mut damaged = pristine.clone();
            let stride = damaged.len() / 13 + 1;
            for i in (seed * 97 % stride..damaged.len()).step_by(stride) {
                damaged[i] ^= 0x5a;
            }
            std::fs::write(dir.path().join("db"), &damaged).unwrap();
            let _ = std::fs::remove_file(dir.path().join("blobs"));
            // Either it opens (sled drops torn tails) and reads misses or
            // records, or it is a clear error; never a panic out of here.
            match std::panic::catch_unwind(|| Warm::open(&options(dir.path()))) {
                Ok(Ok(warm)) => {
                    for i in 0..2000u32 {
                        let _ = warm.get(0, &i.to_be_bytes());
                    }
                }
                Ok(Err(message)) => assert!(message.contains("cannot open the warm tier")),
                Err(_) => panic!("opening damaged files panicked (seed {seed})"),
            }
        }
    }

    #[test]
    fn garbage_in_place_of_sleds_files_is_a_clear_error() {
        // A directory locked by another strata is tested on the binary
        // (tests/durability.rs): the lock belongs to the process.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("conf"), b"\xff\xfe not a config").unwrap();
        std::fs::write(other.path().join("db"), b"garbage").unwrap();
        match Warm::open(&options(other.path())) {
            Err(message) => assert!(message.contains("cannot open the warm tier"), "{message}"),
            Ok(_) => panic!("opened a corrupt directory"),
        }
    }
}
