//! Differential test of the hash and set commands: seeded random command
//! streams (the *STORE commands and keys of the wrong type included) go to
//! strata and to a real `redis-server` started here, and every reply must
//! match. Commands that pick at random (SPOP, SRANDMEMBER, HRANDFIELD) are
//! compared by shape, size and membership; after an SPOP the two servers
//! are brought back to the same set. `tools/test.sh` installs redis-server;
//! without it this test fails.

mod common;

use common::RedisServer;

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::Value;

const KEYS: &[&str] = &["h1", "h2", "s1", "s2", "s3", "str"];

fn key(rng: &mut StdRng) -> String {
    KEYS[rng.gen_range(0..KEYS.len())].to_string()
}

fn field(rng: &mut StdRng) -> String {
    match rng.gen_range(0..30) {
        0 => "F".repeat(65),
        1 => String::new(),
        _ => format!("f{}", rng.gen_range(0..12)),
    }
}

fn value(rng: &mut StdRng) -> String {
    match rng.gen_range(0..8) {
        0 => rng.gen_range(-100..100).to_string(),
        1 => String::new(),
        2 => "x".repeat(rng.gen_range(1..70)),
        3 => format!("{}.5", rng.gen_range(-10..10)),
        4 => "9223372036854775807".to_string(),
        5 => "1e3".to_string(),
        _ => format!("v{}", rng.gen_range(0..100)),
    }
}

fn member(rng: &mut StdRng) -> String {
    match rng.gen_range(0..20) {
        0 => "01".to_string(),
        1 => "-9223372036854775808".to_string(),
        2 => "9223372036854775808".to_string(),
        3..=8 => ["a", "b", "c", "d", "e", "f"][rng.gen_range(0..6)].to_string(),
        _ => rng.gen_range(-5..25).to_string(),
    }
}

fn count(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => "0".into(),
        1 => "x".into(),
        2 => "-9223372036854775808".into(),
        _ => rng.gen_range(-8..12).to_string(),
    }
}

fn many(rng: &mut StdRng, each: fn(&mut StdRng) -> String, max: usize) -> Vec<String> {
    (0..rng.gen_range(1..=max)).map(|_| each(rng)).collect()
}

fn cmd(words: &[&str], rest: Vec<String>) -> Vec<String> {
    words.iter().map(|w| w.to_string()).chain(rest).collect()
}

/// One random hash or set command.
fn random_command(rng: &mut StdRng) -> Vec<String> {
    let k = key(rng);
    let k = k.as_str();
    match rng.gen_range(0..44) {
        0 | 1 => {
            let pairs = (0..rng.gen_range(1..4))
                .flat_map(|_| [field(rng), value(rng)])
                .collect();
            cmd(&["HSET", k], pairs)
        }
        2 => cmd(&["HSETNX", k], vec![field(rng), value(rng)]),
        3 => cmd(&["HGET", k], vec![field(rng)]),
        4 => cmd(&["HMGET", k], many(rng, field, 4)),
        5 => cmd(&["HMSET", k], vec![field(rng), value(rng)]),
        6 => cmd(&["HDEL", k], many(rng, field, 3)),
        7 => cmd(&["HEXISTS", k], vec![field(rng)]),
        8 => cmd(&["HLEN", k], vec![]),
        9 => cmd(&["HKEYS", k], vec![]),
        10 => cmd(&["HVALS", k], vec![]),
        11 => cmd(&["HGETALL", k], vec![]),
        12 => {
            let by = ["1", "-3", "100", "x", "9223372036854775807"][rng.gen_range(0..5)];
            cmd(&["HINCRBY", k, &field(rng), by], vec![])
        }
        13 => {
            let by = ["1.5", "-0.25", "1e3", "x", "inf", "10"][rng.gen_range(0..6)];
            cmd(&["HINCRBYFLOAT", k, &field(rng), by], vec![])
        }
        14 => cmd(&["HSTRLEN", k], vec![field(rng)]),
        15 => {
            let mut c = cmd(&["HRANDFIELD", k], vec![]);
            if rng.gen_bool(0.8) {
                c.push(count(rng));
                if rng.gen_bool(0.5) {
                    c.push("WITHVALUES".into());
                }
            }
            c
        }
        16 => cmd(&["HSCAN", k, "0", "COUNT", "1000"], vec![]),
        17 => cmd(&["HSCAN", k, "0", "MATCH", "f1*", "COUNT", "1000"], vec![]),
        18..=20 => cmd(&["SADD", k], many(rng, member, 4)),
        21 => cmd(&["SREM", k], many(rng, member, 3)),
        22 => cmd(&["SMEMBERS", k], vec![]),
        23 => cmd(&["SISMEMBER", k], vec![member(rng)]),
        24 => cmd(&["SMISMEMBER", k], many(rng, member, 3)),
        25 => cmd(&["SCARD", k], vec![]),
        26 => {
            let mut c = cmd(&["SPOP", k], vec![]);
            if rng.gen_bool(0.6) {
                c.push(count(rng));
            }
            c
        }
        27 => {
            let mut c = cmd(&["SRANDMEMBER", k], vec![]);
            if rng.gen_bool(0.8) {
                c.push(count(rng));
            }
            c
        }
        28 => cmd(&["SMOVE", k, &key(rng), &member(rng)], vec![]),
        29 => cmd(&["SINTER", k], many(rng, key, 3)),
        30 => cmd(&["SUNION", k], many(rng, key, 3)),
        31 => cmd(&["SDIFF", k], many(rng, key, 3)),
        32 => cmd(&["SINTERSTORE", k], many(rng, key, 3)),
        33 => cmd(&["SUNIONSTORE", k], many(rng, key, 3)),
        34 => cmd(&["SDIFFSTORE", k], many(rng, key, 3)),
        35 => {
            let keys = many(rng, key, 3);
            let mut c = cmd(&["SINTERCARD", &keys.len().to_string()], keys);
            if rng.gen_bool(0.4) {
                c.extend(["LIMIT".to_string(), rng.gen_range(-1..4).to_string()]);
            }
            c
        }
        36 => cmd(&["SSCAN", k, "0", "COUNT", "1000"], vec![]),
        37 => cmd(
            &["SSCAN", k, "0", "MATCH", "[a-c]", "COUNT", "1000"],
            vec![],
        ),
        38 => cmd(&["OBJECT", "ENCODING", k], vec![]),
        39 => cmd(&["TYPE", k], vec![]),
        40 => cmd(&["SET", "str", &value(rng)], vec![]),
        41 => cmd(&["DEL", k], vec![]),
        42 => cmd(&["EXISTS", k], vec![]),
        _ => cmd(&["SMOVE", k, k, &member(rng)], vec![]),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(data) => String::from_utf8_lossy(data).into_owned(),
        other => format!("{other:?}"),
    }
}

/// The elements of an array or set reply, as text.
fn items(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items.iter().map(text).collect()),
        _ => None,
    }
}

/// Commands whose reply order is the server's choice: their elements (or
/// field-value pairs) are compared sorted. The reply's RESP type still counts.
fn unordered(value: &Value, command: &str) -> String {
    let kind = match value {
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Map(_) => "map",
        _ => return format!("{value:?}"),
    };
    let mut elements: Vec<String> = match value {
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{}={}", text(k), text(v)))
            .collect(),
        Value::Array(parts) if command.ends_with("SCAN") && parts.len() == 2 => {
            let found = items(&parts[1]).unwrap_or_default();
            let found: Vec<String> = if command == "HSCAN" {
                found.chunks(2).map(|p| p.join("=")).collect()
            } else {
                found
            };
            let mut found = found;
            found.sort();
            return format!("scan cursor={} {found:?}", text(&parts[0]));
        }
        _ => {
            let all = items(value).unwrap_or_default();
            if command == "HGETALL" {
                all.chunks(2).map(|p| p.join("=")).collect()
            } else {
                all
            }
        }
    };
    elements.sort();
    format!("{kind} {elements:?}")
}

fn normalize(result: &redis::RedisResult<Value>, command: &str) -> String {
    match result {
        Err(err) => format!("ERR {:?} {:?}", err.code(), err.detail()),
        Ok(value) => match command {
            "SMEMBERS" | "SINTER" | "SUNION" | "SDIFF" | "HKEYS" | "HVALS" | "HGETALL"
            | "HSCAN" | "SSCAN" => unordered(value, command),
            _ => format!("{value:?}"),
        },
    }
}

fn query(conn: &mut redis::Connection, words: &[String]) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(&words[0]);
    for word in &words[1..] {
        c.arg(word);
    }
    c.query(conn)
}

/// Checks a random pick's reply against the set or hash it came from
/// (`pool`: members, or fields), both servers' replies alike.
fn check_random(
    command: &[String],
    ours: &Value,
    theirs: &Value,
    pool: &HashSet<String>,
    context: &str,
) {
    let shape = |v: &Value| match v {
        Value::Nil => "nil".to_string(),
        Value::BulkString(_) => "bulk".to_string(),
        Value::Array(items) => format!("array {}", items.len()),
        Value::Set(items) => format!("set {}", items.len()),
        other => format!("{other:?}"),
    };
    assert_eq!(shape(ours), shape(theirs), "{context}");
    let picked = |v: &Value| -> Vec<String> {
        match v {
            Value::BulkString(_) => vec![text(v)],
            Value::Array(items) | Value::Set(items) => items
                .iter()
                .flat_map(|item| match item {
                    Value::Array(pair) => pair.iter().map(text).collect(),
                    other => vec![text(other)],
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let with_values = command.len() == 4;
    let negative = command.get(2).is_some_and(|c| c.starts_with('-'));
    let (mine, redis) = (picked(ours), picked(theirs));
    for elements in [&mine, &redis] {
        let names: Vec<&String> = if with_values {
            elements.iter().step_by(2).collect()
        } else {
            elements.iter().collect()
        };
        for name in &names {
            assert!(pool.contains(*name), "{context}: {name} is not in {pool:?}");
        }
        if !negative {
            let distinct: HashSet<&&String> = names.iter().collect();
            assert_eq!(distinct.len(), names.len(), "{context}: repeats");
        }
    }
}

fn pool_of(conn: &mut redis::Connection, command: &[String]) -> HashSet<String> {
    let listing = if command[0] == "HRANDFIELD" {
        "HKEYS"
    } else {
        "SMEMBERS"
    };
    let reply = query(conn, &[listing.to_string(), command[1].clone()]);
    reply
        .ok()
        .and_then(|v| items(&v))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn run_stream(seed: u64, resp3: bool, strata_url: &str, redis_port: u16, steps: usize) {
    let (mut strata, mut redis) = common::connection_pair(strata_url, redis_port, resp3);
    // DEL rather than FLUSHALL: a FLUSHALL racing the warm tier's garbage
    // collection of dropped collections is not what this test is about.
    for conn in [&mut strata, &mut redis] {
        let _: i64 = redis::cmd("DEL").arg(KEYS).query(conn).expect("del");
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut compared = 0;
    for step in 0..steps {
        let command = random_command(&mut rng);
        let context = format!("seed {seed} step {step} resp3={resp3}: {command:?}");
        let name = command[0].as_str();
        if matches!(name, "SPOP" | "SRANDMEMBER" | "HRANDFIELD") {
            let pool = pool_of(&mut strata, &command);
            let ours = query(&mut strata, &command);
            let theirs = query(&mut redis, &command);
            match (&ours, &theirs) {
                (Ok(ours), Ok(theirs)) => {
                    check_random(&command, ours, theirs, &pool, &context);
                    if name == "SPOP" {
                        // Each server popped its own picks: both get the set
                        // strata kept, built afresh, so the streams go on
                        // from one state (encoding included).
                        let left = pool_of(&mut strata, &command);
                        for conn in [&mut strata, &mut redis] {
                            let _ = query(conn, &cmd(&["DEL", &command[1]], vec![]));
                            if !left.is_empty() {
                                let members = left.iter().cloned().collect();
                                let _ = query(conn, &cmd(&["SADD", &command[1]], members));
                            }
                        }
                    }
                }
                _ => assert_eq!(
                    normalize(&ours, name),
                    normalize(&theirs, name),
                    "{context}"
                ),
            }
            continue;
        }
        let ours = normalize(&query(&mut strata, &command), name);
        let theirs = normalize(&query(&mut redis, &command), name);
        assert_eq!(
            ours, theirs,
            "{context}\n strata: {ours}\n  redis: {theirs}"
        );
        compared += 1;
    }
    // The keyspaces end equal too.
    for key in KEYS {
        for listing in ["HGETALL", "SMEMBERS", "TYPE", "OBJECT"] {
            let words: Vec<String> = if listing == "OBJECT" {
                cmd(&["OBJECT", "ENCODING", key], vec![])
            } else {
                cmd(&[listing, key], vec![])
            };
            let ours = normalize(&query(&mut strata, &words), listing);
            let theirs = normalize(&query(&mut redis, &words), listing);
            assert_eq!(ours, theirs, "seed {seed} end: {words:?}");
        }
    }
    assert!(compared > steps / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_and_set_streams_match_redis() {
    let server = common::start().await;
    let redis = RedisServer::start_with(
        &[
            "--hash-max-listpack-entries",
            "512",
            "--hash-max-listpack-value",
            "64",
            "--set-max-intset-entries",
            "512",
        ],
        &[],
    );
    let url = server.url(false);
    let port = redis.port;
    tokio::task::spawn_blocking(move || {
        for seed in 1..=16u64 {
            run_stream(seed, seed % 2 == 0, &url, port, 3000);
        }
    })
    .await
    .expect("streams ran");
}
