//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, SHUTDOWN, and
//! MODULE (latchkey loads no modules: LIST is empty, LOAD fails as a module
//! that cannot load does in Redis, behind `enable-module-command`).

use bytes::Bytes;

use super::persist::{shut_down, FinalSave};
use super::CommandResult;
use super::{flag, is, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::reply::Reply;

/// The server family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("dbsize", 1, flag::READONLY | flag::FAST, dbsize)
        .acl(&["@keyspace", "@read", "@fast"])
        .tips(&["request_policy:all_shards", "response_policy:agg_sum"])
        .doc(
            "server",
            "1.0.0",
            "Returns the number of keys in the database.",
        ),
    CommandSpec::new("flushdb", -1, flag::WRITE, flushdb)
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
        .doc(
            "server",
            "1.0.0",
            "Removes all keys from the current database.",
        ),
    CommandSpec::new("flushall", -1, flag::WRITE, flushall)
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
        .doc("server", "1.0.0", "Removes all keys from all databases."),
    CommandSpec::new("swapdb", 3, flag::WRITE | flag::FAST, swapdb)
        .acl(&["@keyspace", "@write", "@fast", "@dangerous"])
        .doc("server", "4.0.0", "Swaps two Redis databases."),
    CommandSpec::new("time", 1, flag::LOADING | flag::STALE | flag::FAST, time)
        .acl(&["@fast"])
        .tips(&["nondeterministic_output"])
        .doc("server", "2.6.0", "Returns the server time."),
    CommandSpec::new(
        "shutdown",
        -1,
        flag::ADMIN
            | flag::NOSCRIPT
            | flag::LOADING
            | flag::STALE
            | flag::NO_MULTI
            | flag::ALLOW_BUSY
            | flag::OWN_GATE,
        shutdown,
    )
    .acl(&["@admin", "@slow", "@dangerous"])
    .doc(
        "server",
        "1.0.0",
        "Synchronously saves the database(s) to disk and shuts down the Redis server.",
    ),
    CommandSpec::new("module", -2, 0, super::container)
        .acl(&["@slow"])
        .doc("server", "4.0.0", "A container for module commands.")
        .with_subcommands(&[
            CommandSpec::new("help", 2, flag::LOADING | flag::STALE, module_help)
                .acl(&["@slow"])
                .doc(
                    "server",
                    "5.0.0",
                    "Returns helpful text about the different subcommands.",
                ),
            CommandSpec::new("list", 2, flag::ADMIN | flag::NOSCRIPT, module_list)
                .acl(&["@admin", "@slow", "@dangerous"])
                .tips(&["nondeterministic_output_order"])
                .doc("server", "4.0.0", "Returns all loaded modules."),
            CommandSpec::new("load", -3, MODULE_LOAD, module_load)
                .acl(&["@admin", "@slow", "@dangerous"])
                .doc("server", "4.0.0", "Loads a module."),
            CommandSpec::new("loadex", -3, MODULE_LOAD, module_load)
                .acl(&["@admin", "@slow", "@dangerous"])
                .doc(
                    "server",
                    "7.0.0",
                    "Loads a module using extended parameters.",
                ),
            CommandSpec::new("unload", 3, MODULE_LOAD, module_unload)
                .acl(&["@admin", "@slow", "@dangerous"])
                .doc("server", "4.0.0", "Unloads a module."),
        ]),
];

/// MODULE LOAD, LOADEX and UNLOAD: behind `enable-module-command`.
const MODULE_LOAD: u32 = flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING | flag::PROTECTED;

fn module_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply(
        "MODULE",
        &[
            "LIST",
            "    Return a list of loaded modules.",
            "LOAD <path> [<arg> ...]",
            "    Load a module library from <path>, passing to it any optional arguments.",
            "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
            "    Load a module library from <path>, while passing it module configurations and optional arguments.",
            "UNLOAD <name>",
            "    Unload a module.",
        ],
    ))
}

fn module_list(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Array(Vec::new()))
}

/// Loading fails as it does in Redis for a library that cannot load: the
/// reply asks to read the log, which says why.
fn module_load(_: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    tracing::warn!(
        "Module {} failed to load: latchkey does not load Redis modules",
        String::from_utf8_lossy(&args[2])
    );
    Err(CommandError::err(
        "Error loading the extension. Please check the server logs.",
    ))
}

fn module_unload(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Err(CommandError::err(
        "Error unloading module: no such module with that name",
    ))
}

/// Rejects client names Redis rejects (spaces, new lines, non-printables).
pub fn validate_client_name(name: &[u8]) -> Result<(), CommandError> {
    if name.iter().any(|c| *c < b'!' || *c > b'~') {
        return Err(CommandError::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn dbsize(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Int(ctx.db().len() as i64))
}

/// Checks the optional ASYNC|SYNC argument of FLUSHDB/FLUSHALL.
fn flush_mode(args: &[Bytes]) -> Result<(), CommandError> {
    match args {
        [_] => Ok(()),
        [_, mode] if is(mode, "async") || is(mode, "sync") => Ok(()),
        _ => Err(CommandError::Syntax),
    }
}

fn flushdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    flush_mode(args)?;
    ctx.db().clear(ctx.now);
    Ok(Reply::OK)
}

fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    flush_mode(args)?;
    for db in ctx.shared.keyspace.dbs() {
        db.clear(ctx.now);
    }
    // With save points set, the empty keyspace is saved at once (Redis).
    super::persist::save_after_flushall(ctx.shared);
    Ok(Reply::OK)
}

/// SWAPDB index1 index2: the two databases' keys change places; clients
/// stay in the database they selected, watchers of a key on either side
/// see their transaction fail, and blocked clients are served from what
/// their database now holds. A database holding a lock is not swapped:
/// lock holders and waiters are bound to the database they locked in.
fn swapdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let index = |arg: &[u8], which: &str| {
        crate::protocol::parse_i64(arg)
            .filter(|n| i32::try_from(*n).is_ok())
            .ok_or_else(|| CommandError::err(format!("invalid {which} DB index")))
    };
    let (a, b) = (index(&args[1], "first")?, index(&args[2], "second")?);
    let out_of_range = || CommandError::err("DB index is out of range");
    let (a, b) = (
        usize::try_from(a).map_err(|_| out_of_range())?,
        usize::try_from(b).map_err(|_| out_of_range())?,
    );
    match ctx.shared.keyspace.swap_dbs(a, b) {
        Ok(()) => Ok(Reply::OK),
        Err(crate::keyspace::SwapRefused::OutOfRange) => Err(out_of_range()),
        Err(crate::keyspace::SwapRefused::HoldsLocks) => Err(CommandError::err(
            "SWAPDB cannot move locks: a database to swap holds a LOCK key",
        )),
    }
}

fn time(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let us = ctx.shared.clock.now_us();
    Ok(Reply::Array(vec![
        Reply::bulk_string((us / 1_000_000).to_string()),
        Reply::bulk_string((us % 1_000_000).to_string()),
    ]))
}

fn shutdown(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (mut save, mut nosave, mut force, mut abort, mut now) = (false, false, false, false, false);
    for a in &args[1..] {
        match () {
            _ if is(a, "nosave") => nosave = true,
            _ if is(a, "save") => save = true,
            _ if is(a, "now") => now = true,
            _ if is(a, "force") => force = true,
            _ if is(a, "abort") => abort = true,
            _ => return Err(CommandError::Syntax),
        }
    }
    if (abort && (save || nosave || now || force)) || (save && nosave) {
        return Err(CommandError::Syntax);
    }
    if abort {
        return Err(CommandError::err("No shutdown in progress."));
    }
    if ctx.shared.scripts.is_busy() {
        // Beside a busy script only SHUTDOWN NOSAVE goes ahead, and stops it.
        if !nosave {
            return Err(ctx.shared.scripts.busy_error());
        }
    }
    tracing::warn!("User requested shutdown...");
    let mode = match (save, nosave) {
        (true, _) => FinalSave::Save,
        (_, true) => FinalSave::NoSave,
        _ => FinalSave::Default,
    };
    // Saves first (holding the gate, so nothing runs after the save) and
    // marks the server stopping: the commands waiting for a stopped script's
    // gate give up instead of running on its half-done writes.
    if !shut_down(ctx.shared, mode, force) {
        return Err(CommandError::err("Errors trying to SHUTDOWN. Check logs."));
    }
    ctx.shared.scripts.abort();
    ctx.session.close_after_reply = true;
    // Redis closes the connection without a reply on success.
    Ok(Reply::Silent)
}
