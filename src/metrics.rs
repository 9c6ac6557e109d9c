//! Server-wide figures: every counter declared once here; INFO reads them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

/// The allocator the binary declared (INFO `mem_allocator`): the global
/// allocator is the binary's choice, not the library's.
static ALLOCATOR: OnceLock<&'static str> = OnceLock::new();

/// Names the process's allocator, as Redis's `mem_allocator` does
/// (`jemalloc-5.3.0`); the first call wins.
pub fn declare_allocator(name: &'static str) {
    let _ = ALLOCATOR.set(name);
}

/// The declared allocator; `libc` (the system's malloc) when none was.
pub fn allocator() -> &'static str {
    ALLOCATOR.get().copied().unwrap_or("libc")
}

/// Calls, time and failures of one command (INFO commandstats).
#[derive(Default)]
pub struct CommandStats {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
}

pub struct Stats {
    pub started: Instant,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub total_error_replies: AtomicU64,
    /// One slot per command-table entry (subcommands included).
    pub commands: Box<[CommandStats]>,
    pub errors: Mutex<BTreeMap<String, u64>>,
    ops: Mutex<OpsSampler>,
}

/// Redis's `instantaneous_ops_per_sec`: a rolling average over 16 samples
/// taken every 100 ms.
#[derive(Default)]
struct OpsSampler {
    last_total: u64,
    last_at: Option<Instant>,
    samples: [u64; 16],
    next: usize,
}

impl Stats {
    pub fn new(command_count: usize) -> Stats {
        Stats {
            started: Instant::now(),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            total_error_replies: AtomicU64::new(0),
            commands: (0..command_count)
                .map(|_| CommandStats::default())
                .collect(),
            errors: Mutex::new(BTreeMap::new()),
            ops: Mutex::new(OpsSampler::default()),
        }
    }

    pub fn total_commands(&self) -> u64 {
        self.commands.iter().map(|c| c.calls.load(Relaxed)).sum()
    }

    pub fn record_error(&self, code: &str) {
        self.total_error_replies.fetch_add(1, Relaxed);
        let mut errors = self.errors.lock();
        // Redis caps distinct error codes at 128 so a client cannot grow the map without bound.
        if errors.len() >= 128 && !errors.contains_key(code) {
            return;
        }
        *errors.entry(code.to_string()).or_insert(0) += 1;
    }

    /// Called every 100 ms by the server's housekeeping task.
    pub fn sample_ops(&self) {
        let total = self.total_commands();
        let now = Instant::now();
        let mut ops = self.ops.lock();
        if let Some(last_at) = ops.last_at {
            let elapsed = now.duration_since(last_at).as_micros().max(1) as u64;
            let rate = total.saturating_sub(ops.last_total) * 1_000_000 / elapsed;
            let index = ops.next;
            ops.samples[index] = rate;
            ops.next = (index + 1) % 16;
        }
        ops.last_total = total;
        ops.last_at = Some(now);
    }

    pub fn ops_per_sec(&self) -> u64 {
        let ops = self.ops.lock();
        ops.samples.iter().sum::<u64>() / 16
    }

    pub fn reset(&self) {
        for command in self.commands.iter() {
            command.calls.store(0, Relaxed);
            command.usec.store(0, Relaxed);
            command.rejected.store(0, Relaxed);
            command.failed.store(0, Relaxed);
        }
        self.errors.lock().clear();
        self.total_error_replies.store(0, Relaxed);
        self.total_connections.store(0, Relaxed);
        self.rejected_connections.store(0, Relaxed);
        self.net_input_bytes.store(0, Relaxed);
        self.net_output_bytes.store(0, Relaxed);
    }
}

/// Calls and time a connection ran since its last flush. Adding to the
/// shared counters once per batch instead of once per command keeps the two
/// worker threads from fighting over the counters' cache lines.
#[derive(Default)]
pub struct PendingCommandStats {
    entries: Vec<(usize, u64, u64)>,
}

impl PendingCommandStats {
    pub fn record(&mut self, id: usize, micros: u64) {
        match self.entries.iter_mut().find(|(entry, _, _)| *entry == id) {
            Some((_, calls, usec)) => {
                *calls += 1;
                *usec += micros;
            }
            None => self.entries.push((id, 1, micros)),
        }
    }

    pub fn flush(&mut self, stats: &Stats) {
        for (id, calls, usec) in self.entries.drain(..) {
            if let Some(command) = stats.commands.get(id) {
                command.calls.fetch_add(calls, Relaxed);
                command.usec.fetch_add(usec, Relaxed);
            }
        }
    }
}

/// One SLOWLOG record.
#[derive(Clone)]
pub struct SlowEntry {
    pub id: u64,
    pub unix_secs: u64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub peer: String,
    pub name: String,
}

#[derive(Default)]
pub struct SlowLog {
    next_id: u64,
    entries: std::collections::VecDeque<SlowEntry>,
}

/// Redis keeps at most 32 arguments of a slow command, each cut to 128 bytes.
const SLOWLOG_MAX_ARGS: usize = 32;
const SLOWLOG_MAX_ARG_LEN: usize = 128;

impl SlowLog {
    pub fn push(
        &mut self,
        args: &[Bytes],
        micros: u64,
        peer: String,
        name: String,
        max_len: usize,
    ) {
        let mut kept: Vec<Bytes> = Vec::new();
        for (index, arg) in args.iter().enumerate() {
            if index == SLOWLOG_MAX_ARGS - 1 && args.len() > SLOWLOG_MAX_ARGS {
                kept.push(Bytes::from(format!(
                    "... ({} more arguments)",
                    args.len() - SLOWLOG_MAX_ARGS + 1
                )));
                break;
            }
            if arg.len() > SLOWLOG_MAX_ARG_LEN {
                let mut cut = arg[..SLOWLOG_MAX_ARG_LEN].to_vec();
                cut.extend_from_slice(
                    format!("... ({} more bytes)", arg.len() - SLOWLOG_MAX_ARG_LEN).as_bytes(),
                );
                kept.push(Bytes::from(cut));
            } else {
                kept.push(Bytes::copy_from_slice(arg));
            }
        }
        let unix_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.entries.push_front(SlowEntry {
            id: self.next_id,
            unix_secs,
            micros,
            args: kept,
            peer,
            name,
        });
        self.next_id += 1;
        self.entries.truncate(max_len);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }

    pub fn latest(&self, count: usize) -> Vec<SlowEntry> {
        self.entries.iter().take(count).cloned().collect()
    }
}

/// The figures of INFO's `# Tiers` section and CACHE.STATS, in order: one
/// list so both always agree.
pub fn tier_figures(totals: &crate::keyspace::KeyspaceTotals) -> Vec<(&'static str, u64)> {
    let c = &totals.counters;
    let warm = totals.warm.unwrap_or_default();
    vec![
        ("warm_tier", u64::from(totals.warm.is_some())),
        ("hot_keys", totals.keys),
        ("hot_bytes", totals.bytes),
        ("warm_keys", warm.keys),
        ("warm_bytes", warm.bytes),
        ("warm_disk_bytes", warm.disk_bytes),
        ("hot_hits", c.hits),
        ("warm_hits", c.warm_hits),
        ("misses", c.misses),
        ("promotions", c.promotions),
        ("hot_evictions", c.evictions),
        ("warm_evictions", warm.evictions),
        ("hot_expired_keys", c.expired),
        ("warm_expired_keys", warm.expired),
        ("crc_errors", warm.crc_errors),
        ("flushes", warm.flushes),
        ("last_flush_ms", warm.last_flush_ms),
        ("flush_lag_ms", warm.flush_lag_ms),
    ]
}
