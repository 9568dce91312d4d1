//! Deadlines and sizes at the ends of their ranges (i64::MAX ms and beyond): they
//! are refused with Redis's errors or accepted and kept, and never overflow the
//! clock, the expiry task or a waiting connection. These matter in debug builds,
//! where arithmetic overflow panics.

mod common;

use std::time::{Duration, Instant};

use common::{cmd, connect, err_line, start};
use redis::Value;

/// Waits (at most 3 s) until DBSIZE is `n`: only active expiry lowers it.
async fn dbsize_reaches(con: &mut redis::aio::MultiplexedConnection, n: i64) -> bool {
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if cmd(con, &["DBSIZE"]).await.ok() == Some(Value::Int(n)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_pxat_i64_max_does_not_stop_active_expiry() {
    let server = start().await;
    let mut con = connect(&server).await;
    for words in [
        &["SET", "far", "v", "PXAT", "9223372036854775807"][..],
        &["SET", "far2", "v"],
        &["PEXPIREAT", "far2", "9223372036854775807"],
        &["SET", "far3", "v"],
        &["GETEX", "far3", "PXAT", "9223372036854775807"],
    ] {
        assert!(cmd(&mut con, words).await.is_ok(), "{words:?}");
    }
    // Let the expiry task arm its timer on the far deadline, then file a near one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    cmd(&mut con, &["SET", "near", "v", "PX", "30"])
        .await
        .unwrap();
    assert!(
        dbsize_reaches(&mut con, 3).await,
        "the key with a 30 ms TTL was not expired actively"
    );
    assert_eq!(
        cmd(&mut con, &["PEXPIRETIME", "far"]).await.unwrap(),
        Value::Int(i64::MAX)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_ttl_past_i64_max_is_refused_and_does_not_stop_active_expiry() {
    let server = start().await;
    let mut con = connect(&server).await;
    for words in [
        &["LOCK.ACQUIRE", "L", "a", "9223372036854775807"][..],
        &["LOCK.ACQUIRE", "L", "a", "9223372036854775000"],
    ] {
        assert_eq!(
            err_line(&mut con, words).await,
            "ERR invalid expire time in 'lock.acquire' command"
        );
    }
    // The longest lease that ends by i64::MAX ms is kept as asked.
    let ttl = (i64::MAX as u64 - server.now_ms() - 60_000).to_string();
    assert!(matches!(
        cmd(&mut con, &["LOCK.ACQUIRE", "L", "a", &ttl]).await,
        Ok(Value::Int(_))
    ));
    assert_eq!(
        err_line(&mut con, &["LOCK.EXTEND", "L", "a", "9223372036854775807"]).await,
        "ERR invalid expire time in 'lock.extend' command"
    );
    assert_eq!(
        cmd(&mut con, &["LOCK.EXTEND", "L", "a", &ttl])
            .await
            .unwrap(),
        Value::Int(1)
    );
    let Ok(Value::Int(pttl)) = cmd(&mut con, &["PTTL", "L"]).await else {
        panic!("PTTL of a lock is an integer");
    };
    assert!(pttl > 0, "{pttl}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    cmd(&mut con, &["SET", "near", "v", "PX", "30"])
        .await
        .unwrap();
    assert!(
        dbsize_reaches(&mut con, 1).await,
        "the key with a 30 ms TTL was not expired actively"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_wait_i64_max_is_refused_as_out_of_range() {
    let server = start().await;
    let mut con = connect(&server).await;
    for (wait, error) in [
        ("9223372036854775807", "ERR timeout is out of range"),
        (
            "9223372036854775808",
            "ERR value is not an integer or out of range",
        ),
    ] {
        let args = ["LOCK.ACQUIRE", "L", "b", "10000", "WAIT", wait];
        assert_eq!(err_line(&mut con, &args).await, error, "WAIT {wait}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_wait_with_a_far_deadline_behind_a_holder_does_not_kill_the_connection() {
    let server = start().await;
    let mut holder = connect(&server).await;
    let mut waiter = connect(&server).await;
    assert!(matches!(
        cmd(&mut holder, &["LOCK.ACQUIRE", "L", "a", "10000"]).await,
        Ok(Value::Int(_))
    ));
    // A deadline in ms whose µs overflow u64 (about 3 million years).
    let wait = tokio::spawn(async move {
        let r = cmd(
            &mut waiter,
            &[
                "LOCK.ACQUIRE",
                "L",
                "b",
                "10000",
                "WAIT",
                "100000000000000000",
            ],
        )
        .await;
        (r, waiter)
    });
    let until = Instant::now() + Duration::from_secs(3);
    while server.lock_info("L").is_none_or(|i| i.waiters == 0) {
        assert!(Instant::now() < until, "the waiter never queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        cmd(&mut holder, &["LOCK.RELEASE", "L", "a"]).await.unwrap(),
        Value::Int(1)
    );
    let (r, mut waiter) = tokio::time::timeout(Duration::from_secs(3), wait)
        .await
        .expect("the waiter is granted at once")
        .unwrap();
    assert!(matches!(r, Ok(Value::Int(_))), "{r:?}");
    assert_eq!(
        cmd(&mut waiter, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    let clients = cmd(&mut holder, &["CLIENT", "LIST"]).await.unwrap();
    let Value::BulkString(list) = clients else {
        panic!("{clients:?}");
    };
    assert_eq!(String::from_utf8_lossy(&list).lines().count(), 2);
}
