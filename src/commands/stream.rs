//! Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XREAD, XSETID,
//! the consumer group commands (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM,
//! XAUTOCLAIM) and XINFO. The stream itself and its groups are
//! `types::stream`; blocking XREAD/XREADGROUP are a [`Serve`] step of the
//! blocking registry, woken by XADD.

use std::collections::HashMap;

use bytes::Bytes;

use super::args::Args;
use super::wait::block_on_keys;
use super::{container, flag, int_arg, is, CommandResult, CommandSpec, Ctx, KeySpec};
use super::{BeginSearch, CallMode, FindKeys};
use crate::blocking::Serve;
use crate::error::CommandError;
use crate::keyspace::{Shard, ShardSet};
use crate::notify;
use crate::reply::Reply;
use crate::types::stream::{
    self, AddId, FieldsRef, IdError, NodeLimits, RangeEnd, Stream, StreamId, Trim, TrimTo,
};
use crate::types::CompactBytes;

const RW_UPDATE: &[KeySpec] = &[KeySpec::one(1, &["RW", "update"])];
const RW_DELETE: &[KeySpec] = &[KeySpec::one(1, &["RW", "delete"])];
const RO_ACCESS: &[KeySpec] = &[KeySpec::one(1, &["RO", "access"])];
const SUB_RO_ACCESS: &[KeySpec] = &[KeySpec::one(2, &["RO", "access"])];
const SUB_INSERT: &[KeySpec] = &[KeySpec::one(2, &["RW", "insert"])];
const SUB_DELETE: &[KeySpec] = &[KeySpec::one(2, &["RW", "delete"])];
const SUB_UPDATE: &[KeySpec] = &[KeySpec::one(2, &["RW", "update"])];
const WRITE_FAST: &[&str] = &["@write", "@stream", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@stream", "@slow"];
const GROUP_WRITE: &[&str] = &["@write", "@stream", "@slow"];
const NONDETERMINISTIC: &[&str] = &["nondeterministic_output"];

/// Keys after `STREAMS`, half of what follows it.
const fn streams_keys(startfrom: i32) -> KeySpec {
    KeySpec::new(
        &["RO", "access"],
        BeginSearch::Keyword {
            keyword: "STREAMS",
            startfrom,
        },
        FindKeys::Range {
            lastkey: -1,
            keystep: 1,
            limit: 2,
        },
    )
}

const fn group_sub(
    name: &'static str,
    arity: i32,
    flags: u32,
    handler: super::Handler,
    key_specs: &'static [KeySpec],
    since: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, handler)
        .keys(2, 2, 1)
        .acl(GROUP_WRITE)
        .key_specs(key_specs)
        .doc("stream", since, summary)
}

const fn info_sub(
    name: &'static str,
    arity: i32,
    handler: super::Handler,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(name, arity, flag::READONLY, handler)
        .keys(2, 2, 1)
        .acl(READ_SLOW)
        .key_specs(SUB_RO_ACCESS)
        .doc("stream", "5.0.0", summary)
}

/// The stream family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xadd", -5, flag::WRITE | flag::DENYOOM | flag::FAST, xadd)
        .keys(1, 1, 1)
        .acl(WRITE_FAST)
        .tips(NONDETERMINISTIC)
        .key_specs(&[KeySpec::one(1, &["RW", "update"])
            .notes("UPDATE instead of INSERT because of the optional trimming feature")])
        .doc("stream", "5.0.0", "Appends a new entry to a stream"),
    CommandSpec::new("xlen", 2, flag::READONLY | flag::FAST, xlen)
        .keys(1, 1, 1)
        .acl(&["@read", "@stream", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO"])])
        .doc("stream", "5.0.0", "Return the number of entries in a stream"),
    CommandSpec::new("xrange", -4, flag::READONLY, xrange)
        .keys(1, 1, 1)
        .acl(READ_SLOW)
        .key_specs(RO_ACCESS)
        .doc("stream", "5.0.0", "Return a range of elements in a stream, with IDs matching the specified IDs interval"),
    CommandSpec::new("xrevrange", -4, flag::READONLY, xrevrange)
        .keys(1, 1, 1)
        .acl(READ_SLOW)
        .key_specs(RO_ACCESS)
        .doc("stream", "5.0.0", "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE"),
    CommandSpec::new("xdel", -3, flag::WRITE | flag::FAST, xdel)
        .keys(1, 1, 1)
        .acl(WRITE_FAST)
        .key_specs(RW_DELETE)
        .doc("stream", "5.0.0", "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist."),
    CommandSpec::new("xtrim", -4, flag::WRITE, xtrim)
        .keys(1, 1, 1)
        .acl(GROUP_WRITE)
        .tips(NONDETERMINISTIC)
        .key_specs(RW_DELETE)
        .doc("stream", "5.0.0", "Trims the stream to (approximately if '~' is passed) a certain size"),
    CommandSpec::new("xread", -4, flag::READONLY | flag::BLOCKING, xread)
        .acl(&["@read", "@stream", "@slow", "@blocking"])
        .key_specs(&[streams_keys(1)])
        .doc("stream", "5.0.0", "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block."),
    CommandSpec::new("xreadgroup", -7, flag::WRITE | flag::BLOCKING | flag::NO_PROPAGATE, xreadgroup)
        .acl(&["@write", "@stream", "@slow", "@blocking"])
        .key_specs(&[streams_keys(4)])
        .doc("stream", "5.0.0", "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block."),
    CommandSpec::new("xsetid", -3, flag::WRITE | flag::DENYOOM | flag::FAST, xsetid)
        .keys(1, 1, 1)
        .acl(WRITE_FAST)
        .key_specs(RW_UPDATE)
        .doc("stream", "5.0.0", "An internal command for replicating stream values"),
    CommandSpec::new("xack", -4, flag::WRITE | flag::FAST, xack)
        .keys(1, 1, 1)
        .acl(WRITE_FAST)
        .key_specs(RW_UPDATE)
        .doc("stream", "5.0.0", "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL."),
    CommandSpec::new("xpending", -3, flag::READONLY, xpending)
        .keys(1, 1, 1)
        .acl(READ_SLOW)
        .tips(NONDETERMINISTIC)
        .key_specs(RO_ACCESS)
        .doc("stream", "5.0.0", "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged."),
    CommandSpec::new("xclaim", -6, flag::WRITE | flag::FAST | flag::NO_PROPAGATE, xclaim)
        .keys(1, 1, 1)
        .acl(WRITE_FAST)
        .tips(NONDETERMINISTIC)
        .key_specs(RW_UPDATE)
        .doc("stream", "5.0.0", "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer."),
    CommandSpec::new("xautoclaim", -6, flag::WRITE | flag::FAST | flag::NO_PROPAGATE, xautoclaim)
        .keys(1, 1, 1)
        .acl(WRITE_FAST)
        .tips(NONDETERMINISTIC)
        .key_specs(RW_DELETE)
        .doc("stream", "6.2.0", "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer."),
    CommandSpec::new("xgroup", -2, 0, container)
        .acl(&["@slow"])
        .doc("stream", "5.0.0", "A container for consumer groups commands")
        .with_subcommands(&[
            group_sub("create", -5, flag::WRITE | flag::DENYOOM, xgroup_create, SUB_INSERT, "5.0.0", "Create a consumer group."),
            group_sub("createconsumer", 5, flag::WRITE | flag::DENYOOM, xgroup_createconsumer, SUB_INSERT, "6.2.0", "Create a consumer in a consumer group."),
            group_sub("delconsumer", 5, flag::WRITE, xgroup_delconsumer, SUB_DELETE, "5.0.0", "Delete a consumer from a consumer group."),
            group_sub("destroy", 4, flag::WRITE, xgroup_destroy, SUB_DELETE, "5.0.0", "Destroy a consumer group."),
            CommandSpec::new("help", 2, flag::LOADING | flag::STALE, xgroup_help)
                .acl(&["@stream", "@slow"])
                .doc("stream", "5.0.0", "Show helpful text about the different subcommands"),
            group_sub("setid", -5, flag::WRITE, xgroup_setid, SUB_UPDATE, "5.0.0", "Set a consumer group to an arbitrary last delivered ID value."),
        ]),
    CommandSpec::new("xinfo", -2, 0, container)
        .acl(&["@slow"])
        .doc("stream", "5.0.0", "A container for stream introspection commands")
        .with_subcommands(&[
            info_sub("consumers", 4, xinfo_consumers, "List the consumers in a consumer group")
                .tips(NONDETERMINISTIC),
            info_sub("groups", 3, xinfo_groups, "List the consumer groups of a stream"),
            CommandSpec::new("help", 2, flag::LOADING | flag::STALE, xinfo_help)
                .acl(&["@stream", "@slow"])
                .doc("stream", "5.0.0", "Show helpful text about the different subcommands"),
            info_sub("stream", -3, xinfo_stream, "Get information about a stream"),
        ]),
];

// ---- errors -------------------------------------------------------------

fn invalid_id() -> CommandError {
    CommandError::err("Invalid stream ID specified as stream command argument")
}

fn id_error(e: IdError) -> CommandError {
    CommandError::err(match e {
        IdError::Zero => "The ID specified in XADD must be greater than 0-0",
        IdError::TooSmall => {
            "The ID specified in XADD is equal or smaller than the target stream top item"
        }
        IdError::Exhausted => {
            "The stream has exhausted the last possible ID, unable to add more items"
        }
        // Redis's generic failure of `streamAppendItem` for this case.
        IdError::SeqExhausted => "Elements are too large to be stored",
    })
}

fn nogroup(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::raw(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn nogroup_for_key(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::raw(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

// ---- argument helpers ---------------------------------------------------

/// A strict ID (`ms` alone takes `missing_seq`).
fn id_arg(arg: &[u8], missing_seq: u64) -> Result<StreamId, CommandError> {
    stream::parse_id(arg, missing_seq).ok_or_else(invalid_id)
}

/// A range start: `-`, an ID, or `(ID` (excluded).
fn start_arg(arg: &[u8]) -> Result<StreamId, CommandError> {
    match stream::parse_range_end(arg, true).ok_or_else(invalid_id)? {
        RangeEnd::Incl(id) => Ok(id),
        RangeEnd::Excl(id) => id
            .next()
            .ok_or_else(|| CommandError::err("invalid start ID for the interval")),
    }
}

/// A range end: `+`, an ID, or `(ID` (excluded).
fn end_arg(arg: &[u8]) -> Result<StreamId, CommandError> {
    match stream::parse_range_end(arg, false).ok_or_else(invalid_id)? {
        RangeEnd::Incl(id) => Ok(id),
        RangeEnd::Excl(id) => id
            .prev()
            .ok_or_else(|| CommandError::err("invalid end ID for the interval")),
    }
}

fn node_limits(ctx: &Ctx<'_>) -> NodeLimits {
    ctx.shared.encodings.stream_nodes()
}

// ---- replies ------------------------------------------------------------

// Short fields and IDs (up to 22 bytes) are held in the reply inline, with no
// allocation of their own.
fn fields_reply(fields: FieldsRef<'_>) -> Reply {
    Reply::Array(
        fields
            .iter()
            .map(|f| Reply::Short(CompactBytes::from_slice(f)))
            .collect(),
    )
}

fn entry_reply(id: StreamId, fields: FieldsRef<'_>) -> Reply {
    Reply::Array(vec![id_reply(id), fields_reply(fields)])
}

fn entries_reply<'a>(entries: impl IntoIterator<Item = (StreamId, FieldsRef<'a>)>) -> Reply {
    Reply::Array(
        entries
            .into_iter()
            .map(|(id, f)| entry_reply(id, f))
            .collect(),
    )
}

/// The entries a group read delivered (`None` if none), read from the stream
/// in one range.
fn delivered_reply(s: &Stream, ids: &[StreamId]) -> Option<Reply> {
    let (first, last) = (*ids.first()?, *ids.last()?);
    Some(entries_reply(s.range(first, last, false, None)))
}

fn id_reply(id: StreamId) -> Reply {
    let mut buf = [0u8; 41];
    let len = id.write_to(&mut buf);
    Reply::Short(CompactBytes::from_slice(&buf[..len]))
}

fn opt_int(v: Option<i64>) -> Reply {
    v.map_or(Reply::Nil, Reply::Int)
}

/// XREAD/XREADGROUP's reply: per stream, its key and entries; a map in RESP3.
fn per_stream_reply(streams: Vec<(Bytes, Reply)>, resp3: bool) -> Reply {
    if resp3 {
        Reply::Map(
            streams
                .into_iter()
                .map(|(k, v)| (Reply::Bulk(k), v))
                .collect(),
        )
    } else {
        Reply::Array(
            streams
                .into_iter()
                .map(|(k, v)| Reply::Array(vec![Reply::Bulk(k), v]))
                .collect(),
        )
    }
}

// ---- XADD / XTRIM -------------------------------------------------------

/// XADD's and XTRIM's options: the trim, NOMKSTREAM, and where the trim's
/// threshold is in the arguments (to log an approximate trim as exact).
struct AddOrTrim {
    trim: Option<Trim>,
    nomkstream: bool,
    threshold_at: usize,
}

/// Reads `[NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]]` as Redis
/// does; for XADD it stops at the first argument that is not an option (the ID).
/// `obey` (the AOF loader) takes a LIMIT without `~` and applies none, as
/// Redis does for a logged trim.
fn parse_add_or_trim(
    a: &mut Args<'_>,
    xadd: bool,
    limits: NodeLimits,
    obey: bool,
) -> Result<AddOrTrim, CommandError> {
    let mut to: Option<TrimTo> = None;
    let mut approx = false;
    let mut limit: Option<u64> = None;
    let mut nomkstream = false;
    let mut threshold_at = 0;
    while let Some(opt) = a.peek() {
        let more = a.remaining() > 1;
        if xadd && opt.as_ref() == b"*" {
            break;
        }
        if is(opt, "MAXLEN") && more {
            a.next_arg();
            // Each MAXLEN/MINID says afresh whether it is approximate.
            approx = a.one_of(&["~", "="]) == Some(0);
            threshold_at = a.position();
            let n = a.int()?;
            if n < 0 {
                return Err(CommandError::err("The MAXLEN argument must be >= 0."));
            }
            if matches!(to, Some(TrimTo::MinId(_))) {
                return Err(CommandError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            to = Some(TrimTo::MaxLen(n as u64));
        } else if is(opt, "MINID") && more {
            a.next_arg();
            approx = a.one_of(&["~", "="]) == Some(0);
            threshold_at = a.position();
            let id = id_arg(a.bytes()?, 0)?;
            if matches!(to, Some(TrimTo::MaxLen(_))) {
                return Err(CommandError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            to = Some(TrimTo::MinId(id));
        } else if xadd && is(opt, "NOMKSTREAM") {
            a.next_arg();
            nomkstream = true;
        } else if is(opt, "LIMIT") && more {
            a.next_arg();
            let n = a.int()?;
            if n < 0 {
                return Err(CommandError::err("The LIMIT argument must be >= 0."));
            }
            limit = Some(n as u64);
        } else if xadd {
            break;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if limit.is_some() && to.is_none() {
        return Err(CommandError::err(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && to.is_none() {
        return Err(CommandError::err(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if obey {
        limit = Some(0);
    } else if limit.is_some() && !approx {
        return Err(CommandError::err(
            "syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    let limit = match limit {
        Some(n) => n,
        None if approx => {
            let n = limits.entries.saturating_mul(100);
            if n == 0 {
                10_000
            } else {
                n.min(1_000_000)
            }
        }
        None => 0,
    };
    Ok(AddOrTrim {
        trim: to.map(|to| Trim { to, approx, limit }),
        nomkstream,
        threshold_at,
    })
}

/// What XADD or XTRIM is logged as, Redis's rewrite of it: an approximate
/// trim (`~`, with or without LIMIT) becomes the exact one that leaves the
/// same entries (`=` and the stream's length, or the first ID it keeps,
/// deleted entries included; LIMIT stays, and the loader ignores it), and an
/// XADD's generated ID (`*`, `ms-*`) is written out. `args[threshold_at]` is
/// the threshold (`args[threshold_at - 1]` the `~` of an approximate trim);
/// `id` is where XADD's ID argument is and the ID it made.
fn logged_add_or_trim(
    args: &[Bytes],
    trim: Option<(usize, &Trim)>,
    id: Option<(usize, StreamId)>,
    s: &Stream,
) -> Vec<Bytes> {
    let mut argv = args.to_vec();
    if let Some((at, trim)) = trim.filter(|(at, t)| t.approx && *at > 0) {
        argv[at - 1] = Bytes::from_static(b"=");
        argv[at] = match trim.to {
            TrimTo::MaxLen(_) => Bytes::from(s.len().to_string()),
            TrimTo::MinId(_) => s.first_stored().to_bytes(),
        };
    }
    if let Some((at, id)) = id {
        argv[at] = id.to_bytes();
    }
    argv
}

fn xadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let limits = node_limits(ctx);
    let mut a = Args::new(args);
    let key = a.key()?;
    let opts = parse_add_or_trim(&mut a, true, limits, ctx.session.replaying)?;
    let id_at = a.position();
    let id_arg = a.bytes()?;
    let add = stream::parse_add_id(id_arg).ok_or_else(invalid_id)?;
    let fields = a.rest();
    if fields.len() < 2 || fields.len() % 2 == 1 {
        return Err(CommandError::WrongArity("xadd".into()));
    }
    if add == AddId::Explicit(StreamId::MIN) {
        return Err(id_error(IdError::Zero));
    }
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let s = if opts.nomkstream {
        match shard.write::<Stream>(key, now)? {
            Some(s) => s,
            None => return Ok(Reply::Nil),
        }
    } else {
        shard.get_or_create::<Stream>(key, now)?
    };
    if s.last_id == StreamId::MAX {
        return Err(id_error(IdError::Exhausted));
    }
    let id = s.next_id(add, now).map_err(id_error)?;
    s.append(id, fields, limits);
    let trimmed = opts.trim.map_or(0, |trim| s.trim(trim));
    let generated = !matches!(add, AddId::Explicit(_));
    let approx = opts.trim.is_some_and(|t| t.approx);
    if generated || approx {
        let s = &*s;
        ctx.propagate(|| {
            logged_add_or_trim(
                args,
                opts.trim.as_ref().map(|t| (opts.threshold_at, t)),
                generated.then_some((id_at, id)),
                s,
            )
        });
    }
    drop(shard);
    ctx.shared.blocked.signal(ctx.session.db, key);
    ctx.notify(notify::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    Ok(id_reply(id))
}

fn xtrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let limits = node_limits(ctx);
    let mut a = Args::new(args);
    let key = a.key()?;
    let opts = parse_add_or_trim(&mut a, false, limits, ctx.session.replaying)?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    // A trim that removes nothing is no write (Redis logs nothing for it);
    // the key counts as used either way.
    let _ = shard.get(key, now);
    let (Some(s), Some(trim)) = (shard.write_quiet::<Stream>(key, now)?, opts.trim) else {
        return Ok(Reply::Int(0));
    };
    let trimmed = s.trim(trim);
    if trimmed > 0 && trim.approx {
        let s = &*s;
        ctx.propagate(|| logged_add_or_trim(args, Some((opts.threshold_at, &trim)), None, s));
    }
    if trimmed > 0 {
        shard.touch(key);
    }
    drop(shard);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    Ok(Reply::Int(trimmed as i64))
}

// ---- reading ------------------------------------------------------------

fn xlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let key = &args[1];
    let mut shard = ctx.db().lock(key);
    let len = shard.read::<Stream>(key, now)?.map_or(0, |s| s.len());
    Ok(Reply::Int(len as i64))
}

fn range(ctx: &mut Ctx<'_>, args: &[Bytes], rev: bool) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let (first, second) = (a.bytes()?, a.bytes()?);
    let (start, end) = if rev {
        (start_arg(second)?, end_arg(first)?)
    } else {
        (start_arg(first)?, end_arg(second)?)
    };
    let mut count = None;
    if !a.is_done() {
        if !a.keyword("COUNT") {
            return Err(CommandError::Syntax);
        }
        let n = a.int()?;
        a.finish()?;
        if n <= 0 {
            return Ok(Reply::NilArray);
        }
        count = Some(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(s) = shard.read::<Stream>(key, now)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    Ok(entries_reply(s.range(start, end, rev, count)))
}

fn xrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    range(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    range(ctx, args, true)
}

fn xdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let ids = a
        .rest()
        .iter()
        .map(|i| id_arg(i, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(s) = shard.write::<Stream>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    let deleted = ids.into_iter().filter(|id| s.delete(*id)).count();
    drop(shard);
    if deleted > 0 {
        ctx.notify(notify::STREAM, "xdel", key);
    }
    Ok(Reply::Int(deleted as i64))
}

/// XREAD/XREADGROUP's options, common part.
struct ReadArgs<'a> {
    count: Option<usize>,
    block: Option<u64>,
    noack: bool,
    group: Option<(&'a Bytes, &'a Bytes)>,
    keys: &'a [Bytes],
    ids: &'a [Bytes],
}

/// Reads XREAD's or XREADGROUP's options; `in_script` refuses BLOCK, as Redis
/// does for a script (inside MULTI it is accepted and never waits).
fn parse_read<'a>(
    args: &'a [Bytes],
    xreadgroup: bool,
    in_script: bool,
) -> Result<ReadArgs<'a>, CommandError> {
    let mut a = Args::new(args);
    let mut r = ReadArgs {
        count: None,
        block: None,
        noack: false,
        group: None,
        keys: &[],
        ids: &[],
    };
    while let Some(opt) = a.next_arg() {
        let more = a.remaining();
        if is(opt, "BLOCK") && more > 0 {
            if in_script {
                return Err(CommandError::err(format!(
                    "{} command is not allowed with BLOCK option from scripts",
                    String::from_utf8_lossy(&args[0])
                )));
            }
            let ms = crate::protocol::parse_i64(a.bytes()?)
                .ok_or_else(|| CommandError::err("timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(CommandError::err("timeout is negative"));
            }
            r.block = Some(ms as u64);
        } else if is(opt, "COUNT") && more > 0 {
            let n = a.int()?;
            r.count = (n > 0).then_some(n as usize);
        } else if is(opt, "STREAMS") && more > 0 {
            let rest = a.rest();
            if rest.len() % 2 == 1 {
                let cmd = if xreadgroup { "XREADGROUP" } else { "XREAD" };
                return Err(CommandError::err(format!(
                    "Unbalanced {cmd} list of streams: for each stream key an ID or '$' must be specified."
                )));
            }
            let half = rest.len() / 2;
            r.keys = &rest[..half];
            r.ids = &rest[half..];
            break;
        } else if is(opt, "GROUP") && more > 1 {
            if !xreadgroup {
                return Err(CommandError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            let g = a.bytes()?;
            let c = a.bytes()?;
            r.group = Some((g, c));
        } else if is(opt, "NOACK") && xreadgroup {
            r.noack = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if r.keys.is_empty() {
        return Err(CommandError::Syntax);
    }
    if xreadgroup && r.group.is_none() {
        return Err(CommandError::err("Missing GROUP option for XREADGROUP"));
    }
    Ok(r)
}

/// Where a read starts in one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadFrom {
    /// Entries after this ID.
    After(StreamId),
    /// `>`: the group's new entries.
    New,
}

/// The serve step of a blocked XREAD or XREADGROUP: what each key is read
/// after, and the group if any.
#[derive(Debug)]
struct StreamRead {
    from: HashMap<Bytes, StreamId>,
    count: Option<usize>,
    group: Option<(Bytes, Bytes, bool)>,
    resp3: bool,
}

impl Serve for StreamRead {
    fn wants(&self) -> &'static str {
        "stream"
    }

    fn reads_only(&self) -> bool {
        true
    }

    fn serve(&self, shards: &mut ShardSet<'_>, key: &Bytes, now: u64) -> Option<Reply> {
        let logging = shards.shard(key).is_logging();
        let s = match shards.shard(key).write::<Stream>(key, now) {
            Ok(Some(s)) => s,
            // A group reader learns that its stream is gone, as in Redis 7.
            _ if self.group.is_some() => {
                return Some(Reply::Error(CommandError::raw(
                    "UNBLOCKED the stream key no longer exists",
                )))
            }
            _ => return None,
        };
        if let Some((group, _, _)) = &self.group {
            if !s.groups.contains_key(group) {
                return Some(Reply::Error(CommandError::raw(
                    "NOGROUP the consumer group this client was blocked on no longer exists",
                )));
            }
        }
        let entries = match &self.group {
            None => {
                let after = self.from.get(key)?.next()?;
                let got = s.range(after, StreamId::MAX, false, self.count);
                if got.is_empty() {
                    return None;
                }
                entries_reply(got)
            }
            Some((group, consumer, noack)) => {
                let new_consumer = !has_consumer(s, group, consumer);
                let before = position(s, group);
                let got = s.read_new(group, consumer, self.count, *noack, now).ok()?;
                let reply = delivered_reply(s, &got)?;
                let mut log = GroupLog::new(logging, key, group);
                log.read(s, consumer, &got, *noack, false, new_consumer, before);
                let shard = shards.shard(key);
                log.publish(shard);
                if new_consumer {
                    shard.log_event(notify::STREAM, "xgroup-createconsumer", key);
                }
                reply
            }
        };
        Some(per_stream_reply(vec![(key.clone(), entries)], self.resp3))
    }

    fn undo(&self, _shard: &mut Shard, _key: &Bytes, _reply: Reply, _now: u64) {
        // A read takes nothing from the stream; a group's delivery stays
        // pending for the consumer, as in Redis when the client is gone.
    }
}

fn xread(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let r = parse_read(args, false, ctx.mode == CallMode::Script)?;
    let now = ctx.now;
    let mut from = Vec::with_capacity(r.keys.len());
    for id in r.ids {
        if id.as_ref() == b">" {
            return Err(CommandError::err("The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
        }
        from.push(if id.as_ref() == b"$" {
            None
        } else {
            Some(id_arg(id, 0)?)
        });
    }
    let resp3 = ctx.session.resp3;
    let mut shards = ctx.db().lock_keys(r.keys);
    let mut out = Vec::new();
    let mut resolved = HashMap::new();
    for (key, from) in r.keys.iter().zip(from) {
        let shard = shards.shard(key);
        let s = shard.read::<Stream>(key, now)?;
        let after = match (from, s) {
            (Some(id), _) => id,
            (None, Some(s)) => s.last_id,
            (None, None) => StreamId::MIN,
        };
        resolved.entry(key.clone()).or_insert(after);
        let Some(s) = s else { continue };
        let Some(start) = after.next() else { continue };
        let got = s.range(start, StreamId::MAX, false, r.count);
        if !got.is_empty() {
            out.push((key.clone(), entries_reply(got)));
        }
    }
    if !out.is_empty() {
        return Ok(per_stream_reply(out, resp3));
    }
    let Some(timeout) = r.block else {
        return Ok(Reply::NilArray);
    };
    let serve = StreamRead {
        from: resolved,
        count: r.count,
        group: None,
        resp3,
    };
    drop(shards);
    block_on_keys(ctx, r.keys, timeout, Box::new(serve), Reply::NilArray)
}

fn xreadgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let r = parse_read(args, true, ctx.mode == CallMode::Script)?;
    let Some((group, consumer)) = r.group else {
        return Err(CommandError::Syntax);
    };
    let mut from = Vec::with_capacity(r.keys.len());
    for id in r.ids {
        from.push(match id.as_ref() {
            b">" => ReadFrom::New,
            b"$" => return Err(CommandError::err("The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.")),
            _ => ReadFrom::After(id_arg(id, 0)?),
        });
    }
    let now = ctx.now;
    let resp3 = ctx.session.resp3;
    let mut shards = ctx.db().lock_keys(r.keys);
    // Every stream and group must exist before anything is read.
    for key in r.keys {
        let s = shards.shard(key).read::<Stream>(key, now)?;
        if !s.is_some_and(|s| s.groups.contains_key(group)) {
            return Err(CommandError::raw(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(group)
            )));
        }
    }
    let mut out = Vec::new();
    let mut history = false;
    for (key, from) in r.keys.iter().zip(from) {
        let shard = shards.shard(key);
        let mut log = GroupLog::new(shard.is_logging(), key, group);
        let Some(s) = shard.write::<Stream>(key, now)? else {
            continue;
        };
        let new_consumer = !has_consumer(s, group, consumer);
        let before = position(s, group);
        let served = match from {
            ReadFrom::New => {
                let got = s
                    .read_new(group, consumer, r.count, r.noack, now)
                    .map_err(|_| nogroup(key, group))?;
                if let Some(entries) = delivered_reply(s, &got) {
                    out.push((key.clone(), entries));
                }
                let served = !got.is_empty();
                let created = served && new_consumer;
                log.read(s, consumer, &got, r.noack, false, created, before);
                served
            }
            ReadFrom::After(after) => {
                history = true;
                let (reply, again) = read_history(s, group, consumer, after, r.count, now);
                out.push((key.clone(), reply));
                log.read(s, consumer, &again, false, true, new_consumer, before);
                true
            }
        };
        log.publish(shard);
        // Redis makes (and announces) the consumer when it serves it.
        if served && new_consumer {
            shard.log_event(notify::STREAM, "xgroup-createconsumer", key);
        }
    }
    if !out.is_empty() || history {
        return Ok(per_stream_reply(out, resp3));
    }
    let Some(timeout) = r.block else {
        return Ok(Reply::NilArray);
    };
    let serve = StreamRead {
        from: HashMap::new(),
        count: r.count,
        group: Some((group.clone(), consumer.clone(), r.noack)),
        resp3,
    };
    drop(shards);
    block_on_keys(ctx, r.keys, timeout, Box::new(serve), Reply::NilArray)
}

/// Whether group `group` of `s` has consumer `consumer`.
fn has_consumer(s: &Stream, group: &[u8], consumer: &[u8]) -> bool {
    s.groups
        .get(group)
        .is_some_and(|g| g.consumers.contains_key(consumer))
}

/// What a consumer group command is logged as for the append-only file,
/// collected as it goes (nothing while the file is off), in Redis's forms
/// (`t_stream.c`'s `streamPropagateXCLAIM`, `streamPropagateGroupID`,
/// `streamPropagateConsumerCreation`): the command itself is never logged,
/// since its effect depends on the time it runs.
struct GroupLog<'k> {
    key: &'k Bytes,
    group: &'k Bytes,
    records: Option<Vec<Vec<Bytes>>>,
}

impl<'k> GroupLog<'k> {
    fn new(on: bool, key: &'k Bytes, group: &'k Bytes) -> Self {
        GroupLog {
            key,
            group,
            records: on.then(Vec::new),
        }
    }

    /// Pending entry `id` as it now is (or was, before an entry deleted from
    /// the stream took it out): `XCLAIM key group consumer 0 id TIME <ms>
    /// RETRYCOUNT <n> FORCE JUSTID LASTID <last>`, which replays its owner,
    /// delivery time and count exactly, or drops it if the entry is gone.
    fn claim(&mut self, id: StreamId, p: &stream::Pending, last: StreamId) {
        let Some(records) = &mut self.records else {
            return;
        };
        records.push(vec![
            Bytes::from_static(b"XCLAIM"),
            self.key.clone(),
            self.group.clone(),
            p.consumer.clone(),
            Bytes::from_static(b"0"),
            id.to_bytes(),
            Bytes::from_static(b"TIME"),
            Bytes::from(p.delivered.to_string()),
            Bytes::from_static(b"RETRYCOUNT"),
            Bytes::from(p.count.to_string()),
            Bytes::from_static(b"FORCE"),
            Bytes::from_static(b"JUSTID"),
            Bytes::from_static(b"LASTID"),
            last.to_bytes(),
        ]);
    }

    /// The group's last delivered ID and read counter:
    /// `XGROUP SETID key group <id> ENTRIESREAD <n>` (-1: unknown).
    fn set_id(&mut self, g: &stream::Group) {
        let Some(records) = &mut self.records else {
            return;
        };
        records.push(vec![
            Bytes::from_static(b"XGROUP"),
            Bytes::from_static(b"SETID"),
            self.key.clone(),
            self.group.clone(),
            g.last_id.to_bytes(),
            Bytes::from_static(b"ENTRIESREAD"),
            Bytes::from(g.entries_read.unwrap_or(-1).to_string()),
        ]);
    }

    /// A consumer made with nothing claimed for it (an XCLAIM makes its
    /// consumer on replay): `XGROUP CREATECONSUMER key group consumer`.
    fn create_consumer(&mut self, consumer: &Bytes) {
        let Some(records) = &mut self.records else {
            return;
        };
        records.push(vec![
            Bytes::from_static(b"XGROUP"),
            Bytes::from_static(b"CREATECONSUMER"),
            self.key.clone(),
            self.group.clone(),
            consumer.clone(),
        ]);
    }

    /// A group read's records: the consumer if it was `created` and gets no
    /// XCLAIM (NOACK, or a history read of nothing), an XCLAIM per entry
    /// `delivered` (not with NOACK; LASTID the entry's own ID for new
    /// entries, as Redis advances the group entry by entry), and the group's
    /// position if it moved from `before` (Redis logs it with NOACK only; its
    /// read counter would otherwise not replay).
    #[allow(clippy::too_many_arguments)]
    fn read(
        &mut self,
        s: &Stream,
        consumer: &Bytes,
        delivered: &[StreamId],
        noack: bool,
        history: bool,
        created: bool,
        before: (StreamId, Option<i64>),
    ) {
        if self.records.is_none() {
            return;
        }
        let Some(g) = s.groups.get(self.group.as_ref()) else {
            return;
        };
        if created && (noack || delivered.is_empty()) {
            self.create_consumer(consumer);
        }
        if !noack {
            for id in delivered {
                if let Some(p) = g.pel.get(id) {
                    self.claim(*id, p, if history { g.last_id } else { *id });
                }
            }
        }
        if (g.last_id, g.entries_read) != before {
            self.set_id(g);
        }
    }

    /// Logs what was collected, in `shard` (the stream's).
    fn publish(self, shard: &Shard) {
        for argv in self.records.into_iter().flatten() {
            shard.propagate(|| argv);
        }
    }
}

/// A group's position: its last delivered ID and read counter.
fn position(s: &Stream, group: &[u8]) -> (StreamId, Option<i64>) {
    s.groups
        .get(group)
        .map_or((StreamId::MIN, None), |g| (g.last_id, g.entries_read))
}

/// A consumer's pending entries after `after`: each delivered once more; an
/// entry deleted from the stream comes back as its ID and a nil. Also the
/// IDs delivered again.
fn read_history(
    s: &mut Stream,
    group: &[u8],
    consumer: &Bytes,
    after: StreamId,
    count: Option<usize>,
    now: u64,
) -> (Reply, Vec<StreamId>) {
    let Some(start) = after.next() else {
        return (Reply::Array(Vec::new()), Vec::new());
    };
    let mut ids = Vec::new();
    if let Some(g) = s.groups.get_mut(group) {
        let (c, _) = g.consumer(consumer, now);
        c.seen = now;
        ids.extend(
            c.pel
                .range(start..)
                .take(count.unwrap_or(usize::MAX))
                .copied(),
        );
    }
    let mut out = Vec::with_capacity(ids.len());
    let mut again = Vec::new();
    for id in ids {
        match s.get(id) {
            Some(fields) => {
                out.push(entry_reply(id, fields));
                if let Some(p) = s.groups.get_mut(group).and_then(|g| g.pel.get_mut(&id)) {
                    p.delivered = now;
                    p.count = p.count.saturating_add(1);
                    again.push(id);
                }
            }
            None => out.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
        }
    }
    (Reply::Array(out), again)
}

// ---- XSETID -------------------------------------------------------------

fn xsetid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let id = id_arg(a.bytes()?, 0)?;
    let mut added = None;
    let mut max_deleted = None;
    while !a.is_done() {
        if a.remaining() >= 2 && a.keyword("ENTRIESADDED") {
            let n = a.int()?;
            if n < 0 {
                return Err(CommandError::err("entries_added must be positive"));
            }
            added = Some(n as u64);
        } else if a.remaining() >= 2 && a.keyword("MAXDELETEDID") {
            let m = id_arg(a.bytes()?, 0)?;
            if id < m {
                return Err(CommandError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_deleted = Some(m);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(s) = shard.write::<Stream>(key, now)? else {
        return Err(CommandError::NoSuchKey);
    };
    if let Some(n) = added {
        if s.len() > n {
            return Err(CommandError::err(
                "The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    if id < s.max_deleted && max_deleted.is_none() {
        return Err(CommandError::err(
            "The ID specified in XSETID is smaller than current max_deleted_entry_id",
        ));
    }
    // Below the last entry the IDs would no longer grow; an empty stream may
    // move its last ID down.
    if s.edges().1.is_some_and(|(top, _)| id < top) {
        return Err(CommandError::err(
            "The ID specified in XSETID is smaller than the target stream top item",
        ));
    }
    s.set_last_id(id);
    if let Some(n) = added {
        s.entries_added = n;
    }
    if let Some(m) = max_deleted {
        s.max_deleted = m;
    }
    drop(shard);
    ctx.notify(notify::STREAM, "xsetid", key);
    Ok(Reply::Simple("OK"))
}

// ---- XGROUP -------------------------------------------------------------

fn xgroup_create(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(&args[1..]);
    let key = a.key()?;
    let group = a.bytes()?;
    let id_arg_raw = a.bytes()?;
    let mut mkstream = false;
    let mut entries_read = None;
    while !a.is_done() {
        if a.keyword("MKSTREAM") {
            mkstream = true;
        } else if a.remaining() >= 2 && a.keyword("ENTRIESREAD") {
            entries_read = Some(entries_read_arg(a.bytes()?)?);
        } else {
            return Err(sub_syntax(&args[1]));
        }
    }
    let explicit = if id_arg_raw.as_ref() == b"$" {
        None
    } else {
        Some(id_arg(id_arg_raw, 0)?)
    };
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let s = if mkstream {
        shard.get_or_create::<Stream>(key, now)?
    } else {
        match shard.write::<Stream>(key, now)? {
            Some(s) => s,
            None => return Err(requires_key()),
        }
    };
    let id = explicit.unwrap_or(s.last_id);
    match s.create_group(group, id, entries_read.flatten()) {
        Ok(()) => {
            drop(shard);
            ctx.notify(notify::STREAM, "xgroup-create", key);
            Ok(Reply::Simple("OK"))
        }
        Err(_) => Err(CommandError::raw(
            "BUSYGROUP Consumer Group name already exists",
        )),
    }
}

fn entries_read_arg(arg: &[u8]) -> Result<Option<i64>, CommandError> {
    let n = int_arg(arg)?;
    if n < -1 {
        return Err(CommandError::err(
            "value for ENTRIESREAD must be positive or -1",
        ));
    }
    Ok((n >= 0).then_some(n))
}

/// The error for a subcommand's bad arguments, naming it as the client typed it.
fn sub_syntax(sub: &[u8]) -> CommandError {
    CommandError::subcommand_syntax("xgroup", sub)
}

fn requires_key() -> CommandError {
    CommandError::err("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.")
}

/// Runs `f` on group `args[3]` of stream `args[2]` (errors as XGROUP gives them).
fn with_group(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    f: impl FnOnce(&mut Stream, &Bytes) -> CommandResult,
) -> CommandResult {
    let (key, group) = (&args[2], &args[3]);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(s) = shard.write::<Stream>(key, now)? else {
        return Err(requires_key());
    };
    if !s.groups.contains_key(group) {
        return Err(nogroup_for_key(key, group));
    }
    f(s, group)
}

fn xgroup_createconsumer(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let consumer = args[4].clone();
    let reply = with_group(ctx, args, |s, group| {
        let created = s
            .groups
            .get_mut(group)
            .is_some_and(|g| g.consumer(&consumer, now).1);
        Ok(Reply::Int(i64::from(created)))
    })?;
    if reply == Reply::Int(1) {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", &args[2]);
    }
    Ok(reply)
}

fn xgroup_delconsumer(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let consumer = args[4].clone();
    let mut existed = false;
    let reply = with_group(ctx, args, |s, group| {
        let pending = s
            .groups
            .get_mut(group)
            .and_then(|g| g.delete_consumer(&consumer));
        existed = pending.is_some();
        Ok(Reply::Int(pending.unwrap_or(0) as i64))
    })?;
    if existed {
        ctx.notify(notify::STREAM, "xgroup-delconsumer", &args[2]);
    }
    Ok(reply)
}

fn xgroup_destroy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (key, group) = (&args[2], &args[3]);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(s) = shard.write::<Stream>(key, now)? else {
        return Err(requires_key());
    };
    let gone = s.groups.remove(group).is_some();
    drop(shard);
    if gone {
        // Consumers blocked on the group learn it is gone.
        ctx.shared.blocked.signal(ctx.session.db, key);
        ctx.notify(notify::STREAM, "xgroup-destroy", key);
    }
    Ok(Reply::Int(i64::from(gone)))
}

fn xgroup_setid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(&args[1..]);
    let (_key, _group) = (a.key()?, a.bytes()?);
    let raw = a.bytes()?;
    let mut entries_read = None;
    if !a.is_done() {
        if a.remaining() == 2 && a.keyword("ENTRIESREAD") {
            entries_read = Some(entries_read_arg(a.bytes()?)?);
        } else {
            return Err(sub_syntax(&args[1]));
        }
    }
    let explicit = if raw.as_ref() == b"$" {
        None
    } else {
        Some(id_arg(raw, 0)?)
    };
    with_group(ctx, args, |s, group| {
        let id = explicit.unwrap_or(s.last_id);
        if let Some(g) = s.groups.get_mut(group) {
            g.last_id = id;
            g.entries_read = entries_read.flatten();
        }
        Ok(Reply::Simple("OK"))
    })?;
    ctx.notify(notify::STREAM, "xgroup-setid", &args[2]);
    Ok(Reply::Simple("OK"))
}

fn xgroup_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply(
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    ))
}

// ---- XACK / XPENDING ------------------------------------------------------

fn xack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let (key, group) = (a.key()?, a.bytes()?);
    let ids = a
        .rest()
        .iter()
        .map(|i| id_arg(i, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(g) = shard
        .write::<Stream>(key, now)?
        .and_then(|s| s.groups.get_mut(group))
    else {
        return Ok(Reply::Int(0));
    };
    Ok(Reply::Int(
        ids.into_iter().filter(|id| g.ack(*id)).count() as i64
    ))
}

fn xpending(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[1];
    let group = &args[2];
    let argc = args.len();
    if argc != 3 && argc < 6 {
        return Err(CommandError::Syntax);
    }
    let mut extended = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0i64;
        if is(&args[3], "IDLE") {
            min_idle = int_arg(&args[4])?;
            if argc < 8 {
                return Err(CommandError::Syntax);
            }
            at += 2;
        }
        let count = int_arg(&args[at + 2])?.max(0) as usize;
        let start = start_arg(&args[at])?;
        let end = end_arg(&args[at + 1])?;
        let consumer = args.get(at + 3);
        extended = Some((min_idle, start, end, count, consumer));
    }
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(g) = shard
        .read::<Stream>(key, now)?
        .and_then(|s| s.groups.get(group))
    else {
        return Err(nogroup(key, group));
    };
    let Some((min_idle, start, end, count, consumer)) = extended else {
        if g.pel.is_empty() {
            return Ok(Reply::Array(vec![
                Reply::Int(0),
                Reply::Nil,
                Reply::Nil,
                Reply::NilArray,
            ]));
        }
        let first = g.pel.keys().next().copied().unwrap_or_default();
        let last = g.pel.keys().next_back().copied().unwrap_or_default();
        let per_consumer = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(name, c)| {
                Reply::Array(vec![
                    Reply::Bulk(name.clone()),
                    Reply::Bulk(Bytes::from(c.pel.len().to_string())),
                ])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            id_reply(first),
            id_reply(last),
            Reply::Array(per_consumer),
        ]));
    };
    if start > end || count == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let idle = |delivered: u64| now.saturating_sub(delivered) as i64;
    let mut out = Vec::new();
    let row = |id: StreamId, p: &stream::Pending| {
        Reply::Array(vec![
            id_reply(id),
            Reply::Bulk(p.consumer.clone()),
            Reply::Int(idle(p.delivered)),
            Reply::Int(p.count as i64),
        ])
    };
    match consumer {
        Some(name) => {
            let Some(c) = g.consumers.get(name) else {
                return Ok(Reply::Array(Vec::new()));
            };
            for id in c.pel.range(start..=end) {
                if out.len() >= count {
                    break;
                }
                if let Some(p) = g.pel.get(id) {
                    if idle(p.delivered) >= min_idle {
                        out.push(row(*id, p));
                    }
                }
            }
        }
        None => {
            for (id, p) in g.pel.range(start..=end) {
                if out.len() >= count {
                    break;
                }
                if idle(p.delivered) >= min_idle {
                    out.push(row(*id, p));
                }
            }
        }
    }
    Ok(Reply::Array(out))
}

// ---- XCLAIM / XAUTOCLAIM --------------------------------------------------

fn xclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let logging = shard.is_logging();
    let Some(s) = shard.write::<Stream>(key, now)? else {
        return Err(nogroup(key, group));
    };
    if !s.groups.contains_key(group) {
        return Err(nogroup(key, group));
    }
    let min_idle = crate::protocol::parse_i64(&args[4])
        .ok_or_else(|| CommandError::err("Invalid min-idle-time argument for XCLAIM"))?
        .max(0);
    let mut j = 5;
    let mut ids = Vec::new();
    while let Some(id) = args.get(j).and_then(|a| stream::parse_id(a, 0)) {
        ids.push(id);
        j += 1;
    }
    let (mut force, mut justid) = (false, false);
    let mut delivery: Option<i64> = None;
    let mut retry: Option<i64> = None;
    let mut lastid = StreamId::MIN;
    let num = |arg: &[u8], what: &str| {
        crate::protocol::parse_i64(arg)
            .ok_or_else(|| CommandError::err(format!("Invalid {what} option argument for XCLAIM")))
    };
    while let Some(opt) = args.get(j) {
        let next = args.get(j + 1);
        if is(opt, "FORCE") {
            force = true;
        } else if is(opt, "JUSTID") {
            justid = true;
        } else if let (true, Some(v)) = (is(opt, "IDLE"), next) {
            delivery = Some((now as i64).wrapping_sub(num(v, "IDLE")?));
            j += 1;
        } else if let (true, Some(v)) = (is(opt, "TIME"), next) {
            delivery = Some(num(v, "TIME")?);
            j += 1;
        } else if let (true, Some(v)) = (is(opt, "RETRYCOUNT"), next) {
            retry = Some(num(v, "RETRYCOUNT")?);
            j += 1;
        } else if let (true, Some(v)) = (is(opt, "LASTID"), next) {
            lastid = id_arg(v, 0)?;
            j += 1;
        } else {
            return Err(CommandError::err(format!(
                "Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
        j += 1;
    }
    let delivered = match delivery {
        Some(t) if t >= 0 && (t as u64) <= now => t as u64,
        _ => now,
    };
    let Some(g) = s.groups.get_mut(group) else {
        return Err(nogroup(key, group));
    };
    // The group's position is logged if LASTID moved it and no XCLAIM
    // carries it.
    let mut moved = lastid > g.last_id;
    if moved {
        g.last_id = lastid;
    }
    let mut log = GroupLog::new(logging, key, group);
    let mut claimed = Vec::new();
    let mut new_consumer = false;
    for id in ids {
        let exists = s.contains(id);
        let Some(g) = s.groups.get_mut(group) else {
            break;
        };
        if !exists {
            // An entry deleted from the stream leaves the PEL, logged as
            // Redis does: the XCLAIM of what it was (replayed, it finds
            // the entry gone too).
            if let Some(p) = g.pel.get(&id) {
                log.claim(id, p, g.last_id);
                moved = false;
            }
            g.ack(id);
            continue;
        }
        let pending = g.pel.get(&id).cloned();
        let count = match pending {
            None if !force => continue,
            None => 0,
            Some(p) => {
                if min_idle > 0 && (now.saturating_sub(p.delivered) as i64) < min_idle {
                    continue;
                }
                p.count
            }
        };
        let count = match retry {
            Some(r) if r >= 0 => r as u64,
            _ if !justid => count.saturating_add(1),
            _ => count,
        };
        // The consumer is made by its first claim, as in Redis.
        let (c, created) = g.consumer(consumer, now);
        new_consumer |= created;
        c.seen = now;
        c.active = Some(now);
        g.assign(id, consumer, delivered, count);
        if let Some(p) = g.pel.get(&id) {
            log.claim(id, p, g.last_id);
            moved = false;
        }
        claimed.push(id);
    }
    if moved {
        if let Some(g) = s.groups.get(group) {
            log.set_id(g);
        }
    }
    let reply = Reply::Array(
        claimed
            .into_iter()
            .map(|id| {
                if justid {
                    id_reply(id)
                } else {
                    entry_reply(id, s.get(id).unwrap_or_default())
                }
            })
            .collect(),
    );
    log.publish(&shard);
    if new_consumer {
        shard.log_event(notify::STREAM, "xgroup-createconsumer", key);
    }
    Ok(reply)
}

fn xautoclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let mut log = GroupLog::new(shard.is_logging(), key, group);
    let s = shard.write::<Stream>(key, now)?;
    let min_idle = crate::protocol::parse_i64(&args[4])
        .ok_or_else(|| CommandError::err("Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let start = start_arg(&args[5])?;
    let mut count = 100i64;
    let mut justid = false;
    let mut j = 6;
    while let Some(opt) = args.get(j) {
        if let (true, Some(v)) = (is(opt, "COUNT"), args.get(j + 1)) {
            count = crate::protocol::parse_i64(v)
                .filter(|n| (1..=i64::MAX / 16).contains(n))
                .ok_or_else(|| CommandError::err("COUNT must be > 0"))?;
            j += 1;
        } else if is(opt, "JUSTID") {
            justid = true;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    let Some(s) = s.filter(|s| s.groups.contains_key(group)) else {
        return Err(nogroup(key, group));
    };
    let mut attempts = count.saturating_mul(10);
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut next = StreamId::MIN;
    let candidates: Vec<StreamId> = match s.groups.get(group) {
        Some(g) => g.pel.range(start..).map(|(id, _)| *id).collect(),
        None => Vec::new(),
    };
    let mut it = candidates.into_iter().peekable();
    // Redis makes (and announces) the consumer at its first claim, and
    // only then is it seen.
    let new_consumer = !has_consumer(s, group, consumer);
    while attempts > 0 && count > 0 {
        let Some(id) = it.next() else { break };
        attempts -= 1;
        let exists = s.contains(id);
        let Some(g) = s.groups.get_mut(group) else {
            break;
        };
        if !exists {
            // Logged as Redis does: the XCLAIM of what it was, which finds
            // the entry gone on replay too. It counts against COUNT.
            if let Some(p) = g.pel.get(&id) {
                log.claim(id, p, g.last_id);
            }
            g.ack(id);
            deleted.push(id);
            count -= 1;
            continue;
        }
        let Some(p) = g.pel.get(&id).cloned() else {
            continue;
        };
        if min_idle > 0 && (now.saturating_sub(p.delivered) as i64) < min_idle {
            continue;
        }
        let times = if justid {
            p.count
        } else {
            p.count.saturating_add(1)
        };
        let (c, _) = g.consumer(consumer, now);
        c.seen = now;
        c.active = Some(now);
        g.assign(id, consumer, now, times);
        if let Some(p) = g.pel.get(&id) {
            log.claim(id, p, g.last_id);
        }
        claimed.push(id);
        count -= 1;
    }
    if let Some(id) = it.next() {
        next = id;
    }
    let claimed_any = !claimed.is_empty();
    let entries = claimed
        .into_iter()
        .map(|id| {
            if justid {
                id_reply(id)
            } else {
                entry_reply(id, s.get(id).unwrap_or_default())
            }
        })
        .collect();
    log.publish(&shard);
    // Redis makes the consumer only when it claims something.
    if new_consumer && claimed_any {
        shard.log_event(notify::STREAM, "xgroup-createconsumer", key);
    }
    Ok(Reply::Array(vec![
        id_reply(next),
        Reply::Array(entries),
        Reply::Array(deleted.into_iter().map(id_reply).collect()),
    ]))
}

// ---- XINFO --------------------------------------------------------------

fn map(pairs: Vec<(&'static str, Reply)>) -> Reply {
    Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Reply::Bulk(Bytes::from_static(k.as_bytes())), v))
            .collect(),
    )
}

fn edge_reply(e: Option<stream::EntryRef<'_>>) -> Reply {
    e.map_or(Reply::Nil, |(id, f)| entry_reply(id, f))
}

fn xinfo_stream(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[2];
    let mut full = None;
    match args.len() {
        3 => {}
        4 if is(&args[3], "FULL") => full = Some(10),
        6 if is(&args[3], "FULL") && is(&args[4], "COUNT") => {
            let n = int_arg(&args[5])?;
            full = Some(if n < 0 { 10 } else { n });
        }
        _ => return Err(CommandError::subcommand_syntax("xinfo", &args[1])),
    }
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(s) = shard.read::<Stream>(key, now)? else {
        return Err(CommandError::NoSuchKey);
    };
    let nodes = s.node_count() as i64;
    let mut out = vec![
        ("length", Reply::Int(s.len() as i64)),
        ("radix-tree-keys", Reply::Int(nodes)),
        ("radix-tree-nodes", Reply::Int(s.tree_nodes() as i64)),
        ("last-generated-id", id_reply(s.last_id)),
        ("max-deleted-entry-id", id_reply(s.max_deleted)),
        ("entries-added", Reply::Int(s.entries_added as i64)),
        ("recorded-first-entry-id", id_reply(s.first_id)),
    ];
    let Some(count) = full else {
        let (first, last) = s.edges();
        out.push(("groups", Reply::Int(s.groups.len() as i64)));
        out.push(("first-entry", edge_reply(first)));
        out.push(("last-entry", edge_reply(last)));
        return Ok(map(out));
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    out.push((
        "entries",
        entries_reply(s.range(StreamId::MIN, StreamId::MAX, false, Some(limit))),
    ));
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pel
                .iter()
                .take(limit)
                .map(|(id, p)| {
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::Bulk(p.consumer.clone()),
                        Reply::Int(p.delivered as i64),
                        Reply::Int(p.count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let pel = c
                        .pel
                        .iter()
                        .take(limit)
                        .filter_map(|id| {
                            let p = g.pel.get(id)?;
                            Some(Reply::Array(vec![
                                id_reply(*id),
                                Reply::Int(p.delivered as i64),
                                Reply::Int(p.count as i64),
                            ]))
                        })
                        .collect();
                    map(vec![
                        ("name", Reply::Bulk(cname.clone())),
                        ("seen-time", Reply::Int(c.seen as i64)),
                        ("active-time", Reply::Int(c.active.map_or(-1, |t| t as i64))),
                        ("pel-count", Reply::Int(c.pel.len() as i64)),
                        ("pending", Reply::Array(pel)),
                    ])
                })
                .collect();
            map(vec![
                ("name", Reply::Bulk(name.clone())),
                ("last-delivered-id", id_reply(g.last_id)),
                ("entries-read", opt_int(g.entries_read)),
                ("lag", opt_int(s.lag(g))),
                ("pel-count", Reply::Int(g.pel.len() as i64)),
                ("pending", Reply::Array(pending)),
                ("consumers", Reply::Array(consumers)),
            ])
        })
        .collect();
    out.push(("groups", Reply::Array(groups)));
    Ok(map(out))
}

fn xinfo_groups(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[2];
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(s) = shard.read::<Stream>(key, now)? else {
        return Err(CommandError::NoSuchKey);
    };
    Ok(Reply::Array(
        s.groups
            .iter()
            .map(|(name, g)| {
                map(vec![
                    ("name", Reply::Bulk(name.clone())),
                    ("consumers", Reply::Int(g.consumers.len() as i64)),
                    ("pending", Reply::Int(g.pel.len() as i64)),
                    ("last-delivered-id", id_reply(g.last_id)),
                    ("entries-read", opt_int(g.entries_read)),
                    ("lag", opt_int(s.lag(g))),
                ])
            })
            .collect(),
    ))
}

fn xinfo_consumers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (key, group) = (&args[2], &args[3]);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(s) = shard.read::<Stream>(key, now)? else {
        return Err(CommandError::NoSuchKey);
    };
    let Some(g) = s.groups.get(group) else {
        return Err(nogroup_for_key(key, group));
    };
    Ok(Reply::Array(
        g.consumers
            .iter()
            .map(|(name, c)| {
                map(vec![
                    ("name", Reply::Bulk(name.clone())),
                    ("pending", Reply::Int(c.pel.len() as i64)),
                    ("idle", Reply::Int(now.saturating_sub(c.seen) as i64)),
                    (
                        "inactive",
                        Reply::Int(c.active.map_or(-1, |t| now.saturating_sub(t) as i64)),
                    ),
                ])
            })
            .collect(),
    ))
}

fn xinfo_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply(
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn text(argv: &[Bytes]) -> String {
        let words: Vec<String> = argv
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        words.join(" ")
    }

    const NODES: NodeLimits = NodeLimits {
        entries: 4,
        bytes: 0,
    };

    /// Entries 1-1 .. n-1 in nodes of 4.
    fn stream_of(n: u64) -> Stream {
        let mut s = Stream::default();
        for i in 1..=n {
            s.append(StreamId::new(i, 1), &[b"f", b"v"], NODES);
            s.last_id = StreamId::new(i, 1);
        }
        s
    }

    fn parsed(args: &[Bytes], xadd: bool) -> AddOrTrim {
        let mut a = Args::new(args);
        a.key().unwrap();
        parse_add_or_trim(&mut a, xadd, NODES, false).unwrap()
    }

    #[test]
    fn an_approximate_maxlen_is_logged_as_the_length_left_with_the_generated_id() {
        let args = argv("XADD s MAXLEN ~ 5 LIMIT 100 * f v");
        let opts = parsed(&args, true);
        let trim = opts.trim.unwrap();
        assert_eq!(opts.threshold_at, 4);
        let mut s = stream_of(10);
        s.append(StreamId::new(20, 0), &[b"f", b"v"], NODES);
        assert_eq!(s.trim(trim), 4);
        let logged = logged_add_or_trim(
            &args,
            Some((opts.threshold_at, &trim)),
            Some((7, StreamId::new(20, 0))),
            &s,
        );
        assert_eq!(text(&logged), "XADD s MAXLEN = 7 LIMIT 100 20-0 f v");
    }

    #[test]
    fn an_approximate_minid_is_logged_as_the_first_id_kept_deleted_ones_included() {
        let args = argv("XTRIM s MINID ~ 6-0");
        let opts = parsed(&args, false);
        let trim = opts.trim.unwrap();
        let mut s = stream_of(10);
        // 6-1 is deleted inside the node the trim keeps (5-1 .. 8-1).
        assert!(s.delete(StreamId::new(5, 1)));
        assert_eq!(s.trim(trim), 4);
        let logged = logged_add_or_trim(&args, Some((opts.threshold_at, &trim)), None, &s);
        assert_eq!(text(&logged), "XTRIM s MINID = 5-1");
        // Replayed exactly on the stream as it was, it leaves the same.
        let mut again = stream_of(10);
        assert!(again.delete(StreamId::new(5, 1)));
        let opts = parsed(&logged, false);
        again.trim(opts.trim.unwrap());
        let ids = |s: &Stream| -> Vec<StreamId> {
            s.range(StreamId::MIN, StreamId::MAX, false, None)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        assert_eq!(ids(&again), ids(&s));
    }

    #[test]
    fn the_last_maxlen_given_says_whether_the_trim_is_approximate() {
        let opts = parsed(&argv("XTRIM s MAXLEN ~ 5 MAXLEN 3"), false);
        let trim = opts.trim.unwrap();
        assert!(!trim.approx);
        assert_eq!(trim.to, TrimTo::MaxLen(3));
        assert_eq!(opts.threshold_at, 6);
    }

    #[test]
    fn the_loader_takes_a_limit_beside_an_exact_trim_and_applies_none() {
        let args = argv("XTRIM s MAXLEN = 2 LIMIT 1");
        let mut a = Args::new(&args);
        a.key().unwrap();
        assert!(parse_add_or_trim(&mut a.clone(), false, NODES, false).is_err());
        let trim = parse_add_or_trim(&mut a, false, NODES, true)
            .unwrap()
            .trim
            .unwrap();
        assert_eq!(trim.limit, 0);
        let mut s = stream_of(10);
        assert_eq!(s.trim(trim), 8);
    }

    #[test]
    fn a_group_read_is_logged_as_claims_and_the_group_position() {
        let mut s = stream_of(3);
        let (key, group, consumer) = (
            Bytes::from_static(b"s"),
            Bytes::from_static(b"g"),
            Bytes::from_static(b"c"),
        );
        s.create_group(&group, StreamId::MIN, Some(0)).unwrap();
        let before = position(&s, &group);
        let got = s.read_new(&group, &consumer, Some(2), false, 1234).unwrap();
        let mut log = GroupLog::new(true, &key, &group);
        log.read(&s, &consumer, &got, false, false, true, before);
        let records: Vec<String> = log.records.unwrap().iter().map(|r| text(r)).collect();
        assert_eq!(
            records,
            [
                "XCLAIM s g c 0 1-1 TIME 1234 RETRYCOUNT 1 FORCE JUSTID LASTID 1-1",
                "XCLAIM s g c 0 2-1 TIME 1234 RETRYCOUNT 1 FORCE JUSTID LASTID 2-1",
                "XGROUP SETID s g 2-1 ENTRIESREAD 2",
            ]
        );
        // NOACK: the consumer made, and the position; no claim.
        let before = position(&s, &group);
        let quiet = Bytes::from_static(b"q");
        let got = s.read_new(&group, &quiet, None, true, 1300).unwrap();
        let mut log = GroupLog::new(true, &key, &group);
        log.read(&s, &quiet, &got, true, false, true, before);
        let records: Vec<String> = log.records.unwrap().iter().map(|r| text(r)).collect();
        assert_eq!(
            records,
            [
                "XGROUP CREATECONSUMER s g q",
                "XGROUP SETID s g 3-1 ENTRIESREAD 3",
            ]
        );
        // Off: nothing is built.
        let mut log = GroupLog::new(false, &key, &group);
        log.read(&s, &quiet, &got, true, false, true, (StreamId::MIN, None));
        assert!(log.records.is_none());
    }
}
