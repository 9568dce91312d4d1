//! The append-only file, in Redis 7's multi-part layout: a directory
//! (`appenddirname`) holding a manifest (`<appendfilename>.manifest`), one
//! base file (`<appendfilename>.<seq>.base.rdb`, an RDB image of the keyspace
//! at a rewrite's instant) and the incremental files written since
//! (`<appendfilename>.<seq>.incr.aof`, commands in RESP).
//!
//! - **Logging.** Each unit of work (one command with the blocked clients it
//!   served, an EXEC, a script, an expiry slice, a departed client's release)
//!   logs its writes on its own thread (`propagate`); [`end_unit`] appends them
//!   to the buffer, `SELECT`s where the database changes, wrapped in
//!   `MULTI`/`EXEC` when there is more than one, as Redis propagates. Units
//!   holding the gate shared end one at a time ([`Aof::order`]), so the file
//!   has their writes in the order the keyspace saw them.
//! - **Locks.** A lock changes on its own (leases run out, waiters are
//!   granted), so the file gets each changed lock's state as the unit leaves
//!   it, `LATCHKEY.LOCK <payload>` (the RDB aux value, `rdb::lock`), or `DEL`
//!   when it is gone, and the fencing-token mark and longest lease as
//!   `LATCHKEY.MARK <tokens> <ms>` when they rise. redis-server does not know
//!   these two commands: a file with locks loads only into latchkey.
//! - **Writing and syncing.** A client's replies wait until the file has its
//!   writes ([`Aof::before_reply`]): `appendfsync everysec` and `no` write
//!   the buffer there (one `write` per batch of replies, as Redis writes once
//!   per event-loop turn), and a thread syncs every second (`everysec`);
//!   `always` hands the buffer to the sync thread and the reply waits for its
//!   `fdatasync`, which covers every client's writes appended meanwhile
//!   (group commit: the worker serves other clients during the sync, and
//!   the sync thread gathers the clients the last sync released before the
//!   next, as Redis's event loop does; see `Group`).
//! - **Rewrites** (BGREWRITEAOF, `appendonly yes` at run time, the automatic
//!   one) run on the background save thread: a new incremental file is
//!   made and listed in the manifest after the old ones (empty until the
//!   switch, so the AOF is the same); at the instant (gate held exclusively)
//!   a snapshot is begun and appends switch to the new file; the snapshot is
//!   written as the new base, then the manifest names the new base and the
//!   new incremental file only, and the old files are deleted.
//! - **Loading** at start-up replays the base and every incremental file;
//!   a truncated last command of the last file is cut off with a warning
//!   when `aof-load-truncated yes` (an unfinished `MULTI` is reverted), as
//!   Redis does.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::config::Config;
use crate::keyspace::Value;
use crate::propagate::{self, Record};
use crate::server::Shared;

/// A reply's offset to be settled when it is written (see
/// [`Aof::appended_settled`]).
pub const SETTLE: u64 = u64::MAX;

/// The command that carries a lock's state.
pub const LOCK_RECORD: &[u8] = b"LATCHKEY.LOCK";
/// The command that carries the fencing-token mark and the longest lease.
pub const MARK_RECORD: &[u8] = b"LATCHKEY.MARK";

/// `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Every write is synced before its reply.
    Always,
    /// Synced once a second.
    #[default]
    EverySec,
    /// Left to the operating system.
    No,
}

impl Fsync {
    /// The option's value.
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        }
    }

    /// Parses the option's value.
    pub fn parse(s: &str) -> Option<Fsync> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Some(Fsync::Always),
            "everysec" => Some(Fsync::EverySec),
            "no" => Some(Fsync::No),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn of_code(c: u8) -> Fsync {
        match c {
            0 => Fsync::Always,
            1 => Fsync::EverySec,
            _ => Fsync::No,
        }
    }
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The file's name in the directory.
    pub name: String,
    /// Its sequence number.
    pub seq: u64,
    /// `b` base, `h` history, `i` incremental.
    pub kind: u8,
}

/// The manifest: which files make the AOF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The base file.
    pub base: Option<FileInfo>,
    /// Files waiting to be deleted.
    pub history: Vec<FileInfo>,
    /// Incremental files, in order.
    pub incrs: Vec<FileInfo>,
}

impl Manifest {
    /// Parses a manifest as Redis 7.0 does (`aofLoadManifestFromDisk`),
    /// with its error texts.
    pub fn parse(text: &[u8]) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        let mut max_seq = 0;
        let mut lines = 0;
        for raw in text.split_inclusive(|&b| b == b'\n') {
            lines += 1;
            if raw.first() == Some(&b'#') {
                continue;
            }
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_matches([' ', '\t', '\r', '\n']);
            if line.is_empty() {
                return Err("Invalid AOF manifest file format".into());
            }
            let words = crate::protocol::split_args(line.as_bytes())
                .ok_or("Invalid AOF manifest file format")?;
            if words.len() < 6 || words.len() % 2 != 0 {
                return Err("Invalid AOF manifest file format".into());
            }
            let (mut name, mut seq, mut kind) = (None, 0u64, 0u8);
            for pair in words.chunks_exact(2) {
                let key = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                match key.as_str() {
                    "file" => {
                        let n = String::from_utf8_lossy(&pair[1]).into_owned();
                        if n.contains('/') {
                            return Err("File can't be a path, just a filename".into());
                        }
                        name = Some(n);
                    }
                    "seq" => seq = atoll(&pair[1]),
                    "type" => kind = pair[1].first().copied().unwrap_or(0),
                    _ => {}
                }
            }
            let (Some(name), true, true) = (name, seq != 0, kind != 0) else {
                return Err("Invalid AOF manifest file format".into());
            };
            let info = FileInfo { name, seq, kind };
            match kind {
                b'b' => {
                    if m.base.is_some() {
                        return Err("Found duplicate base file information".into());
                    }
                    m.base = Some(info);
                }
                b'h' => m.history.push(info),
                b'i' => {
                    if seq <= max_seq {
                        return Err("Found a non-monotonic sequence number".into());
                    }
                    max_seq = seq;
                    m.incrs.push(info);
                }
                _ => return Err("Unknown AOF file type".into()),
            }
        }
        if lines == 0 {
            return Err("Found an empty AOF manifest".into());
        }
        Ok(m)
    }

    /// The manifest's text, as Redis writes it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in self
            .base
            .iter()
            .chain(self.history.iter())
            .chain(self.incrs.iter())
        {
            out.push_str(&format!(
                "file {} seq {} type {}\n",
                quote(&f.name),
                f.seq,
                f.kind as char
            ));
        }
        out
    }

    fn base_seq(&self) -> u64 {
        self.base.as_ref().map_or(0, |b| b.seq)
    }

    fn incr_seq(&self) -> u64 {
        self.incrs.last().map_or(0, |i| i.seq)
    }
}

/// Redis's `atoll`: leading digits, 0 if none.
fn atoll(s: &[u8]) -> u64 {
    let mut n: u64 = 0;
    for &b in s.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    n
}

/// A file name as the manifest writes it: quoted (`sdscatrepr`) when it has
/// spaces, quotes or bytes that are not printable.
fn quote(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
    if plain {
        return name.to_string();
    }
    let mut out = Vec::new();
    crate::protocol::repr(name.as_bytes(), &mut out);
    // Quoted, it is ASCII.
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the files are: `dir`/`appenddirname`, named after `appendfilename`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The directory of the AOF's files.
    pub dir: PathBuf,
    /// `appendfilename`.
    pub name: String,
}

impl Layout {
    /// The layout the options name.
    pub fn of(config: &Config) -> Layout {
        Layout {
            dir: config.dir.join(&config.appenddirname),
            name: config.appendfilename.clone(),
        }
    }

    /// The manifest's path.
    pub fn manifest(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest", self.name))
    }

    fn base_name(&self, seq: u64) -> String {
        format!("{}.{seq}.base.rdb", self.name)
    }

    fn incr_name(&self, seq: u64) -> String {
        format!("{}.{seq}.incr.aof", self.name)
    }

    /// Reads the manifest; `Ok(None)` if there is none.
    pub fn read_manifest(&self) -> Result<Option<Manifest>, String> {
        match std::fs::read(self.manifest()) {
            Ok(text) => Manifest::parse(&text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("Read AOF manifest failed: {e}")),
        }
    }

    /// Writes the manifest: a temporary file, synced, renamed over it, and
    /// the directory synced.
    pub fn write_manifest(&self, m: &Manifest) -> io::Result<()> {
        let temp = self.dir.join(format!("temp-{}.manifest", self.name));
        {
            let mut f = File::create(&temp)?;
            f.write_all(m.render().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&temp, self.manifest())?;
        sync_dir(&self.dir)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The file being appended to, and what is buffered for it.
#[derive(Debug, Default)]
struct Inner {
    /// Commands not yet written.
    buf: Vec<u8>,
    /// The database the file last selected (`None`: the next record selects).
    db: Option<usize>,
    /// The incremental file being appended to.
    file: Option<Arc<File>>,
    /// Where the files are.
    layout: Option<Layout>,
    /// The manifest in force.
    manifest: Manifest,
    /// The marks last written (fencing tokens, longest lease).
    mark: (u64, u64),
    /// Bytes of the base file, and of all files (`aof_base_size`,
    /// `aof_current_size`).
    base_size: u64,
    current_size: u64,
}

/// Rewrite bookkeeping, for INFO and BGREWRITEAOF.
#[derive(Debug, Default)]
struct Rewrites {
    /// Asked for and not started.
    scheduled: bool,
    /// Asked for by a BGREWRITEAOF that answered "started": until the
    /// background thread starts it, it counts as running (Redis forks its
    /// child before that reply).
    starting: bool,
    /// Running since (server clock, ms).
    running_since: Option<u64>,
    /// Whether the last one succeeded.
    last_failed: bool,
    /// Seconds the last one took.
    last_duration_s: Option<u64>,
    /// Rewrites started.
    count: u64,
    /// Failures in a row.
    consecutive_failures: u64,
    /// After 3 failures in a row, no automatic rewrite (nor a retry of
    /// turning the AOF on) before this (ms): 1 minute, doubling up to an
    /// hour, as Redis's `aofRewriteLimited`. BGREWRITEAOF is not held back.
    held_until_ms: u64,
}

impl Rewrites {
    /// Running, or answered "started" and about to run.
    fn in_progress(&self) -> bool {
        self.running_since.is_some() || self.starting
    }
}

/// `appendfsync always`'s group commit. Redis groups `always` writes by its
/// event loop: it reads every ready client, then syncs once before any
/// reply. Here the replies that wait for a sync are counted, and the sync
/// thread starts a sync once as many wait as the last sync carried (the
/// clients it released come back with their next writes), or once they are
/// late: the longer of the last sync's duration and twice the smoothed time
/// groups have waited for their clients, from the end of the last sync, at
/// most [`GATHER_MAX`]. A late group is smaller, and the next one is
/// expected to be as small, so a client left alone is synced at once.
/// (Syncing as soon as anything waited carried 5 to 7 writes a sync under
/// 50 clients, where Redis's loop carries 25 to 50.)
#[derive(Debug, Default)]
struct Group {
    /// Replies that began waiting since the current sync began (each counted
    /// once; its writes were appended before it counted).
    waiting: AtomicUsize,
    /// Waiting replies worth a sync at once: what the last sync carried.
    target: AtomicUsize,
    /// How long groups waited for their clients, smoothed (ns).
    gather_ns: AtomicU64,
    /// The last sync's duration (ns).
    sync_ns: AtomicU64,
}

/// The longest a group gathers.
const GATHER_MAX: Duration = Duration::from_millis(1);

impl Group {
    /// Waiting replies that complete the next group.
    fn target(&self) -> usize {
        self.target.load(Ordering::Relaxed).max(1)
    }

    /// How long after the last sync the next one waits for its group.
    fn patience(&self) -> Duration {
        let usual = Duration::from_nanos(self.gather_ns.load(Ordering::Relaxed)) * 2;
        let sync = Duration::from_nanos(self.sync_ns.load(Ordering::Relaxed));
        usual.max(sync).min(GATHER_MAX)
    }

    /// A sync ended: its group waited `took` for its clients (`None`: it
    /// did not wait, or they were late), the sync took `sync`, and it
    /// carried `carried` replies; the next group expects as many.
    fn gathered(&self, took: Option<Duration>, sync: Duration, carried: usize) {
        if let Some(took) = took {
            let took = took.min(GATHER_MAX).as_nanos() as u64;
            let old = self.gather_ns.load(Ordering::Relaxed);
            self.gather_ns
                .store(old - old / 8 + took / 8, Ordering::Relaxed);
        }
        self.sync_ns
            .store(sync.min(GATHER_MAX).as_nanos() as u64, Ordering::Relaxed);
        self.target.store(carried.max(1), Ordering::Relaxed);
    }
}

/// The append-only file's state (one per server).
#[derive(Debug, Default)]
pub struct Aof {
    /// Held by a unit that holds the gate shared while it runs and until
    /// its writes are appended: units end in the order they wrote.
    order: Mutex<()>,
    inner: Mutex<Inner>,
    /// Logging is on (mirrors `KeyHook::is_logging`, for the write path).
    on: AtomicBool,
    /// `appendonly yes` was asked for (INFO `aof_enabled`), on or waiting
    /// for its first rewrite.
    enabled: AtomicBool,
    fsync: AtomicU8,
    /// Bytes appended, written and synced since start (one count across
    /// files).
    appended: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    /// Wakes the sync thread.
    wake: Condvar,
    wake_lock: Mutex<bool>,
    /// Tells replies waiting for a sync (`always`) that one ended.
    synced_notify: tokio::sync::Notify,
    /// How `always` gathers replies into one sync.
    group: Group,
    /// The last write or sync failed: writes are refused (MISCONF).
    write_error: Mutex<Option<String>>,
    write_failed: AtomicBool,
    rewrites: Mutex<Rewrites>,
    /// `CONFIG SET appendonly yes` waits for the save thread.
    start_requested: AtomicBool,
}

/// Why the AOF could not start or load.
pub type AofError = String;

impl Aof {
    /// Whether writes are being logged.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Whether `appendonly` is yes (INFO's `aof_enabled`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// `appendfsync` now.
    pub fn fsync(&self) -> Fsync {
        Fsync::of_code(self.fsync.load(Ordering::Relaxed))
    }

    /// Sets `appendfsync`.
    pub fn set_fsync(&self, f: Fsync) {
        self.fsync.store(f.code(), Ordering::Relaxed);
        self.poke();
    }

    /// For a unit holding the gate shared: ends units one at a time while the
    /// file is on (`None` while it is off).
    #[inline]
    pub fn order(&self) -> Option<MutexGuard<'_, ()>> {
        if self.is_on() {
            Some(self.order.lock())
        } else {
            None
        }
    }

    /// The offset for a client served or granted by another client's unit
    /// (a waiter's reply): [`SETTLE`], which [`Aof::before_reply`] turns into
    /// the offset appended once no unit is under way, so the reply waits for
    /// the unit that served it. Without blocking the worker meanwhile (the
    /// unit may be a busy script's).
    pub fn appended_settled(&self) -> u64 {
        if !self.is_on() {
            return 0;
        }
        SETTLE
    }

    /// [`SETTLE`] made an offset: what is appended once no unit holds the
    /// order (tried, then retried every millisecond).
    async fn settle(&self) -> u64 {
        loop {
            if let Some(_order) = self.order.try_lock() {
                return self.appended.load(Ordering::Acquire);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Bytes appended so far.
    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::Acquire)
    }

    /// Whether the last write to the file failed (one relaxed load).
    #[inline]
    pub fn has_write_error(&self) -> bool {
        self.write_failed.load(Ordering::Relaxed)
    }

    /// Why the last write to the file failed (writes are refused meanwhile).
    pub fn write_error(&self) -> Option<String> {
        if !self.write_failed.load(Ordering::Relaxed) {
            return None;
        }
        self.write_error.lock().clone()
    }

    /// Waits until the file holds the writes up to `offset` as `appendfsync`
    /// asks before a reply: written (`everysec`, `no`) or synced (`always`).
    pub async fn before_reply(&self, offset: u64) {
        if offset == 0 || !self.is_on() {
            return;
        }
        let offset = if offset == SETTLE {
            self.settle().await
        } else {
            offset
        };
        if self.fsync() != Fsync::Always {
            if self.written.load(Ordering::Acquire) < offset {
                // Let the other clients this worker has ready run first and
                // append theirs: one write then carries them all, as Redis
                // writes once per event-loop turn.
                tokio::task::yield_now().await;
                if self.written.load(Ordering::Acquire) < offset {
                    self.write_out();
                }
            }
            return;
        }
        let mut counted = false;
        loop {
            let notified = self.synced_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.synced.load(Ordering::Acquire) >= offset || !self.is_on() {
                return;
            }
            if !counted {
                counted = true;
                let n = self.group.waiting.fetch_add(1, Ordering::AcqRel) + 1;
                // The first of a group starts the gathering; the one that
                // completes it starts the sync.
                if n == 1 || n >= self.group.target() {
                    self.poke();
                }
            }
            notified.await;
        }
    }

    /// The sync thread under `always`, once a reply waits: gathers a group
    /// ([`Group`]) until it is complete or late, syncs, and sets the next
    /// group's size. `since`: when the last sync ended.
    fn group_sync(&self, since: Instant) {
        let g = &self.group;
        let target = g.target();
        let deadline = since + g.patience();
        // How long a group took to gather, if it had to wait for its
        // clients (one complete when the gathering starts took no time of
        // its own: its clients came back during the last sync).
        let mut took = None;
        if g.waiting.load(Ordering::Acquire) < target {
            let mut poked = self.wake_lock.lock();
            loop {
                if g.waiting.load(Ordering::Acquire) >= target {
                    took = Some(since.elapsed());
                    break;
                }
                if *poked {
                    *poked = false;
                    continue;
                }
                if self.wake.wait_until(&mut poked, deadline).timed_out() {
                    break;
                }
            }
        }
        // Every reply counted so far had its writes appended before it
        // counted: this sync carries them all.
        let carried = g.waiting.swap(0, Ordering::AcqRel);
        let started = Instant::now();
        let _ = self.sync_now();
        g.gathered(took, started.elapsed(), carried);
    }

    /// Writes the buffer to the file; returns the file and the offset it
    /// reaches (for a sync), or `None` with nothing open.
    fn write_out(&self) -> Option<(Arc<File>, u64)> {
        let mut inner = self.inner.lock();
        let file = inner.file.clone()?;
        if !inner.buf.is_empty() {
            match (&*file).write_all(&inner.buf) {
                Ok(()) => {
                    let n = inner.buf.len() as u64;
                    inner.buf.clear();
                    if inner.buf.capacity() > 1 << 20 {
                        inner.buf = Vec::new();
                    }
                    self.written.fetch_add(n, Ordering::AcqRel);
                    self.clear_error();
                }
                Err(e) => {
                    // Kept: written again at the next try.
                    self.set_error(&e);
                    return None;
                }
            }
        }
        Some((file, self.written.load(Ordering::Acquire)))
    }

    fn set_error(&self, e: &io::Error) {
        if !self.write_failed.swap(true, Ordering::Relaxed) {
            tracing::warn!("Error writing to the AOF file: {e}");
        }
        // strerror's text, as Redis's message has it.
        let text = e.to_string();
        let text = match text.find(" (os error") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        *self.write_error.lock() = Some(text);
    }

    fn clear_error(&self) {
        if self.write_failed.swap(false, Ordering::Relaxed) {
            tracing::info!("AOF write error looks solved, Redis can write again.");
        }
    }

    /// Writes and syncs everything appended so far (WAITAOF, shutdown, a
    /// rewrite's instant). Returns the offset synced.
    pub fn sync_now(&self) -> io::Result<u64> {
        let Some((file, upto)) = self.write_out() else {
            return Ok(self.synced.load(Ordering::Acquire));
        };
        if let Err(e) = file.sync_data() {
            self.set_error(&e);
            return Err(e);
        }
        self.synced.fetch_max(upto, Ordering::AcqRel);
        self.synced_notify.notify_waiters();
        Ok(upto)
    }

    /// Writes what a unit with no client to answer left buffered (an
    /// expiry slice), unless `always` leaves it to the sync thread.
    pub fn write_pending(&self) {
        if self.is_on() && self.fsync() != Fsync::Always {
            self.write_out();
        }
    }

    /// Bytes synced so far.
    pub fn synced(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }

    /// Wakes the sync thread (at shutdown, so it syncs and ends).
    pub fn wake_syncer(&self) {
        self.poke();
    }

    fn poke(&self) {
        *self.wake_lock.lock() = true;
        self.wake.notify_one();
    }

    /// The sync thread: `always` syncs whenever something is appended and
    /// not synced; `everysec` once a second; `no` only writes what units
    /// outside a client left in the buffer.
    pub fn spawn_syncer(shared: Arc<Shared>) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("latchkey-aof".into())
            .spawn(move || {
                let aof = &shared.aof;
                let mut last_sync = Instant::now();
                while !shared.is_stopping() {
                    {
                        let mut poked = aof.wake_lock.lock();
                        // Replies of a group begun during the last sync
                        // wait already: no sleep.
                        let waited = aof.fsync() == Fsync::Always
                            && aof.group.waiting.load(Ordering::Acquire) > 0
                            && aof.appended() > aof.synced();
                        if !*poked && !waited {
                            let wait = match aof.fsync() {
                                Fsync::Always => Duration::from_millis(100),
                                _ => Duration::from_secs(1),
                            };
                            aof.wake.wait_for(&mut poked, wait);
                        }
                        *poked = false;
                    }
                    if !aof.is_on() {
                        continue;
                    }
                    match aof.fsync() {
                        Fsync::No => {
                            aof.write_out();
                        }
                        Fsync::Always => {
                            if aof.appended() > aof.synced() {
                                aof.group_sync(last_sync);
                                last_sync = Instant::now();
                            }
                        }
                        Fsync::EverySec => {
                            if aof.appended() > aof.synced() {
                                let _ = aof.sync_now();
                            }
                        }
                    }
                }
                // Everything appended goes to the file before the process ends.
                if aof.is_on() {
                    let _ = aof.sync_now();
                }
            })
    }

    /// INFO's AOF figures.
    pub fn report(&self, now_ms: u64) -> AofReport {
        let r = self.rewrites.lock();
        let inner = self.inner.lock();
        AofReport {
            enabled: self.is_enabled(),
            rewrite_in_progress: r.in_progress(),
            rewrite_scheduled: r.scheduled && !r.starting,
            last_rewrite_time_s: r.last_duration_s.map_or(-1, |s| s as i64),
            current_rewrite_time_s: r
                .running_since
                .map_or(-1, |t| (now_ms.saturating_sub(t) / 1000) as i64),
            last_rewrite_ok: !r.last_failed,
            rewrites: r.count,
            consecutive_failures: r.consecutive_failures,
            last_write_ok: !self.write_failed.load(Ordering::Relaxed),
            current_size: inner.current_size,
            base_size: inner.base_size,
            buffer_length: inner.buf.len() as u64,
        }
    }

    /// Whether a rewrite runs now (or BGREWRITEAOF said it started).
    pub fn rewrite_running(&self) -> bool {
        self.rewrites.lock().in_progress()
    }

    /// Asks for a rewrite (BGREWRITEAOF); `now` when the command answers
    /// that it started rather than that it is scheduled. False if one runs
    /// already.
    pub fn request_rewrite(&self, now: bool) -> bool {
        let mut r = self.rewrites.lock();
        if r.in_progress() {
            return false;
        }
        r.scheduled = true;
        r.starting = now;
        r.consecutive_failures = 0;
        r.held_until_ms = 0;
        true
    }

    /// Whether failed rewrites hold back automatic ones at `now_ms`.
    pub fn rewrites_held(&self, now_ms: u64) -> bool {
        now_ms < self.rewrites.lock().held_until_ms
    }

    /// Asks for the AOF to be turned on (`CONFIG SET appendonly yes`): a
    /// rewrite whose instant starts the logging. INFO shows it enabled
    /// at once, as Redis's `aof_enabled`.
    pub fn request_start(&self) {
        self.enabled.store(true, Ordering::Relaxed);
        self.start_requested.store(true, Ordering::Relaxed);
    }

    /// Takes a request to turn the AOF on.
    pub fn take_start_request(&self) -> bool {
        self.start_requested.swap(false, Ordering::Relaxed)
    }

    /// Takes a rewrite asked for.
    pub fn take_rewrite_request(&self) -> bool {
        std::mem::take(&mut self.rewrites.lock().scheduled)
    }

    /// Whether a rewrite is asked for and not started.
    pub fn rewrite_scheduled(&self) -> bool {
        self.rewrites.lock().scheduled
    }

    /// Whether the file has grown enough since its last rewrite for an
    /// automatic one (`auto-aof-rewrite-percentage`, `-min-size`).
    pub fn wants_auto_rewrite(&self, percentage: u64, min_size: u64) -> bool {
        if !self.is_on() || percentage == 0 {
            return false;
        }
        {
            let r = self.rewrites.lock();
            if r.running_since.is_some() || r.scheduled {
                return false;
            }
        }
        let inner = self.inner.lock();
        if inner.current_size <= min_size {
            return false;
        }
        let base = inner.base_size.max(1);
        let growth = (inner.current_size.saturating_mul(100) / base).saturating_sub(100);
        growth >= percentage
    }

    /// Stops logging (`appendonly no`, shutdown): what is buffered is
    /// written and synced first.
    pub fn stop(&self, hook: &crate::keyspace::KeyHook) {
        self.start_requested.store(false, Ordering::Relaxed);
        if self.is_on() {
            let _ = self.sync_now();
        }
        hook.set_logging(false);
        self.on.store(false, Ordering::Relaxed);
        self.enabled.store(false, Ordering::Relaxed);
        let mut inner = self.inner.lock();
        inner.file = None;
        inner.db = None;
        self.synced_notify.notify_waiters();
    }
}

/// INFO's `aof_*` fields.
#[derive(Debug, Clone, Copy)]
pub struct AofReport {
    /// `aof_enabled`.
    pub enabled: bool,
    /// `aof_rewrite_in_progress`.
    pub rewrite_in_progress: bool,
    /// `aof_rewrite_scheduled`.
    pub rewrite_scheduled: bool,
    /// `aof_last_rewrite_time_sec`.
    pub last_rewrite_time_s: i64,
    /// `aof_current_rewrite_time_sec`.
    pub current_rewrite_time_s: i64,
    /// `aof_last_bgrewrite_status`.
    pub last_rewrite_ok: bool,
    /// `aof_rewrites`.
    pub rewrites: u64,
    /// `aof_rewrites_consecutive_failures`.
    pub consecutive_failures: u64,
    /// `aof_last_write_status`.
    pub last_write_ok: bool,
    /// `aof_current_size`.
    pub current_size: u64,
    /// `aof_base_size`.
    pub base_size: u64,
    /// `aof_buffer_length`.
    pub buffer_length: u64,
}

/// Appends what this thread's unit logged (see the module doc); returns the
/// offset the file must reach before the unit's replies go out. Called by
/// the unit while it holds the gate (shared with [`Aof::order`], or
/// exclusively).
pub fn end_unit(shared: &Shared) -> u64 {
    let aof = &shared.aof;
    if !aof.is_on() {
        propagate::discard();
        return 0;
    }
    let unit = propagate::take();
    if unit.is_empty() {
        return aof.appended();
    }
    let mut records = unit.records;
    if !unit.locks.is_empty() {
        lock_records(shared, &unit.locks, &mut records);
    }
    let mut inner = aof.inner.lock();
    if inner.file.is_none() {
        return aof.appended();
    }
    let locks = shared.keyspace.locks();
    let mark = (locks.high_water(), locks.longest_lease());
    let start = inner.buf.len();
    let commands = records.len() + usize::from(mark != inner.mark && !unit.locks.is_empty());
    let wrap = commands > 1;
    if wrap {
        propagate::encode(&[Bytes::from_static(b"MULTI")], &mut inner.buf);
    }
    if mark != inner.mark && !unit.locks.is_empty() {
        inner.mark = mark;
        let argv = vec![
            Bytes::from_static(MARK_RECORD),
            Bytes::from(mark.0.to_string()),
            Bytes::from(mark.1.to_string()),
        ];
        propagate::encode(&argv, &mut inner.buf);
    }
    for Record { db, argv } in &records {
        // A lock's state names its database itself.
        if argv[0].as_ref() != LOCK_RECORD && inner.db != Some(*db) {
            let select = vec![Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())];
            propagate::encode(&select, &mut inner.buf);
            inner.db = Some(*db);
        }
        propagate::encode(argv, &mut inner.buf);
    }
    if wrap {
        propagate::encode(&[Bytes::from_static(b"EXEC")], &mut inner.buf);
    }
    let n = (inner.buf.len() - start) as u64;
    inner.current_size += n;
    drop(inner);
    let end = aof.appended.fetch_add(n, Ordering::AcqRel) + n;
    if aof.fsync() == Fsync::Always {
        aof.poke();
    }
    end
}

/// The state of each lock key noted, as it stands now: `LATCHKEY.LOCK` with
/// the lock's payload, or `DEL` when no lock is there.
fn lock_records(shared: &Shared, keys: &[(usize, Bytes)], out: &mut Vec<Record>) {
    let now = shared.clock.now_ms();
    let mut seen: Vec<&(usize, Bytes)> = Vec::with_capacity(keys.len());
    for noted in keys {
        if seen.contains(&noted) {
            continue;
        }
        seen.push(noted);
        let (db, key) = noted;
        let Some(d) = shared.keyspace.db(*db) else {
            continue;
        };
        let mut shard = d.lock(key);
        let argv = match shard.peek(key, now) {
            Some(e) => match &e.value {
                Value::Lock(lock) => vec![
                    Bytes::from_static(LOCK_RECORD),
                    Bytes::from(crate::rdb::lock::encode(*db, key, lock, e.expires_at())),
                ],
                // Overwritten by another type: its command is in the log.
                _ => continue,
            },
            None => vec![Bytes::from_static(b"DEL"), key.clone()],
        };
        out.push(Record { db: *db, argv });
    }
}

/// Opens the AOF at start-up after loading (or with nothing to load): a
/// server with no AOF yet gets a base file of its keyspace (empty at start),
/// an incremental file and the manifest, as Redis 7 makes them; otherwise
/// the last incremental file is appended to (a new one is made if the
/// manifest has none). Turns logging on.
pub fn open_at_start(shared: &Shared, manifest: Option<Manifest>) -> Result<(), AofError> {
    let (layout, fsync) = {
        let c = shared.config.read();
        (
            Layout::of(&c),
            Fsync::parse(&c.appendfsync).unwrap_or_default(),
        )
    };
    std::fs::create_dir_all(&layout.dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            layout.dir.display()
        )
    })?;
    let mut manifest = manifest.unwrap_or_default();
    if manifest.base.is_none() && manifest.incrs.is_empty() {
        let seq = manifest.base_seq() + 1;
        let name = layout.base_name(seq);
        write_base_now(shared, &layout.dir.join(&name))
            .map_err(|e| format!("Can't create the AOF base file {name}: {e}"))?;
        tracing::info!("Creating AOF base file {name} on server start");
        manifest.base = Some(FileInfo {
            name,
            seq,
            kind: b'b',
        });
    }
    let incr = match manifest.incrs.last() {
        Some(i) => i.name.clone(),
        None => {
            let seq = manifest.incr_seq() + 1;
            let name = layout.incr_name(seq);
            manifest.incrs.push(FileInfo {
                name: name.clone(),
                seq,
                kind: b'i',
            });
            tracing::info!("Creating AOF incr file {name} on server start");
            name
        }
    };
    let file = open_append(&layout.dir.join(&incr))
        .map_err(|e| format!("Can't open the append-only file {incr}: {e}"))?;
    layout
        .write_manifest(&manifest)
        .map_err(|e| format!("Can't persist the AOF manifest: {e}"))?;
    // History files left by a rewrite that ended before their deletion.
    for h in std::mem::take(&mut manifest.history) {
        let _ = std::fs::remove_file(layout.dir.join(&h.name));
    }
    let _ = layout.write_manifest(&manifest);
    let sizes = sizes(&layout, &manifest);
    let aof = &shared.aof;
    {
        let mut inner = aof.inner.lock();
        inner.file = Some(Arc::new(file));
        inner.db = None;
        inner.layout = Some(layout);
        inner.manifest = manifest;
        inner.base_size = sizes.0;
        inner.current_size = sizes.1;
        let locks = shared.keyspace.locks();
        inner.mark = (locks.high_water(), locks.longest_lease());
    }
    aof.set_fsync(fsync);
    aof.enabled.store(true, Ordering::Relaxed);
    aof.on.store(true, Ordering::Relaxed);
    shared.keyspace.hook().set_logging(true);
    Ok(())
}

/// (base size, size of every file) of the AOF `manifest` names.
fn sizes(layout: &Layout, manifest: &Manifest) -> (u64, u64) {
    let size = |f: &FileInfo| {
        std::fs::metadata(layout.dir.join(&f.name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let base = manifest.base.as_ref().map_or(0, size);
    let incrs: u64 = manifest.incrs.iter().map(size).sum();
    (base, base + incrs)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes the keyspace as a base file now (start-up, nothing else runs).
fn write_base_now(shared: &Shared, path: &Path) -> io::Result<()> {
    let snapshot = {
        let _gate = shared.gate.write();
        super::Snapshot::begin_held(&shared.keyspace, &shared.clock)
            .map_err(|_| io::Error::other("a snapshot is in progress"))?
    };
    let opts = super::RdbTarget::of(&shared.config.read()).opts;
    super::rdb::write_base(snapshot, path, opts, incremental_fsync(shared))
}

fn incremental_fsync(shared: &Shared) -> bool {
    shared.config.read().aof_rewrite_incremental_fsync
}

/// A rewrite, on the background thread (BGREWRITEAOF, `appendonly yes` at
/// run time, the automatic one). `turn_on`: logging starts at its instant
/// (`appendonly yes`). Returns whether it succeeded.
pub fn rewrite(shared: &Shared, turn_on: bool) -> bool {
    crate::background::begin_job();
    let aof = &shared.aof;
    let started = shared.clock.now_ms();
    {
        let mut r = aof.rewrites.lock();
        r.running_since = Some(started);
        r.starting = false;
        r.count += 1;
    }
    let ok = match rewrite_inner(shared, turn_on) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("Background AOF rewrite failed: {e}");
            false
        }
    };
    let mut r = aof.rewrites.lock();
    r.running_since = None;
    r.last_failed = !ok;
    r.last_duration_s = Some(shared.clock.now_ms().saturating_sub(started) / 1000);
    if ok {
        r.consecutive_failures = 0;
        r.held_until_ms = 0;
        tracing::info!("Background AOF rewrite finished successfully");
    } else {
        r.consecutive_failures += 1;
        if r.consecutive_failures >= 3 {
            let doublings = (r.consecutive_failures - 3).min(6) as u32;
            let delay = (60_000u64 << doublings).min(3_600_000);
            r.held_until_ms = shared.clock.now_ms().saturating_add(delay);
            tracing::warn!(
                "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {} minutes",
                delay / 60_000
            );
        }
    }
    ok
}

fn rewrite_inner(shared: &Shared, turn_on: bool) -> io::Result<()> {
    let aof = &shared.aof;
    let (layout, opts, fsync) = {
        let c = shared.config.read();
        (
            Layout::of(&c),
            super::RdbTarget::of(&c).opts,
            Fsync::parse(&c.appendfsync).unwrap_or_default(),
        )
    };
    std::fs::create_dir_all(&layout.dir)?;
    if aof.is_on() {
        // Most of what the old file holds unsynced (up to a second's writes
        // under everysec) is synced before the gate is taken, so the sync
        // below, with every client waiting, has little left to do. At the
        // normal policy: writers wait for the AOF's lock meanwhile.
        crate::background::urgent(|| aof.sync_now())?;
    }
    // The new incremental file, and with the AOF on a manifest that names it
    // after the old ones, are made before the instant: the file stays empty
    // until the switch, so the old files and it make the same AOF meanwhile,
    // and the clients wait for the switch alone, not for the manifest's syncs.
    let was_on = aof.is_on();
    let mut manifest = if was_on {
        aof.inner.lock().manifest.clone()
    } else {
        layout.read_manifest().ok().flatten().unwrap_or_default()
    };
    let incr_seq = manifest.incr_seq() + 1;
    let new_incr = FileInfo {
        name: layout.incr_name(incr_seq),
        seq: incr_seq,
        kind: b'i',
    };
    // A file of that name is left over from a rewrite that never listed it.
    File::create(layout.dir.join(&new_incr.name))?;
    let file = open_append(&layout.dir.join(&new_incr.name))?;
    let base_name = layout.base_name(manifest.base_seq() + 1);
    let previous = was_on.then(|| manifest.clone());
    if was_on {
        // Until the new base is in place the old files and the new one
        // make the AOF.
        manifest.incrs.push(new_incr.clone());
        layout.write_manifest(&manifest)?;
        aof.inner.lock().manifest = manifest;
    }
    // The instant: the snapshot and the switch to the new incremental file
    // happen with nothing running, so the new base and the new file hold
    // every write exactly once.
    let instant = || {
        let _gate = shared.gate.write();
        if shared.is_stopping() {
            return Err(io::Error::other("the server is stopping"));
        }
        if aof.is_on() && !was_on {
            return Err(io::Error::other("the AOF was turned on meanwhile"));
        }
        let snapshot = super::Snapshot::begin_held(&shared.keyspace, &shared.clock)
            .map_err(|_| io::Error::other("a background save is in progress"))?;
        if aof.is_on() {
            // The old files' writes are complete and synced before the new
            // file starts.
            aof.sync_now()?;
        }
        let mut inner = aof.inner.lock();
        inner.file = Some(Arc::new(file));
        inner.db = None;
        inner.layout = Some(layout.clone());
        let locks = shared.keyspace.locks();
        inner.mark = (locks.high_water(), locks.longest_lease());
        if turn_on && !aof.is_on() {
            aof.set_fsync(fsync);
            aof.on.store(true, Ordering::Relaxed);
            shared.keyspace.hook().set_logging(true);
        }
        Ok(snapshot)
    };
    let snapshot = match crate::background::urgent(instant) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            // The manifest as it was, so the file in use stays the last one
            // (whose cut tail a load forgives); then the new file goes.
            let restored = previous.is_none_or(|previous| {
                crate::background::urgent(|| {
                    let restored = layout.write_manifest(&previous);
                    if restored.is_ok() {
                        aof.inner.lock().manifest = previous;
                    }
                    restored.is_ok()
                })
            });
            if restored {
                let _ = std::fs::remove_file(layout.dir.join(&new_incr.name));
            }
            return Err(e);
        }
    };
    let temp = layout
        .dir
        .join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    let written = super::rdb::write_base(snapshot, &temp, opts, incremental_fsync(shared))
        .and_then(|()| std::fs::rename(&temp, layout.dir.join(&base_name)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    // The new base and the files since its instant replace the rest. The
    // manifest is synced and the old files removed without the lock that
    // every write's append takes.
    let old = aof.inner.lock().manifest.clone();
    let keep_from = old
        .incrs
        .iter()
        .position(|i| i.seq >= new_incr.seq)
        .unwrap_or(old.incrs.len());
    let mut manifest = Manifest {
        base: Some(FileInfo {
            name: base_name,
            seq: old.base_seq() + 1,
            kind: b'b',
        }),
        history: Vec::new(),
        incrs: old.incrs[keep_from..].to_vec(),
    };
    if manifest.incrs.is_empty() {
        manifest.incrs.push(new_incr);
    }
    let result = layout.write_manifest(&manifest);
    crate::background::urgent(|| {
        let mut inner = aof.inner.lock();
        let (base, total) = sizes(&layout, &manifest);
        inner.base_size = base;
        inner.current_size = total + inner.buf.len() as u64;
        inner.manifest = manifest;
    });
    if result.is_ok() {
        for f in old
            .base
            .iter()
            .chain(old.history.iter())
            .chain(&old.incrs[..keep_from])
        {
            let _ = std::fs::remove_file(layout.dir.join(&f.name));
        }
    }
    if turn_on {
        aof.enabled.store(true, Ordering::Relaxed);
    }
    result
}

/// Replays the AOF the manifest names into the (empty) keyspace at start-up.
/// Returns the longest lease its marks carry, or `None` with no AOF.
pub fn load(shared: &Shared) -> Result<(Option<Manifest>, u64, LoadCounts), AofError> {
    let (layout, truncated_ok) = {
        let c = shared.config.read();
        (Layout::of(&c), c.aof_load_truncated)
    };
    let Some(manifest) = layout.read_manifest()? else {
        return Ok((None, 0, LoadCounts::default()));
    };
    // Nothing expires until the whole file is replayed (as Redis while
    // loading): the file's writes apply to the keys as they were written.
    struct Replaying<'a>(&'a crate::keyspace::KeyHook);
    impl Drop for Replaying<'_> {
        fn drop(&mut self) {
            self.0.set_replaying(false);
        }
    }
    shared.keyspace.hook().set_replaying(true);
    let _replaying = Replaying(shared.keyspace.hook());
    let mut files: Vec<&FileInfo> = manifest.base.iter().collect();
    files.extend(manifest.incrs.iter());
    let mut counts = LoadCounts::default();
    let mut longest = 0;
    // The file writes went to last: the last one, or one followed only by
    // empty files (a rewrite lists its new file before it switches to it, so
    // a crash in between leaves the file in use before an empty one). Its
    // cut tail is what `aof-load-truncated` forgives.
    let empty = |f: &FileInfo| {
        f.kind == b'i' && std::fs::metadata(layout.dir.join(&f.name)).is_ok_and(|m| m.len() == 0)
    };
    let trailing_empty = files.iter().rev().take_while(|f| empty(f)).count();
    // Only an incremental file: a base is written whole and renamed into
    // place, so a cut one is damaged, and is forgiven only as the one file
    // (as Redis does).
    let last = match files.len().checked_sub(trailing_empty) {
        Some(n) if n > 0 && files[n - 1].kind == b'i' => n,
        _ => files.len(),
    };
    for (i, f) in files.into_iter().enumerate() {
        let path = layout.dir.join(&f.name);
        if !path.exists() {
            return Err(format!(
                "The append log file {} doesn't exist: No such file or directory",
                f.name
            ));
        }
        let started = std::time::Instant::now();
        if f.name.ends_with(".rdb") {
            tracing::info!("Reading RDB base file on AOF loading...");
            let stats = super::load_file_with(
                &path,
                &shared.keyspace,
                &shared.clock,
                &shared.encodings,
                shared.config.read().rdbchecksum,
                super::LoadOptions {
                    merge: false,
                    keep_expired: true,
                },
            )
            .map_err(|e| {
                format!(
                    "Error reading the RDB base file {}, AOF loading aborted: {e}",
                    f.name
                )
            })?;
            if let Some(s) = stats {
                crate::commands::function::load_from_file(shared, &s.functions, false).map_err(
                    |e| {
                        format!(
                            "Error reading the RDB base file {}, AOF loading aborted: {e}",
                            f.name
                        )
                    },
                )?;
                counts.keys += s.loaded;
                counts.expired += s.expired;
                longest = longest.max(s.longest_lease);
            }
        } else {
            let replayed = replay(shared, &path, &f.name, i + 1 == last && truncated_ok)?;
            longest = longest.max(replayed.longest_lease);
            counts.commands += replayed.commands;
        }
        let what = if f.kind == b'b' { "base" } else { "incr" };
        tracing::info!(
            "DB loaded from {what} file {}: {:.3} seconds",
            f.name,
            started.elapsed().as_secs_f64()
        );
    }
    Ok((Some(manifest), longest, counts))
}

/// What a load found.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadCounts {
    /// Keys the base held.
    pub keys: u64,
    /// Keys of the base whose TTL had passed.
    pub expired: u64,
    /// Commands replayed.
    pub commands: u64,
}

struct Replayed {
    longest_lease: u64,
    commands: u64,
}

/// Replays one file of commands. `may_truncate`: it is the last file and
/// `aof-load-truncated` is on, so a cut last command (or an unfinished
/// MULTI) is removed from the file and the load goes on.
fn replay(
    shared: &Shared,
    path: &Path,
    name: &str,
    may_truncate: bool,
) -> Result<Replayed, AofError> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!("Fatal error: can't open the append log file {name} for reading: {e}")
    })?;
    if bytes.starts_with(b"REDIS") {
        return Err(format!(
            "The append log file {name} starts with an RDB preamble, which latchkey reads only as a .rdb base file"
        ));
    }
    let mut loader = Loader::new(shared);
    let mut pos = 0usize;
    let mut valid_up_to = 0usize;
    let mut valid_before_multi = 0usize;
    let mut unexpected_end = false;
    while pos < bytes.len() {
        if bytes[pos] == b'#' {
            // An annotation line.
            match find_crlf_line(&bytes, pos) {
                Some(end) => {
                    pos = end;
                    valid_up_to = pos;
                    continue;
                }
                None => {
                    unexpected_end = true;
                    break;
                }
            }
        }
        let start = pos;
        match parse_command(&bytes, &mut pos) {
            Ok(argv) => {
                let is_multi = argv[0].eq_ignore_ascii_case(b"multi");
                if is_multi {
                    valid_before_multi = start;
                }
                loader.run(argv).map_err(|e| {
                    format!("{e} reading the append only file {name} at offset {start}")
                })?;
                valid_up_to = pos;
            }
            Err(ParseError::Eof) => {
                if loader.in_multi() {
                    // Cut where the unfinished transaction began: cut after
                    // its last whole command (as Redis does), the file would
                    // end in an open MULTI that swallows, and at the next
                    // start reverts, every write appended after it.
                    tracing::warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
                    valid_up_to = valid_before_multi;
                }
                unexpected_end = true;
                break;
            }
            Err(ParseError::Format) => {
                return Err(format!(
                    "Bad file format reading the append only file {name} at offset {start}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
                ));
            }
        }
    }
    if !unexpected_end && loader.in_multi() {
        tracing::warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
        valid_up_to = valid_before_multi;
        unexpected_end = true;
    }
    if unexpected_end {
        if !may_truncate {
            return Err(format!(
                "Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
            ));
        }
        tracing::warn!("!!! Warning: short read while loading the AOF file {name}!!!");
        tracing::warn!("!!! Truncating the AOF {name} at offset {valid_up_to} !!!");
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| format!("Error truncating the AOF file {name}: {e}"))?;
        f.set_len(valid_up_to as u64)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("Error truncating the AOF file {name}: {e}"))?;
        tracing::warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
    }
    Ok(Replayed {
        longest_lease: loader.longest_lease,
        commands: loader.commands,
    })
}

fn find_crlf_line(bytes: &[u8], from: usize) -> Option<usize> {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i + 1)
}

enum ParseError {
    /// The file ends inside the command.
    Eof,
    /// Not a command.
    Format,
}

/// Reads `*<n>\r\n` then `n` times `$<len>\r\n<bytes>\r\n`, as Redis's loader
/// does (a short read is an unexpected end; anything else a format error).
fn parse_command(bytes: &[u8], pos: &mut usize) -> Result<Vec<Bytes>, ParseError> {
    let line = |pos: &mut usize| -> Result<&[u8], ParseError> {
        let end = find_crlf_line(bytes, *pos).ok_or(ParseError::Eof)?;
        let line = &bytes[*pos..end];
        *pos = end;
        Ok(line
            .strip_suffix(b"\r\n")
            .or(line.strip_suffix(b"\n"))
            .unwrap_or(line))
    };
    let head = line(pos)?;
    if head.first() != Some(&b'*') {
        return Err(ParseError::Format);
    }
    let argc = leading_int(&head[1..]);
    if argc < 1 {
        return Err(ParseError::Format);
    }
    // Each argument takes at least 6 bytes: a count past what is left is
    // a cut or a lie, never an allocation.
    let room = (bytes.len() - *pos) / 6 + 1;
    let mut argv = Vec::with_capacity((argc as usize).min(room));
    for _ in 0..argc {
        let h = line(pos)?;
        if h.first() != Some(&b'$') {
            return Err(ParseError::Format);
        }
        let len = leading_int(&h[1..]);
        if len < 0 {
            return Err(ParseError::Format);
        }
        let len = len as usize;
        if bytes.len() - *pos < len {
            return Err(ParseError::Eof);
        }
        argv.push(Bytes::copy_from_slice(&bytes[*pos..*pos + len]));
        *pos += len;
        if bytes.len() - *pos < 2 {
            return Err(ParseError::Eof);
        }
        *pos += 2;
    }
    Ok(argv)
}

/// `atoi`/`strtol` of a line: an optional sign and leading digits.
fn leading_int(s: &[u8]) -> i64 {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &b in digits.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

/// Runs the commands of a file as Redis's fake client does: replies
/// ignored, blocking commands do not block, a MULTI's commands held until
/// its EXEC.
struct Loader<'a> {
    shared: &'a Shared,
    session: crate::session::Session,
    multi: Option<Vec<Vec<Bytes>>>,
    longest_lease: u64,
    commands: u64,
}

impl<'a> Loader<'a> {
    fn new(shared: &'a Shared) -> Self {
        let info = Arc::new(crate::session::ClientInfo::new(
            0,
            String::new(),
            String::new(),
            -1,
            shared.clock.now_ms(),
        ));
        let mut session = crate::session::Session::new(
            info,
            crate::acl::AclUser::superuser(&shared.commands),
            true,
        );
        session.replaying = true;
        Loader {
            shared,
            session,
            multi: None,
            longest_lease: 0,
            commands: 0,
        }
    }

    fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    fn run(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        self.commands += 1;
        if argv[0].eq_ignore_ascii_case(b"multi") {
            self.multi = Some(Vec::new());
            return Ok(());
        }
        if argv[0].eq_ignore_ascii_case(b"exec") {
            for queued in self.multi.take().unwrap_or_default() {
                self.one(queued)?;
            }
            return Ok(());
        }
        if let Some(queue) = &mut self.multi {
            queue.push(argv);
            return Ok(());
        }
        self.one(argv)
    }

    fn one(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        let shared = self.shared;
        if argv[0].eq_ignore_ascii_case(LOCK_RECORD) {
            return self.lock(&argv);
        }
        if argv[0].eq_ignore_ascii_case(MARK_RECORD) {
            let num = |i: usize| {
                argv.get(i)
                    .and_then(|a| std::str::from_utf8(a).ok())
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| "Bad LATCHKEY.MARK record".to_string())
            };
            shared.keyspace.locks().raise_high_water(num(1)?);
            self.longest_lease = self.longest_lease.max(num(2)?);
            return Ok(());
        }
        let cmd = shared
            .commands
            .lookup(&argv)
            .ok_or_else(|| format!("Unknown command '{}'", String::from_utf8_lossy(&argv[0])))?;
        if !cmd.spec.arity_ok(argv.len()) {
            return Err(format!("Wrong number of arguments for '{}'", cmd.full_name));
        }
        self.session.mark_time(&shared.clock);
        let _ = crate::commands::call(
            shared,
            &mut self.session,
            cmd,
            &argv,
            crate::commands::CallMode::Transaction,
        );
        // Nothing a replayed command logs is written again.
        propagate::discard();
        Ok(())
    }

    /// `LATCHKEY.LOCK <payload>`: the lock at its key becomes the one the
    /// payload holds (a key of another type there is replaced).
    fn lock(&mut self, argv: &[Bytes]) -> Result<(), String> {
        let payload = argv.get(1).ok_or("Bad LATCHKEY.LOCK record")?;
        let (db, key, lock, expire_at) = crate::rdb::lock::decode(payload, 0)
            .map_err(|e| format!("Bad LATCHKEY.LOCK record: {e}"))?;
        let shared = self.shared;
        let db = usize::try_from(db)
            .ok()
            .and_then(|d| shared.keyspace.db(d))
            .ok_or("LATCHKEY.LOCK record for a database out of range")?;
        let now = shared.clock.now_ms();
        let mut shard = db.lock(&key);
        shard.remove(&key, now);
        if expire_at.is_some_and(|at| at <= now) {
            return Ok(());
        }
        let entry = crate::keyspace::Entry::new(Value::Lock(lock), expire_at);
        let _ = shard.restore(&key, entry, now);
        propagate::discard();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_groups_expect_what_the_last_sync_carried_and_wait_a_bounded_time() {
        let g = Group::default();
        let us = Duration::from_micros;
        assert_eq!(g.target(), 1, "the first reply is synced at once");
        assert_eq!(g.patience(), Duration::ZERO);
        for _ in 0..100 {
            g.gathered(Some(us(400)), us(100), 50);
        }
        assert_eq!(g.target(), 50);
        let p = g.patience();
        assert!(p > us(780) && p <= us(800), "twice the usual wait: {p:?}");
        // Groups whose clients came back during the sync: the wait they did
        // not need leaves the usual one as it was; a slow sync lengthens it.
        g.gathered(None, us(900), 50);
        assert_eq!(g.patience(), us(900));
        g.gathered(None, us(10), 50);
        assert!(g.patience() > us(780) && g.patience() <= us(800));
        // Slow groups and slow syncs wait at most GATHER_MAX.
        for _ in 0..100 {
            g.gathered(Some(Duration::from_millis(5)), Duration::from_millis(7), 50);
        }
        assert_eq!(g.patience(), GATHER_MAX);
        // A late group of one: the next expects one.
        g.gathered(None, us(10), 1);
        assert_eq!(g.target(), 1);
        g.gathered(None, us(10), 0);
        assert_eq!(g.target(), 1);
    }

    #[test]
    fn a_manifest_reads_back_what_it_writes() {
        let m = Manifest {
            base: Some(FileInfo {
                name: "appendonly.aof.2.base.rdb".into(),
                seq: 2,
                kind: b'b',
            }),
            history: vec![FileInfo {
                name: "appendonly.aof.1.base.rdb".into(),
                seq: 1,
                kind: b'h',
            }],
            incrs: vec![FileInfo {
                name: "with space.aof".into(),
                seq: 3,
                kind: b'i',
            }],
        };
        let text = m.render();
        assert_eq!(
            text,
            "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.1.base.rdb seq 1 type h\nfile \"with space.aof\" seq 3 type i\n"
        );
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
    }

    #[test]
    fn a_bad_manifest_gets_redis_errors() {
        let err = |t: &str| Manifest::parse(t.as_bytes()).unwrap_err();
        assert_eq!(err(""), "Found an empty AOF manifest");
        assert_eq!(err("file a seq 1\n"), "Invalid AOF manifest file format");
        assert_eq!(
            err("file a/b seq 1 type i\n"),
            "File can't be a path, just a filename"
        );
        assert_eq!(
            err("file a seq 1 type b\nfile b seq 2 type b\n"),
            "Found duplicate base file information"
        );
        assert_eq!(
            err("file a seq 2 type i\nfile b seq 2 type i\n"),
            "Found a non-monotonic sequence number"
        );
        assert_eq!(err("file a seq 1 type x\n"), "Unknown AOF file type");
        assert_eq!(
            err("file a seq 0 type i\n"),
            "Invalid AOF manifest file format"
        );
        // Comments are skipped; unknown keys are kept for the future.
        let m = Manifest::parse(b"# c\nfile a seq 1 type i extra 1\n").unwrap();
        assert_eq!(m.incrs.len(), 1);
    }

    #[test]
    fn commands_parse_and_a_cut_is_an_unexpected_end() {
        let mut out = Vec::new();
        propagate::encode(&propagate::argv([b"SET", b"k", b"v"]), &mut out);
        let mut pos = 0;
        let argv = parse_command(&out, &mut pos).ok().unwrap();
        assert_eq!(argv.len(), 3);
        assert_eq!(pos, out.len());
        for cut in 0..out.len() {
            let mut pos = 0;
            assert!(
                matches!(parse_command(&out[..cut], &mut pos), Err(ParseError::Eof)),
                "cut at {cut}"
            );
        }
        let mut pos = 0;
        assert!(matches!(
            parse_command(b"+OK\r\n", &mut pos),
            Err(ParseError::Format)
        ));
        let mut pos = 0;
        assert!(matches!(
            parse_command(b"*1\r\n:1\r\n", &mut pos),
            Err(ParseError::Format)
        ));
        // A huge count allocates nothing up front.
        let mut pos = 0;
        assert!(matches!(
            parse_command(b"*999999999999\r\n$1\r\na\r\n", &mut pos),
            Err(ParseError::Eof)
        ));
    }
}
