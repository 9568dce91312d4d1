//! `keymiss` events (class `m`): which keys each command looks up as Redis's
//! `lookupKeyRead` does, the lookup that raises `keymiss` when the key is
//! missing. Write lookups (INCR, LPOP, SMOVE, ...) and lookups that do not
//! notify (OBJECT, MEMORY USAGE, RANDOMKEY) raise nothing. The lists were read
//! from redis-server 7.0.15 running every command on missing keys
//! (tests/notifications.rs holds them).
//!
//! The keys are checked just before the command runs, and only when `m` is
//! on, so the handlers stay as they are and nothing is spent otherwise. A
//! command refused for its arguments before Redis would have looked its key
//! up still raises its `keymiss` here. The keys SORT reads through BY and
//! GET patterns are known only as it runs: `commands/sort.rs` raises theirs.

use bytes::Bytes;

use super::{is, Command, Ctx};
use crate::notify;

/// Which of a command's keys are read with a notifying lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// Every key.
    All,
    /// The first key only (the others are destinations).
    First,
    /// Every key but the first (the destination of a STORE).
    AllButFirst,
    /// Every key, twice (XREAD looks each stream up to read its IDs, then to
    /// read it).
    AllTwice,
}

/// How command `name` (`container|sub` for a subcommand) reads its keys.
fn reads(name: &str, args: &[Bytes]) -> Option<Reads> {
    Some(match name {
        "get"
        | "mget"
        | "exists"
        | "type"
        | "ttl"
        | "pttl"
        | "expiretime"
        | "pexpiretime"
        | "strlen"
        | "getrange"
        | "substr"
        | "getdel"
        | "getex"
        | "getbit"
        | "bitcount"
        | "bitpos"
        | "bitfield_ro"
        | "lcs"
        | "dump"
        | "touch"
        | "getset"
        | "pfcount"
        | "pfmerge"
        | "lrange"
        | "llen"
        | "lindex"
        | "lpos"
        | "hget"
        | "hmget"
        | "hgetall"
        | "hlen"
        | "hexists"
        | "hkeys"
        | "hvals"
        | "hstrlen"
        | "hrandfield"
        | "hscan"
        | "smembers"
        | "sismember"
        | "smismember"
        | "scard"
        | "srandmember"
        | "sinter"
        | "sunion"
        | "sdiff"
        | "sintercard"
        | "sscan"
        | "zscore"
        | "zmscore"
        | "zcard"
        | "zcount"
        | "zlexcount"
        | "zrange"
        | "zrangebyscore"
        | "zrangebylex"
        | "zrevrange"
        | "zrevrangebyscore"
        | "zrevrangebylex"
        | "zrank"
        | "zrevrank"
        | "zrandmember"
        | "zscan"
        | "zunion"
        | "zinter"
        | "zdiff"
        | "zintercard"
        | "xrange"
        | "xrevrange"
        | "xlen"
        | "xpending"
        | "xack"
        | "xclaim"
        | "xautoclaim"
        | "xreadgroup"
        | "xinfo|stream"
        | "xinfo|groups"
        | "xinfo|consumers"
        | "geopos"
        | "geodist"
        | "geohash"
        | "geosearch"
        | "georadius_ro"
        | "georadiusbymember_ro" => Reads::All,
        "copy" | "sort" | "sort_ro" | "georadius" | "georadiusbymember" => Reads::First,
        "bitop" | "sinterstore" | "sunionstore" | "sdiffstore" | "zunionstore" | "zinterstore"
        | "zdiffstore" | "zrangestore" | "geosearchstore" => Reads::AllButFirst,
        "xread" => Reads::AllTwice,
        // SET ... GET reads the old value; BITFIELD with GETs alone reads.
        "set" if args.iter().skip(3).any(|a| is(a, "get")) => Reads::First,
        "bitfield" if bitfield_reads_only(args) => Reads::First,
        _ => return None,
    })
}

/// True when BITFIELD's operations are all GETs (Redis then looks its key up
/// for reading).
fn bitfield_reads_only(args: &[Bytes]) -> bool {
    let mut i = 2;
    while let Some(op) = args.get(i) {
        if is(op, "get") {
            i += 3;
        } else if is(op, "overflow") {
            i += 2;
        } else {
            return false;
        }
    }
    true
}

/// Raises `keymiss` for each key `cmd` reads with a notifying lookup that is
/// not there (a key past its TTL is expired first, raising `expired`, as the
/// lookup would). The caller has checked that `m` is on.
pub fn raise(ctx: &mut Ctx<'_>, cmd: &Command, args: &[Bytes]) {
    let Some(reads) = reads(&cmd.full_name, args) else {
        return;
    };
    let keys = cmd.spec.keys_of(args);
    let keys = match reads {
        Reads::AllButFirst => keys.get(1..).unwrap_or_default(),
        Reads::First => keys.get(..1).unwrap_or_default(),
        Reads::All | Reads::AllTwice => &keys[..],
    };
    let rounds = if reads == Reads::AllTwice { 2 } else { 1 };
    let now = ctx.now;
    for _ in 0..rounds {
        for k in keys {
            let Some(key) = args.get(k.pos) else {
                continue;
            };
            let missing = !ctx.db().lock(key).contains(key, now);
            if missing {
                ctx.notify(notify::KEY_MISS, "keymiss", key);
            }
        }
    }
}
