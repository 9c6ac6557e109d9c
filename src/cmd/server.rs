//! Server commands: the keyspace as a whole (DBSIZE, FLUSHDB, FLUSHALL,
//! SWAPDB), introspection (INFO, CONFIG, SLOWLOG, COMMAND, DEBUG, TIME,
//! LASTSAVE) and the server's lifecycle (SAVE, BGSAVE, SHUTDOWN, MONITOR, WAIT).
//!
//! Replies, field names and error texts follow Redis 7.0; where strata has
//! no such machinery (replication, forks, modules) the figures are the ones
//! an idle Redis without it reports.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::args::{parse_float, Args, CmdResult};
use super::context::{AfterReply, Ctx};
use super::table::{
    Registered, ADMIN, BLOCKING, FAST, FLAG_NAMES, PUBSUB, READONLY, REGISTRY, WRITE,
};
use crate::error;
use crate::keyspace::{Entry, KeyspaceTotals, ValueRef};
use crate::protocol::{parse_i64, Reply};
use crate::state::ServerState;

/// What an empty strata costs before the first key (tables, buffers, the
/// command table): keeps `used_memory` and the ratios derived from it meaningful.
const USED_MEMORY_BASE: u64 = 1024 * 1024;
/// Linux reports /proc CPU times in USER_HZ ticks, fixed at 100 for user space.
const CLOCK_TICKS_PER_SEC: u64 = 100;
/// Redis's LRU clock: seconds, 24 bits.
const LRU_CLOCK_MAX: u64 = (1 << 24) - 1;

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(128)]).into_owned()
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Redis's `addReplyHelp`: a banner, the lines, then the HELP entry, as status lines.
pub(super) fn help(command: &str, lines: &[&'static str]) -> Reply {
    let mut out = Vec::with_capacity(lines.len() + 3);
    out.push(Reply::Status(format!(
        "{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )));
    out.extend(lines.iter().map(|line| Reply::Simple(line)));
    out.push(Reply::Simple("HELP"));
    out.push(Reply::Simple("    Prints this help."));
    Reply::Array(out)
}

// The dispatcher answers a container without a subcommand with its arity
// error before any handler runs (every container's arity is -2); this is
// only reached if a table entry says otherwise.
pub fn container_needs_subcommand(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Err(error::wrong_arity("container"))
}

// ---------------------------------------------------------------- keyspace

/// # Format
/// `DBSIZE`
pub fn dbsize(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Int(ctx.ks().dbsize(ctx.db()) as i64))
}

/// `[ASYNC|SYNC]`; without either, `lazyfree-lazy-user-flush` decides, as in Redis.
/// `[ASYNC|SYNC] [SOURCE]`: whether to free in the background, and whether
/// the source is flushed too (strata's addition: a plain flush drops cached
/// copies only).
fn flush_options(ctx: &Ctx<'_>, args: &mut Args<'_>) -> Result<(bool, bool), Reply> {
    let mut source = false;
    let mut mode = None;
    while !args.is_empty() {
        if args.eat("source") && !source {
            source = true;
        } else if mode.is_none() && args.eat("async") {
            mode = Some(true);
        } else if mode.is_none() && args.eat("sync") {
            mode = Some(false);
        } else {
            return Err(Reply::StaticError(error::SYNTAX));
        }
    }
    if source && ctx.ks().link().is_none() {
        return Err(Reply::StaticError(error::NO_SOURCE));
    }
    let background = match mode {
        Some(background) => background,
        None => {
            ctx.state
                .config
                .read()
                .get("lazyfree-lazy-user-flush")
                .as_deref()
                == Some("yes")
        }
    };
    Ok((background, source))
}

/// # Format
/// `FLUSHDB [ASYNC|SYNC] [SOURCE]`
pub fn flushdb(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let (background, source) = flush_options(ctx, args)?;
    ctx.ks().flush_db(ctx.db(), background);
    if source {
        ctx.ks().ship_flush(Some(ctx.db()));
    }
    Ok(Reply::OK)
}

/// # Format
/// `FLUSHALL [ASYNC|SYNC] [SOURCE]`
pub fn flushall(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let (background, source) = flush_options(ctx, args)?;
    ctx.ks().flush_all(background);
    if source {
        ctx.ks().ship_flush(None);
    }
    Ok(Reply::OK)
}

/// # Format
/// `SWAPDB index1 index2`
pub fn swapdb(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    // Redis reads both as C ints before checking the range.
    let parse = |bytes: &[u8], invalid: &'static str| {
        parse_i64(bytes)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or(Reply::StaticError(invalid))
    };
    let first = parse(args.next_bytes()?, error::INVALID_FIRST_DB)?;
    let second = parse(args.next_bytes()?, error::INVALID_SECOND_DB)?;
    args.finish()?;
    let databases = ctx.state.databases();
    let index = |n: i32| usize::try_from(n).ok().filter(|&i| i < databases);
    let (Some(a), Some(b)) = (index(first), index(second)) else {
        return Err(Reply::StaticError(error::DB_INDEX_OUT_OF_RANGE));
    };
    if ctx.ks().link().is_some() {
        // The source keeps each key under its database: a swap would have
        // to rewrite both databases there.
        return Err(Reply::StaticError(error::SWAPDB_WITH_SOURCE));
    }
    ctx.ks().swap_db(a, b);
    ctx.state
        .blocking
        .mark_waited_keys_ready(&ctx.state.keyspace, &[a, b]);
    Ok(Reply::OK)
}

// ---------------------------------------------------------------- time and persistence

/// # Format
/// `TIME`
pub fn time(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    let now = unix_now();
    Ok(Reply::Array(vec![
        Reply::bulk(now.as_secs().to_string()),
        Reply::bulk(now.subsec_micros().to_string()),
    ]))
}

/// # Format
/// `LASTSAVE`
pub fn lastsave(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Int(last_save_secs(ctx.state) as i64))
}

/// Unix seconds of the last flush of the warm tier (of the start, memory-only).
fn last_save_secs(state: &ServerState) -> u64 {
    match state.keyspace.warm() {
        Some(warm) => warm.figures().last_flush_ms / 1000,
        None => state.last_save.load(Relaxed),
    }
}

/// # Format
/// `SAVE`
///
/// Flushes the warm tier: the reply leaves once everything written before
/// it is on disk (memory-only: nothing to save).
pub fn save(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    ctx.session.must_flush = true;
    if ctx.state.keyspace.warm().is_none() {
        ctx.state.last_save.store(unix_now().as_secs(), Relaxed);
    }
    Ok(Reply::OK)
}

/// # Format
/// `BGSAVE [SCHEDULE]`
///
/// Asks the flusher for a flush and answers at once.
pub fn bgsave(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    args.eat("schedule");
    args.finish()?;
    match ctx.state.keyspace.warm() {
        Some(warm) => {
            warm.durability_target(true);
        }
        None => ctx.state.last_save.store(unix_now().as_secs(), Relaxed),
    }
    Ok(Reply::Simple("Background saving started"))
}

/// # Format
/// `WAIT numreplicas timeout`
///
/// strata has no replicas, so no write is ever acknowledged by one: the
/// answer is 0 at once instead of blocking until the timeout.
pub fn wait(_ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    args.next_i64()?;
    let timeout =
        parse_i64(args.next_bytes()?).ok_or(Reply::StaticError(error::TIMEOUT_NOT_INTEGER))?;
    if timeout < 0 {
        return Err(Reply::StaticError(error::TIMEOUT_NEGATIVE));
    }
    args.finish()?;
    Ok(Reply::Int(0))
}

/// # Format
/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`
pub fn shutdown(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let (mut nosave, mut save, mut abort, mut other) = (false, false, false, false);
    for word in args.by_ref() {
        match word.to_ascii_lowercase().as_slice() {
            b"nosave" => nosave = true,
            b"save" => save = true,
            b"now" | b"force" => other = true,
            b"abort" => abort = true,
            _ => return Err(Reply::StaticError(error::SYNTAX)),
        }
    }
    if (abort && (nosave || save || other)) || (nosave && save) {
        return Err(Reply::StaticError(error::SYNTAX));
    }
    // Shutdown is never delayed (no replicas to wait for), so there is never
    // one in progress to abort.
    if abort {
        return Err(Reply::StaticError(error::NO_SHUTDOWN_IN_PROGRESS));
    }
    // Whatever SAVE/NOSAVE say, the warm tier is flushed and closed once the
    // connections have finished: acknowledged writes are never dropped.
    ctx.state.request_shutdown();
    ctx.session.after_reply = AfterReply::Shutdown;
    Ok(Reply::NoReply)
}

/// # Format
/// `MONITOR`
pub fn monitor(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    ctx.session.after_reply = AfterReply::Monitor;
    Ok(Reply::OK)
}

// ---------------------------------------------------------------- DEBUG

/// # Format
/// `DEBUG OBJECT key` | `DEBUG SLEEP seconds` | `DEBUG HELP`
pub fn debug(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let sub = args.next_bytes()?;
    let rest = args.rest();
    match sub.to_ascii_lowercase().as_slice() {
        b"help" if rest.is_empty() => Ok(help(
            "DEBUG",
            &[
                "OBJECT <key>",
                "    Show low level info about `key` and associated value.",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
            ],
        )),
        b"object" if rest.len() == 1 => debug_object(ctx, &rest[0]),
        b"sleep" if rest.len() == 1 => {
            // A negative time sleeps 0, as Redis's nanosleep does; infinity
            // and times past Duration's range are refused rather than clamped.
            let seconds = parse_float(&rest[0])?.max(0.0);
            let pause = Duration::try_from_secs_f64(seconds)
                .map_err(|_| Reply::StaticError(error::NOT_FLOAT))?;
            // Redis stops the whole server; here only this connection's
            // worker thread sleeps, which is as close as a threaded server gets.
            std::thread::sleep(pause);
            Ok(Reply::OK)
        }
        b"help" | b"object" | b"sleep" => Err(error::subcommand_syntax("debug", sub)),
        _ => Err(error::debug_unsupported(sub)),
    }
}

fn debug_object(ctx: &Ctx<'_>, key: &[u8]) -> CmdResult {
    let shared_integers = ctx.state.config.read().config.memory.shares_integers();
    let now_secs = unix_now().as_secs();
    ctx.ks().peek(ctx.db(), key, |entry| {
        let entry = entry.ok_or(Reply::StaticError(error::NO_SUCH_KEY))?;
        let lru = u64::from(entry.access()) & LRU_CLOCK_MAX;
        let idle = now_secs.saturating_sub(u64::from(entry.access()));
        Ok(Reply::Status(format!(
            "Value at:{:p} refcount:{} encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
            entry as *const Entry,
            entry.refcount(shared_integers),
            entry.encoding(),
            serialized_length(entry.value()),
            lru,
            idle
        )))
    })
}

/// Redis stops sharing small integers when eviction needs a per-key LRU/LFU field.
/// Bytes the value takes in an RDB file (`rdbSavedObjectLen`), without LZF.
fn serialized_length(value: ValueRef<'_>) -> u64 {
    match value {
        ValueRef::Str(data) => {
            // Strings that are 32-bit integers are stored as 1, 2 or 4 bytes after a type byte.
            if data.len() <= 11 {
                if let Some(n) = parse_i64(data).filter(|n| n.to_string().as_bytes() == data) {
                    if i8::try_from(n).is_ok() {
                        return 2;
                    } else if i16::try_from(n).is_ok() {
                        return 3;
                    } else if i32::try_from(n).is_ok() {
                        return 5;
                    }
                }
            }
            let len = data.len() as u64;
            let prefix = match len {
                0..64 => 1,
                64..16384 => 2,
                16384..=0xFFFF_FFFF => 5,
                _ => 9,
            };
            prefix + len
        }
        // Collections: an estimate (Redis reports its listpack or element
        // serialisation; clients use the figure only as a size hint).
        ValueRef::List(list) => 1 + list.iter().map(|item| item.len() as u64 + 2).sum::<u64>(),
        ValueRef::Hash(hash) => {
            1 + hash
                .iter()
                .map(|(f, v)| (f.len() + v.len()) as u64 + 4)
                .sum::<u64>()
        }
        ValueRef::Set(set) => 1 + set.iter().map(|m| m.len() as u64 + 2).sum::<u64>(),
        ValueRef::ZSet(zset) => 1 + zset.iter().map(|(m, _)| m.len() as u64 + 10).sum::<u64>(),
    }
}

// ---------------------------------------------------------------- INFO

/// Every section in the order Redis prints them.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
    "tiers",
    "source",
];

/// What `INFO` and `INFO default` print.
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
    "tiers",
    "source",
];

/// # Format
/// `INFO [section [section ...]]`
pub fn info(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let mut wanted: HashSet<&'static str> = HashSet::new();
    if args.is_empty() {
        wanted.extend(DEFAULT_SECTIONS);
    }
    for arg in args.by_ref() {
        let arg = arg.to_ascii_lowercase();
        match arg.as_slice() {
            b"all" | b"everything" => wanted.extend(SECTIONS),
            b"default" => wanted.extend(DEFAULT_SECTIONS),
            // Unknown names may be a module's section in Redis: ignored, not an error.
            name => wanted.extend(SECTIONS.iter().find(|s| s.as_bytes() == name)),
        }
    }
    let text = info_text(ctx.state, &wanted);
    Ok(Reply::Verbatim("txt", Bytes::from(text)))
}

/// The INFO text of the `wanted` sections (also for other families, e.g. a tiers section later).
pub fn info_text(state: &ServerState, wanted: &HashSet<&'static str>) -> String {
    // One pass over every shard serves all sections that need the totals.
    let totals = if ["memory", "persistence", "stats", "tiers"]
        .iter()
        .any(|s| wanted.contains(s))
    {
        state.keyspace.totals()
    } else {
        KeyspaceTotals::default()
    };
    let mut out = String::new();
    for section in SECTIONS.iter().filter(|s| wanted.contains(*s)) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let mut info = Info(&mut out);
        match *section {
            "server" => info_server(state, &mut info),
            "clients" => info_clients(state, &mut info),
            "memory" => info_memory(state, &totals, &mut info),
            "persistence" => info_persistence(state, &totals, &mut info),
            "stats" => info_stats(state, &totals, &mut info),
            "replication" => info_replication(state, &mut info),
            "cpu" => info_cpu(&mut info),
            "modules" => info.header("Modules"),
            "commandstats" => info_commandstats(state, &mut info),
            "errorstats" => info_errorstats(state, &mut info),
            // No latency histograms are kept; the section exists so parsers find it.
            "latencystats" => info.header("Latencystats"),
            "cluster" => {
                info.header("Cluster");
                info.field("cluster_enabled", 0);
            }
            "tiers" => {
                info.header("Tiers");
                for (name, value) in crate::metrics::tier_figures(&totals) {
                    info.field(name, value);
                }
            }
            "source" => {
                info.header("Source");
                match state.bridge.get() {
                    Some(bridge) => {
                        info.field("source", "postgres");
                        info.field(
                            "write_mode",
                            state
                                .keyspace
                                .link()
                                .map_or("none", |l| l.config().write_mode.name()),
                        );
                        for (name, value) in bridge.figures(state.keyspace.warm()) {
                            info.field(name, value);
                        }
                    }
                    None => info.field("source", "none"),
                }
            }
            _ => info_keyspace(state, &mut info),
        }
    }
    out
}

/// Writes `# Title` and `name:value` lines with Redis's CRLF endings.
struct Info<'a>(&'a mut String);

impl Info<'_> {
    fn header(&mut self, title: &str) {
        let _ = write!(self.0, "# {title}\r\n");
    }

    fn field(&mut self, name: &str, value: impl std::fmt::Display) {
        let _ = write!(self.0, "{name}:{value}\r\n");
    }
}

/// Redis's `bytesToHuman`.
fn human_bytes(n: u64) -> String {
    const UNITS: &[(u64, &str)] = &[
        (1 << 50, "P"),
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for &(size, unit) in UNITS {
        if n >= size {
            return format!("{:.2}{unit}", n as f64 / size as f64);
        }
    }
    format!("{n}B")
}

fn config_value(state: &ServerState, name: &str) -> String {
    state.config.read().get(name).unwrap_or_default()
}

fn info_server(state: &ServerState, info: &mut Info<'_>) {
    let now = unix_now();
    let uptime = state.stats.started.elapsed().as_secs();
    let hz = config_value(state, "hz");
    let executable = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    info.header("Server");
    info.field("redis_version", super::connection::REDIS_COMPAT_VERSION);
    info.field("strata_version", env!("CARGO_PKG_VERSION"));
    info.field("redis_git_sha1", "00000000");
    info.field("redis_git_dirty", 0);
    info.field("redis_build_id", "0");
    info.field("redis_mode", "standalone");
    info.field("os", os_name());
    info.field("arch_bits", usize::BITS);
    info.field("monotonic_clock", "POSIX clock_gettime");
    info.field("multiplexing_api", multiplexing_api());
    info.field("process_id", std::process::id());
    info.field("process_supervised", "no");
    info.field("run_id", &state.run_id);
    info.field("tcp_port", state.port.load(Relaxed));
    info.field("server_time_usec", now.as_micros());
    info.field("uptime_in_seconds", uptime);
    info.field("uptime_in_days", uptime / 86_400);
    info.field("hz", &hz);
    info.field("configured_hz", &hz);
    info.field("lru_clock", now.as_secs() & LRU_CLOCK_MAX);
    info.field("executable", executable);
    info.field("config_file", "");
    info.field("io_threads_active", 0);
}

/// `uname -s -r -m`, read without libc.
fn os_name() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_string())
            .ok()
    };
    match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Some(os), Some(release)) => format!("{os} {release} {}", std::env::consts::ARCH),
        _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// The readiness API tokio's reactor uses on this platform.
fn multiplexing_api() -> &'static str {
    match std::env::consts::OS {
        "linux" | "android" => "epoll",
        "windows" => "iocp",
        _ => "kqueue",
    }
}

fn info_clients(state: &ServerState, info: &mut Info<'_>) {
    let maxclients = state.config.read().config.server.maxclients;
    info.header("Clients");
    info.field("connected_clients", state.clients.count());
    info.field("cluster_connections", 0);
    info.field("maxclients", maxclients);
    info.field("client_recent_max_input_buffer", 0);
    info.field("client_recent_max_output_buffer", 0);
    info.field("blocked_clients", state.blocking.blocked_count());
    info.field("tracking_clients", 0);
    info.field("clients_in_timeout_table", 0);
}

fn info_memory(state: &ServerState, totals: &KeyspaceTotals, info: &mut Info<'_>) {
    let used = USED_MEMORY_BASE + totals.bytes;
    let rss = proc_kb("/proc/self/status", "VmRSS:").map_or(used, |kb| kb * 1024);
    let system = proc_kb("/proc/meminfo", "MemTotal:").map_or(0, |kb| kb * 1024);
    let (maxmemory, policy) = {
        let config = state.config.read();
        (
            config.config.memory.maxmemory.0,
            config.config.memory.maxmemory_policy.clone(),
        )
    };
    let dataset = used - USED_MEMORY_BASE;
    info.header("Memory");
    info.field("used_memory", used);
    info.field("used_memory_human", human_bytes(used));
    info.field("used_memory_rss", rss);
    info.field("used_memory_rss_human", human_bytes(rss));
    // No high-water mark is kept: the peak is the current figure.
    info.field("used_memory_peak", used);
    info.field("used_memory_peak_human", human_bytes(used));
    info.field("used_memory_peak_perc", "100.00%");
    info.field("used_memory_overhead", USED_MEMORY_BASE);
    info.field("used_memory_startup", USED_MEMORY_BASE);
    info.field("used_memory_dataset", dataset);
    info.field(
        "used_memory_dataset_perc",
        format!("{:.2}%", dataset as f64 * 100.0 / used as f64),
    );
    info.field("total_system_memory", system);
    info.field("total_system_memory_human", human_bytes(system));
    info.field("used_memory_lua", 0);
    info.field("used_memory_lua_human", "0B");
    info.field("used_memory_scripts", 0);
    info.field("used_memory_scripts_human", "0B");
    info.field("number_of_cached_scripts", 0);
    info.field("maxmemory", maxmemory);
    info.field("maxmemory_human", human_bytes(maxmemory));
    info.field("maxmemory_policy", policy);
    info.field(
        "mem_fragmentation_ratio",
        format!("{:.2}", rss as f64 / used as f64),
    );
    info.field("mem_fragmentation_bytes", rss as i64 - used as i64);
    info.field("mem_not_counted_for_evict", 0);
    info.field("mem_replication_backlog", 0);
    info.field("mem_clients_slaves", 0);
    info.field("mem_clients_normal", 0);
    info.field("mem_aof_buffer", 0);
    info.field("mem_allocator", crate::metrics::allocator());
    info.field("active_defrag_running", 0);
    info.field("lazyfree_pending_objects", 0);
    info.field("lazyfreed_objects", 0);
}

/// A `Name:   1234 kB` line of a /proc file, in kB.
fn proc_kb(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

fn info_persistence(state: &ServerState, totals: &KeyspaceTotals, info: &mut Info<'_>) {
    let changes = totals.counters.changes;
    info.header("Persistence");
    info.field("loading", 0);
    info.field("async_loading", 0);
    info.field("current_cow_peak", 0);
    info.field("current_cow_size", 0);
    info.field("current_cow_size_age", 0);
    info.field("current_fork_perc", "0.00");
    info.field("current_save_keys_processed", 0);
    info.field("current_save_keys_total", 0);
    info.field("rdb_changes_since_last_save", changes);
    info.field("rdb_bgsave_in_progress", 0);
    info.field("rdb_last_save_time", last_save_secs(state));
    info.field("rdb_last_bgsave_status", "ok");
    info.field("rdb_last_bgsave_time_sec", -1);
    info.field("rdb_current_bgsave_time_sec", -1);
    info.field("rdb_last_cow_size", 0);
    info.field("aof_enabled", u8::from(state.keyspace.warm().is_some()));
    info.field("aof_rewrite_in_progress", 0);
    info.field("aof_rewrite_scheduled", 0);
    info.field("aof_last_rewrite_time_sec", -1);
    info.field("aof_current_rewrite_time_sec", -1);
    info.field("aof_last_bgrewrite_status", "ok");
    info.field("aof_rewrites", 0);
    let write_status = match state.keyspace.write_refusal() {
        Some(_) => "err",
        None => "ok",
    };
    info.field("aof_last_write_status", write_status);
    info.field("aof_last_cow_size", 0);
    info.field("module_fork_in_progress", 0);
    info.field("module_fork_last_cow_size", 0);
}

fn info_stats(state: &ServerState, totals: &KeyspaceTotals, info: &mut Info<'_>) {
    let stats = &state.stats;
    let counters = totals.counters;
    info.header("Stats");
    info.field(
        "total_connections_received",
        stats.total_connections.load(Relaxed),
    );
    info.field("total_commands_processed", stats.total_commands());
    info.field("instantaneous_ops_per_sec", stats.ops_per_sec());
    info.field("total_net_input_bytes", stats.net_input_bytes.load(Relaxed));
    info.field(
        "total_net_output_bytes",
        stats.net_output_bytes.load(Relaxed),
    );
    info.field("total_net_repl_input_bytes", 0);
    info.field("total_net_repl_output_bytes", 0);
    info.field("instantaneous_input_kbps", "0.00");
    info.field("instantaneous_output_kbps", "0.00");
    info.field("instantaneous_input_repl_kbps", "0.00");
    info.field("instantaneous_output_repl_kbps", "0.00");
    info.field(
        "rejected_connections",
        stats.rejected_connections.load(Relaxed),
    );
    info.field("sync_full", 0);
    info.field("sync_partial_ok", 0);
    info.field("sync_partial_err", 0);
    info.field("expired_keys", totals.expired());
    info.field("expired_stale_perc", "0.00");
    info.field("expired_time_cap_reached_count", 0);
    info.field("expire_cycle_cpu_milliseconds", 0);
    let warm_evictions = totals.warm.map_or(0, |warm| warm.evictions);
    info.field("evicted_keys", counters.evictions + warm_evictions);
    info.field("evicted_clients", 0);
    info.field("total_eviction_exceeded_time", 0);
    info.field("current_eviction_exceeded_time", 0);
    info.field("keyspace_hits", totals.hits());
    info.field("keyspace_misses", counters.misses);
    let (channels, patterns, shard_channels) = state.pubsub.totals();
    info.field("pubsub_channels", channels);
    info.field("pubsub_patterns", patterns);
    info.field("pubsubshard_channels", shard_channels);
    info.field("latest_fork_usec", 0);
    info.field("total_forks", 0);
    info.field("migrate_cached_sockets", 0);
    info.field("slave_expires_tracked_keys", 0);
    info.field("active_defrag_hits", 0);
    info.field("active_defrag_misses", 0);
    info.field("active_defrag_key_hits", 0);
    info.field("active_defrag_key_misses", 0);
    info.field("total_active_defrag_time", 0);
    info.field("current_active_defrag_time", 0);
    info.field("tracking_total_keys", 0);
    info.field("tracking_total_items", 0);
    info.field("tracking_total_prefixes", 0);
    info.field("unexpected_error_replies", 0);
    info.field(
        "total_error_replies",
        stats.total_error_replies.load(Relaxed),
    );
    info.field("dump_payload_sanitizations", 0);
}

fn info_replication(state: &ServerState, info: &mut Info<'_>) {
    let backlog = config_value(state, "repl-backlog-size");
    info.header("Replication");
    info.field("role", "master");
    info.field("connected_slaves", 0);
    info.field("master_failover_state", "no-failover");
    // There is one history per process, so the run id doubles as the replication id.
    info.field("master_replid", &state.run_id);
    info.field("master_replid2", "0".repeat(40));
    info.field("master_repl_offset", 0);
    info.field("second_repl_offset", -1);
    info.field("repl_backlog_active", 0);
    info.field("repl_backlog_size", backlog);
    info.field("repl_backlog_first_byte_offset", 0);
    info.field("repl_backlog_histlen", 0);
}

fn info_cpu(info: &mut Info<'_>) {
    let [user, sys, children_user, children_sys] = cpu_ticks().unwrap_or_default();
    let seconds = |ticks: u64| {
        let micros = ticks * (1_000_000 / CLOCK_TICKS_PER_SEC);
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    };
    info.header("CPU");
    info.field("used_cpu_sys", seconds(sys));
    info.field("used_cpu_user", seconds(user));
    info.field("used_cpu_sys_children", seconds(children_sys));
    info.field("used_cpu_user_children", seconds(children_user));
}

/// utime, stime, cutime, cstime of this process from /proc/self/stat.
fn cpu_ticks() -> Option<[u64; 4]> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 14 (utime) is the 12th after the name.
    let tick = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some([tick(11)?, tick(12)?, tick(13)?, tick(14)?])
}

fn info_commandstats(state: &ServerState, info: &mut Info<'_>) {
    info.header("Commandstats");
    for (id, entry) in REGISTRY.entries.iter().enumerate() {
        let Some(stats) = state.stats.commands.get(id) else {
            continue;
        };
        let calls = stats.calls.load(Relaxed);
        let rejected = stats.rejected.load(Relaxed);
        let failed = stats.failed.load(Relaxed);
        if calls == 0 && rejected == 0 && failed == 0 {
            continue;
        }
        let usec = stats.usec.load(Relaxed);
        let per_call = if calls == 0 {
            0.0
        } else {
            usec as f64 / calls as f64
        };
        info.field(
            &format!("cmdstat_{}", entry.full_name),
            format!(
                "calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}"
            ),
        );
    }
}

fn info_errorstats(state: &ServerState, info: &mut Info<'_>) {
    info.header("Errorstats");
    let errors = state.stats.errors.lock().clone();
    for (code, count) in errors {
        info.field(&format!("errorstat_{code}"), format!("count={count}"));
    }
}

fn info_keyspace(state: &ServerState, info: &mut Info<'_>) {
    info.header("Keyspace");
    for db in 0..state.databases() {
        let (keys, expires, avg_ttl) = state.keyspace.db_stats(db);
        if keys > 0 || expires > 0 {
            info.field(
                &format!("db{db}"),
                format!("keys={keys},expires={expires},avg_ttl={avg_ttl}"),
            );
        }
    }
}

// ---------------------------------------------------------------- CONFIG

/// # Format
/// `CONFIG GET parameter [parameter ...]`
pub fn config_get(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let mut all = ctx.state.config.read().all();
    // With `port 0` the system picked the port; clients asking want that one.
    let bound = ctx.state.port.load(Relaxed);
    if bound != 0 {
        if let Some((_, port)) = all.iter_mut().find(|(name, _)| *name == "port") {
            *port = bound.to_string();
        }
    }
    // (name as replied, canonical name, value); each parameter once.
    let mut found: Vec<(String, &'static str, String)> = Vec::new();
    for pattern in args.rest() {
        if !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            // A plain name is looked up case-insensitively and answered as the client spelled it.
            let lower = pattern.to_ascii_lowercase();
            if let Some((name, value)) = all.iter().find(|(name, _)| name.as_bytes() == lower) {
                if !found.iter().any(|(_, seen, _)| seen == name) {
                    found.push((lossy(pattern), name, value.clone()));
                }
            }
            continue;
        }
        for (name, value) in &all {
            if !crate::config::RuntimeConfig::is_hidden(name)
                && crate::glob::matches(pattern, name.as_bytes(), true)
                && !found.iter().any(|(_, seen, _)| seen == name)
            {
                found.push((name.to_string(), name, value.clone()));
            }
        }
    }
    Ok(Reply::Map(
        found
            .into_iter()
            .map(|(name, _, value)| (Reply::bulk(name), Reply::bulk(value)))
            .collect(),
    ))
}

/// # Format
/// `CONFIG SET parameter value [parameter value ...]`
///
/// All or nothing: every name is checked first, then the values are applied
/// to a copy that replaces the live configuration only when all succeeded.
pub fn config_set(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let items = args.rest();
    if !items.len().is_multiple_of(2) {
        return Err(Reply::StaticError(error::SYNTAX));
    }
    let pairs: Vec<(&Bytes, String, String)> = items
        .chunks_exact(2)
        .map(|pair| {
            let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
            (
                &pair[0],
                name,
                String::from_utf8_lossy(&pair[1]).into_owned(),
            )
        })
        .collect();

    let mut config = ctx.state.config.write();
    let mut probe = config.clone();
    for (i, (given, name, _)) in pairs.iter().enumerate() {
        if !config.is_known(name) {
            return Err(error::config_set_unknown(given));
        }
        // Setting the current value again only fails for parameters fixed at startup.
        let current = probe.get(name).unwrap_or_default();
        if let Err(reason) = probe.set(name, &current) {
            if reason.contains("immutable") {
                return Err(error::config_set_failed(given, &reason));
            }
        }
        if pairs[..i].iter().any(|(_, earlier, _)| earlier == name) {
            return Err(error::config_set_failed(given, "duplicate parameter"));
        }
    }
    let mut next = config.clone();
    let bound_port = ctx.state.port.load(Relaxed).to_string();
    for (given, name, value) in &pairs {
        // CONFIG GET port answers the port bound (for `port 0`, the one
        // the system picked): that value is the current one too.
        let value = match next.get(name) {
            Some(configured) if name == "port" && *value == bound_port => configured,
            _ => value.clone(),
        };
        next.set(name, &value)
            .map_err(|reason| error::config_set_failed(given, &reason))?;
    }
    let auth = !next.config.server.requirepass.is_empty();
    *config = next;
    drop(config);
    ctx.state.auth_enabled.store(auth, Relaxed);
    ctx.state.apply_config();
    Ok(Reply::OK)
}

/// # Format
/// `CONFIG RESETSTAT`
pub fn config_resetstat(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    ctx.state.stats.reset();
    ctx.ks().reset_stats();
    if let Some(bridge) = ctx.state.bridge.get() {
        bridge.reset_figures();
    }
    Ok(Reply::OK)
}

/// # Format
/// `CONFIG REWRITE`
///
/// Flags and a TOML file both configure strata; rewriting either is not offered.
pub fn config_rewrite(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Err(Reply::StaticError(error::NO_CONFIG_FILE))
}

/// # Format
/// `CONFIG HELP`
pub fn config_help(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(help(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    ))
}

// ---------------------------------------------------------------- SLOWLOG

/// # Format
/// `SLOWLOG GET [count]`
pub fn slowlog_get(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let count = match args.next() {
        None => 10,
        Some(text) => match parse_i64(text) {
            Some(-1) => usize::MAX,
            Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => return Err(Reply::StaticError(error::SLOWLOG_COUNT)),
        },
    };
    if !args.is_empty() {
        return Err(error::subcommand_syntax("slowlog", b"get"));
    }
    let entries = ctx.state.slowlog.lock().latest(count);
    Ok(Reply::Array(
        entries
            .into_iter()
            .map(|entry| {
                Reply::Array(vec![
                    Reply::Int(entry.id as i64),
                    Reply::Int(entry.unix_secs as i64),
                    Reply::Int(entry.micros as i64),
                    Reply::from_bulks(entry.args),
                    Reply::bulk(entry.peer),
                    Reply::bulk(entry.name),
                ])
            })
            .collect(),
    ))
}

/// # Format
/// `SLOWLOG LEN`
pub fn slowlog_len(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Int(ctx.state.slowlog.lock().len() as i64))
}

/// # Format
/// `SLOWLOG RESET`
pub fn slowlog_reset(ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    ctx.state.slowlog.lock().reset();
    Ok(Reply::OK)
}

/// # Format
/// `SLOWLOG HELP`
pub fn slowlog_help(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(help(
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    ))
}

// ---------------------------------------------------------------- COMMAND

/// # Format
/// `COMMAND`
pub fn command_all(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Array(
        REGISTRY
            .top_level()
            .map(|(id, entry)| command_entry(id, entry))
            .collect(),
    ))
}

/// # Format
/// `COMMAND COUNT`
pub fn command_count(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Int(REGISTRY.top_level().count() as i64))
}

/// # Format
/// `COMMAND INFO [command-name ...]`
pub fn command_info(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    if args.is_empty() {
        return command_all(ctx, args);
    }
    Ok(Reply::Array(
        args.rest()
            .iter()
            .map(|name| {
                REGISTRY
                    .lookup_full(name)
                    .and_then(|id| Some((id, REGISTRY.entries.get(id)?)))
                    .map_or(Reply::Nil, |(id, entry)| command_entry(id, entry))
            })
            .collect(),
    ))
}

/// One COMMAND INFO entry, Redis 7's ten fields.
fn command_entry(id: usize, entry: &Registered) -> Reply {
    let spec = entry.spec;
    let statuses =
        |names: &[&'static str]| Reply::Set(names.iter().map(|name| Reply::Simple(name)).collect());
    let flags: Vec<&'static str> = FLAG_NAMES
        .iter()
        .filter(|(bit, _)| spec.flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    let categories: Vec<Reply> = acl_categories(entry)
        .into_iter()
        .map(|category| Reply::Status(format!("@{category}")))
        .collect();
    // Redis 7.0 answers a command without subcommands with an empty set here.
    let subcommands = if spec.subcommands.is_empty() {
        Reply::Set(Vec::new())
    } else {
        Reply::Array(
            REGISTRY
                .children(id)
                .map(|(child, sub)| command_entry(child, sub))
                .collect(),
        )
    };
    Reply::Array(vec![
        Reply::bulk_str(&entry.full_name),
        Reply::Int(i64::from(spec.arity)),
        statuses(&flags),
        Reply::Int(i64::from(spec.first_key)),
        Reply::Int(i64::from(spec.last_key)),
        Reply::Int(i64::from(spec.step)),
        Reply::Set(categories),
        // Tips are bulk strings where flags and categories are status replies.
        Reply::Set(
            command_tips(&entry.full_name)
                .iter()
                .map(|tip| Reply::bulk_str(tip))
                .collect(),
        ),
        Reply::Set(key_specs(entry).iter().map(key_spec_reply).collect()),
        subcommands,
    ])
}

/// Redis's ACL categories, in the order `COMMAND INFO` prints them.
const ACL_CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The category a COMMAND DOCS group implies (Redis's per-group JSON categories).
fn group_category(group: &str) -> Option<&'static str> {
    Some(match group {
        "generic" => "keyspace",
        "string" => "string",
        "bitmap" => "bitmap",
        "list" => "list",
        "hash" => "hash",
        "set" => "set",
        "sorted-set" => "sortedset",
        "hyperloglog" => "hyperloglog",
        "geo" => "geo",
        "stream" => "stream",
        "connection" => "connection",
        "transactions" => "transaction",
        "scripting" => "scripting",
        _ => return None,
    })
}

/// Categories from the flags (as Redis's `setImplicitACLCategories`), from the
/// group, and the few Redis lists by hand.
fn acl_categories(entry: &Registered) -> Vec<&'static str> {
    let spec = entry.spec;
    let mut categories: Vec<&'static str> = Vec::new();
    let implied = [
        (WRITE, "write"),
        (READONLY, "read"),
        (ADMIN, "admin"),
        (ADMIN, "dangerous"),
        (PUBSUB, "pubsub"),
        (FAST, "fast"),
        (BLOCKING, "blocking"),
    ];
    for (bit, category) in implied {
        if spec.flags & bit != 0 {
            categories.push(category);
        }
    }
    if spec.flags & FAST == 0 {
        categories.push("slow");
    }
    // A container carries no category of its own beyond @slow.
    if spec.subcommands.is_empty() {
        categories.extend(group_category(spec.group));
    }
    let (add, remove): (&[&str], &[&str]) = match entry.full_name.as_str() {
        "keys" | "info" => (&["dangerous"], &[]),
        "dbsize" => (&["keyspace"], &[]),
        "sort" | "sort_ro" => (&["set", "sortedset", "list", "dangerous"], &["keyspace"]),
        "flushdb" | "flushall" | "swapdb" => (&["keyspace", "dangerous"], &[]),
        "lastsave" => (&["admin", "dangerous"], &[]),
        "wait" => (&["connection"], &["keyspace"]),
        name if name == "command" || name.starts_with("command|") => (&["connection"], &[]),
        _ => (&[], &[]),
    };
    categories.extend(add);
    categories.retain(|category| !remove.contains(category));
    ACL_CATEGORIES
        .iter()
        .copied()
        .filter(|category| categories.contains(category))
        .collect()
}

/// Redis's command tips (cluster routing and output determinism) for the commands strata has.
fn command_tips(full_name: &str) -> &'static [&'static str] {
    const ALL_SHARDS_ALL_SUCCEEDED: &[&str] =
        &["request_policy:all_shards", "response_policy:all_succeeded"];
    const MULTI_SHARD_SUM: &[&str] = &["request_policy:multi_shard", "response_policy:agg_sum"];
    const NONDETERMINISTIC: &[&str] = &["nondeterministic_output"];
    const NONDETERMINISTIC_ORDER: &[&str] = &["nondeterministic_output_order"];
    match full_name {
        "ping" | "flushdb" | "flushall" => ALL_SHARDS_ALL_SUCCEEDED,
        "mget" => &["request_policy:multi_shard"],
        "mset" => &[
            "request_policy:multi_shard",
            "response_policy:all_succeeded",
        ],
        "msetnx" => &["request_policy:multi_shard", "response_policy:agg_min"],
        "del" | "unlink" | "exists" | "touch" => MULTI_SHARD_SUM,
        "ttl" | "pttl" | "time" | "lastsave" | "client|list" | "client|info"
        | "object|encoding" | "object|freq" | "object|idletime" | "object|refcount" => {
            NONDETERMINISTIC
        }
        "keys" => &["request_policy:all_shards", "nondeterministic_output_order"],
        "scan" => &["nondeterministic_output", "request_policy:special"],
        "randomkey" => &["request_policy:all_shards", "nondeterministic_output"],
        "dbsize" => &["request_policy:all_shards", "response_policy:agg_sum"],
        "info" => &[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ],
        "wait" => &["request_policy:all_shards", "response_policy:agg_min"],
        "command" | "command|info" | "command|docs" | "command|list" => NONDETERMINISTIC_ORDER,
        "config|set" | "slowlog|reset" => {
            &["request_policy:all_nodes", "response_policy:all_succeeded"]
        }
        "slowlog|get" => &["request_policy:all_nodes", "nondeterministic_output"],
        "slowlog|len" => &[
            "request_policy:all_nodes",
            "response_policy:agg_sum",
            "nondeterministic_output",
        ],
        _ => &[],
    }
}

/// One key specification: where the keys start (an index) and how far they run.
struct KeySpec {
    notes: Option<&'static str>,
    flags: &'static [&'static str],
    index: i64,
    /// Last key relative to the first, or negative: counted from the end.
    lastkey: i64,
    keystep: i64,
}

/// The key specs Redis declares: derived from the table's first/last/step,
/// with Redis's access flags where they differ from plain RO/RW.
fn key_specs(entry: &Registered) -> Vec<KeySpec> {
    let spec = entry.spec;
    if spec.first_key <= 0 {
        return Vec::new();
    }
    let one = |flags, index, lastkey| KeySpec {
        notes: None,
        flags,
        index,
        lastkey,
        keystep: 1,
    };
    match entry.full_name.as_str() {
        "bitop" => return vec![one(&["OW", "update"], 2, 0), one(&["RO", "access"], 3, -1)],
        "rename" => {
            return vec![
                one(&["RW", "access", "delete"], 1, 0),
                one(&["OW", "update"], 2, 0),
            ]
        }
        "renamenx" => {
            return vec![
                one(&["RW", "access", "delete"], 1, 0),
                one(&["OW", "insert"], 2, 0),
            ]
        }
        "copy" => return vec![one(&["RO", "access"], 1, 0), one(&["OW", "update"], 2, 0)],
        _ => {}
    }
    let flags: &'static [&'static str] = match entry.full_name.as_str() {
        "set" | "bitfield" => &["RW", "access", "update", "variable_flags"],
        "setnx" | "msetnx" => &["OW", "insert"],
        "setex" | "psetex" | "mset" => &["OW", "update"],
        "getset" | "getex" | "incr" | "decr" | "incrby" | "decrby" | "incrbyfloat" | "setbit"
        | "move" => &["RW", "access", "update"],
        "getdel" => &["RW", "access", "delete"],
        "append" => &["RW", "insert"],
        "del" | "unlink" => &["RM", "delete"],
        // Shard channels sit where keys do (for cluster routing) but are not keys.
        "ssubscribe" | "sunsubscribe" | "spublish" => &["not_key"],
        "strlen" | "type" | "exists" | "touch" | "object|encoding" | "object|freq"
        | "object|idletime" | "object|refcount" => &["RO"],
        _ if spec.flags & WRITE != 0 => &["RW", "update"],
        _ => &["RO", "access"],
    };
    let first = i64::from(spec.first_key);
    let last = i64::from(spec.last_key);
    let notes = match entry.full_name.as_str() {
        "set" => Some("RW and ACCESS due to the optional `GET` argument"),
        "getex" => Some("RW and UPDATE because it changes the TTL"),
        "bitfield" => Some("This command allows both access and modification of the key"),
        _ => None,
    };
    vec![KeySpec {
        notes,
        flags,
        index: first,
        lastkey: if last < 0 { last } else { last - first },
        keystep: i64::from(spec.step),
    }]
}

fn map(pairs: Vec<(&str, Reply)>) -> Reply {
    Reply::Map(
        pairs
            .into_iter()
            .map(|(key, value)| (Reply::bulk_str(key), value))
            .collect(),
    )
}

fn key_spec_reply(spec: &KeySpec) -> Reply {
    let mut pairs = Vec::with_capacity(4);
    if let Some(notes) = spec.notes {
        pairs.push(("notes", Reply::bulk_str(notes)));
    }
    pairs.extend([
        (
            "flags",
            Reply::Set(spec.flags.iter().map(|flag| Reply::Simple(flag)).collect()),
        ),
        (
            "begin_search",
            map(vec![
                ("type", Reply::bulk_str("index")),
                ("spec", map(vec![("index", Reply::Int(spec.index))])),
            ]),
        ),
        (
            "find_keys",
            map(vec![
                ("type", Reply::bulk_str("range")),
                (
                    "spec",
                    map(vec![
                        ("lastkey", Reply::Int(spec.lastkey)),
                        ("keystep", Reply::Int(spec.keystep)),
                        ("limit", Reply::Int(0)),
                    ]),
                ),
            ]),
        ),
    ]);
    map(pairs)
}

/// # Format
/// `COMMAND DOCS [command-name ...]`
pub fn command_docs(_ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let ids: Vec<usize> = if args.is_empty() {
        REGISTRY.top_level().map(|(id, _)| id).collect()
    } else {
        args.rest()
            .iter()
            .filter_map(|name| REGISTRY.lookup_full(name))
            .collect()
    };
    Ok(Reply::Map(
        ids.into_iter()
            .filter_map(|id| Some((id, REGISTRY.entries.get(id)?)))
            .map(|(id, entry)| (Reply::bulk_str(&entry.full_name), command_doc(id, entry)))
            .collect(),
    ))
}

/// Redis's docs for one command, its `subcommands` narrowed to the ones strata has.
fn command_doc(id: usize, entry: &Registered) -> Reply {
    let docs = super::docs::command_docs(&entry.full_name).unwrap_or_else(|| fallback_doc(entry));
    if entry.spec.subcommands.is_empty() {
        return docs;
    }
    let subcommands = Reply::Map(
        REGISTRY
            .children(id)
            .map(|(child, sub)| (Reply::bulk_str(&sub.full_name), command_doc(child, sub)))
            .collect(),
    );
    let Reply::Map(mut pairs) = docs else {
        return docs;
    };
    match pairs
        .iter_mut()
        .find(|(key, _)| matches!(key, Reply::Bulk(k) if k.as_ref() == b"subcommands"))
    {
        Some((_, value)) => *value = subcommands,
        None => pairs.push((Reply::bulk_str("subcommands"), subcommands)),
    }
    Reply::Map(pairs)
}

/// Docs for a command Redis does not have (or documents under another release).
fn fallback_doc(entry: &Registered) -> Reply {
    map(vec![
        (
            "summary",
            Reply::bulk(format!(
                "The {} command.",
                entry.full_name.replace('|', " ").to_ascii_uppercase()
            )),
        ),
        ("since", Reply::bulk_str("1.0.0")),
        ("group", Reply::bulk_str(entry.spec.group)),
        ("complexity", Reply::bulk_str("")),
        ("arguments", Reply::Array(Vec::new())),
    ])
}

/// # Format
/// `COMMAND LIST [FILTERBY MODULE module-name | ACLCAT category | PATTERN pattern]`
pub fn command_list(_ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    enum Filter<'a> {
        All,
        Module,
        Category(String),
        Pattern(&'a [u8]),
    }
    let filter = if args.is_empty() {
        Filter::All
    } else if args.remaining() == 3 && args.eat("filterby") {
        if args.eat("module") {
            Filter::Module
        } else if args.eat("aclcat") {
            Filter::Category(String::from_utf8_lossy(args.next_bytes()?).to_ascii_lowercase())
        } else if args.eat("pattern") {
            Filter::Pattern(args.next_bytes()?)
        } else {
            return Err(Reply::StaticError(error::SYNTAX));
        }
    } else {
        return Err(Reply::StaticError(error::SYNTAX));
    };
    let names = REGISTRY
        .entries
        .iter()
        .filter(|entry| match &filter {
            Filter::All => true,
            // strata loads no modules.
            Filter::Module => false,
            Filter::Category(category) => acl_categories(entry).contains(&category.as_str()),
            Filter::Pattern(pattern) => {
                crate::glob::matches(pattern, entry.full_name.as_bytes(), true)
            }
        })
        .map(|entry| Reply::bulk_str(&entry.full_name))
        .collect();
    Ok(Reply::Array(names))
}

/// # Format
/// `COMMAND GETKEYS command [arg ...]`
pub fn command_getkeys(_ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let argv = args.rest();
    let invalid = || Reply::StaticError(error::INVALID_COMMAND);
    let name = argv.first().ok_or_else(invalid)?;
    let mut id = REGISTRY.lookup(name).ok_or_else(invalid)?;
    let mut entry = REGISTRY.entries.get(id).ok_or_else(invalid)?;
    if !entry.spec.subcommands.is_empty() {
        if let Some(sub) = argv.get(1) {
            id = REGISTRY.lookup_sub(id, sub).ok_or_else(invalid)?;
            entry = REGISTRY.entries.get(id).ok_or_else(invalid)?;
        }
    }
    let spec = entry.spec;
    if spec.first_key <= 0 && spec.flags & super::table::MOVABLEKEYS == 0 {
        return Err(Reply::StaticError(error::NO_KEY_ARGUMENTS));
    }
    let argc = argv.len() as i64;
    let arity = i64::from(spec.arity);
    if (arity > 0 && arity != argc) || argc < -arity {
        return Err(Reply::StaticError(error::INVALID_ARG_COUNT));
    }
    let keys = super::table::keys_of(spec, argv);
    if keys.is_empty() {
        return Err(Reply::StaticError(error::INVALID_ARGUMENTS));
    }
    Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()))
}

/// # Format
/// `COMMAND HELP`
pub fn command_help(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(help(
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::table::key_positions;

    #[test]
    fn human_bytes_like_redis() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(916_376), "894.90K");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.00M");
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        assert_eq!(key_positions(1, 1, 1, 2), vec![1]);
        assert_eq!(key_positions(1, -1, 2, 5), vec![1, 3]);
        // MSET a 1 b: Redis still reports both keys.
        assert_eq!(key_positions(1, -1, 2, 4), vec![1, 3]);
        assert_eq!(key_positions(2, -1, 1, 4), vec![2, 3]);
        assert_eq!(key_positions(1, 2, 1, 3), vec![1, 2]);
        assert!(key_positions(0, 0, 0, 3).is_empty());
    }

    #[test]
    fn rdb_lengths() {
        let len = |s: &str| serialized_length(ValueRef::Str(s.as_bytes()));
        assert_eq!(len("bar"), 4);
        assert_eq!(len("123"), 2);
        assert_eq!(len("1000"), 3);
        assert_eq!(len("100000"), 5);
        assert_eq!(len("0123"), 5);
        assert_eq!(len(&"a".repeat(100)), 102);
    }

    #[test]
    fn categories_match_redis() {
        let categories = |name: &str| {
            let id = REGISTRY.lookup_full(name.as_bytes()).unwrap();
            acl_categories(&REGISTRY.entries[id])
        };
        assert_eq!(categories("get"), ["read", "string", "fast"]);
        assert_eq!(
            categories("client|list"),
            ["admin", "slow", "dangerous", "connection"]
        );
        assert_eq!(
            categories("flushall"),
            ["keyspace", "write", "slow", "dangerous"]
        );
        assert_eq!(categories("config"), ["slow"]);
        assert_eq!(categories("wait"), ["slow", "connection"]);
        assert_eq!(categories("object|help"), ["keyspace", "slow"]);
    }
}
