//! One client connection: read what one read brings, decode and run every
//! complete request in it, and write all their replies with one write.
//! While it waits for the socket it also waits for its pub/sub mailbox, so
//! messages reach a subscriber without a request from it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch};

use crate::bridge::Prepared;
use crate::clients::ClientHandle;
use crate::cmd::{self, AfterReply, ReplyMode, Session};
use crate::keyspace::link::ShipFailure;
use crate::protocol::{encode, DecodeLimits, Decoder, Reply};
use crate::state::ServerState;

const READ_CHUNK: usize = 16 * 1024;
/// How long a shutdown waits for a client that does not read its replies.
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(1);

/// Why the read loop ended.
enum Ending {
    /// Peer closed, was killed, or the server is stopping.
    Closed,
    /// The client issued MONITOR: switch to streaming the command feed.
    Monitor,
}

pub(super) async fn serve(
    state: Arc<ServerState>,
    mut stream: TcpStream,
    client: Arc<ClientHandle>,
    mut shutdown: watch::Receiver<bool>,
    _running: mpsc::Sender<()>,
) {
    let authenticated = !state.auth_enabled.load(Relaxed);
    let mut session = Session::new(client.clone(), authenticated);
    let mut connection = Connection {
        state: &state,
        inbuf: BytesMut::with_capacity(READ_CHUNK),
        out: BytesMut::with_capacity(READ_CHUNK),
        decoder: Decoder::new(),
        drained: 0,
        held: Vec::new(),
    };
    let ending = connection
        .run(&mut stream, &mut session, &client, &mut shutdown)
        .await;
    if let Ending::Monitor = ending {
        connection
            .monitor(&mut stream, &mut session, &client, &mut shutdown)
            .await;
    }
    state.pubsub.remove_client(&client);
    state.clients.unregister(client.id);
}

struct Connection<'a> {
    state: &'a ServerState,
    inbuf: BytesMut,
    out: BytesMut,
    decoder: Decoder,
    /// Cost of the pub/sub frames moved from the mailbox into `out` and not
    /// yet written: they count against the client's output limit until then.
    drained: u64,
    /// Replies held until the source commits a `through` write: (reply,
    /// the write's outbox sequence or 0), in order. Once one is held, the
    /// replies after it wait too, so their order stays.
    held: Vec<(Reply, u64)>,
}

impl Connection<'_> {
    async fn run(
        &mut self,
        stream: &mut TcpStream,
        session: &mut Session,
        client: &ClientHandle,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ending {
        loop {
            let (max_bulk_len, query_buffer_limit, idle_timeout) = {
                let config = self.state.config.read();
                let server = &config.config.server;
                session.slowlog_threshold = server.slowlog_log_slower_than;
                (
                    server.proto_max_bulk_len.0,
                    server.client_query_buffer_limit.0,
                    server.timeout,
                )
            };
            let mut outcome = self.run_batch(session, max_bulk_len as i64);
            let mut loads = 0;
            while let BatchEnd::Load(args, keys) = outcome {
                self.release_held(session).await;
                loads += 1;
                let loaded = match self.state.bridge.get() {
                    Some(bridge) => bridge.load(session.db, keys.clone()).await,
                    None => Ok(()),
                };
                let next = match loaded {
                    // A key loaded and dropped again before the command ran
                    // (another instance's notification of the very write
                    // just loaded) is loaded again, a bounded number of times.
                    Ok(()) => crate::keyspace::link::reading_loaded(&keys, || {
                        self.run_command(session, &args, Loads::Again(loads < MAX_LOADS))
                    }),
                    Err(reply) => {
                        let reply = cmd::refuse(self.state, session, &args, reply);
                        self.emit(session, reply, 0);
                        None
                    }
                };
                outcome = match next {
                    Some(end) => end,
                    None => {
                        loads = 0;
                        self.run_batch(session, max_bulk_len as i64)
                    }
                };
            }
            self.release_held(session).await;
            session.pending_stats.flush(&self.state.stats);
            self.wait_durable(session).await;
            self.drain_mailbox(session);
            if !self.flush_unless_killed(stream, client, shutdown).await {
                return Ending::Closed;
            }
            client.mailbox.written(std::mem::take(&mut self.drained));
            match outcome {
                BatchEnd::NeedInput | BatchEnd::Load(..) => {}
                BatchEnd::Close => return Ending::Closed,
                BatchEnd::Monitor => return Ending::Monitor,
                BatchEnd::Blocked => {
                    if !self.wait_blocked(stream, session, client, shutdown).await {
                        return Ending::Closed;
                    }
                    // Run what arrived meanwhile, and send the reply.
                    continue;
                }
            }
            if self.inbuf.len() as u64 > query_buffer_limit {
                tracing::warn!(
                    client = client.id,
                    "closing client that reached max query buffer length"
                );
                return Ending::Closed;
            }
            self.inbuf.reserve(READ_CHUNK);
            let read = stream.read_buf(&mut self.inbuf);
            let idle = async {
                if idle_timeout == 0 {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(Duration::from_secs(idle_timeout)).await
                }
            };
            tokio::select! {
                result = read => match result {
                    Ok(0) | Err(_) => return Ending::Closed,
                    Ok(n) => {
                        self.state.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
                    }
                },
                // Published messages: the next turn writes them.
                _ = client.mailbox.ready() => {}
                _ = client.killed() => return Ending::Closed,
                _ = shutdown.changed() => return Ending::Closed,
                _ = idle => return Ending::Closed,
            }
        }
    }

    /// Moves waiting pub/sub frames into `out`, behind what is there.
    fn drain_mailbox(&mut self, session: &Session) {
        let version = session.version;
        let out = &mut self.out;
        self.drained += session
            .client
            .mailbox
            .drain(|frame| encode(&frame, version, out));
    }

    /// A subscriber that stops reading would hold its task in the write
    /// forever: being killed (over its output limit) ends the write, and so
    /// does a shutdown that waited `SHUTDOWN_WRITE_GRACE` for it.
    async fn flush_unless_killed(
        &mut self,
        stream: &mut TcpStream,
        client: &ClientHandle,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        if self.out.is_empty() {
            return true;
        }
        // A clone: what it sees is not taken from the read loop's receiver.
        let mut stopping = shutdown.clone();
        let given_up = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_WRITE_GRACE).await;
        };
        tokio::select! {
            ok = self.flush(stream) => ok,
            _ = client.killed() => false,
            _ = given_up => false,
        }
    }

    /// Runs every complete request in the buffer, queueing replies in `out`.
    fn run_batch(&mut self, session: &mut Session, max_bulk_len: i64) -> BatchEnd {
        loop {
            let limits = DecodeLimits {
                max_bulk_len,
                authenticated: session.authenticated || !self.state.auth_enabled.load(Relaxed),
            };
            session
                .client
                .query_buffered
                .store(self.inbuf.len(), Relaxed);
            let args = match self.decoder.decode(&mut self.inbuf, limits) {
                Ok(Some(args)) => args,
                Ok(None) => {
                    // What a decoder keeps of a partial request is not
                    // counted: Redis's buffer after a partial read.
                    session
                        .client
                        .query_buffered
                        .store(self.inbuf.len(), Relaxed);
                    return BatchEnd::NeedInput;
                }
                Err(error) => {
                    let reply = Reply::Error(error.reply_text());
                    self.state.stats.record_error("ERR");
                    encode(&reply, session.version, &mut self.out);
                    return BatchEnd::Close;
                }
            };
            if let Some(end) = self.run_command(session, &args, Loads::First) {
                return end;
            }
        }
    }

    /// Runs one request and queues its reply; `Some` ends the batch. With
    /// a source, a command naming keys neither tier holds first ends the
    /// batch to load them (`loaded`: that is done).
    fn run_command(
        &mut self,
        session: &mut Session,
        args: &[bytes::Bytes],
        loads: Loads,
    ) -> Option<BatchEnd> {
        let check = match loads {
            Loads::First => Some(false),
            Loads::Again(true) => Some(true),
            // Out of loads: the command runs as it finds its keys.
            Loads::Again(false) => None,
        };
        if let (Some(bridge), Some(again)) = (self.state.bridge.get(), check) {
            match bridge.prepare(self.state, session, args, again) {
                Prepared::Ready => {}
                Prepared::Load(keys) => {
                    return Some(BatchEnd::Load(args.to_vec(), keys));
                }
                Prepared::Refuse(reply) => {
                    let reply = cmd::refuse(self.state, session, args, reply);
                    self.emit(session, reply, 0);
                    return None;
                }
            }
        }
        // SKIP applies to this command; one it sets applies to the next.
        session.skipping_reply = session.reply_mode == ReplyMode::Skip;
        if session.skipping_reply {
            session.reply_mode = ReplyMode::On;
        }
        let reply = cmd::execute(self.state, session, args);
        let through = crate::keyspace::link::take_through_wait();
        let suppressed = session.skipping_reply || session.reply_mode == ReplyMode::Off;
        // Confirmations and messages the command caused (a client's own
        // PUBLISH or keyspace event) come before its reply, as in Redis.
        self.drain_mailbox(session);
        if !suppressed {
            self.emit(session, reply, through);
        }
        match std::mem::take(&mut session.after_reply) {
            AfterReply::Continue => {}
            AfterReply::Close | AfterReply::Shutdown => return Some(BatchEnd::Close),
            AfterReply::Monitor => return Some(BatchEnd::Monitor),
        }
        if session.blocked.is_some() {
            return Some(BatchEnd::Blocked);
        }
        None
    }

    /// Queues a reply, or holds it while a `through` write waits.
    fn emit(&mut self, session: &Session, reply: Reply, through: u64) {
        if through == 0 && self.held.is_empty() {
            encode(&reply, session.version, &mut self.out);
        } else {
            self.held.push((reply, through));
        }
    }

    /// Waits for the source to commit the held `through` writes, then
    /// queues their replies: an error for a write it did not confirm.
    async fn release_held(&mut self, session: &Session) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let Some(bridge) = self.state.bridge.get() else {
            for (reply, _) in &held {
                encode(reply, session.version, &mut self.out);
            }
            return;
        };
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + bridge.through_deadline();
        for (reply, seq) in held {
            let reply = match seq {
                0 => reply,
                seq => {
                    let shipped = bridge.link().wait_shipped(seq);
                    match tokio::time::timeout_at(deadline, shipped).await {
                        Ok(Ok(())) => {
                            bridge.record_through_latency(started.elapsed().as_micros() as u64);
                            reply
                        }
                        Ok(Err(ShipFailure::Unconfirmed(reason))) => {
                            crate::error::source_unconfirmed(&reason)
                        }
                        Ok(Err(ShipFailure::Refused(reason))) => {
                            crate::error::source_refused(&reason)
                        }
                        Err(_) => crate::error::source_unconfirmed("no commit in time"),
                    }
                }
            };
            encode(&reply, session.version, &mut self.out);
        }
    }

    /// Waits for a blocked command's reply (a key it waits on was filled)
    /// or its timeout, reading what the client sends meanwhile. False when
    /// the connection must close.
    async fn wait_blocked(
        &mut self,
        stream: &mut TcpStream,
        session: &mut Session,
        client: &ClientHandle,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let Some(mut blocked) = session.blocked.take() else {
            return true;
        };
        let registry = &self.state.blocking;
        let keyspace = &self.state.keyspace;
        let deadline = async {
            match blocked.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(deadline);
        let reply = loop {
            self.inbuf.reserve(READ_CHUNK);
            tokio::select! {
                reply = &mut blocked.reply => break reply.unwrap_or(Reply::NilArray),
                _ = &mut deadline => {
                    if registry.cancel(keyspace, &blocked.waiter) {
                        break std::mem::replace(&mut blocked.timeout_reply, Reply::NoReply);
                    }
                    // Served as the time ran out: the reply is on its way.
                    break (&mut blocked.reply).await.unwrap_or(Reply::NilArray);
                }
                result = stream.read_buf(&mut self.inbuf) => match result {
                    Ok(0) | Err(_) => {
                        registry.cancel(keyspace, &blocked.waiter);
                        return false;
                    }
                    Ok(n) => {
                        self.state.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
                    }
                },
                _ = client.killed() => {
                    registry.cancel(keyspace, &blocked.waiter);
                    return false;
                }
                _ = shutdown.changed() => {
                    registry.cancel(keyspace, &blocked.waiter);
                    return false;
                }
            }
        };
        encode(&reply, session.version, &mut self.out);
        // The pop that served it is a write: its reply waits for durability.
        session.wrote = true;
        true
    }

    /// Holds the batch's replies until its writes reach the durability point
    /// `appendfsync` promises (or SAVE asked for): one flush covers every
    /// connection waiting at that moment (group commit).
    async fn wait_durable(&self, session: &mut Session) {
        let (wrote, forced) = (session.wrote, session.must_flush);
        session.wrote = false;
        session.must_flush = false;
        if !(wrote || forced) {
            return;
        }
        if let Some(warm) = self.state.keyspace.warm() {
            if let Some(target) = warm.durability_target(forced) {
                warm.wait_durable(target).await;
            }
        }
    }

    async fn flush(&mut self, stream: &mut TcpStream) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let written = self.out.len() as u64;
        let ok = stream.write_all(&self.out).await.is_ok();
        self.state
            .stats
            .net_output_bytes
            .fetch_add(written, Relaxed);
        self.out.clear();
        ok
    }

    /// MONITOR: stream every command the server runs until the client quits.
    async fn monitor(
        &mut self,
        stream: &mut TcpStream,
        session: &mut Session,
        client: &ClientHandle,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        client.monitor.store(true, Relaxed);
        let mut feed = self.state.subscribe_monitor();
        loop {
            self.inbuf.reserve(READ_CHUNK);
            tokio::select! {
                line = feed.recv() => match line {
                    Ok(line) => {
                        encode(&Reply::Status(String::from_utf8_lossy(&line).into_owned()), session.version, &mut self.out);
                        if !self.flush(stream).await {
                            break;
                        }
                    }
                    // A slow monitor misses lines rather than holding memory.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                result = stream.read_buf(&mut self.inbuf) => {
                    if matches!(result, Ok(0) | Err(_)) || self.monitor_input_says_quit(session) {
                        break;
                    }
                }
                _ = client.killed() => break,
                _ = shutdown.changed() => break,
            }
        }
        let _ = self.flush(stream).await;
        self.state.unsubscribe_monitor();
    }

    /// A monitoring client may only leave: QUIT or RESET end the stream.
    fn monitor_input_says_quit(&mut self, session: &mut Session) -> bool {
        let limits = DecodeLimits::default();
        loop {
            match self.decoder.decode(&mut self.inbuf, limits) {
                Ok(Some(args)) => {
                    let Some(name) = args.first() else { continue };
                    if name.eq_ignore_ascii_case(b"quit") || name.eq_ignore_ascii_case(b"reset") {
                        encode(&Reply::OK, session.version, &mut self.out);
                        return true;
                    }
                }
                Ok(None) => return false,
                Err(_) => return true,
            }
        }
    }
}

/// Loads one request may start before it runs anyway.
const MAX_LOADS: u32 = 3;

/// Where a request stands with the source's read-through.
#[derive(Clone, Copy)]
enum Loads {
    First,
    /// Its keys were loaded; whether it may load again.
    Again(bool),
}

enum BatchEnd {
    NeedInput,
    Close,
    Monitor,
    /// A blocking command waits (`Session::blocked`).
    Blocked,
    /// The request must wait for these keys to load from the source.
    Load(Vec<bytes::Bytes>, Vec<bytes::Bytes>),
}
