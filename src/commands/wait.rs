//! What every blocking command on keys shares (BLPOP, BZPOPMIN, ...): reading
//! its timeout, and making the client wait. The wait itself is the blocking
//! registry's (`blocking.rs`) and the connection's inbox; a family only brings
//! its [`Serve`] step.

use bytes::Bytes;

use super::{parse_float, CommandResult, Ctx};
use crate::blocking::Serve;
use crate::error::CommandError;
use crate::reply::Reply;
use crate::session::{Blocked, Wait};

/// Makes the client wait on `keys` (whose shards the caller holds, so nothing
/// slips between its check and this) until `serve` has something for it or
/// `timeout_ms` (0: no limit) passes; then the reply is `timeout_reply`. Inside
/// MULTI or a script it replies `timeout_reply` at once. Any blocking command on
/// keys goes through here: the connection waits on its inbox.
pub fn block_on_keys(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    timeout_ms: u64,
    serve: Box<dyn Serve>,
    timeout_reply: Reply,
) -> CommandResult {
    if !ctx.can_block {
        return Ok(timeout_reply);
    }
    let waiter = ctx.shared.blocked.register(
        ctx.session.db,
        keys.iter().map(|k| Bytes::copy_from_slice(k)).collect(),
        serve,
        ctx.session.inbox.outbox(),
    );
    ctx.session.blocked = Some(Blocked {
        deadline: (timeout_ms > 0).then(|| ctx.now.saturating_add(timeout_ms)),
        on: Wait::Key {
            waiter,
            timeout_reply,
        },
    });
    // The connection sends the real reply once the wait ends.
    Ok(Reply::Silent)
}

/// A blocking command's timeout in seconds (a float, as Redis's `strtold` reads
/// it) as milliseconds.
pub fn timeout_arg(arg: &[u8]) -> Result<u64, CommandError> {
    let secs = parse_float(arg)
        .ok_or_else(|| CommandError::err("timeout is not a float or out of range"))?;
    // Redis truncates to a 64-bit integer; out of range ends up negative there.
    let ms = (secs * 1000.0).trunc();
    if !(0.0..9.223_372_036_854_775e18).contains(&ms) {
        return Err(CommandError::err("timeout is negative"));
    }
    Ok(ms as u64)
}
