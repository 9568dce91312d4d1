//! Replication's client side: WAIT and WAITAOF.
//!
//! latchkey is always a master without replicas, so WAIT answers at once with 0
//! replicas: Redis would block until its timeout for a count above 0, but with
//! no replica to wait for the answer cannot change. WAITAOF (Redis 7.2) is the
//! same for its replica count; there is no append-only file yet, so asking for
//! a local fsync is Redis's error for `appendonly no`, and the local count is
//! 0.

use bytes::Bytes;

use super::{flag, CommandResult, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::protocol::parse_i64;
use crate::reply::Reply;

/// The replication family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("wait", 3, flag::NOSCRIPT, wait)
        .acl(&["@slow", "@connection"])
        .tips(&["request_policy:all_shards", "response_policy:agg_min"])
        .doc(
            "generic",
            "3.0.0",
            "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
        ),
    CommandSpec::new("waitaof", 4, flag::NOSCRIPT, waitaof)
        .acl(&["@slow", "@connection"])
        .tips(&["request_policy:all_shards", "response_policy:agg_min"])
        .doc(
            "generic",
            "7.2.0",
            "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas.",
        ),
];

/// A timeout in milliseconds, checked as Redis 7.0's
/// `getTimeoutFromObjectOrReply` does (7.0 has no out-of-range check).
fn timeout_ms(arg: &[u8]) -> Result<i64, CommandError> {
    let ms = parse_i64(arg)
        .ok_or_else(|| CommandError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CommandError::err("timeout is negative"));
    }
    Ok(ms)
}

fn wait(_: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    parse_i64(&args[1]).ok_or(CommandError::NotInteger)?;
    timeout_ms(&args[2])?;
    Ok(Reply::Int(0))
}

/// WAITAOF numlocal numreplicas timeout, with Redis 7.2's checks in its
/// order: numlocal 0 or 1, numreplicas not negative, the timeout (7.2's,
/// which also refuses one that would overflow the clock).
fn waitaof(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let numlocal = parse_i64(&args[1]).ok_or(CommandError::NotInteger)?;
    if !(0..=1).contains(&numlocal) {
        return Err(CommandError::err(
            "value is out of range, value must between 0 and 1",
        ));
    }
    let numreplicas = parse_i64(&args[2]).ok_or(CommandError::NotInteger)?;
    if numreplicas < 0 {
        return Err(CommandError::err("value is out of range, must be positive"));
    }
    let ms = timeout_ms(&args[3])?;
    if ms > 0 && ms > i64::MAX.saturating_sub(ctx.now as i64) {
        return Err(CommandError::err("timeout is out of range"));
    }
    let aof = &ctx.shared.aof;
    if numlocal > 0 && !aof.is_on() {
        return Err(CommandError::err(
            "WAITAOF cannot be used when numlocal is set but appendonly is disabled.",
        ));
    }
    // The client's writes are this client's AOF offset: synced now if asked
    // (an fsync on this worker, at most the time one takes), and with no
    // replicas to wait for the answer cannot change later.
    let offset = ctx.session.aof_offset;
    if numlocal > 0 && aof.synced() < offset {
        let _ = aof.sync_now();
    }
    let local = aof.is_on() && aof.synced() >= offset;
    Ok(Reply::Array(vec![
        Reply::Int(i64::from(local)),
        Reply::Int(0),
    ]))
}
