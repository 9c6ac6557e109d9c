//! One shard of one database in the hot tier: entries in a dense vector (so
//! eviction samples random entries in O(1)) found through a chained hash
//! table as Redis's dict keeps one: a power-of-two array of bucket heads and
//! a link in each item. SCAN walks the buckets with Redis's reverse-binary
//! cursor. When memory is the only tier the shard also orders its keys with
//! a TTL by deadline for the active sweep; with a warm tier that index lives
//! on disk and the hot tier stays a plain cache.

use std::collections::BTreeSet;

use super::value::{Entry, EXPIRY_OVERHEAD};

/// The end of a chain, or an empty bucket.
const NIL: u32 = u32::MAX;
/// The fewest buckets a shard that ever held a key keeps.
const MIN_BUCKETS: usize = 4;

/// 24 bytes: the entry and its place in the table.
pub(super) struct Item {
    entry: Entry,
    /// The low 32 bits of the key's hash: every bucket index a shard can
    /// have, so a resize never hashes a key again.
    hash: u32,
    /// Position of the next item in the same bucket, or [`NIL`].
    next: u32,
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

#[derive(Default)]
pub(super) struct Shard {
    /// Chain heads: the key whose hash is `h` is in bucket `h & (len - 1)`.
    /// Empty until the first key arrives.
    buckets: Vec<u32>,
    items: Vec<Item>,
    /// Memory-only: (deadline, position) of every key with a TTL, so the
    /// active sweep pops due keys from the front.
    expires: Option<BTreeSet<(u64, u32)>>,
    pub bytes: usize,
    pub counters: ShardCounters,
}

impl Shard {
    /// `memory_only`: keep the deadline index (no warm tier behind).
    pub fn new(memory_only: bool) -> Shard {
        Shard {
            expires: memory_only.then(BTreeSet::new),
            ..Shard::default()
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The bucket of a 32-bit hash; meaningless while `buckets` is empty.
    fn bucket(&self, hash: u32) -> usize {
        (hash & (self.buckets.len() as u32).wrapping_sub(1)) as usize
    }

    fn position(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let hash = hash as u32;
        let mut at = *self.buckets.get(self.bucket(hash))?;
        while let Some(item) = self.items.get(at as usize) {
            if item.hash == hash && item.entry.key() == key {
                return Some(at as usize);
            }
            at = item.next;
        }
        None
    }

    /// Points the link that leads to position `from` (a bucket head or the
    /// `next` of the item before it) at `to`.
    fn relink(&mut self, hash: u32, from: u32, to: u32) {
        let bucket = self.bucket(hash);
        let Some(head) = self.buckets.get_mut(bucket) else {
            return;
        };
        if *head == from {
            *head = to;
            return;
        }
        let mut at = *head;
        while let Some(item) = self.items.get_mut(at as usize) {
            if item.next == from {
                item.next = to;
                return;
            }
            at = item.next;
        }
    }

    /// Rebuilds the table with `buckets` (a power of two) buckets, at once:
    /// a shard holds a 32nd of a database, and the stored hashes spare
    /// hashing the keys again.
    fn rebuild(&mut self, buckets: usize) {
        self.buckets = vec![NIL; buckets];
        let mask = (buckets as u32).wrapping_sub(1);
        for (at, item) in self.items.iter_mut().enumerate() {
            if let Some(head) = self.buckets.get_mut((item.hash & mask) as usize) {
                item.next = *head;
                *head = at as u32;
            }
        }
    }

    /// What an entry adds to `bytes`.
    fn cost(&self, entry: &Entry) -> usize {
        let indexed = self.expires.is_some() && entry.expire_at().is_some();
        entry.mem_size() + if indexed { EXPIRY_OVERHEAD } else { 0 }
    }

    /// Keeps the deadline index in step with the item at `at`.
    fn index_deadline(&mut self, at: usize, old: Option<u64>, new: Option<u64>) {
        let Some(expires) = &mut self.expires else {
            return;
        };
        if old == new {
            return;
        }
        if let Some(deadline) = old {
            expires.remove(&(deadline, at as u32));
        }
        if let Some(deadline) = new {
            expires.insert((deadline, at as u32));
        }
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
                if super::link::read_was_loaded(key) {
                    self.counters.misses += 1;
                } else if promoted {
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

    /// Stores `entry` under its key, returning the entry it replaced.
    pub fn insert(&mut self, hash: u64, entry: Entry) -> Option<Entry> {
        self.counters.changes += 1;
        let new_cost = self.cost(&entry);
        let deadline = entry.expire_at();
        if let Some(at) = self.position(hash, entry.key()) {
            let old = std::mem::replace(&mut self.items[at].entry, entry);
            self.bytes = self.bytes + new_cost - self.cost(&old);
            self.index_deadline(at, old.expire_at(), deadline);
            return Some(old);
        }
        self.bytes += new_cost;
        let at = self.items.len();
        let hash = hash as u32;
        self.items.push(Item {
            entry,
            hash,
            next: NIL,
        });
        // Redis's dict grows at one key a bucket: chains stay about one long.
        if self.items.len() > self.buckets.len() {
            self.rebuild((self.buckets.len() * 2).max(MIN_BUCKETS));
        } else {
            let bucket = self.bucket(hash);
            self.items[at].next = self.buckets[bucket];
            self.buckets[bucket] = at as u32;
        }
        self.index_deadline(at, None, deadline);
        None
    }

    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Entry> {
        let at = self.position(hash, key)?;
        Some(self.remove_at(at))
    }

    /// Removes the item at `at`; the last item moves into its place.
    fn remove_at(&mut self, at: usize) -> Entry {
        let Item { hash, next, .. } = self.items[at];
        self.relink(hash, at as u32, next);
        let deadline = self.items[at].entry.expire_at();
        self.index_deadline(at, deadline, None);
        let last = self.items.len() - 1;
        if at != last {
            let moved = &self.items[last];
            let (moved_hash, moved_deadline) = (moved.hash, moved.entry.expire_at());
            self.relink(moved_hash, last as u32, at as u32);
            self.index_deadline(last, moved_deadline, None);
            self.index_deadline(at, None, moved_deadline);
        }
        let entry = self.items.swap_remove(at).entry;
        self.counters.changes += 1;
        self.bytes -= self.cost(&entry);
        // Shrink once the table is an eighth full, so a shard that held many
        // keys gives back its buckets and slots; the gap to growing again
        // keeps a key count near a boundary from resizing on every change.
        let len = self.items.len();
        if self.buckets.len() > MIN_BUCKETS && len * 8 < self.buckets.len() {
            self.rebuild(len.next_power_of_two().max(MIN_BUCKETS));
            self.items.shrink_to(self.buckets.len());
        }
        entry
    }

    /// Changes a key's deadline; false when the key is absent.
    pub fn set_expire(&mut self, hash: u64, key: &[u8], expire_at: Option<u64>) -> bool {
        let Some(at) = self.position(hash, key) else {
            return false;
        };
        self.counters.changes += 1;
        let old_cost = self.cost(&self.items[at].entry);
        let old = self.items[at].entry.expire_at();
        self.items[at].entry.set_expire_at(expire_at);
        self.bytes = self.bytes + self.cost(&self.items[at].entry) - old_cost;
        self.index_deadline(at, old, expire_at);
        true
    }

    /// Re-measures an entry after its value was changed in place
    /// (`counts`: as one change, unless the transaction counted it already
    /// or left the value as it was).
    pub fn resize(&mut self, hash: u64, key: &[u8], old_size: usize, counts: bool) {
        if let Some(at) = self.position(hash, key) {
            let new_size = self.items[at].entry.mem_size();
            self.bytes = self.bytes + new_size - old_size;
            if counts {
                self.counters.changes += 1;
            }
        }
    }

    /// Lazy expiry: drops the key if its deadline has passed. True if dropped.
    pub fn purge_if_expired(&mut self, hash: u64, key: &[u8], now_ms: u64) -> bool {
        match self.position(hash, key) {
            Some(at) => self.purge_at_if_expired(at, now_ms),
            None => false,
        }
    }

    /// Drops the item at `at` if its deadline has passed. True if dropped.
    pub fn purge_at_if_expired(&mut self, at: usize, now_ms: u64) -> bool {
        let expired = self
            .items
            .get(at)
            .is_some_and(|item| item.entry.is_expired(now_ms));
        if expired {
            self.remove_at(at);
            self.counters.expired += 1;
        }
        expired
    }

    /// Active expiry of the memory-only tier: removes up to `budget` keys
    /// whose deadline has passed.
    pub fn sweep_expired(
        &mut self,
        now_ms: u64,
        budget: usize,
        mut on_expired: impl FnMut(&[u8]),
    ) -> usize {
        let mut removed = 0;
        while removed < budget {
            let Some(&(deadline, at)) = self.expires.as_ref().and_then(BTreeSet::first) else {
                break;
            };
            if deadline > now_ms {
                break;
            }
            let at = at as usize;
            if self.items.get(at).and_then(|item| item.entry.expire_at()) != Some(deadline) {
                // Cannot happen while the index is kept in step; dropping a
                // stray pair keeps the loop from spinning on it.
                debug_assert!(false, "deadline index out of step");
                if let Some(expires) = &mut self.expires {
                    expires.remove(&(deadline, at as u32));
                }
                continue;
            }
            let entry = self.remove_at(at);
            on_expired(entry.key());
            self.counters.expired += 1;
            removed += 1;
        }
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.items.iter().map(|item| &item.entry)
    }

    /// One step of SCAN (Redis's `dictScan` over one table): shows `visit`
    /// the keys of the bucket `cursor` names, and returns the cursor of the
    /// next bucket, 0 after the last. The cursor counts with its bits
    /// reversed, so it walks the high bits of the bucket index fastest: a
    /// bucket splits into buckets that come later when the table grows, and
    /// merges with buckets already walked when it shrinks. A key present for
    /// the whole scan is so returned at least once, however the table
    /// resizes between steps.
    pub fn scan(&self, cursor: u32, mut visit: impl FnMut(&Entry)) -> u32 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = (self.buckets.len() as u32).wrapping_sub(1);
        let mut at = self.buckets[(cursor & mask) as usize];
        while let Some(item) = self.items.get(at as usize) {
            visit(&item.entry);
            at = item.next;
        }
        (cursor | !mask)
            .reverse_bits()
            .wrapping_add(1)
            .reverse_bits()
    }

    /// A random item and its position.
    pub fn sample(&self) -> Option<(usize, &Entry)> {
        if self.items.is_empty() {
            return None;
        }
        let at = rand::random::<usize>() % self.items.len();
        Some((at, &self.items[at].entry))
    }

    /// Drops the item at `at` to respect `maxmemory`.
    pub fn evict_at(&mut self, at: usize) -> Option<Entry> {
        if at >= self.items.len() {
            return None;
        }
        self.counters.evictions += 1;
        Some(self.remove_at(at))
    }

    pub fn clear(&mut self) -> Shard {
        let counters = self.counters;
        let memory_only = self.expires.is_some();
        let mut old = std::mem::replace(self, Shard::new(memory_only));
        self.counters = counters;
        self.counters.changes += old.items.len() as u64;
        old.counters = ShardCounters::default();
        old
    }

    /// Swaps contents (not counters) with another shard: SWAPDB.
    pub fn swap_contents(&mut self, other: &mut Shard) {
        std::mem::swap(&mut self.buckets, &mut other.buckets);
        std::mem::swap(&mut self.items, &mut other.items);
        std::mem::swap(&mut self.expires, &mut other.expires);
        std::mem::swap(&mut self.bytes, &mut other.bytes);
    }

    /// Keys with a TTL (memory-only tier; counted in memory).
    pub fn volatile_count(&self) -> usize {
        match &self.expires {
            Some(expires) => expires.len(),
            None => self
                .items
                .iter()
                .filter(|item| item.entry.expire_at().is_some())
                .count(),
        }
    }

    pub fn expires_sum_ttl(&self, now_ms: u64) -> (u64, u64) {
        let mut total = 0u64;
        let mut count = 0u64;
        let deadlines: Box<dyn Iterator<Item = u64>> = match &self.expires {
            Some(expires) => Box::new(expires.iter().map(|(at, _)| *at)),
            None => Box::new(self.items.iter().filter_map(|item| item.entry.expire_at())),
        };
        for at in deadlines.take(64) {
            total += at.saturating_sub(now_ms);
            count += 1;
        }
        (total, count)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::keyspace::Value;

    fn entry(key: &str, expire_at: Option<u64>) -> Entry {
        Entry::new(
            key.as_bytes(),
            Value::Str(Bytes::from_static(b"v")),
            expire_at,
            0,
        )
    }

    /// A hash whose low bits put every key of `n` in few buckets, so chains,
    /// moves and resizes all get exercised.
    fn hash_of(n: u64) -> u64 {
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0xF0F0_F0F3
    }

    #[test]
    fn item_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Item>(), 24);
    }

    /// Random inserts, removals and deadline changes against a model, with
    /// the chains, positions and deadline index checked after each step.
    #[test]
    fn table_matches_a_model() {
        let mut shard = Shard::new(true);
        let mut model = std::collections::HashMap::new();
        for step in 0..20_000u64 {
            let n = rand::random::<u64>() % 600;
            let key = format!("k{n}");
            match rand::random::<u8>() % 4 {
                0 | 1 => {
                    let deadline = n.is_multiple_of(3).then_some(n);
                    shard.insert(hash_of(n), entry(&key, deadline));
                    model.insert(key, deadline);
                }
                2 => {
                    let removed = shard.remove(hash_of(n), key.as_bytes());
                    assert_eq!(removed.is_some(), model.remove(&key).is_some());
                }
                _ => {
                    let deadline = Some(step);
                    let present = shard.set_expire(hash_of(n), key.as_bytes(), deadline);
                    assert_eq!(present, model.contains_key(&key));
                    if let Some(slot) = model.get_mut(&key) {
                        *slot = deadline;
                    }
                }
            }
            assert_eq!(shard.len(), model.len());
            if step % 97 == 0 {
                for (key, deadline) in &model {
                    let n: u64 = key[1..].parse().unwrap();
                    let found = shard.get(hash_of(n), key.as_bytes());
                    assert_eq!(found.map(Entry::expire_at), Some(*deadline), "{key}");
                }
                let indexed: Vec<_> = shard.expires.iter().flatten().copied().collect();
                assert_eq!(indexed.len(), shard.volatile_count());
                for (deadline, at) in indexed {
                    let item = &shard.items[at as usize];
                    assert_eq!(item.entry.expire_at(), Some(deadline));
                }
                let bytes: usize = shard.iter().map(|entry| shard.cost(entry)).sum();
                assert_eq!(bytes, shard.bytes);
            }
        }
    }

    /// The SCAN guarantee across resizes: keys present for the whole scan
    /// come back, however the table grows or shrinks between steps.
    #[test]
    fn scan_survives_resizes() {
        let mut shard = Shard::new(false);
        for n in 0..200 {
            shard.insert(hash_of(n), entry(&format!("stay{n}"), None));
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0u64;
        loop {
            cursor = shard.scan(cursor, |entry| {
                seen.insert(entry.key().to_vec());
            });
            // Grow to 4,096 buckets, then shrink back, while scanning.
            if step < 10 {
                for n in 0..400 {
                    let n = 1_000 + step * 400 + n;
                    shard.insert(hash_of(n), entry(&format!("tmp{n}"), None));
                }
            } else {
                for n in 1_000..5_000 {
                    shard.remove(hash_of(n), format!("tmp{n}").as_bytes());
                }
            }
            step += 1;
            if cursor == 0 {
                break;
            }
        }
        for n in 0..200 {
            assert!(seen.contains(format!("stay{n}").as_bytes()), "stay{n}");
        }
    }
}
