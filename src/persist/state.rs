//! [`Persistence`]: what the server knows about its saves — whether a
//! background save runs or waits, when the last one ended and how, the
//! change count it started from — and the one background thread's mailbox.
//!
//! The rules are Redis's (`rdb.c`, `serverCron`): one save at a time; BGSAVE
//! while one runs is refused, inside MULTI (or with SCHEDULE beside another
//! job) it is scheduled; a save point fires when enough changes were made and
//! enough time passed since the last save, and after a failed background save
//! no sooner than [`RETRY_DELAY_S`] after it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::config::SavePoint;

use super::Detached;

/// Seconds between a failed background save and the next save-point try
/// (Redis's `CONFIG_BGSAVE_RETRY_DELAY`).
pub const RETRY_DELAY_S: u64 = 5;

/// The save state and the background thread's mailbox.
#[derive(Debug, Default)]
pub struct Persistence {
    state: Mutex<State>,
    wake: Condvar,
    /// Set to stop a running background save (SHUTDOWN, FLUSHALL).
    cancel: AtomicBool,
    /// Numbers every save in the order of its instant ([`Self::next_seq`]:
    /// taken with the gate held, so in the order of the keyspace states the
    /// files hold).
    seq: AtomicU64,
    /// The number of the newest file put in place: an older save finishing
    /// later (a BGSAVE still syncing when SHUTDOWN's save or a FLUSHALL's
    /// lands) must not go over it. The mutex serializes putting files in
    /// place.
    placed: Mutex<u64>,
    /// Names temporary files apart.
    temp_seq: AtomicU64,
    /// `stop-writes-on-bgsave-error` is on and save points are set.
    deny_policy: AtomicBool,
    /// The last background save failed (what `last_failed` says, for the
    /// write path to read without the mutex).
    bgsave_failed: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// A background save asked for and not yet started, or running.
    bgsave: Option<Bgsave>,
    /// BGSAVE SCHEDULE (or BGSAVE in MULTI): run one when none runs.
    scheduled: bool,
    /// When the last successful save ended (server clock, s); start-up counts.
    lastsave_s: u64,
    /// When the last background save was tried (s).
    last_try_s: u64,
    /// Whether the last background save succeeded (`rdb_last_bgsave_status`).
    last_failed: bool,
    /// Seconds the last background save took; -1 before the first.
    last_duration_s: Option<u64>,
    /// Saves started (`rdb_saves`).
    saves: u64,
    /// `Keyspace::dirty` at the instant of the last successful save.
    dirty_base: u64,
    /// Keys loaded and keys found expired by the start-up load.
    loaded: u64,
    load_expired: u64,
}

#[derive(Debug)]
struct Bgsave {
    /// When it was asked for (ms, server clock).
    since_ms: u64,
    /// Whether the background thread has taken it.
    taken: bool,
    /// The snapshot BGSAVE began at its instant, with its save number;
    /// `None` for a save point or a scheduled save, which begin their own.
    begun: Option<(Detached, u64)>,
}

/// Why BGSAVE did not start one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BgsaveRefused {
    /// One is asked for or running.
    InProgress,
}

/// How a save ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its file is in place; `dirty` is the change count at its instant.
    Saved {
        /// `Keyspace::dirty` at the snapshot's instant.
        dirty: u64,
    },
    /// Writing or placing the file failed.
    Failed,
    /// A newer save's file was in place first (a FLUSHALL's, the final
    /// one), or it was stopped for one: its file was dropped.
    Superseded,
}

/// What the background thread is to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A background save (BGSAVE, a scheduled one, a save point).
    Bgsave,
    /// Nothing for now: look at the save points again.
    Tick,
}

/// INFO's `# Persistence` figures.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// `rdb_bgsave_in_progress`.
    pub in_progress: bool,
    /// `rdb_last_save_time`.
    pub lastsave_s: u64,
    /// `rdb_last_bgsave_status` is `ok`.
    pub last_ok: bool,
    /// `rdb_last_bgsave_time_sec` (-1 before the first).
    pub last_duration_s: i64,
    /// `rdb_current_bgsave_time_sec` (-1 when none runs).
    pub current_s: i64,
    /// `rdb_saves`.
    pub saves: u64,
    /// `Keyspace::dirty` at the last save.
    pub dirty_base: u64,
    /// `rdb_last_load_keys_loaded`.
    pub loaded: u64,
    /// `rdb_last_load_keys_expired`.
    pub load_expired: u64,
}

impl Persistence {
    /// The state of a server that started at `now_s` (server clock) with
    /// `dirty` changes counted (what loading the file made).
    pub fn starting(&self, now_s: u64, dirty: u64) {
        let mut s = self.state.lock();
        s.lastsave_s = now_s;
        s.dirty_base = dirty;
    }

    /// Notes what the start-up load found.
    pub fn loaded(&self, keys: u64, expired: u64) {
        let mut s = self.state.lock();
        s.loaded = keys;
        s.load_expired = expired;
    }

    /// Whether a background save is asked for or running.
    pub fn bgsave_in_progress(&self) -> bool {
        self.state.lock().bgsave.is_some()
    }

    /// BGSAVE: asks the background thread for a save at `now_ms`, of the
    /// snapshot `begun` (with its save number) if given. A
    /// refused request hands `begun` back.
    pub fn request_bgsave(
        &self,
        now_ms: u64,
        begun: Option<(Detached, u64)>,
    ) -> Result<(), (BgsaveRefused, Option<(Detached, u64)>)> {
        let mut s = self.state.lock();
        if s.bgsave.is_some() {
            return Err((BgsaveRefused::InProgress, begun));
        }
        s.bgsave = Some(Bgsave {
            since_ms: now_ms,
            taken: false,
            begun,
        });
        s.saves += 1;
        s.last_try_s = now_ms / 1000;
        drop(s);
        self.wake.notify_all();
        Ok(())
    }

    /// BGSAVE SCHEDULE, or BGSAVE inside MULTI: one runs when none does.
    pub fn schedule_bgsave(&self) {
        self.state.lock().scheduled = true;
        self.wake.notify_all();
    }

    /// SAVE (and the saves of SHUTDOWN and FLUSHALL) counts in `rdb_saves`.
    pub fn count_save(&self) {
        self.state.lock().saves += 1;
    }

    /// The background thread's wait: the next job, after at most `tick`.
    /// A scheduled save or a fired save point is turned into a request here
    /// (`now_ms`, `dirty`: the clock and `Keyspace::dirty` when asked;
    /// `dirty` is read only when there are save points), unless `rewriting`
    /// says an AOF rewrite is due: it goes first, as Redis starts no save
    /// while its child runs.
    pub fn next_job(
        &self,
        tick: Duration,
        now_ms: impl Fn() -> u64,
        points: &[SavePoint],
        dirty: impl Fn() -> u64,
        rewriting: impl Fn() -> bool,
    ) -> Job {
        let mut s = self.state.lock();
        if s.bgsave.as_ref().is_none_or(|b| b.taken) {
            self.wake.wait_for(&mut s, tick);
        }
        let now = now_ms();
        let rewriting = s.bgsave.is_none() && rewriting();
        if s.bgsave.is_none() && s.scheduled && !rewriting {
            s.scheduled = false;
            s.bgsave = Some(Bgsave {
                since_ms: now,
                taken: false,
                begun: None,
            });
            s.saves += 1;
            s.last_try_s = now / 1000;
        }
        if s.bgsave.is_none() && !points.is_empty() && !rewriting {
            let now_s = now / 1000;
            let changes = dirty().wrapping_sub(s.dirty_base);
            let may_try = !s.last_failed || now_s.saturating_sub(s.last_try_s) > RETRY_DELAY_S;
            if let Some(p) = points.iter().find(|p| {
                changes >= p.changes && now_s.saturating_sub(s.lastsave_s) > p.seconds && may_try
            }) {
                tracing::info!("{} changes in {} seconds. Saving...", p.changes, p.seconds);
                s.bgsave = Some(Bgsave {
                    since_ms: now,
                    taken: false,
                    begun: None,
                });
                s.saves += 1;
                s.last_try_s = now_s;
            }
        }
        match s.bgsave.as_mut() {
            Some(b) if !b.taken => {
                b.taken = true;
                Job::Bgsave
            }
            _ => Job::Tick,
        }
    }

    /// The snapshot a BGSAVE began, for the background thread to write (or,
    /// at shutdown, to let go of).
    pub fn take_begun(&self) -> Option<(Detached, u64)> {
        self.state.lock().bgsave.as_mut()?.begun.take()
    }

    /// A save ended at `now_ms`. `background` for a BGSAVE's.
    pub fn finished(&self, outcome: Outcome, now_ms: u64, background: bool) {
        let mut s = self.state.lock();
        if let Outcome::Saved { dirty } = outcome {
            s.dirty_base = dirty;
            s.lastsave_s = now_ms / 1000;
        }
        if background {
            if let Some(b) = s.bgsave.take() {
                s.last_duration_s = Some(now_ms.saturating_sub(b.since_ms) / 1000);
            }
        }
        match outcome {
            // Redis's rdbSave sets the status too.
            Outcome::Saved { .. } => s.last_failed = false,
            Outcome::Failed if background => s.last_failed = true,
            // A foreground failure is the caller's error reply; a save
            // superseded by a newer one is no failure (Redis's killed child
            // keeps the status).
            Outcome::Failed | Outcome::Superseded => {}
        }
        self.bgsave_failed.store(s.last_failed, Ordering::Release);
    }

    /// Sets the policy of [`Self::writes_denied`] from the options
    /// (start-up and CONFIG SET).
    pub fn set_policy(&self, stop_writes_on_error: bool, has_save_points: bool) {
        self.deny_policy
            .store(stop_writes_on_error && has_save_points, Ordering::Release);
    }

    /// Whether writes (and PING) are refused with MISCONF: the last
    /// background save failed, `stop-writes-on-bgsave-error` is on and save
    /// points are set (Redis's `writeCommandsDeniedByDiskError`). Two relaxed
    /// loads on every write.
    #[inline]
    pub fn writes_denied(&self) -> bool {
        self.bgsave_failed.load(Ordering::Relaxed) && self.deny_policy.load(Ordering::Relaxed)
    }

    /// Stops a running background save (it ends with an error and puts no
    /// file in place) and lets the next one run.
    pub fn cancel_running(&self, on: bool) {
        self.cancel.store(on, Ordering::Release);
    }

    /// The flag a background save's walk stops at.
    pub fn cancel_flag(&self) -> &AtomicBool {
        &self.cancel
    }

    /// The next save's number; the caller holds the execution gate (shared
    /// for FLUSHALL, which has just emptied the keyspace; exclusive for a
    /// snapshot's instant).
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Runs `place` (a rename into place) for save number `seq`, unless a
    /// newer save's file is in place already. Returns whether it ran.
    pub fn place<E>(&self, seq: u64, place: impl FnOnce() -> Result<(), E>) -> Result<bool, E> {
        let mut placed = self.placed.lock();
        if seq <= *placed {
            return Ok(false);
        }
        place()?;
        *placed = seq;
        Ok(true)
    }

    /// A fresh number for a temporary file's name.
    pub fn temp_seq(&self) -> u64 {
        self.temp_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// INFO's figures at `now_ms`.
    pub fn report(&self, now_ms: u64) -> Report {
        let s = self.state.lock();
        Report {
            in_progress: s.bgsave.is_some(),
            lastsave_s: s.lastsave_s,
            last_ok: !s.last_failed,
            last_duration_s: s.last_duration_s.map_or(-1, |d| d as i64),
            current_s: s
                .bgsave
                .as_ref()
                .map_or(-1, |b| (now_ms.saturating_sub(b.since_ms) / 1000) as i64),
            saves: s.saves,
            dirty_base: s.dirty_base,
            loaded: s.loaded,
            load_expired: s.load_expired,
        }
    }

    /// Wakes the background thread (at shutdown).
    pub fn wake(&self) {
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(seconds: u64, changes: u64) -> SavePoint {
        SavePoint { seconds, changes }
    }

    const NO_WAIT: Duration = Duration::from_millis(0);

    #[test]
    fn a_save_point_fires_after_its_seconds_and_changes() {
        let p = Persistence::default();
        p.starting(1000, 0);
        let points = [point(60, 10)];
        // 9 changes after 61 s: not yet; 10 changes after 60 s: not yet ("more than").
        assert_eq!(
            p.next_job(NO_WAIT, || 1_061_000, &points, || 9, || false),
            Job::Tick
        );
        assert_eq!(
            p.next_job(NO_WAIT, || 1_060_000, &points, || 10, || false),
            Job::Tick
        );
        assert_eq!(
            p.next_job(NO_WAIT, || 1_061_000, &points, || 10, || false),
            Job::Bgsave
        );
        assert!(p.bgsave_in_progress());
        assert_eq!(
            p.request_bgsave(1_061_000, None).map_err(|e| e.0),
            Err(BgsaveRefused::InProgress)
        );
        p.finished(Outcome::Saved { dirty: 10 }, 1_062_000, true);
        assert!(!p.bgsave_in_progress());
        let r = p.report(1_062_000);
        assert_eq!(
            (r.lastsave_s, r.last_ok, r.dirty_base, r.saves),
            (1062, true, 10, 1)
        );
        assert_eq!(r.last_duration_s, 1);
        // Counted from the save: 10 more changes, 61 s later.
        assert_eq!(
            p.next_job(NO_WAIT, || 1_100_000, &points, || 19, || false),
            Job::Tick
        );
        assert_eq!(
            p.next_job(NO_WAIT, || 1_124_000, &points, || 20, || false),
            Job::Bgsave
        );
    }

    #[test]
    fn no_save_starts_while_a_rewrite_is_due_and_it_starts_after() {
        let p = Persistence::default();
        p.starting(0, 0);
        p.schedule_bgsave();
        let points = [point(1, 1)];
        assert_eq!(
            p.next_job(NO_WAIT, || 10_000, &points, || 5, || true),
            Job::Tick
        );
        assert!(!p.bgsave_in_progress());
        assert_eq!(
            p.next_job(NO_WAIT, || 10_000, &points, || 5, || false),
            Job::Bgsave
        );
    }

    #[test]
    fn after_a_failed_save_a_save_point_waits_the_retry_delay() {
        let p = Persistence::default();
        p.starting(0, 0);
        let points = [point(1, 1)];
        assert_eq!(
            p.next_job(NO_WAIT, || 10_000, &points, || 5, || false),
            Job::Bgsave
        );
        p.finished(Outcome::Failed, 10_000, true);
        assert!(!p.report(10_000).last_ok);
        assert_eq!(
            p.next_job(NO_WAIT, || 15_000, &points, || 5, || false),
            Job::Tick
        );
        assert_eq!(
            p.next_job(NO_WAIT, || 15_001 + 1000, &points, || 5, || false),
            Job::Bgsave
        );
    }

    #[test]
    fn a_scheduled_save_runs_when_none_does_and_a_request_is_taken_once() {
        let p = Persistence::default();
        p.request_bgsave(0, None).unwrap();
        p.schedule_bgsave();
        assert_eq!(p.next_job(NO_WAIT, || 0, &[], || 0, || false), Job::Bgsave);
        assert_eq!(
            p.next_job(NO_WAIT, || 0, &[], || 0, || false),
            Job::Tick,
            "taken already"
        );
        p.finished(Outcome::Saved { dirty: 0 }, 0, true);
        assert_eq!(
            p.next_job(NO_WAIT, || 0, &[], || 0, || false),
            Job::Bgsave,
            "the scheduled one"
        );
        assert_eq!(p.report(0).saves, 2);
    }

    #[test]
    fn an_older_save_never_goes_over_a_newer_one() {
        let p = Persistence::default();
        let (older, newer) = (p.next_seq(), p.next_seq());
        assert!(older < newer);
        assert_eq!(p.place::<()>(newer, || Ok(())), Ok(true));
        assert_eq!(p.place::<()>(older, || panic!("must not run")), Ok(false));
        assert_eq!(p.place::<()>(p.next_seq(), || Ok(())), Ok(true));
        // A failed rename leaves the newest in place as it was.
        let failing = p.next_seq();
        assert_eq!(p.place(failing, || Err("no room")), Err("no room"));
        assert_eq!(p.place::<()>(failing, || Ok(())), Ok(true));
    }
}
