//! List commands: LPUSH, RPUSH, LPOP, RPOP, LLEN, LRANGE, and the blocking
//! BLPOP and BRPOP (their waiters and hand-over are in `keyspace::blocking`).

use std::collections::VecDeque;

use bytes::Bytes;

use super::CommandResult;
use super::{flag, int_arg, parse_float, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::keyspace::{End, Entry, Value};
use crate::reply::Reply;
use crate::session::{Blocked, Wait};

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
    let key = &args[1];
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let list = match shard.get_mut(key, now) {
        Some(Entry {
            value: Value::List(list),
            ..
        }) => list,
        Some(_) => return Err(CommandError::WrongType),
        None => {
            shard.insert(key, Entry::persistent(Value::List(Box::default())), now);
            match shard.get_mut(key, now) {
                Some(Entry {
                    value: Value::List(list),
                    ..
                }) => list,
                _ => return Err(CommandError::err("list could not be created")),
            }
        }
    };
    for v in &args[2..] {
        let v = Bytes::copy_from_slice(v);
        match end {
            End::Left => list.push_front(v),
            End::Right => list.push_back(v),
        }
    }
    let len = list.len();
    ctx.shared.keyspace.lists().signal(ctx.session.db, key);
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
    let count = match args.get(2) {
        None => None,
        Some(c) => {
            let n = int_arg(c)
                .map_err(|_| CommandError::err("value is out of range, must be positive"))?;
            if n < 0 {
                return Err(CommandError::err("value is out of range, must be positive"));
            }
            Some(n as usize)
        }
    };
    let key = &args[1];
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let list = match shard.get_mut(key, now) {
        Some(Entry {
            value: Value::List(list),
            ..
        }) => list,
        Some(_) => return Err(CommandError::WrongType),
        None => {
            return Ok(if count.is_some() {
                Reply::NilArray
            } else {
                Reply::Nil
            })
        }
    };
    let Some(n) = count else {
        return Ok(Reply::bulk_or_nil(shard.list_pop(key, end, now)));
    };
    let take = |list: &mut VecDeque<Bytes>| match end {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    };
    let reply = Reply::Array((0..n).map_while(|_| take(list)).map(Reply::Bulk).collect());
    if list.is_empty() {
        shard.remove(key, now);
    }
    Ok(reply)
}

/// BLPOP/BRPOP key [key ...] timeout: pops from the first non-empty list, else
/// waits (in queue order with other waiters) for a push to any of the keys, up to
/// `timeout` seconds (0: no limit). Inside MULTI it does not wait.
fn blocking_pop(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CommandResult {
    let timeout_ms = timeout_arg(&args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    let now = ctx.now;
    let db_index = ctx.session.db;
    let mut shards = ctx.db().lock_keys(keys);
    for key in keys {
        let shard = shards.shard(key);
        match shard.get(key, now).map(|e| &e.value) {
            Some(Value::List(_)) => {
                let v = shard.list_pop(key, end, now);
                return Ok(Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::bulk_or_nil(v),
                ]));
            }
            Some(_) => return Err(CommandError::WrongType),
            None => {}
        }
    }
    if !ctx.can_block {
        return Ok(Reply::NilArray);
    }
    // Registered while the shards are held: a push after this sees the waiter.
    let (waiter, grant) = ctx.shared.keyspace.lists().register(
        db_index,
        keys.iter().map(|k| Bytes::copy_from_slice(k)).collect(),
        end,
    );
    drop(shards);
    ctx.session.blocked = Some(Blocked {
        deadline: (timeout_ms > 0).then(|| now.saturating_add(timeout_ms)),
        on: Wait::List { waiter, grant },
    });
    // The connection sends the real reply once the wait ends.
    Ok(Reply::Silent)
}

/// A blocking command's timeout in seconds (a float, as Redis's `strtold` reads
/// it) as milliseconds.
fn timeout_arg(arg: &[u8]) -> Result<u64, CommandError> {
    let secs = parse_float(arg)
        .ok_or_else(|| CommandError::err("timeout is not a float or out of range"))?;
    // Redis truncates to a 64-bit integer; out of range ends up negative there.
    let ms = (secs * 1000.0).trunc();
    if !(0.0..9.223_372_036_854_775e18).contains(&ms) {
        return Err(CommandError::err("timeout is negative"));
    }
    Ok(ms as u64)
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
    match shard.get(&args[1], now).map(|e| &e.value) {
        Some(Value::List(list)) => Ok(Reply::Int(list.len() as i64)),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(Reply::Int(0)),
    }
}

fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let start = int_arg(&args[2])?;
    let stop = int_arg(&args[3])?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let list = match shard.get(&args[1], now).map(|e| &e.value) {
        Some(Value::List(list)) => list,
        Some(_) => return Err(CommandError::WrongType),
        None => return Ok(Reply::Array(Vec::new())),
    };
    let len = list.len() as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        return Ok(Reply::Array(Vec::new()));
    }
    Ok(Reply::Array(
        list.range(start as usize..=stop as usize)
            .map(|v| Reply::Bulk(v.clone()))
            .collect(),
    ))
}
