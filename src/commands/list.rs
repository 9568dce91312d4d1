//! List commands: pushes and pops at either end (LPUSH, RPOPLPUSH, LMOVE,
//! LMPOP, ...), reads by index and range (LINDEX, LRANGE, LPOS), edits in
//! place (LSET, LINSERT, LREM, LTRIM), and the blocking forms (BLPOP, BRPOP,
//! BLMOVE, BRPOPLPUSH, BLMPOP), each a [`Serve`] step of the blocking registry
//! in `blocking.rs`.

use bytes::Bytes;

use super::args::{at_least_one, mpop_count, Args};
use super::wait::{block_on_keys, timeout_arg};
use super::{flag, int_arg, is, CommandResult, CommandSpec, Ctx, KeySpec};
use crate::blocking::Serve;
use crate::error::CommandError;
use crate::keyspace::{Shard, ShardSet, WrongType};
use crate::notify;
use crate::reply::Reply;
use crate::types::list::{self, End, Fill, List};

const WRITE_FAST: &[&str] = &["@write", "@list", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@list", "@slow"];
const READ_SLOW: &[&str] = &["@read", "@list", "@slow"];
const BLOCKING: &[&str] = &["@write", "@list", "@slow", "@blocking"];
const RW_INSERT: &[KeySpec] = &[KeySpec::one(1, &["RW", "insert"])];
const RW_ACCESS_DELETE: &[&str] = &["RW", "access", "delete"];
const POP: &[KeySpec] = &[KeySpec::one(1, RW_ACCESS_DELETE)];
const RW_DELETE: &[KeySpec] = &[KeySpec::one(1, &["RW", "delete"])];
const MOVE: &[KeySpec] = &[
    KeySpec::one(1, RW_ACCESS_DELETE),
    KeySpec::one(2, &["RW", "insert"]),
];

/// The list family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("lpush", -3, flag::WRITE | flag::DENYOOM | flag::FAST, lpush)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(RW_INSERT)
        .doc("list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    CommandSpec::new("rpush", -3, flag::WRITE | flag::DENYOOM | flag::FAST, rpush)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(RW_INSERT)
        .doc("list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    CommandSpec::new("lpushx", -3, flag::WRITE | flag::DENYOOM | flag::FAST, lpushx)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(RW_INSERT)
        .doc("list", "2.2.0", "Prepends one or more elements to a list only when the list exists."),
    CommandSpec::new("rpushx", -3, flag::WRITE | flag::DENYOOM | flag::FAST, rpushx)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(RW_INSERT)
        .doc("list", "2.2.0", "Appends an element to a list only when the list exists."),
    CommandSpec::new("lpop", -2, flag::WRITE | flag::FAST, lpop)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(POP)
        .doc("list", "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    CommandSpec::new("rpop", -2, flag::WRITE | flag::FAST, rpop)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(POP)
        .doc("list", "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    CommandSpec::new("lmpop", -4, flag::WRITE, lmpop)
        .acl(WRITE_SLOW).key_specs(&[KeySpec::keynum(1, RW_ACCESS_DELETE)])
        .doc("list", "7.0.0", "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped."),
    CommandSpec::new("lmove", 5, flag::WRITE | flag::DENYOOM, lmove)
        .keys(1, 2, 1).acl(WRITE_SLOW).key_specs(MOVE)
        .doc("list", "6.2.0", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    CommandSpec::new("rpoplpush", 3, flag::WRITE | flag::DENYOOM, rpoplpush)
        .keys(1, 2, 1).acl(WRITE_SLOW).key_specs(MOVE)
        .doc("list", "1.2.0", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."),
    CommandSpec::new("blpop", -3, flag::WRITE | flag::NOSCRIPT | flag::BLOCKING, blpop)
        .keys(1, -2, 1).acl(BLOCKING)
        .key_specs(&[KeySpec::range(1, -2, 1, RW_ACCESS_DELETE)])
        .doc("list", "2.0.0", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    CommandSpec::new("brpop", -3, flag::WRITE | flag::NOSCRIPT | flag::BLOCKING, brpop)
        .keys(1, -2, 1).acl(BLOCKING)
        .key_specs(&[KeySpec::range(1, -2, 1, RW_ACCESS_DELETE)])
        .doc("list", "2.0.0", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    CommandSpec::new("blmpop", -5, flag::WRITE | flag::BLOCKING, blmpop)
        .acl(BLOCKING).key_specs(&[KeySpec::keynum(2, RW_ACCESS_DELETE)])
        .doc("list", "7.0.0", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    CommandSpec::new("blmove", 6, flag::WRITE | flag::DENYOOM | flag::NOSCRIPT | flag::BLOCKING, blmove)
        .keys(1, 2, 1).acl(BLOCKING).key_specs(MOVE)
        .doc("list", "6.2.0", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."),
    CommandSpec::new("brpoplpush", 4, flag::WRITE | flag::DENYOOM | flag::NOSCRIPT | flag::BLOCKING, brpoplpush)
        .keys(1, 2, 1).acl(BLOCKING).key_specs(MOVE)
        .doc("list", "2.2.0", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."),
    CommandSpec::new("llen", 2, flag::READONLY | flag::FAST, llen)
        .keys(1, 1, 1).acl(&["@read", "@list", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO"])])
        .doc("list", "1.0.0", "Returns the length of a list."),
    CommandSpec::new("lrange", 4, flag::READONLY, lrange)
        .keys(1, 1, 1).acl(READ_SLOW).key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("list", "1.0.0", "Returns a range of elements from a list."),
    CommandSpec::new("lindex", 3, flag::READONLY, lindex)
        .keys(1, 1, 1).acl(READ_SLOW).key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("list", "1.0.0", "Returns an element from a list by its index."),
    CommandSpec::new("lpos", -3, flag::READONLY, lpos)
        .keys(1, 1, 1).acl(READ_SLOW).key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("list", "6.0.6", "Returns the index of matching elements in a list."),
    CommandSpec::new("lset", 4, flag::WRITE | flag::DENYOOM, lset)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(&[KeySpec::one(1, &["RW", "update"])])
        .doc("list", "1.0.0", "Sets the value of an element in a list by its index."),
    CommandSpec::new("linsert", 5, flag::WRITE | flag::DENYOOM, linsert)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(RW_INSERT)
        .doc("list", "2.2.0", "Inserts an element before or after another element in a list."),
    CommandSpec::new("lrem", 4, flag::WRITE, lrem)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(RW_DELETE)
        .doc("list", "1.0.0", "Removes elements from a list. Deletes the list if the last element was removed."),
    CommandSpec::new("ltrim", 4, flag::WRITE, ltrim)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(RW_DELETE)
        .doc("list", "1.0.0", "Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
];

/// `list-max-listpack-size` and the plain-node threshold, read once per
/// command.
fn fill(ctx: &Ctx<'_>) -> Fill {
    ctx.shared.encodings.list_fill()
}

/// LEFT or RIGHT (any case), else a syntax error.
fn end_arg(arg: &[u8]) -> Result<End, CommandError> {
    if is(arg, "left") {
        Ok(End::Left)
    } else if is(arg, "right") {
        Ok(End::Right)
    } else {
        Err(CommandError::Syntax)
    }
}

/// A count that must not be negative (`message` otherwise, also for a
/// non-integer), as LPOS's COUNT and MAXLEN.
fn not_negative(arg: &[u8], message: &'static str) -> Result<usize, CommandError> {
    match int_arg(arg) {
        Ok(n) if n >= 0 => usize::try_from(n).map_err(|_| CommandError::err(message)),
        _ => Err(CommandError::err(message)),
    }
}

// ---- pushes ------------------------------------------------------------------------

/// LPUSH/RPUSH (`only_existing`: LPUSHX/RPUSHX) key element [element ...]:
/// the new length.
fn push(ctx: &mut Ctx<'_>, args: &[Bytes], end: End, only_existing: bool) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let values = a.rest();
    let (now, fill) = (ctx.now, fill(ctx));
    let mut shard = ctx.db().lock(key);
    let list = if only_existing {
        match shard.write::<List>(key, now)? {
            Some(list) => list,
            None => return Ok(Reply::Int(0)),
        }
    } else {
        shard.get_or_create::<List>(key, now)?
    };
    list.push_all(end, values.iter().map(|v| &v[..]), fill);
    let len = list.len();
    ctx.shared.blocked.signal(ctx.session.db, key);
    drop(shard);
    ctx.notify(notify::LIST, push_event(end), key);
    Ok(Reply::Int(len as i64))
}

fn lpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    push(ctx, args, End::Left, false)
}

fn rpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    push(ctx, args, End::Right, false)
}

fn lpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    push(ctx, args, End::Left, true)
}

fn rpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    push(ctx, args, End::Right, true)
}

// ---- pops --------------------------------------------------------------------------

/// The keyspace event of a push at `end`.
fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

/// The keyspace event of a pop from `end`.
fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

/// Logs the events of elements popped from `end` of `key`: the pop, then
/// `del` when the list is gone (Redis's `listElementsRemoved`).
fn log_popped(shard: &Shard, key: &[u8], end: End, deleted: bool) {
    shard.log_event(notify::LIST, pop_event(end), key);
    if deleted {
        shard.log_event(notify::GENERIC, "del", key);
    }
}

/// Up to `count` elements from `end` of the list at `key` (deleted when
/// emptied), each made a reply by `f`; `None` when there is no list there.
/// With `log`, the pop's keyspace events are logged.
#[allow(clippy::too_many_arguments)]
fn pop_from<R>(
    shard: &mut Shard,
    key: &[u8],
    end: End,
    count: usize,
    fill: Fill,
    now: u64,
    log: bool,
    mut f: impl FnMut(&[u8]) -> R,
) -> Result<Option<Vec<R>>, WrongType> {
    let Some(list) = shard.write::<List>(key, now)? else {
        return Ok(None);
    };
    let n = count.min(list.len());
    let mut popped = Vec::with_capacity(n);
    for _ in 0..n {
        match list.pop_with(end, fill, &mut f) {
            Some(r) => popped.push(r),
            None => break,
        }
    }
    let deleted = shard.remove_if_empty::<List>(key, now);
    if log && !popped.is_empty() {
        log_popped(shard, key, end, deleted);
    }
    Ok(Some(popped))
}

/// LPOP/RPOP key [count]: one element (or nil), or with a count an array (nil
/// array for a missing key); an emptied list is deleted.
fn pop(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let count = match a.next_arg() {
        None => None,
        Some(c) => Some(not_negative(c, "value is out of range, must be positive")?),
    };
    if !a.is_done() {
        let name = if end == End::Left { "lpop" } else { "rpop" };
        return Err(CommandError::WrongArity(name.into()));
    }
    let (now, fill) = (ctx.now, fill(ctx));
    let mut shard = ctx.db().lock(key);
    let Some(count) = count else {
        let Some(list) = shard.write::<List>(key, now)? else {
            return Ok(Reply::Nil);
        };
        let reply = list.pop_with(end, fill, Reply::copy_of);
        let deleted = shard.remove_if_empty::<List>(key, now);
        if reply.is_some() {
            log_popped(&shard, key, end, deleted);
        }
        return Ok(reply.unwrap_or(Reply::Nil));
    };
    Ok(
        match pop_from(&mut shard, key, end, count, fill, now, true, Reply::copy_of)? {
            Some(popped) => Reply::Array(popped),
            None => Reply::NilArray,
        },
    )
}

fn lpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    pop(ctx, args, End::Left)
}

fn rpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    pop(ctx, args, End::Right)
}

/// The command that pops at `end`, for the AOF.
fn pop_name(end: End) -> &'static [u8] {
    match end {
        End::Left => b"LPOP",
        End::Right => b"RPOP",
    }
}

/// `end` as LMOVE names it.
fn end_name(end: End) -> &'static [u8] {
    match end {
        End::Left => b"LEFT",
        End::Right => b"RIGHT",
    }
}

/// The serve step of BLPOP/BRPOP (`[key, element]`) and of BLMPOP and LMPOP
/// (`[key, [element, ...]]`, `multi` set).
#[derive(Debug)]
struct ListPop {
    end: End,
    count: usize,
    multi: bool,
    fill: Fill,
}

impl Serve for ListPop {
    fn wants(&self) -> &'static str {
        "list"
    }

    fn serve(&self, shards: &mut ShardSet<'_>, key: &Bytes, now: u64) -> Option<Reply> {
        let shard = shards.shard(key);
        let popped = pop_from(
            shard,
            key,
            self.end,
            self.count,
            self.fill,
            now,
            true,
            |v| Reply::Bulk(Bytes::copy_from_slice(v)),
        )
        .ok()??;
        let n = popped.len();
        shard.propagate(|| {
            let mut argv = vec![Bytes::from_static(pop_name(self.end)), key.clone()];
            if self.multi {
                argv.push(Bytes::from(n.to_string()));
            }
            argv
        });
        let key = Reply::Bulk(key.clone());
        if self.multi {
            return Some(Reply::Array(vec![key, Reply::Array(popped)]));
        }
        Some(Reply::Array(vec![key, popped.into_iter().next()?]))
    }

    fn undo(&self, shard: &mut Shard, key: &Bytes, reply: Reply, now: u64) {
        let Reply::Array(mut parts) = reply else {
            return;
        };
        let popped = match parts.pop() {
            Some(Reply::Bulk(v)) => vec![v],
            Some(Reply::Array(items)) => items
                .into_iter()
                .filter_map(|r| match r {
                    Reply::Bulk(v) => Some(v),
                    _ => None,
                })
                .collect(),
            _ => return,
        };
        // Elements served to a client that had gone go back where they were,
        // the last popped first (the key may hold another type by now: then
        // they are dropped, as Redis would have served them).
        if let Ok(list) = shard.get_or_create::<List>(key, now) {
            for v in popped.iter().rev() {
                list.push(self.end, v, self.fill);
            }
            shard.propagate(|| {
                let push: &'static [u8] = match self.end {
                    End::Left => b"LPUSH",
                    End::Right => b"RPUSH",
                };
                let mut argv = vec![Bytes::from_static(push), key.clone()];
                argv.extend(popped.iter().rev().cloned());
                argv
            });
        }
    }
}

/// Serves `serve` from the first of `keys` holding a list, else waits (in
/// queue order with other waiters) for one, up to `timeout_ms` (0: no limit;
/// `None` for a command that does not block) and then replies with a nil
/// array, as Redis does for every list wait. A command that does not wait
/// (no timeout, or inside MULTI or a script) replies `empty` instead.
fn pop_or_block<S: Serve + 'static>(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    timeout_ms: Option<u64>,
    serve: S,
    empty: Reply,
) -> CommandResult {
    let now = ctx.now;
    let mut shards = {
        let mut lock: smallvec::SmallVec<[&[u8]; 4]> = keys.iter().map(|k| &k[..]).collect();
        if let Some(dst) = serve.destination() {
            lock.push(dst);
        }
        ctx.db().lock_keys(&lock)
    };
    for key in keys {
        if shards.shard(key).read::<List>(key, now)?.is_some() {
            return Ok(serve.serve(&mut shards, key, now).unwrap_or(empty));
        }
    }
    match timeout_ms {
        // Boxed only to wait: a command that finds its element allocates no
        // serve step.
        Some(ms) if ctx.can_block => block_on_keys(ctx, keys, ms, Box::new(serve), Reply::NilArray),
        _ => Ok(empty),
    }
}

/// BLPOP/BRPOP key [key ...] timeout.
fn blocking_pop(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CommandResult {
    let timeout_ms = timeout_arg(&args[args.len() - 1])?;
    let serve = ListPop {
        end,
        count: 1,
        multi: false,
        fill: fill(ctx),
    };
    let keys = &args[1..args.len() - 1];
    pop_or_block(ctx, keys, Some(timeout_ms), serve, Reply::NilArray)
}

fn blpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    blocking_pop(ctx, args, End::Left)
}

fn brpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    blocking_pop(ctx, args, End::Right)
}

/// Reads `numkeys key [key ...] LEFT|RIGHT [COUNT count]` from `numkeys_at`
/// on: the keys' range in `args` and the serve step.
fn multi_pop_args(
    ctx: &Ctx<'_>,
    args: &[Bytes],
    numkeys_at: usize,
) -> Result<(std::ops::Range<usize>, ListPop), CommandError> {
    let numkeys = at_least_one(&args[numkeys_at], "numkeys should be greater than 0")?;
    let first = numkeys_at + 1;
    let end_at = numkeys.checked_add(first).ok_or(CommandError::Syntax)?;
    let end = end_arg(args.get(end_at).ok_or(CommandError::Syntax)?)?;
    let count = mpop_count(args, end_at + 1)?;
    let serve = ListPop {
        end,
        count,
        multi: true,
        fill: fill(ctx),
    };
    Ok((first..end_at, serve))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count].
fn lmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (keys, serve) = multi_pop_args(ctx, args, 1)?;
    pop_or_block(ctx, &args[keys], None, serve, Reply::NilArray)
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count].
fn blmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (keys, serve) = multi_pop_args(ctx, args, 2)?;
    let timeout_ms = timeout_arg(&args[1])?;
    pop_or_block(ctx, &args[keys], Some(timeout_ms), serve, Reply::NilArray)
}

// ---- moves -------------------------------------------------------------------------

/// The serve step of LMOVE, RPOPLPUSH, BLMOVE and BRPOPLPUSH: an element
/// from one end of the source to one end of `dst`, replied as the element.
#[derive(Debug)]
struct ListMove {
    from: End,
    to: End,
    dst: Bytes,
    fill: Fill,
}

impl Serve for ListMove {
    fn wants(&self) -> &'static str {
        "list"
    }

    fn serve(&self, shards: &mut ShardSet<'_>, key: &Bytes, now: u64) -> Option<Reply> {
        // Redis checks the destination's type before it pops.
        if shards
            .shard(&self.dst)
            .read::<List>(&self.dst, now)
            .is_err()
        {
            return Some(Reply::Error(CommandError::WrongType));
        }
        let source = shards.shard(key);
        let list = source.write::<List>(key, now).ok()??;
        let value = list.pop(self.from, self.fill)?;
        let deleted = if *key == self.dst {
            // A rotation: the list never empties, so the key (and its TTL)
            // stays, as in Redis.
            list.push(self.to, &value, self.fill);
            false
        } else {
            let deleted = source.remove_if_empty::<List>(key, now);
            if let Ok(list) = shards
                .shard(&self.dst)
                .get_or_create::<List>(&self.dst, now)
            {
                list.push(self.to, &value, self.fill);
            }
            deleted
        };
        // Redis's order: the push, then the pop and the source's `del`.
        let dst_shard = shards.shard(&self.dst);
        dst_shard.propagate(|| {
            vec![
                Bytes::from_static(b"LMOVE"),
                key.clone(),
                self.dst.clone(),
                Bytes::from_static(end_name(self.from)),
                Bytes::from_static(end_name(self.to)),
            ]
        });
        dst_shard.log_event(notify::LIST, push_event(self.to), &self.dst);
        log_popped(shards.shard(key), key, self.from, deleted);
        Some(Reply::Bulk(value))
    }

    /// The element already sits in the destination, where the move put it:
    /// it stays there (the move happened; only its reply is lost).
    fn undo(&self, _shard: &mut Shard, _key: &Bytes, _reply: Reply, _now: u64) {}

    fn destination(&self) -> Option<&Bytes> {
        Some(&self.dst)
    }
}

/// LMOVE and friends: `timeout` None for the non-blocking forms.
fn move_or_block(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    from: End,
    to: End,
    timeout_ms: Option<u64>,
) -> CommandResult {
    let (src, dst) = (&args[1], &args[2]);
    let serve = ListMove {
        from,
        to,
        dst: dst.clone(),
        fill: fill(ctx),
    };
    let reply = pop_or_block(
        ctx,
        std::slice::from_ref(src),
        timeout_ms,
        serve,
        Reply::Nil,
    )?;
    if matches!(reply, Reply::Bulk(_)) {
        ctx.shared.blocked.signal(ctx.session.db, dst);
    }
    Ok(reply)
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT.
fn lmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (from, to) = (end_arg(&args[3])?, end_arg(&args[4])?);
    move_or_block(ctx, args, from, to, None)
}

/// RPOPLPUSH source destination.
fn rpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    move_or_block(ctx, args, End::Right, End::Left, None)
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout.
fn blmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (from, to) = (end_arg(&args[3])?, end_arg(&args[4])?);
    let timeout_ms = timeout_arg(&args[5])?;
    move_or_block(ctx, args, from, to, Some(timeout_ms))
}

/// BRPOPLPUSH source destination timeout.
fn brpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let timeout_ms = timeout_arg(&args[3])?;
    move_or_block(ctx, args, End::Right, End::Left, Some(timeout_ms))
}

// ---- reads -------------------------------------------------------------------------

fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let len = shard.read::<List>(&args[1], now)?.map_or(0, List::len);
    Ok(Reply::Int(len as i64))
}

/// LRANGE key start stop. Elements of up to 22 bytes go into the reply
/// inline (one allocation for the whole reply), longer ones are copied.
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
    let mut items = Vec::with_capacity(stop - start + 1);
    items.extend(list.range(start, stop).map(Reply::copy_of));
    Ok(Reply::Array(items))
}

/// LINDEX key index: the element, or nil out of range. The key is looked up
/// before the index is read, as in Redis.
fn lindex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let Some(list) = shard.read::<List>(&args[1], now)? else {
        return Ok(Reply::Nil);
    };
    let index = int_arg(&args[2])?;
    Ok(list.get(index).map_or(Reply::Nil, Reply::copy_of))
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len].
fn lpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let (key, element) = (a.key()?, a.bytes()?);
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    while let Some(opt) = a.next_arg() {
        let Some(value) = a.next_arg() else {
            return Err(CommandError::Syntax);
        };
        if is(opt, "rank") {
            rank = int_arg(value)?;
            if rank == 0 {
                return Err(CommandError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(opt, "count") {
            count = Some(not_negative(value, "COUNT can't be negative")?);
        } else if is(opt, "maxlen") {
            maxlen = not_negative(value, "MAXLEN can't be negative")?;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(list) = shard.read::<List>(key, now)? else {
        return Ok(match count {
            Some(_) => Reply::Array(Vec::new()),
            None => Reply::Nil,
        });
    };
    let found = list.positions(element, rank, count.unwrap_or(1), maxlen);
    Ok(match count {
        Some(_) => Reply::Array(found.into_iter().map(|i| Reply::Int(i as i64)).collect()),
        None => found.first().map_or(Reply::Nil, |&i| Reply::Int(i as i64)),
    })
}

// ---- edits -------------------------------------------------------------------------

/// LSET key index element. The key is looked up before the index is read,
/// as in Redis; a failed LSET changes nothing (WATCH is left alone).
fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (now, fill) = (ctx.now, fill(ctx));
    let key = &args[1];
    let mut shard = ctx.db().lock(key);
    let Some(list) = shard.read::<List>(key, now)? else {
        return Err(CommandError::NoSuchKey);
    };
    let index = int_arg(&args[2])?;
    if list.position(index).is_none() {
        return Err(CommandError::err("index out of range"));
    }
    if let Some(list) = shard.write::<List>(key, now)? {
        list.set(index, &args[3], fill);
    }
    drop(shard);
    ctx.notify(notify::LIST, "lset", key);
    Ok(Reply::Simple("OK"))
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, 0 for no list, -1
/// when the pivot is not there.
fn linsert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let after = if is(&args[2], "after") {
        true
    } else if is(&args[2], "before") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    let (now, fill) = (ctx.now, fill(ctx));
    let key = &args[1];
    let mut shard = ctx.db().lock(key);
    // Only an insert changes the list (a missing pivot leaves WATCH alone).
    let Some(list) = shard.read::<List>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    if !list.iter().any(|e| e == &args[3][..]) {
        return Ok(Reply::Int(-1));
    }
    let Some(list) = shard.write::<List>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    let len = list.insert(&args[3], &args[4], after, fill);
    drop(shard);
    if len.is_some() {
        ctx.notify(notify::LIST, "linsert", key);
    }
    Ok(Reply::Int(len.map_or(-1, |n| n as i64)))
}

/// LREM key count element: how many were removed.
fn lrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let count = int_arg(&args[2])?;
    let (now, fill) = (ctx.now, fill(ctx));
    let key = &args[1];
    let mut shard = ctx.db().lock(key);
    let Some(list) = shard.read::<List>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    if !list.iter().any(|e| e == &args[3][..]) {
        return Ok(Reply::Int(0));
    }
    let Some(list) = shard.write::<List>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    let removed = list.remove(&args[3], count, fill);
    let deleted = shard.remove_if_empty::<List>(key, now);
    drop(shard);
    if removed > 0 {
        ctx.notify(notify::LIST, "lrem", key);
        if deleted {
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    Ok(Reply::Int(removed as i64))
}

/// LTRIM key start stop.
fn ltrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (start, stop) = (int_arg(&args[2])?, int_arg(&args[3])?);
    let (now, fill) = (ctx.now, fill(ctx));
    let key = &args[1];
    let mut shard = ctx.db().lock(key);
    if let Some(list) = shard.write::<List>(key, now)? {
        list.trim(start, stop, fill);
        let deleted = shard.remove_if_empty::<List>(key, now);
        drop(shard);
        ctx.notify(notify::LIST, "ltrim", key);
        if deleted {
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    Ok(Reply::Simple("OK"))
}
