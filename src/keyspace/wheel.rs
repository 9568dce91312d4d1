//! A hierarchical timing wheel with 1 ms resolution.
//!
//! Six levels of 64 slots: level 0 slots are 1 ms wide, level 1 slots 64 ms, ...,
//! level 5 slots 2^30 ms; together they cover about 2.2 years, and a later deadline
//! waits in the top level and is re-filed when its slot comes round. Inserting is
//! O(1): the level is found from the highest bit where the deadline differs from
//! the wheel's current time. Advancing visits only occupied slots (a bitmap per
//! level), moving entries of a coarse slot down to finer levels as its time comes.
//!
//! Cancelling is free and lazy: an entry names a key and the deadline it was filed
//! under; when it fires, the keyspace checks the key still has that deadline and
//! ignores it otherwise. So a key whose TTL changes leaves a stale entry behind,
//! dropped when its slot fires.
//!
//! The wheel only knows numbers: it is advanced by whoever owns it (a keyspace
//! shard) with times from the server clock, so paused or advanced time is seen.

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;

type Slot<T> = Vec<(u64, T)>;

/// Timers keyed by a deadline in milliseconds.
#[derive(Debug)]
pub struct Wheel<T> {
    /// The time up to which the wheel has been advanced.
    elapsed: u64,
    /// Allocated on first insert: most shards never hold a TTL.
    levels: Option<Box<[[Slot<T>; SLOTS]; LEVELS]>>,
    occupied: [u64; LEVELS],
    /// Entries filed with a deadline already reached; they fire on the next poll.
    overdue: Vec<(u64, T)>,
    len: usize,
}

impl<T> Wheel<T> {
    /// An empty wheel whose current time is `now`.
    pub fn new(now: u64) -> Self {
        Wheel {
            elapsed: now,
            levels: None,
            occupied: [0; LEVELS],
            overdue: Vec::new(),
            len: 0,
        }
    }

    /// Number of entries, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is filed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Files `item` to fire at `when`.
    pub fn insert(&mut self, when: u64, item: T) {
        self.len += 1;
        if when <= self.elapsed {
            self.overdue.push((when, item));
            return;
        }
        let level = level_for(self.elapsed, when);
        let slot = slot_for(when, level);
        let levels = self.levels.get_or_insert_with(|| {
            Box::new(std::array::from_fn(|_| std::array::from_fn(|_| Vec::new())))
        });
        levels[level][slot].push((when, item));
        self.occupied[level] |= 1 << slot;
    }

    /// The earliest time at which `poll` may return something: a lower bound on the
    /// next deadline (exact at level 0), or `None` when empty.
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.overdue.is_empty() {
            return Some(self.elapsed);
        }
        self.next_slot().map(|(_, _, deadline)| deadline)
    }

    /// The first occupied slot in time order: (level, slot, its start time).
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        (0..LEVELS).find_map(|level| {
            let occupied = self.occupied[level];
            if occupied == 0 {
                return None;
            }
            let shift = level as u32 * SLOT_BITS;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let now_slot = (self.elapsed >> shift) & (SLOTS as u64 - 1);
            let ahead = u64::from(occupied.rotate_right(now_slot as u32).trailing_zeros());
            let slot = (now_slot + ahead) % SLOTS as u64;
            let level_start = self.elapsed & !(level_range - 1);
            // Saturating: deadlines come from clients and reach u64::MAX.
            let mut deadline = level_start.saturating_add(slot * slot_range);
            if deadline <= self.elapsed && level > 0 {
                // Only the top level wraps: a deadline beyond the wheel's span.
                deadline = deadline.saturating_add(level_range);
            }
            Some((level, slot as usize, deadline.max(self.elapsed)))
        })
    }

    /// Advances the wheel to `now`, appending every entry whose deadline is at or
    /// before `now` to `fired` as `(deadline, item)`.
    pub fn poll(&mut self, now: u64, fired: &mut Vec<(u64, T)>) {
        for (when, item) in self.overdue.drain(..) {
            self.len -= 1;
            fired.push((when, item));
        }
        while let Some((level, slot, deadline)) = self.next_slot() {
            if deadline > now {
                break;
            }
            self.elapsed = deadline;
            self.occupied[level] &= !(1 << slot);
            let entries = match self.levels.as_mut() {
                Some(levels) => std::mem::take(&mut levels[level][slot]),
                None => break,
            };
            for (when, item) in entries {
                self.len -= 1;
                if when <= now {
                    fired.push((when, item));
                } else {
                    self.insert(when, item);
                }
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// Holds nothing and has no slots allocated: [`Wheel::clear`] would
    /// leave it as it is.
    pub fn is_unallocated(&self) -> bool {
        self.levels.is_none() && self.len == 0 && self.overdue.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.levels = None;
        self.occupied = [0; LEVELS];
        self.overdue.clear();
        self.len = 0;
    }
}

fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    ((significant / SLOT_BITS) as usize).min(LEVELS - 1)
}

fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (level as u32 * SLOT_BITS)) & (SLOTS as u64 - 1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut Wheel<u32>, now: u64) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        w.poll(now, &mut out);
        out.sort();
        out
    }

    #[test]
    fn entries_fire_at_their_deadline_not_before() {
        let mut w = Wheel::new(1_000);
        for (i, d) in [1, 2, 63, 64, 65, 4_095, 4_096, 300_000, 90_000_000]
            .iter()
            .enumerate()
        {
            w.insert(1_000 + d, i as u32);
        }
        let mut fired = 0;
        let mut now = 1_000;
        while !w.is_empty() {
            let next = w.next_deadline().unwrap();
            assert!(next >= now);
            now = next;
            for (when, _) in fire(&mut w, now) {
                assert!(when <= now, "fired early");
                assert_eq!(when, now, "fired late");
                fired += 1;
            }
        }
        assert_eq!(fired, 9);
    }

    #[test]
    fn big_jump_fires_everything_due() {
        let mut w = Wheel::new(0);
        for i in 0..1000u32 {
            w.insert(u64::from(i) * 997, i);
        }
        let got = fire(&mut w, 500_000);
        assert_eq!(got.len(), 502);
        assert!(got.iter().all(|(when, _)| *when <= 500_000));
        assert_eq!(w.len(), 498);
    }

    #[test]
    fn deadline_beyond_the_span_still_fires_on_time() {
        let mut w = Wheel::new(0);
        let far = 1u64 << 40;
        w.insert(far, 7);
        assert!(fire(&mut w, far - 1).is_empty());
        assert_eq!(fire(&mut w, far), vec![(far, 7)]);
    }

    #[test]
    fn deadlines_at_the_end_of_time_do_not_overflow() {
        for start in [
            0,
            1_700_000_000_000,
            i64::MAX as u64,
            u64::MAX - (1 << 37),
            u64::MAX - 100,
        ] {
            let mut w = Wheel::new(start);
            for (i, when) in [i64::MAX as u64, u64::MAX - 1, u64::MAX].iter().enumerate() {
                w.insert(*when, i as u32);
            }
            assert!(w.next_deadline().is_some());
            assert!(fire(&mut w, start.saturating_add(1)).len() <= 3);
            let mut now = start;
            for _ in 0..10_000 {
                let Some(next) = w.next_deadline() else { break };
                assert!(next >= now);
                now = next;
                fire(&mut w, now);
                if now == u64::MAX {
                    break;
                }
            }
            fire(&mut w, u64::MAX);
            assert!(w.is_empty(), "from {start}: {} left", w.len());
        }
    }

    #[test]
    fn past_deadline_fires_on_next_poll() {
        let mut w = Wheel::new(100);
        w.insert(50, 1);
        assert_eq!(w.next_deadline(), Some(100));
        assert_eq!(fire(&mut w, 100), vec![(50, 1)]);
    }
}
