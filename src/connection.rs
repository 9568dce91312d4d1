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

use crate::commands;
use crate::protocol::{Limits, RequestParser};
use crate::server::Shared;
use crate::session::{ClientInfo, Session};

/// Replies buffered beyond this are written before parsing more of a pipeline.
const WRITE_HIGH_WATER: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Serves one client until it quits, disconnects, is killed, breaks the protocol,
/// or the server shuts down.
pub async fn serve<S>(mut stream: S, shared: Arc<Shared>, info: Arc<ClientInfo>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let needs_auth = shared.config.read().requirepass.is_some();
    let mut session = Session::new(info.clone(), !needs_auth);
    let mut parser = RequestParser::default();
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut shutdown = shared.shutdown_signal();
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
            match parser.next(&mut rbuf, &limits, session.authenticated) {
                Ok(Some(args)) => {
                    let reply = commands::execute(&shared, &mut session, &args);
                    reply.encode(session.resp3, &mut wbuf);
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
                Ok(None) => break,
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
        let read = async {
            if idle == 0 {
                stream.read_buf(&mut rbuf).await
            } else {
                tokio::time::timeout(Duration::from_secs(idle), stream.read_buf(&mut rbuf))
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            }
        };
        tokio::select! {
            r = read => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    info.last_interaction_ms.store(shared.clock.now_ms(), Ordering::Relaxed);
                }
            },
            _ = info.killed() => return,
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
