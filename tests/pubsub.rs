//! Pub/sub and keyspace notifications over raw sockets, so the exact frames
//! (RESP2 arrays, RESP3 pushes) are checked: subscribers in both protocols,
//! patterns, PUBSUB introspection, subscribed-mode rules, a subscriber that
//! never reads, keyspace and tier events, and the same scripts against a
//! real `redis-server` byte for byte.

mod common;

use common::RedisServer;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{err, int, ok, q, start, start_with};
use strata::config::MemorySize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One decoded frame; `Push` is RESP3's `>`.
#[derive(Debug, Clone, PartialEq)]
enum F {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<F>),
    Push(Vec<F>),
    Map(Vec<F>),
}

fn b(text: &str) -> F {
    F::Bulk(text.as_bytes().to_vec())
}

/// Decodes one frame at the start of `buf`: the frame and its length.
fn parse(buf: &[u8]) -> Option<(F, usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..end]).ok()?;
    let head = end + 2;
    let items = |count: usize, from: usize| -> Option<(Vec<F>, usize)> {
        let mut at = from;
        let mut out = Vec::new();
        for _ in 0..count {
            let (frame, len) = parse(&buf[at..])?;
            out.push(frame);
            at += len;
        }
        Some((out, at))
    };
    match buf.first()? {
        b'+' => Some((F::Simple(line.into()), head)),
        b'-' => Some((F::Error(line.into()), head)),
        b':' => Some((F::Int(line.parse().ok()?), head)),
        b'_' => Some((F::Null, head)),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some((F::Null, head));
            }
            let len = len as usize;
            let data = buf.get(head..head + len)?.to_vec();
            buf.get(head + len + 1)?;
            Some((F::Bulk(data), head + len + 2))
        }
        b'*' | b'>' | b'%' => {
            let count: i64 = line.parse().ok()?;
            if count < 0 {
                return Some((F::Null, head));
            }
            let marker = buf[0];
            let count = count as usize * if marker == b'%' { 2 } else { 1 };
            let (list, at) = items(count, head)?;
            let frame = match marker {
                b'*' => F::Array(list),
                b'>' => F::Push(list),
                _ => F::Map(list),
            };
            Some((frame, at))
        }
        _ => None,
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// A client on a plain socket that sees every byte the server sends.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connects"),
            buf: Vec::new(),
        }
    }

    /// Connects and switches to RESP3 (HELLO's reply is dropped).
    async fn resp3(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr).await;
        raw.send(&["HELLO", "3"]).await;
        assert!(matches!(raw.frame().await, F::Map(_)));
        raw
    }

    async fn send(&mut self, args: &[&str]) {
        self.stream.write_all(&encode(args)).await.expect("sends");
    }

    /// The next frame and its bytes, or `None` after `wait` without one.
    async fn next_raw(&mut self, wait: Duration) -> Option<(F, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((frame, len)) = parse(&self.buf) {
                let bytes = self.buf.drain(..len).collect();
                return Some((frame, bytes));
            }
            let mut chunk = vec![0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    async fn frame(&mut self) -> F {
        self.next_raw(Duration::from_secs(5))
            .await
            .expect("a frame within 5 s")
            .0
    }

    /// Sends a command and returns its (first) reply frame.
    async fn call(&mut self, args: &[&str]) -> F {
        self.send(args).await;
        self.frame().await
    }

    /// Nothing more arrives within 100 ms.
    async fn silent(&mut self) -> bool {
        self.next_raw(Duration::from_millis(100)).await.is_none()
    }
}

fn message(push: bool, parts: &[&str], count: Option<i64>) -> F {
    let mut items: Vec<F> = parts.iter().map(|p| b(p)).collect();
    if let Some(n) = count {
        items.push(F::Int(n));
    }
    if push {
        F::Push(items)
    } else {
        F::Array(items)
    }
}

#[tokio::test]
async fn resp2_and_resp3_subscribers_on_one_channel() {
    let server = start().await;
    let mut pub_con = server.client(false).await;
    let mut two = Raw::connect(server.addr).await;
    let mut three = Raw::resp3(server.addr).await;
    for (raw, push) in [(&mut two, false), (&mut three, true)] {
        raw.send(&["SUBSCRIBE", "news", "sport"]).await;
        assert_eq!(
            raw.frame().await,
            message(push, &["subscribe", "news"], Some(1))
        );
        assert_eq!(
            raw.frame().await,
            message(push, &["subscribe", "sport"], Some(2))
        );
    }
    assert_eq!(int(&mut pub_con, &["PUBLISH", "news", "hello"]).await, 2);
    assert_eq!(int(&mut pub_con, &["PUBLISH", "nobody", "x"]).await, 0);
    let (frame, bytes) = two.next_raw(Duration::from_secs(5)).await.unwrap();
    assert_eq!(frame, message(false, &["message", "news", "hello"], None));
    assert_eq!(
        bytes,
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    );
    let (frame, bytes) = three.next_raw(Duration::from_secs(5)).await.unwrap();
    assert_eq!(frame, message(true, &["message", "news", "hello"], None));
    assert!(bytes.starts_with(b">3\r\n"));

    // A RESP3 subscriber may run any command; its own publish arrives
    // before the PUBLISH reply, as in Redis.
    assert_eq!(three.call(&["SET", "k", "v"]).await, F::Simple("OK".into()));
    three.send(&["PUBLISH", "sport", "goal"]).await;
    assert_eq!(
        three.frame().await,
        message(true, &["message", "sport", "goal"], None)
    );
    assert_eq!(three.frame().await, F::Int(2));
    assert_eq!(
        two.frame().await,
        message(false, &["message", "sport", "goal"], None)
    );

    // UNSUBSCRIBE names each channel left, then with none left a nil.
    two.send(&["UNSUBSCRIBE"]).await;
    assert_eq!(
        two.frame().await,
        message(false, &["unsubscribe", "news"], Some(1))
    );
    assert_eq!(
        two.frame().await,
        message(false, &["unsubscribe", "sport"], Some(0))
    );
    assert_eq!(
        two.call(&["UNSUBSCRIBE"]).await,
        F::Array(vec![b("unsubscribe"), F::Null, F::Int(0)])
    );
    // Out of subscribed mode, a plain PING again.
    assert_eq!(two.call(&["PING"]).await, F::Simple("PONG".into()));
    assert_eq!(int(&mut pub_con, &["PUBLISH", "news", "again"]).await, 1);
}

#[tokio::test]
async fn patterns_shards_and_introspection() {
    let server = start().await;
    let mut con = server.client(false).await;
    let mut sub = Raw::connect(server.addr).await;
    sub.send(&["PSUBSCRIBE", "news.*", "h?llo"]).await;
    assert_eq!(
        sub.frame().await,
        message(false, &["psubscribe", "news.*"], Some(1))
    );
    assert_eq!(
        sub.frame().await,
        message(false, &["psubscribe", "h?llo"], Some(2))
    );
    sub.send(&["SUBSCRIBE", "news.it"]).await;
    assert_eq!(
        sub.frame().await,
        message(false, &["subscribe", "news.it"], Some(3))
    );
    sub.send(&["SSUBSCRIBE", "news.it"]).await;
    // Shard channels count on their own.
    assert_eq!(
        sub.frame().await,
        message(false, &["ssubscribe", "news.it"], Some(1))
    );
    let mut other = Raw::connect(server.addr).await;
    other.send(&["PSUBSCRIBE", "news.*"]).await;
    other.frame().await;

    // A channel subscriber and two pattern subscribers.
    assert_eq!(int(&mut con, &["PUBLISH", "news.it", "ciao"]).await, 3);
    assert_eq!(
        sub.frame().await,
        message(false, &["message", "news.it", "ciao"], None)
    );
    assert_eq!(
        sub.frame().await,
        message(false, &["pmessage", "news.*", "news.it", "ciao"], None)
    );
    assert_eq!(int(&mut con, &["PUBLISH", "hallo", "x"]).await, 1);
    assert_eq!(
        sub.frame().await,
        message(false, &["pmessage", "h?llo", "hallo", "x"], None)
    );
    // SPUBLISH reaches shard subscribers only, never patterns.
    assert_eq!(int(&mut con, &["SPUBLISH", "news.it", "s"]).await, 1);
    assert_eq!(
        sub.frame().await,
        message(false, &["smessage", "news.it", "s"], None)
    );
    assert!(sub.silent().await);
    assert_eq!(
        other.frame().await,
        message(false, &["pmessage", "news.*", "news.it", "ciao"], None)
    );
    assert!(other.silent().await);

    assert_eq!(int(&mut con, &["PUBSUB", "NUMPAT"]).await, 2);
    assert_eq!(
        q(&mut con, &["PUBSUB", "NUMSUB", "news.it", "none"]).await,
        redis::Value::Array(vec![
            common::bulk("news.it"),
            redis::Value::Int(1),
            common::bulk("none"),
            redis::Value::Int(0),
        ])
    );
    assert_eq!(
        q(&mut con, &["PUBSUB", "CHANNELS", "news*"]).await,
        redis::Value::Array(vec![common::bulk("news.it")])
    );
    assert_eq!(
        q(&mut con, &["PUBSUB", "CHANNELS", "x*"]).await,
        redis::Value::Array(vec![])
    );
    assert_eq!(
        q(&mut con, &["PUBSUB", "SHARDCHANNELS"]).await,
        redis::Value::Array(vec![common::bulk("news.it")])
    );
    assert_eq!(
        q(&mut con, &["PUBSUB", "SHARDNUMSUB", "news.it"]).await,
        redis::Value::Array(vec![common::bulk("news.it"), redis::Value::Int(1)])
    );
    assert_eq!(
        err(&mut con, &["PUBSUB", "CHANNELS", "a", "b"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP."
    );
    assert_eq!(common::info_stat(&mut con, "pubsub_channels").await, 1);
    assert_eq!(common::info_stat(&mut con, "pubsub_patterns").await, 2);
    assert_eq!(common::info_stat(&mut con, "pubsubshard_channels").await, 1);
    let list = common::as_text(&q(&mut con, &["CLIENT", "LIST"]).await);
    assert!(
        list.lines()
            .any(|line| line.contains("flags=P") && line.contains("sub=1 psub=2 ssub=1")),
        "{list}"
    );

    // A connection that goes away leaves nothing behind.
    drop(sub);
    drop(other);
    let deadline = Instant::now() + Duration::from_secs(5);
    while int(&mut con, &["PUBSUB", "NUMPAT"]).await != 0 {
        assert!(Instant::now() < deadline, "patterns outlived their client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(common::info_stat(&mut con, "pubsub_channels").await, 0);
    assert_eq!(int(&mut con, &["PUBLISH", "news.it", "x"]).await, 0);
}

#[tokio::test]
async fn subscribed_mode_allows_only_the_subscribe_family_in_resp2() {
    let server = start().await;
    let mut two = Raw::connect(server.addr).await;
    two.send(&["SUBSCRIBE", "c"]).await;
    two.frame().await;
    assert_eq!(
        two.call(&["GET", "k"]).await,
        F::Error("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context".into())
    );
    assert_eq!(
        two.call(&["CLIENT", "ID"]).await,
        F::Error("ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context".into())
    );
    assert_eq!(two.call(&["PING"]).await, F::Array(vec![b("pong"), b("")]));
    assert_eq!(
        two.call(&["PING", "hi"]).await,
        F::Array(vec![b("pong"), b("hi")])
    );
    // RESET leaves subscribed mode without confirmations.
    assert_eq!(two.call(&["RESET"]).await, F::Simple("RESET".into()));
    assert_eq!(two.call(&["GET", "k"]).await, F::Null);
    let mut con = server.client(false).await;
    assert_eq!(int(&mut con, &["PUBLISH", "c", "x"]).await, 0);

    let mut three = Raw::resp3(server.addr).await;
    three.send(&["SUBSCRIBE", "c"]).await;
    three.frame().await;
    assert_eq!(three.call(&["GET", "k"]).await, F::Null);
    assert_eq!(three.call(&["PING"]).await, F::Simple("PONG".into()));
    assert_eq!(three.call(&["RESET"]).await, F::Simple("RESET".into()));
    assert_eq!(int(&mut con, &["PUBLISH", "c", "x"]).await, 0);
}

/// A subscribed client is of type `pubsub` for CLIENT LIST and CLIENT KILL,
/// and `normal` again once it has unsubscribed from everything, as Redis's
/// `getClientType`.
#[tokio::test]
async fn subscribers_are_of_type_pubsub() {
    let server = start().await;
    let mut con = server.client(false).await;
    let mut sub = Raw::connect(server.addr).await;
    assert_eq!(
        sub.call(&["CLIENT", "SETNAME", "listener"]).await,
        F::Simple("OK".into())
    );
    sub.send(&["SUBSCRIBE", "c"]).await;
    sub.frame().await;
    let named = |list: &str, name: &str| list.contains(&format!(" name={name} "));
    let pubsub = common::as_text(&q(&mut con, &["CLIENT", "LIST", "TYPE", "pubsub"]).await);
    assert!(named(&pubsub, "listener"), "{pubsub}");
    assert_eq!(pubsub.lines().count(), 1, "{pubsub}");
    let normal = common::as_text(&q(&mut con, &["CLIENT", "LIST", "TYPE", "normal"]).await);
    assert!(!named(&normal, "listener"), "{normal}");
    assert!(!normal.is_empty(), "the asking client is normal");

    // Unsubscribed from everything: normal again.
    sub.send(&["UNSUBSCRIBE"]).await;
    sub.frame().await;
    let normal = common::as_text(&q(&mut con, &["CLIENT", "LIST", "TYPE", "normal"]).await);
    assert!(named(&normal, "listener"), "{normal}");
    let pubsub = common::as_text(&q(&mut con, &["CLIENT", "LIST", "TYPE", "pubsub"]).await);
    assert_eq!(pubsub, "");

    sub.send(&["PSUBSCRIBE", "p*"]).await;
    sub.frame().await;
    assert_eq!(
        int(&mut con, &["CLIENT", "KILL", "TYPE", "normal"]).await,
        0
    );
    assert_eq!(
        int(&mut con, &["CLIENT", "KILL", "TYPE", "pubsub"]).await,
        1
    );
    assert!(
        sub.next_raw(Duration::from_secs(5)).await.is_none(),
        "the subscriber's connection is closed"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while int(&mut con, &["PUBSUB", "NUMPAT"]).await != 0 {
        assert!(
            Instant::now() < deadline,
            "the killed client's pattern stayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls CLIENT LIST for the client named `name`: its `omem`, or `None`
/// once it is gone.
async fn omem_of(con: &mut common::Conn, name: &str) -> Option<u64> {
    let list = common::as_text(&q(con, &["CLIENT", "LIST"]).await);
    let line = list
        .lines()
        .find(|line| line.contains(&format!(" name={name} ")))?;
    line.split(' ')
        .find_map(|field| field.strip_prefix("omem="))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_disconnected_at_the_hard_limit() {
    let server = start().await;
    let mut con = server.client(false).await;
    ok(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 0 0",
        ],
    )
    .await;
    assert_eq!(
        config_get(&mut con, "client-output-buffer-limit").await,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 0 0"
    );
    let mut slow = Raw::connect(server.addr).await;
    slow.send(&["CLIENT", "SETNAME", "slow"]).await;
    slow.frame().await;
    slow.send(&["SUBSCRIBE", "flood"]).await;
    slow.frame().await;
    // From here on `slow` never reads: the kernel's buffers fill, then its
    // mailbox, until the limit disconnects it.
    let payload = "x".repeat(64 * 1024);
    let mut highest = 0;
    let mut gone = false;
    let mut delivered = 0;
    for _ in 0..2_000 {
        let receivers = int(&mut con, &["PUBLISH", "flood", &payload]).await;
        delivered += receivers;
        match omem_of(&mut con, "slow").await {
            Some(omem) => highest = highest.max(omem),
            None => {
                gone = true;
                break;
            }
        }
        if receivers == 0 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the slow subscriber was never disconnected");
    // More than the limit was sent before the end: the kernel took some.
    assert!(delivered > 16, "disconnected after {delivered} messages");
    // Bounded: the limit plus the one message that passed it.
    assert!(highest <= 1024 * 1024 + 70 * 1024, "omem reached {highest}");
    assert!(highest > 0, "nothing ever waited for the subscriber");
    let deadline = Instant::now() + Duration::from_secs(5);
    while omem_of(&mut con, "slow").await.is_some() {
        assert!(Instant::now() < deadline, "still listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(int(&mut con, &["PUBLISH", "flood", "x"]).await, 0);
    // Its socket ends once what the kernel held is read.
    let mut sink = vec![0u8; 1 << 20];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match slow.stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server kept the connection open");
}

#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_hold_up_shutdown() {
    let common::TestServer {
        app,
        addr,
        close_first,
        dir,
    } = start().await;
    let mut con = common::connect(addr, false).await;
    // No limit at all: only the shutdown can end the stuck write.
    ok(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 0 0 0",
        ],
    )
    .await;
    let mut slow = Raw::connect(addr).await;
    slow.send(&["SUBSCRIBE", "c"]).await;
    slow.frame().await;
    let payload = "z".repeat(256 * 1024);
    for _ in 0..64 {
        assert_eq!(int(&mut con, &["PUBLISH", "c", &payload]).await, 1);
    }
    drop(con);
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "shutdown waited for a client that never reads"
    );
    drop(slow);
    drop(close_first);
    drop(dir);
}

#[tokio::test]
async fn a_subscriber_over_the_soft_limit_for_its_seconds_is_disconnected() {
    let server = start().await;
    let mut con = server.client(false).await;
    ok(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 0 256kb 1",
        ],
    )
    .await;
    let mut slow = Raw::connect(server.addr).await;
    slow.send(&["CLIENT", "SETNAME", "soft"]).await;
    slow.frame().await;
    slow.send(&["SUBSCRIBE", "c"]).await;
    slow.frame().await;
    let payload = "y".repeat(256 * 1024);
    // Enough to fill the socket buffers and stay over the soft limit.
    let start = Instant::now();
    let mut gone = false;
    while start.elapsed() < Duration::from_secs(20) {
        if int(&mut con, &["PUBLISH", "c", &payload]).await == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "never disconnected");
    // Not before the soft seconds passed.
    assert!(start.elapsed() > Duration::from_secs(1));
}

/// One parameter's value through CONFIG GET.
async fn config_get(con: &mut common::Conn, name: &str) -> String {
    match q(con, &["CONFIG", "GET", name]).await {
        redis::Value::Array(items) if items.len() == 2 => common::as_text(&items[1]),
        redis::Value::Map(items) if items.len() == 1 => common::as_text(&items[0].1),
        other => panic!("CONFIG GET {name}: {other:?}"),
    }
}

#[tokio::test]
async fn output_limits_parse_like_redis() {
    let server = start().await;
    let mut con = server.client(false).await;
    let failed = |arg: &str, reason: &str| {
        format!("ERR CONFIG SET failed (possibly related to argument '{arg}') - {reason}")
    };
    let cobl = "client-output-buffer-limit";
    assert_eq!(
        config_get(&mut con, cobl).await,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", cobl, "wrong number"]).await,
        failed(
            cobl,
            "Wrong number of arguments in buffer limit configuration."
        )
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", cobl, "master 10mb 10mb 60"]).await,
        failed(
            cobl,
            "Invalid client class specified in buffer limit configuration."
        )
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", cobl, "normal 10mbs 10mb 60"]).await,
        failed(
            cobl,
            "Error in hard, soft or soft_seconds setting in buffer limit configuration."
        )
    );
    // Only the classes named change.
    ok(
        &mut con,
        &["CONFIG", "SET", cobl, "replica 1mb 2mb 3 normal 1 2 3"],
    )
    .await;
    assert_eq!(
        config_get(&mut con, cobl).await,
        "normal 1 2 3 slave 1048576 2097152 3 pubsub 33554432 8388608 60"
    );
}

#[tokio::test]
async fn keyspace_notifications_for_writes_and_expiry() {
    let server = start().await;
    let mut con = server.client(false).await;
    assert_eq!(config_get(&mut con, "notify-keyspace-events").await, "");
    let mut sub = Raw::connect(server.addr).await;
    sub.send(&["PSUBSCRIBE", "__key*__:*"]).await;
    sub.frame().await;
    // Off by default: nothing is published.
    common::set(&mut con, "a", "1").await;
    assert!(sub.silent().await);

    ok(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
    )
    .await;
    common::set(&mut con, "a", "2").await;
    let expect = |channel: &str, payload: &str| {
        message(false, &["pmessage", "__key*__:*", channel, payload], None)
    };
    assert_eq!(sub.frame().await, expect("__keyspace@0__:a", "set"));
    assert_eq!(sub.frame().await, expect("__keyevent@0__:set", "a"));
    assert_eq!(int(&mut con, &["EXPIRE", "a", "100"]).await, 1);
    assert_eq!(sub.frame().await, expect("__keyspace@0__:a", "expire"));
    assert_eq!(sub.frame().await, expect("__keyevent@0__:expire", "a"));
    assert_eq!(int(&mut con, &["DEL", "a", "missing"]).await, 1);
    assert_eq!(sub.frame().await, expect("__keyspace@0__:a", "del"));
    assert_eq!(sub.frame().await, expect("__keyevent@0__:del", "a"));
    assert!(sub.silent().await);

    // Only key events of the expired class, now.
    ok(&mut con, &["CONFIG", "SET", "notify-keyspace-events", "xE"]).await;
    assert_eq!(config_get(&mut con, "notify-keyspace-events").await, "xE");
    ok(&mut con, &["SET", "lazy", "1", "PX", "30"]).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(common::text(&mut con, &["GET", "lazy"]).await, None);
    assert_eq!(sub.frame().await, expect("__keyevent@0__:expired", "lazy"));
    // The active sweep fires it too, with nobody asking for the key.
    ok(&mut con, &["SET", "swept", "1", "PX", "30"]).await;
    assert_eq!(sub.frame().await, expect("__keyevent@0__:expired", "swept"));
    assert!(sub.silent().await);

    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "notify-keyspace-events", "Q"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
    );
}

#[tokio::test]
async fn tier_events_when_keys_leave_memory_and_come_back() {
    let server = start_with(|config| {
        config.memory.maxmemory = MemorySize(256 * 1024);
    })
    .await;
    let mut con = server.client(false).await;
    ok(&mut con, &["CONFIG", "SET", "notify-keyspace-events", "TE"]).await;
    assert_eq!(config_get(&mut con, "notify-keyspace-events").await, "TE");
    let mut sub = Raw::resp3(server.addr).await;
    sub.send(&[
        "SUBSCRIBE",
        "__keyevent@0__:evicted_to_disk",
        "__keyevent@0__:loaded",
    ])
    .await;
    sub.frame().await;
    sub.frame().await;
    let value = "v".repeat(1000);
    for i in 0..600 {
        common::set(&mut con, &format!("key:{i}"), &value).await;
    }
    let evicted = match sub.frame().await {
        F::Push(items) => {
            assert_eq!(
                items[..2],
                [b("message"), b("__keyevent@0__:evicted_to_disk")]
            );
            match &items[2] {
                F::Bulk(key) => String::from_utf8(key.clone()).unwrap(),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    };
    // Drain the rest of the evictions, then read the evicted key back.
    while let Some((frame, _)) = sub.next_raw(Duration::from_millis(200)).await {
        assert!(matches!(frame, F::Push(_)));
    }
    assert_eq!(
        common::text(&mut con, &["GET", &evicted]).await,
        Some(value)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let frame = sub.frame().await;
        if frame == message(true, &["message", "__keyevent@0__:loaded", &evicted], None) {
            break;
        }
        assert!(Instant::now() < deadline, "no loaded event for {evicted}");
    }
}

#[tokio::test]
async fn memory_only_eviction_and_sweep_fire_evicted_and_expired() {
    let server = start_with(|config| {
        config.storage.warm_tier = false;
        config.memory.maxmemory = MemorySize(256 * 1024);
    })
    .await;
    let mut con = server.client(false).await;
    ok(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", "Eex"],
    )
    .await;
    let mut sub = Raw::connect(server.addr).await;
    sub.send(&["PSUBSCRIBE", "__keyevent@0__:e*"]).await;
    sub.frame().await;
    ok(&mut con, &["SET", "short", "1", "PX", "30"]).await;
    let expect = |event: &str, key: &str| {
        let channel = format!("__keyevent@0__:{event}");
        message(
            false,
            &["pmessage", "__keyevent@0__:e*", &channel, key],
            None,
        )
    };
    assert_eq!(sub.frame().await, expect("expired", "short"));
    let value = "v".repeat(1000);
    for i in 0..400 {
        common::set(&mut con, &format!("key:{i}"), &value).await;
    }
    match sub.frame().await {
        F::Array(items) => assert_eq!(items[2], b("__keyevent@0__:evicted")),
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------ redis-server

/// Sends `PING <tag>` and logs every frame before its answer: once it is
/// back, everything sent before it on that connection has run.
async fn barrier(raw: &mut Raw, tag: usize, log: &mut Vec<String>) {
    let tag = format!("barrier-{tag}");
    raw.send(&["PING", &tag]).await;
    loop {
        let (_, bytes) = raw
            .next_raw(Duration::from_secs(5))
            .await
            .expect("the barrier's answer");
        if bytes.windows(tag.len()).any(|w| w == tag.as_bytes()) {
            return;
        }
        log.push(String::from_utf8_lossy(&bytes).into_owned());
    }
}

/// Runs one script: a subscriber (RESP2 or RESP3) and a writer; returns
/// every frame each received, in order (the two streams apart, so the
/// result does not depend on timing).
async fn script(addr: SocketAddr, resp3: bool) -> (Vec<String>, Vec<String>) {
    let (mut w_log, mut s_log) = (Vec::new(), Vec::new());
    let mut writer = Raw::connect(addr).await;
    let mut sub = if resp3 {
        Raw::resp3(addr).await
    } else {
        Raw::connect(addr).await
    };
    let writes: &[&[&str]] = &[
        &["FLUSHALL"],
        &["CONFIG", "SET", "notify-keyspace-events", "KEAnm"],
    ];
    for args in writes {
        writer.send(args).await;
    }
    let subs: &[&[&str]] = &[
        &["SUBSCRIBE", "c1", "c2", "c1"],
        &["PSUBSCRIBE", "__keyspace@0__:*", "c?"],
        &["SSUBSCRIBE", "s1"],
        &["PING"],
        &["PING", "x"],
        &["GET", "k"],
        &["PUBLISH", "c1", "self"],
        &["UNSUBSCRIBE", "c2", "nope"],
        &["PUNSUBSCRIBE", "c?"],
        &["SUNSUBSCRIBE", "s1"],
        &["SUNSUBSCRIBE"],
    ];
    let mut script: Vec<(bool, &[&str])> = subs.iter().map(|a| (true, *a)).collect();
    let writes: &[&[&str]] = &[
        &["PUBLISH", "c1", "one"],
        &["SPUBLISH", "s1", "shard"],
        &["SET", "k", "v", "EX", "100"],
        &["INCRBY", "n", "5"],
        &["MGET", "n", "missing"],
        &["SET", "k", "w", "GET"],
        &["EXISTS", "k", "gone"],
        &["RENAME", "k", "k2"],
        &["DEL", "k2", "n"],
        &["PUBSUB", "NUMSUB", "c1", "c2"],
        &["PUBSUB", "NUMPAT"],
        &["PUBSUB", "SHARDNUMSUB", "s1"],
    ];
    script.extend(writes.iter().map(|a| (false, *a)));
    script.push((true, &["UNSUBSCRIBE"]));
    script.push((true, &["PUNSUBSCRIBE"]));
    script.push((true, &["PUNSUBSCRIBE"]));
    script.push((true, &["PING"]));
    for (step, (on_sub, args)) in script.into_iter().enumerate() {
        let (client, log) = if on_sub {
            (&mut sub, &mut s_log)
        } else {
            (&mut writer, &mut w_log)
        };
        client.send(args).await;
        barrier(client, step, log).await;
    }
    barrier(&mut writer, usize::MAX, &mut w_log).await;
    barrier(&mut sub, usize::MAX, &mut s_log).await;
    (w_log, s_log)
}

/// COMMAND INFO's reply with each command's subcommands (its tenth field)
/// in a fixed order.
fn sorted_subcommands(frame: F) -> F {
    let F::Array(commands) = frame else {
        return frame;
    };
    F::Array(
        commands
            .into_iter()
            .map(|command| match command {
                F::Array(mut fields) => {
                    if let Some(F::Array(subs)) = fields.get_mut(9) {
                        subs.sort_by_key(|sub| format!("{sub:?}"));
                    }
                    F::Array(fields)
                }
                other => other,
            })
            .collect(),
    )
}

#[tokio::test]
async fn frames_match_redis_server_byte_for_byte() {
    let redis = RedisServer::start();
    let server = start().await;
    let redis_addr: SocketAddr = ([127, 0, 0, 1], redis.port).into();
    for resp3 in [false, true] {
        let ours = script(server.addr, resp3).await;
        let theirs = script(redis_addr, resp3).await;
        assert!(ours.1.iter().any(|line| line.contains("pmessage")));
        assert!(ours.0.len() + ours.1.len() > 30, "{ours:?}");
        assert_eq!(ours, theirs, "resp3={resp3}");
    }
    let mut ours = Raw::connect(server.addr).await;
    let mut theirs = Raw::connect(redis_addr).await;
    for name in [
        "subscribe",
        "unsubscribe",
        "psubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
        "publish",
        "spublish",
        "pubsub",
    ] {
        // DOCS nests pubsub's subcommands in a map in Redis's dict order.
        let docs = if name == "pubsub" { None } else { Some("DOCS") };
        for what in std::iter::once("INFO").chain(docs) {
            let args = ["COMMAND", what, name];
            ours.send(&args).await;
            theirs.send(&args).await;
            // Redis lists subcommands in its dict's (seeded) order.
            let mine = sorted_subcommands(ours.frame().await);
            assert_eq!(mine, sorted_subcommands(theirs.frame().await), "{args:?}");
        }
    }
    ours.send(&["PUBSUB", "HELP"]).await;
    theirs.send(&["PUBSUB", "HELP"]).await;
    assert_eq!(ours.frame().await, theirs.frame().await);
}
