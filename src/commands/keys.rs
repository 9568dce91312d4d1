//! Generic key commands: DEL, EXISTS, TYPE, TTL, PTTL.

use bytes::Bytes;

use super::{flag, CommandSpec, Ctx};
use crate::error::CommandResult;
use crate::reply::Reply;

/// The keys family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("del", -2, flag::WRITE, del)
        .keys(1, -1, 1)
        .doc("generic", "1.0.0", "Deletes one or more keys."),
    CommandSpec::new("exists", -2, flag::READONLY | flag::FAST, exists)
        .keys(1, -1, 1)
        .doc(
            "generic",
            "1.0.0",
            "Determines whether one or more keys exist.",
        ),
    CommandSpec::new("type", 2, flag::READONLY | flag::FAST, type_)
        .keys(1, 1, 1)
        .doc(
            "generic",
            "1.0.0",
            "Determines the type of value stored at a key.",
        ),
    CommandSpec::new("ttl", 2, flag::READONLY | flag::FAST, ttl)
        .keys(1, 1, 1)
        .doc(
            "generic",
            "1.0.0",
            "Returns the expiration time in seconds of a key.",
        ),
    CommandSpec::new("pttl", 2, flag::READONLY | flag::FAST, pttl)
        .keys(1, 1, 1)
        .doc(
            "generic",
            "2.6.0",
            "Returns the expiration time in milliseconds of a key.",
        ),
];

fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = &args[1..];
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    let removed = keys
        .iter()
        .filter(|k| shards.shard(k).remove(k, now).is_some())
        .count();
    Ok(Reply::Int(removed as i64))
}

fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = &args[1..];
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    let found = keys
        .iter()
        .filter(|k| shards.shard(k).contains(k, now))
        .count();
    Ok(Reply::Int(found as i64))
}

fn type_(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let name = shard
        .get(&args[1], now)
        .map_or("none", |e| e.value.type_name());
    Ok(Reply::Status(Bytes::from_static(name.as_bytes())))
}

/// TTL and PTTL: -2 for no key, -1 for no TTL, else the remaining time in `unit` ms
/// (rounded as Redis rounds: to the nearest second for TTL).
fn ttl_generic(ctx: &mut Ctx<'_>, key: &[u8], unit: u64) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    Ok(Reply::Int(match shard.get(key, now) {
        None => -2,
        Some(e) => match e.deadline() {
            None => -1,
            Some(at) => {
                let left = at.saturating_sub(now);
                ((left + unit / 2) / unit) as i64
            }
        },
    }))
}

fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    ttl_generic(ctx, &args[1], 1000)
}

fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    ttl_generic(ctx, &args[1], 1)
}
