//! WATCH: which connections watch which keys, and the mark a change leaves
//! on them (Redis's `touchWatchedKey`, `touchAllWatchedKeysInDb` and
//! `isWatchedKeyExpired`).
//!
//! Every change to a key reaches one of the hooks below while the key's
//! shard is locked: a [`Txn`] that changed it, an expiry (lazy or active),
//! a `max-disk` eviction or a memory-only one (both lose the key; evicting
//! to disk changes nothing), FLUSHDB/FLUSHALL and SWAPDB. WATCH registers
//! under that same shard lock, so a change is either before the WATCH or
//! marks the watcher. With nothing watched a hook costs one relaxed load.
//!
//! Lock order: keyspace shard, then the registry shard of the same index.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};

use super::{now_ms, Entry, Keyspace, Shard, Txn, SHARDS};

/// A connection's CAS mark (Redis's `CLIENT_DIRTY_CAS`): a key it watches
/// changed, so its next EXEC fails.
#[derive(Debug, Default)]
pub struct WatchFlag(AtomicBool);

impl WatchFlag {
    pub fn is_dirty(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn clear(&self) {
        self.0.store(false, Ordering::Release);
    }

    fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// One connection watching one key.
struct Watch {
    db: usize,
    hash: u64,
    flag: Arc<WatchFlag>,
    /// The key was past its deadline when watched: its deletion is then no
    /// change (Redis's `watchedKey.expired`).
    expired: bool,
}

/// One registry shard: each watched key and who watches it (in which database).
type WatchMap = HashMap<Bytes, Vec<Watch>>;

/// Every watch, in shards that follow the keyspace's (a key's hash picks
/// both), so a change locks the registry shard of its own keyspace shard only.
pub(super) struct Registry {
    /// Watches over all shards.
    count: AtomicUsize,
    shards: Box<[Mutex<WatchMap>]>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            count: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Registry {
    fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, WatchMap> {
        self.shards[Keyspace::shard_of(hash)].lock()
    }

    fn remove(&self, db: usize, hash: u64, key: &[u8], flag: &Arc<WatchFlag>) {
        let mut shard = self.shard(hash);
        let Some(watches) = shard.get_mut(key) else {
            return;
        };
        let before = watches.len();
        watches.retain(|w| !(w.db == db && Arc::ptr_eq(&w.flag, flag)));
        let removed = before - watches.len();
        if watches.is_empty() {
            shard.remove(key);
        }
        self.count.fetch_sub(removed, Ordering::Relaxed);
    }

    /// Redis's `touchWatchedKey`: the key changed, and `exists` says whether
    /// it is there now.
    fn touch(&self, db: usize, hash: u64, key: &[u8], exists: bool) {
        let mut shard = self.shard(hash);
        let Some(watches) = shard.get_mut(key) else {
            return;
        };
        for watch in watches.iter_mut().filter(|w| w.db == db) {
            if watch.expired && !exists {
                // An expired key deleted: logically nothing changed.
                watch.expired = false;
                continue;
            }
            watch.flag.mark();
        }
    }

    /// Every watched key of `db` as (hash, key).
    fn keys_of(&self, db: usize) -> Vec<(u64, Bytes)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            for (key, watches) in shard.lock().iter() {
                if let Some(w) = watches.iter().find(|w| w.db == db) {
                    out.push((w.hash, key.clone()));
                }
            }
        }
        out
    }
}

/// The keys one connection watches (Redis's `client->watched_keys`); they
/// are released when it is dropped.
pub struct WatchSet {
    flag: Arc<WatchFlag>,
    /// Set by the first WATCH.
    registry: Option<Arc<Registry>>,
    keys: Vec<(usize, u64, Bytes)>,
}

impl WatchSet {
    pub fn new(flag: Arc<WatchFlag>) -> WatchSet {
        WatchSet {
            flag,
            registry: None,
            keys: Vec::new(),
        }
    }

    pub fn flag(&self) -> &WatchFlag {
        &self.flag
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Redis's `unwatchAllKeys` (the CAS mark stays: callers clear it).
    pub fn release(&mut self) {
        if let Some(registry) = &self.registry {
            for (db, hash, key) in self.keys.drain(..) {
                registry.remove(db, hash, &key, &self.flag);
            }
        }
    }
}

impl Drop for WatchSet {
    fn drop(&mut self) {
        self.release();
    }
}

/// What a locked key looks like for WATCH: absent, or present and whether
/// past its deadline.
type Presence = Option<bool>;

impl Keyspace {
    /// WATCH one key of `db` (a key already in the set is left as it is).
    pub fn watch(&self, set: &mut WatchSet, db: usize, key: &[u8]) {
        if set.keys.iter().any(|(d, _, k)| *d == db && k == key) {
            return;
        }
        let hash = self.hash(key);
        let shard = self.lock(db, hash);
        let expired = self.presence(&shard, db, hash, key, now_ms()) == Some(true);
        let key = Bytes::copy_from_slice(key);
        self.watches
            .shard(hash)
            .entry(key.clone())
            .or_default()
            .push(Watch {
                db,
                hash,
                flag: set.flag.clone(),
                expired,
            });
        self.watches.count.fetch_add(1, Ordering::Relaxed);
        drop(shard);
        set.registry.get_or_insert_with(|| self.watches.clone());
        set.keys.push((db, hash, key));
    }

    /// Redis's `isWatchedKeyExpired`, run by EXEC: a watched key, alive
    /// when watched, is now past its deadline but not deleted yet.
    pub fn watched_key_expired(&self, set: &WatchSet) -> bool {
        let now = now_ms();
        set.keys.iter().any(|(db, hash, key)| {
            let was_expired = self.watches.shard(*hash).get(key).is_some_and(|watches| {
                watches
                    .iter()
                    .any(|w| w.db == *db && w.expired && Arc::ptr_eq(&w.flag, &set.flag))
            });
            !was_expired
                && self.presence(&self.lock(*db, *hash), *db, *hash, key, now) == Some(true)
        })
    }

    /// Whether the key is there (in either tier), and past its deadline.
    fn presence(&self, shard: &Shard, db: usize, hash: u64, key: &[u8], now: u64) -> Presence {
        if let Some(entry) = shard.get(hash, key) {
            return Some(entry.is_expired(now));
        }
        let stored = self.warm_behind()?.get(db, key)?;
        Some(stored.expire_at.is_some_and(|at| at <= now))
    }

    /// Hook: `key` of `db` was deleted (expired or evicted).
    pub(super) fn signal_deleted(&self, db: usize, hash: u64, key: &[u8]) {
        if !self.watches.is_empty() {
            self.watches.touch(db, hash, key, false);
        }
    }

    /// Hook for the memory-only tier's random probes: drops the item at
    /// `at` if expired, and signals it.
    pub(super) fn purge_at_if_expired(&self, shard: &mut Shard, db: usize, at: usize, now: u64) {
        let key = self.key_at_if_watched(shard, at);
        if shard.purge_at_if_expired(at, now) {
            if let Some((hash, key)) = key {
                self.signal_deleted(db, hash, &key);
            }
        }
    }

    /// Hook for `maxmemory` eviction: the key leaves memory. Memory-only
    /// that loses it, a change; with a warm tier it stays on disk, none.
    pub(super) fn evict_at(&self, shard: &mut Shard, db: usize, at: usize) -> Option<Entry> {
        let key = match self.warm {
            None => self.key_at_if_watched(shard, at),
            Some(_) => None,
        };
        let entry = shard.evict_at(at)?;
        if let Some((hash, key)) = key {
            self.signal_deleted(db, hash, &key);
        }
        Some(entry)
    }

    fn key_at_if_watched(&self, shard: &Shard, at: usize) -> Option<(u64, Bytes)> {
        if self.watches.is_empty() {
            return None;
        }
        let key = shard.iter().nth(at)?.key();
        Some((self.hash(key), Bytes::copy_from_slice(key)))
    }

    /// Hook for the memory-only active sweep, whose shards drop expired keys
    /// without naming them: watched keys past their deadline go first, here,
    /// one by one, so their watchers are marked.
    pub(super) fn expire_watched(&self, now: u64) {
        if self.watches.is_empty() {
            return;
        }
        for db in 0..self.dbs.len() {
            for (hash, key) in self.watches.keys_of(db) {
                let mut shard = self.lock(db, hash);
                let before = shard.bytes;
                if shard.purge_if_expired(hash, &key, now) {
                    self.account(db, &shard, before);
                    self.signal_deleted(db, hash, &key);
                }
            }
        }
    }

    /// Hook for FLUSHDB/FLUSHALL, with every shard of `db` locked, before
    /// it is emptied.
    pub(super) fn signal_flush(&self, db: usize, guards: &[MutexGuard<'_, Shard>]) {
        if !self.watches.is_empty() {
            self.touch_all_in_db((db, guards), None);
        }
    }

    /// Hook for SWAPDB, with every shard of both databases locked, before
    /// their contents change places.
    pub(super) fn signal_swap(
        &self,
        a: (usize, &[MutexGuard<'_, Shard>]),
        b: (usize, &[MutexGuard<'_, Shard>]),
    ) {
        if !self.watches.is_empty() {
            self.touch_all_in_db(a, Some(b));
            self.touch_all_in_db(b, Some(a));
        }
    }

    /// Redis's `touchAllWatchedKeysInDb`: `emptied` loses its keys and takes
    /// those of `replaced_with` (SWAPDB) or none (FLUSHDB). A watcher is
    /// marked when its key was or will be there, unless an expired key only
    /// gives way to nothing or to another expired key.
    fn touch_all_in_db(
        &self,
        (db, guards): (usize, &[MutexGuard<'_, Shard>]),
        replaced_with: Option<(usize, &[MutexGuard<'_, Shard>])>,
    ) {
        let now = now_ms();
        let presence = |(db, guards): (usize, &[MutexGuard<'_, Shard>]), hash: u64, key: &[u8]| {
            let shard = guards.get(Self::shard_of(hash))?;
            self.presence(shard, db, hash, key, now)
        };
        for (hash, key) in self.watches.keys_of(db) {
            let in_emptied = presence((db, guards), hash, &key);
            let in_replacement = replaced_with.and_then(|other| presence(other, hash, &key));
            if in_emptied.is_none() && in_replacement.is_none() {
                continue;
            }
            let mut shard = self.watches.shard(hash);
            let Some(watches) = shard.get_mut(&key) else {
                continue;
            };
            for watch in watches.iter_mut().filter(|w| w.db == db) {
                if watch.expired {
                    match in_replacement {
                        None => {
                            watch.expired = false;
                            continue;
                        }
                        Some(true) => continue,
                        Some(false) => {}
                    }
                } else if in_emptied.is_none() && in_replacement == Some(true) {
                    watch.expired = true;
                    continue;
                }
                watch.flag.mark();
            }
        }
    }
}

impl Txn<'_> {
    /// Hook: the transaction ends with its changed keys (Redis's
    /// `signalModifiedKey` for each).
    pub(super) fn signal_changes(&self) {
        if self.keyspace.watches.is_empty() {
            return;
        }
        for &i in &self.changed {
            let k = &self.keys[i];
            let exists = self.guards[k.guard].get(k.hash, k.key).is_some();
            self.keyspace.watches.touch(k.db, k.hash, k.key, exists);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Value;
    use super::*;

    fn set(ks: &Keyspace, db: usize, key: &str, expire_at: Option<u64>) {
        ks.write(db, key.as_bytes(), |txn| {
            txn.insert(0, Value::Str(Bytes::from_static(b"v")), expire_at)
        });
    }

    fn watching(ks: &Keyspace, db: usize, key: &str) -> WatchSet {
        let mut set = WatchSet::new(Arc::default());
        ks.watch(&mut set, db, key.as_bytes());
        set
    }

    #[test]
    fn changes_mark_only_their_watchers() {
        let ks = Keyspace::new(2);
        set(&ks, 0, "k", None);
        let k = watching(&ks, 0, "k");
        let other_db = watching(&ks, 1, "k");
        let missing = watching(&ks, 0, "missing");
        set(&ks, 0, "k", None);
        assert!(k.flag().is_dirty());
        assert!(!other_db.flag().is_dirty());
        assert!(!missing.flag().is_dirty());
        // Removing nothing is no change.
        ks.write(0, b"missing", |txn| txn.remove(0));
        assert!(!missing.flag().is_dirty());
        drop((k, other_db, missing));
        assert!(ks.watches.is_empty(), "dropped sets release their keys");
    }

    #[test]
    fn memory_only_sweep_marks_a_key_that_expires_after_watch() {
        let ks = Keyspace::new(1);
        set(&ks, 0, "e", Some(now_ms() + 20));
        set(&ks, 0, "stale", Some(now_ms() - 1));
        let e = watching(&ks, 0, "e");
        let stale = watching(&ks, 0, "stale");
        std::thread::sleep(std::time::Duration::from_millis(40));
        assert!(ks.watched_key_expired(&e), "expired, not yet deleted");
        ks.sweep_expired();
        assert_eq!(ks.dbsize(0), 0);
        assert!(e.flag().is_dirty());
        // Already expired when watched: deleting it is no change, writing it is.
        assert!(!stale.flag().is_dirty());
        assert!(!ks.watched_key_expired(&stale));
        set(&ks, 0, "stale", None);
        assert!(stale.flag().is_dirty());
    }

    #[test]
    fn flush_and_swap_mark_keys_present_in_either_database() {
        let ks = Keyspace::new(2);
        set(&ks, 1, "there", None);
        let absent = watching(&ks, 0, "absent");
        let arriving = watching(&ks, 0, "there");
        let guards: Vec<_> = ks.dbs[0].shards.iter().map(|s| s.lock()).collect();
        ks.signal_flush(0, &guards);
        drop(guards);
        assert!(!absent.flag().is_dirty() && !arriving.flag().is_dirty());
        ks.swap_db(0, 1);
        assert!(!absent.flag().is_dirty());
        assert!(arriving.flag().is_dirty());
        ks.flush_all(false);
        let gone = watching(&ks, 0, "there");
        assert!(!gone.flag().is_dirty(), "flushed before the WATCH");
    }
}
