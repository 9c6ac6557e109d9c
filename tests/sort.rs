//! SORT and SORT_RO through real clients, RESP2 and RESP3: numeric and
//! ALPHA sorts of lists, sets and sorted sets, BY and GET with string keys
//! and hash fields, BY nosort, LIMIT, STORE (also across a restart), the
//! keyspace notifications of STORE, and the errors.

mod common;

use std::time::Duration;

use common::*;
use redis::Value;

fn bulks(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|item| bulk(item)).collect())
}

/// A reply of bulk strings (nil as `None`).
fn texts(value: Value) -> Vec<Option<String>> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::BulkString(data) => Some(String::from_utf8_lossy(&data).into_owned()),
                Value::Nil => None,
                other => panic!("expected a bulk string or nil, got {other:?}"),
            })
            .collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

async fn sorted_reply(con: &mut Conn, args: &[&str]) -> Vec<String> {
    let mut items: Vec<String> = texts(q(con, args).await).into_iter().flatten().collect();
    items.sort();
    items
}

async fn numeric_and_alpha_sorts(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(
        &mut con,
        &["RPUSH", "l", "3", "10", "-1", "2.5", "1e1", "0x2", "01"],
    )
    .await;
    // Equal values (10 and 1e1) fall back to their bytes.
    assert_eq!(
        q(&mut con, &["SORT", "l"]).await,
        bulks(&["-1", "01", "0x2", "2.5", "3", "10", "1e1"])
    );
    assert_eq!(
        q(&mut con, &["SORT", "l", "DESC"]).await,
        bulks(&["1e1", "10", "3", "2.5", "0x2", "01", "-1"])
    );
    assert_eq!(
        q(&mut con, &["sort", "l", "alpha"]).await,
        bulks(&["-1", "01", "0x2", "10", "1e1", "2.5", "3"])
    );
    assert_eq!(
        q(&mut con, &["SORT", "l", "ALPHA", "DESC", "ASC"]).await,
        q(&mut con, &["SORT", "l", "ALPHA"]).await
    );
    assert_eq!(
        q(&mut con, &["SORT_RO", "l", "LIMIT", "1", "2"]).await,
        bulks(&["01", "0x2"])
    );

    int(
        &mut con,
        &["SADD", "s", "5", "-3", "100", "7", "inf", "-inf"],
    )
    .await;
    assert_eq!(
        q(&mut con, &["SORT", "s"]).await,
        bulks(&["-inf", "-3", "5", "7", "100", "inf"])
    );
    assert_eq!(
        q(&mut con, &["SORT", "s", "ALPHA", "DESC", "LIMIT", "0", "2"]).await,
        bulks(&["inf", "7"])
    );

    // A sorted set sorts by its members, not its scores.
    int(&mut con, &["ZADD", "z", "1", "30", "2", "20", "3", "10"]).await;
    assert_eq!(
        q(&mut con, &["SORT", "z"]).await,
        bulks(&["10", "20", "30"])
    );
    int(&mut con, &["ZADD", "zw", "1", "b", "2", "a", "3", "c"]).await;
    assert_eq!(
        q(&mut con, &["SORT", "zw", "ALPHA"]).await,
        bulks(&["a", "b", "c"])
    );

    // Elements that are not numbers, for a numeric sort, wherever they are.
    int(&mut con, &["RPUSH", "mixed", "1", "2", "x"]).await;
    for args in [
        &["SORT", "mixed"][..],
        &["SORT", "mixed", "LIMIT", "0", "1"],
        &["SORT", "zw"],
        &["SORT", "mixed", "STORE", "dst"],
    ] {
        assert_eq!(
            err(&mut con, args).await,
            "ERR One or more scores can't be converted into double",
            "{args:?}"
        );
    }
    assert_eq!(int(&mut con, &["EXISTS", "dst"]).await, 0);
    assert_eq!(
        q(&mut con, &["SORT", "mixed", "ALPHA"]).await,
        bulks(&["1", "2", "x"])
    );
    for bad in ["nan", "1e400", "1e-310", "1 ", "abc"] {
        int(&mut con, &["RPUSH", "bad", bad]).await;
        assert!(
            err(&mut con, &["SORT", "bad"]).await.starts_with("ERR One"),
            "{bad}"
        );
        int(&mut con, &["DEL", "bad"]).await;
    }

    // A missing key is an empty list.
    assert_eq!(q(&mut con, &["SORT", "missing"]).await, bulks(&[]));
    assert_eq!(
        q(&mut con, &["SORT_RO", "missing", "ALPHA"]).await,
        bulks(&[])
    );
}

async fn limits(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["RPUSH", "l", "5", "4", "3", "2", "1"]).await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("0", "-1", &["1", "2", "3", "4", "5"]),
        ("0", "0", &[]),
        ("-5", "2", &["1", "2"]),
        ("3", "100", &["4", "5"]),
        ("4", "1", &["5"]),
        ("5", "1", &[]),
        ("9223372036854775807", "9223372036854775807", &[]),
        (
            "-9223372036854775808",
            "9223372036854775807",
            &["1", "2", "3", "4", "5"],
        ),
        ("2", "-7", &["3", "4", "5"]),
    ];
    for (start, count, expected) in cases {
        assert_eq!(
            q(&mut con, &["SORT", "l", "LIMIT", start, count]).await,
            bulks(expected),
            "LIMIT {start} {count}"
        );
    }
    // The last LIMIT counts.
    assert_eq!(
        q(
            &mut con,
            &["SORT", "l", "LIMIT", "0", "1", "LIMIT", "1", "1"]
        )
        .await,
        bulks(&["2"])
    );
}

async fn by_and_get(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["RPUSH", "ids", "1", "2", "3", "4"]).await;
    for (id, weight, name) in [("1", "40", "d"), ("2", "10", "b"), ("3", "30", "a")] {
        set(&mut con, &format!("w_{id}"), weight).await;
        int(
            &mut con,
            &["HSET", &format!("user:{id}"), "name", name, "age", weight],
        )
        .await;
    }
    // A missing weight counts as 0.
    assert_eq!(
        q(&mut con, &["SORT", "ids", "BY", "w_*"]).await,
        bulks(&["4", "2", "3", "1"])
    );
    assert_eq!(
        q(&mut con, &["SORT", "ids", "BY", "user:*->age", "DESC"]).await,
        bulks(&["1", "3", "2", "4"])
    );
    // ALPHA by a field: a missing one sorts first.
    assert_eq!(
        q(&mut con, &["SORT", "ids", "BY", "user:*->name", "ALPHA"]).await,
        bulks(&["4", "3", "2", "1"])
    );
    assert_eq!(
        q(
            &mut con,
            &[
                "SORT",
                "ids",
                "BY",
                "w_*",
                "GET",
                "#",
                "GET",
                "user:*->name",
                "GET",
                "w_*"
            ]
        )
        .await,
        Value::Array(vec![
            bulk("4"),
            Value::Nil,
            Value::Nil,
            bulk("2"),
            bulk("b"),
            bulk("10"),
            bulk("3"),
            bulk("a"),
            bulk("30"),
            bulk("1"),
            bulk("d"),
            bulk("40"),
        ])
    );
    // A pattern of the wrong kind of key, or without `*`, gives nil.
    assert_eq!(
        texts(
            q(
                &mut con,
                &[
                    "SORT", "ids", "LIMIT", "0", "1", "GET", "user:*", "GET", "w_*->x", "GET",
                    "w_1"
                ]
            )
            .await
        ),
        vec![None, None, None]
    );
    // A weight that is not a number fails the numeric sort.
    set(&mut con, "w_4", "heavy").await;
    assert_eq!(
        err(&mut con, &["SORT", "ids", "BY", "w_*"]).await,
        "ERR One or more scores can't be converted into double"
    );
    assert_eq!(
        q(&mut con, &["SORT", "ids", "BY", "w_*", "ALPHA"]).await,
        bulks(&["2", "3", "1", "4"])
    );
    // BY with a LIMIT: only the range needs sorting, the answer is the same.
    assert_eq!(
        q(
            &mut con,
            &["SORT", "ids", "BY", "user:*->age", "LIMIT", "1", "2"]
        )
        .await,
        bulks(&["2", "3"])
    );

    // The element itself as a key name, and a postfix after `*`.
    set(&mut con, "2-x", "two").await;
    assert_eq!(
        texts(q(&mut con, &["SORT", "ids", "GET", "*-x"]).await),
        vec![None, Some("two".into()), None, None]
    );
    // A `->` at the very end is part of the key name.
    set(&mut con, "k3->", "arrow").await;
    assert_eq!(
        texts(q(&mut con, &["SORT", "ids", "LIMIT", "2", "1", "GET", "k*->"]).await),
        vec![Some("arrow".into())]
    );
}

async fn nosort(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["RPUSH", "l", "c", "a", "b", "d"]).await;
    // No `*` in BY: the list keeps its order, DESC reverses it, LIMIT cuts it.
    assert_eq!(
        q(&mut con, &["SORT", "l", "BY", "nosort"]).await,
        bulks(&["c", "a", "b", "d"])
    );
    assert_eq!(
        q(&mut con, &["SORT", "l", "BY", "constant", "DESC"]).await,
        bulks(&["d", "b", "a", "c"])
    );
    assert_eq!(
        q(
            &mut con,
            &["SORT", "l", "BY", "nosort", "DESC", "LIMIT", "1", "2"]
        )
        .await,
        bulks(&["b", "a"])
    );
    // Non-numeric elements are never converted.
    assert_eq!(
        q(&mut con, &["SORT", "l", "BY", "nosort", "LIMIT", "3", "9"]).await,
        bulks(&["d"])
    );
    // A sorted set in its own order, LIMIT by rank.
    int(
        &mut con,
        &["ZADD", "z", "3", "x", "1", "y", "2", "w", "0", "v"],
    )
    .await;
    assert_eq!(
        q(&mut con, &["SORT", "z", "BY", "nosort"]).await,
        bulks(&["v", "y", "w", "x"])
    );
    assert_eq!(
        q(&mut con, &["SORT", "z", "BY", "nosort", "LIMIT", "1", "2"]).await,
        bulks(&["y", "w"])
    );
    assert_eq!(
        q(
            &mut con,
            &["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "1", "5"]
        )
        .await,
        bulks(&["w", "y", "v"])
    );
    assert_eq!(
        q(
            &mut con,
            &["SORT", "z", "BY", "nosort", "GET", "#", "GET", "nokey_*"]
        )
        .await,
        Value::Array(vec![
            bulk("v"),
            Value::Nil,
            bulk("y"),
            Value::Nil,
            bulk("w"),
            Value::Nil,
            bulk("x"),
            Value::Nil,
        ])
    );
    // A set has no order: the members all come back.
    int(&mut con, &["SADD", "s", "3", "1", "2"]).await;
    assert_eq!(
        sorted_reply(&mut con, &["SORT", "s", "BY", "nosort"]).await,
        ["1", "2", "3"]
    );
    // An earlier BY without `*` wins over a later one with it.
    set(&mut con, "w_a", "9").await;
    assert_eq!(
        q(&mut con, &["SORT", "l", "BY", "nosort", "BY", "w_*"]).await,
        bulks(&["c", "a", "b", "d"])
    );
}

async fn store(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    int(&mut con, &["RPUSH", "l", "3", "1", "2"]).await;
    // The destination is replaced whatever it held, and loses its TTL.
    ok(&mut con, &["SET", "dst", "string", "EX", "100"]).await;
    assert_eq!(int(&mut con, &["SORT", "l", "STORE", "dst"]).await, 3);
    assert_eq!(q(&mut con, &["TYPE", "dst"]).await, status("list"));
    assert_eq!(int(&mut con, &["TTL", "dst"]).await, -1);
    assert_eq!(
        q(&mut con, &["LRANGE", "dst", "0", "-1"]).await,
        bulks(&["1", "2", "3"])
    );
    // Sorting a list into itself.
    assert_eq!(int(&mut con, &["SORT", "l", "DESC", "STORE", "l"]).await, 3);
    assert_eq!(
        q(&mut con, &["LRANGE", "l", "0", "-1"]).await,
        bulks(&["3", "2", "1"])
    );
    // With GET: one element per pattern and element, "" for a missing value.
    set(&mut con, "name_1", "one").await;
    assert_eq!(
        int(
            &mut con,
            &["SORT", "l", "GET", "#", "GET", "name_*", "STORE", "dst"]
        )
        .await,
        6
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "dst", "0", "-1"]).await,
        bulks(&["1", "one", "2", "", "3", ""])
    );
    // An empty result deletes the destination.
    assert_eq!(
        int(&mut con, &["SORT", "l", "LIMIT", "5", "5", "STORE", "dst"]).await,
        0
    );
    assert_eq!(int(&mut con, &["EXISTS", "dst"]).await, 0);
    assert_eq!(int(&mut con, &["SORT", "missing", "STORE", "dst"]).await, 0);
    // A set stored with BY nosort is sorted ALPHA, so the list is fixed.
    int(&mut con, &["SADD", "s", "b", "10", "a", "9"]).await;
    assert_eq!(
        int(&mut con, &["SORT", "s", "BY", "nosort", "STORE", "dst"]).await,
        4
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "dst", "0", "-1"]).await,
        bulks(&["10", "9", "a", "b"])
    );
    assert_eq!(
        int(
            &mut con,
            &["SORT", "s", "BY", "nosort", "DESC", "LIMIT", "0", "2", "STORE", "dst"]
        )
        .await,
        2
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "dst", "0", "-1"]).await,
        bulks(&["b", "a"])
    );
    // SORT_RO has no STORE.
    assert_eq!(
        err(&mut con, &["SORT_RO", "l", "STORE", "dst"]).await,
        "ERR syntax error"
    );
    // Inside a transaction.
    ok(&mut con, &["MULTI"]).await;
    assert_eq!(
        q(&mut con, &["SORT", "l", "STORE", "tx"]).await,
        status("QUEUED")
    );
    assert_eq!(
        q(&mut con, &["LRANGE", "tx", "0", "-1"]).await,
        status("QUEUED")
    );
    assert_eq!(
        q(&mut con, &["EXEC"]).await,
        Value::Array(vec![Value::Int(3), bulks(&["1", "2", "3"])])
    );
}

async fn errors(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    set(&mut con, "str", "x").await;
    int(&mut con, &["HSET", "h", "f", "v"]).await;
    int(&mut con, &["RPUSH", "l", "1"]).await;
    for key in ["str", "h"] {
        for command in ["SORT", "SORT_RO"] {
            assert!(
                err(&mut con, &[command, key])
                    .await
                    .starts_with("WRONGTYPE"),
                "{command} {key}"
            );
        }
    }
    let syntax: &[&[&str]] = &[
        &["SORT", "l", "BOGUS"],
        &["SORT", "l", "LIMIT", "0"],
        &["SORT", "l", "BY"],
        &["SORT", "l", "GET"],
        &["SORT", "l", "STORE"],
        &["SORT_RO", "l", "STORE", "d"],
        // Options are checked before the key's type.
        &["SORT", "str", "BOGUS"],
    ];
    for args in syntax {
        assert_eq!(err(&mut con, args).await, "ERR syntax error", "{args:?}");
    }
    for args in [
        &["SORT", "l", "LIMIT", "x", "1"][..],
        &["SORT", "l", "LIMIT", "0", "1.5"],
        &["SORT", "str", "LIMIT", "0", "99999999999999999999"],
    ] {
        assert_eq!(
            err(&mut con, args).await,
            "ERR value is not an integer or out of range",
            "{args:?}"
        );
    }
    assert_eq!(
        err(&mut con, &["SORT"]).await,
        "ERR wrong number of arguments for 'sort' command"
    );
    assert_eq!(
        err(&mut con, &["SORT_RO"]).await,
        "ERR wrong number of arguments for 'sort_ro' command"
    );
}

async fn command_info(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    let info = |value: Value| match value {
        Value::Array(mut commands) => match commands.remove(0) {
            Value::Array(fields) => fields,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let flags = |value: &Value| -> Vec<String> {
        match value {
            Value::Array(items) | Value::Set(items) => items
                .iter()
                .map(|item| match item {
                    Value::SimpleString(text) => text.clone(),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    let sort = info(q(&mut con, &["COMMAND", "INFO", "sort"]).await);
    assert_eq!(sort[1], Value::Int(-2));
    assert_eq!(flags(&sort[2]), ["write", "denyoom", "movablekeys"]);
    assert_eq!(sort[3..6], [Value::Int(1), Value::Int(1), Value::Int(1)]);
    let sort_ro = info(q(&mut con, &["COMMAND", "INFO", "sort_ro"]).await);
    assert_eq!(sort_ro[1], Value::Int(-2));
    assert_eq!(flags(&sort_ro[2]), ["readonly", "movablekeys"]);
}

both_protocols!(
    numeric_and_alpha_sorts,
    limits,
    by_and_get,
    nosort,
    store,
    errors,
    command_info
);

/// STORE fires `sortstore` (after `new` for a new key); an empty result
/// that deletes the destination fires `del`; a missing key to sort fires
/// `keymiss`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_notifications() {
    let server = start().await;
    let mut con = server.client(false).await;
    ok(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", "Eglnm"],
    )
    .await;
    int(&mut con, &["RPUSH", "l", "2", "1"]).await;
    let url = server.url(false);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let listener = std::thread::spawn(move || {
        let client = redis::Client::open(url).expect("url");
        let mut sub = client.get_connection().expect("connects");
        sub.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut pubsub = sub.as_pubsub();
        pubsub.psubscribe("__keyevent@0__:*").expect("psubscribe");
        ready_tx.send(()).expect("ready");
        let mut events = Vec::new();
        while events.len() < 5 {
            let message = pubsub.get_message().expect("an event");
            let channel = message.get_channel_name().to_string();
            let key: String = message.get_payload().expect("payload");
            events.push(format!("{channel} {key}"));
        }
        events
    });
    tokio::time::timeout(Duration::from_secs(5), ready_rx)
        .await
        .expect("subscribed in time")
        .expect("subscribed");
    assert_eq!(int(&mut con, &["SORT", "l", "STORE", "dst"]).await, 2);
    assert_eq!(int(&mut con, &["SORT", "l", "STORE", "dst"]).await, 2);
    assert_eq!(
        int(&mut con, &["SORT", "l", "LIMIT", "0", "0", "STORE", "dst"]).await,
        0
    );
    // Nothing to delete: only the miss.
    assert_eq!(int(&mut con, &["SORT", "missing", "STORE", "dst"]).await, 0);
    let events = tokio::task::spawn_blocking(move || listener.join().expect("listener"))
        .await
        .expect("joined");
    assert_eq!(
        events,
        [
            "__keyevent@0__:new dst",
            "__keyevent@0__:sortstore dst",
            "__keyevent@0__:sortstore dst",
            "__keyevent@0__:del dst",
            "__keyevent@0__:keymiss missing",
        ]
    );
}

/// A stored list is a list like any other: it survives a restart, and a
/// sort reads weights that come back from disk.
#[tokio::test]
async fn stored_lists_survive_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = start_on(dir.path(), |_| {}).await;
    let mut con = connect(app.local_addr(), false).await;
    let mut ids = vec!["RPUSH".to_string(), "ids".to_string()];
    for i in 0..300 {
        ids.push(i.to_string());
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    int(&mut con, &ids).await;
    for i in 0..300 {
        // Weights in reverse, so the sort reverses the ids.
        int(
            &mut con,
            &["HSET", &format!("h:{i}"), "w", &(1000 - i).to_string()],
        )
        .await;
    }
    assert_eq!(
        int(
            &mut con,
            &["SORT", "ids", "BY", "h:*->w", "STORE", "sorted"]
        )
        .await,
        300
    );
    int(&mut con, &["RPUSH", "small", "b", "a"]).await;
    assert_eq!(
        int(&mut con, &["SORT", "small", "ALPHA", "STORE", "small"]).await,
        2
    );
    drop(con);
    app.shutdown().await;

    let app = start_on(dir.path(), |_| {}).await;
    let mut con = connect(app.local_addr(), true).await;
    let expected: Vec<String> = (0..300).rev().map(|i| i.to_string()).collect();
    let stored: Vec<String> = redis::cmd("LRANGE")
        .arg("sorted")
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .expect("LRANGE");
    assert_eq!(stored, expected);
    assert_eq!(
        q(&mut con, &["LRANGE", "small", "0", "-1"]).await,
        bulks(&["a", "b"])
    );
    let resorted: Vec<String> = redis::cmd("SORT_RO")
        .arg("ids")
        .arg("BY")
        .arg("h:*->w")
        .arg("LIMIT")
        .arg(0)
        .arg(3)
        .query_async(&mut con)
        .await
        .expect("SORT_RO");
    assert_eq!(resorted, ["299", "298", "297"]);
    drop(con);
    app.shutdown().await;
}
