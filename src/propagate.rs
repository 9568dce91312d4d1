//! What the append-only file is told: each thread's log of the writes of the
//! unit it is running (one command with the blocked clients it served, a
//! transaction, a script, an expiry slice, a departed client's release),
//! taken by `persist::Aof::end_unit` when the unit ends.
//!
//! A unit's log holds, in order:
//! - commands: a write command as it was sent (`commands::call` adds it when
//!   the command changed something and pushed nothing itself), or what a
//!   command pushed instead ([`push`]: a relative TTL made absolute, SPOP as
//!   SREM, a pop a blocked client was served), and a `DEL` for each key found
//!   expired ([`push_expired`]);
//! - lock keys ([`note_lock`]): a lock's state is not a command's effect
//!   (leases run out, waiters are granted, tokens are drawn), so the file
//!   gets the lock as it stands when the unit ends, or a `DEL` if it is gone.
//!
//! While the file is off nothing is logged: the keyspace checks
//! `KeyHook::is_logging` (one relaxed load) before it calls in here. The
//! write counter ([`count_write`]) is kept either way: it is one thread-local
//! add, and it is how `call` knows a command changed something.

use std::cell::{Cell, RefCell};

use bytes::Bytes;

/// One command for the file, run against database `db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The database it runs in.
    pub db: usize,
    /// The command and its arguments.
    pub argv: Vec<Bytes>,
}

/// What a unit logged.
#[derive(Debug, Default)]
pub struct Unit {
    /// Commands, in the order their effects happened.
    pub records: Vec<Record>,
    /// Lock keys (database, key) whose state the file is to get, in the
    /// order first noted; repeats possible.
    pub locks: Vec<(usize, Bytes)>,
}

impl Unit {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.locks.is_empty()
    }
}

thread_local! {
    static WRITES: Cell<u64> = const { Cell::new(0) };
    static PUSHED: Cell<u64> = const { Cell::new(0) };
    static LOG: RefCell<Unit> = RefCell::new(Unit::default());
}

/// Counts one change to the keyspace made on this thread.
#[inline]
pub fn count_write() {
    WRITES.with(|w| w.set(w.get().wrapping_add(1)));
}

/// Changes made on this thread so far (compare two readings).
#[inline]
pub fn writes() -> u64 {
    WRITES.with(Cell::get)
}

/// Sets the write count back (an expiry is logged as its own `DEL`, not as
/// a write of the command that found the key expired).
#[inline]
pub fn restore_writes(to: u64) {
    WRITES.with(|w| w.set(to));
}

/// Commands pushed on this thread so far by [`push`] (compare two readings).
#[inline]
pub fn pushed() -> u64 {
    PUSHED.with(Cell::get)
}

/// Logs a command for the file in place of the one running (which is then
/// not logged as sent).
pub fn push(db: usize, argv: Vec<Bytes>) {
    PUSHED.with(|p| p.set(p.get().wrapping_add(1)));
    LOG.with(|l| l.borrow_mut().records.push(Record { db, argv }));
}

/// Logs the command as it was sent (`commands::call`).
pub fn push_sent(db: usize, argv: &[Bytes]) {
    LOG.with(|l| {
        l.borrow_mut().records.push(Record {
            db,
            argv: argv.to_vec(),
        })
    });
}

/// Logs the deletion of a key found expired: `DEL key`, as Redis
/// propagates an expiry.
pub fn push_expired(db: usize, key: &[u8]) {
    LOG.with(|l| {
        l.borrow_mut().records.push(Record {
            db,
            argv: vec![Bytes::from_static(b"DEL"), Bytes::copy_from_slice(key)],
        })
    });
}

/// Notes a lock key whose state changed.
pub fn note_lock(db: usize, key: &[u8]) {
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        if l.locks.last().is_some_and(|(d, k)| *d == db && k == key) {
            return;
        }
        l.locks.push((db, Bytes::copy_from_slice(key)));
    });
}

/// Takes what this thread logged since the last call.
pub fn take() -> Unit {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// Drops what this thread logged (the file was off when the unit ended).
pub fn discard() {
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        l.records.clear();
        l.locks.clear();
    });
}

/// A command for the file in RESP, as `redis-check-aof` and Redis's loader
/// read it.
pub fn encode(argv: &[Bytes], out: &mut Vec<u8>) {
    let mut num = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(num.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        out.push(b'$');
        out.extend_from_slice(num.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// `argv` from string slices (for rewritten commands).
pub fn argv<const N: usize>(words: [&[u8]; N]) -> Vec<Bytes> {
    words.iter().map(|w| Bytes::copy_from_slice(w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_encoded_as_a_multibulk() {
        let mut out = Vec::new();
        encode(&argv([b"SET", b"k", b""]), &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn the_log_keeps_order_and_take_empties_it() {
        discard();
        push_expired(0, b"a");
        let before = pushed();
        push(1, argv([b"SREM", b"s", b"m"]));
        assert_eq!(pushed(), before + 1);
        note_lock(2, b"l");
        note_lock(2, b"l");
        let unit = take();
        assert_eq!(unit.records.len(), 2);
        assert_eq!(unit.records[0].argv[0], "DEL");
        assert_eq!(unit.records[1].db, 1);
        assert_eq!(unit.locks.len(), 1);
        assert!(take().is_empty());
    }
}
