//! String commands: GET, SET and its relatives, counters, ranges.
//!
//! SET, SETNX, SETEX, PSETEX, GETSET and GETEX share one option parser
//! ([`parse_set_options`]) and one writer ([`set_generic`]), as Redis's
//! `setGenericCommand` does, so they accept, reject and reply alike.

use bytes::Bytes;

use super::{flag, int_arg, is, CommandSpec, Ctx};
use crate::error::{CommandError, CommandResult};
use crate::keyspace::{Entry, Value};
use crate::reply::Reply;

/// The string family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, flag::READONLY | flag::FAST, get)
        .keys(1, 1, 1)
        .doc("string", "1.0.0", "Returns the string value of a key."),
    CommandSpec::new("set", -3, flag::WRITE | flag::DENYOOM, set)
        .keys(1, 1, 1)
        .doc("string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    CommandSpec::new("setnx", 3, flag::WRITE | flag::DENYOOM | flag::FAST, setnx)
        .keys(1, 1, 1)
        .doc("string", "1.0.0", "Set the string value of a key only when the key doesn't exist."),
    CommandSpec::new("setex", 4, flag::WRITE | flag::DENYOOM, setex)
        .keys(1, 1, 1)
        .doc("string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    CommandSpec::new("psetex", 4, flag::WRITE | flag::DENYOOM, psetex)
        .keys(1, 1, 1)
        .doc("string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    CommandSpec::new("getset", 3, flag::WRITE | flag::DENYOOM | flag::FAST, getset)
        .keys(1, 1, 1)
        .doc("string", "1.0.0", "Returns the previous string value of a key after setting it to a new value."),
    CommandSpec::new("getdel", 2, flag::WRITE | flag::FAST, getdel)
        .keys(1, 1, 1)
        .doc("string", "6.2.0", "Returns the string value of a key after deleting the key."),
    CommandSpec::new("getex", -2, flag::WRITE | flag::FAST, getex)
        .keys(1, 1, 1)
        .doc("string", "6.2.0", "Returns the string value of a key after setting its expiration time."),
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
pub fn set_generic(ctx: &mut Ctx<'_>, key: &[u8], value: &[u8], opts: SetOptions) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let old = shard.get(key, now);
    let old_value = match (opts.get, old.map(|e| &e.value)) {
        (true, Some(Value::Str(v))) => Some(v.to_bytes()),
        (true, Some(_)) => return Err(CommandError::WrongType),
        _ => None,
    };
    let exists = old.is_some();
    let old_ttl = old.and_then(|e| e.expires_at);
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
    shard.insert(
        key,
        Entry {
            value: Value::string(value),
            expires_at,
        },
        now,
    );
    Ok(if opts.get {
        Reply::bulk_or_nil(old_value)
    } else {
        Reply::OK
    })
}

fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    match shard.get(&args[1], now).map(|e| &e.value) {
        Some(Value::Str(v)) => Ok(Reply::Bulk(v.to_bytes())),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(Reply::Nil),
    }
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
    match shard.get(&args[1], now).map(|e| &e.value) {
        Some(Value::Str(v)) => {
            let v = v.to_bytes();
            shard.remove(&args[1], now);
            Ok(Reply::Bulk(v))
        }
        Some(_) => Err(CommandError::WrongType),
        None => Ok(Reply::Nil),
    }
}

fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let opts = parse_set_options(&args[2..], ctx.now, OptionsFor::GetEx, "getex")?;
    let now = ctx.now;
    let key = &args[1];
    let mut shard = ctx.db().lock(key);
    let value = match shard.get(key, now).map(|e| &e.value) {
        Some(Value::Str(v)) => v.to_bytes(),
        Some(_) => return Err(CommandError::WrongType),
        None => return Ok(Reply::Nil),
    };
    if let Some(at) = opts.expires_at {
        if at <= now {
            shard.remove(key, now);
        } else {
            shard.set_expiry(key, Some(at), now);
        }
    } else if opts.persist {
        shard.set_expiry(key, None, now);
    }
    Ok(Reply::Bulk(value))
}
