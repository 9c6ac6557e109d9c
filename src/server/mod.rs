//! Networking: listeners, the accept loop with its connection limit and
//! protected mode, one task per connection, background housekeeping, and
//! graceful shutdown (stop accepting, let connections finish their batch).

mod connection;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::error;
use crate::state::ServerState;

/// How often expiry and the ops/sec sampler run (Redis's `hz 10`).
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);

/// Binds every address of the `bind` list. A `-` prefix (as in Redis's
/// `-::1`) marks an address that may be unavailable; `*` means every IPv4
/// address. When the port is 0 every listener shares the first one's port.
pub async fn bind(addresses: &[String], port: u16) -> Result<Vec<TcpListener>, String> {
    let mut listeners = Vec::new();
    let mut port = port;
    for address in addresses {
        let (optional, host) = match address.strip_prefix('-') {
            Some(host) => (true, host),
            None => (false, address.as_str()),
        };
        let host = match host {
            "*" => "0.0.0.0",
            "::*" => "::",
            other => other,
        };
        let ip: std::net::IpAddr = match host.parse() {
            Ok(ip) => ip,
            Err(_) => return Err(format!("invalid bind address '{address}'")),
        };
        match TcpListener::bind(SocketAddr::new(ip, port)).await {
            Ok(listener) => {
                if port == 0 {
                    port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                }
                listeners.push(listener);
            }
            Err(err) if optional => {
                tracing::debug!("skipping optional bind address {address}: {err}");
            }
            Err(err) => return Err(format!("could not bind {address}:{port}: {err}")),
        }
    }
    if listeners.is_empty() {
        return Err("no address could be bound".into());
    }
    Ok(listeners)
}

/// Serves until shutdown is requested, then waits for every connection to end.
pub async fn serve(state: Arc<ServerState>, listeners: Vec<TcpListener>) {
    // Keys whose deadline passed while the server was down (or just before
    // it stopped) go before the first client is accepted: DBSIZE and KEYS
    // read the warm tier, which counts them until a sweep deletes them, and
    // Redis drops them while it loads. One pass is bounded (a few thousand
    // per database); the periodic sweep takes the rest.
    let worker = state.clone();
    let _ = tokio::task::spawn_blocking(move || worker.keyspace.sweep_expired()).await;
    let (running, mut all_done) = mpsc::channel::<()>(1);
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        accept_tasks.push(tokio::spawn(accept_loop(
            state.clone(),
            listener,
            running.clone(),
        )));
    }
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    drop(running);
    for task in accept_tasks {
        let _ = task.await;
    }
    // Every connection holds a sender; recv() returns None once all have ended.
    let _ = all_done.recv().await;
    housekeeping.abort();
}

async fn accept_loop(state: Arc<ServerState>, listener: TcpListener, running: mpsc::Sender<()>) {
    let mut shutdown = state.shutdown_signal();
    loop {
        if state.is_shutting_down() {
            return;
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => admit(&state, stream, peer, &running).await,
            Err(err) => {
                // Out of descriptors and similar: back off instead of spinning.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn admit(
    state: &Arc<ServerState>,
    mut stream: TcpStream,
    peer: SocketAddr,
    running: &mpsc::Sender<()>,
) {
    state.stats.total_connections.fetch_add(1, Relaxed);
    let (maxclients, protected, keepalive) = {
        let config = state.config.read();
        let server = &config.config.server;
        (
            server.maxclients,
            server.protected_mode && server.requirepass.is_empty(),
            server.tcp_keepalive,
        )
    };
    let _ = stream.set_nodelay(true);
    if keepalive > 0 {
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(keepalive));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    }
    let refusal = if state.clients.count() as u64 >= maxclients {
        Some(error::MAX_CLIENTS)
    } else if protected && !peer.ip().is_loopback() {
        Some(error::DENIED_PROTECTED_MODE)
    } else {
        None
    };
    if let Some(text) = refusal {
        state.stats.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream.write_all(format!("-{text}\r\n").as_bytes()).await;
        return;
    }
    let local = stream.local_addr().unwrap_or(peer);
    let client = state.clients.register(peer, local);
    tokio::spawn(connection::serve(
        state.clone(),
        stream,
        client,
        state.shutdown_signal(),
        running.clone(),
    ));
}

async fn housekeeping(state: Arc<ServerState>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The sweep reads and deletes sled records: off the async workers.
        let worker = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            worker.keyspace.sweep_expired();
            if let Some(warm) = worker.keyspace.warm() {
                warm.refresh_disk();
            }
        })
        .await;
        state.stats.sample_ops();
    }
}
