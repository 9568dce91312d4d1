//! Raw-byte protocol behaviour: inline commands, split frames, limits, malformed
//! input. Each test speaks bytes to an in-process server and checks exact bytes.

mod common;

use std::time::Duration;

use common::{raw, read_until, start};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn inline_commands_work_as_in_telnet() {
    let server = start().await;
    let got = raw(&server, b"PING\r\nset k \"a b\"\nget k\r\n", 22).await;
    assert_eq!(got, b"+PONG\r\n+OK\r\n$3\r\na b\r\n");
}

#[tokio::test]
async fn blank_inline_lines_are_ignored() {
    let server = start().await;
    assert_eq!(raw(&server, b"\r\n\r\nPING\r\n", 7).await, b"+PONG\r\n");
}

#[tokio::test]
async fn frame_split_into_single_bytes_is_served() {
    let server = start().await;
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    for b in b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n" {
        s.write_all(&[*b]).await.unwrap();
        s.flush().await.unwrap();
    }
    assert_eq!(read_until(&mut s, 11).await, b"$5\r\nhello\r\n");
}

#[tokio::test]
async fn many_pipelined_commands_all_get_replies() {
    let server = start().await;
    let mut req = Vec::new();
    for i in 0..5000 {
        req.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{}\r\n",
                i.to_string().len(),
                i
            )
            .as_bytes(),
        );
    }
    req.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    let want_len = 5000 * 5 + b"$4\r\n4999\r\n".len();
    let got = raw(&server, &req, want_len).await;
    assert_eq!(got.len(), want_len);
    assert!(got.ends_with(b"$4\r\n4999\r\n"));
}

#[tokio::test]
async fn oversize_bulk_header_gets_an_error_and_close() {
    let server = start().await;
    let got = raw(&server, b"*1\r\n$2147483648\r\n", 1000).await;
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
}

#[tokio::test]
async fn invalid_multibulk_length_is_a_protocol_error() {
    let server = start().await;
    let got = raw(&server, b"*x\r\n", 1000).await;
    assert_eq!(got, b"-ERR Protocol error: invalid multibulk length\r\n");
}

#[tokio::test]
async fn non_bulk_argument_is_a_protocol_error() {
    let server = start().await;
    let got = raw(&server, b"*1\r\n:1\r\n", 1000).await;
    assert_eq!(got, b"-ERR Protocol error: expected '$', got ':'\r\n");
}

#[tokio::test]
async fn unbalanced_quotes_in_inline_request_is_a_protocol_error() {
    let server = start().await;
    let got = raw(&server, b"set \"a b\r\n", 1000).await;
    assert_eq!(
        got,
        b"-ERR Protocol error: unbalanced quotes in request\r\n"
    );
}

#[tokio::test]
async fn too_big_inline_request_is_a_protocol_error() {
    let server = start().await;
    let got = raw(&server, &vec![b'a'; 70 * 1024], 1000).await;
    assert_eq!(got, b"-ERR Protocol error: too big inline request\r\n");
}

#[tokio::test]
async fn garbage_and_half_frames_do_not_affect_other_clients() {
    let server = start().await;
    {
        let mut half = TcpStream::connect(server.addr()).await.unwrap();
        half.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk").await.unwrap();
    } // disconnects mid-frame
    let _ = raw(&server, b"\x00\xff\x13*\r\n$$$\r\n", 1000).await;
    let _ = raw(&server, b"*1\r\n$100\r\nabc", 0).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(raw(&server, b"PING\r\n", 7).await, b"+PONG\r\n");
    assert_eq!(server.get("k"), None);
}

#[tokio::test]
async fn large_value_arriving_in_chunks_is_stored_whole() {
    let server = start().await;
    let value = vec![b'x'; 3 * 1024 * 1024];
    let mut req = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    assert_eq!(raw(&server, &req, 5).await, b"+OK\r\n");
    assert_eq!(server.get("big").map(|v| v.len()), Some(value.len()));
}

#[tokio::test]
async fn query_buffer_limit_closes_the_client() {
    let server = latchkey::Server::builder()
        .option("client-query-buffer-limit", "1mb")
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    // A 2 MB argument: allowed by proto-max-bulk-len, over the query buffer limit.
    let mut req = b"*2\r\n$4\r\nECHO\r\n$2097152\r\n".to_vec();
    req.extend_from_slice(&vec![b'y'; 2 * 1024 * 1024]);
    let _ = s.write_all(&req).await;
    let got = read_until(&mut s, 1).await;
    assert!(got.is_empty(), "closed without a reply, got {got:?}");
    assert_eq!(raw(&server, b"PING\r\n", 7).await, b"+PONG\r\n");
}

#[tokio::test]
async fn resp3_after_hello_3_uses_resp3_types() {
    let server = start().await;
    let got = raw(&server, b"HELLO 3\r\nGET nokey\r\n", 10_000).await;
    assert!(
        got.starts_with(b"%7\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(got.ends_with(b"_\r\n"), "RESP3 null for a missing key");
}

#[tokio::test]
async fn idle_timeout_closes_idle_clients() {
    let server = latchkey::Server::builder()
        .option("timeout", "1")
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    let started = std::time::Instant::now();
    let got = read_until(&mut s, 1).await;
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
}
