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
//!
//! Active expiry works in slices ([`Keyspace::expire_step`] with an
//! [`ExpiryBudget`]): what the wheel hands over is queued in the shard and deleted a
//! budget's worth at a time, so a million keys sharing one deadline do not hold a
//! shard (or the execution gate) for the whole sweep; the caller lets the other
//! clients run between slices. Meanwhile lazy expiry keeps every expired key
//! invisible. Locks with queued waiters are settled ahead of the queue, so a lease
//! that runs out is handed to its waiter within a slice even under such a backlog.

mod snap;
mod table;
mod value;
pub mod wheel;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

use crate::blocking::BlockedKeys;
use crate::notify::{self, Notifier};
pub use crate::types::lock::{AcquireRequest, Acquired, LockInfo, LockMode, LockShared};
use crate::types::lock::{EndReason, HoldEnded};
pub use crate::types::CompactBytes;
use crate::types::Effects;
use snap::ShardSnap;
pub use table::Table;
pub use value::{Entry, Typed, Value, WrongType};
use wheel::Wheel;

/// Shards per database. A power of two; enough that two worker threads rarely meet.
pub const SHARDS: usize = 32;

/// Set when a watched key is modified: `EXEC` then aborts.
pub type WatchFlag = Arc<AtomicBool>;

/// What a write tells client-side caching (`tracking.rs`): while `active`
/// (someone tracks keys), every modified key, and every flush, is noted in
/// this thread's [`Modified`] list, which the command that wrote takes
/// ([`take_modified`]) once it has run. While nobody tracks, a write costs one
/// relaxed load. A command runs on one thread from start to end (handlers never
/// await), so the list holds exactly what it modified.
#[derive(Debug, Default)]
pub struct KeyHook {
    active: AtomicBool,
    /// The append-only file is on: expired keys and changed locks are
    /// logged for it (`propagate`).
    logging: AtomicBool,
    /// The AOF is being replayed: nothing expires (as Redis while loading),
    /// or a key whose TTL passed while the server was down would go, and a
    /// later write in the file would make it again without its TTL.
    replaying: AtomicBool,
}

impl KeyHook {
    /// Whether writes are being noted.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Starts or stops noting writes.
    pub fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
    }

    /// Whether writes are logged for the append-only file.
    #[inline]
    pub fn is_logging(&self) -> bool {
        self.logging.load(Ordering::Relaxed)
    }

    /// Whether the AOF is being replayed (nothing expires).
    #[inline]
    pub fn is_replaying(&self) -> bool {
        self.replaying.load(Ordering::Relaxed)
    }

    /// Marks the AOF replay as running or done.
    pub fn set_replaying(&self, on: bool) {
        self.replaying.store(on, Ordering::Relaxed);
    }

    /// Starts or stops logging for the append-only file (with the gate
    /// held exclusively: no unit is half logged).
    pub fn set_logging(&self, on: bool) {
        self.logging.store(on, Ordering::Relaxed);
    }
}

/// One change noted for client-side caching, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modified {
    /// A key was modified (written, deleted, expired).
    Key(Bytes),
    /// A database was flushed: every key is invalid.
    Flush,
}

thread_local! {
    static MODIFIED: std::cell::RefCell<Vec<Modified>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn note_modified(m: Modified) {
    MODIFIED.with(|v| {
        let mut v = v.borrow_mut();
        // A FLUSHALL clears every shard: one flush is enough.
        if m == Modified::Flush && v.last() == Some(&Modified::Flush) {
            return;
        }
        v.push(m);
    });
}

/// Takes what this thread's commands have modified since the last call.
pub fn take_modified() -> Vec<Modified> {
    MODIFIED.with(|v| std::mem::take(&mut *v.borrow_mut()))
}

/// Whether this thread has modifications not yet taken.
pub fn has_modified() -> bool {
    MODIFIED.with(|v| !v.borrow().is_empty())
}

/// The earliest pending expiry across all shards, and the task waiting for it.
#[derive(Debug)]
pub struct ExpiryTimer {
    next_due: AtomicU64,
    wake: Notify,
    /// Test hook: the expiry task panics on its next pass.
    inject_panic: AtomicBool,
}

impl ExpiryTimer {
    fn new() -> Self {
        ExpiryTimer {
            next_due: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
            inject_panic: AtomicBool::new(false),
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

    /// Test hook: makes the expiry task panic on its next pass (it must survive).
    /// Only the embedding API reaches it; no command does.
    #[doc(hidden)]
    pub fn inject_panic(&self) {
        self.inject_panic.store(true, Ordering::Release);
        self.note(0);
    }

    /// Whether a panic was injected (and clears it).
    pub fn take_injected_panic(&self) -> bool {
        self.inject_panic.load(Ordering::Relaxed) && self.inject_panic.swap(false, Ordering::AcqRel)
    }
}

/// How much one slice of active expiry may do before it lets other clients run:
/// a span of time, and at least [`ExpiryBudget::MIN_ENTRIES`] entries so that
/// every step makes progress however long the wheel took.
#[derive(Debug)]
pub struct ExpiryBudget {
    /// `None`: no limit (run to completion).
    until: Option<Instant>,
    /// Entries handled.
    entries: u32,
    /// The time is up (read every `MIN_ENTRIES` entries, and after a wheel poll).
    time_up: bool,
}

impl ExpiryBudget {
    /// Entries handled between two readings of the clock, and at least per step.
    pub const MIN_ENTRIES: u32 = 64;

    /// A budget of `time` from now.
    pub fn new(time: Duration) -> Self {
        ExpiryBudget {
            until: Some(Instant::now() + time),
            entries: 0,
            time_up: false,
        }
    }

    /// No limit: expiry runs until nothing due is left.
    pub fn unlimited() -> Self {
        ExpiryBudget {
            until: None,
            entries: 0,
            time_up: false,
        }
    }

    /// Counts one entry handled.
    fn charge(&mut self) {
        self.entries = self.entries.saturating_add(1);
        if self.entries.is_multiple_of(Self::MIN_ENTRIES) {
            settle_freed_memory();
            self.check();
        }
    }

    /// Reads the clock (also after work not counted entry by entry, such as a
    /// wheel moving entries down a level); true once the time is up.
    fn check(&mut self) -> bool {
        if let (false, Some(until)) = (self.time_up, self.until) {
            self.time_up = Instant::now() >= until;
        }
        self.time_up
    }

    /// Whether the step should stop: the time is up and the minimum is done.
    pub fn is_spent(&self) -> bool {
        self.time_up && self.entries >= Self::MIN_ENTRIES
    }
}

/// Makes the allocator tidy up the blocks just freed, now, inside the expiry
/// budget. glibc's malloc keeps small freed blocks in "fastbins" and merges all
/// of them at the next allocation too large for its per-thread cache; a mass
/// expiry frees millions of small blocks, and left alone they were merged in one
/// go wherever that next allocation happened: 70-140 ms stalls while 1,000,000
/// lock leases expired (none with `GLIBC_TUNABLES=glibc.malloc.mxfast=0`). One
/// such allocation every few entries keeps each merge small. Harmless with any
/// other allocator.
fn settle_freed_memory() {
    let block: Vec<u8> = Vec::with_capacity(4096);
    std::hint::black_box(&block);
}

/// A backlog of due entries longer than this makes a slice settle the shard's
/// contended locks first (a shorter one is gone within the same slice anyway).
const BACKLOG: usize = 256;

/// One shard: a slice of a database's keys with their expiry wheel and watchers.
#[derive(Debug)]
pub struct Shard {
    map: Table,
    /// Deadlines by key; a key of up to 22 bytes is held inline (no allocation).
    /// Deadlines filed under the hash of their key (16 bytes an entry).
    wheel: Wheel<u64>,
    /// Entries the wheel has handed over (deadline reached) not yet dealt with;
    /// `pending[pending_at..]` is the backlog.
    pending: Vec<(u64, u64)>,
    pending_at: usize,
    /// Keys whose value has had a waiter queued (a lock): settled ahead of the
    /// backlog. A key leaves when it is removed or found without waiters.
    waited: HashSet<Bytes, ahash::RandomState>,
    /// Keys with a TTL, for `INFO keyspace`'s `expires=`.
    volatile: usize,
    watchers: HashMap<Bytes, Vec<WatchFlag>, ahash::RandomState>,
    /// Earliest deadline in this shard's wheel, read without the lock by the sweeper.
    next_due: Arc<AtomicU64>,
    timer: Arc<ExpiryTimer>,
    /// What values share across the server (a lock's fencing tokens and
    /// counters), handed to their timers.
    locks: Arc<LockShared>,
    /// Keys removed because their TTL passed (lazily or actively).
    expired_count: u64,
    /// Reading lookups that found a key, and that found none.
    hits: u64,
    misses: u64,
    /// Changes made here since start-up (each modified key, each key a flush
    /// removed): summed over the shards, less the sum at the last save, it is
    /// `rdb_changes_since_last_save`, which save points read.
    dirty: u64,
    /// Where this shard's own events (`expired`) are logged for publishing;
    /// it knows the shard's database.
    events: ShardEvents,
    /// The registry of clients blocked on keys: a value that wakes them
    /// when it leaves ([`Value::wakes_when_gone`]) marks its key ready there.
    blocked: Arc<BlockedKeys>,
    /// Client-side caching's hook: writes are noted while it is active.
    hook: Arc<KeyHook>,
    /// A running snapshot's state here, until its dumper has visited this
    /// shard: every change first keeps the changed key's before-image
    /// (`snap.rs`). `None` when no snapshot runs: one branch per write.
    snap: Option<Box<ShardSnap>>,
}

/// What a shard knows of its database: its index and its "may hold keys"
/// mark ([`Db::may_hold_keys`], set by each new key), and the server's
/// notifier.
#[derive(Debug)]
struct ShardEvents {
    db: usize,
    occupied: Arc<AtomicBool>,
    notifier: Arc<Notifier>,
}

impl ShardEvents {
    fn log(&self, class: u32, name: &'static str, key: &[u8]) {
        self.notifier.log(class, name, self.db, key);
    }

    /// The event of a hold that ended, with its holder's loss notice unless
    /// the holder released it.
    fn log_ended(&self, key: &[u8], ended: &HoldEnded) {
        let name = match ended.why {
            EndReason::Expired => notify::LOCK_EXPIRED,
            EndReason::Deleted => notify::LOCK_DELETED,
            EndReason::SessionReleased => notify::LOCK_SESSION_RELEASED,
            EndReason::Released => notify::LOCK_RELEASED,
        };
        let lost = ended
            .why
            .is_loss()
            .then(|| (ended.owner.as_slice(), ended.token));
        self.notifier
            .log_loss(notify::LOCK, name, self.db, key, lost);
    }

    /// The events of the holds that end with a value taken out of the
    /// keyspace (a held lock), and their lengths for the hold-time
    /// histogram; nothing is gathered for a value nobody holds.
    fn log_removed(&self, key: &[u8], value: &Value, now: u64, locks: &LockShared) {
        let ended = value.removed_holds(now);
        if ended.is_empty() {
            return;
        }
        let wanted = self.notifier.wants_lock_events();
        for e in &ended {
            locks.stats.hold_ended(e.token, now);
            if wanted {
                self.log_ended(key, e);
            }
        }
    }
}

impl Shard {
    fn new(
        timer: Arc<ExpiryTimer>,
        locks: Arc<LockShared>,
        next_due: Arc<AtomicU64>,
        events: ShardEvents,
        blocked: Arc<BlockedKeys>,
        hook: Arc<KeyHook>,
        now: u64,
    ) -> Self {
        Shard {
            map: Table::default(),
            wheel: Wheel::new(now),
            pending: Vec::new(),
            pending_at: 0,
            waited: HashSet::default(),
            volatile: 0,
            watchers: HashMap::default(),
            next_due,
            timer,
            locks,
            expired_count: 0,
            hits: 0,
            misses: 0,
            dirty: 0,
            events,
            blocked,
            hook,
            snap: None,
        }
    }

    /// After a new key went in: the database may hold keys. A load first, so
    /// the usual case (already marked) writes nothing shared.
    fn mark_occupied(&self) {
        let occupied = &self.events.occupied;
        if !occupied.load(Ordering::Relaxed) {
            occupied.store(true, Ordering::Release);
        }
    }

    /// Before a change to `key`: a running snapshot that has not visited it
    /// keeps its value as it was at the snapshot's instant.
    #[inline]
    fn preserve(&mut self, key: &[u8]) {
        if let Some(snap) = self.snap.as_deref_mut() {
            snap.preserve(&self.map, key);
        }
    }

    /// A value left the keyspace at `key`: clients blocked on it that must
    /// hear so (a stream's group readers) are woken.
    fn gone(&self, key: &[u8], value: &Value) {
        if value.wakes_when_gone() {
            self.blocked.signal(self.events.db, key);
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
            Some(pos) if self.expired(self.map.entry(pos), now) => {
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
        let replaying = self.hook.is_replaying();
        let entry = self.map.entry_mut(pos);
        if replaying || !entry.is_expired(now) {
            if !crate::memory::no_touch() {
                entry.accessed(now);
            }
            return Some(pos);
        }
        // An expiry is no write of the running command's (it is logged as
        // its own DEL).
        let writes = crate::propagate::writes();
        let old = self.remove_entry(key);
        self.expired_count += 1;
        self.events.log(notify::EXPIRED, "expired", key);
        self.log_expired(key);
        if let Some(mut old) = old {
            self.let_go(key, &mut old, now);
        }
        crate::propagate::restore_writes(writes);
        None
    }

    /// An expired key's deletion, for the append-only file. Not a write of
    /// the running command's own (the command is not logged for it).
    fn log_expired(&mut self, key: &[u8]) {
        if self.hook.is_logging() {
            crate::propagate::push_expired(self.events.db, key);
        }
    }

    /// The live entry at `key` without counting as an access (OBJECT, TTL: as
    /// Redis's `LOOKUP_NOTOUCH`). An expired key is removed first.
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        self.expire_if_due(key, now);
        self.map.get(key)
    }

    /// The live entry at `key`, mutable, without telling watchers (for a caller
    /// that touches the key itself only if it changes it).
    fn get_mut_quiet(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        self.expire_if_due(key, now);
        self.preserve(key);
        self.map.get_mut(key)
    }

    /// The live entry at `key`.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let pos = self.live_position(key, now)?;
        Some(self.map.entry(pos))
    }

    /// Reading lookups that found a key and that found none (see
    /// [`Shard::read`]).
    pub fn lookups(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Zeroes the lookup counts (CONFIG RESETSTAT).
    pub fn reset_lookups(&mut self) {
        self.hits = 0;
        self.misses = 0;
    }

    /// The live entry at `key`, for a command that modifies it in place: watchers of
    /// the key are told it changed. Call [`Shard::set_expiry`] to change its TTL.
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        let pos = self.live_position(key, now)?;
        self.preserve(key);
        self.touch(key);
        Some(self.map.entry_mut(pos))
    }

    /// The live value at `key` as type `T`: `Ok(None)` when there is no key,
    /// `Err(WrongType)` when it holds another type. Counted as a keyspace hit
    /// or miss (INFO `keyspace_hits`/`keyspace_misses`): this is the reading
    /// commands' lookup, as Redis's `lookupKeyRead`; writes, which look up
    /// through `write`/`get_or_create`/`get`, are not counted.
    pub fn read<T: Typed>(&mut self, key: &[u8], now: u64) -> Result<Option<&T>, WrongType> {
        let Some(pos) = self.live_position(key, now) else {
            self.misses += 1;
            return Ok(None);
        };
        self.hits += 1;
        T::of(&self.map.entry(pos).value).map(Some).ok_or(WrongType)
    }

    /// The live value at `key` as type `T`, for a command that modifies it
    /// (watchers are told). If the change may empty it, call
    /// [`Shard::remove_if_empty`] afterwards.
    pub fn write<T: Typed>(&mut self, key: &[u8], now: u64) -> Result<Option<&mut T>, WrongType> {
        let Some(pos) = self.live_position(key, now) else {
            return Ok(None);
        };
        if T::of(&self.map.entry(pos).value).is_none() {
            return Err(WrongType);
        }
        self.preserve(key);
        self.touch(key);
        Ok(T::of_mut(&mut self.map.entry_mut(pos).value))
    }

    /// The value at `key` as type `T`, created empty (no TTL) if there is no
    /// key; `Err(WrongType)` when it holds another type.
    pub fn get_or_create<T: Typed>(&mut self, key: &[u8], now: u64) -> Result<&mut T, WrongType> {
        let pos = match self.live_position(key, now) {
            Some(pos) => {
                if T::of(&self.map.entry(pos).value).is_none() {
                    return Err(WrongType);
                }
                self.preserve(key);
                pos
            }
            None => {
                let mut entry = Entry::persistent(T::new_value());
                entry.accessed(now);
                self.preserve(key);
                self.map.insert(key, entry);
                self.mark_occupied();
                self.events.log(notify::NEW, "new", key);
                self.map.find(key).ok_or(WrongType)?
            }
        };
        self.touch(key);
        T::of_mut(&mut self.map.entry_mut(pos).value).ok_or(WrongType)
    }

    /// As [`Shard::get_or_create`], but watchers are told only if the key is
    /// created: for a command that may leave an existing value unchanged (ZADD
    /// of a member already there, HSETNX, a failed HINCRBY), which calls
    /// [`Shard::touch`] itself when it changes something, as Redis signals a
    /// modified key only then.
    pub fn get_or_create_quiet<T: Typed>(
        &mut self,
        key: &[u8],
        now: u64,
    ) -> Result<&mut T, WrongType> {
        if self.live_position(key, now).is_some() {
            return match self.write_quiet::<T>(key, now)? {
                Some(v) => Ok(v),
                None => Err(WrongType),
            };
        }
        self.get_or_create::<T>(key, now)
    }

    /// Logs keyspace event `name` of `class` on `key` of this shard's
    /// database, for a step with no command context (a blocked client's
    /// serve step; a lock command's own event, in order with the expiries and
    /// grants around it); published when the serving pass or the command
    /// ends. One relaxed load when the class is off.
    pub fn log_event(&self, class: u32, name: &'static str, key: &[u8]) {
        self.events.log(class, name, key);
    }

    /// Removes `key` if it holds an empty `T` (the last element was taken);
    /// true if it did.
    pub fn remove_if_empty<T: Typed>(&mut self, key: &[u8], now: u64) -> bool {
        let empty = match self.map.get(key) {
            Some(e) => T::of(&e.value).is_some_and(T::is_empty_value),
            None => false,
        };
        if empty {
            self.remove(key, now);
        }
        empty
    }

    /// The value at `key` as type `T` through a shared borrow, for a command
    /// that reads several keys at once ([`ShardSet::view`]): an expired key reads
    /// as missing (it is not removed here).
    pub fn view<T: Typed>(&self, key: &[u8], now: u64) -> Result<Option<&T>, WrongType> {
        match self.map.get(key) {
            Some(e) if !self.expired(e, now) => T::of(&e.value).map(Some).ok_or(WrongType),
            _ => Ok(None),
        }
    }

    /// Whether a live key exists, without counting as an access that modifies it.
    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.peek(key, now).is_some()
    }

    /// Stores `entry` at `key`, replacing what was there, and returns the old live
    /// entry.
    pub fn insert(&mut self, key: &[u8], mut entry: Entry, now: u64) -> Option<Entry> {
        self.expire_if_due(key, now);
        entry.accessed(now);
        self.touch(key);
        let expires_at = entry.expires_at();
        self.preserve(key);
        let mut old = self.map.insert(key, entry);
        if old.is_none() {
            self.mark_occupied();
            self.events.log(notify::NEW, "new", key);
        }
        if let Some(old) = &old {
            self.events.log_removed(key, &old.value, now, &self.locks);
            self.gone(key, &old.value);
        }
        if let Some(old) = old.as_mut().filter(|e| e.value.has_waiters()) {
            // A lock overwritten by another value (SET, a STORE, RENAME onto
            // it): its queue cannot stay at the key, so its waiters give up.
            old.value.abandon_waiters();
            self.waited.remove(key);
        }
        self.account_ttl_change(old.as_ref().and_then(|e| e.expires_at()), expires_at);
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
        self.let_go(key, &mut old, now);
        Some(old)
    }

    fn remove_entry(&mut self, key: &[u8]) -> Option<Entry> {
        if let Some(snap) = self.snap.as_deref_mut() {
            snap.preserve(&self.map, key);
            snap.preserve_moved(&self.map, key);
        }
        let old = self.map.remove(key)?;
        self.gone(key, &old.value);
        if old.expires_at().is_some() {
            self.volatile -= 1;
        }
        // A value removed with waiters is put back for them: it stays waited on.
        if !self.waited.is_empty() && !old.value.has_waiters() {
            self.waited.remove(key);
        }
        self.touch(key);
        Some(old)
    }

    /// Sets or clears the TTL of a live key; false if there is no such key.
    pub fn set_expiry(&mut self, key: &[u8], expires_at: Option<u64>, now: u64) -> bool {
        self.expire_if_due(key, now);
        self.preserve(key);
        let Some(entry) = self.map.get_mut(key) else {
            return false;
        };
        let old = entry.replace_expiry(expires_at);
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
        self.wheel.insert(when, self.map.hash_of(key));
        self.next_due.fetch_min(when, Ordering::AcqRel);
        self.timer.note(when);
    }

    /// Notes that a waiter has queued in the value at `key` (a lock): while a
    /// backlog of expiring keys is worked through, this value's deadlines are
    /// served first, so its waiter is not kept behind keys nobody waits for.
    pub fn note_waiter(&mut self, key: &[u8]) {
        if !self.waited.contains(key) {
            self.waited.insert(Bytes::copy_from_slice(key));
        }
    }

    /// SWAPDB, one shard of each database (holding the same keys' slots):
    /// the keys, their deadlines and expiry backlog change places; watchers,
    /// blocked clients' registrations and a running snapshot's walk stay
    /// with their database, as in Redis. A key watched on either side is
    /// touched if it exists on either side; a snapshot keeps each side's
    /// instant image (every key it has not visited is saved, and its walk of
    /// this shard ends).
    fn swap_contents(a: &mut Shard, b: &mut Shard) {
        a.before_swap(&b.map);
        b.before_swap(&a.map);
        std::mem::swap(&mut a.map, &mut b.map);
        std::mem::swap(&mut a.wheel, &mut b.wheel);
        std::mem::swap(&mut a.pending, &mut b.pending);
        std::mem::swap(&mut a.pending_at, &mut b.pending_at);
        std::mem::swap(&mut a.waited, &mut b.waited);
        std::mem::swap(&mut a.volatile, &mut b.volatile);
        let due_a = a.next_due.load(Ordering::Acquire);
        let due_b = b.next_due.swap(due_a, Ordering::AcqRel);
        a.next_due.store(due_b, Ordering::Release);
    }

    fn before_swap(&mut self, other: &Table) {
        for (key, flags) in &self.watchers {
            if self.map.find(key).is_some() || other.find(key).is_some() {
                for f in flags {
                    f.store(true, Ordering::Release);
                }
            }
        }
        if let Some(snap) = self.snap.as_deref_mut() {
            snap.preserve_all(&self.map);
            snap.end_walk();
        }
    }

    /// Deletes every key whose deadline has passed by `now`; returns how many.
    pub fn expire_due(&mut self, now: u64) -> usize {
        let mut budget = ExpiryBudget::unlimited();
        self.take_due(now, &mut budget);
        self.expire_slice(now, &mut budget)
    }

    /// Entries handed over by the wheel and not yet dealt with.
    pub fn expiry_backlog(&self) -> usize {
        self.pending.len() - self.pending_at
    }

    /// Settles the contended locks if what is due here may take more than this
    /// slice (so their waiters do not wait behind it), then takes what the wheel
    /// has due by `now` into the backlog while `budget` lasts.
    fn take_due(&mut self, now: u64, budget: &mut ExpiryBudget) {
        let crowded = self.expiry_backlog() > BACKLOG || self.wheel.len() > BACKLOG;
        if !self.waited.is_empty() && (budget.time_up || crowded) {
            self.settle_waited(now);
        }
        if !budget.time_up {
            self.wheel.poll(now, &mut self.pending);
            budget.check();
        }
    }

    /// One slice of active expiry: takes what the wheel has due and deals with the
    /// backlog until `budget` is spent. Returns the keys removed. A shard left with
    /// a backlog stays due (its published deadline is `now`).
    fn expire_slice(&mut self, now: u64, budget: &mut ExpiryBudget) -> usize {
        self.wheel.poll(now, &mut self.pending);
        budget.check();
        let mut removed = 0;
        while self.pending_at < self.pending.len() && !budget.is_spent() {
            let (when, hash) = self.pending[self.pending_at];
            self.pending_at += 1;
            removed += self.expire_hashed(when, hash, now);
            budget.charge();
        }
        if self.pending_at == self.pending.len() {
            self.pending.clear();
            self.pending_at = 0;
            if self.pending.capacity() > BACKLOG * 4 {
                self.pending = Vec::new();
            }
        }
        let next = if self.expiry_backlog() > 0 {
            now
        } else {
            self.wheel.next_deadline().unwrap_or(u64::MAX)
        };
        self.next_due.store(next, Ordering::Release);
        if next != u64::MAX {
            self.timer.note(next);
        }
        removed
    }

    /// Deals with one entry the wheel fired for the keys whose hash is `hash`
    /// (one key, but for a collision of 64-bit hashes); returns how many it
    /// deleted.
    fn expire_hashed(&mut self, when: u64, hash: u64, now: u64) -> usize {
        let keys: smallvec::SmallVec<[CompactBytes; 1]> = self
            .map
            .keys_with_hash(hash)
            .map(CompactBytes::from_slice)
            .collect();
        keys.iter()
            .filter(|key| self.expire_entry(when, key, now))
            .count()
    }

    /// Deals with one entry the wheel fired: deletes the key if `when` is still
    /// its deadline, settles its lock's leases if it is a lock, and ignores a
    /// stale entry (TTL changed or key gone since). True if the key was deleted.
    fn expire_entry(&mut self, when: u64, key: &[u8], now: u64) -> bool {
        match self.map.get(key) {
            Some(e) if e.expires_at() == Some(when) => {
                let writes = crate::propagate::writes();
                let old = self.remove_entry(key);
                self.expired_count += 1;
                self.events.log(notify::EXPIRED, "expired", key);
                self.log_expired(key);
                if let Some(mut old) = old {
                    self.let_go(key, &mut old, now);
                }
                crate::propagate::restore_writes(writes);
                true
            }
            // A deadline of the value's own (a lock's lease).
            Some(_) => {
                self.settle(key, now);
                false
            }
            _ => false,
        }
    }

    /// Settles every contended lock (expired leases dropped, waiters granted) and
    /// forgets the ones left without waiters.
    fn settle_waited(&mut self, now: u64) {
        let keys: Vec<Bytes> = self.waited.iter().cloned().collect();
        for key in keys {
            // Its own TTL may have passed: that goes through lazy expiry here.
            self.expire_if_due(&key, now);
            if has_waiters(self.map.get(&key)) {
                self.settle(&key, now);
            }
            if !has_waiters(self.map.get(&key)) {
                self.waited.remove(&key);
            }
        }
    }

    /// Removes every key, telling the watchers of the keys that were live
    /// (as Redis's flushes do: a watched key that did not exist, or had
    /// expired, is not changed by them, and its watch stays). Waiters of
    /// removed locks stay queued and are granted, as after DEL. Only through
    /// [`Db::clear`], which counts the flush as a write and tells client-side
    /// caching once for the database.
    fn clear(&mut self, now: u64) {
        self.dirty = self.dirty.wrapping_add(self.map.len() as u64);
        if let Some(snap) = self.snap.as_deref_mut() {
            snap.preserve_all(&self.map);
        }
        if !self.watchers.is_empty() && !self.map.is_empty() {
            let (map, replaying) = (&self.map, self.hook.is_replaying());
            self.watchers.retain(|key, flags| {
                let live = map
                    .get(key)
                    .is_some_and(|e| replaying || !e.is_expired(now));
                if live {
                    for f in flags.iter() {
                        f.store(true, Ordering::Release);
                    }
                }
                !live
            });
        }
        // An empty shard has no value to log, tell a blocked client about or
        // requeue.
        let requeue = if self.map.is_empty() {
            Vec::new()
        } else {
            self.take_removed(now)
        };
        self.waited.clear();
        self.drop_storage();
        for (key, mut old) in requeue {
            self.keep_waiters(&key, &mut old, now);
        }
    }

    /// Gives back what a shard without keys still has allocated (left by
    /// keys removed one by one), as [`Shard::clear`] does.
    fn release_if_empty(&mut self) {
        if self.map.is_empty() {
            self.drop_storage();
        }
    }

    /// Drops the table, the expiry wheel and backlog (their storage too) and
    /// the shard's deadline: what is left of a shard whose keys are gone. A
    /// shard with none of them allocated (most, in a server reset between
    /// tests) is left as it is.
    fn drop_storage(&mut self) {
        if !(self.map.is_unallocated()
            && self.wheel.is_unallocated()
            && self.pending.capacity() == 0)
        {
            self.map.clear();
            self.wheel.clear();
            self.pending = Vec::new();
        }
        self.pending_at = 0;
        self.volatile = 0;
        self.next_due.store(u64::MAX, Ordering::Release);
    }

    /// [`Shard::clear`]'s walk of the values it removes: held locks' events
    /// and hold times logged, blocked clients told their value is gone, and
    /// the values with waiters taken out, to be requeued once the shard is
    /// empty.
    fn take_removed(&mut self, now: u64) -> Vec<(Vec<u8>, Entry)> {
        // Held locks' events and hold times (a walk without allocation for
        // every other value).
        for (key, e) in self.map.iter() {
            self.events.log_removed(key, &e.value, now, &self.locks);
        }
        // Blocked clients that must hear their value is gone: only the keys
        // someone waits on are looked at.
        for key in self.blocked.waited_keys(self.events.db) {
            if let Some(e) = self.map.get(&key) {
                self.gone(&key, &e.value);
            }
        }
        let waiting: Vec<Vec<u8>> = self
            .map
            .iter()
            .filter(|(_, e)| e.value.has_waiters())
            .map(|(k, _)| k.to_vec())
            .collect();
        let mut requeue = Vec::new();
        for key in waiting {
            if let Some(old) = self.map.remove(&key) {
                requeue.push((key, old));
            }
        }
        requeue
    }

    /// Runs the timers of the value at `key` (a lock's leases: expired holders
    /// dropped, waiters granted), files its new deadlines, and removes the key
    /// if the value is left vacant. Called when one of its deadlines fires and
    /// before every operation on it.
    pub fn settle(&mut self, key: &[u8], now: u64) {
        let locks = self.locks.clone();
        let Some(entry) = self.get_mut_quiet(key, now) else {
            return;
        };
        let effects = entry.value.settle(now, &locks);
        self.apply(key, effects);
    }

    /// Does what an operation on the value at `key` asks ([`Effects`]): tells
    /// watchers, files deadlines, notes a value with waiters, and removes the
    /// key if the value is left vacant.
    pub fn apply(&mut self, key: &[u8], effects: Effects) {
        if self.hook.is_logging()
            && (effects.changed
                || effects.granted > 0
                || !effects.ended.is_empty()
                || !effects.deadlines.is_empty()
                || self.map.get(key).is_some_and(|e| e.value.is_vacant()))
        {
            crate::propagate::note_lock(self.events.db, key);
        }
        for ended in &effects.ended {
            self.events.log_ended(key, ended);
        }
        for _ in 0..effects.granted {
            self.events.log(notify::LOCK, notify::LOCK_ACQUIRED, key);
        }
        if effects.changed {
            self.touch(key);
        }
        for d in effects.deadlines {
            self.schedule(key, d);
        }
        match self.map.get(key) {
            Some(e) if e.value.is_vacant() => {
                self.remove_entry(key);
            }
            Some(e) if e.value.has_waiters() => self.note_waiter(key),
            _ => {}
        }
    }

    /// A value taken out of the keyspace (DEL, its TTL): the events of the
    /// holds that end with it, then what stays for its waiters.
    fn let_go(&mut self, key: &[u8], old: &mut Entry, now: u64) {
        self.events.log_removed(key, &old.value, now, &self.locks);
        self.keep_waiters(key, old, now);
    }

    /// A value taken out of the keyspace that still has waiters (a lock's
    /// queue): what stays for them is put back at the key and settled.
    fn keep_waiters(&mut self, key: &[u8], old: &mut Entry, now: u64) {
        if let Some(rest) = old.value.take_waiters() {
            self.preserve(key);
            self.map.insert(key, Entry::persistent(rest));
            self.mark_occupied();
            self.settle(key, now);
        }
    }

    /// The live value at `key` as type `T`, mutable, without telling watchers:
    /// for an operation that may leave it unchanged (it reports what changed
    /// through [`Shard::apply`] or [`Shard::touch`]).
    pub fn write_quiet<T: Typed>(
        &mut self,
        key: &[u8],
        now: u64,
    ) -> Result<Option<&mut T>, WrongType> {
        match self.get_mut_quiet(key, now) {
            None => Ok(None),
            Some(e) => T::of_mut(&mut e.value).map(Some).ok_or(WrongType),
        }
    }

    /// Logs the end of a hold at `key`, with its holder's loss notice unless
    /// the holder released it.
    pub fn log_ended(&self, key: &[u8], ended: &HoldEnded) {
        self.events.log_ended(key, ended);
    }

    /// Whether writes are logged for the append-only file (a command that
    /// logs several records builds them only then).
    pub fn is_logging(&self) -> bool {
        self.hook.is_logging()
    }

    /// Logs `argv` for the append-only file, run in this shard's database,
    /// in place of the command running (a serve step's pop, ...). Nothing
    /// while the file is off.
    pub fn propagate(&self, argv: impl FnOnce() -> Vec<Bytes>) {
        if self.hook.is_logging() {
            crate::propagate::push(self.events.db, argv());
        }
    }

    /// A lock at `key` changed outside [`Shard::apply`] (a release): marks
    /// it modified and notes it for the append-only file.
    pub fn touch_lock(&mut self, key: &[u8]) {
        if self.hook.is_logging() {
            crate::propagate::note_lock(self.events.db, key);
        }
        self.touch(key);
    }

    /// Marks `key` as modified for `WATCH` and client-side caching.
    pub fn touch(&mut self, key: &[u8]) {
        self.dirty = self.dirty.wrapping_add(1);
        crate::propagate::count_write();
        if self.hook.is_active() {
            note_modified(Modified::Key(Bytes::copy_from_slice(key)));
        }
        if self.watchers.is_empty() {
            return;
        }
        if let Some(flags) = self.watchers.remove(key) {
            for f in flags {
                f.store(true, Ordering::Release);
            }
        }
    }

    /// What locks share across the server (tokens, the longest lease).
    pub fn lock_shared(&self) -> &LockShared {
        &self.locks
    }

    /// Changes made in this shard since start-up (see the field).
    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// Puts a value loaded from a file at `key` (at start-up): filed with its
    /// TTL and its own deadlines (a lock's lease ends and lock-delay end).
    /// Refused, changing nothing, if the key is already here.
    pub fn restore(&mut self, key: &[u8], entry: Entry, now: u64) -> Result<(), Entry> {
        if self.peek(key, now).is_some() {
            return Err(entry);
        }
        let deadlines = entry.value.deadlines();
        self.insert(key, entry, now);
        for d in deadlines {
            self.schedule(key, d);
        }
        Ok(())
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
        self.map.iter().filter(move |(_, e)| !self.expired(e, now))
    }

    /// Whether `e` has expired at `now` (never while the AOF is replayed).
    #[inline]
    fn expired(&self, e: &Entry, now: u64) -> bool {
        e.is_expired(now) && !self.hook.is_replaying()
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

    /// Marks this shard "not yet dumped" at a snapshot's instant (the caller
    /// holds the execution gate exclusively): from now on every change keeps
    /// its key's before-image. False if a snapshot already has it marked.
    pub fn snapshot_mark(&mut self) -> bool {
        if self.snap.is_some() {
            return false;
        }
        self.snap = Some(Box::default());
        true
    }

    /// One slice of the snapshot's walk of this shard: up to `max` slab
    /// positions from where the last slice stopped, each key still holding
    /// its instant's value handed to `emit` (borrowed under this shard's lock:
    /// serialize it quickly), which answers whether the slice goes on. True
    /// once the whole table has been visited (or the shard is not marked).
    pub fn snapshot_visit<E>(
        &mut self,
        max: usize,
        emit: impl FnMut(&[u8], &Entry) -> Result<bool, E>,
    ) -> Result<bool, E> {
        match self.snap.as_deref_mut() {
            Some(snap) => snap.visit(&self.map, max, emit),
            None => Ok(true),
        }
    }

    /// Ends the snapshot here (visited, or abandoned): writes no longer keep
    /// before-images, and the ones kept are returned, owned, for the dumper
    /// to emit after letting go of the lock.
    pub fn snapshot_finish(&mut self) -> impl Iterator<Item = (CompactBytes, Entry)> {
        self.snap
            .take()
            .into_iter()
            .flat_map(|snap| snap.into_saved())
    }
}

fn has_waiters(entry: Option<&Entry>) -> bool {
    entry.is_some_and(|e| e.value.has_waiters())
}

/// One numbered database (`SELECT n`).
#[derive(Debug)]
pub struct Db {
    shards: Box<[Mutex<Shard>]>,
    next_due: Box<[Arc<AtomicU64>]>,
    hasher: ahash::RandomState,
    /// False only when every shard was found empty and no key has gone in
    /// since: see [`Db::may_hold_keys`].
    occupied: Arc<AtomicBool>,
    /// Told of a flush while anyone tracks keys (client-side caching).
    hook: Arc<KeyHook>,
}

/// Several shards of one database locked together, in ascending order.
pub struct ShardSet<'a> {
    db: &'a Db,
    /// Inline for up to 4 shards: most multi-key commands (LMOVE, RENAME,
    /// MSET of a few keys) lock without an allocation.
    guards: smallvec::SmallVec<[(usize, MutexGuard<'a, Shard>); 4]>,
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

impl ShardSet<'_> {
    /// The value at `key` as type `T`, through a shared borrow, so a command can
    /// hold several keys' values at once (see [`Shard::view`]). A key whose
    /// shard was not locked reads as missing (a bug in the command, logged).
    pub fn view<T: Typed>(&self, key: &[u8], now: u64) -> Result<Option<&T>, WrongType> {
        let idx = self.db.shard_index(key);
        match self.guards.binary_search_by_key(&idx, |(i, _)| *i) {
            Ok(pos) => self.guards[pos].1.view(key, now),
            Err(_) => {
                tracing::error!("key read without locking its shard");
                Ok(None)
            }
        }
    }
}

impl Db {
    fn new(
        index: usize,
        timer: &Arc<ExpiryTimer>,
        locks: &Arc<LockShared>,
        notifier: &Arc<Notifier>,
        blocked: &Arc<BlockedKeys>,
        hook: &Arc<KeyHook>,
        now: u64,
    ) -> Self {
        let next_due: Box<[Arc<AtomicU64>]> = (0..SHARDS)
            .map(|_| Arc::new(AtomicU64::new(u64::MAX)))
            .collect();
        let occupied = Arc::new(AtomicBool::new(false));
        let shards = next_due
            .iter()
            .map(|due| {
                let events = ShardEvents {
                    db: index,
                    occupied: occupied.clone(),
                    notifier: notifier.clone(),
                };
                Mutex::new(Shard::new(
                    timer.clone(),
                    locks.clone(),
                    due.clone(),
                    events,
                    blocked.clone(),
                    hook.clone(),
                    now,
                ))
            })
            .collect();
        Db {
            shards,
            next_due,
            hasher: ahash::RandomState::new(),
            occupied,
            hook: hook.clone(),
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
        let mut idx: smallvec::SmallVec<[usize; 4]> =
            keys.iter().map(|k| self.shard_index(k.as_ref())).collect();
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

    /// Locks every shard in order, as a [`ShardSet`]: for a command whose keys
    /// are known only once it reads values (SORT's BY and GET patterns).
    pub fn lock_every(&self) -> ShardSet<'_> {
        ShardSet {
            db: self,
            guards: self.shards.iter().map(|s| s.lock()).enumerate().collect(),
        }
    }

    /// Locks every shard in order: for whole-database commands (FLUSHDB, KEYS, DBSIZE).
    pub fn lock_all(&self) -> smallvec::SmallVec<[MutexGuard<'_, Shard>; SHARDS]> {
        self.shards.iter().map(|s| s.lock()).collect()
    }

    /// FLUSHDB of this database (and each database's part of FLUSHALL):
    /// every shard cleared ([`Shard::clear`]) with all of them locked, so no
    /// command sees it half emptied. A database that has held no key since
    /// it was last emptied (most of them, in a server reset between tests)
    /// is left as it is, unlocked: clearing it would change nothing a client
    /// sees (a watched key that does not exist is not touched by a flush).
    /// A command putting its first key in meanwhile holds that key's shard
    /// and marks the database before letting go: it either waits here for
    /// the flush or comes after it.
    pub fn clear(&self, now: u64) {
        // The flush is a write (it goes to the AOF) even of nothing, and
        // every tracked key is invalid after it.
        crate::propagate::count_write();
        if self.hook.is_active() {
            note_modified(Modified::Flush);
        }
        if !self.occupied.load(Ordering::Acquire) {
            return;
        }
        let mut shards = self.lock_all();
        for shard in shards.iter_mut() {
            shard.clear(now);
        }
        // Locks with waiters stay (granted to the next), so it may still
        // hold keys.
        let empty = shards.iter().all(|s| s.is_empty());
        if empty {
            self.occupied.store(false, Ordering::Release);
        }
    }

    /// Whether a shard of this database, locked, holds a lock.
    fn holds_locks(shards: &[MutexGuard<'_, Shard>]) -> bool {
        shards
            .iter()
            .any(|s| s.map.iter().any(|(_, e)| matches!(e.value, Value::Lock(_))))
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

    /// False only if this database holds no key, without locking a shard:
    /// true from its first new key until [`Db::confirm_empty`] finds every
    /// shard empty (so it may be true of an emptied database, never false of
    /// one with keys). Eviction skips the databases it is false for, as
    /// Redis's skips those whose dictionary is empty.
    pub fn may_hold_keys(&self) -> bool {
        self.occupied.load(Ordering::Relaxed)
    }

    /// Clears the mark of [`Db::may_hold_keys`] if no shard holds a key;
    /// true if none did. The shards are confirmed empty all locked together,
    /// so the mark is never down while a key is in (a flush skips a database
    /// whose mark is down): a key put in later marks it again.
    pub fn confirm_empty(&self) -> bool {
        // One shard at a time first: a database asked about usually holds
        // keys (locks, which eviction does not sample, or keys without a
        // TTL under a volatile policy), and its first such shard answers.
        if self.shards.iter().any(|s| !s.lock().is_empty()) {
            return false;
        }
        let mut shards = self.lock_all();
        if !shards.iter().all(|s| s.is_empty()) {
            return false;
        }
        // What its keys left allocated goes now, as a flush would free it:
        // flushes skip the database from here on.
        for shard in shards.iter_mut() {
            shard.release_if_empty();
        }
        self.occupied.store(false, Ordering::Release);
        true
    }
}

/// Why SWAPDB did not swap.
#[derive(Debug, PartialEq, Eq)]
pub enum SwapRefused {
    /// An index is not a database.
    OutOfRange,
    /// One of the databases holds a lock.
    HoldsLocks,
}

/// The shards of two keys, possibly in two databases, locked together by
/// [`Keyspace::lock_pair`].
pub struct ShardPair<'a> {
    first: MutexGuard<'a, Shard>,
    /// `None` when both keys live in the same shard.
    second: Option<MutexGuard<'a, Shard>>,
    /// Whether `first` is key `a`'s shard.
    a_first: bool,
}

impl ShardPair<'_> {
    /// The shard of key `a`.
    pub fn a(&mut self) -> &mut Shard {
        match (&mut self.second, self.a_first) {
            (Some(second), false) => second,
            _ => &mut self.first,
        }
    }

    /// The shard of key `b`.
    pub fn b(&mut self) -> &mut Shard {
        match (&mut self.second, self.a_first) {
            (Some(second), true) => second,
            _ => &mut self.first,
        }
    }
}

/// All databases of the server.
#[derive(Debug)]
pub struct Keyspace {
    dbs: Box<[Db]>,
    timer: Arc<ExpiryTimer>,
    locks: Arc<LockShared>,
    blocked: Arc<BlockedKeys>,
    /// The shard (over all databases) where the last budgeted expiry step stopped.
    expiry_cursor: AtomicUsize,
    /// Keyspace notification classes and the events shards have logged.
    notifier: Arc<Notifier>,
    /// Client-side caching's hook, shared by every shard.
    hook: Arc<KeyHook>,
    /// Whether a snapshot is running (at most one at a time).
    snapshot_running: AtomicBool,
    /// The code of every function library, in FUNCTION LIST's order, as the
    /// function registry last published it: a snapshot takes it at its
    /// instant (Redis saves libraries with the data).
    function_codes: FunctionCodes,
    /// Changes to the function libraries (FUNCTION LOAD, DELETE, FLUSH,
    /// RESTORE), counted in [`Keyspace::dirty`] as Redis counts them.
    function_changes: AtomicU64,
}

/// The function libraries' code as the registry publishes it for snapshots.
pub type FunctionCodes = Arc<parking_lot::Mutex<Vec<Bytes>>>;

impl Keyspace {
    /// A keyspace of `databases` empty databases; `now` is the clock's time.
    pub fn new(databases: usize, now: u64) -> Self {
        let timer = Arc::new(ExpiryTimer::new());
        let locks = Arc::new(LockShared::new());
        let notifier = Arc::new(Notifier::default());
        let blocked = Arc::new(BlockedKeys::default());
        let hook = Arc::new(KeyHook::default());
        // One key-to-shard hash for every database: shard i of one database
        // holds the same keys shard i of another would (SWAPDB swaps them
        // shard by shard).
        let hasher = ahash::RandomState::new();
        Keyspace {
            dbs: (0..databases.max(1))
                .map(|i| Db {
                    hasher: hasher.clone(),
                    ..Db::new(i, &timer, &locks, &notifier, &blocked, &hook, now)
                })
                .collect(),
            timer,
            locks,
            blocked,
            expiry_cursor: AtomicUsize::new(0),
            notifier,
            hook,
            snapshot_running: AtomicBool::new(false),
            function_codes: FunctionCodes::default(),
            function_changes: AtomicU64::new(0),
        }
    }

    /// Counts one change to the function libraries (for save points and
    /// `rdb_changes_since_last_save`).
    pub fn note_function_change(&self) {
        self.function_changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes to the function libraries since start-up.
    pub fn function_changes(&self) -> u64 {
        self.function_changes.load(Ordering::Relaxed)
    }

    /// Where the function registry publishes its libraries' code.
    pub fn function_codes(&self) -> &FunctionCodes {
        &self.function_codes
    }

    /// Changes made since start-up, over every shard of every database (see
    /// `Shard::dirty`); locks each shard in turn.
    pub fn dirty(&self) -> u64 {
        self.dbs
            .iter()
            .flat_map(|db| db.shards())
            .map(|shard| shard.lock().dirty())
            .fold(self.function_changes(), u64::wrapping_add)
    }

    /// Claims the right to run a snapshot; false if one is running.
    pub fn claim_snapshot(&self) -> bool {
        !self.snapshot_running.swap(true, Ordering::AcqRel)
    }

    /// Whether a snapshot is running (claimed and not yet given back).
    pub fn snapshot_running(&self) -> bool {
        self.snapshot_running.load(Ordering::Acquire)
    }

    /// Gives back what [`Keyspace::claim_snapshot`] claimed.
    pub fn release_snapshot(&self) {
        self.snapshot_running.store(false, Ordering::Release);
    }

    /// The registry of clients blocked on keys, which the shards mark keys
    /// ready in when a value that wakes them leaves.
    pub fn blocked(&self) -> &Arc<BlockedKeys> {
        &self.blocked
    }

    /// Client-side caching's hook on every write.
    pub fn hook(&self) -> &Arc<KeyHook> {
        &self.hook
    }

    /// Database `index`, if it exists.
    pub fn db(&self, index: usize) -> Option<&Db> {
        self.dbs.get(index)
    }

    /// SWAPDB a b: the two databases' keys change places (see
    /// [`Shard::swap_contents`]); clients blocked on keys of either are
    /// looked at again. Refused when either holds a lock: its holders'
    /// sessions and waiters name the database they locked in.
    pub fn swap_dbs(&self, a: usize, b: usize) -> Result<(), SwapRefused> {
        if a >= self.dbs.len() || b >= self.dbs.len() {
            return Err(SwapRefused::OutOfRange);
        }
        if a == b {
            return Ok(());
        }
        let (low, high) = (a.min(b), a.max(b));
        // Databases in index order, each's shards ascending: the order
        // `lock_pair` takes.
        let mut first = self.dbs[low].lock_all();
        let mut second = self.dbs[high].lock_all();
        if Db::holds_locks(&first) || Db::holds_locks(&second) {
            return Err(SwapRefused::HoldsLocks);
        }
        for (x, y) in first.iter_mut().zip(second.iter_mut()) {
            Shard::swap_contents(x, y);
        }
        // The keys changed databases: both may hold some now.
        for db in [low, high] {
            self.dbs[db].occupied.store(true, Ordering::Release);
        }
        first[0].dirty = first[0].dirty.wrapping_add(1);
        crate::propagate::count_write();
        drop((first, second));
        for db in [low, high] {
            for key in self.blocked.waited_keys(db) {
                self.blocked.signal(db, &key);
            }
        }
        Ok(())
    }

    /// Keyspace notification classes and the events shards have logged.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// All databases.
    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }

    /// The shards of key `a` in database `db_a` and key `b` in database `db_b`
    /// (COPY, MOVE), locked in the one order every multi-shard lock follows —
    /// database, then shard — so two commands crossing the same databases in
    /// opposite directions cannot deadlock. A shard both keys share is locked
    /// once. `None` if a database does not exist.
    pub fn lock_pair(&self, db_a: usize, a: &[u8], db_b: usize, b: &[u8]) -> Option<ShardPair<'_>> {
        let (da, db) = (self.dbs.get(db_a)?, self.dbs.get(db_b)?);
        let ia = (db_a, da.shard_index(a));
        let ib = (db_b, db.shard_index(b));
        let lock = |(d, i): (usize, usize)| self.dbs[d].shards[i].lock();
        Some(if ia == ib {
            ShardPair {
                first: lock(ia),
                second: None,
                a_first: true,
            }
        } else if ia < ib {
            let first = lock(ia);
            ShardPair {
                first,
                second: Some(lock(ib)),
                a_first: true,
            }
        } else {
            let first = lock(ib);
            ShardPair {
                first,
                second: Some(lock(ia)),
                a_first: false,
            }
        })
    }

    /// Fencing tokens and lock counters.
    pub fn locks(&self) -> &LockShared {
        &self.locks
    }

    /// The timer the expiry task waits on.
    pub fn timer(&self) -> &ExpiryTimer {
        &self.timer
    }

    /// Deletes every key whose TTL has passed in a shard that has one due, until
    /// nothing due is left; returns how many were removed.
    pub fn expire_due(&self, now: u64) -> usize {
        let mut removed = 0;
        // Granting a waiter can file a lease that is already due (a zero TTL):
        // go round again until nothing due is left; each round consumes waiters.
        for _ in 0..10_000 {
            removed += self.expire_step(now, &mut ExpiryBudget::unlimited());
            if self.timer.next_due() > now {
                break;
            }
        }
        removed
    }

    /// One slice of active expiry within `budget`; returns the keys removed.
    /// Every due shard first takes its due entries into its backlog (while the
    /// budget lasts) and, if it has a backlog, settles its contended locks; then
    /// the backlogs are worked through, round-robin from where the previous step
    /// stopped, until the budget is spent. Shards left due are noted on the timer,
    /// so `timer().next_due() <= now` tells the caller to come back (after letting
    /// other clients run).
    pub fn expire_step(&self, now: u64, budget: &mut ExpiryBudget) -> usize {
        // Reset first: shards still holding deadlines note them again, and a
        // deadline filed concurrently lowers it and wakes the task.
        self.timer.next_due.store(u64::MAX, Ordering::Release);
        let total = self.dbs.len() * SHARDS;
        let shard = |idx: usize| {
            let db = &self.dbs[idx / SHARDS];
            (&db.shards[idx % SHARDS], &db.next_due[idx % SHARDS])
        };
        for idx in 0..total {
            let (s, due) = shard(idx);
            if due.load(Ordering::Acquire) <= now {
                s.lock().take_due(now, budget);
            }
        }
        let start = self.expiry_cursor.load(Ordering::Relaxed) % total;
        let mut removed = 0;
        for k in 0..total {
            let idx = (start + k) % total;
            let (s, due) = shard(idx);
            let due = due.load(Ordering::Acquire);
            if due > now || budget.is_spent() {
                if due != u64::MAX {
                    self.timer.note(due);
                }
                continue;
            }
            removed += s.lock().expire_slice(now, budget);
            if budget.is_spent() {
                self.expiry_cursor.store(idx, Ordering::Relaxed);
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volatile(i: usize, at: u64) -> (Vec<u8>, Entry) {
        let entry = Entry::new(Value::string(b"v"), Some(at));
        (format!("key:{i}").into_bytes(), entry)
    }

    #[test]
    fn a_database_is_marked_by_its_keys_until_found_empty() {
        let now = 1_000;
        let ks = Keyspace::new(3, now);
        let db = ks.db(0).unwrap();
        assert!(!db.may_hold_keys());
        db.lock(b"a")
            .insert(b"a", Entry::persistent(Value::string(b"v")), now);
        assert!(db.may_hold_keys());
        assert!(!db.confirm_empty());
        assert!(db.may_hold_keys(), "a key is left: marked again");
        db.lock(b"a").remove(b"a", now);
        assert!(db.may_hold_keys(), "removing does not unmark");
        assert!(db.confirm_empty());
        assert!(!db.may_hold_keys());
        // Created by typed access, and moved in by SWAPDB.
        let mut shard = db.lock(b"l");
        shard
            .get_or_create::<crate::types::list::List>(b"l", now)
            .unwrap();
        drop(shard);
        assert!(db.may_hold_keys());
        assert!(!ks.db(2).unwrap().may_hold_keys());
        ks.swap_dbs(0, 2).unwrap();
        assert!(ks.db(2).unwrap().may_hold_keys());
        assert!(!ks.db(2).unwrap().confirm_empty());
        assert!(ks.db(0).unwrap().confirm_empty());
    }

    #[test]
    fn a_database_confirmed_empty_gives_back_what_its_keys_left_allocated() {
        let now = 1_000_000;
        let ks = Keyspace::new(1, now);
        let db = ks.db(0).unwrap();
        let (k, e) = volatile(0, now + 10);
        db.lock(&k).insert(&k, e, now);
        assert!(!db.confirm_empty(), "a key is in");
        assert!(db.may_hold_keys());
        assert!(db.lock(&k).remove(&k, now).is_some());
        assert!(!db.lock(&k).map.is_unallocated(), "removal keeps the table");
        assert!(db.confirm_empty());
        assert!(!db.may_hold_keys());
        let shard = db.lock(&k);
        assert!(shard.map.is_unallocated() && shard.wheel.is_unallocated());
        assert_eq!(shard.next_due.load(Ordering::Acquire), u64::MAX);
    }

    #[test]
    fn a_flush_tells_the_watchers_of_live_keys_only() {
        let now = 1_000_000;
        let ks = Keyspace::new(1, now);
        let db = ks.db(0).unwrap();
        let keys: [&[u8]; 3] = [b"live", b"missing", b"expired"];
        let flags: Vec<WatchFlag> = keys.iter().map(|_| WatchFlag::default()).collect();
        db.lock(keys[0])
            .insert(keys[0], Entry::new(Value::string(b"v"), None), now);
        db.lock(keys[2])
            .insert(keys[2], Entry::new(Value::string(b"v"), Some(now - 1)), now);
        for (k, f) in keys.iter().zip(&flags) {
            db.lock(k).watch(k, f);
        }
        assert!(db.may_hold_keys());
        db.clear(now);
        let told: Vec<bool> = flags.iter().map(|f| f.load(Ordering::Acquire)).collect();
        assert_eq!(told, [true, false, false]);
        assert_eq!(db.len(), 0);
        assert!(!db.may_hold_keys(), "emptied: the next flush skips it");
        // The watch of the missing key stays for its next write.
        db.lock(keys[1])
            .insert(keys[1], Entry::new(Value::string(b"v"), None), now);
        assert!(flags[1].load(Ordering::Acquire));
        assert!(db.may_hold_keys());
        db.clear(now);
        assert_eq!(db.len(), 0);
    }

    #[test]
    fn clearing_an_empty_shard_keeps_watches_of_missing_keys_and_drops_its_timers() {
        let now = 1_000_000;
        let ks = Keyspace::new(1, now);
        let db = ks.db(0).unwrap();
        let (k, e) = volatile(0, now + 10);
        let flag = WatchFlag::default();
        {
            let mut shard = db.lock(&k);
            // A key with a TTL, gone again: its timer may stay behind.
            shard.insert(&k, e, now);
            assert!(shard.remove(&k, now).is_some());
            assert_eq!(shard.len(), 0);
            shard.watch(&k, &flag);
        }
        let dirty = ks.dirty();
        db.lock(&k).clear(now);
        assert!(
            !flag.load(Ordering::Acquire),
            "a missing key is not changed"
        );
        assert_eq!(ks.dirty(), dirty, "no key removed, none counted");
        // The watch stays: the key's next write is seen.
        db.lock(&k).touch(&k);
        assert!(flag.load(Ordering::Acquire));
        let due = || db.next_due[db.shard_index(&k)].load(Ordering::Acquire);
        assert_eq!(due(), u64::MAX, "no timer left");
        // A shard with a key takes the other way: the key is counted.
        db.lock(&k).insert(&k, volatile(1, now + 10).1, now);
        let dirty = ks.dirty();
        db.lock(&k).clear(now);
        assert_eq!(ks.dirty(), dirty + 1);
        assert_eq!(db.len(), 0);
        assert_eq!(due(), u64::MAX);
        // A shard never used is left as it is, and works after.
        let fresh = Keyspace::new(1, now);
        let db = fresh.db(0).unwrap();
        let dirty = fresh.dirty();
        for mut shard in db.lock_all() {
            shard.clear(now);
        }
        assert_eq!(fresh.dirty(), dirty);
        db.lock(&k).insert(&k, volatile(2, now + 10).1, now);
        assert_eq!(
            db.next_due[db.shard_index(&k)].load(Ordering::Acquire),
            now + 10
        );
        assert_eq!(db.lock(&k).expire_due(now + 10), 1);
        assert_eq!(db.len(), 0);
    }

    #[test]
    fn spent_budget_leaves_a_backlog_that_later_steps_clear() {
        let now = 1_000_000;
        let ks = Keyspace::new(1, now);
        let db = ks.db(0).unwrap();
        let n = 20_000;
        for i in 0..n {
            let (k, e) = volatile(i, now + 10);
            db.lock(&k).insert(&k, e, now);
        }
        let later = now + 10;
        // A budget with no time left stops after one check's worth of entries.
        let removed = ks.expire_step(later, &mut ExpiryBudget::new(Duration::ZERO));
        assert!(removed < n / 10, "one slice removed {removed}");
        assert!(ks.timer().next_due() <= later, "still due: comes back");
        // Lazy expiry hides what the backlog still holds.
        for i in (0..n).step_by(97) {
            let k = format!("key:{i}");
            assert!(db.lock(k.as_bytes()).get(k.as_bytes(), later).is_none());
        }
        let mut total = removed;
        let mut steps = 1;
        while ks.timer().next_due() <= later {
            total += ks.expire_step(later, &mut ExpiryBudget::new(Duration::ZERO));
            steps += 1;
            assert!(steps < n, "no progress");
        }
        assert!(steps > 10, "worked in slices: {steps}");
        // Keys read above went lazily; the rest actively; none is left.
        assert_eq!(db.len(), 0);
        assert!(total >= n - n / 97 - 1);
        assert_eq!(ks.timer().next_due(), u64::MAX);
    }
}
