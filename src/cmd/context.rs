//! The narrow context a command runs with: the shared server state and its
//! own connection's session. Commands never see the socket or the protocol version.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::clients::ClientHandle;
use crate::keyspace::{Keyspace, ReadOptions, WatchSet};
use crate::protocol::Version;
use crate::state::ServerState;

/// `CLIENT REPLY` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// Skip the reply of the next command only.
    Skip,
}

/// What the connection must do after writing the current reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterReply {
    #[default]
    Continue,
    /// QUIT, CLIENT KILL of oneself: flush and close.
    Close,
    /// SHUTDOWN: close without a reply; the server is stopping.
    Shutdown,
    /// MONITOR: from now on the connection streams the command feed.
    Monitor,
}

/// Per-connection state that commands read and change.
pub struct Session {
    pub client: Arc<ClientHandle>,
    pub db: usize,
    pub version: Version,
    pub authenticated: bool,
    pub reply_mode: ReplyMode,
    /// The running command's reply is skipped (`CLIENT REPLY SKIP` came
    /// before it); `CLIENT REPLY ON` clears it, so its own OK is sent.
    pub skipping_reply: bool,
    pub no_touch: bool,
    pub after_reply: AfterReply,
    /// `slowlog-log-slower-than` in microseconds (negative = off), refreshed
    /// by the connection once per batch so the hot path never reads the config.
    pub slowlog_threshold: i64,
    /// Commandstats not yet added to the shared counters (flushed per batch).
    pub pending_stats: crate::metrics::PendingCommandStats,
    /// The batch ran a write command: its replies wait for the durability
    /// point `appendfsync` promises.
    pub wrote: bool,
    /// SAVE: the batch's replies wait for a flush whatever the policy.
    pub must_flush: bool,
    /// A blocking command is waiting: the connection holds further input
    /// until its reply arrives or its time runs out.
    pub blocked: Option<crate::blocking::Blocked>,
    /// Running the commands of an EXEC: blocking commands do not block,
    /// and blocked clients are served once the whole transaction has run.
    pub in_exec: bool,
    /// Open since MULTI: the queue EXEC will run.
    pub transaction: Option<super::multi::Transaction>,
    /// The keys WATCHed, released when the session ends.
    pub watched: WatchSet,
}

impl Session {
    pub fn new(client: Arc<ClientHandle>, authenticated: bool) -> Session {
        Session {
            watched: WatchSet::new(client.watch_flag.clone()),
            client,
            db: 0,
            version: Version::Resp2,
            authenticated,
            reply_mode: ReplyMode::On,
            skipping_reply: false,
            no_touch: false,
            after_reply: AfterReply::Continue,
            slowlog_threshold: crate::config::DEFAULT_SLOWLOG_SLOWER_THAN,
            pending_stats: Default::default(),
            wrote: false,
            must_flush: false,
            blocked: None,
            in_exec: false,
            transaction: None,
        }
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.client.db.store(db, Relaxed);
    }

    pub fn set_version(&mut self, version: Version) {
        self.version = version;
        self.client.resp.store(version.number() as usize, Relaxed);
    }
}

pub struct Ctx<'a> {
    pub state: &'a ServerState,
    pub session: &'a mut Session,
}

impl Ctx<'_> {
    pub fn ks(&self) -> &Keyspace {
        &self.state.keyspace
    }

    pub fn db(&self) -> usize {
        self.session.db
    }

    pub fn read_options(&self) -> ReadOptions {
        ReadOptions {
            no_touch: self.session.no_touch,
        }
    }

    /// The largest string a command may build (`proto-max-bulk-len`).
    pub fn max_string_len(&self) -> u64 {
        self.state.config.read().config.server.proto_max_bulk_len.0
    }
}
