//! The server-wide pub/sub registry: which clients listen on which channels,
//! patterns and shard channels, and the delivery of published messages.
//!
//! A subscriber is its [`ClientInfo`]: a delivery copies the message's frame
//! into the client's push queue (`ClientInfo::queue_push`), as Redis appends
//! to a client's output buffer, and wakes its connection only when the queue
//! was empty, so a batch of PUBLISHes costs each subscriber one wake-up. The
//! queue is counted with the client's output: a delivery that takes a
//! subscriber past its `client-output-buffer-limit` closes the client instead
//! of queueing more, as Redis closes a client whose output buffer grew past
//! the limit. The connection writes the queue in order with its replies and
//! takes its size off the count. A message's frame is encoded once per
//! PUBLISH (RESP2 bytes; RESP3's push differs in its first byte only), and a
//! client's PUBLISH hands it over without copying the subscriber list.
//!
//! What this is not for: the command handlers and the frames' names are in
//! `commands/pubsub.rs`; a session's own list of subscriptions is
//! [`Subscriptions`], which the registry mirrors.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::commands::keys::glob_match;
use crate::config::OutputLimit;
use crate::reply::push_frame;
use crate::session::{ClientInfo, PushQueued};

/// What a client subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A channel (SUBSCRIBE, PUBLISH).
    Channel = 0,
    /// A glob pattern over channel names (PSUBSCRIBE).
    Pattern = 1,
    /// A shard channel (SSUBSCRIBE, SPUBLISH).
    Shard = 2,
}

/// One listening client.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Its shared info: id, push queue, output accounting, kill switch.
    pub info: Arc<ClientInfo>,
}

/// Listeners by name (channel or pattern), each by client id.
type Listeners = HashMap<Bytes, HashMap<u64, Subscriber>>;

/// Every subscription on the server.
#[derive(Debug, Default)]
pub struct PubSub {
    by_kind: [RwLock<Listeners>; 3],
    /// Subscriptions that may hear a lock-loss notice
    /// (`crate::notify::may_hear_losses`), shared with the keyspace's
    /// notifier so a lock that ends unheard costs one load.
    loss_listeners: Arc<AtomicUsize>,
}

/// A message bound for one subscriber: sent at once by a client's PUBLISH, or
/// kept by a transaction or script until it ends.
#[derive(Debug)]
pub struct Delivery {
    to: Subscriber,
    frame: Bytes,
    /// The frame's bytes in the subscriber's output accounting.
    size: usize,
}

/// A client's own subscriptions, by kind.
#[derive(Debug, Default)]
pub struct Subscriptions {
    sets: [HashSet<Bytes>; 3],
}

impl Subscriptions {
    /// How many of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.sets[kind as usize].len()
    }

    /// Channels plus patterns (the count SUBSCRIBE and PSUBSCRIBE report).
    pub fn plain(&self) -> usize {
        self.count(Kind::Channel) + self.count(Kind::Pattern)
    }

    /// Whether the client listens on anything at all.
    pub fn any(&self) -> bool {
        self.sets.iter().any(|s| !s.is_empty())
    }

    /// The names of `kind`.
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        self.sets[kind as usize].iter().cloned().collect()
    }
}

/// The size a message counts for in a client's output: its bytes as RESP2 sends
/// them, close enough for RESP3.
fn frame_size(parts: &[&[u8]]) -> usize {
    parts
        .iter()
        .map(|p| p.len().saturating_add(16))
        .fold(4, usize::saturating_add)
}

impl PubSub {
    /// An empty registry that counts its possible lock-loss listeners in
    /// `loss_listeners` (the notifier's).
    pub fn counting_losses(loss_listeners: Arc<AtomicUsize>) -> Self {
        PubSub {
            loss_listeners,
            ..PubSub::default()
        }
    }

    fn count_loss_listener(&self, kind: Kind, name: &[u8], add: bool) {
        if kind != Kind::Shard && crate::notify::may_hear_losses(kind == Kind::Pattern, name) {
            if add {
                self.loss_listeners.fetch_add(1, Ordering::Relaxed);
            } else {
                self.loss_listeners.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Adds `sub` as a listener of `name`; false if the client already was one.
    pub fn subscribe(
        &self,
        subs: &mut Subscriptions,
        kind: Kind,
        name: &Bytes,
        sub: Subscriber,
    ) -> bool {
        if !subs.sets[kind as usize].insert(name.clone()) {
            return false;
        }
        let id = sub.info.id;
        self.count_loss_listener(kind, name, true);
        sub.info.subscriptions[kind as usize].store(subs.count(kind), Ordering::Relaxed);
        self.by_kind[kind as usize]
            .write()
            .entry(name.clone())
            .or_default()
            .insert(id, sub);
        true
    }

    /// Removes client `info` as a listener of `name`; false if it was not one.
    pub fn unsubscribe(
        &self,
        subs: &mut Subscriptions,
        info: &ClientInfo,
        kind: Kind,
        name: &[u8],
    ) -> bool {
        if !subs.sets[kind as usize].remove(name) {
            return false;
        }
        self.count_loss_listener(kind, name, false);
        info.subscriptions[kind as usize].store(subs.count(kind), Ordering::Relaxed);
        let mut map = self.by_kind[kind as usize].write();
        if let Some(listeners) = map.get_mut(name) {
            listeners.remove(&info.id);
            if listeners.is_empty() {
                map.remove(name);
            }
        }
        true
    }

    /// Removes every subscription of a client (RESET, disconnect).
    pub fn leave(&self, subs: &mut Subscriptions, info: &ClientInfo) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in subs.names(kind) {
                self.unsubscribe(subs, info, kind, &name);
            }
        }
    }

    /// Visits the listeners a PUBLISH (`Kind::Channel`) or SPUBLISH
    /// (`Kind::Shard`) of `message` on `channel` reaches, with the frame each
    /// gets and its size: each channel listener, and for PUBLISH each pattern
    /// listener once per matching pattern. A frame is encoded once and shared
    /// by its receivers. The registry stays read-locked during the visit.
    pub fn publish(
        &self,
        kind: Kind,
        channel: &[u8],
        message: &[u8],
        mut visit: impl FnMut(&Subscriber, &Bytes, usize),
    ) {
        let name: &'static [u8] = if kind == Kind::Shard {
            b"smessage"
        } else {
            b"message"
        };
        if let Some(listeners) = self.by_kind[kind as usize].read().get(channel) {
            let frame = push_frame(&[name, channel, message]);
            let size = frame_size(&[name, channel, message]);
            listeners.values().for_each(|to| visit(to, &frame, size));
        }
        if kind == Kind::Channel {
            for (pattern, listeners) in self.by_kind[Kind::Pattern as usize].read().iter() {
                if !glob_match(pattern, channel) {
                    continue;
                }
                let parts: [&[u8]; 4] = [b"pmessage", pattern, channel, message];
                let frame = push_frame(&parts);
                let size = frame_size(&parts);
                listeners.values().for_each(|to| visit(to, &frame, size));
            }
        }
    }

    /// The messages a PUBLISH or SPUBLISH sends (see [`PubSub::publish`]), kept
    /// to be sent later (by a transaction or script when it ends).
    pub fn deliveries(&self, kind: Kind, channel: &[u8], message: &[u8]) -> Vec<Delivery> {
        let mut out = Vec::new();
        self.publish(kind, channel, message, |to, frame, size| {
            out.push(Delivery {
                to: to.clone(),
                frame: frame.clone(),
                size,
            })
        });
        out
    }

    /// Channels (or shard channels) with listeners whose names match `pattern`
    /// (all without one).
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.by_kind[kind as usize]
            .read()
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c)))
            .cloned()
            .collect()
    }

    /// Listeners of one channel, or of one pattern (not counting matches).
    pub fn listeners(&self, kind: Kind, name: &[u8]) -> usize {
        self.by_kind[kind as usize]
            .read()
            .get(name)
            .map_or(0, HashMap::len)
    }

    /// Every channel, pattern and shard channel client `id` listens on
    /// (ACL SETUSER checks them against the user's new channel rules).
    pub fn subscriptions_of(&self, id: u64) -> Vec<(Kind, Bytes)> {
        let mut out = Vec::new();
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for (name, listeners) in self.by_kind[kind as usize].read().iter() {
                if listeners.contains_key(&id) {
                    out.push((kind, name.clone()));
                }
            }
        }
        out
    }

    /// Distinct names of `kind` with at least one listener (`PUBSUB NUMPAT`,
    /// INFO's `pubsub_channels`).
    pub fn count(&self, kind: Kind) -> usize {
        self.by_kind[kind as usize].read().len()
    }
}

impl Delivery {
    /// A message of `size` bytes (in `to`'s output accounting) for `to`.
    pub fn new(to: Subscriber, frame: Bytes, size: usize) -> Self {
        Delivery { to, frame, size }
    }

    /// The message itself if it is for client `me` (not counted as queued
    /// output: the connection writes it with the reply), else the delivery.
    pub fn into_own(self, me: u64) -> Result<Bytes, Delivery> {
        if self.to.info.id == me {
            Ok(self.frame)
        } else {
            Err(self)
        }
    }

    /// Hands the message to its subscriber (see [`send`]).
    pub fn send(self, limit: &OutputLimit, now_ms: u64) {
        send(&self.to, self.frame, self.size, limit, now_ms);
    }

    /// Counts the message against its subscriber's output limit now, for a
    /// delivery that leaves later (when a transaction or script ends), so
    /// what waits is bounded as what is queued is: `None` when the
    /// subscriber is gone, or has just been closed for passing its limit.
    pub fn hold(self, limit: &OutputLimit, now_ms: u64) -> Option<Delivery> {
        admit(&self.to.info, self.size, limit, now_ms).then_some(self)
    }

    /// Sends a message [`Delivery::hold`] has counted.
    pub fn send_held(self) {
        self.to.info.queue_push(&self.frame, self.size);
    }
}

/// Counts `size` more bytes as queued output of client `info`; false (and
/// nothing counted) when it is gone, or when this takes it past the `pubsub`
/// class limit, which closes it.
fn admit(info: &ClientInfo, size: usize, limit: &OutputLimit, now_ms: u64) -> bool {
    if info.is_killed() {
        return false;
    }
    let queued = info.buffers.queued.fetch_add(size, Ordering::Relaxed);
    let used = info
        .buffers
        .out_pending
        .load(Ordering::Relaxed)
        .saturating_add(queued)
        .saturating_add(size);
    if limit.exceeded(used as u64, &info.buffers.soft_limit_since, now_ms) {
        info.buffers.queued.fetch_sub(size, Ordering::Relaxed);
        tracing::warn!(
            client = info.id,
            "closing client that reached its output buffer limit (pubsub class, {used} bytes)"
        );
        info.kill();
        return false;
    }
    true
}

/// Hands a message to subscriber `to`, counting its bytes as queued output; a
/// subscriber that this takes past the `pubsub` class limit is closed instead,
/// and the message dropped (its memory with it).
pub fn send(to: &Subscriber, frame: Bytes, size: usize, limit: &OutputLimit, now_ms: u64) {
    if admit(&to.info, size, limit, now_ms) {
        to.info.queue_push(&frame, size);
    }
}

/// As [`send`], from a client's own PUBLISH: a subscriber whose connection is
/// idle is added to `deferred` (once: when its queue was empty) for the
/// publisher to write at the end of its batch, instead of being woken.
/// True when the subscriber's task was woken.
pub fn send_deferred(
    to: &Subscriber,
    frame: &[u8],
    size: usize,
    limit: &OutputLimit,
    now_ms: u64,
    deferred: &mut Vec<Arc<ClientInfo>>,
) -> bool {
    if !admit(&to.info, size, limit, now_ms) {
        return false;
    }
    match to.info.queue_push_deferred(frame, size) {
        PushQueued::Deferred => {
            deferred.push(to.info.clone());
            false
        }
        PushQueued::Woken => true,
        PushQueued::Behind => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: u64) -> Subscriber {
        let info = Arc::new(ClientInfo::new(id, String::new(), String::new(), -1, 0));
        Subscriber { info }
    }

    fn written(sub: &Subscriber) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        sub.info.take_pushes(&mut out);
        out.to_vec()
    }

    #[test]
    fn a_channel_and_a_matching_pattern_each_get_the_message() {
        let ps = PubSub::default();
        let sub = client(1);
        let mut subs = Subscriptions::default();
        assert!(ps.subscribe(&mut subs, Kind::Channel, &Bytes::from("news"), sub.clone()));
        assert!(!ps.subscribe(&mut subs, Kind::Channel, &Bytes::from("news"), sub.clone()));
        assert!(ps.subscribe(&mut subs, Kind::Pattern, &Bytes::from("n*"), sub.clone()));
        let got = ps.deliveries(Kind::Channel, &Bytes::from("news"), &Bytes::from("hi"));
        assert_eq!(got.len(), 2);
        for d in got {
            d.send(&OutputLimit::default(), 1);
        }
        assert!(sub.info.buffers.queued.load(Ordering::Relaxed) > 0);
        assert_eq!(
            written(&sub),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n\
              *4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(sub.info.buffers.queued.load(Ordering::Relaxed), 0);
        // A RESP3 client's frames are pushes.
        sub.info.resp.store(3, Ordering::Relaxed);
        for d in ps.deliveries(Kind::Channel, b"news", b"hi") {
            d.send(&OutputLimit::default(), 1);
        }
        assert!(written(&sub).starts_with(b">3\r\n$7\r\nmessage"));
        ps.leave(&mut subs, &sub.info);
        assert!(!subs.any());
        assert_eq!(ps.count(Kind::Channel), 0);
        assert_eq!(ps.count(Kind::Pattern), 0);
    }

    #[test]
    fn subscriptions_that_may_hear_a_lock_loss_are_counted() {
        let counter = Arc::new(AtomicUsize::new(0));
        let ps = PubSub::counting_losses(counter.clone());
        let sub = client(3);
        let mut subs = Subscriptions::default();
        ps.subscribe(&mut subs, Kind::Channel, &Bytes::from("news"), sub.clone());
        ps.subscribe(
            &mut subs,
            Kind::Shard,
            &Bytes::from("__lock_lost__:s"),
            sub.clone(),
        );
        assert_eq!(counter.load(Ordering::Relaxed), 0);
        ps.subscribe(
            &mut subs,
            Kind::Channel,
            &Bytes::from("__lock_lost__:o"),
            sub.clone(),
        );
        ps.subscribe(
            &mut subs,
            Kind::Channel,
            &Bytes::from("__lock_lost__:o"),
            sub.clone(),
        );
        // A pattern that cannot match a loss channel does not count.
        ps.subscribe(&mut subs, Kind::Pattern, &Bytes::from("news*"), sub.clone());
        assert_eq!(counter.load(Ordering::Relaxed), 1);
        ps.subscribe(
            &mut subs,
            Kind::Pattern,
            &Bytes::from("__lock*"),
            sub.clone(),
        );
        assert_eq!(counter.load(Ordering::Relaxed), 2);
        ps.unsubscribe(&mut subs, &sub.info, Kind::Channel, b"__lock_lost__:o");
        assert_eq!(counter.load(Ordering::Relaxed), 1);
        ps.leave(&mut subs, &sub.info);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_delivery_past_the_hard_limit_closes_the_subscriber_and_drops_it() {
        let ps = PubSub::default();
        let sub = client(2);
        let mut subs = Subscriptions::default();
        ps.subscribe(&mut subs, Kind::Shard, &Bytes::from("s"), sub.clone());
        let limit = OutputLimit {
            hard: 100,
            soft: 0,
            soft_seconds: 0,
        };
        for d in ps.deliveries(
            Kind::Shard,
            &Bytes::from("s"),
            &Bytes::from(vec![b'x'; 200]),
        ) {
            d.send(&limit, 1);
        }
        assert!(sub.info.is_killed());
        assert!(written(&sub).is_empty());
        assert_eq!(sub.info.buffers.queued.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_soft_limit_closes_only_after_its_seconds() {
        let limit = OutputLimit {
            hard: 0,
            soft: 10,
            soft_seconds: 2,
        };
        let since = std::sync::atomic::AtomicU64::new(0);
        assert!(!limit.exceeded(20, &since, 1000));
        assert!(!limit.exceeded(20, &since, 3000));
        assert!(limit.exceeded(20, &since, 3001));
        assert!(!limit.exceeded(5, &since, 4000));
        assert!(!limit.exceeded(20, &since, 9000));
    }
}
