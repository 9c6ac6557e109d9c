//! The registry of connected clients: what CLIENT LIST/INFO/KILL and INFO
//! clients see of every connection, and how one connection stops another.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::keyspace::WatchFlag;

/// Names and flags a client sets about itself.
#[derive(Debug, Default, Clone)]
pub struct ClientLabels {
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
}

/// One connection as others see it. The connection task updates it; readers
/// only take snapshots.
pub struct ClientHandle {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub created: Instant,
    pub labels: Mutex<ClientLabels>,
    pub db: AtomicUsize,
    pub resp: AtomicUsize,
    /// Command-table id of the last command (`usize::MAX` before the first).
    pub last_command: AtomicUsize,
    /// Unix milliseconds of the last command (0 = none yet).
    pub last_active_ms: AtomicU64,
    /// Bytes of the input buffer not yet run, the running command's own
    /// included (Redis's `qbuf`: a client listing itself sees its CLIENT
    /// LIST).
    pub query_buffered: AtomicUsize,
    pub monitor: AtomicBool,
    pub no_evict: AtomicBool,
    pub no_touch: AtomicBool,
    /// Commands queued since MULTI, -1 outside a transaction.
    pub multi: AtomicI64,
    /// Set when a key the client WATCHes changes.
    pub watch_flag: Arc<WatchFlag>,
    /// Subscription counts and the pub/sub frames not yet written.
    pub mailbox: crate::pubsub::Mailbox,
    killed: AtomicBool,
    kill_signal: Notify,
}

impl ClientHandle {
    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill_signal.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Relaxed)
    }

    /// Resolves when another client (or SHUTDOWN) kills this one.
    pub async fn killed(&self) {
        if self.is_killed() {
            return;
        }
        self.kill_signal.notified().await;
    }

    /// Records a command about to run at `now_unix_ms` (the dispatcher's clock reading).
    pub fn touch(&self, command_id: usize, now_unix_ms: u64) {
        self.last_command.store(command_id, Relaxed);
        self.last_active_ms.store(now_unix_ms, Relaxed);
    }

    /// The client's type for CLIENT LIST and CLIENT KILL's `TYPE` filter,
    /// as Redis's `getClientType`: `pubsub` while subscribed to anything
    /// (the `P` flag), otherwise `normal` (a MONITOR client included).
    pub fn kind(&self) -> &'static str {
        if self.mailbox.subscribed() {
            "pubsub"
        } else {
            "normal"
        }
    }

    /// One line of CLIENT LIST, in Redis 7's field order; `command_name`
    /// turns the last command's id into its full name.
    pub fn info_line(&self, command_name: impl Fn(usize) -> String) -> String {
        let labels = self.labels.lock().clone();
        let age = self.created.elapsed().as_secs();
        let idle_ms = match self.last_active_ms.load(Relaxed) {
            0 => self.created.elapsed().as_millis() as u64,
            last => crate::keyspace::now_ms().saturating_sub(last),
        };
        let (sub, psub, ssub) = self.mailbox.counts();
        let (oll, omem) = self.mailbox.backlog();
        let mut flags = String::new();
        let multi = self.multi.load(Relaxed);
        if self.monitor.load(Relaxed) {
            flags.push('O');
        }
        if self.kind() == "pubsub" {
            flags.push('P');
        }
        if multi >= 0 {
            flags.push('x');
        }
        if self.watch_flag.is_dirty() {
            flags.push('d');
        }
        if self.no_evict.load(Relaxed) {
            flags.push('e');
        }
        if self.no_touch.load(Relaxed) {
            flags.push('T');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll={} omem={} tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.peer,
            self.local,
            labels.name,
            age,
            idle_ms / 1000,
            flags,
            self.db.load(Relaxed),
            sub,
            psub,
            ssub,
            multi,
            self.query_buffered.load(Relaxed),
            oll,
            omem,
            command_name(self.last_command.load(Relaxed)),
            self.resp.load(Relaxed),
            labels.lib_name,
            labels.lib_ver,
        )
    }
}

#[derive(Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
}

impl ClientRegistry {
    pub fn register(&self, peer: SocketAddr, local: SocketAddr) -> Arc<ClientHandle> {
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let handle = Arc::new(ClientHandle {
            id,
            peer,
            local,
            created: Instant::now(),
            labels: Mutex::new(ClientLabels::default()),
            db: AtomicUsize::new(0),
            resp: AtomicUsize::new(2),
            last_command: AtomicUsize::new(usize::MAX),
            last_active_ms: AtomicU64::new(0),
            query_buffered: AtomicUsize::new(0),
            monitor: AtomicBool::new(false),
            no_evict: AtomicBool::new(false),
            no_touch: AtomicBool::new(false),
            multi: AtomicI64::new(-1),
            watch_flag: Arc::default(),
            mailbox: Default::default(),
            killed: AtomicBool::new(false),
            kill_signal: Notify::new(),
        });
        self.clients.lock().insert(id, handle.clone());
        handle
    }

    pub fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn count(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.lock().values().cloned().collect()
    }

    pub fn kill_all(&self) {
        for client in self.all() {
            client.kill();
        }
    }
}
