//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, TIME, SHUTDOWN.

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
];

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
    for mut shard in ctx.db().lock_all() {
        shard.clear(ctx.now);
    }
    Ok(Reply::OK)
}

fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    flush_mode(args)?;
    for db in ctx.shared.keyspace.dbs() {
        for mut shard in db.lock_all() {
            shard.clear(ctx.now);
        }
    }
    // With save points set, the empty keyspace is saved at once (Redis).
    super::persist::save_after_flushall(ctx.shared);
    Ok(Reply::OK)
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
            return Err(super::busy_error());
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
