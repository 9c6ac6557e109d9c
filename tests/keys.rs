//! The generic key commands (DEL/UNLINK, EXISTS, TYPE, the EXPIRE and TTL
//! families, PERSIST, RENAME(NX), COPY, MOVE, KEYS, SCAN, RANDOMKEY, TOUCH,
//! OBJECT) against Redis 7's replies, error texts and edge cases, each under
//! RESP2 and RESP3.

#[macro_use]
mod common;

use common::*;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::Value;

both_protocols!(
    del_and_unlink,
    exists_counts_duplicates,
    type_reports_none_for_missing,
    expire_flags,
    expire_errors_and_overflow,
    expire_in_the_past_deletes,
    ttl_family,
    keys_expire_on_time,
    persist,
    rename_and_renamenx,
    copy,
    move_between_databases,
    keys_patterns,
    scan_basics,
    scan_type_and_match,
    scan_never_misses_a_stable_key,
    randomkey,
    touch,
    object_encoding_and_refcount,
    object_refcount_without_shared_integers,
    object_freq_and_idletime_policies,
    object_help,
    keyspace_hits_and_misses,
);

fn strings(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) | Value::Set(items) => items
            .into_iter()
            .map(|item| match item {
                Value::BulkString(data) => String::from_utf8_lossy(&data).into_owned(),
                Value::SimpleString(text) => text,
                other => panic!("expected a string, got {other:?}"),
            })
            .collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

/// A second connection already switched to database `db`.
async fn client_in_db(server: &common::TestServer, resp3: bool, db: usize) -> Conn {
    let mut con = server.client(resp3).await;
    assert_eq!(q(&mut con, &["SELECT", &db.to_string()]).await, Value::Okay);
    con
}

/// Polls until `key` is gone; expiry must happen within two seconds.
async fn wait_until_gone(con: &mut Conn, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while int(con, &["EXISTS", key]).await != 0 {
        assert!(Instant::now() < deadline, "{key} did not expire");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One SCAN call: (next cursor, keys).
async fn scan_page(con: &mut Conn, args: &[&str]) -> (String, Vec<String>) {
    let mut full = vec!["SCAN"];
    full.extend_from_slice(args);
    match q(con, &full).await {
        Value::Array(mut parts) if parts.len() == 2 => {
            let keys = strings(parts.pop().unwrap_or(Value::Nil));
            let cursor = match parts.pop() {
                Some(Value::BulkString(data)) => String::from_utf8(data).unwrap(),
                other => panic!("cursor must be a bulk string, got {other:?}"),
            };
            (cursor, keys)
        }
        other => panic!("unexpected SCAN reply {other:?}"),
    }
}

/// A whole SCAN iteration with the given options.
async fn scan_all(con: &mut Conn, options: &[&str]) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let mut args = vec![cursor.as_str()];
        args.extend_from_slice(options);
        let (next, keys) = scan_page(con, &args).await;
        out.extend(keys);
        if next == "0" {
            return out;
        }
        cursor = next;
    }
    panic!("SCAN did not terminate");
}

async fn del_and_unlink(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    for key in ["a", "b", "c", "d"] {
        set(&mut c, key, "v").await;
    }
    assert_eq!(int(&mut c, &["DEL", "a", "b", "nokey"]).await, 2);
    assert_eq!(int(&mut c, &["DEL", "a"]).await, 0);
    // A key named twice is deleted, and counted, once.
    assert_eq!(int(&mut c, &["DEL", "c", "c"]).await, 1);
    assert_eq!(int(&mut c, &["UNLINK", "d", "d", "nokey"]).await, 1);
    assert_eq!(int(&mut c, &["EXISTS", "a", "b", "c", "d"]).await, 0);
    // Binary key names.
    let key: &[u8] = b"bin\x00\xff\r\nkey";
    assert_eq!(
        raw(&mut c, &[b"SET", key, b"v"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(raw(&mut c, &[b"DEL", key]).await.unwrap(), Value::Int(1));
    // A key past its deadline is not counted as deleted.
    set(&mut c, "short", "v").await;
    assert_eq!(int(&mut c, &["PEXPIRE", "short", "20"]).await, 1);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(int(&mut c, &["DEL", "short"]).await, 0);
    assert_eq!(
        err(&mut c, &["DEL"]).await,
        "ERR wrong number of arguments for 'del' command"
    );
    assert_eq!(
        err(&mut c, &["UNLINK"]).await,
        "ERR wrong number of arguments for 'unlink' command"
    );
}

async fn exists_counts_duplicates(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "a", "1").await;
    set(&mut c, "b", "2").await;
    assert_eq!(int(&mut c, &["EXISTS", "a"]).await, 1);
    assert_eq!(int(&mut c, &["EXISTS", "nokey"]).await, 0);
    assert_eq!(
        int(&mut c, &["EXISTS", "a", "a", "b", "nokey", "a"]).await,
        4
    );
    assert_eq!(
        err(&mut c, &["EXISTS"]).await,
        "ERR wrong number of arguments for 'exists' command"
    );
}

async fn type_reports_none_for_missing(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "s", "hello").await;
    set(&mut c, "n", "12").await;
    assert_eq!(q(&mut c, &["TYPE", "s"]).await, status("string"));
    assert_eq!(q(&mut c, &["TYPE", "n"]).await, status("string"));
    assert_eq!(q(&mut c, &["TYPE", "nokey"]).await, status("none"));
    assert_eq!(
        err(&mut c, &["TYPE", "a", "b"]).await,
        "ERR wrong number of arguments for 'type' command"
    );
}

async fn expire_flags(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "k", "v").await;
    // No TTL yet: XX and GT refuse (no TTL counts as infinite), NX and LT accept.
    assert_eq!(int(&mut c, &["EXPIRE", "k", "100", "XX"]).await, 0);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "100", "GT"]).await, 0);
    assert_eq!(int(&mut c, &["TTL", "k"]).await, -1);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "100", "lt"]).await, 1);
    assert_eq!(int(&mut c, &["TTL", "k"]).await, 100);
    assert_eq!(int(&mut c, &["PERSIST", "k"]).await, 1);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "100", "nx"]).await, 1);
    // With a TTL of 100 s.
    assert_eq!(int(&mut c, &["EXPIRE", "k", "200", "NX"]).await, 0);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "50", "GT"]).await, 0);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "99", "GT"]).await, 0);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "200", "GT"]).await, 1);
    assert_eq!(int(&mut c, &["TTL", "k"]).await, 200);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "300", "LT"]).await, 0);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "150", "LT"]).await, 1);
    assert_eq!(int(&mut c, &["TTL", "k"]).await, 150);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "120", "XX"]).await, 1);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "130", "XX", "GT"]).await, 1);
    assert_eq!(
        int(&mut c, &["EXPIRE", "k", "110", "XX", "LT", "lt"]).await,
        1
    );
    assert_eq!(int(&mut c, &["TTL", "k"]).await, 110);
    // The flags work the same way for the other three commands.
    assert_eq!(int(&mut c, &["PEXPIRE", "k", "500000", "GT"]).await, 1);
    assert_eq!(int(&mut c, &["TTL", "k"]).await, 500);
    assert_eq!(
        int(&mut c, &["EXPIREAT", "k", "32503680000", "NX"]).await,
        0
    );
    assert_eq!(
        int(&mut c, &["PEXPIREAT", "k", "32503680000000", "GT"]).await,
        1
    );
    assert_eq!(int(&mut c, &["EXPIRETIME", "k"]).await, 32503680000);
    // Missing keys: 0 whatever the flags.
    for flags in [&[][..], &["NX"][..], &["XX"][..], &["GT"][..], &["LT"][..]] {
        let mut args = vec!["EXPIRE", "nokey", "100"];
        args.extend_from_slice(flags);
        assert_eq!(int(&mut c, &args).await, 0);
    }
    // LT on a key without TTL also accepts a deadline in the past, deleting it.
    set(&mut c, "p", "v").await;
    assert_eq!(int(&mut c, &["EXPIRE", "p", "-1", "LT"]).await, 1);
    assert_eq!(int(&mut c, &["EXISTS", "p"]).await, 0);
}

async fn expire_errors_and_overflow(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "k", "v").await;
    let nx_xx = "ERR NX and XX, GT or LT options at the same time are not compatible";
    let gt_lt = "ERR GT and LT options at the same time are not compatible";
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "100", "NX", "XX"]).await,
        nx_xx
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "100", "NX", "GT"]).await,
        nx_xx
    );
    assert_eq!(
        err(&mut c, &["PEXPIRE", "k", "100", "lt", "nx"]).await,
        nx_xx
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "100", "GT", "LT"]).await,
        gt_lt
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "nokey", "100", "GT", "LT"]).await,
        gt_lt
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "100", "foo"]).await,
        "ERR Unsupported option foo"
    );
    // Options are checked before the number.
    assert_eq!(
        err(&mut c, &["EXPIREAT", "k", "abc", "Bar"]).await,
        "ERR Unsupported option Bar"
    );
    let not_int = "ERR value is not an integer or out of range";
    assert_eq!(err(&mut c, &["EXPIRE", "k", "abc"]).await, not_int);
    assert_eq!(err(&mut c, &["EXPIRE", "k", "1.5"]).await, not_int);
    assert_eq!(
        err(&mut c, &["PEXPIRE", "nokey", "abc", "NX"]).await,
        not_int
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "9223372036854775808"]).await,
        not_int
    );
    // Seconds to milliseconds, or now + ttl, overflowing.
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "9223372036854775807"]).await,
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "-9223372036854775808"]).await,
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        err(&mut c, &["PEXPIRE", "k", "9223372036854775807"]).await,
        "ERR invalid expire time in 'pexpire' command"
    );
    assert_eq!(
        err(&mut c, &["EXPIREAT", "k", "9223372036854776"]).await,
        "ERR invalid expire time in 'expireat' command"
    );
    // Overflow is reported even for a missing key.
    assert_eq!(
        err(&mut c, &["EXPIRE", "nokey", "9223372036854775807"]).await,
        "ERR invalid expire time in 'expire' command"
    );
    // The largest representable deadlines are accepted.
    assert_eq!(int(&mut c, &["EXPIREAT", "k", "9223372036854775"]).await, 1);
    assert_eq!(int(&mut c, &["EXPIRETIME", "k"]).await, 9223372036854775);
    assert_eq!(
        int(&mut c, &["PEXPIREAT", "k", "9223372036854775807"]).await,
        1
    );
    assert_eq!(
        int(&mut c, &["PEXPIRETIME", "k"]).await,
        9223372036854775807
    );
    assert_eq!(int(&mut c, &["EXISTS", "k"]).await, 1);
    assert_eq!(
        err(&mut c, &["EXPIRE", "k"]).await,
        "ERR wrong number of arguments for 'expire' command"
    );
    assert_eq!(
        err(&mut c, &["PEXPIREAT", "k"]).await,
        "ERR wrong number of arguments for 'pexpireat' command"
    );
}

async fn expire_in_the_past_deletes(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    for (i, args) in [
        vec!["EXPIRE", "KEY", "-1"],
        vec!["EXPIRE", "KEY", "0"],
        vec!["PEXPIRE", "KEY", "-9223372036854775808"],
        vec!["EXPIREAT", "KEY", "1"],
        vec!["PEXPIREAT", "KEY", "0"],
        vec!["EXPIREAT", "KEY", "-9223372036854775"],
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("k{i}");
        set(&mut c, &key, "v").await;
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "KEY" { key.as_str() } else { a })
            .collect();
        assert_eq!(int(&mut c, &args).await, 1, "{args:?}");
        assert_eq!(int(&mut c, &["EXISTS", &key]).await, 0, "{args:?}");
        assert_eq!(int(&mut c, &["TTL", &key]).await, -2);
        // Nothing left to expire the second time.
        assert_eq!(int(&mut c, &args).await, 0, "{args:?}");
    }
}

async fn ttl_family(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    for cmd in ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"] {
        assert_eq!(int(&mut c, &[cmd, "nokey"]).await, -2, "{cmd}");
    }
    set(&mut c, "k", "v").await;
    for cmd in ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"] {
        assert_eq!(int(&mut c, &[cmd, "k"]).await, -1, "{cmd}");
    }
    assert_eq!(int(&mut c, &["EXPIRE", "k", "100"]).await, 1);
    assert_eq!(int(&mut c, &["TTL", "k"]).await, 100);
    let pttl = int(&mut c, &["PTTL", "k"]).await;
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
    // TTL rounds to the nearest second.
    assert_eq!(int(&mut c, &["PEXPIRE", "k", "2600"]).await, 1);
    assert_eq!(int(&mut c, &["TTL", "k"]).await, 3);
    assert_eq!(int(&mut c, &["PEXPIRE", "k", "2400"]).await, 1);
    assert_eq!(int(&mut c, &["TTL", "k"]).await, 2);
    // Absolute deadlines, rounded the same way by EXPIRETIME.
    assert_eq!(int(&mut c, &["EXPIREAT", "k", "33177117420"]).await, 1);
    assert_eq!(int(&mut c, &["EXPIRETIME", "k"]).await, 33177117420);
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]).await, 33177117420000);
    assert_eq!(int(&mut c, &["PEXPIREAT", "k", "33177117420499"]).await, 1);
    assert_eq!(int(&mut c, &["EXPIRETIME", "k"]).await, 33177117420);
    assert_eq!(int(&mut c, &["PEXPIREAT", "k", "33177117420500"]).await, 1);
    assert_eq!(int(&mut c, &["EXPIRETIME", "k"]).await, 33177117421);
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]).await, 33177117420500);
    // Overwriting with SET clears the TTL.
    set(&mut c, "k", "v2").await;
    assert_eq!(int(&mut c, &["PTTL", "k"]).await, -1);
    for cmd in ["ttl", "pttl", "expiretime", "pexpiretime"] {
        assert_eq!(
            err(&mut c, &[cmd, "a", "b"]).await,
            format!("ERR wrong number of arguments for '{cmd}' command")
        );
    }
}

async fn keys_expire_on_time(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "short", "v").await;
    set(&mut c, "long", "v").await;
    set(&mut c, "forever", "v").await;
    assert_eq!(int(&mut c, &["PEXPIRE", "short", "50"]).await, 1);
    assert_eq!(int(&mut c, &["PEXPIRE", "long", "60000"]).await, 1);
    let pttl = int(&mut c, &["PTTL", "short"]).await;
    assert!((1..=50).contains(&pttl), "{pttl}");
    assert_eq!(int(&mut c, &["EXISTS", "short"]).await, 1);
    wait_until_gone(&mut c, "short").await;
    assert_eq!(int(&mut c, &["PTTL", "short"]).await, -2);
    assert_eq!(q(&mut c, &["TYPE", "short"]).await, status("none"));
    assert_eq!(
        sorted(strings(q(&mut c, &["KEYS", "*"]).await)),
        ["forever", "long"]
    );
    assert_eq!(sorted(scan_all(&mut c, &[]).await), ["forever", "long"]);

    // A deadline set with PEXPIREAT a few milliseconds ahead.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    set(&mut c, "at", "v").await;
    let at = (now_ms + 60).to_string();
    assert_eq!(int(&mut c, &["PEXPIREAT", "at", &at]).await, 1);
    wait_until_gone(&mut c, "at").await;
    // Expired keys are never returned by RANDOMKEY or counted by TOUCH.
    assert_eq!(int(&mut c, &["TOUCH", "short", "at", "long"]).await, 1);
    for _ in 0..20 {
        let key = q(&mut c, &["RANDOMKEY"]).await;
        assert!(key == bulk("long") || key == bulk("forever"), "{key:?}");
    }
}

async fn persist(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(int(&mut c, &["PERSIST", "nokey"]).await, 0);
    set(&mut c, "k", "v").await;
    assert_eq!(int(&mut c, &["PERSIST", "k"]).await, 0);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "100"]).await, 1);
    assert_eq!(int(&mut c, &["PERSIST", "k"]).await, 1);
    assert_eq!(int(&mut c, &["TTL", "k"]).await, -1);
    assert_eq!(int(&mut c, &["PERSIST", "k"]).await, 0);
    // A persisted key outlives its old deadline.
    assert_eq!(int(&mut c, &["PEXPIRE", "k", "30"]).await, 1);
    assert_eq!(int(&mut c, &["PERSIST", "k"]).await, 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(int(&mut c, &["EXISTS", "k"]).await, 1);
}

async fn rename_and_renamenx(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    let no_such_key = "ERR no such key";
    assert_eq!(err(&mut c, &["RENAME", "nokey", "b"]).await, no_such_key);
    assert_eq!(err(&mut c, &["RENAMENX", "nokey", "b"]).await, no_such_key);
    assert_eq!(
        err(&mut c, &["RENAME", "nokey", "nokey"]).await,
        no_such_key
    );
    assert_eq!(
        err(&mut c, &["RENAMENX", "nokey", "nokey"]).await,
        no_such_key
    );

    set(&mut c, "a", "1").await;
    // Renaming a key to itself: OK for RENAME, 0 for RENAMENX.
    assert_eq!(q(&mut c, &["RENAME", "a", "a"]).await, Value::Okay);
    assert_eq!(int(&mut c, &["RENAMENX", "a", "a"]).await, 0);
    assert_eq!(q(&mut c, &["GET", "a"]).await, bulk("1"));

    // The TTL travels with the value.
    assert_eq!(int(&mut c, &["EXPIRE", "a", "100"]).await, 1);
    assert_eq!(q(&mut c, &["RENAME", "a", "b"]).await, Value::Okay);
    assert_eq!(int(&mut c, &["EXISTS", "a"]).await, 0);
    assert_eq!(q(&mut c, &["GET", "b"]).await, bulk("1"));
    assert_eq!(int(&mut c, &["TTL", "b"]).await, 100);

    // RENAME overwrites the destination, its TTL included.
    set(&mut c, "c", "3").await;
    assert_eq!(int(&mut c, &["EXPIRE", "c", "500"]).await, 1);
    set(&mut c, "d", "4").await;
    assert_eq!(q(&mut c, &["RENAME", "d", "c"]).await, Value::Okay);
    assert_eq!(q(&mut c, &["GET", "c"]).await, bulk("4"));
    assert_eq!(int(&mut c, &["TTL", "c"]).await, -1);

    // RENAMENX refuses an existing destination and leaves both alone.
    assert_eq!(int(&mut c, &["RENAMENX", "b", "c"]).await, 0);
    assert_eq!(q(&mut c, &["GET", "b"]).await, bulk("1"));
    assert_eq!(q(&mut c, &["GET", "c"]).await, bulk("4"));
    assert_eq!(int(&mut c, &["RENAMENX", "b", "e"]).await, 1);
    assert_eq!(int(&mut c, &["EXISTS", "b"]).await, 0);
    assert_eq!(q(&mut c, &["GET", "e"]).await, bulk("1"));
    assert_eq!(int(&mut c, &["TTL", "e"]).await, 100);

    // An expired source is missing.
    set(&mut c, "gone", "v").await;
    assert_eq!(int(&mut c, &["PEXPIRE", "gone", "20"]).await, 1);
    wait_until_gone(&mut c, "gone").await;
    assert_eq!(err(&mut c, &["RENAME", "gone", "x"]).await, no_such_key);

    // Binary names.
    let key: &[u8] = b"\x00\xffsrc";
    let dst: &[u8] = b"dst\r\n\x01";
    assert_eq!(
        raw(&mut c, &[b"SET", key, b"bin"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(
        raw(&mut c, &[b"RENAME", key, dst]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(raw(&mut c, &[b"GET", dst]).await.unwrap(), bulk("bin"));
    assert_eq!(
        err(&mut c, &["RENAME", "a"]).await,
        "ERR wrong number of arguments for 'rename' command"
    );
}

async fn copy(resp3: bool) {
    let (server, mut c) = start_client(resp3).await;
    let same = "ERR source and destination objects are the same";
    let out_of_range = "ERR DB index is out of range";
    assert_eq!(int(&mut c, &["COPY", "nokey", "b"]).await, 0);
    assert_eq!(err(&mut c, &["COPY", "nokey", "nokey"]).await, same);

    set(&mut c, "a", "hello").await;
    assert_eq!(int(&mut c, &["EXPIRE", "a", "100"]).await, 1);
    assert_eq!(err(&mut c, &["COPY", "a", "a"]).await, same);
    assert_eq!(err(&mut c, &["COPY", "a", "a", "DB", "0"]).await, same);
    assert_eq!(int(&mut c, &["COPY", "a", "b"]).await, 1);
    assert_eq!(q(&mut c, &["GET", "b"]).await, bulk("hello"));
    // The TTL is copied.
    assert_eq!(int(&mut c, &["TTL", "b"]).await, 100);
    // The copy is independent of its source.
    set(&mut c, "b", "changed").await;
    assert_eq!(q(&mut c, &["GET", "a"]).await, bulk("hello"));

    // Existing destination: 0 unless REPLACE.
    assert_eq!(int(&mut c, &["COPY", "a", "b"]).await, 0);
    assert_eq!(q(&mut c, &["GET", "b"]).await, bulk("changed"));
    assert_eq!(int(&mut c, &["COPY", "a", "b", "replace"]).await, 1);
    assert_eq!(q(&mut c, &["GET", "b"]).await, bulk("hello"));
    assert_eq!(
        int(&mut c, &["COPY", "a", "b", "REPLACE", "REPLACE"]).await,
        1
    );

    // Into another database, under the same name or another.
    assert_eq!(int(&mut c, &["COPY", "a", "a", "DB", "1"]).await, 1);
    assert_eq!(
        int(&mut c, &["COPY", "a", "z", "db", "2", "REPLACE"]).await,
        1
    );
    // The last DB option wins.
    assert_eq!(
        int(&mut c, &["COPY", "a", "w", "DB", "1", "DB", "3"]).await,
        1
    );
    let mut db1 = client_in_db(&server, resp3, 1).await;
    assert_eq!(q(&mut db1, &["GET", "a"]).await, bulk("hello"));
    assert_eq!(int(&mut db1, &["TTL", "a"]).await, 100);
    assert_eq!(int(&mut db1, &["EXISTS", "w"]).await, 0);
    let mut db3 = client_in_db(&server, resp3, 3).await;
    assert_eq!(q(&mut db3, &["GET", "w"]).await, bulk("hello"));
    assert_eq!(int(&mut c, &["COPY", "a", "a", "DB", "1"]).await, 0);
    assert_eq!(int(&mut c, &["EXISTS", "z"]).await, 0);

    // Errors: the DB index is checked as it is parsed, before the key.
    assert_eq!(
        err(&mut c, &["COPY", "a", "b", "DB", "16"]).await,
        out_of_range
    );
    assert_eq!(
        err(&mut c, &["COPY", "a", "b", "DB", "-1"]).await,
        out_of_range
    );
    assert_eq!(
        err(&mut c, &["COPY", "nokey", "b", "DB", "99"]).await,
        out_of_range
    );
    assert_eq!(
        err(&mut c, &["COPY", "a", "b", "DB", "abc"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["COPY", "a", "b", "DB", "4294967296"]).await,
        "ERR value is out of range, value must between -2147483648 and 2147483647"
    );
    let syntax = "ERR syntax error";
    assert_eq!(err(&mut c, &["COPY", "a", "b", "DB"]).await, syntax);
    assert_eq!(err(&mut c, &["COPY", "a", "b", "foo"]).await, syntax);
    assert_eq!(
        err(&mut c, &["COPY", "a", "b", "DB", "1", "foo"]).await,
        syntax
    );
    assert_eq!(
        err(&mut c, &["COPY", "a", "b", "DB", "99", "foo"]).await,
        out_of_range
    );
    assert_eq!(
        err(&mut c, &["COPY", "a"]).await,
        "ERR wrong number of arguments for 'copy' command"
    );
}

async fn move_between_databases(resp3: bool) {
    let (server, mut c) = start_client(resp3).await;
    let mut db1 = client_in_db(&server, resp3, 1).await;
    let same = "ERR source and destination objects are the same";
    let out_of_range = "ERR DB index is out of range";
    let not_int = "ERR value is not an integer or out of range";
    assert_eq!(int(&mut c, &["MOVE", "nokey", "1"]).await, 0);
    set(&mut c, "k", "v").await;
    assert_eq!(int(&mut c, &["PEXPIRE", "k", "100000"]).await, 1);
    assert_eq!(err(&mut c, &["MOVE", "k", "0"]).await, same);
    assert_eq!(err(&mut c, &["MOVE", "nokey", "0"]).await, same);
    assert_eq!(err(&mut c, &["MOVE", "k", "16"]).await, out_of_range);
    assert_eq!(err(&mut c, &["MOVE", "k", "-1"]).await, out_of_range);
    assert_eq!(err(&mut c, &["MOVE", "nokey", "16"]).await, out_of_range);
    assert_eq!(err(&mut c, &["MOVE", "k", "abc"]).await, not_int);
    assert_eq!(err(&mut c, &["MOVE", "k", "1.0"]).await, not_int);
    assert_eq!(
        err(&mut c, &["MOVE", "k", "99999999999999999999"]).await,
        not_int
    );
    assert_eq!(
        err(&mut c, &["MOVE", "k", "2147483648"]).await,
        "ERR value is out of range, value must between -2147483648 and 2147483647"
    );

    assert_eq!(int(&mut c, &["MOVE", "k", "1"]).await, 1);
    assert_eq!(int(&mut c, &["EXISTS", "k"]).await, 0);
    assert_eq!(q(&mut db1, &["GET", "k"]).await, bulk("v"));
    // The TTL moves with the key.
    let pttl = int(&mut db1, &["PTTL", "k"]).await;
    assert!((90_000..=100_000).contains(&pttl), "{pttl}");

    // An existing key in the target database blocks the move.
    set(&mut c, "k", "other").await;
    assert_eq!(int(&mut c, &["MOVE", "k", "1"]).await, 0);
    assert_eq!(q(&mut c, &["GET", "k"]).await, bulk("other"));
    assert_eq!(q(&mut db1, &["GET", "k"]).await, bulk("v"));
    // And back from database 1.
    assert_eq!(int(&mut db1, &["DEL", "k"]).await, 1);
    assert_eq!(int(&mut c, &["MOVE", "k", "1"]).await, 1);
    assert_eq!(int(&mut db1, &["MOVE", "k", "0"]).await, 1);
    assert_eq!(q(&mut c, &["GET", "k"]).await, bulk("other"));
    assert_eq!(
        err(&mut c, &["MOVE", "k"]).await,
        "ERR wrong number of arguments for 'move' command"
    );
}

async fn keys_patterns(resp3: bool) {
    let (server, mut c) = start_client(resp3).await;
    for key in ["foo", "foobar", "fao", "f", "bar", "x*y", "hello\\world"] {
        set(&mut c, key, "v").await;
    }
    let keys = |pattern: &'static str| {
        let mut c = c.clone();
        async move { sorted(strings(q(&mut c, &["KEYS", pattern]).await)) }
    };
    assert_eq!(
        keys("*").await,
        ["bar", "f", "fao", "foo", "foobar", "hello\\world", "x*y"]
    );
    assert_eq!(keys("f*").await, ["f", "fao", "foo", "foobar"]);
    assert_eq!(keys("f?o").await, ["fao", "foo"]);
    assert_eq!(keys("f[a]o").await, ["fao"]);
    assert_eq!(keys("f[^a]o").await, ["foo"]);
    assert_eq!(keys("*bar").await, ["bar", "foobar"]);
    assert_eq!(keys("x\\*y").await, ["x*y"]);
    assert_eq!(keys("nomatch*").await, Vec::<String>::new());
    // Each database has its own keys.
    let mut db2 = client_in_db(&server, resp3, 2).await;
    assert_eq!(q(&mut db2, &["KEYS", "*"]).await, Value::Array(vec![]));
    assert_eq!(
        err(&mut c, &["KEYS"]).await,
        "ERR wrong number of arguments for 'keys' command"
    );
}

async fn scan_basics(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    // An empty database: one call, cursor 0.
    assert_eq!(scan_page(&mut c, &["0"]).await, ("0".to_string(), vec![]));
    for i in 0..500 {
        set(&mut c, &format!("key:{i}"), "v").await;
    }
    let all = scan_all(&mut c, &[]).await;
    assert_eq!(all.len(), 500);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 500);
    // COUNT is a hint: a large one returns everything at once.
    let (cursor, keys) = scan_page(&mut c, &["0", "COUNT", "1000"]).await;
    assert_eq!((cursor.as_str(), keys.len()), ("0", 500));
    let (cursor, keys) = scan_page(&mut c, &["0", "count", "9223372036854775807"]).await;
    assert_eq!((cursor.as_str(), keys.len()), ("0", 500));
    let (cursor, keys) = scan_page(&mut c, &["0", "COUNT", "5"]).await;
    assert_ne!(cursor, "0");
    assert!(!keys.is_empty() && keys.len() < 100, "{}", keys.len());

    // Cursors as Redis's strtoul reads them.
    let invalid = "ERR invalid cursor";
    for bad in [
        "abc",
        "1a",
        " 1",
        "1 ",
        "+",
        "-",
        "18446744073709551616",
        "0x10",
    ] {
        assert_eq!(err(&mut c, &["SCAN", bad]).await, invalid, "{bad:?}");
    }
    assert_eq!(err(&mut c, &["SCAN", "abc", "COUNT", "0"]).await, invalid);
    for fine in ["", "+0", "00", "18446744073709551615", "-1"] {
        scan_page(&mut c, &[fine]).await;
    }

    let syntax = "ERR syntax error";
    assert_eq!(err(&mut c, &["SCAN", "0", "COUNT", "0"]).await, syntax);
    assert_eq!(err(&mut c, &["SCAN", "0", "COUNT", "-1"]).await, syntax);
    assert_eq!(err(&mut c, &["SCAN", "0", "COUNT"]).await, syntax);
    assert_eq!(err(&mut c, &["SCAN", "0", "MATCH"]).await, syntax);
    assert_eq!(err(&mut c, &["SCAN", "0", "TYPE"]).await, syntax);
    assert_eq!(err(&mut c, &["SCAN", "0", "foo", "bar"]).await, syntax);
    assert_eq!(
        err(&mut c, &["SCAN", "0", "COUNT", "10", "extra"]).await,
        syntax
    );
    assert_eq!(
        err(&mut c, &["SCAN", "0", "COUNT", "abc"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["SCAN", "0", "COUNT", "9223372036854775808"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["SCAN"]).await,
        "ERR wrong number of arguments for 'scan' command"
    );
}

async fn scan_type_and_match(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    for i in 0..100 {
        set(&mut c, &format!("user:{i}"), "v").await;
        set(&mut c, &format!("item:{i}"), "v").await;
    }
    let users = scan_all(&mut c, &["MATCH", "user:*", "COUNT", "7"]).await;
    assert_eq!(users.len(), 100);
    assert!(users.iter().all(|key| key.starts_with("user:")));
    assert_eq!(scan_all(&mut c, &["MATCH", "*"]).await.len(), 200);
    assert_eq!(scan_all(&mut c, &["match", "user:1?"]).await.len(), 10);
    assert_eq!(scan_all(&mut c, &["TYPE", "string"]).await.len(), 200);
    assert_eq!(scan_all(&mut c, &["TYPE", "STRING"]).await.len(), 200);
    assert!(scan_all(&mut c, &["TYPE", "list"]).await.is_empty());
    // Redis 7 answers an unknown type with empty pages, not an error.
    assert!(scan_all(&mut c, &["TYPE", "nosuchtype"]).await.is_empty());
    let both = scan_all(&mut c, &["TYPE", "string", "MATCH", "item:*", "COUNT", "3"]).await;
    assert_eq!(both.len(), 100);
}

/// The SCAN guarantee: a key present from the start to the end of a full
/// iteration is returned, however other keys come and go between calls.
async fn scan_never_misses_a_stable_key(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    let stable: HashSet<String> = (0..300).map(|i| format!("stable:{i}")).collect();
    for key in &stable {
        set(&mut c, key, "v").await;
    }
    for i in 0..300 {
        set(&mut c, &format!("churn:{i}"), "v").await;
    }
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut next_new = 0;
    let mut next_del = 0;
    let mut calls = 0;
    loop {
        let (next, keys) = scan_page(&mut c, &[&cursor, "COUNT", "10"]).await;
        seen.extend(keys);
        calls += 1;
        // Churn between calls: add 15 keys, delete 10 existing churn keys.
        for _ in 0..15 {
            set(&mut c, &format!("new:{next_new}"), "v").await;
            next_new += 1;
        }
        for _ in 0..10 {
            int(&mut c, &["DEL", &format!("churn:{next_del}")]).await;
            int(&mut c, &["DEL", &format!("new:{}", next_del * 3)]).await;
            next_del += 1;
        }
        if next == "0" {
            break;
        }
        cursor = next;
        assert!(calls < 10_000, "SCAN did not terminate");
    }
    let missed: Vec<_> = stable.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "missed {} stable keys: {missed:?}",
        missed.len()
    );
}

async fn randomkey(resp3: bool) {
    let (server, mut c) = start_client(resp3).await;
    assert_eq!(q(&mut c, &["RANDOMKEY"]).await, Value::Nil);
    set(&mut c, "only", "v").await;
    assert_eq!(q(&mut c, &["RANDOMKEY"]).await, bulk("only"));
    for key in ["a", "b", "c"] {
        set(&mut c, key, "v").await;
    }
    let mut seen = HashSet::new();
    for _ in 0..200 {
        match q(&mut c, &["RANDOMKEY"]).await {
            Value::BulkString(key) => {
                seen.insert(String::from_utf8(key).unwrap());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sorted(seen.into_iter().collect()), ["a", "b", "c", "only"]);
    // Another database is still empty.
    let mut db5 = client_in_db(&server, resp3, 5).await;
    assert_eq!(q(&mut db5, &["RANDOMKEY"]).await, Value::Nil);
    // A database whose keys all expired is empty.
    set(&mut db5, "x", "v").await;
    assert_eq!(int(&mut db5, &["PEXPIRE", "x", "20"]).await, 1);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(q(&mut db5, &["RANDOMKEY"]).await, Value::Nil);
    assert_eq!(
        err(&mut c, &["RANDOMKEY", "x"]).await,
        "ERR wrong number of arguments for 'randomkey' command"
    );
}

async fn touch(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "a", "v").await;
    set(&mut c, "b", "v").await;
    assert_eq!(int(&mut c, &["TOUCH", "nokey"]).await, 0);
    assert_eq!(int(&mut c, &["TOUCH", "a", "b", "nokey"]).await, 2);
    assert_eq!(int(&mut c, &["TOUCH", "a", "a"]).await, 2);
    assert_eq!(
        err(&mut c, &["TOUCH"]).await,
        "ERR wrong number of arguments for 'touch' command"
    );
}

async fn object_encoding_and_refcount(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    let long = "x".repeat(45);
    for (value, encoding, refcount) in [
        ("0", "int", 2147483647),
        ("9999", "int", 2147483647),
        ("10000", "int", 1),
        ("-1", "int", 1),
        ("-9223372036854775808", "int", 1),
        ("9223372036854775808", "embstr", 1),
        ("007", "embstr", 1),
        ("-0", "embstr", 1),
        ("hello", "embstr", 1),
        (&"y".repeat(44), "embstr", 1),
        (long.as_str(), "raw", 1),
    ] {
        set(&mut c, "k", value).await;
        assert_eq!(
            q(&mut c, &["OBJECT", "ENCODING", "k"]).await,
            bulk(encoding),
            "{value}"
        );
        assert_eq!(
            int(&mut c, &["object", "refcount", "k"]).await,
            refcount,
            "{value}"
        );
    }
    // RENAME moves the same object.
    set(&mut c, "small", "5").await;
    assert_eq!(q(&mut c, &["RENAME", "small", "moved"]).await, Value::Okay);
    assert_eq!(
        int(&mut c, &["OBJECT", "REFCOUNT", "moved"]).await,
        2147483647
    );
    // A fresh key has been idle for (at most, if a second just ticked) 0 seconds.
    let idle = int(&mut c, &["OBJECT", "IDLETIME", "moved"]).await;
    assert!((0..=1).contains(&idle), "{idle}");
    // A missing key is nil for every subcommand.
    for sub in ["ENCODING", "REFCOUNT", "IDLETIME", "FREQ"] {
        assert_eq!(
            q(&mut c, &["OBJECT", sub, "nokey"]).await,
            Value::Nil,
            "{sub}"
        );
    }
    assert_eq!(
        err(&mut c, &["OBJECT", "foo", "k"]).await,
        "ERR unknown subcommand 'foo'. Try OBJECT HELP."
    );
    assert_eq!(
        err(&mut c, &["OBJECT", "ENCODING"]).await,
        "ERR wrong number of arguments for 'object|encoding' command"
    );
    assert_eq!(
        err(&mut c, &["OBJECT", "REFCOUNT", "a", "b"]).await,
        "ERR wrong number of arguments for 'object|refcount' command"
    );
}

/// With `maxmemory` set and an LRU policy Redis stops sharing small integers.
async fn object_refcount_without_shared_integers(resp3: bool) {
    let server = common::start_with(|config| {
        config.memory.maxmemory = strata::config::MemorySize(100 * 1024 * 1024);
        config.memory.maxmemory_policy = "allkeys-lru".into();
    })
    .await;
    let mut c = server.client(resp3).await;
    set(&mut c, "k", "5").await;
    assert_eq!(q(&mut c, &["OBJECT", "ENCODING", "k"]).await, bulk("int"));
    assert_eq!(int(&mut c, &["OBJECT", "REFCOUNT", "k"]).await, 1);
}

async fn object_freq_and_idletime_policies(resp3: bool) {
    let lfu_not_selected = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    let lfu_selected = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

    // The default policy is not LFU: FREQ is refused, IDLETIME answers.
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "k", "v").await;
    assert_eq!(
        err(&mut c, &["OBJECT", "FREQ", "k"]).await,
        lfu_not_selected
    );
    assert!(int(&mut c, &["OBJECT", "IDLETIME", "k"]).await <= 1);

    for policy in ["allkeys-lfu", "volatile-lfu"] {
        let server = common::start_with(|config| {
            config.memory.maxmemory_policy = policy.into();
        })
        .await;
        let mut c = server.client(resp3).await;
        set(&mut c, "k", "v").await;
        assert_eq!(
            err(&mut c, &["OBJECT", "IDLETIME", "k"]).await,
            lfu_selected
        );
        assert_eq!(
            q(&mut c, &["OBJECT", "IDLETIME", "nokey"]).await,
            Value::Nil
        );
        // Retried if a minute boundary passed, which decays the counter by one.
        for attempt in 0.. {
            let minute = unix_minute();
            let f = format!("f{attempt}");
            set(&mut c, &f, "v").await;
            // Lookups that do not touch leave the counter at its initial 5.
            int(&mut c, &["EXISTS", &f]).await;
            q(&mut c, &["TYPE", &f]).await;
            int(&mut c, &["TTL", &f]).await;
            q(&mut c, &["OBJECT", "ENCODING", &f]).await;
            let initial = int(&mut c, &["OBJECT", "FREQ", &f]).await;
            // At the initial value the first access always counts.
            assert_eq!(int(&mut c, &["TOUCH", &f]).await, 1);
            let touched = int(&mut c, &["OBJECT", "FREQ", &f]).await;
            if unix_minute() != minute && attempt < 3 {
                continue;
            }
            assert_eq!((initial, touched), (5, 6), "{policy}");
            break;
        }
    }
}

fn unix_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

async fn object_help(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    let expected = [
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ];
    assert_eq!(
        q(&mut c, &["OBJECT", "help"]).await,
        Value::Array(expected.iter().map(|line| status(line)).collect())
    );
    assert_eq!(
        err(&mut c, &["OBJECT", "HELP", "x"]).await,
        "ERR wrong number of arguments for 'object|help' command"
    );
}

/// Which commands count keyspace hits and misses, as Redis 7 does.
async fn keyspace_hits_and_misses(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "a", "1").await;
    let expect = |hits: i64, misses: i64, args: &'static [&'static str]| {
        let mut c = c.clone();
        async move {
            let before = (
                info_stat(&mut c, "keyspace_hits").await,
                info_stat(&mut c, "keyspace_misses").await,
            );
            let _ = raw(
                &mut c,
                &args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>(),
            )
            .await;
            let after = (
                info_stat(&mut c, "keyspace_hits").await,
                info_stat(&mut c, "keyspace_misses").await,
            );
            assert_eq!(
                (after.0 - before.0, after.1 - before.1),
                (hits, misses),
                "{args:?}"
            );
        }
    };
    expect(2, 1, &["EXISTS", "a", "nokey", "a"]).await;
    expect(1, 0, &["TYPE", "a"]).await;
    expect(0, 1, &["TYPE", "nokey"]).await;
    expect(1, 0, &["TTL", "a"]).await;
    expect(0, 1, &["PEXPIRETIME", "nokey"]).await;
    expect(1, 0, &["OBJECT", "ENCODING", "a"]).await;
    expect(0, 1, &["OBJECT", "REFCOUNT", "nokey"]).await;
    expect(1, 1, &["TOUCH", "a", "nokey"]).await;
    expect(1, 0, &["COPY", "a", "c"]).await;
    expect(0, 1, &["COPY", "nokey", "d"]).await;
    // Write lookups and whole-keyspace commands count nothing.
    expect(0, 0, &["EXPIRE", "a", "100"]).await;
    expect(0, 0, &["PERSIST", "a"]).await;
    expect(0, 0, &["RENAME", "c", "e"]).await;
    expect(0, 0, &["MOVE", "e", "1"]).await;
    expect(0, 0, &["KEYS", "*"]).await;
    expect(0, 0, &["SCAN", "0"]).await;
    expect(0, 0, &["RANDOMKEY"]).await;
    expect(0, 0, &["DEL", "a", "nokey"]).await;
}
