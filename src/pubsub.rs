//! Pub/sub: the registry of channel, pattern and shard-channel subscriptions,
//! every subscriber's mailbox of messages not yet written to its socket
//! (bounded by `client-output-buffer-limit pubsub`), and keyspace
//! notifications (`notify-keyspace-events`).
//!
//! A publisher never waits for a subscriber: it appends a frame to each
//! subscriber's mailbox and wakes its connection task, which writes the
//! frames as soon as its socket takes them. A subscriber that lets its
//! pending bytes pass the hard limit, or stay over the soft limit for the
//! soft seconds, is disconnected and its mailbox emptied, as Redis does.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clients::ClientHandle;
use crate::protocol::Reply;

/// The three subscription namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    /// SSUBSCRIBE's shard channels: without a cluster, plain channels kept apart.
    Shard,
}

impl Kind {
    fn subscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    fn unsubscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }
}

/// One frame waiting in a mailbox; turned into a push reply when written.
#[derive(Debug)]
enum Frame {
    Message {
        word: &'static [u8],
        channel: Bytes,
        payload: Bytes,
    },
    PatternMessage {
        pattern: Bytes,
        channel: Bytes,
        payload: Bytes,
    },
    Confirm {
        word: &'static [u8],
        name: Option<Bytes>,
        count: usize,
    },
}

impl Frame {
    fn into_reply(self) -> Reply {
        let word = |w: &'static [u8]| Reply::Bulk(Bytes::from_static(w));
        Reply::Push(match self {
            Frame::Message {
                word: w,
                channel,
                payload,
            } => vec![word(w), Reply::Bulk(channel), Reply::Bulk(payload)],
            Frame::PatternMessage {
                pattern,
                channel,
                payload,
            } => vec![
                word(b"pmessage"),
                Reply::Bulk(pattern),
                Reply::Bulk(channel),
                Reply::Bulk(payload),
            ],
            Frame::Confirm {
                word: w,
                name,
                count,
            } => vec![word(w), Reply::opt_bulk(name), Reply::Int(count as i64)],
        })
    }

    /// What the frame costs while it waits: its bytes on the wire plus the
    /// mailbox slot and array headers, so a flood of tiny messages is
    /// bounded too.
    fn cost(&self) -> u64 {
        let parts = match self {
            Frame::Message {
                channel, payload, ..
            } => channel.len() + payload.len() + 16,
            Frame::PatternMessage {
                pattern,
                channel,
                payload,
            } => pattern.len() + channel.len() + payload.len() + 24,
            Frame::Confirm { name, .. } => name.as_ref().map_or(0, Bytes::len) + 24,
        };
        (parts + std::mem::size_of::<Frame>() + 48) as u64
    }
}

/// A client's frames not yet written and its subscription counts. Lives in
/// the client's [`ClientHandle`], so a publisher reaches it without a lookup.
#[derive(Default)]
pub struct Mailbox {
    queue: Mutex<VecDeque<(Frame, u64)>>,
    /// Bytes queued plus bytes taken by the connection and not yet written.
    pending: AtomicU64,
    /// Unix ms when `pending` was first seen over the soft limit (0: under it).
    soft_since_ms: AtomicU64,
    /// Over a limit: the client is being disconnected and takes nothing more.
    closed: AtomicBool,
    ready: Notify,
    channels: AtomicUsize,
    patterns: AtomicUsize,
    shard_channels: AtomicUsize,
}

impl Mailbox {
    /// Whether the client has any subscription (Redis's `CLIENT_PUBSUB`).
    pub fn subscribed(&self) -> bool {
        self.channels.load(Relaxed)
            + self.patterns.load(Relaxed)
            + self.shard_channels.load(Relaxed)
            > 0
    }

    /// (channels, patterns, shard channels): CLIENT LIST's sub, psub and ssub.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.channels.load(Relaxed),
            self.patterns.load(Relaxed),
            self.shard_channels.load(Relaxed),
        )
    }

    /// Frames waiting and their bytes (CLIENT LIST's oll and omem).
    pub fn backlog(&self) -> (usize, u64) {
        (self.queue.lock().len(), self.pending.load(Relaxed))
    }

    /// Resolves when frames may be waiting (possibly spuriously).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Hands every waiting frame to `out`; returns their cost, which the
    /// caller gives back through [`Mailbox::written`] once it is written.
    pub fn drain(&self, mut out: impl FnMut(Reply)) -> u64 {
        if self.pending.load(Relaxed) == 0 {
            return 0;
        }
        let frames = std::mem::take(&mut *self.queue.lock());
        let mut cost = 0;
        for (frame, size) in frames {
            cost += size;
            out(frame.into_reply());
        }
        cost
    }

    /// The connection wrote frames that cost `cost`.
    pub fn written(&self, cost: u64) {
        if cost > 0 {
            let _ = self
                .pending
                .fetch_update(Relaxed, Relaxed, |p| Some(p.saturating_sub(cost)));
        }
    }

    /// The client's own confirmations: never refused, never over a limit.
    fn push_own(&self, frame: Frame) {
        let cost = frame.cost();
        self.pending.fetch_add(cost, Relaxed);
        self.queue.lock().push_back((frame, cost));
        self.ready.notify_one();
    }

    /// Queues a message for the client unless that passes `limit`; then the
    /// client is disconnected and false returned.
    fn push(&self, frame: Frame, limit: OutputLimit, now_ms: u64) -> bool {
        if self.closed.load(Relaxed) {
            return false;
        }
        let cost = frame.cost();
        let pending = self.pending.fetch_add(cost, Relaxed) + cost;
        if limit.exceeded(pending, &self.soft_since_ms, now_ms) {
            self.closed.store(true, Relaxed);
            // Free what waits now: the connection may be stuck in a write.
            let dropped = std::mem::take(&mut *self.queue.lock());
            self.pending.fetch_sub(cost, Relaxed);
            self.written(dropped.iter().map(|(_, c)| c).sum());
            return false;
        }
        self.queue.lock().push_back((frame, cost));
        self.ready.notify_one();
        true
    }
}

/// One class of `client-output-buffer-limit` (0 = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

impl OutputLimit {
    /// Redis's `checkClientOutputBufferLimits`: over the hard limit, or over
    /// the soft limit for longer than the soft seconds. `soft_since` keeps
    /// when the soft limit was first passed.
    fn exceeded(self, pending: u64, soft_since: &AtomicU64, now_ms: u64) -> bool {
        let hard = self.hard > 0 && pending >= self.hard;
        let mut soft = self.soft > 0 && pending >= self.soft;
        if soft {
            let since = soft_since.load(Relaxed);
            if since == 0 {
                soft_since.store(now_ms.max(1), Relaxed);
                soft = false;
            } else if now_ms.saturating_sub(since) <= self.soft_seconds * 1000 {
                soft = false;
            }
        } else {
            soft_since.store(0, Relaxed);
        }
        hard || soft
    }
}

type Subscribers = BTreeMap<u64, Arc<ClientHandle>>;

#[derive(Default)]
struct ClientSubs {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard: BTreeSet<Bytes>,
}

impl ClientSubs {
    fn set(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }
}

#[derive(Default)]
struct Registry {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, Subscribers>,
    shard: HashMap<Bytes, Subscribers>,
    clients: HashMap<u64, ClientSubs>,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    fn map_ref(&self, kind: Kind) -> &HashMap<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    fn active(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard.len()
    }

    /// Drops one subscription; false if the client did not have it.
    fn remove(&mut self, client: &ClientHandle, kind: Kind, name: &[u8]) -> bool {
        let Some(subs) = self.clients.get_mut(&client.id) else {
            return false;
        };
        if !subs.set(kind).remove(name) {
            return false;
        }
        let map = self.map(kind);
        if let Some(subscribers) = map.get_mut(name) {
            subscribers.remove(&client.id);
            if subscribers.is_empty() {
                map.remove(name);
            }
        }
        counter(&client.mailbox, kind).fetch_sub(1, Relaxed);
        true
    }
}

fn counter(mailbox: &Mailbox, kind: Kind) -> &AtomicUsize {
    match kind {
        Kind::Channel => &mailbox.channels,
        Kind::Pattern => &mailbox.patterns,
        Kind::Shard => &mailbox.shard_channels,
    }
}

/// The count a confirmation carries: channels and patterns together, shard
/// channels on their own (as Redis).
fn confirmation_count(mailbox: &Mailbox, kind: Kind) -> usize {
    match kind {
        Kind::Shard => mailbox.shard_channels.load(Relaxed),
        _ => mailbox.channels.load(Relaxed) + mailbox.patterns.load(Relaxed),
    }
}

/// The server's subscriptions and notification settings.
#[derive(Default)]
pub struct PubSub {
    registry: Mutex<Registry>,
    /// Channels, patterns and shard channels with a subscriber: at 0 a
    /// publish or a notification returns before taking the lock.
    active: AtomicUsize,
    notify_flags: AtomicU32,
    limit_hard: AtomicU64,
    limit_soft: AtomicU64,
    limit_soft_seconds: AtomicU64,
    /// Subscribers disconnected for passing their output limit.
    pub limit_disconnections: AtomicU64,
}

impl PubSub {
    pub fn set_output_limit(&self, limit: OutputLimit) {
        self.limit_hard.store(limit.hard, Relaxed);
        self.limit_soft.store(limit.soft, Relaxed);
        self.limit_soft_seconds.store(limit.soft_seconds, Relaxed);
    }

    fn output_limit(&self) -> OutputLimit {
        OutputLimit {
            hard: self.limit_hard.load(Relaxed),
            soft: self.limit_soft.load(Relaxed),
            soft_seconds: self.limit_soft_seconds.load(Relaxed),
        }
    }

    pub fn set_notify_flags(&self, flags: u32) {
        self.notify_flags.store(flags, Relaxed);
    }

    /// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE: one confirmation per name, in
    /// the client's mailbox, queued under the registry lock so no message
    /// published to a new channel can overtake its confirmation.
    pub fn subscribe(&self, client: &Arc<ClientHandle>, kind: Kind, names: &[Bytes]) {
        let mut registry = self.registry.lock();
        for name in names {
            // Kept for as long as the subscription: a copy, never a slice
            // of the client's read buffer, which it would pin.
            let name = Bytes::copy_from_slice(name);
            let subs = registry.clients.entry(client.id).or_default();
            if subs.set(kind).insert(name.clone()) {
                registry
                    .map(kind)
                    .entry(name.clone())
                    .or_default()
                    .insert(client.id, client.clone());
                counter(&client.mailbox, kind).fetch_add(1, Relaxed);
            }
            client.mailbox.push_own(Frame::Confirm {
                word: kind.subscribe_word(),
                name: Some(name),
                count: confirmation_count(&client.mailbox, kind),
            });
        }
        self.active.store(registry.active(), Relaxed);
    }

    /// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE: the names given, or every
    /// subscription of that kind; with none at all one confirmation with a
    /// nil name.
    pub fn unsubscribe(&self, client: &ClientHandle, kind: Kind, names: &[Bytes]) {
        let mut registry = self.registry.lock();
        let names: Vec<Bytes> = if names.is_empty() {
            registry
                .clients
                .get_mut(&client.id)
                .map(|subs| subs.set(kind).iter().cloned().collect())
                .unwrap_or_default()
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            client.mailbox.push_own(Frame::Confirm {
                word: kind.unsubscribe_word(),
                name: None,
                count: confirmation_count(&client.mailbox, kind),
            });
        }
        for name in names {
            registry.remove(client, kind, &name);
            client.mailbox.push_own(Frame::Confirm {
                word: kind.unsubscribe_word(),
                name: Some(name),
                count: confirmation_count(&client.mailbox, kind),
            });
        }
        self.forget_if_idle(&mut registry, client.id);
        self.active.store(registry.active(), Relaxed);
    }

    /// Drops every subscription of a client without confirmations (RESET,
    /// and a connection's end).
    pub fn remove_client(&self, client: &ClientHandle) {
        if !client.mailbox.subscribed() {
            return;
        }
        let mut registry = self.registry.lock();
        if let Some(mut subs) = registry.clients.remove(&client.id) {
            for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
                let map = registry.map(kind);
                for name in std::mem::take(subs.set(kind)) {
                    if let Some(subscribers) = map.get_mut(&name) {
                        subscribers.remove(&client.id);
                        if subscribers.is_empty() {
                            map.remove(&name);
                        }
                    }
                }
                counter(&client.mailbox, kind).store(0, Relaxed);
            }
        }
        self.active.store(registry.active(), Relaxed);
    }

    fn forget_if_idle(&self, registry: &mut Registry, id: u64) {
        let idle = registry.clients.get(&id).is_some_and(|subs| {
            subs.channels.is_empty() && subs.patterns.is_empty() && subs.shard.is_empty()
        });
        if idle {
            registry.clients.remove(&id);
        }
    }

    /// PUBLISH (`Kind::Channel`) or SPUBLISH (`Kind::Shard`): the number of
    /// clients that got the message, pattern subscribers included.
    pub fn publish(&self, kind: Kind, channel: &[u8], message: &[u8]) -> usize {
        if self.active.load(Relaxed) == 0 {
            return 0;
        }
        let registry = self.registry.lock();
        let direct = registry.map_ref(kind).get(channel);
        let patterns = kind == Kind::Channel && !registry.patterns.is_empty();
        if direct.is_none() && !patterns {
            return 0;
        }
        // One copy shared by every subscriber; never a slice of the
        // publisher's read buffer, which a slow subscriber would pin.
        let channel = Bytes::copy_from_slice(channel);
        let payload = Bytes::copy_from_slice(message);
        let limit = self.output_limit();
        let now = crate::keyspace::now_ms();
        let mut receivers = 0;
        let word: &'static [u8] = if kind == Kind::Shard {
            b"smessage"
        } else {
            b"message"
        };
        for client in direct.into_iter().flat_map(BTreeMap::values) {
            let frame = Frame::Message {
                word,
                channel: channel.clone(),
                payload: payload.clone(),
            };
            self.deliver(client, frame, limit, now);
            receivers += 1;
        }
        if patterns {
            for (pattern, clients) in &registry.patterns {
                if !crate::glob::matches(pattern, &channel, false) {
                    continue;
                }
                for client in clients.values() {
                    let frame = Frame::PatternMessage {
                        pattern: pattern.clone(),
                        channel: channel.clone(),
                        payload: payload.clone(),
                    };
                    self.deliver(client, frame, limit, now);
                    receivers += 1;
                }
            }
        }
        receivers
    }

    fn deliver(&self, client: &ClientHandle, frame: Frame, limit: OutputLimit, now_ms: u64) {
        if client.mailbox.push(frame, limit, now_ms) || client.is_killed() {
            return;
        }
        self.limit_disconnections.fetch_add(1, Relaxed);
        tracing::warn!(
            client = client.id,
            addr = %client.peer,
            "Client scheduled to be closed ASAP for overcoming of output buffer limits."
        );
        client.kill();
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: active channels matching `pattern`.
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let registry = self.registry.lock();
        let mut names: Vec<Bytes> = registry
            .map_ref(kind)
            .keys()
            .filter(|name| pattern.is_none_or(|p| crate::glob::matches(p, name, false)))
            .cloned()
            .collect();
        names.sort_unstable();
        names
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers of each channel, patterns not counted.
    pub fn numsub(&self, kind: Kind, names: &[Bytes]) -> Vec<usize> {
        let registry = self.registry.lock();
        let map = registry.map_ref(kind);
        names
            .iter()
            .map(|name| map.get(name).map_or(0, BTreeMap::len))
            .collect()
    }

    /// (channels, patterns, shard channels) with at least one subscriber:
    /// PUBSUB NUMPAT and INFO's `pubsub_*` fields.
    pub fn totals(&self) -> (usize, usize, usize) {
        let registry = self.registry.lock();
        (
            registry.channels.len(),
            registry.patterns.len(),
            registry.shard.len(),
        )
    }

    /// Redis's `notifyKeyspaceEvent`: publishes `event` on
    /// `__keyspace@<db>__:<key>` and `key` on `__keyevent@<db>__:<event>`,
    /// when `notify-keyspace-events` enables the event's class.
    pub fn notify(&self, class: u32, event: &str, db: usize, key: &[u8]) {
        let flags = self.notify_flags.load(Relaxed);
        if flags & class == 0 || self.active.load(Relaxed) == 0 {
            return;
        }
        if flags & notify::KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(key);
            self.publish(Kind::Channel, &channel, event.as_bytes());
        }
        if flags & notify::KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{event}");
            self.publish(Kind::Channel, channel.as_bytes(), key);
        }
    }
}

/// `notify-keyspace-events` classes, with Redis's bit values, and strata's
/// own `T` (tier events).
pub mod notify {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const MODULE: u32 = 1 << 13;
    pub const NEW: u32 = 1 << 14;
    /// strata only: a key moved between memory and the warm tier.
    pub const TIER: u32 = 1 << 20;
    /// Redis's `A`: `n`, `m` and strata's `T` stay apart, as they are noisy.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

    /// Redis's `keyspaceEventsStringToFlags`; `None` for a character that
    /// names no class.
    pub fn parse(classes: &str) -> Option<u32> {
        let mut flags = 0;
        for c in classes.chars() {
            flags |= match c {
                'A' => ALL,
                'g' => GENERIC,
                '$' => STRING,
                'l' => LIST,
                's' => SET,
                'h' => HASH,
                'z' => ZSET,
                'x' => EXPIRED,
                'e' => EVICTED,
                'K' => KEYSPACE,
                'E' => KEYEVENT,
                't' => STREAM,
                'm' => KEY_MISS,
                'd' => MODULE,
                'n' => NEW,
                'T' => TIER,
                _ => return None,
            };
        }
        Some(flags)
    }

    /// Redis's `keyspaceEventsFlagsToString` (so `n` is not shown beside
    /// `A`, as in Redis), with `T` after the classes.
    pub fn to_string(flags: u32) -> String {
        let mut out = String::new();
        if flags & ALL == ALL {
            out.push('A');
        } else {
            let classes = [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
                (MODULE, 'd'),
                (NEW, 'n'),
            ];
            out.extend(
                classes
                    .iter()
                    .filter(|(bit, _)| flags & bit != 0)
                    .map(|(_, c)| c),
            );
        }
        if flags & TIER != 0 {
            out.push('T');
        }
        for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if flags & bit != 0 {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_as_redis_prints_them() {
        assert_eq!(notify::parse(""), Some(0));
        assert_eq!(
            notify::parse("KEA").map(notify::to_string).as_deref(),
            Some("AKE")
        );
        assert_eq!(
            notify::parse("KEg$").map(notify::to_string).as_deref(),
            Some("g$KE")
        );
        assert_eq!(
            notify::parse("Exgn").map(notify::to_string).as_deref(),
            Some("gxnE")
        );
        // As Redis: `A` hides `n`.
        assert_eq!(
            notify::parse("AnK").map(notify::to_string).as_deref(),
            Some("AK")
        );
        assert_eq!(
            notify::parse("KT").map(notify::to_string).as_deref(),
            Some("TK")
        );
        assert_eq!(
            notify::parse("Em").map(notify::to_string).as_deref(),
            Some("Em")
        );
        assert_eq!(notify::parse("Q"), None);
        assert_eq!(notify::parse("K E"), None);
    }

    #[test]
    fn soft_limit_needs_its_seconds() {
        let limit = OutputLimit {
            hard: 1000,
            soft: 100,
            soft_seconds: 2,
        };
        let since = AtomicU64::new(0);
        assert!(!limit.exceeded(50, &since, 10_000));
        assert!(!limit.exceeded(150, &since, 10_000));
        assert!(!limit.exceeded(150, &since, 12_000));
        assert!(limit.exceeded(150, &since, 12_001));
        // Back under the soft limit resets the clock.
        assert!(!limit.exceeded(50, &since, 13_000));
        assert!(!limit.exceeded(150, &since, 13_000));
        assert!(limit.exceeded(1000, &since, 13_000));
    }
}
