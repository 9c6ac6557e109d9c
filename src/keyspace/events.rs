//! Events that start inside the keyspace rather than in a command: a key
//! expired (lazily or in the sweep), left memory (for the warm tier, or for
//! good), or came back from disk. The keyspace reports each at the one spot
//! where it is known to a sink the server installs (keyspace notifications);
//! without a sink the cost is one relaxed load.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use parking_lot::RwLock;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Its deadline passed and it was removed (Redis's `expired`).
    Expired,
    /// Removed for good to respect a bound (Redis's `evicted`).
    Evicted,
    /// Dropped from memory; the warm tier still holds it.
    EvictedToDisk,
    /// Read from the warm tier back into memory.
    Loaded,
}

/// One event; the key is borrowed from the keyspace for the call's duration.
#[derive(Debug, Clone, Copy)]
pub struct KeyspaceEvent<'a> {
    pub kind: EventKind,
    pub db: usize,
    pub key: &'a [u8],
}

/// Receives events while the key's shard lock is held: it must not call
/// back into the keyspace.
pub type EventSink = Box<dyn Fn(KeyspaceEvent<'_>) + Send + Sync>;

#[derive(Default)]
pub(super) struct EventHook {
    installed: AtomicBool,
    sink: RwLock<Option<EventSink>>,
}

impl EventHook {
    #[inline]
    pub(super) fn emit(&self, kind: EventKind, db: usize, key: &[u8]) {
        if !self.installed.load(Relaxed) {
            return;
        }
        if let Some(sink) = self.sink.read().as_ref() {
            sink(KeyspaceEvent { kind, db, key });
        }
    }
}

impl super::Keyspace {
    /// Installs (or replaces) the receiver of keyspace-originated events.
    pub fn set_event_sink(&self, sink: EventSink) {
        *self.events.sink.write() = Some(sink);
        self.events.installed.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use parking_lot::Mutex;

    use super::super::{now_ms, Keyspace, ReadOptions, Value};
    use super::EventKind;

    #[test]
    fn lazy_and_swept_expiry_reach_the_sink() {
        let ks = Keyspace::new(1);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        ks.set_event_sink(Box::new(move |event| {
            sink.lock().push((event.kind, event.db, event.key.to_vec()));
        }));
        let past = Some(now_ms() - 1);
        for key in ["lazy", "swept"] {
            ks.write(0, key.as_bytes(), |txn| {
                txn.insert(0, Value::Str(Bytes::from_static(b"v")), past)
            });
        }
        ks.read(0, b"lazy", ReadOptions::default(), |entry| {
            assert!(entry.is_none())
        });
        assert_eq!(ks.sweep_expired(), 1);
        assert_eq!(
            *seen.lock(),
            vec![
                (EventKind::Expired, 0, b"lazy".to_vec()),
                (EventKind::Expired, 0, b"swept".to_vec()),
            ]
        );
    }
}
