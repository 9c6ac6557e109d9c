//! One shard of one database in the hot tier: a hash table of entries plus the
//! two ordered indexes that make SCAN and active expiry cheap.

use std::collections::BTreeSet;

use bytes::Bytes;
use hashbrown::HashTable;

use super::value::Entry;

pub(super) struct Item {
    pub hash: u64,
    pub key: Bytes,
    pub entry: Entry,
}

/// Counters kept under the shard lock, so the hot path never touches a shared
/// atomic; INFO sums them.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardCounters {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    pub changes: u64,
}

#[derive(Default)]
pub(super) struct Shard {
    table: HashTable<Item>,
    /// Keys ordered by scan position: a SCAN cursor is a position, so a key
    /// present for the whole scan is returned exactly once whatever changes.
    order: BTreeSet<(u64, Bytes)>,
    /// Keys with a TTL ordered by deadline: the active sweep pops from the front.
    expires: BTreeSet<(u64, u64, Bytes)>,
    pub bytes: usize,
    pub counters: ShardCounters,
}

/// Where a hash sits in scan order: the shard bits (32..37) become the top
/// bits, so positions of shard N all sort before those of shard N+1.
pub(super) fn scan_position(hash: u64) -> u64 {
    hash.rotate_left(27)
}

impl Shard {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.table
            .find(hash, |item| item.key == key)
            .map(|item| &item.entry)
    }

    /// A read that counts a keyspace hit or miss and, given `(now_secs,
    /// lfu_log_factor)`, records the access for LRU/LFU.
    pub fn read(&mut self, hash: u64, key: &[u8], touch: Option<(u32, u32)>) -> Option<&Entry> {
        match self.table.find_mut(hash, |item| item.key == key) {
            Some(item) => {
                self.counters.hits += 1;
                if let Some((now_secs, lfu_log_factor)) = touch {
                    item.entry.touch(now_secs, lfu_log_factor);
                }
                Some(&item.entry)
            }
            None => {
                self.counters.misses += 1;
                None
            }
        }
    }

    pub fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Entry> {
        self.table
            .find_mut(hash, |item| item.key == key)
            .map(|item| &mut item.entry)
    }

    /// Stores `entry` under `key`, returning the entry it replaced.
    pub fn insert(&mut self, hash: u64, key: &[u8], entry: Entry) -> Option<Entry> {
        self.counters.changes += 1;
        let new_size = entry.mem_size(key.len());
        let new_expiry = entry.expire_at;
        if let Some(item) = self.table.find_mut(hash, |item| item.key == key) {
            let old = std::mem::replace(&mut item.entry, entry);
            self.bytes = self.bytes + new_size - old.mem_size(key.len());
            if old.expire_at != new_expiry {
                let stored_key = item.key.clone();
                if let Some(at) = old.expire_at {
                    self.expires.remove(&(at, hash, stored_key.clone()));
                }
                if let Some(at) = new_expiry {
                    self.expires.insert((at, hash, stored_key));
                }
            }
            return Some(old);
        }
        // Own a compact copy: the argument may share a large read buffer.
        let key = Bytes::copy_from_slice(key);
        self.order.insert((scan_position(hash), key.clone()));
        if let Some(at) = new_expiry {
            self.expires.insert((at, hash, key.clone()));
        }
        self.bytes += new_size;
        self.table
            .insert_unique(hash, Item { hash, key, entry }, |item| item.hash);
        None
    }

    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Entry> {
        let Ok(found) = self.table.find_entry(hash, |item| item.key == key) else {
            return None;
        };
        let (item, _) = found.remove();
        self.counters.changes += 1;
        self.order.remove(&(scan_position(hash), item.key.clone()));
        if let Some(at) = item.entry.expire_at {
            self.expires.remove(&(at, hash, item.key.clone()));
        }
        self.bytes -= item.entry.mem_size(item.key.len());
        Some(item.entry)
    }

    /// Changes a key's deadline; false when the key is absent.
    pub fn set_expire(&mut self, hash: u64, key: &[u8], expire_at: Option<u64>) -> bool {
        let Some(item) = self.table.find_mut(hash, |item| item.key == key) else {
            return false;
        };
        self.counters.changes += 1;
        let old = std::mem::replace(&mut item.entry.expire_at, expire_at);
        let stored_key = item.key.clone();
        let key_len = stored_key.len();
        if old != expire_at {
            if let Some(at) = old {
                self.expires.remove(&(at, hash, stored_key.clone()));
                self.bytes -= super::value::EXPIRY_OVERHEAD + key_len;
            }
            if let Some(at) = expire_at {
                self.expires.insert((at, hash, stored_key));
                self.bytes += super::value::EXPIRY_OVERHEAD + key_len;
            }
        }
        true
    }

    /// Re-measures an entry after its value was changed in place.
    pub fn resize(&mut self, hash: u64, key: &[u8], old_size: usize) {
        if let Some(item) = self.table.find(hash, |item| item.key == key) {
            let new_size = item.entry.mem_size(item.key.len());
            self.bytes = self.bytes + new_size - old_size;
            self.counters.changes += 1;
        }
    }

    /// Lazy expiry: drops the key if its deadline has passed. True if dropped.
    pub fn purge_if_expired(&mut self, hash: u64, key: &[u8], now_ms: u64) -> bool {
        // Most shards of a cache without TTLs never pay for the lookup.
        if self.expires.is_empty() {
            return false;
        }
        let expired = self
            .get(hash, key)
            .is_some_and(|entry| entry.is_expired(now_ms));
        if expired {
            self.remove(hash, key);
            self.counters.expired += 1;
        }
        expired
    }

    /// Active expiry: removes up to `budget` keys whose deadline has passed.
    pub fn sweep_expired(&mut self, now_ms: u64, budget: usize) -> usize {
        let mut removed = 0;
        while removed < budget {
            let Some((at, hash, key)) = self.expires.first().cloned() else {
                break;
            };
            if at > now_ms {
                break;
            }
            self.remove(hash, &key);
            self.counters.expired += 1;
            removed += 1;
        }
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.table.iter().map(|item| (&item.key, &item.entry))
    }

    /// Keys from scan position `from` on, in order.
    pub fn ordered_from(&self, from: u64) -> impl Iterator<Item = &(u64, Bytes)> {
        self.order.range((from, Bytes::new())..)
    }

    pub fn clear(&mut self) -> Shard {
        let counters = self.counters;
        let mut old = std::mem::take(self);
        self.counters = counters;
        self.counters.changes += old.table.len() as u64;
        old.counters = ShardCounters::default();
        old
    }

    /// Swaps contents (not counters) with another shard: SWAPDB.
    pub fn swap_contents(&mut self, other: &mut Shard) {
        std::mem::swap(&mut self.table, &mut other.table);
        std::mem::swap(&mut self.order, &mut other.order);
        std::mem::swap(&mut self.expires, &mut other.expires);
        std::mem::swap(&mut self.bytes, &mut other.bytes);
    }

    pub fn volatile_count(&self) -> usize {
        self.expires.len()
    }

    pub fn expires_sum_ttl(&self, now_ms: u64) -> (u64, u64) {
        let mut total = 0u64;
        let mut count = 0u64;
        for (at, _, _) in self.expires.iter().take(64) {
            total += at.saturating_sub(now_ms);
            count += 1;
        }
        (total, count)
    }
}
