//! Keyspace notifications (`notify-keyspace-events`): the channels and frames
//! redis-server 7.0.15 sends for the same commands (its order of events was
//! read from a real server with `PSUBSCRIBE __key*` beside the same requests),
//! events raised by the keyspace itself (`expired`, `new`), and MULTI/EXEC.

mod common;

use std::time::Duration;

use common::{expect_reply, start};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn open(server: &latchkey::ServerHandle) -> TcpStream {
    TcpStream::connect(server.addr()).await.unwrap()
}

async fn send(s: &mut TcpStream, lines: &[&str]) {
    let mut req = String::new();
    for l in lines {
        req.push_str(l);
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.unwrap();
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// The frames a `PSUBSCRIBE __key*` subscriber gets for event `event` on
/// `key` in database 0 with `K` and `E` on: keyspace first, then keyevent.
fn both(event: &str, key: &str) -> String {
    let pm = |chan: String, msg: &str| {
        format!(
            "*4\r\n{}{}{}{}",
            bulk("pmessage"),
            bulk("__key*"),
            bulk(&chan),
            bulk(msg)
        )
    };
    pm(format!("__keyspace@0__:{key}"), event) + &pm(format!("__keyevent@0__:{event}"), key)
}

/// A subscriber to every keyspace channel, and a second connection that has
/// set `classes`.
async fn watching(server: &latchkey::ServerHandle, classes: &str) -> (TcpStream, TcpStream) {
    let mut sub = open(server).await;
    send(&mut sub, &["PSUBSCRIBE __key*"]).await;
    expect_reply(
        &mut sub,
        &format!("*3\r\n{}{}:1\r\n", bulk("psubscribe"), bulk("__key*")),
    )
    .await;
    let mut c = open(server).await;
    send(
        &mut c,
        &[&format!("CONFIG SET notify-keyspace-events {classes}")],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n").await;
    (sub, c)
}

#[tokio::test]
async fn set_with_a_ttl_then_del_then_expiry() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEA").await;
    send(
        &mut c,
        &["SET k v PX 100000", "DEL k nothere", "SET k2 v PX 30"],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n:1\r\n+OK\r\n").await;
    let want = both("set", "k")
        + &both("expire", "k")
        + &both("del", "k")
        + &both("set", "k2")
        + &both("expire", "k2")
        + &both("expired", "k2");
    expect_reply(&mut sub, &want).await;
}

#[tokio::test]
async fn moving_a_paused_clock_past_a_ttl_raises_expired() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "Ex").await;
    server.pause_time();
    send(&mut c, &["SET k v PX 10", "SET other v"]).await;
    expect_reply(&mut c, "+OK\r\n+OK\r\n").await;
    server.advance_time(Duration::from_millis(50));
    let expired = format!(
        "*4\r\n{}{}{}{}",
        bulk("pmessage"),
        bulk("__key*"),
        bulk("__keyevent@0__:expired"),
        bulk("k")
    );
    expect_reply(&mut sub, &expired).await;
}

#[tokio::test]
async fn new_keys_and_classes_off() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEAn").await;
    send(
        &mut c,
        &["SET k3 v", "SET k3 v", "CONFIG GET notify-keyspace-events"],
    )
    .await;
    expect_reply(
        &mut c,
        &format!(
            "+OK\r\n+OK\r\n*2\r\n{}{}",
            bulk("notify-keyspace-events"),
            bulk("AKE")
        ),
    )
    .await;
    expect_reply(
        &mut sub,
        &(both("new", "k3") + &both("set", "k3") + &both("set", "k3")),
    )
    .await;
    // Only the generic class: SET raises nothing, DEL does.
    send(
        &mut c,
        &["CONFIG SET notify-keyspace-events gK", "SET k3 w", "DEL k3"],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n+OK\r\n:1\r\n").await;
    let only_space = format!(
        "*4\r\n{}{}{}{}",
        bulk("pmessage"),
        bulk("__key*"),
        bulk("__keyspace@0__:k3"),
        bulk("del")
    );
    expect_reply(&mut sub, &only_space).await;
}

#[tokio::test]
async fn events_of_a_transaction_leave_in_order_when_it_ends() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEA").await;
    send(&mut c, &["MULTI", "SET a 1", "DEL a", "EXEC"]).await;
    expect_reply(&mut c, "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:1\r\n").await;
    expect_reply(&mut sub, &(both("set", "a") + &both("del", "a"))).await;
}

#[tokio::test]
async fn a_bad_class_letter_is_refused_and_changes_nothing() {
    let server = start().await;
    let mut c = open(&server).await;
    send(
        &mut c,
        &[
            "CONFIG SET notify-keyspace-events Kq",
            "CONFIG GET notify-keyspace-events",
        ],
    )
    .await;
    expect_reply(
        &mut c,
        &format!(
            "-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.\r\n*2\r\n{}{}",
            bulk("notify-keyspace-events"),
            bulk("")
        ),
    )
    .await;
}

#[tokio::test]
async fn a_subscriber_flooded_by_a_script_is_closed_at_its_limit() {
    use tokio::io::AsyncReadExt;
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEA").await;
    send(
        &mut c,
        &["CONFIG SET client-output-buffer-limit \"pubsub 64kb 0 0\""],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n").await;
    // 200,000 events of about 80 bytes each would be 16 MB waiting for the
    // script's end; the subscriber is closed once 64 KB are counted.
    send(
        &mut c,
        &["EVAL \"for i=1,100000 do redis.call('SET','k',i) end return 1\" 0"],
    )
    .await;
    expect_reply(&mut c, ":1\r\n").await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), sub.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the subscriber was not closed"),
        }
    }
    assert!(got <= 64 * 1024, "{got} bytes reached a closed subscriber");
}
