//! Shared test harness: an in-process strata on port 0 and real clients.
#![allow(dead_code)]

use std::net::SocketAddr;

use strata::app::App;
use strata::config::Config;

pub struct TestServer {
    pub app: App,
    pub addr: SocketAddr,
}

/// A server on 127.0.0.1 with an ephemeral port and default settings.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// A server whose config `tweak` adjusts first.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config::default();
    config.server.bind = vec!["127.0.0.1".into()];
    config.server.port = 0;
    tweak(&mut config);
    let app = App::start(config).await.expect("server starts");
    let addr = app.local_addr();
    TestServer { app, addr }
}

impl TestServer {
    pub fn url(&self, resp3: bool) -> String {
        if resp3 {
            format!("redis://{}/?protocol=resp3", self.addr)
        } else {
            format!("redis://{}/", self.addr)
        }
    }

    /// A `redis` crate async connection speaking RESP2 or RESP3.
    pub async fn client(&self, resp3: bool) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url(resp3))
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
            .expect("connects")
    }
}
