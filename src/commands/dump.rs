//! DUMP and RESTORE: a value as Redis's serialized payload (its RDB
//! encoding, the RDB version and a CRC64) and back. A family file of its
//! own rather than rows in `keys.rs`: the handlers share the payload checks
//! and the option parser, and `keys.rs` is already past the size a file
//! should have.
//!
//! A lock has no payload: DUMP of a lock is refused with the error COPY
//! gives it (Redis's answer for a module value it cannot serialize is an
//! error too), because a payload restored twice would hand the same holders
//! and fencing tokens to two keys. A stream is serialized whole: its
//! entries, deleted-entry bookkeeping, consumer groups with their PEL and
//! consumers (`rdb::stream`), so RESTORE gives the groups back as they were.

use bytes::Bytes;

use super::args::Args;
use super::{flag, int_arg, is, CommandResult, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::keyspace::Entry;
use crate::notify;
use crate::rdb::{self, PayloadError};
use crate::reply::Reply;

/// The family's table rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("dump", 2, flag::READONLY, dump)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@read", "@slow"])
        .tips(&["nondeterministic_output"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc(
            "generic",
            "2.6.0",
            "Return a serialized version of the value stored at the specified key.",
        ),
    CommandSpec::new("restore", -4, flag::WRITE | flag::DENYOOM, restore)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .key_specs(&[KeySpec::one(1, &["OW", "update"])])
        .doc(
            "generic",
            "2.6.0",
            "Create a key using the provided serialized value, previously obtained using DUMP.",
        ),
];

/// DUMP key: the payload, or nil when the key does not exist.
fn dump(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let Some(entry) = shard.get(&args[1], now) else {
        return Ok(Reply::Nil);
    };
    // `rdbcompression` is not configurable yet: Redis's default, on.
    let payload = rdb::dump(&entry.value, true)
        .map_err(|_| CommandError::err("not supported for this module key"))?;
    Ok(Reply::Bulk(Bytes::from(payload)))
}

/// RESTORE's options after the payload.
struct Options {
    replace: bool,
    absttl: bool,
    idle: Option<i64>,
}

/// Parses REPLACE, ABSTTL, IDLETIME s and FREQ f as Redis 7.0 does:
/// IDLETIME and FREQ exclude each other (the second is a syntax error), and
/// FREQ is accepted whatever the eviction policy (latchkey keeps no LFU
/// counter, so it is checked and dropped).
fn options(rest: &[Bytes]) -> Result<Options, CommandError> {
    let mut o = Options {
        replace: false,
        absttl: false,
        idle: None,
    };
    let mut freq = false;
    let mut a = Args::new(rest);
    while let Some(opt) = a.next_arg() {
        let more = !a.is_done();
        if is(opt, "replace") {
            o.replace = true;
        } else if is(opt, "absttl") {
            o.absttl = true;
        } else if is(opt, "idletime") && more && !freq {
            let v = int_arg(a.bytes()?)?;
            if v < 0 {
                return Err(CommandError::err("Invalid IDLETIME value, must be >= 0"));
            }
            o.idle = Some(v);
        } else if is(opt, "freq") && more && o.idle.is_none() {
            let v = int_arg(a.bytes()?)?;
            if !(0..=255).contains(&v) {
                return Err(CommandError::err(
                    "Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            freq = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(o)
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f], with
/// Redis 7.0's checks in its order: options, an existing key (BUSYKEY), the
/// TTL, the payload's version and CRC, its value. A TTL already past leaves
/// no key (deleting the old one under REPLACE) and answers OK.
fn restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[1];
    let opts = options(&args[3..])?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    if !opts.replace && shard.contains(key, now) {
        return Err(CommandError::raw("BUSYKEY Target key name already exists."));
    }
    let ttl = int_arg(&args[2])?;
    if ttl < 0 {
        return Err(CommandError::err("Invalid TTL value, must be >= 0"));
    }
    let value = match rdb::undump(&args[3], &ctx.shared.encodings) {
        Ok(v) => v,
        Err(PayloadError::VersionOrChecksum) => {
            return Err(CommandError::err(
                "DUMP payload version or checksum are wrong",
            ))
        }
        Err(PayloadError::BadData(_)) => return Err(CommandError::err("Bad data format")),
    };
    let deleted = opts.replace && shard.remove(key, now).is_some();
    let ttl = ttl.unsigned_abs();
    let expires = match (ttl, opts.absttl) {
        (0, _) => None,
        (t, true) => Some(t),
        (t, false) => Some(t.saturating_add(now)),
    };
    if expires.is_some_and(|at| at <= now) {
        drop(shard);
        if deleted {
            ctx.propagate(|| vec![Bytes::from_static(b"DEL"), key.clone()]);
            ctx.notify(notify::GENERIC, "del", key);
        }
        return Ok(Reply::OK);
    }
    shard.insert(key, Entry::new(value, expires), now);
    if let Some(idle) = opts.idle {
        if let Some(entry) = shard.get_mut(key, now) {
            entry.set_idle_seconds(idle.unsigned_abs(), now);
        }
    }
    // A list or zset restored onto a key a client waits on serves it.
    ctx.shared.blocked.signal(ctx.session.db, key);
    drop(shard);
    if let (Some(at), false) = (expires, opts.absttl) {
        // A relative TTL reaches the AOF as its deadline.
        ctx.propagate(|| {
            let mut argv = args.to_vec();
            argv[2] = Bytes::from(at.to_string());
            argv.push(Bytes::from_static(b"ABSTTL"));
            argv
        });
    }
    ctx.notify(notify::GENERIC, "restore", key);
    Ok(Reply::OK)
}
