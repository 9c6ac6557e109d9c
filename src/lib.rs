//! strata: a cache server that speaks the Redis protocol.
//!
//! The layers, and the one direction data flows through them:
//!
//! ```text
//! socket ─▶ server     accept loop, connection limits, one task per connection, shutdown
//!        ─▶ protocol   RESP2/RESP3 + inline decoding into argument vectors
//!        ─▶ cmd        command table → dispatcher (arity, auth, stats) → family handlers
//!        ─▶ keyspace   typed values, expiry, hot tier (the only API commands see)
//!        ─▶ source     the PostgreSQL source of truth: load, ship, LISTEN
//!        ◀─ protocol   the handler's Reply, encoded for the connection's RESP version
//! ```
//!
//! [`app::App`] composes them; `main.rs`, the integration tests and the
//! benches all start the server through it.

pub mod app;
pub mod blocking;
pub mod bridge;
pub mod clients;
pub mod cmd;
pub mod config;
pub mod error;
pub mod glob;
pub mod keyspace;
pub mod metrics;
pub mod protocol;
pub mod pubsub;
pub mod server;
pub mod source;
pub mod state;
