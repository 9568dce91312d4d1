//! [`ExecGate`]: the lock that makes transactions (and later scripts) atomic.
//!
//! Every ordinary command holds the gate shared; EXEC holds it exclusively. A
//! single `RwLock` would make every command on every thread bump the same counter,
//! bouncing one cache line between cores for each command. So the gate is a
//! "big-reader" lock: eight `RwLock`s, each on its own cache line; a reader takes
//! the one assigned to its thread, a writer takes all of them in order.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const SLOTS: usize = 8;

/// How often a waiter blocked behind a writer asks whether to stop waiting.
const POLL: Duration = Duration::from_millis(2);

#[repr(align(128))]
#[derive(Default)]
struct Slot(RwLock<()>);

/// A reader-writer lock optimised for many readers on several threads.
#[derive(Default)]
pub struct ExecGate {
    slots: [Slot; SLOTS],
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SLOT: Cell<usize> = Cell::new(NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS);
}

/// Shared hold of the gate.
pub struct ReadGuard<'a>(#[allow(dead_code)] RwLockReadGuard<'a, ()>);

/// Exclusive hold of the gate.
pub struct WriteGuard<'a>(#[allow(dead_code)] [Option<RwLockWriteGuard<'a, ()>>; SLOTS]);

impl ExecGate {
    /// Holds the gate shared, as every ordinary command does.
    pub fn read(&self) -> ReadGuard<'_> {
        let slot = MY_SLOT.with(Cell::get);
        ReadGuard(self.slots[slot].0.read())
    }

    /// Holds the gate shared, waiting behind a writer only while `give_up` is
    /// false (asked every few milliseconds): a request a busy script must answer
    /// with `BUSY` instead of waiting for it. The uncontended path is [`Self::read`]'s.
    pub fn read_unless(&self, give_up: impl Fn() -> bool) -> Option<ReadGuard<'_>> {
        let slot = &self.slots[MY_SLOT.with(Cell::get)].0;
        loop {
            if let Some(g) = slot.try_read_for(POLL) {
                return Some(ReadGuard(g));
            }
            if give_up() {
                return None;
            }
        }
    }

    /// Holds the gate shared from a task on the runtime: waits behind a writer by
    /// sleeping, so the worker thread stays free (a busy script's `BUSY` replies
    /// come from the other tasks).
    pub async fn read_async(&self) -> ReadGuard<'_> {
        let slot = &self.slots[MY_SLOT.with(Cell::get)].0;
        loop {
            if let Some(g) = slot.try_read() {
                return ReadGuard(g);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Holds the gate exclusively: no command runs until the guard is dropped.
    pub fn write(&self) -> WriteGuard<'_> {
        self.write_unless(|| false)
            .expect("waits until it has the gate")
    }

    /// Holds the gate exclusively, waiting only while `give_up` is false (see
    /// [`Self::read_unless`]).
    pub fn write_unless(&self, give_up: impl Fn() -> bool) -> Option<WriteGuard<'_>> {
        loop {
            // In slot order, so two writers cannot deadlock; once one slot times
            // out the rest are not tried, and the ones held are let go.
            let mut complete = true;
            let guards = std::array::from_fn(|i| {
                let g = complete
                    .then(|| self.slots[i].0.try_write_for(POLL))
                    .flatten();
                complete &= g.is_some();
                g
            });
            if complete {
                return Some(WriteGuard(guards));
            }
            drop(guards);
            if give_up() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn writer_excludes_readers_on_every_thread() {
        let gate = Arc::new(ExecGate::default());
        let counter = Arc::new(AtomicUsize::new(0));
        let w = gate.write();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (gate, counter) = (gate.clone(), counter.clone());
                std::thread::spawn(move || {
                    let _r = gate.read();
                    counter.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(
            counter.load(Ordering::SeqCst),
            0,
            "readers waited for the writer"
        );
        drop(w);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn waiters_behind_a_writer_can_give_up() {
        let gate = ExecGate::default();
        let w = gate.write();
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(gate.read_unless(|| true).is_none());
                assert!(gate.write_unless(|| true).is_none());
            });
        });
        drop(w);
        assert!(gate.read_unless(|| true).is_some());
        assert!(gate.write_unless(|| true).is_some());
    }
}
