//! Memory: what the server has allocated, and `maxmemory` with Redis's
//! eviction policies.
//!
//! - **Accounting.** [`Counting`] wraps the system allocator and keeps the
//!   live bytes in one counter (a relaxed add per allocation and free). The
//!   binary installs it as its global allocator; an embedding may too
//!   (`#[global_allocator] static A: latchkey::memory::Counting =
//!   latchkey::memory::Counting;`), and without it `maxmemory` is refused and
//!   INFO's `used_memory` is the process's resident size.
//! - **Eviction.** Before a command runs while `maxmemory` is set and the
//!   server is over it, keys are evicted as `maxmemory-policy` says
//!   (`allkeys-`/`volatile-` `lru`, `lfu`, `random`, `volatile-ttl`): each
//!   round samples `maxmemory-samples` keys of a database and evicts the best
//!   candidate, until the server is under the limit or the round's time
//!   budget (`maxmemory-eviction-tenacity`) is spent. **A lock is never
//!   evicted**: it is not a cache entry, and dropping one would break mutual
//!   exclusion. An evicted key raises `evicted`, reaches the AOF as DEL and
//!   invalidates client caches. If the server is still over the limit, a
//!   command flagged `denyoom` (and EXEC of one, and a script's call of one)
//!   gets Redis's `-OOM` error; the others run.
//! - **LRU and LFU.** An entry's 32-bit access field holds its last access in
//!   seconds, or under an LFU policy Redis's LFU state (minutes of the last
//!   decay in the high 16 bits, a logarithmic counter in the low 8), updated
//!   on each access with `lfu-log-factor` and decayed every `lfu-decay-time`
//!   minutes. OBJECT IDLETIME and OBJECT FREQ read them as Redis's do. The
//!   commands of a client with `CLIENT NO-TOUCH on` (but its TOUCH) leave them
//!   as they were ([`NoTouch`]).
//! - **Clients.** Each connection counts what it holds (its read and write
//!   buffers, queued transaction and messages, its session) into one total
//!   after each batch, with one atomic add only when that changed. At or over
//!   `maxmemory-clients` (bytes, or a percentage of `maxmemory`; at least
//!   128 KB, as Redis), [`evict_clients`] closes the biggest clients first
//!   until the total is under it, never one with `CLIENT NO-EVICT on`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Live bytes allocated through [`Counting`].
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
/// Set by the first allocation through [`Counting`].
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting live bytes.
pub struct Counting;

// SAFETY: every call is forwarded to `System` with the same arguments; the
// counter is only arithmetic beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
            if !INSTALLED.load(Ordering::Relaxed) {
                INSTALLED.store(true, Ordering::Relaxed);
            }
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
            if !INSTALLED.load(Ordering::Relaxed) {
                INSTALLED.store(true, Ordering::Relaxed);
            }
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                ALLOCATED.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                ALLOCATED.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Whether [`Counting`] is this process's allocator.
pub fn counting() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Bytes the server has allocated: the counter, or without it the resident
/// size.
pub fn used() -> u64 {
    if counting() {
        ALLOCATED.load(Ordering::Relaxed) as u64
    } else {
        rss()
    }
}

/// The process's resident size (bytes), from /proc.
pub fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// `maxmemory-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse `denyoom` commands when over the limit.
    NoEviction,
    /// Least recently used among all keys.
    AllKeysLru,
    /// Least frequently used among all keys.
    AllKeysLfu,
    /// Any key.
    AllKeysRandom,
    /// Least recently used among keys with a TTL.
    VolatileLru,
    /// Least frequently used among keys with a TTL.
    VolatileLfu,
    /// Any key with a TTL.
    VolatileRandom,
    /// The key with the nearest TTL.
    VolatileTtl,
}

impl Policy {
    /// Every policy and its name, in Redis's order.
    pub const ALL: [(Policy, &'static str); 8] = [
        (Policy::VolatileLru, "volatile-lru"),
        (Policy::VolatileLfu, "volatile-lfu"),
        (Policy::VolatileRandom, "volatile-random"),
        (Policy::VolatileTtl, "volatile-ttl"),
        (Policy::AllKeysLru, "allkeys-lru"),
        (Policy::AllKeysLfu, "allkeys-lfu"),
        (Policy::AllKeysRandom, "allkeys-random"),
        (Policy::NoEviction, "noeviction"),
    ];

    /// The option's value.
    pub fn name(self) -> &'static str {
        Policy::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("noeviction", |(_, n)| n)
    }

    /// Parses the option's value.
    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map(|(p, _)| *p)
    }

    /// Whether it tracks access frequency (LFU) instead of time.
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    fn code(self) -> u8 {
        Policy::ALL
            .iter()
            .position(|(p, _)| *p == self)
            .unwrap_or(7) as u8
    }

    fn of_code(c: u8) -> Policy {
        Policy::ALL
            .get(c as usize)
            .map_or(Policy::NoEviction, |(p, _)| *p)
    }
}

/// Under an LFU policy (read by every access).
static LFU: AtomicBool = AtomicBool::new(false);
static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_TIME: AtomicU32 = AtomicU32::new(1);
/// A new key's LFU counter (Redis's `LFU_INIT_VAL`).
const LFU_INIT_VAL: u32 = 5;

/// Whether an LFU policy is selected.
#[inline]
pub fn lfu() -> bool {
    LFU.load(Ordering::Relaxed)
}

fn minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0xffff) as u32
}

/// An entry's LFU counter at `now_ms`, decayed (Redis's `LFUDecrAndReturn`).
pub fn lfu_counter(access: u32, now_ms: u64) -> u32 {
    if access == 0 {
        return LFU_INIT_VAL;
    }
    // 16 bits of minutes: an access time written under LRU reads as some
    // minute, as in Redis after a policy change.
    let ldt = (access >> 8) & 0xffff;
    let counter = access & 0xff;
    let now = minutes(now_ms);
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    let decay = LFU_DECAY_TIME.load(Ordering::Relaxed);
    let periods = elapsed.checked_div(decay).unwrap_or(0);
    counter.saturating_sub(periods)
}

/// An access under LFU: the counter decayed, then incremented with
/// probability 1/((counter - 5) * lfu-log-factor + 1) (Redis's `updateLFU`).
pub fn lfu_touch(access: u32, now_ms: u64) -> u32 {
    let mut counter = lfu_counter(access, now_ms);
    if counter < 255 {
        let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
        let p = 1.0 / (base * f64::from(LFU_LOG_FACTOR.load(Ordering::Relaxed)) + 1.0);
        if fastrand::f64() < p {
            counter += 1;
        }
    }
    (minutes(now_ms) << 8) | counter
}

thread_local! {
    static NO_TOUCH: Cell<bool> = const { Cell::new(false) };
}

/// Whether the command running on this thread leaves keys' LRU and LFU as
/// they were (its client set `CLIENT NO-TOUCH on`).
#[inline]
pub fn no_touch() -> bool {
    NO_TOUCH.with(Cell::get)
}

/// While alive, whether the commands running on this thread count as
/// accesses for LRU and LFU is as it was entered (Redis's `LOOKUP_NOTOUCH`
/// for a `CLIENT NO-TOUCH` client); dropped, it is as it was before.
pub struct NoTouch {
    before: bool,
}

impl NoTouch {
    /// Leaves access times alone (`on`), or not, until dropped.
    pub fn enter(on: bool) -> NoTouch {
        NoTouch {
            before: NO_TOUCH.with(|c| c.replace(on)),
        }
    }
}

impl Drop for NoTouch {
    fn drop(&mut self) {
        NO_TOUCH.with(|c| c.set(self.before));
    }
}

/// `maxmemory-clients`: bytes, or a percentage of `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientsLimit {
    /// Bytes (0: no limit).
    Bytes(u64),
    /// Percent of `maxmemory`, 1 to 100 (no limit while `maxmemory` is 0).
    Percent(u64),
}

impl ClientsLimit {
    /// The smallest limit applied (Redis's: a server no client can talk to
    /// would be a bad configuration).
    pub const MIN: u64 = 128 * 1024;

    /// Reads a value as Redis's CONFIG SET does: a memory size (`1mb`), or
    /// `N%` with N from 0 to 100; the errors are Redis's.
    pub fn parse(v: &str) -> Result<ClientsLimit, String> {
        const TOO_BIG: &str = "percentage argument must be less or equal to 100";
        if let Some(n) = crate::config::memory_value(v) {
            // Past Redis's signed size it reads as a percentage, too big.
            return if n > i64::MAX as u64 {
                Err(TOO_BIG.into())
            } else {
                Ok(ClientsLimit::Bytes(n))
            };
        }
        // `string2ll`'s digits: "0", or no leading zero.
        let digits = v.strip_suffix('%').filter(|d| {
            !d.is_empty()
                && d.bytes().all(|b| b.is_ascii_digit())
                && (*d == "0" || !d.starts_with('0'))
        });
        match digits.map(str::parse::<i64>) {
            Some(Ok(0)) => Ok(ClientsLimit::Bytes(0)),
            Some(Ok(p)) if p <= 100 => Ok(ClientsLimit::Percent(p as u64)),
            Some(Ok(_)) => Err(TOO_BIG.into()),
            _ => Err("argument must be a memory or percent value".into()),
        }
    }

    /// The limit in bytes under `maxmemory` (0: none), as Redis's
    /// `getClientEvictionLimit`.
    pub fn bytes(self, maxmemory: u64) -> u64 {
        let n = match self {
            ClientsLimit::Bytes(0) => return 0,
            ClientsLimit::Bytes(n) => n,
            ClientsLimit::Percent(_) if maxmemory == 0 => return 0,
            ClientsLimit::Percent(p) => (maxmemory as f64 * p as f64 / 100.0) as u64,
        };
        n.max(Self::MIN)
    }
}

impl std::fmt::Display for ClientsLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientsLimit::Bytes(n) => write!(f, "{n}"),
            ClientsLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The server's memory settings (`maxmemory` and friends), read without a
/// lock on every command.
#[derive(Debug)]
pub struct Memory {
    maxmemory: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    tenacity: AtomicU32,
    /// Keys evicted (INFO `evicted_keys`).
    pub evicted: AtomicU64,
    /// The highest `used` seen (INFO `used_memory_peak`).
    peak: AtomicU64,
    /// `maxmemory-clients` in bytes as it applies now (0: no limit).
    clients_limit: AtomicU64,
    /// What the clients use together, as each last counted itself (INFO
    /// `mem_clients_normal`).
    clients_used: AtomicUsize,
    /// Clients closed for `maxmemory-clients` (INFO `evicted_clients`).
    pub evicted_clients: AtomicU64,
    /// Held by the one pass of [`evict_clients`] that may run at a time.
    evicting: parking_lot::Mutex<()>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            maxmemory: AtomicU64::new(0),
            policy: AtomicU8::new(Policy::NoEviction.code()),
            samples: AtomicU32::new(5),
            tenacity: AtomicU32::new(10),
            evicted: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            clients_limit: AtomicU64::new(0),
            clients_used: AtomicUsize::new(0),
            evicted_clients: AtomicU64::new(0),
            evicting: parking_lot::Mutex::new(()),
        }
    }
}

/// What `Memory::configure` applies.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `maxmemory` (bytes; 0 for none).
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub policy: Policy,
    /// `maxmemory-samples`.
    pub samples: u32,
    /// `maxmemory-eviction-tenacity`.
    pub tenacity: u32,
    /// `lfu-log-factor`.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time`.
    pub lfu_decay_time: u32,
    /// `maxmemory-clients`.
    pub clients: ClientsLimit,
}

impl Memory {
    /// Applies the options.
    pub fn configure(&self, s: Settings) {
        self.maxmemory.store(s.maxmemory, Ordering::Relaxed);
        self.policy.store(s.policy.code(), Ordering::Relaxed);
        self.samples.store(s.samples.max(1), Ordering::Relaxed);
        self.tenacity.store(s.tenacity, Ordering::Relaxed);
        LFU.store(s.policy.is_lfu(), Ordering::Relaxed);
        LFU_LOG_FACTOR.store(s.lfu_log_factor, Ordering::Relaxed);
        LFU_DECAY_TIME.store(s.lfu_decay_time, Ordering::Relaxed);
        self.clients_limit
            .store(s.clients.bytes(s.maxmemory), Ordering::Relaxed);
    }

    /// `maxmemory-clients` in bytes as it applies (0: none).
    pub fn clients_limit(&self) -> u64 {
        self.clients_limit.load(Ordering::Relaxed)
    }

    /// What the clients use together, as each last counted itself.
    pub fn clients_used(&self) -> usize {
        self.clients_used.load(Ordering::Relaxed)
    }

    /// Notes that client `info` now holds `bytes`
    /// ([`crate::session::client_memory`]). True when the clients together
    /// are then at or over `maxmemory-clients`: the caller runs
    /// [`evict_clients`]. Writes nothing when the figure has not changed.
    #[inline]
    pub fn client_uses(&self, info: &crate::session::ClientInfo, bytes: usize) -> bool {
        if info.mem_counted.load(Ordering::Relaxed) == bytes || info.is_killed() {
            return false;
        }
        // Added before it is recorded: an eviction that takes the record back
        // never subtracts what the total does not hold yet.
        self.clients_used.fetch_add(bytes, Ordering::Relaxed);
        let before = info.mem_counted.swap(bytes, Ordering::Relaxed);
        let total = self
            .clients_used
            .fetch_sub(before, Ordering::Relaxed)
            .wrapping_sub(before);
        let limit = self.clients_limit.load(Ordering::Relaxed);
        limit > 0 && total as u64 >= limit
    }

    /// Takes client `info`'s count out of the total (it closed, or is closing).
    pub fn client_gone(&self, info: &crate::session::ClientInfo) {
        let n = info.mem_counted.swap(0, Ordering::Relaxed);
        self.clients_used.fetch_sub(n, Ordering::Relaxed);
    }

    /// `maxmemory` (0: none); one relaxed load.
    #[inline]
    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Ordering::Relaxed)
    }

    /// `maxmemory-policy`.
    pub fn policy(&self) -> Policy {
        Policy::of_code(self.policy.load(Ordering::Relaxed))
    }

    /// Bytes used now, noting the peak.
    pub fn used_now(&self) -> u64 {
        let used = used();
        self.peak.fetch_max(used, Ordering::Relaxed);
        used
    }

    /// The highest use seen.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).max(used())
    }

    /// How long one round of evictions may run (Redis's
    /// `evictionTimeLimitUs`): 50 µs per point of tenacity up to 10, then
    /// growing 15% a point; 100 is no limit.
    fn budget(&self) -> Option<Duration> {
        let t = self.tenacity.load(Ordering::Relaxed);
        if t >= 100 {
            return None;
        }
        let us = if t <= 10 {
            50.0 * f64::from(t)
        } else {
            500.0 * 1.15f64.powi(t as i32 - 10)
        };
        Some(Duration::from_micros(us as u64))
    }
}

/// Closes the clients that hold the most memory, biggest first, until the
/// clients together are under `maxmemory-clients`, as Redis's `evictClients`
/// (which picks from buckets of similar size; this sorts). A client with
/// `CLIENT NO-EVICT on` counts in the total but is never closed. Each one
/// closed is logged with its CLIENT LIST line and counted in INFO's
/// `evicted_clients`; its count leaves the total at once, so the next check
/// does not close more for memory already being given back. One pass runs at
/// a time; a check that finds one running leaves the work to it.
pub fn evict_clients(shared: &crate::server::Shared) {
    let m = &shared.memory;
    let Some(_one) = m.evicting.try_lock() else {
        return;
    };
    let limit = m.clients_limit() as usize;
    if limit == 0 || m.clients_used() < limit {
        return;
    }
    let mut candidates: Vec<(usize, std::sync::Arc<crate::session::ClientInfo>)> = shared
        .clients
        .iter()
        .filter(|c| !c.no_evict.load(Ordering::Relaxed) && !c.is_killed())
        .map(|c| (c.mem_counted.load(Ordering::Relaxed), c.clone()))
        .collect();
    candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    for (_, c) in candidates {
        if m.clients_used() < limit {
            return;
        }
        tracing::info!(
            "Evicting client: {}",
            crate::commands::client::client_line(shared, &c, None)
        );
        c.kill();
        m.client_gone(&c);
        m.evicted_clients.fetch_add(1, Ordering::Relaxed);
    }
    if m.clients_used() >= limit {
        tracing::warn!("Over client maxmemory after evicting all evictable clients");
    }
}

/// A key a round may evict.
struct Candidate {
    db: usize,
    key: bytes::Bytes,
    /// Higher is evicted first.
    score: u64,
}

/// Evicts keys as the policy says until memory use is under `maxmemory` or
/// the round's budget is spent. Returns false only when the server is over
/// the limit and nothing can be evicted (`noeviction`, or no key the policy
/// may take): a round that ran out of time goes on at the next command, as
/// Redis's `EVICT_RUNNING` does not refuse commands. The caller holds
/// nothing; this takes the gate shared and the AOF's order for its unit.
pub fn evict(shared: &crate::server::Shared) -> bool {
    let mem = &shared.memory;
    let max = mem.maxmemory();
    if max == 0 || mem.used_now() <= max {
        return true;
    }
    // CLIENT PAUSE holds the dataset still: no eviction, and commands run
    // (Redis's isSafeToPerformEvictions).
    if shared.pause.writes_paused(shared.clock.now_ms()) {
        return true;
    }
    let policy = mem.policy();
    if policy == Policy::NoEviction {
        return false;
    }
    let Some(_gate) = shared.gate.read_unless(|| shared.scripts.is_busy()) else {
        return false;
    };
    let order = shared.aof.order();
    let started = Instant::now();
    let budget = mem.budget();
    let samples = mem.samples.load(Ordering::Relaxed) as usize;
    let now = shared.clock.now_ms();
    let mut evictable = true;
    loop {
        if mem.used_now() <= max {
            break;
        }
        if budget.is_some_and(|b| started.elapsed() > b) {
            break;
        }
        let Some(victim) = best_candidate(shared, policy, samples, now) else {
            evictable = false;
            break;
        };
        let Some(db) = shared.keyspace.db(victim.db) else {
            break;
        };
        let mut shard = db.lock(&victim.key);
        let evictable = shard
            .peek(&victim.key, now)
            .is_some_and(|e| !matches!(e.value, crate::keyspace::Value::Lock(_)));
        if !evictable {
            continue;
        }
        shard.remove(&victim.key, now);
        shard.log_event(crate::notify::EVICTED, "evicted", &victim.key);
        shard.propagate(|| vec![bytes::Bytes::from_static(b"DEL"), victim.key.clone()]);
        drop(shard);
        mem.evicted.fetch_add(1, Ordering::Relaxed);
    }
    if order.is_some() {
        crate::persist::aof::end_unit(shared);
        drop(order);
        shared.aof.write_pending();
    }
    drop(_gate);
    crate::commands::pubsub::publish_logged(shared);
    if shared.keyspace.hook().is_active() {
        crate::tracking::after_background(shared);
    }
    evictable
}

/// The best of `samples` keys sampled from a random database that has keys
/// the policy may evict; `None` when no database has any. Databases marked
/// empty are skipped (one found empty is marked so, [`Db::confirm_empty`]).
/// Within a database the shards are visited from a random one on, each
/// locked once for the samples still wanted (at random positions), so a
/// round takes one or two shard locks, not one per sample.
///
/// [`Db::confirm_empty`]: crate::keyspace::Db::confirm_empty
fn best_candidate(
    shared: &crate::server::Shared,
    policy: Policy,
    samples: usize,
    now: u64,
) -> Option<Candidate> {
    let dbs = shared.keyspace.dbs();
    let start = fastrand::usize(..dbs.len());
    for d in 0..dbs.len() {
        let index = (start + d) % dbs.len();
        let db = &dbs[index];
        if !db.may_hold_keys() {
            continue;
        }
        if let Some(best) = sample_db(db, index, policy, samples, now) {
            return Some(best);
        }
        db.confirm_empty();
    }
    None
}

/// The best of up to `samples` keys of one database the policy may evict.
fn sample_db(
    db: &crate::keyspace::Db,
    index: usize,
    policy: Policy,
    samples: usize,
    now: u64,
) -> Option<Candidate> {
    let shards = db.shards();
    let first = fastrand::usize(..shards.len());
    let mut best: Option<Candidate> = None;
    let mut found = 0;
    for s in 0..shards.len() {
        if found >= samples {
            break;
        }
        let shard = shards[(first + s) % shards.len()].lock();
        let len = shard.len();
        if len == 0 || (policy.volatile_only() && shard.volatile() == 0) {
            continue;
        }
        // Positions tried here, and the best of them.
        let mut pick: Option<(usize, u64)> = None;
        let wanted = samples - found;
        for _ in 0..wanted {
            let at = fastrand::usize(..len);
            let Some((_, entry)) = shard.key_at(at) else {
                continue;
            };
            if entry.is_expired(now) || matches!(entry.value, crate::keyspace::Value::Lock(_)) {
                continue;
            }
            if policy.volatile_only() && entry.expires_at().is_none() {
                continue;
            }
            found += 1;
            let score = match policy {
                Policy::AllKeysLru | Policy::VolatileLru => entry.idle_seconds(now),
                Policy::AllKeysLfu | Policy::VolatileLfu => {
                    255 - u64::from(lfu_counter(entry.access_field(), now))
                }
                Policy::VolatileTtl => u64::MAX - entry.expires_at().unwrap_or(u64::MAX),
                _ => fastrand::u64(..),
            };
            if pick.is_none_or(|(_, p)| score > p) && best.as_ref().is_none_or(|b| score > b.score)
            {
                pick = Some((at, score));
            }
        }
        if let Some((at, score)) = pick {
            if let Some((key, _)) = shard.key_at(at) {
                best = Some(Candidate {
                    db: index,
                    key: bytes::Bytes::copy_from_slice(key),
                    score,
                });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxmemory_clients_reads_bytes_or_a_percentage_of_maxmemory() {
        use ClientsLimit::*;
        assert_eq!(ClientsLimit::parse("1mb"), Ok(Bytes(1 << 20)));
        assert_eq!(ClientsLimit::parse("10k"), Ok(Bytes(10_000)));
        assert_eq!(ClientsLimit::parse("10%"), Ok(Percent(10)));
        assert_eq!(ClientsLimit::parse("0%"), Ok(Bytes(0)));
        for bad in ["-1", "-1%", "05%", "%", "1.5%", "abc", ""] {
            assert_eq!(
                ClientsLimit::parse(bad),
                Err("argument must be a memory or percent value".into()),
                "{bad}"
            );
        }
        for big in ["101%", "9223372036854775808"] {
            assert!(ClientsLimit::parse(big)
                .unwrap_err()
                .starts_with("percentage"));
        }
        assert_eq!(Percent(10).to_string(), "10%");
        assert_eq!(Bytes(0).bytes(1 << 30), 0);
        // At least 128 KB; a percentage of no maxmemory is no limit.
        assert_eq!(Bytes(10_000).bytes(0), ClientsLimit::MIN);
        assert_eq!(Percent(50).bytes(0), 0);
        assert_eq!(Percent(50).bytes(1 << 30), 1 << 29);
        assert_eq!(Percent(1).bytes(1 << 20), ClientsLimit::MIN);
    }

    #[test]
    fn lfu_counters_grow_logarithmically_and_decay() {
        LFU_LOG_FACTOR.store(10, Ordering::Relaxed);
        LFU_DECAY_TIME.store(1, Ordering::Relaxed);
        let now = 1_000 * 60_000;
        assert_eq!(lfu_counter(0, now), LFU_INIT_VAL);
        let mut a = 0;
        for _ in 0..1000 {
            a = lfu_touch(a, now);
        }
        let c = lfu_counter(a, now);
        assert!((10..60).contains(&c), "1000 hits: {c}");
        // Ten minutes later the counter has lost ten.
        assert_eq!(lfu_counter(a, now + 10 * 60_000), c - 10);
        LFU_DECAY_TIME.store(0, Ordering::Relaxed);
        assert_eq!(lfu_counter(a, now + 10 * 60_000), c);
        LFU_DECAY_TIME.store(1, Ordering::Relaxed);
    }

    #[test]
    fn policies_parse_by_name_and_the_budget_follows_tenacity() {
        for (p, name) in Policy::ALL {
            assert_eq!(Policy::parse(name), Some(p));
            assert_eq!(Policy::of_code(p.code()), p);
        }
        assert_eq!(Policy::parse("lru"), None);
        let m = Memory::default();
        assert_eq!(m.budget(), Some(Duration::from_micros(500)));
        m.tenacity.store(100, Ordering::Relaxed);
        assert_eq!(m.budget(), None);
    }
}
