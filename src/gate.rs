//! [`ExecGate`]: the lock that makes transactions (and later scripts) atomic.
//!
//! Every ordinary command holds the gate shared; EXEC holds it exclusively. A
//! single `RwLock` would make every command on every thread bump the same counter,
//! bouncing one cache line between cores for each command. So the gate is a
//! "big-reader" lock: eight `RwLock`s, each on its own cache line; a reader takes
//! the one assigned to its thread, a writer takes all of them in order.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const SLOTS: usize = 8;

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
pub struct WriteGuard<'a>(#[allow(dead_code)] [RwLockWriteGuard<'a, ()>; SLOTS]);

impl ExecGate {
    /// Holds the gate shared, as every ordinary command does.
    pub fn read(&self) -> ReadGuard<'_> {
        let slot = MY_SLOT.with(Cell::get);
        ReadGuard(self.slots[slot].0.read())
    }

    /// Holds the gate exclusively: no command runs until the guard is dropped.
    pub fn write(&self) -> WriteGuard<'_> {
        // In slot order, so two writers cannot deadlock.
        WriteGuard(std::array::from_fn(|i| self.slots[i].0.write()))
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
}
