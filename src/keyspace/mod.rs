//! The in-memory keyspace: databases split into shards, each shard a hash map
//! guarded by its own mutex, plus the expiry machinery.
//!
//! # Concurrency model
//!
//! A command locks only the shards of the keys it names, always in ascending shard
//! order ([`Db::lock_keys`]), so commands on different shards run in parallel on
//! tokio's worker threads and multi-key commands cannot deadlock. Around that sits
//! the server's execution gate (see `server::Shared::gate`): ordinary commands hold
//! it shared; `EXEC` (and later `EVAL`) hold it exclusively, so a transaction sees
//! and leaves the keyspace as one atomic step without knowing its keys in advance.
//! No lock is ever held across an `.await`.
//!
//! # Expiry
//!
//! Lazy: every access through [`Shard`] first drops an expired key. Active: each
//! shard files its keys' deadlines in a [`wheel::Wheel`] under the same mutex; an
//! [`ExpiryTimer`] holds the earliest deadline of all shards, and the expiry task
//! sleeps until then (or until the clock is moved), polls the due shards' wheels
//! and deletes what has really expired. An idle server's expiry task sleeps.

pub mod blocking;
mod compact;
pub mod lock;
mod table;
mod value;
pub mod wheel;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

pub use blocking::{BlockedLists, End, ListWaiter, Popped};
pub use compact::CompactBytes;
pub use lock::{AcquireRequest, Acquired, LockInfo, LockMode, LockShared};
pub use table::Table;
pub use value::{Entry, Value};
use wheel::Wheel;

/// Shards per database. A power of two; enough that two worker threads rarely meet.
pub const SHARDS: usize = 32;

/// Set when a watched key is modified: `EXEC` then aborts.
pub type WatchFlag = Arc<AtomicBool>;

/// The earliest pending expiry across all shards, and the task waiting for it.
#[derive(Debug)]
pub struct ExpiryTimer {
    next_due: AtomicU64,
    wake: Notify,
}

impl ExpiryTimer {
    fn new() -> Self {
        ExpiryTimer {
            next_due: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
        }
    }

    /// Notes a deadline; wakes the expiry task when it is earlier than any known.
    fn note(&self, when: u64) {
        if when < self.next_due.fetch_min(when, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// The earliest deadline noted, `u64::MAX` when none.
    pub fn next_due(&self) -> u64 {
        self.next_due.load(Ordering::Acquire)
    }

    /// Completes when an earlier deadline is noted.
    pub async fn woken(&self) {
        self.wake.notified().await
    }
}

/// One shard: a slice of a database's keys with their expiry wheel and watchers.
#[derive(Debug)]
pub struct Shard {
    map: Table,
    wheel: Wheel<Bytes>,
    /// Keys with a TTL, for `INFO keyspace`'s `expires=`.
    volatile: usize,
    watchers: HashMap<Bytes, Vec<WatchFlag>, ahash::RandomState>,
    /// Earliest deadline in this shard's wheel, read without the lock by the sweeper.
    next_due: Arc<AtomicU64>,
    timer: Arc<ExpiryTimer>,
    /// Fencing tokens and lock counters, shared by every shard.
    locks: Arc<LockShared>,
    /// Keys removed because their TTL passed (lazily or actively).
    expired_count: u64,
}

impl Shard {
    fn new(
        timer: Arc<ExpiryTimer>,
        locks: Arc<LockShared>,
        next_due: Arc<AtomicU64>,
        now: u64,
    ) -> Self {
        Shard {
            map: Table::default(),
            wheel: Wheel::new(now),
            volatile: 0,
            watchers: HashMap::default(),
            next_due,
            timer,
            locks,
            expired_count: 0,
        }
    }

    /// Number of keys, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the shard holds no key.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops `key` if its TTL has passed; true if it did.
    fn expire_if_due(&mut self, key: &[u8], now: u64) -> bool {
        match self.map.find(key) {
            Some(pos) if self.map.entry(pos).is_expired(now) => {
                self.live_position(key, now);
                true
            }
            _ => false,
        }
    }

    /// The slab position of `key` if it is live; an expired key is removed first.
    /// One hash lookup on the common path.
    fn live_position(&mut self, key: &[u8], now: u64) -> Option<usize> {
        let pos = self.map.find(key)?;
        if !self.map.entry(pos).is_expired(now) {
            return Some(pos);
        }
        if let Some(mut old) = self.remove_entry(key) {
            self.requeue_waiters(key, &mut old, now);
        }
        self.expired_count += 1;
        None
    }

    /// The live entry at `key`, mutable, without telling watchers (for a caller
    /// that touches the key itself only if it changes it).
    fn get_mut_quiet(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        self.expire_if_due(key, now);
        self.map.get_mut(key)
    }

    /// The live entry at `key`.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let pos = self.live_position(key, now)?;
        Some(self.map.entry(pos))
    }

    /// The live entry at `key`, for a command that modifies it in place: watchers of
    /// the key are told it changed. Call [`Shard::set_expiry`] to change its TTL.
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        let pos = self.live_position(key, now)?;
        self.touch(key);
        Some(self.map.entry_mut(pos))
    }

    /// Whether a live key exists, without counting as an access that modifies it.
    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.get(key, now).is_some()
    }

    /// Stores `entry` at `key`, replacing what was there, and returns the old live
    /// entry.
    pub fn insert(&mut self, key: &[u8], entry: Entry, now: u64) -> Option<Entry> {
        self.expire_if_due(key, now);
        self.touch(key);
        let expires_at = entry.expires_at;
        let old = self.map.insert(key, entry);
        self.account_ttl_change(old.as_ref().and_then(|e| e.expires_at), expires_at);
        if let Some(when) = expires_at {
            self.schedule(key, when);
        }
        old
    }

    /// Removes `key`, returning its live entry.
    pub fn remove(&mut self, key: &[u8], now: u64) -> Option<Entry> {
        if self.expire_if_due(key, now) {
            return None;
        }
        let mut old = self.remove_entry(key)?;
        self.requeue_waiters(key, &mut old, now);
        Some(old)
    }

    fn remove_entry(&mut self, key: &[u8]) -> Option<Entry> {
        let old = self.map.remove(key)?;
        if old.expires_at.is_some() {
            self.volatile -= 1;
        }
        self.touch(key);
        Some(old)
    }

    /// Sets or clears the TTL of a live key; false if there is no such key.
    pub fn set_expiry(&mut self, key: &[u8], expires_at: Option<u64>, now: u64) -> bool {
        self.expire_if_due(key, now);
        let Some(entry) = self.map.get_mut(key) else {
            return false;
        };
        let old = std::mem::replace(&mut entry.expires_at, expires_at);
        self.account_ttl_change(old, expires_at);
        self.touch(key);
        if let Some(when) = expires_at {
            self.schedule(key, when);
        }
        true
    }

    fn account_ttl_change(&mut self, old: Option<u64>, new: Option<u64>) {
        match (old.is_some(), new.is_some()) {
            (false, true) => self.volatile += 1,
            (true, false) => self.volatile -= 1,
            _ => {}
        }
    }

    fn schedule(&mut self, key: &[u8], when: u64) {
        self.wheel.insert(when, Bytes::copy_from_slice(key));
        self.next_due.fetch_min(when, Ordering::AcqRel);
        self.timer.note(when);
    }

    /// Deletes every key whose deadline has passed by `now`; returns how many.
    pub fn expire_due(&mut self, now: u64) -> usize {
        let mut fired = Vec::new();
        self.wheel.poll(now, &mut fired);
        let mut removed = 0;
        for (when, key) in fired {
            // A stale entry (TTL changed or key gone since) is skipped here.
            match self.map.get(&key) {
                Some(e) if e.expires_at == Some(when) => {
                    if let Some(mut old) = self.remove_entry(&key) {
                        self.requeue_waiters(&key, &mut old, now);
                    }
                    self.expired_count += 1;
                    removed += 1;
                }
                Some(Entry {
                    value: Value::Lock(_),
                    ..
                }) => self.lock_settle(&key, now),
                _ => {}
            }
        }
        let next = self.wheel.next_deadline().unwrap_or(u64::MAX);
        self.next_due.store(next, Ordering::Release);
        if next != u64::MAX {
            self.timer.note(next);
        }
        removed
    }

    /// Removes every key, telling all watchers. Waiters of removed locks stay
    /// queued and are granted, as after DEL.
    pub fn clear(&mut self, now: u64) {
        for flags in self.watchers.values() {
            for f in flags {
                f.store(true, Ordering::Release);
            }
        }
        let waiting: Vec<Vec<u8>> = self
            .map
            .iter()
            .filter(|(_, e)| matches!(&e.value, Value::Lock(l) if l.counts().1 > 0))
            .map(|(k, _)| k.to_vec())
            .collect();
        let mut requeue = Vec::new();
        for key in waiting {
            if let Some(old) = self.map.remove(&key) {
                requeue.push((key, old));
            }
        }
        self.watchers.clear();
        self.map.clear();
        self.wheel.clear();
        self.volatile = 0;
        self.next_due.store(u64::MAX, Ordering::Release);
        for (key, mut old) in requeue {
            self.requeue_waiters(&key, &mut old, now);
        }
    }

    /// Marks `key` as modified for `WATCH`.
    pub fn touch(&mut self, key: &[u8]) {
        if self.watchers.is_empty() {
            return;
        }
        if let Some(flags) = self.watchers.remove(key) {
            for f in flags {
                f.store(true, Ordering::Release);
            }
        }
    }

    /// Registers `flag` to be set when `key` is next modified.
    pub fn watch(&mut self, key: &[u8], flag: &WatchFlag) {
        self.watchers
            .entry(Bytes::copy_from_slice(key))
            .or_default()
            .push(flag.clone());
    }

    /// Forgets `flag` as a watcher of `key`.
    pub fn unwatch(&mut self, key: &[u8], flag: &WatchFlag) {
        if let Some(flags) = self.watchers.get_mut(key) {
            flags.retain(|f| !Arc::ptr_eq(f, flag));
            if flags.is_empty() {
                self.watchers.remove(key);
            }
        }
    }

    /// Iterates over the live keys (expired ones not yet reclaimed are skipped).
    pub fn keys(&self, now: u64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.map.iter().filter(move |(_, e)| !e.is_expired(now))
    }

    /// The key at slab position `i`, live or not (RANDOMKEY picks positions).
    pub fn key_at(&self, i: usize) -> Option<(&[u8], &Entry)> {
        self.map.at(i)
    }

    /// Keys with a TTL.
    pub fn volatile(&self) -> usize {
        self.volatile
    }

    /// Keys removed on expiry so far.
    pub fn expired_count(&self) -> u64 {
        self.expired_count
    }
}

/// One numbered database (`SELECT n`).
#[derive(Debug)]
pub struct Db {
    shards: Box<[Mutex<Shard>]>,
    next_due: Box<[Arc<AtomicU64>]>,
    hasher: ahash::RandomState,
}

/// Several shards of one database locked together, in ascending order.
pub struct ShardSet<'a> {
    db: &'a Db,
    guards: Vec<(usize, MutexGuard<'a, Shard>)>,
}

impl<'a> ShardSet<'a> {
    /// The locked shard holding `key`. The key must have been among those locked;
    /// a key that was not is a bug in the command, so it is locked here rather than
    /// panicking (correct order is then no longer guaranteed, so this is logged).
    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let idx = self.db.shard_index(key);
        let pos = match self.guards.binary_search_by_key(&idx, |(i, _)| *i) {
            Ok(pos) => pos,
            Err(pos) => {
                tracing::error!("key used without locking its shard");
                self.guards.insert(pos, (idx, self.db.shards[idx].lock()));
                pos
            }
        };
        &mut self.guards[pos].1
    }
}

impl Db {
    fn new(timer: &Arc<ExpiryTimer>, locks: &Arc<LockShared>, now: u64) -> Self {
        let next_due: Box<[Arc<AtomicU64>]> = (0..SHARDS)
            .map(|_| Arc::new(AtomicU64::new(u64::MAX)))
            .collect();
        let shards = next_due
            .iter()
            .map(|due| Mutex::new(Shard::new(timer.clone(), locks.clone(), due.clone(), now)))
            .collect();
        Db {
            shards,
            next_due,
            hasher: ahash::RandomState::new(),
        }
    }

    fn shard_index(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) as usize) & (SHARDS - 1)
    }

    /// Locks the shard holding `key`.
    pub fn lock(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        self.shards[self.shard_index(key)].lock()
    }

    /// Locks the shards of all `keys`, each once, in ascending shard order.
    pub fn lock_keys<K: AsRef<[u8]>>(&self, keys: &[K]) -> ShardSet<'_> {
        let mut idx: Vec<usize> = keys.iter().map(|k| self.shard_index(k.as_ref())).collect();
        idx.sort_unstable();
        idx.dedup();
        ShardSet {
            db: self,
            guards: idx
                .into_iter()
                .map(|i| (i, self.shards[i].lock()))
                .collect(),
        }
    }

    /// Locks every shard in order: for whole-database commands (FLUSHDB, KEYS, DBSIZE).
    pub fn lock_all(&self) -> Vec<MutexGuard<'_, Shard>> {
        self.shards.iter().map(|s| s.lock()).collect()
    }

    /// The shards one at a time, for scans that need not be atomic across shards.
    pub fn shards(&self) -> &[Mutex<Shard>] {
        &self.shards
    }

    /// Number of live-or-unreclaimed keys.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// True when no shard holds a key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs active expiry on the shards with a due deadline and notes the others'
    /// next deadlines on `timer`; returns the keys removed.
    fn expire_due(&self, now: u64, timer: &ExpiryTimer) -> usize {
        let mut removed = 0;
        for (i, due) in self.next_due.iter().enumerate() {
            let due = due.load(Ordering::Acquire);
            if due <= now {
                removed += self.shards[i].lock().expire_due(now);
            } else if due != u64::MAX {
                timer.note(due);
            }
        }
        removed
    }
}

/// All databases of the server.
#[derive(Debug)]
pub struct Keyspace {
    dbs: Box<[Db]>,
    timer: Arc<ExpiryTimer>,
    locks: Arc<LockShared>,
    lists: BlockedLists,
}

impl Keyspace {
    /// A keyspace of `databases` empty databases; `now` is the clock's time.
    pub fn new(databases: usize, now: u64) -> Self {
        let timer = Arc::new(ExpiryTimer::new());
        let locks = Arc::new(LockShared::new());
        Keyspace {
            dbs: (0..databases.max(1))
                .map(|_| Db::new(&timer, &locks, now))
                .collect(),
            timer,
            locks,
            lists: BlockedLists::default(),
        }
    }

    /// Clients blocked in BLPOP/BRPOP.
    pub fn lists(&self) -> &BlockedLists {
        &self.lists
    }

    /// Database `index`, if it exists.
    pub fn db(&self, index: usize) -> Option<&Db> {
        self.dbs.get(index)
    }

    /// All databases.
    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }

    /// Fencing tokens and lock counters.
    pub fn locks(&self) -> &LockShared {
        &self.locks
    }

    /// The timer the expiry task waits on.
    pub fn timer(&self) -> &ExpiryTimer {
        &self.timer
    }

    /// Deletes every key whose TTL has passed in a shard that has one due; returns
    /// how many were removed.
    pub fn expire_due(&self, now: u64) -> usize {
        // Reset first: shards still holding deadlines note them again, and a
        // deadline filed concurrently lowers it and wakes the task.
        self.timer.next_due.store(u64::MAX, Ordering::Release);
        self.dbs
            .iter()
            .map(|db| db.expire_due(now, &self.timer))
            .sum()
    }
}
