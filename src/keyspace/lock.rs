//! The shard's side of the lock type: settling leases on the shard's wheel,
//! putting a removed lock's waiters back, and the operations LOCK.* commands run
//! under the key's shard lock.

use std::sync::atomic::Ordering;

use super::{Entry, Shard, Value, WrongType};
use crate::types::lock::{
    lease_end, AcquireRequest, Acquired, Holder, Lock, LockError, LockInfo, Waiter,
};

impl Shard {
    /// The lock at `key` after settling expired leases: `Ok(None)` when there is no
    /// key, `WRONGTYPE` when the key holds another type.
    fn lock_at(&mut self, key: &[u8], now: u64) -> Result<Option<&mut Lock>, WrongType> {
        self.lock_settle(key, now);
        match self.get_mut_quiet(key, now) {
            None => Ok(None),
            Some(Entry {
                value: Value::Lock(lock),
                ..
            }) => Ok(Some(lock)),
            Some(_) => Err(WrongType),
        }
    }

    /// Drops expired holders of the lock at `key`, grants waiters, files the new
    /// leases, and removes the key if the lock is left empty. Called when a lease
    /// deadline fires and before every lock command.
    pub(super) fn lock_settle(&mut self, key: &[u8], now: u64) {
        let shared = self.locks.clone();
        let Some(Entry {
            value: Value::Lock(lock),
            ..
        }) = self.get_mut_quiet(key, now)
        else {
            return;
        };
        let expired = lock.expire_holders(now);
        let deadlines = lock.grant_waiters(now, &shared);
        let empty = lock.is_empty();
        if expired > 0 {
            shared
                .stats
                .lease_expiries
                .fetch_add(expired as u64, Ordering::Relaxed);
        }
        if expired > 0 || !deadlines.is_empty() {
            self.touch(key);
        }
        for d in deadlines {
            self.schedule(key, d);
        }
        if empty {
            self.remove_entry(key);
        }
    }

    /// A lock taken out of the keyspace (DEL, FLUSHDB, a key TTL, an overwrite)
    /// still has waiters: they stay queued at the key and the first ones are
    /// granted, as if every holder had released.
    pub(super) fn requeue_waiters(&mut self, key: &[u8], old: &mut Entry, now: u64) {
        let Value::Lock(old) = &mut old.value else {
            return;
        };
        if old.waiters.is_empty() {
            return;
        }
        let lock = Lock {
            limit: old.limit,
            holders: Vec::new(),
            waiters: std::mem::take(&mut old.waiters),
        };
        self.map
            .insert(key, Entry::persistent(Value::Lock(Box::new(lock))));
        self.lock_settle(key, now);
    }

    /// LOCK.ACQUIRE: grants, queues, or reports the lock busy. A holder asking
    /// again renews its lease and gets its token back.
    pub fn lock_acquire(
        &mut self,
        key: &[u8],
        req: AcquireRequest,
        now: u64,
    ) -> Result<Acquired, LockError> {
        let shared = self.locks.clone();
        let expires_at = lease_end(now, req.ttl_ms);
        let lock = match self.lock_at(key, now)? {
            Some(lock) => lock,
            None => {
                let lock = Lock {
                    limit: req.limit,
                    ..Lock::default()
                };
                self.map
                    .insert(key, Entry::persistent(Value::Lock(Box::new(lock))));
                match self.get_mut_quiet(key, now) {
                    Some(Entry {
                        value: Value::Lock(lock),
                        ..
                    }) => lock,
                    _ => return Err(LockError::WrongType),
                }
            }
        };
        if let Some(h) = lock.holders.iter_mut().find(|h| h.owner == req.owner) {
            h.expires_at = expires_at;
            let token = h.token;
            self.schedule(key, expires_at);
            return Ok(Acquired::Granted(token));
        }
        if lock.limit != req.limit {
            return Err(LockError::LimitMismatch(lock.limit));
        }
        if lock.waiters.is_empty() && lock.compatible(req.shared) {
            let token = shared.next_token(now);
            lock.holders.push(Holder {
                owner: req.owner,
                token,
                expires_at,
                shared: req.shared,
                session: req.session,
            });
            shared.stats.acquisitions.fetch_add(1, Ordering::Relaxed);
            shared
                .stats
                .acquired_immediately
                .fetch_add(1, Ordering::Relaxed);
            self.touch(key);
            self.schedule(key, expires_at);
            return Ok(Acquired::Granted(token));
        }
        let Some((id, grant)) = req.wait else {
            if lock.is_empty() {
                self.remove_entry(key);
            }
            return Ok(Acquired::Busy);
        };
        lock.waiters.push_back(Waiter {
            id,
            owner: req.owner,
            ttl_ms: req.ttl_ms,
            shared: req.shared,
            session: req.session,
            grant,
        });
        Ok(Acquired::Queued)
    }

    /// LOCK.RELEASE: true if `owner` held the lock and no longer does.
    pub fn lock_release(&mut self, key: &[u8], owner: &[u8], now: u64) -> Result<bool, WrongType> {
        let Some(lock) = self.lock_at(key, now)? else {
            return Ok(false);
        };
        let before = lock.holders.len();
        lock.holders.retain(|h| h.owner != owner);
        let released = lock.holders.len() < before;
        if released {
            self.touch(key);
            self.lock_settle(key, now);
        }
        Ok(released)
    }

    /// LOCK.EXTEND: sets the lease of `owner` to `ttl_ms` from now; false if it does
    /// not hold the lock.
    pub fn lock_extend(
        &mut self,
        key: &[u8],
        owner: &[u8],
        ttl_ms: u64,
        now: u64,
    ) -> Result<bool, WrongType> {
        let Some(lock) = self.lock_at(key, now)? else {
            return Ok(false);
        };
        let expires_at = lease_end(now, ttl_ms);
        let Some(h) = lock.holders.iter_mut().find(|h| h.owner == owner) else {
            return Ok(false);
        };
        h.expires_at = expires_at;
        self.schedule(key, expires_at);
        Ok(true)
    }

    /// LOCK.VALIDATE: whether `token` belongs to a current holder.
    pub fn lock_validate(&mut self, key: &[u8], token: u64, now: u64) -> Result<bool, WrongType> {
        Ok(self
            .lock_at(key, now)?
            .is_some_and(|l| l.holders.iter().any(|h| h.token == token)))
    }

    /// LOCK.INFO.
    pub fn lock_info(&mut self, key: &[u8], now: u64) -> Result<Option<LockInfo>, WrongType> {
        Ok(self.lock_at(key, now)?.map(|l| l.info()))
    }

    /// Takes a waiter out of the queue (its wait ran out, or its client left).
    /// False when it is no longer queued: it was granted (the token is on its
    /// channel) or the lock is gone.
    pub fn lock_cancel_wait(&mut self, key: &[u8], waiter: u64, now: u64) -> bool {
        let Ok(Some(lock)) = self.lock_at(key, now) else {
            return false;
        };
        let before = lock.waiters.len();
        lock.waiters.retain(|w| w.id != waiter);
        let removed = lock.waiters.len() < before;
        if removed {
            // A waiter leaving the front may let the ones behind it in (a queued
            // exclusive request was holding back shared ones).
            self.lock_settle(key, now);
        }
        removed
    }

    /// Releases every hold of `client` on `key` (its connection closed) and the
    /// hold of `owner` if given; returns how many holds were released.
    pub fn lock_release_client(
        &mut self,
        key: &[u8],
        client: Option<u64>,
        owner: Option<&[u8]>,
        now: u64,
    ) -> usize {
        let Ok(Some(lock)) = self.lock_at(key, now) else {
            return 0;
        };
        let before = lock.holders.len();
        lock.holders.retain(|h| {
            let by_session = client.is_some() && h.session == client;
            let by_owner = owner.is_some_and(|o| h.owner == o);
            !(by_session || by_owner)
        });
        let released = before - lock.holders.len();
        if released > 0 {
            self.touch(key);
            self.lock_settle(key, now);
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Keyspace;
    use crate::types::lock::{test_grant, LockShared};
    use bytes::Bytes;
    use tokio::sync::oneshot;

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

    /// Checks the invariants of every lock in `keys` at `now`.
    fn check(shard: &mut Shard, keys: &[&[u8]], now: u64) {
        for key in keys {
            let Ok(Some(lock)) = shard.lock_at(key, now) else {
                continue;
            };
            assert!(!lock.is_empty(), "an empty lock must not exist");
            let exclusive = lock.holders.iter().filter(|h| !h.shared).count();
            match lock.limit {
                Some(limit) => assert!(lock.holders.len() <= limit as usize),
                None => {
                    assert!(exclusive <= 1, "two exclusive holders");
                    assert!(
                        exclusive == 0 || lock.holders.len() == 1,
                        "shared beside exclusive"
                    );
                }
            }
            let mut owners: Vec<_> = lock.holders.iter().map(|h| h.owner.clone()).collect();
            owners.sort();
            owners.dedup();
            assert_eq!(owners.len(), lock.holders.len(), "an owner holds twice");
            assert!(
                lock.holders.iter().all(|h| h.expires_at > now),
                "expired holder kept"
            );
            if let Some(front) = lock.waiters.front() {
                assert!(
                    !lock.compatible(front.shared) || front.grant.is_closed(),
                    "a waiter that could be granted is left waiting"
                );
            }
        }
    }

    #[test]
    fn random_operations_never_break_mutual_exclusion() {
        fastrand::seed(7);
        let mut now = 1_000_000;
        let ks = Keyspace::new(1, now);
        let db = ks.db(0).unwrap();
        let keys: [&[u8]; 2] = [b"x", b"s"];
        let mut receivers: Vec<(Vec<u8>, u64, Bytes, oneshot::Receiver<u64>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut max_token = 0;
        for _ in 0..20_000 {
            let key = keys[fastrand::usize(..2)];
            let owner = Bytes::from(format!("o{}", fastrand::u8(..6)));
            let mut shard = db.lock(key);
            match fastrand::u8(..8) {
                0 | 1 => {
                    let queue = fastrand::bool();
                    let (grant, rx) = test_grant();
                    let id = ks.locks().next_waiter_id();
                    let req = AcquireRequest {
                        owner: owner.clone(),
                        ttl_ms: fastrand::u64(1..40),
                        shared: key == b"x" && fastrand::bool(),
                        limit: (key == b"s").then_some(2),
                        session: Some(u64::from(fastrand::u8(..3))),
                        wait: queue.then_some((id, grant)),
                    };
                    match shard.lock_acquire(key, req, now).unwrap() {
                        Acquired::Granted(t) => {
                            assert!(t > 0);
                        }
                        Acquired::Queued => receivers.push((key.to_vec(), id, owner, rx)),
                        Acquired::Busy => {}
                    }
                }
                2 => {
                    shard.lock_release(key, &owner, now).unwrap();
                }
                3 => {
                    shard
                        .lock_extend(key, &owner, fastrand::u64(1..40), now)
                        .unwrap();
                }
                4 => {
                    drop(shard);
                    now += fastrand::u64(0..15);
                    ks.expire_due(now);
                    shard = db.lock(key);
                }
                5 if !receivers.is_empty() => {
                    let (k, w, o, mut rx) =
                        receivers.swap_remove(fastrand::usize(..receivers.len()));
                    drop(shard);
                    let mut s = db.lock(&k);
                    if !s.lock_cancel_wait(&k, w, now) && rx.try_recv().is_ok() {
                        s.lock_release_client(&k, None, Some(&o), now);
                    }
                    drop(s);
                    shard = db.lock(key);
                }
                6 => {
                    shard.lock_release_client(key, Some(u64::from(fastrand::u8(..3))), None, now);
                }
                7 if fastrand::u8(..10) == 0 => {
                    shard.remove(key, now);
                }
                _ => {}
            }
            check(&mut shard, &keys, now);
            drop(shard);
            receivers.retain_mut(|(_, _, _, rx)| rx.try_recv().is_err());
            // Check both keys (they may share a shard or not).
            // Every new hold's fencing token is above every earlier one.
            let mut fresh = Vec::new();
            for key in keys {
                let mut s = db.lock(key);
                check(&mut s, &[key], now);
                if let Ok(Some(lock)) = s.lock_at(key, now) {
                    fresh.extend(
                        lock.holders
                            .iter()
                            .map(|h| h.token)
                            .filter(|t| seen.insert(*t)),
                    );
                }
            }
            if let Some(lowest) = fresh.iter().min() {
                assert!(*lowest > max_token, "tokens increase");
                max_token = fresh.iter().copied().max().unwrap_or(max_token);
            }
        }
    }
}
