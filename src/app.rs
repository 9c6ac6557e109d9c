//! The composition root: builds the shared state from a [`Config`], binds the
//! listeners and runs the server. `main.rs`, the integration tests and the
//! benches all start strata through [`App::start`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::config::Config;
use crate::state::ServerState;

pub struct App {
    state: Arc<ServerState>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl App {
    /// Binds and starts serving in the background; returns once the
    /// listeners accept connections.
    pub async fn start(config: Config) -> Result<App, String> {
        config.validate()?;
        let listeners = crate::server::bind(&config.server.bind, config.server.port).await?;
        let addr = listeners[0]
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        // Opening sled reads the disk: off the async workers.
        let state = tokio::task::spawn_blocking(move || {
            let state = ServerState::open(config, crate::cmd::command_count())?;
            crate::bridge::Bridge::drop_stale_copies(&state);
            Ok::<_, String>(state)
        })
        .await
        .map_err(|e| format!("cannot open the keyspace: {e}"))??;
        let state = Arc::new(state);
        if let Some(bridge) = crate::bridge::Bridge::start(&state)? {
            let _ = state.bridge.set(bridge);
        }
        state
            .port
            .store(addr.port() as usize, std::sync::atomic::Ordering::Relaxed);
        let serving = state.clone();
        let task = tokio::spawn(async move {
            crate::server::serve(serving.clone(), listeners).await;
            // Every connection has finished: flush the warm tier and mark
            // it cleanly closed, off the async workers.
            let _ = tokio::task::spawn_blocking(move || serving.keyspace.close()).await;
        });
        Ok(App { state, addr, task })
    }

    /// The first bound address (with the real port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// Resolves when the server has stopped (SHUTDOWN or [`App::shutdown`])
    /// and every connection has finished.
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stops accepting, lets connections finish their batch, and waits.
    pub async fn shutdown(self) {
        self.state.request_shutdown();
        self.wait().await;
    }
}
