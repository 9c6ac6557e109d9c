//! Model test of the tiered keyspace, in the manner of sled's own: random
//! operations go to strata's keyspace (memory over a real sled directory,
//! with a `maxmemory` small enough that keys keep leaving memory) and to a
//! `BTreeMap`, with `Reboot` (drop and reopen from the same directory) among
//! them; the two are compared after every step.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use strata::keyspace::warm::{FsyncPolicy, WarmOptions};
use strata::keyspace::{
    pin_clock, EvictionPolicy, Keyspace, KeyspaceOptions, Rank, ReadOptions, Value, ValueRef,
};

const DATABASES: usize = 2;
const KEYS: u8 = 6;

#[derive(Debug, Clone)]
enum Op {
    Set {
        db: usize,
        key: u8,
        value: Vec<u8>,
        ttl: Option<u64>,
    },
    Del {
        db: usize,
        key: u8,
    },
    Expire {
        db: usize,
        key: u8,
        ttl: Option<u64>,
    },
    Rename {
        db: usize,
        from: u8,
        to: u8,
    },
    FlushDb {
        db: usize,
    },
    SwapDb,
    Advance {
        ms: u64,
    },
    Sweep,
    Reboot,
}

fn op() -> impl Strategy<Value = Op> {
    let db = 0..DATABASES;
    let key = 0..KEYS;
    let ttl = prop::option::weighted(0.3, 1u64..3_000);
    prop_oneof![
        8 => (db.clone(), key.clone(), prop::collection::vec(any::<u8>(), 0..300), ttl.clone())
            .prop_map(|(db, key, value, ttl)| Op::Set { db, key, value, ttl }),
        2 => (db.clone(), key.clone()).prop_map(|(db, key)| Op::Del { db, key }),
        2 => (db.clone(), key.clone(), ttl).prop_map(|(db, key, ttl)| Op::Expire { db, key, ttl }),
        1 => (db.clone(), key.clone(), key).prop_map(|(db, from, to)| Op::Rename { db, from, to }),
        1 => db.prop_map(|db| Op::FlushDb { db }),
        1 => Just(Op::SwapDb),
        2 => (1u64..2_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Sweep),
        2 => Just(Op::Reboot),
    ]
}

fn key_name(key: u8) -> Vec<u8> {
    format!("key:{key}").into_bytes()
}

/// What the model holds for a key: value and absolute deadline.
type Model = BTreeMap<(usize, u8), Stored>;
type Stored = (Vec<u8>, Option<u64>);

/// Opens the keyspace on `dir`. sled's background jobs of the instance just
/// dropped may hold its file lock for a moment (a real restart is another
/// process and never meets this), so the reopen retries briefly.
fn open(dir: &std::path::Path) -> Keyspace {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match try_open(dir) {
            Ok(keyspace) => return keyspace,
            Err(message) if message.contains("locked") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(message) => panic!("the keyspace opens: {message}"),
        }
    }
}

fn try_open(dir: &std::path::Path) -> Result<Keyspace, String> {
    Keyspace::open(KeyspaceOptions {
        databases: DATABASES,
        warm: Some(WarmOptions {
            dir: dir.to_path_buf(),
            databases: DATABASES,
            cache_size: 1 << 20,
            fsync: FsyncPolicy::No,
            max_disk: 0,
            min_free_disk: 0,
        }),
        // About three entries: most keys live on disk only.
        maxmemory: 1_200,
        policy: EvictionPolicy::AllKeys(Rank::Lru),
        samples: 5,
    })
}

fn live(model: &Model, now: u64) -> impl Iterator<Item = (&(usize, u8), &Stored)> {
    model
        .iter()
        .filter(move |(_, (_, deadline))| deadline.is_none_or(|at| at > now))
}

fn apply(keyspace: &Keyspace, model: &mut Model, now: &mut u64, op: &Op) {
    match op {
        Op::Set {
            db,
            key,
            value,
            ttl,
        } => {
            let deadline = ttl.map(|ttl| *now + ttl);
            let name = key_name(*key);
            keyspace.write(*db, &name, |txn| {
                txn.insert(0, Value::Str(Bytes::from(value.clone())), deadline)
            });
            model.insert((*db, *key), (value.clone(), deadline));
        }
        Op::Del { db, key } => {
            let name = key_name(*key);
            keyspace.write(*db, &name, |txn| txn.remove(0));
            model.remove(&(*db, *key));
        }
        Op::Expire { db, key, ttl } => {
            let deadline = ttl.map(|ttl| *now + ttl);
            let name = key_name(*key);
            keyspace.write(*db, &name, |txn| txn.set_expire(0, deadline));
            let alive = model
                .get(&(*db, *key))
                .is_some_and(|(_, at)| at.is_none_or(|at| at > *now));
            if alive {
                if let Some(entry) = model.get_mut(&(*db, *key)) {
                    entry.1 = deadline;
                }
            } else {
                model.remove(&(*db, *key));
            }
        }
        Op::Rename { db, from, to } => {
            let (a, b) = (key_name(*from), key_name(*to));
            keyspace.write_many([(*db, a.as_slice()), (*db, b.as_slice())], |txn| {
                if let Some(entry) = txn.remove(0) {
                    txn.insert_entry(1, entry);
                }
            });
            let moved = model
                .remove(&(*db, *from))
                .filter(|(_, at)| at.is_none_or(|at| at > *now));
            if let Some(entry) = moved {
                model.insert((*db, *to), entry);
            }
        }
        Op::FlushDb { db } => {
            keyspace.flush_db(*db, false);
            model.retain(|(d, _), _| d != db);
        }
        Op::SwapDb => {
            keyspace.swap_db(0, 1);
            *model = model
                .iter()
                .map(|((db, key), entry)| ((1 - db, *key), entry.clone()))
                .collect();
        }
        Op::Advance { ms } => *now += ms,
        Op::Sweep => {
            keyspace.sweep_expired();
        }
        Op::Reboot => unreachable!("handled by the caller"),
    }
    // As before every command: keep memory under its bound.
    let _ = keyspace.make_room(true);
}

fn compare(keyspace: &Keyspace, model: &Model, now: u64, step: usize) {
    for db in 0..DATABASES {
        for key in 0..KEYS {
            let expected = live(model, now)
                .find(|((d, k), _)| *d == db && *k == key)
                .map(|(_, (value, deadline))| (value.clone(), *deadline));
            let name = key_name(key);
            let found = keyspace.read(db, &name, ReadOptions::default(), |entry| {
                entry.map(|entry| match entry.value() {
                    ValueRef::Str(data) => (data.to_vec(), entry.expire_at()),
                })
            });
            assert_eq!(found, expected, "step {step}: db {db} key {key}");
        }
        // DBSIZE counts keys not yet swept, as Redis does: sweep first.
        while keyspace.sweep_expired() > 0 {}
        let live_count = live(model, now).filter(|((d, _), _)| *d == db).count();
        assert_eq!(
            keyspace.dbsize(db),
            live_count,
            "step {step}: dbsize of db {db}"
        );
        let mut scanned: Vec<_> = keyspace.keys(db, b"*").into_iter().collect();
        scanned.sort();
        let mut wanted: Vec<Bytes> = live(model, now)
            .filter(|((d, _), _)| *d == db)
            .map(|((_, k), _)| Bytes::from(key_name(*k)))
            .collect();
        wanted.sort();
        assert_eq!(scanned, wanted, "step {step}: KEYS * of db {db}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("STRATA_MODEL_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn keyspace_matches_a_btreemap_across_reboots(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut keyspace = Some(open(dir.path()));
        let mut model = Model::new();
        let mut now = strata::keyspace::unix_micros() / 1000;
        for (step, op) in ops.iter().enumerate() {
            let _clock = pin_clock(now);
            if let Op::Reboot = op {
                drop(keyspace.take());
                keyspace = Some(open(dir.path()));
            } else if let Some(ks) = &keyspace {
                apply(ks, &mut model, &mut now, op);
            }
            drop(_clock);
            let _clock = pin_clock(now);
            if let Some(ks) = &keyspace {
                compare(ks, &model, now, step);
            }
        }
    }
}
