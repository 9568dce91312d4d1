//! OBJECT: ENCODING, REFCOUNT, IDLETIME, FREQ and HELP, as Redis answers them.
//! ENCODING names the representation Redis would use for the same value at the
//! thresholds in force (`hash-max-listpack-entries`, ...).

use bytes::Bytes;

use super::{container, flag, CommandResult, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::keyspace::Entry;
use crate::reply::Reply;

const KEY: &[KeySpec] = &[KeySpec::one(2, &["RO"])];
const CATEGORIES: &[&str] = &["@keyspace", "@read", "@slow"];
const NONDETERMINISTIC: &[&str] = &["nondeterministic_output"];

/// The OBJECT row and its subcommands.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("object", -2, 0, container)
    .acl(&["@slow"])
    .doc(
        "generic",
        "2.2.3",
        "A container for object introspection commands",
    )
    .with_subcommands(&[
        about_key(
            "encoding",
            encoding,
            "2.2.3",
            "Inspect the internal encoding of a Redis object",
        ),
        about_key(
            "freq",
            freq,
            "4.0.0",
            "Get the logarithmic access frequency counter of a Redis object",
        ),
        CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
            .acl(&["@keyspace", "@slow"])
            .doc(
                "generic",
                "6.2.0",
                "Show helpful text about the different subcommands",
            ),
        about_key(
            "idletime",
            idletime,
            "2.2.3",
            "Get the time since a Redis object was last accessed",
        ),
        about_key(
            "refcount",
            refcount,
            "2.2.3",
            "Get the number of references to the value of the key",
        ),
    ])];

/// An OBJECT subcommand about one key (`OBJECT <name> <key>`).
const fn about_key(
    name: &'static str,
    handler: super::Handler,
    since: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(name, 3, flag::READONLY, handler)
        .keys(2, 2, 1)
        .acl(CATEGORIES)
        .tips(NONDETERMINISTIC)
        .key_specs(KEY)
        .doc("generic", since, summary)
}

/// Runs `f` on the entry at `args[2]` without counting an access; nil when
/// there is no key, as Redis replies.
fn with_entry(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    f: impl FnOnce(&Entry, &Ctx<'_>) -> CommandResult,
) -> CommandResult {
    let key = &args[2];
    let now = ctx.now;
    let db = ctx.db();
    let mut shard = db.lock(key);
    match shard.peek(key, now) {
        Some(entry) => f(entry, ctx),
        None => Ok(Reply::Nil),
    }
}

fn encoding(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    with_entry(ctx, args, |e, ctx| {
        let name = e.value.encoding(&ctx.shared.encodings);
        Ok(Reply::bulk_str(name))
    })
}

/// Redis shares the integers 0..9999 between keys (refcount `INT_MAX`);
/// every other value has one reference.
fn refcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    with_entry(ctx, args, |e, _| {
        let shared = e.value.shared_integer();
        Ok(Reply::Int(if shared { i64::from(i32::MAX) } else { 1 }))
    })
}

/// Seconds since the last access; under an LFU policy the time is not
/// tracked (Redis's error).
fn idletime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    with_entry(ctx, args, |e, _| {
        if crate::memory::lfu() {
            return Err(CommandError::err(
                "An LFU maxmemory policy is selected, idle time not tracked. \
                 Please note that when switching between policies at runtime LRU and LFU \
                 data will take some time to adjust.",
            ));
        }
        Ok(Reply::Int(e.idle_seconds(now).min(i64::MAX as u64) as i64))
    })
}

/// The access counter under an LFU policy (decayed to now); otherwise
/// Redis's error: the frequency is not tracked.
fn freq(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    with_entry(ctx, args, |e, _| {
        if !crate::memory::lfu() {
            return Err(CommandError::err(
                "An LFU maxmemory policy is not selected, access frequency not tracked. \
                 Please note that when switching between policies at runtime LRU and LFU \
                 data will take some time to adjust.",
            ));
        }
        Ok(Reply::Int(i64::from(crate::memory::lfu_counter(
            e.access_field(),
            now,
        ))))
    })
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply(
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    ))
}
