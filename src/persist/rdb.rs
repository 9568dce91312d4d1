//! The RDB file on disk: a [`Snapshot`] walked into a [`Writer`] is a
//! dump.rdb (the fencing-token high-water mark its `latchkey-fencing-token`
//! aux field), written to a temporary file in `dir`, synced and renamed over
//! `dbfilename`, as Redis does; and the start-up load that puts a file's keys
//! back.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::clock::Clock;
use crate::config::Config;
use crate::keyspace::{Entry, Keyspace, Value};
use crate::rdb::file::{load_checked, Loaded, WriteOptions, Writer};
use crate::rdb::lock::{AUX_FENCING, AUX_LONGEST_LEASE};
use crate::rdb::RdbError;
use crate::types::Encodings;

use super::{Persistence, Snapshot, SnapshotSink, HELD_MAX};

impl<W: Write> SnapshotSink for Writer<W> {
    // Both marks are left out at 0 (no lock was ever taken): absent reads
    // as 0, and a file of Redis types only stays as small as Redis's.
    fn fencing_high_water(&mut self, token: u64) -> io::Result<()> {
        match token {
            0 => Ok(()),
            _ => self.aux(AUX_FENCING, token.to_string().as_bytes()),
        }
    }

    fn longest_lease(&mut self, ms: u64) -> io::Result<()> {
        match ms {
            0 => Ok(()),
            _ => self.aux(AUX_LONGEST_LEASE, ms.to_string().as_bytes()),
        }
    }

    fn function(&mut self, code: &[u8]) -> io::Result<()> {
        Writer::function(self, code)
    }

    fn select_db(&mut self, db: usize, keys: u64, expires: u64) -> io::Result<()> {
        Writer::select_db(self, db, keys, expires)
    }

    fn entry(&mut self, key: &[u8], value: &Value, expire_at_ms: Option<u64>) -> io::Result<()> {
        Writer::entry(self, key, value, expire_at_ms)
    }
}

/// An RDB file being written: a [`Writer`] whose output can be held in
/// memory while the walk holds a shard's lock ([`SnapshotSink::hold`]).
struct FileSink(Writer<BufWriter<WriteOut>>);

impl FileSink {
    fn new(out: WriteOut, opts: WriteOptions) -> io::Result<Self> {
        Writer::new(BufWriter::with_capacity(1 << 16, out), opts).map(FileSink)
    }
}

impl SnapshotSink for FileSink {
    fn fencing_high_water(&mut self, token: u64) -> io::Result<()> {
        self.0.fencing_high_water(token)
    }

    fn longest_lease(&mut self, ms: u64) -> io::Result<()> {
        self.0.longest_lease(ms)
    }

    fn function(&mut self, code: &[u8]) -> io::Result<()> {
        SnapshotSink::function(&mut self.0, code)
    }

    fn select_db(&mut self, db: usize, keys: u64, expires: u64) -> io::Result<()> {
        SnapshotSink::select_db(&mut self.0, db, keys, expires)
    }

    fn entry(&mut self, key: &[u8], value: &Value, expire_at_ms: Option<u64>) -> io::Result<()> {
        SnapshotSink::entry(&mut self.0, key, value, expire_at_ms)
    }

    fn hold(&mut self, on: bool) -> io::Result<()> {
        self.0.get_mut().get_mut().hold(on)
    }

    fn held(&self) -> usize {
        // The buffer in front of the file holds up to 64 KB besides.
        self.0.get_ref().get_ref().held.len()
    }
}

/// Where and how the RDB file is written: `dir`, `dbfilename`,
/// `rdbcompression`, `rdbchecksum`, `rdb-save-incremental-fsync`.
#[derive(Debug, Clone)]
pub struct RdbTarget {
    /// The directory (`dir`).
    pub dir: PathBuf,
    /// The file's name in it (`dbfilename`).
    pub file: String,
    /// Compression and checksum.
    pub opts: WriteOptions,
    /// Written out every 4 MB as it grows ([`WriteOut`]).
    pub incremental_fsync: bool,
}

impl RdbTarget {
    /// The target the options name.
    pub fn of(config: &Config) -> Self {
        RdbTarget {
            dir: config.dir.clone(),
            file: config.dbfilename.clone(),
            opts: WriteOptions {
                compression: config.rdbcompression,
                checksum: config.rdbchecksum,
                aof_base: false,
            },
            incremental_fsync: config.rdb_save_incremental_fsync,
        }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }
}

/// Writes `snapshot` (save number `seq`) to `target`'s file: a temporary
/// file in the same directory, synced, then renamed into place and the
/// directory synced. Returns the changes counted at the snapshot's instant,
/// or `None` if a newer save's file was in place first (this one is
/// dropped).
pub fn write_snapshot(
    snapshot: Snapshot<'_>,
    target: &RdbTarget,
    persistence: &Persistence,
    seq: u64,
) -> io::Result<Option<u64>> {
    let dirty = snapshot.dirty();
    let temp = temp_path(target, persistence);
    let written = create(&temp)
        .and_then(|file| write_file(snapshot, file, target.opts, target.incremental_fsync));
    let placed = put_in_place(written, &temp, target, persistence, seq)?;
    Ok(placed.then_some(dirty))
}

/// Writes a file with no keys, only the fencing-token mark and the longest
/// lease (FLUSHALL's save, number `seq`, taken after the flush: it goes over
/// any save running then).
pub fn write_empty(
    fencing: u64,
    longest_lease: u64,
    target: &RdbTarget,
    persistence: &Persistence,
    seq: u64,
) -> io::Result<()> {
    let temp = temp_path(target, persistence);
    let written = (|| {
        let out = WriteOut::new(create(&temp)?, None);
        let mut writer = Writer::new(BufWriter::new(out), target.opts)?;
        SnapshotSink::fencing_high_water(&mut writer, fencing)?;
        SnapshotSink::longest_lease(&mut writer, longest_lease)?;
        finish(writer)
    })();
    put_in_place(written, &temp, target, persistence, seq)?;
    Ok(())
}

/// Writes `snapshot` as an AOF base file at `path` (synced; the caller
/// renames it into place). With `incremental_fsync`
/// (`aof-rewrite-incremental-fsync`), the file is written out every 4 MB as
/// it grows ([`WriteOut`]), so the final sync does not stall the disk for the
/// whole file.
pub fn write_base(
    snapshot: Snapshot<'_>,
    path: &Path,
    opts: WriteOptions,
    incremental_fsync: bool,
) -> io::Result<()> {
    let opts = WriteOptions {
        aof_base: true,
        ..opts
    };
    write_file(snapshot, File::create(path)?, opts, incremental_fsync).map(drop)
}

/// Walks `snapshot` into `file` (written out every 4 MB as it grows with
/// `incremental_fsync`), ends it and syncs it.
fn write_file(
    snapshot: Snapshot<'_>,
    file: File,
    opts: WriteOptions,
    incremental_fsync: bool,
) -> io::Result<File> {
    let out = WriteOut::new(file, incremental_fsync.then_some(AUTOSYNC_BYTES));
    let mut sink = FileSink::new(out, opts)?;
    snapshot.write_to(&mut sink)?;
    finish(sink.0)
}

/// Redis's `REDIS_AUTOSYNC_BYTES`.
const AUTOSYNC_BYTES: u64 = 4 << 20;

/// A file written out to the disk as it grows, as Redis's `rio` does with
/// autosync: every `every` bytes, the writeout of the newest `every` starts
/// (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`) and the one before is
/// waited for. Dirty pages never pile up for the final sync, and no step is an
/// `fsync`, which on a growing file commits the file system's journal (its
/// kernel thread then competes with the workers for the CPU; measured as the
/// GET p99 during BGREWRITEAOF in `FORMAT=aof benches/rdb.py`).
struct WriteOut {
    file: File,
    every: Option<u64>,
    /// Bytes written.
    written: u64,
    /// Where the range whose writeout has not been started begins.
    started: u64,
    /// Where the range whose writeout was started last begins (it ends at
    /// `started`).
    last: u64,
    /// Whether writes wait in `held` ([`SnapshotSink::hold`]).
    holding: bool,
    held: Vec<u8>,
    /// Each `sync_file_range` made: offset, length, flags.
    #[cfg(test)]
    calls: Vec<(u64, u64, u32)>,
}

impl WriteOut {
    fn new(file: File, every: Option<u64>) -> Self {
        WriteOut {
            file,
            every,
            written: 0,
            started: 0,
            last: 0,
            holding: false,
            held: Vec::new(),
            #[cfg(test)]
            calls: Vec::new(),
        }
    }

    /// Starts the writeout of `started..written`, and waits for the range
    /// started the previous time, which ends where this one begins.
    fn write_out(&mut self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        #[cfg(test)]
        let calls = &mut self.calls;
        #[allow(unused_mut)] // it records its calls in tests
        let mut range = |from: u64, to: u64, flags: libc::c_uint| {
            #[cfg(test)]
            calls.push((from, to - from, flags));
            // SAFETY: a plain system call on a descriptor `self.file` owns.
            let r = unsafe { libc::sync_file_range(fd, from as i64, (to - from) as i64, flags) };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        range(self.started, self.written, libc::SYNC_FILE_RANGE_WRITE)?;
        if self.last < self.started {
            range(
                self.last,
                self.started,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            )?;
        }
        self.last = self.started;
        self.started = self.written;
        Ok(())
    }

    /// Holds writes in memory from `hold(true)`; `hold(false)` writes what
    /// waited, and keeps at most [`HELD_MAX`] of the memory for next time.
    fn hold(&mut self, on: bool) -> io::Result<()> {
        self.holding = on;
        if on || self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        let written = self.write_all(&held);
        self.held = held;
        self.held.clear();
        self.held.shrink_to(HELD_MAX);
        written
    }
}

impl Write for WriteOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.holding {
            self.held.extend_from_slice(buf);
            return Ok(buf.len());
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if let Some(every) = self.every {
            if self.written - self.started >= every {
                self.write_out()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn temp_path(target: &RdbTarget, persistence: &Persistence) -> PathBuf {
    target.dir.join(format!(
        "temp-{}-{}.rdb",
        std::process::id(),
        persistence.temp_seq()
    ))
}

fn create(path: &Path) -> io::Result<File> {
    File::create(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "Failed opening the temp RDB file {} for saving: {e}",
                path.display()
            ),
        )
    })
}

/// Ends the file and syncs it to disk.
fn finish(writer: Writer<BufWriter<WriteOut>>) -> io::Result<File> {
    let out = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
    out.file.sync_all()?;
    Ok(out.file)
}

/// Renames a written temporary file over the target and syncs the
/// directory; or removes it, if the write failed or a newer save's file is
/// in place (`Ok(false)`).
fn put_in_place(
    written: io::Result<File>,
    temp: &Path,
    target: &RdbTarget,
    persistence: &Persistence,
    seq: u64,
) -> io::Result<bool> {
    if let Err(e) = written {
        let _ = std::fs::remove_file(temp);
        return Err(e);
    }
    let path = target.path();
    let placed = persistence.place(seq, || {
        std::fs::rename(temp, &path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "Error moving temp DB file {} on the final destination {}: {e}",
                    temp.display(),
                    path.display()
                ),
            )
        })
    });
    match placed {
        Ok(true) => File::open(&target.dir)?.sync_all().map(|()| true),
        Ok(false) => {
            let _ = std::fs::remove_file(temp);
            Ok(false)
        }
        Err(e) => {
            let _ = std::fs::remove_file(temp);
            Err(e)
        }
    }
}

/// What a start-up load put back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Keys put in the keyspace.
    pub loaded: u64,
    /// Keys left out because their TTL had passed.
    pub expired: u64,
    /// The longest lease (ms) its server had granted (0 if it does not say).
    pub longest_lease: u64,
    /// The function libraries' code, in file order: the caller installs them
    /// (`commands::function::load_from_file`).
    pub functions: Vec<Vec<u8>>,
}

/// Why a file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(io::Error),
    /// It is not a valid RDB file (the error names the offset).
    Rdb(RdbError),
    /// A key appears twice.
    Duplicate {
        /// Its database.
        db: u64,
        /// Its name.
        key: Vec<u8>,
    },
    /// A database number past `databases`.
    Database {
        /// The number.
        db: u64,
        /// How many the server has.
        databases: usize,
    },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io(e) => write!(f, "{e}"),
            LoadError::Rdb(e) => write!(f, "{e}"),
            LoadError::Duplicate { db, key } => write!(
                f,
                "RDB has duplicated key '{}' in DB {db}",
                String::from_utf8_lossy(key)
            ),
            LoadError::Database { db, databases } => write!(
                f,
                "the file holds database {db}, and this server has {databases} (databases)"
            ),
        }
    }
}

/// Loads the RDB file at `path` into `keyspace` (empty, at start-up): keys
/// whose TTL passed before `clock`'s now are left out, as a Redis primary
/// does; locks keep their holders, tokens and lease ends, and their lease
/// and lock-delay deadlines are filed; the fencing-token counter is raised to
/// the file's mark. `Ok(None)` when there is no file.
pub fn load_file(
    path: &Path,
    keyspace: &Keyspace,
    clock: &Clock,
    enc: &Encodings,
    checksum: bool,
) -> Result<Option<LoadStats>, LoadError> {
    load_file_with(path, keyspace, clock, enc, checksum, LoadOptions::default())
}

/// How [`load_file_with`] treats what is already there and what has expired.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// A key the keyspace has already is replaced by the file's (DEBUG RELOAD
    /// MERGE, Redis's `RDBFLAGS_ALLOW_DUP`); else it is an error.
    pub merge: bool,
    /// Keys whose TTL has passed are loaded too (an AOF's base, as Redis's
    /// `RDBFLAGS_AOF_PREAMBLE`: the file's later commands may write them, and
    /// they expire once the load is done).
    pub keep_expired: bool,
}

/// [`load_file`] with [`LoadOptions`] (into a keyspace that may hold keys
/// already: DEBUG RELOAD NOFLUSH).
pub fn load_file_with(
    path: &Path,
    keyspace: &Keyspace,
    clock: &Clock,
    enc: &Encodings,
    checksum: bool,
    opts: LoadOptions,
) -> Result<Option<LoadStats>, LoadError> {
    let merge = opts.merge;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LoadError::Io(e)),
    };
    let now = clock.now_ms();
    let mut stats = LoadStats::default();
    let mut failed = None;
    let mut db_now = 0u64;
    let dbs = keyspace.dbs();
    let result = load_checked(&bytes, enc, checksum, &mut |item| {
        match item {
            Loaded::Aux { key, value } if key == AUX_FENCING => {
                keyspace.locks().raise_high_water(decimal(&value));
            }
            Loaded::Aux { key, value } if key == AUX_LONGEST_LEASE => {
                let ms = decimal(&value);
                stats.longest_lease = stats.longest_lease.max(ms);
            }
            Loaded::Aux { .. } => {}
            Loaded::Function { code } => stats.functions.push(code),
            Loaded::Db { index } => db_now = index,
            Loaded::Entry {
                db,
                key,
                value,
                expire_at_ms,
            } => {
                let db = if matches!(value, Value::Lock(_)) {
                    db
                } else {
                    db_now
                };
                let Some(target) = usize::try_from(db).ok().and_then(|d| dbs.get(d)) else {
                    failed = Some(LoadError::Database {
                        db,
                        databases: dbs.len(),
                    });
                    return Err(RdbError::Invalid {
                        offset: 0,
                        what: "database out of range",
                    });
                };
                if expire_at_ms.is_some_and(|at| at <= now) {
                    stats.expired += 1;
                    if !opts.keep_expired {
                        return Ok(());
                    }
                }
                let entry = Entry::new(value, expire_at_ms);
                let mut shard = target.lock(&key);
                if merge {
                    shard.remove(&key, now);
                }
                if shard.restore(&key, entry, now).is_err() {
                    failed = Some(LoadError::Duplicate { db, key });
                    return Err(RdbError::Invalid {
                        offset: 0,
                        what: "duplicated key",
                    });
                }
                stats.loaded += 1;
            }
        }
        Ok(())
    });
    match (result, failed) {
        (Ok(()), _) => Ok(Some(stats)),
        (Err(_), Some(f)) => Err(f),
        (Err(e), None) => Err(LoadError::Rdb(e)),
    }
}

/// An aux field's decimal value; 0 if it is not one.
fn decimal(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_file_starts_each_ranges_writeout_and_waits_for_the_one_before() {
        let path = std::env::temp_dir().join(format!("latchkey-writeout-{}", std::process::id()));
        let mut out = WriteOut::new(File::create(&path).unwrap(), Some(4096));
        let mut expected = Vec::new();
        let mut ranges = Vec::new();
        for i in 0..100u32 {
            // Writes of odd sizes, so a range ends past its 4 KB.
            let chunk = vec![i as u8; 1000 + i as usize];
            out.write_all(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
            if ranges.last() != Some(&(out.last, out.started)) {
                ranges.push((out.last, out.started));
            }
        }
        assert_eq!(out.written, expected.len() as u64);
        // Each time: start the new range, then wait for the one before.
        let (start, wait) = (
            libc::SYNC_FILE_RANGE_WRITE,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
        let mut want = Vec::new();
        for (i, pair) in ranges.windows(2).enumerate() {
            let ((before_from, before_to), (from, to)) = (pair[0], pair[1]);
            want.push((from, to - from, start));
            if i > 0 {
                want.push((before_from, before_to - before_from, wait));
            }
        }
        assert_eq!(out.calls, want);
        // Each writeout began where the one before ended, at least 4 KB on.
        assert!(ranges.len() > 20, "{ranges:?}");
        for pair in ranges.windows(2) {
            let ((_, before), (last, started)) = (pair[0], pair[1]);
            assert_eq!(last, before);
            assert!(started - last >= 4096);
        }
        drop(out);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn without_a_step_nothing_is_written_out_before_the_end() {
        let path =
            std::env::temp_dir().join(format!("latchkey-no-writeout-{}", std::process::id()));
        let mut out = WriteOut::new(File::create(&path).unwrap(), None);
        out.write_all(&[7; 100_000]).unwrap();
        assert_eq!((out.written, out.started, out.last), (100_000, 0, 0));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_file_sink_holds_what_it_encodes_until_the_hold_ends() {
        let path = std::env::temp_dir().join(format!("latchkey-sink-{}", std::process::id()));
        let out = WriteOut::new(File::create(&path).unwrap(), Some(4096));
        let opts = WriteOptions {
            compression: false,
            ..WriteOptions::default()
        };
        let mut sink = FileSink::new(out, opts).unwrap();
        SnapshotSink::select_db(&mut sink, 0, 1, 0).unwrap();
        let len = |path: &Path| std::fs::metadata(path).unwrap().len();
        let before = len(&path);
        sink.hold(true).unwrap();
        // Larger than the buffer in front of the file, so it reaches the hold.
        let value = Value::string(&[b'x'; 200_000][..]);
        SnapshotSink::entry(&mut sink, b"big", &value, None).unwrap();
        assert!(sink.held() >= 200_000, "{}", sink.held());
        assert_eq!(len(&path), before);
        sink.hold(false).unwrap();
        assert_eq!(sink.held(), 0);
        assert!(len(&path) >= before + 200_000);
        finish(sink.0).unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn held_writes_reach_the_file_when_the_hold_ends_in_order() {
        let path = std::env::temp_dir().join(format!("latchkey-held-{}", std::process::id()));
        let mut out = WriteOut::new(File::create(&path).unwrap(), Some(4096));
        out.write_all(&[1; 3000]).unwrap();
        out.hold(true).unwrap();
        out.write_all(&[2; 5000]).unwrap();
        out.write_all(&[3; 2 * HELD_MAX]).unwrap();
        // Nothing reached the file, and nothing was written out meanwhile.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3000);
        assert_eq!((out.written, out.calls.len()), (3000, 0));
        out.hold(false).unwrap();
        assert!(out.held.is_empty() && out.held.capacity() <= HELD_MAX);
        // Once let go, the held bytes count toward the writeout as any.
        assert_eq!(out.written, 8000 + 2 * HELD_MAX as u64);
        assert_eq!(out.started, out.written);
        out.write_all(&[4; 10]).unwrap();
        let mut want = vec![1; 3000];
        want.extend_from_slice(&[2; 5000]);
        want.extend_from_slice(&vec![3; 2 * HELD_MAX]);
        want.extend_from_slice(&[4; 10]);
        drop(out);
        assert_eq!(std::fs::read(&path).unwrap(), want);
        let _ = std::fs::remove_file(&path);
    }
}
