//! Persistence commands: SAVE, BGSAVE, LASTSAVE. And what the server does
//! with the RDB file outside a command, on the same paths: the background
//! thread (BGSAVE, scheduled saves, save points), the final save of SHUTDOWN
//! and of SIGTERM/SIGINT, FLUSHALL's save, and the start-up load.
//!
//! SAVE runs on the calling connection's worker thread, which it keeps for
//! the whole write, as Redis's SAVE keeps its one thread: with `io-threads
//! 1` (the default) every client waits. Clients on other workers run on:
//! the snapshot (`persist::Snapshot`) stops them only for its instant. The
//! final save holds the execution gate from before its snapshot until the
//! server is marked stopping, so no write is acknowledged after it. Every
//! save is numbered at its instant and a file never goes over a newer one.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{flag, is, CallMode, CommandResult, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::persist::{self, aof, Job, Outcome, RdbTarget, Snapshot, SnapshotError};
use crate::reply::Reply;
use crate::server::Shared;

/// The persistence family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "save",
        1,
        flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING | flag::NO_MULTI | flag::OWN_GATE,
        save,
    )
    .acl(&["@admin", "@slow", "@dangerous"])
    .doc(
        "server",
        "1.0.0",
        "Synchronously saves the database(s) to disk.",
    ),
    CommandSpec::new(
        "bgsave",
        -1,
        flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING | flag::OWN_GATE,
        bgsave,
    )
    .acl(&["@admin", "@slow", "@dangerous"])
    .doc(
        "server",
        "1.0.0",
        "Asynchronously saves the database(s) to disk.",
    ),
    CommandSpec::new(
        "bgrewriteaof",
        1,
        flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING,
        bgrewriteaof,
    )
    .acl(&["@admin", "@slow", "@dangerous"])
    .doc(
        "server",
        "1.0.0",
        "Asynchronously rewrites the append-only file to disk.",
    ),
    CommandSpec::new(
        "lastsave",
        1,
        flag::LOADING | flag::STALE | flag::FAST,
        lastsave,
    )
    .acl(&["@admin", "@fast", "@dangerous"])
    .tips(&["nondeterministic_output"])
    .doc(
        "server",
        "1.0.0",
        "Returns the Unix timestamp of the last successful save to disk.",
    ),
];

fn in_progress() -> CommandError {
    CommandError::err("Background save already in progress")
}

fn save(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let shared = ctx.shared;
    if shared.persist.bgsave_in_progress() {
        return Err(in_progress());
    }
    shared.persist.count_save();
    match save_now(shared, false) {
        Ok(()) => Ok(Reply::OK),
        Err(SaveError::InProgress) => Err(in_progress()),
        Err(SaveError::Busy) => Err(shared.scripts.busy_error()),
        // Redis answers a bare `-ERR` and logs why.
        Err(SaveError::Io(_)) => Err(CommandError::raw("ERR")),
    }
}

fn bgsave(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    match args {
        [_] => {}
        [_, opt] if is(opt, "schedule") => {}
        _ => return Err(CommandError::Syntax),
    }
    let persist = &ctx.shared.persist;
    let schedule = args.len() == 2;
    if ctx.shared.aof.rewrite_running() && !persist.bgsave_in_progress() {
        // Redis's "another child": the rewrite's snapshot is being walked.
        if schedule || ctx.mode == CallMode::Transaction {
            persist.schedule_bgsave();
            return Ok(Reply::Simple("Background saving scheduled"));
        }
        return Err(CommandError::err(
            "Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
        ));
    }
    if ctx.mode == CallMode::Transaction {
        // Refused only while a snapshot is really being walked (Redis: a
        // child is running); one asked for waits for this EXEC's gate.
        if ctx.shared.keyspace.snapshot_running() {
            return Err(in_progress());
        }
        persist.schedule_bgsave();
        return Ok(Reply::Simple("Background saving scheduled"));
    }
    if persist.bgsave_in_progress() {
        return Err(in_progress());
    }
    // The snapshot's instant is now, as Redis's fork is: the background
    // thread only walks it.
    let shared = ctx.shared;
    let begun = {
        // A script that turned busy since the dispatcher looked holds the
        // gate: answer BUSY rather than keep this worker waiting (as EXEC).
        let Some(_gate) = exclusive(shared) else {
            return Err(shared.scripts.busy_error());
        };
        Snapshot::begin_held(&shared.keyspace, &shared.clock)
            .map(|s| (s.detach(), persist.next_seq()))
    };
    let begun = begun.map_err(|_| in_progress())?;
    if let Err((_, begun)) = persist.request_bgsave(ctx.now, Some(begun)) {
        let_go(shared, begun);
        return Err(in_progress());
    }
    tracing::info!("Background saving started");
    Ok(Reply::Simple("Background saving started"))
}

/// Lets go of a begun snapshot nobody will write.
fn let_go(shared: &Shared, begun: Option<(persist::Detached, u64)>) {
    if let Some((detached, _)) = begun {
        drop(Snapshot::attach(&shared.keyspace, detached));
    }
}

fn bgrewriteaof(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let shared = ctx.shared;
    if shared.aof.rewrite_running() {
        return Err(CommandError::err(
            "Background append only file rewriting already in progress",
        ));
    }
    let busy = shared.persist.bgsave_in_progress() || ctx.mode == CallMode::Transaction;
    if !shared.aof.request_rewrite(!busy) {
        return Err(CommandError::err(
            "Background append only file rewriting already in progress",
        ));
    }
    shared.persist.wake();
    if busy {
        // It starts when the background save (or this transaction) ends.
        return Ok(Reply::Simple(
            "Background append only file rewriting scheduled",
        ));
    }
    tracing::info!("Background append only file rewriting started");
    Ok(Reply::Simple(
        "Background append only file rewriting started",
    ))
}

fn lastsave(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Int(
        ctx.shared.persist.report(ctx.now).lastsave_s as i64,
    ))
}

/// Why a save did not happen.
#[derive(Debug)]
pub enum SaveError {
    /// Another snapshot is being taken.
    InProgress,
    /// A busy script (or shutdown) holds the gate (a SAVE on a client's
    /// worker gives up; the background thread waits).
    Busy,
    /// Writing the file failed (logged).
    Io(io::Error),
}

/// Saves the keyspace to the RDB file now (SAVE; a background save's thread
/// with `background`). The caller does not hold the gate. Logs and records
/// the outcome.
pub fn save_now(shared: &Shared, background: bool) -> Result<(), SaveError> {
    let begun = crate::background::urgent(|| {
        let gate = if background {
            Some(shared.gate.write())
        } else {
            exclusive(shared)
        };
        let _gate = gate?;
        Some(
            Snapshot::begin_held(&shared.keyspace, &shared.clock)
                .map(|s| (s, shared.persist.next_seq())),
        )
    });
    let (snapshot, seq) = match begun.ok_or(SaveError::Busy)? {
        Ok(b) => b,
        Err(SnapshotError::InProgress) => {
            if background {
                shared
                    .persist
                    .finished(Outcome::Superseded, shared.clock.now_ms(), true);
            }
            return Err(SaveError::InProgress);
        }
    };
    let snapshot = if background {
        snapshot.with_cancel(shared.persist.cancel_flag())
    } else {
        snapshot
    };
    write_and_record(shared, snapshot, seq, background)
}

/// The gate, exclusively, for a command on a client's worker: `None` if a
/// busy script or a shutdown holds it up.
fn exclusive(shared: &Shared) -> Option<crate::gate::WriteGuard<'_>> {
    shared
        .gate
        .write_unless(|| shared.scripts.is_busy() || shared.is_stopping())
}

/// Writes a begun snapshot (save number `seq`) to the file, logs and
/// records how it went.
fn write_and_record(
    shared: &Shared,
    snapshot: Snapshot<'_>,
    seq: u64,
    background: bool,
) -> Result<(), SaveError> {
    let target = RdbTarget::of(&shared.config.read());
    let written = persist::write_snapshot(snapshot, &target, &shared.persist, seq);
    let now = shared.clock.now_ms();
    let outcome = match &written {
        Ok(Some(dirty)) => Outcome::Saved { dirty: *dirty },
        Ok(None) => Outcome::Superseded,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Outcome::Superseded,
        Err(_) => Outcome::Failed,
    };
    shared.persist.finished(outcome, now, background);
    match (written, background) {
        (Ok(Some(_)), true) => tracing::info!("Background saving terminated with success"),
        (Ok(Some(_)), false) => tracing::info!("DB saved on disk"),
        (Ok(None), _) => tracing::info!("A newer save's file is in place; this one is dropped"),
        (Err(e), true) => {
            tracing::warn!("Background saving error: {e}");
            if outcome == Outcome::Failed {
                return Err(SaveError::Io(e));
            }
        }
        (Err(e), false) => {
            tracing::warn!("Error saving DB on disk: {e}");
            return Err(SaveError::Io(e));
        }
    }
    Ok(())
}

/// How much nicer than the server the save thread runs when it runs at the
/// normal policy: where `SCHED_IDLE` cannot be used, and after its watch
/// found it starved ([`crate::background`]). A background save or rewrite
/// walks the keyspace flat out; at the workers' own nice it took turns on a
/// CPU with a worker serving clients, and GET's p99 while it ran was 1.3x
/// redis-server's (whose fork child does the walk); 10 nicer it was 0.81x in
/// a good run (benches/rdb.py), but no better than chance from round to round.
const SAVE_NICE: i32 = 10;

/// The background thread: takes BGSAVE requests, scheduled saves and fired
/// save points from `Persistence`, one at a time, until shutdown. It is a
/// [`crate::background`] thread (`SCHED_IDLE`), [`SAVE_NICE`] nicer than the
/// server for the times it runs at the normal policy.
pub fn spawn_saver(shared: Arc<Shared>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("latchkey-save".into())
        .spawn(move || {
            crate::background::lower_priority(SAVE_NICE);
            if !crate::background::enter(crate::background::WINDOW) {
                tracing::debug!("the save thread runs at the normal policy");
            }
            const TICK: Duration = Duration::from_millis(100);
            while !shared.is_stopping() {
                if shared.is_loading() {
                    // Nothing is saved from a half-loaded keyspace.
                    std::thread::sleep(TICK);
                    continue;
                }
                let points = shared.config.read().save_points.clone();
                let job = shared.persist.next_job(
                    TICK,
                    || shared.clock.now_ms(),
                    &points,
                    || shared.keyspace.dirty(),
                    || shared.aof.rewrite_running(),
                );
                if job == Job::Bgsave && !shared.is_stopping() {
                    crate::background::begin_job();
                    let _ = match shared.persist.take_begun() {
                        Some((detached, seq)) => {
                            let snapshot = Snapshot::attach(&shared.keyspace, detached)
                                .with_cancel(shared.persist.cancel_flag());
                            write_and_record(&shared, snapshot, seq, true)
                        }
                        None => save_now(&shared, true),
                    };
                } else if job == Job::Bgsave {
                    let_go(&shared, shared.persist.take_begun());
                    shared
                        .persist
                        .finished(Outcome::Superseded, shared.clock.now_ms(), true);
                }
                run_rewrites(&shared);
            }
            // A BGSAVE begun as the server stopped.
            let_go(&shared, shared.persist.take_begun());
        })
}

/// The AOF's background work, on the save thread between saves: turning it
/// on (`CONFIG SET appendonly yes`), BGREWRITEAOF, and the automatic
/// rewrite once the file has grown `auto-aof-rewrite-percentage` past its
/// last rewrite and is over `auto-aof-rewrite-min-size`.
fn run_rewrites(shared: &Shared) {
    if shared.is_stopping() || shared.persist.bgsave_in_progress() {
        return;
    }
    let aof = &shared.aof;
    let held = aof.rewrites_held(shared.clock.now_ms());
    if !held && aof.take_start_request() {
        aof.take_rewrite_request();
        if !aof::rewrite(shared, true) {
            // Redis keeps trying until it can turn the AOF on.
            aof.request_start();
        }
        return;
    }
    let auto = !held && {
        let c = shared.config.read();
        aof.wants_auto_rewrite(c.auto_aof_rewrite_percentage, c.auto_aof_rewrite_min_size)
    };
    if auto {
        tracing::info!("Starting automatic rewriting of AOF");
    }
    if aof.take_rewrite_request() || auto {
        aof::rewrite(shared, false);
    }
}

/// Loads the AOF the manifest names (`appendonly yes`) at start-up, then
/// opens it for appending. `Ok(false)`: there was none (a new one is made).
fn load_aof_at_start(shared: &Shared) -> Result<bool, String> {
    let started = std::time::Instant::now();
    let (manifest, longest, counts) = aof::load(shared)?;
    let now = shared.clock.now_ms();
    shared.persist.starting(now / 1000, shared.keyspace.dirty());
    let found = manifest.is_some();
    // With `appendfsync always` no grant or renewal acknowledged before the
    // restart is missing from the file: no grace is needed. Otherwise the
    // last second's may be, and the grace covers them.
    let always = shared.config.read().appendfsync == aof::Fsync::Always.name();
    shared.keyspace.locks().note_lease(longest);
    let grace_from = found.then_some(if always { 0 } else { longest });
    start_restart_grace(shared, grace_from, now);
    aof::open_at_start(shared, manifest)?;
    if found {
        shared.persist.loaded(counts.keys, counts.expired);
        tracing::info!(
            "DB loaded from append only file: {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(found)
}

/// How SHUTDOWN (or a signal) treats the RDB file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalSave {
    /// Save if save points are set (no argument; SIGTERM, SIGINT).
    Default,
    /// SHUTDOWN SAVE.
    Save,
    /// SHUTDOWN NOSAVE.
    NoSave,
}

/// Stops the server, saving first as `mode` says. A running background save
/// is stopped; the gate is held from the save's instant until the server is
/// marked stopping, so nothing runs after the save. Returns whether the
/// server is stopping: if the save fails it keeps running, unless `force`.
pub fn shut_down(shared: &Shared, mode: FinalSave, force: bool) -> bool {
    // A half-loaded keyspace is never saved (Redis: NOSAVE while loading).
    let mode = if shared.is_loading() {
        FinalSave::NoSave
    } else {
        mode
    };
    let wants = match mode {
        FinalSave::Save => true,
        FinalSave::NoSave => false,
        FinalSave::Default => !shared.config.read().save_points.is_empty(),
    };
    if !wants {
        shared.shutdown();
        return true;
    }
    // Stop a background save and wait until its walk has let go. Another
    // shutdown (SHUTDOWN NOSAVE stopping a busy script this one waits
    // behind) wins: nothing is saved then, as in Redis.
    shared.persist.cancel_running(true);
    let gate = loop {
        let Some(gate) = shared.gate.write_unless(|| shared.is_stopping()) else {
            return true;
        };
        if shared.is_stopping() {
            return true;
        }
        // A BGSAVE's snapshot the background thread has not taken yet.
        if let Some(begun) = shared.persist.take_begun() {
            let_go(shared, Some(begun));
            shared
                .persist
                .finished(Outcome::Superseded, shared.clock.now_ms(), true);
        }
        if !shared.keyspace.snapshot_running() {
            break gate;
        }
        drop(gate);
        std::thread::sleep(Duration::from_millis(1));
    };
    shared.persist.cancel_running(false);
    tracing::info!("Saving the final RDB snapshot before exiting.");
    // The newest number: a background save still syncing its file when this
    // one lands cannot go over it.
    let seq = shared.persist.next_seq();
    let saved = match Snapshot::begin_held(&shared.keyspace, &shared.clock) {
        Ok(snapshot) => write_and_record(shared, snapshot, seq, false).is_ok(),
        Err(_) => false,
    };
    if !saved && !force {
        tracing::warn!("Error trying to save the DB, can't exit.");
        return false;
    }
    if !saved {
        tracing::warn!("Error trying to save the DB. Exit anyway.");
    }
    shared.shutdown();
    drop(gate);
    true
}

/// FLUSHALL with save points set writes the now empty keyspace (its
/// fencing-token mark only), as Redis does, superseding a running save.
pub fn save_after_flushall(shared: &Shared) {
    let target = {
        let config = shared.config.read();
        if config.save_points.is_empty() {
            return;
        }
        RdbTarget::of(&config)
    };
    let locks = shared.keyspace.locks();
    let (fencing, longest) = (locks.high_water(), locks.longest_lease());
    let now = shared.clock.now_ms();
    let dirty = shared.keyspace.dirty();
    // Numbered after the flush: a save running now (its instant before the
    // flush) cannot go over this file.
    let seq = shared.persist.next_seq();
    match persist::write_empty(fencing, longest, &target, &shared.persist, seq) {
        Ok(()) => {
            shared
                .persist
                .finished(Outcome::Saved { dirty }, now, false);
            tracing::info!("DB saved on disk");
        }
        Err(e) => {
            shared.persist.finished(Outcome::Failed, now, false);
            tracing::warn!("Error saving DB on disk: {e}");
        }
    }
}

/// Whether [`load_at_start`] has no file to read: no append-only file is on
/// and the RDB file is not there. Such a load takes microseconds, so the
/// binary runs it in place instead of on a thread of its own.
pub fn nothing_to_load(shared: &Shared) -> bool {
    let config = shared.config.read();
    !config.appendonly && !RdbTarget::of(&config).path().exists()
}

/// Loads the RDB file named by the options into the (empty) keyspace at
/// start-up. `Ok(false)`: there was no file.
pub fn load_at_start(shared: &Shared) -> Result<bool, String> {
    if shared.config.read().appendonly {
        // Redis loads only the AOF when it is on, whatever RDB file is there.
        return load_aof_at_start(shared);
    }
    let (path, checksum) = {
        let config = shared.config.read();
        (RdbTarget::of(&config).path(), config.rdbchecksum)
    };
    let started = std::time::Instant::now();
    let loaded = persist::load_file(
        &path,
        &shared.keyspace,
        &shared.clock,
        &shared.encodings,
        checksum,
    )
    .map_err(|e| format!("Failed loading {}: {e}", path.display()))?;
    let now = shared.clock.now_ms();
    shared.persist.starting(now / 1000, shared.keyspace.dirty());
    start_restart_grace(shared, loaded.as_ref().map(|s| s.longest_lease), now);
    let Some(stats) = loaded else {
        return Ok(false);
    };
    super::function::load_from_file(shared, &stats.functions, false)?;
    shared.persist.loaded(stats.loaded, stats.expired);
    tracing::info!(
        "Done loading RDB, keys loaded: {}, keys expired: {}.",
        stats.loaded,
        stats.expired
    );
    tracing::info!(
        "DB loaded from disk: {:.3} seconds",
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// The longest automatic restart grace (1 hour): a lease granted once for
/// longer (a client's typo, or a hostile one) makes every later restart
/// keep free locks from everyone at most this long. Longer leases are
/// covered only by an explicit `lock-restart-grace`.
pub const AUTO_GRACE_MAX_MS: u64 = 3_600_000;

/// Starts the restart grace (`lock-restart-grace`): for this long after the
/// start, a lock nobody is known to hold (none in the file, or its holder's
/// lease ran out) is granted to nobody — a holder from before the restart,
/// whose acquire or renewal came after the last save, may still believe it
/// holds it. `auto` (the default) lasts the longest lease the previous run
/// had granted when it saved (`longest_lease`, from the file), carried on
/// into this run's figure, at most [`AUTO_GRACE_MAX_MS`]; with no file there
/// is nothing to go by and no grace. A length set explicitly starts the
/// figure afresh.
pub fn start_restart_grace(shared: &Shared, longest_lease: Option<u64>, now: u64) {
    let grace = match shared.config.read().lock_restart_grace {
        Some(ms) => ms,
        None => {
            let longest = longest_lease.unwrap_or(0);
            shared.keyspace.locks().note_lease(longest);
            longest.min(AUTO_GRACE_MAX_MS)
        }
    };
    if grace == 0 {
        return;
    }
    shared
        .keyspace
        .locks()
        .set_restart_grace(crate::types::lock::lease_end(now, grace));
    tracing::info!("Restart grace: locks nobody is known to hold are granted again in {grace} ms");
}
