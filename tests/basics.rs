//! Core request path: a real client, pipelining, and the embedding API.

mod common;

use std::time::Duration;

use common::{connect, raw, start};
use redis::AsyncCommands;

#[tokio::test]
async fn set_then_get_through_redis_crate() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.set("k", "v").await.unwrap();
    let v: String = con.get("k").await.unwrap();
    assert_eq!(v, "v");
    assert_eq!(server.get("k").as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn pipelined_requests_get_replies_in_order() {
    let server = start().await;
    let req = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\nGET a\r\n*1\r\n$4\r\nPING\r\n";
    let want = b"+OK\r\n$1\r\n1\r\n+PONG\r\n";
    assert_eq!(raw(&server, req, want.len()).await, want);
}

#[tokio::test]
async fn protocol_error_replies_then_closes() {
    let server = start().await;
    let got = raw(&server, b"PING\r\n*1\r\n$-5\r\n", 1000).await;
    assert_eq!(
        got,
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
}

#[tokio::test]
async fn advance_time_expires_keys_without_sleeping() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    let _: () = con.set_ex("k", "v", 10).await.unwrap();
    server.advance_time(Duration::from_secs(9));
    assert_eq!(server.ttl("k"), Some(Duration::from_secs(1)));
    server.advance_time(Duration::from_secs(1));
    let v: Option<String> = con.get("k").await.unwrap();
    assert_eq!(v, None);
    assert_eq!(server.dbsize(0), 0, "reclaimed, not just hidden");
}

#[tokio::test]
async fn active_expiry_reclaims_within_milliseconds() {
    let server = start().await;
    // Time stands still until the key is seen stored (on a loaded machine the
    // 5 ms could pass before the first check).
    server.pause_time();
    let mut con = connect(&server).await;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(5)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(server.dbsize(0), 1);
    server.resume_time();
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    while server.dbsize(0) != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(server.dbsize(0), 0, "no access needed to reclaim the key");
}

#[test]
fn start_blocking_serves_without_a_runtime() {
    let server = latchkey::Server::builder().start_blocking().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}
