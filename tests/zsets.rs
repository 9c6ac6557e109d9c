//! The sorted-set commands against Redis 7's replies, error texts and edge
//! cases (after redis's `tests/unit/type/zset.tcl`), each under RESP2 and
//! RESP3; sorted sets across a restart and after eviction from memory.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use redis::Value;
use strata::config::MemorySize;

both_protocols!(
    zadd_options,
    zadd_errors,
    zincrby_and_score_formats,
    zrem_and_zcard,
    zrank_and_zrevrank,
    zrange_by_rank,
    zrange_by_score,
    zrange_by_lex,
    zrange_errors,
    zrangestore,
    zcount_and_zlexcount,
    zpop,
    zmpop,
    zremrange,
    set_algebra,
    set_algebra_errors,
    zintercard,
    zrandmember,
    zscan_small_and_large,
    encodings,
    wrong_type_everywhere,
    survives_restart,
    read_back_after_eviction,
);

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const SYNTAX: &str = "ERR syntax error";
const NOT_FLOAT: &str = "ERR value is not a valid float";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const MIN_MAX_FLOAT: &str = "ERR min or max is not a float";
const MIN_MAX_LEX: &str = "ERR min or max not valid string range item";

fn members(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|m| bulk(m)).collect())
}

/// A score as a reply: a bulk string in RESP2, a double in RESP3.
fn score(resp3: bool, text: &str) -> Value {
    if resp3 {
        let value = match text {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => other.parse().expect("a number"),
        };
        Value::Double(value)
    } else {
        bulk(text)
    }
}

/// Members with scores: flat in RESP2, `[member, score]` pairs in RESP3.
fn scored(resp3: bool, items: &[(&str, &str)]) -> Value {
    if resp3 {
        Value::Array(
            items
                .iter()
                .map(|(m, s)| Value::Array(vec![bulk(m), score(true, s)]))
                .collect(),
        )
    } else {
        Value::Array(items.iter().flat_map(|(m, s)| [bulk(m), bulk(s)]).collect())
    }
}

/// Popped members: nested pairs in RESP3 when `nested`.
fn popped(resp3: bool, nested: bool, items: &[(&str, &str)]) -> Value {
    if resp3 && nested {
        scored(true, items)
    } else {
        Value::Array(
            items
                .iter()
                .flat_map(|(m, s)| [bulk(m), score(resp3, s)])
                .collect(),
        )
    }
}

async fn fill(c: &mut Conn, key: &str, pairs: &[(&str, &str)]) {
    let mut args = vec!["ZADD", key];
    for (s, m) in pairs {
        args.push(s);
        args.push(m);
    }
    q(c, &args).await;
}

// ---------------------------------------------------------------------------
// ZADD and ZINCRBY

async fn zadd_options(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    assert_eq!(int(&mut c, &["ZADD", "z", "1", "a", "2", "b"]).await, 2);
    assert_eq!(int(&mut c, &["ZADD", "z", "1", "a", "3", "c"]).await, 1);
    // CH counts changed scores too; an unchanged score is not a change.
    assert_eq!(
        int(&mut c, &["ZADD", "z", "CH", "5", "a", "3", "c", "9", "d"]).await,
        2
    );
    // XX only updates, NX only adds.
    assert_eq!(
        int(&mut c, &["ZADD", "z", "XX", "CH", "7", "a", "1", "new"]).await,
        1
    );
    assert_eq!(q(&mut c, &["ZSCORE", "z", "new"]).await, Value::Nil);
    assert_eq!(
        int(&mut c, &["ZADD", "z", "NX", "CH", "0", "a", "1", "new"]).await,
        1
    );
    assert_eq!(q(&mut c, &["ZSCORE", "z", "a"]).await, score(resp3, "7"));
    // GT and LT only move a score the allowed way, and still add.
    assert_eq!(
        int(
            &mut c,
            &["ZADD", "z", "GT", "CH", "6", "a", "8", "b", "1", "e"]
        )
        .await,
        2
    );
    assert_eq!(q(&mut c, &["ZSCORE", "z", "a"]).await, score(resp3, "7"));
    assert_eq!(q(&mut c, &["ZSCORE", "z", "b"]).await, score(resp3, "8"));
    assert_eq!(
        int(&mut c, &["ZADD", "z", "LT", "CH", "6", "a", "9", "b"]).await,
        1
    );
    assert_eq!(q(&mut c, &["ZSCORE", "z", "a"]).await, score(resp3, "6"));
    // INCR answers the new score, or nil when nothing happened.
    assert_eq!(
        q(&mut c, &["ZADD", "z", "INCR", "2.5", "a"]).await,
        score(resp3, "8.5")
    );
    assert_eq!(
        q(&mut c, &["ZADD", "z", "NX", "INCR", "1", "a"]).await,
        Value::Nil
    );
    assert_eq!(
        q(&mut c, &["ZADD", "z", "XX", "INCR", "1", "zz"]).await,
        Value::Nil
    );
    assert_eq!(
        q(&mut c, &["ZADD", "z", "GT", "INCR", "-1", "a"]).await,
        Value::Nil
    );
    assert_eq!(
        q(&mut c, &["ZADD", "z", "INCR", "4", "fresh"]).await,
        score(resp3, "4")
    );
    // XX on a missing key creates nothing.
    assert_eq!(int(&mut c, &["ZADD", "none", "XX", "1", "a"]).await, 0);
    assert_eq!(int(&mut c, &["EXISTS", "none"]).await, 0);
    assert_eq!(
        q(&mut c, &["ZADD", "none", "XX", "INCR", "1", "a"]).await,
        Value::Nil
    );
    // Options in any case and order; scores as strtod reads them.
    assert_eq!(
        int(
            &mut c,
            &["ZADD", "h", "ch", "nx", "0x10", "hex", "1e2", "e", "-inf", "m"]
        )
        .await,
        3
    );
    assert_eq!(q(&mut c, &["ZSCORE", "h", "hex"]).await, score(resp3, "16"));
    assert_eq!(q(&mut c, &["ZSCORE", "h", "e"]).await, score(resp3, "100"));
    assert_eq!(q(&mut c, &["ZSCORE", "h", "m"]).await, score(resp3, "-inf"));
    // -0 is 0 in a small sorted set (Redis 7.0's listpack).
    assert_eq!(int(&mut c, &["ZADD", "h", "-0", "zero"]).await, 1);
    assert_eq!(q(&mut c, &["ZSCORE", "h", "zero"]).await, score(resp3, "0"));
}

async fn zadd_errors(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    assert_eq!(
        err(&mut c, &["ZADD", "z", "NX", "XX", "1", "a"]).await,
        "ERR XX and NX options at the same time are not compatible"
    );
    for options in [["GT", "LT"], ["NX", "GT"], ["LT", "NX"]] {
        let mut args = vec!["ZADD", "z"];
        args.extend(options);
        args.extend(["1", "a"]);
        assert_eq!(
            err(&mut c, &args).await,
            "ERR GT, LT, and/or NX options at the same time are not compatible"
        );
    }
    assert_eq!(
        err(&mut c, &["ZADD", "z", "INCR", "1", "a", "2", "b"]).await,
        "ERR INCR option supports a single increment-element pair"
    );
    assert_eq!(err(&mut c, &["ZADD", "z", "1", "a", "2"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["ZADD", "z", "NX", "CH"]).await, SYNTAX);
    for bad in ["abc", "nan", "", " 1", "1 ", "1e400", "(1", "inf1"] {
        assert_eq!(
            err(&mut c, &["ZADD", "z", bad, "a"]).await,
            NOT_FLOAT,
            "{bad:?}"
        );
    }
    assert_eq!(int(&mut c, &["EXISTS", "z"]).await, 0);
    assert_eq!(int(&mut c, &["ZADD", "z", "inf", "a"]).await, 1);
    assert_eq!(
        err(&mut c, &["ZADD", "z", "INCR", "-inf", "a"]).await,
        "ERR resulting score is not a number (NaN)"
    );
    assert_eq!(q(&mut c, &["ZSCORE", "z", "a"]).await, score(resp3, "inf"));
    assert_eq!(
        err(&mut c, &["ZADD", "z"]).await,
        "ERR wrong number of arguments for 'zadd' command"
    );
    // ZINCRBY is ZADD INCR: an option word where the increment goes
    // leaves an odd number of arguments.
    assert_eq!(err(&mut c, &["ZINCRBY", "z", "nx", "a"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["ZINCRBY", "z", "x", "a"]).await, NOT_FLOAT);
}

async fn zincrby_and_score_formats(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    assert_eq!(
        q(&mut c, &["ZINCRBY", "z", "1.1", "a"]).await,
        score(resp3, "1.1000000000000001")
    );
    assert_eq!(
        q(&mut c, &["ZINCRBY", "z", "-1.1", "a"]).await,
        score(resp3, "0")
    );
    assert_eq!(
        q(&mut c, &["ZINCRBY", "z", "1e20", "b"]).await,
        score(resp3, "1e+20")
    );
    assert_eq!(
        q(&mut c, &["ZINCRBY", "z", "0.000001", "c"]).await,
        score(resp3, "9.9999999999999995e-07")
    );
    assert_eq!(
        q(&mut c, &["ZINCRBY", "z", "+inf", "d"]).await,
        score(resp3, "inf")
    );
    assert_eq!(
        err(&mut c, &["ZINCRBY", "z", "-inf", "d"]).await,
        "ERR resulting score is not a number (NaN)"
    );
    assert_eq!(q(&mut c, &["ZSCORE", "z", "nope"]).await, Value::Nil);
    assert_eq!(q(&mut c, &["ZSCORE", "nokey", "a"]).await, Value::Nil);
    assert_eq!(
        q(&mut c, &["ZMSCORE", "z", "a", "nope", "d"]).await,
        Value::Array(vec![score(resp3, "0"), Value::Nil, score(resp3, "inf")])
    );
    assert_eq!(
        q(&mut c, &["ZMSCORE", "nokey", "a", "b"]).await,
        Value::Array(vec![Value::Nil, Value::Nil])
    );
}

async fn zrem_and_zcard(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(&mut c, "z", &[("1", "a"), ("2", "b"), ("3", "c")]).await;
    assert_eq!(int(&mut c, &["ZCARD", "z"]).await, 3);
    assert_eq!(int(&mut c, &["ZREM", "z", "a", "x", "a"]).await, 1);
    assert_eq!(int(&mut c, &["ZREM", "nokey", "a"]).await, 0);
    assert_eq!(int(&mut c, &["ZCARD", "nokey"]).await, 0);
    // The last member's removal deletes the key.
    assert_eq!(int(&mut c, &["ZREM", "z", "b", "c", "d"]).await, 2);
    assert_eq!(int(&mut c, &["EXISTS", "z"]).await, 0);
    assert_eq!(as_text(&q(&mut c, &["TYPE", "z"]).await), "none");
}

async fn zrank_and_zrevrank(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(
        &mut c,
        "z",
        &[("10", "x"), ("20", "y"), ("30", "z"), ("20", "w")],
    )
    .await;
    assert_eq!(int(&mut c, &["ZRANK", "z", "x"]).await, 0);
    assert_eq!(int(&mut c, &["ZRANK", "z", "w"]).await, 1);
    assert_eq!(int(&mut c, &["ZRANK", "z", "y"]).await, 2);
    assert_eq!(int(&mut c, &["ZREVRANK", "z", "x"]).await, 3);
    assert_eq!(int(&mut c, &["ZREVRANK", "z", "z"]).await, 0);
    assert_eq!(q(&mut c, &["ZRANK", "z", "nope"]).await, Value::Nil);
    assert_eq!(q(&mut c, &["ZRANK", "nokey", "x"]).await, Value::Nil);
    // Redis 7.2's WITHSCORE.
    assert_eq!(
        q(&mut c, &["ZRANK", "z", "y", "withscore"]).await,
        Value::Array(vec![Value::Int(2), score(resp3, "20")])
    );
    assert_eq!(
        q(&mut c, &["ZREVRANK", "z", "x", "WITHSCORE"]).await,
        Value::Array(vec![Value::Int(3), score(resp3, "10")])
    );
    // A null array in RESP2, a null in RESP3: the client reads both as nil.
    assert_eq!(
        q(&mut c, &["ZRANK", "z", "nope", "WITHSCORE"]).await,
        Value::Nil
    );
    assert_eq!(
        err(&mut c, &["ZRANK", "z", "x", "WITHSCORES"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZRANK", "z", "x", "WITHSCORE", "x"]).await,
        "ERR wrong number of arguments for 'zrank' command"
    );
}

async fn zrange_by_rank(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(
        &mut c,
        "z",
        &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")],
    )
    .await;
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "0", "-1"]).await,
        members(&["a", "b", "c", "d"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "1", "2"]).await,
        members(&["b", "c"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "-2", "100"]).await,
        members(&["c", "d"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "-100", "0"]).await,
        members(&["a"])
    );
    assert_eq!(q(&mut c, &["ZRANGE", "z", "3", "1"]).await, members(&[]));
    assert_eq!(q(&mut c, &["ZRANGE", "z", "5", "10"]).await, members(&[]));
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "0", "1", "REV"]).await,
        members(&["d", "c"])
    );
    assert_eq!(
        q(&mut c, &["ZREVRANGE", "z", "0", "1"]).await,
        members(&["d", "c"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "0", "1", "WITHSCORES"]).await,
        scored(resp3, &[("a", "1"), ("b", "2")])
    );
    assert_eq!(
        q(&mut c, &["ZREVRANGE", "z", "0", "0", "withscores"]).await,
        scored(resp3, &[("d", "4")])
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "nokey", "0", "-1"]).await,
        members(&[])
    );
    // LIMIT with the default count is no LIMIT, as in Redis.
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "0", "0", "LIMIT", "3", "-1"]).await,
        members(&["a"])
    );
}

async fn zrange_by_score(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(
        &mut c,
        "z",
        &[
            ("-inf", "min"),
            ("1", "a"),
            ("2", "b"),
            ("2", "c"),
            ("3", "d"),
            ("+inf", "max"),
        ],
    )
    .await;
    assert_eq!(
        q(&mut c, &["ZRANGEBYSCORE", "z", "-inf", "+inf"]).await,
        members(&["min", "a", "b", "c", "d", "max"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYSCORE", "z", "(1", "(3"]).await,
        members(&["b", "c"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYSCORE", "z", "(-inf", "(inf"]).await,
        members(&["a", "b", "c", "d"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYSCORE", "z", "2", "2"]).await,
        members(&["b", "c"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYSCORE", "z", "(2", "2"]).await,
        members(&[])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYSCORE", "z", "3", "1"]).await,
        members(&[])
    );
    assert_eq!(
        q(&mut c, &["ZREVRANGEBYSCORE", "z", "3", "(1"]).await,
        members(&["d", "c", "b"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "(1", "3", "BYSCORE", "REV"]).await,
        members(&[])
    );
    assert_eq!(
        q(
            &mut c,
            &["ZRANGE", "z", "3", "(1", "BYSCORE", "REV", "LIMIT", "1", "5"]
        )
        .await,
        members(&["c", "b"])
    );
    assert_eq!(
        q(
            &mut c,
            &[
                "ZRANGEBYSCORE",
                "z",
                "-inf",
                "inf",
                "LIMIT",
                "1",
                "2",
                "WITHSCORES"
            ]
        )
        .await,
        scored(resp3, &[("a", "1"), ("b", "2")])
    );
    assert_eq!(
        q(
            &mut c,
            &[
                "ZRANGEBYSCORE",
                "z",
                "2",
                "+inf",
                "WITHSCORES",
                "LIMIT",
                "3",
                "-1"
            ]
        )
        .await,
        scored(resp3, &[("max", "inf")])
    );
    // A negative offset answers nothing; a negative count means all.
    assert_eq!(
        q(
            &mut c,
            &["ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", "-1", "2"]
        )
        .await,
        members(&[])
    );
    assert_eq!(
        q(
            &mut c,
            &["ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", "4", "-5"]
        )
        .await,
        members(&["d", "max"])
    );
    assert_eq!(
        q(
            &mut c,
            &["ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", "0", "0"]
        )
        .await,
        members(&[])
    );
    // Range ends as strtod reads them: "" is 0, a leading space is fine.
    assert_eq!(
        q(&mut c, &["ZRANGEBYSCORE", "z", " 1", "0x1"]).await,
        members(&["a"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYSCORE", "z", "", "1"]).await,
        members(&["a"])
    );
    assert_eq!(
        err(&mut c, &["ZRANGEBYSCORE", "z", "nan", "1"]).await,
        MIN_MAX_FLOAT
    );
    assert_eq!(
        err(&mut c, &["ZRANGEBYSCORE", "z", "1", "1x"]).await,
        MIN_MAX_FLOAT
    );
    assert_eq!(
        err(&mut c, &["ZRANGEBYSCORE", "z", "[1", "2"]).await,
        MIN_MAX_FLOAT
    );
}

async fn zrange_by_lex(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    for m in [
        "alpha", "bar", "cool", "down", "elephant", "foo", "great", "hill", "omega",
    ] {
        q(&mut c, &["ZADD", "z", "0", m]).await;
    }
    assert_eq!(
        q(&mut c, &["ZRANGEBYLEX", "z", "-", "[cool"]).await,
        members(&["alpha", "bar", "cool"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYLEX", "z", "[bar", "(down"]).await,
        members(&["bar", "cool"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYLEX", "z", "(great", "+"]).await,
        members(&["hill", "omega"])
    );
    assert_eq!(
        q(&mut c, &["ZREVRANGEBYLEX", "z", "[cool", "-"]).await,
        members(&["cool", "bar", "alpha"])
    );
    assert_eq!(
        q(&mut c, &["ZREVRANGEBYLEX", "z", "+", "(great"]).await,
        members(&["omega", "hill"])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYLEX", "z", "-", "+", "LIMIT", "2", "3"]).await,
        members(&["cool", "down", "elephant"])
    );
    assert_eq!(
        q(
            &mut c,
            &["ZRANGE", "z", "[z", "[f", "BYLEX", "REV", "LIMIT", "0", "2"]
        )
        .await,
        members(&["omega", "hill"])
    );
    for empty in [
        ["+", "-"],
        ["-", "-"],
        ["+", "+"],
        ["(foo", "[foo"],
        ["[g", "[f"],
    ] {
        assert_eq!(
            q(&mut c, &["ZRANGEBYLEX", "z", empty[0], empty[1]]).await,
            members(&[]),
            "{empty:?}"
        );
    }
    assert_eq!(
        q(&mut c, &["ZRANGEBYLEX", "z", "[foo", "[foo"]).await,
        members(&["foo"])
    );
    for bad in [
        ["foo", "+"],
        ["-", "bar"],
        ["", "+"],
        ["-x", "+"],
        ["++", "+"],
    ] {
        assert_eq!(
            err(&mut c, &["ZRANGEBYLEX", "z", bad[0], bad[1]]).await,
            MIN_MAX_LEX,
            "{bad:?}"
        );
    }
    assert_eq!(
        err(&mut c, &["ZRANGEBYLEX", "z", "-", "+", "WITHSCORES"]).await,
        "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
    );
}

async fn zrange_errors(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(&mut c, "z", &[("1", "a")]).await;
    assert_eq!(
        err(&mut c, &["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"]).await,
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
    );
    assert_eq!(
        err(&mut c, &["ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"]).await,
        "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
    );
    assert_eq!(
        err(&mut c, &["ZRANGE", "z", "0", "1", "BYSCORE", "BYLEX"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZRANGE", "z", "0", "1", "REV", "REV"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZRANGE", "z", "0", "1", "LIMIT", "0"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZRANGE", "z", "0", "1", "LIMIT", "x", "1"]).await,
        NOT_INTEGER
    );
    assert_eq!(err(&mut c, &["ZRANGE", "z", "(1", "4"]).await, NOT_INTEGER);
    assert_eq!(
        err(&mut c, &["ZRANGEBYSCORE", "z", "0", "1", "REV"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZRANGEBYSCORE", "z", "0", "1", "BYLEX"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZREVRANGE", "z", "0", "1", "LIMIT", "0", "1"]).await,
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
    );
    assert_eq!(
        err(&mut c, &["ZRANGE", "z", "0"]).await,
        "ERR wrong number of arguments for 'zrange' command"
    );
    // Options are checked before the key's type.
    set(&mut c, "s", "v").await;
    assert_eq!(err(&mut c, &["ZRANGE", "s", "0", "1", "FOO"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["ZRANGE", "s", "0", "1"]).await, WRONGTYPE);
}

async fn zrangestore(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(
        &mut c,
        "src",
        &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")],
    )
    .await;
    assert_eq!(
        int(&mut c, &["ZRANGESTORE", "dst", "src", "1", "2"]).await,
        2
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]).await,
        scored(resp3, &[("b", "2"), ("c", "3")])
    );
    assert_eq!(
        int(
            &mut c,
            &[
                "ZRANGESTORE",
                "dst",
                "src",
                "+inf",
                "(1",
                "BYSCORE",
                "REV",
                "LIMIT",
                "0",
                "2"
            ]
        )
        .await,
        2
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "dst", "0", "-1"]).await,
        members(&["c", "d"])
    );
    // Lex ranges over mixed scores walk members in order, as a listpack does.
    assert_eq!(
        int(&mut c, &["ZRANGESTORE", "dst", "src", "[b", "(d", "BYLEX"]).await,
        2
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "dst", "0", "-1"]).await,
        members(&["b", "c"])
    );
    // An empty result deletes the destination, and the TTL goes with a store.
    assert_eq!(
        int(&mut c, &["ZRANGESTORE", "dst", "src", "[x", "[y", "BYLEX"]).await,
        0
    );
    assert_eq!(int(&mut c, &["EXISTS", "dst"]).await, 0);
    ok(&mut c, &["SET", "dst", "v", "EX", "100"]).await;
    assert_eq!(
        int(&mut c, &["ZRANGESTORE", "dst", "src", "0", "0"]).await,
        1
    );
    assert_eq!(int(&mut c, &["TTL", "dst"]).await, -1);
    assert_eq!(
        int(&mut c, &["ZRANGESTORE", "dst", "nokey", "0", "-1"]).await,
        0
    );
    assert_eq!(int(&mut c, &["EXISTS", "dst"]).await, 0);
    assert_eq!(
        int(&mut c, &["ZRANGESTORE", "src", "src", "0", "1"]).await,
        2
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "src", "0", "-1"]).await,
        members(&["a", "b"])
    );
    assert_eq!(
        err(
            &mut c,
            &["ZRANGESTORE", "dst", "src", "0", "-1", "WITHSCORES"]
        )
        .await,
        SYNTAX
    );
    set(&mut c, "s", "v").await;
    assert_eq!(
        err(&mut c, &["ZRANGESTORE", "dst", "s", "0", "-1"]).await,
        WRONGTYPE
    );
}

async fn zcount_and_zlexcount(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(
        &mut c,
        "z",
        &[("1", "a"), ("2", "b"), ("3", "c"), ("inf", "d")],
    )
    .await;
    assert_eq!(int(&mut c, &["ZCOUNT", "z", "-inf", "+inf"]).await, 4);
    assert_eq!(int(&mut c, &["ZCOUNT", "z", "(1", "3"]).await, 2);
    assert_eq!(int(&mut c, &["ZCOUNT", "z", "(inf", "+inf"]).await, 0);
    assert_eq!(int(&mut c, &["ZCOUNT", "nokey", "0", "1"]).await, 0);
    assert_eq!(err(&mut c, &["ZCOUNT", "z", "x", "1"]).await, MIN_MAX_FLOAT);
    fill(
        &mut c,
        "l",
        &[("0", "a"), ("0", "b"), ("0", "c"), ("0", "d")],
    )
    .await;
    assert_eq!(int(&mut c, &["ZLEXCOUNT", "l", "-", "+"]).await, 4);
    assert_eq!(int(&mut c, &["ZLEXCOUNT", "l", "(a", "[c"]).await, 2);
    assert_eq!(int(&mut c, &["ZLEXCOUNT", "l", "[c", "(a"]).await, 0);
    assert_eq!(
        err(&mut c, &["ZLEXCOUNT", "l", "a", "+"]).await,
        MIN_MAX_LEX
    );
}

async fn zpop(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(
        &mut c,
        "z",
        &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")],
    )
    .await;
    // Without a count the pair is flat in both protocols.
    assert_eq!(
        q(&mut c, &["ZPOPMIN", "z"]).await,
        popped(resp3, false, &[("a", "1")])
    );
    assert_eq!(
        q(&mut c, &["ZPOPMAX", "z", "1"]).await,
        popped(resp3, true, &[("d", "4")])
    );
    assert_eq!(
        q(&mut c, &["ZPOPMIN", "z", "0"]).await,
        Value::Array(vec![])
    );
    assert_eq!(
        q(&mut c, &["ZPOPMAX", "z", "10"]).await,
        popped(resp3, true, &[("c", "3"), ("b", "2")])
    );
    assert_eq!(int(&mut c, &["EXISTS", "z"]).await, 0);
    assert_eq!(q(&mut c, &["ZPOPMIN", "z"]).await, Value::Array(vec![]));
    assert_eq!(
        q(&mut c, &["ZPOPMIN", "z", "3"]).await,
        Value::Array(vec![])
    );
    let positive = "ERR value is out of range, must be positive";
    assert_eq!(err(&mut c, &["ZPOPMIN", "z", "-1"]).await, positive);
    assert_eq!(err(&mut c, &["ZPOPMIN", "z", "x"]).await, positive);
    assert_eq!(err(&mut c, &["ZPOPMIN", "z", "1", "2"]).await, SYNTAX);
}

async fn zmpop(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(&mut c, "z2", &[("1", "a"), ("2", "b"), ("3", "c")]).await;
    // Pairs are nested in both protocols.
    let nested = |items: &[(&str, &str)]| {
        Value::Array(
            items
                .iter()
                .map(|(m, s)| Value::Array(vec![bulk(m), score(resp3, s)]))
                .collect(),
        )
    };
    assert_eq!(
        q(&mut c, &["ZMPOP", "2", "z1", "z2", "MIN"]).await,
        Value::Array(vec![bulk("z2"), nested(&[("a", "1")])])
    );
    assert_eq!(
        q(&mut c, &["ZMPOP", "1", "z2", "max", "COUNT", "5"]).await,
        Value::Array(vec![bulk("z2"), nested(&[("c", "3"), ("b", "2")])])
    );
    assert_eq!(
        q(&mut c, &["ZMPOP", "2", "z1", "z2", "MIN"]).await,
        Value::Nil
    );
    assert_eq!(
        err(&mut c, &["ZMPOP", "0", "z1", "MIN"]).await,
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        err(&mut c, &["ZMPOP", "x", "z1", "MIN"]).await,
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(err(&mut c, &["ZMPOP", "3", "z1", "MIN"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["ZMPOP", "1", "z1", "MIDDLE"]).await, SYNTAX);
    assert_eq!(
        err(&mut c, &["ZMPOP", "1", "z1", "MIN", "COUNT", "0"]).await,
        "ERR count should be greater than 0"
    );
    assert_eq!(
        err(
            &mut c,
            &["ZMPOP", "1", "z1", "MIN", "COUNT", "1", "COUNT", "1"]
        )
        .await,
        SYNTAX
    );
    // The first existing key decides: a string there is an error.
    set(&mut c, "s", "v").await;
    fill(&mut c, "z3", &[("1", "a")]).await;
    assert_eq!(
        err(&mut c, &["ZMPOP", "2", "s", "z3", "MIN"]).await,
        WRONGTYPE
    );
    assert_eq!(
        q(&mut c, &["ZMPOP", "2", "z3", "s", "MIN"]).await,
        Value::Array(vec![bulk("z3"), nested(&[("a", "1")])])
    );
}

async fn zremrange(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    let five = [("1", "a"), ("2", "b"), ("3", "c"), ("4", "d"), ("5", "e")];
    fill(&mut c, "z", &five).await;
    assert_eq!(int(&mut c, &["ZREMRANGEBYRANK", "z", "1", "-2"]).await, 3);
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "0", "-1"]).await,
        members(&["a", "e"])
    );
    assert_eq!(int(&mut c, &["ZREMRANGEBYRANK", "z", "5", "10"]).await, 0);
    assert_eq!(
        int(&mut c, &["ZREMRANGEBYRANK", "z", "-100", "100"]).await,
        2
    );
    assert_eq!(int(&mut c, &["EXISTS", "z"]).await, 0);
    fill(&mut c, "z", &five).await;
    assert_eq!(int(&mut c, &["ZREMRANGEBYSCORE", "z", "(1", "3"]).await, 2);
    assert_eq!(
        int(&mut c, &["ZREMRANGEBYSCORE", "z", "-inf", "(1"]).await,
        0
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "0", "-1"]).await,
        members(&["a", "d", "e"])
    );
    assert_eq!(
        err(&mut c, &["ZREMRANGEBYSCORE", "z", "a", "1"]).await,
        MIN_MAX_FLOAT
    );
    q(&mut c, &["DEL", "z"]).await;
    fill(
        &mut c,
        "z",
        &[("0", "a"), ("0", "b"), ("0", "c"), ("0", "d")],
    )
    .await;
    assert_eq!(int(&mut c, &["ZREMRANGEBYLEX", "z", "(a", "[c"]).await, 2);
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "0", "-1"]).await,
        members(&["a", "d"])
    );
    assert_eq!(int(&mut c, &["ZREMRANGEBYLEX", "z", "-", "+"]).await, 2);
    assert_eq!(int(&mut c, &["EXISTS", "z"]).await, 0);
    assert_eq!(
        err(&mut c, &["ZREMRANGEBYLEX", "z", "a", "+"]).await,
        MIN_MAX_LEX
    );
    assert_eq!(
        err(&mut c, &["ZREMRANGEBYRANK", "z", "x", "1"]).await,
        NOT_INTEGER
    );
    assert_eq!(
        int(&mut c, &["ZREMRANGEBYRANK", "nokey", "0", "1"]).await,
        0
    );
}

async fn set_algebra(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(&mut c, "z1", &[("1", "a"), ("2", "b"), ("3", "c")]).await;
    fill(&mut c, "z2", &[("1", "b"), ("2", "c"), ("3", "d")]).await;
    assert_eq!(
        q(&mut c, &["ZUNION", "2", "z1", "z2", "WITHSCORES"]).await,
        scored(resp3, &[("a", "1"), ("b", "3"), ("d", "3"), ("c", "5")])
    );
    assert_eq!(
        q(
            &mut c,
            &[
                "ZUNION",
                "2",
                "z1",
                "z2",
                "WEIGHTS",
                "2",
                "-1",
                "AGGREGATE",
                "MAX",
                "WITHSCORES"
            ]
        )
        .await,
        scored(resp3, &[("d", "-3"), ("a", "2"), ("b", "4"), ("c", "6")])
    );
    assert_eq!(
        q(
            &mut c,
            &["ZINTER", "2", "z1", "z2", "AGGREGATE", "MIN", "WITHSCORES"]
        )
        .await,
        scored(resp3, &[("b", "1"), ("c", "2")])
    );
    assert_eq!(
        q(&mut c, &["ZINTER", "2", "z1", "nokey"]).await,
        members(&[])
    );
    assert_eq!(
        q(&mut c, &["ZDIFF", "2", "z1", "z2", "WITHSCORES"]).await,
        scored(resp3, &[("a", "1")])
    );
    assert_eq!(q(&mut c, &["ZDIFF", "2", "z1", "z1"]).await, members(&[]));
    assert_eq!(
        q(&mut c, &["ZDIFF", "1", "z1"]).await,
        members(&["a", "b", "c"])
    );
    // A key named twice takes part twice.
    assert_eq!(
        q(&mut c, &["ZINTER", "2", "z1", "z1", "WITHSCORES"]).await,
        scored(resp3, &[("a", "2"), ("b", "4"), ("c", "6")])
    );
    // inf - inf sums to 0, 0 * inf weighs 0.
    fill(&mut c, "i1", &[("inf", "x")]).await;
    fill(&mut c, "i2", &[("-inf", "x")]).await;
    assert_eq!(
        q(&mut c, &["ZUNION", "2", "i1", "i2", "WITHSCORES"]).await,
        scored(resp3, &[("x", "0")])
    );
    assert_eq!(
        q(&mut c, &["ZUNION", "1", "i1", "WEIGHTS", "0", "WITHSCORES"]).await,
        scored(resp3, &[("x", "0")])
    );
    assert_eq!(
        int(&mut c, &["ZUNIONSTORE", "dst", "2", "z1", "z2"]).await,
        4
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "dst", "0", "-1"]).await,
        members(&["a", "b", "d", "c"])
    );
    assert_eq!(
        int(
            &mut c,
            &["ZINTERSTORE", "dst", "2", "z1", "z2", "WEIGHTS", "1", "10"]
        )
        .await,
        2
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]).await,
        scored(resp3, &[("b", "12"), ("c", "23")])
    );
    assert_eq!(
        int(&mut c, &["ZDIFFSTORE", "dst", "2", "z2", "z1"]).await,
        1
    );
    assert_eq!(
        q(&mut c, &["ZRANGE", "dst", "0", "-1"]).await,
        members(&["d"])
    );
    // Storing into a source, and an empty result deleting the destination.
    assert_eq!(
        int(
            &mut c,
            &["ZUNIONSTORE", "z1", "2", "z1", "z2", "AGGREGATE", "min"]
        )
        .await,
        4
    );
    assert_eq!(q(&mut c, &["ZSCORE", "z1", "c"]).await, score(resp3, "2"));
    assert_eq!(
        int(&mut c, &["ZINTERSTORE", "dst", "2", "z1", "nokey"]).await,
        0
    );
    assert_eq!(int(&mut c, &["EXISTS", "dst"]).await, 0);
}

async fn set_algebra_errors(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(&mut c, "z1", &[("1", "a")]).await;
    set(&mut c, "s", "v").await;
    assert_eq!(
        err(&mut c, &["ZUNIONSTORE", "d", "0", "z1"]).await,
        "ERR at least 1 input key is needed for 'zunionstore' command"
    );
    assert_eq!(
        err(&mut c, &["ZINTER", "0", "z1"]).await,
        "ERR at least 1 input key is needed for 'zinter' command"
    );
    assert_eq!(err(&mut c, &["ZUNION", "x", "z1"]).await, NOT_INTEGER);
    assert_eq!(err(&mut c, &["ZUNION", "3", "z1", "z2"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["ZUNION", "2", "z1", "s"]).await, WRONGTYPE);
    // The keys' types are checked before the options.
    assert_eq!(
        err(&mut c, &["ZUNION", "2", "z1", "s", "FOO"]).await,
        WRONGTYPE
    );
    assert_eq!(err(&mut c, &["ZUNION", "1", "z1", "FOO"]).await, SYNTAX);
    assert_eq!(
        err(&mut c, &["ZUNION", "2", "z1", "z2", "WEIGHTS", "1"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZUNION", "1", "z1", "WEIGHTS", "x"]).await,
        "ERR weight value is not a float"
    );
    for weight in ["nan", "", "1x"] {
        assert_eq!(
            err(&mut c, &["ZUNIONSTORE", "d", "1", "z1", "WEIGHTS", weight]).await,
            "ERR weight value is not a float",
            "{weight:?}"
        );
    }
    assert_eq!(
        err(&mut c, &["ZUNION", "1", "z1", "AGGREGATE", "AVG"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZDIFF", "1", "z1", "WEIGHTS", "1"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZUNIONSTORE", "d", "1", "z1", "WITHSCORES"]).await,
        SYNTAX
    );
}

async fn zintercard(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(&mut c, "z1", &[("1", "a"), ("2", "b"), ("3", "c")]).await;
    fill(&mut c, "z2", &[("1", "b"), ("2", "c"), ("3", "d")]).await;
    assert_eq!(int(&mut c, &["ZINTERCARD", "2", "z1", "z2"]).await, 2);
    assert_eq!(
        int(&mut c, &["ZINTERCARD", "2", "z1", "z2", "LIMIT", "1"]).await,
        1
    );
    assert_eq!(
        int(&mut c, &["ZINTERCARD", "2", "z1", "z2", "LIMIT", "0"]).await,
        2
    );
    assert_eq!(int(&mut c, &["ZINTERCARD", "2", "z1", "nokey"]).await, 0);
    assert_eq!(
        err(&mut c, &["ZINTERCARD", "1", "z1", "LIMIT", "-1"]).await,
        "ERR LIMIT can't be negative"
    );
    assert_eq!(
        err(&mut c, &["ZINTERCARD", "1", "z1", "WITHSCORES"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["ZINTERCARD", "0", "z1"]).await,
        "ERR at least 1 input key is needed for 'zintercard' command"
    );
}

async fn zrandmember(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    let pairs: Vec<(String, String)> = (0..10).map(|i| (i.to_string(), format!("m{i}"))).collect();
    for (s, m) in &pairs {
        q(&mut c, &["ZADD", "z", s, m]).await;
    }
    let all: HashSet<String> = pairs.iter().map(|(_, m)| m.clone()).collect();
    let picked = text(&mut c, &["ZRANDMEMBER", "z"]).await.expect("a member");
    assert!(all.contains(&picked));
    assert_eq!(q(&mut c, &["ZRANDMEMBER", "nokey"]).await, Value::Nil);
    assert_eq!(
        q(&mut c, &["ZRANDMEMBER", "nokey", "5"]).await,
        Value::Array(vec![])
    );
    assert_eq!(
        q(&mut c, &["ZRANDMEMBER", "z", "0"]).await,
        Value::Array(vec![])
    );
    for count in ["3", "8", "10", "50"] {
        let Value::Array(items) = q(&mut c, &["ZRANDMEMBER", "z", count]).await else {
            panic!("array");
        };
        let names: HashSet<String> = items.iter().map(as_text).collect();
        assert_eq!(names.len(), items.len(), "distinct for count {count}");
        assert_eq!(items.len(), count.parse::<usize>().unwrap().min(10));
        assert!(names.is_subset(&all));
    }
    let Value::Array(items) = q(&mut c, &["ZRANDMEMBER", "z", "-30"]).await else {
        panic!("array");
    };
    assert_eq!(items.len(), 30);
    let Value::Array(items) = q(&mut c, &["ZRANDMEMBER", "z", "-3", "WITHSCORES"]).await else {
        panic!("array");
    };
    if resp3 {
        assert_eq!(items.len(), 3);
        for pair in &items {
            let Value::Array(pair) = pair else {
                panic!("pair {pair:?}")
            };
            let m = as_text(&pair[0]);
            let index: f64 = m[1..].parse().unwrap();
            assert_eq!(pair[1], Value::Double(index));
        }
    } else {
        assert_eq!(items.len(), 6);
        for pair in items.chunks(2) {
            assert_eq!(as_text(&pair[0])[1..], as_text(&pair[1]));
        }
    }
    // Redis would stream 2^63 members; strata refuses more than 2^20.
    assert_eq!(
        err(&mut c, &["ZRANDMEMBER", "z", "-9223372036854770000"]).await,
        "ERR value is out of range"
    );
    assert_eq!(err(&mut c, &["ZRANDMEMBER", "z", "x"]).await, NOT_INTEGER);
    assert_eq!(
        err(&mut c, &["ZRANDMEMBER", "z", "1", "WITHSCORE"]).await,
        SYNTAX
    );
    assert_eq!(
        err(
            &mut c,
            &["ZRANDMEMBER", "z", "-9223372036854775807", "WITHSCORES"]
        )
        .await,
        "ERR value is out of range"
    );
}

async fn scan_all(c: &mut Conn, key: &str, options: &[&str]) -> (Vec<(String, String)>, usize) {
    let mut cursor = "0".to_string();
    let mut found = Vec::new();
    let mut calls = 0;
    loop {
        let mut args = vec!["ZSCAN", key, &cursor];
        args.extend(options);
        let Value::Array(parts) = q(c, &args).await else {
            panic!("ZSCAN reply")
        };
        let Value::Array(items) = &parts[1] else {
            panic!("ZSCAN items")
        };
        for pair in items.chunks(2) {
            found.push((as_text(&pair[0]), as_text(&pair[1])));
        }
        cursor = as_text(&parts[0]);
        calls += 1;
        if cursor == "0" {
            return (found, calls);
        }
        assert!(calls < 10_000);
    }
}

async fn zscan_small_and_large(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(&mut c, "small", &[("2", "b"), ("1.5", "a"), ("inf", "c")]).await;
    // A listpack comes back whole and in order, scores as text.
    let (found, calls) = scan_all(&mut c, "small", &["COUNT", "1"]).await;
    assert_eq!(calls, 1);
    let expected: Vec<(String, String)> = [("a", "1.5"), ("b", "2"), ("c", "inf")]
        .iter()
        .map(|(m, s)| (m.to_string(), s.to_string()))
        .collect();
    assert_eq!(found, expected);
    let (found, _) = scan_all(&mut c, "small", &["MATCH", "b*"]).await;
    assert_eq!(found, vec![("b".to_string(), "2".to_string())]);
    assert_eq!(
        q(&mut c, &["ZSCAN", "nokey", "0", "BADOPTION"]).await,
        Value::Array(vec![bulk("0"), Value::Array(vec![])])
    );
    assert_eq!(
        err(&mut c, &["ZSCAN", "small", "0", "COUNT", "0"]).await,
        SYNTAX
    );
    assert_eq!(err(&mut c, &["ZSCAN", "small", "0", "COUNT"]).await, SYNTAX);
    assert_eq!(
        err(&mut c, &["ZSCAN", "small", "x"]).await,
        "ERR invalid cursor"
    );

    // A large one in pages; members removed and added meanwhile do not
    // hide the members that stay.
    for start in (0..1000).step_by(100) {
        let mut args = vec!["ZADD".to_string(), "big".to_string()];
        for i in start..start + 100 {
            args.push(i.to_string());
            args.push(format!("m{i}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        q(&mut c, &args).await;
    }
    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let Value::Array(parts) = q(&mut c, &["ZSCAN", "big", &cursor, "COUNT", "50"]).await else {
            panic!("ZSCAN reply")
        };
        let Value::Array(items) = &parts[1] else {
            panic!("items")
        };
        for pair in items.chunks(2) {
            let member = as_text(&pair[0]);
            if !member.starts_with("new") {
                assert_eq!(as_text(&pair[1]), member[1..]);
            }
            seen.insert(member);
        }
        cursor = as_text(&parts[0]);
        pages += 1;
        if pages % 3 == 0 {
            q(&mut c, &["ZREM", "big", &format!("m{}", pages * 7)]).await;
            q(&mut c, &["ZADD", "big", "5000", &format!("new{pages}")]).await;
        }
        if cursor == "0" {
            break;
        }
        assert!(pages < 1000);
    }
    assert!(pages > 10, "pages {pages}");
    for i in 0..1000 {
        let removed = (1..=pages).any(|p| p % 3 == 0 && p * 7 == i);
        assert!(removed || seen.contains(&format!("m{i}")), "m{i} missed");
    }
}

async fn encoding_of(c: &mut Conn, key: &str) -> String {
    as_text(&q(c, &["OBJECT", "ENCODING", key]).await)
}

async fn encodings(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    fill(&mut c, "z", &[("1", "a")]).await;
    assert_eq!(encoding_of(&mut c, "z").await, "listpack");
    let long = "x".repeat(65);
    q(&mut c, &["ZADD", "z", "2", &long]).await;
    assert_eq!(encoding_of(&mut c, "z").await, "skiplist");
    for i in 0..128 {
        q(&mut c, &["ZADD", "many", &i.to_string(), &format!("m{i}")]).await;
    }
    assert_eq!(encoding_of(&mut c, "many").await, "listpack");
    q(&mut c, &["ZADD", "many", "1", "one-more"]).await;
    assert_eq!(encoding_of(&mut c, "many").await, "skiplist");
    // A stored result small enough is a listpack again.
    assert_eq!(
        int(&mut c, &["ZUNIONSTORE", "u", "1", "many", "WEIGHTS", "1"]).await,
        129
    );
    assert_eq!(encoding_of(&mut c, "u").await, "skiplist");
    assert_eq!(
        int(&mut c, &["ZRANGESTORE", "r", "many", "0", "9"]).await,
        10
    );
    assert_eq!(encoding_of(&mut c, "r").await, "listpack");
    assert_eq!(as_text(&q(&mut c, &["TYPE", "r"]).await), "zset");
}

async fn wrong_type_everywhere(resp3: bool) {
    let (_s, mut c) = start_client(resp3).await;
    set(&mut c, "s", "v").await;
    let commands: &[&[&str]] = &[
        &["ZADD", "s", "1", "a"],
        &["ZINCRBY", "s", "1", "a"],
        &["ZREM", "s", "a"],
        &["ZCARD", "s"],
        &["ZSCORE", "s", "a"],
        &["ZMSCORE", "s", "a"],
        &["ZRANK", "s", "a"],
        &["ZREVRANK", "s", "a"],
        &["ZRANGE", "s", "0", "1"],
        &["ZRANGEBYSCORE", "s", "0", "1"],
        &["ZREVRANGEBYSCORE", "s", "1", "0"],
        &["ZRANGEBYLEX", "s", "-", "+"],
        &["ZREVRANGEBYLEX", "s", "+", "-"],
        &["ZREVRANGE", "s", "0", "1"],
        &["ZCOUNT", "s", "0", "1"],
        &["ZLEXCOUNT", "s", "-", "+"],
        &["ZPOPMIN", "s"],
        &["ZPOPMAX", "s", "2"],
        &["ZMPOP", "1", "s", "MIN"],
        &["ZREMRANGEBYRANK", "s", "0", "1"],
        &["ZREMRANGEBYSCORE", "s", "0", "1"],
        &["ZREMRANGEBYLEX", "s", "-", "+"],
        &["ZUNION", "1", "s"],
        &["ZINTER", "1", "s"],
        &["ZDIFF", "1", "s"],
        &["ZUNIONSTORE", "d", "1", "s"],
        &["ZINTERCARD", "1", "s"],
        &["ZRANDMEMBER", "s"],
        &["ZRANDMEMBER", "s", "2"],
        &["ZSCAN", "s", "0"],
    ];
    for command in commands {
        assert_eq!(err(&mut c, command).await, WRONGTYPE, "{command:?}");
    }
    assert_eq!(text(&mut c, &["GET", "s"]).await.as_deref(), Some("v"));
    // And the string commands refuse a sorted set.
    fill(&mut c, "z", &[("1", "a")]).await;
    assert_eq!(err(&mut c, &["GET", "z"]).await, WRONGTYPE);
}

async fn survives_restart(resp3: bool) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = start_on(dir.path(), |_| {}).await;
    let mut c = connect(app.local_addr(), resp3).await;
    fill(
        &mut c,
        "z",
        &[("1.5", "a"), ("-inf", "b"), ("2", "c"), ("3", "gone")],
    )
    .await;
    q(&mut c, &["ZINCRBY", "z", "0.25", "a"]).await;
    q(&mut c, &["ZREM", "z", "gone"]).await;
    for i in 0..300 {
        q(&mut c, &["ZADD", "big", &i.to_string(), &format!("m{i}")]).await;
    }
    assert_eq!(
        int(&mut c, &["ZREMRANGEBYSCORE", "big", "(100", "+inf"]).await,
        199
    );
    q(&mut c, &["ZPOPMIN", "big", "2"]).await;
    assert_eq!(
        int(&mut c, &["ZUNIONSTORE", "u", "2", "z", "big"]).await,
        102
    );
    drop(c);
    app.shutdown().await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let app = start_on(dir.path(), |_| {}).await;
    let mut c = connect(app.local_addr(), resp3).await;
    assert_eq!(
        q(&mut c, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]).await,
        scored(resp3, &[("b", "-inf"), ("a", "1.75"), ("c", "2")])
    );
    assert_eq!(int(&mut c, &["ZCARD", "big"]).await, 99);
    assert_eq!(
        q(&mut c, &["ZRANGE", "big", "0", "1"]).await,
        members(&["m2", "m3"])
    );
    assert_eq!(
        q(&mut c, &["ZSCORE", "big", "m100"]).await,
        score(resp3, "100")
    );
    assert_eq!(int(&mut c, &["ZCARD", "u"]).await, 102);
    // Small enough to load as a listpack, as Redis loads it.
    assert_eq!(
        as_text(&q(&mut c, &["OBJECT", "ENCODING", "big"]).await),
        "listpack"
    );
    // Changes after the restart are kept too.
    assert_eq!(
        int(&mut c, &["ZADD", "big", "7", "m2", "1000", "top"]).await,
        1
    );
    assert_eq!(int(&mut c, &["ZRANK", "big", "m2"]).await, 4);
    drop(c);
    app.shutdown().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let app = start_on(dir.path(), |_| {}).await;
    let mut c = connect(app.local_addr(), resp3).await;
    assert_eq!(int(&mut c, &["ZRANK", "big", "m2"]).await, 4);
    assert_eq!(
        q(&mut c, &["ZRANGE", "big", "-1", "-1"]).await,
        members(&["top"])
    );
    app.shutdown().await;
}

async fn read_back_after_eviction(resp3: bool) {
    let server = start_with(|config| {
        config.memory.maxmemory = MemorySize(256 * 1024);
    })
    .await;
    let mut c = server.client(resp3).await;
    // 60 sorted sets of 100 members: far more than memory holds.
    for k in 0..60 {
        let key = format!("z{k}");
        let mut args = vec!["ZADD".to_string(), key];
        for i in 0..100 {
            args.push(format!("{}.5", i + k));
            args.push(format!("member-{i:03}-{}", "p".repeat(20)));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(int(&mut c, &args).await, 100);
    }
    let evictions = info_field(&mut c, "tiers", "hot_evictions").await;
    assert!(evictions > 0, "nothing was evicted");
    for k in 0..60 {
        let key = format!("z{k}");
        assert_eq!(int(&mut c, &["ZCARD", &key]).await, 100, "{key}");
        let first = format!("{}.5", k);
        assert_eq!(
            q(&mut c, &["ZRANGE", &key, "0", "0", "WITHSCORES"]).await,
            scored(
                resp3,
                &[(
                    format!("member-000-{}", "p".repeat(20)).as_str(),
                    first.as_str()
                )]
            ),
            "{key}"
        );
        // Changed after its return from disk.
        assert_eq!(
            int(
                &mut c,
                &["ZREM", &key, &format!("member-050-{}", "p".repeat(20))]
            )
            .await,
            1
        );
    }
    for k in 0..60 {
        assert_eq!(int(&mut c, &["ZCARD", &format!("z{k}")]).await, 99);
    }
}
