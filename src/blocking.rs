//! Clients blocked on keys (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, ...).
//!
//! A blocked client registers a [`Waiter`] under each of its keys, in
//! arrival order. When a command stores a list or sorted set under a key
//! while clients are blocked, the keyspace marks the key ready; once that
//! command has finished, the dispatcher calls [`serve_ready`], which offers
//! the key to its waiters first come, first served, as Redis's
//! `handleClientsBlockedOnKeys` does: each waiter's own operation runs
//! there (the pop happens in the pushing client's turn, so no other command
//! can take the element first), and its reply travels to the blocked
//! connection through a channel.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::keyspace::Keyspace;
use crate::protocol::Reply;
use crate::state::ServerState;

/// A waiter's operation on one ready key: `Ok(Some(reply))` when it
/// served the client, `Ok(None)` when the key had nothing for it, `Err`
/// for an error reply (a key of the wrong type).
pub type Serve = Box<dyn FnMut(&ServerState, usize, &[u8]) -> Result<Option<Reply>, Reply> + Send>;

pub struct Waiter {
    /// The waiting connection's id (CLIENT UNBLOCK names it).
    client: u64,
    db: usize,
    keys: Vec<Bytes>,
    state: Mutex<WaiterState>,
}

struct WaiterState {
    /// `None` once served or cancelled.
    serve: Option<Serve>,
    reply: Option<oneshot::Sender<Reply>>,
    /// What the client gets when its time runs out (and from CLIENT
    /// UNBLOCK ... TIMEOUT).
    timeout_reply: Reply,
}

impl Waiter {
    /// Runs the operation on `key` if the waiter is still waiting; true
    /// when that served it.
    fn offer(&self, server: &ServerState, key: &[u8]) -> bool {
        let mut state = self.state.lock();
        let Some(serve) = state.serve.as_mut() else {
            return false;
        };
        match serve(server, self.db, key) {
            Ok(Some(reply)) => {
                state.serve = None;
                if let Some(sender) = state.reply.take() {
                    let _ = sender.send(reply);
                }
                true
            }
            Ok(None) | Err(_) => false,
        }
    }

    fn is_done(&self) -> bool {
        self.state.lock().serve.is_none()
    }
}

/// What a blocked connection holds while it waits.
pub struct Blocked {
    pub waiter: Arc<Waiter>,
    pub reply: oneshot::Receiver<Reply>,
    /// `None`: wait for ever (timeout 0).
    pub deadline: Option<tokio::time::Instant>,
    /// The reply when the time runs out.
    pub timeout_reply: Reply,
}

/// What [`Registry::block`] came to.
pub enum Block {
    /// The operation succeeded on the last check: reply now.
    Served(Reply),
    Waiting(Blocked),
}

/// The waiters of each (database, key), in arrival order.
type Queues = HashMap<(usize, Bytes), VecDeque<Arc<Waiter>>>;

#[derive(Default)]
pub struct Registry {
    queues: Mutex<Queues>,
}

impl Registry {
    /// Blocks a client on `keys` of `db`. Before it waits, the operation
    /// is offered every key once more: an element pushed between the
    /// caller's first attempt and the registration is not missed. Returns
    /// the reply at once when that served it.
    #[allow(clippy::too_many_arguments)]
    pub fn block(
        &self,
        state: &ServerState,
        client: u64,
        db: usize,
        keys: &[Bytes],
        serve: Serve,
        deadline: Option<tokio::time::Instant>,
        timeout_reply: Reply,
    ) -> Block {
        let (sender, receiver) = oneshot::channel();
        let waiter = Arc::new(Waiter {
            client,
            db,
            keys: keys.to_vec(),
            state: Mutex::new(WaiterState {
                serve: Some(serve),
                reply: Some(sender),
                timeout_reply: timeout_reply.clone(),
            }),
        });
        {
            let mut queues = self.queues.lock();
            for key in &waiter.keys {
                queues
                    .entry((db, key.clone()))
                    .or_default()
                    .push_back(waiter.clone());
            }
        }
        let keyspace = &state.keyspace;
        keyspace.set_blocked(true);
        let mut blocked = Blocked {
            waiter,
            reply: receiver,
            deadline,
            timeout_reply,
        };
        for key in keys {
            if blocked.waiter.offer(state, key) {
                self.release(keyspace, &blocked.waiter);
                return Block::Served(blocked.reply.try_recv().unwrap_or(Reply::NilArray));
            }
        }
        Block::Waiting(blocked)
    }

    /// Stops waiting (timeout, disconnect). False when the waiter was
    /// served meanwhile: its reply is in the channel.
    pub fn cancel(&self, keyspace: &Keyspace, waiter: &Arc<Waiter>) -> bool {
        let cancelled = waiter.state.lock().serve.take().is_some();
        if cancelled {
            self.release(keyspace, waiter);
        }
        cancelled
    }

    /// CLIENT UNBLOCK: ends the wait of `client` with its timeout reply,
    /// or with Redis's UNBLOCKED error. False when it is not waiting.
    pub fn unblock(&self, keyspace: &Keyspace, client: u64, with_error: bool) -> bool {
        let waiter = self
            .queues
            .lock()
            .values()
            .flat_map(|queue| queue.iter())
            .find(|waiter| waiter.client == client)
            .cloned();
        let Some(waiter) = waiter else {
            return false;
        };
        {
            let mut state = waiter.state.lock();
            if state.serve.take().is_none() {
                return false;
            }
            let reply = if with_error {
                Reply::StaticError(UNBLOCKED)
            } else {
                std::mem::replace(&mut state.timeout_reply, Reply::NilArray)
            };
            if let Some(sender) = state.reply.take() {
                let _ = sender.send(reply);
            }
        }
        self.release(keyspace, &waiter);
        true
    }

    /// Removes a waiter that is no longer waiting from every queue.
    fn release(&self, keyspace: &Keyspace, waiter: &Arc<Waiter>) {
        let mut queues = self.queues.lock();
        let mut found = false;
        for key in &waiter.keys {
            let slot = (waiter.db, key.clone());
            if let Some(queue) = queues.get_mut(&slot) {
                let before = queue.len();
                queue.retain(|w| !Arc::ptr_eq(w, waiter));
                found |= queue.len() != before;
                if queue.is_empty() {
                    queues.remove(&slot);
                }
            }
        }
        if found {
            keyspace.set_blocked(false);
        }
    }

    /// Marks every key a client waits on in these databases ready, so the
    /// next [`Registry::serve_ready`] offers them what SWAPDB brought in
    /// (Redis's `scanDatabaseForReadyKeys`).
    pub fn mark_waited_keys_ready(&self, keyspace: &Keyspace, dbs: &[usize]) {
        let queues = self.queues.lock();
        for (db, key) in queues.keys() {
            if dbs.contains(db) {
                keyspace.mark_ready(*db, key);
            }
        }
    }

    /// Number of clients waiting (INFO `blocked_clients`).
    pub fn blocked_count(&self) -> usize {
        let queues = self.queues.lock();
        let mut seen: Vec<*const Waiter> = queues
            .values()
            .flat_map(|q| q.iter().map(Arc::as_ptr))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// Offers every ready key to its waiters, in arrival order, until the
    /// key has nothing more for them; serving may make more keys ready
    /// (BLMOVE's destination), which are served in turn.
    pub fn serve_ready(&self, state: &ServerState) {
        let keyspace = &state.keyspace;
        loop {
            let ready = keyspace.take_ready_keys();
            if ready.is_empty() {
                return;
            }
            for (db, key) in ready {
                let waiters: Vec<Arc<Waiter>> = match self.queues.lock().get(&(db, key.clone())) {
                    Some(queue) => queue.iter().cloned().collect(),
                    None => continue,
                };
                for waiter in waiters {
                    if waiter.is_done() {
                        continue;
                    }
                    if waiter.offer(state, &key) {
                        self.release(keyspace, &waiter);
                    }
                }
            }
        }
    }
}

const UNBLOCKED: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";

/// Parses a blocking command's timeout (seconds, fractions allowed) as
/// Redis's `getTimeoutFromObjectOrReply`: `None` waits for ever.
pub fn parse_timeout(raw: &[u8]) -> Result<Option<std::time::Duration>, Reply> {
    use crate::error;
    let seconds =
        crate::cmd::parse_float(raw).map_err(|_| Reply::StaticError(error::TIMEOUT_NOT_FLOAT))?;
    let millis = (seconds * 1000.0).ceil();
    // Redis converts to a 64-bit integer, where x86 turns what does not
    // fit (infinity included) into the most negative one.
    if !(0.0..=i64::MAX as f64).contains(&millis) {
        return Err(Reply::StaticError(error::TIMEOUT_NEGATIVE));
    }
    Ok((millis > 0.0).then(|| std::time::Duration::from_millis(millis as u64)))
}
