//! Differential test of the sorted-set commands: the same seeded random
//! command streams go to strata and to a real `redis-server` started here,
//! and every reply must be equal (ZRANDMEMBER's only in shape). Streams
//! mix infinite scores, exclusive and lex ranges, every option of ZADD and
//! ZRANGE, the STORE forms, wrong-type keys and sets as inputs (once
//! strata has SADD), under RESP2 and RESP3. `tools/test.sh` installs
//! redis-server; without it this test fails.

mod common;

use common::RedisServer;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::Value;

/// A reply reduced to what must match: errors compare by their full text.
fn normalize(result: &redis::RedisResult<Value>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        Err(err) => format!("ERR {:?} {:?}", err.code(), err.detail()),
    }
}

/// ZRANDMEMBER picks at random: only the reply's shape must match.
fn shape(value: &Value) -> String {
    match value {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(shape).collect::<Vec<_>>().join(",")
        ),
        Value::BulkString(_) => "bulk".into(),
        Value::Double(_) => "double".into(),
        other => format!("{other:?}"),
    }
}

/// Small sorted sets with mixed scores (listpack in Redis, where lex
/// ranges walk members in order).
const SMALL: &[&str] = &["z1", "z2", "z3", "d1"];
/// Every member of `lex` scores 0, so lex ranges are well defined at any size.
const LEX: &str = "lex";
/// Skiplist-encoded in Redis: no lex ranges (their answer depends on
/// the skiplist's random levels when scores differ), no ZSCAN (cursors
/// differ), destination `bd`.
const BIG: &[&str] = &["big", "bd"];
const WRONG: &str = "str";
const SET: &str = "s1";

const MEMBERS: &[&str] = &[
    "a", "b", "c", "d", "e", "f", "g", "h", "1", "2", "10", "-1", "", "ab", "abc", "b\u{0}x",
];

const SCORES: &[&str] = &[
    "0", "1", "2", "3", "-1", "-2", "5", "1.5", "-2.5", "0.1", "0.2", "inf", "-inf", "+inf", "1e3",
    "-0", "0x10", "1E-2", "7", "100",
];
const BAD_SCORES: &[&str] = &["abc", "nan", "", " 1", "1 ", "1e400", "(1", "1.2.3"];

const SCORE_BOUNDS: &[&str] = &[
    "-inf", "+inf", "inf", "0", "1", "(1", "2", "(2", "1.5", "(1.5", "3", "(-inf", "(+inf", "-1",
    "5", "(5", "100", "", "(", " 2", "0x2",
];
const BAD_SCORE_BOUNDS: &[&str] = &["abc", "nan", "(nan", "[1", "1x", "((1"];

const LEX_BOUNDS: &[&str] = &[
    "-", "+", "[a", "(a", "[b", "(b", "[c", "(c", "[e", "(h", "[", "(", "[1", "(10", "[zz",
];
const BAD_LEX_BOUNDS: &[&str] = &["a", "", "++", "-x", "{a"];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.gen_range(0..items.len())]
}

fn member(rng: &mut StdRng) -> String {
    pick(rng, MEMBERS).to_string()
}

fn score(rng: &mut StdRng) -> String {
    if rng.gen_range(0..25) == 0 {
        pick(rng, BAD_SCORES).to_string()
    } else {
        pick(rng, SCORES).to_string()
    }
}

fn score_bound(rng: &mut StdRng) -> String {
    if rng.gen_range(0..30) == 0 {
        pick(rng, BAD_SCORE_BOUNDS).to_string()
    } else {
        pick(rng, SCORE_BOUNDS).to_string()
    }
}

fn lex_bound(rng: &mut StdRng) -> String {
    if rng.gen_range(0..30) == 0 {
        pick(rng, BAD_LEX_BOUNDS).to_string()
    } else {
        pick(rng, LEX_BOUNDS).to_string()
    }
}

fn small_int(rng: &mut StdRng) -> String {
    match rng.gen_range(0..12) {
        0 => "x".into(),
        1 => "-100".into(),
        2 => "9223372036854775807".into(),
        _ => rng.gen_range(-6..8).to_string(),
    }
}

/// Keys any command may use: small sets, the lex set, a string, a
/// missing key, now and then a big one or a set.
fn any_key(rng: &mut StdRng, with_big: bool, sets: bool) -> String {
    match rng.gen_range(0..20) {
        0 => WRONG.into(),
        1 => "missing".into(),
        2 => LEX.into(),
        3 | 4 if with_big => pick(rng, BIG).into(),
        5 if sets => SET.into(),
        _ => pick(rng, SMALL).into(),
    }
}

/// Keys lex commands may use: never a big set with mixed scores.
fn lex_key(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => WRONG.into(),
        1 => "missing".into(),
        2..=4 => LEX.into(),
        _ => pick(rng, SMALL).into(),
    }
}

fn range_options(rng: &mut StdRng, store: bool) -> Vec<String> {
    let mut words = Vec::new();
    for _ in 0..rng.gen_range(0..3) {
        match rng.gen_range(0..10) {
            0..=2 if !store || rng.gen_range(0..10) == 0 => words.push("WITHSCORES".into()),
            3 | 4 => {
                words.push("LIMIT".into());
                words.push(small_int(rng));
                words.push(small_int(rng));
            }
            5 => words.push("REV".into()),
            6 => words.push("BYSCORE".into()),
            7 => words.push("BYLEX".into()),
            8 => words.push("limit".into()),
            _ => words.push("withscores".into()),
        }
    }
    words
}

/// Options of ZRANGEBYSCORE and the other older forms: mostly valid ones.
fn legacy_options(rng: &mut StdRng) -> Vec<String> {
    let mut words = Vec::new();
    if rng.gen_range(0..3) == 0 {
        words.push("WITHSCORES".into());
    }
    if rng.gen_range(0..3) == 0 {
        words.push("LIMIT".into());
        words.push(rng.gen_range(-1..4).to_string());
        words.push(rng.gen_range(-1..5).to_string());
    }
    if rng.gen_range(0..15) == 0 {
        words.extend(range_options(rng, false));
    }
    words
}

/// ZRANGE/ZRANGESTORE with options; the ends follow the BY option chosen.
fn zrange(rng: &mut StdRng, store: bool) -> Vec<String> {
    let options = range_options(rng, store);
    let by_lex = options.iter().any(|o| o == "BYLEX");
    let by_score = options.iter().any(|o| o == "BYSCORE");
    let source = if by_lex {
        lex_key(rng)
    } else {
        any_key(rng, true, false)
    };
    let (min, max) = if by_lex {
        (lex_bound(rng), lex_bound(rng))
    } else if by_score {
        (score_bound(rng), score_bound(rng))
    } else {
        (small_int(rng), small_int(rng))
    };
    let mut words = if store {
        let dst = if BIG.contains(&source.as_str()) {
            "bd"
        } else {
            "d1"
        };
        vec!["ZRANGESTORE".into(), dst.into(), source]
    } else {
        vec!["ZRANGE".into(), source]
    };
    words.push(min);
    words.push(max);
    words.extend(options);
    words
}

fn zadd(rng: &mut StdRng, key: String, lex: bool) -> Vec<String> {
    let mut words = vec!["ZADD".to_string(), key];
    for option in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
        if rng.gen_range(0..7) == 0 {
            words.push(option.into());
        }
    }
    for _ in 0..rng.gen_range(1..4) {
        words.push(if lex { "0".into() } else { score(rng) });
        words.push(member(rng));
    }
    if rng.gen_range(0..40) == 0 {
        words.pop();
    }
    words
}

/// ZUNION/ZINTER/ZDIFF, their STORE forms and ZINTERCARD.
fn set_algebra(rng: &mut StdRng, sets: bool) -> Vec<String> {
    let kind = rng.gen_range(0..7);
    let name = [
        "ZUNION",
        "ZINTER",
        "ZDIFF",
        "ZUNIONSTORE",
        "ZINTERSTORE",
        "ZDIFFSTORE",
        "ZINTERCARD",
    ][kind];
    let store = (3..6).contains(&kind);
    let n = rng.gen_range(1..4);
    let keys: Vec<String> = (0..n)
        .map(|_| {
            let with_big = rng.gen_range(0..4) == 0;
            any_key(rng, with_big, sets)
        })
        .collect();
    let mut words = vec![name.to_string()];
    if store {
        let big = keys.iter().any(|k| BIG.contains(&k.as_str()));
        words.push(if big { "bd" } else { "d1" }.into());
    }
    words.push(match rng.gen_range(0..25) {
        0 => "0".into(),
        1 => (n + 1).to_string(),
        2 => "x".into(),
        _ => n.to_string(),
    });
    words.extend(keys);
    if rng.gen_range(0..3) == 0 {
        words.push("WEIGHTS".into());
        for _ in 0..n {
            words.push(["1", "2", "-1", "0", "0.5", "inf", "x"][rng.gen_range(0..7)].into());
        }
    }
    if rng.gen_range(0..3) == 0 {
        words.push("AGGREGATE".into());
        words.push(["SUM", "MIN", "MAX", "avg"][rng.gen_range(0..4)].into());
    }
    if rng.gen_range(0..3) == 0 {
        words.push("WITHSCORES".into());
    }
    if kind == 6 && rng.gen_range(0..2) == 0 {
        words.push("LIMIT".into());
        words.push(["0", "1", "2", "-1", "x"][rng.gen_range(0..5)].into());
    }
    words
}

/// One random sorted-set command.
fn random_command(rng: &mut StdRng, sets: bool) -> Vec<String> {
    let s = |x: &str| x.to_string();
    match rng.gen_range(0..50) {
        0..=3 | 46..=49 => {
            let key = any_key(rng, true, false);
            zadd(rng, key, false)
        }
        4 | 43..=45 => zadd(rng, LEX.into(), true),
        5 => vec![
            s("ZINCRBY"),
            any_key(rng, true, false),
            score(rng),
            member(rng),
        ],
        6 => vec![
            s("ZREM"),
            any_key(rng, true, false),
            member(rng),
            member(rng),
        ],
        7 => vec![s("ZCARD"), any_key(rng, true, false)],
        8 => vec![s("ZSCORE"), any_key(rng, true, false), member(rng)],
        9 => vec![
            s("ZMSCORE"),
            any_key(rng, true, false),
            member(rng),
            member(rng),
        ],
        10 => vec![s("ZRANK"), any_key(rng, true, false), member(rng)],
        11 => vec![s("ZREVRANK"), any_key(rng, true, false), member(rng)],
        12..=14 => zrange(rng, false),
        15 => zrange(rng, true),
        16 | 17 => {
            let mut c = vec![
                s(["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"][rng.gen_range(0..2)]),
                any_key(rng, true, false),
                score_bound(rng),
                score_bound(rng),
            ];
            c.extend(legacy_options(rng));
            c
        }
        18 => {
            let mut c = vec![
                s(["ZRANGEBYLEX", "ZREVRANGEBYLEX"][rng.gen_range(0..2)]),
                lex_key(rng),
                lex_bound(rng),
                lex_bound(rng),
            ];
            c.extend(
                legacy_options(rng)
                    .into_iter()
                    .filter(|o| o != "WITHSCORES"),
            );
            c
        }
        19 => {
            let mut c = vec![
                s("ZREVRANGE"),
                any_key(rng, true, false),
                small_int(rng),
                small_int(rng),
            ];
            if rng.gen_range(0..2) == 0 {
                c.push("WITHSCORES".into());
            }
            c
        }
        20 => vec![
            s("ZCOUNT"),
            any_key(rng, true, false),
            score_bound(rng),
            score_bound(rng),
        ],
        21 => vec![s("ZLEXCOUNT"), lex_key(rng), lex_bound(rng), lex_bound(rng)],
        22 | 23 => {
            let mut c = vec![
                s(["ZPOPMIN", "ZPOPMAX"][rng.gen_range(0..2)]),
                any_key(rng, true, false),
            ];
            if rng.gen_range(0..2) == 0 {
                c.push(small_int(rng));
            }
            c
        }
        24 => {
            let n = rng.gen_range(1..4);
            let mut c = vec![s("ZMPOP"), n.to_string()];
            c.extend((0..n).map(|_| any_key(rng, true, false)));
            c.push(s(["MIN", "MAX", "max", "middle"][rng.gen_range(0..4)]));
            if rng.gen_range(0..2) == 0 {
                c.push(s("COUNT"));
                c.push(small_int(rng));
            }
            c
        }
        25 => vec![
            s("ZREMRANGEBYRANK"),
            any_key(rng, true, false),
            small_int(rng),
            small_int(rng),
        ],
        26 => vec![
            s("ZREMRANGEBYSCORE"),
            any_key(rng, true, false),
            score_bound(rng),
            score_bound(rng),
        ],
        27 => vec![
            s("ZREMRANGEBYLEX"),
            lex_key(rng),
            lex_bound(rng),
            lex_bound(rng),
        ],
        28..=32 => set_algebra(rng, sets),
        33 => {
            let mut c = vec![s("ZRANDMEMBER"), any_key(rng, true, false)];
            if rng.gen_range(0..4) > 0 {
                c.push(small_int(rng));
                if rng.gen_range(0..2) == 0 {
                    c.push(s("WITHSCORES"));
                }
            }
            c
        }
        34 => {
            let key = if rng.gen_range(0..5) == 0 {
                WRONG.into()
            } else {
                lex_key(rng)
            };
            let mut c = vec![
                s("ZSCAN"),
                key,
                s(["0", "0", "7", "x"][rng.gen_range(0..4)]),
            ];
            match rng.gen_range(0..5) {
                0 => c.extend([s("MATCH"), s("*b*")]),
                1 => c.extend([s("COUNT"), small_int(rng)]),
                2 => c.push(s("COUNT")),
                _ => {}
            }
            c
        }
        35 => vec![s("OBJECT"), s("ENCODING"), any_key(rng, true, false)],
        36 => vec![s("TYPE"), any_key(rng, true, false)],
        37 if sets => vec![s("SADD"), s(SET), member(rng), member(rng)],
        38 if rng.gen_range(0..3) == 0 => vec![s("DEL"), pick(rng, SMALL).into()],
        39 => vec![s("SET"), s(WRONG), s("v")],
        40 => vec![
            s("ZADD"),
            s("big"),
            score(rng),
            format!("m{}", rng.gen_range(0..300)),
        ],
        41 => vec![s("EXISTS"), any_key(rng, true, false)],
        _ => {
            let key = any_key(rng, true, false);
            vec![s("ZRANGE"), key, s("0"), s("-1"), s("WITHSCORES")]
        }
    }
}

fn fill_big(conn: &mut redis::Connection) {
    let mut cmd = redis::cmd("ZADD");
    cmd.arg("big");
    for i in 0..150 {
        cmd.arg(i % 17).arg(format!("m{i}"));
    }
    let _: i64 = cmd.query(conn).expect("ZADD big");
    let _: () = redis::cmd("SET")
        .arg(WRONG)
        .arg("v")
        .query(conn)
        .expect("SET");
}

fn run_stream(seed: u64, resp3: bool, strata_url: &str, redis_port: u16, steps: usize) -> usize {
    let (mut strata, mut redis) = common::connection_pair(strata_url, redis_port, resp3);
    for conn in [&mut strata, &mut redis] {
        let _: () = redis::cmd("FLUSHALL").query(conn).expect("flushall");
        fill_big(conn);
    }
    // Sets take part once strata has them.
    let sets = !matches!(
        redis::cmd("COMMAND").arg("INFO").arg("sadd").query::<Value>(&mut strata),
        Ok(Value::Array(ref items)) if items.first() == Some(&Value::Nil)
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let mut compared = 0;
    for step in 0..steps {
        let command = random_command(&mut rng, sets);
        let mut cmd = redis::cmd(&command[0]);
        for word in &command[1..] {
            cmd.arg(word.as_bytes());
        }
        let ours = cmd.query::<Value>(&mut strata);
        let theirs = cmd.query::<Value>(&mut redis);
        let (ours, theirs) = if command[0] == "ZRANDMEMBER" {
            let view = |r: &redis::RedisResult<Value>| match r {
                Ok(v) => shape(v),
                Err(_) => normalize(r),
            };
            (view(&ours), view(&theirs))
        } else {
            (normalize(&ours), normalize(&theirs))
        };
        assert_eq!(
            ours, theirs,
            "seed {seed} step {step} resp3={resp3}: {command:?}\n strata: {ours}\n  redis: {theirs}"
        );
        compared += 1;
    }
    // The end states match too.
    for key in SMALL.iter().chain(BIG).chain([&LEX]) {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(*key).arg(0).arg(-1).arg("WITHSCORES");
        let ours = normalize(&cmd.query::<Value>(&mut strata));
        let theirs = normalize(&cmd.query::<Value>(&mut redis));
        assert_eq!(ours, theirs, "seed {seed}: final {key}");
    }
    compared
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorted_set_streams_match_redis() {
    let server = common::start().await;
    let redis = RedisServer::start();
    let url = server.url(false);
    let port = redis.port;
    let compared = tokio::task::spawn_blocking(move || {
        (1..=12u64)
            .map(|seed| run_stream(seed, seed % 2 == 0, &url, port, 1500))
            .sum::<usize>()
    })
    .await
    .expect("streams ran");
    assert_eq!(compared, 12 * 1500);
}
