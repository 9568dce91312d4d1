//! Replication's client side: WAIT (WAITAOF comes with the append-only file).
//!
//! latchkey is always a master without replicas, so WAIT answers at once with 0
//! replicas: Redis would block until its timeout for a count above 0, but with
//! no replica to wait for the answer cannot change.

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
];

/// A timeout in milliseconds, checked as Redis 7.0's
/// `getTimeoutFromObjectOrReply` does (7.0 has no out-of-range check).
fn timeout_ms(arg: &[u8]) -> Result<(), CommandError> {
    let ms = parse_i64(arg)
        .ok_or_else(|| CommandError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CommandError::err("timeout is negative"));
    }
    Ok(())
}

fn wait(_: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    parse_i64(&args[1]).ok_or(CommandError::NotInteger)?;
    timeout_ms(&args[2])?;
    Ok(Reply::Int(0))
}
