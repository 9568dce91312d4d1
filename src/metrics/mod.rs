//! Observability: the `metrics-port` HTTP endpoint (`GET /metrics` in
//! Prometheus's text format, `GET /` a status page) and the fixed-bucket
//! histograms the lock code feeds.
//!
//! Nothing here runs on a request's path except [`Histogram::observe_ms`]
//! (two relaxed atomic adds). Every other figure is read when somebody
//! scrapes: the counters INFO reads (`figures`), and gauges walked from the
//! keyspace then. Not for: how commands are counted (the session's stats,
//! `commands/mod.rs`) or what INFO prints (`commands/info.rs`).

pub mod figures;
pub mod http;
pub mod prometheus;
pub mod status;

use std::sync::atomic::{AtomicU64, Ordering};

/// The most finite buckets a [`Histogram`] has.
pub const MAX_BUCKETS: usize = 16;

/// Upper bounds (ms) of the lock wait-time histogram: an immediate grant is
/// its own bucket (0), then 1 ms to a minute.
pub const WAIT_BOUNDS_MS: &[u64] = &[
    0, 1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

/// Upper bounds (ms) of the lock hold-time histogram: 1 ms to an hour.
pub const HOLD_BOUNDS_MS: &[u64] = &[
    1, 10, 50, 100, 500, 1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 1_800_000, 3_600_000,
];

/// A histogram of millisecond durations over fixed buckets: one relaxed
/// counter per bucket (not cumulative; the reader adds them up) and a
/// relaxed sum. Observing takes no lock; a reader may see a sum and counts
/// from a moment apart, which a scrape tolerates.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// `counts[i]` counts values in `(bounds[i-1], bounds[i]]`; the last
    /// one, past every bound (`+Inf`).
    counts: [AtomicU64; MAX_BUCKETS + 1],
    sum_ms: AtomicU64,
}

/// What a [`Histogram`] held when read: cumulative counts per bound, as
/// Prometheus's `le` buckets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(bound ms, values ≤ bound)`, in bound order.
    pub buckets: Vec<(u64, u64)>,
    /// All values (`le="+Inf"`).
    pub count: u64,
    /// Their sum, in ms.
    pub sum_ms: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending, at most [`MAX_BUCKETS`]).
    pub const fn new(bounds: &'static [u64]) -> Self {
        assert!(bounds.len() <= MAX_BUCKETS, "too many buckets");
        Histogram {
            bounds,
            counts: [const { AtomicU64::new(0) }; MAX_BUCKETS + 1],
            sum_ms: AtomicU64::new(0),
        }
    }

    /// Counts one value of `ms` milliseconds.
    #[inline]
    pub fn observe_ms(&self, ms: u64) {
        // The first bound the value is at or under; past all, the +Inf slot.
        let i = self.bounds.partition_point(|&b| b < ms);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// The bounds, in ms.
    pub fn bounds(&self) -> &'static [u64] {
        self.bounds
    }

    /// The counts now, cumulative.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (i, &bound) in self.bounds.iter().enumerate() {
            total = total.saturating_add(self.counts[i].load(Ordering::Relaxed));
            buckets.push((bound, total));
        }
        let inf = self.counts[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count: total.saturating_add(inf),
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_bound_counts_in_that_bucket_and_past_all_in_inf() {
        static H: Histogram = Histogram::new(&[0, 10, 100]);
        for ms in [0, 0, 1, 10, 11, 100, 5_000] {
            H.observe_ms(ms);
        }
        let s = H.snapshot();
        assert_eq!(s.buckets, vec![(0, 2), (10, 4), (100, 6)]);
        assert_eq!((s.count, s.sum_ms), (7, 5_122));
    }

    #[test]
    fn the_lock_bounds_fit_and_ascend() {
        for b in [WAIT_BOUNDS_MS, HOLD_BOUNDS_MS] {
            assert!(b.len() <= MAX_BUCKETS);
            assert!(b.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
