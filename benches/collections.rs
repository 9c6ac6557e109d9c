//! Collection writes through the keyspace API in process (no network), on
//! real sled in a temporary directory: one RPUSH (or HSET) onto an empty key
//! against one onto a collection of `LONG` elements. The warm tier stores a
//! collection element by element, so a one-element change writes O(1) bytes
//! and both must cost about the same.
//!
//! Each timed step is the change as `src/cmd/lists.rs` and `hashes.rs` make
//! it (`Keyspace::write`, `EntryMut::list_mut` / `hash_mut`), then
//! `Warm::catch_up` until sled holds it: the time covers the journal append
//! and the applier's sled write of that one change, never a backlog left by
//! earlier iterations. An untimed step after each one puts the key back as it
//! was (DEL of the new key, RPOP of the pushed element, then caught up too),
//! so every iteration meets the same size; the HSET onto the long hash adds a
//! new field each time, a few thousand on top of a million. Before timing,
//! the journal bytes of a thousand such changes are printed per change.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use strata::keyspace::types::{Collection, Hash, List};
use strata::keyspace::warm::{FsyncPolicy, WarmOptions};
use strata::keyspace::{EntryMut, EvictionPolicy, Keyspace, KeyspaceOptions, Rank, Value};

/// Elements of the long list and fields of the long hash.
const LONG: usize = 1_000_000;
/// Elements added per write while filling, so the fill is not a million
/// journal records.
const FILL_BATCH: usize = 10_000;

fn warm_keyspace(dir: &Path) -> Keyspace {
    Keyspace::open(KeyspaceOptions {
        databases: 1,
        warm: Some(WarmOptions {
            dir: dir.to_path_buf(),
            databases: 1,
            cache_size: 64 << 20,
            fsync: FsyncPolicy::EverySec,
            max_disk: 0,
            min_free_disk: 0,
        }),
        maxmemory: 0,
        policy: EvictionPolicy::AllKeys(Rank::Lru),
        samples: 5,
        source: None,
    })
    .expect("the warm tier opens")
}

/// Waits as a connection does after a write batch: only when the appliers'
/// backlog is full (or forced: a full flush).
fn keep_up(ks: &Keyspace, runtime: &tokio::runtime::Runtime, forced: bool) {
    let warm = ks.warm().expect("a warm keyspace");
    if let Some(target) = warm.durability_target(forced) {
        runtime.block_on(warm.wait_durable(target));
    }
}

/// Blocks until sled holds every write made so far.
fn applied(ks: &Keyspace) {
    ks.warm().expect("a warm keyspace").catch_up();
}

fn journal_bytes(ks: &Keyspace) -> u64 {
    ks.warm().expect("a warm keyspace").journal_bytes()
}

fn rpush(ks: &Keyspace, key: &[u8], item: &[u8]) -> usize {
    ks.write(0, key, |txn| {
        if !txn.exists(0) {
            txn.insert(0, Value::List(List::default()), None);
        }
        let list = txn.entry_mut(0).and_then(EntryMut::list_mut)?;
        list.push_back(item);
        Some(list.len())
    })
    .expect("the key holds a list")
}

fn rpop(ks: &Keyspace, key: &[u8]) {
    ks.write(0, key, |txn| {
        if let Some(list) = txn.entry_mut(0).and_then(EntryMut::list_mut) {
            list.pop_back();
        }
    });
}

fn hset(ks: &Keyspace, key: &[u8], field: &[u8], value: &[u8]) -> bool {
    ks.write(0, key, |txn| {
        if !txn.exists(0) {
            txn.insert(0, Value::Hash(Hash::default()), None);
        }
        let hash = txn.entry_mut(0).and_then(EntryMut::hash_mut)?;
        Some(hash.insert(field, value))
    })
    .expect("the key holds a hash")
}

fn del(ks: &Keyspace, key: &[u8]) {
    ks.write(0, key, |txn| {
        txn.remove(0);
    });
}

fn item(n: usize) -> Vec<u8> {
    format!("element:{n:012}").into_bytes()
}

fn fill(ks: &Keyspace, runtime: &tokio::runtime::Runtime) {
    for start in (0..LONG).step_by(FILL_BATCH) {
        let end = (start + FILL_BATCH).min(LONG);
        ks.write(0, b"long:list", |txn| {
            if !txn.exists(0) {
                txn.insert(0, Value::List(List::default()), None);
            }
            if let Some(list) = txn.entry_mut(0).and_then(EntryMut::list_mut) {
                for n in start..end {
                    list.push_back(&item(n));
                }
            }
        });
        ks.write(0, b"long:hash", |txn| {
            if !txn.exists(0) {
                txn.insert(0, Value::Hash(Hash::default()), None);
            }
            if let Some(hash) = txn.entry_mut(0).and_then(EntryMut::hash_mut) {
                for n in start..end {
                    hash.insert(&item(n), b"value");
                }
            }
        });
        keep_up(ks, runtime, false);
    }
    // Everything on disk before timing starts: the first samples of the
    // long case must not pay for the fill.
    keep_up(ks, runtime, true);
}

fn collections(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ks = warm_keyspace(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    fill(&ks, &runtime);
    eprintln!(
        "collections: filled a list and a hash of {LONG} elements in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let new_item = item(LONG + 1);
    for (name, key) in [("empty", &b"empty:list"[..]), ("1M", &b"long:list"[..])] {
        let before = journal_bytes(&ks);
        for _ in 0..1_000 {
            rpush(&ks, key, &new_item);
        }
        let bytes = journal_bytes(&ks) - before;
        if name == "empty" {
            del(&ks, key);
        } else {
            for _ in 0..1_000 {
                rpop(&ks, key);
            }
        }
        applied(&ks);
        eprintln!(
            "collections: rpush/{name}: {} journal bytes per push",
            bytes / 1_000
        );
    }
    for (name, key) in [("empty", &b"empty:hash"[..]), ("1M", &b"long:hash"[..])] {
        let before = journal_bytes(&ks);
        hset(&ks, key, b"measure", b"value");
        let bytes = journal_bytes(&ks) - before;
        ks.write(0, key, |txn| {
            if let Some(hash) = txn.entry_mut(0).and_then(EntryMut::hash_mut) {
                hash.remove(b"measure");
            }
        });
        if name == "empty" {
            del(&ks, key);
        }
        applied(&ks);
        eprintln!("collections: hset/{name}: {bytes} journal bytes for one new field");
    }

    let mut group = c.benchmark_group("collections");
    for (name, key) in [("empty", &b"empty:list"[..]), ("1M", &b"long:list"[..])] {
        group.bench_function(format!("rpush/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    black_box(rpush(&ks, key, &new_item));
                    applied(&ks);
                    spent += started.elapsed();
                    if key == b"empty:list" {
                        del(&ks, key);
                    } else {
                        rpop(&ks, key);
                    }
                    applied(&ks);
                }
                spent
            })
        });
    }
    for (name, key) in [("empty", &b"empty:hash"[..]), ("1M", &b"long:hash"[..])] {
        // A new field each time on the long hash (it grows by the few
        // thousand iterations, under 1%); the empty one is deleted again.
        let mut next = LONG;
        group.bench_function(format!("hset/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    next += 1;
                    let field = item(next);
                    let started = Instant::now();
                    black_box(hset(&ks, key, &field, b"value"));
                    applied(&ks);
                    spent += started.elapsed();
                    if key == b"empty:hash" {
                        del(&ks, key);
                    }
                    applied(&ks);
                }
                spent
            })
        });
    }
    group.finish();
    for key in [&b"long:list"[..], b"long:hash"] {
        let len = ks.read(0, key, Default::default(), |entry| {
            entry.map_or(0, |entry| match entry.value() {
                strata::keyspace::ValueRef::List(list) => list.len(),
                strata::keyspace::ValueRef::Hash(hash) => hash.len(),
                _ => 0,
            })
        });
        eprintln!(
            "collections: {} holds {len} elements",
            String::from_utf8_lossy(key)
        );
    }
}

criterion_group!(benches, collections);
criterion_main!(benches);
