//! Clients blocked in BLPOP/BRPOP, and the hand-over of pushed elements to them.
//!
//! A blocked client is a [`ListWaiter`] queued, first come first served, under
//! every key it waits on. A push to such a key only marks the key *ready*; the
//! command (or the whole script or transaction) that pushed then calls
//! [`BlockedLists::serve_ready`] before it lets go of the execution gate, which
//! pops elements for the waiters in queue order. So a waiter is served after the
//! pushing command has finished, never in the middle of a script, and before any
//! other command can take the element, as in Redis.
//!
//! Lock order: shard, then the registry's queues, then one waiter's slot. A
//! waiter's slot holds the sender of its reply; whoever takes it (the server
//! serving an element, or the client giving up) decides the outcome, so a waiter
//! is served at most once even when it waits on several keys.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{Entry, Keyspace, Shard, Value};

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (LPUSH, LPOP, BLPOP).
    Left,
    /// The tail (RPUSH, RPOP, BRPOP).
    Right,
}

/// The key an element was popped from, and the element.
pub type Popped = (Bytes, Bytes);

/// One client blocked on one or more lists.
#[derive(Debug)]
pub struct ListWaiter {
    id: u64,
    db: usize,
    keys: Vec<Bytes>,
    end: End,
    slot: Mutex<Option<oneshot::Sender<Popped>>>,
}

type QueueKey = (usize, Bytes);

/// Every client blocked on a list, by key.
#[derive(Debug, Default)]
pub struct BlockedLists {
    /// Queued entries (a waiter on three keys counts three): lets a push skip the
    /// registry when nobody waits.
    entries: AtomicUsize,
    queues: Mutex<HashMap<QueueKey, VecDeque<Arc<ListWaiter>>>>,
    ready: Mutex<Vec<QueueKey>>,
    any_ready: AtomicBool,
    /// Held for a whole [`BlockedLists::serve_ready`]: a command whose ready key
    /// another thread took to serve waits here until it is served, so it cannot
    /// let go of the gate (and let some command take the element) before that.
    serving: Mutex<()>,
    next_id: AtomicU64,
}

impl Shard {
    /// Pops one element from the list at `key`, deleting the key when it empties.
    /// `None` when there is no list there (the caller checks the type first).
    pub fn list_pop(&mut self, key: &[u8], end: End, now: u64) -> Option<Bytes> {
        let Some(Entry {
            value: Value::List(list),
            ..
        }) = self.get_mut(key, now)
        else {
            return None;
        };
        let v = match end {
            End::Left => list.pop_front(),
            End::Right => list.pop_back(),
        };
        if list.is_empty() {
            self.remove(key, now);
        }
        v
    }

    /// Puts an element back where [`Shard::list_pop`] took it from (an element
    /// served to a client that had gone).
    fn list_unpop(&mut self, key: &[u8], end: End, v: Bytes, now: u64) {
        match self.get_mut(key, now) {
            Some(Entry {
                value: Value::List(list),
                ..
            }) => match end {
                End::Left => list.push_front(v),
                End::Right => list.push_back(v),
            },
            Some(_) => {}
            None => {
                let list = VecDeque::from([v]);
                self.insert(key, Entry::persistent(Value::List(Box::new(list))), now);
            }
        }
    }
}

impl BlockedLists {
    /// Queues a waiter on `keys` of database `db`. The caller holds the shards of
    /// all `keys` (so no push can slip between its check and this).
    pub fn register(
        &self,
        db: usize,
        keys: Vec<Bytes>,
        end: End,
    ) -> (Arc<ListWaiter>, oneshot::Receiver<Popped>) {
        let (tx, rx) = oneshot::channel();
        let waiter = Arc::new(ListWaiter {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            db,
            keys,
            end,
            slot: Mutex::new(Some(tx)),
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
        (waiter, rx)
    }

    /// Called after a push to `key` while its shard is held: marks the key ready
    /// if a client waits on it.
    pub fn signal(&self, db: usize, key: &[u8]) {
        if self.entries.load(Ordering::SeqCst) == 0 {
            return;
        }
        let k = (db, Bytes::copy_from_slice(key));
        if self.queues.lock().contains_key(&k) {
            self.ready.lock().push(k);
            self.any_ready.store(true, Ordering::Release);
        }
    }

    /// Whether a push has marked a key ready since the last [`Self::serve_ready`].
    pub fn has_ready(&self) -> bool {
        self.any_ready.load(Ordering::Acquire)
    }

    /// Hands elements of the ready keys to their waiters, first come first served.
    /// The caller holds the execution gate (shared or exclusive).
    pub fn serve_ready(&self, keyspace: &Keyspace, now: u64) {
        // A load first: the common case writes no shared cache line.
        if !self.has_ready() {
            return;
        }
        let _serving = self.serving.lock();
        if !self.any_ready.swap(false, Ordering::AcqRel) {
            return;
        }
        let ready = std::mem::take(&mut *self.ready.lock());
        for (db_index, key) in ready {
            let Some(db) = keyspace.db(db_index) else {
                continue;
            };
            let mut shard = db.lock(&key);
            let mut queues = self.queues.lock();
            loop {
                let Some(waiter) = queues
                    .get_mut(&(db_index, key.clone()))
                    .and_then(|q| q.front().cloned())
                else {
                    break;
                };
                let mut slot = waiter.slot.lock();
                // A closed receiver (a connection torn down without cancelling)
                // is skipped before anything is popped for it.
                if slot.as_ref().is_some_and(|tx| !tx.is_closed()) {
                    let Some(v) = shard.list_pop(&key, waiter.end, now) else {
                        break; // Nothing (left) to hand over.
                    };
                    if let Some(Err((_, v))) = slot.take().map(|tx| tx.send((key.clone(), v))) {
                        shard.list_unpop(&key, waiter.end, v, now);
                    }
                }
                drop(slot);
                self.dequeue(&mut queues, &waiter);
            }
        }
    }

    /// A waiter gives up (timeout, disconnect): true if it was still waiting, false
    /// if an element was already sent to it.
    pub fn cancel(&self, waiter: &Arc<ListWaiter>) -> bool {
        let mut queues = self.queues.lock();
        let waiting = waiter.slot.lock().take().is_some();
        self.dequeue(&mut queues, waiter);
        waiting
    }

    /// Puts back an element that was served to a client that then went away.
    pub fn give_back(&self, keyspace: &Keyspace, waiter: &ListWaiter, popped: Popped, now: u64) {
        if let Some(db) = keyspace.db(waiter.db) {
            let mut shard = db.lock(&popped.0);
            shard.list_unpop(&popped.0, waiter.end, popped.1, now);
            self.signal(waiter.db, &popped.0);
        }
    }

    /// Removes `waiter` from the queues of all its keys.
    fn dequeue(
        &self,
        queues: &mut HashMap<QueueKey, VecDeque<Arc<ListWaiter>>>,
        waiter: &ListWaiter,
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
