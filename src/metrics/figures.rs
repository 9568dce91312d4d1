//! The server's figures that INFO and the metrics endpoint both report,
//! counted in one place: each walks what it must (clients, shards) when
//! asked, never on a request's path.

use std::sync::atomic::Ordering;

use crate::keyspace::Typed;
use crate::server::Shared;
use crate::types::lock::{Lock, LockInfo};

/// Clients blocked in a command now (`blocked_clients`).
pub fn blocked_clients(shared: &Shared) -> usize {
    shared
        .clients
        .iter()
        .filter(|c| c.blocked.load(Ordering::Relaxed))
        .count()
}

/// Bytes read from and written to clients since start-up
/// (`total_net_input_bytes`, `total_net_output_bytes`): the departed
/// clients' totals and each connected client's own. A client leaving while
/// this adds up may be counted twice or not at all for a moment; what is
/// reported never goes below an earlier report, so the counters stay
/// monotonic.
pub fn net_bytes(shared: &Shared) -> (u64, u64) {
    let s = &shared.stats;
    let (mut input, mut output) = (
        s.net_input_departed.load(Ordering::Relaxed),
        s.net_output_departed.load(Ordering::Relaxed),
    );
    for c in shared.clients.iter() {
        input = input.saturating_add(c.net_in.load(Ordering::Relaxed));
        output = output.saturating_add(c.net_out.load(Ordering::Relaxed));
    }
    let [r_in, r_out] = &s.net_reported;
    (
        r_in.fetch_max(input, Ordering::Relaxed).max(input),
        r_out.fetch_max(output, Ordering::Relaxed).max(output),
    )
}

/// Key lookups that found a key and that found none (`keyspace_hits`,
/// `keyspace_misses`), as the shards count their reading lookups.
pub fn keyspace_lookups(shared: &Shared) -> (u64, u64) {
    let (mut hits, mut misses) = (0u64, 0u64);
    for shard in shared.keyspace.dbs().iter().flat_map(|db| db.shards()) {
        let (h, m) = shard.lock().lookups();
        hits = hits.saturating_add(h);
        misses = misses.saturating_add(m);
    }
    (hits, misses)
}

/// Keys expired since start-up (`expired_keys`).
pub fn expired_keys(shared: &Shared) -> u64 {
    shared
        .keyspace
        .dbs()
        .iter()
        .flat_map(|db| db.shards())
        .map(|sh| sh.lock().expired_count())
        .sum()
}

/// One database's size (`# Keyspace`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbSize {
    /// Keys.
    pub keys: usize,
    /// Keys with a TTL.
    pub expires: usize,
}

/// Every database's size, by index.
pub fn db_sizes(shared: &Shared) -> Vec<DbSize> {
    shared
        .keyspace
        .dbs()
        .iter()
        .map(|db| {
            let mut size = DbSize::default();
            for shard in db.shards() {
                let shard = shard.lock();
                size.keys += shard.len();
                size.expires += shard.volatile();
            }
            size
        })
        .collect()
}

/// Locks, holders and waiters now (`# Locks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockCounts {
    /// Lock keys.
    pub locks: usize,
    /// Holds.
    pub holders: usize,
    /// Queued waiters.
    pub waiters: usize,
}

/// Counts every lock's holders and waiters, one shard at a time.
pub fn lock_counts(shared: &Shared) -> LockCounts {
    let mut c = LockCounts::default();
    let now = shared.clock.now_ms();
    for db in shared.keyspace.dbs() {
        for shard in db.shards() {
            let shard = shard.lock();
            for (_, e) in shard.keys(now) {
                if let Some(lock) = Lock::of(&e.value) {
                    let (h, w) = lock.counts();
                    c.locks += 1;
                    c.holders += h;
                    c.waiters += w;
                }
            }
        }
    }
    c
}

/// A lock as LOCK.LIST and the status page show it.
#[derive(Debug, Clone)]
pub struct LockEntry {
    /// Its database.
    pub db: usize,
    /// Its key.
    pub key: Vec<u8>,
    /// Holders and waiters.
    pub info: LockInfo,
}

impl LockEntry {
    /// How long (ms) its longest waiter has waited at `now`; 0 with nobody
    /// queued.
    pub fn longest_wait(&self, now: u64) -> u64 {
        self.info
            .queue
            .iter()
            .map(|q| now.saturating_sub(q.since))
            .max()
            .unwrap_or(0)
    }
}

/// The locks of database `db` (every database when `None`) whose key
/// `keep` accepts, at most `limit` of them, in the order the shards hold
/// them, as they stand at `now` (server clock ms). Each shard is locked
/// only while it is read.
pub fn locks_where(
    shared: &Shared,
    db: Option<usize>,
    limit: usize,
    now: u64,
    mut keep: impl FnMut(&[u8], &Lock) -> bool,
) -> Vec<LockEntry> {
    let mut out = Vec::new();
    for (i, d) in shared.keyspace.dbs().iter().enumerate() {
        if db.is_some_and(|want| want != i) {
            continue;
        }
        for shard in d.shards() {
            let shard = shard.lock();
            for (key, e) in shard.keys(now) {
                if out.len() >= limit {
                    return out;
                }
                let Some(lock) = Lock::of(&e.value) else {
                    continue;
                };
                if keep(key, lock) {
                    let mut info = lock.info();
                    // A lease that ran out and is not yet settled is no hold.
                    info.holders.retain(|h| h.expires_at > now);
                    out.push(LockEntry {
                        db: i,
                        key: key.to_vec(),
                        info,
                    });
                }
            }
        }
    }
    out
}
