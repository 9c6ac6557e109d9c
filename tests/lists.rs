//! The list family through real clients, RESP2 and RESP3: every command,
//! its errors, blocking pops with several waiting clients and timeouts, and
//! lists that survive a restart and eviction from memory.

mod common;

use std::time::{Duration, Instant};

use common::*;
use redis::Value;
use strata::config::MemorySize;

fn bulks(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|item| bulk(item)).collect())
}

fn nil_array(resp3: bool) -> Value {
    // The redis crate reads RESP2's `*-1` and RESP3's `_` both as Nil.
    let _ = resp3;
    Value::Nil
}

async fn pushes_pops_and_ranges(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    assert_eq!(int(&mut con, &["RPUSH", "l", "b", "c"]).await, 2);
    assert_eq!(int(&mut con, &["LPUSH", "l", "a", "z"]).await, 4);
    assert_eq!(
        q(&mut con, &["LRANGE", "l", "0", "-1"]).await,
        bulks(&["z", "a", "b", "c"])
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "l", "-2", "100"]).await,
        bulks(&["b", "c"])
    );
    assert_eq!(q(&mut con, &["LRANGE", "l", "3", "1"]).await, bulks(&[]));
    assert_eq!(
        q(&mut con, &["LRANGE", "nokey", "0", "-1"]).await,
        bulks(&[])
    );
    assert_eq!(int(&mut con, &["LLEN", "l"]).await, 4);
    assert_eq!(int(&mut con, &["LLEN", "nokey"]).await, 0);
    assert_eq!(
        text(&mut con, &["LINDEX", "l", "-1"]).await.as_deref(),
        Some("c")
    );
    assert_eq!(text(&mut con, &["LINDEX", "l", "9"]).await, None);
    assert_eq!(int(&mut con, &["LPUSHX", "nokey", "x"]).await, 0);
    assert_eq!(int(&mut con, &["RPUSHX", "l", "d"]).await, 5);
    assert_eq!(text(&mut con, &["LPOP", "l"]).await.as_deref(), Some("z"));
    assert_eq!(q(&mut con, &["RPOP", "l", "2"]).await, bulks(&["d", "c"]));
    assert_eq!(q(&mut con, &["LPOP", "l", "0"]).await, bulks(&[]));
    assert_eq!(q(&mut con, &["LPOP", "nokey", "2"]).await, nil_array(resp3));
    assert_eq!(text(&mut con, &["LPOP", "nokey"]).await, None);
    assert_eq!(
        err(&mut con, &["LPOP", "l", "-1"]).await,
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        err(&mut con, &["LPOP", "l", "1", "2"]).await,
        "ERR wrong number of arguments for 'lpop' command"
    );
    // Popping the last element deletes the key.
    assert_eq!(q(&mut con, &["RPOP", "l", "10"]).await, bulks(&["b", "a"]));
    assert_eq!(int(&mut con, &["EXISTS", "l"]).await, 0);
    set(&mut con, "s", "v").await;
    for command in [
        &["LPUSH", "s", "x"][..],
        &["LRANGE", "s", "0", "1"],
        &["LLEN", "s"],
        &["LPOP", "s"],
        &["BLPOP", "s", "0"],
    ] {
        assert!(
            err(&mut con, command).await.starts_with("WRONGTYPE"),
            "{command:?}"
        );
    }
    assert_eq!(q(&mut con, &["TYPE", "s"]).await, status("string"));
    int(&mut con, &["RPUSH", "t", "x"]).await;
    assert_eq!(q(&mut con, &["TYPE", "t"]).await, status("list"));
    assert_eq!(
        text(&mut con, &["OBJECT", "ENCODING", "t"])
            .await
            .as_deref(),
        Some("quicklist")
    );
}

async fn edits_in_the_middle(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["RPUSH", "l", "a", "b", "c", "a", "d", "a"]).await;
    assert_eq!(
        int(&mut con, &["LINSERT", "l", "BEFORE", "c", "X"]).await,
        7
    );
    assert_eq!(
        int(&mut con, &["LINSERT", "l", "AFTER", "zz", "Y"]).await,
        -1
    );
    assert_eq!(
        int(&mut con, &["LINSERT", "nokey", "AFTER", "a", "Y"]).await,
        0
    );
    assert_eq!(
        err(&mut con, &["LINSERT", "l", "MIDDLE", "a", "Y"]).await,
        "ERR syntax error"
    );
    assert_eq!(int(&mut con, &["LREM", "l", "-2", "a"]).await, 2);
    assert_eq!(
        q(&mut con, &["LRANGE", "l", "0", "-1"]).await,
        bulks(&["a", "b", "X", "c", "d"])
    );
    ok(&mut con, &["LSET", "l", "-1", "D"]).await;
    assert_eq!(
        err(&mut con, &["LSET", "l", "5", "x"]).await,
        "ERR index out of range"
    );
    assert_eq!(
        err(&mut con, &["LSET", "nokey", "0", "x"]).await,
        "ERR no such key"
    );
    ok(&mut con, &["LTRIM", "l", "1", "-2"]).await;
    assert_eq!(
        q(&mut con, &["LRANGE", "l", "0", "-1"]).await,
        bulks(&["b", "X", "c"])
    );
    ok(&mut con, &["LTRIM", "l", "5", "10"]).await;
    assert_eq!(int(&mut con, &["EXISTS", "l"]).await, 0);

    int(&mut con, &["RPUSH", "p", "a", "b", "c", "a", "d", "a"]).await;
    assert_eq!(int(&mut con, &["LPOS", "p", "a"]).await, 0);
    assert_eq!(int(&mut con, &["LPOS", "p", "a", "RANK", "-1"]).await, 5);
    assert_eq!(
        q(&mut con, &["LPOS", "p", "a", "COUNT", "0"]).await,
        Value::Array(vec![Value::Int(0), Value::Int(3), Value::Int(5)])
    );
    assert_eq!(
        q(
            &mut con,
            &["LPOS", "p", "a", "RANK", "2", "COUNT", "2", "MAXLEN", "4"]
        )
        .await,
        Value::Array(vec![Value::Int(3)])
    );
    assert_eq!(q(&mut con, &["LPOS", "p", "zz"]).await, Value::Nil);
    assert!(err(&mut con, &["LPOS", "p", "a", "RANK", "0"])
        .await
        .starts_with("ERR RANK can't be zero"));
    assert_eq!(
        err(&mut con, &["LPOS", "p", "a", "COUNT", "-1"]).await,
        "ERR COUNT can't be negative"
    );
}

async fn moves_and_multi_pops(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["RPUSH", "src", "1", "2", "3"]).await;
    assert_eq!(
        text(&mut con, &["LMOVE", "src", "dst", "LEFT", "RIGHT"])
            .await
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        text(&mut con, &["RPOPLPUSH", "src", "dst"])
            .await
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "dst", "0", "-1"]).await,
        bulks(&["3", "1"])
    );
    // A list onto itself rotates.
    assert_eq!(
        text(&mut con, &["LMOVE", "dst", "dst", "LEFT", "RIGHT"])
            .await
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "dst", "0", "-1"]).await,
        bulks(&["1", "3"])
    );
    assert_eq!(
        text(&mut con, &["LMOVE", "nokey", "dst", "LEFT", "RIGHT"]).await,
        None
    );
    assert_eq!(
        err(&mut con, &["LMOVE", "src", "dst", "UP", "RIGHT"]).await,
        "ERR syntax error"
    );
    set(&mut con, "str", "v").await;
    assert!(err(&mut con, &["LMOVE", "src", "str", "LEFT", "LEFT"])
        .await
        .starts_with("WRONGTYPE"));
    assert_eq!(
        q(&mut con, &["LRANGE", "src", "0", "-1"]).await,
        bulks(&["2"])
    );

    assert_eq!(
        q(
            &mut con,
            &["LMPOP", "2", "nokey", "dst", "RIGHT", "COUNT", "10"]
        )
        .await,
        Value::Array(vec![bulk("dst"), bulks(&["3", "1"])])
    );
    assert_eq!(
        q(&mut con, &["LMPOP", "1", "nokey", "LEFT"]).await,
        nil_array(resp3)
    );
    assert_eq!(
        err(&mut con, &["LMPOP", "0", "a", "LEFT"]).await,
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        err(&mut con, &["LMPOP", "2", "a", "LEFT"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["LMPOP", "1", "a", "LEFT", "COUNT", "0"]).await,
        "ERR count should be greater than 0"
    );
}

async fn blocked_clients_are_served_in_arrival_order(resp3: bool) {
    let server = start().await;
    let mut waiters = Vec::new();
    for i in 0..3 {
        let mut con = server.client(resp3).await;
        waiters.push(tokio::spawn(async move {
            let reply: Value = redis::cmd("BLPOP")
                .arg("other")
                .arg("queue")
                .arg(5)
                .query_async(&mut con)
                .await
                .expect("BLPOP");
            (i, reply)
        }));
        // Arrival order is the order they block in.
        let mut admin = server.client(false).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while info_field(&mut admin, "clients", "blocked_clients").await < i + 1 {
            assert!(Instant::now() < deadline, "client {i} never blocked");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut con = server.client(resp3).await;
    assert_eq!(
        int(&mut con, &["RPUSH", "queue", "first", "second"]).await,
        2
    );
    int(&mut con, &["RPUSH", "queue", "third", "fourth"]).await;
    let mut served = Vec::new();
    for waiter in waiters {
        served.push(waiter.await.expect("waiter"));
    }
    assert_eq!(
        served,
        vec![
            (0, Value::Array(vec![bulk("queue"), bulk("first")])),
            (1, Value::Array(vec![bulk("queue"), bulk("second")])),
            (2, Value::Array(vec![bulk("queue"), bulk("third")])),
        ]
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "queue", "0", "-1"]).await,
        bulks(&["fourth"])
    );
    assert_eq!(info_field(&mut con, "clients", "blocked_clients").await, 0);
}

async fn blocking_timeouts_and_moves(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;
    let started = Instant::now();
    assert_eq!(
        q(&mut con, &["BLPOP", "none", "0.2"]).await,
        nil_array(resp3)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(
        q(&mut con, &["BLMOVE", "none", "dst", "LEFT", "LEFT", "0.05"]).await,
        Value::Nil
    );
    assert_eq!(
        q(&mut con, &["BLMPOP", "0.05", "1", "none", "LEFT"]).await,
        nil_array(resp3)
    );
    assert_eq!(
        err(&mut con, &["BLPOP", "k", "-1"]).await,
        "ERR timeout is negative"
    );
    assert_eq!(
        err(&mut con, &["BLPOP", "k", "abc"]).await,
        "ERR timeout is not a float or out of range"
    );

    let mut waiter = server.client(resp3).await;
    let moved = tokio::spawn(async move {
        let reply: Value = redis::cmd("BLMOVE")
            .arg("src")
            .arg("dst")
            .arg("RIGHT")
            .arg("LEFT")
            .arg(0)
            .query_async(&mut waiter)
            .await
            .expect("BLMOVE");
        reply
    });
    let mut multi = server.client(resp3).await;
    let popped = tokio::spawn(async move {
        let reply: Value = redis::cmd("BLMPOP")
            .arg(5)
            .arg(1)
            .arg("dst")
            .arg("LEFT")
            .arg("COUNT")
            .arg(5)
            .query_async(&mut multi)
            .await
            .expect("BLMPOP");
        reply
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut con, "clients", "blocked_clients").await < 2 {
        assert!(Instant::now() < deadline, "clients never blocked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The element moves to `dst`, which wakes the second client in turn.
    int(&mut con, &["RPUSH", "src", "a", "b"]).await;
    assert_eq!(moved.await.expect("mover"), bulk("b"));
    assert_eq!(
        popped.await.expect("popper"),
        Value::Array(vec![bulk("dst"), bulks(&["b"])])
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "src", "0", "-1"]).await,
        bulks(&["a"])
    );
    assert_eq!(int(&mut con, &["EXISTS", "dst"]).await, 0);
}

/// A client gone while blocked leaves no waiter behind to swallow an element.
async fn a_disconnected_waiter_is_forgotten(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;
    {
        let mut waiter = std::net::TcpStream::connect(server.addr).expect("connects");
        use std::io::Write;
        waiter
            .write_all(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
            .expect("writes");
        let deadline = Instant::now() + Duration::from_secs(5);
        while info_field(&mut con, "clients", "blocked_clients").await < 1 {
            assert!(Instant::now() < deadline, "never blocked");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut con, "clients", "blocked_clients").await > 0 {
        assert!(Instant::now() < deadline, "the waiter stayed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    int(&mut con, &["RPUSH", "q", "kept"]).await;
    assert_eq!(
        q(&mut con, &["LRANGE", "q", "0", "-1"]).await,
        bulks(&["kept"])
    );
}

async fn lists_survive_restart_and_eviction(resp3: bool) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let small = |config: &mut strata::config::Config| {
        config.memory.maxmemory = MemorySize(256 * 1024);
    };
    let app = start_on(dir.path(), small).await;
    let mut con = connect(app.local_addr(), resp3).await;
    let mut expected = Vec::new();
    for i in 0..2_000 {
        let item = format!("item-{i}-{}", "x".repeat(40));
        int(&mut con, &["RPUSH", "big", &item]).await;
        expected.push(item);
    }
    // Other lists push the big one out of memory; reading it loads it back.
    for i in 0..200 {
        int(
            &mut con,
            &["RPUSH", &format!("other:{i}"), &"y".repeat(1_000)],
        )
        .await;
    }
    assert!(info_field(&mut con, "tiers", "hot_evictions").await > 0);
    int(&mut con, &["LPUSH", "big", "head"]).await;
    expected.insert(0, "head".to_string());
    ok(&mut con, &["LSET", "big", "1000", "changed"]).await;
    expected[1000] = "changed".to_string();
    ok(&mut con, &["SET", "ttl-list-marker", "x"]).await;
    int(&mut con, &["RPUSH", "expiring", "a"]).await;
    int(&mut con, &["EXPIRE", "expiring", "100"]).await;
    drop(con);
    app.shutdown().await;

    let app = start_on(dir.path(), small).await;
    let mut con = connect(app.local_addr(), resp3).await;
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg("big")
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .expect("LRANGE");
    assert_eq!(items, expected);
    assert_eq!(int(&mut con, &["LLEN", "other:7"]).await, 1);
    let ttl = int(&mut con, &["TTL", "expiring"]).await;
    assert!((90..=100).contains(&ttl), "{ttl}");
    app.shutdown().await;
}

/// A push inside MULTI/EXEC wakes a waiter once the transaction has run
/// whole; a blocking pop inside a transaction never blocks.
async fn transactions_and_blocking(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;
    let mut waiter = server.client(resp3).await;
    let popped = tokio::spawn(async move {
        let reply: Value = redis::cmd("BRPOP")
            .arg("jobs")
            .arg(5)
            .query_async(&mut waiter)
            .await
            .expect("BRPOP");
        reply
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut con, "clients", "blocked_clients").await < 1 {
        assert!(Instant::now() < deadline, "never blocked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let replies: Value = redis::pipe()
        .atomic()
        .cmd("RPUSH")
        .arg("jobs")
        .arg("a")
        .arg("b")
        .cmd("RPOP")
        .arg("jobs")
        .cmd("BLPOP")
        .arg("nothing")
        .arg(0)
        .query_async(&mut con)
        .await
        .expect("EXEC");
    assert_eq!(
        replies,
        Value::Array(vec![Value::Int(2), bulk("b"), Value::Nil])
    );
    // The waiter got what the transaction left, not what it popped itself.
    assert_eq!(
        popped.await.expect("waiter"),
        Value::Array(vec![bulk("jobs"), bulk("a")])
    );
    assert_eq!(int(&mut con, &["EXISTS", "jobs"]).await, 0);
}

/// BZPOPMIN/BZPOPMAX/BZMPOP block like the list pops and wake on ZADD.
async fn sorted_set_blocking_pops(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;
    let score = |s: &str| {
        if resp3 {
            Value::Double(s.parse().expect("a score"))
        } else {
            bulk(s)
        }
    };
    assert_eq!(q(&mut con, &["BZPOPMIN", "none", "0.05"]).await, Value::Nil);
    let mut waiter = server.client(resp3).await;
    let popped = tokio::spawn(async move {
        let reply: Value = redis::cmd("BZPOPMAX")
            .arg("z")
            .arg(5)
            .query_async(&mut waiter)
            .await
            .expect("BZPOPMAX");
        reply
    });
    let mut second = server.client(resp3).await;
    let multi_popped = tokio::spawn(async move {
        let reply: Value = redis::cmd("BZMPOP")
            .arg(5)
            .arg(1)
            .arg("z")
            .arg("MIN")
            .arg("COUNT")
            .arg(10)
            .query_async(&mut second)
            .await
            .expect("BZMPOP");
        reply
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut con, "clients", "blocked_clients").await < 2 {
        assert!(Instant::now() < deadline, "clients never blocked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        int(&mut con, &["ZADD", "z", "1", "a", "2.5", "b", "3", "c"]).await,
        3
    );
    assert_eq!(
        popped.await.expect("waiter"),
        Value::Array(vec![bulk("z"), bulk("c"), score("3")])
    );
    let pair = |m: &str, s: &str| Value::Array(vec![bulk(m), score(s)]);
    assert_eq!(
        multi_popped.await.expect("second waiter"),
        Value::Array(vec![
            bulk("z"),
            Value::Array(vec![pair("a", "1"), pair("b", "2.5")])
        ])
    );
    assert_eq!(int(&mut con, &["EXISTS", "z"]).await, 0);
}

/// Waits until `count` clients are blocked.
async fn until_blocked(con: &mut Conn, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(con, "clients", "blocked_clients").await < count {
        assert!(Instant::now() < deadline, "clients never blocked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs a command on its own connection in the background; the reply or
/// the full error text.
fn spawn_command(
    mut con: redis::aio::MultiplexedConnection,
    setup: Vec<&'static str>,
    args: Vec<&'static str>,
) -> tokio::task::JoinHandle<Result<Value, String>> {
    tokio::spawn(async move {
        if !setup.is_empty() {
            q(&mut con, &setup).await;
        }
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        raw(&mut con, &bytes).await.map_err(|err| {
            format!(
                "{} {}",
                err.code().unwrap_or("?"),
                err.detail().unwrap_or("")
            )
        })
    })
}

/// Redis's answers to a blocked client that is not simply served: BLMOVE
/// whose destination holds another type gets the error (the element
/// stays), CLIENT UNBLOCK ends a wait with the timeout reply or an error,
/// and SWAPDB wakes a client whose key it brought in.
async fn waits_ended_otherwise(resp3: bool) {
    let server = start().await;
    let mut con = server.client(resp3).await;

    set(&mut con, "target", "nolist").await;
    let mover = spawn_command(
        server.client(resp3).await,
        vec![],
        vec!["BRPOPLPUSH", "blist", "target", "0"],
    );
    until_blocked(&mut con, 1).await;
    int(&mut con, &["RPUSH", "blist", "a", "b", "c"]).await;
    assert_eq!(
        mover.await.expect("mover"),
        Err("WRONGTYPE Operation against a key holding the wrong kind of value".into())
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "blist", "0", "-1"]).await,
        bulks(&["a", "b", "c"])
    );
    assert_eq!(info_field(&mut con, "clients", "blocked_clients").await, 0);

    for (reason, expected) in [
        ("TIMEOUT", Ok(nil_array(resp3))),
        (
            "ERROR",
            Err("UNBLOCKED client unblocked via CLIENT UNBLOCK".to_string()),
        ),
    ] {
        let mut waiter = server.client(resp3).await;
        let id = int(&mut waiter, &["CLIENT", "ID"]).await.to_string();
        let popper = spawn_command(waiter, vec![], vec!["BLPOP", "none", "0"]);
        until_blocked(&mut con, 1).await;
        assert_eq!(int(&mut con, &["CLIENT", "UNBLOCK", &id, reason]).await, 1);
        assert_eq!(popper.await.expect("popper"), expected, "{reason}");
        assert_eq!(int(&mut con, &["CLIENT", "UNBLOCK", &id]).await, 0);
    }
    assert_eq!(
        err(&mut con, &["CLIENT", "UNBLOCK", "1", "LATER"]).await,
        "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"
    );

    q(&mut con, &["SELECT", "1"]).await;
    int(&mut con, &["RPUSH", "k", "hello"]).await;
    let popper = spawn_command(
        server.client(resp3).await,
        vec!["SELECT", "9"],
        vec!["BRPOP", "k", "5"],
    );
    until_blocked(&mut con, 1).await;
    ok(&mut con, &["SWAPDB", "1", "9"]).await;
    assert_eq!(
        popper.await.expect("popper"),
        Ok(Value::Array(vec![bulk("k"), bulk("hello")]))
    );
}

/// LMPOP's numkeys and COUNT take Redis's one message for a number out of
/// range and for no number at all.
async fn multi_pop_argument_errors(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    for numkeys in ["0", "a", "-1"] {
        assert_eq!(
            err(&mut con, &["LMPOP", numkeys, "l", "LEFT"]).await,
            "ERR numkeys should be greater than 0"
        );
    }
    for count in ["0", "a", "-1"] {
        assert_eq!(
            err(&mut con, &["LMPOP", "1", "l", "LEFT", "COUNT", count]).await,
            "ERR count should be greater than 0"
        );
    }
}

both_protocols!(
    waits_ended_otherwise,
    multi_pop_argument_errors,
    sorted_set_blocking_pops,
    transactions_and_blocking,
    pushes_pops_and_ranges,
    edits_in_the_middle,
    moves_and_multi_pops,
    blocked_clients_are_served_in_arrival_order,
    blocking_timeouts_and_moves,
    a_disconnected_waiter_is_forgotten,
    lists_survive_restart_and_eviction,
);
