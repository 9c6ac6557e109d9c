//! The hash commands against Redis 7.0's replies, error texts and edge
//! cases (many from redis's `tests/unit/type/hash.tcl`), each under RESP2
//! and RESP3, plus hashes surviving a restart and eviction to disk.

#[macro_use]
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use redis::Value;
use strata::config::MemorySize;

both_protocols!(
    hset_hget_and_friends,
    hgetall_hkeys_hvals_keep_listpack_order,
    hdel_removes_the_emptied_key,
    hincrby,
    hincrbyfloat,
    hrandfield_counts_and_shapes,
    hrandfield_errors,
    hscan_small_and_large,
    wrong_type_everywhere,
    encodings_follow_redis,
    reads_count_hits_and_misses,
    hashes_survive_a_restart,
    hashes_read_back_after_eviction,
);

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn strings(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) | Value::Set(items) => items.iter().map(as_text).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// Field-value pairs of HGETALL (a RESP3 map or a RESP2 flat array).
fn pairs(value: Value, resp3: bool) -> Vec<(String, String)> {
    match value {
        Value::Map(items) => {
            assert!(resp3, "a map under RESP2");
            items
                .iter()
                .map(|(k, v)| (as_text(k), as_text(v)))
                .collect()
        }
        Value::Array(items) => {
            assert!(!resp3, "a flat array under RESP3");
            items
                .chunks(2)
                .map(|pair| (as_text(&pair[0]), as_text(&pair[1])))
                .collect()
        }
        other => panic!("expected a map, got {other:?}"),
    }
}

async fn hset_hget_and_friends(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    assert_eq!(int(&mut con, &["HSET", "h", "a", "1", "b", "2"]).await, 2);
    assert_eq!(int(&mut con, &["HSET", "h", "a", "10", "c", "3"]).await, 1);
    assert_eq!(
        text(&mut con, &["HGET", "h", "a"]).await.as_deref(),
        Some("10")
    );
    assert_eq!(text(&mut con, &["HGET", "h", "zz"]).await, None);
    assert_eq!(text(&mut con, &["HGET", "nokey", "a"]).await, None);
    assert_eq!(
        q(&mut con, &["HMGET", "h", "a", "zz", "b"]).await,
        Value::Array(vec![bulk("10"), Value::Nil, bulk("2")])
    );
    assert_eq!(
        q(&mut con, &["HMGET", "nokey", "a", "b"]).await,
        Value::Array(vec![Value::Nil, Value::Nil])
    );
    assert_eq!(int(&mut con, &["HSETNX", "h", "a", "x"]).await, 0);
    assert_eq!(int(&mut con, &["HSETNX", "h", "d", "4"]).await, 1);
    assert_eq!(int(&mut con, &["HSETNX", "new", "f", "v"]).await, 1);
    ok(&mut con, &["HMSET", "h", "e", "5", "a", "11"]).await;
    assert_eq!(int(&mut con, &["HLEN", "h"]).await, 5);
    assert_eq!(int(&mut con, &["HLEN", "nokey"]).await, 0);
    assert_eq!(int(&mut con, &["HEXISTS", "h", "e"]).await, 1);
    assert_eq!(int(&mut con, &["HEXISTS", "h", "zz"]).await, 0);
    assert_eq!(int(&mut con, &["HEXISTS", "nokey", "e"]).await, 0);
    assert_eq!(int(&mut con, &["HSTRLEN", "h", "a"]).await, 2);
    assert_eq!(int(&mut con, &["HSTRLEN", "h", "zz"]).await, 0);
    assert_eq!(int(&mut con, &["HSTRLEN", "nokey", "a"]).await, 0);
    // Binary-safe fields and values, the empty string included.
    let raw_reply = raw(&mut con, &[b"HSET", b"bin", b"\x00\xff", b""]).await;
    assert_eq!(raw_reply, Ok(Value::Int(1)));
    assert_eq!(
        raw(&mut con, &[b"HGET", b"bin", b"\x00\xff"]).await,
        Ok(Value::BulkString(Vec::new()))
    );
    for command in ["HSET", "HMSET"] {
        assert_eq!(
            err(&mut con, &[command, "h", "a", "1", "b"]).await,
            format!(
                "ERR wrong number of arguments for '{}' command",
                command.to_lowercase()
            )
        );
    }
    assert_eq!(
        err(&mut con, &["HSET", "h", "a"]).await,
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(int(&mut con, &["HLEN", "h"]).await, 5);
    assert_eq!(as_text(&q(&mut con, &["TYPE", "h"]).await), "hash");
}

async fn hgetall_hkeys_hvals_keep_listpack_order(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(
        &mut con,
        &["HSET", "h", "z", "1", "a", "2", "m", "3", "b", "4"],
    )
    .await;
    int(&mut con, &["HDEL", "h", "a"]).await;
    int(&mut con, &["HSET", "h", "m", "30", "c", "5"]).await;
    let expected = [("z", "1"), ("m", "30"), ("b", "4"), ("c", "5")];
    let got = pairs(q(&mut con, &["HGETALL", "h"]).await, resp3);
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        strings(q(&mut con, &["HKEYS", "h"]).await),
        vec!["z", "m", "b", "c"]
    );
    assert_eq!(
        strings(q(&mut con, &["HVALS", "h"]).await),
        vec!["1", "30", "4", "5"]
    );
    let empty = q(&mut con, &["HGETALL", "nokey"]).await;
    if resp3 {
        assert_eq!(empty, Value::Map(Vec::new()));
    } else {
        assert_eq!(empty, Value::Array(Vec::new()));
    }
    assert_eq!(q(&mut con, &["HKEYS", "nokey"]).await, Value::Array(vec![]));
    assert_eq!(q(&mut con, &["HVALS", "nokey"]).await, Value::Array(vec![]));
}

async fn hdel_removes_the_emptied_key(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["HSET", "h", "a", "1", "b", "2"]).await;
    assert_eq!(int(&mut con, &["EXPIRE", "h", "100"]).await, 1);
    assert_eq!(int(&mut con, &["HDEL", "h", "zz"]).await, 0);
    assert_eq!(int(&mut con, &["HDEL", "h", "a", "a", "zz"]).await, 1);
    // A change in place keeps the TTL.
    assert!(int(&mut con, &["TTL", "h"]).await > 0);
    assert_eq!(int(&mut con, &["HDEL", "h", "b"]).await, 1);
    assert_eq!(int(&mut con, &["EXISTS", "h"]).await, 0);
    assert_eq!(int(&mut con, &["HDEL", "nokey", "a"]).await, 0);
}

async fn hincrby(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    assert_eq!(int(&mut con, &["HINCRBY", "h", "n", "5"]).await, 5);
    assert_eq!(int(&mut con, &["HINCRBY", "h", "n", "-7"]).await, -2);
    assert_eq!(
        text(&mut con, &["HGET", "h", "n"]).await.as_deref(),
        Some("-2")
    );
    int(
        &mut con,
        &[
            "HSET",
            "h",
            "s",
            "abc",
            "big",
            "9223372036854775807",
            "sp",
            " 1",
        ],
    )
    .await;
    assert_eq!(
        err(&mut con, &["HINCRBY", "h", "s", "1"]).await,
        "ERR hash value is not an integer"
    );
    assert_eq!(
        err(&mut con, &["HINCRBY", "h", "sp", "1"]).await,
        "ERR hash value is not an integer"
    );
    assert_eq!(
        err(&mut con, &["HINCRBY", "h", "big", "1"]).await,
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        err(&mut con, &["HINCRBY", "h", "n", "1.5"]).await,
        "ERR value is not an integer or out of range"
    );
    set(&mut con, "str", "1").await;
    // The increment is checked before the key's type.
    assert_eq!(
        err(&mut con, &["HINCRBY", "str", "n", "x"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut con, &["HINCRBY", "str", "n", "1"]).await,
        WRONGTYPE
    );
    assert_eq!(
        int(&mut con, &["HINCRBY", "h", "new", "-9223372036854775808"]).await,
        i64::MIN
    );
}

async fn hincrbyfloat(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let incr = |field: &'static str, by: &'static str| ["HINCRBYFLOAT", "h", field, by];
    assert_eq!(
        text(&mut con, &incr("f", "10.5")).await.as_deref(),
        Some("10.5")
    );
    assert_eq!(
        text(&mut con, &incr("f", "0.1")).await.as_deref(),
        Some("10.6")
    );
    assert_eq!(
        text(&mut con, &incr("f", "-10.6")).await.as_deref(),
        Some("0")
    );
    int(
        &mut con,
        &["HSET", "h", "e", "5.0e3", "i", "17", "s", "x", "inf", "inf"],
    )
    .await;
    assert_eq!(
        text(&mut con, &incr("e", "1")).await.as_deref(),
        Some("5001")
    );
    assert_eq!(
        text(&mut con, &incr("i", "0.25")).await.as_deref(),
        Some("17.25")
    );
    assert_eq!(
        text(&mut con, &incr("x", "3.0e3")).await.as_deref(),
        Some("3000")
    );
    // Long double arithmetic, printed as Redis prints it.
    let big = text(&mut con, &incr("b", "1e308")).await.expect("a value");
    assert_eq!(big.len(), 308);
    let bigger = text(&mut con, &incr("b", "1e308")).await.expect("a value");
    assert!(bigger.starts_with("19999999999999999999337"), "{bigger}");
    assert_eq!(text(&mut con, &["HGET", "h", "b"]).await, Some(bigger));
    assert_eq!(
        err(&mut con, &incr("s", "1")).await,
        "ERR hash value is not a float"
    );
    assert_eq!(
        err(&mut con, &incr("inf", "1")).await,
        "ERR increment would produce NaN or Infinity"
    );
    assert_eq!(
        err(&mut con, &incr("f", "inf")).await,
        "ERR value is NaN or Infinity"
    );
    assert_eq!(
        err(&mut con, &incr("f", "nan")).await,
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut con, &incr("f", "1x")).await,
        "ERR value is not a valid float"
    );
    set(&mut con, "str", "1").await;
    assert_eq!(
        err(&mut con, &["HINCRBYFLOAT", "str", "f", "x"]).await,
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut con, &["HINCRBYFLOAT", "str", "f", "1"]).await,
        WRONGTYPE
    );
}

async fn hrandfield_counts_and_shapes(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let fields: HashMap<String, String> =
        (0..5).map(|i| (format!("f{i}"), format!("v{i}"))).collect();
    for (f, v) in &fields {
        int(&mut con, &["HSET", "h", f, v]).await;
    }
    let one = text(&mut con, &["HRANDFIELD", "h"]).await.expect("a field");
    assert!(fields.contains_key(&one));
    assert_eq!(text(&mut con, &["HRANDFIELD", "nokey"]).await, None);

    let picked = strings(q(&mut con, &["HRANDFIELD", "h", "3"]).await);
    assert_eq!(picked.len(), 3);
    assert_eq!(picked.iter().collect::<HashSet<_>>().len(), 3, "{picked:?}");
    let all = strings(q(&mut con, &["HRANDFIELD", "h", "10"]).await);
    assert_eq!(all.len(), 5);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 5);
    let repeated = strings(q(&mut con, &["HRANDFIELD", "h", "-20"]).await);
    assert_eq!(repeated.len(), 20);
    assert!(repeated.iter().all(|f| fields.contains_key(f)));
    assert_eq!(
        q(&mut con, &["HRANDFIELD", "h", "0"]).await,
        Value::Array(vec![])
    );
    assert_eq!(
        q(&mut con, &["HRANDFIELD", "nokey", "-3", "WITHVALUES"]).await,
        Value::Array(vec![])
    );

    for count in ["2", "-7", "9"] {
        let reply = q(&mut con, &["HRANDFIELD", "h", count, "withvalues"]).await;
        let Value::Array(items) = reply else {
            panic!("HRANDFIELD answered {reply:?}");
        };
        let pairs: Vec<(String, String)> = if resp3 {
            items
                .iter()
                .map(|item| match item {
                    Value::Array(pair) if pair.len() == 2 => (as_text(&pair[0]), as_text(&pair[1])),
                    other => panic!("expected a pair, got {other:?}"),
                })
                .collect()
        } else {
            items
                .chunks(2)
                .map(|pair| (as_text(&pair[0]), as_text(&pair[1])))
                .collect()
        };
        let expected_len = match count {
            "2" => 2,
            "-7" => 7,
            _ => 5,
        };
        assert_eq!(pairs.len(), expected_len, "{count}");
        for (f, v) in pairs {
            assert_eq!(fields.get(&f), Some(&v));
        }
    }
}

async fn hrandfield_errors(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["HSET", "h", "a", "1"]).await;
    set(&mut con, "str", "x").await;
    let cases: &[(&[&str], &str)] = &[
        (&["HRANDFIELD", "h", "x"], "ERR value is not an integer or out of range"),
        (&["HRANDFIELD", "nokey", "x"], "ERR value is not an integer or out of range"),
        (&["HRANDFIELD", "h", "1", "foo"], "ERR syntax error"),
        (&["HRANDFIELD", "h", "1", "WITHVALUES", "x"], "ERR syntax error"),
        (
            &["HRANDFIELD", "h", "-9223372036854775808"],
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ),
        (
            &["HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES"],
            "ERR value is out of range",
        ),
        (
            &["HRANDFIELD", "h", "4611686018427387904", "WITHVALUES"],
            "ERR value is out of range",
        ),
        (&["HRANDFIELD", "str"], WRONGTYPE),
        (&["HRANDFIELD", "str", "0"], WRONGTYPE),
        (
            &["HRANDFIELD", "h", "-9223372036854775807"],
            "ERR count is too large: strata answers at most 1048576 random elements",
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(&err(&mut con, command).await, expected, "{command:?}");
    }
    // Within Redis's bounds a missing key answers an empty array.
    assert_eq!(
        q(
            &mut con,
            &["HRANDFIELD", "nokey", "-4611686018427387903", "WITHVALUES"]
        )
        .await,
        Value::Array(vec![])
    );
    assert_eq!(
        q(&mut con, &["HRANDFIELD", "h", "9223372036854775807"]).await,
        Value::Array(vec![bulk("a")])
    );
}

/// Every field of `key` by HSCAN, following cursors to 0 (bounded).
async fn hscan_all(con: &mut Conn, key: &str, extra: &[&str]) -> (Vec<(String, String)>, usize) {
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    for calls in 1..=10_000 {
        let mut command = vec!["HSCAN", key, &cursor];
        command.extend_from_slice(extra);
        let reply = q(con, &command).await;
        let Value::Array(parts) = reply else {
            panic!("HSCAN answered {reply:?}");
        };
        let next = as_text(&parts[0]);
        let items = strings(parts[1].clone());
        seen.extend(
            items
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair[1].clone())),
        );
        cursor = next;
        if cursor == "0" {
            return (seen, calls);
        }
    }
    panic!("HSCAN never ended");
}

async fn hscan_small_and_large(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["HSET", "small", "a", "1", "b", "2", "c", "3"]).await;
    // A listpack answers whole, whatever COUNT says.
    let (items, calls) = hscan_all(&mut con, "small", &["COUNT", "1"]).await;
    assert_eq!(calls, 1);
    assert_eq!(items.len(), 3);
    let (items, _) = hscan_all(&mut con, "small", &["MATCH", "[ab]"]).await;
    assert_eq!(
        items,
        vec![("a".into(), "1".into()), ("b".into(), "2".into())]
    );

    for start in (0..1000).step_by(100) {
        let mut pipe = redis::pipe();
        for i in start..start + 100 {
            pipe.cmd("HSET")
                .arg("big")
                .arg(format!("f{i}"))
                .arg(i)
                .ignore();
        }
        let () = pipe.query_async(&mut con).await.expect("HSETs");
    }
    let (items, calls) = hscan_all(&mut con, "big", &["COUNT", "100"]).await;
    assert!(calls >= 10, "{calls} calls");
    let unique: HashMap<String, String> = items.into_iter().collect();
    assert_eq!(unique.len(), 1000);
    assert_eq!(unique.get("f42").map(String::as_str), Some("42"));
    let (items, _) = hscan_all(&mut con, "big", &["MATCH", "f9?", "COUNT", "50"]).await;
    let mut fields: Vec<String> = items.into_iter().map(|(f, _)| f).collect();
    fields.sort();
    assert_eq!(
        fields,
        (90..100).map(|i| format!("f{i}")).collect::<Vec<_>>()
    );

    // Fields present for the whole scan are all returned, although fields
    // already returned are deleted between pages (each deletion moves
    // another field into the freed place).
    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut deleted = HashSet::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 1000, "HSCAN never ended");
        let reply = q(&mut con, &["HSCAN", "big", &cursor, "COUNT", "30"]).await;
        let Value::Array(parts) = reply else {
            panic!("{reply:?}");
        };
        cursor = as_text(&parts[0]);
        for pair in strings(parts[1].clone()).chunks(2) {
            seen.insert(pair[0].clone());
        }
        let doomed: Vec<String> = seen
            .iter()
            .filter(|f| f[1..].parse::<usize>().is_ok_and(|n| n >= 500) && !deleted.contains(*f))
            .take(10)
            .cloned()
            .collect();
        for field in doomed {
            assert_eq!(int(&mut con, &["HDEL", "big", &field]).await, 1);
            deleted.insert(field);
        }
        if cursor == "0" {
            break;
        }
    }
    assert!(deleted.len() > 100, "{} deleted", deleted.len());
    for i in 0..500 {
        assert!(seen.contains(&format!("f{i}")), "f{i} missed");
    }

    let empty = Value::Array(vec![bulk("0"), Value::Array(vec![])]);
    assert_eq!(q(&mut con, &["HSCAN", "nokey", "0"]).await, empty);
    // Options are read only once the key is found.
    assert_eq!(
        q(&mut con, &["HSCAN", "nokey", "0", "COUNT", "0"]).await,
        empty
    );
    assert_eq!(
        err(&mut con, &["HSCAN", "small", "0", "COUNT", "0"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["HSCAN", "small", "0", "COUNT"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["HSCAN", "small", "0", "TYPE", "hash"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["HSCAN", "nokey", "x"]).await,
        "ERR invalid cursor"
    );
    set(&mut con, "str", "x").await;
    assert_eq!(err(&mut con, &["HSCAN", "str", "0"]).await, WRONGTYPE);
}

async fn wrong_type_everywhere(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    set(&mut con, "str", "x").await;
    let commands: &[&[&str]] = &[
        &["HSET", "str", "f", "v"],
        &["HSETNX", "str", "f", "v"],
        &["HMSET", "str", "f", "v"],
        &["HGET", "str", "f"],
        &["HMGET", "str", "f"],
        &["HDEL", "str", "f"],
        &["HEXISTS", "str", "f"],
        &["HLEN", "str"],
        &["HKEYS", "str"],
        &["HVALS", "str"],
        &["HGETALL", "str"],
        &["HINCRBY", "str", "f", "1"],
        &["HINCRBYFLOAT", "str", "f", "1"],
        &["HSTRLEN", "str", "f"],
        &["HRANDFIELD", "str", "1"],
        &["HSCAN", "str", "0"],
    ];
    for command in commands {
        assert_eq!(err(&mut con, command).await, WRONGTYPE, "{command:?}");
    }
    assert_eq!(text(&mut con, &["GET", "str"]).await.as_deref(), Some("x"));
}

async fn encodings_follow_redis(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let encoding = |key: &'static str| ["OBJECT", "ENCODING", key];
    int(&mut con, &["HSET", "h", "f", "v"]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("h")).await), "listpack");
    // A value over 64 bytes converts, and deleting it does not convert back.
    int(&mut con, &["HSET", "h", "long", &"x".repeat(65)]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("h")).await), "hashtable");
    int(&mut con, &["HDEL", "h", "long"]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("h")).await), "hashtable");
    // Redis 7.0's built-in limit is 512 entries.
    let mut pipe = redis::pipe();
    for i in 0..512 {
        pipe.cmd("HSET")
            .arg("many")
            .arg(format!("f{i}"))
            .arg("v")
            .ignore();
    }
    let () = pipe.query_async(&mut con).await.expect("HSETs");
    assert_eq!(as_text(&q(&mut con, &encoding("many")).await), "listpack");
    int(&mut con, &["HSET", "many", "f0", "w"]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("many")).await), "listpack");
    int(&mut con, &["HSET", "many", "f512", "w"]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("many")).await), "hashtable");
    // HSETNX on an existing field leaves a listpack alone.
    int(&mut con, &["HSET", "nx", "a", "1"]).await;
    int(&mut con, &["HSETNX", "nx", "a", &"y".repeat(70)]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("nx")).await), "listpack");
    int(&mut con, &["HINCRBY", "inc", &"k".repeat(65), "1"]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("inc")).await), "hashtable");
}

async fn reads_count_hits_and_misses(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["HSET", "h", "f", "v"]).await;
    int(&mut con, &["SADD", "s", "m"]).await;
    let hits = info_stat(&mut con, "keyspace_hits").await;
    let misses = info_stat(&mut con, "keyspace_misses").await;
    text(&mut con, &["HGET", "h", "f"]).await;
    text(&mut con, &["HGET", "h", "nofield"]).await;
    text(&mut con, &["HGET", "nokey", "f"]).await;
    q(&mut con, &["SINTER", "s", "nokey", "s"]).await;
    // Writes look keys up without counting, as Redis's lookupKeyWrite.
    int(&mut con, &["HSET", "h", "g", "w"]).await;
    int(&mut con, &["SREM", "nokey", "m"]).await;
    assert_eq!(info_stat(&mut con, "keyspace_hits").await - hits, 4);
    assert_eq!(info_stat(&mut con, "keyspace_misses").await - misses, 2);
}

async fn hashes_survive_a_restart(resp3: bool) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = start_on(dir.path(), |_| {}).await;
    let mut con = connect(app.local_addr(), resp3).await;
    int(&mut con, &["HSET", "h", "a", "1", "b", "2", "c", "3"]).await;
    int(&mut con, &["HDEL", "h", "b"]).await;
    int(&mut con, &["HINCRBY", "h", "a", "41"]).await;
    text(&mut con, &["HINCRBYFLOAT", "h", "fl", "2.5"]).await;
    int(&mut con, &["HSET", "gone", "x", "1"]).await;
    int(&mut con, &["HDEL", "gone", "x"]).await;
    int(&mut con, &["HSET", "ttl", "x", "1"]).await;
    int(&mut con, &["EXPIRE", "ttl", "100"]).await;
    for i in 0..300 {
        int(
            &mut con,
            &["HSET", "big", &format!("f{i}"), &format!("v{i}")],
        )
        .await;
    }
    drop(con);
    app.shutdown().await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let app = start_on(dir.path(), |_| {}).await;
    let mut con = connect(app.local_addr(), resp3).await;
    let mut got = pairs(q(&mut con, &["HGETALL", "h"]).await, resp3);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("a".to_string(), "42".to_string()),
            ("c".to_string(), "3".to_string()),
            ("fl".to_string(), "2.5".to_string()),
        ]
    );
    assert_eq!(int(&mut con, &["EXISTS", "gone"]).await, 0);
    let ttl = int(&mut con, &["TTL", "ttl"]).await;
    assert!((90..=100).contains(&ttl), "ttl {ttl}");
    assert_eq!(int(&mut con, &["HLEN", "big"]).await, 300);
    assert_eq!(
        text(&mut con, &["HGET", "big", "f299"]).await.as_deref(),
        Some("v299")
    );
    // Changes after the restart go on from what was read back.
    assert_eq!(int(&mut con, &["HSET", "h", "d", "4"]).await, 1);
    assert_eq!(int(&mut con, &["HLEN", "h"]).await, 4);
    app.shutdown().await;
}

async fn hashes_read_back_after_eviction(resp3: bool) {
    let server = start_with(|config| {
        config.memory.maxmemory = MemorySize(256 * 1024);
    })
    .await;
    let mut con = server.client(resp3).await;
    let value = |k: usize, f: usize| format!("value-{k}-{f}-{}", "x".repeat(80));
    for k in 0..200 {
        let mut pipe = redis::pipe();
        for f in 0..20 {
            pipe.cmd("HSET")
                .arg(format!("h{k}"))
                .arg(format!("f{f}"))
                .arg(value(k, f))
                .ignore();
        }
        let () = pipe.query_async(&mut con).await.expect("HSETs");
    }
    assert!(info_field(&mut con, "tiers", "hot_evictions").await > 0);
    for k in 0..200 {
        let key = format!("h{k}");
        let got: HashMap<String, String> = pairs(q(&mut con, &["HGETALL", &key]).await, resp3)
            .into_iter()
            .collect();
        assert_eq!(got.len(), 20, "{key}");
        assert_eq!(got.get("f7"), Some(&value(k, 7)), "{key}");
    }
    // A hash changed after it came back from disk keeps its other fields.
    assert_eq!(int(&mut con, &["HDEL", "h0", "f0"]).await, 1);
    assert_eq!(int(&mut con, &["HLEN", "h0"]).await, 19);
}
