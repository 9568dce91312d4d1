//! String commands: GET, SET and its relatives, counters, ranges.
//!
//! SET, SETNX, SETEX, PSETEX, GETSET and GETEX share one option parser
//! ([`parse_set_options`]) and one writer ([`set_generic`]), as Redis's
//! `setGenericCommand` does, so they accept, reject and reply alike.

use bytes::Bytes;

use rust_decimal::Decimal;

use super::args::Args;
use super::CommandResult;
use super::{flag, int_arg, is, parse_float, CommandSpec, Ctx, KeyRef, KeySpec};
use crate::error::CommandError;
use crate::keyspace::{CompactBytes, Entry, Shard, Typed, Value, WrongType};
use crate::notify;
use crate::protocol::parse_i64;
use crate::reply::Reply;
use crate::types::{self, lcs::LcsError};

/// The string family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, flag::READONLY | flag::FAST, get)
        .keys(1, 1, 1)
        .acl(&["@read", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("string", "1.0.0", "Returns the string value of a key."),
    CommandSpec::new("set", -3, flag::WRITE | flag::DENYOOM, set)
        .getkeys(set_keys)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update", "variable_flags"]).notes("RW and ACCESS due to the optional `GET` argument")])
        .doc("string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    CommandSpec::new("setnx", 3, flag::WRITE | flag::DENYOOM | flag::FAST, setnx)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["OW", "insert"])])
        .doc("string", "1.0.0", "Set the string value of a key only when the key doesn't exist."),
    CommandSpec::new("setex", 4, flag::WRITE | flag::DENYOOM, setex)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@slow"])
        .key_specs(&[KeySpec::one(1, &["OW", "update"])])
        .doc("string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    CommandSpec::new("psetex", 4, flag::WRITE | flag::DENYOOM, psetex)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@slow"])
        .key_specs(&[KeySpec::one(1, &["OW", "update"])])
        .doc("string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    CommandSpec::new("getset", 3, flag::WRITE | flag::DENYOOM | flag::FAST, getset)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"])])
        .doc("string", "1.0.0", "Returns the previous string value of a key after setting it to a new value."),
    CommandSpec::new("getdel", 2, flag::WRITE | flag::FAST, getdel)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "delete"])])
        .doc("string", "6.2.0", "Returns the string value of a key after deleting the key."),
    CommandSpec::new("getex", -2, flag::WRITE | flag::FAST, getex)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"]).notes("RW and UPDATE because it changes the TTL")])
        .doc("string", "6.2.0", "Returns the string value of a key after setting its expiration time."),
    CommandSpec::new("mget", -2, flag::READONLY | flag::FAST, mget)
        .keys(1, -1, 1)
        .acl(&["@read", "@string", "@fast"])
        .tips(&["request_policy:multi_shard"])
        .key_specs(&[KeySpec::range(1, -1, 1, &["RO", "access"])])
        .doc("string", "1.0.0", "Atomically returns the string values of one or more keys."),
    CommandSpec::new("mset", -3, flag::WRITE | flag::DENYOOM, mset)
        .keys(1, -1, 2)
        .acl(&["@write", "@string", "@slow"])
        .tips(&["request_policy:multi_shard", "response_policy:all_succeeded"])
        .key_specs(&[KeySpec::range(1, -1, 2, &["OW", "update"])])
        .doc("string", "1.0.1", "Atomically creates or modifies the string values of one or more keys."),
    CommandSpec::new("msetnx", -3, flag::WRITE | flag::DENYOOM, msetnx)
        .keys(1, -1, 2)
        .acl(&["@write", "@string", "@slow"])
        .tips(&["request_policy:multi_shard", "response_policy:agg_min"])
        .key_specs(&[KeySpec::range(1, -1, 2, &["OW", "insert"])])
        .doc("string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    CommandSpec::new("incr", 2, flag::WRITE | flag::DENYOOM | flag::FAST, incr)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"])])
        .doc("string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    CommandSpec::new("decr", 2, flag::WRITE | flag::DENYOOM | flag::FAST, decr)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"])])
        .doc("string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    CommandSpec::new("incrby", 3, flag::WRITE | flag::DENYOOM | flag::FAST, incrby)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"])])
        .doc("string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    CommandSpec::new("decrby", 3, flag::WRITE | flag::DENYOOM | flag::FAST, decrby)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"])])
        .doc("string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    CommandSpec::new("incrbyfloat", 3, flag::WRITE | flag::DENYOOM | flag::FAST, incrbyfloat)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"])])
        .doc("string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    CommandSpec::new("append", 3, flag::WRITE | flag::DENYOOM | flag::FAST, append)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "insert"])])
        .doc("string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    CommandSpec::new("strlen", 2, flag::READONLY | flag::FAST, strlen)
        .keys(1, 1, 1)
        .acl(&["@read", "@string", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO"])])
        .doc("string", "2.2.0", "Returns the length of a string value."),
    CommandSpec::new("getrange", 4, flag::READONLY, getrange)
        .keys(1, 1, 1)
        .acl(&["@read", "@string", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("string", "2.4.0", "Returns a substring of the string stored at a key."),
    CommandSpec::new("substr", 4, flag::READONLY, getrange)
        .keys(1, 1, 1)
        .acl(&["@read", "@string", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("string", "1.0.0", "Returns a substring from a string value."),
    CommandSpec::new("setrange", 4, flag::WRITE | flag::DENYOOM, setrange)
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RW", "update"])])
        .doc("string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    CommandSpec::new("lcs", -3, flag::READONLY, lcs)
        .keys(1, 2, 1)
        .acl(&["@read", "@string", "@slow"])
        .key_specs(&[KeySpec::range(1, 1, 1, &["RO", "access"])])
        .doc("string", "7.0.0", "Find longest common substring"),
];

/// What SET-like options ask for.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct SetOptions {
    /// NX: only if the key does not exist.
    pub nx: bool,
    /// XX: only if it exists.
    pub xx: bool,
    /// GET: reply with the old value.
    pub get: bool,
    /// KEEPTTL: keep the existing TTL.
    pub keep_ttl: bool,
    /// PERSIST (GETEX): remove the TTL.
    pub persist: bool,
    /// EX/PX/EXAT/PXAT resolved to an absolute ms time.
    pub expires_at: Option<u64>,
}

/// Which command is parsing: SET accepts NX/XX/GET/KEEPTTL, GETEX accepts PERSIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionsFor {
    /// SET.
    Set,
    /// GETEX.
    GetEx,
}

/// Parses SET/GETEX options after the fixed arguments, as Redis's
/// `parseExtendedStringArgumentsOrReply`: conflicting or unknown options are a
/// syntax error; a bad expire time is `invalid expire time in '<cmd>' command`.
pub fn parse_set_options(
    args: &[Bytes],
    now: u64,
    which: OptionsFor,
    cmd: &'static str,
) -> Result<SetOptions, CommandError> {
    let mut o = SetOptions::default();
    let mut expire_given = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        let set = which == OptionsFor::Set;
        let unit = if is(a, "ex") {
            Some((1000, false))
        } else if is(a, "px") {
            Some((1, false))
        } else if is(a, "exat") {
            Some((1000, true))
        } else if is(a, "pxat") {
            Some((1, true))
        } else {
            None
        };
        if let (Some((mul, absolute)), Some(value)) = (unit, next) {
            if expire_given || o.keep_ttl || o.persist {
                return Err(CommandError::Syntax);
            }
            o.expires_at = Some(expire_time(value, mul, absolute, now, cmd)?);
            expire_given = true;
            i += 2;
            continue;
        }
        if set && is(a, "nx") && !o.xx {
            o.nx = true;
        } else if set && is(a, "xx") && !o.nx {
            o.xx = true;
        } else if set && is(a, "get") {
            o.get = true;
        } else if set && is(a, "keepttl") && !expire_given {
            o.keep_ttl = true;
        } else if !set && is(a, "persist") && !expire_given {
            o.persist = true;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    Ok(o)
}

/// Turns an EX/PX/EXAT/PXAT value into an absolute ms time, with Redis's checks.
pub fn expire_time(
    value: &[u8],
    mul: i64,
    absolute: bool,
    now: u64,
    cmd: &'static str,
) -> Result<u64, CommandError> {
    let v = int_arg(value)?;
    let invalid = CommandError::InvalidExpire(cmd);
    if v <= 0 {
        return Err(invalid);
    }
    let ms = v.checked_mul(mul).ok_or(invalid.clone())?;
    let at = if absolute {
        ms
    } else {
        ms.checked_add(now as i64).ok_or(invalid)?
    };
    Ok(at as u64)
}

/// Writes `value` at `key` under `opts`; replies as SET does (OK, nil, or the old
/// value with GET).
pub fn set_generic(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    value: &Bytes,
    opts: SetOptions,
) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let old = shard.get(key, now);
    let old_value = match (opts.get, old) {
        (true, Some(e)) => Some(CompactBytes::of(&e.value).ok_or(WrongType)?.to_bytes()),
        _ => None,
    };
    let exists = old.is_some();
    let old_ttl = old.and_then(|e| e.expires_at());
    let reply_for_skip = if opts.get {
        Reply::bulk_or_nil(old_value.clone())
    } else {
        Reply::Nil
    };
    if (opts.nx && exists) || (opts.xx && !exists) {
        return Ok(reply_for_skip);
    }
    let expires_at = if opts.keep_ttl {
        old_ttl
    } else {
        opts.expires_at
    };
    shard.insert(key, Entry::new(Value::string_arg(value), expires_at), now);
    drop(shard);
    if let (Some(at), false) = (opts.expires_at, opts.keep_ttl) {
        // A TTL reaches the AOF as the deadline it set (Redis 7's rewrite).
        ctx.propagate(|| {
            vec![
                Bytes::from_static(b"SET"),
                Bytes::copy_from_slice(key),
                value.clone(),
                Bytes::from_static(b"PXAT"),
                Bytes::from(at.to_string()),
            ]
        });
    }
    ctx.notify(notify::STRING, "set", key);
    if opts.expires_at.is_some() {
        ctx.notify(notify::GENERIC, "expire", key);
    }
    Ok(if opts.get {
        Reply::bulk_or_nil(old_value)
    } else {
        Reply::OK
    })
}

fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let value = shard.read::<CompactBytes>(&args[1], now)?;
    Ok(value.map_or(Reply::Nil, Reply::stored))
}

/// SET's key, whose flags depend on GET: with it the old value is read
/// (`RW access update`), without it the key is only overwritten (`OW update`).
/// Redis looks for GET anywhere after the value.
fn set_keys(args: &[Bytes]) -> Vec<KeyRef> {
    let get = args.iter().skip(3).any(|a| is(a, "get"));
    let flags: &'static [&'static str] = if get {
        &["RW", "access", "update"]
    } else {
        &["OW", "update"]
    };
    vec![KeyRef { pos: 1, flags }]
}

fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let opts = parse_set_options(&args[3..], ctx.now, OptionsFor::Set, "set")?;
    set_generic(ctx, &args[1], &args[2], opts)
}

fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let opts = SetOptions {
        nx: true,
        ..SetOptions::default()
    };
    let reply = set_generic(ctx, &args[1], &args[2], opts)?;
    Ok(Reply::Int(i64::from(reply == Reply::OK)))
}

fn setex_generic(ctx: &mut Ctx<'_>, args: &[Bytes], mul: i64, cmd: &'static str) -> CommandResult {
    let opts = SetOptions {
        expires_at: Some(expire_time(&args[2], mul, false, ctx.now, cmd)?),
        ..SetOptions::default()
    };
    set_generic(ctx, &args[1], &args[3], opts)
}

fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    setex_generic(ctx, args, 1000, "setex")
}

fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    setex_generic(ctx, args, 1, "psetex")
}

fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let opts = SetOptions {
        get: true,
        ..SetOptions::default()
    };
    set_generic(ctx, &args[1], &args[2], opts)
}

fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let Some(v) = shard.read::<CompactBytes>(&args[1], now)? else {
        return Ok(Reply::Nil);
    };
    let v = v.to_bytes();
    shard.remove(&args[1], now);
    drop(shard);
    ctx.notify(notify::GENERIC, "del", &args[1]);
    Ok(Reply::Bulk(v))
}

fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let opts = parse_set_options(&args[2..], ctx.now, OptionsFor::GetEx, "getex")?;
    let now = ctx.now;
    let key = &args[1];
    let mut shard = ctx.db().lock(key);
    let Some(value) = shard.read::<CompactBytes>(key, now)? else {
        return Ok(Reply::Nil);
    };
    let value = value.to_bytes();
    if let Some(at) = opts.expires_at {
        if at <= now {
            shard.remove(key, now);
            drop(shard);
            ctx.propagate(|| vec![Bytes::from_static(b"DEL"), key.clone()]);
            ctx.notify(notify::GENERIC, "del", key);
        } else {
            shard.set_expiry(key, Some(at), now);
            drop(shard);
            ctx.propagate(|| {
                vec![
                    Bytes::from_static(b"PEXPIREAT"),
                    key.clone(),
                    Bytes::from(at.to_string()),
                ]
            });
            ctx.notify(notify::GENERIC, "expire", key);
        }
    } else if opts.persist {
        let had_ttl = shard
            .get(key, now)
            .is_some_and(|e| e.expires_at().is_some());
        if had_ttl {
            shard.set_expiry(key, None, now);
            drop(shard);
            ctx.notify(notify::GENERIC, "persist", key);
        }
    }
    Ok(Reply::Bulk(value))
}

/// The string at `key` for a read-modify-write: `Ok(None)` when missing,
/// `WRONGTYPE` for another type.
fn string_at<'s>(
    shard: &'s mut Shard,
    key: &[u8],
    now: u64,
) -> Result<Option<&'s [u8]>, CommandError> {
    Ok(shard.read::<CompactBytes>(key, now)?.map(|v| v.as_slice()))
}

/// Stores `value` at `key`, keeping the key's TTL (INCR, APPEND, SETRANGE do).
/// The caller has checked that the key holds a string or nothing.
fn store_keeping_ttl(shard: &mut Shard, key: &[u8], value: CompactBytes, now: u64) {
    if let Ok(v) = shard.get_or_create::<CompactBytes>(key, now) {
        *v = value;
    }
}

fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = &args[1..];
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    Ok(Reply::Array(
        keys.iter()
            .map(|k| match shards.shard(k).get(k, now) {
                Some(e) => CompactBytes::of(&e.value).map_or(Reply::Nil, Reply::stored),
                None => Reply::Nil,
            })
            .collect(),
    ))
}

/// MSET and MSETNX: all keys are written at once, under all their shards' locks.
fn mset_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    only_if_none_exist: bool,
) -> Result<bool, CommandError> {
    let pairs = &args[1..];
    if !pairs.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity(
            String::from_utf8_lossy(&args[0]).to_ascii_lowercase(),
        ));
    }
    let keys: Vec<&Bytes> = pairs.iter().step_by(2).collect();
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(&keys);
    if only_if_none_exist && keys.iter().any(|k| shards.shard(k).contains(k, now)) {
        return Ok(false);
    }
    for pair in pairs.chunks_exact(2) {
        shards.shard(&pair[0]).insert(
            &pair[0],
            Entry::persistent(Value::string_arg(&pair[1])),
            now,
        );
    }
    drop(shards);
    for key in keys {
        ctx.notify(notify::STRING, "set", key);
    }
    Ok(true)
}

fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    mset_generic(ctx, args, false)?;
    Ok(Reply::OK)
}

fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    Ok(Reply::Int(i64::from(mset_generic(ctx, args, true)?)))
}

/// INCR, DECR, INCRBY, DECRBY: the stored value must be an integer as Redis's
/// `string2ll` reads it; the TTL is kept.
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let current = match string_at(&mut shard, key, now)? {
        Some(v) => parse_i64(v).ok_or(CommandError::NotInteger)?,
        None => 0,
    };
    let next = current.checked_add(by).ok_or(CommandError::Overflow)?;
    store_keeping_ttl(
        &mut shard,
        key,
        CompactBytes::from_vec(next.to_string().into_bytes()),
        now,
    );
    drop(shard);
    ctx.notify(notify::STRING, "incrby", key);
    Ok(Reply::Int(next))
}

fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    incr_by(ctx, &args[1], 1)
}

fn decr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    incr_by(ctx, &args[1], -1)
}

fn incrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let by = int_arg(&args[2])?;
    incr_by(ctx, &args[1], by)
}

fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let by = int_arg(&args[2])?;
    let by = by
        .checked_neg()
        .ok_or_else(|| CommandError::err("decrement would overflow"))?;
    incr_by(ctx, &args[1], by)
}

/// The sum of two decimal strings as INCRBYFLOAT prints it. Redis adds in long
/// double and prints 17 decimals with trailing zeros removed; adding exactly in
/// decimal and printing the same way gives the same text for ordinary values (f64
/// would print 0.1 + 0.2 as 0.30000000000000004). Values beyond the decimal type's
/// range fall back to f64.
pub(crate) fn add_floats(current: &[u8], incr: &[u8]) -> Result<String, CommandError> {
    let a = parse_float(current).ok_or(CommandError::NotFloat)?;
    let b = parse_float(incr).ok_or(CommandError::NotFloat)?;
    let sum = a + b;
    if sum.is_nan() || sum.is_infinite() {
        return Err(CommandError::err("increment would produce NaN or Infinity"));
    }
    let exact = |s: &[u8]| {
        let t = std::str::from_utf8(s).ok()?;
        Decimal::from_str_exact(t)
            .ok()
            .or_else(|| Decimal::from_scientific(t).ok())
            // A hexadecimal float is exactly the binary value it names.
            .or_else(|| {
                let lower = t.trim_start_matches(['+', '-']);
                (lower.starts_with("0x") || lower.starts_with("0X"))
                    .then(|| Decimal::from_f64_retain(parse_float(s)?))
                    .flatten()
            })
    };
    if let (Some(x), Some(y)) = (exact(current), exact(incr)) {
        if let Some(d) = x.checked_add(y) {
            return Ok(trim_decimal(d.round_dp(17).to_string()));
        }
    }
    Ok(trim_decimal(format!("{sum:.17}")))
}

fn trim_decimal(mut s: String) -> String {
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[1];
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let current = string_at(&mut shard, key, now)?.unwrap_or(b"0").to_vec();
    let next = add_floats(&current, &args[2])?;
    let reply = Bytes::from(next.clone());
    store_keeping_ttl(
        &mut shard,
        key,
        CompactBytes::from_vec(next.into_bytes()),
        now,
    );
    drop(shard);
    // The result, not the sum: replaying floating-point additions could round
    // differently elsewhere (Redis propagates the same SET ... KEEPTTL).
    ctx.propagate(|| {
        vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            reply.clone(),
            Bytes::from_static(b"KEEPTTL"),
        ]
    });
    ctx.notify(notify::STRING, "incrbyfloat", key);
    Ok(Reply::Bulk(reply))
}

/// APPEND: a new key takes the argument as SET would; an existing value grows in
/// place (Redis makes it a `raw` string), without copying what is already there.
fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[1];
    let max = ctx.shared.config.read().proto_max_bulk_len;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(value) = shard.write::<CompactBytes>(key, now)? else {
        shard.insert(key, Entry::persistent(Value::string_arg(&args[2])), now);
        drop(shard);
        ctx.notify(notify::STRING, "append", key);
        return Ok(Reply::Int(args[2].len() as i64));
    };
    if (value.len() as i64).saturating_add(args[2].len() as i64) > max {
        return Err(too_long());
    }
    let len = value.edit(|buf| {
        buf.extend_from_slice(&args[2]);
        buf.len()
    });
    drop(shard);
    ctx.notify(notify::STRING, "append", key);
    Ok(Reply::Int(len as i64))
}

/// `string exceeds maximum allowed size (proto-max-bulk-len)`.
fn too_long() -> CommandError {
    CommandError::err("string exceeds maximum allowed size (proto-max-bulk-len)")
}

fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let len = string_at(&mut shard, &args[1], now)?.map_or(0, <[u8]>::len);
    Ok(Reply::Int(len as i64))
}

/// GETRANGE's index rules: negative counts from the end, both ends inclusive,
/// clamped to the string.
fn range_of(len: usize, start: i64, end: i64) -> Option<std::ops::Range<usize>> {
    let len = len as i64;
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end };
    let end = end.min(len - 1);
    if len == 0 || start > end {
        return None;
    }
    Some(start as usize..end as usize + 1)
}

fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let value = string_at(&mut shard, &args[1], now)?.unwrap_or_default();
    Ok(Reply::Bulk(match range_of(value.len(), start, end) {
        Some(r) => Bytes::copy_from_slice(&value[r]),
        None => Bytes::new(),
    }))
}

fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[1];
    let offset = int_arg(&args[2])?;
    if offset < 0 {
        return Err(CommandError::err("offset is out of range"));
    }
    let patch = &args[3];
    let max = ctx.shared.config.read().proto_max_bulk_len;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let current = string_at(&mut shard, key, now)?;
    if patch.is_empty() {
        return Ok(Reply::Int(current.map_or(0, <[u8]>::len) as i64));
    }
    if offset.saturating_add(patch.len() as i64) > max {
        return Err(too_long());
    }
    let (offset, end) = (offset as usize, offset as usize + patch.len());
    let value = shard.get_or_create::<CompactBytes>(key, now)?;
    let len = value.edit(|buf| {
        if buf.len() < end {
            buf.resize(end, 0);
        }
        buf[offset..end].copy_from_slice(patch);
        buf.len()
    });
    drop(shard);
    ctx.notify(notify::STRING, "setrange", key);
    Ok(Reply::Int(len as i64))
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]. A missing key
/// is an empty string; the O(n·m) table may not exceed `proto-max-bulk-len`
/// bytes, as in Redis. The strings are taken by reference and the shards
/// unlocked before the table is computed.
fn lcs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let (a, b) = {
        let keys = &args[1..3];
        let shards = ctx.db().lock_keys(keys);
        match (
            shards.view::<CompactBytes>(&keys[0], now),
            shards.view::<CompactBytes>(&keys[1], now),
        ) {
            (Ok(a), Ok(b)) => (
                a.map(CompactBytes::to_bytes).unwrap_or_default(),
                b.map(CompactBytes::to_bytes).unwrap_or_default(),
            ),
            _ => {
                return Err(CommandError::err(
                    "The specified keys must contain string values",
                ))
            }
        }
    };
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut opts = Args::new(&args[2..]);
    while let Some(opt) = opts.next_arg() {
        if is(opt, "idx") {
            idx = true;
        } else if is(opt, "len") {
            len_only = true;
        } else if is(opt, "withmatchlen") {
            with_len = true;
        } else if is(opt, "minmatchlen") && !opts.is_done() {
            min_len = opts.int()?.max(0);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if idx && len_only {
        return Err(CommandError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let limit = ctx.shared.config.read().proto_max_bulk_len;
    let too_big = types::lcs::table_bytes(a.len(), b.len())
        .is_none_or(|n| n > u64::try_from(limit).unwrap_or(0));
    if too_big && a.len() < u32::MAX as usize - 1 && b.len() < u32::MAX as usize - 1 {
        return Err(CommandError::err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let found = types::lcs::lcs(&a, &b).map_err(|e| {
        CommandError::err(match e {
            LcsError::TooLong => "String too long for LCS",
            LcsError::NoMemory => "Insufficient memory, failed allocating transient memory for LCS",
        })
    })?;
    let total = found.string.len() as i64;
    if !idx {
        return Ok(if len_only {
            Reply::Int(total)
        } else {
            Reply::Bulk(Bytes::from(found.string))
        });
    }
    let pair = |(x, y): (u32, u32)| Reply::Array(vec![Reply::Int(x.into()), Reply::Int(y.into())]);
    let matches = found
        .matches
        .iter()
        .filter(|m| i64::from(m.len()) >= min_len)
        .map(|m| {
            let mut entry = vec![pair(m.a), pair(m.b)];
            if with_len {
                entry.push(Reply::Int(m.len().into()));
            }
            Reply::Array(entry)
        })
        .collect();
    Ok(Reply::Map(vec![
        (
            Reply::Bulk(Bytes::from_static(b"matches")),
            Reply::Array(matches),
        ),
        (Reply::Bulk(Bytes::from_static(b"len")), Reply::Int(total)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incrbyfloat_prints_like_redis() {
        for (a, b, want) in [
            ("10", "0.5", "10.5"),
            ("10.5", "3.0e3", "3010.5"),
            ("0.1", "0.2", "0.3"),
            ("1.5", "1.5", "3"),
            ("5.0e3", "1", "5001"),
            ("1e20", "0", "100000000000000000000"),
            ("0", "1.23456789012345678", "1.23456789012345678"),
            ("1", "-1", "0"),
            ("159.99", "0x10", "175.99"),
            ("0x1p-2", "1", "1.25"),
        ] {
            assert_eq!(
                add_floats(a.as_bytes(), b.as_bytes()).unwrap(),
                want,
                "{a} + {b}"
            );
        }
        assert!(add_floats(b"inf", b"1").is_err());
        assert_eq!(add_floats(b"abc", b"1"), Err(CommandError::NotFloat));
        assert_eq!(add_floats(b"1", b" 1"), Err(CommandError::NotFloat));
    }

    #[test]
    fn getrange_indexes_like_redis() {
        assert_eq!(range_of(3, 0, -1), Some(0..3));
        assert_eq!(range_of(3, -2, -1), Some(1..3));
        assert_eq!(range_of(3, 5, 10), None);
        assert_eq!(range_of(3, 2, 1), None);
        assert_eq!(range_of(3, -1, -2), None);
        assert_eq!(range_of(0, 0, -1), None);
        assert_eq!(range_of(3, -100, 100), Some(0..3));
    }
}
