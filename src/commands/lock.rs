//! Native lock commands: LOCK.ACQUIRE, LOCK.RELEASE, LOCK.EXTEND, LOCK.VALIDATE,
//! LOCK.INFO, LOCK.LIST. The lock itself lives in `keyspace::lock`; this file parses
//! arguments and shapes replies. A queued LOCK.ACQUIRE ... WAIT leaves a
//! [`Blocked`] in the session, and the connection waits for the grant.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::Args;
use super::CommandResult;
use super::{flag, int_arg, CallMode, CommandSpec, Ctx, KeySpec};
use crate::blocking::lock_grant;
use crate::error::CommandError;
use crate::keyspace::{AcquireRequest, Acquired, LockMode};
use crate::keyspace::{Shard, Typed, WrongType};
use crate::notify;
use crate::reply::Reply;
use crate::session::{Blocked, Wait};
use crate::types::lock::{Lock, LockError, LockInfo, LockShared};
use crate::types::Effects;

/// The lock family's rows. Their ACL categories are Redis's kind (read or
/// write, fast or slow, blocking) plus the family's own `@lock`; each takes one
/// key, the lock.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "lock.acquire",
        -4,
        flag::WRITE | flag::DENYOOM | flag::BLOCKING | flag::NO_PROPAGATE,
        acquire,
    )
        .keys(1, 1, 1)
        .acl(&["@write", "@lock", "@slow", "@blocking"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"])])
        .doc("lock", "0.1.0", "Acquires a lock, a shared lock or a semaphore slot, optionally waiting in a FIFO queue; replies with a fencing token."),
    CommandSpec::new("lock.release", 3, flag::WRITE | flag::FAST | flag::NO_PROPAGATE, release)
        .keys(1, 1, 1)
        .acl(&["@write", "@lock", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "delete"])])
        .doc("lock", "0.1.0", "Releases a hold of a lock and grants the next waiters."),
    CommandSpec::new("lock.extend", 4, flag::WRITE | flag::FAST | flag::NO_PROPAGATE, extend)
        .keys(1, 1, 1)
        .acl(&["@write", "@lock", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "update"])])
        .doc("lock", "0.1.0", "Sets the lease of a current holder to ttl-ms from now."),
    CommandSpec::new("lock.validate", 3, flag::READONLY | flag::FAST | flag::NO_PROPAGATE, validate)
        .keys(1, 1, 1)
        .acl(&["@read", "@lock", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("lock", "0.1.0", "Tells whether a fencing token belongs to a current holder."),
    CommandSpec::new("lock.info", 2, flag::READONLY | flag::FAST | flag::NO_PROPAGATE, info)
        .keys(1, 1, 1)
        .acl(&["@read", "@lock", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("lock", "0.1.0", "Returns the mode, limit, holders and number of waiters of a lock."),
    CommandSpec::new("lock.list", -1, flag::READONLY | flag::NO_PROPAGATE, list)
        .acl(&["@read", "@lock", "@slow"])
        .tips(&["nondeterministic_output"])
        .doc("lock", "0.1.0", "Lists the locks of the current database (MATCH pattern, at most COUNT of them): name, mode, holders and waiters."),
];

/// LOCK.LIST's default COUNT.
const LIST_COUNT: usize = 100;

/// A positive millisecond count (ttl): not an integer or negative is
/// `ERR value is not an integer or out of range`; zero, or a lease that would end
/// past `i64::MAX` ms (as `SET ... PX` checks), an invalid expire time.
fn ttl_arg(arg: &[u8], cmd: &'static str, now: u64) -> Result<u64, CommandError> {
    let v = int_arg(arg)?;
    match v {
        v if v < 0 => Err(CommandError::NotInteger),
        0 => Err(CommandError::InvalidExpire(cmd)),
        v if v > i64::MAX.saturating_sub_unsigned(now) => Err(CommandError::InvalidExpire(cmd)),
        v => Ok(v as u64),
    }
}

struct AcquireOptions {
    wait: Option<u64>,
    shared: bool,
    limit: Option<u32>,
    session: bool,
    /// LOCKDELAY ms: overrides the server's `lock-delay` for this hold.
    delay: Option<u32>,
}

/// A lock-delay in ms, as `LOCKDELAY` and the `lock-delay` option take it:
/// 0 up to `u32::MAX` (about 49 days); anything else, as a negative TTL, is
/// `ERR value is not an integer or out of range`.
pub(crate) fn delay_arg(v: i64) -> Result<u32, CommandError> {
    u32::try_from(v).map_err(|_| CommandError::NotInteger)
}

/// The options after LOCK.ACQUIRE's ttl, read from `a`.
fn parse_acquire_options(a: &mut Args<'_>) -> Result<AcquireOptions, CommandError> {
    let mut o = AcquireOptions {
        wait: None,
        shared: false,
        limit: None,
        session: false,
        delay: None,
    };
    while !a.is_done() {
        if a.keyword("wait") {
            let t = a.int()?;
            if t < 0 {
                return Err(CommandError::err("timeout is negative"));
            }
            o.wait = Some(t as u64);
        } else if a.keyword("limit") {
            let n = a.int()?;
            if n <= 0 || n > i64::from(u32::MAX) {
                return Err(CommandError::err("value is out of range, must be positive"));
            }
            o.limit = Some(n as u32);
        } else if a.keyword("lockdelay") {
            o.delay = Some(delay_arg(a.int()?)?);
        } else if a.keyword("shared") {
            o.shared = true;
        } else if a.keyword("session") {
            o.session = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if o.shared && o.limit.is_some() {
        return Err(CommandError::err(
            "SHARED and LIMIT options at the same time are not compatible",
        ));
    }
    Ok(o)
}

fn acquire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let owner = a.bytes()?;
    let ttl_ms = ttl_arg(a.bytes()?, "lock.acquire", ctx.now)?;
    let o = parse_acquire_options(&mut a)?;
    if o.wait
        .is_some_and(|t| t > i64::MAX.saturating_sub_unsigned(ctx.now) as u64)
    {
        // The deadline would pass i64::MAX ms: as Redis 7.2's blocking commands.
        return Err(CommandError::err("timeout is out of range"));
    }
    if o.wait.is_some() && ctx.mode == CallMode::Script {
        return Err(CommandError::err(
            "LOCK.ACQUIRE with WAIT is not allowed from scripts",
        ));
    }
    let locks = ctx.shared.keyspace.locks();
    let wait = (o.wait.is_some() && ctx.can_block).then(|| {
        let id = locks.next_waiter_id();
        (id, lock_grant(id, ctx.session.inbox.outbox()))
    });
    let waiter = wait.as_ref().map_or(0, |(id, _)| *id);
    let req = AcquireRequest {
        owner: Bytes::copy_from_slice(owner),
        ttl_ms,
        shared: o.shared,
        limit: o.limit,
        session: o.session.then_some(ctx.session.info.id),
        delay_ms: o.delay.unwrap_or_else(|| locks.lock_delay()),
        wait,
    };
    let now = ctx.now;
    let db = ctx.session.db;
    let mut shard = ctx.db().lock(key);
    let outcome = acquire_at(&mut shard, key, req, now, locks)?;
    drop(shard);
    match outcome {
        Acquired::Granted(token) => {
            if o.session {
                ctx.session.note_session_lock(db, key);
                if ctx.session.session_locks_due() {
                    sweep_session_locks(ctx);
                }
            }
            Ok(Reply::Int(token as i64))
        }
        Acquired::Busy => Ok(Reply::Nil),
        Acquired::Queued => {
            let timeout = o.wait.unwrap_or(0);
            ctx.session.blocked = Some(Blocked {
                deadline: (timeout > 0).then(|| now.saturating_add(timeout)),
                on: Wait::Lock {
                    db,
                    key: Bytes::copy_from_slice(key),
                    waiter,
                    owner: Bytes::copy_from_slice(owner),
                    session: o.session,
                    since: now,
                },
            });
            // The connection sends the real reply once the wait ends.
            Ok(Reply::Silent)
        }
    }
}

fn release(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let released = release_at(&mut ctx.db().lock(&args[1]), &args[1], &args[2], now)?;
    Ok(Reply::Int(i64::from(released)))
}

fn extend(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let ttl = ttl_arg(&args[3], "lock.extend", ctx.now)?;
    let now = ctx.now;
    let extended = extend_at(&mut ctx.db().lock(&args[1]), &args[1], &args[2], ttl, now)?;
    Ok(Reply::Int(i64::from(extended)))
}

fn validate(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let token = int_arg(&args[2])?;
    let now = ctx.now;
    let valid =
        token >= 0 && validate_at(&mut ctx.db().lock(&args[1]), &args[1], token as u64, now)?;
    Ok(Reply::Int(i64::from(valid)))
}

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let Some(info) = info_at(&mut ctx.db().lock(&args[1]), &args[1], now)? else {
        return Ok(Reply::Nil);
    };
    let mode = mode_name(info.mode);
    let holders = info.holders.iter().map(|h| holder_reply(h, now)).collect();
    Ok(Reply::Map(vec![
        (Reply::bulk_str("mode"), Reply::bulk_str(mode)),
        (
            Reply::bulk_str("limit"),
            info.limit.map_or(Reply::Nil, |n| Reply::Int(i64::from(n))),
        ),
        (Reply::bulk_str("holders"), Reply::Array(holders)),
        (Reply::bulk_str("waiters"), Reply::Int(info.waiters as i64)),
        (
            Reply::bulk_str("delay"),
            Reply::Int(info.delay_until.map_or(0, |t| t.saturating_sub(now)) as i64),
        ),
    ]))
}

/// The mode as LOCK.INFO and LOCK.LIST name it.
fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Exclusive => "exclusive",
        LockMode::Shared => "shared",
        LockMode::Semaphore => "semaphore",
    }
}

/// A holder as LOCK.INFO and LOCK.LIST show it: owner, token, ms of lease
/// left.
fn holder_reply(h: &crate::types::lock::Holder, now: u64) -> Reply {
    Reply::Map(vec![
        (Reply::bulk_str("owner"), Reply::stored(&h.owner)),
        (Reply::bulk_str("token"), Reply::Int(h.token as i64)),
        (
            Reply::bulk_str("ttl"),
            Reply::Int(h.expires_at.saturating_sub(now) as i64),
        ),
    ])
}

/// LOCK.LIST [MATCH pattern] [COUNT n]: the locks of the current database
/// whose name matches (all by default), at most COUNT (100 by default) of
/// them, in name order. Each is a map: name, mode, holders (owner, token,
/// ttl), waiters (how many) and queue (each waiter's owner and the ms it has
/// waited). Like KEYS, it walks the database; the first COUNT found are
/// listed.
fn list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let mut pattern: Option<&[u8]> = None;
    let mut count = LIST_COUNT;
    while !a.is_done() {
        if a.keyword("match") {
            pattern = Some(a.bytes()?);
        } else if a.keyword("count") {
            let n = a.int()?;
            if n <= 0 {
                return Err(CommandError::err("value is out of range, must be positive"));
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    let db = Some(ctx.session.db);
    let mut found = crate::metrics::figures::locks_where(ctx.shared, db, count, now, |key, _| {
        pattern.is_none_or(|p| super::keys::glob_match(p, key))
    });
    found.sort_by(|x, y| x.key.cmp(&y.key));
    let locks = found
        .into_iter()
        .map(|e| {
            let holders = e
                .info
                .holders
                .iter()
                .map(|h| holder_reply(h, now))
                .collect();
            let queue = e
                .info
                .queue
                .iter()
                .map(|q| {
                    Reply::Map(vec![
                        (Reply::bulk_str("owner"), Reply::Bulk(q.owner.clone())),
                        (
                            Reply::bulk_str("waited"),
                            Reply::Int(now.saturating_sub(q.since) as i64),
                        ),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (Reply::bulk_str("name"), Reply::Bulk(Bytes::from(e.key))),
                (
                    Reply::bulk_str("mode"),
                    Reply::bulk_str(mode_name(e.info.mode)),
                ),
                (Reply::bulk_str("holders"), Reply::Array(holders)),
                (
                    Reply::bulk_str("waiters"),
                    Reply::Int(e.info.waiters as i64),
                ),
                (Reply::bulk_str("queue"), Reply::Array(queue)),
            ])
        })
        .collect();
    Ok(Reply::Array(locks))
}

/// The lock at `key` after settling its leases, mutable without telling
/// watchers: `Ok(None)` when there is no key, `WrongType` for another type.
fn settled<'s>(
    shard: &'s mut Shard,
    key: &[u8],
    now: u64,
) -> Result<Option<&'s mut Lock>, WrongType> {
    shard.settle(key, now);
    shard.write_quiet::<Lock>(key, now)
}

/// Forgets the SESSION keys this client no longer holds (released, expired,
/// deleted), and sweeps again when what is left has doubled.
fn sweep_session_locks(ctx: &mut Ctx<'_>) {
    let client = ctx.session.info.id;
    let now = ctx.now;
    let keyspace = &ctx.shared.keyspace;
    ctx.session.session_locks.retain(|(db, key)| {
        keyspace.db(*db).is_some_and(|db| {
            matches!(db.lock(key).peek(key, now), Some(e)
                if Lock::of(&e.value).is_some_and(|l| l.held_by_session(client)))
        })
    });
    ctx.session.session_locks_sweep_at =
        (2 * ctx.session.session_locks.len()).max(crate::session::SESSION_LOCKS_SWEEP);
}

/// LOCK.ACQUIRE under the key's shard: grants, queues, or reports the lock
/// busy.
pub(crate) fn acquire_at(
    shard: &mut Shard,
    key: &[u8],
    req: AcquireRequest,
    now: u64,
    locks: &LockShared,
) -> Result<Acquired, LockError> {
    let lock = match settled(shard, key, now)? {
        Some(lock) => lock,
        None => {
            let lock = shard.get_or_create::<Lock>(key, now)?;
            lock.set_limit(req.limit);
            lock
        }
    };
    let (outcome, effects) = lock.acquire(req, now, locks)?;
    // A holder asking again renews its lease (no new hold is granted).
    let renewed = matches!(outcome, Acquired::Granted(_)) && effects.granted == 0;
    shard.apply(key, effects);
    if renewed {
        shard.log_event(notify::LOCK, notify::LOCK_EXTENDED, key);
    }
    Ok(outcome)
}

/// LOCK.RELEASE: true if `owner` held the lock and no longer does.
pub(crate) fn release_at(
    shard: &mut Shard,
    key: &[u8],
    owner: &[u8],
    now: u64,
) -> Result<bool, WrongType> {
    let Some(lock) = settled(shard, key, now)? else {
        shard
            .lock_shared()
            .stats
            .release_refused
            .fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    };
    let Some(token) = lock.release(owner) else {
        shard
            .lock_shared()
            .stats
            .release_refused
            .fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    };
    shard.lock_shared().stats.hold_ended(token, now);
    shard.touch_lock(key);
    // Before the grants the release makes.
    shard.log_event(notify::LOCK, notify::LOCK_RELEASED, key);
    shard.settle(key, now);
    Ok(true)
}

/// LOCK.EXTEND: false if `owner` does not hold the lock.
pub(crate) fn extend_at(
    shard: &mut Shard,
    key: &[u8],
    owner: &[u8],
    ttl_ms: u64,
    now: u64,
) -> Result<bool, WrongType> {
    let Some(lock) = settled(shard, key, now)? else {
        return Ok(false);
    };
    let Some(lease) = lock.extend(owner, ttl_ms, now) else {
        return Ok(false);
    };
    shard.lock_shared().note_lease(ttl_ms);
    shard
        .lock_shared()
        .stats
        .extends
        .fetch_add(1, Ordering::Relaxed);
    let effects = Effects {
        changed: false,
        deadlines: smallvec::smallvec![lease],
        ..Effects::default()
    };
    shard.apply(key, effects);
    shard.log_event(notify::LOCK, notify::LOCK_EXTENDED, key);
    Ok(true)
}

/// LOCK.VALIDATE: whether `token` belongs to a current holder.
pub(crate) fn validate_at(
    shard: &mut Shard,
    key: &[u8],
    token: u64,
    now: u64,
) -> Result<bool, WrongType> {
    Ok(settled(shard, key, now)?.is_some_and(|l| l.validates(token)))
}

/// LOCK.INFO.
pub(crate) fn info_at(
    shard: &mut Shard,
    key: &[u8],
    now: u64,
) -> Result<Option<LockInfo>, WrongType> {
    Ok(settled(shard, key, now)?.map(|l| l.info()))
}

/// Takes a waiter out of the queue (its wait ran out, or its client left).
/// False when it is no longer queued: it was granted (the token is in its
/// inbox) or the lock is gone.
pub(crate) fn cancel_wait_at(shard: &mut Shard, key: &[u8], waiter: u64, now: u64) -> bool {
    let Ok(Some(lock)) = settled(shard, key, now) else {
        return false;
    };
    let removed = lock.cancel_wait(waiter);
    if removed {
        // A waiter leaving the front may let the ones behind it in (a queued
        // exclusive request was holding back shared ones).
        shard.settle(key, now);
    }
    removed
}

/// Releases every hold of `client` on `key` (its connection closed) and the
/// hold of `owner` if given; returns how many holds were released. Their
/// events (`lock.session-released` with the holder's loss notice, or
/// `lock.released` for `owner`) are logged for the caller to publish.
pub(crate) fn release_client_at(
    shard: &mut Shard,
    key: &[u8],
    client: Option<u64>,
    owner: Option<&[u8]>,
    now: u64,
) -> usize {
    let Ok(Some(lock)) = settled(shard, key, now) else {
        return 0;
    };
    let (released, delayed) = lock.release_client(client, owner, now);
    if let Some(until) = delayed {
        // The lost SESSION hold's lock-delay: its end is the lock's to settle.
        shard.apply(
            key,
            Effects {
                deadlines: smallvec::smallvec![until],
                ..Effects::default()
            },
        );
    }
    if !released.is_empty() {
        shard.touch_lock(key);
        for ended in &released {
            shard.lock_shared().stats.hold_ended(ended.token, now);
            shard.log_ended(key, ended);
        }
        shard.settle(key, now);
    }
    released.len()
}

impl From<LockError> for CommandError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::WrongType => CommandError::WrongType,
            LockError::LimitMismatch(Some(n)) => {
                CommandError::err(format!("LIMIT does not match the semaphore's limit of {n}"))
            }
            LockError::LimitMismatch(None) => {
                CommandError::err("LIMIT given for a key that is not a semaphore")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Entry, ExpiryBudget, Keyspace, Value};
    use crate::types::lock::test_grant;
    use tokio::sync::oneshot;

    /// Checks the invariants of every lock in `keys` at `now`.
    fn check(shard: &mut Shard, keys: &[&[u8]], now: u64) {
        for key in keys {
            let Ok(Some(lock)) = settled(shard, key, now) else {
                continue;
            };
            assert!(!lock.is_empty(), "an empty lock must not exist");
            let exclusive = lock.holders().iter().filter(|h| !h.shared).count();
            match lock.limit() {
                Some(limit) => assert!(lock.holders().len() <= limit as usize),
                None => {
                    assert!(exclusive <= 1, "two exclusive holders");
                    assert!(
                        exclusive == 0 || lock.holders().len() == 1,
                        "shared beside exclusive"
                    );
                }
            }
            let mut owners: Vec<_> = lock.holders().iter().map(|h| h.owner.to_vec()).collect();
            owners.sort();
            owners.dedup();
            assert_eq!(owners.len(), lock.holders().len(), "an owner holds twice");
            assert!(
                lock.holders().iter().all(|h| h.expires_at > now),
                "expired holder kept"
            );
            assert!(
                !lock.front_waiter_grantable(now),
                "a waiter that could be granted is left waiting"
            );
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
            // Keys in a lock-delay that lasts past this step grant nothing in
            // it (unless the step takes the lock out of the keyspace).
            let delays: Vec<u64> = keys
                .iter()
                .map(|k| {
                    let mut s = db.lock(k);
                    s.peek(k, now)
                        .and_then(|e| Lock::of(&e.value).and_then(Lock::delay_until))
                        .unwrap_or(0)
                })
                .collect();
            let op = fastrand::u8(..8);
            let mut shard = db.lock(key);
            match op {
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
                        delay_ms: if fastrand::bool() {
                            0
                        } else {
                            fastrand::u32(1..30)
                        },
                        wait: queue.then_some((id, grant)),
                    };
                    match acquire_at(&mut shard, key, req, now, ks.locks()).unwrap() {
                        Acquired::Granted(t) => {
                            assert!(t > 0);
                        }
                        Acquired::Queued => receivers.push((key.to_vec(), id, owner, rx)),
                        Acquired::Busy => {}
                    }
                }
                2 => {
                    release_at(&mut shard, key, &owner, now).unwrap();
                }
                3 => {
                    extend_at(&mut shard, key, &owner, fastrand::u64(1..40), now).unwrap();
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
                    if !cancel_wait_at(&mut s, &k, w, now) && rx.try_recv().is_ok() {
                        release_client_at(&mut s, &k, None, Some(&o), now);
                    }
                    drop(s);
                    shard = db.lock(key);
                }
                6 => {
                    release_client_at(
                        &mut shard,
                        key,
                        Some(u64::from(fastrand::u8(..3))),
                        None,
                        now,
                    );
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
            for (k, delayed_until) in keys.iter().zip(&delays) {
                let mut s = db.lock(k);
                check(&mut s, &[k], now);
                if let Ok(Some(lock)) = settled(&mut s, k, now) {
                    let before = fresh.len();
                    fresh.extend(
                        lock.holders()
                            .iter()
                            .map(|h| h.token)
                            .filter(|t| seen.insert(*t)),
                    );
                    let removed = op == 7 && *k == key;
                    assert!(
                        fresh.len() == before || *delayed_until <= now || removed,
                        "granted during a lock-delay"
                    );
                }
            }
            if let Some(lowest) = fresh.iter().min() {
                assert!(*lowest > max_token, "tokens increase");
                max_token = fresh.iter().copied().max().unwrap_or(max_token);
            }
        }
    }

    #[test]
    fn contended_lease_is_settled_before_the_backlog() {
        let now = 1_000_000;
        let ks = Keyspace::new(1, now);
        let db = ks.db(0).unwrap();
        for i in 0..20_000 {
            let k = format!("key:{i}").into_bytes();
            let e = Entry::new(Value::string(b"v"), Some(now + 10));
            db.lock(&k).insert(&k, e, now);
        }
        let req =
            |owner: &str, wait: Option<(u64, Box<dyn crate::types::lock::Grant>)>| AcquireRequest {
                owner: Bytes::copy_from_slice(owner.as_bytes()),
                ttl_ms: 10,
                shared: false,
                limit: None,
                session: None,
                delay_ms: 0,
                wait,
            };
        let mut shard = db.lock(b"L");
        let locks = ks.locks();
        let acquire = acquire_at;
        let held = acquire(&mut shard, b"L", req("a", None), now, locks).unwrap();
        assert!(matches!(held, Acquired::Granted(_)));
        let (queued, mut grant) = test_grant();
        let outcome = acquire(&mut shard, b"L", req("b", Some((1, queued))), now, locks).unwrap();
        assert!(matches!(outcome, Acquired::Queued), "b queues behind a");
        shard.note_waiter(b"L");
        drop(shard);
        // However small the slice, the waiter is served in the first one.
        ks.expire_step(now + 10, &mut ExpiryBudget::new(std::time::Duration::ZERO));
        assert!(grant.try_recv().is_ok(), "b granted in the first slice");
        ks.expire_due(now + 10);
        assert_eq!(db.len(), 1, "only the lock is left");
        // Once the lock is gone it is no longer tracked.
        ks.expire_due(now + 20);
        assert_eq!(db.len(), 0);
        assert!(!db.lock(b"L").contains(b"L", now + 20));
    }
}
