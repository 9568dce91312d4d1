//! MULTI / EXEC / DISCARD / WATCH semantics, including the lock patterns of
//! ServiceStack.Redis and StackExchange.Redis that rely on them.

mod common;

use std::time::Duration;

use common::{cmd, connect, raw, start};
use redis::{AsyncCommands, Value};

#[tokio::test]
async fn exec_runs_queued_commands_in_order() {
    let server = start().await;
    let got = raw(
        &server,
        b"MULTI\r\nSET a 1\r\nGET a\r\nDEL a\r\nEXEC\r\n",
        1000,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n$1\r\n1\r\n:1\r\n"
    );
}

#[tokio::test]
async fn syntax_error_while_queueing_aborts_exec() {
    let server = start().await;
    let got = raw(
        &server,
        b"MULTI\r\nSET a\r\nSET b 1\r\nEXEC\r\nGET b\r\n",
        1000,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n-ERR wrong number of arguments for 'set' command\r\n+QUEUED\r\n\
         -EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n"
    );
}

#[tokio::test]
async fn runtime_error_inside_exec_does_not_stop_the_rest() {
    let server = start().await;
    let got = raw(
        &server,
        b"MULTI\r\nSET a 1 EX 0\r\nSET b 2\r\nEXEC\r\n",
        1000,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR invalid expire time in 'set' command\r\n+OK\r\n"
    );
}

#[tokio::test]
async fn nested_multi_and_stray_exec_discard_are_errors() {
    let server = start().await;
    let got = raw(
        &server,
        b"EXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nWATCH a\r\nDISCARD\r\n",
        1000,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n+OK\r\n\
         -ERR MULTI calls can not be nested\r\n-ERR WATCH inside MULTI is not allowed\r\n+OK\r\n"
    );
}

#[tokio::test]
async fn discard_drops_the_queue() {
    let server = start().await;
    let got = raw(&server, b"MULTI\r\nSET a 1\r\nDISCARD\r\nGET a\r\n", 1000).await;
    assert_eq!(got, b"+OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n");
}

async fn watch_then_exec(
    server: &latchkey::ServerHandle,
    between: impl std::future::Future<Output = ()>,
) -> Value {
    let mut con = connect(server).await;
    cmd(&mut con, &["WATCH", "k"]).await.unwrap();
    between.await;
    cmd(&mut con, &["MULTI"]).await.unwrap();
    cmd(&mut con, &["SET", "k", "mine"]).await.unwrap();
    cmd(&mut con, &["EXEC"]).await.unwrap()
}

#[tokio::test]
async fn exec_fails_when_a_watched_key_is_modified_by_another_client() {
    let server = start().await;
    let mut other = connect(&server).await;
    let got = watch_then_exec(&server, async {
        let _: () = other.set("k", "theirs").await.unwrap();
    })
    .await;
    assert_eq!(got, Value::Nil);
    assert_eq!(server.get("k").as_deref(), Some(&b"theirs"[..]));
}

#[tokio::test]
async fn exec_succeeds_when_watched_key_is_untouched() {
    let server = start().await;
    let got = watch_then_exec(&server, async {}).await;
    assert_eq!(got, Value::Array(vec![Value::Okay]));
    assert_eq!(server.get("k").as_deref(), Some(&b"mine"[..]));
}

#[tokio::test]
async fn exec_fails_when_a_watched_key_expires() {
    let server = start().await;
    server.pause_time();
    server.set("k", "v", Some(Duration::from_secs(5)));
    let got = watch_then_exec(&server, async {
        server.advance_time(Duration::from_secs(6));
    })
    .await;
    assert_eq!(got, Value::Nil);
}

#[tokio::test]
async fn exec_fails_when_a_watched_key_is_flushed() {
    let server = start().await;
    server.set("k", "v", None);
    let mut other = connect(&server).await;
    let got = watch_then_exec(&server, async {
        cmd(&mut other, &["FLUSHDB"]).await.unwrap();
    })
    .await;
    assert_eq!(got, Value::Nil);
}

#[tokio::test]
async fn unwatch_forgets_watched_keys() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut other = connect(&server).await;
    cmd(&mut con, &["WATCH", "k"]).await.unwrap();
    cmd(&mut con, &["UNWATCH"]).await.unwrap();
    let _: () = other.set("k", "theirs").await.unwrap();
    cmd(&mut con, &["MULTI"]).await.unwrap();
    cmd(&mut con, &["SET", "k", "mine"]).await.unwrap();
    let got = cmd(&mut con, &["EXEC"]).await.unwrap();
    assert_eq!(got, Value::Array(vec![Value::Okay]));
}

/// ServiceStack.Redis `AcquireLock`: SETNX key <expiry>; on failure WATCH, GET,
/// and if the stored expiry has passed MULTI / SET / EXEC; DEL on dispose.
#[tokio::test]
async fn servicestack_acquire_lock_pattern_takes_over_an_expired_lock() {
    let server = start().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    let past = "1000";
    let got: i64 = redis::cmd("SETNX")
        .arg("lock:x")
        .arg(past)
        .query_async(&mut a)
        .await
        .unwrap();
    assert_eq!(got, 1);
    // b fails SETNX, sees an expired timestamp, and takes over through WATCH/MULTI/EXEC.
    let got: i64 = redis::cmd("SETNX")
        .arg("lock:x")
        .arg("2")
        .query_async(&mut b)
        .await
        .unwrap();
    assert_eq!(got, 0);
    cmd(&mut b, &["WATCH", "lock:x"]).await.unwrap();
    let stored: String = b.get("lock:x").await.unwrap();
    assert!(stored.parse::<u64>().unwrap() < 2000);
    cmd(&mut b, &["MULTI"]).await.unwrap();
    cmd(&mut b, &["SET", "lock:x", "99999999999999"])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut b, &["EXEC"]).await.unwrap(),
        Value::Array(vec![Value::Okay])
    );
    let _: i64 = b.del("lock:x").await.unwrap();
    assert_eq!(server.get("lock:x"), None);
}

/// EXEC is atomic: a reader never sees half of a transaction's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_is_atomic_to_concurrent_readers() {
    let server = start().await;
    server.set("a", "0", None);
    server.set("b", "0", None);
    let mut writer = connect(&server).await;
    let mut reader = connect(&server).await;
    let writes = tokio::spawn(async move {
        for i in 1..=300 {
            let v = i.to_string();
            let _: Value = redis::pipe()
                .atomic()
                .set("a", &v)
                .set("b", &v)
                .query_async(&mut writer)
                .await
                .unwrap();
        }
    });
    for _ in 0..300 {
        let got: Vec<String> = redis::pipe()
            .atomic()
            .get("a")
            .get("b")
            .query_async(&mut reader)
            .await
            .unwrap();
        assert_eq!(got[0], got[1], "saw half a transaction");
    }
    writes.await.unwrap();
}
