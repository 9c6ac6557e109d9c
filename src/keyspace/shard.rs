//! One shard of one database in the hot tier: entries in a dense vector
//! (so eviction can sample random entries in O(1)) found through a hash
//! index, plus — when memory is the only tier — the two ordered indexes
//! that make SCAN and active expiry cheap. With a warm tier those live on
//! disk and the hot tier stays a plain cache.

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
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads answered from the warm tier (the key was then promoted).
    pub warm_hits: u64,
    /// Reads that found the key in no tier.
    pub misses: u64,
    /// Keys copied from the warm tier into memory (reads and writes).
    pub promotions: u64,
    /// Keys removed from memory because their deadline passed.
    pub expired: u64,
    /// Keys dropped from memory to respect `maxmemory`.
    pub evictions: u64,
    pub changes: u64,
}

impl ShardCounters {
    pub fn add(&mut self, other: &ShardCounters) {
        self.hits += other.hits;
        self.warm_hits += other.warm_hits;
        self.misses += other.misses;
        self.promotions += other.promotions;
        self.expired += other.expired;
        self.evictions += other.evictions;
        self.changes += other.changes;
    }
}

/// The memory-only indexes.
#[derive(Default)]
struct Ordered {
    /// Keys ordered by scan position: a SCAN cursor is a position, so a key
    /// present for the whole scan is returned exactly once whatever changes.
    order: BTreeSet<(u64, Bytes)>,
    /// Keys with a TTL ordered by deadline: the active sweep pops from the front.
    expires: BTreeSet<(u64, u64, Bytes)>,
}

#[derive(Default)]
pub(super) struct Shard {
    /// Positions in `items`, found by hash.
    index: HashTable<u32>,
    items: Vec<Item>,
    ordered: Option<Box<Ordered>>,
    pub bytes: usize,
    pub counters: ShardCounters,
}

/// Where a hash sits in scan order: the shard bits (32..37) become the top
/// bits, so positions of shard N all sort before those of shard N+1.
pub(super) fn scan_position(hash: u64) -> u64 {
    hash.rotate_left(27)
}

impl Shard {
    /// `ordered`: keep the SCAN and expiry indexes (memory is the only tier).
    pub fn new(ordered: bool) -> Shard {
        Shard {
            ordered: ordered.then(Box::default),
            ..Shard::default()
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    fn position(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let items = &self.items;
        self.index
            .find(hash, |&at| items[at as usize].key == key)
            .map(|&at| at as usize)
    }

    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        let at = self.position(hash, key)?;
        Some(&self.items[at].entry)
    }

    /// A read that counts its outcome — a hit in memory, a hit in the warm
    /// tier (`promoted`: the key was just copied from it) or a miss — and,
    /// given `(now_secs, lfu_log_factor)`, records the access for LRU/LFU.
    pub fn read(
        &mut self,
        hash: u64,
        key: &[u8],
        touch: Option<(u32, u32)>,
        promoted: bool,
    ) -> Option<&Entry> {
        match self.position(hash, key) {
            Some(at) => {
                if promoted {
                    self.counters.warm_hits += 1;
                } else {
                    self.counters.hits += 1;
                }
                let entry = &mut self.items[at].entry;
                if let Some((now_secs, lfu_log_factor)) = touch {
                    entry.touch(now_secs, lfu_log_factor);
                }
                Some(entry)
            }
            None => {
                self.counters.misses += 1;
                None
            }
        }
    }

    pub fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Entry> {
        let at = self.position(hash, key)?;
        Some(&mut self.items[at].entry)
    }

    /// Stores `entry` under `key`, returning the entry it replaced.
    pub fn insert(&mut self, hash: u64, key: &[u8], entry: Entry) -> Option<Entry> {
        self.counters.changes += 1;
        let new_size = entry.mem_size(key.len());
        let new_expiry = entry.expire_at;
        if let Some(at) = self.position(hash, key) {
            let item = &mut self.items[at];
            let old = std::mem::replace(&mut item.entry, entry);
            self.bytes = self.bytes + new_size - old.mem_size(key.len());
            if let (Some(ordered), true) = (&mut self.ordered, old.expire_at != new_expiry) {
                if let Some(at) = old.expire_at {
                    ordered.expires.remove(&(at, hash, item.key.clone()));
                }
                if let Some(at) = new_expiry {
                    ordered.expires.insert((at, hash, item.key.clone()));
                }
            }
            return Some(old);
        }
        // Own a compact copy: the argument may share a large read buffer.
        let key = Bytes::copy_from_slice(key);
        if let Some(ordered) = &mut self.ordered {
            ordered.order.insert((scan_position(hash), key.clone()));
            if let Some(at) = new_expiry {
                ordered.expires.insert((at, hash, key.clone()));
            }
        }
        self.bytes += new_size;
        let at = self.items.len() as u32;
        self.items.push(Item { hash, key, entry });
        let items = &self.items;
        self.index
            .insert_unique(hash, at, |&i| items[i as usize].hash);
        None
    }

    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Entry> {
        let at = self.position(hash, key)?;
        Some(self.remove_at(at).entry)
    }

    /// Removes the item at `at`; the last item moves into its place.
    fn remove_at(&mut self, at: usize) -> Item {
        let hash = self.items[at].hash;
        if let Ok(found) = self.index.find_entry(hash, |&i| i as usize == at) {
            found.remove();
        }
        let item = self.items.swap_remove(at);
        if let Some(moved) = self.items.get(at) {
            let old_position = self.items.len() as u32;
            if let Some(slot) = self.index.find_mut(moved.hash, |&i| i == old_position) {
                *slot = at as u32;
            }
        }
        self.counters.changes += 1;
        if let Some(ordered) = &mut self.ordered {
            ordered
                .order
                .remove(&(scan_position(hash), item.key.clone()));
            if let Some(deadline) = item.entry.expire_at {
                ordered.expires.remove(&(deadline, hash, item.key.clone()));
            }
        }
        self.bytes -= item.entry.mem_size(item.key.len());
        item
    }

    /// Changes a key's deadline; false when the key is absent.
    pub fn set_expire(&mut self, hash: u64, key: &[u8], expire_at: Option<u64>) -> bool {
        let Some(at) = self.position(hash, key) else {
            return false;
        };
        self.counters.changes += 1;
        let item = &mut self.items[at];
        let old = std::mem::replace(&mut item.entry.expire_at, expire_at);
        let key_len = item.key.len();
        if old != expire_at {
            if let Some(ordered) = &mut self.ordered {
                if let Some(deadline) = old {
                    ordered.expires.remove(&(deadline, hash, item.key.clone()));
                }
                if let Some(deadline) = expire_at {
                    ordered.expires.insert((deadline, hash, item.key.clone()));
                }
            }
            if old.is_some() {
                self.bytes -= super::value::EXPIRY_OVERHEAD + key_len;
            }
            if expire_at.is_some() {
                self.bytes += super::value::EXPIRY_OVERHEAD + key_len;
            }
        }
        true
    }

    /// Re-measures an entry after its value was changed in place.
    pub fn resize(&mut self, hash: u64, key: &[u8], old_size: usize) {
        if let Some(at) = self.position(hash, key) {
            let item = &self.items[at];
            let new_size = item.entry.mem_size(item.key.len());
            self.bytes = self.bytes + new_size - old_size;
            self.counters.changes += 1;
        }
    }

    /// Lazy expiry: drops the key if its deadline has passed. True if dropped.
    pub fn purge_if_expired(&mut self, hash: u64, key: &[u8], now_ms: u64) -> bool {
        let expired = self
            .get(hash, key)
            .is_some_and(|entry| entry.is_expired(now_ms));
        if expired {
            self.remove(hash, key);
            self.counters.expired += 1;
        }
        expired
    }

    /// Active expiry of the memory-only tier: removes up to `budget` keys
    /// whose deadline has passed.
    pub fn sweep_expired(&mut self, now_ms: u64, budget: usize) -> usize {
        let mut removed = 0;
        while removed < budget {
            let Some((at, hash, key)) = self
                .ordered
                .as_ref()
                .and_then(|ordered| ordered.expires.first().cloned())
            else {
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
        self.items.iter().map(|item| (&item.key, &item.entry))
    }

    /// Keys from scan position `from` on, in order (memory-only tier).
    pub fn ordered_from(&self, from: u64) -> impl Iterator<Item = &(u64, Bytes)> {
        self.ordered
            .iter()
            .flat_map(move |ordered| ordered.order.range((from, Bytes::new())..))
    }

    /// The item at a random position with its (hash, key, entry).
    pub fn random_item(&self) -> Option<(u64, &Bytes, &Entry)> {
        if self.items.is_empty() {
            return None;
        }
        let item = &self.items[rand::random::<usize>() % self.items.len()];
        Some((item.hash, &item.key, &item.entry))
    }

    /// Drops a key to respect `maxmemory`.
    pub fn evict(&mut self, hash: u64, key: &[u8]) -> bool {
        let evicted = self.remove(hash, key).is_some();
        self.counters.evictions += u64::from(evicted);
        evicted
    }

    pub fn clear(&mut self) -> Shard {
        let counters = self.counters;
        let ordered = self.ordered.is_some();
        let mut old = std::mem::replace(self, Shard::new(ordered));
        self.counters = counters;
        self.counters.changes += old.items.len() as u64;
        old.counters = ShardCounters::default();
        old
    }

    /// Swaps contents (not counters) with another shard: SWAPDB.
    pub fn swap_contents(&mut self, other: &mut Shard) {
        std::mem::swap(&mut self.index, &mut other.index);
        std::mem::swap(&mut self.items, &mut other.items);
        std::mem::swap(&mut self.ordered, &mut other.ordered);
        std::mem::swap(&mut self.bytes, &mut other.bytes);
    }

    /// Keys with a TTL (memory-only tier; counted in memory).
    pub fn volatile_count(&self) -> usize {
        match &self.ordered {
            Some(ordered) => ordered.expires.len(),
            None => self
                .items
                .iter()
                .filter(|item| item.entry.expire_at.is_some())
                .count(),
        }
    }

    pub fn expires_sum_ttl(&self, now_ms: u64) -> (u64, u64) {
        let mut total = 0u64;
        let mut count = 0u64;
        let deadlines: Box<dyn Iterator<Item = u64>> = match &self.ordered {
            Some(ordered) => Box::new(ordered.expires.iter().map(|(at, _, _)| *at)),
            None => Box::new(self.items.iter().filter_map(|item| item.entry.expire_at)),
        };
        for at in deadlines.take(64) {
            total += at.saturating_sub(now_ms);
            count += 1;
        }
        (total, count)
    }
}
