//! Shared test harness: an in-process strata on port 0 and real clients.
#![allow(dead_code)]

pub mod pg;
pub mod relay;

use std::net::SocketAddr;

use strata::app::App;
use strata::config::Config;

pub struct TestServer {
    pub app: App,
    pub addr: SocketAddr,
    pub close_first: CloseFirst,
    /// The warm tier's directory, removed when the server is dropped.
    pub dir: tempfile::TempDir,
}

/// A server on 127.0.0.1 with an ephemeral port and default settings.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// A server whose config `tweak` adjusts first.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::default();
    config.server.bind = vec!["127.0.0.1".into()];
    config.server.port = 0;
    config.storage.dir = dir.path().to_path_buf();
    // Small: many servers run at once in the suite.
    config.storage.warm_cache_size = strata::config::MemorySize(8 << 20);
    tweak(&mut config);
    let app = App::start(config).await.expect("server starts");
    let addr = app.local_addr();
    let close_first = CloseFirst(app.state().clone());
    TestServer {
        app,
        addr,
        close_first,
        dir,
    }
}

/// A server on the warm-tier directory `dir`, which outlives it (restart
/// tests). The directory of a server just shut down may still be locked
/// for a moment by its background threads, so this retries briefly.
pub async fn start_on(dir: &std::path::Path, tweak: impl Fn(&mut Config)) -> App {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut config = Config::default();
        config.server.bind = vec!["127.0.0.1".into()];
        config.server.port = 0;
        config.storage.dir = dir.to_path_buf();
        config.storage.warm_cache_size = strata::config::MemorySize(8 << 20);
        tweak(&mut config);
        match App::start(config).await {
            Ok(app) => return app,
            Err(message) if message.contains("locked") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(message) => panic!("{message}"),
        }
    }
}

/// Closes the warm tier before the directory goes (fields drop in order):
/// sled must not find its files gone while the applier still writes.
pub struct CloseFirst(std::sync::Arc<strata::state::ServerState>);

impl Drop for CloseFirst {
    fn drop(&mut self) {
        self.0.request_shutdown();
        self.0.keyspace.close();
    }
}

impl TestServer {
    pub fn url(&self, resp3: bool) -> String {
        url(self.addr, resp3)
    }

    /// A `redis` crate async connection speaking RESP2 or RESP3.
    pub async fn client(&self, resp3: bool) -> redis::aio::MultiplexedConnection {
        connect(self.addr, resp3).await
    }
}

/// The `redis` crate URL of a server, asking for RESP2 or RESP3.
pub fn url(addr: SocketAddr, resp3: bool) -> String {
    if resp3 {
        format!("redis://{addr}/?protocol=resp3")
    } else {
        format!("redis://{addr}/")
    }
}

/// An async connection to `addr` speaking RESP2 or RESP3.
pub async fn connect(addr: SocketAddr, resp3: bool) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url(addr, resp3))
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

pub type Conn = redis::aio::MultiplexedConnection;
use redis::Value;

/// Runs each named scenario `async fn name(resp3: bool)` once per protocol,
/// as `name::resp2` and `name::resp3`.
#[macro_export]
macro_rules! both_protocols {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn resp2() {
                    super::$name(false).await
                }

                #[tokio::test]
                async fn resp3() {
                    super::$name(true).await
                }
            }
        )*
    };
}

/// A fresh server and one client speaking RESP2 or RESP3.
pub async fn start_client(resp3: bool) -> (TestServer, Conn) {
    let server = start().await;
    let con = server.client(resp3).await;
    (server, con)
}

/// Sends a command whose arguments may be any bytes.
pub async fn raw(con: &mut Conn, args: &[&[u8]]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(&String::from_utf8_lossy(args[0]));
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(con).await
}

async fn raw_str(con: &mut Conn, args: &[&str]) -> redis::RedisResult<Value> {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    raw(con, &bytes).await
}

/// The reply of a command that must succeed.
pub async fn q(con: &mut Conn, args: &[&str]) -> Value {
    match raw_str(con, args).await {
        Ok(value) => value,
        Err(err) => panic!("{args:?} failed: {err}"),
    }
}

pub async fn int(con: &mut Conn, args: &[&str]) -> i64 {
    match q(con, args).await {
        Value::Int(n) => n,
        other => panic!("{args:?}: expected an integer, got {other:?}"),
    }
}

pub async fn ok(con: &mut Conn, args: &[&str]) {
    assert_eq!(q(con, args).await, Value::Okay, "{args:?}");
}

/// A bulk reply as text; `None` for nil.
pub async fn text(con: &mut Conn, args: &[&str]) -> Option<String> {
    match q(con, args).await {
        Value::BulkString(data) => Some(String::from_utf8_lossy(&data).into_owned()),
        Value::Nil => None,
        other => panic!("{args:?}: expected a bulk string, got {other:?}"),
    }
}

pub async fn bytes(con: &mut Conn, args: &[&str]) -> Vec<u8> {
    match q(con, args).await {
        Value::BulkString(data) => data,
        other => panic!("{args:?}: expected a bulk string, got {other:?}"),
    }
}

/// The full error text (`ERR ...`) of a command that must fail.
pub async fn err(con: &mut Conn, args: &[&str]) -> String {
    match raw_str(con, args).await {
        Ok(value) => panic!("{args:?}: expected an error, got {value:?}"),
        Err(err) => format!(
            "{} {}",
            err.code().unwrap_or("?"),
            err.detail().unwrap_or("")
        ),
    }
}

pub async fn set(con: &mut Conn, key: &str, value: &str) {
    ok(con, &["SET", key, value]).await;
}

pub fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

pub fn status(text: &str) -> Value {
    Value::SimpleString(text.to_string())
}

/// A numeric field of `INFO stats`.
pub async fn info_stat(con: &mut Conn, field: &str) -> i64 {
    info_field(con, "stats", field).await
}

/// A numeric field of an INFO section.
pub async fn info_field(con: &mut Conn, section: &str, field: &str) -> i64 {
    let text = as_text(&q(con, &["INFO", section]).await);
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no {field}:\n{text}"))
}

/// A string-like reply (bulk, status, verbatim, OK) as text.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::BulkString(data) => String::from_utf8_lossy(data).into_owned(),
        Value::SimpleString(text) => text.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Okay => "OK".to_string(),
        other => panic!("expected a string reply, got {other:?}"),
    }
}

/// A real `redis-server` on a free loopback port, for differential tests;
/// `tools/test.sh` installs it (without it these tests fail). Killed when
/// dropped.
pub struct RedisServer {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[], &[])
    }

    /// With extra configuration arguments and environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = tempfile::tempdir().expect("tempdir");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (tools/test.sh installs it)");
        let server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        server
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Blocking connections to strata (`strata_url`, as `TestServer::url`
/// gives it) and to the redis-server on `redis_port`, both speaking RESP2
/// or RESP3: the two ends of a differential stream.
pub fn connection_pair(
    strata_url: &str,
    redis_port: u16,
    resp3: bool,
) -> (redis::Connection, redis::Connection) {
    let protocol = if resp3 { "?protocol=resp3" } else { "" };
    let strata = redis::Client::open(format!("{strata_url}{protocol}"))
        .and_then(|c| c.get_connection())
        .expect("strata connection");
    let redis = redis::Client::open(format!("redis://127.0.0.1:{redis_port}/{protocol}"))
        .and_then(|c| c.get_connection())
        .expect("redis connection");
    (strata, redis)
}
