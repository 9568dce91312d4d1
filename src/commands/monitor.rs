//! MONITOR, and the feed it reads: every command a client runs (after it
//! ran, with the database it left selected), as Redis 7.0 writes it —
//! `+<sec>.<usec> [<db> <peer>] "arg" ...`, the peer `lua` for a script's
//! calls and `unix:<socket path>` for a Unix-socket client, arguments quoted
//! as `sdscatrepr` quotes them, AUTH's and HELLO AUTH's passwords
//! `(redacted)`. Commands flagged `skip_monitor` or `admin` are not shown;
//! EVAL and EVALSHA (and their `_RO` forms) show themselves before their
//! script's calls. A line reaches a monitor through its push queue
//! (`ClientInfo::queue_push`), counted as its queued output. While no client monitors, a
//! command costs one relaxed load.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::{flag, CallMode, CommandResult, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::{ClientInfo, Session};

/// The MONITOR row.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "monitor",
    1,
    flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE,
    monitor,
)
.acl(&["@admin", "@slow", "@dangerous"])
.doc(
    "server",
    "1.0.0",
    "Listens for all requests received by the server in real-time.",
)];

/// The clients in MONITOR mode.
#[derive(Debug, Default)]
pub struct Monitors {
    count: AtomicUsize,
    list: Mutex<Vec<std::sync::Arc<ClientInfo>>>,
}

impl Monitors {
    /// Whether anyone monitors (one relaxed load).
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    fn add(&self, info: std::sync::Arc<ClientInfo>) {
        let mut list = self.list.lock();
        list.push(info);
        self.count.store(list.len(), Ordering::Relaxed);
    }

    /// Client `id` stops monitoring (RESET, its connection's end).
    pub fn remove(&self, id: u64) {
        let mut list = self.list.lock();
        list.retain(|m| m.id != id);
        self.count.store(list.len(), Ordering::Relaxed);
    }

    fn send(&self, line: Bytes) {
        let list = self.list.lock();
        for info in list.iter() {
            info.buffers.queued.fetch_add(line.len(), Ordering::Relaxed);
            info.queue_push(&line, line.len());
        }
    }
}

/// MONITOR: this client hears every command from now on; a second MONITOR
/// is ignored (no reply), as Redis ignores it for a replica.
fn monitor(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    if ctx.mode != CallMode::Client {
        return Err(CommandError::err(
            "MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    let info = &ctx.session.info;
    if info.monitor.swap(true, Ordering::Relaxed) {
        return Ok(Reply::Silent);
    }
    ctx.shared.monitors.add(info.clone());
    Ok(Reply::OK)
}

/// Ends MONITOR mode for this session (RESET, disconnect).
pub fn leave(shared: &Shared, session: &Session) {
    if session.info.monitor.swap(false, Ordering::Relaxed) {
        shared.monitors.remove(session.info.id);
    }
}

/// A monitoring client may not run commands on the keyspace (Redis treats
/// it as a replica): `ERR Replica can't interact with the keyspace`. FCALL of
/// a `no-writes` function is let through, as Redis's flags for it have
/// neither `write`, `readonly` nor `may_replicate`.
pub fn refuses(
    shared: &Shared,
    session: &Session,
    cmd: &super::Command,
    args: &[Bytes],
) -> Option<CommandError> {
    if !session.info.monitor.load(Ordering::Relaxed) {
        return None;
    }
    let keyspace =
        cmd.spec.has(flag::WRITE | flag::READONLY) || super::may_replicate(shared, cmd, args);
    keyspace.then(|| CommandError::err("Replica can't interact with the keyspace"))
}

/// Shows `args`, run by `session` (`script`: from a script) in database
/// `db`, to every monitor. The caller checked [`Monitors::any`].
pub fn feed(shared: &Shared, session: &Session, db: usize, args: &[Bytes], script: bool) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let info = &session.info;
    let peer = if script {
        "lua".to_string()
    } else if info.laddr.parse::<std::net::SocketAddr>().is_err() {
        format!("unix:{}", info.laddr)
    } else {
        info.addr.clone()
    };
    let mut line = format!(
        "+{}.{:06} [{} {}]",
        now.as_secs(),
        now.subsec_micros(),
        db,
        peer
    )
    .into_bytes();
    let redacted = super::slowlog::redacted_from(args);
    for (i, a) in args.iter().enumerate() {
        line.push(b' ');
        if redacted.as_ref().is_some_and(|r| r.contains(&i)) {
            line.extend_from_slice(b"\"(redacted)\"");
        } else {
            crate::protocol::repr(a, &mut line);
        }
    }
    line.extend_from_slice(b"\r\n");
    shared.monitors.send(Bytes::from(line));
}
