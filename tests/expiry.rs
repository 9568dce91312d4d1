//! Active expiry under load: many keys and leases sharing one deadline are worked
//! through in slices, so other clients keep being served, waiters on expired
//! leases are granted at once, and no key is visible after its deadline; the
//! expiry task survives a panic and deadlines far in the future.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cmd, connect, start};
use latchkey::ServerHandle;
use redis::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Keys loaded for the mass-expiry tests: enough that one unbounded sweep of a
/// debug build takes far longer than the latencies asserted below.
const MASS: usize = 200_000;

/// Loads `MASS` keys sharing one deadline `ttl` from now on a paused clock, and
/// returns that deadline (server clock ms). The clock stays paused.
fn load_keys_with_one_deadline(server: &ServerHandle, ttl: Duration) -> u64 {
    server.pause_time();
    for i in 0..MASS {
        server.set(format!("mass:{i}"), "v", Some(ttl));
    }
    server.now_ms() + ttl.as_millis() as u64
}

/// Waits (bounded) until database 0 holds `n` keys, expired ones not yet
/// reclaimed included: only active expiry brings the count down.
async fn wait_for_dbsize(server: &ServerHandle, n: usize, within: Duration) {
    let start = Instant::now();
    while server.dbsize(0) != n {
        assert!(
            start.elapsed() < within,
            "dbsize {} after {within:?}, expected {n}",
            server.dbsize(0)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn ping(s: &mut TcpStream) {
    s.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

#[tokio::test]
async fn mass_expiry_does_not_stall_other_clients() {
    // One thread for the server and this client, as the binary's single worker:
    // while expiry holds the thread, nobody else is served.
    let server = start().await;
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    let deadline = load_keys_with_one_deadline(&server, Duration::from_millis(300));
    server.resume_time();
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    let mut pings = 0;
    loop {
        let t = Instant::now();
        ping(&mut s).await;
        let took = t.elapsed();
        if server.now_ms() > deadline {
            worst = worst.max(took);
        }
        pings += 1;
        if server.dbsize(0) == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "keys not reclaimed"
        );
    }
    assert!(pings > 10);
    assert!(
        worst < Duration::from_millis(200),
        "a PING waited {worst:?} while {MASS} keys expired"
    );
}

#[tokio::test]
async fn keys_sharing_one_deadline_all_expire_and_none_is_seen_after_it() {
    let server = start().await;
    let mut con = connect(&server).await;
    let deadline = load_keys_with_one_deadline(&server, Duration::from_millis(200));
    let live: Value = cmd(&mut con, &["GET", "mass:7"]).await.unwrap();
    assert_eq!(live, Value::BulkString(b"v".to_vec()));
    server.resume_time();
    let started = Instant::now();
    let mut reads_after_deadline = 0;
    while server.dbsize(0) != 0 {
        let key = format!("mass:{}", fastrand::usize(..MASS));
        let before = server.now_ms();
        let got: Value = cmd(&mut con, &["GET", &key]).await.unwrap();
        if before >= deadline {
            assert_eq!(got, Value::Nil, "{key} seen after its deadline");
            reads_after_deadline += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "keys not reclaimed"
        );
    }
    assert!(reads_after_deadline > 0);
    let n: Value = cmd(&mut con, &["DBSIZE"]).await.unwrap();
    assert_eq!(n, Value::Int(0));
}

#[tokio::test]
async fn lease_waiters_are_granted_promptly_while_keys_expire_en_masse() {
    let server = start().await;
    let mut holder = connect(&server).await;
    let deadline = load_keys_with_one_deadline(&server, Duration::from_millis(300));
    // Locks on keys spread over the shards, each held with a lease ending with
    // the keys, each with a waiter on its own connection.
    const LOCKS: usize = 16;
    let mut waiters = Vec::new();
    for i in 0..LOCKS {
        let key = format!("lock:{i}");
        let token: Value = cmd(&mut holder, &["LOCK.ACQUIRE", &key, "a", "300"])
            .await
            .unwrap();
        assert!(matches!(token, Value::Int(_)));
        let mut waiter = connect(&server).await;
        let shared = Arc::clone(server.shared());
        waiters.push(tokio::spawn(async move {
            let got: Value = cmd(
                &mut waiter,
                &["LOCK.ACQUIRE", &key, "b", "10000", "WAIT", "20000"],
            )
            .await
            .unwrap();
            assert!(matches!(got, Value::Int(_)), "{key}: {got:?}");
            shared.clock.now_ms()
        }));
    }
    let queued = Instant::now();
    while (0..LOCKS).any(|i| {
        server
            .lock_info(format!("lock:{i}"))
            .map_or(0, |l| l.waiters)
            != 1
    }) {
        assert!(
            queued.elapsed() < Duration::from_secs(5),
            "waiters not queued"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.resume_time();
    let mut worst = 0;
    for w in waiters {
        worst = worst.max(w.await.unwrap().saturating_sub(deadline));
    }
    assert!(
        worst < 100,
        "a waiter was granted {worst} ms after its lease ended, behind {MASS} expiring keys"
    );
    wait_for_dbsize(&server, LOCKS, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn advance_time_finishes_a_mass_expiry_before_returning() {
    let server = start().await;
    let mut con = connect(&server).await;
    load_keys_with_one_deadline(&server, Duration::from_secs(1));
    let token: Value = cmd(&mut con, &["LOCK.ACQUIRE", "job", "a", "1000"])
        .await
        .unwrap();
    assert!(matches!(token, Value::Int(_)));
    server.advance_time(Duration::from_secs(1));
    assert_eq!(server.dbsize(0), 0);
    assert!(server.lock_info("job").is_none());
}

#[tokio::test]
async fn far_future_pxat_does_not_stop_active_expiry() {
    let server = start().await;
    let mut con = connect(&server).await;
    let ok: Value = cmd(
        &mut con,
        &["SET", "far", "v", "PXAT", "9223372036854775807"],
    )
    .await
    .unwrap();
    assert_eq!(ok, Value::Okay);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let ok: Value = cmd(&mut con, &["SET", "soon", "v", "PX", "30"])
        .await
        .unwrap();
    assert_eq!(ok, Value::Okay);
    // Reclaimed by the expiry task, with nobody reading the key.
    wait_for_dbsize(&server, 1, Duration::from_secs(3)).await;
    let ttl: Value = cmd(&mut con, &["PTTL", "far"]).await.unwrap();
    assert!(matches!(ttl, Value::Int(t) if t > 0));
}

#[tokio::test]
async fn expiry_task_survives_a_panic() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.inject_expiry_panic();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for round in 0..3 {
        let key = format!("soon:{round}");
        let ok: Value = cmd(&mut con, &["SET", &key, "v", "PX", "20"])
            .await
            .unwrap();
        assert_eq!(ok, Value::Okay);
        wait_for_dbsize(&server, 0, Duration::from_secs(3)).await;
        // Panic again: it is restarted every time.
        server.inject_expiry_panic();
    }
    let pong: Value = cmd(&mut con, &["PING"]).await.unwrap();
    assert_eq!(pong, Value::SimpleString("PONG".into()));
}
