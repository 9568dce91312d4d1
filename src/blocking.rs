//! Clients blocked on keys (BLPOP, BRPOP, BZPOPMIN, ...), whatever the type, and
//! the one channel through which anything reaches a connection out of band.
//!
//! **The inbox.** Every session owns one [`Inbox`]; the senders ([`Outbox`]) go
//! wherever something may have to answer that client's wait later: a lock's
//! wait queue (its grant), this registry (a served pop), CLIENT UNBLOCK,
//! CLIENT UNPAUSE. The connection waits on that one receiver, so a new
//! blocking command needs no edit to the connection loop. Push frames
//! (published messages, invalidations, MONITOR lines) are bytes, not
//! answers: they go to the client's push queue (`ClientInfo::queue_push`),
//! which wakes the same connection task.
//!
//! **The registry.** A blocked client is a [`KeyWaiter`] queued, first come first
//! served, under every key it waits on, with a [`Serve`] step that knows its
//! type: how to take what it waits for from a key, and how to put it back. A
//! write that can wake waiters only marks its key *ready* ([`BlockedKeys::signal`]);
//! the command (or the whole script or transaction) that wrote then calls
//! [`BlockedKeys::serve_ready`] before it lets go of the execution gate, which
//! runs each waiter's serve step in queue order. So a waiter is served after the
//! writing command has finished, never in the middle of a script, and before any
//! other command can take the element, as in Redis.
//!
//! Lock order: shard, then the registry's queues, then one waiter's slot. A
//! waiter's slot holds its outbox; whoever takes it (the server serving, or the
//! client giving up) decides the outcome, so a waiter is served at most once even
//! when it waits on several keys.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::keyspace::{Db, Keyspace, Shard, ShardSet};
use crate::reply::Reply;
use crate::types::lock::Grant;

/// What reaches a connection out of band.
#[derive(Debug)]
pub enum Message {
    /// A queued LOCK.ACQUIRE was granted: the waiter's id and its fencing token.
    Granted {
        /// The lock waiter's id.
        wait: u64,
        /// The fencing token.
        token: u64,
    },
    /// A queued LOCK.ACQUIRE's lock is gone (its key was overwritten by
    /// another type): the waiter gives up, as at its timeout.
    Abandoned {
        /// The lock waiter's id.
        wait: u64,
    },
    /// A blocked command was served: its reply, and the key it was served from.
    Served {
        /// The [`KeyWaiter`]'s id.
        wait: u64,
        /// The key the reply was taken from.
        key: Bytes,
        /// The command's reply.
        reply: Reply,
    },
    /// CLIENT UNBLOCK: the blocked command ends now, as its timeout would
    /// (`error`: with `-UNBLOCKED`), unless what it waits for came first.
    Unblock {
        /// The client's wait it is for (`ClientInfo::wait_seq`).
        seq: u64,
        /// UNBLOCK ... ERROR.
        error: bool,
    },
    /// A postponed client may run its command again (CLIENT UNPAUSE).
    Resume {
        /// The postponement's id (`crate::pause::ClientPause::postpone`).
        wait: u64,
    },
}

/// The sending side of a connection's inbox.
pub type Outbox = mpsc::UnboundedSender<Message>;

/// A connection's one out-of-band receiver.
#[derive(Debug)]
pub struct Inbox {
    tx: Outbox,
    rx: mpsc::UnboundedReceiver<Message>,
}

impl Default for Inbox {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Inbox { tx, rx }
    }
}

impl Inbox {
    /// A sender for whatever may reach this connection later.
    pub fn outbox(&self) -> Outbox {
        self.tx.clone()
    }

    /// The next message (waits). Never `None` while the inbox lives: it holds a
    /// sender itself.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// A message already delivered, if any.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.rx.try_recv().ok()
    }
}

/// A lock grant delivered to a connection's inbox.
#[derive(Debug)]
struct LockGrant {
    wait: u64,
    outbox: Outbox,
}

impl Grant for LockGrant {
    fn send(&self, token: u64) -> bool {
        self.outbox
            .send(Message::Granted {
                wait: self.wait,
                token,
            })
            .is_ok()
    }

    fn is_closed(&self) -> bool {
        self.outbox.is_closed()
    }

    fn abandon(&self) {
        let _ = self.outbox.send(Message::Abandoned { wait: self.wait });
    }
}

/// The grant of lock waiter `wait`, sent to `outbox`.
pub fn lock_grant(wait: u64, outbox: Outbox) -> Box<dyn Grant> {
    Box::new(LockGrant { wait, outbox })
}

/// How one kind of blocked command is served (a list pop, a sorted-set pop, a
/// list move, ...).
pub trait Serve: Send + Sync + std::fmt::Debug {
    /// Takes what the waiter wants from `key` and builds the reply; `None` when
    /// the key has nothing for it (missing, empty, another type), which leaves
    /// the waiter queued. The shards of `key` and of [`Serve::destination`] are
    /// held in `shards`.
    fn serve(&self, shards: &mut ShardSet<'_>, key: &Bytes, now: u64) -> Option<Reply>;

    /// Puts back what [`Serve::serve`] took (the client went away as it was
    /// served); the shard of `key` is held.
    fn undo(&self, shard: &mut Shard, key: &Bytes, reply: Reply, now: u64);

    /// The type of value it takes from (`"list"`, `"zset"`, as TYPE names
    /// them): a waiter whose serve step takes nothing from a key of another
    /// type is passed over, still queued, and the waiters behind it are
    /// served (as Redis does).
    fn wants(&self) -> &'static str;

    /// Whether serving takes nothing from the key (a stream read), so a
    /// waiter that got nothing says nothing about those behind it: every
    /// waiter on the key is tried, as Redis tries every blocked stream reader.
    /// A pop stops at the first waiter that finds nothing.
    fn reads_only(&self) -> bool {
        false
    }

    /// The key the served element is pushed to (BLMOVE's destination): its
    /// shard is locked for the serve step too, and the clients waiting on it
    /// are served next, in the same round (as Redis serves a chain of BLMOVEs).
    fn destination(&self) -> Option<&Bytes> {
        None
    }
}

/// One client blocked on one or more keys.
#[derive(Debug)]
pub struct KeyWaiter {
    id: u64,
    db: usize,
    keys: Vec<Bytes>,
    serve: Box<dyn Serve>,
    slot: Mutex<Option<Outbox>>,
}

impl KeyWaiter {
    /// The id its [`Message::Served`] carries.
    pub fn id(&self) -> u64 {
        self.id
    }
}

type QueueKey = (usize, Bytes);

/// Every client blocked on a key, by key.
#[derive(Debug, Default)]
pub struct BlockedKeys {
    /// Queued entries (a waiter on three keys counts three): lets a write skip the
    /// registry when nobody waits.
    entries: AtomicUsize,
    queues: Mutex<HashMap<QueueKey, VecDeque<Arc<KeyWaiter>>>>,
    ready: Mutex<Vec<QueueKey>>,
    any_ready: AtomicBool,
    /// Held for a whole [`BlockedKeys::serve_ready`]: a command whose ready key
    /// another thread took to serve waits here until it is served, so it cannot
    /// let go of the gate (and let some command take the element) before that.
    serving: Mutex<()>,
    next_id: AtomicU64,
}

impl BlockedKeys {
    /// Queues a waiter on `keys` of database `db`, to be served by `serve` and
    /// told through `outbox`. The caller holds the shards of all `keys` (so no
    /// write can slip between its check and this).
    pub fn register(
        &self,
        db: usize,
        keys: Vec<Bytes>,
        serve: Box<dyn Serve>,
        outbox: Outbox,
    ) -> Arc<KeyWaiter> {
        let waiter = Arc::new(KeyWaiter {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            db,
            keys,
            serve,
            slot: Mutex::new(Some(outbox)),
        });
        let mut queues = self.queues.lock();
        for key in &waiter.keys {
            let queue = queues.entry((db, key.clone())).or_default();
            // BLPOP k k waits once on k.
            if !queue.iter().any(|w| w.id == waiter.id) {
                queue.push_back(waiter.clone());
                self.entries.fetch_add(1, Ordering::SeqCst);
            }
        }
        waiter
    }

    /// The keys of database `db` some client waits on.
    pub fn waited_keys(&self, db: usize) -> Vec<Bytes> {
        if self.entries.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        self.queues
            .lock()
            .keys()
            .filter(|(d, _)| *d == db)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Called after a write to `key` that may wake a waiter, while its shard is
    /// held: marks the key ready if a client waits on it.
    pub fn signal(&self, db: usize, key: &[u8]) {
        if self.entries.load(Ordering::SeqCst) == 0 {
            return;
        }
        let k = (db, Bytes::copy_from_slice(key));
        // A serve step that itself removes a value whose readers must hear
        // (a stream found expired while its waiters are served) reaches here
        // holding `queues`: not waiting for it then (a non-reentrant lock),
        // the key is marked ready at a guess, which serving copes with.
        let waited = match self.queues.try_lock() {
            Some(queues) => queues.contains_key(&k),
            None => true,
        };
        if waited {
            self.ready.lock().push(k);
            self.any_ready.store(true, Ordering::Release);
        }
    }

    /// Whether a write has marked a key ready since the last [`Self::serve_ready`].
    pub fn has_ready(&self) -> bool {
        self.any_ready.load(Ordering::Acquire)
    }

    /// Serves the waiters of the ready keys, first come first served, and
    /// then those of the keys the serving itself filled (BLMOVE's
    /// destinations). The caller holds the execution gate (shared or exclusive).
    pub fn serve_ready(&self, keyspace: &Keyspace, now: u64) {
        // A load first: the common case writes no shared cache line.
        if !self.has_ready() {
            return;
        }
        let _serving = self.serving.lock();
        if !self.any_ready.swap(false, Ordering::AcqRel) {
            return;
        }
        // Each round serves at least one waiter or ends: bounded by the
        // number of waiters.
        loop {
            let ready = std::mem::take(&mut *self.ready.lock());
            if ready.is_empty() {
                break;
            }
            for (db_index, key) in ready {
                if let Some(db) = keyspace.db(db_index) {
                    self.serve_key(db, db_index, &key, now);
                }
            }
        }
    }

    /// Serves the waiters of one key in queue order until one finds nothing.
    fn serve_key(&self, db: &Db, db_index: usize, key: &Bytes, now: u64) {
        let queue_key = (db_index, key.clone());
        // Waiters passed over: the key holds another type than theirs, or their
        // serve step only reads (a stream reader that got nothing).
        let mut passed = 0;
        loop {
            // The first waiter says which shards its serve step needs; they
            // are locked (in order) before the queues, then the front is
            // checked again.
            let front = self
                .queues
                .lock()
                .get(&queue_key)
                .and_then(|q| q.get(passed).cloned());
            let Some(waiter) = front else {
                return;
            };
            let destination = waiter.serve.destination().cloned();
            let mut shards = match &destination {
                Some(dst) => db.lock_keys(&[key, dst]),
                None => db.lock_keys(&[key]),
            };
            let mut queues = self.queues.lock();
            let still_first = queues
                .get(&queue_key)
                .and_then(|q| q.get(passed))
                .is_some_and(|w| Arc::ptr_eq(w, &waiter));
            if !still_first {
                continue;
            }
            let mut slot = waiter.slot.lock();
            // A closed inbox (a connection torn down without cancelling) is
            // skipped before anything is taken for it.
            if slot.as_ref().is_some_and(|tx| !tx.is_closed()) {
                let Some(reply) = waiter.serve.serve(&mut shards, key, now) else {
                    let pass_over = waiter.serve.reads_only()
                        || shards
                            .shard(key)
                            .peek(key, now)
                            .is_some_and(|e| e.value.type_name() != waiter.serve.wants());
                    if pass_over {
                        // Passed over, still queued: the waiters behind it
                        // may want this type.
                        passed += 1;
                        continue;
                    }
                    return; // Nothing (left) to hand over.
                };
                if let Some(dst) = destination {
                    let k = (db_index, dst);
                    if queues.contains_key(&k) {
                        self.ready.lock().push(k);
                    }
                }
                if let Some(tx) = slot.take() {
                    let message = Message::Served {
                        wait: waiter.id,
                        key: key.clone(),
                        reply,
                    };
                    if let Err(mpsc::error::SendError(Message::Served { reply, .. })) =
                        tx.send(message)
                    {
                        waiter.serve.undo(shards.shard(key), key, reply, now);
                    }
                }
            }
            drop(slot);
            self.dequeue(&mut queues, &waiter);
        }
    }

    /// A waiter gives up (timeout, disconnect): true if it was still waiting,
    /// false if it was already served (the reply is in its inbox).
    pub fn cancel(&self, waiter: &Arc<KeyWaiter>) -> bool {
        let mut queues = self.queues.lock();
        let waiting = waiter.slot.lock().take().is_some();
        self.dequeue(&mut queues, waiter);
        waiting
    }

    /// Puts back what was served to a client that then went away, and lets the
    /// next waiter have it.
    pub fn give_back(
        &self,
        keyspace: &Keyspace,
        waiter: &KeyWaiter,
        key: &Bytes,
        reply: Reply,
        now: u64,
    ) {
        if let Some(db) = keyspace.db(waiter.db) {
            let mut shard = db.lock(key);
            waiter.serve.undo(&mut shard, key, reply, now);
            self.signal(waiter.db, key);
        }
    }

    /// Removes `waiter` from the queues of all its keys.
    fn dequeue(
        &self,
        queues: &mut HashMap<QueueKey, VecDeque<Arc<KeyWaiter>>>,
        waiter: &KeyWaiter,
    ) {
        for key in &waiter.keys {
            let k = (waiter.db, key.clone());
            if let Some(q) = queues.get_mut(&k) {
                let before = q.len();
                q.retain(|w| w.id != waiter.id);
                self.entries.fetch_sub(before - q.len(), Ordering::SeqCst);
                if q.is_empty() {
                    queues.remove(&k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Nothing;

    impl Serve for Nothing {
        fn serve(&self, _: &mut ShardSet<'_>, _: &Bytes, _: u64) -> Option<Reply> {
            None
        }
        fn undo(&self, _: &mut Shard, _: &Bytes, _: Reply, _: u64) {}
        fn wants(&self) -> &'static str {
            "stream"
        }
    }

    #[test]
    fn a_signal_raised_while_serving_holds_the_queues_does_not_deadlock() {
        let blocked = BlockedKeys::default();
        let inbox = Inbox::default();
        blocked.register(0, vec![Bytes::from("s")], Box::new(Nothing), inbox.outbox());
        // As inside a serve step that drops an expired stream.
        let queues = blocked.queues.lock();
        blocked.signal(0, b"s");
        drop(queues);
        assert!(blocked.has_ready());
        // Unlocked, a key nobody waits on is not marked.
        let other = BlockedKeys::default();
        other.register(0, vec![Bytes::from("s")], Box::new(Nothing), inbox.outbox());
        other.signal(0, b"t");
        assert!(!other.has_ready());
    }
}
