//! Keyspace notifications of the hash, set, sorted-set and list families,
//! compared with a real `redis-server`: the same commands run on both, and
//! a subscriber on each (RESP2 or RESP3, on `__key*__:*`) must receive the
//! same (pattern, channel, message) triples in the same order. The script
//! covers every event these families fire, the commands that fire nothing
//! (no change, a missing key, a wrong type, an error), deletes of emptied
//! keys, `new` and `keymiss`, and clients served after blocking.
//! `tools/test.sh` installs redis-server; without it this test fails.

mod common;

use common::RedisServer;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ------------------------------------------------------------ raw client

/// One decoded frame; `Push` is RESP3's `>`.
#[derive(Debug, Clone, PartialEq)]
enum F {
    Simple(String),
    Error(String),
    Int(i64),
    Double(String),
    Bulk(String),
    Null,
    Array(Vec<F>),
    Push(Vec<F>),
    Map(Vec<F>),
    Set(Vec<F>),
}

/// Decodes one frame at the start of `buf`: the frame and its length.
fn parse(buf: &[u8]) -> Option<(F, usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(buf.get(1..end)?).ok()?;
    let head = end + 2;
    let items = |count: usize| -> Option<(Vec<F>, usize)> {
        let mut at = head;
        let mut out = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let (frame, len) = parse(buf.get(at..)?)?;
            out.push(frame);
            at += len;
        }
        Some((out, at))
    };
    let marker = *buf.first()?;
    match marker {
        b'+' => Some((F::Simple(line.into()), head)),
        b'-' => Some((F::Error(line.into()), head)),
        b':' => Some((F::Int(line.parse().ok()?), head)),
        b',' => Some((F::Double(line.into()), head)),
        b'_' => Some((F::Null, head)),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            let Ok(len) = usize::try_from(len) else {
                return Some((F::Null, head));
            };
            let data = buf.get(head..head + len)?;
            buf.get(head + len + 1)?;
            let text = String::from_utf8_lossy(data).into_owned();
            Some((F::Bulk(text), head + len + 2))
        }
        b'*' | b'>' | b'%' | b'~' => {
            let count: i64 = line.parse().ok()?;
            let Ok(count) = usize::try_from(count) else {
                return Some((F::Null, head));
            };
            let count = if marker == b'%' { count * 2 } else { count };
            let (list, at) = items(count)?;
            let frame = match marker {
                b'*' => F::Array(list),
                b'>' => F::Push(list),
                b'%' => F::Map(list),
                _ => F::Set(list),
            };
            Some((frame, at))
        }
        _ => panic!("unexpected frame {:?}", String::from_utf8_lossy(buf)),
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// A client on a plain socket that sees every frame the server sends.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr, resp3: bool) -> Raw {
        let mut raw = Raw {
            stream: TcpStream::connect(addr).await.expect("connects"),
            buf: Vec::new(),
        };
        if resp3 {
            assert!(matches!(raw.call(&["HELLO", "3"]).await, F::Map(_)));
        }
        raw
    }

    async fn send(&mut self, args: &[&str]) {
        self.stream.write_all(&encode(args)).await.expect("sends");
    }

    async fn frame(&mut self) -> F {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some((frame, len)) = parse(&self.buf) {
                self.buf.drain(..len);
                return frame;
            }
            let mut chunk = vec![0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                other => panic!("no frame within 5 s: {other:?}"),
            }
        }
    }

    async fn call(&mut self, args: &[&str]) -> F {
        self.send(args).await;
        self.frame().await
    }
}

// ------------------------------------------------------------ the script

/// One step: a command on the writer, or a client that blocks on its
/// command until the writer's command serves it.
#[derive(Clone, Copy)]
enum Step {
    Run(&'static str),
    Blocked(&'static str, &'static str),
}

use Step::{Blocked, Run};

const HASHES: &[Step] = &[
    Run("HSET h f1 v1 f2 v2"),
    // HSET fires even when nothing changes.
    Run("HSET h f1 v1"),
    Run("HSETNX h f1 x"),
    Run("HSETNX h f3 v3"),
    Run("HSETNX hn f v"),
    Run("HMSET h f4 v4"),
    Run("HGET nohash f"),
    Run("HGET h f1"),
    Run("HMGET nohash f"),
    Run("HLEN nohash"),
    Run("HSTRLEN nohash f"),
    Run("HEXISTS nohash f"),
    Run("HKEYS nohash"),
    Run("HVALS nohash"),
    Run("HGETALL nohash"),
    Run("HSCAN nohash 0"),
    Run("HRANDFIELD nohash"),
    Run("HRANDFIELD nohash 2"),
    Run("HRANDFIELD nohash abc"),
    Run("HINCRBY h n 5"),
    Run("HINCRBY h n 0"),
    Run("HINCRBY hi n 5"),
    Run("HINCRBYFLOAT h fl 1.5"),
    Run("HINCRBYFLOAT hf fl 1.5"),
    Run("HINCRBY h f1 1"),
    Run("HINCRBYFLOAT h f1 1"),
    Run("HDEL h nosuch"),
    Run("HDEL nohash f"),
    Run("HDEL h f1 f2"),
    Run("HDEL hn f"),
    Run("HDEL hi n nosuch"),
    Run("HDEL hf fl"),
    Run("HDEL h f3 f4 n fl"),
];

const SETS: &[Step] = &[
    Run("SADD s a b c"),
    Run("SADD s a"),
    Run("SADD s d"),
    Run("SISMEMBER noset a"),
    Run("SMISMEMBER noset a"),
    Run("SMEMBERS noset"),
    Run("SCARD noset"),
    Run("SRANDMEMBER noset"),
    Run("SRANDMEMBER noset 3"),
    Run("SRANDMEMBER noset abc"),
    Run("SSCAN noset 0"),
    Run("SREM s nosuch"),
    Run("SREM noset a"),
    Run("SREM s a"),
    Run("SPOP noset"),
    Run("SPOP noset 2"),
    Run("SPOP s 0"),
    Run("SADD one x"),
    Run("SPOP one"),
    Run("SADD two x y"),
    Run("SPOP two 5"),
    Run("SADD three x y z"),
    Run("SPOP three 1"),
    Run("SPOP three"),
    Run("SPOP three"),
    Run("SADD four 1 2 3 4 5 6 7 8 9 10"),
    Run("SPOP four 9"),
    Run("SREM four 1 2 3 4 5 6 7 8 9 10"),
    Run("SMOVE s s2 b"),
    Run("SMOVE s s2 nosuch"),
    Run("SMOVE noset s2 b"),
    Run("SMOVE s s2 c"),
    Run("SMOVE s2 s2 b"),
    Run("SMOVE s2 s3 b"),
    Run("SMOVE s2 s3 c"),
    Run("SADD s6 x"),
    Run("SADD s7 x"),
    // The destination has the member already: no `sadd`.
    Run("SMOVE s6 s7 x"),
    Run("SADD s4 1 2 3"),
    Run("SADD s5 2 3 4"),
    Run("SINTER s4 s5"),
    Run("SINTER s4 noset"),
    Run("SINTER noset noset2 s4"),
    Run("SUNION noset s4"),
    Run("SDIFF noset s4"),
    Run("SINTERCARD 2 s4 noset"),
    Run("SINTERCARD 3 noset noset2 s4"),
    Run("SINTERSTORE d s4 s5"),
    Run("SINTERSTORE d s4 s5"),
    Run("SINTERSTORE d s4 noset"),
    Run("SINTERSTORE d s4 noset"),
    Run("SUNIONSTORE d s4 s5"),
    Run("SUNIONSTORE d noset noset2"),
    Run("SDIFFSTORE d s4 s5"),
    Run("SDIFFSTORE d s4 s4"),
    Run("SUNIONSTORE d d s4"),
    Run("SET str v"),
    Run("SINTERSTORE str s4 s5"),
    Run("SDIFFSTORE str s4 s4"),
];

const ZSETS: &[Step] = &[
    Run("ZADD z 1 a 2 b 3 c"),
    Run("ZADD z 1 a"),
    Run("ZADD z XX 5 nosuch"),
    Run("ZADD z NX 9 a"),
    Run("ZADD z GT 0 a"),
    Run("ZADD z CH 1.5 a"),
    Run("ZADD z INCR 2 a"),
    Run("ZADD z INCR 0 a"),
    Run("ZADD z NX INCR 2 a"),
    Run("ZADD z GT CH 5 a 1 b"),
    Run("ZADD z LT 0 newm"),
    Run("ZADD zn XX 1 a"),
    Run("ZADD zi INCR 1 x"),
    Run("ZADD zi INCR inf x"),
    Run("ZADD zi INCR -inf x"),
    Run("ZINCRBY z 1 b"),
    Run("ZINCRBY z 0 b"),
    Run("ZINCRBY zb 1 m"),
    Run("ZSCORE noz a"),
    Run("ZMSCORE noz a"),
    Run("ZCARD noz"),
    Run("ZRANK noz a"),
    Run("ZREVRANK noz a"),
    Run("ZRANGE noz 0 -1"),
    Run("ZRANGEBYSCORE noz 0 1"),
    Run("ZREVRANGEBYSCORE noz 1 0"),
    Run("ZRANGEBYLEX noz - +"),
    Run("ZREVRANGE noz 0 -1"),
    Run("ZREVRANGEBYLEX noz + -"),
    Run("ZCOUNT noz 0 1"),
    Run("ZLEXCOUNT noz - +"),
    Run("ZRANDMEMBER noz"),
    Run("ZRANDMEMBER noz 2"),
    Run("ZSCAN noz 0"),
    Run("ZUNION 2 noz z"),
    Run("ZINTER 2 noz z"),
    Run("ZDIFF 2 noz z"),
    Run("ZINTERCARD 2 noz z"),
    Run("ZINTERSTORE d 2 noz noz2 WEIGHTS 1"),
    Run("ZREM z nosuch"),
    Run("ZREM noz a"),
    Run("ZREM z a"),
    Run("ZREM zb m"),
    Run("ZADD r 1 a 2 b 3 c 4 d 5 e 6 f"),
    Run("ZREMRANGEBYRANK r 10 20"),
    Run("ZREMRANGEBYRANK noz 0 1"),
    Run("ZREMRANGEBYRANK r 0 0"),
    Run("ZREMRANGEBYSCORE r 100 200"),
    Run("ZREMRANGEBYSCORE r 2 2"),
    Run("ZREMRANGEBYLEX r [x [z"),
    Run("ZREMRANGEBYLEX r [c [c"),
    Run("ZREMRANGEBYLEX r - +"),
    Run("ZADD r 1 a 2 b"),
    Run("ZREMRANGEBYSCORE r -inf +inf"),
    Run("ZADD r 1 a 2 b"),
    Run("ZREMRANGEBYRANK r 0 -1"),
    Run("ZADD p 1 a 2 b 3 c 4 d"),
    Run("ZPOPMIN p"),
    Run("ZPOPMAX p"),
    Run("ZPOPMIN p 0"),
    Run("ZPOPMIN noz"),
    Run("ZPOPMAX noz 2"),
    Run("ZMPOP 2 noz p MIN"),
    Run("ZMPOP 1 noz MAX"),
    Run("ZMPOP 1 p MAX COUNT 5"),
    Run("ZADD p 1 a"),
    Run("ZPOPMIN p 3"),
    Run("ZADD p 1 a"),
    Run("ZPOPMAX p"),
    Run("ZADD u1 1 a 2 b"),
    Run("ZADD u2 2 b 3 c"),
    Run("ZUNIONSTORE zd 2 u1 u2"),
    Run("ZINTERSTORE zd 2 u1 u2"),
    Run("ZDIFFSTORE zd 2 u1 u2"),
    Run("ZDIFFSTORE zd 2 u1 u1"),
    Run("ZDIFFSTORE zd 2 u1 u1"),
    Run("ZINTERSTORE zd 2 u1 noz"),
    Run("ZUNIONSTORE zd 2 noz noz2"),
    Run("ZRANGESTORE zd u1 0 -1"),
    Run("ZRANGESTORE zd u1 5 6"),
    Run("ZRANGESTORE zd noz 0 -1"),
    Run("ZRANGESTORE zd u1 0 0"),
    Run("ZRANGESTORE zd u1 (1 +inf BYSCORE"),
    Run("ZRANGESTORE zd noz [a [b BYLEX"),
    Run("ZUNIONSTORE zd 1 s4"),
    Run("SET str2 v"),
    Run("ZRANGESTORE str2 u1 10 20"),
    Run("ZUNIONSTORE str2 2 noz noz2"),
    Run("ZADD bz 1 a"),
    Run("BZPOPMIN bz 0"),
    Run("ZADD bz 1 a 2 b"),
    Run("BZMPOP 0 1 bz MAX COUNT 5"),
    // A blocked client served by another's write: its events follow the
    // write's, and an emptied key is deleted.
    Blocked("BZPOPMIN bz 0", "ZADD bz 1 a"),
    Blocked("BZPOPMAX bz 0", "ZADD bz 1 a 2 b"),
    Run("ZPOPMIN bz"),
    Blocked("BZMPOP 0 2 nobz bz MIN COUNT 5", "ZADD bz 1 a 2 b"),
];

const LISTS: &[Step] = &[
    Run("LPUSH l a b"),
    Run("RPUSH l c"),
    Run("LPUSHX nol a"),
    Run("LPUSHX l x"),
    Run("RPUSHX l y"),
    Run("LINSERT l BEFORE a z"),
    Run("LINSERT l BEFORE nosuch z"),
    Run("LINSERT nol BEFORE a z"),
    Run("LSET l 0 q"),
    Run("LREM l 0 nosuch"),
    Run("LREM l 1 a"),
    Run("LREM nol 1 a"),
    Run("LTRIM l 0 -1"),
    Run("LTRIM nol 0 1"),
    Run("LPOP l"),
    Run("RPOP l"),
    Run("LPOP nol"),
    Run("LPOP l 0"),
    Run("LMOVE l l2 LEFT RIGHT"),
    Run("LMOVE nol l2 LEFT RIGHT"),
    Run("RPOPLPUSH l2 l3"),
    Run("LMPOP 2 nol l LEFT COUNT 1"),
    Run("LMPOP 1 nol RIGHT"),
    Run("RPUSH t a b c"),
    Run("LTRIM t 5 10"),
    Run("RPUSH t a b"),
    Run("LREM t 0 a"),
    Run("LREM t 0 b"),
    Run("RPUSH m a"),
    Run("LMOVE m m LEFT RIGHT"),
    Run("LPOP m 5"),
    Run("RPUSH m a"),
    Run("RPOPLPUSH m m2"),
    Run("RPUSH bl a"),
    Run("BLPOP bl 0"),
    Run("RPUSH bl a b"),
    Run("BLMPOP 0 1 bl RIGHT COUNT 5"),
    Blocked("BLPOP bl 0", "RPUSH bl a"),
    Blocked("BRPOP bl 0", "LPUSH bl a b"),
    Run("LPOP bl"),
    Blocked("BLMOVE bl bl2 LEFT LEFT 0", "RPUSH bl a"),
    Run("BRPOPLPUSH bl2 bl3 0"),
    Blocked("BRPOPLPUSH bl2 bl3 0", "RPUSH bl2 b"),
    Blocked("BLMPOP 0 2 nol bl2 LEFT COUNT 3", "RPUSH bl2 a b"),
];

/// Redis's list reads count a keyspace miss (`keymiss`); strata's list
/// commands do not fire it yet, so these run only where `m` is off.
const LIST_READS: &[Step] = &[
    Run("LLEN nol"),
    Run("LRANGE nol 0 -1"),
    Run("LINDEX nol 0"),
    Run("LPOS nol a"),
];

/// Wrong types: errors, and no event.
const WRONG_TYPES: &[Step] = &[
    Run("RPUSH ty 1"),
    Run("SADD ty x"),
    Run("HSET ty f v"),
    Run("HSETNX ty f v"),
    Run("HINCRBY ty f 1"),
    Run("HDEL ty f"),
    Run("ZADD ty 1 x"),
    Run("ZINCRBY ty 1 x"),
    Run("ZREM ty x"),
    Run("ZPOPMIN ty"),
    Run("ZREMRANGEBYRANK ty 0 -1"),
    Run("SREM ty x"),
    Run("SPOP ty"),
    Run("SPOP ty 3"),
    Run("SADD s8 a"),
    Run("SMOVE ty s8 x"),
    Run("SMOVE s8 ty a"),
    Run("HGET ty f"),
    Run("SMEMBERS ty"),
    Run("ZSCORE ty x"),
    // Misses before the key of the wrong type still fire.
    Run("SUNION noset ty noset2"),
    Run("SINTERSTORE d noset ty noset2"),
    Run("ZUNION 3 noz ty noz2"),
    Run("ZUNIONSTORE d 3 noz ty noz2"),
    Run("ZINTERCARD 3 noz ty noz2"),
    Run("ZRANGESTORE d ty 0 -1"),
    Run("ZMPOP 2 noz ty MIN"),
    Run("ZMPOP 2 ty noz MIN"),
    Run("LPUSH s4 x"),
];

/// The events one subscriber received: per step, the command and its
/// (pattern, channel, message) triples, plus the error the writer got.
type Log = Vec<(String, Option<String>, Vec<[String; 3]>)>;

/// Waits until `n` clients are blocked on `addr`'s server.
async fn wait_blocked(admin: &mut common::Conn, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::info_field(admin, "clients", "blocked_clients").await < n {
        assert!(Instant::now() < deadline, "the client never blocked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The error a reply is, if any: replies themselves may differ (random
/// picks), but both servers must take the same path.
fn error_of(frame: F) -> Option<String> {
    match frame {
        F::Error(text) => Some(text),
        _ => None,
    }
}

/// Runs `steps` on the server at `addr` with `notify-keyspace-events` set
/// to `classes`; a subscriber (RESP3 when `resp3`) on `__key*__:*` also
/// listens on a channel the writer publishes each step's number to after
/// the step, which splits what it receives by step.
async fn run(addr: SocketAddr, classes: &str, resp3: bool, steps: &[Step]) -> Log {
    let mut writer = Raw::connect(addr, false).await;
    let mut blocker = Raw::connect(addr, false).await;
    let mut sub = Raw::connect(addr, resp3).await;
    let mut admin = common::connect(addr, false).await;
    assert_eq!(writer.call(&["FLUSHALL"]).await, F::Simple("OK".into()));
    let set = ["CONFIG", "SET", "notify-keyspace-events", classes];
    assert_eq!(writer.call(&set).await, F::Simple("OK".into()));
    sub.send(&["PSUBSCRIBE", "__key*__:*"]).await;
    sub.send(&["SUBSCRIBE", "step"]).await;
    for _ in 0..2 {
        assert!(matches!(sub.frame().await, F::Array(_) | F::Push(_)));
    }
    let mut log = Log::new();
    for (n, step) in steps.iter().enumerate() {
        let (name, error) = match *step {
            Run(command) => {
                let words: Vec<&str> = command.split(' ').collect();
                (command.to_string(), error_of(writer.call(&words).await))
            }
            Blocked(blocking, waking) => {
                let words: Vec<&str> = blocking.split(' ').collect();
                blocker.send(&words).await;
                wait_blocked(&mut admin, 1).await;
                let words: Vec<&str> = waking.split(' ').collect();
                let error = error_of(writer.call(&words).await);
                let served = blocker.frame().await;
                assert!(
                    !matches!(served, F::Null | F::Error(_)),
                    "{blocking}: {served:?}"
                );
                (format!("{blocking} | {waking}"), error)
            }
        };
        let mark = n.to_string();
        assert_eq!(
            writer.call(&["PUBLISH", "step", &mark]).await,
            F::Int(1),
            "the subscriber listens"
        );
        let mut events = Vec::new();
        loop {
            let items = match sub.frame().await {
                F::Array(items) | F::Push(items) => items,
                other => panic!("{name}: not a message: {other:?}"),
            };
            let texts: Vec<String> = items
                .into_iter()
                .map(|item| match item {
                    F::Bulk(text) => text,
                    other => panic!("{name}: not a bulk: {other:?}"),
                })
                .collect();
            match texts.as_slice() {
                [kind, channel, message] if kind == "message" && channel == "step" => {
                    assert_eq!(message, &mark, "steps arrive in order");
                    break;
                }
                [kind, pattern, channel, message] if kind == "pmessage" => {
                    events.push([pattern.clone(), channel.clone(), message.clone()]);
                }
                other => panic!("{name}: unexpected message {other:?}"),
            }
        }
        log.push((name, error, events));
    }
    log
}

fn script() -> Vec<Step> {
    let mut steps = Vec::new();
    for part in [HASHES, SETS, ZSETS, LISTS, WRONG_TYPES, LIST_READS] {
        steps.extend_from_slice(part);
    }
    steps
}

async fn compare(classes: &str, resp3: bool, steps: &[Step]) -> Log {
    let redis = RedisServer::start();
    let server = common::start().await;
    let theirs = run(redis.addr(), classes, resp3, steps).await;
    let ours = run(server.addr, classes, resp3, steps).await;
    assert_eq!(ours.len(), theirs.len());
    for (mine, reference) in ours.iter().zip(&theirs) {
        assert_eq!(
            mine, reference,
            "classes {classes} resp3={resp3}: strata (left) and redis (right) differ"
        );
    }
    ours
}

fn count(log: &Log, event: &str) -> usize {
    log.iter()
        .flat_map(|(_, _, events)| events)
        .filter(|[_, channel, _]| channel.ends_with(&format!(":{event}")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_match_redis_for_a_resp2_subscriber() {
    let log = compare("KEA", false, &script()).await;
    // The script exercises what it claims to.
    for event in [
        "hset",
        "hdel",
        "hincrby",
        "hincrbyfloat",
        "sadd",
        "srem",
        "spop",
        "sinterstore",
        "sunionstore",
        "sdiffstore",
        "zadd",
        "zincr",
        "zrem",
        "zremrangebyrank",
        "zremrangebyscore",
        "zremrangebylex",
        "zpopmin",
        "zpopmax",
        "zunionstore",
        "zinterstore",
        "zdiffstore",
        "zrangestore",
        "lpush",
        "rpush",
        "lpop",
        "rpop",
        "linsert",
        "lset",
        "lrem",
        "ltrim",
        "del",
    ] {
        assert!(count(&log, event) > 0, "no {event} event");
    }
    assert_eq!(count(&log, "new"), 0, "n is not part of A");
    assert_eq!(count(&log, "keymiss"), 0, "m is not part of A");
    let silent = log
        .iter()
        .filter(|(_, _, events)| events.is_empty())
        .count();
    assert!(silent > 50, "only {silent} steps fired nothing");
    assert!(log.iter().any(|(_, error, _)| error.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_keymiss_match_redis_for_a_resp3_subscriber() {
    let log = compare("KEAnm", true, &script()).await;
    assert!(count(&log, "new") > 20);
    assert!(count(&log, "keymiss") > 50);
}

/// The pushes in `frames`, nested ones too, in order.
fn pushes_in(frames: &[F], out: &mut Vec<F>) {
    for frame in frames {
        match frame {
            F::Push(_) => out.push(frame.clone()),
            F::Array(items) | F::Map(items) | F::Set(items) => pushes_in(items, out),
            _ => {}
        }
    }
}

/// A RESP3 client subscribed on the connection it writes on gets its own
/// events as pushes. Redis 7.0 writes each push where the command happens
/// to be when it fires: before its reply, after it, or even inside an array
/// reply it is writing (ZPOPMIN; 7.2 holds them until the reply is
/// written). So the pushes are compared with Redis's in order, and
/// strata's stream must be well formed: each command's pushes, whole, then
/// its reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resp3_client_sees_its_own_events() {
    let commands: &[&str] = &[
        "HSET h f v",
        "HDEL h f",
        "SADD s a b",
        "SREM s a",
        "SPOP s 5",
        "ZADD z 1 a 2 b",
        "ZPOPMIN z",
        "ZMPOP 1 z MAX COUNT 3",
        "HGET h f",
    ];
    let redis = RedisServer::start();
    let server = common::start().await;
    let mut streams = Vec::new();
    for addr in [server.addr, redis.addr()] {
        let mut me = Raw::connect(addr, true).await;
        me.call(&["FLUSHALL"]).await;
        me.call(&["CONFIG", "SET", "notify-keyspace-events", "KEA"])
            .await;
        me.call(&["PSUBSCRIBE", "__keyevent@*__:*"]).await;
        let mut steps = Vec::new();
        for command in commands {
            let words: Vec<&str> = command.split(' ').collect();
            me.send(&words).await;
            me.send(&["PING", command]).await;
            let mut frames = Vec::new();
            loop {
                let frame = me.frame().await;
                if frame == F::Bulk(command.to_string()) {
                    break;
                }
                frames.push(frame);
            }
            steps.push(frames);
        }
        streams.push(steps);
    }
    let (ours, theirs) = (&streams[0], &streams[1]);
    let mut total = 0;
    for ((command, mine), reference) in commands.iter().zip(ours).zip(theirs) {
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        pushes_in(reference, &mut expected);
        pushes_in(mine, &mut got);
        assert_eq!(got, expected, "{command}: strata (left), redis (right)");
        total += got.len();
        let (reply, pushes) = mine.split_last().expect("a reply");
        assert!(!matches!(reply, F::Push(_)), "{command}: {mine:?}");
        assert_eq!(pushes, got.as_slice(), "{command}: pushes, then the reply");
    }
    assert_eq!(total, 11, "{ours:?}");
}
