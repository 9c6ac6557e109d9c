//! Model test of the tiered keyspace, in the manner of sled's own: random
//! operations go to strata's keyspace (memory over a real sled directory,
//! with a `maxmemory` small enough that keys keep leaving memory) and to a
//! `BTreeMap`, with `Reboot` (drop and reopen from the same directory) among
//! them; the two are compared after every step. Values are strings and every
//! collection type, changed element by element as commands change them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use proptest::prelude::*;
use strata::keyspace::types::{Collection, Hash, List, Set, ZSet};
use strata::keyspace::warm::{FsyncPolicy, WarmOptions};
use strata::keyspace::{
    pin_clock, EvictionPolicy, Keyspace, KeyspaceOptions, Rank, ReadOptions, Txn, Value, ValueRef,
};

const DATABASES: usize = 2;
const KEYS: u8 = 6;

/// One element change, applied when the key holds that type or nothing.
#[derive(Debug, Clone)]
enum Change {
    Push { front: bool, item: Vec<u8> },
    Pop { front: bool },
    ListSet { index: usize, item: Vec<u8> },
    ListInsert { index: usize, item: Vec<u8> },
    ListRemove { index: usize },
    HSet { field: u8, value: Vec<u8> },
    HDel { field: u8 },
    SAdd { member: u8 },
    SRem { member: u8 },
    ZAdd { member: u8, score: i8 },
    ZRem { member: u8 },
}

fn change() -> impl Strategy<Value = Change> {
    let item = prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        4 => (any::<bool>(), item.clone()).prop_map(|(front, item)| Change::Push { front, item }),
        2 => any::<bool>().prop_map(|front| Change::Pop { front }),
        1 => (0usize..8, item.clone()).prop_map(|(index, item)| Change::ListSet { index, item }),
        1 => (0usize..8, item.clone()).prop_map(|(index, item)| Change::ListInsert { index, item }),
        1 => (0usize..8).prop_map(|index| Change::ListRemove { index }),
        3 => (0u8..5, item).prop_map(|(field, value)| Change::HSet { field, value }),
        1 => (0u8..5).prop_map(|field| Change::HDel { field }),
        3 => (0u8..5).prop_map(|member| Change::SAdd { member }),
        1 => (0u8..5).prop_map(|member| Change::SRem { member }),
        3 => (0u8..5, any::<i8>()).prop_map(|(member, score)| Change::ZAdd { member, score }),
        1 => (0u8..5).prop_map(|member| Change::ZRem { member }),
    ]
}

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
    /// COPY (same database) or MOVE (to the other one).
    Copy {
        db: usize,
        from: u8,
        to: u8,
        other_db: bool,
        keep_source: bool,
    },
    Element {
        db: usize,
        key: u8,
        change: Change,
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
        1 => (db.clone(), key.clone(), key.clone()).prop_map(|(db, from, to)| Op::Rename { db, from, to }),
        1 => (db.clone(), key.clone(), key.clone(), any::<bool>(), any::<bool>()).prop_map(
            |(db, from, to, other_db, keep_source)| Op::Copy { db, from, to, other_db, keep_source }),
        10 => (db.clone(), key, change()).prop_map(|(db, key, change)| Op::Element { db, key, change }),
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
type Stored = (MValue, Option<u64>);

#[derive(Debug, Clone, PartialEq)]
enum MValue {
    Str(Vec<u8>),
    List(VecDeque<Vec<u8>>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    /// Members in (score, member) order, as ZRANGE lists them.
    ZSet(Vec<(i64, Vec<u8>)>),
}

impl MValue {
    fn of(value: ValueRef<'_>) -> MValue {
        match value {
            ValueRef::Str(data) => MValue::Str(data.to_vec()),
            ValueRef::List(list) => MValue::List(list.iter().map(<[u8]>::to_vec).collect()),
            ValueRef::Hash(hash) => {
                MValue::Hash(hash.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect())
            }
            ValueRef::Set(set) => MValue::Set(set.iter().map(<[u8]>::to_vec).collect()),
            ValueRef::ZSet(zset) => {
                MValue::ZSet(zset.iter().map(|(m, s)| (s as i64, m.to_vec())).collect())
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            MValue::Str(_) => false,
            MValue::List(l) => l.is_empty(),
            MValue::Hash(h) => h.is_empty(),
            MValue::Set(s) => s.is_empty(),
            MValue::ZSet(z) => z.is_empty(),
        }
    }
}

fn member_name(member: u8) -> Vec<u8> {
    format!("m{member}").into_bytes()
}

/// Applies `change` to the model's value (creating the collection when the
/// key is absent); false when the key holds another type.
fn change_model(value: &mut Option<MValue>, change: &Change) -> bool {
    use Change::*;
    let fresh = match change {
        Push { .. } | Pop { .. } | ListSet { .. } | ListInsert { .. } | ListRemove { .. } => {
            MValue::List(VecDeque::new())
        }
        HSet { .. } | HDel { .. } => MValue::Hash(BTreeMap::new()),
        SAdd { .. } | SRem { .. } => MValue::Set(BTreeSet::new()),
        ZAdd { .. } | ZRem { .. } => MValue::ZSet(Vec::new()),
    };
    let value = value.get_or_insert(fresh);
    match (value, change) {
        (MValue::List(l), Push { front: true, item }) => l.push_front(item.clone()),
        (MValue::List(l), Push { front: false, item }) => l.push_back(item.clone()),
        (MValue::List(l), Pop { front: true }) => drop(l.pop_front()),
        (MValue::List(l), Pop { front: false }) => drop(l.pop_back()),
        (MValue::List(l), ListSet { index, item }) => {
            if let Some(slot) = l.get_mut(*index) {
                *slot = item.clone();
            }
        }
        (MValue::List(l), ListInsert { index, item }) => {
            l.insert((*index).min(l.len()), item.clone())
        }
        (MValue::List(l), ListRemove { index }) => drop(l.remove(*index)),
        (MValue::Hash(h), HSet { field, value }) => {
            drop(h.insert(member_name(*field), value.clone()))
        }
        (MValue::Hash(h), HDel { field }) => drop(h.remove(&member_name(*field))),
        (MValue::Set(s), SAdd { member }) => drop(s.insert(member_name(*member))),
        (MValue::Set(s), SRem { member }) => drop(s.remove(&member_name(*member))),
        (MValue::ZSet(z), ZAdd { member, score }) => {
            let name = member_name(*member);
            z.retain(|(_, m)| *m != name);
            z.push((i64::from(*score), name));
            z.sort();
        }
        (MValue::ZSet(z), ZRem { member }) => z.retain(|(_, m)| *m != member_name(*member)),
        _ => return false,
    }
    true
}

/// Applies `change` to key 0 of the transaction, as the commands will.
fn change_keyspace(txn: &mut Txn<'_>, change: &Change) {
    use Change::*;
    if !txn.exists(0) {
        let fresh = match change {
            Push { .. } | Pop { .. } | ListSet { .. } | ListInsert { .. } | ListRemove { .. } => {
                Value::List(List::default())
            }
            HSet { .. } | HDel { .. } => Value::Hash(Hash::default()),
            SAdd { .. } | SRem { .. } => Value::Set(Set::default()),
            ZAdd { .. } | ZRem { .. } => Value::ZSet(ZSet::default()),
        };
        txn.insert(0, fresh, None);
    }
    let Some(entry) = txn.entry_mut(0) else {
        return;
    };
    match change {
        Push { front, item } => {
            if let Some(l) = entry.list_mut() {
                if *front {
                    l.push_front(item)
                } else {
                    l.push_back(item)
                }
            }
        }
        Pop { front } => {
            if let Some(l) = entry.list_mut() {
                if *front {
                    l.pop_front();
                } else {
                    l.pop_back();
                }
            }
        }
        ListSet { index, item } => {
            if let Some(l) = entry.list_mut() {
                l.set(*index, item);
            }
        }
        ListInsert { index, item } => {
            if let Some(l) = entry.list_mut() {
                let at = (*index).min(l.len());
                l.insert(at, item);
            }
        }
        ListRemove { index } => {
            if let Some(l) = entry.list_mut() {
                l.remove(*index);
            }
        }
        HSet { field, value } => {
            if let Some(h) = entry.hash_mut() {
                h.insert(&member_name(*field), value);
            }
        }
        HDel { field } => {
            if let Some(h) = entry.hash_mut() {
                h.remove(&member_name(*field));
            }
        }
        SAdd { member } => {
            if let Some(s) = entry.set_mut() {
                s.insert(&member_name(*member));
            }
        }
        SRem { member } => {
            if let Some(s) = entry.set_mut() {
                s.remove(&member_name(*member));
            }
        }
        ZAdd { member, score } => {
            if let Some(z) = entry.zset_mut() {
                z.insert(&member_name(*member), f64::from(*score));
            }
        }
        ZRem { member } => {
            if let Some(z) = entry.zset_mut() {
                z.remove(&member_name(*member));
            }
        }
    }
}

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
        source: None,
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
            model.insert((*db, *key), (MValue::Str(value.clone()), deadline));
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
        Op::Copy {
            db,
            from,
            to,
            other_db,
            keep_source,
        } => {
            let to_db = if *other_db { 1 - db } else { *db };
            if (*db, from) == (to_db, to) {
                return;
            }
            let (a, b) = (key_name(*from), key_name(*to));
            keyspace.write_many([(*db, a.as_slice()), (to_db, b.as_slice())], |txn| {
                let entry = if *keep_source {
                    txn.get(0).map(|e| e.copy(0))
                } else {
                    txn.remove(0)
                };
                if let Some(entry) = entry {
                    txn.insert_entry(1, entry);
                }
            });
            let source = model
                .get(&(*db, *from))
                .filter(|(_, at)| at.is_none_or(|at| at > *now))
                .cloned();
            if !keep_source {
                model.remove(&(*db, *from));
            }
            if let Some(entry) = source {
                model.insert((to_db, *to), entry);
            }
        }
        Op::Element { db, key, change } => {
            let name = key_name(*key);
            let slot = model
                .get(&(*db, *key))
                .filter(|(_, at)| at.is_none_or(|at| at > *now))
                .cloned();
            let deadline = slot.as_ref().and_then(|(_, at)| *at);
            let mut value = slot.map(|(v, _)| v);
            if change_model(&mut value, change) {
                keyspace.write(*db, &name, |txn| change_keyspace(txn, change));
            }
            match value {
                Some(value) if !value.is_empty() => {
                    model.insert((*db, *key), (value, deadline));
                }
                _ => {
                    model.remove(&(*db, *key));
                }
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
                entry.map(|entry| (MValue::of(entry.value()), entry.expire_at()))
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
