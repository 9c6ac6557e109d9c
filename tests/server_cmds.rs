//! The server family (DBSIZE, FLUSHDB/FLUSHALL, SWAPDB, TIME, LASTSAVE, SAVE,
//! BGSAVE, WAIT, SHUTDOWN, MONITOR, DEBUG, INFO, CONFIG, SLOWLOG, COMMAND)
//! against Redis 7's replies, shapes and error texts, each under RESP2 and RESP3.

#[macro_use]
mod common;

use common::*;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Value, VerbatimFormat};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

both_protocols!(
    dbsize_and_flush,
    flush_errors,
    swapdb,
    time_and_lastsave,
    save_and_bgsave,
    wait_answers_at_once,
    shutdown_errors,
    debug_object_and_errors,
    debug_sleep_blocks_the_caller,
    info_sections,
    info_fields,
    info_keyspace_commandstats_errorstats,
    config_get_patterns,
    config_set_back_what_config_get_gives,
    config_set_applies_atomically,
    config_set_requirepass_turns_auth_on,
    config_resetstat_and_rewrite,
    slowlog,
    command_count_list_and_all,
    command_info_shape,
    command_docs_shape,
    command_getkeys,
    help_replies,
    encoding_thresholds_follow_config_set,
    memory_usage,
    function_list_and_flush_without_scripting,
);

// ---------------------------------------------------------------- helpers

fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        other => panic!("expected an array or set, got {other:?}"),
    }
}

fn strings(value: Value) -> Vec<String> {
    items(value).iter().map(as_text).collect()
}

/// A RESP3 map, or the flat array RESP2 sends instead.
fn pairs(value: Value, resp3: bool) -> Vec<(Value, Value)> {
    match value {
        Value::Map(pairs) => {
            assert!(resp3, "a map reply under RESP2");
            pairs
        }
        Value::Array(flat) => {
            assert!(!resp3, "a flat array where RESP3 wants a map");
            assert_eq!(flat.len() % 2, 0, "odd map array {flat:?}");
            let mut flat = flat.into_iter();
            let mut out = Vec::new();
            while let (Some(key), Some(value)) = (flat.next(), flat.next()) {
                out.push((key, value));
            }
            out
        }
        other => panic!("expected a map, got {other:?}"),
    }
}

fn get<'a>(pairs: &'a [(Value, Value)], key: &str) -> &'a Value {
    pairs
        .iter()
        .find(|(k, _)| as_text(k) == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key:?} in {pairs:?}"))
}

/// An INFO reply: a verbatim `txt` string in RESP3, a bulk string in RESP2.
async fn info(con: &mut Conn, resp3: bool, sections: &[&str]) -> String {
    let mut args = vec!["INFO"];
    args.extend_from_slice(sections);
    match q(con, &args).await {
        Value::VerbatimString { format, text } => {
            assert!(resp3, "verbatim string under RESP2");
            assert_eq!(format, VerbatimFormat::Text);
            text
        }
        Value::BulkString(data) => {
            assert!(!resp3, "INFO must be a verbatim string under RESP3");
            String::from_utf8(data).expect("INFO is text")
        }
        other => panic!("unexpected INFO reply {other:?}"),
    }
}

fn headers(info: &str) -> Vec<&str> {
    info.split("\r\n")
        .filter_map(|line| line.strip_prefix("# "))
        .collect()
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.split("\r\n")
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
}

fn number(info: &str, name: &str) -> i64 {
    field(info, name)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("INFO has no integer {name}: {info}"))
}

fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

// ---------------------------------------------------------------- keyspace

async fn dbsize_and_flush(resp3: bool) {
    let (server, mut con) = start_client(resp3).await;
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 0);
    for key in ["a", "b", "c"] {
        ok(&mut con, &["SET", key, "1"]).await;
    }
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 3);

    let mut other = server.client(resp3).await;
    ok(&mut other, &["SELECT", "1"]).await;
    ok(&mut other, &["SET", "x", "1"]).await;
    assert_eq!(int(&mut other, &["DBSIZE"]).await, 1);

    // FLUSHDB only empties the caller's database.
    ok(&mut con, &["FLUSHDB"]).await;
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 0);
    assert_eq!(int(&mut other, &["DBSIZE"]).await, 1);

    ok(&mut con, &["SET", "a", "1"]).await;
    ok(&mut con, &["FLUSHALL", "SYNC"]).await;
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 0);
    assert_eq!(int(&mut other, &["DBSIZE"]).await, 0);

    // ASYNC drops the old contents elsewhere; the keys are gone at once.
    ok(&mut con, &["SET", "a", "1"]).await;
    ok(&mut con, &["flushdb", "async"]).await;
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 0);
    ok(&mut other, &["SET", "x", "1"]).await;
    ok(&mut con, &["FLUSHALL", "ASYNC"]).await;
    assert_eq!(int(&mut other, &["DBSIZE"]).await, 0);
}

async fn flush_errors(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    ok(&mut con, &["SET", "a", "1"]).await;
    for args in [
        &["FLUSHALL", "bogus"][..],
        &["FLUSHALL", "ASYNC", "SYNC"],
        &["FLUSHDB", "now"],
        &["FLUSHDB", "SYNC", "SYNC"],
    ] {
        assert_eq!(err(&mut con, args).await, "ERR syntax error", "{args:?}");
    }
    assert_eq!(
        int(&mut con, &["DBSIZE"]).await,
        1,
        "a failed flush flushes nothing"
    );
}

async fn swapdb(resp3: bool) {
    let (server, mut con) = start_client(resp3).await;
    ok(&mut con, &["SET", "in0", "zero"]).await;
    let mut db1 = server.client(resp3).await;
    ok(&mut db1, &["SELECT", "1"]).await;
    ok(&mut db1, &["SET", "in1", "one"]).await;
    ok(&mut db1, &["SET", "also1", "one"]).await;

    ok(&mut con, &["SWAPDB", "0", "1"]).await;
    // Connections stay on their index and see the other contents.
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 2);
    assert_eq!(q(&mut con, &["GET", "in1"]).await, bulk("one"));
    assert_eq!(int(&mut db1, &["DBSIZE"]).await, 1);
    assert_eq!(q(&mut db1, &["GET", "in0"]).await, bulk("zero"));

    ok(&mut con, &["SWAPDB", "1", "1"]).await;
    assert_eq!(int(&mut db1, &["DBSIZE"]).await, 1);

    assert_eq!(
        err(&mut con, &["SWAPDB", "a", "1"]).await,
        "ERR invalid first DB index"
    );
    assert_eq!(
        err(&mut con, &["SWAPDB", "1", "a"]).await,
        "ERR invalid second DB index"
    );
    assert_eq!(
        err(&mut con, &["SWAPDB", "99999999999", "1"]).await,
        "ERR invalid first DB index"
    );
    for args in [
        &["SWAPDB", "1", "16"][..],
        &["SWAPDB", "-1", "1"],
        &["SWAPDB", "0", "-1"],
    ] {
        assert_eq!(
            err(&mut con, args).await,
            "ERR DB index is out of range",
            "{args:?}"
        );
    }
    assert_eq!(
        err(&mut con, &["SWAPDB", "0"]).await,
        "ERR wrong number of arguments for 'swapdb' command"
    );
}

// ---------------------------------------------------------------- time and persistence

async fn time_and_lastsave(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let before = unix_secs();
    let parts = items(q(&mut con, &["TIME"]).await);
    assert_eq!(parts.len(), 2);
    assert!(
        parts
            .iter()
            .all(|part| matches!(part, Value::BulkString(_))),
        "{parts:?}"
    );
    let secs: i64 = as_text(&parts[0]).parse().expect("seconds");
    let micros: i64 = as_text(&parts[1]).parse().expect("microseconds");
    assert!((before..=before + 2).contains(&secs), "{secs} vs {before}");
    assert!((0..1_000_000).contains(&micros));

    let lastsave = int(&mut con, &["LASTSAVE"]).await;
    assert!(
        lastsave <= unix_secs() && lastsave > before - 60,
        "{lastsave}"
    );
    assert_eq!(
        err(&mut con, &["LASTSAVE", "x"]).await,
        "ERR wrong number of arguments for 'lastsave' command"
    );
}

async fn save_and_bgsave(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    ok(&mut con, &["SAVE"]).await;
    let saved = int(&mut con, &["LASTSAVE"]).await;
    assert!((unix_secs() - 2..=unix_secs()).contains(&saved));

    assert_eq!(
        q(&mut con, &["BGSAVE"]).await,
        status("Background saving started")
    );
    assert_eq!(
        q(&mut con, &["BGSAVE", "SCHEDULE"]).await,
        status("Background saving started")
    );
    assert_eq!(err(&mut con, &["BGSAVE", "foo"]).await, "ERR syntax error");
    assert_eq!(
        err(&mut con, &["BGSAVE", "SCHEDULE", "x"]).await,
        "ERR syntax error"
    );

    let lastsave = int(&mut con, &["LASTSAVE"]).await;
    let persistence = info(&mut con, resp3, &["persistence"]).await;
    assert_eq!(number(&persistence, "rdb_last_save_time"), lastsave);
    assert_eq!(field(&persistence, "rdb_bgsave_in_progress"), Some("0"));
    // The warm tier plays the part of Redis's append-only file.
    assert_eq!(field(&persistence, "aof_enabled"), Some("1"));
}

async fn wait_answers_at_once(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    assert_eq!(int(&mut con, &["WAIT", "0", "0"]).await, 0);
    // No replica will ever acknowledge: the answer comes without blocking.
    let started = Instant::now();
    assert_eq!(int(&mut con, &["WAIT", "1", "0"]).await, 0);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        err(&mut con, &["WAIT", "0", "-1"]).await,
        "ERR timeout is negative"
    );
    assert_eq!(
        err(&mut con, &["WAIT", "a", "0"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut con, &["WAIT", "0", "a"]).await,
        "ERR timeout is not an integer or out of range"
    );
}

async fn shutdown_errors(resp3: bool) {
    let (server, mut con) = start_client(resp3).await;
    assert_eq!(
        err(&mut con, &["SHUTDOWN", "ABORT"]).await,
        "ERR No shutdown in progress."
    );
    for args in [
        &["SHUTDOWN", "foo"][..],
        &["SHUTDOWN", "NOSAVE", "SAVE"],
        &["SHUTDOWN", "ABORT", "NOW"],
        &["SHUTDOWN", "FORCE", "ABORT"],
    ] {
        assert_eq!(err(&mut con, args).await, "ERR syntax error", "{args:?}");
    }
    assert!(!server.app.state().is_shutting_down());
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 0);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let server = common::start().await;
    let mut con = server.client(false).await;
    ok(&mut con, &["SET", "a", "1"]).await;
    // No reply: the connection just closes.
    assert!(raw(&mut con, &[b"SHUTDOWN", b"NOSAVE", b"NOW", b"FORCE"])
        .await
        .is_err());
    assert!(server.app.state().is_shutting_down());
    tokio::time::timeout(Duration::from_secs(5), server.app.wait())
        .await
        .expect("the server stops after SHUTDOWN");
}

#[tokio::test]
async fn monitor_streams_commands() {
    let server = common::start().await;
    let stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connects");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"MONITOR\r\n").await.expect("writes");
    let reply = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("MONITOR answers")
        .expect("reads");
    assert_eq!(reply.as_deref(), Some("+OK"));

    let mut con = server.client(false).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        ok(&mut con, &["SET", "watched", "v"]).await;
        let line = tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await;
        if let Ok(Ok(Some(line))) = line {
            if line.contains(r#""SET" "watched" "v""#) || line.contains(r#""set" "watched" "v""#) {
                assert!(line.starts_with('+'), "{line}");
                assert!(line.contains(" [0 127.0.0.1:"), "{line}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "MONITOR never showed the command"
        );
    }
}

// ---------------------------------------------------------------- DEBUG

async fn debug_object_and_errors(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    ok(&mut con, &["SET", "foo", "bar"]).await;
    ok(&mut con, &["SET", "n", "123"]).await;
    ok(&mut con, &["SET", "long", &"a".repeat(100)]).await;

    let line = as_text(&q(&mut con, &["DEBUG", "OBJECT", "foo"]).await);
    assert!(line.starts_with("Value at:0x"), "{line}");
    assert!(
        line.contains(" refcount:1 encoding:embstr serializedlength:4 lru:"),
        "{line}"
    );
    assert!(line.contains(" lru_seconds_idle:"), "{line}");
    let line = as_text(&q(&mut con, &["DEBUG", "OBJECT", "n"]).await);
    assert!(line.contains(" encoding:int serializedlength:2 "), "{line}");
    let line = as_text(&q(&mut con, &["debug", "object", "long"]).await);
    assert!(line.contains(" encoding:raw "), "{line}");

    assert_eq!(
        err(&mut con, &["DEBUG", "OBJECT", "nokey"]).await,
        "ERR no such key"
    );
    assert_eq!(
        err(&mut con, &["DEBUG", "OBJECT", "foo", "extra"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'OBJECT'. Try DEBUG HELP."
    );
    assert_eq!(
        err(&mut con, &["DEBUG", "RELOAD"]).await,
        "ERR DEBUG subcommand 'RELOAD' is not supported by strata"
    );
    assert_eq!(
        err(&mut con, &["DEBUG", "jmap"]).await,
        "ERR DEBUG subcommand 'jmap' is not supported by strata"
    );
    assert_eq!(
        err(&mut con, &["DEBUG"]).await,
        "ERR wrong number of arguments for 'debug' command"
    );
    assert_eq!(
        err(&mut con, &["DEBUG", "SLEEP", "abc"]).await,
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut con, &["DEBUG", "SLEEP", "inf"]).await,
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut con, &["DEBUG", "SLEEP", "1e300"]).await,
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut con, &["DEBUG", "SLEEP"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'SLEEP'. Try DEBUG HELP."
    );
}

async fn debug_sleep_blocks_the_caller(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let started = Instant::now();
    ok(&mut con, &["DEBUG", "SLEEP", "0.2"]).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    // Negative sleeps nothing, as in Redis.
    ok(&mut con, &["DEBUG", "SLEEP", "-1"]).await;
    ok(&mut con, &["DEBUG", "SLEEP", "0"]).await;
}

// ---------------------------------------------------------------- INFO

const DEFAULT: &[&str] = &[
    "Server",
    "Clients",
    "Memory",
    "Persistence",
    "Stats",
    "Replication",
    "CPU",
    "Modules",
    "Errorstats",
    "Cluster",
    "Keyspace",
    "Tiers",
    "Source",
];

const ALL: &[&str] = &[
    "Server",
    "Clients",
    "Memory",
    "Persistence",
    "Stats",
    "Replication",
    "CPU",
    "Modules",
    "Commandstats",
    "Errorstats",
    "Latencystats",
    "Cluster",
    "Keyspace",
    "Tiers",
    "Source",
];

async fn info_sections(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let default = info(&mut con, resp3, &[]).await;
    assert_eq!(headers(&default), DEFAULT);
    assert!(
        default.starts_with("# Server\r\nredis_version:7.0.15\r\n"),
        "{default}"
    );
    // A blank line between sections, CRLF everywhere.
    assert!(default.contains("\r\n\r\n# Clients\r\n"));
    assert!(!default.replace("\r\n", "").contains('\n'));
    assert!(default.ends_with("\r\n"));

    assert_eq!(headers(&info(&mut con, resp3, &["default"]).await), DEFAULT);
    assert_eq!(headers(&info(&mut con, resp3, &["all"]).await), ALL);
    assert_eq!(headers(&info(&mut con, resp3, &["everything"]).await), ALL);
    assert_eq!(headers(&info(&mut con, resp3, &["ALL"]).await), ALL);

    // Several sections print in Redis's order, not the arguments'.
    assert_eq!(
        headers(&info(&mut con, resp3, &["keyspace", "server", "CPU"]).await),
        ["Server", "CPU", "Keyspace"]
    );
    assert_eq!(
        headers(&info(&mut con, resp3, &["commandstats", "default"]).await),
        ALL.iter()
            .filter(|s| **s != "Latencystats")
            .copied()
            .collect::<Vec<_>>()
    );
    assert_eq!(info(&mut con, resp3, &["bogus"]).await, "");
    assert_eq!(
        info(&mut con, resp3, &["keyspace"]).await,
        "# Keyspace\r\n",
        "an empty keyspace has a header only"
    );
    assert_eq!(
        info(&mut con, resp3, &["cluster", "bogus"]).await,
        "# Cluster\r\ncluster_enabled:0\r\n"
    );
}

async fn info_fields(resp3: bool) {
    let (server, mut con) = start_client(resp3).await;
    let mut other = server.client(resp3).await;
    q(&mut other, &["PING"]).await;
    let all = info(&mut con, resp3, &["all"]).await;

    assert_eq!(field(&all, "redis_version"), Some("7.0.15"));
    assert_eq!(
        field(&all, "strata_version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(field(&all, "redis_mode"), Some("standalone"));
    assert_eq!(number(&all, "tcp_port"), i64::from(server.addr.port()));
    assert_eq!(number(&all, "process_id"), i64::from(std::process::id()));
    let run_id = field(&all, "run_id").expect("run_id");
    assert_eq!(run_id.len(), 40);
    assert!(run_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(number(&all, "arch_bits"), 64);
    assert!(number(&all, "uptime_in_seconds") >= 0);
    assert_eq!(number(&all, "uptime_in_days"), 0);
    assert_eq!(number(&all, "hz"), 10);
    assert!(field(&all, "os").is_some());
    assert!(field(&all, "executable").is_some());

    assert_eq!(number(&all, "connected_clients"), 2);
    assert_eq!(number(&all, "maxclients"), 10_000);
    assert_eq!(number(&all, "blocked_clients"), 0);

    assert!(number(&all, "used_memory") > 0);
    assert!(field(&all, "used_memory_human").is_some_and(|v| v.ends_with(['B', 'K', 'M', 'G'])));
    assert_eq!(number(&all, "maxmemory"), 0);
    assert_eq!(field(&all, "maxmemory_human"), Some("0B"));
    assert_eq!(field(&all, "maxmemory_policy"), Some("allkeys-lru"));
    let ratio: f64 = field(&all, "mem_fragmentation_ratio")
        .and_then(|v| v.parse().ok())
        .expect("a ratio");
    assert!(ratio > 0.0);

    assert_eq!(number(&all, "loading"), 0);
    assert_eq!(number(&all, "rdb_bgsave_in_progress"), 0);
    assert!(number(&all, "rdb_changes_since_last_save") >= 0);

    assert!(number(&all, "total_connections_received") >= 2);
    assert!(number(&all, "total_commands_processed") >= 1);
    assert!(number(&all, "instantaneous_ops_per_sec") >= 0);
    assert!(number(&all, "total_net_input_bytes") >= 0);
    assert_eq!(number(&all, "evicted_keys"), 0);
    assert_eq!(number(&all, "rejected_connections"), 0);

    assert_eq!(field(&all, "role"), Some("master"));
    assert_eq!(number(&all, "connected_slaves"), 0);
    assert_eq!(field(&all, "master_replid").map(str::len), Some(40));

    for cpu in ["used_cpu_sys", "used_cpu_user"] {
        let value = field(&all, cpu).expect("cpu time");
        let (secs, micros) = value.split_once('.').expect("secs.micros");
        assert!(
            secs.parse::<u64>().is_ok() && micros.len() == 6,
            "{cpu}:{value}"
        );
    }

    // Hits, misses, changes and expiries come from the keyspace.
    let stats = info(&mut con, resp3, &["stats"]).await;
    let (hits, misses) = (
        number(&stats, "keyspace_hits"),
        number(&stats, "keyspace_misses"),
    );
    ok(&mut con, &["SET", "k", "v"]).await;
    q(&mut con, &["GET", "k"]).await;
    q(&mut con, &["GET", "nokey"]).await;
    let stats = info(&mut con, resp3, &["stats", "persistence"]).await;
    assert_eq!(number(&stats, "keyspace_hits"), hits + 1);
    assert_eq!(number(&stats, "keyspace_misses"), misses + 1);
    assert!(number(&stats, "rdb_changes_since_last_save") >= 1);

    ok(&mut con, &["SET", "short", "v", "PX", "1"]).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while number(&info(&mut con, resp3, &["stats"]).await, "expired_keys") == 0 {
        q(&mut con, &["GET", "short"]).await;
        assert!(Instant::now() < deadline, "expired_keys never moved");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn info_keyspace_commandstats_errorstats(resp3: bool) {
    let (server, mut con) = start_client(resp3).await;
    ok(&mut con, &["SET", "a", "1"]).await;
    ok(&mut con, &["SET", "b", "1", "EX", "1000"]).await;
    let mut db3 = server.client(resp3).await;
    ok(&mut db3, &["SELECT", "3"]).await;
    ok(&mut db3, &["SET", "c", "1"]).await;

    let keyspace = info(&mut con, resp3, &["keyspace"]).await;
    let lines: Vec<&str> = keyspace.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "# Keyspace");
    assert_eq!(lines.len(), 3, "{keyspace}");
    let db0 = field(&keyspace, "db0").expect("db0");
    assert!(db0.starts_with("keys=2,expires=1,avg_ttl="), "{db0}");
    let avg_ttl: u64 = db0
        .rsplit('=')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("avg_ttl");
    assert!(avg_ttl <= 1_000_000);
    assert_eq!(field(&keyspace, "db3"), Some("keys=1,expires=0,avg_ttl=0"));

    ok(&mut con, &["CONFIG", "RESETSTAT"]).await;
    q(&mut con, &["GET", "a"]).await;
    q(&mut con, &["GET", "a"]).await;
    let _ = err(&mut con, &["GET"]).await;
    let _ = err(&mut con, &["INCR", "a", "extra"]).await;
    let _ = err(&mut con, &["NOSUCHCOMMAND"]).await;
    let _ = err(&mut con, &["SWAPDB", "a", "b"]).await;
    q(&mut con, &["CONFIG", "GET", "port"]).await;
    let stats = info(&mut con, resp3, &["commandstats"]).await;
    let get = field(&stats, "cmdstat_get").expect("cmdstat_get");
    assert!(get.starts_with("calls=2,usec="), "{get}");
    assert!(get.contains(",usec_per_call="), "{get}");
    assert!(get.ends_with(",rejected_calls=1,failed_calls=0"), "{get}");
    let swapdb = field(&stats, "cmdstat_swapdb").expect("cmdstat_swapdb");
    assert!(swapdb.starts_with("calls=1,") && swapdb.ends_with("rejected_calls=0,failed_calls=1"));
    // Subcommands are counted under `container|sub`; unused commands are left out.
    assert!(field(&stats, "cmdstat_config|get").is_some_and(|v| v.starts_with("calls=1,")));
    assert!(field(&stats, "cmdstat_set").is_none());
    assert!(field(&stats, "cmdstat_nosuchcommand").is_none());

    let errors = info(&mut con, resp3, &["errorstats"]).await;
    assert_eq!(field(&errors, "errorstat_ERR"), Some("count=4"));
    ok(&mut con, &["SET", "s", "text"]).await;
    let _ = err(&mut con, &["INCR", "s"]).await;
    let stats = info(&mut con, resp3, &["errorstats", "stats"]).await;
    assert_eq!(field(&stats, "errorstat_ERR"), Some("count=5"));
    assert_eq!(number(&stats, "total_error_replies"), 5);
}

// ---------------------------------------------------------------- CONFIG

async fn config_get_patterns(resp3: bool) {
    let (server, mut con) = start_client(resp3).await;
    let all = pairs(q(&mut con, &["CONFIG", "GET", "*"]).await, resp3);
    assert!(all.len() > 50, "{}", all.len());
    for (name, value) in &all {
        assert!(matches!(name, Value::BulkString(_)), "{name:?}");
        assert!(matches!(value, Value::BulkString(_)), "{value:?}");
    }
    let names: Vec<String> = all.iter().map(|(k, _)| as_text(k)).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "each parameter once");

    let memory = pairs(q(&mut con, &["CONFIG", "GET", "maxmemory*"]).await, resp3);
    let mut memory_names: Vec<String> = memory.iter().map(|(k, _)| as_text(k)).collect();
    memory_names.sort();
    assert!(memory_names.contains(&"maxmemory".to_string()));
    assert!(memory_names.contains(&"maxmemory-policy".to_string()));
    assert!(memory_names.contains(&"maxmemory-samples".to_string()));
    assert!(memory_names.iter().all(|n| n.starts_with("maxmemory")));
    assert_eq!(as_text(get(&memory, "maxmemory")), "0");
    assert_eq!(as_text(get(&memory, "maxmemory-policy")), "allkeys-lru");

    // Patterns match without regard to case; a plain name is answered as spelled.
    let upper = pairs(q(&mut con, &["CONFIG", "GET", "MAXMEMORY-P*"]).await, resp3);
    assert_eq!(upper.len(), 1);
    assert_eq!(as_text(&upper[0].0), "maxmemory-policy");
    let exact = pairs(
        q(&mut con, &["CONFIG", "GET", "MAXMEMORY", "maxmemory"]).await,
        resp3,
    );
    assert_eq!(exact.len(), 1, "{exact:?}");
    assert_eq!(as_text(&exact[0].0), "MAXMEMORY");

    // Several patterns, overlapping: each parameter once.
    let several = pairs(
        q(
            &mut con,
            &["CONFIG", "GET", "port", "maxmemory", "max*", "port"],
        )
        .await,
        resp3,
    );
    let several_names: Vec<String> = several.iter().map(|(k, _)| as_text(k)).collect();
    assert_eq!(several_names.iter().filter(|n| *n == "port").count(), 1);
    assert_eq!(
        several_names.iter().filter(|n| *n == "maxmemory").count(),
        1
    );
    assert!(several_names.contains(&"maxclients".to_string()));

    // The port actually bound, not the 0 the test asked for.
    assert_eq!(
        as_text(get(&several, "port")),
        server.addr.port().to_string()
    );
    let compat = pairs(
        q(&mut con, &["CONFIG", "GET", "save", "appendonly"]).await,
        resp3,
    );
    assert_eq!(as_text(get(&compat, "appendonly")), "no");
    assert_eq!(as_text(get(&compat, "save")), "");

    assert!(pairs(q(&mut con, &["CONFIG", "GET", "nosuch"]).await, resp3).is_empty());
    assert!(pairs(q(&mut con, &["CONFIG", "GET", "nosuch*"]).await, resp3).is_empty());
    assert_eq!(
        err(&mut con, &["CONFIG", "GET"]).await,
        "ERR wrong number of arguments for 'config|get' command"
    );
}

/// Every pair CONFIG GET * gives can be set back, except the parameters
/// Redis fixes at startup, which are refused whatever the value (Redis's
/// tests/unit/introspection.tcl "CONFIG sanity" and "CONFIG SET set
/// immutable"); strata's own startup parameters take only the value they
/// have. Hidden parameters answer to their exact name only; aliases are
/// listed under both names.
async fn config_set_back_what_config_get_gives(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    // Redis 7.0's immutable parameters among those strata answers.
    let fixed = [
        "databases",
        "dir",
        "appendfilename",
        "appenddirname",
        "daemonize",
        "pidfile",
        "logfile",
        "io-threads",
        "tcp-backlog",
        "unixsocket",
        "cluster-enabled",
        "rdbchecksum",
        "enable-debug-command",
        "supervised",
        "syslog-enabled",
        "always-show-logo",
        "set-proc-title",
        "replicaof",
        "slaveof",
    ];
    let all = pairs(q(&mut con, &["CONFIG", "GET", "*"]).await, resp3);
    for (name, value) in &all {
        let (name, value) = (as_text(name), as_text(value));
        let set = ["CONFIG", "SET", name.as_str(), value.as_str()];
        if fixed.contains(&name.as_str()) {
            assert_eq!(
                err(&mut con, &set).await,
                format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
                )
            );
        } else {
            ok(&mut con, &set).await;
            assert_eq!(config_value(&mut con, resp3, &name).await, value, "{name}");
        }
    }
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "daemonize", "yes"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "write-mode", "through"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'write-mode') - can't set immutable config"
    );

    let names: Vec<String> = all.iter().map(|(k, _)| as_text(k)).collect();
    assert!(!names.contains(&"key-load-delay".to_string()));
    assert_eq!(config_value(&mut con, resp3, "key-load-delay").await, "0");
    let of = pairs(q(&mut con, &["CONFIG", "GET", "*of"]).await, resp3);
    let of: Vec<String> = of.iter().map(|(k, _)| as_text(k)).collect();
    assert!(
        of.contains(&"replicaof".to_string()) && of.contains(&"slaveof".to_string()),
        "{of:?}"
    );

    // maxmemory-clients: a memory value or a percentage up to 100%, checked
    // before anything changes.
    ok(&mut con, &["CONFIG", "SET", "maxmemory-clients", "10%"]).await;
    assert_eq!(
        err(
            &mut con,
            &["CONFIG", "SET", "maxmemory", "10000001", "maxmemory-clients", "200%", "client-query-buffer-limit", "invalid"]
        )
        .await,
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - percentage argument must be less or equal to 100"
    );
    assert_eq!(
        config_value(&mut con, resp3, "maxmemory-clients").await,
        "10%"
    );
    assert_eq!(config_value(&mut con, resp3, "maxmemory").await, "0");
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "maxmemory-clients", "lots"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - argument must be a memory or percent value"
    );
}

async fn config_value(con: &mut Conn, resp3: bool, name: &str) -> String {
    let found = pairs(q(con, &["CONFIG", "GET", name]).await, resp3);
    as_text(get(&found, name))
}

async fn config_set_applies_atomically(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    ok(&mut con, &["CONFIG", "SET", "maxmemory", "10mb"]).await;
    assert_eq!(config_value(&mut con, resp3, "maxmemory").await, "10485760");
    ok(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "MAXMEMORY-POLICY",
            "volatile-lru",
            "slowlog-max-len",
            "64",
        ],
    )
    .await;
    assert_eq!(
        config_value(&mut con, resp3, "maxmemory-policy").await,
        "volatile-lru"
    );
    assert_eq!(config_value(&mut con, resp3, "slowlog-max-len").await, "64");
    let memory = info(&mut con, resp3, &["memory"]).await;
    assert_eq!(field(&memory, "maxmemory_human"), Some("10.00M"));
    assert_eq!(field(&memory, "maxmemory_policy"), Some("volatile-lru"));

    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "nosuch", "1"]).await,
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "maxmemory", "lots"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"
    );
    assert_eq!(
        err(
            &mut con,
            &["CONFIG", "SET", "maxmemory", "1", "MAXMEMORY", "2"]
        )
        .await,
        "ERR CONFIG SET failed (possibly related to argument 'MAXMEMORY') - duplicate parameter"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "databases", "3"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config"
    );
    // Names are all checked before any value.
    assert_eq!(
        err(
            &mut con,
            &["CONFIG", "SET", "maxmemory", "lots", "nosuch", "1"]
        )
        .await,
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "maxmemory", "lots", "databases", "3"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "maxmemory", "0", "foo"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "maxmemory"]).await,
        "ERR wrong number of arguments for 'config|set' command"
    );

    // A bad value anywhere leaves every parameter as it was.
    let failed = err(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "maxmemory",
            "5mb",
            "maxmemory-policy",
            "bogus",
        ],
    )
    .await;
    assert!(
        failed.starts_with(
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, "
        ),
        "{failed}"
    );
    assert_eq!(config_value(&mut con, resp3, "maxmemory").await, "10485760");
    assert_eq!(
        config_value(&mut con, resp3, "maxmemory-policy").await,
        "volatile-lru"
    );

    // Parameters strata only remembers are accepted too.
    ok(
        &mut con,
        &["CONFIG", "SET", "save", "900 1", "appendonly", "no"],
    )
    .await;
    assert_eq!(config_value(&mut con, resp3, "save").await, "900 1");
}

async fn config_set_requirepass_turns_auth_on(resp3: bool) {
    let (server, mut con) = start_client(resp3).await;
    ok(&mut con, &["CONFIG", "SET", "requirepass", "secret"]).await;
    // The connection that set it stays authenticated; new ones must AUTH.
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 0);
    let stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connects");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"DBSIZE\r\n").await.expect("writes");
    let reply = lines.next_line().await.expect("reads");
    assert_eq!(reply.as_deref(), Some("-NOAUTH Authentication required."));
    write
        .write_all(b"AUTH secret\r\nDBSIZE\r\n")
        .await
        .expect("writes");
    assert_eq!(
        lines.next_line().await.expect("reads").as_deref(),
        Some("+OK")
    );
    assert_eq!(
        lines.next_line().await.expect("reads").as_deref(),
        Some(":0")
    );

    ok(&mut con, &["CONFIG", "SET", "requirepass", ""]).await;
    let mut fresh = server.client(resp3).await;
    assert_eq!(int(&mut fresh, &["DBSIZE"]).await, 0);
}

async fn config_resetstat_and_rewrite(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    ok(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]).await;
    ok(&mut con, &["SET", "a", "1"]).await;
    q(&mut con, &["GET", "a"]).await;
    q(&mut con, &["GET", "missing"]).await;
    let _ = err(&mut con, &["GET"]).await;
    let before = info(&mut con, resp3, &["stats", "commandstats", "errorstats"]).await;
    assert!(number(&before, "keyspace_hits") >= 1);
    assert!(field(&before, "cmdstat_get").is_some());
    assert!(field(&before, "errorstat_ERR").is_some());

    ok(&mut con, &["CONFIG", "RESETSTAT"]).await;
    let after = info(&mut con, resp3, &["stats", "commandstats", "errorstats"]).await;
    assert_eq!(number(&after, "keyspace_hits"), 0);
    assert_eq!(number(&after, "keyspace_misses"), 0);
    assert_eq!(number(&after, "total_error_replies"), 0);
    assert!(field(&after, "cmdstat_get").is_none(), "{after}");
    assert!(field(&after, "errorstat_ERR").is_none(), "{after}");
    // Only the RESETSTAT itself has been counted since.
    assert_eq!(number(&after, "total_commands_processed"), 1);
    // The slow log is not a statistic.
    assert!(int(&mut con, &["SLOWLOG", "LEN"]).await > 0);

    assert_eq!(
        err(&mut con, &["CONFIG", "REWRITE"]).await,
        "ERR The server is running without a config file"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "RESETSTAT", "x"]).await,
        "ERR wrong number of arguments for 'config|resetstat' command"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "FOO"]).await,
        "ERR unknown subcommand 'FOO'. Try CONFIG HELP."
    );
}

// ---------------------------------------------------------------- SLOWLOG

async fn slowlog(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    ok(&mut con, &["SLOWLOG", "RESET"]).await;
    assert_eq!(int(&mut con, &["SLOWLOG", "LEN"]).await, 0);
    ok(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]).await;
    ok(&mut con, &["SET", "slow", "value"]).await;
    ok(&mut con, &["CLIENT", "SETNAME", "tester"]).await;
    assert!(int(&mut con, &["SLOWLOG", "LEN"]).await >= 2);

    assert_eq!(items(q(&mut con, &["SLOWLOG", "GET", "2"]).await).len(), 2);
    let logged = items(q(&mut con, &["SLOWLOG", "GET", "-1"]).await);
    let set_entry = logged
        .iter()
        .map(|entry| items(entry.clone()))
        .find(|entry| matches!(entry.get(3), Some(Value::Array(args)) if args.first() == Some(&bulk("SET"))))
        .expect("the SET is logged");
    assert_eq!(set_entry.len(), 6, "{set_entry:?}");
    assert!(matches!(set_entry[0], Value::Int(id) if id >= 0));
    assert!(
        matches!(set_entry[1], Value::Int(ts) if (unix_secs() - 10..=unix_secs()).contains(&ts))
    );
    assert!(matches!(set_entry[2], Value::Int(micros) if micros >= 0));
    assert_eq!(
        set_entry[3],
        Value::Array(vec![bulk("SET"), bulk("slow"), bulk("value")])
    );
    assert!(
        as_text(&set_entry[4]).starts_with("127.0.0.1:"),
        "{set_entry:?}"
    );
    assert!(matches!(set_entry[5], Value::BulkString(_)));

    // Newest first, ids increasing with time.
    let all = items(q(&mut con, &["SLOWLOG", "GET", "-1"]).await);
    let ids: Vec<i64> = all
        .iter()
        .map(|entry| match items(entry.clone()).first() {
            Some(Value::Int(id)) => *id,
            other => panic!("no id: {other:?}"),
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert!(items(q(&mut con, &["SLOWLOG", "GET"]).await).len() <= 10);
    assert!(items(q(&mut con, &["SLOWLOG", "GET", "0"]).await).is_empty());

    assert_eq!(
        err(&mut con, &["SLOWLOG", "GET", "-2"]).await,
        "ERR count should be greater than or equal to -1"
    );
    assert_eq!(
        err(&mut con, &["SLOWLOG", "GET", "abc"]).await,
        "ERR count should be greater than or equal to -1"
    );
    assert_eq!(
        err(&mut con, &["SLOWLOG", "GET", "1", "2"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'get'. Try SLOWLOG HELP."
    );
    assert_eq!(
        err(&mut con, &["SLOWLOG", "LEN", "x"]).await,
        "ERR wrong number of arguments for 'slowlog|len' command"
    );

    // Long arguments are cut; a negative threshold logs nothing.
    ok(&mut con, &["SET", "long", &"x".repeat(200)]).await;
    let latest = items(items(q(&mut con, &["SLOWLOG", "GET", "1"]).await).remove(0));
    let args = strings(latest[3].clone());
    assert_eq!(args[2], format!("{}... (72 more bytes)", "x".repeat(128)));

    ok(
        &mut con,
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
    )
    .await;
    ok(&mut con, &["SLOWLOG", "RESET"]).await;
    ok(&mut con, &["SET", "fast", "value"]).await;
    assert_eq!(int(&mut con, &["SLOWLOG", "LEN"]).await, 0);
}

// ---------------------------------------------------------------- COMMAND

async fn command_count_list_and_all(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let count = int(&mut con, &["COMMAND", "COUNT"]).await;
    let all = items(q(&mut con, &["COMMAND"]).await);
    assert_eq!(all.len() as i64, count);
    let info_all = items(q(&mut con, &["COMMAND", "INFO"]).await);
    assert_eq!(info_all.len() as i64, count);

    let list = strings(q(&mut con, &["COMMAND", "LIST"]).await);
    assert_eq!(
        list.iter().filter(|n| !n.contains('|')).count() as i64,
        count
    );
    for name in [
        "get",
        "set",
        "info",
        "config",
        "config|get",
        "client|list",
        "command|docs",
    ] {
        assert!(
            list.iter().any(|n| n == name),
            "{name} missing from COMMAND LIST"
        );
    }

    let dangerous = strings(
        q(
            &mut con,
            &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "dangerous"],
        )
        .await,
    );
    for name in ["flushall", "flushdb", "keys", "config|set", "debug"] {
        assert!(dangerous.iter().any(|n| n == name), "{name} is @dangerous");
    }
    assert!(!dangerous.iter().any(|n| n == "get"));
    let strings_cat = strings(
        q(
            &mut con,
            &["COMMAND", "LIST", "FILTERBY", "aclcat", "STRING"],
        )
        .await,
    );
    assert!(strings_cat.iter().any(|n| n == "get") && !strings_cat.iter().any(|n| n == "del"));

    let mut config = strings(
        q(
            &mut con,
            &["COMMAND", "LIST", "FILTERBY", "PATTERN", "CONF*"],
        )
        .await,
    );
    config.sort();
    assert_eq!(
        config,
        [
            "config",
            "config|get",
            "config|help",
            "config|resetstat",
            "config|rewrite",
            "config|set"
        ]
    );
    assert!(items(q(&mut con, &["COMMAND", "LIST", "FILTERBY", "MODULE", "x"]).await).is_empty());
    assert!(items(
        q(
            &mut con,
            &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"]
        )
        .await
    )
    .is_empty());
    for args in [
        &["COMMAND", "LIST", "FILTERBY"][..],
        &["COMMAND", "LIST", "foo"],
        &["COMMAND", "LIST", "FILTERBY", "foo", "x"],
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "x", "y"],
    ] {
        assert_eq!(err(&mut con, args).await, "ERR syntax error", "{args:?}");
    }
    assert_eq!(
        err(&mut con, &["COMMAND", "COUNT", "x"]).await,
        "ERR wrong number of arguments for 'command|count' command"
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "FOO"]).await,
        "ERR unknown subcommand 'FOO'. Try COMMAND HELP."
    );
}

fn flags(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) | Value::Set(items) => items
            .iter()
            .map(|item| match item {
                Value::SimpleString(text) => text.clone(),
                other => panic!("flags are status replies, got {other:?}"),
            })
            .collect(),
        other => panic!("expected flags, got {other:?}"),
    }
}

/// Sets in RESP3, arrays in RESP2.
fn assert_set(value: &Value, resp3: bool) {
    match value {
        Value::Set(_) => assert!(resp3, "a set under RESP2"),
        Value::Array(_) => assert!(!resp3, "an array where RESP3 has a set"),
        other => panic!("expected a set, got {other:?}"),
    }
}

async fn command_info_shape(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let mut entries = items(
        q(
            &mut con,
            &[
                "COMMAND",
                "INFO",
                "GET",
                "nosuch",
                "mset",
                "config|get",
                "config",
            ],
        )
        .await,
    );
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[1], Value::Nil);

    let get_info = items(entries.remove(0));
    assert_eq!(get_info.len(), 10);
    assert_eq!(get_info[0], bulk("get"));
    assert_eq!(get_info[1], Value::Int(2));
    assert_set(&get_info[2], resp3);
    assert_eq!(flags(&get_info[2]), ["readonly", "fast"]);
    assert_eq!(
        &get_info[3..6],
        &[Value::Int(1), Value::Int(1), Value::Int(1)]
    );
    assert_eq!(flags(&get_info[6]), ["@read", "@string", "@fast"]);
    assert_set(&get_info[7], resp3);
    assert!(items(get_info[7].clone()).is_empty());
    assert_set(&get_info[8], resp3);
    let specs = items(get_info[8].clone());
    assert_eq!(specs.len(), 1);
    let spec = pairs(specs[0].clone(), resp3);
    assert_eq!(flags(get(&spec, "flags")), ["RO", "access"]);
    let begin = pairs(get(&spec, "begin_search").clone(), resp3);
    assert_eq!(get(&begin, "type"), &bulk("index"));
    assert_eq!(
        get(&pairs(get(&begin, "spec").clone(), resp3), "index"),
        &Value::Int(1)
    );
    let find = pairs(get(&spec, "find_keys").clone(), resp3);
    assert_eq!(get(&find, "type"), &bulk("range"));
    let range = pairs(get(&find, "spec").clone(), resp3);
    assert_eq!(get(&range, "lastkey"), &Value::Int(0));
    assert_eq!(get(&range, "keystep"), &Value::Int(1));
    assert_eq!(get(&range, "limit"), &Value::Int(0));
    assert!(items(get_info[9].clone()).is_empty());

    let mset = items(entries.remove(1));
    assert_eq!(mset[0], bulk("mset"));
    assert_eq!(mset[1], Value::Int(-3));
    assert_eq!(flags(&mset[2]), ["write", "denyoom"]);
    assert_eq!(&mset[3..6], &[Value::Int(1), Value::Int(-1), Value::Int(2)]);
    assert_eq!(flags(&mset[6]), ["@write", "@string", "@slow"]);
    assert_eq!(
        items(mset[7].clone()),
        [
            bulk("request_policy:multi_shard"),
            bulk("response_policy:all_succeeded")
        ]
    );
    let range = pairs(
        get(
            &pairs(items(mset[8].clone())[0].clone(), resp3),
            "find_keys",
        )
        .clone(),
        resp3,
    );
    let range = pairs(get(&range, "spec").clone(), resp3);
    assert_eq!(get(&range, "lastkey"), &Value::Int(-1));
    assert_eq!(get(&range, "keystep"), &Value::Int(2));

    let config_get = items(entries.remove(1));
    assert_eq!(config_get[0], bulk("config|get"));
    assert_eq!(config_get[1], Value::Int(-3));
    assert_eq!(flags(&config_get[6]), ["@admin", "@slow", "@dangerous"]);

    let config = items(entries.remove(1));
    assert_eq!(config[0], bulk("config"));
    assert_eq!(flags(&config[6]), ["@slow"]);
    let subs = match &config[9] {
        Value::Array(subs) => subs.clone(),
        other => panic!("subcommands are an array, got {other:?}"),
    };
    let mut names: Vec<String> = subs
        .into_iter()
        .map(|sub| as_text(&items(sub)[0]))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config|get",
            "config|help",
            "config|resetstat",
            "config|rewrite",
            "config|set"
        ]
    );
}

async fn command_docs_shape(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let count = int(&mut con, &["COMMAND", "COUNT"]).await;
    let all = pairs(q(&mut con, &["COMMAND", "DOCS"]).await, resp3);
    assert_eq!(all.len() as i64, count);
    for (name, docs) in &all {
        assert!(matches!(name, Value::BulkString(_)), "{name:?}");
        let docs = pairs(docs.clone(), resp3);
        for key in ["summary", "since", "group"] {
            assert!(
                matches!(get(&docs, key), Value::BulkString(_)),
                "{name:?} {key}"
            );
        }
        if let Some((_, arguments)) = docs.iter().find(|(k, _)| as_text(k) == "arguments") {
            assert!(matches!(arguments, Value::Array(_)), "{name:?} arguments");
        }
        if let Some((_, subs)) = docs.iter().find(|(k, _)| as_text(k) == "subcommands") {
            for (sub, _) in pairs(subs.clone(), resp3) {
                assert!(as_text(&sub).contains('|'), "{sub:?}");
            }
        }
    }

    let some = pairs(
        q(
            &mut con,
            &["COMMAND", "DOCS", "GET", "nosuch", "client|list"],
        )
        .await,
        resp3,
    );
    let names: Vec<String> = some.iter().map(|(k, _)| as_text(k)).collect();
    assert_eq!(names, ["get", "client|list"]);
    let get_docs = pairs(some[0].1.clone(), resp3);
    assert_eq!(get(&get_docs, "summary"), &bulk("Get the value of a key"));
    assert_eq!(get(&get_docs, "since"), &bulk("1.0.0"));
    assert_eq!(get(&get_docs, "group"), &bulk("string"));
    assert_eq!(get(&get_docs, "complexity"), &bulk("O(1)"));

    // A container lists only the subcommands strata has.
    let config = pairs(q(&mut con, &["COMMAND", "DOCS", "config"]).await, resp3);
    let config = pairs(config[0].1.clone(), resp3);
    let mut subs: Vec<String> = pairs(get(&config, "subcommands").clone(), resp3)
        .iter()
        .map(|(k, _)| as_text(k))
        .collect();
    subs.sort();
    assert_eq!(
        subs,
        [
            "config|get",
            "config|help",
            "config|resetstat",
            "config|rewrite",
            "config|set"
        ]
    );
    let client = pairs(q(&mut con, &["COMMAND", "DOCS", "client"]).await, resp3);
    let client = pairs(client[0].1.clone(), resp3);
    let subs: Vec<String> = pairs(get(&client, "subcommands").clone(), resp3)
        .iter()
        .map(|(k, _)| as_text(k))
        .collect();
    assert!(subs.contains(&"client|list".to_string()));
    assert!(!subs.contains(&"client|pause".to_string()), "{subs:?}");

    assert!(pairs(q(&mut con, &["COMMAND", "DOCS", "nosuch"]).await, resp3).is_empty());
}

async fn command_getkeys(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let keys = strings;
    assert_eq!(
        keys(q(&mut con, &["COMMAND", "GETKEYS", "get", "k"]).await),
        ["k"]
    );
    assert_eq!(
        keys(
            q(
                &mut con,
                &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]
            )
            .await
        ),
        ["a", "b"]
    );
    assert_eq!(
        keys(q(&mut con, &["COMMAND", "GETKEYS", "mget", "a", "b", "c"]).await),
        ["a", "b", "c"]
    );
    assert_eq!(
        keys(
            q(
                &mut con,
                &["COMMAND", "GETKEYS", "bitop", "and", "dest", "x", "y"]
            )
            .await
        ),
        ["dest", "x", "y"]
    );
    assert_eq!(
        keys(q(&mut con, &["COMMAND", "GETKEYS", "rename", "from", "to"]).await),
        ["from", "to"]
    );
    assert_eq!(
        keys(q(&mut con, &["COMMAND", "GETKEYS", "object", "encoding", "k"]).await),
        ["k"]
    );

    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "nosuch", "a"]).await,
        "ERR Invalid command specified"
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "object", "nosuch", "k"]).await,
        "ERR Invalid command specified"
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "ping", "a"]).await,
        "ERR The command has no key arguments"
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "object", "help"]).await,
        "ERR The command has no key arguments"
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "get", "a", "b"]).await,
        "ERR Invalid number of arguments specified for command"
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS"]).await,
        "ERR wrong number of arguments for 'command|getkeys' command"
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "get"]).await,
        "ERR wrong number of arguments for 'command|getkeys' command"
    );
    // Keys that move with the arguments, in Redis's order.
    for (call, expected) in [
        (&["sort", "abc", "store", "def"][..], &["abc", "def"][..]),
        (
            &[
                "sort", "abc", "store", "invalid", "store", "stillbad", "store", "def",
            ],
            &["abc", "def"],
        ),
        (
            &["sort", "abc", "get", "store", "limit", "store", "x"],
            &["abc"],
        ),
        (&["lmpop", "2", "a", "b", "LEFT"], &["a", "b"]),
        (&["zunionstore", "dst", "2", "a", "b"], &["dst", "a", "b"]),
        (&["sintercard", "2", "a", "b"], &["a", "b"]),
    ] {
        let mut args = vec!["COMMAND", "GETKEYS"];
        args.extend_from_slice(call);
        assert_eq!(keys(q(&mut con, &args).await), expected, "{call:?}");
    }
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "lmpop", "x"]).await,
        "ERR Invalid number of arguments specified for command"
    );
    for call in [
        &["lmpop", "5", "a", "LEFT"][..],
        &["lmpop", "x", "a", "LEFT"],
        &["zunionstore", "d", "5", "a", "b"],
    ] {
        let mut args = vec!["COMMAND", "GETKEYS"];
        args.extend_from_slice(call);
        assert_eq!(
            err(&mut con, &args).await,
            "ERR Invalid arguments specified for command",
            "{call:?}"
        );
    }
}

async fn help_replies(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    for (args, banner, entry) in [
        (&["CONFIG", "HELP"][..], "CONFIG <subcommand>", "RESETSTAT"),
        (
            &["SLOWLOG", "HELP"],
            "SLOWLOG <subcommand>",
            "GET [<count>]",
        ),
        (
            &["COMMAND", "HELP"],
            "COMMAND <subcommand>",
            "GETKEYS <full-command>",
        ),
        (&["DEBUG", "HELP"], "DEBUG <subcommand>", "SLEEP <seconds>"),
        (
            &["CLIENT", "HELP"],
            "CLIENT <subcommand>",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
        ),
        (
            &["MEMORY", "HELP"],
            "MEMORY <subcommand>",
            "USAGE <key> [SAMPLES <count>]",
        ),
        (
            &["FUNCTION", "HELP"],
            "FUNCTION <subcommand>",
            "FLUSH [ASYNC|SYNC]",
        ),
    ] {
        let lines = items(q(&mut con, args).await);
        assert!(
            lines
                .iter()
                .all(|line| matches!(line, Value::SimpleString(_))),
            "{args:?}: help lines are status replies"
        );
        let lines: Vec<String> = lines.iter().map(as_text).collect();
        assert!(lines[0].starts_with(banner), "{lines:?}");
        assert!(lines[0].ends_with("Subcommands are:"), "{lines:?}");
        assert!(lines.iter().any(|l| l == entry), "{args:?}: {lines:?}");
        assert_eq!(&lines[lines.len() - 2..], ["HELP", "    Prints this help."]);
    }
}

/// `*-max-listpack-*` and `set-max-intset-entries` decide the encoding a
/// new or growing collection reports, under either of Redis's names.
async fn encoding_thresholds_follow_config_set(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let encoding = |key: &'static str| ["OBJECT", "ENCODING", key];
    ok(&mut con, &["CONFIG", "SET", "hash-max-ziplist-value", "8"]).await;
    assert_eq!(
        q(&mut con, &["CONFIG", "GET", "hash-max-listpack-value"]).await,
        config_pair("hash-max-listpack-value", "8", resp3)
    );
    q(&mut con, &["HSET", "small", "f", "0"]).await;
    q(&mut con, &["HSET", "big", "f", "0"]).await;
    q(&mut con, &["HINCRBYFLOAT", "small", "f", "0.000005"]).await;
    q(&mut con, &["HINCRBYFLOAT", "big", "f", "0.0000005"]).await;
    assert_eq!(
        text(&mut con, &encoding("small")).await.as_deref(),
        Some("listpack")
    );
    assert_eq!(
        text(&mut con, &encoding("big")).await.as_deref(),
        Some("hashtable")
    );

    ok(
        &mut con,
        &["CONFIG", "SET", "zset-max-listpack-entries", "0"],
    )
    .await;
    q(&mut con, &["ZADD", "z", "10", "x"]).await;
    assert_eq!(
        text(&mut con, &encoding("z")).await.as_deref(),
        Some("skiplist")
    );
    ok(
        &mut con,
        &["CONFIG", "SET", "zset-max-ziplist-entries", "128"],
    )
    .await;
    q(&mut con, &["ZADD", "z2", "10", "x"]).await;
    assert_eq!(
        text(&mut con, &encoding("z2")).await.as_deref(),
        Some("listpack")
    );

    ok(&mut con, &["CONFIG", "SET", "set-max-intset-entries", "2"]).await;
    q(&mut con, &["SADD", "s", "1", "2", "3"]).await;
    assert_eq!(
        text(&mut con, &encoding("s")).await.as_deref(),
        Some("hashtable")
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "hash-max-listpack-entries", "many"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'hash-max-listpack-entries') - argument couldn't be parsed into an integer"
    );
}

fn config_pair(name: &str, value: &str, resp3: bool) -> Value {
    if resp3 {
        Value::Map(vec![(bulk(name), bulk(value))])
    } else {
        Value::Array(vec![bulk(name), bulk(value)])
    }
}

async fn memory_usage(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    set(&mut con, "short", "v").await;
    set(&mut con, "long", &"v".repeat(10_000)).await;
    let short = int(&mut con, &["MEMORY", "USAGE", "short"]).await;
    let long = int(&mut con, &["MEMORY", "USAGE", "long", "SAMPLES", "0"]).await;
    assert!(short > 0 && long > 10_000 && long > short, "{short} {long}");
    assert_eq!(q(&mut con, &["MEMORY", "USAGE", "nokey"]).await, Value::Nil);
    for bad in [
        &["MEMORY", "USAGE", "short", "SAMPLES", "-1"][..],
        &["MEMORY", "USAGE", "short", "SAMPLES"],
        &["MEMORY", "USAGE", "short", "FOO"],
    ] {
        assert_eq!(err(&mut con, bad).await, "ERR syntax error", "{bad:?}");
    }
    assert_eq!(
        err(&mut con, &["MEMORY", "USAGE", "short", "SAMPLES", "x"]).await,
        "ERR value is not an integer or out of range"
    );
    ok(&mut con, &["MEMORY", "PURGE"]).await;
}

/// No scripting: no libraries to list, so FLUSH (which harnesses send to
/// reset a server) has nothing to remove; LOAD is not offered.
async fn function_list_and_flush_without_scripting(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    ok(&mut con, &["FUNCTION", "FLUSH"]).await;
    ok(&mut con, &["FUNCTION", "FLUSH", "ASYNC"]).await;
    assert_eq!(
        err(&mut con, &["FUNCTION", "FLUSH", "LATER"]).await,
        "ERR FUNCTION FLUSH only supports SYNC|ASYNC option"
    );
    assert_eq!(
        q(
            &mut con,
            &["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "x*"]
        )
        .await,
        Value::Array(vec![])
    );
    assert_eq!(
        err(&mut con, &["FUNCTION", "LIST", "WITHCODE", "WITHCODE"]).await,
        "ERR Unknown argument WITHCODE"
    );
    assert_eq!(
        err(&mut con, &["FUNCTION", "LIST", "LIBRARYNAME"]).await,
        "ERR library name argument was not given"
    );
    assert!(err(&mut con, &["FUNCTION", "LOAD", "#!lua name=x"])
        .await
        .starts_with("ERR unknown subcommand 'LOAD'"));
}
