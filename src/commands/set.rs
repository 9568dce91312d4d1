//! Set commands: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP,
//! SRANDMEMBER, SMOVE, SINTER, SINTERCARD, SINTERSTORE, SUNION, SUNIONSTORE,
//! SDIFF, SDIFFSTORE and SSCAN. The set itself and its encodings live in
//! `types::set`; multi-key commands lock their keys' shards together and run as
//! one step.

use bytes::Bytes;

use super::args::Args;
use super::keys::{scan_cursor, scan_reply, ScanOf, ScanOptions};
use super::CommandResult;
use super::{flag, int_arg, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::keyspace::{Entry, ShardSet, Value};
use crate::notify;
use crate::reply::Reply;
use crate::types::set::{self, MemberRef, Set, SetLimits};

const RW_INSERT: &[&str] = &["RW", "insert"];
const RW_DELETE: &[&str] = &["RW", "delete"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "access", "delete"];
const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "access"];
const WRITE_FAST: &[&str] = &["@write", "@set", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@set", "@slow"];
const READ_FAST: &[&str] = &["@read", "@set", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@set", "@slow"];
const ORDER: &[&str] = &["nondeterministic_output_order"];
const RANDOM: &[&str] = &["nondeterministic_output"];
const ALL_KEYS: &[KeySpec] = &[KeySpec::range(1, -1, 1, RO_ACCESS)];
const STORE_RW: &[KeySpec] = &[
    KeySpec::one(1, &["RW", "update"]),
    KeySpec::range(2, -1, 1, RO_ACCESS),
];
const STORE_OW: &[KeySpec] = &[
    KeySpec::one(1, &["OW", "update"]),
    KeySpec::range(2, -1, 1, RO_ACCESS),
];

/// Most members SRANDMEMBER with a negative count returns. Redis streams any
/// number into the client's output buffer; here a reply is built whole, so a
/// count such as -9223372036854775807 is clamped rather than exhausting memory.
pub const MAX_REPEATED_SAMPLE: usize = 1 << 20;

/// The set family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("sadd", -3, flag::WRITE | flag::DENYOOM | flag::FAST, sadd)
        .keys(1, 1, 1)
        .acl(WRITE_FAST)
        .key_specs(&[KeySpec::one(1, RW_INSERT)])
        .doc("set", "1.0.0", "Adds one or more members to a set. Creates the key if it doesn't exist."),
    CommandSpec::new("srem", -3, flag::WRITE | flag::FAST, srem)
        .keys(1, 1, 1)
        .acl(WRITE_FAST)
        .key_specs(&[KeySpec::one(1, RW_DELETE)])
        .doc("set", "1.0.0", "Removes one or more members from a set. Deletes the set if the last member was removed."),
    CommandSpec::new("smembers", 2, flag::READONLY, smembers)
        .keys(1, 1, 1)
        .acl(READ_SLOW)
        .tips(ORDER)
        .key_specs(&[KeySpec::one(1, RO_ACCESS)])
        .doc("set", "1.0.0", "Returns all members of a set."),
    CommandSpec::new("sismember", 3, flag::READONLY | flag::FAST, sismember)
        .keys(1, 1, 1)
        .acl(READ_FAST)
        .key_specs(&[KeySpec::one(1, RO)])
        .doc("set", "1.0.0", "Determines whether a member belongs to a set."),
    CommandSpec::new("smismember", -3, flag::READONLY | flag::FAST, smismember)
        .keys(1, 1, 1)
        .acl(READ_FAST)
        .key_specs(&[KeySpec::one(1, RO_ACCESS)])
        .doc("set", "6.2.0", "Determines whether multiple members belong to a set."),
    CommandSpec::new("scard", 2, flag::READONLY | flag::FAST, scard)
        .keys(1, 1, 1)
        .acl(READ_FAST)
        .key_specs(&[KeySpec::one(1, RO)])
        .doc("set", "1.0.0", "Returns the number of members in a set."),
    CommandSpec::new("spop", -2, flag::WRITE | flag::FAST, spop)
        .keys(1, 1, 1)
        .acl(WRITE_FAST)
        .tips(RANDOM)
        .key_specs(&[KeySpec::one(1, RW_ACCESS_DELETE)])
        .doc("set", "1.0.0", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    CommandSpec::new("srandmember", -2, flag::READONLY, srandmember)
        .keys(1, 1, 1)
        .acl(READ_SLOW)
        .tips(RANDOM)
        .key_specs(&[KeySpec::one(1, RO_ACCESS)])
        .doc("set", "1.0.0", "Get one or multiple random members from a set"),
    CommandSpec::new("smove", 4, flag::WRITE | flag::FAST, smove)
        .keys(1, 2, 1)
        .acl(WRITE_FAST)
        .key_specs(&[KeySpec::one(1, RW_ACCESS_DELETE), KeySpec::one(2, RW_INSERT)])
        .doc("set", "1.0.0", "Moves a member from one set to another."),
    CommandSpec::new("sinter", -2, flag::READONLY, sinter)
        .keys(1, -1, 1)
        .acl(READ_SLOW)
        .tips(ORDER)
        .key_specs(ALL_KEYS)
        .doc("set", "1.0.0", "Returns the intersect of multiple sets."),
    CommandSpec::new("sintercard", -3, flag::READONLY, sintercard)
        .acl(READ_SLOW)
        .key_specs(&[KeySpec::keynum(1, RO_ACCESS)])
        .doc("set", "7.0.0", "Returns the number of members of the intersect of multiple sets."),
    CommandSpec::new("sinterstore", -3, flag::WRITE | flag::DENYOOM, sinterstore)
        .keys(1, -1, 1)
        .acl(WRITE_SLOW)
        .key_specs(STORE_RW)
        .doc("set", "1.0.0", "Stores the intersect of multiple sets in a key."),
    CommandSpec::new("sunion", -2, flag::READONLY, sunion)
        .keys(1, -1, 1)
        .acl(READ_SLOW)
        .tips(ORDER)
        .key_specs(ALL_KEYS)
        .doc("set", "1.0.0", "Returns the union of multiple sets."),
    CommandSpec::new("sunionstore", -3, flag::WRITE | flag::DENYOOM, sunionstore)
        .keys(1, -1, 1)
        .acl(WRITE_SLOW)
        .key_specs(STORE_OW)
        .doc("set", "1.0.0", "Stores the union of multiple sets in a key."),
    CommandSpec::new("sdiff", -2, flag::READONLY, sdiff)
        .keys(1, -1, 1)
        .acl(READ_SLOW)
        .tips(ORDER)
        .key_specs(ALL_KEYS)
        .doc("set", "1.0.0", "Returns the difference of multiple sets."),
    CommandSpec::new("sdiffstore", -3, flag::WRITE | flag::DENYOOM, sdiffstore)
        .keys(1, -1, 1)
        .acl(WRITE_SLOW)
        .key_specs(STORE_OW)
        .doc("set", "1.0.0", "Stores the difference of multiple sets in a key."),
    CommandSpec::new("sscan", -3, flag::READONLY, sscan)
        .keys(1, 1, 1)
        .acl(READ_SLOW)
        .tips(RANDOM)
        .key_specs(&[KeySpec::one(1, RO_ACCESS)])
        .doc("set", "2.8.0", "Iterates over members of a set."),
];

/// A member as a bulk string: short ones inline, without an allocation.
fn member_reply(m: MemberRef<'_>) -> Reply {
    m.with_bytes(Reply::copy_of)
}

fn members_reply<'a>(members: impl IntoIterator<Item = MemberRef<'a>>) -> Vec<Reply> {
    members.into_iter().map(member_reply).collect()
}

fn limits(ctx: &Ctx<'_>) -> SetLimits {
    SetLimits::of(&ctx.shared.encodings)
}

/// SADD key member [member ...]
fn sadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let members = a.rest();
    let Some(first) = members.first() else {
        return Err(CommandError::Syntax);
    };
    let (now, limits) = (ctx.now, limits(ctx));
    let mut shard = ctx.db().lock(key);
    // Nothing new: the key is not modified (a WATCH on it stays valid).
    if let Some(set) = shard.read::<Set>(key, now)? {
        if members.iter().all(|m| set.contains(m)) {
            return Ok(Reply::Int(0));
        }
    }
    let set = shard.get_or_create::<Set>(key, now)?;
    set.prepare(first, members.len(), &limits);
    let added = members.iter().filter(|m| set.add(m, &limits)).count();
    drop(shard);
    ctx.notify(notify::SET, "sadd", key);
    Ok(Reply::Int(added as i64))
}

/// SREM key member [member ...]; the emptied set is deleted.
fn srem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let members = a.rest();
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    match shard.read::<Set>(key, now)? {
        Some(set) if members.iter().any(|m| set.contains(m)) => {}
        _ => return Ok(Reply::Int(0)),
    }
    let Some(set) = shard.write::<Set>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    let removed = members.iter().filter(|m| set.remove(m)).count();
    let deleted = shard.remove_if_empty::<Set>(key, now);
    drop(shard);
    ctx.notify(notify::SET, "srem", key);
    if deleted {
        ctx.notify(notify::GENERIC, "del", key);
    }
    Ok(Reply::Int(removed as i64))
}

/// SMEMBERS key: a set reply (an array in RESP2).
fn smembers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = Args::new(args).key()?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let members = match shard.read::<Set>(key, now)? {
        Some(set) => members_reply(set.iter()),
        None => Vec::new(),
    };
    Ok(Reply::Set(members))
}

fn sismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let (key, member) = (a.key()?, a.bytes()?);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let found = shard
        .read::<Set>(key, now)?
        .is_some_and(|s| s.contains(member));
    Ok(Reply::Int(i64::from(found)))
}

/// SMISMEMBER key member [member ...]: 1 or 0 for each (all 0 for no key).
fn smismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let members = a.rest();
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let set = shard.read::<Set>(key, now)?;
    Ok(Reply::Array(
        members
            .iter()
            .map(|m| Reply::Int(i64::from(set.is_some_and(|s| s.contains(m)))))
            .collect(),
    ))
}

fn scard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = Args::new(args).key()?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let n = shard.read::<Set>(key, now)?.map_or(0, Set::len);
    Ok(Reply::Int(n as i64))
}

/// SPOP key [count]: one member (nil for no key), or with a count a set reply
/// of up to `count` members; the emptied set is deleted.
fn spop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let mut a = Args::new(args);
    let key = a.key()?;
    let count = match a.next_arg() {
        None => None,
        Some(c) => {
            let positive = || CommandError::err("value is out of range, must be positive");
            let n = int_arg(c).map_err(|_| positive())?;
            Some(usize::try_from(n).map_err(|_| positive())?)
        }
    };
    let (now, limits) = (ctx.now, limits(ctx));
    let mut rng = fastrand::Rng::new();
    let mut shard = ctx.db().lock(key);
    let Some(len) = shard.read::<Set>(key, now)?.map(Set::len) else {
        return Ok(match count {
            None => Reply::Nil,
            Some(_) => Reply::Set(Vec::new()),
        });
    };
    let reply = match count {
        Some(0) => return Ok(Reply::Set(Vec::new())),
        Some(n) if n >= len => {
            // The whole set, in the order Redis's union of it gives.
            let all = match shard.read::<Set>(key, now)? {
                Some(s) => set::union(&[Some(s)], &limits),
                None => Set::default(),
            };
            shard.remove(key, now);
            drop(shard);
            ctx.propagate(|| vec![Bytes::from_static(b"DEL"), key.clone()]);
            ctx.notify(notify::SET, "spop", key);
            ctx.notify(notify::GENERIC, "del", key);
            return Ok(Reply::Set(members_reply(all.iter())));
        }
        Some(n) => match shard.write::<Set>(key, now)? {
            Some(s) => {
                let popped = s.pop_many(n, &limits, &mut rng);
                // The members drawn, as SREM: a replay draws nothing.
                ctx.propagate(|| {
                    let mut argv = vec![Bytes::from_static(b"SREM"), key.clone()];
                    argv.extend(popped.iter().map(|m| m.to_bytes()));
                    argv
                });
                Reply::Set(popped.iter().map(Reply::stored).collect())
            }
            None => Reply::Set(Vec::new()),
        },
        None => match shard.write::<Set>(key, now)? {
            Some(s) => match s.pop_random(&mut rng) {
                Some(m) => {
                    ctx.propagate(|| vec![Bytes::from_static(b"SREM"), key.clone(), m.to_bytes()]);
                    Reply::stored(&m)
                }
                None => Reply::Nil,
            },
            None => Reply::Nil,
        },
    };
    let deleted = shard.remove_if_empty::<Set>(key, now);
    drop(shard);
    if !matches!(reply, Reply::Nil) {
        ctx.notify(notify::SET, "spop", key);
        if deleted {
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    Ok(reply)
}

/// SRANDMEMBER key [count]: one random member (nil for no key); with a count
/// up to `count` distinct members, or with a negative count exactly `-count`
/// members with repeats (clamped to [`MAX_REPEATED_SAMPLE`]).
fn srandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let mut a = Args::new(args);
    let key = a.key()?;
    let count = match a.next_arg() {
        None => None,
        Some(c) => {
            let n = int_arg(c)?;
            if n == i64::MIN {
                return Err(CommandError::err(
                    "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            Some(n)
        }
    };
    let now = ctx.now;
    let mut rng = fastrand::Rng::new();
    let mut shard = ctx.db().lock(key);
    let set = shard.read::<Set>(key, now)?;
    let Some(n) = count else {
        return Ok(set
            .and_then(|s| s.random(&mut rng))
            .map_or(Reply::Nil, member_reply));
    };
    let Some(set) = set else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picks = if n < 0 || n == 1 {
        let n = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
        set.random_repeated(n.min(MAX_REPEATED_SAMPLE), &mut rng)
    } else {
        set.random_distinct(usize::try_from(n).unwrap_or(usize::MAX), &mut rng)
    };
    Ok(Reply::Array(members_reply(picks)))
}

/// SMOVE source destination member: 1 if moved (or already in a source that is
/// also the destination), 0 if the source lacks it.
fn smove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let (src, dst, member) = (a.key()?, a.key()?, a.bytes()?);
    let (now, limits) = (ctx.now, limits(ctx));
    let mut shards = ctx.db().lock_keys(&[src, dst]);
    let in_src = match shards.view::<Set>(src, now)? {
        None => return Ok(Reply::Int(0)),
        Some(s) => s.contains(member),
    };
    shards.view::<Set>(dst, now)?;
    if src == dst || !in_src {
        return Ok(Reply::Int(i64::from(in_src)));
    }
    let shard = shards.shard(src);
    if let Some(s) = shard.write::<Set>(src, now)? {
        s.remove(member);
    }
    let deleted = shard.remove_if_empty::<Set>(src, now);
    let shard = shards.shard(dst);
    let created = shard.read::<Set>(dst, now)?.is_none();
    let target = shard.get_or_create::<Set>(dst, now)?;
    if created {
        target.prepare(member, 1, &limits);
    }
    let added = target.add(member, &limits);
    drop(shards);
    ctx.notify(notify::SET, "srem", src);
    if deleted {
        ctx.notify(notify::GENERIC, "del", src);
    }
    if added {
        ctx.notify(notify::SET, "sadd", dst);
    }
    Ok(Reply::Int(1))
}

/// The sets at `keys` (`None` for a missing key), or WRONGTYPE for the first
/// key of another type.
fn sets_at<'s>(
    shards: &'s ShardSet<'_>,
    keys: &[Bytes],
    now: u64,
) -> Result<Vec<Option<&'s Set>>, CommandError> {
    keys.iter()
        .map(|k| shards.view::<Set>(k, now).map_err(CommandError::from))
        .collect()
}

/// Stores `result` at `dst` (replacing whatever is there) and raises `event`,
/// or deletes `dst` when it is empty (`del` if there was one); replies with
/// its size.
fn store(
    ctx: &mut Ctx<'_>,
    mut shards: ShardSet<'_>,
    dst: &[u8],
    result: Set,
    event: &'static str,
) -> Reply {
    let now = ctx.now;
    let shard = shards.shard(dst);
    let n = result.len();
    if n == 0 {
        let deleted = shard.remove(dst, now).is_some();
        drop(shards);
        if deleted {
            ctx.notify(notify::GENERIC, "del", dst);
        }
    } else {
        shard.insert(dst, Entry::persistent(Value::Set(result)), now);
        drop(shards);
        ctx.notify(notify::SET, event, dst);
    }
    Reply::Int(n as i64)
}

fn sinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = Args::new(args).rest();
    let now = ctx.now;
    let shards = ctx.db().lock_keys(keys);
    let sets = sets_at(&shards, keys, now)?;
    let Some(sets) = sets.into_iter().collect::<Option<Vec<&Set>>>() else {
        return Ok(Reply::Set(Vec::new()));
    };
    Ok(Reply::Set(members_reply(set::intersection(&sets))))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let numkeys = match a.int() {
        Ok(n) if n >= 1 => n,
        _ => return Err(CommandError::err("numkeys should be greater than 0")),
    };
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > a.remaining() {
        return Err(CommandError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let keys = a.take(numkeys)?;
    let mut limit = 0usize;
    while !a.is_done() {
        if a.remaining() >= 2 && a.keyword("LIMIT") {
            limit = match a.int() {
                Ok(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => return Err(CommandError::err("LIMIT can't be negative")),
            };
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    let shards = ctx.db().lock_keys(keys);
    let sets = sets_at(&shards, keys, now)?;
    let Some(sets) = sets.into_iter().collect::<Option<Vec<&Set>>>() else {
        return Ok(Reply::Int(0));
    };
    Ok(Reply::Int(set::intersection_card(&sets, limit) as i64))
}

fn sinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let all = Args::new(args).rest();
    let Some((dst, keys)) = all.split_first() else {
        return Err(CommandError::Syntax);
    };
    let (now, limits) = (ctx.now, limits(ctx));
    let shards = ctx.db().lock_keys(all);
    let result = {
        let sets = sets_at(&shards, keys, now)?;
        match sets.into_iter().collect::<Option<Vec<&Set>>>() {
            Some(sets) => set::intersection_set(&sets, &limits),
            None => Set::default(),
        }
    };
    Ok(store(ctx, shards, dst, result, "sinterstore"))
}

/// Which of SUNION and SDIFF.
#[derive(Clone, Copy)]
enum Op {
    Union,
    Diff,
}

/// The union or difference of the sets at `keys`, with the shards locked.
fn combine(
    shards: &ShardSet<'_>,
    keys: &[Bytes],
    op: Op,
    limits: &SetLimits,
    now: u64,
) -> Result<Set, CommandError> {
    let sets = sets_at(shards, keys, now)?;
    Ok(match op {
        Op::Union => set::union(&sets, limits),
        Op::Diff => {
            let same = match (keys.split_first(), sets.first()) {
                (Some((first, rest)), Some(Some(_))) => rest.iter().any(|k| k == first),
                _ => false,
            };
            set::difference(&sets, same, limits)
        }
    })
}

fn union_or_diff(ctx: &mut Ctx<'_>, args: &[Bytes], op: Op) -> CommandResult {
    let keys = Args::new(args).rest();
    let (now, limits) = (ctx.now, limits(ctx));
    let shards = ctx.db().lock_keys(keys);
    let result = combine(&shards, keys, op, &limits, now)?;
    Ok(Reply::Set(members_reply(result.iter())))
}

fn union_or_diff_store(ctx: &mut Ctx<'_>, args: &[Bytes], op: Op) -> CommandResult {
    let all = Args::new(args).rest();
    let Some((dst, keys)) = all.split_first() else {
        return Err(CommandError::Syntax);
    };
    let (now, limits) = (ctx.now, limits(ctx));
    let shards = ctx.db().lock_keys(all);
    let result = combine(&shards, keys, op, &limits, now)?;
    let event = match op {
        Op::Union => "sunionstore",
        Op::Diff => "sdiffstore",
    };
    Ok(store(ctx, shards, dst, result, event))
}

fn sunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    union_or_diff(ctx, args, Op::Union)
}

fn sdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    union_or_diff(ctx, args, Op::Diff)
}

fn sunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    union_or_diff_store(ctx, args, Op::Union)
}

fn sdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    union_or_diff_store(ctx, args, Op::Diff)
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]. As in Redis the cursor is
/// read first, then the key (a missing key ends the scan before the options are
/// read), then the options.
fn sscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let cursor = scan_cursor(a.bytes()?).ok_or_else(|| CommandError::err("invalid cursor"))?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(set) = shard.read::<Set>(key, now)? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let options = ScanOptions::read(a.rest(), ScanOf::Members)?;
    let (next, members) = set.scan(cursor, options.count);
    let members = members
        .into_iter()
        .filter(|m| m.with_bytes(|b| options.matches(b)))
        .map(member_reply)
        .collect();
    Ok(scan_reply(next, members))
}
