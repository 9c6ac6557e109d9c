//! Transactions through the `redis` crate, under RESP2 and RESP3: MULTI,
//! EXEC, DISCARD, WATCH and UNWATCH, every change that dooms a WATCH, the
//! atomicity of EXEC against other clients, and a differential run against
//! a real `redis-server`.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use redis::aio::ConnectionLike;
use redis::Value;
use strata::config::MemorySize;

/// A reply as the server sent it: errors inside an EXEC array stay elements.
async fn raw_reply(con: &mut Conn, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    con.req_packed_command(&cmd).await.unwrap_or_else(|e| {
        panic!("{args:?}: {e}");
    })
}

fn queued() -> Value {
    status("QUEUED")
}

/// MULTI, the given commands (each must answer QUEUED), then EXEC's reply.
async fn transaction(con: &mut Conn, commands: &[&[&str]]) -> Value {
    ok(con, &["MULTI"]).await;
    for command in commands {
        assert_eq!(q(con, command).await, queued(), "{command:?}");
    }
    raw_reply(con, &["EXEC"]).await
}

/// An empty transaction: `true` when EXEC ran it, `false` when a WATCH aborted it.
async fn exec_runs(con: &mut Conn) -> bool {
    match transaction(con, &[&["PING"]]).await {
        Value::Array(items) => {
            assert_eq!(items, vec![status("PONG")]);
            true
        }
        Value::Nil => false,
        other => panic!("EXEC replied {other:?}"),
    }
}

async fn queue_exec_discard(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let reply = transaction(
        &mut con,
        &[&["SET", "a", "1"], &["INCR", "a"], &["GET", "a"]],
    )
    .await;
    assert_eq!(
        reply,
        Value::Array(vec![Value::Okay, Value::Int(2), bulk("2")])
    );
    assert_eq!(transaction(&mut con, &[]).await, Value::Array(vec![]));

    ok(&mut con, &["MULTI"]).await;
    assert_eq!(
        err(&mut con, &["MULTI"]).await,
        "ERR MULTI calls can not be nested"
    );
    assert_eq!(
        err(&mut con, &["WATCH", "a"]).await,
        "ERR WATCH inside MULTI is not allowed"
    );
    assert_eq!(q(&mut con, &["DEL", "a"]).await, queued());
    ok(&mut con, &["DISCARD"]).await;
    assert_eq!(text(&mut con, &["GET", "a"]).await.as_deref(), Some("2"));
    assert_eq!(err(&mut con, &["EXEC"]).await, "ERR EXEC without MULTI");
    assert_eq!(
        err(&mut con, &["DISCARD"]).await,
        "ERR DISCARD without MULTI"
    );

    // Errors of the handlers (not refusals) do not doom the transaction.
    ok(&mut con, &["MULTI"]).await;
    let _ = err(&mut con, &["MULTI"]).await;
    assert_eq!(q(&mut con, &["SET", "b", "x"]).await, queued());
    assert_eq!(
        raw_reply(&mut con, &["EXEC"]).await,
        Value::Array(vec![Value::Okay])
    );

    // The redis crate's own atomic pipeline.
    let (x, y): (i64, String) = redis::pipe()
        .atomic()
        .cmd("INCRBY")
        .arg("n")
        .arg(5)
        .cmd("GET")
        .arg("b")
        .query_async(&mut con)
        .await
        .expect("atomic pipeline");
    assert_eq!((x, y.as_str()), (5, "x"));
}

async fn refusals_while_queuing_abort(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(q(&mut con, &["SET", "a", "1"]).await, queued());
    assert!(err(&mut con, &["NOSUCH", "x"])
        .await
        .starts_with("ERR unknown command 'NOSUCH'"));
    assert_eq!(
        err(&mut con, &["GET"]).await,
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(q(&mut con, &["SET", "b", "1"]).await, queued());
    assert_eq!(
        err(&mut con, &["EXEC"]).await,
        "EXECABORT Transaction discarded because of previous errors."
    );
    assert_eq!(int(&mut con, &["EXISTS", "a", "b"]).await, 0);
    assert_eq!(as_text(&q(&mut con, &["PING"]).await), "PONG");

    // `no_multi` commands are refused, as Redis refuses SAVE and SHUTDOWN.
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(
        err(&mut con, &["SAVE"]).await,
        "ERR Command not allowed inside a transaction"
    );
    assert!(err(&mut con, &["EXEC"]).await.starts_with("EXECABORT"));

    // EXEC itself refused: the transaction goes, with the reason.
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(q(&mut con, &["SET", "c", "1"]).await, queued());
    assert_eq!(
        err(&mut con, &["EXEC", "now"]).await,
        "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command"
    );
    assert_eq!(err(&mut con, &["EXEC"]).await, "ERR EXEC without MULTI");
    assert_eq!(int(&mut con, &["EXISTS", "c"]).await, 0);
}

async fn runtime_errors_are_elements(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    set(&mut con, "s", "text").await;
    let reply = transaction(
        &mut con,
        &[
            &["INCR", "s"],
            &["SET", "t", "1"],
            &["INCR", "t"],
            &["GET", "t"],
        ],
    )
    .await;
    let Value::Array(items) = reply else {
        panic!("EXEC replied {reply:?}");
    };
    assert_eq!(items.len(), 4);
    match &items[0] {
        Value::ServerError(error) => {
            assert_eq!(
                error.details(),
                Some("value is not an integer or out of range")
            )
        }
        other => panic!("expected an error element, got {other:?}"),
    }
    assert_eq!(&items[1..], &[Value::Okay, Value::Int(2), bulk("2")]);
}

async fn watch_triggers(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;
    let mut other = server.client(resp3).await;

    // Nothing touched: EXEC runs, and the keys are watched no longer.
    set(&mut con, "k", "1").await;
    ok(&mut con, &["WATCH", "k", "missing"]).await;
    assert!(exec_runs(&mut con).await);
    set(&mut other, "k", "2").await;
    assert!(exec_runs(&mut con).await);

    // Another client's write, the client's own, and the same value again.
    for (writer_is_other, value) in [(true, "3"), (false, "4"), (true, "4")] {
        ok(&mut con, &["WATCH", "k"]).await;
        let writer = if writer_is_other {
            &mut other
        } else {
            &mut con
        };
        set(writer, "k", value).await;
        assert!(
            !exec_runs(&mut con).await,
            "write {value} by other={writer_is_other}"
        );
        // After a failed EXEC the key is no longer watched either.
        set(&mut other, "k", value).await;
        assert!(exec_runs(&mut con).await);
    }

    // DEL, EXPIRE, a write that creates a missing key.
    for change in [
        &["DEL", "k"][..],
        &["SET", "k", "v"],
        &["EXPIRE", "k", "100"],
    ] {
        ok(&mut con, &["WATCH", "k"]).await;
        let _ = q(&mut other, change).await;
        assert!(!exec_runs(&mut con).await, "{change:?}");
    }
    // Commands that change nothing do not abort.
    ok(&mut con, &["WATCH", "k", "absent"]).await;
    assert_eq!(int(&mut other, &["DEL", "absent"]).await, 0);
    assert_eq!(text(&mut other, &["GET", "k"]).await.as_deref(), Some("v"));
    assert!(exec_runs(&mut con).await);

    // UNWATCH forgets the change.
    ok(&mut con, &["WATCH", "k"]).await;
    set(&mut other, "k", "w").await;
    ok(&mut con, &["UNWATCH"]).await;
    ok(&mut con, &["UNWATCH"]).await;
    assert!(exec_runs(&mut con).await);

    // DISCARD unwatches and clears the mark.
    ok(&mut con, &["WATCH", "k"]).await;
    set(&mut other, "k", "10").await;
    ok(&mut con, &["MULTI"]).await;
    ok(&mut con, &["DISCARD"]).await;
    set(&mut other, "k", "10").await;
    assert_eq!(
        transaction(&mut con, &[&["INCR", "k"]]).await,
        Value::Array(vec![Value::Int(11)])
    );

    // RESET too.
    ok(&mut con, &["WATCH", "k"]).await;
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(q(&mut con, &["INCR", "k"]).await, queued());
    set(&mut other, "k", "20").await;
    assert_eq!(as_text(&q(&mut con, &["RESET"]).await), "RESET");
    if resp3 {
        let _ = q(&mut con, &["HELLO", "3"]).await;
    }
    assert_eq!(err(&mut con, &["EXEC"]).await, "ERR EXEC without MULTI");
    assert!(exec_runs(&mut con).await);
    assert_eq!(text(&mut con, &["GET", "k"]).await.as_deref(), Some("20"));

    // A key is watched in the database it was watched in.
    ok(&mut con, &["SELECT", "5"]).await;
    set(&mut con, "x", "30").await;
    ok(&mut con, &["WATCH", "x"]).await;
    ok(&mut other, &["SELECT", "1"]).await;
    set(&mut other, "x", "10").await;
    assert!(exec_runs(&mut con).await);
    ok(&mut con, &["WATCH", "x"]).await;
    ok(&mut other, &["SELECT", "5"]).await;
    set(&mut other, "x", "11").await;
    assert!(!exec_runs(&mut con).await);
    ok(&mut other, &["SELECT", "0"]).await;
    ok(&mut con, &["SELECT", "0"]).await;
}

async fn watch_flush_and_swap(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;
    let mut other = server.client(resp3).await;

    for flush in [&["FLUSHALL"][..], &["FLUSHDB"]] {
        set(&mut con, "x", "30").await;
        ok(&mut con, &["WATCH", "x"]).await;
        ok(&mut other, flush).await;
        assert!(!exec_runs(&mut con).await, "{flush:?} of a watched key");
        // A key that was not there is not touched.
        ok(&mut con, &["WATCH", "x"]).await;
        ok(&mut other, flush).await;
        assert!(exec_runs(&mut con).await, "{flush:?} of a missing key");
    }
    // Several keys of one client.
    ok(&mut con, &["MSET", "a", "a", "b", "b"]).await;
    ok(&mut con, &["WATCH", "b", "a"]).await;
    ok(&mut other, &["FLUSHALL"]).await;
    assert!(!exec_runs(&mut con).await);

    // SWAPDB: the key exists in the database that leaves, or in the one that comes.
    set(&mut con, "x", "30").await;
    ok(&mut con, &["WATCH", "x"]).await;
    ok(&mut other, &["SWAPDB", "0", "1"]).await;
    assert!(!exec_runs(&mut con).await);
    ok(&mut con, &["FLUSHALL"]).await;
    ok(&mut other, &["SELECT", "1"]).await;
    set(&mut other, "x", "30").await;
    ok(&mut con, &["WATCH", "x"]).await;
    ok(&mut other, &["SWAPDB", "0", "1"]).await;
    assert!(!exec_runs(&mut con).await);
    // Neither has it.
    ok(&mut con, &["WATCH", "nowhere"]).await;
    ok(&mut other, &["SWAPDB", "0", "1"]).await;
    assert!(exec_runs(&mut con).await);
}

async fn watch_expiry(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;

    // A key that expires after WATCH: EXEC fails whether or not the sweep
    // has removed it by then.
    ok(&mut con, &["SET", "e", "1", "PX", "50"]).await;
    ok(&mut con, &["WATCH", "e"]).await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(!exec_runs(&mut con).await);

    // Removed by the active sweep before EXEC (nobody reads it).
    ok(&mut con, &["SET", "e", "1", "PX", "20"]).await;
    ok(&mut con, &["WATCH", "e"]).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 0, "the sweep removed it");
    assert!(!exec_runs(&mut con).await);

    // Lazily: a read removes it.
    ok(&mut con, &["SET", "e", "1", "PX", "50"]).await;
    ok(&mut con, &["WATCH", "e"]).await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(text(&mut con, &["GET", "e"]).await, None);
    assert!(!exec_runs(&mut con).await);

    // Already expired when watched: its removal is no change ...
    ok(&mut con, &["SET", "s", "1", "PX", "1"]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    ok(&mut con, &["WATCH", "s"]).await;
    assert_eq!(int(&mut con, &["EXISTS", "s"]).await, 0);
    assert!(exec_runs(&mut con).await);
    ok(&mut con, &["SET", "s", "1", "PX", "1"]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    ok(&mut con, &["WATCH", "s"]).await;
    ok(&mut con, &["FLUSHDB"]).await;
    assert!(exec_runs(&mut con).await);
    // ... but writing it again is.
    ok(&mut con, &["SET", "s", "1", "PX", "1"]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    ok(&mut con, &["WATCH", "s"]).await;
    set(&mut con, "s", "new").await;
    assert!(!exec_runs(&mut con).await);
}

/// Deleting a watched key to respect `max-disk` is a change; evicting it
/// from memory to disk is not.
async fn watch_and_eviction(resp3: bool) {
    let server = start_with(|config| {
        config.storage.max_disk = MemorySize(64 * 1024);
    })
    .await;
    let mut con = server.client(resp3).await;
    let mut other = server.client(resp3).await;
    set(&mut con, "w", "watched").await;
    ok(&mut con, &["WATCH", "w"]).await;
    let value = "v".repeat(1000);
    let mut evicted = false;
    for i in 0..2000 {
        set(&mut other, &format!("fill{i}"), &value).await;
        if int(&mut other, &["EXISTS", "w"]).await == 0 {
            evicted = true;
            break;
        }
    }
    assert!(evicted, "max-disk never removed the oldest key");
    assert!(!exec_runs(&mut con).await);

    let server = start_with(|config| {
        config.memory.maxmemory = MemorySize(64 * 1024);
    })
    .await;
    let mut con = server.client(resp3).await;
    let mut other = server.client(resp3).await;
    set(&mut con, "w", "watched").await;
    ok(&mut con, &["WATCH", "w"]).await;
    for i in 0..300 {
        set(&mut other, &format!("fill{i}"), &value).await;
    }
    assert!(info_field(&mut other, "tiers", "hot_evictions").await > 0);
    assert!(
        exec_runs(&mut con).await,
        "evicting to disk changed nothing"
    );
    assert_eq!(
        text(&mut con, &["GET", "w"]).await.as_deref(),
        Some("watched")
    );

    // Memory only, eviction loses the key: a change.
    let server = start_with(|config| {
        config.storage.warm_tier = false;
        config.memory.maxmemory = MemorySize(64 * 1024);
    })
    .await;
    let mut con = server.client(resp3).await;
    let mut other = server.client(resp3).await;
    set(&mut con, "w", "watched").await;
    ok(&mut con, &["WATCH", "w"]).await;
    let mut evicted = false;
    for i in 0..2000 {
        set(&mut other, &format!("fill{i}"), &value).await;
        if int(&mut other, &["EXISTS", "w"]).await == 0 {
            evicted = true;
            break;
        }
    }
    assert!(evicted, "maxmemory never evicted the watched key");
    assert!(!exec_runs(&mut con).await);
}

async fn client_list_and_stats(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;
    let mut other = server.client(resp3).await;
    let id = int(&mut con, &["CLIENT", "ID"]).await;
    let line = |list: String| {
        list.lines()
            .find(|line| line.starts_with(&format!("id={id} ")))
            .map(str::to_string)
            .expect("the client is listed")
    };
    let field = |line: &str, name: &str| {
        line.split(' ')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
            .unwrap_or_default()
    };
    ok(&mut con, &["CONFIG", "RESETSTAT"]).await;
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(q(&mut con, &["SET", "a", "1"]).await, queued());
    assert_eq!(q(&mut con, &["GET", "a"]).await, queued());
    let listed = line(as_text(&q(&mut other, &["CLIENT", "LIST"]).await));
    assert_eq!(field(&listed, "flags"), "x");
    assert_eq!(field(&listed, "multi"), "2");
    assert_eq!(field(&listed, "cmd"), "get");
    let reply = raw_reply(&mut con, &["EXEC"]).await;
    assert_eq!(reply, Value::Array(vec![Value::Okay, bulk("1")]));
    let listed = line(as_text(&q(&mut other, &["CLIENT", "LIST"]).await));
    assert_eq!(field(&listed, "flags"), "N");
    assert_eq!(field(&listed, "multi"), "-1");
    assert_eq!(field(&listed, "cmd"), "exec");

    ok(&mut con, &["WATCH", "a"]).await;
    set(&mut other, "a", "2").await;
    let listed = line(as_text(&q(&mut other, &["CLIENT", "LIST"]).await));
    assert_eq!(field(&listed, "flags"), "d");
    ok(&mut con, &["UNWATCH"]).await;

    let stats = as_text(&q(&mut con, &["INFO", "commandstats"]).await);
    let calls = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(calls("exec"), 1);
    assert_eq!(calls("multi"), 1);
    assert_eq!(calls("get"), 1, "{stats}");
    // The queued SET and the other client's.
    assert_eq!(calls("set"), 2, "{stats}");
}

/// OOM and MISCONF refuse queuing, and EXEC by what its queue would do.
async fn refusals_at_exec(resp3: bool) {
    let server = start_with(|config| {
        config.storage.warm_tier = false;
        config.memory.maxmemory_policy = "noeviction".into();
    })
    .await;
    let mut con = server.client(resp3).await;
    let mut admin = server.client(resp3).await;
    set(&mut con, "x", "value").await;

    // Reads only: EXEC runs out of memory.
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(q(&mut con, &["GET", "x"]).await, queued());
    ok(&mut admin, &["CONFIG", "SET", "maxmemory", "1"]).await;
    assert_eq!(
        raw_reply(&mut con, &["EXEC"]).await,
        Value::Array(vec![bulk("value")])
    );
    ok(&mut admin, &["CONFIG", "SET", "maxmemory", "0"]).await;
    // A queued command that may grow the data: refused at EXEC.
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(q(&mut con, &["SET", "x", "1"]).await, queued());
    ok(&mut admin, &["CONFIG", "SET", "maxmemory", "1"]).await;
    assert_eq!(
        err(&mut con, &["EXEC"]).await,
        "EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'."
    );
    // Out of memory, any command is refused while queuing, DISCARD is not.
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(
        err(&mut con, &["GET", "x"]).await,
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    ok(&mut con, &["DISCARD"]).await;
    ok(&mut admin, &["CONFIG", "SET", "maxmemory", "0"]).await;
    assert_eq!(
        text(&mut con, &["GET", "x"]).await.as_deref(),
        Some("value")
    );

    // MISCONF: writes refused while queuing, and EXEC of queued writes.
    let (_server, mut con) = start_client(resp3).await;
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(q(&mut con, &["SET", "w", "1"]).await, queued());
    // CONFIG SET is queued too: another client changes the setting.
    let mut admin = _server.client(resp3).await;
    ok(&mut admin, &["CONFIG", "SET", "min-free-disk", "1000000gb"]).await;
    let refused = err(&mut con, &["EXEC"]).await;
    assert!(
        refused.starts_with("EXECABORT Transaction discarded because of: MISCONF "),
        "{refused}"
    );
    ok(&mut con, &["MULTI"]).await;
    assert!(err(&mut con, &["DEL", "w"]).await.starts_with("MISCONF "));
    assert_eq!(q(&mut con, &["GET", "w"]).await, queued());
    assert!(err(&mut con, &["EXEC"]).await.starts_with("EXECABORT"));
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(q(&mut con, &["GET", "w"]).await, queued());
    assert_eq!(
        raw_reply(&mut con, &["EXEC"]).await,
        Value::Array(vec![Value::Nil])
    );
    ok(&mut admin, &["CONFIG", "SET", "min-free-disk", "0"]).await;
}

both_protocols!(
    queue_exec_discard,
    refusals_while_queuing_abort,
    refusals_at_exec,
    runtime_errors_are_elements,
    watch_triggers,
    watch_flush_and_swap,
    watch_expiry,
    watch_and_eviction,
    client_list_and_stats,
);

/// The aborted EXEC is RESP2's null array and RESP3's null, byte for byte.
#[tokio::test]
async fn aborted_exec_on_the_wire() {
    let server = start().await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        for (hello, null) in [("2", "*-1\r\n"), ("3", "_\r\n")] {
            let mut stream = std::net::TcpStream::connect(addr).expect("connects");
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let request = format!(
                "HELLO {hello}\r\nSET k 1\r\nWATCH k\r\nSET k 2\r\nMULTI\r\nPING\r\nEXEC\r\nPING\r\n"
            );
            stream.write_all(request.as_bytes()).expect("writes");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"+PONG\r\n") {
                let n = stream.read(&mut buf).expect("reads");
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&got);
            let expected = format!("+OK\r\n+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n{null}+PONG\r\n");
            assert!(text.ends_with(&expected), "HELLO {hello}: {text:?}");
        }
    })
    .await
    .expect("wire check");
}

/// A client incrementing two keys, one INCR at a time, never shows a
/// transaction reading both a state between its two INCRs, and a
/// transaction reading one key twice sees one value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_is_atomic() {
    let server = start().await;
    let mut writer = server.client(false).await;
    let mut reader = server.client(true).await;
    set(&mut writer, "x", "0").await;
    set(&mut writer, "y", "0").await;
    let writing = tokio::spawn(async move {
        for _ in 0..6000 {
            let () = redis::pipe()
                .atomic()
                .cmd("INCR")
                .arg("x")
                .ignore()
                .cmd("INCR")
                .arg("y")
                .ignore()
                .query_async(&mut writer)
                .await
                .expect("writer's transaction");
            let _: i64 = redis::cmd("INCR")
                .arg("z")
                .query_async(&mut writer)
                .await
                .expect("INCR");
        }
    });
    let mut moved = 0;
    let mut last = (0, 0);
    for _ in 0..20_000 {
        let (x, y, z1, z2): (i64, i64, Option<i64>, Option<i64>) = redis::pipe()
            .atomic()
            .get("x")
            .get("y")
            .get("z")
            .get("z")
            .query_async(&mut reader)
            .await
            .expect("reader's transaction");
        assert_eq!(x, y, "a transaction saw half of another");
        assert_eq!(z1, z2, "a transaction saw a write between two reads");
        if (x, y) != last {
            moved += 1;
            last = (x, y);
        }
        if writing.is_finished() {
            break;
        }
    }
    writing.await.expect("writer ran");
    assert!(moved > 1, "the reads never overlapped the writes");
}

mod differential {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use redis::ConnectionLike;

    const KEYS: &[&str] = &["a", "b", "c", "n"];

    fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
        from[rng.gen_range(0..from.len())]
    }

    /// One step: which client (0 runs the transactions, 1 interferes) and its command.
    fn random_step(rng: &mut StdRng) -> (usize, Vec<String>) {
        let k = pick(rng, KEYS).to_string();
        let k2 = pick(rng, KEYS).to_string();
        let v = pick(rng, &["1", "2", "x", ""]).to_string();
        let words: Vec<&str> = match rng.gen_range(0..30) {
            0..=2 => vec!["MULTI"],
            3..=5 => vec!["EXEC"],
            6 => vec!["DISCARD"],
            7..=8 => vec!["WATCH", &k, &k2],
            9 => vec!["UNWATCH"],
            10..=11 => vec!["SET", &k, &v],
            12..=13 => vec!["INCR", &k],
            14 => vec!["GET", &k],
            15 => vec!["DEL", &k],
            16 => vec!["MGET", &k, &k2],
            17 => vec!["EXPIRE", &k, "1000"],
            18 => vec!["NOSUCHCOMMAND", &k],
            19 => vec!["GET"],
            20 => vec!["SELECT", pick(rng, &["0", "1"])],
            21 => vec!["EXEC", "extra"],
            22 => vec!["APPEND", &k, &v],
            // The other client's changes.
            23..=25 => return (1, words(&["SET", &k, &v])),
            26 => return (1, words(&["DEL", &k])),
            27 => return (1, words(&["INCR", &k])),
            28 => return (1, words(&[pick(rng, &["FLUSHDB", "FLUSHALL"])])),
            _ => return (1, words(&["SWAPDB", "0", "1"])),
        };
        (0, self::words(&words))
    }

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn normalize(reply: redis::RedisResult<redis::Value>) -> String {
        match reply {
            Ok(value) => format!("{value:?}"),
            Err(err) => format!("ERR {:?} {:?}", err.code(), err.detail()),
        }
    }

    fn connect(url: &str) -> redis::Connection {
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connects")
    }

    pub fn run_stream(seed: u64, resp3: bool, strata: &str, redis: &str, steps: usize) {
        let protocol = if resp3 { "?protocol=resp3" } else { "" };
        let mut ours = [
            connect(&format!("{strata}{protocol}")),
            connect(&format!("{strata}{protocol}")),
        ];
        let mut theirs = [
            connect(&format!("{redis}{protocol}")),
            connect(&format!("{redis}{protocol}")),
        ];
        for con in [&mut ours[0], &mut theirs[0]] {
            let _ = con.req_command(&redis::cmd("FLUSHALL"));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        for step in 0..steps {
            let (client, command) = random_step(&mut rng);
            let mut cmd = redis::cmd(&command[0]);
            for word in &command[1..] {
                cmd.arg(word);
            }
            let a = normalize(ours[client].req_command(&cmd));
            let b = normalize(theirs[client].req_command(&cmd));
            assert_eq!(
                a, b,
                "seed {seed} step {step} resp3={resp3} client {client}: {command:?}\n strata: {a}\n  redis: {b}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_transactions_match_redis() {
    let server = start().await;
    let redis = RedisServer::start();
    let strata = server.url(false);
    let theirs = format!("redis://127.0.0.1:{}/", redis.port);
    tokio::task::spawn_blocking(move || {
        for seed in 1..=8u64 {
            differential::run_stream(seed, seed % 2 == 0, &strata, &theirs, 1500);
        }
    })
    .await
    .expect("streams ran");
}
