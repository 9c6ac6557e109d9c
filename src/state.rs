//! What every connection and command shares: the keyspace, the run-time
//! configuration, the figures, the client registry and the shutdown switch.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, watch};

use crate::clients::ClientRegistry;
use crate::config::{Config, RuntimeConfig};
use crate::keyspace::events::{EventKind, KeyspaceEvent};
use crate::keyspace::{EvictionPolicy, Keyspace, KeyspaceOptions};
use crate::metrics::{SlowLog, Stats};
use crate::pubsub::{notify, PubSub};

pub struct ServerState {
    pub keyspace: Keyspace,
    pub pubsub: Arc<PubSub>,
    pub config: RwLock<RuntimeConfig>,
    /// Mirrors `requirepass != ""` so the hot path need not read the config.
    pub auth_enabled: AtomicBool,
    pub stats: Stats,
    pub clients: ClientRegistry,
    pub slowlog: Mutex<SlowLog>,
    pub run_id: String,
    /// The port actually bound (differs from the config when it asked for 0).
    pub port: AtomicUsize,
    /// Unix seconds of the last successful save (LASTSAVE).
    pub last_save: AtomicU64,
    shutdown: watch::Sender<bool>,
    monitor_feed: broadcast::Sender<Bytes>,
    pub monitors: AtomicUsize,
    /// Clients blocked on keys.
    pub blocking: crate::blocking::Registry,
    /// Every command runs holding this shared, EXEC holds it exclusively
    /// for its whole queue: no other client sees or interleaves with a
    /// transaction. Taken once per command, never across an await.
    pub exec_gate: ExecGate,
    /// The source of truth's bridge, when one is configured (set once the
    /// runtime runs: it starts tasks).
    pub bridge: std::sync::OnceLock<Arc<crate::bridge::Bridge>>,
}

impl ServerState {
    /// Opens the keyspace (and its warm tier) the config describes. Blocks
    /// on disk I/O: call it where that is allowed.
    pub fn open(config: Config, command_count: usize) -> Result<ServerState, String> {
        let keyspace = Keyspace::open(keyspace_options(&config))?;
        let (shutdown, _) = watch::channel(false);
        let (monitor_feed, _) = broadcast::channel(4096);
        let auth = !config.server.requirepass.is_empty();
        let run_id: String = (0..40)
            .map(|_| char::from_digit(rand::random::<u32>() % 16, 16).unwrap_or('0'))
            .collect();
        let pubsub = Arc::new(PubSub::default());
        let sink = pubsub.clone();
        keyspace.set_event_sink(Box::new(move |event: KeyspaceEvent<'_>| {
            let (class, name) = match event.kind {
                EventKind::Expired => (notify::EXPIRED, "expired"),
                EventKind::Evicted => (notify::EVICTED, "evicted"),
                EventKind::EvictedToDisk => (notify::TIER, "evicted_to_disk"),
                EventKind::Loaded => (notify::TIER, "loaded"),
            };
            sink.notify(class, name, event.db, event.key);
        }));
        let state = ServerState {
            keyspace,
            pubsub,
            auth_enabled: AtomicBool::new(auth),
            config: RwLock::new(RuntimeConfig::new(config)),
            stats: Stats::new(command_count),
            clients: ClientRegistry::default(),
            slowlog: Mutex::new(SlowLog::default()),
            run_id,
            port: AtomicUsize::new(0),
            last_save: AtomicU64::new(crate::keyspace::now_ms() / 1000),
            shutdown,
            monitor_feed,
            monitors: AtomicUsize::new(0),
            blocking: Default::default(),
            exec_gate: ExecGate::default(),
            bridge: std::sync::OnceLock::new(),
        };
        state.apply_config();
        Ok(state)
    }

    /// Pushes the run-time settings the keyspace keeps for itself (after
    /// CONFIG SET).
    pub fn apply_config(&self) {
        let config = self.config.read();
        let memory = &config.config.memory;
        self.keyspace.set_maxmemory(memory.maxmemory.0);
        if let Some(policy) = EvictionPolicy::parse(&memory.maxmemory_policy) {
            self.keyspace.set_policy(policy);
        }
        self.keyspace.set_samples(memory.maxmemory_samples as u32);
        self.pubsub.set_notify_flags(config.config.notify_flags());
        self.pubsub
            .set_output_limit(config.config.output_limits().pubsub);
        if let Some(warm) = self.keyspace.warm() {
            let storage = &config.config.storage;
            if let Some(policy) = crate::keyspace::warm::FsyncPolicy::parse(&storage.appendfsync) {
                warm.set_fsync(policy);
            }
            warm.set_max_disk(storage.max_disk.0);
            warm.set_min_free_disk(storage.min_free_disk.0);
        }
    }

    /// Asks the server to stop: the listener stops accepting and every
    /// connection finishes the batch it is in.
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn subscribe_monitor(&self) -> broadcast::Receiver<Bytes> {
        self.monitors.fetch_add(1, Relaxed);
        self.monitor_feed.subscribe()
    }

    pub fn unsubscribe_monitor(&self) {
        self.monitors.fetch_sub(1, Relaxed);
    }

    pub fn feed_monitors(&self, line: Bytes) {
        let _ = self.monitor_feed.send(line);
    }

    pub fn has_monitors(&self) -> bool {
        self.monitors.load(Relaxed) > 0
    }

    /// A keyspace notification from a command: `class` is one of
    /// [`notify`]'s classes, `event` Redis's event name.
    pub fn notify(&self, class: u32, event: &str, db: usize, key: &[u8]) {
        self.pubsub.notify(class, event, db, key);
    }

    pub fn databases(&self) -> usize {
        self.keyspace.databases()
    }
}

fn keyspace_options(config: &Config) -> KeyspaceOptions {
    let storage = &config.storage;
    KeyspaceOptions {
        databases: config.server.databases,
        warm: storage
            .warm_tier
            .then(|| crate::keyspace::warm::WarmOptions {
                dir: storage.dir.clone(),
                databases: config.server.databases,
                cache_size: storage.warm_cache_size.0,
                fsync: crate::keyspace::warm::FsyncPolicy::parse(&storage.appendfsync)
                    .unwrap_or(crate::keyspace::warm::FsyncPolicy::EverySec),
                max_disk: storage.max_disk.0,
                min_free_disk: storage.min_free_disk.0,
            }),
        maxmemory: config.memory.maxmemory.0,
        policy: EvictionPolicy::parse(&config.memory.maxmemory_policy)
            .unwrap_or(EvictionPolicy::AllKeys(crate::keyspace::Rank::Lru)),
        samples: config.memory.maxmemory_samples as u32,
        source: Some(config.source.clone()),
    }
}

/// Reader stripes of the [`ExecGate`]: threads spread over them, so the
/// worker threads of the runtime each count on a cache line of their own.
const GATE_STRIPES: usize = 16;

/// One stripe's count of commands running, alone on its cache line.
#[derive(Default)]
#[repr(align(128))]
struct GateStripe(AtomicUsize);

/// A reader-writer gate for the price of a private counter per command.
/// A single `RwLock` word, written by every command on every worker
/// thread, bounces between the cores; here a reader counts itself on its
/// thread's stripe and then checks the writer flag, and the writer (EXEC)
/// raises the flag and then waits for every stripe to drain. The flag and
/// the counts are sequentially consistent, so of a reader and a writer
/// arriving together at least one sees the other: no command runs while an
/// EXEC does. Readers that meet the flag step back and wait on the
/// writer's mutex, which EXEC holds for its whole queue.
#[derive(Default)]
pub struct ExecGate {
    stripes: [GateStripe; GATE_STRIPES],
    writing: AtomicBool,
    /// Held by EXEC throughout: serializes EXECs and parks waiting readers.
    writer: parking_lot::Mutex<()>,
}

/// A command's hold on the gate (shared).
pub struct ExecGateRead<'a> {
    stripe: &'a AtomicUsize,
}

/// EXEC's hold on the gate (exclusive).
pub struct ExecGateWrite<'a> {
    gate: &'a ExecGate,
    _writer: parking_lot::MutexGuard<'a, ()>,
}

fn gate_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Relaxed) % GATE_STRIPES;
    }
    STRIPE.with(|stripe| *stripe)
}

impl ExecGate {
    /// Waits while an EXEC runs, then holds the gate shared. Not
    /// reentrant: a thread holding it must not take it again.
    pub fn read(&self) -> ExecGateRead<'_> {
        let stripe = &self.stripes[gate_stripe() % GATE_STRIPES].0;
        loop {
            stripe.fetch_add(1, Ordering::SeqCst);
            if !self.writing.load(Ordering::SeqCst) {
                return ExecGateRead { stripe };
            }
            stripe.fetch_sub(1, Ordering::SeqCst);
            // Parks until the EXEC in progress ends.
            drop(self.writer.lock());
        }
    }

    /// Holds the gate exclusively: returns once no command runs, and no
    /// command starts until the guard is dropped.
    pub fn write(&self) -> ExecGateWrite<'_> {
        let writer = self.writer.lock();
        self.writing.store(true, Ordering::SeqCst);
        for stripe in &self.stripes {
            // Commands in flight finish without awaiting anything.
            let mut spins = 0u32;
            while stripe.0.load(Ordering::SeqCst) != 0 {
                if spins < 64 {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        }
        ExecGateWrite {
            gate: self,
            _writer: writer,
        }
    }
}

impl Drop for ExecGateRead<'_> {
    fn drop(&mut self) {
        self.stripe.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ExecGateWrite<'_> {
    fn drop(&mut self) {
        // Before the mutex is released (the field drops after this), so a
        // reader woken by it finds the flag down.
        self.gate.writing.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn no_reader_runs_while_the_writer_holds_the_gate() {
        let gate = Arc::new(ExecGate::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let violations = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (gate, inside, violations) = (gate.clone(), inside.clone(), violations.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let _read = gate.read();
                        if inside.load(Ordering::SeqCst) != 0 {
                            violations.fetch_add(1, Relaxed);
                        }
                    }
                })
            })
            .collect();
        for _ in 0..500 {
            let _write = gate.write();
            inside.store(1, Ordering::SeqCst);
            std::hint::spin_loop();
            inside.store(0, Ordering::SeqCst);
        }
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(violations.load(Relaxed), 0);
        assert!(gate.stripes.iter().all(|s| s.0.load(Relaxed) == 0));
    }
}
