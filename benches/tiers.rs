//! Tier benchmarks: the keyspace API in process (no network), on real sled in
//! a temporary directory. What a SET and a GET cost in the hot tier with and
//! without the warm tier behind it, what a read that misses memory costs
//! (sled read and promotion), what `maxmemory` eviction costs per key, and
//! the warm tier's own put, get and flush.
//!
//! Keys are 16 bytes (`key:%012d`, as redis-benchmark's), values 100 bytes,
//! and every keyspace is pre-filled with `PREFILL` keys so tables and sled
//! trees have a realistic depth.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use strata::keyspace::warm::{FsyncPolicy, Warm, WarmOptions, KIND_STRING};
use strata::keyspace::{EvictionPolicy, Keyspace, KeyspaceOptions, Rank, ReadOptions, Value};

const PREFILL: u64 = 100_000;
const VALUE_LEN: usize = 100;
/// sled's page cache, as strata's default `warm-cache-size`.
const WARM_CACHE: u64 = 64 << 20;

fn key(n: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key.copy_from_slice(format!("key:{n:012}").as_bytes());
    key
}

fn value() -> Bytes {
    Bytes::from(vec![b'x'; VALUE_LEN])
}

/// Walks the pre-filled keys, formatted beforehand so the loop measures the
/// tier and not `format!`, in a scattered order (a stride coprime with
/// `PREFILL`), so consecutive operations land on different shards and pages.
struct Keys {
    keys: Vec<[u8; 16]>,
    at: usize,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            keys: (0..PREFILL).map(key).collect(),
            at: 0,
        }
    }

    fn next(&mut self) -> &[u8; 16] {
        self.at = (self.at + 7_919) % self.keys.len();
        &self.keys[self.at]
    }
}

fn warm_options(dir: &Path) -> WarmOptions {
    WarmOptions {
        dir: dir.to_path_buf(),
        databases: 1,
        cache_size: WARM_CACHE,
        fsync: FsyncPolicy::EverySec,
        max_disk: 0,
        min_free_disk: 0,
    }
}

fn warm_keyspace(dir: &Path, databases: usize, maxmemory: u64) -> Keyspace {
    Keyspace::open(KeyspaceOptions {
        databases,
        warm: Some(warm_options(dir)),
        maxmemory,
        policy: EvictionPolicy::AllKeys(Rank::Lru),
        samples: 5,
        source: None,
    })
    .expect("the warm tier opens")
}

fn set(ks: &Keyspace, key: &[u8], value: &Bytes) {
    ks.write(0, key, |txn| {
        txn.insert(0, Value::Str(value.clone()), None);
    });
}

fn get(ks: &Keyspace, key: &[u8]) -> usize {
    ks.read(0, key, ReadOptions::default(), |entry| match entry {
        Some(entry) => entry.value().as_str().map_or(0, <[u8]>::len),
        None => 0,
    })
}

fn prefill(ks: &Keyspace) {
    let value = value();
    for n in 0..PREFILL {
        set(ks, &key(n), &value);
    }
}

/// SET and GET hits in memory, memory-only and with the warm tier behind
/// (every SET also written to sled).
fn hot_tier(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let memory = Keyspace::new(1);
    prefill(&memory);
    let warm = warm_keyspace(dir.path(), 1, 0);
    prefill(&warm);
    let value = value();

    let mut group = c.benchmark_group("hot_tier");
    for (name, ks) in [("memory_only", &memory), ("warm_tier", &warm)] {
        let mut keys = Keys::new();
        group.bench_function(format!("set/{name}"), |b| {
            b.iter(|| set(ks, keys.next(), &value))
        });
        let mut keys = Keys::new();
        group.bench_function(format!("get_hit/{name}"), |b| {
            b.iter(|| black_box(get(ks, keys.next())))
        });
    }
    group.finish();
    drop(warm);
}

/// A GET that misses memory: sled read, promotion, and the eviction that
/// makes room for it again (as the server's `make_room` before a command).
/// A tenth of the keys fit in memory and the walk is cyclic, which LRU
/// serves worst: nearly every read misses (the counts are printed).
fn promotion(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ks = warm_keyspace(dir.path(), 1, 0);
    prefill(&ks);
    // Keep about a tenth of the keys in memory: most reads then miss.
    let limit = ks.hot_bytes() / 10;
    ks.set_maxmemory(limit);
    // make_room evicts at most about a thousand keys per call.
    for _ in 0..PREFILL {
        if ks.hot_bytes() <= limit {
            break;
        }
        ks.make_room(true).expect("eviction is lossless");
    }
    let mut group = c.benchmark_group("warm_read");
    let mut keys = Keys::new();
    group.bench_function("get_promote/evict", |b| {
        b.iter(|| {
            let found = get(&ks, keys.next());
            ks.make_room(false).expect("eviction is lossless");
            black_box(found)
        })
    });
    group.finish();
    let totals = ks.totals();
    eprintln!(
        "warm_read: {} hot hits, {} warm hits (promotions), {} evictions",
        totals.counters.hits, totals.counters.warm_hits, totals.counters.evictions
    );
}

/// `make_room(true)` when one new key has just pushed memory over
/// `maxmemory`: exactly one eviction per call. Only `make_room` is timed.
/// The data is in database 0; `16_dbs` has the server's default 16
/// databases, the other 15 empty.
fn eviction(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir16 = tempfile::tempdir().expect("a temporary directory");
    let memory = Keyspace::new(1);
    let warm = warm_keyspace(dir.path(), 1, 0);
    let warm16 = warm_keyspace(dir16.path(), 16, 0);
    let value = value();
    let mut group = c.benchmark_group("eviction");
    // Only make_room is timed, the SET before it is not: criterion's time
    // budget would otherwise be several times over in wall-clock time.
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    for (name, ks) in [
        ("memory_only", &memory),
        ("warm_tier", &warm),
        ("warm_tier_16_dbs", &warm16),
    ] {
        prefill(ks);
        ks.set_maxmemory(ks.hot_bytes());
        let mut next = PREFILL;
        group.bench_function(format!("make_room/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    set(ks, &key(next), &value);
                    next += 1;
                    let started = Instant::now();
                    black_box(ks.make_room(true)).expect("an allkeys policy evicts");
                    spent += started.elapsed();
                }
                spent
            })
        });
        let totals = ks.totals();
        eprintln!(
            "eviction/{name}: {} keys in memory, {} evicted",
            totals.keys, totals.counters.evictions
        );
    }
    group.finish();
}

/// The warm tier alone: put (overwrite; the journal append, waiting for the
/// appliers only when their backlog is full, as a connection does), get
/// (hit, sled cache warm), and a forced sync after one put and after a
/// hundred (group commit).
fn warm_tier(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let warm = Warm::open(&warm_options(dir.path())).expect("the warm tier opens");
    let value = value();
    for n in 0..PREFILL {
        warm.put(0, &key(n), KIND_STRING, None, &value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let flush = |warm: &Warm| {
        let target = warm
            .durability_target(true)
            .expect("a forced flush has a target");
        runtime.block_on(warm.wait_durable(target));
    };
    flush(&warm);

    let mut group = c.benchmark_group("warm_tier");
    let mut keys = Keys::new();
    group.bench_function("put", |b| {
        b.iter(|| {
            warm.put(0, keys.next(), KIND_STRING, None, &value);
            if let Some(target) = warm.durability_target(false) {
                runtime.block_on(warm.wait_durable(target));
            }
        })
    });
    let mut keys = Keys::new();
    group.bench_function("get_hit", |b| {
        b.iter(|| black_box(warm.get(0, keys.next())))
    });
    // Each iteration is at least one fsync: a few samples say enough.
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for batch in [1, 100] {
        let mut keys = Keys::new();
        group.bench_function(format!("flush_after/{batch}_puts"), |b| {
            b.iter(|| {
                for _ in 0..batch {
                    warm.put(0, keys.next(), KIND_STRING, None, &value);
                }
                flush(&warm);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hot_tier, promotion, eviction, warm_tier);
criterion_main!(benches);
