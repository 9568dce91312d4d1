//! [`Snapshot`]: a consistent image of every database at one instant, taken
//! without stopping the server (there is no fork in a multi-threaded server).
//!
//! # How it stays consistent
//!
//! [`Snapshot::begin`] takes the execution gate exclusively — so no command,
//! EXEC, script or expiry step is half done — reads the clock (the
//! *instant*) and the fencing-token high-water mark, and marks every shard of
//! every database "not yet dumped"; then it lets go of the gate. That pause is
//! one lock and unlock of each shard, whatever the keyspace holds.
//!
//! [`Snapshot::write_to`] then walks the shards one at a time, in (database,
//! shard) order, holding only that shard's mutex and only for a slice of
//! up to [`SLICE`] slab positions, in which it copies strings out (written
//! after the slice lets go) and encodes other values into the sink's hold
//! (written out after the slice too); between slices other clients run.
//! Meanwhile a
//! write to a marked shard first keeps the before-image of the key it changes
//! (copy on write, per key: the shard's `ShardSnap`), a key created after the
//! instant is noted as absent at it, and a removal that moves a slot from the
//! unvisited part of the slab to the visited part keeps the moved key — so
//! deletions, expiry, FLUSHDB/FLUSHALL, RENAME and MOVE are all covered by
//! the same rule. Once a shard is visited its before-images are emitted and
//! its mark cleared: writes there are back to one untaken branch.
//!
//! Keys whose TTL had passed at the instant are left out; keys that expire
//! after it are in the snapshot with their deadline, as in Redis's forked
//! child. Deadlines are absolute ms on the server clock (`clock.rs`), which
//! is the Unix time unless a test has paused or advanced it; they are handed
//! on unchanged, so a test that moved its clock gets deadlines on its clock.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::Clock;
use crate::gate::ExecGate;
use crate::keyspace::{Entry, Keyspace, Value};

/// Slab positions a slice of the walk visits at most before letting go of
/// the shard (fewer once [`HELD_MAX`] bytes are held).
pub const SLICE: usize = 256;

/// Where a snapshot goes: the RDB writer (and a test's in-memory map).
pub trait SnapshotSink {
    /// The server's fencing-token high-water mark at the instant (every token
    /// issued before is at most this); called once, before any database.
    fn fencing_high_water(&mut self, token: u64) -> io::Result<()>;

    /// The longest lease (ms) the server had granted at the instant (what
    /// the next start's automatic restart grace lasts); called once, after
    /// the fencing mark. A sink that does not keep it ignores it.
    fn longest_lease(&mut self, _ms: u64) -> io::Result<()> {
        Ok(())
    }

    /// One function library's code, as it was at the instant; called for
    /// each library after the fencing mark and before any database. A sink
    /// that does not keep them ignores them.
    fn function(&mut self, _code: &[u8]) -> io::Result<()> {
        Ok(())
    }

    /// The entries that follow belong to database `db`, which held about
    /// `keys` keys, `expires` of them with a TTL, at the instant (size hints).
    fn select_db(&mut self, db: usize, keys: u64, expires: u64) -> io::Result<()>;

    /// One key as it was at the instant, with its deadline as absolute ms on
    /// the server clock. A lock's waiters are not part of it.
    fn entry(&mut self, key: &[u8], value: &Value, expire_at_ms: Option<u64>) -> io::Result<()>;

    /// From `hold(true)` until `hold(false)`, what the sink writes waits in
    /// memory, and `hold(false)` writes it out: the walk holds while it holds
    /// a shard's lock, so no client waits on the disk. A sink with no disk
    /// behind it ignores it.
    fn hold(&mut self, _on: bool) -> io::Result<()> {
        Ok(())
    }

    /// The bytes waiting for the hold to end (the walk ends a slice early
    /// past [`HELD_MAX`]).
    fn held(&self) -> usize {
        0
    }
}

/// Bytes a slice may leave waiting for its hold to end before it stops early
/// (one value larger than this is held whole).
pub const HELD_MAX: usize = 1 << 20;

/// Why a snapshot could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotError {
    /// Another snapshot is running (Redis: "Background save already in progress").
    InProgress,
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::InProgress => f.write_str("Background save already in progress"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// What a finished walk handed to its sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Keys emitted straight from the table.
    pub live: u64,
    /// Keys emitted from a before-image (changed before the walk reached them).
    pub preserved: u64,
}

/// A point-in-time snapshot being taken: begun by [`Snapshot::begin`],
/// walked by [`Snapshot::write_to`]. Dropped before it is written (or after
/// an error), it lets go of every shard it still marks.
#[derive(Debug)]
pub struct Snapshot<'a> {
    keyspace: &'a Keyspace,
    instant_ms: u64,
    fencing: u64,
    /// The longest lease granted, at the instant.
    longest_lease: u64,
    /// Per database: keys and keys with a TTL at the instant.
    sizes: Vec<(u64, u64)>,
    /// Changes made since start-up, at the instant (`Keyspace::dirty`).
    dirty: u64,
    /// The function libraries' code at the instant.
    functions: Vec<bytes::Bytes>,
    slice: usize,
    /// Set by another thread to stop the walk (a save superseded).
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Snapshot<'a> {
    /// Starts a snapshot at this instant: waits for the execution gate
    /// exclusively, marks every shard, lets the gate go. Refused while another
    /// snapshot of this keyspace runs.
    pub fn begin(
        keyspace: &'a Keyspace,
        gate: &ExecGate,
        clock: &Clock,
    ) -> Result<Self, SnapshotError> {
        if !keyspace.claim_snapshot() {
            return Err(SnapshotError::InProgress);
        }
        let _gate = gate.write();
        Ok(Self::claimed(keyspace, clock))
    }

    /// As [`Snapshot::begin`], for a caller that holds the execution gate
    /// exclusively already (a save at shutdown, which keeps every client out
    /// until the server stops).
    pub fn begin_held(keyspace: &'a Keyspace, clock: &Clock) -> Result<Self, SnapshotError> {
        if !keyspace.claim_snapshot() {
            return Err(SnapshotError::InProgress);
        }
        Ok(Self::claimed(keyspace, clock))
    }

    /// Marks every shard; the caller has claimed the snapshot and holds the
    /// gate exclusively.
    fn claimed(keyspace: &'a Keyspace, clock: &Clock) -> Self {
        let instant_ms = clock.now_ms();
        let fencing = keyspace.locks().high_water();
        let longest_lease = keyspace.locks().longest_lease();
        let functions = keyspace.function_codes().lock().clone();
        let mut dirty = keyspace.function_changes();
        let mut sizes = Vec::with_capacity(keyspace.dbs().len());
        for db in keyspace.dbs() {
            let (mut keys, mut expires) = (0, 0);
            for shard in db.shards() {
                let mut shard = shard.lock();
                // Claimed: no other snapshot has a shard marked.
                shard.snapshot_mark();
                keys += shard.len() as u64;
                expires += shard.volatile() as u64;
                dirty = dirty.wrapping_add(shard.dirty());
            }
            sizes.push((keys, expires));
        }
        Snapshot {
            keyspace,
            instant_ms,
            fencing,
            longest_lease,
            sizes,
            dirty,
            functions,
            slice: SLICE,
            cancel: None,
        }
    }

    /// Changes made since start-up at the instant: once the snapshot is
    /// saved, what `rdb_changes_since_last_save` counts from.
    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// Stops the walk with an `Interrupted` error once `flag` is set.
    pub fn with_cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// The instant, in ms on the server clock.
    pub fn instant_ms(&self) -> u64 {
        self.instant_ms
    }

    /// The fencing-token high-water mark at the instant.
    pub fn fencing_high_water(&self) -> u64 {
        self.fencing
    }

    /// Visits `n` slab positions per slice instead of [`SLICE`] (at least 1):
    /// smaller slices hold a shard for less time, larger ones lock less often.
    pub fn with_slice(mut self, n: usize) -> Self {
        self.slice = n.max(1);
        self
    }

    /// Walks the keyspace into `sink`: the fencing mark, then each database
    /// that held keys at the instant with its keys as they were then.
    pub fn write_to(self, sink: &mut dyn SnapshotSink) -> io::Result<SnapshotStats> {
        sink.fencing_high_water(self.fencing)?;
        sink.longest_lease(self.longest_lease)?;
        for code in &self.functions {
            sink.function(code)?;
        }
        let mut stats = SnapshotStats::default();
        for (index, db) in self.keyspace.dbs().iter().enumerate() {
            let (keys, expires) = self.sizes.get(index).copied().unwrap_or_default();
            if keys > 0 {
                sink.select_db(index, keys, expires)?;
            }
            for shard in db.shards() {
                self.walk_shard(shard, sink, &mut stats)?;
            }
        }
        Ok(stats)
    }

    /// One shard: slices of the table under its lock, then its before-images
    /// outside it. A slice copies its strings out (a short one is inline, a
    /// long one a reference count) and writes them after letting go of the
    /// shard; other values are encoded in place, into the sink's hold, so the
    /// lock is held for the walk, the copies and those encodings, never for
    /// the file's writes. A slice runs at the normal policy
    /// ([`crate::background::urgent`]): a `SCHED_IDLE` thread holding a
    /// shard's lock on a busy machine would keep the workers waiting for it.
    fn walk_shard(
        &self,
        shard: &parking_lot::Mutex<crate::keyspace::Shard>,
        sink: &mut dyn SnapshotSink,
        stats: &mut SnapshotStats,
    ) -> io::Result<()> {
        let instant = self.instant_ms;
        let mut taken = Taken::default();
        loop {
            if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "save cancelled"));
            }
            sink.hold(true)?;
            let slice = crate::background::urgent(|| {
                let mut guard = shard.lock();
                let done = guard.snapshot_visit(self.slice, |key, entry| {
                    if expired_at(entry, instant) {
                        return io::Result::Ok(true);
                    }
                    stats.live += 1;
                    match &entry.value {
                        Value::Str(s) => taken.push(key, Value::Str(s.clone()), entry.expires_at()),
                        value => sink.entry(key, value, entry.expires_at())?,
                    }
                    Ok(sink.held() < HELD_MAX)
                })?;
                io::Result::Ok(done.then(|| guard.snapshot_finish().collect::<Vec<_>>()))
            });
            // A failed slice's file is dropped: what it held is not written.
            let slice = slice?;
            sink.hold(false)?;
            taken.write(sink)?;
            if let Some(saved) = slice {
                for (key, entry) in saved {
                    crate::background::tick();
                    if !expired_at(&entry, instant) {
                        stats.preserved += 1;
                        sink.entry(key.as_slice(), &entry.value, entry.expires_at())?;
                    }
                }
                return Ok(());
            }
            crate::background::tick();
            std::thread::yield_now();
        }
    }
}

/// A slice's strings, copied out under the shard's lock to be written after
/// it: the keys end to end in one buffer, each value with where its key ends.
#[derive(Default)]
struct Taken {
    keys: Vec<u8>,
    entries: Vec<(usize, Value, Option<u64>)>,
}

impl Taken {
    fn push(&mut self, key: &[u8], value: Value, expire_at_ms: Option<u64>) {
        self.keys.extend_from_slice(key);
        self.entries.push((self.keys.len(), value, expire_at_ms));
    }

    /// Hands every entry to `sink` and empties itself (keeping its buffers).
    fn write(&mut self, sink: &mut dyn SnapshotSink) -> io::Result<()> {
        let mut start = 0;
        for (end, value, expire_at_ms) in self.entries.drain(..) {
            sink.entry(&self.keys[start..end], &value, expire_at_ms)?;
            start = end;
        }
        self.keys.clear();
        Ok(())
    }
}

/// Whether `entry` was already gone at the instant (its TTL had passed).
fn expired_at(entry: &Entry, instant: u64) -> bool {
    entry.expires_at().is_some_and(|at| at <= instant)
}

/// A begun snapshot without its borrow of the keyspace ([`Snapshot::detach`]):
/// what BGSAVE hands the background thread, so the instant is the command's.
/// Until [`Snapshot::attach`] makes it a snapshot again (on the same
/// keyspace), its shards stay marked and the claim held: it must not be
/// dropped unattached.
#[derive(Debug)]
pub struct Detached {
    instant_ms: u64,
    fencing: u64,
    longest_lease: u64,
    sizes: Vec<(u64, u64)>,
    dirty: u64,
    functions: Vec<bytes::Bytes>,
}

impl<'a> Snapshot<'a> {
    /// Lets go of the keyspace borrow, keeping the marks and the claim.
    pub fn detach(self) -> Detached {
        let mut this = std::mem::ManuallyDrop::new(self);
        Detached {
            instant_ms: this.instant_ms,
            fencing: this.fencing,
            longest_lease: this.longest_lease,
            sizes: std::mem::take(&mut this.sizes),
            dirty: this.dirty,
            functions: std::mem::take(&mut this.functions),
        }
    }

    /// The snapshot `detached` was, on `keyspace` (the one it was begun on).
    pub fn attach(keyspace: &'a Keyspace, detached: Detached) -> Self {
        Snapshot {
            keyspace,
            instant_ms: detached.instant_ms,
            fencing: detached.fencing,
            longest_lease: detached.longest_lease,
            sizes: detached.sizes,
            dirty: detached.dirty,
            functions: detached.functions,
            slice: SLICE,
            cancel: None,
        }
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        // A shard already walked has no mark; an abandoned walk leaves some.
        for db in self.keyspace.dbs() {
            for shard in db.shards() {
                drop(shard.lock().snapshot_finish());
            }
        }
        self.keyspace.release_snapshot();
    }
}
