//! The set commands against Redis 7.0's replies, error texts and edge cases
//! (many from redis's `tests/unit/type/set.tcl`), each under RESP2 and
//! RESP3, plus sets surviving a restart and eviction to disk.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use redis::Value;
use strata::config::MemorySize;

both_protocols!(
    sadd_srem_and_membership,
    smembers_is_a_set_and_intsets_are_sorted,
    spop_single_and_counted,
    srandmember_counts,
    random_count_errors,
    smove_cases,
    smove_leaves_a_destination_that_has_the_member_untouched,
    algebra,
    store_commands_replace_the_destination,
    sintercard_options,
    sscan_small_and_large,
    wrong_type_everywhere,
    encodings_follow_redis,
    sets_survive_a_restart,
    sets_read_back_after_eviction,
);

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// The members of a set reply: a RESP3 set (`~`) or a RESP2 array.
fn set_members(value: Value, resp3: bool) -> Vec<String> {
    match value {
        Value::Set(items) if resp3 => items.iter().map(as_text).collect(),
        Value::Array(items) if !resp3 => items.iter().map(as_text).collect(),
        other => panic!("expected a set reply (resp3={resp3}), got {other:?}"),
    }
}

fn array(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(as_text).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn sadd_srem_and_membership(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    assert_eq!(int(&mut con, &["SADD", "s", "a", "b", "a", "c"]).await, 3);
    assert_eq!(int(&mut con, &["SADD", "s", "a", "d"]).await, 1);
    assert_eq!(int(&mut con, &["SCARD", "s"]).await, 4);
    assert_eq!(int(&mut con, &["SCARD", "nokey"]).await, 0);
    assert_eq!(int(&mut con, &["SISMEMBER", "s", "a"]).await, 1);
    assert_eq!(int(&mut con, &["SISMEMBER", "s", "z"]).await, 0);
    assert_eq!(int(&mut con, &["SISMEMBER", "nokey", "a"]).await, 0);
    assert_eq!(
        q(&mut con, &["SMISMEMBER", "s", "a", "z", "d"]).await,
        Value::Array(vec![Value::Int(1), Value::Int(0), Value::Int(1)])
    );
    assert_eq!(
        q(&mut con, &["SMISMEMBER", "nokey", "a", "b"]).await,
        Value::Array(vec![Value::Int(0), Value::Int(0)])
    );
    assert_eq!(
        err(&mut con, &["SMISMEMBER", "s"]).await,
        "ERR wrong number of arguments for 'smismember' command"
    );
    assert_eq!(int(&mut con, &["SREM", "s", "a", "a", "z"]).await, 1);
    assert_eq!(int(&mut con, &["SREM", "nokey", "a"]).await, 0);
    assert_eq!(int(&mut con, &["EXPIRE", "s", "100"]).await, 1);
    assert_eq!(int(&mut con, &["SREM", "s", "b"]).await, 1);
    assert!(
        int(&mut con, &["TTL", "s"]).await > 0,
        "a change in place keeps the TTL"
    );
    assert_eq!(int(&mut con, &["SREM", "s", "c", "d"]).await, 2);
    assert_eq!(int(&mut con, &["EXISTS", "s"]).await, 0);
    assert_eq!(as_text(&q(&mut con, &["TYPE", "nokey"]).await), "none");
    int(&mut con, &["SADD", "s", ""]).await;
    assert_eq!(as_text(&q(&mut con, &["TYPE", "s"]).await), "set");
    assert_eq!(int(&mut con, &["SISMEMBER", "s", ""]).await, 1);
}

async fn smembers_is_a_set_and_intsets_are_sorted(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["SADD", "ints", "10", "-3", "7", "2"]).await;
    assert_eq!(
        set_members(q(&mut con, &["SMEMBERS", "ints"]).await, resp3),
        owned(&["-3", "2", "7", "10"])
    );
    int(&mut con, &["SADD", "mixed", "b", "a", "c"]).await;
    assert_eq!(
        sorted(set_members(
            q(&mut con, &["SMEMBERS", "mixed"]).await,
            resp3
        )),
        owned(&["a", "b", "c"])
    );
    assert!(set_members(q(&mut con, &["SMEMBERS", "nokey"]).await, resp3).is_empty());
}

async fn spop_single_and_counted(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["SADD", "s", "a", "b", "c"]).await;
    let popped = text(&mut con, &["SPOP", "s"]).await.expect("a member");
    assert!(["a", "b", "c"].contains(&popped.as_str()));
    assert_eq!(int(&mut con, &["SCARD", "s"]).await, 2);
    assert_eq!(text(&mut con, &["SPOP", "nokey"]).await, None);
    assert!(set_members(q(&mut con, &["SPOP", "nokey", "3"]).await, resp3).is_empty());
    assert!(set_members(q(&mut con, &["SPOP", "s", "0"]).await, resp3).is_empty());
    let rest = set_members(q(&mut con, &["SPOP", "s", "5"]).await, resp3);
    assert_eq!(rest.len(), 2);
    assert!(!rest.contains(&popped));
    assert_eq!(int(&mut con, &["EXISTS", "s"]).await, 0);

    // Popping most of a set: the few left are the ones not returned.
    let members: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    let mut sadd = vec!["SADD", "big"];
    sadd.extend(members.iter().map(String::as_str));
    int(&mut con, &sadd).await;
    let popped = set_members(q(&mut con, &["SPOP", "big", "90"]).await, resp3);
    assert_eq!(popped.len(), 90);
    let left = sorted(set_members(q(&mut con, &["SMEMBERS", "big"]).await, resp3));
    assert_eq!(left.len(), 10);
    let mut all: Vec<String> = popped.into_iter().chain(left).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 100);
    // Integers left after a big pop make an intset again, as in Redis.
    let mut sadd = vec!["SADD".to_string(), "mixed".to_string(), "x".to_string()];
    sadd.extend((0..20).map(|i| i.to_string()));
    let sadd: Vec<&str> = sadd.iter().map(String::as_str).collect();
    int(&mut con, &sadd).await;
    assert_eq!(int(&mut con, &["SREM", "mixed", "x"]).await, 1);
    set_members(q(&mut con, &["SPOP", "mixed", "18"]).await, resp3);
    assert_eq!(
        as_text(&q(&mut con, &["OBJECT", "ENCODING", "mixed"]).await),
        "intset"
    );
}

async fn srandmember_counts(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["SADD", "s", "a", "b", "c", "d", "e"]).await;
    let one = text(&mut con, &["SRANDMEMBER", "s"])
        .await
        .expect("a member");
    assert!(["a", "b", "c", "d", "e"].contains(&one.as_str()));
    assert_eq!(text(&mut con, &["SRANDMEMBER", "nokey"]).await, None);
    let three = array(q(&mut con, &["SRANDMEMBER", "s", "3"]).await);
    assert_eq!(three.len(), 3);
    assert_eq!(three.iter().collect::<HashSet<_>>().len(), 3);
    let all = sorted(array(q(&mut con, &["SRANDMEMBER", "s", "50"]).await));
    assert_eq!(all, owned(&["a", "b", "c", "d", "e"]));
    let repeated = array(q(&mut con, &["SRANDMEMBER", "s", "-30"]).await);
    assert_eq!(repeated.len(), 30);
    assert!(repeated.iter().all(|m| all.contains(m)));
    assert_eq!(
        q(&mut con, &["SRANDMEMBER", "s", "0"]).await,
        Value::Array(vec![])
    );
    assert_eq!(
        q(&mut con, &["SRANDMEMBER", "nokey", "-5"]).await,
        Value::Array(vec![])
    );
    assert_eq!(int(&mut con, &["SCARD", "s"]).await, 5);
}

async fn random_count_errors(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["SADD", "s", "a"]).await;
    set(&mut con, "str", "x").await;
    let cases: &[(&[&str], &str)] = &[
        (&["SPOP", "s", "-1"], "ERR value is out of range, must be positive"),
        (&["SPOP", "nokey", "x"], "ERR value is out of range, must be positive"),
        (&["SPOP", "s", "1", "2"], "ERR syntax error"),
        (&["SPOP", "str", "0"], WRONGTYPE),
        (&["SPOP", "str"], WRONGTYPE),
        (&["SRANDMEMBER", "s", "x"], "ERR value is not an integer or out of range"),
        (&["SRANDMEMBER", "s", "1", "2"], "ERR syntax error"),
        (
            &["SRANDMEMBER", "nokey", "-9223372036854775808"],
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ),
        (&["SRANDMEMBER", "str", "0"], WRONGTYPE),
        (
            &["SRANDMEMBER", "s", "-9223372036854775807"],
            "ERR count is too large: strata answers at most 1048576 random elements",
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(&err(&mut con, command).await, expected, "{command:?}");
    }
    assert!(set_members(
        q(&mut con, &["SPOP", "nokey", "9223372036854775807"]).await,
        resp3
    )
    .is_empty());
    assert_eq!(
        array(q(&mut con, &["SRANDMEMBER", "s", "9223372036854775807"]).await),
        owned(&["a"])
    );
}

async fn smove_cases(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["SADD", "src", "1", "2", "a"]).await;
    set(&mut con, "str", "x").await;
    assert_eq!(int(&mut con, &["SMOVE", "src", "dst", "1"]).await, 1);
    assert_eq!(
        set_members(q(&mut con, &["SMEMBERS", "dst"]).await, resp3),
        owned(&["1"])
    );
    assert_eq!(
        as_text(&q(&mut con, &["OBJECT", "ENCODING", "dst"]).await),
        "intset"
    );
    assert_eq!(int(&mut con, &["SMOVE", "src", "dst", "zz"]).await, 0);
    assert_eq!(int(&mut con, &["SMOVE", "nokey", "dst", "1"]).await, 0);
    // A missing source answers 0 before the destination's type is looked at.
    assert_eq!(int(&mut con, &["SMOVE", "nokey", "str", "1"]).await, 0);
    assert_eq!(
        err(&mut con, &["SMOVE", "src", "str", "2"]).await,
        WRONGTYPE
    );
    assert_eq!(
        err(&mut con, &["SMOVE", "str", "src", "2"]).await,
        WRONGTYPE
    );
    assert_eq!(int(&mut con, &["SMOVE", "src", "src", "2"]).await, 1);
    assert_eq!(int(&mut con, &["SMOVE", "src", "src", "9"]).await, 0);
    assert_eq!(int(&mut con, &["SCARD", "src"]).await, 2);
    // Moving a member the destination has already just removes it.
    int(&mut con, &["SADD", "dst", "2"]).await;
    assert_eq!(int(&mut con, &["SMOVE", "src", "dst", "2"]).await, 1);
    assert_eq!(int(&mut con, &["SMOVE", "src", "dst", "a"]).await, 1);
    assert_eq!(int(&mut con, &["EXISTS", "src"]).await, 0);
    assert_eq!(int(&mut con, &["SCARD", "dst"]).await, 3);
    assert_eq!(
        as_text(&q(&mut con, &["OBJECT", "ENCODING", "dst"]).await),
        "hashtable"
    );
}

async fn algebra(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["SADD", "a", "1", "2", "3", "x"]).await;
    int(&mut con, &["SADD", "b", "2", "3", "4", "x"]).await;
    int(&mut con, &["SADD", "c", "3", "4", "5"]).await;
    set(&mut con, "str", "x").await;
    let members = |v: Value| sorted(set_members(v, resp3));
    assert_eq!(
        members(q(&mut con, &["SINTER", "a", "b"]).await),
        owned(&["2", "3", "x"])
    );
    assert_eq!(
        members(q(&mut con, &["SINTER", "a", "b", "c"]).await),
        owned(&["3"])
    );
    assert_eq!(members(q(&mut con, &["SINTER", "a", "a"]).await).len(), 4);
    assert!(members(q(&mut con, &["SINTER", "a", "nokey"]).await).is_empty());
    assert_eq!(
        members(q(&mut con, &["SUNION", "a", "nokey", "c"]).await),
        owned(&["1", "2", "3", "4", "5", "x"])
    );
    assert_eq!(
        members(q(&mut con, &["SDIFF", "a", "b"]).await),
        owned(&["1"])
    );
    assert_eq!(
        members(q(&mut con, &["SDIFF", "a", "nokey", "c"]).await),
        owned(&["1", "2", "x"])
    );
    assert!(members(q(&mut con, &["SDIFF", "nokey", "a"]).await).is_empty());
    assert!(members(q(&mut con, &["SDIFF", "a", "a"]).await).is_empty());
    // An intset result comes sorted, as Redis lists an intset.
    int(&mut con, &["SADD", "i1", "30", "1", "-4"]).await;
    int(&mut con, &["SADD", "i2", "20", "1"]).await;
    assert_eq!(
        set_members(q(&mut con, &["SUNION", "i2", "i1"]).await, resp3),
        owned(&["-4", "1", "20", "30"])
    );
    // Every key is type-checked, even after a missing one.
    for command in ["SINTER", "SUNION", "SDIFF"] {
        assert_eq!(err(&mut con, &[command, "nokey", "str"]).await, WRONGTYPE);
        assert_eq!(err(&mut con, &[command, "a", "str"]).await, WRONGTYPE);
    }
    assert_eq!(
        err(&mut con, &["SUNION"]).await,
        "ERR wrong number of arguments for 'sunion' command"
    );
}

async fn store_commands_replace_the_destination(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["SADD", "a", "1", "2", "3"]).await;
    int(&mut con, &["SADD", "b", "2", "3", "4", "x"]).await;
    set(&mut con, "dst", "string").await;
    assert_eq!(int(&mut con, &["EXPIRE", "dst", "100"]).await, 1);
    assert_eq!(int(&mut con, &["SINTERSTORE", "dst", "a", "b"]).await, 2);
    assert_eq!(as_text(&q(&mut con, &["TYPE", "dst"]).await), "set");
    assert_eq!(int(&mut con, &["TTL", "dst"]).await, -1, "the TTL goes");
    assert_eq!(
        as_text(&q(&mut con, &["OBJECT", "ENCODING", "dst"]).await),
        "intset"
    );
    assert_eq!(int(&mut con, &["SUNIONSTORE", "u", "a", "b"]).await, 5);
    assert_eq!(
        as_text(&q(&mut con, &["OBJECT", "ENCODING", "u"]).await),
        "hashtable"
    );
    assert_eq!(int(&mut con, &["SDIFFSTORE", "d", "b", "a"]).await, 2);
    assert_eq!(
        sorted(set_members(q(&mut con, &["SMEMBERS", "d"]).await, resp3)),
        owned(&["4", "x"])
    );
    // The destination may be a source.
    assert_eq!(int(&mut con, &["SUNIONSTORE", "a", "a", "d"]).await, 5);
    assert_eq!(int(&mut con, &["SCARD", "a"]).await, 5);
    // An empty result deletes the destination, whatever it held.
    set(&mut con, "str", "x").await;
    assert_eq!(
        int(&mut con, &["SINTERSTORE", "str", "a", "nokey"]).await,
        0
    );
    assert_eq!(int(&mut con, &["EXISTS", "str"]).await, 0);
    assert_eq!(int(&mut con, &["SDIFFSTORE", "d", "a", "a"]).await, 0);
    assert_eq!(int(&mut con, &["EXISTS", "d"]).await, 0);
    assert_eq!(int(&mut con, &["SUNIONSTORE", "u", "nokey"]).await, 0);
    assert_eq!(int(&mut con, &["EXISTS", "u"]).await, 0);
    set(&mut con, "str", "x").await;
    assert_eq!(
        err(&mut con, &["SINTERSTORE", "d", "nokey", "str"]).await,
        WRONGTYPE
    );
    assert_eq!(
        err(&mut con, &["SUNIONSTORE", "d", "a", "str"]).await,
        WRONGTYPE
    );
    assert_eq!(err(&mut con, &["SDIFFSTORE", "d", "str"]).await, WRONGTYPE);
}

async fn sintercard_options(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["SADD", "a", "1", "2", "3", "4"]).await;
    int(&mut con, &["SADD", "b", "2", "3", "4", "5"]).await;
    set(&mut con, "str", "x").await;
    assert_eq!(int(&mut con, &["SINTERCARD", "2", "a", "b"]).await, 3);
    assert_eq!(int(&mut con, &["SINTERCARD", "1", "a"]).await, 4);
    assert_eq!(
        int(&mut con, &["SINTERCARD", "2", "a", "b", "LIMIT", "2"]).await,
        2
    );
    assert_eq!(
        int(&mut con, &["SINTERCARD", "2", "a", "b", "limit", "0"]).await,
        3
    );
    assert_eq!(
        int(
            &mut con,
            &["SINTERCARD", "2", "a", "b", "LIMIT", "1", "LIMIT", "9"]
        )
        .await,
        3
    );
    assert_eq!(int(&mut con, &["SINTERCARD", "2", "a", "nokey"]).await, 0);
    let cases: &[(&[&str], &str)] = &[
        (
            &["SINTERCARD", "0", "a"],
            "ERR numkeys should be greater than 0",
        ),
        (
            &["SINTERCARD", "x", "a"],
            "ERR numkeys should be greater than 0",
        ),
        (
            &["SINTERCARD", "3", "a", "b"],
            "ERR Number of keys can't be greater than number of args",
        ),
        (&["SINTERCARD", "1", "a", "b"], "ERR syntax error"),
        (&["SINTERCARD", "2", "a", "b", "LIMIT"], "ERR syntax error"),
        (
            &["SINTERCARD", "2", "a", "b", "LIMIT", "-1"],
            "ERR LIMIT can't be negative",
        ),
        (
            &["SINTERCARD", "2", "a", "b", "LIMIT", "x"],
            "ERR LIMIT can't be negative",
        ),
        (&["SINTERCARD", "2", "nokey", "str"], WRONGTYPE),
    ];
    for (command, expected) in cases {
        assert_eq!(&err(&mut con, command).await, expected, "{command:?}");
    }
}

async fn sscan_all(con: &mut Conn, key: &str, extra: &[&str]) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    for calls in 1..=10_000 {
        let mut command = vec!["SSCAN", key, &cursor];
        command.extend_from_slice(extra);
        let reply = q(con, &command).await;
        let Value::Array(parts) = reply else {
            panic!("SSCAN answered {reply:?}");
        };
        cursor = as_text(&parts[0]);
        seen.extend(array(parts[1].clone()));
        if cursor == "0" {
            return (seen, calls);
        }
    }
    panic!("SSCAN never ended");
}

async fn sscan_small_and_large(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["SADD", "ints", "30", "1", "20", "300"]).await;
    let (items, calls) = sscan_all(&mut con, "ints", &["COUNT", "1"]).await;
    assert_eq!((items, calls), (owned(&["1", "20", "30", "300"]), 1));
    let (items, _) = sscan_all(&mut con, "ints", &["MATCH", "3*"]).await;
    assert_eq!(items, owned(&["30", "300"]));

    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SADD").arg("big").arg(format!("m{i}")).ignore();
    }
    let () = pipe.query_async(&mut con).await.expect("SADDs");
    let (items, calls) = sscan_all(&mut con, "big", &["COUNT", "200"]).await;
    assert!(calls >= 5);
    assert_eq!(items.iter().collect::<HashSet<_>>().len(), 1000);
    let (items, _) = sscan_all(&mut con, "big", &["MATCH", "m99?"]).await;
    assert_eq!(
        sorted(items),
        (990..1000).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );

    let empty = Value::Array(vec![bulk("0"), Value::Array(vec![])]);
    assert_eq!(
        q(&mut con, &["SSCAN", "nokey", "0", "COUNT", "0"]).await,
        empty
    );
    assert_eq!(
        err(&mut con, &["SSCAN", "ints", "0", "COUNT", "0"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["SSCAN", "ints", "0", "MATCH"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["SSCAN", "ints", "-x"]).await,
        "ERR invalid cursor"
    );
    set(&mut con, "str", "x").await;
    assert_eq!(err(&mut con, &["SSCAN", "str", "0"]).await, WRONGTYPE);
}

async fn wrong_type_everywhere(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["HSET", "h", "f", "v"]).await;
    let commands: &[&[&str]] = &[
        &["SADD", "h", "m"],
        &["SREM", "h", "m"],
        &["SMEMBERS", "h"],
        &["SISMEMBER", "h", "m"],
        &["SMISMEMBER", "h", "m"],
        &["SCARD", "h"],
        &["SPOP", "h"],
        &["SRANDMEMBER", "h"],
        &["SINTER", "h"],
        &["SINTERCARD", "1", "h"],
        &["SUNION", "h"],
        &["SDIFF", "h"],
        &["SSCAN", "h", "0"],
    ];
    for command in commands {
        assert_eq!(err(&mut con, command).await, WRONGTYPE, "{command:?}");
    }
    assert_eq!(int(&mut con, &["HLEN", "h"]).await, 1);
}

async fn encodings_follow_redis(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let encoding = |key: &'static str| ["OBJECT", "ENCODING", key];
    int(
        &mut con,
        &[
            "SADD",
            "s",
            "1",
            "-9223372036854775808",
            "9223372036854775807",
        ],
    )
    .await;
    assert_eq!(as_text(&q(&mut con, &encoding("s")).await), "intset");
    int(&mut con, &["SADD", "s", "01"]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("s")).await), "hashtable");
    int(&mut con, &["SREM", "s", "01"]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("s")).await), "hashtable");
    let mut pipe = redis::pipe();
    for i in 0..512 {
        pipe.cmd("SADD").arg("many").arg(i).ignore();
    }
    let () = pipe.query_async(&mut con).await.expect("SADDs");
    assert_eq!(as_text(&q(&mut con, &encoding("many")).await), "intset");
    int(&mut con, &["SADD", "many", "512"]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("many")).await), "hashtable");
    int(&mut con, &["SADD", "word", "a"]).await;
    assert_eq!(as_text(&q(&mut con, &encoding("word")).await), "hashtable");
    // SDIFFSTORE's result is a hash table when Redis's size-chosen algorithm
    // copied the first set (a non-integer included) before subtracting.
    int(&mut con, &["SADD", "f", "a", "1", "2", "3", "4", "5"]).await;
    int(&mut con, &["SADD", "g", "a"]).await;
    int(&mut con, &["SADD", "k", "9"]).await;
    assert_eq!(int(&mut con, &["SDIFFSTORE", "d", "f", "g", "k"]).await, 5);
    assert_eq!(as_text(&q(&mut con, &encoding("d")).await), "hashtable");
    assert_eq!(int(&mut con, &["SDIFFSTORE", "d2", "f", "g"]).await, 5);
    assert_eq!(as_text(&q(&mut con, &encoding("d2")).await), "intset");
}

async fn sets_survive_a_restart(resp3: bool) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = start_on(dir.path(), |_| {}).await;
    let mut con = connect(app.local_addr(), resp3).await;
    int(&mut con, &["SADD", "s", "a", "b", "c", "1"]).await;
    int(&mut con, &["SREM", "s", "b"]).await;
    int(&mut con, &["SADD", "t", "b", "c", "d"]).await;
    int(&mut con, &["SINTERSTORE", "both", "s", "t"]).await;
    int(&mut con, &["SMOVE", "t", "s", "d"]).await;
    set_members(q(&mut con, &["SPOP", "t", "1"]).await, resp3);
    set(&mut con, "over", "string").await;
    int(&mut con, &["SUNIONSTORE", "over", "s"]).await;
    // A set replaced by a *STORE result must not come back with its old members.
    int(&mut con, &["SADD", "replaced", "p", "q", "r", "c"]).await;
    int(&mut con, &["SINTERSTORE", "replaced", "replaced", "s"]).await;
    let mut sadd = vec!["SADD".to_string(), "popped".to_string()];
    sadd.extend((0..50).map(|i| format!("m{i}")));
    let sadd: Vec<&str> = sadd.iter().map(String::as_str).collect();
    int(&mut con, &sadd).await;
    let popped = set_members(q(&mut con, &["SPOP", "popped", "45"]).await, resp3);
    let kept = sorted(set_members(
        q(&mut con, &["SMEMBERS", "popped"]).await,
        resp3,
    ));
    assert_eq!(popped.len() + kept.len(), 50);
    drop(con);
    app.shutdown().await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let app = start_on(dir.path(), |_| {}).await;
    let mut con = connect(app.local_addr(), resp3).await;
    let members = |v: Value| sorted(set_members(v, resp3));
    assert_eq!(
        members(q(&mut con, &["SMEMBERS", "s"]).await),
        owned(&["1", "a", "c", "d"])
    );
    assert_eq!(
        members(q(&mut con, &["SMEMBERS", "both"]).await),
        owned(&["c"])
    );
    assert_eq!(int(&mut con, &["SCARD", "t"]).await, 1);
    assert_eq!(
        members(q(&mut con, &["SMEMBERS", "over"]).await),
        owned(&["1", "a", "c", "d"])
    );
    assert_eq!(as_text(&q(&mut con, &["TYPE", "over"]).await), "set");
    assert_eq!(
        members(q(&mut con, &["SMEMBERS", "replaced"]).await),
        owned(&["c"])
    );
    assert_eq!(members(q(&mut con, &["SMEMBERS", "popped"]).await), kept);
    app.shutdown().await;
}

async fn sets_read_back_after_eviction(resp3: bool) {
    let server = start_with(|config| {
        config.memory.maxmemory = MemorySize(256 * 1024);
    })
    .await;
    let mut con = server.client(resp3).await;
    let member = |k: usize, m: usize| format!("member-{k}-{m}-{}", "y".repeat(80));
    for k in 0..200 {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(format!("s{k}"));
        for m in 0..20 {
            cmd.arg(member(k, m));
        }
        let added: i64 = cmd.query_async(&mut con).await.expect("SADD");
        assert_eq!(added, 20);
    }
    assert!(info_field(&mut con, "tiers", "hot_evictions").await > 0);
    for k in 0..200 {
        let key = format!("s{k}");
        let got = set_members(q(&mut con, &["SMEMBERS", &key]).await, resp3);
        assert_eq!(got.len(), 20, "{key}");
        assert!(got.contains(&member(k, 19)), "{key}");
    }
    assert_eq!(int(&mut con, &["SINTERCARD", "2", "s0", "s1"]).await, 0);
    assert_eq!(int(&mut con, &["SUNIONSTORE", "u", "s0", "s1"]).await, 40);
}

/// Redis 7.0.15: SMOVE of a member the destination already has changes only
/// the source, so a WATCH on the destination stays valid.
async fn smove_leaves_a_destination_that_has_the_member_untouched(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;
    let mut other = server.client(resp3).await;
    int(&mut con, &["SADD", "src", "a", "b"]).await;
    int(&mut con, &["SADD", "dst", "a"]).await;
    ok(&mut con, &["WATCH", "dst"]).await;
    ok(&mut con, &["MULTI"]).await;
    q(&mut con, &["SADD", "dst", "c"]).await;
    assert_eq!(int(&mut other, &["SMOVE", "src", "dst", "a"]).await, 1);
    assert_eq!(
        q(&mut con, &["EXEC"]).await,
        Value::Array(vec![Value::Int(1)])
    );
    assert_eq!(int(&mut con, &["SCARD", "dst"]).await, 2);
    assert_eq!(int(&mut con, &["SISMEMBER", "src", "a"]).await, 0);

    // A member new to the destination touches it: EXEC aborts.
    ok(&mut con, &["WATCH", "dst"]).await;
    ok(&mut con, &["MULTI"]).await;
    q(&mut con, &["SADD", "dst", "d"]).await;
    assert_eq!(int(&mut other, &["SMOVE", "src", "dst", "b"]).await, 1);
    assert_eq!(q(&mut con, &["EXEC"]).await, Value::Nil);
}
