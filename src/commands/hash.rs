//! Hash commands: HSET, HSETNX, HGET, HMGET, HMSET, HGETALL, HDEL, HEXISTS, HLEN,
//! HKEYS, HVALS, HSTRLEN, HINCRBY, HINCRBYFLOAT, HRANDFIELD and HSCAN. The hash
//! itself (its two representations and their operations) is `types::hash`.

use bytes::Bytes;

use super::args::Args;
use super::keys::{scan_cursor, scan_reply, ScanOf, ScanOptions};
use super::CommandResult;
use super::{flag, parse_float, CallMode, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::notify;
use crate::reply::{Reply, Written};
use crate::types::hash::{Hash, IncrError};

const WRITE: &[&str] = &["@write", "@hash", "@fast"];
const READ_FAST: &[&str] = &["@read", "@hash", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@hash", "@slow"];
const RW_UPDATE: &[KeySpec] = &[KeySpec::one(1, &["RW", "update"])];
const RW_INSERT: &[KeySpec] = &[KeySpec::one(1, &["RW", "insert"])];
const RW_DELETE: &[KeySpec] = &[KeySpec::one(1, &["RW", "delete"])];
const RW_ACCESS_UPDATE: &[KeySpec] = &[KeySpec::one(1, &["RW", "access", "update"])];
const RO_ACCESS: &[KeySpec] = &[KeySpec::one(1, &["RO", "access"])];
const RO: &[KeySpec] = &[KeySpec::one(1, &["RO"])];

/// The hash family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("hset", -4, flag::WRITE | flag::DENYOOM | flag::FAST, hset)
        .keys(1, 1, 1).acl(WRITE).key_specs(RW_UPDATE)
        .doc("hash", "2.0.0", "Creates or modifies the value of a field in a hash."),
    CommandSpec::new("hsetnx", 4, flag::WRITE | flag::DENYOOM | flag::FAST, hsetnx)
        .keys(1, 1, 1).acl(WRITE).key_specs(RW_INSERT)
        .doc("hash", "2.0.0", "Sets the value of a field in a hash only when the field doesn't exist."),
    CommandSpec::new("hget", 3, flag::READONLY | flag::FAST, hget)
        .keys(1, 1, 1).acl(READ_FAST).key_specs(RO_ACCESS)
        .doc("hash", "2.0.0", "Returns the value of a field in a hash."),
    CommandSpec::new("hmget", -3, flag::READONLY | flag::FAST, hmget)
        .keys(1, 1, 1).acl(READ_FAST).key_specs(RO_ACCESS)
        .doc("hash", "2.0.0", "Returns the values of all fields in a hash."),
    CommandSpec::new("hmset", -4, flag::WRITE | flag::DENYOOM | flag::FAST, hmset)
        .keys(1, 1, 1).acl(WRITE).key_specs(RW_UPDATE)
        .doc("hash", "2.0.0", "Sets the values of multiple fields."),
    CommandSpec::new("hgetall", 2, flag::READONLY, hgetall)
        .keys(1, 1, 1).acl(READ_SLOW).key_specs(RO_ACCESS)
        .tips(&["nondeterministic_output_order"])
        .doc("hash", "2.0.0", "Returns all fields and values in a hash."),
    CommandSpec::new("hdel", -3, flag::WRITE | flag::FAST, hdel)
        .keys(1, 1, 1).acl(WRITE).key_specs(RW_DELETE)
        .doc("hash", "2.0.0", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."),
    CommandSpec::new("hexists", 3, flag::READONLY | flag::FAST, hexists)
        .keys(1, 1, 1).acl(READ_FAST).key_specs(RO)
        .doc("hash", "2.0.0", "Determines whether a field exists in a hash."),
    CommandSpec::new("hlen", 2, flag::READONLY | flag::FAST, hlen)
        .keys(1, 1, 1).acl(READ_FAST).key_specs(RO)
        .doc("hash", "2.0.0", "Returns the number of fields in a hash."),
    CommandSpec::new("hkeys", 2, flag::READONLY, hkeys)
        .keys(1, 1, 1).acl(READ_SLOW).key_specs(RO_ACCESS)
        .tips(&["nondeterministic_output_order"])
        .doc("hash", "2.0.0", "Returns all fields in a hash."),
    CommandSpec::new("hvals", 2, flag::READONLY, hvals)
        .keys(1, 1, 1).acl(READ_SLOW).key_specs(RO_ACCESS)
        .tips(&["nondeterministic_output_order"])
        .doc("hash", "2.0.0", "Returns all values in a hash."),
    CommandSpec::new("hstrlen", 3, flag::READONLY | flag::FAST, hstrlen)
        .keys(1, 1, 1).acl(READ_FAST).key_specs(RO)
        .doc("hash", "3.2.0", "Returns the length of the value of a field."),
    CommandSpec::new("hincrby", 4, flag::WRITE | flag::DENYOOM | flag::FAST, hincrby)
        .keys(1, 1, 1).acl(WRITE).key_specs(RW_ACCESS_UPDATE)
        .doc("hash", "2.0.0", "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."),
    CommandSpec::new("hincrbyfloat", 4, flag::WRITE | flag::DENYOOM | flag::FAST, hincrbyfloat)
        .keys(1, 1, 1).acl(WRITE).key_specs(RW_ACCESS_UPDATE)
        .doc("hash", "2.6.0", "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."),
    CommandSpec::new("hrandfield", -2, flag::READONLY, hrandfield)
        .keys(1, 1, 1).acl(READ_SLOW).key_specs(RO_ACCESS)
        .tips(&["nondeterministic_output"])
        .doc("hash", "6.2.0", "Returns one or more random fields from a hash."),
    CommandSpec::new("hscan", -3, flag::READONLY, hscan)
        .keys(1, 1, 1).acl(READ_SLOW).key_specs(RO_ACCESS)
        .tips(&["nondeterministic_output"])
        .doc("hash", "2.8.0", "Iterates over fields and values of a hash."),
];

/// Most elements a negative HRANDFIELD count may ask for. Redis would build a
/// reply of any size (and run out of memory on `-9223372036854775807`); beyond
/// this, latchkey answers Redis's `value is out of range` instead.
pub const MAX_RANDOM_REPEATS: u64 = 10_000_000;

fn bulk(b: &[u8]) -> Reply {
    Reply::copy_of(b)
}

/// HSET/HMSET key field value [field value ...]: the number of new fields.
fn set_pairs(ctx: &mut Ctx<'_>, args: &[Bytes], name: &str) -> Result<i64, CommandError> {
    let mut a = Args::new(args);
    let key = a.key()?;
    let pairs = a.rest();
    if !pairs.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity(name.into()));
    }
    let (now, limits) = (ctx.now, ctx.shared.encodings.hash());
    let mut shard = ctx.db().lock(key);
    let hash = shard.get_or_create::<Hash>(key, now)?;
    let added = hash.set_many(
        pairs.chunks_exact(2).map(|p| (&p[0][..], &p[1][..])),
        limits,
    );
    drop(shard);
    ctx.notify(notify::HASH, "hset", key);
    Ok(added as i64)
}

fn hset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_pairs(ctx, args, "hset").map(Reply::Int)
}

fn hmset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_pairs(ctx, args, "hmset").map(|_| Reply::OK)
}

fn hsetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let (key, field, value) = (a.key()?, a.bytes()?, a.bytes()?);
    a.finish()?;
    let (now, limits) = (ctx.now, ctx.shared.encodings.hash());
    let mut shard = ctx.db().lock(key);
    let hash = shard.get_or_create_quiet::<Hash>(key, now)?;
    let set = hash.set_nx(field, value, limits);
    if set {
        shard.touch(key);
        drop(shard);
        ctx.notify(notify::HASH, "hset", key);
    }
    Ok(Reply::Int(i64::from(set)))
}

fn hget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let (key, field) = (a.key()?, a.bytes()?);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let hash = shard.read::<Hash>(key, now)?;
    Ok(hash.and_then(|h| h.get(field)).map_or(Reply::Nil, bulk))
}

fn hmget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let fields = a.rest();
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let hash = shard.read::<Hash>(key, now)?;
    Ok(Reply::Array(
        fields
            .iter()
            .map(|f| hash.and_then(|h| h.get(f)).map_or(Reply::Nil, bulk))
            .collect(),
    ))
}

/// Runs `f` on the hash at `args[1]`, or returns `missing` when there is none.
fn with_hash(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    missing: Reply,
    f: impl FnOnce(&Hash) -> Reply,
) -> CommandResult {
    let key = Args::new(args).key()?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    Ok(shard.read::<Hash>(key, now)?.map_or(missing, f))
}

/// A hash's fields, values, or both, written into one reply buffer.
fn listing(h: &Hash, resp3: bool, fields: bool, values: bool) -> Reply {
    let n = h.len().min(1024);
    let mut out = if fields && values {
        Written::map(resp3, n * 48)
    } else {
        Written::array(resp3, n * 24)
    };
    for (f, v) in h.iter() {
        if fields {
            out.bulk(f);
        }
        if values {
            out.bulk(v);
        }
    }
    Reply::Written(out)
}

fn hgetall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let resp3 = ctx.session.resp3;
    with_hash(ctx, args, Reply::Map(Vec::new()), |h| {
        listing(h, resp3, true, true)
    })
}

fn hkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let resp3 = ctx.session.resp3;
    with_hash(ctx, args, Reply::Array(Vec::new()), |h| {
        listing(h, resp3, true, false)
    })
}

fn hvals(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let resp3 = ctx.session.resp3;
    with_hash(ctx, args, Reply::Array(Vec::new()), |h| {
        listing(h, resp3, false, true)
    })
}

fn hlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    with_hash(ctx, args, Reply::Int(0), |h| Reply::Int(h.len() as i64))
}

fn hexists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let field = &args[2];
    with_hash(ctx, args, Reply::Int(0), |h| {
        Reply::Int(i64::from(h.contains(field)))
    })
}

fn hstrlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let field = &args[2];
    with_hash(ctx, args, Reply::Int(0), |h| {
        Reply::Int(h.strlen(field) as i64)
    })
}

fn hdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let fields = a.rest();
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(hash) = shard.write_quiet::<Hash>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    let removed = fields.iter().filter(|f| hash.delete(f)).count();
    if removed > 0 {
        shard.touch(key);
    }
    let deleted = shard.remove_if_empty::<Hash>(key, now);
    drop(shard);
    if removed > 0 {
        ctx.notify(notify::HASH, "hdel", key);
        if deleted {
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    Ok(Reply::Int(removed as i64))
}

fn hincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let (key, field, by) = (a.key()?, a.bytes()?, a.int()?);
    let (now, limits) = (ctx.now, ctx.shared.encodings.hash());
    let mut shard = ctx.db().lock(key);
    let hash = shard.get_or_create_quiet::<Hash>(key, now)?;
    let result = hash.incr_by(field, by, limits);
    if result.is_ok() {
        shard.touch(key);
    }
    // A failed increment on a new key leaves no empty hash behind.
    shard.remove_if_empty::<Hash>(key, now);
    drop(shard);
    if result.is_ok() {
        ctx.notify(notify::HASH, "hincrby", key);
    }
    match result {
        Ok(n) => Ok(Reply::Int(n)),
        Err(IncrError::NotInteger) => Err(CommandError::err("hash value is not an integer")),
        Err(IncrError::Overflow) => Err(CommandError::Overflow),
    }
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let (key, field, incr) = (a.key()?, a.bytes()?, a.bytes()?);
    let by = parse_float(incr).ok_or(CommandError::NotFloat)?;
    if by.is_infinite() {
        return Err(CommandError::err("value is NaN or Infinity"));
    }
    let (now, limits) = (ctx.now, ctx.shared.encodings.hash());
    let mut shard = ctx.db().lock(key);
    let hash = shard.get_or_create_quiet::<Hash>(key, now)?;
    let result = hash.incr_by_float(field, limits, |current| {
        let current = current.unwrap_or(b"0");
        if parse_float(current).is_none() {
            return Err(CommandError::err("hash value is not a float"));
        }
        super::string::add_floats(current, incr).map(String::into_bytes)
    });
    if result.is_ok() {
        shard.touch(key);
    }
    shard.remove_if_empty::<Hash>(key, now);
    drop(shard);
    let result = result.map(Bytes::from);
    if let Ok(value) = &result {
        // The result as HSET, as Redis propagates it.
        ctx.propagate(|| {
            vec![
                Bytes::from_static(b"HSET"),
                key.clone(),
                field.clone(),
                value.clone(),
            ]
        });
        ctx.notify(notify::HASH, "hincrbyfloat", key);
    }
    result.map(Reply::Bulk)
}

/// HRANDFIELD key [count [WITHVALUES]].
fn hrandfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    a.key()?;
    let Some(count_arg) = a.next_arg() else {
        return with_hash(ctx, args, Reply::Nil, |h| {
            let picked = h.random_pairs(1, true, &mut fastrand::Rng::new());
            picked.first().map_or(Reply::Nil, |(f, _)| bulk(f))
        });
    };
    let count = super::int_arg(count_arg)?;
    if count == i64::MIN {
        return Err(CommandError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let with_values = a.keyword("WITHVALUES");
    a.finish()?;
    let (wanted, distinct) = (count.unsigned_abs(), count >= 0);
    if (with_values && wanted > (i64::MAX / 2) as u64) || (!distinct && wanted > MAX_RANDOM_REPEATS)
    {
        return Err(CommandError::err("value is out of range"));
    }
    // Inside a script replies are RESP2 whatever the caller speaks.
    let pairs_nested = ctx.session.resp3 && ctx.mode != CallMode::Script;
    with_hash(ctx, args, Reply::Array(Vec::new()), |h| {
        let n = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .min(if distinct { h.len() } else { usize::MAX });
        let picked = h.random_pairs(n, distinct, &mut fastrand::Rng::new());
        Reply::Array(if !with_values {
            picked.iter().map(|(f, _)| bulk(f)).collect()
        } else if pairs_nested {
            picked
                .iter()
                .map(|(f, v)| Reply::Array(vec![bulk(f), bulk(v)]))
                .collect()
        } else {
            picked
                .iter()
                .flat_map(|(f, v)| [bulk(f), bulk(v)])
                .collect()
        })
    })
}

/// HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES].
fn hscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let cursor = scan_cursor(a.bytes()?).ok_or_else(|| CommandError::err("invalid cursor"))?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(hash) = shard.read::<Hash>(key, now)? else {
        // Redis answers a missing key before reading the options.
        return Ok(scan_reply(0, Vec::new()));
    };
    let options = ScanOptions::read(a.rest(), ScanOf::Hash)?;
    let mut out = Vec::new();
    let next = hash.scan(cursor, options.count, |f, v| {
        if options.matches(f) {
            out.push(bulk(f));
            if !options.novalues {
                out.push(bulk(v));
            }
        }
    });
    Ok(scan_reply(next, out))
}
