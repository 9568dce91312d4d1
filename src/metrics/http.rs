//! The metrics port's HTTP/1.1: one `GET` (or `HEAD`) per connection,
//! answered and closed. `/metrics` is the Prometheus exposition, `/` the
//! status page; anything else is 404, another method 405.
//!
//! A request is parsed by `httparse`; its size and time are bounded here:
//! the head must fit [`MAX_REQUEST`] bytes and arrive within
//! [`READ_TIMEOUT`], the reply must be taken within [`WRITE_TIMEOUT`], and at
//! most [`MAX_CONNECTIONS`] connections are served at once on the metrics
//! port (more are closed at once). The same [`serve`] answers a connection
//! on the main port whose first read is a `GET /... HTTP/1.x` line while
//! `metrics-port` is on ([`is_http_get`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::server::Shared;

/// The most bytes of request head (request line and headers) read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// The most headers a request may have.
const MAX_HEADERS: usize = 32;
/// How long a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the reply.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once on the metrics port.
pub const MAX_CONNECTIONS: usize = 64;

/// Whether the first bytes read on the main port start an HTTP request the
/// metrics endpoint answers: a whole first line `GET /... HTTP/1.x`. Redis's
/// inline `GET key` (a telnet user's) stays a Redis command. One comparison
/// for any other connection, and only on its first read.
#[inline]
pub fn is_http_get(first: &[u8]) -> bool {
    if !first.starts_with(b"GET /") {
        return false;
    }
    let Some(end) = first.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let line = &first[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")
}

/// A reply: status line, type and body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    allow: bool,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            allow: false,
        }
    }
}

/// What the request head read so far is.
enum Head {
    /// Complete: method and path (query string dropped).
    Request { head_only: bool, route: Route },
    /// More bytes needed.
    Partial,
    /// Not a request we answer.
    Refused(Response),
}

#[derive(Clone, Copy)]
enum Route {
    Metrics,
    Status,
}

fn parse(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(httparse::Error::TooManyHeaders) => Head::Refused(Response::text(
            "431 Request Header Fields Too Large",
            "too many headers\n",
        )),
        Err(_) => Head::Refused(Response::text("400 Bad Request", "bad request\n")),
        Ok(httparse::Status::Complete(_)) => {
            let head_only = match req.method {
                Some("GET") => false,
                Some("HEAD") => true,
                _ => {
                    let mut r = Response::text("405 Method Not Allowed", "GET or HEAD only\n");
                    r.allow = true;
                    return Head::Refused(r);
                }
            };
            let path = req.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            let route = match path {
                "/metrics" => Route::Metrics,
                "/" => Route::Status,
                _ => {
                    return Head::Refused(Response::text(
                        "404 Not Found",
                        "not found: try /metrics or /\n",
                    ))
                }
            };
            Head::Request { head_only, route }
        }
    }
}

/// Answers one HTTP request on `stream`, whose first bytes (`buf`) were
/// already read, then closes it. Never panics on what the client sends:
/// a malformed head is 400, one over [`MAX_REQUEST`] 431, a slow one is
/// closed at [`READ_TIMEOUT`].
pub async fn serve<S>(mut stream: S, shared: &Shared, mut buf: BytesMut)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let read = async {
        loop {
            if buf.len() > MAX_REQUEST {
                return Some((
                    false,
                    Err(Response::text(
                        "431 Request Header Fields Too Large",
                        "request head too large\n",
                    )),
                ));
            }
            match parse(&buf[..buf.len().min(MAX_REQUEST)]) {
                Head::Request { head_only, route } => return Some((head_only, Ok(route))),
                Head::Refused(r) => return Some((false, Err(r))),
                Head::Partial => {}
            }
            buf.reserve(1024);
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    };
    let Ok(Some((head_only, routed))) = tokio::time::timeout(READ_TIMEOUT, read).await else {
        return;
    };
    let response = match routed {
        Ok(Route::Metrics) => Response {
            status: "200 OK",
            content_type: super::prometheus::CONTENT_TYPE,
            body: super::prometheus::render(shared).into_bytes(),
            allow: false,
        },
        Ok(Route::Status) => Response {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            body: super::status::render(shared).into_bytes(),
            allow: false,
        },
        Err(r) => r,
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        response.status,
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if response.allow {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    let write = async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write).await;
}

/// Serves the metrics port until shutdown: each connection in a task of its
/// own, at most [`MAX_CONNECTIONS`] at once; protected mode turns away
/// clients as on the main port.
pub async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_signal();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Too many at once: closed unanswered.
            continue;
        };
        let refused = {
            let protected = shared.config.read().protected_mode;
            let has_password = !shared.acl.default_needs_no_auth();
            crate::server::protected_mode_refuses(
                protected,
                has_password,
                crate::server::is_loopback(peer.ip()),
            )
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            if refused {
                let body = "protected mode: metrics are served to loopback clients only\n";
                let r = format!(
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(r.as_bytes())).await;
                drop(slot);
                return;
            }
            let mut stop = shared.shutdown_signal();
            tokio::select! {
                _ = serve(stream, &shared, BytesMut::new()) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(head: &[u8]) -> Option<&'static str> {
        match parse(head) {
            Head::Refused(r) => Some(r.status),
            Head::Partial => Some("partial"),
            Head::Request { .. } => None,
        }
    }

    #[test]
    fn only_a_whole_http_request_line_leaves_the_redis_path() {
        assert!(is_http_get(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(is_http_get(b"GET / HTTP/1.0\n\n"));
        assert!(!is_http_get(b"GET key\r\n"), "Redis's inline GET");
        assert!(
            !is_http_get(b"GET /key\r\n"),
            "an inline GET of a key with a slash"
        );
        assert!(!is_http_get(b"GET /metrics HTT"), "no whole line");
        assert!(!is_http_get(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"));
    }

    #[test]
    fn requests_parse_to_routes_or_to_the_right_refusal() {
        assert_eq!(status_of(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(status_of(b"HEAD /?refresh=1 HTTP/1.0\r\n\r\n"), None);
        assert_eq!(status_of(b"GET /metrics HTTP/1.1\r\nHost"), Some("partial"));
        assert_eq!(
            status_of(b"GET /nope HTTP/1.1\r\n\r\n"),
            Some("404 Not Found")
        );
        assert_eq!(
            status_of(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some("405 Method Not Allowed")
        );
        assert_eq!(
            status_of(b"GET /metrics HTTP/1.1\r\n\x01\r\n\r\n"),
            Some("400 Bad Request")
        );
        let many: String = (0..40).map(|i| format!("h{i}: v\r\n")).collect();
        let head = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            status_of(head.as_bytes()),
            Some("431 Request Header Fields Too Large")
        );
    }
}
