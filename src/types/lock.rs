//! The `lock` value type: holders with leases, a FIFO wait queue, fencing tokens.
//!
//! A lock lives at its key like any other value, under the key's shard mutex, so
//! every change to it (acquire, release, lease expiry, DEL, FLUSHDB) is atomic
//! with the rest of the keyspace. Waiting clients are not polled: each waiter
//! holds the receiving end of a oneshot channel, and whoever frees the lock grants
//! the next waiters in queue order in the same critical section.
//!
//! Leases expire through the shard's timing wheel: every lease deadline is filed
//! under the key, and when it fires the shard settles the lock (expired holders
//! dropped, waiters granted). A lock with no holders and no waiters is removed: such a
//! key does not exist.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use std::num::NonZeroU64;

use smallvec::SmallVec;

use super::{CompactBytes, Effects, WrongType};
use crate::metrics::Histogram;
use bytes::Bytes;

/// Why LOCK.ACQUIRE was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// The key holds another type.
    WrongType,
    /// LIMIT differs from the semaphore's (`Some(n)`), or was given for a plain
    /// lock (`None`).
    LimitMismatch(Option<u32>),
}

impl From<WrongType> for LockError {
    fn from(_: WrongType) -> Self {
        LockError::WrongType
    }
}

/// Counters for `INFO locks` and the metrics endpoint: relaxed atomics,
/// a few adds per lock operation and nothing more.
#[derive(Debug)]
pub struct LockStats {
    /// Grants, immediate or after waiting.
    pub acquisitions: AtomicU64,
    /// Grants without waiting.
    pub acquired_immediately: AtomicU64,
    /// Grants to a waiter.
    pub acquired_after_wait: AtomicU64,
    /// Waits that ran out.
    pub wait_timeouts: AtomicU64,
    /// Holders that lost the lock because their lease ran out.
    pub lease_expiries: AtomicU64,
    /// Holds released because the holder's connection closed (SESSION).
    pub session_releases: AtomicU64,
    /// Leases extended (LOCK.EXTEND by a holder).
    pub extends: AtomicU64,
    /// LOCK.RELEASE calls refused: the caller did not hold the lock.
    pub release_refused: AtomicU64,
    /// How long each acquire waited (ms): 0 for an immediate grant, the
    /// time queued for a grant after waiting or a wait that ran out.
    pub wait_ms: Histogram,
    /// How long each hold lasted (ms), from its grant to its release,
    /// lease expiry, session release or deletion.
    pub hold_ms: Histogram,
}

impl Default for LockStats {
    fn default() -> Self {
        LockStats {
            acquisitions: AtomicU64::new(0),
            acquired_immediately: AtomicU64::new(0),
            acquired_after_wait: AtomicU64::new(0),
            wait_timeouts: AtomicU64::new(0),
            lease_expiries: AtomicU64::new(0),
            session_releases: AtomicU64::new(0),
            extends: AtomicU64::new(0),
            release_refused: AtomicU64::new(0),
            wait_ms: Histogram::new(crate::metrics::WAIT_BOUNDS_MS),
            hold_ms: Histogram::new(crate::metrics::HOLD_BOUNDS_MS),
        }
    }
}

impl LockStats {
    /// A hold with fencing token `token` ended at `now` (server clock ms):
    /// its length goes into [`LockStats::hold_ms`]. The grant time is read
    /// from the token, which is at least the grant's `ms << TOKEN_SHIFT`
    /// ([`LockShared::next_token`]); a token issued ahead of the clock
    /// (over 1024 grants in one ms, or raised past it at a restart) reads as
    /// a later grant, so such a hold counts shorter, never longer.
    #[inline]
    pub fn hold_ended(&self, token: u64, now: u64) {
        self.hold_ms
            .observe_ms(now.saturating_sub(token >> TOKEN_SHIFT));
    }
}

/// State shared by all locks of a server: the fencing-token sequence and counters.
#[derive(Debug)]
pub struct LockShared {
    last_token: AtomicU64,
    next_waiter: AtomicU64,
    /// The server's `lock-delay` (ms), for acquires without LOCKDELAY.
    lock_delay: AtomicU32,
    /// The longest lease (ms) granted or extended since start-up, or read
    /// from the file loaded at start-up: a snapshot keeps it, and the next
    /// start's automatic restart grace is this long.
    longest_lease: AtomicU64,
    /// Until when (server clock ms) a key nobody is known to hold is granted
    /// to nobody: the restart grace; 0 for none.
    grace_until: AtomicU64,
    /// Counters.
    pub stats: LockStats,
}

/// Fencing tokens start at the server time in ms shifted left this far. 10 keeps
/// them below 2^53 until the year 2248, so they survive clients and scripts that
/// hold integers as doubles (JavaScript, JSON, Lua 5.1 numbers).
pub const TOKEN_SHIFT: u32 = 10;

impl Default for LockShared {
    fn default() -> Self {
        Self::new()
    }
}

impl LockShared {
    /// Counters at zero; tokens start from the clock.
    pub fn new() -> Self {
        const { assert!(TOKEN_SHIFT <= 10) };
        LockShared {
            last_token: AtomicU64::new(0),
            next_waiter: AtomicU64::new(1),
            lock_delay: AtomicU32::new(0),
            longest_lease: AtomicU64::new(0),
            grace_until: AtomicU64::new(0),
            stats: LockStats::default(),
        }
    }

    /// The next fencing token: strictly greater than every token issued before,
    /// and at least `now_ms << TOKEN_SHIFT`. A restarted server starts above the
    /// tokens of its previous run as long as that run issued fewer than 1024 tokens
    /// per ms on average ahead of the clock, and the clock did not step back across
    /// the restart (see ARCHITECTURE.md).
    pub fn next_token(&self, now_ms: u64) -> u64 {
        let floor = now_ms.saturating_mul(1 << TOKEN_SHIFT);
        let prev = self
            .last_token
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(1).max(floor))
            })
            .unwrap_or(0);
        prev.saturating_add(1).max(floor)
    }

    /// The server's `lock-delay` option (ms): what an acquire without
    /// LOCKDELAY records in its hold.
    pub fn lock_delay(&self) -> u32 {
        self.lock_delay.load(Ordering::Relaxed)
    }

    /// Sets the server's `lock-delay` (start-up and CONFIG SET); holds
    /// already granted keep the delay they were acquired with.
    pub fn set_lock_delay(&self, ms: u32) {
        self.lock_delay.store(ms, Ordering::Relaxed);
    }

    /// The greatest fencing token issued so far (0 before the first): what a
    /// snapshot persists so that tokens after a restart stay above it.
    pub fn high_water(&self) -> u64 {
        self.last_token.load(Ordering::Acquire)
    }

    /// Raises the high-water mark to at least `token` (a file's mark, at
    /// start-up): every token issued after is greater.
    pub fn raise_high_water(&self, token: u64) {
        self.last_token.fetch_max(token, Ordering::AcqRel);
    }

    /// Notes a lease of `ttl_ms` granted or extended (for the restart grace).
    #[inline]
    pub fn note_lease(&self, ttl_ms: u64) {
        if ttl_ms > self.longest_lease.load(Ordering::Relaxed) {
            self.longest_lease.fetch_max(ttl_ms, Ordering::Relaxed);
        }
    }

    /// The longest lease (ms) noted so far.
    pub fn longest_lease(&self) -> u64 {
        self.longest_lease.load(Ordering::Relaxed)
    }

    /// Starts the restart grace: until `until` (server clock ms), a key with
    /// no holder is in a lock-delay that ends then, so nothing a holder from
    /// before the restart may still believe it holds is granted to another.
    pub fn set_restart_grace(&self, until: u64) {
        self.grace_until.store(until, Ordering::Relaxed);
    }

    /// The end of the restart grace, if it lasts past `now`.
    #[inline]
    pub fn grace_until(&self, now: u64) -> Option<u64> {
        let until = self.grace_until.load(Ordering::Relaxed);
        (until > now).then_some(until)
    }

    /// A fresh id for a waiter.
    pub fn next_waiter_id(&self) -> u64 {
        self.next_waiter.fetch_add(1, Ordering::Relaxed)
    }
}

/// The end of a lease of `ttl_ms` starting at `now`: saturating, and never past
/// `i64::MAX`, so PTTL and LOCK.INFO can report it as a Redis integer.
pub fn lease_end(now: u64, ttl_ms: u64) -> u64 {
    now.saturating_add(ttl_ms).min(i64::MAX as u64)
}

/// The end of a lock-delay of `delay_ms` starting at `from`: saturating at
/// `i64::MAX`, as a lease's end.
pub fn delay_end(from: u64, delay_ms: u32) -> u64 {
    lease_end(from, u64::from(delay_ms))
}

/// One holder of a lock (56 bytes: an owner of up to 22 bytes is inline).
#[derive(Debug, Clone)]
pub struct Holder {
    /// The caller's unique token (a UUID, typically).
    pub owner: CompactBytes,
    /// Fencing token given to this holder.
    pub token: u64,
    /// When the lease runs out (server clock ms).
    pub expires_at: u64,
    /// The client whose disconnection releases this hold (SESSION); client
    /// ids start at 1.
    pub session: Option<NonZeroU64>,
    /// Whether this is a shared (reader) hold.
    pub shared: bool,
    /// The lock-delay this hold was acquired with (ms; 0 for none): when it
    /// ends other than by its owner's release, the key is granted to nobody
    /// for this long. Sits in what was padding, so a holder stays 56 bytes.
    pub delay_ms: u32,
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its lease ran out.
    Expired,
    /// The lock was taken out of the keyspace while held: DEL, an overwrite,
    /// FLUSHDB/FLUSHALL, the key's own TTL.
    Deleted,
    /// The connection that acquired it with SESSION closed.
    SessionReleased,
    /// Released for its owner: LOCK.RELEASE, or a waiter that left as it was
    /// granted.
    Released,
}

impl EndReason {
    /// Whether the holder lost the hold (anything but its own release): its
    /// owner is told.
    pub fn is_loss(self) -> bool {
        self != EndReason::Released
    }
}

/// A hold that ended: whose, with which fencing token, and why.
#[derive(Debug, Clone)]
pub struct HoldEnded {
    /// The holder's owner token.
    pub owner: CompactBytes,
    /// Its fencing token.
    pub token: u64,
    /// Why it ended.
    pub why: EndReason,
}

impl PartialEq for HoldEnded {
    fn eq(&self, other: &Self) -> bool {
        self.owner.as_slice() == other.owner.as_slice()
            && self.token == other.token
            && self.why == other.why
    }
}

impl Eq for HoldEnded {}

impl HoldEnded {
    fn of(h: &Holder, why: EndReason) -> Self {
        HoldEnded {
            owner: h.owner.clone(),
            token: h.token,
            why,
        }
    }
}

/// Where a waiter's fencing token goes when it is granted: the connection's
/// inbox, in the server; anything that can take a token, in a test.
pub trait Grant: Send + Sync + std::fmt::Debug {
    /// Delivers the token; false if the waiter is gone (the lock passes on).
    fn send(&self, token: u64) -> bool;
    /// Whether the waiter is gone (its connection closed without cancelling).
    fn is_closed(&self) -> bool;
    /// Tells the waiter the lock is gone (its key now holds another type): it
    /// stops waiting, as at its timeout.
    fn abandon(&self);
}

#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) id: u64,
    pub(crate) owner: Bytes,
    pub(crate) ttl_ms: u64,
    pub(crate) shared: bool,
    pub(crate) session: Option<u64>,
    pub(crate) delay_ms: u32,
    pub(crate) grant: Box<dyn Grant>,
    /// When it joined the queue (server clock ms): its wait is measured
    /// from here.
    pub(crate) queued_at: u64,
}

/// A lock: its holders and the queue of waiters, as [`Lock`] stores it when it
/// is not simple. A holder is inline, and a semaphore's limit and the wait
/// queue live in a second box only while there are any.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) holders: SmallVec<[Holder; 1]>,
    rest: Option<Box<Rest>>,
}

/// The rarer parts of a lock.
#[derive(Debug, Default)]
struct Rest {
    /// LIMIT n of a semaphore; `None` for an exclusive/shared lock.
    limit: Option<u32>,
    waiters: VecDeque<Waiter>,
    /// Until when (server clock ms) the lock is in its lock-delay and grants
    /// nothing new; 0 when it is not.
    delay_until: u64,
}

/// The queue of a lock nobody waits for.
static NO_WAITERS: VecDeque<Waiter> = VecDeque::new();

/// The mode LOCK.INFO reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// One holder at most.
    Exclusive,
    /// Any number of SHARED holders.
    Shared,
    /// Up to LIMIT holders.
    Semaphore,
}

/// A snapshot for LOCK.INFO.
#[derive(Debug, Clone)]
pub struct LockInfo {
    /// Mode.
    pub mode: LockMode,
    /// LIMIT of a semaphore.
    pub limit: Option<u32>,
    /// Holders.
    pub holders: Vec<Holder>,
    /// Number of queued waiters.
    pub waiters: usize,
    /// The waiters, first come first.
    pub queue: Vec<Queued>,
    /// The end of the lock-delay the key is in (server clock ms), if any.
    pub delay_until: Option<u64>,
}

/// A waiter as LOCK.LIST and the status page show it.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The owner token it asked with.
    pub owner: Bytes,
    /// Whether it asked for a SHARED hold.
    pub shared: bool,
    /// When it joined the queue (server clock ms).
    pub since: u64,
}

/// What LOCK.ACQUIRE asks for.
#[derive(Debug)]
pub struct AcquireRequest {
    /// Owner token.
    pub owner: Bytes,
    /// Lease length.
    pub ttl_ms: u64,
    /// SHARED.
    pub shared: bool,
    /// LIMIT n.
    pub limit: Option<u32>,
    /// The client id for SESSION.
    pub session: Option<u64>,
    /// The lock-delay of the hold (LOCKDELAY, or the server's `lock-delay`).
    pub delay_ms: u32,
    /// To queue when the lock is not free: the waiter's id (from
    /// [`LockShared::next_waiter_id`]) and where its grant goes.
    pub wait: Option<(u64, Box<dyn Grant>)>,
}

/// What an acquire attempt did.
#[derive(Debug)]
pub enum Acquired {
    /// Granted now, with this fencing token.
    Granted(u64),
    /// Queued: the token will go to the request's [`Grant`].
    Queued,
    /// Not free and the caller does not wait.
    Busy,
}

impl State {
    /// LIMIT n of a semaphore; `None` for an exclusive/shared lock.
    pub(crate) fn limit(&self) -> Option<u32> {
        self.rest.as_ref().and_then(|r| r.limit)
    }

    /// The wait queue, first come first.
    pub(crate) fn waiters(&self) -> &VecDeque<Waiter> {
        self.rest.as_ref().map_or(&NO_WAITERS, |r| &r.waiters)
    }

    fn waiters_mut(&mut self) -> &mut VecDeque<Waiter> {
        &mut self.rest.get_or_insert_with(Box::default).waiters
    }

    /// Drops the second box once it holds nothing.
    fn tidy(&mut self) {
        if self
            .rest
            .as_ref()
            .is_some_and(|r| r.limit.is_none() && r.waiters.is_empty() && r.delay_until == 0)
        {
            self.rest = None;
        }
    }

    pub(crate) fn mode(&self) -> LockMode {
        if self.limit().is_some() {
            LockMode::Semaphore
        } else if self.holders.first().is_some_and(|h| h.shared) {
            LockMode::Shared
        } else {
            LockMode::Exclusive
        }
    }

    /// Whether a request of this kind could be granted given the current holders
    /// (queue order is the caller's concern).
    pub(crate) fn compatible(&self, shared: bool) -> bool {
        match self.limit() {
            Some(limit) => self.holders.len() < limit as usize,
            None if shared => self.holders.iter().all(|h| h.shared),
            None => self.holders.is_empty(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.holders.is_empty() && self.waiters().is_empty() && self.delay_until().is_none()
    }

    /// The end of the lock-delay the lock is in, if any (it may have passed
    /// until the lock is next settled).
    pub fn delay_until(&self) -> Option<u64> {
        self.rest
            .as_ref()
            .map(|r| r.delay_until)
            .filter(|&t| t != 0)
    }

    /// Whether the lock is in its lock-delay at `now`: no new hold is granted.
    fn in_delay(&self, now: u64) -> bool {
        self.delay_until().is_some_and(|t| t > now)
    }

    /// Puts the lock in its lock-delay until `until` (or keeps a later one);
    /// returns the new end when it moved (a deadline to file), `None` when
    /// `until` has passed already or an existing delay lasts longer.
    pub fn start_delay(&mut self, until: u64, now: u64) -> Option<u64> {
        let until = until.min(i64::MAX as u64);
        if until <= now || self.delay_until().is_some_and(|t| t >= until) {
            return None;
        }
        self.rest.get_or_insert_with(Box::default).delay_until = until;
        Some(until)
    }

    /// Ends a lock-delay that has run out by `now`; true if one did.
    fn end_delay(&mut self, now: u64) -> bool {
        match self.rest.as_mut() {
            Some(r) if r.delay_until != 0 && r.delay_until <= now => {
                r.delay_until = 0;
                self.tidy();
                true
            }
            _ => false,
        }
    }

    /// Drops holders whose lease has run out; returns them, in holder order,
    /// and the latest end of their lock-delays (0 if none had one). Allocates
    /// only when one has.
    pub(crate) fn expire_holders(&mut self, now: u64) -> (Vec<HoldEnded>, u64) {
        let mut ended = Vec::new();
        let mut delay = 0;
        self.holders.retain(|h| {
            let live = h.expires_at > now;
            if !live {
                ended.push(HoldEnded::of(h, EndReason::Expired));
                if h.delay_ms > 0 {
                    // From the moment the lease ran out, however late it is
                    // noticed: that is when its holder stopped believing.
                    delay = delay.max(delay_end(h.expires_at, h.delay_ms));
                }
            }
            live
        });
        (ended, delay)
    }

    /// Grants queued waiters in order while the front one is compatible; returns
    /// the new lease deadlines to file on the wheel and how many new holds
    /// were granted (a renewal is not one).
    pub(crate) fn grant_waiters(
        &mut self,
        now: u64,
        shared: &LockShared,
    ) -> (smallvec::SmallVec<[u64; 2]>, u32) {
        let mut deadlines = smallvec::SmallVec::new();
        let mut granted = 0u32;
        while let Some(front) = self.rest.as_ref().and_then(|r| r.waiters.front()) {
            if front.grant.is_closed() {
                self.waiters_mut().pop_front();
                continue;
            }
            let holders = &mut self.holders;
            if let Some(h) = holders
                .iter_mut()
                .find(|h| h.owner.as_slice() == &front.owner[..])
            {
                // The owner already holds (it asked twice): renew, same token.
                let expires_at = lease_end(now, front.ttl_ms);
                h.expires_at = h.expires_at.max(expires_at);
                h.session = front.session.and_then(NonZeroU64::new);
                h.delay_ms = front.delay_ms;
                let (token, expires_at) = (h.token, h.expires_at);
                if let Some(w) = self.waiters_mut().pop_front() {
                    w.grant.send(token);
                }
                deadlines.push(expires_at);
                continue;
            }
            if self.in_delay(now) || !self.compatible(front.shared) {
                break;
            }
            let Some(w) = self.waiters_mut().pop_front() else {
                break;
            };
            let token = shared.next_token(now);
            let expires_at = lease_end(now, w.ttl_ms);
            if !w.grant.send(token) {
                // The waiter left as we granted: the lock passes on.
                continue;
            }
            shared.note_lease(w.ttl_ms);
            shared.stats.acquisitions.fetch_add(1, Ordering::Relaxed);
            shared
                .stats
                .acquired_after_wait
                .fetch_add(1, Ordering::Relaxed);
            shared
                .stats
                .wait_ms
                .observe_ms(now.saturating_sub(w.queued_at));
            self.holders.push(Holder {
                owner: CompactBytes::from_slice(&w.owner),
                token,
                expires_at,
                shared: w.shared,
                session: w.session.and_then(NonZeroU64::new),
                delay_ms: w.delay_ms,
            });
            granted = granted.saturating_add(1);
            deadlines.push(expires_at);
        }
        self.tidy();
        (deadlines, granted)
    }

    /// Drops the holders whose lease has run out (a lock-delay they were
    /// acquired with starts), ends a lock-delay that has run out, and grants
    /// the waiters that can now hold. Run before every lock operation and when
    /// a lease or a delay ends. The holds that ended (leases run out) and the
    /// grants are reported in the [`Effects`], for the keyspace to raise their
    /// events; a delay's end is among its deadlines.
    pub fn settle(&mut self, now: u64, shared: &LockShared) -> Effects {
        let (ended, delay) = self.expire_holders(now);
        let delayed = if delay > 0 {
            self.start_delay(delay, now)
        } else {
            None
        };
        let delay_over = self.end_delay(now);
        let grace = self.hold_for_grace(now, shared);
        let (mut deadlines, granted) = self.grant_waiters(now, shared);
        deadlines.extend(delayed);
        deadlines.extend(grace);
        if !ended.is_empty() {
            shared
                .stats
                .lease_expiries
                .fetch_add(ended.len() as u64, Ordering::Relaxed);
            for e in &ended {
                shared.stats.hold_ended(e.token, now);
            }
        }
        Effects {
            changed: !ended.is_empty() || !deadlines.is_empty() || delay_over,
            deadlines,
            ended,
            granted,
        }
    }

    /// A new lock for LOCK.ACQUIRE: a semaphore of `limit` holders, or a plain
    /// lock.
    pub fn set_limit(&mut self, limit: Option<u32>) {
        if limit.is_some() || self.rest.is_some() {
            self.rest.get_or_insert_with(Box::default).limit = limit;
        }
    }

    /// LOCK.ACQUIRE on a settled lock: grants, queues, or reports it busy. A
    /// holder asking again renews its lease and gets its token back.
    pub fn acquire(
        &mut self,
        req: AcquireRequest,
        now: u64,
        shared: &LockShared,
    ) -> Result<(Acquired, Effects), LockError> {
        let expires_at = lease_end(now, req.ttl_ms);
        if let Some(h) = self
            .holders
            .iter_mut()
            .find(|h| h.owner.as_slice() == &req.owner[..])
        {
            h.expires_at = expires_at;
            // The renewing request's SESSION and lock-delay decide, as it is
            // the latest word on what should end the hold and what follows.
            h.session = req.session.and_then(NonZeroU64::new);
            h.delay_ms = req.delay_ms;
            shared.note_lease(req.ttl_ms);
            let renewed = Effects {
                changed: false,
                deadlines: smallvec::smallvec![expires_at],
                ..Effects::default()
            };
            return Ok((Acquired::Granted(h.token), renewed));
        }
        if self.limit() != req.limit {
            return Err(LockError::LimitMismatch(self.limit()));
        }
        let grace: smallvec::SmallVec<[u64; 2]> =
            self.hold_for_grace(now, shared).into_iter().collect();
        if self.waiters().is_empty() && !self.in_delay(now) && self.compatible(req.shared) {
            let token = shared.next_token(now);
            shared.note_lease(req.ttl_ms);
            self.holders.push(Holder {
                owner: CompactBytes::from_slice(&req.owner),
                token,
                expires_at,
                shared: req.shared,
                session: req.session.and_then(NonZeroU64::new),
                delay_ms: req.delay_ms,
            });
            shared.stats.acquisitions.fetch_add(1, Ordering::Relaxed);
            shared
                .stats
                .acquired_immediately
                .fetch_add(1, Ordering::Relaxed);
            shared.stats.wait_ms.observe_ms(0);
            let granted = Effects {
                changed: true,
                deadlines: smallvec::smallvec![expires_at],
                ended: Vec::new(),
                granted: 1,
            };
            return Ok((Acquired::Granted(token), granted));
        }
        let waited = Effects {
            changed: !grace.is_empty(),
            deadlines: grace,
            ..Effects::default()
        };
        let Some((id, grant)) = req.wait else {
            return Ok((Acquired::Busy, waited));
        };
        self.waiters_mut().push_back(Waiter {
            id,
            owner: req.owner,
            ttl_ms: req.ttl_ms,
            shared: req.shared,
            session: req.session,
            delay_ms: req.delay_ms,
            grant,
            queued_at: now,
        });
        Ok((Acquired::Queued, waited))
    }

    /// During the restart grace, a lock nobody holds starts a lock-delay
    /// that ends with the grace (see [`LockShared::set_restart_grace`]);
    /// the deadline to file, if it started one.
    fn hold_for_grace(&mut self, now: u64, shared: &LockShared) -> Option<u64> {
        if !self.holders.is_empty() {
            return None;
        }
        let until = shared.grace_until(now)?;
        self.start_delay(until, now)
    }

    /// LOCK.RELEASE: the fencing token of `owner`'s hold, which it no
    /// longer has; `None` if it did not hold the lock.
    pub fn release(&mut self, owner: &[u8]) -> Option<u64> {
        let at = self
            .holders
            .iter()
            .position(|h| h.owner.as_slice() == owner)?;
        Some(self.holders.remove(at).token)
    }

    /// LOCK.EXTEND: the new lease end of `owner`, `ttl_ms` from now; `None` if
    /// it does not hold the lock.
    pub fn extend(&mut self, owner: &[u8], ttl_ms: u64, now: u64) -> Option<u64> {
        let h = self
            .holders
            .iter_mut()
            .find(|h| h.owner.as_slice() == owner)?;
        h.expires_at = lease_end(now, ttl_ms);
        Some(h.expires_at)
    }

    /// LOCK.VALIDATE: whether `token` belongs to a current holder.
    pub fn validates(&self, token: u64) -> bool {
        self.holders.iter().any(|h| h.token == token)
    }

    /// Takes waiter `id` out of the queue; false if it is not queued (granted,
    /// or gone).
    pub fn cancel_wait(&mut self, id: u64) -> bool {
        let Some(rest) = self.rest.as_mut() else {
            return false;
        };
        let before = rest.waiters.len();
        rest.waiters.retain(|w| w.id != id);
        let removed = rest.waiters.len() < before;
        self.tidy();
        removed
    }

    /// Releases every hold of `client` (SESSION) and the hold of `owner`, if
    /// given, at `now`; returns the holds released, a SESSION hold as
    /// [`EndReason::SessionReleased`], the owner's as [`EndReason::Released`],
    /// and the end of the lock-delay a lost SESSION hold started (a deadline to
    /// file), if it did.
    pub fn release_client(
        &mut self,
        client: Option<u64>,
        owner: Option<&[u8]>,
        now: u64,
    ) -> (SmallVec<[HoldEnded; 1]>, Option<u64>) {
        let mut ended = SmallVec::new();
        let mut delay = 0;
        self.holders.retain(|h| {
            let by_session = client.is_some() && h.session.map(NonZeroU64::get) == client;
            let by_owner = owner.is_some_and(|o| h.owner.as_slice() == o);
            if by_owner {
                ended.push(HoldEnded::of(h, EndReason::Released));
            } else if by_session {
                ended.push(HoldEnded::of(h, EndReason::SessionReleased));
                delay = delay.max(delay_end(now, h.delay_ms));
            }
            !(by_session || by_owner)
        });
        (ended, self.start_delay(delay, now))
    }

    /// The holds that end because the lock is taken out of the keyspace at
    /// `now` (DEL, an overwrite, FLUSHDB, its key's TTL): each as
    /// [`EndReason::Deleted`], or [`EndReason::Expired`] if its lease had run
    /// out already and was not yet settled.
    pub fn removed_holds(&self, now: u64) -> Vec<HoldEnded> {
        self.holders
            .iter()
            .map(|h| {
                let why = if h.expires_at > now {
                    EndReason::Deleted
                } else {
                    EndReason::Expired
                };
                HoldEnded::of(h, why)
            })
            .collect()
    }

    /// Whether clients wait in the queue.
    pub fn has_waiters(&self) -> bool {
        !self.waiters().is_empty()
    }

    /// The queue of a lock taken out of the keyspace (DEL, FLUSHDB, a key TTL,
    /// an overwrite), as a lock with no holders that stays at the key for them.
    /// The key's removal ends a lock-delay: the queue is served at once.
    pub fn take_waiters(&mut self) -> Option<State> {
        let mut rest = self.rest.take()?;
        if rest.waiters.is_empty() {
            self.rest = Some(rest);
            return None;
        }
        rest.delay_until = 0;
        Some(State {
            holders: SmallVec::new(),
            rest: Some(rest),
        })
    }

    /// The latest lease deadline or lock-delay end, for PTTL: until then the
    /// key stays even if nobody takes it.
    pub fn longest_lease(&self) -> Option<u64> {
        self.holders
            .iter()
            .map(|h| h.expires_at)
            .chain(self.delay_until())
            .max()
    }

    /// Every deadline of its own: each holder's lease end and the end of
    /// the lock-delay the key is in (what a lock loaded from a file files).
    pub fn deadlines(&self) -> Vec<u64> {
        self.holders
            .iter()
            .map(|h| h.expires_at)
            .chain(self.delay_until().filter(|&t| t > 0))
            .collect()
    }

    /// Empties the queue, telling every waiter the lock is gone; returns how
    /// many there were.
    pub fn abandon_waiters(&mut self) -> usize {
        let Some(rest) = self.rest.as_mut() else {
            return 0;
        };
        let waiters = std::mem::take(&mut rest.waiters);
        for w in &waiters {
            w.grant.abandon();
        }
        self.tidy();
        waiters.len()
    }

    /// A snapshot for LOCK.INFO.
    pub fn info(&self) -> LockInfo {
        LockInfo {
            mode: self.mode(),
            limit: self.limit(),
            holders: self.holders.to_vec(),
            waiters: self.waiters().len(),
            queue: self
                .waiters()
                .iter()
                .map(|w| Queued {
                    owner: w.owner.clone(),
                    shared: w.shared,
                    since: w.queued_at,
                })
                .collect(),
            delay_until: self.delay_until(),
        }
    }

    /// Number of holders and waiters, for INFO.
    pub fn counts(&self) -> (usize, usize) {
        (self.holders.len(), self.waiters().len())
    }
}

/// A lock as a key stores it: 16 bytes in the key's value. The common lock,
/// one holder and nobody waiting, is [`Simple`](Repr::Simple): one allocation
/// exactly as long as the fencing token, the lease end, a flags byte, the
/// SESSION client if any and the owner (33 bytes for a 16-byte owner, a
/// 48-byte heap block, where a boxed [`State`] takes 80). Any other lock is a boxed [`State`]. Operations
/// work on a [`State`]: a simple lock is decoded for them and stored back in
/// whichever form fits.
#[derive(Debug)]
pub struct Lock(Repr);

#[derive(Debug)]
enum Repr {
    /// Empty, or the one holder's encoding ([`encode_simple`]).
    Simple(Box<[u8]>),
    Full(Box<State>),
}

impl Default for Lock {
    fn default() -> Self {
        Lock(Repr::Simple(Box::default()))
    }
}

/// Flags byte of a simple lock: the holder is SHARED.
const SIMPLE_SHARED: u8 = 1;
/// Flags byte of a simple lock: a SESSION client id follows.
const SIMPLE_SESSION: u8 = 2;
/// Flags byte of a simple lock: the hold's lock-delay (4 bytes) follows the
/// session, if any. A hold without one costs no byte more.
const SIMPLE_DELAY: u8 = 4;

/// The encoding of a lock whose only content is one holder (token, lease end,
/// flags, session if any, owner); `None` for a lock with more.
fn encode_simple(state: &State) -> Option<SmallVec<[u8; 64]>> {
    if state.rest.is_some() || state.holders.len() > 1 {
        return None;
    }
    let Some(h) = state.holders.first() else {
        return Some(SmallVec::new());
    };
    let owner = h.owner.as_slice();
    let mut out = SmallVec::with_capacity(
        17 + 8 * usize::from(h.session.is_some()) + 4 * usize::from(h.delay_ms > 0) + owner.len(),
    );
    out.extend_from_slice(&h.token.to_le_bytes());
    out.extend_from_slice(&h.expires_at.to_le_bytes());
    let flags = if h.shared { SIMPLE_SHARED } else { 0 }
        | if h.session.is_some() {
            SIMPLE_SESSION
        } else {
            0
        }
        | if h.delay_ms > 0 { SIMPLE_DELAY } else { 0 };
    out.push(flags);
    if let Some(s) = h.session {
        out.extend_from_slice(&s.get().to_le_bytes());
    }
    if h.delay_ms > 0 {
        out.extend_from_slice(&h.delay_ms.to_le_bytes());
    }
    out.extend_from_slice(owner);
    Some(out)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(b) = bytes.get(at..at + 8) {
        word.copy_from_slice(b);
    }
    u64::from_le_bytes(word)
}

/// The state a simple lock's encoding stands for.
fn decode_simple(bytes: &[u8]) -> State {
    let mut state = State::default();
    let Some(&flags) = bytes.get(16) else {
        return state;
    };
    let (session, mut owner_at) = if flags & SIMPLE_SESSION != 0 {
        (NonZeroU64::new(read_u64(bytes, 17)), 25)
    } else {
        (None, 17)
    };
    let mut delay_ms = 0;
    if flags & SIMPLE_DELAY != 0 {
        let mut word = [0u8; 4];
        if let Some(b) = bytes.get(owner_at..owner_at + 4) {
            word.copy_from_slice(b);
        }
        delay_ms = u32::from_le_bytes(word);
        owner_at += 4;
    }
    state.holders.push(Holder {
        owner: CompactBytes::from_slice(bytes.get(owner_at..).unwrap_or_default()),
        token: read_u64(bytes, 0),
        expires_at: read_u64(bytes, 8),
        session,
        shared: flags & SIMPLE_SHARED != 0,
        delay_ms,
    });
    state
}

impl Lock {
    /// A lock rebuilt from a snapshot (an RDB file): these holders, with
    /// their tokens and lease ends, this LIMIT, and no waiters.
    pub fn restored(limit: Option<u32>, holders: impl IntoIterator<Item = Holder>) -> Lock {
        let mut state = State::default();
        state.holders.extend(holders);
        if limit.is_some() {
            state.rest = Some(Box::new(Rest {
                limit,
                waiters: VecDeque::new(),
                delay_until: 0,
            }));
        }
        Lock::from_state(state)
    }

    fn from_state(state: State) -> Lock {
        match encode_simple(&state) {
            Some(bytes) => Lock(Repr::Simple(bytes.as_slice().into())),
            None => Lock(Repr::Full(Box::new(state))),
        }
    }

    /// Runs `f` on the state, for reading.
    fn view<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        match &self.0 {
            Repr::Simple(bytes) => f(&decode_simple(bytes)),
            Repr::Full(state) => f(state),
        }
    }

    /// Runs `f` on the state and stores the result back in the form that fits
    /// (a simple lock whose encoding did not change keeps its allocation).
    fn edit<R>(&mut self, f: impl FnOnce(&mut State) -> R) -> R {
        match &mut self.0 {
            Repr::Simple(bytes) => {
                let mut state = decode_simple(bytes);
                let out = f(&mut state);
                // Encoded on the stack: a settle that changes nothing (before
                // every operation) allocates nothing.
                match encode_simple(&state) {
                    Some(new) if new.as_slice() == &bytes[..] => {}
                    Some(new) => *bytes = new.as_slice().into(),
                    None => self.0 = Repr::Full(Box::new(state)),
                }
                out
            }
            Repr::Full(state) => {
                let out = f(state);
                if let Some(bytes) = encode_simple(state) {
                    self.0 = Repr::Simple(bytes.as_slice().into());
                }
                out
            }
        }
    }

    /// A copy with the holders and the limit, without the waiters (a
    /// snapshot keeps what a restart can restore: holds, not connections).
    pub fn snapshot_copy(&self) -> Lock {
        self.view(|s| {
            let limit = s.rest.as_ref().and_then(|r| r.limit);
            let delay_until = s.rest.as_ref().map_or(0, |r| r.delay_until);
            let rest = (limit.is_some() || delay_until != 0).then(|| {
                Box::new(Rest {
                    limit,
                    waiters: VecDeque::new(),
                    delay_until,
                })
            });
            Lock::from_state(State {
                holders: s.holders.clone(),
                rest,
            })
        })
    }

    /// The holders.
    #[cfg(test)]
    pub(crate) fn holders(&self) -> SmallVec<[Holder; 1]> {
        self.view(|s| s.holders.clone())
    }

    /// LIMIT n of a semaphore; `None` for an exclusive/shared lock.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> Option<u32> {
        self.view(State::limit)
    }

    /// Whether the lock has neither holders nor waiters.
    pub(crate) fn is_empty(&self) -> bool {
        self.view(State::is_empty)
    }

    /// Whether the first waiter is still there and could hold now, the lock
    /// being out of any lock-delay (which a settled lock never leaves so).
    #[cfg(test)]
    pub(crate) fn front_waiter_grantable(&self, now: u64) -> bool {
        self.view(|s| {
            !s.in_delay(now)
                && s.waiters()
                    .front()
                    .is_some_and(|w| s.compatible(w.shared) && !w.grant.is_closed())
        })
    }

    /// See [`State::settle`].
    pub fn settle(&mut self, now: u64, shared: &LockShared) -> Effects {
        self.edit(|s| s.settle(now, shared))
    }

    /// See [`State::set_limit`].
    pub fn set_limit(&mut self, limit: Option<u32>) {
        self.edit(|s| s.set_limit(limit))
    }

    /// See [`State::acquire`].
    pub fn acquire(
        &mut self,
        req: AcquireRequest,
        now: u64,
        shared: &LockShared,
    ) -> Result<(Acquired, Effects), LockError> {
        self.edit(|s| s.acquire(req, now, shared))
    }

    /// See [`State::release`].
    pub fn release(&mut self, owner: &[u8]) -> Option<u64> {
        self.edit(|s| s.release(owner))
    }

    /// See [`State::extend`].
    pub fn extend(&mut self, owner: &[u8], ttl_ms: u64, now: u64) -> Option<u64> {
        self.edit(|s| s.extend(owner, ttl_ms, now))
    }

    /// Whether client `client` has a SESSION hold here.
    pub fn held_by_session(&self, client: u64) -> bool {
        self.view(|s| {
            s.holders
                .iter()
                .any(|h| h.session.map(NonZeroU64::get) == Some(client))
        })
    }

    /// See [`State::validates`].
    pub fn validates(&self, token: u64) -> bool {
        self.view(|s| s.validates(token))
    }

    /// See [`State::cancel_wait`].
    pub fn cancel_wait(&mut self, id: u64) -> bool {
        self.edit(|s| s.cancel_wait(id))
    }

    /// See [`State::release_client`].
    pub fn release_client(
        &mut self,
        client: Option<u64>,
        owner: Option<&[u8]>,
        now: u64,
    ) -> (SmallVec<[HoldEnded; 1]>, Option<u64>) {
        self.edit(|s| s.release_client(client, owner, now))
    }

    /// See [`State::delay_until`]; `None` (no decoding) for a simple lock,
    /// which is never in a delay.
    pub fn delay_until(&self) -> Option<u64> {
        match &self.0 {
            Repr::Simple(_) => None,
            Repr::Full(s) => s.delay_until(),
        }
    }

    /// Puts the key in its lock-delay until `until` (server clock ms) without
    /// a hold ending: nothing new is granted before then, waiters stay queued,
    /// and a lock nobody holds stays as a key until it ends. For a restart,
    /// which must delay every lock whose holders may still believe they
    /// hold. The returned [`Effects`] (the deadline of the delay's end) go to
    /// `Shard::apply`, as an operation's do; a later delay already there is
    /// kept.
    pub fn delay(&mut self, until: u64, now: u64) -> Effects {
        let filed = self.edit(|s| s.start_delay(until, now));
        Effects {
            changed: filed.is_some(),
            deadlines: filed.into_iter().collect(),
            ..Effects::default()
        }
    }

    /// See [`State::removed_holds`]; empty (no allocation) for a lock nobody
    /// holds.
    pub fn removed_holds(&self, now: u64) -> Vec<HoldEnded> {
        match &self.0 {
            Repr::Simple(bytes) if bytes.is_empty() => Vec::new(),
            _ => self.view(|s| s.removed_holds(now)),
        }
    }

    /// Whether clients wait in the queue (a simple lock has no queue).
    pub fn has_waiters(&self) -> bool {
        matches!(&self.0, Repr::Full(s) if s.has_waiters())
    }

    /// See [`State::take_waiters`].
    pub fn take_waiters(&mut self) -> Option<Lock> {
        match &mut self.0 {
            Repr::Simple(_) => None,
            Repr::Full(s) => s.take_waiters().map(Lock::from_state),
        }
    }

    /// See [`State::abandon_waiters`].
    pub fn abandon_waiters(&mut self) -> usize {
        match &mut self.0 {
            Repr::Simple(_) => 0,
            Repr::Full(s) => s.abandon_waiters(),
        }
    }

    /// See [`State::longest_lease`].
    pub fn longest_lease(&self) -> Option<u64> {
        self.view(State::longest_lease)
    }

    /// See [`State::deadlines`].
    pub fn deadlines(&self) -> Vec<u64> {
        self.view(State::deadlines)
    }

    /// See [`State::info`].
    pub fn info(&self) -> LockInfo {
        self.view(State::info)
    }

    /// See [`State::counts`].
    pub fn counts(&self) -> (usize, usize) {
        match &self.0 {
            Repr::Simple(bytes) => (usize::from(!bytes.is_empty()), 0),
            Repr::Full(s) => s.counts(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_one_small_allocation() {
        // Holder and lock sizes bound a held lock's memory (benches/rss.py).
        assert_eq!(std::mem::size_of::<Holder>(), 56);
        assert_eq!(std::mem::size_of::<State>(), 72);
        assert_eq!(std::mem::size_of::<Lock>(), 16);
    }

    fn req(owner: &str, shared: bool, session: Option<u64>) -> AcquireRequest {
        AcquireRequest {
            owner: Bytes::copy_from_slice(owner.as_bytes()),
            ttl_ms: 1_000,
            shared,
            limit: None,
            session,
            delay_ms: 0,
            wait: None,
        }
    }

    fn is_simple(lock: &Lock) -> bool {
        matches!(lock.0, Repr::Simple(_))
    }

    #[test]
    fn a_lock_with_one_holder_is_one_exact_allocation_and_decodes_back() {
        let shared = LockShared::new();
        let long = "a-uuid-like-owner-0123456789abcdef01234";
        for (owner, is_shared, session) in [
            ("owner-0000000001", false, None),
            ("o", true, Some(7)),
            (long, false, Some(u64::MAX)),
            ("", false, None),
        ] {
            let mut lock = Lock::default();
            assert!(lock.is_empty() && is_simple(&lock));
            let (got, effects) = lock
                .acquire(req(owner, is_shared, session), 5, &shared)
                .unwrap();
            let Acquired::Granted(token) = got else {
                panic!("granted")
            };
            assert!(is_simple(&lock), "{owner}");
            if let Repr::Simple(bytes) = &lock.0 {
                let session_bytes = if session.is_some() { 8 } else { 0 };
                assert_eq!(bytes.len(), 17 + session_bytes + owner.len());
            }
            assert_eq!(effects.deadlines.as_slice(), &[1_005]);
            let info = lock.info();
            let h = &info.holders[0];
            assert_eq!(h.owner.as_slice(), owner.as_bytes());
            assert_eq!((h.token, h.expires_at, h.shared), (token, 1_005, is_shared));
            assert_eq!(h.session.map(NonZeroU64::get), session);
            assert!(lock.validates(token) && !lock.validates(token + 1));
            assert_eq!(lock.counts(), (1, 0));
            assert_eq!(lock.extend(owner.as_bytes(), 10, 100), Some(110));
            assert_eq!(lock.longest_lease(), Some(110));
            assert!(lock.release(owner.as_bytes()).is_some());
            assert!(lock.is_empty() && is_simple(&lock));
        }
    }

    #[test]
    fn a_lock_grows_out_of_the_simple_form_and_back() {
        let shared = LockShared::new();
        let mut lock = Lock::default();
        lock.acquire(req("a", true, None), 0, &shared).unwrap();
        lock.acquire(req("b", true, None), 0, &shared).unwrap();
        assert!(!is_simple(&lock), "two holders");
        assert_eq!(lock.counts(), (2, 0));
        assert!(lock.release(b"a").is_some());
        assert!(is_simple(&lock), "one holder again");
        let (grant, mut rx) = test_grant();
        let mut waiting = req("w", false, None);
        waiting.wait = Some((1, grant));
        let (got, _) = lock.acquire(waiting, 0, &shared).unwrap();
        assert!(matches!(got, Acquired::Queued));
        assert!(!is_simple(&lock) && lock.has_waiters());
        // The shared holder's lease ends: the waiter holds, alone.
        let effects = lock.settle(2_000, &shared);
        assert!(effects.changed);
        let token = rx.try_recv().expect("granted");
        assert!(is_simple(&lock) && lock.validates(token) && !lock.has_waiters());
        let mut limited = Lock::default();
        limited.set_limit(Some(2));
        assert!(!is_simple(&limited), "a semaphore keeps its limit");
        assert_eq!(limited.limit(), Some(2));
    }

    #[test]
    fn a_lock_delay_costs_the_simple_form_four_bytes_only_when_used() {
        let shared = LockShared::new();
        for (delay_ms, session) in [(0, None), (250, None), (u32::MAX, Some(3))] {
            let mut lock = Lock::default();
            let mut r = req("owner-0000000001", false, session);
            r.delay_ms = delay_ms;
            lock.acquire(r, 5, &shared).unwrap();
            let Repr::Simple(bytes) = &lock.0 else {
                panic!("one holder is simple")
            };
            let extra = 8 * usize::from(session.is_some()) + 4 * usize::from(delay_ms > 0);
            assert_eq!(bytes.len(), 17 + 16 + extra);
            let h = &lock.info().holders[0];
            assert_eq!(
                (h.delay_ms, h.owner.as_slice()),
                (delay_ms, &b"owner-0000000001"[..])
            );
            assert_eq!(h.session.map(NonZeroU64::get), session);
        }
    }

    #[test]
    fn a_delay_without_a_hold_ending_keeps_the_key_until_it_ends() {
        // What a restart does to a lock whose holders may still believe.
        let shared = LockShared::new();
        let mut lock = Lock::default();
        let effects = lock.delay(500, 100);
        assert_eq!(effects.deadlines.as_slice(), &[500]);
        assert!(!lock.is_empty(), "the key stays in its delay");
        assert_eq!(
            lock.delay(400, 100).deadlines.len(),
            0,
            "a later one is kept"
        );
        assert_eq!(lock.delay(50, 100).deadlines.len(), 0, "already over");
        assert!(matches!(
            lock.acquire(req("a", false, None), 499, &shared).unwrap().0,
            Acquired::Busy
        ));
        assert_eq!(lock.longest_lease(), Some(500));
        let effects = lock.settle(500, &shared);
        assert!(effects.changed && lock.is_empty() && is_simple(&lock));
        assert!(matches!(
            lock.acquire(req("a", false, None), 500, &shared).unwrap().0,
            Acquired::Granted(_)
        ));
    }

    #[test]
    fn tokens_are_exact_as_doubles_for_two_centuries() {
        let shared = LockShared::new();
        // 2248-01-01 in ms since the epoch.
        let year_2248 = 8_770_000_000_000u64;
        let t = shared.next_token(year_2248);
        assert!(t < 1 << 53, "{t}");
        assert_eq!(t as f64 as u64, t);
        assert!(shared.next_token(year_2248) > t);
    }

    #[test]
    fn lease_of_the_longest_ttl_ends_at_i64_max() {
        assert_eq!(lease_end(1_000, u64::MAX), i64::MAX as u64);
        assert_eq!(lease_end(u64::MAX, 1), i64::MAX as u64);
        assert_eq!(lease_end(1_000, 5), 1_005);
        let shared = LockShared::new();
        assert!(shared.next_token(u64::MAX) >= shared.next_token(1));
    }
}

/// A grant that delivers to a oneshot channel, for tests of the lock type.
#[cfg(test)]
#[derive(Debug)]
struct OneshotGrant(parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<u64>>>);

#[cfg(test)]
impl Grant for OneshotGrant {
    fn send(&self, token: u64) -> bool {
        self.0
            .lock()
            .take()
            .is_some_and(|tx| tx.send(token).is_ok())
    }

    fn is_closed(&self) -> bool {
        self.0.lock().as_ref().is_none_or(|tx| tx.is_closed())
    }

    fn abandon(&self) {
        self.0.lock().take();
    }
}

/// A grant for a test, and the receiver its token arrives on.
#[cfg(test)]
pub(crate) fn test_grant() -> (Box<dyn Grant>, tokio::sync::oneshot::Receiver<u64>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (
        Box::new(OneshotGrant(parking_lot::Mutex::new(Some(tx)))),
        rx,
    )
}

#[cfg(test)]
mod event_tests {
    use super::*;

    fn req(owner: &str, ttl_ms: u64, wait: Option<(u64, Box<dyn Grant>)>) -> AcquireRequest {
        AcquireRequest {
            owner: Bytes::copy_from_slice(owner.as_bytes()),
            ttl_ms,
            shared: false,
            limit: None,
            session: Some(9),
            delay_ms: 0,
            wait,
        }
    }

    #[test]
    fn settle_reports_the_holds_that_ran_out_and_the_grants() {
        let shared = LockShared::new();
        let mut lock = Lock::default();
        let (got, effects) = lock.acquire(req("a", 10, None), 0, &shared).unwrap();
        let Acquired::Granted(token) = got else {
            panic!("granted")
        };
        assert_eq!((effects.granted, effects.ended.len()), (1, 0));
        let (renewed, effects) = lock.acquire(req("a", 10, None), 1, &shared).unwrap();
        assert!(matches!(renewed, Acquired::Granted(t) if t == token));
        assert_eq!(effects.granted, 0, "a renewal is no new hold");
        let (grant, _rx) = test_grant();
        lock.acquire(req("b", 10, Some((1, grant))), 1, &shared)
            .unwrap();
        assert_eq!(lock.settle(10, &shared).ended, Vec::new());
        let effects = lock.settle(11, &shared);
        let expected = HoldEnded {
            owner: CompactBytes::from_slice(b"a"),
            token,
            why: EndReason::Expired,
        };
        assert_eq!(effects.ended, vec![expected]);
        assert_eq!(effects.granted, 1);
        // b holds now; taken out of the keyspace it is deleted, or expired if
        // its lease had run out unnoticed.
        assert_eq!(lock.removed_holds(12)[0].why, EndReason::Deleted);
        assert_eq!(lock.removed_holds(21)[0].why, EndReason::Expired);
        let (ended, delayed) = lock.release_client(Some(9), None, 30);
        assert_eq!(delayed, None, "no lock-delay");
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].why, EndReason::SessionReleased);
        assert!(ended[0].why.is_loss() && !EndReason::Released.is_loss());
        assert!(lock.removed_holds(30).is_empty());
    }
}
