//! Large values from the socket to the keyspace: a big SET is read into one
//! buffer of its own and stored without a copy. Measured on this process's own
//! peak RSS, so this file holds one test at a time (the ignored one runs alone).

mod common;

use std::time::{Duration, Instant};

use common::{cmd, connect, start};
use redis::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `/proc/self/status` figure in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field}"));
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// SETs `key` to `value` over a raw socket in 1 MB writes and waits for `+OK`.
async fn raw_set(addr: std::net::SocketAddr, key: &str, value: Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
        key.len(),
        value.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in value.chunks(1 << 20) {
        s.write_all(chunk).await.unwrap();
    }
    s.write_all(b"\r\n").await.unwrap();
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"+OK\r\n");
}

/// The server's extra peak memory for a SET of `len` bytes, and the worst PING
/// round trip another client saw meanwhile.
async fn measure_set(len: usize) -> (usize, Duration) {
    let server = start().await;
    let mut pinger = connect(&server).await;
    let value = vec![b'v'; len];
    let before = status_bytes("VmRSS:");
    reset_peak();
    let setting = tokio::spawn(raw_set(server.addr(), "big", value));
    let mut worst = Duration::ZERO;
    while !setting.is_finished() {
        let t = Instant::now();
        cmd(&mut pinger, &["PING"]).await.unwrap();
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    setting.await.unwrap();
    let extra = status_bytes("VmHWM:").saturating_sub(before);
    let Value::Int(n) = cmd(&mut pinger, &["STRLEN", "big"]).await.unwrap() else {
        panic!("STRLEN is an integer")
    };
    assert_eq!(n as usize, len);
    (extra, worst)
}

/// SETs a `len`-byte value and checks the process's peak grew by the value
/// once: a copy (or a read buffer grown past it and kept) would double it.
async fn set_is_held_once(len: usize) {
    let (extra, worst) = measure_set(len).await;
    eprintln!(
        "SET of {} MB: peak grew by {} MB, worst PING {:?}",
        len >> 20,
        extra >> 20,
        worst
    );
    assert!(
        extra < len + len / 4,
        "peak grew by {} MB for a {} MB value",
        extra >> 20,
        len >> 20
    );
}

#[tokio::test]
async fn a_64mb_set_was_held_twice() {
    set_is_held_once(64 << 20).await;
}

/// The figure; side by side with redis-server in benches/connections.sh.
#[tokio::test]
#[ignore = "400 MB; run alone: cargo test --release --test big_values -- --ignored"]
async fn a_400mb_set_was_held_twice_and_stalled_other_clients() {
    set_is_held_once(400 << 20).await;
}
