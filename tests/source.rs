//! The source of truth against a real PostgreSQL: the one `tools/pg.sh`
//! starts (and `tools/test.sh` exports as `STRATA_TEST_PG_URL`), and the
//! PgBouncer in transaction mode in front of it (`STRATA_TEST_PGBOUNCER_URL`).
//! Each test works in a schema of its own, so they run side by side.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::pg::{drop_schema, pg_url, psql, schema};
use common::relay::Relay;
use strata::config::{Secret, SourceConfig};
use strata::source::{
    BreakerState, CollectionKind, Invalidation, Loaded, Notice, Op, OutboxRecord, RetryPolicy,
    Source, SourceError,
};
use tokio::sync::mpsc;

fn config(url: &str, schema: &str) -> SourceConfig {
    SourceConfig {
        url: Secret::new(url),
        schema: schema.to_string(),
        ..SourceConfig::default()
    }
}

async fn open(url: &str, schema: &str, instance: &str) -> Source {
    let source = Source::new(&config(url, schema), instance).expect("source config");
    source.ensure_schema().await.expect("schema");
    source
}

fn rec(db: u32, key: &str, version: u64, op: Op) -> OutboxRecord {
    OutboxRecord {
        db,
        key: Bytes::from(key.to_string()),
        version,
        op,
    }
}

fn put(value: &str) -> Op {
    Op::PutString {
        value: Bytes::from(value.to_string()),
        expire_at_ms: None,
    }
}

fn put_el(kind: CollectionKind, element: &[u8], value: &str) -> Op {
    Op::PutElement {
        kind,
        element: Bytes::copy_from_slice(element),
        value: Bytes::from(value.to_string()),
    }
}

fn del_el(kind: CollectionKind, element: &[u8]) -> Op {
    Op::DeleteElement {
        kind,
        element: Bytes::copy_from_slice(element),
    }
}

fn string(value: &str, version: u64) -> Option<Loaded> {
    Some(Loaded::String {
        value: Bytes::from(value.to_string()),
        expire_at_ms: None,
        version,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every row of the schema with its physical version (`xmin`): a statement
/// that changes nothing leaves this exactly as it was.
async fn snapshot(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for row in client
        .query(
            &format!(
                "SELECT format('%s %s %s %s %s %s %s', db, encode(key, 'hex'), kind, \
                 encode(value, 'hex'), expire_at, version, xmin) FROM {schema}.keys ORDER BY db, key"
            ),
            &[],
        )
        .await
        .expect("keys")
    {
        rows.push(row.get::<_, String>(0));
    }
    for row in client
        .query(
            &format!(
                "SELECT format('%s %s %s %s %s %s', db, encode(key, 'hex'), encode(element, 'hex'), \
                 encode(value, 'hex'), version, xmin) FROM {schema}.elements ORDER BY db, key, element"
            ),
            &[],
        )
        .await
        .expect("elements")
    {
        rows.push(row.get::<_, String>(0));
    }
    rows
}

#[tokio::test]
async fn schema_creation_is_idempotent_and_safe_to_race() {
    let url = require_pg!();
    let name = schema("ddl");
    let a = Source::new(&config(&url, &name), "a").unwrap();
    let b = Source::new(&config(&url, &name), "b").unwrap();
    // Two instances starting at once, then again.
    let (ra, rb) = tokio::join!(a.ensure_schema(), b.ensure_schema());
    ra.unwrap();
    rb.unwrap();
    a.ensure_schema().await.unwrap();
    a.ship(&[rec(0, "k", 1, put("v"))]).await.unwrap();
    a.ensure_schema().await.unwrap();
    assert_eq!(a.load(0, b"k").await.unwrap(), string("v", 1), "data kept");

    let client = psql(&url).await;
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["elements", "keys"]);
    let triggers: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.triggers WHERE event_object_schema = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        triggers, 3,
        "two triggers: on INSERT and UPDATE, and on DELETE, created once"
    );
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn strings_and_collections_round_trip() {
    let url = require_pg!();
    let name = schema("roundtrip");
    let source = open(&url, &name, "a").await;
    let later = now_ms() + 3_600_000;
    let pos = |i: u64| i.to_be_bytes();
    source
        .ship(&[
            rec(0, "plain", 1, put("hello")),
            rec(
                0,
                "expiring",
                1,
                Op::PutString {
                    value: Bytes::from_static(b"soon"),
                    expire_at_ms: Some(later),
                },
            ),
            rec(
                0,
                "expired",
                1,
                Op::PutString {
                    value: Bytes::from_static(b"gone"),
                    expire_at_ms: Some(now_ms() - 1000),
                },
            ),
            rec(3, "plain", 1, put("other db")),
            rec(0, "h", 1, put_el(CollectionKind::Hash, b"f1", "v1")),
            rec(0, "h", 2, put_el(CollectionKind::Hash, b"f2", "v2")),
            rec(0, "l", 1, put_el(CollectionKind::List, &pos(2), "second")),
            rec(0, "l", 2, put_el(CollectionKind::List, &pos(1), "first")),
            rec(0, "l", 3, put_el(CollectionKind::List, &pos(3), "third")),
            rec(0, "bin\0\u{ff}", 1, put("\0\u{1}")),
        ])
        .await
        .unwrap();

    assert_eq!(source.load(0, b"plain").await.unwrap(), string("hello", 1));
    assert_eq!(
        source.load(3, b"plain").await.unwrap(),
        string("other db", 1)
    );
    assert_eq!(
        source.load(0, b"expiring").await.unwrap(),
        Some(Loaded::String {
            value: Bytes::from_static(b"soon"),
            expire_at_ms: Some(later),
            version: 1
        })
    );
    assert_eq!(source.load(0, b"expired").await.unwrap(), None);
    assert_eq!(source.load(0, b"missing").await.unwrap(), None);
    assert_eq!(
        source.load(0, "bin\0\u{ff}".as_bytes()).await.unwrap(),
        string("\0\u{1}", 1)
    );
    let elements = |pairs: &[(&[u8], &str)]| -> Vec<(Bytes, Bytes)> {
        pairs
            .iter()
            .map(|(e, v)| (Bytes::copy_from_slice(e), Bytes::from(v.to_string())))
            .collect()
    };
    assert_eq!(
        source.load(0, b"h").await.unwrap(),
        Some(Loaded::Collection {
            kind: CollectionKind::Hash,
            elements: elements(&[(b"f1", "v1"), (b"f2", "v2")]),
            expire_at_ms: None,
            version: 2,
        })
    );
    assert_eq!(
        source.load(0, b"l").await.unwrap(),
        Some(Loaded::Collection {
            kind: CollectionKind::List,
            elements: elements(&[(&pos(1), "first"), (&pos(2), "second"), (&pos(3), "third")]),
            expire_at_ms: None,
            version: 3,
        }),
        "a list comes back in position order"
    );

    // An element goes, an expiry is set on the collection, a key is deleted.
    source
        .ship(&[
            rec(0, "h", 3, del_el(CollectionKind::Hash, b"f1")),
            rec(
                0,
                "h",
                4,
                Op::SetExpire {
                    expire_at_ms: Some(later),
                },
            ),
            rec(0, "plain", 2, Op::DeleteKey),
            rec(0, "expiring", 2, Op::SetExpire { expire_at_ms: None }),
        ])
        .await
        .unwrap();
    assert_eq!(
        source.load(0, b"h").await.unwrap(),
        Some(Loaded::Collection {
            kind: CollectionKind::Hash,
            elements: elements(&[(b"f2", "v2")]),
            expire_at_ms: Some(later),
            version: 4,
        })
    );
    assert_eq!(source.load(0, b"plain").await.unwrap(), None);
    assert_eq!(
        source.load(0, b"expiring").await.unwrap(),
        string("soon", 2),
        "PERSIST keeps the value"
    );

    // A string written over the hash replaces it whole, elements included.
    source
        .ship(&[rec(0, "h", 5, put("now a string"))])
        .await
        .unwrap();
    assert_eq!(
        source.load(0, b"h").await.unwrap(),
        string("now a string", 5)
    );
    let client = psql(&url).await;
    let left: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {name}.elements WHERE key = 'h'::bytea"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(source.stats().shipped_batches, 3);
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn a_replayed_batch_changes_nothing() {
    let url = require_pg!();
    let name = schema("replay");
    let source = open(&url, &name, "a").await;
    let batch = vec![
        rec(0, "s", 1, put("one")),
        rec(0, "s", 2, put("two")),
        rec(0, "h", 1, put_el(CollectionKind::Hash, b"f", "1")),
        rec(0, "h", 2, put_el(CollectionKind::Hash, b"g", "2")),
        rec(0, "h", 3, del_el(CollectionKind::Hash, b"f")),
        rec(0, "d", 1, put("doomed")),
        rec(0, "d", 2, Op::DeleteKey),
    ];
    source.ship(&batch).await.unwrap();
    let client = psql(&url).await;
    let before = snapshot(&client, &name).await;
    assert!(
        before
            .iter()
            .any(|row| row.starts_with("0 73 string 74776f  2 ")),
        "{before:?}"
    );

    source.ship(&batch).await.unwrap();
    source.ship(&batch[..3]).await.unwrap();
    assert_eq!(snapshot(&client, &name).await, before, "no row rewritten");
    // The deleted field stays deleted: its put (version 1) is older than the key.
    assert_eq!(
        source.load(0, b"h").await.unwrap(),
        Some(Loaded::Collection {
            kind: CollectionKind::Hash,
            elements: vec![(Bytes::from_static(b"g"), Bytes::from_static(b"2"))],
            expire_at_ms: None,
            version: 3,
        })
    );
    assert_eq!(source.load(0, b"d").await.unwrap(), None);

    // A batch whose first half was shipped before applies only its new half.
    let mut extended = batch.clone();
    extended.push(rec(0, "s", 3, put("three")));
    source.ship(&extended).await.unwrap();
    assert_eq!(source.load(0, b"s").await.unwrap(), string("three", 3));
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn an_older_version_never_overwrites_a_newer_one() {
    let url = require_pg!();
    let name = schema("older");
    let source = open(&url, &name, "a").await;
    source.ship(&[rec(0, "k", 10, put("new"))]).await.unwrap();
    source.ship(&[rec(0, "k", 5, put("old"))]).await.unwrap();
    source.ship(&[rec(0, "k", 7, Op::DeleteKey)]).await.unwrap();
    source
        .ship(&[rec(0, "k", 9, put_el(CollectionKind::Set, b"m", ""))])
        .await
        .unwrap();
    assert_eq!(source.load(0, b"k").await.unwrap(), string("new", 10));

    // A newer delete wins, and an older write cannot bring the key back.
    source
        .ship(&[rec(0, "k", 11, Op::DeleteKey)])
        .await
        .unwrap();
    source.ship(&[rec(0, "k", 10, put("new"))]).await.unwrap();
    assert_eq!(source.load(0, b"k").await.unwrap(), None);
    let client = psql(&url).await;
    let row = client
        .query_one(
            &format!("SELECT kind, version FROM {name}.keys WHERE key = 'k'::bytea"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None, "a tombstone");
    assert_eq!(row.get::<_, i64>(1), 11);
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn records_of_a_key_apply_in_order_within_a_batch() {
    let url = require_pg!();
    let name = schema("order");
    let source = open(&url, &name, "a").await;
    source
        .ship(&[
            rec(0, "k", 1, put("a")),
            rec(0, "other", 1, put("x")),
            rec(0, "k", 2, put("b")),
            rec(0, "k", 3, Op::DeleteKey),
            rec(0, "other", 2, Op::DeleteKey),
            rec(0, "k", 4, put("c")),
            rec(0, "l", 1, put_el(CollectionKind::List, b"1", "a")),
            rec(0, "l", 2, del_el(CollectionKind::List, b"1")),
            rec(0, "l", 3, put_el(CollectionKind::List, b"2", "b")),
            rec(0, "l", 4, put_el(CollectionKind::List, b"1", "c")),
            rec(0, "z", 1, put("string first")),
            rec(0, "z", 2, Op::DeleteKey),
            rec(0, "z", 3, put_el(CollectionKind::ZSet, b"m", "1.5")),
        ])
        .await
        .unwrap();
    assert_eq!(source.load(0, b"k").await.unwrap(), string("c", 4));
    assert_eq!(source.load(0, b"other").await.unwrap(), None);
    assert_eq!(
        source.load(0, b"l").await.unwrap(),
        Some(Loaded::Collection {
            kind: CollectionKind::List,
            elements: vec![
                (Bytes::from_static(b"1"), Bytes::from_static(b"c")),
                (Bytes::from_static(b"2"), Bytes::from_static(b"b")),
            ],
            expire_at_ms: None,
            version: 4,
        })
    );
    assert_eq!(
        source.load(0, b"z").await.unwrap(),
        Some(Loaded::Collection {
            kind: CollectionKind::ZSet,
            elements: vec![(Bytes::from_static(b"m"), Bytes::from_static(b"1.5"))],
            expire_at_ms: None,
            version: 3,
        })
    );
    drop_schema(&url, &name).await;
}

/// Calls of statements naming `schema` whose text contains `fragment`, as
/// the server counted them.
async fn statement_calls(client: &tokio_postgres::Client, schema: &str, fragment: &str) -> i64 {
    client
        .query_one(
            "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements \
             WHERE query LIKE $1 AND query LIKE $2",
            &[&format!("%{schema}.%"), &format!("%{fragment}%")],
        )
        .await
        .expect("pg_stat_statements")
        .get(0)
}

fn list(elements: &[(&'static [u8], &'static str)], version: u64) -> Option<Loaded> {
    Some(Loaded::Collection {
        kind: CollectionKind::List,
        elements: elements
            .iter()
            .map(|(element, value)| {
                (
                    Bytes::from_static(element),
                    Bytes::from_static(value.as_bytes()),
                )
            })
            .collect(),
        expire_at_ms: None,
        version,
    })
}

/// A batch ships without reading its rows when it can guess them (each
/// key's first record replaces the key, or changes elements of a live
/// collection of that kind), and reads them first when a guess is wrong;
/// either way the result is the same as applying every newer record.
#[tokio::test]
async fn a_batch_that_guesses_its_rows_ends_as_one_that_reads_them() {
    let url = require_pg!();
    let name = schema("guess");
    let source = open(&url, &name, "a").await;
    let client = psql(&url).await;
    let lock = "FOR UPDATE OF k";
    let reads = "k.kind, k.version, k.expire_at";

    // Strings and a new list, then a push onto the list: no row is read.
    source
        .ship(&[
            rec(0, "s", 1, put("one")),
            rec(0, "l", 1, Op::DeleteKey),
            rec(0, "l", 2, put_el(CollectionKind::List, b"a", "A")),
        ])
        .await
        .unwrap();
    source
        .ship(&[
            rec(0, "s", 3, put("two")),
            rec(0, "l", 3, put_el(CollectionKind::List, b"b", "B")),
        ])
        .await
        .unwrap();
    assert_eq!(statement_calls(&client, &name, reads).await, 0);
    assert_eq!(source.load(0, b"s").await.unwrap(), string("two", 3));
    assert_eq!(
        source.load(0, b"l").await.unwrap(),
        list(&[(b"a", "A"), (b"b", "B")], 3)
    );

    // Shipped again after a crash, split differently: what the source
    // holds is newer than the first records, older than the last.
    let history = [
        rec(0, "l", 4, Op::DeleteKey),
        rec(0, "l", 5, put_el(CollectionKind::List, b"c", "C")),
        rec(0, "l", 6, put_el(CollectionKind::List, b"d", "D")),
    ];
    source.ship(&history[..2]).await.unwrap();
    let before = snapshot(&client, &name).await;
    source.ship(&history[..2]).await.unwrap();
    assert_eq!(snapshot(&client, &name).await, before, "no row rewritten");
    source.ship(&history).await.unwrap();
    assert_eq!(
        source.load(0, b"l").await.unwrap(),
        list(&[(b"c", "C"), (b"d", "D")], 6)
    );
    // An old push, after the DEL that followed it has shipped: its guess
    // (a list older than the push) is wrong, and nothing comes back.
    source
        .ship(&[rec(0, "l", 3, put_el(CollectionKind::List, b"b", "B"))])
        .await
        .unwrap();
    assert_eq!(
        source.load(0, b"l").await.unwrap(),
        list(&[(b"c", "C"), (b"d", "D")], 6)
    );
    assert!(statement_calls(&client, &name, lock).await >= 1);

    // Another writer made the key a hash: a set member guessed onto a set
    // replaces it, as when the row is read first.
    source
        .ship(&[
            rec(0, "w", 1, Op::DeleteKey),
            rec(0, "w", 2, put_el(CollectionKind::Hash, b"f", "1")),
        ])
        .await
        .unwrap();
    source
        .ship(&[rec(0, "w", 3, put_el(CollectionKind::Set, b"m", ""))])
        .await
        .unwrap();
    assert_eq!(
        source.load(0, b"w").await.unwrap(),
        Some(Loaded::Collection {
            kind: CollectionKind::Set,
            elements: vec![(Bytes::from_static(b"m"), Bytes::new())],
            expire_at_ms: None,
            version: 3,
        })
    );

    // An element change keeps the key's expiry, which the guess never saw.
    let later = now_ms() + 3_600_000;
    source
        .ship(&[rec(
            0,
            "w",
            4,
            Op::SetExpire {
                expire_at_ms: Some(later),
            },
        )])
        .await
        .unwrap();
    source
        .ship(&[rec(0, "w", 5, put_el(CollectionKind::Set, b"n", ""))])
        .await
        .unwrap();
    match source.load(0, b"w").await.unwrap() {
        Some(Loaded::Collection {
            elements,
            expire_at_ms,
            version,
            ..
        }) => {
            assert_eq!(elements.len(), 2);
            assert_eq!(expire_at_ms, Some(later));
            assert_eq!(version, 5);
        }
        other => panic!("{other:?}"),
    }
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn flush_source_deletes_what_came_before_it_only() {
    let url = require_pg!();
    let name = schema("flush");
    let source = open(&url, &name, "a").await;
    source
        .ship(&[
            rec(0, "a", 1, put("1")),
            rec(0, "h", 2, put_el(CollectionKind::Hash, b"f", "v")),
            rec(1, "b", 3, put("2")),
            rec(0, "", 10, Op::FlushDb),
            rec(0, "c", 11, put("after")),
        ])
        .await
        .unwrap();
    assert_eq!(source.load(0, b"a").await.unwrap(), None);
    assert_eq!(source.load(0, b"h").await.unwrap(), None);
    assert_eq!(source.load(1, b"b").await.unwrap(), string("2", 3));
    assert_eq!(source.load(0, b"c").await.unwrap(), string("after", 11));
    // A write older than the flush, arriving late, stays flushed.
    source.ship(&[rec(0, "a", 5, put("late"))]).await.unwrap();
    assert_eq!(source.load(0, b"a").await.unwrap(), None);
    source.ship(&[rec(0, "", 20, Op::FlushAll)]).await.unwrap();
    assert_eq!(source.load(1, b"b").await.unwrap(), None);
    assert_eq!(source.load(0, b"c").await.unwrap(), None);
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn load_is_exactly_one_query_on_the_server() {
    let url = require_pg!();
    let name = schema("onequery");
    let source = open(&url, &name, "a").await;
    source
        .ship(&[
            rec(0, "s", 1, put("v")),
            rec(0, "h", 1, put_el(CollectionKind::Hash, b"f1", "1")),
            rec(0, "h", 2, put_el(CollectionKind::Hash, b"f2", "2")),
        ])
        .await
        .unwrap();
    let client = psql(&url).await;
    // Every statement whose text names this test's schema, as the server
    // counted them (other tests use other schemas).
    let calls = || async {
        let row = client
            .query_one(
                "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements WHERE query LIKE $1",
                &[&format!("%{name}.%")],
            )
            .await
            .expect("pg_stat_statements (shared_preload_libraries and CREATE EXTENSION, see tools/pg.sh)");
        row.get::<_, i64>(0)
    };
    for key in [&b"s"[..], b"h", b"missing"] {
        let before = calls().await;
        let loaded = source.load(0, key).await.unwrap();
        assert_eq!(loaded.is_some(), key != b"missing");
        assert_eq!(
            calls().await - before,
            1,
            "{:?}",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(source.stats().loads, 3);
    drop_schema(&url, &name).await;
}

async fn next_notice(rx: &mut mpsc::Receiver<Notice>) -> Notice {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notice within 10 s")
        .expect("listener alive")
}

#[tokio::test]
async fn the_trigger_notifies_listeners_with_the_writer() {
    let url = require_pg!();
    let name = schema("notify");
    let writer = open(&url, &name, "node-a").await;
    let mut listen_config = config(&url, &name);
    listen_config.listen_url = Secret::new(format!("{url}?application_name=listen_{name}"));
    let listener = Source::new(&listen_config, "node-b").unwrap();
    let mut rx = listener.listen();
    assert_eq!(
        next_notice(&mut rx).await,
        Notice::Listening { reconnected: false }
    );

    writer
        .ship(&[
            rec(2, "k", 1, put("v")),
            rec(0, "h", 1, put_el(CollectionKind::Set, b"m", "")),
        ])
        .await
        .unwrap();
    let mut got = vec![next_notice(&mut rx).await, next_notice(&mut rx).await];
    got.sort_by_key(|n| format!("{n:?}"));
    assert_eq!(
        got,
        [
            Notice::Invalidate(Invalidation {
                db: 0,
                key: Some(Bytes::from_static(b"h")),
                writer: "node-a".into()
            }),
            Notice::Invalidate(Invalidation {
                db: 2,
                key: Some(Bytes::from_static(b"k")),
                writer: "node-a".into()
            }),
        ]
    );

    // A replay changes no version, so nobody is told anything; the next
    // real write is the next notice.
    writer.ship(&[rec(2, "k", 1, put("v"))]).await.unwrap();
    let long = "x".repeat(5000);
    writer.ship(&[rec(0, &long, 1, put("v"))]).await.unwrap();
    assert_eq!(
        next_notice(&mut rx).await,
        Notice::Invalidate(Invalidation {
            db: 0,
            key: None,
            writer: "node-a".into()
        }),
        "a key too long for a payload invalidates its database"
    );

    // The listen connection is killed: the listener reconnects and says so.
    let client = psql(&url).await;
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("listen_{name}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    assert_eq!(
        next_notice(&mut rx).await,
        Notice::Listening { reconnected: true }
    );
    writer.ship(&[rec(2, "k", 2, put("w"))]).await.unwrap();
    assert_eq!(
        next_notice(&mut rx).await,
        Notice::Invalidate(Invalidation {
            db: 2,
            key: Some(Bytes::from_static(b"k")),
            writer: "node-a".into()
        })
    );
    assert_eq!(listener.stats().listener_reconnects, 1);
    drop(rx);
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_closes_again() {
    let url = require_pg!();
    let name = schema("breaker");
    let parsed: tokio_postgres::Config = url.parse().unwrap();
    let port = parsed.get_ports().first().copied().unwrap_or(5432);
    let relay = Relay::start(format!("127.0.0.1:{port}")).await;
    let relayed = url.replacen(&format!(":{port}/"), &format!(":{}/", relay.port), 1);
    assert_ne!(relayed, url);

    let mut cfg = config(&relayed, &name);
    cfg.breaker_threshold = 3;
    cfg.breaker_retry_after = strata::config::DurationValue(Duration::from_millis(500));
    cfg.connect_timeout = strata::config::DurationValue(Duration::from_secs(2));
    let source = Source::new(&cfg, "a").unwrap().with_retry(RetryPolicy {
        attempts: 0,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    });
    source.ensure_schema().await.unwrap();
    source.ship(&[rec(0, "k", 1, put("v"))]).await.unwrap();
    assert_eq!(source.breaker_state(), BreakerState::Closed);

    relay.set_up(false);
    // The relay drops the pooled connection within its 20 ms poll.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let err = source.load(0, b"k").await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
    assert_eq!(source.breaker_state(), BreakerState::Open);
    let started = Instant::now();
    let err = source.load(0, b"k").await.unwrap_err();
    assert!(matches!(err, SourceError::BreakerOpen { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(200), "fails fast");
    assert!(matches!(
        source.ship(&[rec(0, "k", 2, put("w"))]).await,
        Err(SourceError::BreakerOpen { .. })
    ));

    // Still down when the delay passes: the probe fails, open again.
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(source.breaker_state(), BreakerState::HalfOpen);
    assert!(source.load(0, b"k").await.unwrap_err().is_transient());
    assert_eq!(source.breaker_state(), BreakerState::Open);

    // Back up: the next probe succeeds and the breaker closes.
    relay.set_up(true);
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(source.load(0, b"k").await.unwrap(), string("v", 1));
    assert_eq!(source.breaker_state(), BreakerState::Closed);
    source.ship(&[rec(0, "k", 2, put("w"))]).await.unwrap();
    assert_eq!(source.load(0, b"k").await.unwrap(), string("w", 2));
    assert!(source.stats().breaker_refusals >= 2);
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn retries_ride_out_a_short_outage() {
    let url = require_pg!();
    let name = schema("retry");
    let parsed: tokio_postgres::Config = url.parse().unwrap();
    let port = parsed.get_ports().first().copied().unwrap_or(5432);
    let relay = Relay::start(format!("127.0.0.1:{port}")).await;
    let relayed = url.replacen(&format!(":{port}/"), &format!(":{}/", relay.port), 1);
    let source = Source::new(&config(&relayed, &name), "a")
        .unwrap()
        .with_retry(RetryPolicy {
            attempts: 6,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        });
    source.ensure_schema().await.unwrap();
    relay.set_up(false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let up = {
        let flag = relay.up.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            flag.store(true, Ordering::SeqCst);
        })
    };
    source.ship(&[rec(0, "k", 1, put("v"))]).await.unwrap();
    up.await.unwrap();
    assert!(source.stats().retries >= 1, "{:?}", source.stats());
    assert_eq!(source.load(0, b"k").await.unwrap(), string("v", 1));
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn works_through_pgbouncer_in_transaction_mode() {
    let url = require_pg!();
    let Some(pooled) = pg_url("STRATA_TEST_PGBOUNCER_URL") else {
        return;
    };
    let name = schema("bouncer");
    let mut cfg = config(&pooled, &name);
    cfg.listen_url = Secret::new(url.clone());
    cfg.pool_size = 16;
    let source = Arc::new(Source::new(&cfg, "pooled").unwrap());
    source.ensure_schema().await.unwrap();
    let mut rx = source.listen();
    assert_eq!(
        next_notice(&mut rx).await,
        Notice::Listening { reconnected: false }
    );
    // Many connections of ours share PgBouncer's 8 server connections, so
    // consecutive statements land on different ones: a named prepared
    // statement would be missing there.
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let source = source.clone();
        tasks.push(tokio::spawn(async move {
            for i in 1..=10u64 {
                let key = format!("k{task}");
                source
                    .ship(&[
                        rec(0, &key, i, put(&i.to_string())),
                        rec(
                            0,
                            "shared",
                            task * 100 + i,
                            put_el(CollectionKind::Hash, key.as_bytes(), "x"),
                        ),
                    ])
                    .await
                    .unwrap();
                assert_eq!(
                    source.load(0, key.as_bytes()).await.unwrap(),
                    string(&i.to_string(), i)
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    match source.load(0, b"shared").await.unwrap() {
        Some(Loaded::Collection {
            elements, version, ..
        }) => {
            assert_eq!(version, 31 * 100 + 10, "the highest version wins");
            assert!(!elements.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let notice = next_notice(&mut rx).await;
    assert!(
        matches!(&notice, Notice::Invalidate(Invalidation { writer, .. }) if writer == "pooled"),
        "{notice:?}"
    );
    drop(rx);
    drop_schema(&url, &name).await;
}

/// Whether the server sees TLS on the connection named `app`.
async fn ssl_of(client: &tokio_postgres::Client, app: &str) -> Vec<bool> {
    client
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn tls_require_and_verify_full() {
    let url = require_pg!();
    let Some(ca) = pg_url("STRATA_TEST_PG_CA") else {
        return;
    };
    let name = schema("tls");
    let client = psql(&url).await;
    let open_with = |mode: strata::config::SslMode, root: &str, app: &str| {
        let mut cfg = config(&format!("{url}?application_name={app}"), &name);
        cfg.sslmode = mode;
        cfg.sslrootcert = std::path::PathBuf::from(root);
        Source::new(&cfg, "a").unwrap()
    };
    use strata::config::SslMode;

    let required = open_with(SslMode::Require, "", &format!("req_{name}"));
    required.ensure_schema().await.unwrap();
    required.ship(&[rec(0, "k", 1, put("v"))]).await.unwrap();
    assert_eq!(ssl_of(&client, &format!("req_{name}")).await, [true]);

    let verified = open_with(SslMode::VerifyFull, &ca, &format!("full_{name}"));
    assert_eq!(verified.load(0, b"k").await.unwrap(), string("v", 1));
    assert_eq!(ssl_of(&client, &format!("full_{name}")).await, [true]);

    // The server's certificate is not signed by a public CA: refused.
    let public_roots =
        open_with(SslMode::VerifyFull, "", &format!("pub_{name}")).with_retry(RetryPolicy {
            attempts: 0,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        });
    let err = public_roots.load(0, b"k").await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable(_)), "{err:?}");

    // The URL's sslmode counts too, and the stricter one wins.
    let mut cfg = config(
        &format!("{url}?sslmode=verify-full&sslrootcert={ca}&application_name=url_{name}"),
        &name,
    );
    cfg.sslmode = SslMode::Disable;
    let from_url = Source::new(&cfg, "a").unwrap();
    assert_eq!(from_url.load(0, b"k").await.unwrap(), string("v", 1));
    assert_eq!(ssl_of(&client, &format!("url_{name}")).await, [true]);

    let plain = open_with(SslMode::Disable, "", &format!("plain_{name}"));
    assert_eq!(plain.load(0, b"k").await.unwrap(), string("v", 1));
    assert_eq!(ssl_of(&client, &format!("plain_{name}")).await, [false]);
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn a_batch_is_one_transaction_and_a_poison_record_is_not_retried() {
    let url = require_pg!();
    let name = schema("atomic");
    let source = open(&url, &name, "a").await;
    // A rule of the application's own, as a constraint would be.
    psql(&url)
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION {name}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.key = 'poison'::bytea THEN RAISE EXCEPTION 'no poison here'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {name}.keys \
             FOR EACH ROW EXECUTE FUNCTION {name}.refuse();"
        ))
        .await
        .unwrap();
    let err = source
        .ship(&[rec(0, "a", 1, put("1")), rec(0, "poison", 1, put("2"))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Rejected(reason) if reason.contains("no poison here")),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(source.load(0, b"a").await.unwrap(), None, "all or nothing");
    let stats = source.stats();
    assert_eq!(stats.retries, 0, "a refused statement is not retried");
    assert_eq!(stats.ship_errors, 1);
    assert_eq!(source.breaker_state(), BreakerState::Closed);
    source.ship(&[rec(0, "a", 1, put("1"))]).await.unwrap();
    assert_eq!(source.load(0, b"a").await.unwrap(), string("1", 1));
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn an_overrun_is_a_timeout_and_is_cancelled_on_the_server() {
    let url = require_pg!();
    let name = schema("timeout");
    let mut cfg = config(&format!("{url}?application_name=slow_{name}"), &name);
    cfg.statement_timeout = strata::config::DurationValue(Duration::from_millis(300));
    cfg.pool_size = 1;
    let source = Source::new(&cfg, "a").unwrap().with_retry(RetryPolicy {
        attempts: 0,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    });
    source.ensure_schema().await.unwrap();
    source.ship(&[rec(0, "k", 1, put("v"))]).await.unwrap();

    // Another session holds the table: the load waits behind its lock.
    let mut blocker = psql(&url).await;
    let txn = blocker.transaction().await.unwrap();
    txn.batch_execute(&format!("LOCK TABLE {name}.keys IN ACCESS EXCLUSIVE MODE"))
        .await
        .unwrap();
    let started = Instant::now();
    let err = source.load(0, b"k").await.unwrap_err();
    assert_eq!(err, SourceError::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // The abandoned statement does not keep waiting on the server.
    let watcher = psql(&url).await;
    let mut waiting = i64::MAX;
    for _ in 0..50 {
        waiting = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
                &[&format!("slow_{name}")],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(waiting, 0);
    txn.rollback().await.unwrap();
    // The pool's one connection was replaced: the next load just works.
    assert_eq!(source.load(0, b"k").await.unwrap(), string("v", 1));
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn a_collection_over_the_load_bound_is_an_error_not_a_partial_value() {
    let url = require_pg!();
    let name = schema("bound");
    let mut cfg = config(&url, &name);
    cfg.max_load_elements = 3;
    let source = Source::new(&cfg, "a").unwrap();
    source.ensure_schema().await.unwrap();
    let fields = ["a", "b", "c", "d"];
    let batch: Vec<OutboxRecord> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            rec(
                0,
                if i < 3 { "small" } else { "big" },
                i as u64 + 1,
                put_el(CollectionKind::Hash, f.as_bytes(), "v"),
            )
        })
        .chain(fields.iter().enumerate().map(|(i, f)| {
            rec(
                0,
                "big",
                i as u64 + 10,
                put_el(CollectionKind::Hash, f.as_bytes(), "v"),
            )
        }))
        .collect();
    source.ship(&batch).await.unwrap();
    match source.load(0, b"small").await.unwrap() {
        Some(Loaded::Collection { elements, .. }) => assert_eq!(elements.len(), 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        source.load(0, b"big").await.unwrap_err(),
        SourceError::TooLarge { limit: 3 }
    );
    assert_eq!(source.breaker_state(), BreakerState::Closed);
    drop_schema(&url, &name).await;
}

#[tokio::test]
async fn concurrent_writers_of_the_same_keys_converge_on_the_newest_version() {
    let url = require_pg!();
    let name = schema("race");
    // The schema first, so the writers race on rows only.
    drop(open(&url, &name, "setup").await);
    let mut tasks = Vec::new();
    for writer in 0..4u64 {
        let url = url.clone();
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let source = Source::new(&config(&url, &name), &format!("w{writer}")).unwrap();
            for round in 1..=40u64 {
                // Each writer walks the keys in another order; versions are
                // unique per (round, writer), as a hybrid clock's would be.
                let mut batch: Vec<OutboxRecord> = (0..8u64)
                    .map(|k| {
                        let version = round * 10 + writer;
                        rec(0, &format!("k{k}"), version, put(&format!("{version}")))
                    })
                    .collect();
                batch.rotate_left((writer * 3 % 8) as usize);
                if writer % 2 == 1 {
                    batch.reverse();
                }
                source.ship(&batch).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let source = Source::new(&config(&url, &name), "reader").unwrap();
    let newest = 40 * 10 + 3;
    for k in 0..8 {
        assert_eq!(
            source.load(0, format!("k{k}").as_bytes()).await.unwrap(),
            string(&newest.to_string(), newest)
        );
    }
    drop_schema(&url, &name).await;
}
