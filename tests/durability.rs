//! Durability of the warm tier, tested on the real `strata` binary: `kill -9`
//! at random moments under `appendfsync always` and `everysec` (sled's own
//! crash tests are the model) and right after SAVE, restarts that must answer
//! correctly at once in every database, a directory another server holds, a
//! full disk, and `maxmemory` eviction that bounds the process and loses
//! nothing.
//!
//! The harness at the top runs `strata` as a child process on a free port and
//! waits for PING; a guard kills and reaps every child, also when a test
//! panics. `STRATA_CRASH_CYCLES` sets how many crashes the crash test makes
//! (default 20), `STRATA_CRASH_TYPES_CYCLES` those of its sibling with lists,
//! hashes, sets and sorted sets (default 8), and `STRATA_CRASH_SEED` replays
//! their random choices.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{Cmd, Connection, FromRedisValue, RedisError, Value};

// ---------------------------------------------------------------- harness

/// Bound on every wait for a process: to answer PING, or to exit.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);
/// Read and write timeout of every client connection, so no test hangs.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// The flags of every server in this file except `--port`.
fn flags(dir: &Path, appendfsync: &str, extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--dir",
        dir.to_str().expect("temp paths are UTF-8"),
        "--appendfsync",
        appendfsync,
        "--maxmemory",
        "16mb",
        "--maxmemory-policy",
        "allkeys-lru",
        "--warm-tier",
        "yes",
        "--loglevel",
        "warning",
    ]
    .iter()
    .map(|flag| flag.to_string())
    .collect();
    flags.extend(extra.iter().map(|flag| flag.to_string()));
    flags
}

/// A port nothing listens on right now. Another process may take it before
/// strata binds it; [`Strata::start`] then retries with a new one.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds an ephemeral port");
    listener.local_addr().expect("has an address").port()
}

/// One `strata` child process; dropping it kills and reaps it.
struct Strata {
    child: Child,
    port: u16,
    /// The child's stderr, kept for failure messages and the lock test.
    stderr: tempfile::NamedTempFile,
    /// From spawn to the first PONG.
    ready_after: Duration,
}

enum Readiness {
    Ready,
    Exited(ExitStatus),
    /// Another process answers on our port (it took it before strata did).
    PortTaken,
}

/// The threads' stacks of a process that stopped answering, when gdb is
/// installed (it says where a hang is); otherwise a note.
fn stacks(pid: u32) -> String {
    Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 25",
        ])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_else(|error| format!("(no gdb: {error})"))
}

impl Strata {
    /// Starts strata with `flags` on a free port and waits until it answers
    /// PING. Panics, with its stderr, if it exits or stays silent for 20 s.
    fn start(flags: &[String]) -> Strata {
        for _attempt in 0..5 {
            let mut server = Strata::spawn(free_port(), flags);
            match server.wait_ready() {
                Readiness::Ready => return server,
                Readiness::PortTaken => continue,
                Readiness::Exited(status) => {
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

    /// Starts strata without waiting for it.
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
            ready_after: Duration::ZERO,
        }
    }

    fn wait_ready(&mut self) -> Readiness {
        let spawned = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("polls the child") {
                return Readiness::Exited(status);
            }
            if answers_ping(self.port) {
                self.ready_after = spawned.elapsed();
                // The PONG must come from our child, not from a process that
                // took the port first.
                return match server_pid(&mut self.con()) {
                    Some(pid) if pid != self.child.id() => {
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        Readiness::PortTaken
                    }
                    _ => Readiness::Ready,
                };
            }
            if spawned.elapsed() > PROCESS_TIMEOUT {
                panic!(
                    "strata did not answer PING within {PROCESS_TIMEOUT:?}; stderr:\n{}\nthreads:\n{}",
                    self.stderr(),
                    stacks(self.child.id())
                );
            }
            thread::sleep(POLL);
        }
    }

    /// A connection to database `db`.
    fn con_db(&self, db: u8) -> Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/{db}", self.port))
            .expect("valid url");
        let con = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .unwrap_or_else(|err| panic!("connects to strata: {err}\n{}", self.stderr()));
        con.set_read_timeout(Some(IO_TIMEOUT))
            .expect("sets a timeout");
        con.set_write_timeout(Some(IO_TIMEOUT))
            .expect("sets a timeout");
        con
    }

    fn con(&self) -> Connection {
        self.con_db(0)
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// The exit status, or `None` if the child still runs after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polls the child") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// SIGKILL, like a crash: nothing runs after it.
    fn kill9(mut self) {
        self.child.kill().expect("sends SIGKILL");
        self.child.wait().expect("reaps the child");
    }

    /// SHUTDOWN, whose only reply is the closed connection, then a clean exit.
    fn shutdown(mut self) {
        let mut con = self.con();
        if let Ok(reply) = redis::cmd("SHUTDOWN").query::<Value>(&mut con) {
            panic!("SHUTDOWN replied {reply:?} instead of closing the connection");
        }
        match self.wait_exit(PROCESS_TIMEOUT) {
            Some(status) if status.success() => {}
            Some(status) => panic!(
                "strata exited with {status} after SHUTDOWN:\n{}",
                self.stderr()
            ),
            None => panic!("strata still runs {PROCESS_TIMEOUT:?} after SHUTDOWN"),
        }
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        // Harmless when the child was already reaped: std then sends nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether something on `port` answers PING with PONG within half a second.
/// Raw RESP with timeouts on every step: a listener that accepts but never
/// answers cannot stall a poll loop.
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

/// `process_id` of `INFO server`, if the server reports one.
fn server_pid(con: &mut Connection) -> Option<u32> {
    let info: String = redis::cmd("INFO").arg("server").query(con).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// A command's reply, converted; panics with the command on an error.
fn q<T: FromRedisValue>(con: &mut Connection, cmd: &Cmd) -> T {
    cmd.query(con)
        .unwrap_or_else(|err| panic!("{} failed: {err}", show(cmd)))
}

/// A command for failure messages, long arguments cut short.
fn show(cmd: &Cmd) -> String {
    cmd.args_iter()
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                if text.chars().count() > 40 {
                    format!("{}...", text.chars().take(40).collect::<String>())
                } else {
                    text.into_owned()
                }
            }
            redis::Arg::Cursor => "<cursor>".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The error text as the server sent it (`MISCONF ...`).
fn error_text(err: &RedisError) -> String {
    format!(
        "{} {}",
        err.code().unwrap_or("?"),
        err.detail().unwrap_or_default()
    )
}

/// A deterministic pseudo-random stream (splitmix64), for values a check
/// can rebuild.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
}

// ---------------------------------------------------------------- crash test

const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 16;
/// Bound on one writer's commands in one cycle.
const MAX_OPS_PER_CYCLE: usize = 500_000;
/// Under `everysec`, writes acknowledged this long before the kill must survive.
const EVERYSEC_WINDOW: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fsync {
    Always,
    Everysec,
}

impl Fsync {
    fn flag(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
        }
    }
}

fn crash_key(writer: usize, key: usize) -> String {
    format!("crash:w{writer}:k{key}")
}

/// `c{cycle}:w{writer}:k{key}:s{seq}:` and 8 to 263 bytes of padding that
/// follow from the rest, so a check can tell a sent value from garbage.
fn crash_value(cycle: usize, writer: usize, key: usize, seq: u64) -> String {
    let mut mix =
        Mix(seq ^ ((cycle as u64) << 48) ^ ((writer as u64) << 40) ^ ((key as u64) << 32));
    let len = 8 + (mix.next() % 256) as usize;
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let padding: String = (0..len)
        .map(|_| alphabet[(mix.next() % alphabet.len() as u64) as usize] as char)
        .collect();
    format!("c{cycle}:w{writer}:k{key}:s{seq}:{padding}")
}

/// The (cycle, seq) a value claims, if it is exactly what `crash_value`
/// makes for `writer` and `key`.
fn parse_crash_value(value: &[u8], writer: usize, key: usize) -> Option<(usize, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split(':');
    let cycle = parts.next()?.strip_prefix('c')?.parse().ok()?;
    let seq = parts.nth(2)?.strip_prefix('s')?.parse().ok()?;
    (crash_value(cycle, writer, key, seq) == text).then_some((cycle, seq))
}

/// One SET or MSET a writer sent: its seq, its keys, when it was acknowledged.
struct Op {
    seq: u64,
    keys: Vec<usize>,
    acked: Option<Instant>,
}

/// What the writers of one cycle did before the kill.
struct CycleLog {
    cycle: usize,
    fsync: Fsync,
    kill_started: Instant,
    /// Per writer.
    ops: Vec<Vec<Op>>,
}

impl CycleLog {
    /// Whether an acknowledged write must be there after the restart.
    fn must_survive(&self, op: &Op) -> bool {
        match (op.acked, self.fsync) {
            (None, _) => false,
            (Some(_), Fsync::Always) => true,
            (Some(acked), Fsync::Everysec) => acked + EVERYSEC_WINDOW < self.kill_started,
        }
    }
}

/// Writes `c{cycle}` values to the keys of `writer` until the server dies or
/// `stop` is set; returns what it sent, and an error reply if one came.
fn run_writer(
    port: u16,
    cycle: usize,
    writer: usize,
    mut seq: u64,
    seed: u64,
    stop: &AtomicBool,
) -> (Vec<Op>, Option<String>) {
    let mut ops = Vec::new();
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return (ops, Some("bad url".into()));
    };
    let Ok(mut con) = client.get_connection_with_timeout(IO_TIMEOUT) else {
        return (ops, None); // killed before we connected
    };
    let _ = con.set_read_timeout(Some(IO_TIMEOUT));
    let _ = con.set_write_timeout(Some(IO_TIMEOUT));
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) && ops.len() < MAX_OPS_PER_CYCLE {
        seq += 1;
        let first = rng.gen_range(0..KEYS_PER_WRITER);
        let keys = if rng.gen_bool(0.25) {
            let mut second = rng.gen_range(0..KEYS_PER_WRITER - 1);
            if second >= first {
                second += 1;
            }
            vec![first, second]
        } else {
            vec![first]
        };
        let mut cmd = redis::cmd(if keys.len() == 1 { "SET" } else { "MSET" });
        for &key in &keys {
            cmd.arg(crash_key(writer, key))
                .arg(crash_value(cycle, writer, key, seq));
        }
        // Recorded before it is sent: a write the kill interrupts may or
        // may not be there afterwards, but it is a value that was sent.
        ops.push(Op {
            seq,
            keys,
            acked: None,
        });
        match cmd.query::<Value>(&mut con) {
            Ok(Value::Okay) => ops.last_mut().expect("just pushed").acked = Some(Instant::now()),
            Ok(other) => {
                return (
                    ops,
                    Some(format!("{}: unexpected reply {other:?}", show(&cmd))),
                )
            }
            // An error reply is a failure; a dropped connection is the kill.
            Err(err) if err.code().is_some() => {
                return (ops, Some(format!("{}: {}", show(&cmd), error_text(&err))))
            }
            Err(_) => break,
        }
    }
    (ops, None)
}

/// What the checks know about one key.
#[derive(Default)]
struct KeyModel {
    /// seq → cycle of every value sent to this key, from `floor` up.
    sent: BTreeMap<u64, usize>,
    /// The lowest seq the key may show (0: it may be missing): the latest
    /// write that had to survive, or what an earlier restart showed.
    floor: u64,
}

#[derive(Default)]
struct CrashStats {
    sent: u64,
    acked: u64,
    checked: u64,
    checked_everysec: u64,
    lost: u64,
    regressed: u64,
    garbage: u64,
    torn_msets: u64,
    problems: Vec<String>,
}

impl CrashStats {
    fn problem(&mut self, text: String) {
        if self.problems.len() < 20 {
            self.problems.push(text);
        }
    }
}

/// Checks a freshly restarted server against the model and the last cycle's
/// log, then moves every key's floor up to what it shows.
fn check_after_crash(
    con: &mut Connection,
    model: &mut HashMap<(usize, usize), KeyModel>,
    log: Option<&CycleLog>,
    stats: &mut CrashStats,
) {
    // The seq that had to survive per key, and how many such writes each has.
    let mut required: HashMap<(usize, usize), Vec<u64>> = HashMap::new();
    if let Some(log) = log {
        for (writer, ops) in log.ops.iter().enumerate() {
            for op in ops {
                stats.sent += 1;
                stats.acked += u64::from(op.acked.is_some());
                let survive = log.must_survive(op);
                for &key in &op.keys {
                    model
                        .entry((writer, key))
                        .or_default()
                        .sent
                        .insert(op.seq, log.cycle);
                    if survive {
                        required.entry((writer, key)).or_default().push(op.seq);
                        stats.checked += 1;
                        if log.fsync == Fsync::Everysec {
                            stats.checked_everysec += 1;
                        }
                    }
                }
            }
        }
    }
    let cycle = log.map_or(0, |log| log.cycle);

    let listed: Vec<Vec<u8>> = q(con, redis::cmd("KEYS").arg("*"));
    for name in &listed {
        let known = (0..WRITERS)
            .any(|w| (0..KEYS_PER_WRITER).any(|k| crash_key(w, k).as_bytes() == name.as_slice()));
        if !known {
            stats.garbage += 1;
            stats.problem(format!(
                "after cycle {cycle}: KEYS lists {:?}, a key never written",
                String::from_utf8_lossy(name)
            ));
        }
    }

    let mut shown: HashMap<(usize, usize), u64> = HashMap::new();
    let mut present = 0;
    for writer in 0..WRITERS {
        for key in 0..KEYS_PER_WRITER {
            let name = crash_key(writer, key);
            let value: Option<Vec<u8>> = q(con, redis::cmd("GET").arg(&name));
            let state = model.entry((writer, key)).or_default();
            let seq = match &value {
                None => 0,
                Some(value) => {
                    present += 1;
                    match parse_crash_value(value, writer, key) {
                        Some((sent_cycle, seq)) if state.sent.get(&seq) == Some(&sent_cycle) => seq,
                        // Below the floor, so pruned from `sent`: counted
                        // as regressed below.
                        Some((_, seq)) if seq < state.floor => seq,
                        _ => {
                            stats.garbage += 1;
                            stats.problem(format!(
                                "after cycle {cycle}: {name} holds {:?}, a value never sent to it",
                                String::from_utf8_lossy(&value[..value.len().min(80)])
                            ));
                            0
                        }
                    }
                }
            };
            shown.insert((writer, key), seq);
            let needed = required
                .get(&(writer, key))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let lost = needed.iter().filter(|&&needed| needed > seq).count() as u64;
            if lost > 0 {
                stats.lost += lost;
                stats.problem(format!(
                    "after cycle {cycle} ({:?}): {name} shows seq {seq} but {lost} acknowledged \
                     writes up to seq {} had to survive",
                    log.map(|log| log.fsync),
                    needed.iter().max().copied().unwrap_or(0)
                ));
            }
            if seq < state.floor {
                stats.regressed += 1;
                stats.problem(format!(
                    "after cycle {cycle}: {name} went back to seq {seq} from seq {}, \
                     which an earlier restart showed",
                    state.floor
                ));
            }
            let highest_needed = needed.iter().max().copied().unwrap_or(0);
            state.floor = state.floor.max(seq).max(highest_needed);
            let floor = state.floor;
            state.sent.retain(|&sent, _| sent >= floor);
        }
    }

    let dbsize: u64 = q(con, &redis::cmd("DBSIZE"));
    if dbsize != present {
        stats.problem(format!(
            "after cycle {cycle}: DBSIZE is {dbsize} but {present} keys answer GET"
        ));
    }

    // An MSET whose keys disagree: one shows exactly its seq, the other an
    // older value. MSET is atomic in Redis (one AOF record) and in strata
    // (one sled batch), so a crash must never split one.
    if let Some(log) = log {
        for (writer, ops) in log.ops.iter().enumerate() {
            for op in ops.iter().filter(|op| op.keys.len() == 2) {
                let a = shown.get(&(writer, op.keys[0])).copied().unwrap_or(0);
                let b = shown.get(&(writer, op.keys[1])).copied().unwrap_or(0);
                if (a == op.seq && b < op.seq) || (b == op.seq && a < op.seq) {
                    stats.torn_msets += 1;
                }
            }
        }
    }
}

/// Several writers SET and MSET their keys; strata is killed with SIGKILL at
/// a random moment and restarted on the same directory, again and again.
/// After each restart every key must hold a value that was sent to it, no
/// older than the latest write that had to survive: under `always` every
/// acknowledged write, under `everysec` every write acknowledged more than
/// two seconds before the kill.
#[test]
fn crash_at_random_moments_loses_no_acknowledged_write() {
    let cycles: usize = std::env::var("STRATA_CRASH_CYCLES")
        .ok()
        .map(|text| text.parse().expect("STRATA_CRASH_CYCLES is a number"))
        .unwrap_or(20);
    let seed: u64 = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .map(|text| text.parse().expect("STRATA_CRASH_SEED is a number"))
        .unwrap_or_else(|| unix_now().as_nanos() as u64);
    eprintln!("crash test: seed {seed} (STRATA_CRASH_SEED replays the choices, not the timing)");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("creates a temp dir");
    let mut model: HashMap<(usize, usize), KeyModel> = HashMap::new();
    let mut stats = CrashStats::default();
    let mut next_seq = [0u64; WRITERS];
    let mut last: Option<CycleLog> = None;
    let (mut always, mut everysec) = (0, 0);

    for cycle in 0..cycles {
        // Mostly short `always` cycles; every seventh lasts long enough for
        // the two-second rule of `everysec` to cover some writes.
        let fsync = if cycle % 7 == 3 {
            everysec += 1;
            Fsync::Everysec
        } else {
            always += 1;
            Fsync::Always
        };
        let run_for = Duration::from_millis(match fsync {
            Fsync::Always => rng.gen_range(200..800),
            Fsync::Everysec => rng.gen_range(3000..3600),
        });
        let server = Strata::start(&flags(dir.path(), fsync.flag(), &[]));
        check_after_crash(&mut server.con(), &mut model, last.as_ref(), &mut stats);

        let port = server.port;
        let stop = AtomicBool::new(false);
        let seeds: Vec<u64> = (0..WRITERS).map(|_| rng.gen()).collect();
        let (results, kill_started) = thread::scope(|scope| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let (seq, seed, stop) = (next_seq[writer], seeds[writer], &stop);
                    scope.spawn(move || run_writer(port, cycle, writer, seq, seed, stop))
                })
                .collect();
            thread::sleep(run_for);
            let kill_started = Instant::now();
            server.kill9();
            stop.store(true, Ordering::Relaxed);
            let results: Vec<_> = writers
                .into_iter()
                .map(|writer| writer.join().expect("writer thread"))
                .collect();
            (results, kill_started)
        });
        let mut ops = Vec::new();
        for (writer, (writer_ops, error)) in results.into_iter().enumerate() {
            if let Some(error) = error {
                stats.problem(format!("cycle {cycle}, writer {writer}: {error}"));
            }
            if let Some(op) = writer_ops.last() {
                next_seq[writer] = op.seq;
            }
            ops.push(writer_ops);
        }
        last = Some(CycleLog {
            cycle,
            fsync,
            kill_started,
            ops,
        });
    }

    let server = Strata::start(&flags(dir.path(), "always", &[]));
    check_after_crash(&mut server.con(), &mut model, last.as_ref(), &mut stats);
    server.shutdown();

    eprintln!(
        "crash test: {cycles} cycles ({always} always, {everysec} everysec), {} writes sent, \
         {} acknowledged, {} writes checked ({} under everysec), {} lost, {} regressed, \
         {} garbage, {} torn MSETs, {:.1} s",
        stats.sent,
        stats.acked,
        stats.checked,
        stats.checked_everysec,
        stats.lost,
        stats.regressed,
        stats.garbage,
        stats.torn_msets,
        started.elapsed().as_secs_f64()
    );
    assert!(
        stats.problems.is_empty(),
        "crash test (seed {seed}) found problems:\n{}",
        stats.problems.join("\n")
    );
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.torn_msets, 0, "an MSET was split by a crash");
    assert!(stats.checked > 0, "no acknowledged write was checked");
    if everysec > 0 {
        assert!(
            stats.checked_everysec > 0,
            "no write was acknowledged more than {EVERYSEC_WINDOW:?} before an everysec kill"
        );
    }
}

/// SAVE forces a flush with nothing new to cover; the write after it must
/// still wait for its own fsync under `always`.
#[test]
fn a_write_right_after_save_survives_a_crash() {
    let dir = tempfile::tempdir().expect("creates a temp dir");
    let flags = flags(dir.path(), "always", &[]);
    for round in 0..3 {
        let server = Strata::start(&flags);
        let mut con = server.con();
        let before = format!("before:{round}");
        let after = format!("after:{round}");
        set(&mut con, before.as_bytes(), b"1", &[]);
        let _: Value = q(&mut con, &redis::cmd("SAVE"));
        set(&mut con, after.as_bytes(), b"1", &[]);
        drop(con);
        server.kill9();

        let server = Strata::start(&flags);
        let mut con = server.con();
        for key in [&before, &after] {
            let value: Option<Vec<u8>> = q(&mut con, redis::cmd("GET").arg(key));
            assert_eq!(
                value.as_deref(),
                Some(&b"1"[..]),
                "{key}, acknowledged under appendfsync always (SET, SAVE, SET, kill -9)"
            );
        }
        drop(con);
        server.kill9();
    }
}

// ---------------------------------------------------------------- restart test

#[derive(Clone, Copy, Debug)]
enum Ttl {
    None,
    /// Set relative, this many seconds, shortly before the restart.
    About(u64),
    /// PEXPIREAT / PX-style absolute deadline in unix milliseconds.
    AtMs(u64),
    /// EXPIREAT absolute deadline in unix seconds.
    AtSecs(u64),
}

struct Expected {
    db: u8,
    key: Vec<u8>,
    value: Vec<u8>,
    ttl: Ttl,
}

fn filler_text(seed: u64, len: usize) -> Vec<u8> {
    let mut mix = Mix(seed);
    (0..len).map(|_| b'a' + (mix.next() % 26) as u8).collect()
}

fn set(con: &mut Connection, key: &[u8], value: &[u8], options: &[&str]) {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    for option in options {
        cmd.arg(*option);
    }
    let reply: Value = q(con, &cmd);
    assert_eq!(reply, Value::Okay, "{}", show(&cmd));
}

/// Keys in databases 0, 3 and 15, with and without TTLs; SHUTDOWN; restart;
/// at once DBSIZE, INFO keyspace, KEYS, SCAN, values, TYPE, EXISTS and the
/// TTLs must be what they were, and the short-lived keys gone.
#[test]
fn restart_keeps_every_database_value_and_ttl() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("creates a temp dir");
    // everysec: the clean shutdown, not the fsync policy, must save the tail.
    let flags = flags(dir.path(), "everysec", &[]);
    let server = Strata::start(&flags);
    let now_ms = unix_now().as_millis() as u64;
    let mut expected: Vec<Expected> = Vec::new();
    let mut gone: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut expect = |db: u8, key: &[u8], value: &[u8], ttl: Ttl| {
        expected.push(Expected {
            db,
            key: key.to_vec(),
            value: value.to_vec(),
            ttl,
        })
    };

    let short_lived_from = Instant::now();
    {
        let mut con = server.con_db(0);
        set(&mut con, b"short:a", b"soon gone", &["PX", "300"]);
        set(&mut con, b"short:b", b"soon gone", &[]);
        let _: i64 = q(&mut con, redis::cmd("PEXPIRE").arg("short:b").arg(300));
        gone.extend([(0, b"short:a".to_vec()), (0, b"short:b".to_vec())]);
        let mut con = server.con_db(3);
        set(&mut con, b"short:c", b"soon gone", &["PX", "300"]);
        gone.push((3, b"short:c".to_vec()));
        let mut con = server.con_db(15);
        set(&mut con, b"short:d", b"soon gone", &["PX", "300"]);
        gone.push((15, b"short:d".to_vec()));
    }

    let mut con = server.con_db(0);
    for i in 0..300u64 {
        let key = format!("user:{i}");
        let len = match i {
            1 => 200_000,
            i if i % 7 == 0 => 5_000,
            i => 20 + (i % 50) as usize,
        };
        let value = filler_text(i, len);
        if i < 30 {
            set(&mut con, key.as_bytes(), &value, &["EX", "100"]);
            expect(0, key.as_bytes(), &value, Ttl::About(100));
        } else if i < 35 {
            let at = now_ms + 3_600_000 + i;
            set(&mut con, key.as_bytes(), &value, &["PXAT", &at.to_string()]);
            expect(0, key.as_bytes(), &value, Ttl::AtMs(at));
        } else {
            set(&mut con, key.as_bytes(), &value, &[]);
            expect(0, key.as_bytes(), &value, Ttl::None);
        }
    }
    let binary_value: Vec<u8> = (0..=255u8).collect();
    let odd: [(&[u8], &[u8]); 4] = [
        (b"", b"the empty key"),
        (b"bin\x00\xff\r\nkey", &binary_value),
        ("ключ 🔑".as_bytes(), "значение".as_bytes()),
        (b"empty-value", b""),
    ];
    for (key, value) in odd {
        set(&mut con, key, value, &[]);
        expect(0, key, value, Ttl::None);
    }
    set(&mut con, b"counter", b"41", &[]);
    let _: i64 = q(&mut con, redis::cmd("INCR").arg("counter"));
    expect(0, b"counter", b"42", Ttl::None);
    set(&mut con, b"overwritten", b"old", &["EX", "100"]);
    set(&mut con, b"overwritten", b"new", &[]);
    expect(0, b"overwritten", b"new", Ttl::None);
    set(&mut con, b"persisted", b"kept", &["EX", "100"]);
    let _: i64 = q(&mut con, redis::cmd("PERSIST").arg("persisted"));
    expect(0, b"persisted", b"kept", Ttl::None);
    set(&mut con, b"deleted", b"x", &[]);
    let _: i64 = q(&mut con, redis::cmd("DEL").arg("deleted"));
    gone.push((0, b"deleted".to_vec()));

    let mut con = server.con_db(3);
    let at_secs = now_ms / 1000 + 7200;
    for i in 0..100u64 {
        let key = format!("order:{i}");
        let value = filler_text(1000 + i, 30 + (i % 40) as usize);
        if i < 20 {
            set(&mut con, key.as_bytes(), &value, &["PX", "100000"]);
            expect(3, key.as_bytes(), &value, Ttl::About(100));
        } else if i < 30 {
            set(&mut con, key.as_bytes(), &value, &[]);
            let _: i64 = q(&mut con, redis::cmd("EXPIREAT").arg(&key).arg(at_secs));
            expect(3, key.as_bytes(), &value, Ttl::AtSecs(at_secs));
        } else {
            set(&mut con, key.as_bytes(), &value, &[]);
            expect(3, key.as_bytes(), &value, Ttl::None);
        }
    }
    set(&mut con, b"renamed-from", b"renamed value", &["EX", "100"]);
    let _: Value = q(
        &mut con,
        redis::cmd("RENAME").arg("renamed-from").arg("renamed-to"),
    );
    expect(3, b"renamed-to", b"renamed value", Ttl::About(100));
    gone.push((3, b"renamed-from".to_vec()));

    let mut con = server.con_db(15);
    for i in 0..50u64 {
        let key = format!("s:{i}");
        let value = filler_text(2000 + i, 10 + i as usize);
        if i < 5 {
            set(&mut con, key.as_bytes(), &value, &["EX", "100"]);
            expect(15, key.as_bytes(), &value, Ttl::About(100));
        } else {
            set(&mut con, key.as_bytes(), &value, &[]);
            expect(15, key.as_bytes(), &value, Ttl::None);
        }
    }
    set(&mut con, b"moved", b"from 15 to 3", &[]);
    let moved: i64 = q(&mut con, redis::cmd("MOVE").arg("moved").arg(3));
    assert_eq!(moved, 1);
    expect(3, b"moved", b"from 15 to 3", Ttl::None);
    gone.push((15, b"moved".to_vec()));
    drop(con);

    // Let the short TTLs run out while the server is up (without touching
    // the keys, so they are still stored when it stops).
    let short_deadline = short_lived_from + Duration::from_millis(400);
    if let Some(rest) = short_deadline.checked_duration_since(Instant::now()) {
        thread::sleep(rest);
    }
    server.shutdown();

    let server = Strata::start(&flags);
    let ready_after = server.ready_after;
    let checks_started = Instant::now();
    let mut per_db: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
    for entry in &expected {
        let counts = per_db.entry(entry.db).or_default();
        counts.0 += 1;
        counts.1 += u64::from(!matches!(entry.ttl, Ttl::None));
    }

    // DBSIZE in every database, first thing after the restart.
    for db in 0..16u8 {
        let dbsize: u64 = q(&mut server.con_db(db), &redis::cmd("DBSIZE"));
        let want = per_db.get(&db).map_or(0, |counts| counts.0);
        assert_eq!(
            dbsize, want,
            "DBSIZE of db{db} right after the restart (keys whose TTL ran out before the \
             SHUTDOWN must not count)"
        );
    }

    let mut con = server.con();
    let info: String = q(&mut con, redis::cmd("INFO").arg("keyspace"));
    let mut keyspace: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
    for line in info.lines().filter(|line| line.starts_with("db")) {
        let (db, fields) = line.split_once(':').expect("dbN:fields");
        let db: u8 = db[2..].parse().expect("db number");
        let field = |name: &str| -> u64 {
            fields
                .split(',')
                .find_map(|field| field.strip_prefix(&format!("{name}=")))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("INFO keyspace line without {name}: {line}"))
        };
        keyspace.insert(db, (field("keys"), field("expires")));
    }
    assert_eq!(
        keyspace, per_db,
        "INFO keyspace (db → keys, expires) after the restart; keys whose TTL ran out \
         must not count:\n{info}"
    );

    for db in [0u8, 3, 15] {
        let mut con = server.con_db(db);
        let want: BTreeSet<Vec<u8>> = expected
            .iter()
            .filter(|entry| entry.db == db)
            .map(|entry| entry.key.clone())
            .collect();
        let keys: Vec<Vec<u8>> = q(&mut con, redis::cmd("KEYS").arg("*"));
        let listed: BTreeSet<Vec<u8>> = keys.iter().cloned().collect();
        assert_eq!(
            listed.len(),
            keys.len(),
            "KEYS * in db{db} lists a key twice"
        );
        assert_eq!(listed, want, "KEYS * in db{db}");

        let mut scanned = Vec::new();
        let mut cursor = "0".to_string();
        for _page in 0..10_000 {
            let (next, page): (String, Vec<Vec<u8>>) = q(
                &mut con,
                redis::cmd("SCAN").arg(&cursor).arg("COUNT").arg(7),
            );
            scanned.extend(page);
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(cursor, "0", "SCAN in db{db} did not finish in 10000 pages");
        let unique: BTreeSet<Vec<u8>> = scanned.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            scanned.len(),
            "SCAN in db{db} returned a key twice"
        );
        assert_eq!(unique, want, "SCAN in db{db}");
    }

    let now_ms = unix_now().as_millis() as i64;
    for entry in &expected {
        let mut con = server.con_db(entry.db);
        let key = &entry.key;
        let what = format!("db{} {:?}", entry.db, String::from_utf8_lossy(key));
        let value: Option<Vec<u8>> = q(&mut con, redis::cmd("GET").arg(key));
        assert_eq!(value.as_deref(), Some(entry.value.as_slice()), "GET {what}");
        let kind: String = q(&mut con, redis::cmd("TYPE").arg(key));
        assert_eq!(kind, "string", "TYPE {what}");
        let exists: i64 = q(&mut con, redis::cmd("EXISTS").arg(key));
        assert_eq!(exists, 1, "EXISTS {what}");
        let ttl: i64 = q(&mut con, redis::cmd("TTL").arg(key));
        let pttl: i64 = q(&mut con, redis::cmd("PTTL").arg(key));
        match entry.ttl {
            Ttl::None => assert_eq!((ttl, pttl), (-1, -1), "TTL and PTTL of {what}"),
            Ttl::About(secs) => {
                let secs = secs as i64;
                assert!(ttl > secs - 10 && ttl <= secs, "TTL of {what} is {ttl}");
                assert!(
                    pttl > (secs - 10) * 1000 && pttl <= secs * 1000,
                    "PTTL of {what} is {pttl}"
                );
            }
            Ttl::AtMs(at) => {
                let deadline: u64 = q(&mut con, redis::cmd("PEXPIRETIME").arg(key));
                assert_eq!(deadline, at, "PEXPIRETIME of {what}");
                let left = at as i64 - now_ms;
                assert!(pttl > 0 && pttl <= left + 1000, "PTTL of {what} is {pttl}");
            }
            Ttl::AtSecs(at) => {
                let deadline: u64 = q(&mut con, redis::cmd("EXPIRETIME").arg(key));
                assert_eq!(deadline, at, "EXPIRETIME of {what}");
                assert!(ttl > 0, "TTL of {what} is {ttl}");
            }
        }
    }
    for (db, key) in &gone {
        let mut con = server.con_db(*db);
        let what = format!("db{db} {:?}", String::from_utf8_lossy(key));
        let value: Option<Vec<u8>> = q(&mut con, redis::cmd("GET").arg(key));
        assert_eq!(value, None, "GET {what}, which expired or was removed");
        let exists: i64 = q(&mut con, redis::cmd("EXISTS").arg(key));
        assert_eq!(exists, 0, "EXISTS {what}");
        let ttl: i64 = q(&mut con, redis::cmd("TTL").arg(key));
        assert_eq!(ttl, -2, "TTL {what}");
        let kind: String = q(&mut con, redis::cmd("TYPE").arg(key));
        assert_eq!(kind, "none", "TYPE {what}");
    }
    let checks_took = checks_started.elapsed();

    // Writes work after the restart and keep their history.
    let counter: i64 = q(&mut con, redis::cmd("INCR").arg("counter"));
    assert_eq!(counter, 43);
    server.shutdown();
    eprintln!(
        "restart test: {} keys in 3 databases, PONG {ready_after:?} after the restart's spawn, \
         checks took {checks_took:?}, {:.1} s in all",
        expected.len(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------- locked dir

/// A second server on a directory the first holds exits non-zero with
/// `cannot open the warm tier`; the first keeps serving, and once it has
/// stopped the directory opens again with its data.
#[test]
fn a_locked_directory_stops_the_second_server() {
    let dir = tempfile::tempdir().expect("creates a temp dir");
    let flags = flags(dir.path(), "always", &[]);
    let first = Strata::start(&flags);
    let mut con = first.con();
    set(&mut con, b"owner", b"first", &[]);

    let mut second = Strata::spawn(free_port(), &flags);
    let spawned = Instant::now();
    let status = loop {
        if let Some(status) = second.wait_exit(Duration::from_millis(50)) {
            break status;
        }
        if answers_ping(second.port) {
            panic!(
                "a second strata on a directory the first holds answers PING; stderr:\n{}",
                second.stderr()
            );
        }
        if spawned.elapsed() > PROCESS_TIMEOUT {
            panic!(
                "a second strata on a locked directory still runs after {PROCESS_TIMEOUT:?}; stderr:\n{}",
                second.stderr()
            );
        }
    };
    let stderr = second.stderr();
    assert!(!status.success(), "the second strata exited with {status}");
    assert!(
        stderr.contains("cannot open the warm tier"),
        "stderr of the second strata ({status}):\n{stderr}"
    );

    let pong: String = q(&mut con, &redis::cmd("PING"));
    assert_eq!(pong, "PONG");
    set(&mut con, b"after", b"still serving", &[]);
    let owner: Option<Vec<u8>> = q(&mut con, redis::cmd("GET").arg("owner"));
    assert_eq!(owner.as_deref(), Some(&b"first"[..]));
    drop(con);
    first.shutdown();

    // SHUTDOWN released the lock.
    let third = Strata::start(&flags);
    let mut con = third.con();
    let after: Option<Vec<u8>> = q(&mut con, redis::cmd("GET").arg("after"));
    assert_eq!(after.as_deref(), Some(&b"still serving"[..]));
    third.shutdown();
}

// ---------------------------------------------------------------- full disk

const MIB: u64 = 1024 * 1024;

/// A tmpfs mounted on a directory; unmounted on drop, also on panic.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match output {
            Ok(output) if output.status.success() => Tmpfs {
                path: path.to_path_buf(),
            },
            Ok(output) => panic!(
                "the disk-full test needs root (CAP_SYS_ADMIN) to mount a tmpfs: mount {} \
                 failed ({}): {}",
                path.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(err) => panic!(
                "the disk-full test needs root and `mount` to mount a tmpfs: cannot run mount: {err}"
            ),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            eprintln!("umount {} failed; detaching it lazily", self.path.display());
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// A 64 KiB value that follows from `i`.
fn big_value(i: usize) -> Vec<u8> {
    let mut value = format!("big:{i}:").into_bytes();
    let mut mix = Mix(i as u64);
    while value.len() < 64 * 1024 {
        value.extend_from_slice(&mix.next().to_le_bytes());
    }
    value.truncate(64 * 1024);
    value
}

fn available(path: &Path) -> u64 {
    fs2::available_space(path).expect("statvfs")
}

/// With less than `--min-free-disk` free, writes are refused with MISCONF
/// and reads keep working; once space is freed writes work again, and every
/// acknowledged write is there after a restart.
#[test]
fn a_full_disk_refuses_writes_with_misconf_and_recovers() {
    let started = Instant::now();
    let root = tempfile::tempdir().expect("creates a temp dir");
    // Dropped in reverse order: the server, then the mount, then the dir.
    let mount = Tmpfs::mount(root.path(), "64m");
    let data = mount.path.join("data");
    fs::create_dir(&data).expect("creates the data dir");
    let flags = flags(&data, "always", &["--min-free-disk", "16mb"]);
    let server = Strata::start(&flags);

    // Leave about 32 MiB free, measured after strata made its files.
    let filler_path = mount.path.join("filler");
    let mut filler = File::create(&filler_path).expect("creates the filler");
    let chunk = vec![0xA5u8; MIB as usize];
    // 8 MiB over min-free-disk plus the sled segment the guard keeps free.
    while available(&mount.path) > 33 * MIB {
        let room = available(&mount.path) - 32 * MIB;
        let len = room.min(MIB) as usize;
        filler.write_all(&chunk[..len]).expect("writes the filler");
    }
    filler.sync_all().expect("syncs the filler");
    drop(filler);
    let free_before = available(&mount.path);

    let mut con = server.con();
    let mut acked: Vec<usize> = Vec::new();
    let mut refused: Option<(usize, String)> = None;
    let max_writes = (200 * MIB / (64 * 1024)) as usize;
    for i in 0..max_writes {
        let key = format!("big:{i}");
        match redis::cmd("SET")
            .arg(&key)
            .arg(big_value(i))
            .query::<Value>(&mut con)
        {
            Ok(Value::Okay) => acked.push(i),
            Ok(other) => panic!("SET {key} replied {other:?}"),
            Err(err) if err.code() == Some("MISCONF") => {
                refused = Some((i, error_text(&err)));
                break;
            }
            Err(err) => panic!(
                "SET {key} failed with {err} ({} acknowledged before, {} MiB free)\n{}",
                acked.len(),
                available(&mount.path) / MIB,
                server.stderr()
            ),
        }
    }
    let (refused_at, misconf) = refused.unwrap_or_else(|| {
        panic!(
            "no MISCONF after writing 200 MiB of 64 KiB values; {} MiB free of the tmpfs \
             ({} MiB free before), --min-free-disk 16mb",
            available(&mount.path) / MIB,
            free_before / MIB
        )
    });
    assert!(
        !acked.is_empty(),
        "the first write got MISCONF with {} MiB free: {misconf}",
        free_before / MIB
    );
    let free_at_misconf = available(&mount.path);

    // Writes stay refused, reads keep working.
    let small = redis::cmd("SET")
        .arg("small")
        .arg("x")
        .query::<Value>(&mut con);
    match small {
        Err(err) if err.code() == Some("MISCONF") => {}
        other => panic!("SET small while the disk is full: {other:?}"),
    }
    for &i in &acked {
        let value: Option<Vec<u8>> = q(&mut con, redis::cmd("GET").arg(format!("big:{i}")));
        assert!(
            value == Some(big_value(i)),
            "GET big:{i} while the disk is full"
        );
    }
    let refused_value: Option<Vec<u8>> =
        q(&mut con, redis::cmd("GET").arg(format!("big:{refused_at}")));
    assert_eq!(
        refused_value, None,
        "a write refused with MISCONF was applied"
    );
    let dbsize: u64 = q(&mut con, &redis::cmd("DBSIZE"));
    assert_eq!(
        dbsize,
        acked.len() as u64,
        "DBSIZE while the disk is full\n{}",
        server.stderr()
    );

    // Free the space: writes work again within 10 s.
    fs::remove_file(&filler_path).expect("removes the filler");
    let freed = Instant::now();
    let recovered_at = refused_at;
    loop {
        match redis::cmd("SET")
            .arg(format!("big:{recovered_at}"))
            .arg(big_value(recovered_at))
            .query::<Value>(&mut con)
        {
            Ok(Value::Okay) => break,
            Err(err) if err.code() == Some("MISCONF") => {}
            other => panic!("SET after freeing space: {other:?}"),
        }
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "writes still refused 10 s after freeing the space ({} MiB free)",
            available(&mount.path) / MIB
        );
        thread::sleep(Duration::from_millis(50));
    }
    let recovered_after = freed.elapsed();
    acked.push(recovered_at);
    for i in recovered_at + 1..recovered_at + 10 {
        let reply: Value = q(
            &mut con,
            redis::cmd("SET").arg(format!("big:{i}")).arg(big_value(i)),
        );
        assert_eq!(reply, Value::Okay);
        acked.push(i);
    }
    drop(con);
    server.shutdown();

    let server = Strata::start(&flags);
    let mut con = server.con();
    let dbsize: u64 = q(&mut con, &redis::cmd("DBSIZE"));
    assert_eq!(dbsize, acked.len() as u64, "DBSIZE after the restart");
    for &i in &acked {
        let value: Option<Vec<u8>> = q(&mut con, redis::cmd("GET").arg(format!("big:{i}")));
        assert!(value == Some(big_value(i)), "GET big:{i} after the restart");
    }
    let small: Option<Vec<u8>> = q(&mut con, redis::cmd("GET").arg("small"));
    assert_eq!(small, None, "a write refused with MISCONF was applied");
    drop(con);
    server.shutdown();
    eprintln!(
        "disk-full test: {} MiB free at the start, MISCONF after {} writes of 64 KiB with {} MiB \
         free ({misconf}), writes back {recovered_after:?} after freeing, {:.1} s",
        free_before / MIB,
        refused_at,
        free_at_misconf / MIB,
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------- memory bound

/// What the process may hold beyond `maxmemory`: the runtime, buffers, and
/// above all sled 0.34, whose memory is many times its page cache
/// (`--warm-cache-size`, which hardly changes it) when keys land at random
/// places in its tree, as hashed keys do; then the journal's backlog (8 MiB
/// of records, held twice: in flight to the appliers and in the overlay) and
/// the allocator's arenas of the applier threads. Measured peaks after this
/// test's 256 MiB of 4 KiB values on the debug build: 337 to 412 MiB, the
/// spread being sled's. Without the `maxmemory` bound the values alone would
/// add 256 MiB more, which this bound still catches.
const MEMORY_OVERHEAD: u64 = 512 << 20;

fn rss_bytes(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn tier_figure(con: &mut Connection, name: &str) -> u64 {
    let info: String = q(con, redis::cmd("INFO").arg("tiers"));
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO tiers has no {name}:\n{info}"))
}

/// `--maxmemory 16mb`, 256 MiB of values: memory stays bounded, the keys
/// live on in sled, and every one reads back.
#[test]
fn eviction_bounds_memory_and_loses_nothing() {
    const KEYS: usize = 65_536;
    const VALUE: usize = 4096;
    const BATCH: usize = 256;
    let maxmemory: u64 = 16 << 20;
    let dir = tempfile::tempdir().expect("creates a temp dir");
    let server = Strata::start(&flags(
        dir.path(),
        "everysec",
        &["--warm-cache-size", "16mb"],
    ));
    let pid = server.child.id();
    let mut con = server.con();
    let key = |i: usize| format!("evict:{i:06}");
    let mut peak = 0;
    for start in (0..KEYS).step_by(BATCH) {
        let mut pipe = redis::pipe();
        for i in start..start + BATCH {
            pipe.cmd("SET")
                .arg(key(i))
                .arg(filler_text(i as u64, VALUE))
                .ignore();
        }
        let () = pipe.query(&mut con).expect("pipelined SETs");
        peak = peak.max(rss_bytes(pid));
    }
    assert!(tier_figure(&mut con, "hot_evictions") > 0);
    assert!(tier_figure(&mut con, "hot_bytes") <= maxmemory + VALUE as u64 * 2);
    assert_eq!(tier_figure(&mut con, "warm_keys"), KEYS as u64);
    for start in (0..KEYS).step_by(BATCH) {
        let mut pipe = redis::pipe();
        for i in start..start + BATCH {
            pipe.cmd("GET").arg(key(i));
        }
        let values: Vec<Vec<u8>> = pipe.query(&mut con).expect("pipelined GETs");
        for (offset, value) in values.iter().enumerate() {
            let i = start + offset;
            assert!(
                value == &filler_text(i as u64, VALUE),
                "{} read back wrong",
                key(i)
            );
        }
        peak = peak.max(rss_bytes(pid));
    }
    assert!(tier_figure(&mut con, "warm_hits") > (KEYS / 2) as u64);
    // The bound below holds for the allocator the binary runs on.
    let memory: String = q(&mut con, redis::cmd("INFO").arg("memory"));
    assert!(
        memory.contains("\r\nmem_allocator:jemalloc-"),
        "INFO memory names another allocator:\n{memory}"
    );
    eprintln!(
        "eviction: {} MiB written through a {} MiB hot tier; peak RSS {} MiB",
        (KEYS * VALUE) >> 20,
        maxmemory >> 20,
        peak >> 20
    );
    assert!(
        peak < maxmemory + MEMORY_OVERHEAD,
        "peak RSS {} MiB over maxmemory + {} MiB",
        peak >> 20,
        MEMORY_OVERHEAD >> 20
    );
}

// ---------------------------------------------------------------- crash test, every type

/// The collection types of the typed crash test; each writer has one key of
/// each.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    List,
    Hash,
    Set,
    ZSet,
}

const KINDS: [Kind; 4] = [Kind::List, Kind::Hash, Kind::Set, Kind::ZSet];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }

    fn key(self, writer: usize) -> String {
        format!("types:w{writer}:{}", self.name())
    }
}

/// A writer's seq is unique across cycles and types, so every element (list
/// item, hash field, set or sorted-set member) is written exactly once.
fn type_element(cycle: usize, writer: usize, kind: Kind, seq: u64) -> String {
    format!("c{cycle}:w{writer}:{}:s{seq}", kind.name())
}

/// The value HSET gives the field of `seq`.
fn type_hash_value(seq: u64) -> String {
    format!("v{seq}")
}

/// The (cycle, seq) an element claims, if it is exactly what `type_element`
/// makes for `writer` and `kind`.
fn parse_type_element(element: &[u8], writer: usize, kind: Kind) -> Option<(usize, u64)> {
    let text = std::str::from_utf8(element).ok()?;
    let mut parts = text.split(':');
    let cycle = parts.next()?.strip_prefix('c')?.parse().ok()?;
    let seq = parts.nth(2)?.strip_prefix('s')?.parse().ok()?;
    (type_element(cycle, writer, kind, seq) == text).then_some((cycle, seq))
}

/// One RPUSH, HSET, SADD or ZADD a writer sent.
struct TypedOp {
    seq: u64,
    kind: Kind,
    acked: Option<Instant>,
}

/// Adds one new element to one of `writer`'s collections per command until
/// the server dies or `stop` is set; returns what it sent, and an error or
/// unexpected reply if one came.
fn run_typed_writer(
    port: u16,
    cycle: usize,
    writer: usize,
    mut seq: u64,
    seed: u64,
    stop: &AtomicBool,
) -> (Vec<TypedOp>, Option<String>) {
    let mut ops = Vec::new();
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return (ops, Some("bad url".into()));
    };
    let Ok(mut con) = client.get_connection_with_timeout(IO_TIMEOUT) else {
        return (ops, None); // killed before we connected
    };
    let _ = con.set_read_timeout(Some(IO_TIMEOUT));
    let _ = con.set_write_timeout(Some(IO_TIMEOUT));
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) && ops.len() < MAX_OPS_PER_CYCLE {
        seq += 1;
        let kind = KINDS[rng.gen_range(0..KINDS.len())];
        let key = kind.key(writer);
        let element = type_element(cycle, writer, kind, seq);
        let cmd = match kind {
            Kind::List => redis::cmd("RPUSH").arg(&key).arg(&element).clone(),
            Kind::Hash => redis::cmd("HSET")
                .arg(&key)
                .arg(&element)
                .arg(type_hash_value(seq))
                .clone(),
            Kind::Set => redis::cmd("SADD").arg(&key).arg(&element).clone(),
            Kind::ZSet => redis::cmd("ZADD").arg(&key).arg(seq).arg(&element).clone(),
        };
        ops.push(TypedOp {
            seq,
            kind,
            acked: None,
        });
        match cmd.query::<Value>(&mut con) {
            // RPUSH answers the new length; the others count one new element.
            Ok(Value::Int(n)) if n == 1 || (kind == Kind::List && n > 1) => {
                ops.last_mut().expect("just pushed").acked = Some(Instant::now())
            }
            Ok(other) => {
                return (
                    ops,
                    Some(format!("{}: unexpected reply {other:?}", show(&cmd))),
                )
            }
            Err(err) if err.code().is_some() => {
                return (ops, Some(format!("{}: {}", show(&cmd), error_text(&err))))
            }
            Err(_) => break,
        }
    }
    (ops, None)
}

struct TypedLog {
    cycle: usize,
    fsync: Fsync,
    kill_started: Instant,
    /// Per writer.
    ops: Vec<Vec<TypedOp>>,
}

impl TypedLog {
    fn must_survive(&self, op: &TypedOp) -> bool {
        match (op.acked, self.fsync) {
            (None, _) => false,
            (Some(_), Fsync::Always) => true,
            (Some(acked), Fsync::Everysec) => acked + EVERYSEC_WINDOW < self.kill_started,
        }
    }
}

#[derive(Default)]
struct TypedStats {
    sent: u64,
    acked: u64,
    checked: u64,
    checked_everysec: u64,
    elements: u64,
    lost: u64,
    garbage: u64,
    disorder: u64,
    holes: u64,
    problems: Vec<String>,
}

impl TypedStats {
    fn problem(&mut self, text: String) {
        if self.problems.len() < 20 {
            self.problems.push(text);
        }
    }
}

/// Every element of one collection as (element, hash value or zset score),
/// in the server's order.
fn read_collection(con: &mut Connection, kind: Kind, key: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let pairs = |flat: Vec<Vec<u8>>| -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(a), Some(b)) = (items.next(), items.next()) {
            out.push((a, b));
        }
        out
    };
    match kind {
        Kind::List => q::<Vec<Vec<u8>>>(con, redis::cmd("LRANGE").arg(key).arg(0).arg(-1))
            .into_iter()
            .map(|item| (item, Vec::new()))
            .collect(),
        Kind::Set => q::<Vec<Vec<u8>>>(con, redis::cmd("SMEMBERS").arg(key))
            .into_iter()
            .map(|item| (item, Vec::new()))
            .collect(),
        Kind::Hash => pairs(q(con, redis::cmd("HGETALL").arg(key))),
        Kind::ZSet => pairs(q(
            con,
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES"),
        )),
    }
}

/// Checks a freshly restarted server against `model` (per writer and type:
/// seq → cycle of every element the previous restart showed, all of which
/// must stay) and the last cycle's log, then sets the model to what the
/// server shows.
fn check_types_after_crash(
    con: &mut Connection,
    model: &mut HashMap<(usize, Kind), BTreeMap<u64, usize>>,
    log: Option<&TypedLog>,
    stats: &mut TypedStats,
) {
    // The last cycle's elements per collection: seq → whether it must be there.
    let mut sent: HashMap<(usize, Kind), BTreeMap<u64, bool>> = HashMap::new();
    if let Some(log) = log {
        for (writer, ops) in log.ops.iter().enumerate() {
            for op in ops {
                stats.sent += 1;
                stats.acked += u64::from(op.acked.is_some());
                let survive = log.must_survive(op);
                if survive {
                    stats.checked += 1;
                    if log.fsync == Fsync::Everysec {
                        stats.checked_everysec += 1;
                    }
                }
                sent.entry((writer, op.kind))
                    .or_default()
                    .insert(op.seq, survive);
            }
        }
    }
    let cycle = log.map_or(0, |log| log.cycle);

    let listed: Vec<Vec<u8>> = q(con, redis::cmd("KEYS").arg("*"));
    for name in &listed {
        let known = (0..WRITERS).any(|w| {
            KINDS
                .iter()
                .any(|kind| kind.key(w).as_bytes() == name.as_slice())
        });
        if !known {
            stats.garbage += 1;
            stats.problem(format!(
                "after cycle {cycle}: KEYS lists {:?}, a key never written",
                String::from_utf8_lossy(name)
            ));
        }
    }

    for writer in 0..WRITERS {
        for kind in KINDS {
            let key = kind.key(writer);
            let elements = read_collection(con, kind, &key);
            stats.elements += elements.len() as u64;
            let before = model.remove(&(writer, kind)).unwrap_or_default();
            let new = sent.remove(&(writer, kind)).unwrap_or_default();
            let mut shown: BTreeMap<u64, usize> = BTreeMap::new();
            let mut previous = None;
            for (element, extra) in &elements {
                let text = String::from_utf8_lossy(&element[..element.len().min(80)]);
                let known = parse_type_element(element, writer, kind).filter(|&(c, seq)| {
                    before.get(&seq) == Some(&c) || (c == cycle && new.contains_key(&seq))
                });
                let Some((element_cycle, seq)) = known else {
                    stats.garbage += 1;
                    stats.problem(format!(
                        "after cycle {cycle}: {key} holds {text:?}, an element never sent to it"
                    ));
                    continue;
                };
                let extra_ok = match kind {
                    Kind::List | Kind::Set => true,
                    Kind::Hash => extra.as_slice() == type_hash_value(seq).as_bytes(),
                    Kind::ZSet => {
                        std::str::from_utf8(extra)
                            .ok()
                            .and_then(|score| score.parse::<f64>().ok())
                            == Some(seq as f64)
                    }
                };
                if !extra_ok {
                    stats.garbage += 1;
                    stats.problem(format!(
                        "after cycle {cycle}: {key} gives {text:?} {:?}, not what was sent",
                        String::from_utf8_lossy(extra)
                    ));
                }
                if shown.insert(seq, element_cycle).is_some() {
                    stats.garbage += 1;
                    stats.problem(format!("after cycle {cycle}: {key} holds {text:?} twice"));
                }
                // One client pushed them one after the other, each after the
                // previous one's reply: the list must keep that order.
                if kind == Kind::List && previous.is_some_and(|previous| previous >= seq) {
                    stats.disorder += 1;
                    stats.problem(format!(
                        "after cycle {cycle}: {key} has {text:?} after seq {}",
                        previous.unwrap_or(0)
                    ));
                }
                previous = Some(seq);
            }
            for (&seq, &element_cycle) in &before {
                if !shown.contains_key(&seq) {
                    stats.lost += 1;
                    stats.problem(format!(
                        "after cycle {cycle}: {key} lost {:?}, which an earlier restart showed",
                        type_element(element_cycle, writer, kind, seq)
                    ));
                }
            }
            let mut last_shown = None;
            for (&seq, &required) in &new {
                if shown.contains_key(&seq) {
                    last_shown = Some(seq);
                } else if required {
                    stats.lost += 1;
                    stats.problem(format!(
                        "after cycle {cycle} ({:?}): {key} lacks {:?}, acknowledged and due to \
                         survive",
                        log.map(|log| log.fsync),
                        type_element(cycle, writer, kind, seq)
                    ));
                }
            }
            // What survived of one cycle is a prefix of what was sent.
            if let Some(last_shown) = last_shown {
                let holes = new
                    .range(..last_shown)
                    .filter(|(seq, _)| !shown.contains_key(seq))
                    .count() as u64;
                if holes > 0 {
                    stats.holes += holes;
                    stats.problem(format!(
                        "after cycle {cycle}: {key} shows seq {last_shown} of the cycle but \
                         misses {holes} elements sent before it"
                    ));
                }
            }
            model.insert((writer, kind), shown);
        }
    }
}

/// The crash test with collections: the writers add one unique element per
/// command to a list (RPUSH), a hash (HSET), a set (SADD) or a sorted set
/// (ZADD) of their own, and strata is killed with SIGKILL at random moments.
/// After each restart every acknowledged element must be there (under
/// `everysec`: acknowledged more than two seconds before the kill), lists in
/// the order their client pushed, what an earlier restart showed must stay,
/// and no element, field value or score that was never sent may appear.
/// `STRATA_CRASH_TYPES_CYCLES` sets the crashes (default 8).
#[test]
fn crash_with_every_type_loses_no_acknowledged_element() {
    let cycles: usize = std::env::var("STRATA_CRASH_TYPES_CYCLES")
        .ok()
        .map(|text| text.parse().expect("STRATA_CRASH_TYPES_CYCLES is a number"))
        .unwrap_or(8);
    let seed: u64 = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .map(|text| text.parse().expect("STRATA_CRASH_SEED is a number"))
        .unwrap_or_else(|| unix_now().as_nanos() as u64);
    eprintln!("typed crash test: seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("creates a temp dir");
    let mut model: HashMap<(usize, Kind), BTreeMap<u64, usize>> = HashMap::new();
    let mut stats = TypedStats::default();
    let mut next_seq = [0u64; WRITERS];
    let mut last: Option<TypedLog> = None;
    let (mut always, mut everysec) = (0, 0);

    for cycle in 0..cycles {
        let fsync = if cycle % 4 == 2 {
            everysec += 1;
            Fsync::Everysec
        } else {
            always += 1;
            Fsync::Always
        };
        let run_for = Duration::from_millis(match fsync {
            Fsync::Always => rng.gen_range(200..800),
            Fsync::Everysec => rng.gen_range(3000..3600),
        });
        let server = Strata::start(&flags(dir.path(), fsync.flag(), &[]));
        check_types_after_crash(&mut server.con(), &mut model, last.as_ref(), &mut stats);

        let port = server.port;
        let stop = AtomicBool::new(false);
        let seeds: Vec<u64> = (0..WRITERS).map(|_| rng.gen()).collect();
        let (results, kill_started) = thread::scope(|scope| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let (seq, seed, stop) = (next_seq[writer], seeds[writer], &stop);
                    scope.spawn(move || run_typed_writer(port, cycle, writer, seq, seed, stop))
                })
                .collect();
            thread::sleep(run_for);
            let kill_started = Instant::now();
            server.kill9();
            stop.store(true, Ordering::Relaxed);
            let results: Vec<_> = writers
                .into_iter()
                .map(|writer| writer.join().expect("writer thread"))
                .collect();
            (results, kill_started)
        });
        let mut ops = Vec::new();
        for (writer, (writer_ops, error)) in results.into_iter().enumerate() {
            if let Some(error) = error {
                stats.problem(format!("cycle {cycle}, writer {writer}: {error}"));
            }
            if let Some(op) = writer_ops.last() {
                next_seq[writer] = op.seq;
            }
            ops.push(writer_ops);
        }
        last = Some(TypedLog {
            cycle,
            fsync,
            kill_started,
            ops,
        });
    }

    let server = Strata::start(&flags(dir.path(), "always", &[]));
    check_types_after_crash(&mut server.con(), &mut model, last.as_ref(), &mut stats);
    server.shutdown();

    eprintln!(
        "typed crash test: {cycles} cycles ({always} always, {everysec} everysec), {} writes \
         sent, {} acknowledged, {} checked ({} under everysec), {} elements read back, {} lost, \
         {} garbage, {} out of order, {} holes, {:.1} s",
        stats.sent,
        stats.acked,
        stats.checked,
        stats.checked_everysec,
        stats.elements,
        stats.lost,
        stats.garbage,
        stats.disorder,
        stats.holes,
        started.elapsed().as_secs_f64()
    );
    assert!(
        stats.problems.is_empty(),
        "typed crash test (seed {seed}) found problems:\n{}",
        stats.problems.join("\n")
    );
    assert_eq!(stats.lost + stats.garbage + stats.disorder + stats.holes, 0);
    assert!(stats.checked > 0, "no acknowledged write was checked");
    if everysec > 0 {
        assert!(
            stats.checked_everysec > 0,
            "no write was acknowledged more than {EVERYSEC_WINDOW:?} before an everysec kill"
        );
    }
}
