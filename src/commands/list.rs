//! List commands: LPUSH, RPUSH, LPOP, RPOP, LLEN, LRANGE, and the blocking
//! BLPOP and BRPOP (a [`Serve`] step of the blocking registry in `blocking.rs`).

use bytes::Bytes;

use super::args::Args;
use super::wait::{block_on_keys, timeout_arg};
use super::{flag, CommandResult, CommandSpec, Ctx};
use crate::blocking::Serve;
use crate::error::CommandError;
use crate::keyspace::Shard;
use crate::reply::Reply;
use crate::types::list::{self, End, List};

/// The list family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("lpush", -3, flag::WRITE | flag::DENYOOM | flag::FAST, lpush)
        .keys(1, 1, 1)
        .doc("list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    CommandSpec::new("rpush", -3, flag::WRITE | flag::DENYOOM | flag::FAST, rpush)
        .keys(1, 1, 1)
        .doc("list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    CommandSpec::new("lpop", -2, flag::WRITE | flag::FAST, lpop)
        .keys(1, 1, 1)
        .doc("list", "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    CommandSpec::new("rpop", -2, flag::WRITE | flag::FAST, rpop)
        .keys(1, 1, 1)
        .doc("list", "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    CommandSpec::new("blpop", -3, flag::WRITE | flag::NOSCRIPT | flag::BLOCKING, blpop)
        .keys(1, -2, 1)
        .doc("list", "2.0.0", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    CommandSpec::new("brpop", -3, flag::WRITE | flag::NOSCRIPT | flag::BLOCKING, brpop)
        .keys(1, -2, 1)
        .doc("list", "2.0.0", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    CommandSpec::new("llen", 2, flag::READONLY | flag::FAST, llen)
        .keys(1, 1, 1)
        .doc("list", "1.0.0", "Returns the length of a list."),
    CommandSpec::new("lrange", 4, flag::READONLY, lrange)
        .keys(1, 1, 1)
        .doc("list", "1.0.0", "Returns a range of elements from a list."),
];

fn push(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let list = shard.get_or_create::<List>(key, now)?;
    for v in a.rest() {
        list::push(list, end, Bytes::copy_from_slice(v));
    }
    let len = list.len();
    ctx.shared.blocked.signal(ctx.session.db, key);
    Ok(Reply::Int(len as i64))
}

fn lpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    push(ctx, args, End::Left)
}

fn rpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    push(ctx, args, End::Right)
}

/// LPOP/RPOP key [count]: one element (or nil), or with a count an array (nil
/// array for a missing key); an emptied list is deleted.
fn pop(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let count = match a.next_arg() {
        None => None,
        Some(c) => {
            let n = super::int_arg(c)
                .map_err(|_| CommandError::err("value is out of range, must be positive"))?;
            Some(
                usize::try_from(n)
                    .map_err(|_| CommandError::err("value is out of range, must be positive"))?,
            )
        }
    };
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(list) = shard.write::<List>(key, now)? else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    let reply = match count {
        None => Reply::bulk_or_nil(list::pop(list, end)),
        Some(n) => Reply::Array(
            (0..n)
                .map_while(|_| list::pop(list, end))
                .map(Reply::Bulk)
                .collect(),
        ),
    };
    shard.remove_if_empty::<List>(key, now);
    Ok(reply)
}

/// The serve step of BLPOP/BRPOP: one element from `end`, replied as `[key,
/// element]`.
#[derive(Debug)]
struct ListPop(End);

impl Serve for ListPop {
    fn serve(&self, shard: &mut Shard, key: &Bytes, now: u64) -> Option<Reply> {
        let list = shard.write::<List>(key, now).ok()??;
        let v = list::pop(list, self.0)?;
        shard.remove_if_empty::<List>(key, now);
        Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(v)]))
    }

    fn undo(&self, shard: &mut Shard, key: &Bytes, reply: Reply, now: u64) {
        let Reply::Array(mut parts) = reply else {
            return;
        };
        let Some(Reply::Bulk(v)) = parts.pop() else {
            return;
        };
        // An element served to a client that had gone goes back where it was
        // (the key may hold another type by now: then it is dropped, as Redis
        // would have served it).
        if let Ok(list) = shard.get_or_create::<List>(key, now) {
            list::push(list, self.0, v);
        }
    }
}

/// BLPOP/BRPOP key [key ...] timeout: pops from the first non-empty list, else
/// waits (in queue order with other waiters) for a push to any of the keys, up to
/// `timeout` seconds (0: no limit). Inside MULTI it does not wait.
fn blocking_pop(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CommandResult {
    let timeout_ms = timeout_arg(&args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    for key in keys {
        let shard = shards.shard(key);
        if shard.read::<List>(key, now)?.is_some() {
            return Ok(ListPop(end)
                .serve(shard, key, now)
                .unwrap_or(Reply::NilArray));
        }
    }
    block_on_keys(
        ctx,
        keys,
        timeout_ms,
        Box::new(ListPop(end)),
        Reply::NilArray,
    )
}

fn blpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    blocking_pop(ctx, args, End::Left)
}

fn brpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    blocking_pop(ctx, args, End::Right)
}

fn lpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    pop(ctx, args, End::Left)
}

fn rpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    pop(ctx, args, End::Right)
}

fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let len = shard.read::<List>(&args[1], now)?.map_or(0, |l| l.len());
    Ok(Reply::Int(len as i64))
}

fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let (start, stop) = (a.int()?, a.int()?);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(list) = shard.read::<List>(key, now)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let Some((start, stop)) = list::index_range(start, stop, list.len()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    Ok(Reply::Array(
        list.range(start..=stop)
            .map(|v| Reply::Bulk(v.clone()))
            .collect(),
    ))
}
