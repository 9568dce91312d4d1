//! CONFIG GET, SET, RESETSTAT, REWRITE, HELP over the option table in
//! `crate::config`.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::keys::glob_match;
use super::CommandResult;
use super::{container, flag, CommandSpec, Ctx};
use crate::config::{Change, PARAMS};
use crate::error::CommandError;
use crate::reply::Reply;

const ADMIN: u32 = flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE;

/// The CONFIG container and its subcommands.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("config", -2, 0, container)
    .acl(&["@slow"])
    .doc(
        "server",
        "2.0.0",
        "A container for server configuration commands.",
    )
    .with_subcommands(&[
        CommandSpec::new("get", -3, ADMIN, get)
            .acl(&["@admin", "@slow", "@dangerous"])
            .doc(
                "server",
                "2.0.0",
                "Returns the effective values of configuration parameters.",
            ),
        CommandSpec::new("set", -4, ADMIN, set)
            .acl(&["@admin", "@slow", "@dangerous"])
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .doc(
                "server",
                "2.0.0",
                "Sets configuration parameters in-flight.",
            ),
        CommandSpec::new("resetstat", 2, ADMIN, resetstat)
            .acl(&["@admin", "@slow", "@dangerous"])
            .doc("server", "2.0.0", "Resets the server's statistics."),
        CommandSpec::new("rewrite", 2, ADMIN, rewrite)
            .acl(&["@admin", "@slow", "@dangerous"])
            .doc(
                "server",
                "2.8.0",
                "Persists the effective configuration to file.",
            ),
        CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
            .acl(&["@slow"])
            .doc(
                "server",
                "5.0.0",
                "Returns helpful text about the different subcommands.",
            ),
    ])];

fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let config = ctx.shared.config.read();
    let mut seen = Vec::new();
    let mut pairs = Vec::new();
    for pattern in &args[2..] {
        let pattern = pattern.to_ascii_lowercase();
        for p in PARAMS {
            for name in std::iter::once(&p.name).chain(p.aliases.iter()) {
                if !seen.contains(name) && glob_match(&pattern, name.as_bytes()) {
                    seen.push(*name);
                    pairs.push((Reply::bulk_str(name), Reply::bulk_string(p.get(&config))));
                }
            }
        }
    }
    Ok(Reply::Map(pairs))
}

fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let pairs = &args[2..];
    if !pairs.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("config|set".into()));
    }
    let failed = |name: &str, why: &str| {
        CommandError::err(format!(
            "CONFIG SET failed (possibly related to argument '{name}') - {why}"
        ))
    };
    // Validate every pair on a copy, then install it: all or nothing.
    let mut next = ctx.shared.config.read().clone();
    let protected_ok = next.enable_protected_configs.allows(ctx.session.info.local);
    let mut done: Vec<&str> = Vec::new();
    for pair in pairs.chunks_exact(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let param = crate::config::find(&name).ok_or_else(|| {
            CommandError::err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{name}'"
            ))
        })?;
        if done.contains(&param.name) {
            return Err(failed(&name, "duplicate parameter"));
        }
        match param.change {
            Change::Mutable => {}
            Change::Immutable => return Err(failed(&name, "can't set immutable config")),
            Change::Protected if protected_ok => {}
            Change::Protected => return Err(failed(&name, "can't set protected config")),
        }
        let value = String::from_utf8_lossy(&pair[1]).into_owned();
        // Redis's multi-argument options take their words from one value.
        let words = if matches!(param.name, "save" | "latency-tracking-info-percentiles") {
            value
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        } else {
            vec![value]
        };
        param
            .set(&mut next, &words)
            .map_err(|e| failed(&name, &e))?;
        done.push(param.name);
    }
    let (now, asked) = (ctx.shared.config.read().maxclients, next.maxclients);
    if asked > now {
        if let Err(fits) = crate::config::fit_maxclients(asked as u64) {
            return Err(failed(
                "maxclients",
                &format!(
                    "The operating system is not able to handle the specified number of clients, try with {fits}"
                ),
            ));
        }
    }
    let tls = if next.tls != ctx.shared.config.read().tls && next.tls.port != 0 {
        // Re-read the certificates now, as Redis does; a failure keeps the
        // configuration in use (and every option as it was).
        match crate::tls::acceptor(&next.tls) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                let first = done
                    .iter()
                    .find(|n| n.starts_with("tls-"))
                    .copied()
                    .unwrap_or("tls-port");
                tracing::warn!("{e}");
                tracing::warn!("Failed applying new configuration. Possibly related to new {first} setting. Restoring previous settings.");
                return Err(failed(
                    first,
                    "Unable to update TLS configuration. Check server logs.",
                ));
            }
        }
    } else {
        None
    };
    if let Some(acceptor) = tls {
        *ctx.shared.tls.write() = Some(acceptor);
    }
    ctx.shared.encodings.store(&next.encodings);
    ctx.shared
        .keyspace
        .notifier()
        .set_classes(next.notify_keyspace_events);
    ctx.shared.keyspace.locks().set_lock_delay(next.lock_delay);
    ctx.shared
        .slowlog
        .configure(next.slowlog_log_slower_than, next.slowlog_max_len);
    ctx.shared.memory.configure(next.memory_settings());
    ctx.shared.latency.configure(
        next.latency_monitor_threshold,
        next.latency_tracking,
        &next.latency_tracking_info_percentiles,
    );
    // A lower `maxmemory-clients` (or `maxmemory` under a percentage) applies
    // at once, as Redis's applyClientMaxMemoryUsage.
    crate::memory::evict_clients(ctx.shared);
    ctx.shared.persist.set_policy(
        next.stop_writes_on_bgsave_error,
        !next.save_points.is_empty(),
    );
    if done.contains(&"requirepass") {
        ctx.shared
            .acl
            .set_default_password(&ctx.shared.commands, next.requirepass.as_deref());
    }
    ctx.shared.acl.trim_log(next.acllog_max_len as usize);
    let max_keys = next.tracking_table_max_keys;
    let aof_was = ctx.shared.config.read().appendonly;
    let (aof_now, fsync) = (next.appendonly, next.appendfsync.clone());
    *ctx.shared.config.write() = next;
    let aof = &ctx.shared.aof;
    if let Some(f) = crate::persist::aof::Fsync::parse(&fsync) {
        aof.set_fsync(f);
    }
    match (aof_was, aof_now) {
        // The save thread rewrites the AOF, and logging starts at that
        // rewrite's instant (Redis's `startAppendOnly`).
        (false, true) => {
            aof.request_start();
            ctx.shared.persist.wake();
        }
        (true, false) => aof.stop(ctx.shared.keyspace.hook()),
        _ => {}
    }
    // A lower tracking-table-max-keys applies at once, idle or not (Redis
    // trims on its cron too).
    let mut evicted = Vec::new();
    ctx.shared.tracking.limit(max_keys, &mut evicted);
    crate::tracking::deliver(
        ctx.shared,
        Some(ctx.session),
        ctx.mode != super::CallMode::Client,
        evicted,
    );
    Ok(Reply::OK)
}

fn resetstat(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    for c in ctx.shared.commands.all() {
        for counter in [
            &c.stats.calls,
            &c.stats.usec,
            &c.stats.rejected_calls,
            &c.stats.failed_calls,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        // Redis frees the command's latency histogram too.
        *c.stats.latency.lock() = None;
    }
    let s = &ctx.shared.stats;
    for counter in [
        &s.connections_received,
        &s.rejected_connections,
        &s.commands_processed,
        &s.keyspace_hits,
        &s.keyspace_misses,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    for shard in ctx.shared.keyspace.dbs().iter().flat_map(|db| db.shards()) {
        shard.lock().reset_lookups();
    }
    Ok(Reply::OK)
}

fn rewrite(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Err(CommandError::err(
        "The server is running without a config file",
    ))
}

fn help(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::client::help_lines(ctx, "config"))
}
