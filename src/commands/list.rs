//! List commands: LPUSH, RPUSH, LPOP, RPOP, LLEN, LRANGE.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{flag, int_arg, CommandSpec, Ctx};
use crate::error::{CommandError, CommandResult};
use crate::keyspace::{Entry, Value};
use crate::reply::Reply;

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
    CommandSpec::new("llen", 2, flag::READONLY | flag::FAST, llen)
        .keys(1, 1, 1)
        .doc("list", "1.0.0", "Returns the length of a list."),
    CommandSpec::new("lrange", 4, flag::READONLY, lrange)
        .keys(1, 1, 1)
        .doc("list", "1.0.0", "Returns a range of elements from a list."),
];

/// Which end of the list.
#[derive(Clone, Copy, PartialEq)]
enum End {
    Left,
    Right,
}

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
    Ok(Reply::Int(list.len() as i64))
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
    let take = |list: &mut VecDeque<Bytes>| match end {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    };
    let reply = match count {
        None => Reply::bulk_or_nil(take(list)),
        Some(n) => Reply::Array((0..n).map_while(|_| take(list)).map(Reply::Bulk).collect()),
    };
    if list.is_empty() {
        shard.remove(key, now);
    }
    Ok(reply)
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
