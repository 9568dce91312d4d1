//! Per-connection state: selected database, protocol, authentication, the open
//! transaction and watched keys, plus [`ClientInfo`], the part other connections
//! see (`CLIENT LIST`, `CLIENT KILL`).

use std::collections::HashSet;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use crate::blocking::{Inbox, KeyWaiter};
use crate::keyspace::WatchFlag;
use crate::reply::Reply;

/// What [`ClientInfo::queue_push_deferred`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushQueued {
    /// The caller writes the queue (the connection is idle).
    Deferred,
    /// The connection was woken to write it.
    Woken,
    /// Behind frames already queued, whoever writes them.
    Behind,
}

/// A client's push queue gives back an allocation past this once written.
const PUSH_QUEUE_KEEP: usize = 16 * 1024;

/// See [`ClientInfo::queue_push`].
#[derive(Debug, Default)]
struct PushQueue {
    bytes: bytes::BytesMut,
    /// Their size in the client's output accounting (`buffers.queued`).
    counted: usize,
    /// The connection waits for the client's bytes with nothing of its own
    /// to write ([`ClientInfo::set_idle`]): another task may write the queue
    /// to the socket while it holds this lock.
    idle: bool,
    /// A duplicate of the socket's descriptor while other tasks may write
    /// to it ([`ClientInfo::allow_direct_writes`]); closed with the
    /// connection ([`ClientInfo::end_direct_writes`]), so it never holds a
    /// closed client's socket open.
    direct: Option<std::os::fd::OwnedFd>,
}

impl PushQueue {
    /// Empties the queue once its frames are written, taking them off the
    /// client's queued output count; an allocation past [`PUSH_QUEUE_KEEP`]
    /// is given back.
    fn written(&mut self, queued: &AtomicUsize) {
        queued.fetch_sub(self.counted, Ordering::Relaxed);
        self.counted = 0;
        if self.bytes.capacity() > PUSH_QUEUE_KEEP {
            self.bytes = bytes::BytesMut::new();
        } else {
            self.bytes.clear();
        }
    }
}

/// `session_locks` is first swept at this many keys, then each time it doubles.
pub const SESSION_LOCKS_SWEEP: usize = 64;

/// What other connections can see of a client, and the switch that closes it.
#[derive(Debug)]
pub struct ClientInfo {
    /// `CLIENT ID`.
    pub id: u64,
    /// Peer address (`addr=`).
    pub addr: String,
    /// Local address (`laddr=`).
    pub laddr: String,
    /// The socket's file descriptor (`fd=`).
    pub fd: i32,
    /// On the loopback interface (127.0.0.1, ::1) or the Unix socket, as
    /// Redis's `islocalClient`: protected configs allowed as `local` are
    /// open to it.
    pub local: bool,
    /// Waiting in a blocking command (`flags=b`, `blocked_clients`).
    pub blocked: AtomicBool,
    /// Counts the client's waits (blocking commands and postponements): a
    /// CLIENT UNBLOCK names the wait it saw, so it cannot end a later one.
    pub wait_seq: AtomicU64,
    /// The wait under way is a CLIENT PAUSE postponement (CLIENT UNBLOCK
    /// leaves it alone).
    pub postponed: AtomicBool,
    /// In MONITOR mode (`flags=O`).
    pub monitor: AtomicBool,
    /// Server clock ms when connected.
    pub created_ms: u64,
    /// Server clock ms of the last command.
    pub last_interaction_ms: AtomicU64,
    /// `CLIENT SETNAME`.
    pub name: Mutex<Option<Bytes>>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Mutex<Option<Bytes>>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Mutex<Option<Bytes>>,
    /// Selected database.
    pub db: AtomicUsize,
    /// 2 or 3.
    pub resp: AtomicU8,
    /// Commands queued in MULTI, -1 outside one.
    pub multi: AtomicI64,
    /// Index in the command table of the last command (`cmd=`), `usize::MAX` for none.
    pub last_cmd: AtomicUsize,
    /// The connection's buffer sizes (`qbuf=`, `obl=`, `tot-mem=`, ...).
    pub buffers: BufferStats,
    /// Channels, patterns and shard channels subscribed to (`sub=`, `psub=`,
    /// `ssub=`), by [`crate::pubsub::Kind`].
    pub subscriptions: [AtomicUsize; 3],
    /// Client-side caching flags (`crate::tracking::flag`), for CLIENT LIST
    /// (`flags=t`, `R`, `B`) and for whoever invalidates keys this client read.
    pub tracking: AtomicU32,
    /// The client invalidations are redirected to (`redir=`), 0 for none.
    pub tracking_redirect: AtomicU64,
    /// Push frames bound for this client (published messages, invalidations,
    /// MONITOR lines), encoded for its protocol and waiting for its
    /// connection to write them: see [`ClientInfo::queue_push`].
    pushes: Mutex<PushQueue>,
    /// The sending side of this client's inbox, for whoever must reach it by id
    /// (a tracking redirection).
    pub outbox: std::sync::OnceLock<crate::blocking::Outbox>,
    /// The ACL user the client runs as (`user=`; ACL DELUSER closes its
    /// clients). None until the session sets it: shown as `default`.
    pub user: Mutex<Option<Arc<crate::acl::AclUser>>>,
    /// `CLIENT NO-EVICT on` (`flags=e`): never closed for `maxmemory-clients`.
    pub no_evict: AtomicBool,
    /// `CLIENT NO-TOUCH on` (`flags=T`): its commands, but TOUCH, leave the
    /// keys' LRU and LFU as they were.
    pub no_touch: AtomicBool,
    /// What this client last counted into the clients' memory total
    /// (`crate::memory::Memory::client_uses`).
    pub mem_counted: AtomicUsize,
    /// Bytes read from this client (`total_net_input_bytes` adds every
    /// client's): on the client's own line, added to once per read.
    pub net_in: AtomicU64,
    /// Bytes written to this client, added to once per flushed batch.
    pub net_out: AtomicU64,
    killed: AtomicBool,
    /// The connection task's waker, for [`ClientInfo::kill`],
    /// [`ClientInfo::poke`] and the server's shutdown: registering it again
    /// at every wait costs a few atomic operations (a `Notify` took its list's
    /// lock each time, 400 instructions a request with the shutdown watch).
    wake: AtomicWaker,
}

impl ClientInfo {
    /// A new client's info.
    pub fn new(id: u64, addr: String, laddr: String, fd: i32, now_ms: u64) -> Self {
        ClientInfo {
            id,
            addr,
            laddr,
            fd,
            local: false,
            blocked: AtomicBool::new(false),
            wait_seq: AtomicU64::new(0),
            postponed: AtomicBool::new(false),
            monitor: AtomicBool::new(false),
            created_ms: now_ms,
            last_interaction_ms: AtomicU64::new(now_ms),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            multi: AtomicI64::new(-1),
            last_cmd: AtomicUsize::new(usize::MAX),
            buffers: BufferStats::default(),
            subscriptions: Default::default(),
            tracking: AtomicU32::new(0),
            tracking_redirect: AtomicU64::new(0),
            pushes: Mutex::new(PushQueue::default()),
            outbox: std::sync::OnceLock::new(),
            user: Mutex::new(None),
            no_evict: AtomicBool::new(false),
            no_touch: AtomicBool::new(false),
            mem_counted: AtomicUsize::new(0),
            net_in: AtomicU64::new(0),
            net_out: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            wake: AtomicWaker::new(),
        }
    }

    /// Asks the connection to close (CLIENT KILL); it does after its current reply.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.wake.wake();
    }

    /// Whether the client is subscribed to anything (`flags=P`, the `pubsub`
    /// client class).
    pub fn is_subscriber(&self) -> bool {
        self.subscriptions
            .iter()
            .any(|n| n.load(Ordering::Relaxed) > 0)
    }

    /// Whether the client was killed.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Registers the connection task to be woken by [`ClientInfo::kill`],
    /// [`ClientInfo::poke`] or the server's shutdown, then says whether it
    /// was killed (in that order, so a kill is never missed).
    pub fn poll_killed(&self, cx: &mut std::task::Context<'_>) -> bool {
        self.wake.register(cx.waker());
        self.is_killed()
    }

    /// Appends a push frame (RESP2-encoded, see `crate::reply::push_frame`)
    /// to what the connection writes next, as the client's protocol sends it
    /// now, with `size` bytes already counted in `buffers.queued`; wakes the
    /// connection when its queue was empty. A publisher's whole cost per
    /// subscriber is this copy: one wake-up per batch, not per message.
    pub fn queue_push(&self, frame: &[u8], size: usize) {
        self.enqueue_push(frame, size, false);
    }

    /// As [`ClientInfo::queue_push`], but when the queue was empty and the
    /// connection idle on a socket another task may write, leaves the queue
    /// for the caller to write with [`ClientInfo::write_pushes_directly`]
    /// instead of waking the connection.
    pub fn queue_push_deferred(&self, frame: &[u8], size: usize) -> PushQueued {
        self.enqueue_push(frame, size, true)
    }

    fn enqueue_push(&self, frame: &[u8], size: usize, may_defer: bool) -> PushQueued {
        let resp3 = self.resp.load(Ordering::Relaxed) >= 3;
        let mut q = self.pushes.lock();
        let was_empty = q.bytes.is_empty();
        crate::reply::write_push(frame, resp3, &mut q.bytes);
        q.counted = q.counted.saturating_add(size);
        let deferred = may_defer && was_empty && q.idle && q.direct.is_some();
        drop(q);
        if deferred {
            PushQueued::Deferred
        } else if was_empty {
            self.wake.wake();
            PushQueued::Woken
        } else {
            PushQueued::Behind
        }
    }

    /// Writes the queued push frames to the socket without the connection
    /// task, if it is still idle: what the socket does not take at once (or
    /// all of it, if the connection is busy now) is left to the connection,
    /// which is woken for it.
    pub fn write_pushes_directly(&self) {
        use std::os::fd::AsRawFd;
        let mut q = self.pushes.lock();
        if q.bytes.is_empty() {
            return;
        }
        if let (true, Some(fd)) = (q.idle, q.direct.as_ref().map(|f| f.as_raw_fd())) {
            // SAFETY: `fd` is this client's own duplicate of its socket,
            // open while the lock is held; the buffer is valid for its length.
            let sent = unsafe {
                libc::send(
                    fd,
                    q.bytes.as_ptr().cast(),
                    q.bytes.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if let Ok(n @ 1..) = usize::try_from(sent) {
                // Only the idle connection's task counts otherwise, and it
                // takes this lock before it counts again.
                let total = self.net_out.load(Ordering::Relaxed);
                self.net_out
                    .store(total.wrapping_add(n as u64), Ordering::Relaxed);
                if n == q.bytes.len() {
                    q.written(&self.buffers.queued);
                    return;
                }
                bytes::Buf::advance(&mut q.bytes, n);
            }
        }
        drop(q);
        self.wake.wake();
    }

    /// Marks the connection as waiting for its client's bytes with nothing
    /// to write (`true`), or as running again (`false`: waits for a direct
    /// write under way to finish).
    pub fn set_idle(&self, idle: bool) {
        self.pushes.lock().idle = idle;
    }

    /// Lets other tasks write push frames straight to this client's socket
    /// (a plain TCP or Unix socket, not TLS), through a duplicate of its
    /// descriptor kept until [`ClientInfo::end_direct_writes`].
    pub fn allow_direct_writes(&self, fd: std::os::fd::BorrowedFd<'_>) {
        if let Ok(own) = fd.try_clone_to_owned() {
            self.pushes.lock().direct = Some(own);
        }
    }

    /// Closes the duplicate descriptor (the connection is ending): the
    /// socket closes with the connection's own, whoever still holds this
    /// info.
    pub fn end_direct_writes(&self) {
        let mut q = self.pushes.lock();
        q.idle = false;
        q.direct = None;
    }

    /// Moves every queued push frame to `out` (taking them off the queued
    /// output count); false when there were none.
    pub fn take_pushes(&self, out: &mut bytes::BytesMut) -> bool {
        let mut q = self.pushes.lock();
        if q.bytes.is_empty() {
            return false;
        }
        out.extend_from_slice(&q.bytes);
        q.written(&self.buffers.queued);
        true
    }

    /// Whether push frames wait, registering the connection task to be woken
    /// when the first one arrives.
    pub fn poll_pushes(&self, cx: &mut std::task::Context<'_>) -> bool {
        self.wake.register(cx.waker());
        !self.pushes.lock().bytes.is_empty()
    }

    /// Wakes the connection's current wait without killing it, so it reads
    /// its flags again (a stopping server's clients close). A connection
    /// not waiting reads them at its next wait.
    pub fn poke(&self) {
        self.wake.wake();
    }
}

/// Buffer sizes a connection publishes for `CLIENT LIST`/`CLIENT INFO`, with
/// relaxed stores once per read and once per write of a batch, never per command.
/// Redis's fields map onto latchkey's one read buffer and one write buffer.
#[derive(Debug, Default)]
pub struct BufferStats {
    /// Bytes in the read buffer when the current batch arrived, the command in
    /// flight included (`qbuf=`, as Redis's `sdslen(querybuf)`).
    pub qbuf: AtomicUsize,
    /// Free bytes after them in the read buffer's allocation (`qbuf-free=`).
    pub qbuf_free: AtomicUsize,
    /// Reply bytes waiting to be written (`obl=`, `oll=` and `omem=` split them as
    /// Redis's 16 KB static buffer and its list of 16 KB blocks).
    pub out_pending: AtomicUsize,
    /// The write buffer's allocation (`rbs=`).
    pub out_capacity: AtomicUsize,
    /// The largest batch of replies since the write buffer was last trimmed (`rbp=`).
    pub out_peak: AtomicUsize,
    /// Argument bytes of a command the client is blocked in (`argv-mem=`; a client
    /// that is not blocked holds no arguments between commands).
    pub argv_mem: AtomicUsize,
    /// Bytes of the commands queued in MULTI, counted as Redis does: argument
    /// bytes plus one pointer per argument (`multi-mem=`).
    pub multi_mem: AtomicUsize,
    /// Bytes of push frames in the client's push queue, not yet in the write buffer:
    /// counted with `out_pending` against `client-output-buffer-limit`.
    pub queued: AtomicUsize,
    /// Server clock ms when the output first reached the soft limit, 0 when under.
    pub soft_limit_since: AtomicU64,
}

impl BufferStats {
    /// Output bytes the client has not taken yet: pending writes and queued
    /// messages (`omem=`, the output buffer limits).
    pub fn output(&self) -> usize {
        self.out_pending
            .load(Ordering::Relaxed)
            .saturating_add(self.queued.load(Ordering::Relaxed))
    }
}

impl BufferStats {
    /// Publishes the read buffer's state after a read.
    pub fn read(&self, len: usize, capacity: usize) {
        self.qbuf.store(len, Ordering::Relaxed);
        self.qbuf_free
            .store(capacity.saturating_sub(len), Ordering::Relaxed);
    }

    /// Publishes the write buffer's state: `pending` bytes not yet written.
    pub fn write(&self, pending: usize, capacity: usize) {
        self.out_pending.store(pending, Ordering::Relaxed);
        self.out_capacity.store(capacity, Ordering::Relaxed);
        if pending > self.out_peak.load(Ordering::Relaxed) {
            self.out_peak.store(pending, Ordering::Relaxed);
        }
    }
}

/// What a client holds (`tot-mem=`, and what `maxmemory-clients` counts):
/// its buffers' allocations, messages queued for it, the arguments of a
/// command it is blocked in, its queued transaction, and its session.
pub fn client_memory(buffers: usize, queued: usize, argv_mem: usize, multi_mem: usize) -> usize {
    buffers
        .saturating_add(queued)
        .saturating_add(argv_mem)
        .saturating_add(multi_mem)
        .saturating_add(std::mem::size_of::<Session>())
        .saturating_add(std::mem::size_of::<ClientInfo>())
}

/// Argument bytes of a command (`argv-mem=`, Redis's `argv_len_sum`).
pub fn argv_mem(args: &[Bytes]) -> usize {
    args.iter().map(|a| a.len()).sum()
}

/// What a queued command adds to `multi-mem=`: its argument bytes and one pointer
/// per argument, as Redis counts it.
fn queued_mem(args: &[Bytes]) -> usize {
    argv_mem(args) + args.len() * std::mem::size_of::<usize>()
}

/// A command queued by MULTI.
pub struct Queued {
    /// Its index in the command table.
    pub command: usize,
    /// Its arguments, name included.
    pub args: Vec<Bytes>,
}

/// An open transaction.
#[derive(Default)]
pub struct Multi {
    /// Commands to run at EXEC.
    pub queue: Vec<Queued>,
    /// A queued command was refused (unknown, arity): EXEC replies EXECABORT.
    pub failed: bool,
}

/// Command counters gathered by one connection and added to the server's
/// `CommandStats` once per batch of pipelined commands, so threads do not contend
/// on shared counters for every command.
#[derive(Default)]
pub struct LocalStats {
    /// (command index, calls, microseconds, failed calls).
    entries: Vec<(usize, u64, u64, u64)>,
    /// (command index, microseconds) of each call for its latency
    /// histogram, while `latency-tracking` is on.
    runs: Vec<(usize, u64)>,
}

impl LocalStats {
    /// Counts one call of command `index`.
    pub fn record(&mut self, index: usize, usec: u64, failed: bool, tracked: bool) {
        if tracked {
            self.runs.push((index, usec));
        }
        let failed = u64::from(failed);
        match self.entries.iter_mut().find(|e| e.0 == index) {
            Some(e) => {
                e.1 += 1;
                e.2 += usec;
                e.3 += failed;
            }
            None => self.entries.push((index, 1, usec, failed)),
        }
    }

    /// Adds everything gathered to `table`'s counters and to the processed total.
    pub fn flush(&mut self, table: &crate::commands::CommandTable, processed: &AtomicU64) {
        let mut total = 0;
        for (index, calls, usec, failed) in self.entries.drain(..) {
            if let Some(cmd) = table.all().get(index) {
                cmd.stats.calls.fetch_add(calls, Ordering::Relaxed);
                cmd.stats.usec.fetch_add(usec, Ordering::Relaxed);
                if failed > 0 {
                    cmd.stats.failed_calls.fetch_add(failed, Ordering::Relaxed);
                }
            }
            total += calls;
        }
        if total > 0 {
            processed.fetch_add(total, Ordering::Relaxed);
        }
        // One lock per run of calls of the same command.
        let mut runs = self.runs.drain(..).peekable();
        while let Some((index, usec)) = runs.next() {
            let Some(cmd) = table.all().get(index) else {
                continue;
            };
            let mut h = cmd.stats.latency.lock();
            let h = h.get_or_insert_with(|| Box::new(crate::commands::latency::new_histogram()));
            crate::commands::latency::record(h, usec);
            while let Some((_, usec)) = runs.next_if(|r| r.0 == index) {
                crate::commands::latency::record(h, usec);
            }
        }
    }
}

/// A command that waits: the connection waits for its grant until it arrives or
/// `deadline` (server clock ms) passes.
pub struct Blocked {
    /// When to give up, `None` for no limit.
    pub deadline: Option<u64>,
    /// What it waits for.
    pub on: Wait,
}

/// What a blocked command waits for.
pub enum Wait {
    /// A queued `LOCK.ACQUIRE ... WAIT`.
    Lock {
        /// Database of the lock.
        db: usize,
        /// Key of the lock.
        key: Bytes,
        /// The waiter's id in the lock's queue (its grant carries it).
        waiter: u64,
        /// The owner token asked with.
        owner: Bytes,
        /// Whether the hold is released when this connection closes.
        session: bool,
        /// When it was queued (server clock ms), for the wait-time
        /// histogram of a wait that runs out.
        since: u64,
    },
    /// A blocking command on keys (BLPOP, BZPOPMIN, ...): served through the
    /// inbox with its reply.
    Key {
        /// Its place in the keys' queues.
        waiter: Arc<KeyWaiter>,
        /// The reply when the time runs out (a nil array for BLPOP).
        timeout_reply: Reply,
    },
    /// A command postponed by CLIENT PAUSE: run again when the pause ends.
    Postponed {
        /// Its id in the pause's queue (the resume carries it).
        wait: u64,
    },
}

/// A connection's own state.
pub struct Session {
    /// Shared view of this client.
    pub info: Arc<ClientInfo>,
    /// Selected database.
    pub db: usize,
    /// Whether replies are RESP3 (after `HELLO 3`).
    pub resp3: bool,
    /// Whether the client may run commands that need authentication.
    /// The AOF offset this client's replies wait for (`Aof::before_reply`);
    /// 0 while the AOF is off.
    pub aof_offset: u64,
    /// DEBUG FAULT DELAY: the reply of the command that just ran waits this
    /// long before it is written.
    pub reply_delay: Option<std::time::Duration>,
    pub authenticated: bool,
    /// The ACL user the client runs as.
    pub user: Arc<crate::acl::AclUser>,
    /// The open MULTI, if any.
    pub multi: Option<Multi>,
    /// Keys under WATCH: database, key, and its expiry when watched.
    pub watched: Vec<(usize, Bytes, Option<u64>)>,
    /// Set when a watched key is modified.
    pub watch_flag: WatchFlag,
    /// Close the connection once the current reply is written (QUIT).
    pub close_after_reply: bool,
    /// Counters not yet added to the server's.
    pub stats: LocalStats,
    /// The one out-of-band receiver: lock grants, served blocking commands.
    pub inbox: Inbox,
    /// Set by a command that must wait (LOCK.ACQUIRE ... WAIT); the connection
    /// waits before running anything else.
    pub blocked: Option<Blocked>,
    /// Channels, patterns and shard channels subscribed to.
    pub subs: crate::pubsub::Subscriptions,
    /// Messages a PUBLISH inside a transaction or script will send when it ends.
    pub pending_messages: Vec<crate::pubsub::Delivery>,
    /// Push frames to write before the next reply: a RESP3 client's own
    /// PUBLISH to itself.
    pub held_pushes: Vec<Bytes>,
    /// Set when a command of the current batch handed messages to other
    /// clients: the connection lets their tasks write them before it writes
    /// its own replies (see `connection.rs`).
    pub delivered_to_others: bool,
    /// Subscribers this batch's PUBLISHes queued pushes for whose connections
    /// sit idle: the batch writes their sockets itself when it ends
    /// ([`Session::write_deferred_pushes`]), once each, as Redis writes its
    /// pending clients before it sleeps, instead of waking their tasks.
    pub deferred_pushes: Vec<Arc<ClientInfo>>,
    /// Locks acquired with SESSION: (database, key), released when the connection
    /// closes. Keys whose hold ended are swept out when the set doubles
    /// (`commands::lock`), so a worker that locks per job does not grow it.
    pub session_locks: HashSet<(usize, Bytes)>,
    /// The size of `session_locks` at which it is swept next.
    pub session_locks_sweep_at: usize,
    /// Server time (ms) for the commands of the current batch: read once when a
    /// batch of requests arrives (and again after a wait or before EXEC), as Redis
    /// caches its time per event-loop iteration.
    pub now_ms: u64,
    /// When the next command starts, for its `INFO commandstats` time: each
    /// command's end is the next one's start, so the cycle counter (quanta, a few
    /// ns) is read once per command.
    pub clock_mark: quanta::Instant,
    /// The last command name looked up and its table index: a pipeline of one
    /// command skips the table lookup.
    pub last_lookup: Option<(Bytes, usize)>,
    /// Client-side caching flags (`crate::tracking::flag`), the session's own
    /// copy of `info.tracking`: 0 unless CLIENT TRACKING is on.
    pub tracking: u32,
    /// `CLIENT CACHING yes|no` was given for the next command (or transaction).
    pub caching: bool,
    /// CLIENT REPLY OFF: no replies (pushes still go out).
    pub reply_off: bool,
    /// CLIENT REPLY SKIP was the last command: the next one's reply is
    /// skipped.
    pub reply_skip_next: bool,
    /// The reply of the command under way (until it has one: a blocked or
    /// postponed command keeps it) is skipped.
    pub reply_skip: bool,
    /// The append-only file's loader: it obeys what the file says, as
    /// Redis's `mustObeyClient` (an approximate trim's work limit is not
    /// applied to a logged exact trim).
    pub replaying: bool,
}

impl Drop for Session {
    /// Whatever ends the connection, the subscribers its last batch
    /// published to get their messages.
    fn drop(&mut self) {
        self.write_deferred_pushes();
    }
}

impl Session {
    /// Writes the pushes this batch deferred ([`Session::deferred_pushes`]).
    pub fn write_deferred_pushes(&mut self) {
        for info in self.deferred_pushes.drain(..) {
            info.write_pushes_directly();
        }
    }

    /// A session for a new connection running as `user` (the default user);
    /// `authenticated` is false when a password is required.
    pub fn new(info: Arc<ClientInfo>, user: Arc<crate::acl::AclUser>, authenticated: bool) -> Self {
        let inbox = Inbox::default();
        let _ = info.outbox.set(inbox.outbox());
        *info.user.lock() = Some(user.clone());
        Session {
            info,
            db: 0,
            resp3: false,
            authenticated,
            aof_offset: 0,
            reply_delay: None,
            user,
            multi: None,
            watched: Vec::new(),
            watch_flag: Arc::new(AtomicBool::new(false)),
            close_after_reply: false,
            stats: LocalStats::default(),
            blocked: None,
            inbox,
            subs: Default::default(),
            pending_messages: Vec::new(),
            held_pushes: Vec::new(),
            delivered_to_others: false,
            deferred_pushes: Vec::new(),
            session_locks: HashSet::new(),
            session_locks_sweep_at: SESSION_LOCKS_SWEEP,
            now_ms: 0,
            clock_mark: quanta::Instant::now(),
            last_lookup: None,
            tracking: 0,
            caching: false,
            replaying: false,
            reply_off: false,
            reply_skip_next: false,
            reply_skip: false,
        }
    }

    /// Runs as `user` from now on (AUTH, HELLO AUTH, RESET).
    pub fn set_user(&mut self, user: Arc<crate::acl::AclUser>) {
        *self.info.user.lock() = Some(user.clone());
        self.user = user;
    }

    /// The reply the client gets for the command that just ended, as CLIENT
    /// REPLY says (`Reply::Silent` while OFF, or once after SKIP; a
    /// SUBSCRIBE's confirmations, which Redis sends as pushes, still go
    /// out); a SKIP given by that command applies to the next one.
    pub fn end_reply(&mut self, reply: Reply) -> Reply {
        let silenced = self.reply_off || self.reply_skip;
        self.reply_skip = std::mem::take(&mut self.reply_skip_next);
        if !silenced {
            return reply;
        }
        match reply {
            Reply::Frames(frames) if frames.iter().all(|f| matches!(f, Reply::Push(_))) => {
                Reply::Frames(frames)
            }
            _ => Reply::Silent,
        }
    }

    /// Whether a MULTI is open.
    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// Queues a command in the open MULTI.
    pub fn queue(&mut self, command: usize, args: Vec<Bytes>) {
        if let Some(multi) = self.multi.as_mut() {
            // The first command of a transaction restarts the count: EXEC leaves
            // the last one's behind (it is shown only while a MULTI is open).
            let mem = &self.info.buffers.multi_mem;
            if multi.queue.is_empty() {
                mem.store(queued_mem(&args), Ordering::Relaxed);
            } else {
                mem.fetch_add(queued_mem(&args), Ordering::Relaxed);
            }
            multi.queue.push(Queued { command, args });
            self.info
                .multi
                .store(multi.queue.len() as i64, Ordering::Relaxed);
        }
    }

    /// Marks the open MULTI as failed (a command was refused while queueing).
    pub fn flag_transaction_error(&mut self) {
        if let Some(multi) = self.multi.as_mut() {
            multi.failed = true;
        }
    }

    /// Remembers a lock held with SESSION, to release when the connection closes.
    pub fn note_session_lock(&mut self, db: usize, key: &[u8]) {
        let noted = (db, Bytes::copy_from_slice(key));
        if !self.session_locks.contains(&noted) {
            self.session_locks.insert(noted);
        }
    }

    /// Whether `session_locks` has grown enough to be swept of keys this
    /// client no longer holds.
    pub fn session_locks_due(&self) -> bool {
        self.session_locks.len() >= self.session_locks_sweep_at
    }

    /// Drops the open transaction and every WATCH (DISCARD, EXEC, RESET, an EXEC
    /// refused while a script is busy).
    pub fn discard_transaction(&mut self, keyspace: &crate::keyspace::Keyspace) {
        self.multi = None;
        self.info.multi.store(-1, Ordering::Relaxed);
        self.info.buffers.multi_mem.store(0, Ordering::Relaxed);
        self.unwatch_all(keyspace);
    }

    /// Forgets every watched key: unregisters this session's flag from each key's
    /// shard and clears it (UNWATCH, EXEC, DISCARD, RESET, disconnect).
    pub fn unwatch_all(&mut self, keyspace: &crate::keyspace::Keyspace) {
        for (db, key, _) in self.watched.drain(..) {
            if let Some(db) = keyspace.db(db) {
                db.lock(&key).unwatch(&key, &self.watch_flag);
            }
        }
        self.watch_flag.store(false, Ordering::Release);
    }

    /// Reads the time for the commands that follow (a new batch, after a wait,
    /// before EXEC).
    pub fn mark_time(&mut self, clock: &crate::clock::Clock) {
        self.now_ms = clock.now_ms();
        self.clock_mark = quanta::Instant::now();
    }

    /// Selects database `db`.
    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.info.db.store(db, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    #[test]
    fn a_direct_write_of_the_whole_queue_empties_it_and_gives_back_a_big_buffer() {
        let (mut reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
        writer.set_nonblocking(true).unwrap();
        reader
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let info = ClientInfo::new(1, String::new(), String::new(), -1, 0);
        info.allow_direct_writes(writer.as_fd());
        info.set_idle(true);
        // Past PUSH_QUEUE_KEEP, and small enough for the socket's buffer.
        let frame = crate::reply::push_frame(&[b"message", b"ch", &[b'x'; 40_000]]);
        info.buffers.queued.store(frame.len(), Ordering::Relaxed);
        assert_eq!(
            info.queue_push_deferred(&frame, frame.len()),
            PushQueued::Deferred
        );
        info.write_pushes_directly();
        let mut got = vec![0; frame.len()];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, frame);
        let q = info.pushes.lock();
        assert!(q.bytes.is_empty() && q.bytes.capacity() <= PUSH_QUEUE_KEEP);
        assert_eq!(
            (q.counted, info.buffers.queued.load(Ordering::Relaxed)),
            (0, 0)
        );
    }
}
