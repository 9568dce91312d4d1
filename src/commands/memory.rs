//! MEMORY USAGE, STATS, DOCTOR, MALLOC-STATS, PURGE, HELP, with Redis 7.0's
//! reply shapes over the figures latchkey has (`crate::memory`): the
//! allocator's live bytes, the peak, the resident size. MEMORY USAGE
//! estimates a key as Redis's does, from its name and its value's size
//! (here the value's RDB payload, which for a packed encoding is close to
//! the bytes it holds, plus the entry's overhead).

use bytes::Bytes;

use super::{container, flag, is, CommandResult, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::keyspace::Value;
use crate::reply::Reply;

/// The MEMORY container and its subcommands.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("memory", -2, 0, container)
    .acl(&["@slow"])
    .doc(
        "server",
        "4.0.0",
        "A container for memory diagnostics commands.",
    )
    .with_subcommands(&[
        CommandSpec::new("doctor", 2, 0, doctor)
            .acl(&["@slow"])
            .tips(&[
                "nondeterministic_output",
                "request_policy:all_shards",
                "response_policy:special",
            ])
            .doc("server", "4.0.0", "Outputs a memory problems report."),
        CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
            .acl(&["@slow"])
            .doc(
                "server",
                "4.0.0",
                "Returns helpful text about the different subcommands.",
            ),
        CommandSpec::new("malloc-stats", 2, 0, malloc_stats)
            .acl(&["@slow"])
            .tips(&[
                "nondeterministic_output",
                "request_policy:all_shards",
                "response_policy:special",
            ])
            .doc("server", "4.0.0", "Returns the allocator statistics."),
        CommandSpec::new("purge", 2, 0, purge)
            .acl(&["@slow"])
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
            .doc("server", "4.0.0", "Asks the allocator to release memory."),
        CommandSpec::new("stats", 2, 0, stats)
            .acl(&["@slow"])
            .tips(&[
                "nondeterministic_output",
                "request_policy:all_shards",
                "response_policy:special",
            ])
            .doc("server", "4.0.0", "Returns details about memory usage."),
        CommandSpec::new("usage", -3, flag::READONLY, usage)
            .keys(2, 2, 1)
            .acl(&["@read", "@slow"])
            .key_specs(&[KeySpec::one(2, &["RO"])])
            .doc("server", "4.0.0", "Estimates the memory usage of a key."),
    ])];

/// What an entry costs beside its name and value: the table slot, the entry,
/// the TTL (Redis's dictEntry and robj headers are about as much).
const ENTRY_OVERHEAD: usize = 48;

/// MEMORY USAGE key [SAMPLES count].
fn usage(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut rest = args[3..].iter();
    while let Some(opt) = rest.next() {
        match rest.next() {
            Some(n) if is(opt, "samples") => {
                if super::int_arg(n)? < 0 {
                    return Err(CommandError::Syntax);
                }
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let key = &args[2];
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(entry) = shard.peek(key, now) else {
        return Ok(Reply::Nil);
    };
    Ok(Reply::Int(
        (key.len() + ENTRY_OVERHEAD + value_size(&entry.value)) as i64,
    ))
}

/// A value's size estimate: its RDB payload (a lock's holders otherwise).
fn value_size(value: &Value) -> usize {
    match value {
        Value::Lock(lock) => {
            let info = lock.info();
            64 + info
                .holders
                .iter()
                .map(|h| 48 + h.owner.as_slice().len())
                .sum::<usize>()
        }
        v => crate::rdb::dump(v, false).map_or(16, |p| p.len().saturating_sub(10) + 16),
    }
}

/// MEMORY STATS: Redis 7.0's fields, with the figures latchkey measures
/// (what it has none of, replicas and cluster links, is 0).
fn stats(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let shared = ctx.shared;
    let used = shared.memory.used_now();
    let peak = shared.memory.peak();
    let rss = crate::memory::rss();
    let keys: usize = shared.keyspace.dbs().iter().map(|d| d.len()).sum();
    let aof = shared.aof.report(ctx.now).buffer_length;
    // The Lua VMs are built on first use, Redis's at start-up: counted as
    // start-up either way.
    let startup = STARTUP.get().copied().unwrap_or(0) + shared.scripts.vms_built_bytes();
    let clients = shared.memory.clients_used() as u64;
    let overhead = startup + aof + clients;
    let dataset = used.saturating_sub(overhead);
    let int = |n: u64| Reply::Int(n.min(i64::MAX as u64) as i64);
    let pct = |part: u64, whole: u64| {
        Reply::Double(if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        })
    };
    let mut fields = vec![
        ("peak.allocated", int(peak)),
        ("total.allocated", int(used)),
        ("startup.allocated", int(startup)),
        ("replication.backlog", int(0)),
        ("clients.slaves", int(0)),
        ("clients.normal", int(clients)),
        ("cluster.links", int(0)),
        ("aof.buffer", int(aof)),
        ("lua.caches", int(0)),
        ("functions.caches", int(0)),
        ("overhead.total", int(overhead)),
        ("keys.count", int(keys as u64)),
        (
            "keys.bytes-per-key",
            int(if keys == 0 { 0 } else { dataset / keys as u64 }),
        ),
        ("dataset.bytes", int(dataset)),
        (
            "dataset.percentage",
            pct(dataset, used.saturating_sub(startup)),
        ),
        ("peak.percentage", pct(used, peak)),
        ("allocator.allocated", int(used)),
        ("allocator.active", int(used)),
        ("allocator.resident", int(rss)),
        ("allocator-fragmentation.ratio", Reply::Double(1.0)),
        ("allocator-fragmentation.bytes", int(0)),
        ("allocator.rss-ratio", Reply::Double(ratio(rss, used))),
        ("allocator.rss-bytes", int(rss.saturating_sub(used))),
        ("rss-overhead.ratio", Reply::Double(1.0)),
        ("rss-overhead.bytes", int(0)),
        ("fragmentation", Reply::Double(ratio(rss, used))),
        ("fragmentation.bytes", int(rss.saturating_sub(used))),
    ];
    let mut out: Vec<(Reply, Reply)> = fields
        .drain(..)
        .map(|(k, v)| (Reply::bulk_str(k), v))
        .collect();
    for (i, db) in shared.keyspace.dbs().iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        out.push((
            Reply::bulk_string(format!("db.{i}")),
            Reply::Map(vec![
                (
                    Reply::bulk_str("overhead.hashtable.main"),
                    int((db.len() * 24) as u64),
                ),
                (
                    Reply::bulk_str("overhead.hashtable.expires"),
                    int(db
                        .shards()
                        .iter()
                        .map(|s| s.lock().volatile() as u64 * 24)
                        .sum()),
                ),
            ]),
        ));
    }
    Ok(Reply::Map(out))
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The memory the server used once started, before any data: what MEMORY
/// STATS counts as `startup.allocated` (set by [`note_startup`]).
static STARTUP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Notes the memory used at start-up (after the server is built, before
/// clients).
pub fn note_startup() {
    let _ = STARTUP.set(crate::memory::used());
}

/// MEMORY DOCTOR: Redis's report when nothing is wrong, or when there is too
/// little data to judge (under 5 MB).
/// Without the counting allocator (an embedding) the used bytes are the
/// process's, so the data is judged by its keys instead (64 bytes each).
fn doctor(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let used = if crate::memory::counting() {
        ctx.shared.memory.used_now()
    } else {
        let keys: usize = ctx.shared.keyspace.dbs().iter().map(|d| d.len()).sum();
        keys as u64 * 64
    };
    let text = if used < 5 << 20 {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n"
    } else {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n"
    };
    Ok(Reply::Verbatim(Bytes::from_static(text.as_bytes())))
}

/// MEMORY MALLOC-STATS: what Redis answers with libc's allocator.
fn malloc_stats(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Verbatim(Bytes::from_static(
        b"Stats not supported for the current allocator",
    )))
}

/// MEMORY PURGE: glibc's allocator gives its free pages back to the system
/// (`malloc_trim`), as Redis's purges jemalloc's.
fn purge(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    // SAFETY: malloc_trim only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
    Ok(Reply::OK)
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply(
        "MEMORY",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    ))
}
