//! Helpers shared by the integration tests: an in-process server on a free port,
//! a `redis` crate connection to it, and a raw-bytes exchange for protocol tests.
#![allow(dead_code)]

pub mod binary;
pub mod persist;

use std::time::Duration;

use latchkey::{Server, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts a server on a free port.
pub async fn start() -> ServerHandle {
    Server::builder().start().await.expect("server starts")
}

/// A server whose scripts and functions turn busy after 100 ms.
pub async fn start_with_short_busy_threshold() -> ServerHandle {
    Server::builder()
        .option("busy-reply-threshold", "100")
        .unwrap()
        .start()
        .await
        .expect("server starts")
}

/// A multiplexed async connection to `server`.
pub async fn connect(server: &ServerHandle) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

/// A RESP3 connection to `server`.
pub async fn connect_resp3(server: &ServerHandle) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("{}?protocol=resp3", server.url()))
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

/// Runs a command given as words and returns the raw `redis::Value`.
pub async fn cmd(
    con: &mut redis::aio::MultiplexedConnection,
    words: &[&str],
) -> redis::RedisResult<redis::Value> {
    let mut c = redis::cmd(words[0]);
    for w in &words[1..] {
        c.arg(*w);
    }
    c.query_async(con).await
}

/// Sends `bytes` on a fresh connection and returns everything received until the
/// server closes or `expect_len` bytes have arrived (or 2 s pass).
pub async fn raw(server: &ServerHandle, bytes: &[u8], expect_len: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(server.addr()).await.expect("connects");
    s.write_all(bytes).await.expect("writes");
    read_until(&mut s, expect_len).await
}

/// Reads from `s` until `expect_len` bytes arrived, EOF, or 2 s pass (a heap
/// buffer, so callers' futures stay small).
pub async fn read_until(s: &mut TcpStream, expect_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while out.len() < expect_len {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Runs a command that must fail and returns the error line as Redis sent it
/// (`ERR syntax error`, `WRONGTYPE ...`).
pub async fn err_line(con: &mut redis::aio::MultiplexedConnection, words: &[&str]) -> String {
    match cmd(con, words).await {
        Err(e) => match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            (Some(code), None) => code.to_string(),
            _ => e.to_string(),
        },
        Ok(v) => panic!("{words:?}: expected an error, got {v:?}"),
    }
}

/// Sends a blocking request on a fresh raw connection and returns once the server
/// counts `blocked` clients.
pub async fn block_raw(
    server: &latchkey::ServerHandle,
    con: &mut redis::aio::MultiplexedConnection,
    request: &str,
    blocked: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    until_blocked(con, blocked).await;
    s
}

/// Polls `INFO clients` until `blocked_clients` is `n` (at most 2 s).
pub async fn until_blocked(con: &mut redis::aio::MultiplexedConnection, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    for _ in 0..400 {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(con)
            .await
            .unwrap();
        if info.contains(&want) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("never saw {want:?}");
}

/// Reads a raw connection until `want` has arrived (or 2 s pass) and checks it.
pub async fn expect_reply(s: &mut tokio::net::TcpStream, want: &str) {
    let got = read_until(s, want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);
}

/// A raw connection to `server`, for tests that check exact bytes.
pub async fn open(server: &ServerHandle) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(server.addr()).await.unwrap()
}

/// Sends `lines` as inline commands, each ended by CRLF, in one write.
pub async fn send(s: &mut tokio::net::TcpStream, lines: &[&str]) {
    use tokio::io::AsyncWriteExt;
    let mut req = String::new();
    for l in lines {
        req.push_str(l);
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.unwrap();
}
