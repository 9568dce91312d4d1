//! DEBUG, behind `enable-debug-command` (`no` by default, `local` for
//! loopback and Unix-socket clients, `yes` for all, as in Redis 7): the
//! subcommands Redis's own test suites use — SLEEP, SET-ACTIVE-EXPIRE,
//! RELOAD [MERGE] [NOFLUSH] [NOSAVE], OBJECT, LISTPACK, QUICKLIST,
//! QUICKLIST-PACKED-THRESHOLD, STRINGMATCH-TEST, CHANGE-REPL-ID, LOG — and
//! latchkey's clock control for tests in any language: ADVANCE-TIME <ms>
//! moves the server clock forward (TTLs, leases, lock-delays and TIME follow,
//! and whatever became due happens at once), PAUSE-TIME stops it, and
//! RESUME-TIME lets it run again from where it stands — the mechanism
//! `ServerHandle::advance_time` uses; fault injection (FAULT ERROR, DELAY,
//! CLOSE, DROP-CLIENTS, REFUSE, CLEAR, LIST: `crate::faults`); and RESET,
//! a test suite's isolation between tests in one command.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::{flag, is, CommandResult, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::reply::Reply;

/// The DEBUG row.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "debug",
    -2,
    flag::ADMIN
        | flag::NOSCRIPT
        | flag::LOADING
        | flag::STALE
        | flag::OWN_GATE
        | flag::NO_PROPAGATE
        | flag::PROTECTED,
    debug,
)
.acl(&["@admin", "@slow", "@dangerous"])
.doc("server", "1.0.0", "A container for debugging commands.")];

/// The longest DEBUG ADVANCE-TIME step (a year): a larger one is refused.
const MAX_ADVANCE_MS: u64 = 365 * 24 * 3_600_000;

/// Redis's refusal of DEBUG where `enable-debug-command` does not allow it
/// (checked by the dispatcher, before a transaction queues it).
pub fn not_allowed() -> CommandError {
    CommandError::err(
        "DEBUG command not allowed. If the enable-debug-command option is set to \"local\", \
         you can run it from a local connection, otherwise you need to set this option in \
         the configuration file, and then restart the server.",
    )
}

fn debug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let sub = &args[1];
    let syntax = || CommandError::subcommand_syntax("debug", sub);
    match args.len() {
        2 if is(sub, "help") => Ok(help()),
        2 if is(sub, "change-repl-id") => Ok(Reply::OK),
        2 if is(sub, "pause-time") => {
            ctx.shared.clock.pause();
            Ok(Reply::OK)
        }
        2 if is(sub, "resume-time") => {
            ctx.shared.clock.resume();
            Ok(Reply::OK)
        }
        3 if is(sub, "advance-time") => {
            let ms = super::int_arg(&args[2])?;
            if ms < 0 || ms as u64 > MAX_ADVANCE_MS {
                return Err(CommandError::err(format!(
                    "time must be between 0 and {MAX_ADVANCE_MS} ms"
                )));
            }
            if !ctx.mode_is_client() {
                return Err(CommandError::err(
                    "DEBUG ADVANCE-TIME cannot run inside MULTI or a script",
                ));
            }
            ctx.shared.advance_time(Duration::from_millis(ms as u64));
            Ok(Reply::OK)
        }
        3 if is(sub, "sleep") => {
            let secs = super::parse_float(&args[2])
                .filter(|s| s.is_finite())
                .ok_or(CommandError::NotFloat)?;
            let d = Duration::from_secs_f64(secs.clamp(0.0, 3600.0));
            // Redis's main thread sleeps: nothing runs meanwhile (inside
            // EXEC the transaction holds the gate already).
            let gate = ctx.mode_is_client().then(|| {
                ctx.shared
                    .gate
                    .write_unless(|| ctx.shared.scripts.is_busy())
            });
            std::thread::sleep(d);
            drop(gate);
            Ok(Reply::OK)
        }
        3 if is(sub, "set-active-expire") => {
            let on = super::int_arg(&args[2])? != 0;
            ctx.shared.active_expire.store(on, Ordering::Relaxed);
            Ok(Reply::OK)
        }
        3 if is(sub, "log") => {
            tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(&args[2]));
            Ok(Reply::OK)
        }
        3 if is(sub, "object") => object(ctx, &args[2]),
        3 if is(sub, "listpack") => structure(ctx, &args[2], "listpack"),
        3 | 4 if is(sub, "quicklist") => structure(ctx, &args[2], "quicklist"),
        3 if is(sub, "quicklist-packed-threshold") => packed_threshold(ctx, &args[2]),
        2 if is(sub, "stringmatch-test") => {
            stringmatch_test();
            Ok(Reply::Status(Bytes::from_static(
                b"Apparently Redis did not crash: test passed",
            )))
        }
        2 if is(sub, "reset") => reset(ctx),
        _ if is(sub, "fault") && args.len() >= 3 => fault(ctx, &args[2..]),
        _ if is(sub, "reload") => reload(ctx, &args[2..]),
        _ => Err(syntax()),
    }
}

impl Ctx<'_> {
    /// Whether a client's own request runs (not EXEC's queue, not a script).
    fn mode_is_client(&self) -> bool {
        self.mode == super::CallMode::Client
    }
}

/// Runs `f` on the entry at `key` (and its encoding name) with the shard
/// held; `no such key` without one.
fn inspect(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&crate::keyspace::Entry, &str) -> CommandResult,
) -> CommandResult {
    let now = ctx.now;
    // Inside EXEC the transaction holds the gate already.
    let _gate = ctx.mode_is_client().then(|| ctx.shared.gate.read());
    let mut shard = ctx.db().lock(key);
    let Some(entry) = shard.peek(key, now) else {
        return Err(CommandError::NoSuchKey);
    };
    let encoding = entry.value.encoding(&ctx.shared.encodings);
    f(entry, encoding)
}

/// DEBUG OBJECT key: Redis's line, with the figures latchkey has (the value
/// is not at an address; `serializedlength` is the length of its RDB
/// payload, as Redis's).
fn object(ctx: &mut Ctx<'_>, key: &[u8]) -> CommandResult {
    let now = ctx.now;
    inspect(ctx, key, |entry, encoding| {
        let serialized =
            crate::rdb::dump(&entry.value, false).map_or(0, |p| p.len().saturating_sub(10));
        let idle = entry.idle_seconds(now);
        Ok(Reply::Status(Bytes::from(format!(
            "Value at:0x0 refcount:1 encoding:{encoding} serializedlength:{serialized} lru:0 lru_seconds_idle:{idle}"
        ))))
    })
}

/// DEBUG LISTPACK / QUICKLIST key: Redis prints the value's low-level
/// layout on its standard output; latchkey logs the key's encoding and the
/// size of its payload, and answers as Redis does.
fn structure(ctx: &mut Ctx<'_>, key: &[u8], wanted: &str) -> CommandResult {
    inspect(ctx, key, |entry, encoding| {
        if encoding != wanted {
            return Err(CommandError::err(format!("Not a {wanted} encoded object.")));
        }
        let bytes = crate::rdb::dump(&entry.value, false).map_or(0, |p| p.len());
        tracing::info!(
            "{} {wanted}: {bytes} bytes serialized",
            String::from_utf8_lossy(key)
        );
        let text: &'static [u8] = if wanted == "listpack" {
            b"Listpack structure printed on stdout"
        } else {
            b"Quicklist structure printed on stdout"
        };
        Ok(Reply::Status(Bytes::from_static(text)))
    })
}

/// The largest DEBUG QUICKLIST-PACKED-THRESHOLD (Redis's: 1 MB under 4 GB).
const MAX_PACKED_THRESHOLD: u64 = (1 << 32) - (1 << 20);

/// DEBUG QUICKLIST-PACKED-THRESHOLD <size>: list elements of at least `size`
/// bytes get a plain node of their own once the list is a quicklist (Redis
/// 7.4's rule; Redis's list tests set it to reach plain nodes with small
/// values); 0 (or an empty size, as Redis reads it) restores the default,
/// a limit that follows `list-max-listpack-size`.
fn packed_threshold(ctx: &mut Ctx<'_>, size: &[u8]) -> CommandResult {
    let size = std::str::from_utf8(size).ok().and_then(|s| {
        if s.is_empty() {
            Some(0)
        } else {
            crate::config::memory_value(s)
        }
    });
    match size {
        Some(n) if n <= MAX_PACKED_THRESHOLD => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            ctx.shared
                .encodings
                .list_plain_at
                .store(n, Ordering::Relaxed);
            Ok(Reply::OK)
        }
        _ => Err(CommandError::err(
            "argument must be a memory value bigger than 1 and smaller than 4gb",
        )),
    }
}

/// DEBUG STRINGMATCH-TEST: random patterns against random strings through
/// the glob matcher KEYS, SCAN MATCH and PSUBSCRIBE use (a crash or a hang
/// is the failure).
fn stringmatch_test() {
    let mut rng = fastrand::Rng::new();
    let (mut s, mut p) = ([0u8; 32], [0u8; 32]);
    for _ in 0..100_000 {
        let (sl, pl) = (rng.usize(..32), rng.usize(..32));
        s[..sl].iter_mut().for_each(|b| *b = rng.u8(..128));
        p[..pl].iter_mut().for_each(|b| *b = rng.u8(..128));
        std::hint::black_box(super::keys::glob_match(&p[..pl], &s[..sl]));
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: saves the RDB file (unless
/// NOSAVE), empties the keyspace (unless NOFLUSH) and loads the file back.
fn reload(ctx: &mut Ctx<'_>, opts: &[Bytes]) -> CommandResult {
    let (mut merge, mut flush, mut save) = (false, true, true);
    for o in opts {
        match () {
            _ if is(o, "merge") => merge = true,
            _ if is(o, "noflush") => flush = false,
            _ if is(o, "nosave") => save = false,
            _ => {
                return Err(CommandError::err(
                    "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                ))
            }
        }
    }
    if !ctx.mode_is_client() {
        return Err(CommandError::err(
            "DEBUG RELOAD cannot run inside MULTI or a script",
        ));
    }
    let shared = ctx.shared;
    if save {
        shared.persist.count_save();
        if super::persist::save_now(shared, false).is_err() {
            return Err(CommandError::raw("ERR"));
        }
    }
    let Some(_gate) = shared
        .gate
        .write_unless(|| shared.scripts.is_busy() || shared.is_stopping())
    else {
        return Err(shared.scripts.busy_error());
    };
    let now = shared.clock.now_ms();
    if flush {
        for db in shared.keyspace.dbs() {
            db.clear(now);
        }
    }
    let (path, checksum) = {
        let c = shared.config.read();
        (crate::persist::RdbTarget::of(&c).path(), c.rdbchecksum)
    };
    let loaded = crate::persist::load_file_with(
        &path,
        &shared.keyspace,
        &shared.clock,
        &shared.encodings,
        checksum,
        crate::persist::LoadOptions {
            merge,
            keep_expired: false,
        },
    );
    match loaded {
        Ok(stats) => {
            let functions = stats.map(|s| s.functions).unwrap_or_default();
            if let Err(e) = super::function::load_from_file(shared, &functions, flush) {
                tracing::warn!("DEBUG RELOAD: {e}");
                return Err(CommandError::err("Error trying to load the RDB dump"));
            }
            tracing::warn!("DB reloaded by DEBUG RELOAD");
            Ok(Reply::OK)
        }
        Err(e) => {
            tracing::warn!("DEBUG RELOAD: {e}");
            Err(CommandError::err("Error trying to load the RDB dump"))
        }
    }
}

/// DEBUG FAULT ERROR <command|*> <count> <error line>, DELAY <command|*>
/// <count> <ms>, CLOSE <command|*> <count>, DROP-CLIENTS, REFUSE <ms>,
/// CLEAR, LIST.
fn fault(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    use crate::faults::Action;
    let faults = &ctx.shared.faults;
    let what = &args[0];
    let syntax = || CommandError::subcommand_syntax("debug", b"FAULT");
    fn target(a: &Bytes) -> Option<&[u8]> {
        (a.as_ref() != b"*").then_some(a.as_ref())
    }
    let count = |a: &Bytes| {
        super::int_arg(a)
            .ok()
            .filter(|&n| n > 0)
            .map(|n| n as u64)
            .ok_or_else(|| CommandError::err("count must be a positive integer"))
    };
    let ms = |a: &Bytes| {
        super::int_arg(a)
            .ok()
            .filter(|&n| (0..=MAX_FAULT_MS).contains(&n))
            .map(|n| Duration::from_millis(n as u64))
            .ok_or_else(|| {
                CommandError::err(format!("time must be between 0 and {MAX_FAULT_MS} ms"))
            })
    };
    match args.len() {
        4 if is(what, "error") => {
            let line = String::from_utf8_lossy(&args[3]).replace(['\r', '\n'], " ");
            if line.trim().is_empty() {
                return Err(CommandError::err("the error line is empty"));
            }
            faults.add(target(&args[1]), count(&args[2])?, Action::Error(line));
        }
        4 if is(what, "delay") => {
            faults.add(
                target(&args[1]),
                count(&args[2])?,
                Action::Delay(ms(&args[3])?),
            );
        }
        3 if is(what, "close") => faults.add(target(&args[1]), count(&args[2])?, Action::Close),
        2 if is(what, "refuse") => faults.refuse_for(ms(&args[1])?),
        1 if is(what, "drop-clients") => {
            let me = ctx.session.info.id;
            for c in ctx.shared.clients.iter() {
                if c.id != me {
                    c.kill();
                }
            }
        }
        1 if is(what, "clear") => faults.clear(),
        1 if is(what, "list") => {
            let rules = faults
                .list()
                .into_iter()
                .map(|(command, remaining, action)| {
                    let (kind, arg) = match action {
                        Action::Error(line) => ("error", Reply::bulk_string(line)),
                        Action::Delay(d) => ("delay", Reply::Int(d.as_millis() as i64)),
                        Action::Close => ("close", Reply::Nil),
                    };
                    Reply::Array(vec![
                        Reply::bulk_string(command),
                        Reply::Int(remaining as i64),
                        Reply::bulk_str(kind),
                        arg,
                    ])
                })
                .collect();
            return Ok(Reply::Array(rules));
        }
        _ => return Err(syntax()),
    }
    Ok(Reply::OK)
}

/// The longest DEBUG FAULT DELAY or REFUSE (an hour).
const MAX_FAULT_MS: i64 = 3_600_000;

/// DEBUG RESET: what a test suite wants between tests, in one command —
/// every database flushed (locks with it), the script cache and the
/// function libraries emptied, faults cleared, the slow log emptied, active
/// expiry on, the plain-node threshold at its default, the clock running again (an advance
/// is kept: server time never goes back, so fencing tokens and deadlines stay
/// ordered).
fn reset(ctx: &mut Ctx<'_>) -> CommandResult {
    if !ctx.mode_is_client() {
        return Err(CommandError::err(
            "DEBUG RESET cannot run inside MULTI or a script",
        ));
    }
    ctx.session.aof_offset = reset_server(ctx.shared)?;
    Ok(Reply::OK)
}

/// What DEBUG RESET does, for [`crate::ServerHandle::reset`] too: the
/// returned AOF offset is the one a client waits on (WAITAOF).
pub fn reset_server(shared: &crate::server::Shared) -> Result<u64, CommandError> {
    let Some(_gate) = shared
        .gate
        .write_unless(|| shared.scripts.is_busy() || shared.is_stopping())
    else {
        return Err(shared.scripts.busy_error());
    };
    let now = shared.clock.now_ms();
    let offset = {
        // A FLUSHALL for the AOF, as one unit.
        let _order = shared.aof.order();
        for db in shared.keyspace.dbs() {
            db.clear(now);
        }
        shared.scripts.functions.flush();
        shared.keyspace.note_function_change();
        if shared.keyspace.hook().is_logging() {
            crate::propagate::push(0, vec![Bytes::from_static(b"FLUSHALL")]);
            crate::propagate::push(
                0,
                vec![
                    Bytes::from_static(b"FUNCTION"),
                    Bytes::from_static(b"FLUSH"),
                ],
            );
        }
        crate::persist::aof::end_unit(shared)
    };
    shared.scripts.flush();
    shared.faults.clear();
    shared.slowlog.reset();
    shared.latency.reset(None);
    shared.active_expire.store(true, Ordering::Relaxed);
    shared.encodings.list_plain_at.store(0, Ordering::Relaxed);
    shared.clock.resume();
    Ok(offset)
}

fn help() -> Reply {
    super::help_reply(
        "DEBUG",
        &[
            "ADVANCE-TIME <milliseconds>",
            "    Move the server clock forward; what becomes due (TTLs, lock leases) happens at once.",
            "CHANGE-REPL-ID",
            "    Accepted (latchkey has no replication).",
            "FAULT ERROR <command|*> <count> <error line>",
            "    The next <count> such commands answer the error instead of running.",
            "FAULT DELAY <command|*> <count> <milliseconds>",
            "    The next <count> such commands run, and their replies wait.",
            "FAULT CLOSE <command|*> <count>",
            "    The next <count> such commands close their connection, unanswered.",
            "FAULT DROP-CLIENTS",
            "    Close every other client's connection.",
            "FAULT REFUSE <milliseconds>",
            "    Close new connections at once for that long.",
            "FAULT CLEAR | FAULT LIST",
            "    Remove every fault / list the rules set.",
            "LISTPACK <key>",
            "    Show low level info about the listpack encoding of <key>.",
            "LOG <message>",
            "    Write <message> to the server log.",
            "OBJECT <key>",
            "    Show low level info about the key and associated value.",
            "QUICKLIST <key> [<0|1>]",
            "    Show low level info about the quicklist encoding of <key>.",
            "QUICKLIST-PACKED-THRESHOLD <size>",
            "    Sets the threshold for elements to be inserted as plain vs packed nodes",
            "    Setting to 0 restores the default, which follows list-max-listpack-size.",
            "PAUSE-TIME",
            "    Stop the server clock (only ADVANCE-TIME moves it).",
            "RELOAD [option ...]",
            "    Save the RDB on disk and reload it back to memory. Options: MERGE, NOFLUSH, NOSAVE.",
            "RESET",
            "    Flush every database, the script cache, functions, faults, the slow log and latency events; active expiry on; the default plain-node threshold; the clock running.",
            "RESUME-TIME",
            "    Let the server clock run again from where it stands.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Setting it to 0 disables expiring keys in background when they are not accessed.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
            "STRINGMATCH-TEST",
            "    Run a fuzz tester against the stringmatchlen() function.",
        ],
    )
}
