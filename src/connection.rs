//! One client connection: read bytes, run every complete command, write all the
//! replies with one write.
//!
//! Pipelining falls out of the loop: everything buffered is executed in order
//! before the next read, and the replies go out together. A protocol error gets
//! Redis's error line and closes the connection; a client past
//! `client-query-buffer-limit` or idle past `timeout` is closed. Nothing here
//! knows what a command does.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::commands;
use crate::keyspace::Popped;
use crate::protocol::{Limits, RequestParser};
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::{Blocked, ClientInfo, Session, Wait};

/// Replies buffered beyond this are written before parsing more of a pipeline.
const WRITE_HIGH_WATER: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Serves one client until it quits, disconnects, is killed, breaks the protocol,
/// or the server shuts down; then lets go of what the client held (a place in a
/// lock's queue, SESSION locks, watched keys).
pub async fn serve<S>(mut stream: S, shared: Arc<Shared>, info: Arc<ClientInfo>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let needs_auth = shared.config.read().requirepass.is_some();
    let mut session = Session::new(info.clone(), !needs_auth);
    session.mark_time(&shared.clock);
    run(&mut stream, &shared, &info, &mut session).await;
    release_client(&shared, &mut session).await;
}

async fn run<S>(stream: &mut S, shared: &Arc<Shared>, info: &Arc<ClientInfo>, session: &mut Session)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut parser = RequestParser::default();
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut args = Vec::new();
    // Registered once, not per read: a fresh future each time would lock and
    // unlock the notifiers' waiter lists for every request.
    let mut shutdown = shared.shutdown_signal();
    let stopping = shutdown.wait_for(|s| *s);
    tokio::pin!(stopping);
    let killed = info.killed();
    tokio::pin!(killed);
    // `timeout`: one timer for the connection, re-armed only when it fires. A
    // timeout around each read filed and removed a timer per request.
    let mut waiting_since = Instant::now();
    let idle_timer = tokio::time::sleep_until(waiting_since);
    tokio::pin!(idle_timer);
    let mut armed_for = 0;
    // The last wake-up was the timer's: the client has been waiting since before.
    let mut timer_woke = false;
    loop {
        let (limits, query_limit, idle) = {
            let c = shared.config.read();
            (
                Limits {
                    proto_max_bulk_len: c.proto_max_bulk_len,
                    ..Limits::default()
                },
                c.client_query_buffer_limit,
                c.timeout,
            )
        };
        let mut close = false;
        loop {
            match parser.next(&mut rbuf, &limits, session.authenticated, &mut args) {
                Ok(true) => {
                    let reply = commands::execute(shared, session, &args);
                    reply.encode(session.resp3, &mut wbuf);
                    if let Some(blocked) = session.blocked.take() {
                        // Replies so far go out now: the client may be waiting on
                        // them while this command waits.
                        if stream.write_all(&wbuf).await.is_err() {
                            session.blocked = Some(blocked);
                            return;
                        }
                        wbuf.clear();
                        let waited =
                            wait_for_grant(stream, &mut rbuf, shared, info, session, blocked).await;
                        // Time moved on while waiting: what follows starts from now.
                        session.mark_time(&shared.clock);
                        match waited {
                            Ok(reply) => reply.encode(session.resp3, &mut wbuf),
                            Err(blocked) => {
                                session.blocked = Some(blocked);
                                return;
                            }
                        }
                    }
                    if session.close_after_reply || info.is_killed() {
                        close = true;
                        break;
                    }
                    if wbuf.len() >= WRITE_HIGH_WATER {
                        if stream.write_all(&wbuf).await.is_err() {
                            return;
                        }
                        wbuf.clear();
                    }
                }
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
        if !wbuf.is_empty() {
            if stream.write_all(&wbuf).await.is_err() {
                return;
            }
            wbuf.clear();
        }
        if close || shared.is_shutting_down() {
            let _ = stream.shutdown().await;
            return;
        }
        if rbuf.len() > query_limit {
            tracing::warn!(
                client = info.id,
                "closing client that reached max query buffer length"
            );
            return;
        }
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
            rbuf.reserve(READ_CHUNK);
        }
        if idle > 0 {
            if !timer_woke {
                waiting_since = Instant::now();
            }
            timer_woke = false;
            if idle != armed_for {
                // A new `timeout` (CONFIG SET) applies from this wait on.
                idle_timer
                    .as_mut()
                    .reset(idle_deadline(waiting_since, idle));
                armed_for = idle;
            }
        }
        // Read first: on a wake-up for new bytes the kill and shutdown futures are
        // not polled again (each poll costs a waiter-list lock); a client that keeps
        // the read ready is still stopped by the checks after each command and batch.
        tokio::select! {
            biased;
            r = stream.read_buf(&mut rbuf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    session.mark_time(&shared.clock);
                    info.last_interaction_ms
                        .store(session.now_ms, Ordering::Relaxed);
                }
            },
            _ = &mut killed => return,
            _ = &mut stopping => return,
            _ = &mut idle_timer, if idle > 0 => {
                let due = idle_deadline(waiting_since, idle);
                if due <= Instant::now() {
                    return;
                }
                idle_timer.as_mut().reset(due);
                timer_woke = true;
            }
        }
    }
}

/// When a client waiting for bytes since `since` has been idle `secs` seconds
/// (capped at 30 years, so a huge `timeout` cannot overflow the clock).
fn idle_deadline(since: Instant, secs: u64) -> Instant {
    since
        .checked_add(Duration::from_secs(secs.min(30 * 365 * 86_400)))
        .unwrap_or(since)
}

/// Waits for a blocked command (a queued LOCK.ACQUIRE, a BLPOP) to be granted, its
/// timeout to run out (on the server clock, so tests can advance it), or the client
/// to go away (`Err`). Bytes the client pipelines meanwhile are buffered and run
/// afterwards.
async fn wait_for_grant<S>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    shared: &Shared,
    info: &ClientInfo,
    session: &mut Session,
    mut blocked: Blocked,
) -> Result<Reply, Blocked>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut shutdown = shared.shutdown_signal();
    let mut closed = false;
    info.blocked.store(true, Ordering::Relaxed);
    let _unblock = Unblock(info);
    loop {
        let moved = shared.clock.moved();
        tokio::pin!(moved);
        moved.as_mut().enable();
        let now = shared.clock.now_ms();
        if blocked.deadline.is_some_and(|d| now >= d) {
            return Ok(end_wait(shared, session, blocked, now).await);
        }
        let nap = blocked
            .deadline
            .and_then(|d| shared.clock.real_time_until(d));
        let grant = async {
            match &mut blocked.on {
                Wait::Lock { grant, .. } => grant.await.ok().map(Granted::Token),
                Wait::List { grant, .. } => grant.await.ok().map(Granted::Popped),
            }
        };
        let outcome = tokio::select! {
            r = grant => Some(r),
            _ = async {
                match nap {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => None,
            _ = &mut moved => None,
            r = stream.read_buf(rbuf), if !closed => {
                if matches!(r, Ok(0) | Err(_)) {
                    closed = true;
                }
                None
            }
            _ = info.killed() => { closed = true; None }
            _ = shutdown.wait_for(|s| *s) => { closed = true; None }
        };
        if closed {
            return Err(blocked);
        }
        match outcome {
            Some(Some(got)) => {
                // A grant made inside a script or EXEC is seen when it ends: the
                // gate is free again only then.
                drop(shared.gate.read_async().await);
                return Ok(granted(session, &blocked, got));
            }
            Some(None) => return Ok(timed_out(&blocked)),
            None => {}
        }
    }
}

/// Clears the client's blocked flag however the wait ends.
struct Unblock<'a>(&'a ClientInfo);

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        self.0.blocked.store(false, Ordering::Relaxed);
    }
}

/// What a blocked command was granted.
enum Granted {
    /// LOCK.ACQUIRE's fencing token.
    Token(u64),
    /// BLPOP's key and element.
    Popped(Popped),
}

/// The timeout ran out: leave the queue, unless the grant won the race, in which
/// case it is the reply.
async fn end_wait(shared: &Shared, session: &mut Session, mut blocked: Blocked, now: u64) -> Reply {
    let _gate = shared.gate.read_async().await;
    if let Some(got) = cancel_wait(shared, &mut blocked, now) {
        return granted(session, &blocked, got);
    }
    if matches!(blocked.on, Wait::Lock { .. }) {
        shared
            .keyspace
            .locks()
            .stats
            .wait_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }
    timed_out(&blocked)
}

/// Takes a blocked command out of its queue; a grant that arrived first is
/// returned instead. The caller holds the gate.
fn cancel_wait(shared: &Shared, blocked: &mut Blocked, now: u64) -> Option<Granted> {
    match &mut blocked.on {
        Wait::Lock {
            db,
            key,
            waiter,
            grant,
            ..
        } => {
            let db = shared.keyspace.db(*db)?;
            if db.lock(key).lock_cancel_wait(key, *waiter, now) {
                return None;
            }
            grant.try_recv().ok().map(Granted::Token)
        }
        Wait::List { waiter, grant } => {
            if shared.keyspace.lists().cancel(waiter) {
                return None;
            }
            grant.try_recv().ok().map(Granted::Popped)
        }
    }
}

fn granted(session: &mut Session, blocked: &Blocked, got: Granted) -> Reply {
    match got {
        Granted::Token(token) => {
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
        Granted::Popped((key, value)) => Reply::Array(vec![Reply::Bulk(key), Reply::Bulk(value)]),
    }
}

/// The reply of a blocked command whose time ran out: nil, a nil array for BLPOP.
fn timed_out(blocked: &Blocked) -> Reply {
    match blocked.on {
        Wait::Lock { .. } => Reply::Nil,
        Wait::List { .. } => Reply::NilArray,
    }
}

/// Lets go of everything a departed client held: its place in a lock queue (or a
/// hold granted as it left, which passes on), its SESSION locks, its WATCHes.
async fn release_client(shared: &Shared, session: &mut Session) {
    let _gate = shared.gate.read_async().await;
    let now = shared.clock.now_ms();
    let dbs = shared.keyspace.dbs();
    if let Some(mut b) = session.blocked.take() {
        // A grant that arrived as the client left is passed on.
        match (cancel_wait(shared, &mut b, now), &b.on) {
            (Some(Granted::Token(_)), Wait::Lock { db, key, owner, .. }) => {
                if let Some(db) = dbs.get(*db) {
                    db.lock(key)
                        .lock_release_client(key, None, Some(owner), now);
                }
            }
            (Some(Granted::Popped(popped)), Wait::List { waiter, .. }) => {
                let lists = shared.keyspace.lists();
                lists.give_back(&shared.keyspace, waiter, popped, now);
                lists.serve_ready(&shared.keyspace, now);
            }
            _ => {}
        }
    }
    let client = session.info.id;
    for (db, key) in session.session_locks.drain(..) {
        if let Some(db) = dbs.get(db) {
            let n = db
                .lock(&key)
                .lock_release_client(&key, Some(client), None, now);
            shared
                .keyspace
                .locks()
                .stats
                .session_releases
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    session.unwatch_all(&shared.keyspace);
}
