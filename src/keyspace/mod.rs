//! The keyspace: the only API commands see. It owns typed values, expiry
//! (lazy on access and an active sweep), and the tiers behind them.
//!
//! Today the hot tier (sharded in-memory tables with byte accounting) is the
//! only tier. Every read goes through [`Keyspace::read`] / [`Keyspace::read_many`]
//! and every change through a [`Txn`]: a lookup that misses memory and the
//! record of what a write changed both happen here, which is where the warm
//! tier plugs in without commands noticing.

mod shard;
mod value;

use std::cell::Cell;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use smallvec::SmallVec;

use shard::Shard;
pub use shard::ShardCounters;
pub use value::{Entry, Value, ValueType};

const SHARD_BITS: u32 = 5;
const SHARDS: usize = 1 << SHARD_BITS;
/// Most keys one shard's active sweep removes per tick, so a burst of
/// deadlines never stalls the shard's clients for long.
const SWEEP_BUDGET_PER_SHARD: usize = 200;

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
}

impl Db {
    fn new() -> Db {
        Db {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }
}

/// Options a session applies to its reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// `CLIENT NO-TOUCH on`: reads leave LRU/LFU information alone.
    pub no_touch: bool,
}

/// Totals over every shard, for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyspaceTotals {
    pub keys: u64,
    pub volatile: u64,
    pub bytes: u64,
    pub counters: ShardCounters,
}

/// One page of a SCAN.
pub struct ScanPage {
    pub cursor: u64,
    pub keys: Vec<Bytes>,
}

pub struct Keyspace {
    dbs: Box<[Db]>,
    hasher: foldhash::quality::FixedState,
    lfu_log_factor: u32,
}

impl Keyspace {
    pub fn new(databases: usize) -> Keyspace {
        Keyspace {
            dbs: (0..databases.max(1)).map(|_| Db::new()).collect(),
            hasher: foldhash::quality::FixedState::with_seed(rand::random()),
            lfu_log_factor: 10,
        }
    }

    pub fn databases(&self) -> usize {
        self.dbs.len()
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

    /// Reads one key: `f` sees the live entry or `None`. Counts a keyspace
    /// hit or miss and records the access.
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
        shard.purge_if_expired(hash, key, now);
        let touch = self.touch_for(options, now);
        f(shard.read(hash, key, touch))
    }

    /// What a read records of an access: nothing under `CLIENT NO-TOUCH`.
    fn touch_for(&self, options: ReadOptions, now_ms: u64) -> Option<(u32, u32)> {
        (!options.no_touch).then_some((secs_clock(now_ms), self.lfu_log_factor))
    }

    /// Looks at a key without counting a hit or miss or touching it
    /// (EXISTS-like inspection, OBJECT, TTL).
    pub fn peek<R>(&self, db: usize, key: &[u8], f: impl FnOnce(Option<&Entry>) -> R) -> R {
        let hash = self.hash(key);
        let mut shard = self.lock(db, hash);
        shard.purge_if_expired(hash, key, now_ms());
        f(shard.get(hash, key))
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
                    key, hash, guard, ..
                } = txn.keys[i];
                f(i, txn.guards[guard].read(hash, key, touch))
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
        let now = now_ms();
        let mut txn = Txn {
            keys: SmallVec::new(),
            guards: SmallVec::new(),
            now_ms: now,
            pending_resize: SmallVec::new(),
        };
        for (db, key) in keys {
            let hash = self.hash(key);
            // `guard` is fixed below, once every shard to lock is known.
            txn.keys.push(TxnKey {
                key,
                hash,
                guard: Self::shard_of(hash),
                db,
            });
        }
        // Shards are always locked in (db, shard) order, so two transactions never deadlock.
        let mut order: SmallVec<[(usize, usize); 4]> =
            txn.keys.iter().map(|k| (k.db, k.guard)).collect();
        order.sort_unstable();
        order.dedup();
        for &(db, shard) in &order {
            txn.guards.push(self.dbs[db].shards[shard].lock());
        }
        for key in txn.keys.iter_mut() {
            key.guard = order.binary_search(&(key.db, key.guard)).unwrap_or(0);
            txn.guards[key.guard].purge_if_expired(key.hash, key.key, now);
        }
        txn
    }

    /// Number of keys in `db` (keys past their deadline but not yet swept included, as Redis does).
    pub fn dbsize(&self, db: usize) -> usize {
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
        let mut out = Vec::new();
        for shard in self.dbs[db].shards.iter() {
            let shard = shard.lock();
            out.extend(
                shard
                    .iter()
                    .filter(|(key, entry)| {
                        !entry.is_expired(now) && (all || crate::glob::matches(pattern, key, false))
                    })
                    .map(|(key, _)| key.clone()),
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
        let mut keys = Vec::new();
        let mut visited = 0usize;
        let mut position = cursor;
        let mut shard_index = (cursor >> (64 - SHARD_BITS)) as usize;
        let mut next_cursor = 0u64;
        'shards: while shard_index < SHARDS {
            let shard = self.dbs[db].shards[shard_index].lock();
            let mut last_position = None;
            for (key_position, key) in shard.ordered_from(position) {
                // Keys that share a position are returned together, so the
                // cursor never splits them.
                if visited >= count && last_position != Some(*key_position) {
                    next_cursor = *key_position;
                    break 'shards;
                }
                visited += 1;
                last_position = Some(*key_position);
                let hash = key_position.rotate_right(27);
                let Some(entry) = shard.get(hash, key) else {
                    continue;
                };
                if entry.is_expired(now)
                    || value_type.is_some_and(|t| entry.value.value_type() != t)
                    || pattern.is_some_and(|p| !crate::glob::matches(p, key, false))
                {
                    continue;
                }
                keys.push(key.clone());
            }
            shard_index += 1;
            position = (shard_index as u64) << (64 - SHARD_BITS);
        }
        ScanPage {
            cursor: next_cursor,
            keys,
        }
    }

    /// A random live key, or `None` when `db` is empty.
    pub fn random_key(&self, db: usize) -> Option<Bytes> {
        let now = now_ms();
        // Expired keys found on the way are dropped; bounded so a database
        // full of expired keys cannot spin here.
        for _ in 0..100 {
            let start = rand::random::<usize>() % SHARDS;
            let mut candidate = None;
            for offset in 0..SHARDS {
                let index = (start + offset) % SHARDS;
                let shard = self.dbs[db].shards[index].lock();
                if shard.len() == 0 {
                    continue;
                }
                let base = (index as u64) << (64 - SHARD_BITS);
                let span = rand::random::<u64>() >> SHARD_BITS;
                let pick = shard
                    .ordered_from(base | span)
                    .next()
                    .filter(|(position, _)| (*position >> (64 - SHARD_BITS)) as usize == index)
                    .or_else(|| shard.ordered_from(base).next())
                    .cloned();
                candidate = pick.map(|(position, key)| (index, position, key));
                break;
            }
            let (index, position, key) = candidate?;
            let mut shard = self.dbs[db].shards[index].lock();
            let hash = position.rotate_right(27);
            if shard.purge_if_expired(hash, &key, now) {
                continue;
            }
            if shard.get(hash, &key).is_some() {
                return Some(key);
            }
        }
        None
    }

    pub fn flush_db(&self, db: usize, background: bool) {
        let old: Vec<Shard> = self.dbs[db]
            .shards
            .iter()
            .map(|shard| shard.lock().clear())
            .collect();
        drop_maybe_in_background(old, background);
    }

    pub fn flush_all(&self, background: bool) {
        let old: Vec<Shard> = self
            .dbs
            .iter()
            .flat_map(|db| db.shards.iter().map(|shard| shard.lock().clear()))
            .collect();
        drop_maybe_in_background(old, background);
    }

    /// Swaps two databases' contents atomically (every shard of both locked first).
    pub fn swap_db(&self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let (first, second) = (a.min(b), a.max(b));
        let mut first_guards: Vec<_> = self.dbs[first].shards.iter().map(|s| s.lock()).collect();
        let mut second_guards: Vec<_> = self.dbs[second].shards.iter().map(|s| s.lock()).collect();
        for (x, y) in first_guards.iter_mut().zip(second_guards.iter_mut()) {
            x.swap_contents(y);
        }
    }

    /// Removes expired keys from every shard, a bounded number per shard.
    pub fn sweep_expired(&self) -> usize {
        let now = now_ms();
        self.dbs
            .iter()
            .flat_map(|db| db.shards.iter())
            .map(|shard| shard.lock().sweep_expired(now, SWEEP_BUDGET_PER_SHARD))
            .sum()
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
        (keys, volatile, avg)
    }

    pub fn totals(&self) -> KeyspaceTotals {
        let mut totals = KeyspaceTotals::default();
        for db in self.dbs.iter() {
            for shard in db.shards.iter() {
                let shard = shard.lock();
                totals.keys += shard.len() as u64;
                totals.volatile += shard.volatile_count() as u64;
                totals.bytes += shard.bytes as u64;
                let c = shard.counters;
                totals.counters.hits += c.hits;
                totals.counters.misses += c.misses;
                totals.counters.expired += c.expired;
                totals.counters.changes += c.changes;
            }
        }
        totals
    }

    /// CONFIG RESETSTAT: zero hits, misses and expiry counts.
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
}

/// Keys locked for a change. Index `i` is the position of the key in the
/// list the transaction was opened with.
// Most commands touch one or two keys: those transactions allocate nothing.
pub struct Txn<'a> {
    keys: SmallVec<[TxnKey<'a>; 2]>,
    guards: SmallVec<[MutexGuard<'a, Shard>; 2]>,
    now_ms: u64,
    /// Entries handed out by `entry_mut`, re-measured when the transaction ends.
    pending_resize: SmallVec<[(usize, usize); 2]>,
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

    pub fn get(&self, i: usize) -> Option<&Entry> {
        let k = &self.keys[i];
        self.shard(i).get(k.hash, k.key)
    }

    pub fn value(&self, i: usize) -> Option<&Value> {
        self.get(i).map(|entry| &entry.value)
    }

    pub fn exists(&self, i: usize) -> bool {
        self.get(i).is_some()
    }

    /// Counts a keyspace hit or miss for key `i`, for commands that read
    /// through a write (GETDEL, GETEX, SET ... GET) as Redis's `lookupKeyRead` does.
    pub fn count_read(&mut self, i: usize) {
        let (shard, hash, key) = self.shard_mut(i);
        shard.read(hash, key, None);
    }

    /// The entry to change in place; its size is re-measured when the
    /// transaction ends.
    pub fn entry_mut(&mut self, i: usize) -> Option<&mut Entry> {
        let size = self
            .get(i)
            .map(|entry| entry.mem_size(self.keys[i].key.len()))?;
        if !self.pending_resize.iter().any(|(index, _)| *index == i) {
            self.pending_resize.push((i, size));
        }
        let (shard, hash, key) = self.shard_mut(i);
        shard.get_mut(hash, key)
    }

    /// Stores a value with the given absolute deadline, replacing what was there.
    pub fn insert(&mut self, i: usize, value: Value, expire_at: Option<u64>) -> Option<Entry> {
        let now_secs = secs_clock(self.now_ms);
        self.insert_entry(i, Entry::new(value, expire_at, now_secs))
    }

    pub fn insert_entry(&mut self, i: usize, entry: Entry) -> Option<Entry> {
        self.pending_resize.retain(|(index, _)| *index != i);
        let TxnKey {
            key, hash, guard, ..
        } = &self.keys[i];
        self.guards[*guard].insert(*hash, key, entry)
    }

    /// Replaces the value and keeps the key's TTL.
    pub fn replace_value(&mut self, i: usize, value: Value) {
        let expire_at = self.get(i).and_then(|entry| entry.expire_at);
        self.insert(i, value, expire_at);
    }

    pub fn remove(&mut self, i: usize) -> Option<Entry> {
        self.pending_resize.retain(|(index, _)| *index != i);
        let TxnKey {
            key, hash, guard, ..
        } = &self.keys[i];
        self.guards[*guard].remove(*hash, key)
    }

    /// Sets or clears the deadline; false when the key is absent.
    pub fn set_expire(&mut self, i: usize, expire_at: Option<u64>) -> bool {
        self.flush_resize(i);
        let TxnKey {
            key, hash, guard, ..
        } = &self.keys[i];
        self.guards[*guard].set_expire(*hash, key, expire_at)
    }

    fn flush_resize(&mut self, i: usize) {
        if let Some(position) = self
            .pending_resize
            .iter()
            .position(|(index, _)| *index == i)
        {
            let (_, old_size) = self.pending_resize.swap_remove(position);
            let TxnKey {
                key, hash, guard, ..
            } = &self.keys[i];
            self.guards[*guard].resize(*hash, key, old_size);
        }
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        while let Some((i, old_size)) = self.pending_resize.pop() {
            let TxnKey {
                key, hash, guard, ..
            } = &self.keys[i];
            self.guards[*guard].resize(*hash, key, old_size);
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
            if let Some(Entry {
                value: Value::Str(data),
                ..
            }) = txn.entry_mut(0)
            {
                *data = Bytes::from_static(b"x");
            }
        });
        assert!(ks.totals().bytes > 0);
        ks.write(0, b"a", |txn| txn.remove(0));
        assert_eq!(ks.totals().bytes, 0);
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
