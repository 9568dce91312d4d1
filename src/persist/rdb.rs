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

use super::{Persistence, Snapshot, SnapshotSink};

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

/// Where and how the RDB file is written: `dir`, `dbfilename`,
/// `rdbcompression`, `rdbchecksum`.
#[derive(Debug, Clone)]
pub struct RdbTarget {
    /// The directory (`dir`).
    pub dir: PathBuf,
    /// The file's name in it (`dbfilename`).
    pub file: String,
    /// Compression and checksum.
    pub opts: WriteOptions,
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
    let written = (|| {
        let mut writer = Writer::new(
            BufWriter::with_capacity(1 << 16, create(&temp)?),
            target.opts,
        )?;
        snapshot.write_to(&mut writer)?;
        finish(writer)
    })();
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
        let mut writer = Writer::new(BufWriter::new(create(&temp)?), target.opts)?;
        SnapshotSink::fencing_high_water(&mut writer, fencing)?;
        SnapshotSink::longest_lease(&mut writer, longest_lease)?;
        finish(writer)
    })();
    put_in_place(written, &temp, target, persistence, seq)?;
    Ok(())
}

/// Writes `snapshot` as an AOF base file at `path` (synced; the caller
/// renames it into place). With `incremental_fsync`
/// (`aof-rewrite-incremental-fsync`), the file is synced every 4 MB as it
/// grows, so the final sync does not stall the disk for the whole file.
pub fn write_base(
    snapshot: Snapshot<'_>,
    path: &Path,
    opts: WriteOptions,
    incremental_fsync: bool,
) -> io::Result<()> {
    let file = File::create(path)?;
    let opts = WriteOptions {
        aof_base: true,
        ..opts
    };
    let out = SyncEvery {
        file,
        every: incremental_fsync.then_some(AUTOSYNC_BYTES),
        since: 0,
    };
    let mut writer = Writer::new(BufWriter::with_capacity(1 << 16, out), opts)?;
    snapshot.write_to(&mut writer)?;
    let out = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
    out.file.sync_all()
}

/// Redis's `REDIS_AUTOSYNC_BYTES`.
const AUTOSYNC_BYTES: u64 = 4 << 20;

/// A file that syncs itself every `every` bytes written.
struct SyncEvery {
    file: File,
    every: Option<u64>,
    since: u64,
}

impl Write for SyncEvery {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(every) = self.every {
            self.since += n as u64;
            if self.since >= every {
                self.file.sync_data()?;
                self.since = 0;
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
fn finish(writer: Writer<BufWriter<File>>) -> io::Result<File> {
    let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(file)
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
