//! Sorted-set commands: ZADD, ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK,
//! ZREVRANK, ZCOUNT, ZLEXCOUNT, the ZRANGE family (and ZRANGESTORE), the
//! ZREMRANGEBY* commands, ZPOPMIN/ZPOPMAX/ZMPOP and the blocking BZPOPMIN/
//! BZPOPMAX/BZMPOP (a [`Serve`] step of the blocking registry in
//! `blocking.rs`), ZUNION/ZINTER/ZDIFF (and their STORE forms, which read plain
//! sets as well, every member scored 1), ZINTERCARD, ZRANDMEMBER and ZSCAN. The
//! set itself and its operations are `types::zset`; this file reads arguments,
//! answers with Redis's replies and errors, and holds the table rows.

use bytes::Bytes;

use super::args::{at_least_one, mpop_count, Args};
use super::keys::{scan_reply, ScanOf, ScanOptions};
use super::wait::{block_on_keys, timeout_arg};
use super::{flag, int_arg, is, CommandResult, CommandSpec, Ctx, KeySpec};
use crate::blocking::Serve;
use crate::error::CommandError;
use crate::keyspace::{Entry, Shard, ShardSet, Value};
use crate::notify;
use crate::reply::{Reply, Written};
use crate::types::set::Set;
use crate::types::zset::{
    self, AddFlags, Added, Aggregate, Input, LexBound, LexRange, ScoreBound, ScoreRange, Scored,
    ZSet, ZSetError,
};
use crate::types::Limits;

const RW_UPDATE: &[&str] = &["RW", "update"];
const RW_DELETE: &[&str] = &["RW", "delete"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "access", "delete"];
const RO_ACCESS: &[&str] = &["RO", "access"];
const OW_UPDATE: &[&str] = &["OW", "update"];
const WRITE_FAST: &[&str] = &["@write", "@sortedset", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@sortedset", "@slow"];
const READ_FAST: &[&str] = &["@read", "@sortedset", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@sortedset", "@slow"];
const ONE_RW_UPDATE: &[KeySpec] = &[KeySpec::one(1, RW_UPDATE)];
const ONE_RW_DELETE: &[KeySpec] = &[KeySpec::one(1, RW_DELETE)];
const ONE_RW_ACCESS_DELETE: &[KeySpec] = &[KeySpec::one(1, RW_ACCESS_DELETE)];
const ONE_RO: &[KeySpec] = &[KeySpec::one(1, RO_ACCESS)];
const ONE_RO_ONLY: &[KeySpec] = &[KeySpec::one(1, &["RO"])];
const ONE_RW_ACCESS_UPDATE: &[KeySpec] = &[KeySpec::one(1, &["RW", "access", "update"])];
const BLOCKING_FAST: &[&str] = &["@write", "@sortedset", "@fast", "@blocking"];
const BLOCKING_KEYS: &[KeySpec] = &[KeySpec::range(1, -2, 1, RW_ACCESS_DELETE)];
const NUMKEYS_RO: &[KeySpec] = &[KeySpec::keynum(1, RO_ACCESS)];
const DEST_NUMKEYS: &[KeySpec] = &[KeySpec::one(1, OW_UPDATE), KeySpec::keynum(2, RO_ACCESS)];

const fn read(name: &'static str, arity: i32, fast: bool, handler: super::Handler) -> CommandSpec {
    let (flags, acl) = if fast {
        (flag::READONLY | flag::FAST, READ_FAST)
    } else {
        (flag::READONLY, READ_SLOW)
    };
    CommandSpec::new(name, arity, flags, handler)
        .keys(1, 1, 1)
        .acl(acl)
        .key_specs(ONE_RO)
}

/// The sorted-set family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("zadd", -4, flag::WRITE | flag::DENYOOM | flag::FAST, zadd)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(ONE_RW_UPDATE)
        .doc("sorted-set", "1.2.0", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."),
    CommandSpec::new("zincrby", 4, flag::WRITE | flag::DENYOOM | flag::FAST, zincrby)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(ONE_RW_ACCESS_UPDATE)
        .doc("sorted-set", "1.2.0", "Increments the score of a member in a sorted set."),
    CommandSpec::new("zrem", -3, flag::WRITE | flag::FAST, zrem)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(ONE_RW_DELETE)
        .doc("sorted-set", "1.2.0", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed."),
    read("zcard", 2, true, zcard)
        .key_specs(ONE_RO_ONLY)
        .doc("sorted-set", "1.2.0", "Returns the number of members in a sorted set."),
    read("zscore", 3, true, zscore)
        .doc("sorted-set", "1.2.0", "Returns the score of a member in a sorted set."),
    read("zmscore", -3, true, zmscore)
        .doc("sorted-set", "6.2.0", "Returns the score of one or more members in a sorted set."),
    read("zrank", -3, true, zrank)
        .doc("sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by ascending scores."),
    read("zrevrank", -3, true, zrevrank)
        .doc("sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by descending scores."),
    read("zcount", 4, true, zcount)
        .doc("sorted-set", "2.0.0", "Returns the count of members in a sorted set that have scores within a range."),
    read("zlexcount", 4, true, zlexcount)
        .doc("sorted-set", "2.8.9", "Returns the number of members in a sorted set within a lexicographical range."),
    read("zrange", -4, false, zrange)
        .doc("sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes."),
    CommandSpec::new("zrangestore", -5, flag::WRITE | flag::DENYOOM, zrangestore)
        .keys(1, 2, 1).acl(WRITE_SLOW)
        .key_specs(&[KeySpec::one(1, OW_UPDATE), KeySpec::one(2, RO_ACCESS)])
        .doc("sorted-set", "6.2.0", "Stores a range of members from sorted set in a key."),
    read("zrevrange", -4, false, zrevrange)
        .doc("sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes in reverse order."),
    read("zrangebyscore", -4, false, zrangebyscore)
        .doc("sorted-set", "1.0.5", "Returns members in a sorted set within a range of scores."),
    read("zrevrangebyscore", -4, false, zrevrangebyscore)
        .doc("sorted-set", "2.2.0", "Returns members in a sorted set within a range of scores in reverse order."),
    read("zrangebylex", -4, false, zrangebylex)
        .doc("sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range."),
    read("zrevrangebylex", -4, false, zrevrangebylex)
        .doc("sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range in reverse order."),
    CommandSpec::new("zremrangebyrank", 4, flag::WRITE, zremrangebyrank)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(ONE_RW_DELETE)
        .doc("sorted-set", "2.0.0", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."),
    CommandSpec::new("zremrangebyscore", 4, flag::WRITE, zremrangebyscore)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(ONE_RW_DELETE)
        .doc("sorted-set", "1.2.0", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."),
    CommandSpec::new("zremrangebylex", 4, flag::WRITE, zremrangebylex)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(ONE_RW_DELETE)
        .doc("sorted-set", "2.8.9", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."),
    CommandSpec::new("zpopmin", -2, flag::WRITE | flag::FAST, zpopmin)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(ONE_RW_ACCESS_DELETE)
        .doc("sorted-set", "5.0.0", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    CommandSpec::new("zpopmax", -2, flag::WRITE | flag::FAST, zpopmax)
        .keys(1, 1, 1).acl(WRITE_FAST).key_specs(ONE_RW_ACCESS_DELETE)
        .doc("sorted-set", "5.0.0", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    CommandSpec::new("zmpop", -4, flag::WRITE, zmpop)
        .acl(WRITE_SLOW).key_specs(&[KeySpec::keynum(1, RW_ACCESS_DELETE)])
        .doc("sorted-set", "7.0.0", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped."),
    CommandSpec::new("bzpopmin", -3, flag::WRITE | flag::NOSCRIPT | flag::BLOCKING | flag::FAST, bzpopmin)
        .keys(1, -2, 1).acl(BLOCKING_FAST).key_specs(BLOCKING_KEYS)
        .doc("sorted-set", "5.0.0", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."),
    CommandSpec::new("bzpopmax", -3, flag::WRITE | flag::NOSCRIPT | flag::BLOCKING | flag::FAST, bzpopmax)
        .keys(1, -2, 1).acl(BLOCKING_FAST).key_specs(BLOCKING_KEYS)
        .doc("sorted-set", "5.0.0", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."),
    CommandSpec::new("bzmpop", -5, flag::WRITE | flag::BLOCKING, bzmpop)
        .acl(&["@write", "@sortedset", "@slow", "@blocking"]).key_specs(&[KeySpec::keynum(2, RW_ACCESS_DELETE)])
        .doc("sorted-set", "7.0.0", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    CommandSpec::new("zunion", -3, flag::READONLY, zunion)
        .acl(READ_SLOW).key_specs(NUMKEYS_RO)
        .doc("sorted-set", "6.2.0", "Returns the union of multiple sorted sets."),
    CommandSpec::new("zunionstore", -4, flag::WRITE | flag::DENYOOM, zunionstore)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(DEST_NUMKEYS)
        .doc("sorted-set", "2.0.0", "Stores the union of multiple sorted sets in a key."),
    CommandSpec::new("zinter", -3, flag::READONLY, zinter)
        .acl(READ_SLOW).key_specs(NUMKEYS_RO)
        .doc("sorted-set", "6.2.0", "Returns the intersect of multiple sorted sets."),
    CommandSpec::new("zinterstore", -4, flag::WRITE | flag::DENYOOM, zinterstore)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(DEST_NUMKEYS)
        .doc("sorted-set", "2.0.0", "Stores the intersect of multiple sorted sets in a key."),
    CommandSpec::new("zdiff", -3, flag::READONLY, zdiff)
        .acl(READ_SLOW).key_specs(NUMKEYS_RO)
        .doc("sorted-set", "6.2.0", "Returns the difference between multiple sorted sets."),
    CommandSpec::new("zdiffstore", -4, flag::WRITE | flag::DENYOOM, zdiffstore)
        .keys(1, 1, 1).acl(WRITE_SLOW).key_specs(DEST_NUMKEYS)
        .doc("sorted-set", "6.2.0", "Stores the difference of multiple sorted sets in a key."),
    CommandSpec::new("zintercard", -3, flag::READONLY, zintercard)
        .acl(READ_SLOW).key_specs(NUMKEYS_RO)
        .doc("sorted-set", "7.0.0", "Returns the number of members of the intersect of multiple sorted sets."),
    read("zrandmember", -2, false, zrandmember)
        .tips(&["nondeterministic_output"])
        .doc("sorted-set", "6.2.0", "Returns one or more random members from a sorted set."),
    read("zscan", -3, false, zscan)
        .tips(&["nondeterministic_output"])
        .doc("sorted-set", "2.8.0", "Iterates over members and scores of a sorted set."),
];

// ---- argument readers -------------------------------------------------------

/// A score argument as Redis's `string2d` reads it: the whole text, no leading
/// space, no NaN, and not a finite number too large or too small to hold
/// (`1e400`, `1e-400`); `inf` and `-inf` are scores.
pub fn score_arg(arg: &[u8]) -> Result<f64, CommandError> {
    parse_score(arg).ok_or(CommandError::NotFloat)
}

fn parse_score(arg: &[u8]) -> Option<f64> {
    let v = super::parse_float(arg)?;
    let text = std::str::from_utf8(arg).ok()?;
    let lower = text.to_ascii_lowercase();
    let digits = lower.trim_start_matches(['+', '-']);
    let is_inf_literal = digits == "inf" || digits == "infinity";
    if v.is_infinite() && !is_inf_literal {
        return None;
    }
    if v == 0.0 && has_nonzero_mantissa(digits) {
        return None;
    }
    Some(v)
}

/// Whether a number's text has a non-zero digit before its exponent.
fn has_nonzero_mantissa(digits: &str) -> bool {
    if let Some(hex) = digits.strip_prefix("0x") {
        let mantissa = hex.split('p').next().unwrap_or("");
        mantissa.bytes().any(|b| b.is_ascii_hexdigit() && b != b'0')
    } else {
        let mantissa = digits.split('e').next().unwrap_or("");
        mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b))
    }
}

/// A range end as Redis reads it with `strtod` (up to a NUL byte): leading
/// spaces are skipped, the empty text is 0, overflow is infinity; NaN and
/// trailing text are refused.
fn strtod(arg: &[u8]) -> Option<f64> {
    let arg = arg.split(|&b| b == 0).next().unwrap_or(&[]);
    if arg.is_empty() {
        return Some(0.0);
    }
    let start = arg
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    super::parse_float(&arg[start..])
}

fn score_bound(arg: &[u8]) -> Option<ScoreBound> {
    match arg.split_first() {
        Some((b'(', rest)) => Some(ScoreBound {
            value: strtod(rest)?,
            exclusive: true,
        }),
        _ => Some(ScoreBound {
            value: strtod(arg)?,
            exclusive: false,
        }),
    }
}

/// A score range (`ERR min or max is not a float`).
pub fn score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, CommandError> {
    match (score_bound(min), score_bound(max)) {
        (Some(min), Some(max)) => Ok(ScoreRange { min, max }),
        _ => Err(CommandError::err("min or max is not a float")),
    }
}

fn lex_bound(arg: &[u8]) -> Option<LexBound> {
    match arg.split_first()? {
        (b'+', rest) if rest.first().is_none_or(|&b| b == 0) => Some(LexBound::Max),
        (b'-', rest) if rest.first().is_none_or(|&b| b == 0) => Some(LexBound::Min),
        (b'(', rest) => Some(LexBound::Exclusive(Bytes::copy_from_slice(rest))),
        (b'[', rest) => Some(LexBound::Inclusive(Bytes::copy_from_slice(rest))),
        _ => None,
    }
}

/// A lex range (`ERR min or max not valid string range item`).
pub fn lex_range(min: &[u8], max: &[u8]) -> Result<LexRange, CommandError> {
    match (lex_bound(min), lex_bound(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => Err(CommandError::err("min or max not valid string range item")),
    }
}

/// A count read as Redis's `getPositiveLongFromObjectOrReply` (no message).
fn positive(arg: &[u8]) -> Result<usize, CommandError> {
    let out_of_range = || CommandError::err("value is out of range, must be positive");
    let n = int_arg(arg).map_err(|_| out_of_range())?;
    usize::try_from(n).map_err(|_| out_of_range())
}

fn limits(ctx: &Ctx<'_>) -> Limits {
    ctx.shared.encodings.zset()
}

fn nan_error() -> CommandError {
    CommandError::err("resulting score is not a number (NaN)")
}

// ---- replies ----------------------------------------------------------------

fn member_reply(m: &[u8]) -> Reply {
    Reply::copy_of(m)
}

/// Members, with their scores when asked: a flat array in RESP2, an array of
/// `[member, score]` pairs in RESP3 (as Redis's range replies).
fn scored_reply<'a>(
    items: impl Iterator<Item = (&'a [u8], f64)>,
    withscores: bool,
    resp3: bool,
) -> Reply {
    let n = match items.size_hint() {
        (_, Some(most)) => most,
        (least, None) => least,
    }
    .min(1024);
    let mut out = Written::array(resp3, n * if withscores { 48 } else { 24 });
    for (m, s) in items {
        if withscores {
            out.scored(m, s);
        } else {
            out.bulk(m);
        }
    }
    Reply::Written(out)
}

/// [`scored_reply`] of the members of ranks `start..end` (read from the top
/// when `rev`), written as the set's chunks are walked.
fn ranked_reply(
    z: &ZSet,
    (start, end): (usize, usize),
    rev: bool,
    withscores: bool,
    resp3: bool,
) -> Reply {
    let n = end.saturating_sub(start).min(1024);
    let mut out = Written::array(resp3, n * if withscores { 48 } else { 24 });
    z.each_in_range(start, end, rev, |m, s| {
        if withscores {
            out.scored(m, s);
        } else {
            out.bulk(m);
        }
    });
    Reply::Written(out)
}

/// The reply of a pop: `key` first when given (BZPOPMIN's and ZMPOP's), then
/// the members and scores, flat (ZPOPMIN in RESP2, BZPOPMIN) or as `[member,
/// score]` pairs when `nested` (ZPOPMIN with a count in RESP3; ZMPOP and
/// BZMPOP always, as `[key, [[member, score], ...]]`).
pub fn pop_reply(key: Option<&Bytes>, popped: Vec<(Bytes, f64)>, nested: bool) -> Reply {
    let mut items = Vec::with_capacity(popped.len() * if nested { 1 } else { 2 });
    for (m, s) in popped {
        if nested {
            items.push(Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]));
        } else {
            items.push(Reply::Bulk(m));
            items.push(Reply::Double(s));
        }
    }
    match key {
        None => Reply::Array(items),
        Some(k) if nested => Reply::Array(vec![Reply::Bulk(k.clone()), Reply::Array(items)]),
        Some(k) => {
            items.insert(0, Reply::Bulk(k.clone()));
            Reply::Array(items)
        }
    }
}

// ---- ZADD, ZINCRBY, ZREM and reads of one member -----------------------------

fn zadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let mut flags = AddFlags::default();
    let mut ch = false;
    while let Some(i) = a.one_of(&["nx", "xx", "ch", "incr", "gt", "lt"]) {
        match i {
            0 => flags.nx = true,
            1 => flags.xx = true,
            2 => ch = true,
            3 => flags.incr = true,
            4 => flags.gt = true,
            _ => flags.lt = true,
        }
    }
    let pairs = a.rest();
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(CommandError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err(CommandError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    let elements = pairs.len() / 2;
    if flags.incr && elements > 1 {
        return Err(CommandError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let scores = pairs
        .chunks_exact(2)
        .map(|p| score_arg(&p[0]))
        .collect::<Result<Vec<f64>, _>>()?;
    add_pairs(ctx, key, pairs, &scores, flags, ch)
}

fn add_pairs(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    pairs: &[Bytes],
    scores: &[f64],
    flags: AddFlags,
    ch: bool,
) -> CommandResult {
    let limits = limits(ctx);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let no_reply = || {
        if flags.incr {
            Reply::Nil
        } else {
            Reply::Int(0)
        }
    };
    if flags.xx && shard.read::<ZSet>(key, now)?.is_none() {
        return Ok(no_reply());
    }
    let z = shard.get_or_create_quiet::<ZSet>(key, now)?;
    let elements = scores.len();
    if z.is_empty() {
        let first_len = pairs.get(1).map_or(0, |m| m.len());
        *z = ZSet::with_hint(elements, first_len, limits);
    } else {
        z.reserve_hint(elements, limits);
    }
    let (mut added, mut updated, mut last) = (0i64, 0i64, None);
    let mut failed = false;
    for (pair, &score) in pairs.chunks_exact(2).zip(scores) {
        match z.add(&pair[1], score, flags, limits) {
            Ok(Added::New(s)) => {
                added += 1;
                last = Some(s);
            }
            Ok(Added::Updated(s)) => {
                updated += 1;
                last = Some(s);
            }
            Ok(Added::Same(s)) => last = Some(s),
            Ok(Added::Refused) => {}
            Err(ZSetError::NaN) => {
                failed = true;
                break;
            }
        }
    }
    if added + updated > 0 {
        shard.touch(key);
    }
    shard.remove_if_empty::<ZSet>(key, now);
    drop(shard);
    if added > 0 {
        ctx.shared.blocked.signal(ctx.session.db, key);
    }
    if added + updated > 0 {
        let event = if flags.incr { "zincr" } else { "zadd" };
        ctx.notify(notify::ZSET, event, key);
    }
    if failed {
        return Err(nan_error());
    }
    Ok(if flags.incr {
        last.map_or(Reply::Nil, Reply::Double)
    } else if ch {
        Reply::Int(added + updated)
    } else {
        Reply::Int(added)
    })
}

fn zincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let pair = a.take(2)?;
    let increment = score_arg(&pair[0])?;
    let flags = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    add_pairs(ctx, key, pair, &[increment], flags, false)
}

fn zrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(z) = shard.write_quiet::<ZSet>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    let mut removed = 0;
    for m in a.rest() {
        if z.remove(m).is_some() {
            removed += 1;
        }
        if z.is_empty() {
            break;
        }
    }
    if removed > 0 {
        shard.touch(key);
    }
    let deleted = shard.remove_if_empty::<ZSet>(key, now);
    drop(shard);
    if removed > 0 {
        ctx.notify(notify::ZSET, "zrem", key);
        if deleted {
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    Ok(Reply::Int(removed))
}

/// Runs `f` on the set at `key`, or replies `missing` when there is none.
fn with_set(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    missing: Reply,
    f: impl FnOnce(&ZSet) -> CommandResult,
) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    match shard.read::<ZSet>(key, now)? {
        Some(z) => f(z),
        None => Ok(missing),
    }
}

fn zcard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    with_set(ctx, &args[1], Reply::Int(0), |z| {
        Ok(Reply::Int(z.len() as i64))
    })
}

fn zscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let member = &args[2];
    with_set(ctx, &args[1], Reply::Nil, |z| {
        Ok(z.score(member).map_or(Reply::Nil, Reply::Double))
    })
}

fn zmscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let members = &args[2..];
    let missing = Reply::Array(vec![Reply::Nil; members.len()]);
    with_set(ctx, &args[1], missing, |z| {
        Ok(Reply::Array(
            members
                .iter()
                .map(|m| z.score(m).map_or(Reply::Nil, Reply::Double))
                .collect(),
        ))
    })
}

fn rank(ctx: &mut Ctx<'_>, args: &[Bytes], rev: bool) -> CommandResult {
    if args.len() > 4 {
        let name = if rev { "zrevrank" } else { "zrank" };
        return Err(CommandError::WrongArity(name.to_string()));
    }
    let withscore = match args.get(3) {
        None => false,
        Some(opt) if is(opt, "withscore") => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    let none = if withscore {
        Reply::NilArray
    } else {
        Reply::Nil
    };
    let member = &args[2];
    with_set(ctx, &args[1], none.clone(), |z| {
        Ok(match z.rank(member, rev) {
            None => none,
            Some((r, s)) if withscore => Reply::Array(vec![Reply::Int(r as i64), Reply::Double(s)]),
            Some((r, _)) => Reply::Int(r as i64),
        })
    })
}

fn zrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    rank(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    rank(ctx, args, true)
}

fn zcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let range = score_range(&args[2], &args[3])?;
    with_set(ctx, &args[1], Reply::Int(0), |z| {
        Ok(Reply::Int(z.count_in_score(&range) as i64))
    })
}

fn zlexcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let range = lex_range(&args[2], &args[3])?;
    with_set(ctx, &args[1], Reply::Int(0), |z| {
        Ok(Reply::Int(z.count_in_lex(&range) as i64))
    })
}

// ---- the ZRANGE family ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Auto,
    Rank,
    Score,
    Lex,
}

/// What a range command asked for, parsed.
#[derive(Debug)]
enum Span {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

#[derive(Debug)]
struct RangeRequest {
    span: Span,
    rev: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
}

/// Parses `<min> <max> [BYSCORE|BYLEX] [REV] [WITHSCORES] [LIMIT offset count]`
/// from `args[at..]` (`at` is the min) as Redis's `zrangeGenericCommand` does;
/// `by` and `rev` are fixed by the older commands (ZREVRANGEBYSCORE, ...).
fn parse_range(
    args: &[Bytes],
    at: usize,
    store: bool,
    mut by: By,
    rev: Option<bool>,
) -> Result<RangeRequest, CommandError> {
    let mut reverse = rev;
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = at + 2;
    while let Some(opt) = args.get(j) {
        let left = args.len() - j - 1;
        if !store && is(opt, "withscores") {
            withscores = true;
        } else if is(opt, "limit") && left >= 2 {
            offset = int_arg(&args[j + 1])?;
            limit = int_arg(&args[j + 2])?;
            j += 2;
        } else if reverse.is_none() && is(opt, "rev") {
            reverse = Some(true);
        } else if by == By::Auto && is(opt, "bylex") {
            by = By::Lex;
        } else if by == By::Auto && is(opt, "byscore") {
            by = By::Score;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    let rev = reverse.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return Err(CommandError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && by == By::Lex {
        return Err(CommandError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut min, mut max) = (&args[at], &args[at + 1]);
    if rev && by != By::Rank {
        std::mem::swap(&mut min, &mut max);
    }
    let span = match by {
        By::Score => Span::Score(score_range(min, max)?),
        By::Lex => Span::Lex(lex_range(min, max)?),
        _ => Span::Rank(int_arg(min)?, int_arg(max)?),
    };
    Ok(RangeRequest {
        span,
        rev,
        withscores,
        offset,
        limit,
    })
}

/// The ascending ranks `start..end` a request selects in `z`; the members are
/// read from `end - 1` down when it is reversed.
fn select(z: &ZSet, req: &RangeRequest) -> (usize, usize) {
    let len = z.len() as i64;
    let (lo, hi) = match &req.span {
        Span::Rank(start, end) => {
            let mut start = if *start < 0 { len + start } else { *start };
            let end = if *end < 0 { len + end } else { *end };
            start = start.max(0);
            if start > end || start >= len {
                return (0, 0);
            }
            let end = end.min(len - 1);
            // Ranks counted from the top when reversed.
            let (s, e) = if req.rev {
                (len - 1 - end, len - start)
            } else {
                (start, end + 1)
            };
            return (s as usize, e as usize);
        }
        Span::Score(r) => z.score_bounds(r),
        Span::Lex(r) => z.lex_bounds(r),
    };
    if req.offset < 0 {
        return (0, 0);
    }
    let count = hi - lo;
    let skip = usize::try_from(req.offset).unwrap_or(usize::MAX).min(count);
    let take = match usize::try_from(req.limit) {
        Ok(limit) => limit.min(count - skip),
        Err(_) => count - skip,
    };
    if req.rev {
        (hi - skip - take, hi - skip)
    } else {
        (lo + skip, lo + skip + take)
    }
}

fn range_reply(ctx: &mut Ctx<'_>, args: &[Bytes], by: By, rev: Option<bool>) -> CommandResult {
    let req = parse_range(args, 2, false, by, rev)?;
    let resp3 = ctx.session.resp3;
    with_set(ctx, &args[1], Reply::Array(Vec::new()), |z| {
        let (start, end) = select(z, &req);
        Ok(ranked_reply(
            z,
            (start, end),
            req.rev,
            req.withscores,
            resp3,
        ))
    })
}

fn zrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    range_reply(ctx, args, By::Auto, None)
}

fn zrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    range_reply(ctx, args, By::Rank, Some(true))
}

fn zrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    range_reply(ctx, args, By::Score, Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    range_reply(ctx, args, By::Score, Some(true))
}

fn zrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    range_reply(ctx, args, By::Lex, Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    range_reply(ctx, args, By::Lex, Some(true))
}

/// Stores `result` at `dst` (replacing any value), or deletes `dst` when it is
/// empty; the size stored, and whether a key was deleted.
fn store_in(shard: &mut Shard, dst: &Bytes, result: ZSet, now: u64) -> (usize, bool) {
    let n = result.len();
    if n == 0 {
        (0, shard.remove(dst, now).is_some())
    } else {
        shard.insert(dst, Entry::persistent(Value::ZSet(Box::new(result))), now);
        (n, false)
    }
}

/// The reply of a STORE command, after waking clients blocked on `dst` and
/// raising `event` (or `del` when an empty result deleted `dst`).
fn stored(
    ctx: &mut Ctx<'_>,
    dst: &Bytes,
    (n, deleted): (usize, bool),
    event: &'static str,
) -> CommandResult {
    if n > 0 {
        ctx.shared.blocked.signal(ctx.session.db, dst);
        ctx.notify(notify::ZSET, event, dst);
    } else if deleted {
        ctx.notify(notify::GENERIC, "del", dst);
    }
    Ok(Reply::Int(n as i64))
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count].
fn zrangestore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let req = parse_range(args, 3, true, By::Auto, None)?;
    let limits = limits(ctx);
    let (dst, src) = (&args[1], &args[2]);
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(&[dst, src]);
    let result = match shards.shard(src).read::<ZSet>(src, now)? {
        None => ZSet::new(),
        Some(z) => {
            let (start, end) = select(z, &req);
            let known = matches!(req.span, Span::Rank(..));
            let mut out = ZSet::with_hint(if known { end - start } else { 0 }, 0, limits);
            for (m, s) in z.range(start, end, req.rev) {
                out.insert(m, s, limits);
            }
            out
        }
    };
    let n = store_in(shards.shard(dst), dst, result, now);
    drop(shards);
    stored(ctx, dst, n, "zrangestore")
}

// ---- removal of ranges ---------------------------------------------------------

fn remove_range(ctx: &mut Ctx<'_>, args: &[Bytes], by: By) -> CommandResult {
    let span = match by {
        By::Score => Span::Score(score_range(&args[2], &args[3])?),
        By::Lex => Span::Lex(lex_range(&args[2], &args[3])?),
        _ => Span::Rank(int_arg(&args[2])?, int_arg(&args[3])?),
    };
    let req = RangeRequest {
        span,
        rev: false,
        withscores: false,
        offset: 0,
        limit: -1,
    };
    let key = &args[1];
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(z) = shard.write_quiet::<ZSet>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    let (start, end) = select(z, &req);
    let removed = z.remove_ranks(start, end);
    if removed > 0 {
        shard.touch(key);
    }
    let deleted = shard.remove_if_empty::<ZSet>(key, now);
    drop(shard);
    if removed > 0 {
        let event = match by {
            By::Score => "zremrangebyscore",
            By::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        ctx.notify(notify::ZSET, event, key);
        if deleted {
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    Ok(Reply::Int(removed as i64))
}

fn zremrangebyrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    remove_range(ctx, args, By::Rank)
}

fn zremrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    remove_range(ctx, args, By::Score)
}

fn zremrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    remove_range(ctx, args, By::Lex)
}

// ---- pops ------------------------------------------------------------------------

fn pop_min_max(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) -> CommandResult {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = args.get(2).map(|c| positive(c)).transpose()?;
    let key = &args[1];
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(z) = shard.write::<ZSet>(key, now)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == Some(0) {
        return Ok(Reply::Array(Vec::new()));
    }
    let popped = z.pop(count.unwrap_or(1), max);
    let deleted = shard.remove_if_empty::<ZSet>(key, now);
    if !popped.is_empty() {
        log_popped(&shard, key, max, deleted);
    }
    let nested = ctx.session.resp3 && count.is_some();
    Ok(pop_reply(None, popped, nested))
}

fn zpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    pop_min_max(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    pop_min_max(ctx, args, true)
}

/// What ZMPOP and BZMPOP read after their numkeys (at `numkeys_at`): where
/// the keys are, which end to pop and how many.
struct MultiPop {
    keys: std::ops::Range<usize>,
    max: bool,
    count: usize,
}

/// Reads `numkeys key [key ...] MIN|MAX [COUNT count]` from `numkeys_at` on.
fn multi_pop_args(args: &[Bytes], numkeys_at: usize) -> Result<MultiPop, CommandError> {
    let numkeys = at_least_one(&args[numkeys_at], "numkeys should be greater than 0")?;
    let first = numkeys_at + 1;
    let where_at = numkeys.checked_add(first).ok_or(CommandError::Syntax)?;
    let Some(side) = args.get(where_at) else {
        return Err(CommandError::Syntax);
    };
    let max = if is(side, "min") {
        false
    } else if is(side, "max") {
        true
    } else {
        return Err(CommandError::Syntax);
    };
    let count = mpop_count(args, where_at + 1)?;
    Ok(MultiPop {
        keys: first..where_at,
        max,
        count,
    })
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count].
fn zmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let req = multi_pop_args(args, 1)?;
    let keys = &args[req.keys.clone()];
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    for key in keys {
        if shards.shard(key).read::<ZSet>(key, now)?.is_some() {
            let pop = ZPop::multi(req.max, req.count, limits(ctx));
            return Ok(pop.serve(&mut shards, key, now).unwrap_or(Reply::NilArray));
        }
    }
    Ok(Reply::NilArray)
}

// ---- BZPOPMIN, BZPOPMAX, BZMPOP ---------------------------------------------------

/// Logs the events of members popped from `key` (`zpopmin`/`zpopmax`, then
/// `del` when the set is gone); the command or serving pass publishes them.
fn log_popped(shard: &Shard, key: &[u8], max: bool, deleted: bool) {
    let event = if max { "zpopmax" } else { "zpopmin" };
    shard.log_event(notify::ZSET, event, key);
    if deleted {
        shard.log_event(notify::GENERIC, "del", key);
    }
}

/// The serve step of the blocking pops: up to `count` members from the low or
/// high end, replied as BZPOPMIN's `[key, member, score]` or, for BZMPOP (and
/// ZMPOP), `[key, [[member, score], ...]]`.
#[derive(Debug)]
struct ZPop {
    max: bool,
    count: usize,
    nested: bool,
    limits: Limits,
}

impl ZPop {
    fn multi(max: bool, count: usize, limits: Limits) -> Self {
        ZPop {
            max,
            count,
            nested: true,
            limits,
        }
    }
}

impl Serve for ZPop {
    fn wants(&self) -> &'static str {
        "zset"
    }

    fn serve(&self, shards: &mut ShardSet<'_>, key: &Bytes, now: u64) -> Option<Reply> {
        let shard = shards.shard(key);
        let z = shard.write::<ZSet>(key, now).ok()??;
        let popped = z.pop(self.count, self.max);
        let deleted = shard.remove_if_empty::<ZSet>(key, now);
        if popped.is_empty() {
            return None;
        }
        shard.propagate(|| {
            let name: &'static [u8] = if self.max { b"ZPOPMAX" } else { b"ZPOPMIN" };
            vec![
                Bytes::from_static(name),
                key.clone(),
                Bytes::from(popped.len().to_string()),
            ]
        });
        log_popped(shard, key, self.max, deleted);
        Some(pop_reply(Some(key), popped, self.nested))
    }

    fn undo(&self, shard: &mut Shard, key: &Bytes, reply: Reply, now: u64) {
        let Reply::Array(parts) = reply else {
            return;
        };
        let mut pairs = Vec::new();
        if self.nested {
            if let Some(Reply::Array(items)) = parts.into_iter().nth(1) {
                for item in items {
                    if let Reply::Array(pair) = item {
                        if let [Reply::Bulk(m), Reply::Double(s)] = pair.as_slice() {
                            pairs.push((m.clone(), *s));
                        }
                    }
                }
            }
        } else if let [_, Reply::Bulk(m), Reply::Double(s)] = parts.as_slice() {
            pairs.push((m.clone(), *s));
        }
        // Members served to a client that had gone go back with their scores
        // (the key may hold another type by now: then they are dropped, as
        // Redis would have served them).
        if let Ok(z) = shard.get_or_create::<ZSet>(key, now) {
            for (m, s) in &pairs {
                z.insert(m, *s, self.limits);
            }
            shard.propagate(|| {
                let mut argv = vec![Bytes::from_static(b"ZADD"), key.clone()];
                for (m, s) in pairs {
                    argv.push(Bytes::from(crate::reply::format_double(s)));
                    argv.push(m);
                }
                argv
            });
        }
    }
}

/// Pops with `pop` from the first of `keys` holding a sorted set, else waits
/// (in queue order with other waiters) for one, up to `timeout_ms` (0: no
/// limit); inside MULTI or a script it does not wait.
fn blocking_zpop(ctx: &mut Ctx<'_>, keys: &[Bytes], timeout_ms: u64, pop: ZPop) -> CommandResult {
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    for key in keys {
        if shards.shard(key).read::<ZSet>(key, now)?.is_some() {
            return Ok(pop.serve(&mut shards, key, now).unwrap_or(Reply::NilArray));
        }
    }
    block_on_keys(ctx, keys, timeout_ms, Box::new(pop), Reply::NilArray)
}

/// BZPOPMIN/BZPOPMAX key [key ...] timeout.
fn bzpop(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) -> CommandResult {
    let timeout_ms = timeout_arg(&args[args.len() - 1])?;
    let pop = ZPop {
        max,
        count: 1,
        nested: false,
        limits: limits(ctx),
    };
    blocking_zpop(ctx, &args[1..args.len() - 1], timeout_ms, pop)
}

fn bzpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    bzpop(ctx, args, false)
}

fn bzpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    bzpop(ctx, args, true)
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count].
fn bzmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let timeout_ms = timeout_arg(&args[1])?;
    let req = multi_pop_args(args, 2)?;
    let pop = ZPop::multi(req.max, req.count, limits(ctx));
    blocking_zpop(ctx, &args[req.keys], timeout_ms, pop)
}

// ---- ZUNION, ZINTER, ZDIFF, ZINTERCARD --------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
    InterCard,
}

/// One source of ZUNION/ZINTER/ZDIFF/ZINTERCARD: a sorted set, or a plain
/// set whose members all score 1 (as Redis reads one).
enum Source {
    Sorted(ZSet),
    Plain(Set),
}

impl Source {
    /// The value at `key` as a source: `None` when missing, WRONGTYPE when it
    /// is neither a sorted set nor a set.
    fn read(shard: &mut Shard, key: &[u8], now: u64) -> Result<Option<Source>, CommandError> {
        Ok(match shard.get(key, now).map(|e| &e.value) {
            None => None,
            Some(Value::ZSet(z)) => Some(Source::Sorted(z.as_ref().clone())),
            Some(Value::Set(s)) => Some(Source::Plain(s.clone())),
            Some(_) => return Err(CommandError::WrongType),
        })
    }

    fn scored(&self) -> &dyn Scored {
        match self {
            Source::Sorted(z) => z,
            Source::Plain(s) => s,
        }
    }
}

/// The sources of a set operation, read while their shards are held.
fn set_operation(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    dst: Option<&Bytes>,
    numkeys_at: usize,
    op: SetOp,
    name: &str,
) -> CommandResult {
    let setnum = int_arg(&args[numkeys_at])?;
    if setnum < 1 {
        return Err(CommandError::err(format!(
            "at least 1 input key is needed for '{name}' command"
        )));
    }
    let first = numkeys_at + 1;
    let setnum = match usize::try_from(setnum) {
        Ok(n) if n <= args.len() - first => n,
        _ => return Err(CommandError::Syntax),
    };
    let keys = &args[first..first + setnum];
    let limits = limits(ctx);
    let resp3 = ctx.session.resp3;
    let now = ctx.now;
    let mut locked: Vec<&Bytes> = keys.iter().collect();
    locked.extend(dst);
    let mut shards = ctx.db().lock_keys(&locked);
    // Every key is looked at (and its type checked) before the options are read.
    let mut sets: Vec<Option<Source>> = Vec::with_capacity(setnum);
    for key in keys {
        sets.push(Source::read(shards.shard(key), key, now)?);
    }
    let mut weights = vec![1.0f64; setnum];
    let (mut how, mut withscores, mut limit) = (Aggregate::Sum, false, 0usize);
    let mut j = first + setnum;
    let plain = op != SetOp::Diff && op != SetOp::InterCard;
    while let Some(opt) = args.get(j) {
        let remaining = args.len() - j;
        if plain && remaining > setnum && is(opt, "weights") {
            for (w, arg) in weights.iter_mut().zip(&args[j + 1..]) {
                *w = parse_score(arg)
                    .ok_or_else(|| CommandError::err("weight value is not a float"))?;
            }
            j += 1 + setnum;
        } else if plain && remaining >= 2 && is(opt, "aggregate") {
            let which = &args[j + 1];
            how = if is(which, "sum") {
                Aggregate::Sum
            } else if is(which, "min") {
                Aggregate::Min
            } else if is(which, "max") {
                Aggregate::Max
            } else {
                return Err(CommandError::Syntax);
            };
            j += 2;
        } else if dst.is_none() && op != SetOp::InterCard && is(opt, "withscores") {
            withscores = true;
            j += 1;
        } else if op == SetOp::InterCard && remaining >= 2 && is(opt, "limit") {
            let n = int_arg(&args[j + 1])
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| CommandError::err("LIMIT can't be negative"))?;
            limit = n;
            j += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let inputs: Vec<Input<'_>> = sets
        .iter()
        .zip(&weights)
        .map(|(s, &weight)| Input {
            set: s.as_ref().map(Source::scored),
            weight,
        })
        .collect();
    let mut result = match op {
        SetOp::Union => zset::union(&inputs, how, limits),
        SetOp::Inter => zset::inter(&inputs, how, limits),
        SetOp::Diff => zset::diff(&inputs, limits),
        SetOp::InterCard => return Ok(Reply::Int(zset::inter_card(&inputs, limit) as i64)),
    };
    match dst {
        Some(dst) => {
            result.shrink_if_small(limits);
            let n = store_in(shards.shard(dst), dst, result, now);
            drop(shards);
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                _ => "zdiffstore",
            };
            stored(ctx, dst, n, event)
        }
        None => Ok(scored_reply(result.iter(), withscores, resp3)),
    }
}

fn zunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_operation(ctx, args, None, 1, SetOp::Union, "zunion")
}

fn zinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_operation(ctx, args, None, 1, SetOp::Inter, "zinter")
}

fn zdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_operation(ctx, args, None, 1, SetOp::Diff, "zdiff")
}

fn zintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_operation(ctx, args, None, 1, SetOp::InterCard, "zintercard")
}

fn zunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_operation(ctx, args, Some(&args[1]), 2, SetOp::Union, "zunionstore")
}

fn zinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_operation(ctx, args, Some(&args[1]), 2, SetOp::Inter, "zinterstore")
}

fn zdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_operation(ctx, args, Some(&args[1]), 2, SetOp::Diff, "zdiffstore")
}

// ---- ZRANDMEMBER and ZSCAN ----------------------------------------------------------

/// The most members a negative ZRANDMEMBER count may ask for: Redis would
/// stream them; a reply here is built whole, so a larger count is refused.
const RANDOM_REPLY_MAX: u64 = 1 << 24;

/// ZRANDMEMBER key [count [WITHSCORES]].
fn zrandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let Some(count_arg) = args.get(2) else {
        return with_set(ctx, &args[1], Reply::Nil, |z| {
            let r = fastrand::usize(..z.len().max(1));
            Ok(z.get(r).map_or(Reply::Nil, |(m, _)| member_reply(m)))
        });
    };
    let l = int_arg(count_arg)?;
    if l == i64::MIN {
        return Err(CommandError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let withscores = match args.get(3) {
        None => false,
        Some(opt) if args.len() == 4 && is(opt, "withscores") => {
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
                return Err(CommandError::err("value is out of range"));
            }
            true
        }
        Some(_) => return Err(CommandError::Syntax),
    };
    let resp3 = ctx.session.resp3;
    with_set(ctx, &args[1], Reply::Array(Vec::new()), |z| {
        let len = z.len();
        if l == 0 {
            return Ok(Reply::Array(Vec::new()));
        }
        let ranks: Vec<usize> = if l < 0 {
            if l.unsigned_abs() > RANDOM_REPLY_MAX {
                return Err(CommandError::err("value is out of range"));
            }
            (0..l.unsigned_abs())
                .map(|_| fastrand::usize(..len))
                .collect()
        } else {
            let want = usize::try_from(l).unwrap_or(usize::MAX);
            if want >= len {
                // The whole set, walked from the top as Redis's iterator does.
                (0..len).rev().collect()
            } else {
                let mut ranks = distinct_ranks(len, want);
                // Redis samples a listpack in its order.
                if z.encoding_name() == "listpack" {
                    ranks.sort_unstable();
                }
                ranks
            }
        };
        Ok(scored_reply(
            ranks.into_iter().filter_map(|r| z.get(r)),
            withscores,
            resp3,
        ))
    })
}

/// `want` distinct ranks below `len` (`want < len`), in random order.
fn distinct_ranks(len: usize, want: usize) -> Vec<usize> {
    if want.saturating_mul(3) > len {
        let mut all: Vec<usize> = (0..len).collect();
        fastrand::shuffle(&mut all);
        all.truncate(want);
        all
    } else {
        let mut seen = std::collections::HashSet::with_capacity(want);
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            let r = fastrand::usize(..len);
            if seen.insert(r) {
                out.push(r);
            }
        }
        out
    }
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count].
fn zscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let cursor =
        super::keys::scan_cursor(&args[2]).ok_or_else(|| CommandError::err("invalid cursor"))?;
    with_set(ctx, &args[1], scan_reply(0, Vec::new()), |z| {
        let options = ScanOptions::read(&args[3..], ScanOf::Members)?;
        let (next, items) = z.scan(cursor, options.count);
        let mut out = Vec::with_capacity(items.len() * 2);
        for (m, s) in items {
            if options.matches(m) {
                out.push(member_reply(m));
                out.push(Reply::bulk_string(crate::reply::format_double(s)));
            }
        }
        Ok(scan_reply(next, out))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_as_string2d() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0"), Some(0.0));
        assert_eq!(parse_score(b"0e10"), Some(0.0));
        assert_eq!(parse_score(b"4e-320"), Some(4e-320));
        for bad in [&b"1e400"[..], b"1e-400", b"", b" 1", b"nan", b"1x"] {
            assert_eq!(parse_score(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn range_ends_parse_as_strtod() {
        assert_eq!(strtod(b""), Some(0.0));
        assert_eq!(strtod(b" 1"), Some(1.0));
        assert_eq!(strtod(b"1e400"), Some(f64::INFINITY));
        assert_eq!(strtod(b"1 "), None);
        assert_eq!(strtod(b" "), None);
        assert_eq!(strtod(b"nan"), None);
        assert_eq!(
            score_bound(b"("),
            Some(ScoreBound {
                value: 0.0,
                exclusive: true
            })
        );
        assert_eq!(lex_bound(b"+"), Some(LexBound::Max));
        assert_eq!(lex_bound(b"+a"), None);
        assert_eq!(lex_bound(b"a"), None);
        assert_eq!(lex_bound(b""), None);
    }
}
