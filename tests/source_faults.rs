//! The source of truth failing under the real `strata` binary: a PostgreSQL
//! outage under load from several clients, `kill -9` with writes still in the
//! outbox, the circuit breaker's states as INFO shows them, a `through` write
//! behind a long outbox, and the LISTEN connection reconnecting while writes
//! wait to ship.
//!
//! The tests that stop PostgreSQL start a cluster of their own with
//! `tools/pg.sh start` (so stopping it disturbs no other test) and stop it at
//! the end whatever happens; the listener test uses the shared one
//! (`STRATA_TEST_PG_URL`). strata runs as a child process on a free port, as
//! in `tests/durability.rs`. `STRATA_OUTAGE_SECS` sets how long the outage
//! test keeps PostgreSQL stopped (default 60). Each test prints its figures
//! (writes acknowledged, present in PostgreSQL, lost) on stderr.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use redis::{Connection, RedisError, Value};

// ---------------------------------------------------------------- strata

/// Bound on every wait for a process: to answer PING, or to exit.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);
/// Read and write timeout of the checking connections.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds an ephemeral port");
    listener.local_addr().expect("has an address").port()
}

/// One `strata` child process; dropping it kills and reaps it.
struct Strata {
    child: Child,
    port: u16,
    stderr: tempfile::NamedTempFile,
}

impl Strata {
    /// Starts strata with `flags` on a free port and waits until it answers
    /// PING; retries with another port when the port was taken meanwhile.
    fn start(flags: &[String]) -> Strata {
        for _attempt in 0..5 {
            let mut server = Strata::spawn(free_port(), flags);
            match server.wait_ready() {
                Ok(true) => return server,
                Ok(false) => continue,
                Err(status) => {
                    let stderr = server.stderr();
                    if stderr.contains("in use") {
                        continue;
                    }
                    panic!(
                        "strata {} exited ({status}) before answering PING; stderr:\n{stderr}",
                        flags.join(" ")
                    );
                }
            }
        }
        panic!("strata found no free port in 5 attempts");
    }

    fn spawn(port: u16, flags: &[String]) -> Strata {
        let stderr = tempfile::NamedTempFile::new().expect("creates a temp file");
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--port")
            .arg(port.to_string())
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr.reopen().expect("reopens the temp file"))
            .spawn()
            .expect("spawns strata");
        Strata {
            child,
            port,
            stderr,
        }
    }

    /// `Ok(true)`: ready; `Ok(false)`: another process answers on the port.
    fn wait_ready(&mut self) -> Result<bool, ExitStatus> {
        let spawned = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("polls the child") {
                return Err(status);
            }
            if answers_ping(self.port) {
                let pid = info_field(&mut self.con(), "server", "process_id");
                if pid != self.child.id().to_string() {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Ok(false);
                }
                return Ok(true);
            }
            assert!(
                spawned.elapsed() < PROCESS_TIMEOUT,
                "strata did not answer PING within {PROCESS_TIMEOUT:?}; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(POLL);
        }
    }

    fn con_timeout(&self, timeout: Duration) -> Connection {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("valid url");
        let con = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .unwrap_or_else(|err| panic!("connects to strata: {err}\n{}", self.stderr()));
        con.set_read_timeout(Some(timeout)).expect("sets a timeout");
        con.set_write_timeout(Some(timeout))
            .expect("sets a timeout");
        con
    }

    fn con(&self) -> Connection {
        self.con_timeout(IO_TIMEOUT)
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// SIGKILL, like a crash: nothing runs after it.
    fn kill9(mut self) {
        self.child.kill().expect("sends SIGKILL");
        self.child.wait().expect("reaps the child");
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether something on `port` answers PING with PONG within half a second.
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let timeout = Some(Duration::from_millis(500));
    let mut reply = [0u8; 7];
    stream.set_read_timeout(timeout).is_ok()
        && stream.set_write_timeout(timeout).is_ok()
        && stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// One field of an INFO section, "" when missing.
fn info_field(con: &mut Connection, section: &str, name: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(con)
        .unwrap_or_else(|err| panic!("INFO {section} failed: {err}"));
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_string())
        .unwrap_or_default()
}

fn source_figure(con: &mut Connection, name: &str) -> u64 {
    let text = info_field(con, "source", name);
    text.parse()
        .unwrap_or_else(|_| panic!("INFO source {name} is '{text}', not a number"))
}

/// Polls `INFO source` until `outbox_depth` is 0; the time it took.
fn wait_outbox_empty(con: &mut Connection, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let depth = source_figure(con, "outbox_depth");
        if depth == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "outbox_depth is still {depth} after {within:?} (breaker {}, ship_errors {})",
            info_field(con, "source", "breaker_state"),
            source_figure(con, "ship_errors"),
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Polls until `breaker_state` is `state`; the time it took.
fn wait_breaker(con: &mut Connection, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = info_field(con, "source", "breaker_state");
        if now == state {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "breaker_state is still {now}, not {state}, after {within:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The error as the server sent it (`SOURCEDOWN ...`), or the I/O failure.
fn error_text(err: &RedisError) -> String {
    match err.code() {
        Some(code) => format!("{code} {}", err.detail().unwrap_or_default()),
        None => format!("(no reply) {err}"),
    }
}

fn get(con: &mut Connection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query(con)
        .unwrap_or_else(|err| panic!("GET {key} failed: {}", error_text(&err)))
}

fn set(con: &mut Connection, key: &str, value: &str) {
    let reply: Value = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(con)
        .unwrap_or_else(|err| panic!("SET {key} failed: {}", error_text(&err)));
    assert_eq!(reply, Value::Okay, "SET {key}");
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------- PostgreSQL

/// Runs a command as the cluster's owner: `postgres` when we are root
/// (initdb and pg_ctl refuse to run as root), as `tools/pg.sh` does.
fn as_owner(program: &str) -> Command {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL cluster of this test's own, started with `tools/pg.sh start`;
/// dropping it stops the cluster and removes its directory.
struct PgCluster {
    dir: PathBuf,
    url: String,
    port: u16,
    bindir: String,
}

impl PgCluster {
    fn start() -> PgCluster {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/pg.sh");
        let out = Command::new("bash")
            .args([script, "start"])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("runs tools/pg.sh start");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let export = |name: &str| {
            stdout.lines().find_map(|line| {
                line.strip_prefix(&format!("export {name}="))
                    .map(|v| v.trim_matches('\'').to_string())
            })
        };
        // A half-started cluster is cleaned up by pg.sh itself.
        let (Some(dir), Some(url)) = (export("STRATA_PG_DIR"), export("STRATA_TEST_PG_URL")) else {
            panic!("tools/pg.sh start failed ({}):\n{stdout}", out.status);
        };
        let cluster_dir = PathBuf::from(&dir);
        let bindir = fs::read_to_string(cluster_dir.join("bindir"))
            .expect("pg.sh writes bindir")
            .trim()
            .to_string();
        let port = url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"));
        PgCluster {
            dir: cluster_dir,
            url,
            port,
            bindir,
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data");
        let status = as_owner(&format!("{}/pg_ctl", self.bindir))
            .arg("-D")
            .arg(&data)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("runs pg_ctl");
        assert!(
            status.success(),
            "pg_ctl {} failed: {status}",
            args.join(" ")
        );
    }

    /// `pg_ctl stop -m fast`: sessions are disconnected, the port closes.
    fn stop_fast(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
    }

    /// Starts the stopped cluster again on the same port.
    fn start_again(&self) {
        let log = self.dir.join("postgres.log");
        let log = log.to_str().expect("temp paths are UTF-8");
        let port = format!("-p {}", self.port);
        self.pg_ctl(&["-l", log, "-o", &port, "-w", "-t", "60", "start"]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/pg.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}

/// A row of `<schema>.keys`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    kind: Option<String>,
    value: Option<Vec<u8>>,
    version: i64,
}

/// A blocking look at the tables, as a person with psql would take it.
struct Pg {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Pg {
    fn connect(url: &str) -> Pg {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (client, connection) = rt
            .block_on(tokio_postgres::connect(url, tokio_postgres::NoTls))
            .unwrap_or_else(|err| panic!("connects to PostgreSQL: {err}"));
        rt.spawn(connection);
        Pg { rt, client }
    }

    /// Every row of database 0, by key.
    fn keys(&self, schema: &str) -> BTreeMap<Vec<u8>, Row> {
        let sql = format!("SELECT key, kind, value, version FROM {schema}.keys WHERE db = 0");
        let rows = self
            .rt
            .block_on(self.client.query(&sql, &[]))
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
        rows.iter()
            .map(|row| {
                (
                    row.get::<_, Vec<u8>>(0),
                    Row {
                        kind: row.get(1),
                        value: row.get(2),
                        version: row.get(3),
                    },
                )
            })
            .collect()
    }

    /// The first column of every row, as integers.
    fn ints(&self, sql: &str) -> Vec<i32> {
        self.rt
            .block_on(self.client.query(sql, &[]))
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .iter()
            .map(|row| row.get::<_, i32>(0))
            .collect()
    }

    fn execute(&self, sql: &str) {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
}

/// A schema name no other test or earlier run uses.
fn schema(test: &str) -> String {
    format!("t_{test}_{:08x}", rand::random::<u32>())
}

/// The flags of a strata whose source is `url` in `schema`.
fn flags(dir: &Path, url: &str, schema: &str, extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--dir",
        dir.to_str().expect("temp paths are UTF-8"),
        "--loglevel",
        "warning",
        "--source-url",
        url,
        "--source-schema",
        schema,
    ]
    .iter()
    .map(|flag| flag.to_string())
    .collect();
    flags.extend(extra.iter().map(|flag| flag.to_string()));
    flags
}

// ---------------------------------------------------------------- outage under load

const CACHED_KEYS: usize = 200;
const READERS: usize = 2;
const BEHIND_WRITERS: usize = 3;
const BEHIND_KEYS: usize = 100;
const THROUGH_WRITERS: usize = 2;
const THROUGH_KEYS: usize = 50;
/// Bound on one client's commands over the whole test.
const MAX_OPS: u64 = 200_000;
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A `through` write that waits longer than this for its reply hung.
const HANG_BOUND: Duration = Duration::from_secs(2 + 2 + 5);

fn outage_secs() -> u64 {
    std::env::var("STRATA_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn cached_value(i: usize) -> String {
    format!("cached-{i}")
}

/// A reader of keys cached before the outage: every GET must answer with
/// the key's value, whatever the source does.
#[derive(Default)]
struct ReadLog {
    reads: u64,
    /// Failed or wrong reads sent before PostgreSQL was started again.
    failures: Vec<String>,
    /// Those sent after (see the note on the assertion).
    failures_after_restart: Vec<String>,
}

/// What the load threads are told.
#[derive(Default)]
struct Phase {
    stop: AtomicBool,
    /// Set just before PostgreSQL starts again.
    restarting: AtomicBool,
}

fn run_reader(port: u16, phase: &Phase) -> ReadLog {
    let mut log = ReadLog::default();
    let mut con = connect(port, IO_TIMEOUT);
    let mut rng = rand::thread_rng();
    while !phase.stop.load(Ordering::Relaxed) && log.reads < MAX_OPS {
        let i = rng.gen_range(0..CACHED_KEYS);
        let key = format!("cache:{i}");
        log.reads += 1;
        let failures = if phase.restarting.load(Ordering::Relaxed) {
            &mut log.failures_after_restart
        } else {
            &mut log.failures
        };
        match redis::cmd("GET")
            .arg(&key)
            .query::<Option<String>>(&mut con)
        {
            Ok(Some(value)) if value == cached_value(i) => {}
            Ok(other) => failures.push(format!("GET {key} -> {other:?}")),
            Err(err) => {
                failures.push(format!("GET {key} -> {}", error_text(&err)));
                if err.code().is_none() {
                    con = connect(port, IO_TIMEOUT);
                }
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    log
}

fn connect(port: u16, timeout: Duration) -> Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("valid url");
    let con = client
        .get_connection_with_timeout(IO_TIMEOUT)
        .expect("connects to strata");
    con.set_read_timeout(Some(timeout)).expect("sets a timeout");
    con.set_write_timeout(Some(timeout))
        .expect("sets a timeout");
    con
}

/// A `behind` writer: every SET must be acknowledged at once, source or not.
#[derive(Default)]
struct BehindLog {
    acked: u64,
    failures: Vec<String>,
    /// key → the value of its last acknowledged SET.
    last: HashMap<String, String>,
    /// Reads of the writer's own key right after its SET.
    read_backs: u64,
    /// Read-backs that did not see the write just acknowledged.
    stale_reads: Vec<String>,
}

fn run_behind_writer(port: u16, writer: usize, phase: &Phase) -> BehindLog {
    let mut log = BehindLog::default();
    let mut con = connect(port, IO_TIMEOUT);
    let mut rng = rand::thread_rng();
    let mut seq = 0u64;
    while !phase.stop.load(Ordering::Relaxed) && seq < MAX_OPS {
        seq += 1;
        let key = format!("bh:w{writer}:k{}", rng.gen_range(0..BEHIND_KEYS));
        let value = format!("{key}:s{seq}");
        match redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .query::<Value>(&mut con)
        {
            Ok(Value::Okay) => {
                log.acked += 1;
                log.last.insert(key.clone(), value.clone());
            }
            Ok(other) => {
                log.failures.push(format!("SET {key} -> {other:?}"));
                continue;
            }
            Err(err) => {
                log.failures
                    .push(format!("SET {key} -> {}", error_text(&err)));
                if err.code().is_none() {
                    con = connect(port, IO_TIMEOUT);
                }
                continue;
            }
        }
        // Not once PostgreSQL is back: a read then may load an older value
        // (see `unshipped_writes_survive_the_listener_reconnect`).
        if seq.is_multiple_of(10) && !phase.restarting.load(Ordering::Relaxed) {
            log.read_backs += 1;
            match redis::cmd("GET")
                .arg(&key)
                .query::<Option<String>>(&mut con)
            {
                Ok(Some(seen)) if seen == value => {}
                Ok(other) => log
                    .stale_reads
                    .push(format!("GET {key} -> {other:?}, not {value}")),
                Err(err) => {
                    log.stale_reads
                        .push(format!("GET {key} -> {}", error_text(&err)));
                    if err.code().is_none() {
                        con = connect(port, IO_TIMEOUT);
                    }
                }
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    log
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// `OK`: the source committed it.
    Acked,
    /// Refused before it ran (breaker open, outbox full): not applied.
    Refused,
    /// Applied here, the source did not confirm it: ships later.
    Unconfirmed,
    /// No reply within the client's timeout: applied here, ships later.
    Hung,
    /// Anything else: a failure of the test.
    Other,
}

/// One `through` SET.
struct ThroughOp {
    sent: Instant,
    key: String,
    value: String,
    outcome: Outcome,
    latency: Duration,
    error: String,
}

fn classify(err: &RedisError) -> Outcome {
    let text = error_text(err);
    if err.is_timeout() {
        Outcome::Hung
    } else if !text.starts_with("SOURCEDOWN ") {
        Outcome::Other
    // First: its reason in parentheses may say the breaker is open.
    } else if text.contains("the write is applied here but the source did not confirm it") {
        Outcome::Unconfirmed
    } else if text.contains("circuit breaker is open")
        || text.contains("outbox") && text.contains("is full")
    {
        Outcome::Refused
    } else {
        Outcome::Other
    }
}

/// A client's timeout on a `through` reply: long enough to measure a hang.
const THROUGH_CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

fn run_through_writer(port: u16, writer: usize, phase: &Phase) -> Vec<ThroughOp> {
    let mut ops = Vec::new();
    let mut con = connect(port, THROUGH_CLIENT_TIMEOUT);
    let mut rng = rand::thread_rng();
    let mut seq = 0u64;
    while !phase.stop.load(Ordering::Relaxed) && seq < MAX_OPS {
        seq += 1;
        let key = format!("thr:w{writer}:k{}", rng.gen_range(0..THROUGH_KEYS));
        let value = format!("{key}:s{seq}");
        let sent = Instant::now();
        let reply = redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .query::<Value>(&mut con);
        let latency = sent.elapsed();
        let (outcome, error) = match reply {
            Ok(Value::Okay) => (Outcome::Acked, String::new()),
            Ok(other) => (Outcome::Other, format!("{other:?}")),
            Err(err) => {
                if err.code().is_none() {
                    con = connect(port, THROUGH_CLIENT_TIMEOUT);
                }
                (classify(&err), error_text(&err))
            }
        };
        ops.push(ThroughOp {
            sent,
            key,
            value,
            outcome,
            latency,
            error,
        });
        thread::sleep(Duration::from_millis(5));
    }
    ops
}

/// PostgreSQL stops for `STRATA_OUTAGE_SECS` while clients read cached keys
/// and write `behind` and `through` keys; then it comes back. Reads of
/// cached keys never fail, `behind` writes are all acknowledged, `through`
/// writes fail fast with SOURCEDOWN, and once the outbox drains PostgreSQL
/// holds exactly what strata holds.
#[test]
fn outage_under_load_loses_nothing_and_fails_through_writes_cleanly() {
    let outage = Duration::from_secs(outage_secs());
    let cluster = PgCluster::start();
    let name = schema("outage");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("strata.toml");
    fs::write(
        &config,
        format!(
            "[source]\nconnect-timeout = \"{}ms\"\nstatement-timeout = \"{}ms\"\n\n\
             [[source.rule]]\npattern = \"thr:*\"\nwrite-mode = \"through\"\n",
            CONNECT_TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis()
        ),
    )
    .expect("writes the config");
    let data = dir.path().join("data");
    let strata = Strata::start(&flags(
        &data,
        &cluster.url,
        &name,
        &[
            "--config",
            config.to_str().expect("temp paths are UTF-8"),
            "--write-mode",
            "behind",
            "--appendfsync",
            "everysec",
            "--source-breaker-retry-after",
            "3s",
        ],
    ));
    let mut con = strata.con();
    assert_eq!(info_field(&mut con, "source", "write_mode"), "behind");
    for i in 0..CACHED_KEYS {
        set(&mut con, &format!("cache:{i}"), &cached_value(i));
    }
    wait_outbox_empty(&mut con, Duration::from_secs(30));
    // A through write with the source up commits before its reply.
    set(&mut con, "thr:probe", "up");
    let pg = Pg::connect(&cluster.url);
    assert_eq!(
        pg.keys(&name)
            .get(b"thr:probe".as_slice())
            .and_then(|row| row.value.clone()),
        Some(b"up".to_vec()),
        "a through write is in PostgreSQL when its OK arrives"
    );
    drop(pg);

    let port = strata.port;
    let phase = Arc::new(Phase::default());
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let phase = phase.clone();
            thread::spawn(move || run_reader(port, &phase))
        })
        .collect();
    let behind: Vec<_> = (0..BEHIND_WRITERS)
        .map(|w| {
            let phase = phase.clone();
            thread::spawn(move || run_behind_writer(port, w, &phase))
        })
        .collect();
    let through: Vec<_> = (0..THROUGH_WRITERS)
        .map(|w| {
            let phase = phase.clone();
            thread::spawn(move || run_through_writer(port, w, &phase))
        })
        .collect();

    thread::sleep(Duration::from_secs(3));
    let down_at = Instant::now();
    cluster.stop_fast();
    eprintln!("PostgreSQL stopped for {outage:?}");
    let opened_after = wait_breaker(&mut con, "open", Duration::from_secs(30));
    let depth_during = {
        thread::sleep(outage.saturating_sub(down_at.elapsed()));
        source_figure(&mut con, "outbox_depth")
    };
    phase.restarting.store(true, Ordering::Relaxed);
    cluster.start_again();
    let up_at = Instant::now();
    eprintln!("PostgreSQL is back; outbox_depth was {depth_during}");
    let closed_after = wait_breaker(&mut con, "closed", Duration::from_secs(60));
    // Load goes on a while with the source back.
    thread::sleep(Duration::from_secs(3));
    phase.stop.store(true, Ordering::Relaxed);

    let reads: Vec<ReadLog> = readers
        .into_iter()
        .map(|h| h.join().expect("reader"))
        .collect();
    let behind: Vec<BehindLog> = behind
        .into_iter()
        .map(|h| h.join().expect("writer"))
        .collect();
    let through: Vec<ThroughOp> = through
        .into_iter()
        .flat_map(|h| h.join().expect("writer"))
        .collect();
    let drained_after = wait_outbox_empty(&mut con, Duration::from_secs(120));

    // What strata holds and what PostgreSQL holds, key by key.
    let pg = Pg::connect(&cluster.url);
    let rows = pg.keys(&name);
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..CACHED_KEYS {
        expected.insert(format!("cache:{i}"), cached_value(i));
    }
    expected.insert("thr:probe".into(), "up".into());
    for log in &behind {
        expected.extend(log.last.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    // Each through key has one writer: its value is the last write applied.
    for op in &through {
        if op.outcome != Outcome::Refused {
            expected.insert(op.key.clone(), op.value.clone());
        }
    }
    let mut mismatches = Vec::new();
    let mut in_pg = 0;
    for (key, value) in &expected {
        let here = get(&mut con, key);
        let there = rows.get(key.as_bytes());
        let there_value = there.and_then(|row| row.value.clone());
        if there.is_some_and(|row| row.kind.as_deref() == Some("string"))
            && there_value.as_deref() == Some(value.as_bytes())
        {
            in_pg += 1;
        }
        if here.as_deref() != Some(value.as_bytes()) || there_value.as_deref() != here.as_deref() {
            mismatches.push(format!(
                "{key}: expected {value}, strata {:?}, PostgreSQL {:?}",
                here.map(|v| String::from_utf8_lossy(&v).into_owned()),
                there.map(|row| (
                    row.kind.clone(),
                    row.value
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                ))
            ));
        }
    }
    let strangers: Vec<String> = rows
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .filter(|k| !expected.contains_key(k))
        .collect();

    // Figures, for the record.
    let reads_total: u64 = reads.iter().map(|r| r.reads).sum();
    let read_failures: Vec<&String> = reads.iter().flat_map(|r| &r.failures).collect();
    let read_failures_after: Vec<&String> = reads
        .iter()
        .flat_map(|r| &r.failures_after_restart)
        .collect();
    let behind_acked: u64 = behind.iter().map(|b| b.acked).sum();
    let behind_failures: Vec<&String> = behind.iter().flat_map(|b| &b.failures).collect();
    let read_backs: u64 = behind.iter().map(|b| b.read_backs).sum();
    let stale: Vec<&String> = behind.iter().flat_map(|b| &b.stale_reads).collect();
    let count = |o: Outcome| through.iter().filter(|op| op.outcome == o).count();
    let slowest = |o: Outcome| {
        through
            .iter()
            .filter(|op| op.outcome == o)
            .map(|op| op.latency)
            .max()
            .unwrap_or_default()
    };
    let hung: Vec<String> = through
        .iter()
        .filter(|op| op.latency > HANG_BOUND)
        .map(|op| {
            format!(
                "{} {:?} after {:?}: {}",
                op.key, op.outcome, op.latency, op.error
            )
        })
        .collect();
    eprintln!("outage {outage:?}: breaker open {opened_after:?} after the stop, closed {closed_after:?} after the restart; outbox drained {drained_after:?} after the load stopped ({:?} after the restart)", up_at.elapsed());
    eprintln!(
        "cached reads: {reads_total}, failed before the restart: {}, after it: {}",
        read_failures.len(),
        read_failures_after.len()
    );
    eprintln!(
        "behind writes acknowledged: {behind_acked}, failed: {}; read-backs {read_backs}, stale or failed: {}",
        behind_failures.len(),
        stale.len()
    );
    eprintln!(
        "through writes: {} acked (slowest {:?}), {} refused (slowest {:?}), {} unconfirmed (slowest {:?}), {} hung, {} other; beyond {HANG_BOUND:?}: {}",
        count(Outcome::Acked),
        slowest(Outcome::Acked),
        count(Outcome::Refused),
        slowest(Outcome::Refused),
        count(Outcome::Unconfirmed),
        slowest(Outcome::Unconfirmed),
        count(Outcome::Hung),
        count(Outcome::Other),
        hung.len()
    );
    let acked_keys: BTreeSet<&String> = through
        .iter()
        .filter(|op| op.outcome == Outcome::Acked)
        .map(|op| &op.key)
        .collect();
    eprintln!(
        "keys written: {}, present in PostgreSQL with strata's value: {in_pg}, lost: {}; \
         through keys acknowledged at least once: {}; rows not written by the test: {}",
        expected.len(),
        expected.len() - in_pg,
        acked_keys.len(),
        strangers.len()
    );
    for op in through
        .iter()
        .filter(|op| op.outcome == Outcome::Other)
        .take(5)
    {
        eprintln!("  other: {} -> {}", op.key, op.error);
    }
    for line in read_failures.iter().chain(&read_failures_after).take(5) {
        eprintln!("  read failure: {line}");
    }
    for line in stale.iter().take(5) {
        eprintln!("  read-back: {line}");
    }
    // Sent between the stop and the breaker opening: in flight when the
    // source went away.
    let around_stop: Vec<(Outcome, Duration)> = through
        .iter()
        .filter(|op| op.sent >= down_at && op.sent < down_at + opened_after)
        .map(|op| (op.outcome, op.latency))
        .collect();
    eprintln!("through writes sent before the breaker opened: {around_stop:?}");
    for line in hung.iter().take(5) {
        eprintln!("  hung: {line}");
    }

    assert!(reads_total > 0 && behind_acked > 0, "the load ran");
    assert!(
        count(Outcome::Refused) + count(Outcome::Unconfirmed) > 0,
        "through writes failed during the outage"
    );
    assert!(
        read_failures.is_empty(),
        "reads of cached keys failed: {read_failures:?}"
    );
    assert!(read_failures_after.is_empty(), "{read_failures_after:?}");
    assert!(
        behind_failures.is_empty(),
        "behind writes failed: {behind_failures:?}"
    );
    assert!(stale.is_empty(), "read-backs of behind writes: {stale:?}");
    assert_eq!(count(Outcome::Other), 0, "through writes failed oddly");
    let slow_refusals = through
        .iter()
        .filter(|op| op.outcome == Outcome::Refused && op.latency > HANG_BOUND)
        .count();
    assert_eq!(slow_refusals, 0, "refusals come at once");
    assert!(hung.is_empty(), "through writes hung: {hung:?}");
    assert!(
        mismatches.is_empty(),
        "strata and PostgreSQL differ: {mismatches:#?}"
    );
    assert!(strangers.is_empty(), "rows nobody wrote: {strangers:?}");
    assert_eq!(source_figure(&mut con, "dead_letters"), 0);
}

// ---------------------------------------------------------------- kill -9

const KILL_KEYS: usize = 2000;

/// With PostgreSQL down, `behind` writes pile up in the outbox; `kill -9`;
/// PostgreSQL comes back and strata restarts on the same directory: every
/// acknowledged write reaches PostgreSQL, the last one per key wins, and
/// versions keep the order of the writes.
#[test]
fn kill9_with_a_full_outbox_ships_every_acknowledged_write_once() {
    let cluster = PgCluster::start();
    let name = schema("kill");
    // Strata creates the schema, so the writes below reach a fresh one.
    let dir = tempfile::tempdir().expect("temp dir");
    let extra = [
        "--write-mode",
        "behind",
        "--appendfsync",
        "always",
        "--source-breaker-retry-after",
        "1s",
    ];
    let started_us = unix_micros();
    let first = Strata::start(&flags(dir.path(), &cluster.url, &name, &extra));
    let mut con = first.con();
    // Schema in place before the outage, so the restart needs no DDL race.
    set(&mut con, "warmup", "w");
    wait_outbox_empty(&mut con, Duration::from_secs(30));
    cluster.stop_fast();

    // Every key once, a third of them again, a tenth deleted, in this order.
    let mut order: Vec<String> = Vec::new();
    let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
    last.insert("warmup".into(), Some("w".into()));
    order.push("warmup".into());
    let mut acked = 0u64;
    let mut write = |con: &mut Connection, key: String, value: Option<String>| {
        match &value {
            Some(value) => set(con, &key, value),
            None => {
                let removed: i64 = redis::cmd("DEL")
                    .arg(&key)
                    .query(con)
                    .unwrap_or_else(|err| panic!("DEL {key}: {}", error_text(&err)));
                assert_eq!(removed, 1, "DEL {key}");
            }
        }
        acked += 1;
        order.retain(|k| *k != key);
        order.push(key.clone());
        last.insert(key, value);
    };
    for i in 0..KILL_KEYS {
        write(&mut con, format!("kill:{i}"), Some(format!("v1-{i}")));
    }
    for i in (0..KILL_KEYS).step_by(3) {
        write(&mut con, format!("kill:{i}"), Some(format!("v2-{i}")));
    }
    for i in (0..KILL_KEYS).step_by(10) {
        write(&mut con, format!("kill:{i}"), None);
    }
    let depth = source_figure(&mut con, "outbox_depth");
    assert_eq!(depth, acked, "every write waits in the outbox");
    drop(con);
    first.kill9();

    cluster.start_again();
    let second = Strata::start(&flags(dir.path(), &cluster.url, &name, &extra));
    let mut con = second.con();
    let drained = wait_outbox_empty(&mut con, Duration::from_secs(60));
    let shipped = source_figure(&mut con, "shipped_records");
    let dead = source_figure(&mut con, "dead_letters");

    let pg = Pg::connect(&cluster.url);
    let rows = pg.keys(&name);
    let mut present = 0;
    let mut wrong = Vec::new();
    for (key, value) in &last {
        let row = rows.get(key.as_bytes());
        let ok = match (value, row) {
            (Some(value), Some(row)) => {
                row.kind.as_deref() == Some("string")
                    && row.value.as_deref() == Some(value.as_bytes())
            }
            // A DEL ships a tombstone.
            (None, Some(row)) => row.kind.is_none(),
            (None, None) => false,
            (Some(_), None) => false,
        };
        if ok {
            present += 1;
        } else {
            wrong.push(format!("{key}: expected {value:?}, PostgreSQL {row:?}"));
        }
        let here = get(&mut con, key);
        assert_eq!(
            here.as_deref(),
            value.as_deref().map(str::as_bytes),
            "{key} after the restart"
        );
    }
    let strangers: Vec<String> = rows
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .filter(|k| !last.contains_key(k))
        .collect();
    // Versions follow the order of the last writes, and are the hybrid
    // clock's microseconds of this run.
    let versions: Vec<i64> = order
        .iter()
        .filter_map(|key| rows.get(key.as_bytes()).map(|row| row.version))
        .collect();
    let out_of_order = versions.windows(2).filter(|w| w[0] >= w[1]).count();
    let now_us = unix_micros();
    let implausible = versions
        .iter()
        .filter(|&&v| (v as u64) < started_us || (v as u64) > now_us)
        .count();

    eprintln!(
        "kill -9 with {depth} writes in the outbox: acknowledged {acked}, keys {}, present in PostgreSQL {present}, lost {}; \
         drained {drained:?} after the restart, shipped_records {shipped}, dead_letters {dead}; versions out of order {out_of_order}",
        last.len(),
        last.len() - present
    );
    assert!(wrong.is_empty(), "PostgreSQL differs: {wrong:#?}");
    assert!(strangers.is_empty(), "rows nobody wrote: {strangers:?}");
    assert_eq!(out_of_order, 0, "versions follow the order of the writes");
    assert_eq!(implausible, 0, "versions are this run's clock");
    assert_eq!(dead, 0);
    assert!(shipped >= depth, "the restarted strata shipped the outbox");
}

// ---------------------------------------------------------------- breaker

/// INFO's breaker_state: closed with the source up; open after the
/// threshold's failures while PostgreSQL is down (cached keys still served,
/// misses and `through` writes refused at once); half_open once
/// retry_after passed; closed after the probe succeeds.
#[test]
fn breaker_opens_while_postgres_is_down_and_closes_once_it_is_back() {
    let cluster = PgCluster::start();
    let name = schema("breaker");
    let dir = tempfile::tempdir().expect("temp dir");
    let strata = Strata::start(&flags(
        dir.path(),
        &cluster.url,
        &name,
        &[
            "--write-mode",
            "through",
            "--source-breaker-threshold",
            "3",
            "--source-breaker-retry-after",
            "3s",
            "--source-statement-timeout",
            "2s",
        ],
    ));
    let mut con = strata.con();
    set(&mut con, "cached", "here");
    assert_eq!(info_field(&mut con, "source", "breaker_state"), "closed");
    // A row only the source has: loaded on a miss once the breaker closes.
    Pg::connect(&cluster.url).execute(&format!(
        "INSERT INTO {name}.keys (db, key, kind, value, version, writer) \
         VALUES (0, 'only-in-pg', 'string', 'from-pg', 1, 'test')"
    ));

    cluster.stop_fast();
    let refusals_before = source_figure(&mut con, "breaker_refusals");
    // Misses need the source: each fails, and after the threshold the
    // breaker opens.
    let mut errors = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut con, "source", "breaker_state") != "open" {
        assert!(
            Instant::now() < deadline,
            "the breaker did not open: {errors:?}"
        );
        match redis::cmd("GET")
            .arg(format!("miss:{}", errors.len()))
            .query::<Option<String>>(&mut con)
        {
            Err(err) => errors.push(error_text(&err)),
            Ok(value) => panic!("a miss with PostgreSQL down answered {value:?}"),
        }
    }
    assert!(
        errors.iter().all(|e| e.starts_with("SOURCEDOWN ")),
        "misses fail with SOURCEDOWN: {errors:?}"
    );
    // Open: refused at once, without a timeout.
    let started = Instant::now();
    let err = redis::cmd("SET")
        .arg("thr")
        .arg("x")
        .query::<Value>(&mut con)
        .expect_err("a through write with the breaker open");
    assert!(
        error_text(&err).contains("circuit breaker is open"),
        "{}",
        error_text(&err)
    );
    let started_miss = Instant::now();
    let err = redis::cmd("GET")
        .arg("miss:open")
        .query::<Option<String>>(&mut con)
        .expect_err("a miss with the breaker open");
    assert!(
        error_text(&err).starts_with("SOURCEDOWN "),
        "{}",
        error_text(&err)
    );
    assert!(
        started.elapsed() < Duration::from_secs(1)
            && started_miss.elapsed() < Duration::from_secs(1),
        "refusals are immediate"
    );
    assert!(source_figure(&mut con, "breaker_refusals") > refusals_before);
    assert_eq!(get(&mut con, "cached").as_deref(), Some(b"here".as_slice()));

    cluster.start_again();
    // Nothing calls the source meanwhile (the outbox is empty): after
    // retry_after the breaker shows half_open until a call tries.
    let half_open_after = wait_breaker(&mut con, "half_open", Duration::from_secs(10));
    assert_eq!(
        get(&mut con, "only-in-pg").as_deref(),
        Some(b"from-pg".as_slice()),
        "the probe loads the key"
    );
    assert_eq!(info_field(&mut con, "source", "breaker_state"), "closed");
    assert_eq!(
        get(&mut con, "thr"),
        None,
        "the refused write was not applied"
    );
    set(&mut con, "thr", "after");
    let rows = Pg::connect(&cluster.url).keys(&name);
    assert_eq!(
        rows.get(b"thr".as_slice()).and_then(|r| r.value.clone()),
        Some(b"after".to_vec())
    );
    eprintln!(
        "breaker: open after {} failed misses, half_open {half_open_after:?} after PostgreSQL came back, closed after one load",
        errors.len()
    );
}

// ---------------------------------------------------------------- listener reconnect

/// The LISTEN connection breaks (its backend is terminated) while a
/// `behind` write waits in the outbox (a lock on the keys table holds the
/// drainer back; reads go on). After the listener reconnects strata drops
/// every cached copy; the write, acknowledged and durable here, must still
/// be what a read sees, and PostgreSQL gets it once the lock goes.
///
/// Uses the shared cluster (`STRATA_TEST_PG_URL`): nothing is stopped.
#[test]
fn unshipped_writes_survive_the_listener_reconnect() {
    let Ok(url) = std::env::var("STRATA_TEST_PG_URL") else {
        panic!("STRATA_TEST_PG_URL is not set: run tools/test.sh, or `eval \"$(tools/pg.sh start)\"` first");
    };
    let name = schema("relisten");
    let dir = tempfile::tempdir().expect("temp dir");
    let strata = Strata::start(&flags(
        dir.path(),
        &url,
        &name,
        &[
            "--write-mode",
            "behind",
            // The held-back drainer must not open the breaker meanwhile.
            "--source-breaker-threshold",
            "1000000",
            "--source-statement-timeout",
            "2s",
        ],
    ));
    let pg = Pg::connect(&url);
    // The listener's backend, found while its last statement is its LISTEN
    // (a ping 10 s later changes that).
    let find =
        format!("SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN \"{name}_invalidate\"'");
    let started = Instant::now();
    let listener = loop {
        if let [pid] = pg.ints(&find)[..] {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no LISTEN session of strata found"
        );
        thread::sleep(Duration::from_millis(20));
    };
    let mut con = strata.con();
    set(&mut con, "k", "old");
    wait_outbox_empty(&mut con, Duration::from_secs(30));
    // Writes to the table wait for the lock; reads go on.
    pg.execute(&format!("BEGIN; LOCK TABLE {name}.keys IN SHARE MODE"));
    set(&mut con, "k", "new");
    set(&mut con, "fresh", "only-here");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(source_figure(&mut con, "outbox_depth"), 2, "held back");
    // A network blip on the LISTEN connection.
    pg.execute(&format!("SELECT pg_terminate_backend({listener})"));
    let cut = Instant::now();
    while source_figure(&mut con, "listener_reconnects") == 0 {
        assert!(
            cut.elapsed() < Duration::from_secs(30),
            "the listener did not reconnect"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // The drop runs right after the reconnect is reported.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        source_figure(&mut con, "outbox_depth"),
        2,
        "still held back"
    );
    let read = |con: &mut Connection, key: &str| {
        redis::cmd("GET")
            .arg(key)
            .query::<Option<String>>(con)
            .map_err(|e| error_text(&e))
    };
    let k = read(&mut con, "k");
    let fresh = read(&mut con, "fresh");
    pg.execute("COMMIT");
    wait_outbox_empty(&mut con, Duration::from_secs(60));
    // Past the negative TTL (5 s) of a key read as absent.
    thread::sleep(Duration::from_secs(6));
    let k_later = read(&mut con, "k");
    let fresh_later = read(&mut con, "fresh");
    let rows = pg.keys(&name);
    let in_pg = |key: &[u8]| rows.get(key).and_then(|row| row.value.clone());
    eprintln!(
        "listener reconnect with 2 writes unshipped: GET k -> {k:?}, GET fresh -> {fresh:?}; \
         after the drain: GET k -> {k_later:?}, GET fresh -> {fresh_later:?}"
    );
    assert_eq!(in_pg(b"k"), Some(b"new".to_vec()));
    assert_eq!(in_pg(b"fresh"), Some(b"only-here".to_vec()));
    assert_eq!(fresh_later, Ok(Some("only-here".to_string())));
    pg.execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
    // The reconnect keeps the copies of keys whose writes are still in the
    // outbox: newer here than in PostgreSQL.
    assert_eq!(k, Ok(Some("new".to_string())));
    assert_eq!(fresh, Ok(Some("only-here".to_string())));
    assert_eq!(k_later, Ok(Some("new".to_string())));
}

// ---------------------------------------------------------------- through behind a long queue

/// With PostgreSQL down and the breaker kept closed, a `through` write gets
/// SOURCEDOWN within the statement timeout, however many `behind` writes
/// wait ahead of it in the outbox; both ship once PostgreSQL is back.
#[test]
fn through_write_fails_fast_behind_a_long_outbox() {
    let cluster = PgCluster::start();
    let name = schema("longq");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("strata.toml");
    fs::write(
        &config,
        "[[source.rule]]\npattern = \"thr:*\"\nwrite-mode = \"through\"\n",
    )
    .expect("writes the config");
    let strata = Strata::start(&flags(
        &dir.path().join("data"),
        &cluster.url,
        &name,
        &[
            "--config",
            config.to_str().expect("temp paths are UTF-8"),
            "--write-mode",
            "behind",
            "--source-statement-timeout",
            "2s",
            // Closed throughout: every through write is admitted and waits
            // for the drainer's verdict.
            "--source-breaker-threshold",
            "1000000",
        ],
    ));
    let mut con = strata.con();
    set(&mut con, "warm", "w");
    wait_outbox_empty(&mut con, Duration::from_secs(30));
    cluster.stop_fast();
    let mut outcomes = Vec::new();
    // A few writes ahead, then more than one drain batch (2,000 records).
    for ahead in [10usize, 2500] {
        for i in 0..ahead {
            set(&mut con, &format!("bh:{ahead}:{i}"), "v");
        }
        let depth = source_figure(&mut con, "outbox_depth");
        let mut client = strata.con_timeout(HANG_BOUND);
        let sent = Instant::now();
        let reply = redis::cmd("SET")
            .arg(format!("thr:{ahead}"))
            .arg("x")
            .query::<Value>(&mut client);
        let latency = sent.elapsed();
        let outcome = match &reply {
            Ok(_) => Outcome::Acked,
            Err(err) => classify(err),
        };
        eprintln!(
            "through SET with {depth} writes queued ahead: {:?} after {latency:?}",
            reply.map_err(|err| error_text(&err))
        );
        outcomes.push((ahead, outcome, latency));
    }
    cluster.start_again();
    wait_outbox_empty(&mut con, Duration::from_secs(60));
    let rows = Pg::connect(&cluster.url).keys(&name);
    for key in ["thr:10", "thr:2500", "bh:2500:2499"] {
        assert!(
            rows.get(key.as_bytes())
                .is_some_and(|row| row.kind.is_some()),
            "{key} reached PostgreSQL"
        );
    }
    let (_, near, near_latency) = outcomes[0];
    assert_eq!(near, Outcome::Unconfirmed, "with 10 writes ahead");
    assert!(near_latency < HANG_BOUND);
    let (_, far, far_latency) = outcomes[1];
    assert_eq!(far, Outcome::Unconfirmed, "with 2,500 writes ahead");
    assert!(far_latency < HANG_BOUND);
}
