//! One client connection: read bytes, run every complete command, write all the
//! replies with one write.
//!
//! Pipelining falls out of the loop: everything buffered is executed in order
//! before the next read, and the replies go out together. While the client is
//! not taking its replies, what it sends is still read and buffered, to run
//! once they are out. A protocol error gets
//! Redis's error line and closes the connection; a client past
//! `client-query-buffer-limit` or idle past `timeout` is closed. Nothing here
//! knows what a command does.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::blocking::Message;
use crate::commands;
use crate::protocol::{Limits, RequestParser};
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::{argv_mem, client_memory, Blocked, ClientInfo, Session, Wait};

/// Reply bytes Redis keeps in a client's static buffer, outside the output
/// buffer limits.
const STATIC_REPLY: usize = 16 * 1024;
/// Replies buffered beyond this are written before parsing more of a pipeline.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Reads are this big once a client sends more than fits a small buffer.
const READ_CHUNK: usize = 16 * 1024;
/// A client's first reads, and its reads after it was idle, go into a buffer this
/// small: most requests are short, and a read that fills it grows it.
const FIRST_READ: usize = 1024;
/// Bytes of requests a client may have read since it last let the others
/// go first: a client that never stops sending yields its worker this
/// often, so one that connects meanwhile is accepted and served within a
/// turn (Redis reads at most 16 KB of a client per event-loop round).
const FAIR_SHARE: usize = 2 * READ_CHUNK;
/// A client idle this long (1 to 2 times it) gives back its buffers, as Redis
/// frees the query buffer of a client idle for 2 seconds.
const IDLE_RELEASE: Duration = Duration::from_secs(2);
/// A write buffer that grew past this (a big reply) is given back once written.
const WRITE_KEEP: usize = 2 * WRITE_HIGH_WATER;
/// A read buffer that grew past this is given back once a batch leaves it empty.
const READ_KEEP: usize = 2 * READ_CHUNK;

/// Serves one client until it quits, disconnects, is killed, breaks the protocol,
/// or the server shuts down; then lets go of what the client held (a place in a
/// lock's queue, SESSION locks, watched keys). A panic while serving the client
/// is caught and logged, and the clean-up still runs: one client's bug must not
/// leave its locks held.
pub async fn serve<S>(mut stream: S, shared: Arc<Shared>, info: Arc<ClientInfo>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = Session::new(
        info.clone(),
        shared.acl.default_user(),
        shared.acl.default_needs_no_auth(),
    );
    session.mark_time(&shared.clock);
    let served = AssertUnwindSafe(run(&mut stream, &shared, &info, &mut session))
        .catch_unwind()
        .await;
    // Before the stream closes: its socket must not outlive it.
    info.end_direct_writes();
    if let Err(panic) = served {
        tracing::error!(
            client = info.id,
            "panic while serving a client, closing it: {}",
            panic_text(panic.as_ref())
        );
    }
    release_client(&shared, &mut session).await;
}

/// The message a panic carried, for the log.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Completes when the client must close at once: killed, or the server stopping.
/// Every wait of the connection — reads, writes, a blocked command — races it, so
/// a client that stops reading its replies is dropped as promptly as an idle one.
fn closing<'a>(shared: &'a Shared, info: &'a ClientInfo) -> impl Future<Output = ()> + 'a {
    // Shutdown pokes every registered client after marking the server
    // stopping; a client registered after that finds the mark here.
    std::future::poll_fn(move |cx| {
        if info.poll_killed(cx) || shared.is_stopping() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

async fn run<S>(stream: &mut S, shared: &Arc<Shared>, info: &Arc<ClientInfo>, session: &mut Session)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut parser = RequestParser::default();
    // Buffers start empty and small: an idle client holds next to nothing.
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let mut read_chunk = FIRST_READ;
    let mut unyielded = 0usize;
    let mut args = Vec::new();
    // Wakes every IDLE_RELEASE while the client is active; a tick with no read
    // since the last one releases the buffers, and it sleeps until the next read.
    let idle_tick = tokio::time::sleep(IDLE_RELEASE);
    tokio::pin!(idle_tick);
    let mut reads_since_tick = 0u32;
    let mut released = false;
    let mut tick_unpolled = true;
    // `timeout` is checked on the same tick, which is re-armed for the client's
    // deadline when that comes first: no timer is filed per request.
    let mut last_read = Instant::now();
    // One future for every wait of the connection (see `closing`).
    let closing = closing(shared, info);
    tokio::pin!(closing);
    // Bytes a flush read while it waited (see `Inflow`).
    let mut inflowed = 0usize;
    // The timeout of the client's blocking commands: one timer for all of
    // them, made at the first (see `wait_for_grant`).
    let mut wait_timer = None;
    // The first read may be an HTTP GET for the metrics endpoint.
    let mut first_read = true;
    loop {
        let (limits, query_limit, idle, out) = {
            let c = shared.config.read();
            (
                Limits {
                    proto_max_bulk_len: c.proto_max_bulk_len,
                    ..Limits::default()
                },
                c.client_query_buffer_limit,
                c.timeout,
                Output {
                    idle: c.timeout,
                    limits: c.output_limits,
                    clock: &shared.clock,
                },
            )
        };
        let mut close = false;
        // What a flush reads while the client is not taking its replies.
        macro_rules! inflow {
            () => {
                Inflow {
                    rbuf: &mut rbuf,
                    parser: &parser,
                    query_limit,
                    last_read: &mut last_read,
                    got: &mut inflowed,
                }
            };
        }
        // Pushes that arrived before this batch's requests go before their
        // replies, as Redis queues them in the output buffer when sent.
        write_pushes(info, &mut wbuf);
        'batch: loop {
            match parser.next(&mut rbuf, &limits, session.authenticated, &mut args) {
                Ok(true) => 'run: loop {
                    #[cfg(all(feature = "test-hooks", debug_assertions))]
                    test_hooks::on_command(&args);
                    let reply = commands::execute(shared, session, &args);
                    if let Some(d) = session.reply_delay.take() {
                        // DEBUG FAULT DELAY: the reply is late, the server is not.
                        tokio::select! {
                            _ = tokio::time::sleep(d) => {}
                            _ = &mut closing => return,
                        }
                    }
                    // Messages the command published to this very client first.
                    for frame in std::mem::take(&mut session.held_pushes) {
                        crate::reply::write_push(&frame, session.resp3, &mut wbuf);
                    }
                    let before = wbuf.len();
                    reply.encode(session.resp3, &mut wbuf);
                    if wbuf.len() > STATIC_REPLY && out.over_limit(info, wbuf.len()) {
                        // Past `client-output-buffer-limit`: the replies before
                        // this one still go out, then the client is closed.
                        tracing::warn!(
                            client = info.id,
                            "closing client that reached its output buffer limit"
                        );
                        wbuf.truncate(before);
                        close = true;
                        break 'batch;
                    }
                    write_pushes(info, &mut wbuf);
                    if let Some(blocked) = &session.blocked {
                        // A command CLIENT PAUSE postponed runs again, from
                        // the start, once its wait ends.
                        let rerun = matches!(blocked.on, Wait::Postponed { .. });
                        let argv = argv_mem(&args);
                        info.buffers.argv_mem.store(argv, Ordering::Relaxed);
                        if !count_memory(
                            shared,
                            info,
                            session,
                            rbuf.capacity() + wbuf.capacity(),
                            argv,
                        ) {
                            return;
                        }
                        crate::tracking::broadcast(shared);
                        write_pushes(info, &mut wbuf);
                        session.write_deferred_pushes();
                        // Replies so far go out now: the client may be waiting on
                        // them while this command waits.
                        if session.aof_offset > 0 {
                            shared.aof.before_reply(session.aof_offset).await;
                        }
                        if !flush(stream, &mut wbuf, info, &mut closing, &out, inflow!()).await {
                            return;
                        }
                        let waited = wait_for_grant(
                            stream,
                            &mut rbuf,
                            shared,
                            info,
                            session,
                            &mut closing,
                            &mut wait_timer,
                        )
                        .await;
                        // Time moved on while waiting: what follows starts from now,
                        // `timeout` included (Redis never times out a blocked
                        // client, and counts idle time from its last reply).
                        session.mark_time(&shared.clock);
                        // Messages queued as the wait ended go first.
                        write_pushes(info, &mut wbuf);
                        last_read = Instant::now();
                        match waited {
                            Some(_) if rerun => continue 'run,
                            Some(reply) => {
                                session.end_reply(reply).encode(session.resp3, &mut wbuf)
                            }
                            None => return,
                        }
                        // Served or granted by another client's unit: the
                        // reply waits for the AOF to hold that unit's writes.
                        if shared.aof.is_on() {
                            session.aof_offset = shared.aof.appended_settled();
                        }
                    }
                    if session.close_after_reply || info.is_killed() {
                        close = true;
                        break 'batch;
                    }
                    if wbuf.len() >= WRITE_HIGH_WATER {
                        if session.aof_offset > 0 {
                            shared.aof.before_reply(session.aof_offset).await;
                        }
                        if !flush(stream, &mut wbuf, info, &mut closing, &out, inflow!()).await {
                            return;
                        }
                    }
                    break 'run;
                },
                Ok(false) => break,
                Err(e) => {
                    tracing::debug!(client = info.id, "protocol error: {e}");
                    wbuf.extend_from_slice(format!("-{e}\r\n").as_bytes());
                    close = true;
                    break;
                }
            }
        }
        session
            .stats
            .flush(&shared.commands, &shared.stats.commands_processed);
        // BCAST invalidations of the batch's writes leave after its replies,
        // as Redis sends them before it sleeps.
        crate::tracking::broadcast(shared);
        write_pushes(info, &mut wbuf);
        // Between batches only what is left unparsed counts, as in Redis.
        info.buffers.read(rbuf.len(), rbuf.capacity());
        if !count_memory(shared, info, session, rbuf.capacity() + wbuf.capacity(), 0) {
            return;
        }
        // Subscribers the batch published to, idle, get their messages
        // from this task now, before its own replies, as Redis writes them.
        session.write_deferred_pushes();
        if std::mem::take(&mut session.delivered_to_others) {
            // The batch published to other clients, whose tasks it woke: they
            // write first, then these replies, as Redis writes its pending
            // clients newest first (the subscribers before the publisher,
            // whose reply was queued with its batch's first message). A
            // publisher answered first sends its next batch while the last
            // one is still going out, and every message waits behind it.
            behind_woken_tasks().await;
        }
        inflowed = 0;
        if session.aof_offset > 0 {
            // The batch's writes are in the AOF as `appendfsync` asks.
            shared.aof.before_reply(session.aof_offset).await;
        }
        if !flush(stream, &mut wbuf, info, &mut closing, &out, inflow!()).await {
            return;
        }
        if close || shared.is_shutting_down() {
            let _ = stream.shutdown().await;
            return;
        }
        if inflowed > 0 && rbuf.len() <= query_limit {
            // Requests arrived while the replies went out: run them now.
            continue;
        }
        if rbuf.len() > query_limit {
            tracing::warn!(
                client = info.id,
                "closing client that reached max query buffer length"
            );
            return;
        }
        trim(&mut rbuf, &mut wbuf, &parser, info);
        parser.reserve_for_read(&mut rbuf, read_chunk);
        let room = rbuf.capacity() - rbuf.len();
        // `timeout` counts from the last bytes the client sent, as in Redis.
        let deadline = (idle > 0).then(|| last_read + Duration::from_secs(idle));
        if let Some(at) = deadline {
            if idle_tick.deadline() > at {
                // A lower `timeout` (CONFIG SET) applies from this wait on.
                idle_tick.as_mut().reset(at);
                tick_unpolled = true;
            }
        }
        let read = loop {
            // Idle, with nothing of its own to write: a publisher may write
            // this client's pushes to the socket itself until it wakes.
            info.set_idle(true);
            let woke = wait_for_bytes(
                stream,
                &mut rbuf,
                info,
                &mut closing,
                (!released || deadline.is_some()).then_some((&mut idle_tick, &mut tick_unpolled)),
            )
            .await;
            info.set_idle(false);
            match woke {
                Woke::Read(r) => break r,
                Woke::Closing => return,
                Woke::Pushes => {
                    // Push frames while idle: written at once.
                    write_pushes(info, &mut wbuf);
                    inflowed = 0;
                    if !flush(stream, &mut wbuf, info, &mut closing, &out, inflow!()).await {
                        return;
                    }
                    if inflowed > 0 {
                        break Ok(inflowed);
                    }
                }
                Woke::Tick => {
                    let now = Instant::now();
                    if deadline.is_some_and(|at| now >= at) {
                        return;
                    }
                    if !released
                        && reads_since_tick == 0
                        && rbuf.is_empty()
                        && !parser.reading_big_arg()
                    {
                        // Idle a whole tick: hold no buffers while waiting.
                        rbuf = BytesMut::new();
                        wbuf = BytesMut::new();
                        read_chunk = FIRST_READ;
                        info.buffers.read(0, 0);
                        info.buffers.write(0, 0);
                        released = true;
                    }
                    reads_since_tick = 0;
                    // Released, the tick only waits for `timeout`.
                    let next = match (released, deadline) {
                        (false, Some(at)) => at.min(now + IDLE_RELEASE),
                        (false, None) => now + IDLE_RELEASE,
                        (true, Some(at)) => at,
                        (true, None) => continue,
                    };
                    idle_tick.as_mut().reset(next);
                    tick_unpolled = true;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                count_bytes(&info.net_in, n);
                if first_read {
                    first_read = false;
                    // Not past a password: the main port's HTTP would let
                    // an unauthenticated client read every lock's owner.
                    if crate::metrics::http::is_http_get(&rbuf)
                        && shared.config.read().metrics_port != 0
                        && shared.acl.default_needs_no_auth()
                    {
                        let head = std::mem::take(&mut rbuf);
                        crate::metrics::http::serve(&mut *stream, shared, head).await;
                        return;
                    }
                }
                unyielded += n;
                if unyielded >= FAIR_SHARE {
                    // Behind the worker's next look at every socket (tokio's
                    // cooperative budget alone let a flooding client keep a
                    // worker for hundreds of milliseconds).
                    unyielded = 0;
                    tokio::task::yield_now().await;
                }
                last_read = Instant::now();
                session.mark_time(&shared.clock);
                info.last_interaction_ms
                    .store(session.now_ms, Ordering::Relaxed);
                info.buffers.read(rbuf.len(), rbuf.capacity());
                reads_since_tick = reads_since_tick.saturating_add(1);
                if n >= room {
                    // The read filled the buffer: more is coming, read in big chunks.
                    read_chunk = READ_CHUNK;
                }
                if released {
                    released = false;
                    idle_tick.as_mut().reset(last_read + IDLE_RELEASE);
                    tick_unpolled = true;
                }
            }
        }
    }
}

/// Adds `n` bytes to one of the client's network counters. Only the
/// connection's own task writes them, so a load and a store do (no locked
/// read-modify-write on the request path); readers see a relaxed value.
#[inline]
fn count_bytes(counter: &std::sync::atomic::AtomicU64, n: usize) {
    let total = counter.load(Ordering::Relaxed).wrapping_add(n as u64);
    counter.store(total, Ordering::Relaxed);
}

/// Counts what the client holds now (`buffers` bytes allocated, `argv` bytes
/// of a command it blocks in) into the clients' total; at or past
/// `maxmemory-clients` the biggest clients are closed. False if this one was:
/// it closes without its replies, as Redis frees an evicted client.
fn count_memory(
    shared: &Shared,
    info: &ClientInfo,
    session: &Session,
    buffers: usize,
    argv: usize,
) -> bool {
    let multi = if session.in_multi() {
        info.buffers.multi_mem.load(Ordering::Relaxed)
    } else {
        0
    };
    let held = client_memory(
        buffers,
        info.buffers.queued.load(Ordering::Relaxed),
        argv,
        multi,
    );
    if shared.memory.client_uses(info, held) {
        crate::memory::evict_clients(shared);
        return !info.is_killed();
    }
    true
}

/// Lets the tasks this one has woken run first: the task wakes itself and
/// returns once, which puts it at the back of its worker's run queue, behind
/// them (tokio's `yield_now` waits instead for the runtime's next look at its
/// sockets, which a worker also takes every few dozen tasks, so the woken
/// ones could still come after). No system call; with more than one worker,
/// another may take some of the woken tasks and run them meanwhile.
async fn behind_woken_tasks() {
    let mut queued = false;
    std::future::poll_fn(|cx| {
        if queued {
            return Poll::Ready(());
        }
        queued = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// What ended a wait for the client's next bytes.
enum Woke {
    /// The read finished (or failed).
    Read(std::io::Result<usize>),
    /// The client was killed or the server is stopping.
    Closing,
    /// The idle tick fired.
    Tick,
    /// Push frames wait in the client's queue.
    Pushes,
}

/// Writes the push frames queued for the client (`ClientInfo::queue_push`)
/// after the reply just encoded, so pushes and replies leave in the order
/// they happened. A client that never had one pays one relaxed load.
fn write_pushes(info: &ClientInfo, wbuf: &mut BytesMut) {
    if info.buffers.queued.load(Ordering::Relaxed) != 0 {
        info.take_pushes(wbuf);
    }
}

/// Waits for the client's next bytes, racing `closing`, the client's push
/// queue and, when given, the idle
/// tick (which also stands for `timeout`). The tick is polled only right after it was (re)armed (`unpolled`), which
/// leaves this task's waker with its timer, and then only once it has fired: a
/// poll of a pending timer on every request would cost the hot path for nothing.
async fn wait_for_bytes<S, F>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    info: &ClientInfo,
    closing: &mut Pin<&mut F>,
    mut tick: Option<(&mut Pin<&mut tokio::time::Sleep>, &mut bool)>,
) -> Woke
where
    S: AsyncRead + Unpin,
    F: Future<Output = ()>,
{
    let read = stream.read_buf(rbuf);
    tokio::pin!(read);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = read.as_mut().poll(cx) {
            return Poll::Ready(Woke::Read(r));
        }
        if closing.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Woke::Closing);
        }
        if info.buffers.queued.load(Ordering::Relaxed) != 0 && info.poll_pushes(cx) {
            return Poll::Ready(Woke::Pushes);
        }
        if let Some((sleep, unpolled)) = tick.as_mut() {
            if **unpolled || sleep.is_elapsed() {
                **unpolled = false;
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woke::Tick);
                }
            }
        }
        Poll::Pending
    })
    .await
}

/// Gives back buffers a big request or reply grew, once they are empty.
fn trim(rbuf: &mut BytesMut, wbuf: &mut BytesMut, parser: &RequestParser, info: &ClientInfo) {
    if wbuf.capacity() > WRITE_KEEP {
        *wbuf = BytesMut::new();
        info.buffers.write(0, 0);
        info.buffers.out_peak.store(0, Ordering::Relaxed);
    }
    if rbuf.is_empty() && rbuf.capacity() > READ_KEEP && !parser.reading_big_arg() {
        *rbuf = BytesMut::new();
    }
}

/// What a flush needs to know: `timeout`, and the output buffer limits with the
/// server clock their soft limit counts on.
struct Output<'a> {
    idle: u64,
    limits: crate::config::OutputLimits,
    clock: &'a crate::clock::Clock,
}

impl Output<'_> {
    /// Whether a client with `pending` bytes still to write (plus its queued
    /// messages) is past the `client-output-buffer-limit` of its class
    /// (`pubsub` once subscribed, else `normal`), as Redis checks after adding
    /// to a reply. The publisher checks a subscriber the same way as it queues.
    fn over_limit(&self, info: &ClientInfo, pending: usize) -> bool {
        let limit = if info.is_subscriber() {
            &self.limits.pubsub
        } else {
            &self.limits.normal
        };
        if limit.hard == 0 && limit.soft == 0 {
            return false;
        }
        // Like Redis's, the first 16 KB (its static reply buffer) do not count.
        let used = pending
            .saturating_sub(STATIC_REPLY)
            .saturating_add(info.buffers.queued.load(Ordering::Relaxed));
        limit.exceeded(
            used as u64,
            &info.buffers.soft_limit_since,
            self.clock.now_ms(),
        )
    }
}

/// Runs `io`, failing with `TimedOut` at `deadline` (`None`: no limit), as
/// Redis's `timeout` drops a client that neither sends nor takes bytes.
async fn within<T>(
    deadline: Option<Instant>,
    io: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    match deadline {
        None => io.await,
        Some(at) => tokio::time::timeout_at(at, io)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
    }
}

/// Where a flush that waits for the client to take its replies puts the
/// requests the client sends meanwhile: Redis reads a client whatever its
/// output holds, so a client that writes a long pipeline before it reads any
/// reply (redis-py's pipelines, redis-cli --pipe) must not find the server
/// stopped on a full socket while it is itself stopped on one. The bytes are
/// only buffered (up to `client-query-buffer-limit`, past which the run loop
/// closes the client) and run once the replies before them are out.
struct Inflow<'a> {
    rbuf: &'a mut BytesMut,
    parser: &'a RequestParser,
    query_limit: usize,
    last_read: &'a mut Instant,
    /// Bytes read, added to.
    got: &'a mut usize,
}

impl Inflow<'_> {
    /// Reads what the client sent into the read buffer, as the run loop's own
    /// read would; only a big argument already whole in its own buffer has
    /// that buffer grown (the parser takes it once the replies are out).
    fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        if self.rbuf.len() > self.query_limit {
            return Poll::Pending;
        }
        self.parser.reserve_for_read(self.rbuf, READ_CHUNK);
        if self.rbuf.capacity() == self.rbuf.len() {
            // A big argument's buffer is full and waits for the parser, which
            // runs only once the replies are out: what follows it goes on the
            // end (a copy of the argument, in this rare case only).
            self.rbuf.reserve(READ_CHUNK);
        }
        let spare = self.rbuf.spare_capacity_mut();
        let mut read = tokio::io::ReadBuf::uninit(spare);
        std::task::ready!(Pin::new(stream).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        // SAFETY: `poll_read` initialized the first `n` bytes of the spare
        // capacity, which now follow the buffer's bytes.
        unsafe { self.rbuf.set_len(self.rbuf.len() + n) };
        Poll::Ready(Ok(n))
    }
}

/// What a flush's wait ended with.
enum Flow {
    Wrote(usize),
    Read(usize),
}

/// Writes all of `wbuf` and empties it; false if the client must go instead: the
/// socket failed or closed, the client was killed or the server is stopping
/// (whatever the socket takes at once is still written), or the client took no
/// bytes for `idle` seconds. While the socket takes no more, what the client
/// sends is read into `inflow`.
async fn flush<S, F>(
    stream: &mut S,
    wbuf: &mut BytesMut,
    info: &ClientInfo,
    closing: &mut Pin<&mut F>,
    out: &Output<'_>,
    mut inflow: Inflow<'_>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
{
    if wbuf.is_empty() {
        return true;
    }
    let idle = out.idle;
    info.buffers.write(wbuf.len(), wbuf.capacity());
    let mut done = 0;
    while done < wbuf.len() {
        if out.over_limit(info, wbuf.len() - done) {
            tracing::warn!(
                client = info.id,
                "closing client that reached its output buffer limit"
            );
            return false;
        }
        let pending = &wbuf[done..];
        let step = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = Pin::new(&mut *stream).poll_write(cx, pending) {
                return Poll::Ready(r.map(Flow::Wrote));
            }
            inflow.poll_read(stream, cx).map_ok(Flow::Read)
        });
        let step = tokio::select! {
            biased;
            r = within(
                (idle > 0).then(|| Instant::now() + Duration::from_secs(idle)),
                step,
            ) => r,
            _ = closing.as_mut() => return false,
        };
        match step {
            Ok(Flow::Wrote(0)) | Ok(Flow::Read(0)) | Err(_) => return false,
            Ok(Flow::Wrote(n)) => done += n,
            Ok(Flow::Read(n)) => {
                count_bytes(&info.net_in, n);
                *inflow.got += n;
                *inflow.last_read = Instant::now();
                info.buffers.read(inflow.rbuf.len(), inflow.rbuf.capacity());
            }
        }
        if done < wbuf.len() {
            info.buffers
                .out_pending
                .store(wbuf.len() - done, Ordering::Relaxed);
        }
    }
    count_bytes(&info.net_out, done);
    wbuf.clear();
    info.buffers.out_pending.store(0, Ordering::Relaxed);
    true
}

#[cfg(all(feature = "test-hooks", debug_assertions))]
mod test_hooks {
    /// `LATCHKEY.TEST-PANIC` panics while serving the client, so tests can check
    /// what a panicking connection leaves behind. Only in debug builds with the
    /// `test-hooks` feature: never in a release server.
    pub fn on_command(args: &[bytes::Bytes]) {
        if args
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(b"LATCHKEY.TEST-PANIC"))
        {
            panic!("LATCHKEY.TEST-PANIC");
        }
    }

    /// A client named `latchkey-test-panic-in-wait` panics as soon as a command
    /// of its blocks, with the command still queued.
    pub fn on_wait(info: &crate::session::ClientInfo) {
        if info.name.lock().as_deref() == Some(&b"latchkey-test-panic-in-wait"[..]) {
            panic!("latchkey-test-panic-in-wait");
        }
    }
}

/// Waits for the blocked command in `session.blocked` (a queued LOCK.ACQUIRE, a
/// BLPOP) to be granted, its timeout to run out (on the server clock, so tests can
/// advance it), or the client to go away (`None`, leaving `session.blocked` for
/// the clean-up). The blocked command stays in the session while it waits, so
/// even a panic here leaves it to be cancelled. Bytes the client pipelines
/// meanwhile are buffered and run afterwards.
///
/// The timeout is `timer`, the connection's one timer for its waits, made at
/// its first and moved to each wait's deadline. A timer made per wait entered
/// tokio's timer wheel under its lock, and one due sooner than any the driver
/// knew of woke the driver through its eventfd (a `write`, then an extra
/// `epoll_wait`); a timer still armed and moved to a later deadline (the next
/// wait of a client with the same timeout) is one atomic store, and the wheel
/// re-files it when its earlier time comes.
async fn wait_for_grant<S, F>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    shared: &Shared,
    info: &ClientInfo,
    session: &mut Session,
    closing: &mut Pin<&mut F>,
    timer: &mut Option<Pin<Box<tokio::time::Sleep>>>,
) -> Option<Reply>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
{
    let seq = info.wait_seq.fetch_add(1, Ordering::Relaxed) + 1;
    info.blocked.store(true, Ordering::Release);
    let _unblock = Unblock(info);
    #[cfg(all(feature = "test-hooks", debug_assertions))]
    test_hooks::on_wait(info);
    let query_limit = shared.config.read().client_query_buffer_limit;
    loop {
        let moved = shared.clock.moved();
        tokio::pin!(moved);
        moved.as_mut().enable();
        let now = shared.clock.now_ms();
        let blocked = session.blocked.as_mut()?;
        if blocked.deadline.is_some_and(|d| now >= d) {
            return Some(end_wait(shared, session, now).await);
        }
        let nap = blocked
            .deadline
            .and_then(|d| shared.clock.real_time_until(d));
        let timeout = nap.map(|d| {
            let at = Instant::now() + d;
            let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            t.as_mut().reset(at);
            t
        });
        let inbox = &mut session.inbox;
        let grant = async {
            loop {
                match inbox.recv().await {
                    Some(m)
                        if is_for(&blocked.on, &m)
                            || matches!(m, Message::Unblock { seq: s, .. } if s == seq) =>
                    {
                        return Some(m)
                    }
                    Some(m) => tracing::debug!("a stale out-of-band message was dropped: {m:?}"),
                    None => return None,
                }
            }
        };
        // Past the query buffer limit, stop reading: the run loop closes the
        // client once the wait is over.
        let reading = rbuf.len() <= query_limit;
        if reading && rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
            rbuf.reserve(READ_CHUNK);
        }
        // Push frames are written at once, as Redis sends them to a blocked
        // subscriber.
        let pushes = std::future::poll_fn(|cx| {
            if info.poll_pushes(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let outcome = tokio::select! {
            r = grant => Some(BlockedWoke::Inbox(r)),
            _ = pushes => Some(BlockedWoke::Pushes),
            _ = async {
                match timeout {
                    Some(t) => t.await,
                    None => std::future::pending().await,
                }
            } => None,
            _ = &mut moved => None,
            r = stream.read_buf(rbuf), if reading => match r {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    count_bytes(&info.net_in, n);
                    info.buffers.read(rbuf.len(), rbuf.capacity());
                    None
                }
            },
            _ = closing.as_mut() => return None,
        };
        match outcome {
            Some(BlockedWoke::Pushes) => {
                let mut out = BytesMut::new();
                info.take_pushes(&mut out);
                let written = tokio::select! {
                    r = stream.write_all(&out) => r.is_ok(),
                    _ = closing.as_mut() => false,
                };
                if !written {
                    return None;
                }
                count_bytes(&info.net_out, out.len());
            }
            Some(BlockedWoke::Inbox(Some(Message::Unblock { error, .. }))) => {
                // CLIENT UNBLOCK: out of the queue now; what it waited for
                // wins if it came first.
                let _gate = shared.gate.read_async().await;
                let blocked = session.blocked.take()?;
                let got = cancel_wait(shared, session, &blocked, shared.clock.now_ms());
                crate::commands::pubsub::publish_logged(shared);
                return Some(match got {
                    Some(got) => granted(session, &blocked, got),
                    None if error => Reply::Error(crate::error::CommandError::raw(
                        "UNBLOCKED client unblocked via CLIENT UNBLOCK",
                    )),
                    None => timed_out(&blocked),
                });
            }
            Some(BlockedWoke::Inbox(Some(got))) => {
                // A grant made inside a script or EXEC is seen when it ends: the
                // gate is free again only then.
                drop(shared.gate.read_async().await);
                let blocked = session.blocked.take()?;
                return Some(granted(session, &blocked, got));
            }
            Some(BlockedWoke::Inbox(None)) => return session.blocked.take().map(|b| timed_out(&b)),
            None => {}
        }
    }
}

/// What woke a blocked client's wait, when it was not its timeout, its
/// clock, its socket or its end.
enum BlockedWoke {
    /// A message for the wait (`None`: the inbox is gone).
    Inbox(Option<Message>),
    /// Push frames wait in the client's queue.
    Pushes,
}

/// Clears the client's blocked flag however the wait ends.
struct Unblock<'a>(&'a ClientInfo);

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        self.0.blocked.store(false, Ordering::Relaxed);
        self.0.postponed.store(false, Ordering::Relaxed);
    }
}

/// Whether `m` answers the wait `on` (and not an earlier wait of the client).
fn is_for(on: &Wait, m: &Message) -> bool {
    match (on, m) {
        (Wait::Lock { waiter, .. }, Message::Granted { wait, .. })
        | (Wait::Lock { waiter, .. }, Message::Abandoned { wait }) => wait == waiter,
        (Wait::Key { waiter, .. }, Message::Served { wait, .. }) => *wait == waiter.id(),
        (Wait::Postponed { wait: waiter }, Message::Resume { wait }) => wait == waiter,
        _ => false,
    }
}

/// The message for wait `on` already in the inbox, if any (after a cancel that
/// found the wait already served).
fn delivered(session: &mut Session, on: &Wait) -> Option<Message> {
    while let Some(m) = session.inbox.try_recv() {
        if is_for(on, &m) {
            return Some(m);
        }
    }
    None
}

/// Ends the blocked command of `session` now, as its timeout running out does,
/// and gives the reply its client would get (for a driver without a
/// connection: the fuzz target runs `BLPOP k 0` and `LOCK.ACQUIRE ... WAIT 0`
/// this way). `Reply::Nil` if nothing is blocked.
pub async fn time_out_wait(shared: &Shared, session: &mut Session) -> Reply {
    end_wait(shared, session, shared.clock.now_ms()).await
}

/// Lets go of everything a client held, as when its connection ends (for a
/// driver without a connection; see [`release_client`]).
pub async fn release(shared: &Shared, session: &mut Session) {
    release_client(shared, session).await
}

/// The timeout ran out: leave the queue, unless the grant won the race, in which
/// case it is the reply.
async fn end_wait(shared: &Shared, session: &mut Session, now: u64) -> Reply {
    let _gate = shared.gate.read_async().await;
    let Some(blocked) = session.blocked.take() else {
        return Reply::Nil;
    };
    let got = cancel_wait(shared, session, &blocked, now);
    // Leaving the queue may have let others in (lock events).
    crate::commands::pubsub::publish_logged(shared);
    if let Some(got) = got {
        return granted(session, &blocked, got);
    }
    if let Wait::Lock { since, .. } = blocked.on {
        let stats = &shared.keyspace.locks().stats;
        stats.wait_timeouts.fetch_add(1, Ordering::Relaxed);
        stats.wait_ms.observe_ms(now.saturating_sub(since));
    }
    timed_out(&blocked)
}

/// Takes a blocked command out of its queue; a grant that arrived first is
/// returned instead. The caller holds the gate.
fn cancel_wait(
    shared: &Shared,
    session: &mut Session,
    blocked: &Blocked,
    now: u64,
) -> Option<Message> {
    let still_waiting = match &blocked.on {
        Wait::Lock {
            db, key, waiter, ..
        } => {
            let db = shared.keyspace.db(*db)?;
            crate::commands::lock::cancel_wait_at(&mut db.lock(key), key, *waiter, now)
        }
        Wait::Key { waiter, .. } => shared.blocked.cancel(waiter),
        Wait::Postponed { wait } => shared.pause.cancel(*wait),
    };
    if still_waiting {
        return None;
    }
    delivered(session, &blocked.on)
}

fn granted(session: &mut Session, blocked: &Blocked, got: Message) -> Reply {
    match got {
        Message::Granted { token, .. } => {
            if let Wait::Lock {
                db,
                key,
                session: true,
                ..
            } = &blocked.on
            {
                session.note_session_lock(*db, key);
            }
            Reply::Int(token as i64)
        }
        Message::Served { reply, .. } => reply,
        // The connection runs the postponed command again.
        Message::Resume { .. } => Reply::Silent,
        // Never the answer to a wait (handled by the waiting loop).
        Message::Unblock { .. } => timed_out(blocked),
        Message::Abandoned { .. } => timed_out(blocked),
    }
}

/// The reply of a blocked command whose time ran out.
fn timed_out(blocked: &Blocked) -> Reply {
    match &blocked.on {
        Wait::Lock { .. } => Reply::Nil,
        Wait::Key { timeout_reply, .. } => timeout_reply.clone(),
        Wait::Postponed { .. } => Reply::Silent,
    }
}

/// Lets go of everything a departed client held: its place in a lock queue (or a
/// hold granted as it left, which passes on), its SESSION locks, its WATCHes.
async fn release_client(shared: &Shared, session: &mut Session) {
    let _gate = shared.gate.read_async().await;
    // What is let go reaches the AOF as one unit.
    let order = shared.aof.order();
    let now = shared.clock.now_ms();
    let dbs = shared.keyspace.dbs();
    if let Some(b) = session.blocked.take() {
        // A grant that arrived as the client left is passed on.
        match (cancel_wait(shared, session, &b, now), &b.on) {
            (Some(Message::Granted { .. }), Wait::Lock { db, key, owner, .. }) => {
                if let Some(db) = dbs.get(*db) {
                    crate::commands::lock::release_client_at(
                        &mut db.lock(key),
                        key,
                        None,
                        Some(owner),
                        now,
                    );
                }
            }
            (Some(Message::Served { key, reply, .. }), Wait::Key { waiter, .. }) => {
                let blocked = &shared.blocked;
                blocked.give_back(&shared.keyspace, waiter, &key, reply, now);
                blocked.serve_ready(&shared.keyspace, now);
            }
            _ => {}
        }
    }
    let client = session.info.id;
    for (db, key) in session.session_locks.drain() {
        if let Some(db) = dbs.get(db) {
            let n = crate::commands::lock::release_client_at(
                &mut db.lock(&key),
                &key,
                Some(client),
                None,
                now,
            );
            shared
                .keyspace
                .locks()
                .stats
                .session_releases
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    // The events of the holds let go (`lock.session-released`, the holders'
    // loss notices, the grants that followed), before this client's own
    // subscriptions end.
    crate::commands::pubsub::publish_logged(shared);
    if order.is_some() {
        crate::persist::aof::end_unit(shared);
        drop(order);
    }
    session.unwatch_all(&shared.keyspace);
    crate::commands::monitor::leave(shared, session);
    crate::commands::pubsub::leave_all(shared, session);
    shared.tracking.leave(&session.info);
    crate::tracking::after_background(shared);
    crate::tracking::broadcast(shared);
}
