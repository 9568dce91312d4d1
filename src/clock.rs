//! The server's one clock.
//!
//! TTLs, `EXAT`/`PXAT`, `TIME`, and later lock leases and wait deadlines all read
//! [`Clock`], never `SystemTime` directly. It follows the wall clock through a
//! monotonic `Instant` (so a wall-clock step does not expire keys early), and tests
//! can pause it and move it forward: every timer driven by this clock (the expiry
//! wheel) is woken when it moves.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// The longest wait [`Clock::real_time_until`] returns: deadlines from clients
/// reach `i64::MAX` ms, which no timer should be armed with.
pub const LONGEST_NAP: Duration = Duration::from_secs(3600);

/// Server time in microseconds since the Unix epoch, pausable and advanceable.
#[derive(Debug)]
pub struct Clock {
    /// Wall-clock microseconds at `origin`.
    origin_us: u64,
    origin: Instant,
    /// Added to the real time: what `advance` moved the clock by, less the spans
    /// it spent paused.
    offset_us: AtomicI64,
    paused: AtomicBool,
    /// Real elapsed microseconds (since `origin`) at which the clock was paused.
    paused_at_us: AtomicU64,
    /// Woken whenever the clock is advanced or resumed, so timers re-check.
    moved: Notify,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock reading the current wall-clock time.
    pub fn new() -> Self {
        let origin_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Clock {
            origin_us,
            origin: Instant::now(),
            offset_us: AtomicI64::new(0),
            paused: AtomicBool::new(false),
            paused_at_us: AtomicU64::new(0),
            moved: Notify::new(),
        }
    }

    fn real_elapsed_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    /// Microseconds since the Unix epoch.
    pub fn now_us(&self) -> u64 {
        self.us_at(Instant::now())
    }

    /// The server time, in µs since the Unix epoch, at the real instant `at`: lets
    /// a caller that already read `Instant::now()` avoid reading the clock again.
    pub fn us_at(&self, at: Instant) -> u64 {
        let elapsed = if self.paused.load(Ordering::Acquire) {
            self.paused_at_us.load(Ordering::Acquire)
        } else {
            at.saturating_duration_since(self.origin).as_micros() as u64
        };
        self.origin_us
            .saturating_add(elapsed)
            .saturating_add_signed(self.offset_us.load(Ordering::Acquire))
    }

    /// [`Clock::us_at`] in milliseconds.
    pub fn ms_at(&self, at: Instant) -> u64 {
        self.us_at(at) / 1000
    }

    /// Milliseconds since the Unix epoch: the unit of TTLs and deadlines.
    pub fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }

    /// Stops the clock: it reads the same time until advanced or resumed.
    pub fn pause(&self) {
        if !self.paused.load(Ordering::Acquire) {
            self.paused_at_us
                .store(self.real_elapsed_us(), Ordering::Release);
            self.paused.store(true, Ordering::Release);
        }
    }

    /// Lets a paused clock run again from where it stands.
    pub fn resume(&self) {
        if self.paused.swap(false, Ordering::AcqRel) {
            // Keep reading continuous: what was paused is folded into the offset.
            let paused_at = self.paused_at_us.load(Ordering::Acquire);
            let frozen_for = self.real_elapsed_us().saturating_sub(paused_at);
            let frozen_for = i64::try_from(frozen_for).unwrap_or(i64::MAX);
            let _ = self
                .offset_us
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| {
                    Some(o.saturating_sub(frozen_for))
                });
        }
        self.moved.notify_waiters();
    }

    /// Whether the clock is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Moves the clock forward by `by`, waking every timer that reads it.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        // Saturating: an atomic add would wrap into the past.
        let _ = self
            .offset_us
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| {
                Some(o.saturating_add(by))
            });
        self.moved.notify_waiters();
    }

    /// Completes when the clock is next advanced or resumed. Call `enable()` on
    /// the pinned future before reading the time to miss no move in between.
    pub fn moved(&self) -> tokio::sync::futures::Notified<'_> {
        self.moved.notified()
    }

    /// How long in real time until the clock reads `deadline_ms`, at most
    /// [`LONGEST_NAP`], or `None` while paused (only `advance` can get it there).
    /// Any `u64` deadline is safe: the arithmetic saturates, and a caller sleeping
    /// this long re-checks the time when it wakes, so a far deadline is only a
    /// series of long naps.
    pub fn real_time_until(&self, deadline_ms: u64) -> Option<Duration> {
        if self.is_paused() {
            return None;
        }
        let now = self.now_us();
        let until = Duration::from_micros(deadline_ms.saturating_mul(1000).saturating_sub(now));
        Some(until.min(LONGEST_NAP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_clock_moves_only_by_advance() {
        let c = Clock::new();
        c.pause();
        let t0 = c.now_ms();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.now_ms(), t0);
        c.advance(Duration::from_secs(10));
        assert_eq!(c.now_ms(), t0 + 10_000);
    }

    #[test]
    fn real_time_until_a_far_deadline_does_not_overflow() {
        let c = Clock::new();
        for deadline in [i64::MAX as u64, u64::MAX, u64::MAX / 1000 + 1] {
            assert_eq!(c.real_time_until(deadline), Some(LONGEST_NAP));
        }
        assert_eq!(c.real_time_until(0), Some(Duration::ZERO));
    }

    #[test]
    fn advancing_to_the_end_of_time_saturates() {
        let c = Clock::new();
        let start = c.now_ms();
        for _ in 0..3 {
            c.advance(Duration::MAX);
            assert!(c.now_ms() > start, "the clock wrapped into the past");
        }
        assert_eq!(c.real_time_until(c.now_ms()), Some(Duration::ZERO));
    }

    #[test]
    fn resume_continues_without_a_jump() {
        let c = Clock::new();
        c.pause();
        let t0 = c.now_ms();
        std::thread::sleep(Duration::from_millis(30));
        c.resume();
        let t1 = c.now_ms();
        assert!(t1 >= t0 && t1 < t0 + 20, "{t0} -> {t1}");
    }
}
