//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! MULTI makes the dispatcher queue commands (replying `QUEUED`); EXEC takes the
//! execution gate exclusively and runs the queue, so no other command interleaves
//! with it and no client sees part of it. WATCH registers a flag on each key's
//! shard; any change to the key (a write, a DEL, expiry, FLUSHDB) sets it, and
//! EXEC then replies nil without running anything.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::CommandResult;
use super::{call, flag, CallMode, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::reply::Reply;
use crate::session::Multi;

/// The transaction family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "multi",
        1,
        flag::NOSCRIPT
            | flag::LOADING
            | flag::STALE
            | flag::FAST
            | flag::ALLOW_BUSY
            | flag::IMMEDIATE,
        multi,
    )
    .acl(&["@fast", "@transaction"])
    .doc("transactions", "1.2.0", "Starts a transaction."),
    CommandSpec::new(
        "exec",
        1,
        flag::NOSCRIPT
            | flag::LOADING
            | flag::STALE
            | flag::SKIP_SLOWLOG
            | flag::IMMEDIATE
            | flag::OWN_GATE,
        exec,
    )
    .acl(&["@slow", "@transaction"])
    .doc(
        "transactions",
        "1.2.0",
        "Executes all commands in a transaction.",
    ),
    CommandSpec::new(
        "discard",
        1,
        flag::NOSCRIPT
            | flag::LOADING
            | flag::STALE
            | flag::FAST
            | flag::ALLOW_BUSY
            | flag::IMMEDIATE,
        discard,
    )
    .acl(&["@fast", "@transaction"])
    .doc("transactions", "2.0.0", "Discards a transaction."),
    CommandSpec::new(
        "watch",
        -2,
        flag::NOSCRIPT
            | flag::LOADING
            | flag::STALE
            | flag::FAST
            | flag::ALLOW_BUSY
            | flag::IMMEDIATE,
        watch,
    )
    .acl(&["@fast", "@transaction"])
    .key_specs(&[KeySpec::range(1, -1, 1, &["RO"])])
    .keys(1, -1, 1)
    .doc(
        "transactions",
        "2.2.0",
        "Monitors changes to keys to determine the execution of a transaction.",
    ),
    CommandSpec::new(
        "unwatch",
        1,
        flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::ALLOW_BUSY,
        unwatch,
    )
    .acl(&["@fast", "@transaction"])
    .doc(
        "transactions",
        "2.2.0",
        "Forgets about watched keys of a transaction.",
    ),
];

fn multi(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    if ctx.session.in_multi() {
        return Err(CommandError::err("MULTI calls can not be nested"));
    }
    ctx.session.multi = Some(Multi::default());
    ctx.session.info.multi.store(0, Ordering::Relaxed);
    Ok(Reply::OK)
}

fn discard(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    if !ctx.session.in_multi() {
        return Err(CommandError::err("DISCARD without MULTI"));
    }
    discard_state(ctx);
    Ok(Reply::OK)
}

/// Drops the open transaction and every WATCH (DISCARD, EXEC, RESET).
pub fn discard_state(ctx: &mut Ctx<'_>) {
    ctx.session.discard_transaction(&ctx.shared.keyspace);
}

/// Forgets every watched key of this session.
pub fn unwatch_all(ctx: &mut Ctx<'_>) {
    ctx.session.unwatch_all(&ctx.shared.keyspace);
}

fn watch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if ctx.session.in_multi() {
        return Err(CommandError::err("WATCH inside MULTI is not allowed"));
    }
    let db_index = ctx.session.db;
    let db = ctx.db();
    for key in &args[1..] {
        if ctx
            .session
            .watched
            .iter()
            .any(|(d, k, _)| *d == db_index && k == key)
        {
            continue;
        }
        let mut shard = db.lock(key);
        let expires_at = shard.get(key, ctx.now).and_then(|e| e.expires_at());
        shard.watch(key, &ctx.session.watch_flag);
        ctx.session
            .watched
            .push((db_index, Bytes::copy_from_slice(key), expires_at));
    }
    Ok(Reply::OK)
}

fn unwatch(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    unwatch_all(ctx);
    Ok(Reply::OK)
}

/// Whether a watched key changed, or expired, since WATCH.
fn watch_broken(ctx: &Ctx<'_>) -> bool {
    ctx.session.watch_flag.load(Ordering::Acquire)
        || ctx
            .session
            .watched
            .iter()
            .any(|(_, _, at)| at.is_some_and(|at| at <= ctx.now))
}

fn exec(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let Some(failed) = ctx.session.multi.as_ref().map(|m| m.failed) else {
        return Err(CommandError::err("EXEC without MULTI"));
    };
    if failed {
        discard_state(ctx);
        return Err(CommandError::raw(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    let shared = ctx.shared;
    // The gate before the queue is taken: a script that turns busy meanwhile
    // aborts the transaction with the reason, as when EXEC arrives during it.
    let Some(_gate) = shared
        .gate
        .write_unless(|| shared.scripts.is_busy() || shared.is_shutting_down())
    else {
        discard_state(ctx);
        return Err(super::exec_abort_busy(shared));
    };
    if shared.is_stopping() {
        // Shut down (and saved) while this waited: close unanswered.
        ctx.session.close_after_reply = true;
        return Ok(Reply::Silent);
    }
    let Some(multi) = ctx.session.multi.take() else {
        return Err(CommandError::err("EXEC without MULTI"));
    };
    ctx.session.info.multi.store(-1, Ordering::Relaxed);
    // Held until the transaction's writes are appended: a client it serves
    // or grants settles its reply's AOF offset after that.
    let _order = shared.aof.order();
    ctx.session.mark_time(&shared.clock);
    ctx.now = ctx.session.now_ms;
    if watch_broken(ctx) {
        unwatch_all(ctx);
        return Ok(Reply::NilArray);
    }
    let mut replies = Vec::with_capacity(multi.queue.len());
    for queued in &multi.queue {
        let cmd = &shared.commands.all()[queued.command];
        // Rules may have changed since the command was queued.
        if !ctx.session.user.is_unrestricted() {
            if let Err(e) = super::acl::check(shared, ctx.session, cmd, &queued.args, true) {
                replies.push(Reply::Error(e));
                continue;
            }
        }
        replies.push(call(
            shared,
            ctx.session,
            cmd,
            &queued.args,
            CallMode::Transaction,
        ));
    }
    unwatch_all(ctx);
    super::serve_blocked(shared, ctx.now);
    super::pubsub::queue_logged(shared, ctx.session);
    // The transaction's writes reach the AOF as one MULTI/EXEC, before the
    // gate opens (clients it served wait for them: `_order`).
    ctx.session.aof_offset = crate::persist::aof::end_unit(shared);
    Ok(Reply::Array(replies))
}
