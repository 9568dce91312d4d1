//! Native lock commands: LOCK.ACQUIRE, LOCK.RELEASE, LOCK.EXTEND, LOCK.VALIDATE,
//! LOCK.INFO. The lock itself lives in `keyspace::lock`; this file parses
//! arguments and shapes replies. A queued LOCK.ACQUIRE ... WAIT leaves a
//! [`Blocked`] in the session, and the connection waits for the grant.

use bytes::Bytes;

use super::CommandResult;
use super::{flag, int_arg, is, CallMode, CommandSpec, Ctx};
use crate::blocking::lock_grant;
use crate::error::CommandError;
use crate::keyspace::{AcquireRequest, Acquired, LockMode};
use crate::reply::Reply;
use crate::session::{Blocked, Wait};
use crate::types::lock::LockError;

/// The lock family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("lock.acquire", -4, flag::WRITE | flag::DENYOOM | flag::BLOCKING, acquire)
        .keys(1, 1, 1)
        .doc("lock", "0.1.0", "Acquires a lock, a shared lock or a semaphore slot, optionally waiting in a FIFO queue; replies with a fencing token."),
    CommandSpec::new("lock.release", 3, flag::WRITE | flag::FAST, release)
        .keys(1, 1, 1)
        .doc("lock", "0.1.0", "Releases a hold of a lock and grants the next waiters."),
    CommandSpec::new("lock.extend", 4, flag::WRITE | flag::FAST, extend)
        .keys(1, 1, 1)
        .doc("lock", "0.1.0", "Sets the lease of a current holder to ttl-ms from now."),
    CommandSpec::new("lock.validate", 3, flag::READONLY | flag::FAST, validate)
        .keys(1, 1, 1)
        .doc("lock", "0.1.0", "Tells whether a fencing token belongs to a current holder."),
    CommandSpec::new("lock.info", 2, flag::READONLY | flag::FAST, info)
        .keys(1, 1, 1)
        .doc("lock", "0.1.0", "Returns the mode, limit, holders and number of waiters of a lock."),
];

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
}

fn parse_acquire_options(args: &[Bytes]) -> Result<AcquireOptions, CommandError> {
    let mut o = AcquireOptions {
        wait: None,
        shared: false,
        limit: None,
        session: false,
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        if is(a, "wait") && next.is_some() {
            let t = int_arg(&args[i + 1])?;
            if t < 0 {
                return Err(CommandError::err("timeout is negative"));
            }
            o.wait = Some(t as u64);
            i += 2;
        } else if is(a, "limit") && next.is_some() {
            let n = int_arg(&args[i + 1])?;
            if n <= 0 || n > i64::from(u32::MAX) {
                return Err(CommandError::err("value is out of range, must be positive"));
            }
            o.limit = Some(n as u32);
            i += 2;
        } else if is(a, "shared") {
            o.shared = true;
            i += 1;
        } else if is(a, "session") {
            o.session = true;
            i += 1;
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
    let key = &args[1];
    let ttl_ms = ttl_arg(&args[3], "lock.acquire", ctx.now)?;
    let o = parse_acquire_options(&args[4..])?;
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
        owner: Bytes::copy_from_slice(&args[2]),
        ttl_ms,
        shared: o.shared,
        limit: o.limit,
        session: o.session.then_some(ctx.session.info.id),
        wait,
    };
    let now = ctx.now;
    let db = ctx.session.db;
    let mut shard = ctx.db().lock(key);
    let outcome = shard.lock_acquire(key, req, now)?;
    if matches!(outcome, Acquired::Queued) {
        shard.note_lock_waiter(key);
    }
    drop(shard);
    match outcome {
        Acquired::Granted(token) => {
            if o.session {
                ctx.session.note_session_lock(db, key);
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
                    owner: Bytes::copy_from_slice(&args[2]),
                    session: o.session,
                },
            });
            // The connection sends the real reply once the wait ends.
            Ok(Reply::Silent)
        }
    }
}

fn release(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let released = ctx
        .db()
        .lock(&args[1])
        .lock_release(&args[1], &args[2], now)?;
    Ok(Reply::Int(i64::from(released)))
}

fn extend(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let ttl = ttl_arg(&args[3], "lock.extend", ctx.now)?;
    let now = ctx.now;
    let extended = ctx
        .db()
        .lock(&args[1])
        .lock_extend(&args[1], &args[2], ttl, now)?;
    Ok(Reply::Int(i64::from(extended)))
}

fn validate(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let token = int_arg(&args[2])?;
    let now = ctx.now;
    let valid = token >= 0
        && ctx
            .db()
            .lock(&args[1])
            .lock_validate(&args[1], token as u64, now)?;
    Ok(Reply::Int(i64::from(valid)))
}

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let Some(info) = ctx.db().lock(&args[1]).lock_info(&args[1], now)? else {
        return Ok(Reply::Nil);
    };
    let mode = match info.mode {
        LockMode::Exclusive => "exclusive",
        LockMode::Shared => "shared",
        LockMode::Semaphore => "semaphore",
    };
    let holders = info
        .holders
        .iter()
        .map(|h| {
            Reply::Map(vec![
                (Reply::bulk_str("owner"), Reply::Bulk(h.owner.clone())),
                (Reply::bulk_str("token"), Reply::Int(h.token as i64)),
                (
                    Reply::bulk_str("ttl"),
                    Reply::Int(h.expires_at.saturating_sub(now) as i64),
                ),
            ])
        })
        .collect();
    Ok(Reply::Map(vec![
        (Reply::bulk_str("mode"), Reply::bulk_str(mode)),
        (
            Reply::bulk_str("limit"),
            info.limit.map_or(Reply::Nil, |n| Reply::Int(i64::from(n))),
        ),
        (Reply::bulk_str("holders"), Reply::Array(holders)),
        (Reply::bulk_str("waiters"), Reply::Int(info.waiters as i64)),
    ]))
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
