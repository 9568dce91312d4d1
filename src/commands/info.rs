//! INFO: the server's state in Redis's `# Section` / `field:value` text.
//!
//! Only figures latchkey really measures are reported; Redis fields with no
//! counterpart here (replication backlog, RDB/AOF details beyond "not loading",
//! allocator internals) are left out rather than made up.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::CommandResult;
use super::{flag, CommandSpec, Ctx};
use crate::metrics::figures;
use crate::reply::Reply;
use crate::server::{Shared, LATCHKEY_VERSION, REDIS_VERSION};

/// The INFO row.
pub static COMMANDS: &[CommandSpec] =
    &[
        CommandSpec::new("info", -1, flag::LOADING | flag::STALE, info)
            .acl(&["@slow", "@dangerous"])
            .tips(&[
                "nondeterministic_output",
                "request_policy:all_shards",
                "response_policy:special",
            ])
            .doc(
                "server",
                "1.0.0",
                "Returns information and statistics about the server.",
            ),
    ];

/// Sections in the order INFO prints them, and whether `INFO` without arguments
/// (`default`) includes them.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("errorstats", true),
    ("cluster", true),
    ("keyspace", true),
    ("locks", true),
    ("commandstats", false),
    ("latencystats", false),
];

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let asked: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let everything = asked.iter().any(|a| a == "all" || a == "everything");
    let default = asked.is_empty() || asked.iter().any(|a| a == "default");
    let mut out = String::new();
    for (name, in_default) in SECTIONS {
        let wanted = everything || (default && *in_default) || asked.iter().any(|a| a == name);
        if !wanted {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = writeln!(out, "# {}\r", capitalize(name));
        section(ctx.shared, name, &mut out);
    }
    Ok(Reply::Verbatim(Bytes::from(out)))
}

fn capitalize(s: &str) -> String {
    match s {
        "cpu" => "CPU".into(),
        "errorstats" => "Errorstats".into(),
        "commandstats" => "Commandstats".into(),
        "latencystats" => "Latencystats".into(),
        _ => {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        }
    }
}

fn field(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "{name}:{value}\r\n");
}

/// Bytes as Redis's `bytesToHuman` prints them: `1.06M`.
fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        n if n < 1024 => format!("{n}B"),
        n if n < 1 << 20 => format!("{:.2}K", b / 1024.0),
        n if n < 1 << 30 => format!("{:.2}M", b / (1u64 << 20) as f64),
        _ => format!("{:.2}G", b / (1u64 << 30) as f64),
    }
}

/// Resident set size from /proc, in bytes (0 where /proc is not available).
/// User and system CPU seconds of this process, from /proc.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14th, 15th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (ticks(11), ticks(12))
}

fn section(shared: &Shared, name: &str, out: &mut String) {
    let config = shared.config.read().clone();
    match name {
        "server" => {
            let uptime = shared.started.elapsed().as_secs();
            field(out, "redis_version", REDIS_VERSION);
            field(out, "latchkey_version", LATCHKEY_VERSION);
            field(out, "redis_mode", "standalone");
            field(
                out,
                "os",
                format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            );
            field(out, "arch_bits", usize::BITS);
            field(out, "multiplexing_api", "tokio");
            field(out, "process_id", std::process::id());
            field(out, "run_id", &shared.run_id);
            field(
                out,
                "tcp_port",
                shared.tcp_addr.read().map_or(0, |a| a.port()),
            );
            field(out, "server_time_usec", shared.clock.now_us());
            field(out, "uptime_in_seconds", uptime);
            field(out, "uptime_in_days", uptime / 86400);
            field(
                out,
                "executable",
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
            field(out, "config_file", "");
        }
        "clients" => {
            let blocked = figures::blocked_clients(shared);
            field(out, "connected_clients", shared.clients.len());
            field(out, "maxclients", config.maxclients);
            field(out, "blocked_clients", blocked);
            field(out, "tracking_clients", shared.tracking.clients());
            let subscribers = shared.clients.iter().filter(|c| c.is_subscriber()).count();
            field(out, "pubsub_clients", subscribers);
        }
        "memory" => {
            let rss = crate::memory::rss();
            let used = shared.memory.used_now();
            let peak = shared.memory.peak();
            field(out, "used_memory", used);
            field(out, "used_memory_human", human(used));
            field(out, "used_memory_rss", rss);
            field(out, "used_memory_rss_human", human(rss));
            field(out, "used_memory_peak", peak);
            field(out, "used_memory_peak_human", human(peak));
            let max = shared.memory.maxmemory();
            field(out, "maxmemory", max);
            field(out, "maxmemory_human", human(max));
            field(out, "maxmemory_policy", shared.memory.policy().name());
            field(
                out,
                "mem_fragmentation_ratio",
                format!("{:.2}", rss as f64 / used.max(1) as f64),
            );
            field(out, "mem_clients_slaves", 0);
            field(out, "mem_clients_normal", shared.memory.clients_used());
        }
        "persistence" => {
            let now = shared.clock.now_ms();
            let r = shared.persist.report(now);
            let changes = shared.keyspace.dirty().wrapping_sub(r.dirty_base);
            field(out, "loading", u8::from(shared.is_loading()));
            field(out, "async_loading", 0);
            field(out, "rdb_changes_since_last_save", changes);
            field(out, "rdb_bgsave_in_progress", u8::from(r.in_progress));
            field(out, "rdb_last_save_time", r.lastsave_s);
            field(
                out,
                "rdb_last_bgsave_status",
                if r.last_ok { "ok" } else { "err" },
            );
            field(out, "rdb_last_bgsave_time_sec", r.last_duration_s);
            field(out, "rdb_current_bgsave_time_sec", r.current_s);
            field(out, "rdb_saves", r.saves);
            field(out, "rdb_last_load_keys_expired", r.load_expired);
            field(out, "rdb_last_load_keys_loaded", r.loaded);
            let a = shared.aof.report(now);
            let ok = |b: bool| if b { "ok" } else { "err" };
            field(out, "aof_enabled", u8::from(a.enabled));
            field(
                out,
                "aof_rewrite_in_progress",
                u8::from(a.rewrite_in_progress),
            );
            field(out, "aof_rewrite_scheduled", u8::from(a.rewrite_scheduled));
            field(out, "aof_last_rewrite_time_sec", a.last_rewrite_time_s);
            field(
                out,
                "aof_current_rewrite_time_sec",
                a.current_rewrite_time_s,
            );
            field(out, "aof_last_bgrewrite_status", ok(a.last_rewrite_ok));
            field(out, "aof_rewrites", a.rewrites);
            field(
                out,
                "aof_rewrites_consecutive_failures",
                a.consecutive_failures,
            );
            field(out, "aof_last_write_status", ok(a.last_write_ok));
            field(out, "aof_last_cow_size", 0);
            field(out, "module_fork_in_progress", 0);
            field(out, "module_fork_last_cow_size", 0);
            if a.enabled {
                field(out, "aof_current_size", a.current_size);
                field(out, "aof_base_size", a.base_size);
                field(out, "aof_pending_rewrite", u8::from(a.rewrite_scheduled));
                field(out, "aof_buffer_length", a.buffer_length);
                field(out, "aof_pending_bio_fsync", 0);
                field(out, "aof_delayed_fsync", 0);
            }
        }
        "stats" => {
            let s = &shared.stats;
            let expired = figures::expired_keys(shared);
            field(
                out,
                "total_connections_received",
                s.connections_received.load(Ordering::Relaxed),
            );
            field(
                out,
                "total_commands_processed",
                s.commands_processed.load(Ordering::Relaxed),
            );
            field(
                out,
                "rejected_connections",
                s.rejected_connections.load(Ordering::Relaxed),
            );
            let (net_in, net_out) = figures::net_bytes(shared);
            field(out, "total_net_input_bytes", net_in);
            field(out, "total_net_output_bytes", net_out);
            field(out, "expired_keys", expired);
            field(
                out,
                "evicted_keys",
                shared.memory.evicted.load(Ordering::Relaxed),
            );
            field(
                out,
                "evicted_clients",
                shared.memory.evicted_clients.load(Ordering::Relaxed),
            );
            let (hits, misses) = figures::keyspace_lookups(shared);
            field(out, "keyspace_hits", hits);
            field(out, "keyspace_misses", misses);
            let (keys, items, prefixes) = shared.tracking.totals();
            field(out, "tracking_total_keys", keys);
            field(out, "tracking_total_items", items);
            field(out, "tracking_total_prefixes", prefixes);
            use crate::pubsub::Kind;
            field(out, "pubsub_channels", shared.pubsub.count(Kind::Channel));
            field(out, "pubsub_patterns", shared.pubsub.count(Kind::Pattern));
            field(
                out,
                "pubsubshard_channels",
                shared.pubsub.count(Kind::Shard),
            );
        }
        "replication" => {
            field(out, "role", "master");
            field(out, "connected_slaves", 0);
            field(out, "master_replid", &shared.run_id);
            field(out, "master_repl_offset", 0);
        }
        "cpu" => {
            let (user, sys) = cpu_seconds();
            field(out, "used_cpu_sys", format!("{sys:.6}"));
            field(out, "used_cpu_user", format!("{user:.6}"));
            // latchkey's own: the part of the two above its workers spent
            // watching for work before they slept (`idle-spin-us`).
            let spun = crate::idle_spin::spun().as_secs_f64();
            field(out, "used_cpu_idle_spin", format!("{spun:.6}"));
        }
        "cluster" => field(out, "cluster_enabled", 0),
        "keyspace" => {
            for (i, size) in figures::db_sizes(shared).into_iter().enumerate() {
                let figures::DbSize { keys, expires } = size;
                if keys > 0 {
                    field(
                        out,
                        &format!("db{i}"),
                        format!("keys={keys},expires={expires},avg_ttl=0"),
                    );
                }
            }
        }
        "locks" => locks(shared, out),
        "latencystats" => super::latency::info_section(shared, out),
        "commandstats" => {
            for c in shared.commands.all() {
                let calls = c.stats.calls.load(Ordering::Relaxed);
                let rejected = c.stats.rejected_calls.load(Ordering::Relaxed);
                if calls == 0 && rejected == 0 {
                    continue;
                }
                let usec = c.stats.usec.load(Ordering::Relaxed);
                let per_call = if calls > 0 {
                    usec as f64 / calls as f64
                } else {
                    0.0
                };
                field(
                    out,
                    &format!("cmdstat_{}", c.full_name),
                    format!(
                        "calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={}",
                        c.stats.failed_calls.load(Ordering::Relaxed)
                    ),
                );
            }
        }
        _ => {}
    }
}

/// `# Locks`: what is held and waited for now, and what has happened since start.
fn locks(shared: &Shared, out: &mut String) {
    let figures::LockCounts {
        locks,
        holders,
        waiters,
    } = figures::lock_counts(shared);
    let s = &shared.keyspace.locks().stats;
    field(out, "locks", locks);
    field(out, "lock_holders", holders);
    field(out, "lock_waiters", waiters);
    field(
        out,
        "lock_acquisitions",
        s.acquisitions.load(Ordering::Relaxed),
    );
    field(
        out,
        "lock_acquired_immediately",
        s.acquired_immediately.load(Ordering::Relaxed),
    );
    field(
        out,
        "lock_acquired_after_wait",
        s.acquired_after_wait.load(Ordering::Relaxed),
    );
    field(
        out,
        "lock_wait_timeouts",
        s.wait_timeouts.load(Ordering::Relaxed),
    );
    field(
        out,
        "lock_lease_expiries",
        s.lease_expiries.load(Ordering::Relaxed),
    );
    field(
        out,
        "lock_session_releases",
        s.session_releases.load(Ordering::Relaxed),
    );
    field(out, "lock_extends", s.extends.load(Ordering::Relaxed));
    field(
        out,
        "lock_releases_refused",
        s.release_refused.load(Ordering::Relaxed),
    );
    field(
        out,
        "lock_fencing_token_high_water",
        shared.keyspace.locks().high_water(),
    );
    for (name, h) in [("wait", &s.wait_ms), ("hold", &s.hold_ms)] {
        let h = h.snapshot();
        field(out, &format!("lock_{name}_count"), h.count);
        field(out, &format!("lock_{name}_time_ms_sum"), h.sum_ms);
    }
}
