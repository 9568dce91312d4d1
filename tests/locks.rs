//! Native lock commands through the `redis` crate: every option and reply, the
//! hand-off paths (release, lease expiry, DEL, disconnect), and contention.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{cmd, connect, connect_resp3, start};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Value};

async fn acquire(
    con: &mut MultiplexedConnection,
    key: &str,
    owner: &str,
    ttl: u64,
    opts: &[&str],
) -> Option<i64> {
    let mut c = redis::cmd("LOCK.ACQUIRE");
    c.arg(key).arg(owner).arg(ttl);
    for o in opts {
        c.arg(*o);
    }
    c.query_async(con).await.unwrap()
}

async fn release(con: &mut MultiplexedConnection, key: &str, owner: &str) -> i64 {
    redis::cmd("LOCK.RELEASE")
        .arg(key)
        .arg(owner)
        .query_async(con)
        .await
        .unwrap()
}

async fn err_text(con: &mut MultiplexedConnection, words: &[&str]) -> String {
    match cmd(con, words).await {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// Waits until `key` has `n` waiters (the waiter's request has reached the server).
async fn until_waiters(server: &latchkey::ServerHandle, key: &str, n: usize) {
    let mut con = connect(server).await;
    for _ in 0..500 {
        let info: Value = cmd(&mut con, &["LOCK.INFO", key]).await.unwrap();
        if let Value::Array(items) = &info {
            let at = items
                .iter()
                .position(|v| v == &Value::BulkString(b"waiters".to_vec()));
            if at.and_then(|i| items.get(i + 1)) == Some(&Value::Int(n as i64)) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{key} never had {n} waiters");
}

/// Sends `request` (which queues on `key`) on a new raw connection and returns
/// once the server has queued it.
async fn queue_raw(
    server: &latchkey::ServerHandle,
    key: &str,
    request: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let before = server.lock_info(key).map_or(0, |i| i.waiters);
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(request).await.unwrap();
    until_waiters(server, key, before + 1).await;
    s
}

/// Starts a waiting LOCK.ACQUIRE on its own task and returns once it is queued.
async fn spawn_waiter(
    server: &latchkey::ServerHandle,
    mut con: MultiplexedConnection,
    key: &'static str,
    owner: &'static str,
    ttl: u64,
    wait_ms: &'static str,
) -> tokio::task::JoinHandle<Option<i64>> {
    let before = server.lock_info(key).map_or(0, |i| i.waiters);
    let task =
        tokio::spawn(async move { acquire(&mut con, key, owner, ttl, &["WAIT", wait_ms]).await });
    until_waiters(server, key, before + 1).await;
    task
}

#[tokio::test]
async fn acquire_returns_a_token_and_a_second_owner_gets_nil() {
    let server = start().await;
    let mut con = connect(&server).await;
    let token = acquire(&mut con, "L", "a", 10_000, &[]).await;
    assert!(token.is_some_and(|t| t > 0));
    assert_eq!(acquire(&mut con, "L", "b", 10_000, &[]).await, None);
}

#[tokio::test]
async fn reacquire_by_the_holder_renews_and_returns_the_same_token() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    let t1 = acquire(&mut con, "L", "a", 1000, &[]).await;
    server.advance_time(Duration::from_millis(900));
    let t2 = acquire(&mut con, "L", "a", 1000, &[]).await;
    assert_eq!(t1, t2);
    server.advance_time(Duration::from_millis(900));
    assert_eq!(
        acquire(&mut con, "L", "b", 1000, &[]).await,
        None,
        "lease was renewed"
    );
}

#[tokio::test]
async fn release_by_holder_is_1_and_by_anyone_else_0() {
    let server = start().await;
    let mut con = connect(&server).await;
    acquire(&mut con, "L", "a", 10_000, &[]).await.unwrap();
    assert_eq!(release(&mut con, "L", "b").await, 0);
    assert_eq!(release(&mut con, "L", "a").await, 1);
    assert_eq!(release(&mut con, "L", "a").await, 0);
    assert_eq!(release(&mut con, "nolock", "a").await, 0);
}

#[tokio::test]
async fn released_lock_with_no_waiters_does_not_exist() {
    let server = start().await;
    let mut con = connect(&server).await;
    acquire(&mut con, "L", "a", 10_000, &[]).await.unwrap();
    assert_eq!(
        cmd(&mut con, &["EXISTS", "L"]).await.unwrap(),
        Value::Int(1)
    );
    release(&mut con, "L", "a").await;
    assert_eq!(
        cmd(&mut con, &["EXISTS", "L"]).await.unwrap(),
        Value::Int(0)
    );
    assert_eq!(server.dbsize(0), 0);
}

#[tokio::test]
async fn extend_sets_a_new_lease_only_for_the_holder() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    acquire(&mut con, "L", "a", 1000, &[]).await.unwrap();
    let ext: i64 = redis::cmd("LOCK.EXTEND")
        .arg("L")
        .arg("a")
        .arg(5000)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(ext, 1);
    let ext: i64 = redis::cmd("LOCK.EXTEND")
        .arg("L")
        .arg("b")
        .arg(5000)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(ext, 0);
    server.advance_time(Duration::from_millis(4000));
    assert_eq!(acquire(&mut con, "L", "b", 1000, &[]).await, None);
    server.advance_time(Duration::from_millis(1000));
    assert!(acquire(&mut con, "L", "b", 1000, &[]).await.is_some());
}

#[tokio::test]
async fn validate_accepts_only_the_current_holders_token() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    let t = acquire(&mut con, "L", "a", 1000, &[]).await.unwrap();
    let ok: i64 = redis::cmd("LOCK.VALIDATE")
        .arg("L")
        .arg(t)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(ok, 1);
    let bad: i64 = redis::cmd("LOCK.VALIDATE")
        .arg("L")
        .arg(t - 1)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(bad, 0);
    server.advance_time(Duration::from_millis(1000));
    let stale: i64 = redis::cmd("LOCK.VALIDATE")
        .arg("L")
        .arg(t)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(stale, 0, "an expired lease's token is stale");
}

#[tokio::test]
async fn fencing_tokens_strictly_increase_across_release_and_expiry() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    let mut last = 0;
    for i in 0..50 {
        let t = acquire(&mut con, "L", &format!("o{i}"), 100, &[])
            .await
            .unwrap();
        assert!(t > last, "{t} after {last}");
        last = t;
        if i % 2 == 0 {
            release(&mut con, "L", &format!("o{i}")).await;
        } else {
            server.advance_time(Duration::from_millis(100));
        }
    }
}

#[tokio::test]
async fn info_reports_mode_holders_and_waiters() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["LOCK.INFO", "L"]).await.unwrap(),
        Value::Nil
    );
    let t = acquire(&mut con, "L", "a", 10_000, &[]).await.unwrap();
    let info = cmd(&mut con, &["LOCK.INFO", "L"]).await.unwrap();
    let Value::Array(items) = info else {
        panic!("{info:?}")
    };
    assert_eq!(items[0], Value::BulkString(b"mode".to_vec()));
    assert_eq!(items[1], Value::BulkString(b"exclusive".to_vec()));
    assert_eq!(items[3], Value::Nil);
    let Value::Array(holders) = &items[5] else {
        panic!()
    };
    let Value::Array(h) = &holders[0] else {
        panic!()
    };
    assert_eq!(h[1], Value::BulkString(b"a".to_vec()));
    assert_eq!(h[3], Value::Int(t));
    assert_eq!(items[7], Value::Int(0));
}

#[tokio::test]
async fn info_is_a_map_in_resp3() {
    let server = start().await;
    let mut con = connect_resp3(&server).await;
    acquire(&mut con, "L", "a", 10_000, &["LIMIT", "3"])
        .await
        .unwrap();
    let info = cmd(&mut con, &["LOCK.INFO", "L"]).await.unwrap();
    let Value::Map(pairs) = info else {
        panic!("{info:?}")
    };
    assert_eq!(pairs[0].1, Value::BulkString(b"semaphore".to_vec()));
    assert_eq!(pairs[1].1, Value::Int(3));
}

#[tokio::test]
async fn waiter_is_granted_the_moment_the_holder_releases() {
    let server = start().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    acquire(&mut a, "L", "a", 10_000, &[]).await.unwrap();
    let waiter = tokio::spawn(async move {
        let t = acquire(&mut b, "L", "b", 10_000, &["WAIT", "5000"]).await;
        (t, std::time::Instant::now())
    });
    until_waiters(&server, "L", 1).await;
    let released_at = std::time::Instant::now();
    assert_eq!(release(&mut a, "L", "a").await, 1);
    let (t, granted_at) = waiter.await.unwrap();
    assert!(t.is_some());
    assert!(granted_at.duration_since(released_at) < Duration::from_millis(500));
    let ok: i64 = redis::cmd("LOCK.VALIDATE")
        .arg("L")
        .arg(t.unwrap())
        .query_async(&mut a)
        .await
        .unwrap();
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn waiters_are_granted_in_arrival_order() {
    let server = start().await;
    let mut holder = connect(&server).await;
    acquire(&mut holder, "L", "h", 10_000, &[]).await.unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mut con = connect(&server).await;
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("w{i}");
            acquire(&mut con, "L", &owner, 10_000, &["WAIT", "0"])
                .await
                .unwrap();
            order.lock().push(i);
            release(&mut con, "L", &owner).await;
        }));
        until_waiters(&server, "L", i + 1).await;
    }
    release(&mut holder, "L", "h").await;
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn wait_runs_out_on_the_server_clock_and_returns_nil() {
    let server = start().await;
    server.pause_time();
    let mut a = connect(&server).await;
    let b = connect(&server).await;
    acquire(&mut a, "L", "a", 100_000, &[]).await.unwrap();
    let waiter = spawn_waiter(&server, b, "L", "b", 1000, "2000").await;
    server.advance_time(Duration::from_millis(2000));
    assert_eq!(waiter.await.unwrap(), None);
    until_waiters(&server, "L", 0).await;
}

#[tokio::test]
async fn lease_expiry_hands_the_lock_to_the_next_waiter() {
    let server = start().await;
    server.pause_time();
    let mut a = connect(&server).await;
    let b = connect(&server).await;
    acquire(&mut a, "L", "a", 1000, &[]).await.unwrap();
    let waiter = spawn_waiter(&server, b, "L", "b", 1000, "0").await;
    server.advance_time(Duration::from_millis(1000));
    assert!(waiter.await.unwrap().is_some());
    assert_eq!(release(&mut a, "L", "a").await, 0, "a lost its lease");
}

#[tokio::test]
async fn session_lock_is_released_when_the_holder_disconnects() {
    let server = start().await;
    let waiter_con = connect(&server).await;
    {
        let mut a = connect(&server).await;
        acquire(&mut a, "L", "a", 100_000, &["SESSION"])
            .await
            .unwrap();
        let waiter = spawn_waiter(&server, waiter_con, "L", "b", 1000, "5000").await;
        drop(a);
        assert!(
            waiter.await.unwrap().is_some(),
            "granted when the holder's connection closed"
        );
    }
}

#[tokio::test]
async fn lock_without_session_survives_disconnect() {
    let server = start().await;
    {
        let mut a = connect(&server).await;
        acquire(&mut a, "L", "a", 100_000, &[]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut b = connect(&server).await;
    assert_eq!(acquire(&mut b, "L", "b", 1000, &[]).await, None);
}

#[tokio::test]
async fn waiter_that_disconnects_leaves_the_queue() {
    let server = start().await;
    let mut a = connect(&server).await;
    acquire(&mut a, "L", "a", 100_000, &[]).await.unwrap();
    let s = queue_raw(&server, "L", b"LOCK.ACQUIRE L gone 1000 WAIT 0\r\n").await;
    drop(s);
    until_waiters(&server, "L", 0).await;
    assert_eq!(release(&mut a, "L", "a").await, 1);
    assert_eq!(server.dbsize(0), 0, "nobody was granted the lock");
}

#[tokio::test]
async fn shared_holders_coexist_and_exclude_a_writer() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert!(acquire(&mut con, "L", "r1", 10_000, &["SHARED"])
        .await
        .is_some());
    assert!(acquire(&mut con, "L", "r2", 10_000, &["SHARED"])
        .await
        .is_some());
    assert_eq!(acquire(&mut con, "L", "w", 10_000, &[]).await, None);
    release(&mut con, "L", "r1").await;
    release(&mut con, "L", "r2").await;
    assert!(acquire(&mut con, "L", "w", 10_000, &[]).await.is_some());
    assert_eq!(
        acquire(&mut con, "L", "r3", 10_000, &["SHARED"]).await,
        None
    );
}

#[tokio::test]
async fn queued_writer_blocks_later_readers() {
    let server = start().await;
    let mut r1 = connect(&server).await;
    let w = connect(&server).await;
    acquire(&mut r1, "L", "r1", 10_000, &["SHARED"])
        .await
        .unwrap();
    let writer = spawn_waiter(&server, w, "L", "w", 10_000, "5000").await;
    let mut r2 = connect(&server).await;
    assert_eq!(
        acquire(&mut r2, "L", "r2", 10_000, &["SHARED"]).await,
        None,
        "no reader jumps the queued writer"
    );
    release(&mut r1, "L", "r1").await;
    assert!(writer.await.unwrap().is_some());
}

#[tokio::test]
async fn semaphore_admits_up_to_limit_holders() {
    let server = start().await;
    let mut con = connect(&server).await;
    for i in 0..3 {
        assert!(
            acquire(&mut con, "S", &format!("o{i}"), 10_000, &["LIMIT", "3"])
                .await
                .is_some()
        );
    }
    assert_eq!(
        acquire(&mut con, "S", "o4", 10_000, &["LIMIT", "3"]).await,
        None
    );
    let e = err_text(&mut con, &["LOCK.ACQUIRE", "S", "o5", "1000", "LIMIT", "4"]).await;
    assert!(e.contains("LIMIT"), "{e}");
    release(&mut con, "S", "o0").await;
    assert!(acquire(&mut con, "S", "o4", 10_000, &["LIMIT", "3"])
        .await
        .is_some());
}

#[tokio::test]
async fn argument_errors_match_redis_style() {
    let server = start().await;
    let mut con = connect(&server).await;
    for (words, want) in [
        (
            &["LOCK.ACQUIRE", "L", "a", "x"][..],
            "value is not an integer or out of range",
        ),
        (
            &["LOCK.ACQUIRE", "L", "a", "-5"][..],
            "value is not an integer or out of range",
        ),
        (
            &["LOCK.ACQUIRE", "L", "a", "0"][..],
            "invalid expire time in 'lock.acquire' command",
        ),
        (&["LOCK.ACQUIRE", "L", "a", "10", "FOO"][..], "syntax error"),
        (
            &["LOCK.ACQUIRE", "L", "a", "10", "WAIT"][..],
            "syntax error",
        ),
        (
            &["LOCK.ACQUIRE", "L", "a", "10", "SHARED", "LIMIT", "2"][..],
            "not compatible",
        ),
        (
            &["LOCK.ACQUIRE", "L", "a"][..],
            "wrong number of arguments for 'lock.acquire' command",
        ),
    ] {
        let e = err_text(&mut con, words).await;
        assert!(e.contains(want), "{words:?}: {e}");
    }
}

#[tokio::test]
async fn lock_is_a_key_of_type_lock() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    acquire(&mut con, "L", "a", 5000, &[]).await.unwrap();
    acquire(&mut con, "S", "a", 5000, &["LIMIT", "2"])
        .await
        .unwrap();
    acquire(&mut con, "S", "b", 9000, &["LIMIT", "2"])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["TYPE", "L"]).await.unwrap(),
        Value::SimpleString("lock".into())
    );
    assert!(err_text(&mut con, &["GET", "L"])
        .await
        .contains("WRONGTYPE"));
    assert_eq!(
        cmd(&mut con, &["SET", "L", "x", "NX"]).await.unwrap(),
        Value::Nil
    );
    assert_eq!(
        cmd(&mut con, &["PTTL", "S"]).await.unwrap(),
        Value::Int(9000),
        "longest lease"
    );
}

#[tokio::test]
async fn lock_commands_on_a_string_key_are_wrongtype() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.set("str", "v").await.unwrap();
    assert!(err_text(&mut con, &["LOCK.ACQUIRE", "str", "a", "10"])
        .await
        .contains("WRONGTYPE"));
    assert!(err_text(&mut con, &["LOCK.RELEASE", "str", "a"])
        .await
        .contains("WRONGTYPE"));
}

#[tokio::test]
async fn del_frees_the_lock_for_the_next_waiter() {
    let server = start().await;
    let mut a = connect(&server).await;
    let b = connect(&server).await;
    acquire(&mut a, "L", "a", 100_000, &[]).await.unwrap();
    let waiter = spawn_waiter(&server, b, "L", "b", 10_000, "5000").await;
    assert_eq!(cmd(&mut a, &["DEL", "L"]).await.unwrap(), Value::Int(1));
    assert!(waiter.await.unwrap().is_some());
    assert_eq!(release(&mut a, "L", "a").await, 0);
}

#[tokio::test]
async fn flushdb_frees_locks_for_their_waiters() {
    let server = start().await;
    let mut a = connect(&server).await;
    let b = connect(&server).await;
    acquire(&mut a, "L", "a", 100_000, &[]).await.unwrap();
    let waiter = spawn_waiter(&server, b, "L", "b", 10_000, "5000").await;
    cmd(&mut a, &["FLUSHDB"]).await.unwrap();
    assert!(waiter.await.unwrap().is_some());
}

#[tokio::test]
async fn commands_pipelined_behind_a_blocked_acquire_run_after_it() {
    let server = start().await;
    let mut a = connect(&server).await;
    acquire(&mut a, "L", "a", 100_000, &[]).await.unwrap();
    let mut s = queue_raw(
        &server,
        "L",
        b"LOCK.ACQUIRE L b 1000 WAIT 0\r\nSET after 1\r\n",
    )
    .await;
    assert_eq!(
        server.get("after"),
        None,
        "SET waits behind the blocked acquire"
    );
    release(&mut a, "L", "a").await;
    let got = common::read_until(&mut s, 30).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with(':') && text.ends_with("\r\n+OK\r\n"),
        "{text}"
    );
    assert_eq!(server.get("after").as_deref(), Some(&b"1"[..]));
}

#[tokio::test]
async fn wait_inside_exec_tries_once_without_blocking() {
    let server = start().await;
    let mut a = connect(&server).await;
    acquire(&mut a, "L", "a", 100_000, &[]).await.unwrap();
    let got = common::raw(
        &server,
        b"MULTI\r\nLOCK.ACQUIRE L b 1000 WAIT 0\r\nEXEC\r\n",
        25,
    )
    .await;
    assert_eq!(got, b"+OK\r\n+QUEUED\r\n*1\r\n$-1\r\n");
}

/// The classic test of a lock: a non-atomic read-modify-write inside it never loses
/// an update.
async fn contend(server: &latchkey::ServerHandle, clients: usize, rounds: usize, keys: usize) {
    let acquisitions = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut con = connect(server).await;
        let acquisitions = acquisitions.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..rounds {
                let n = (c + r) % keys;
                let (lock, counter, owner) =
                    (format!("lock:{n}"), format!("counter:{n}"), format!("c{c}"));
                acquire(&mut con, &lock, &owner, 10_000, &["WAIT", "0"])
                    .await
                    .unwrap();
                let v: Option<i64> = con.get(&counter).await.unwrap();
                let _: () = con.set(&counter, v.unwrap_or(0) + 1).await.unwrap();
                acquisitions.fetch_add(1, Ordering::SeqCst);
                assert_eq!(release(&mut con, &lock, &owner).await, 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total: i64 = (0..keys)
        .map(|n| {
            server
                .get(format!("counter:{n}"))
                .map_or(0, |v| String::from_utf8_lossy(&v).parse::<i64>().unwrap())
        })
        .sum();
    assert_eq!(total as usize, acquisitions.load(Ordering::SeqCst));
    assert_eq!(total as usize, clients * rounds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_on_one_key_lose_no_update() {
    let server = start().await;
    contend(&server, 50, 20, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_on_sixteen_keys_lose_no_update() {
    let server = start().await;
    contend(&server, 50, 32, 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_and_writers_never_overlap() {
    let server = start().await;
    let state = Arc::new(parking_lot::Mutex::new((0usize, 0usize))); // (readers, writers)
    let mut tasks = Vec::new();
    for c in 0..20 {
        let mut con = connect(&server).await;
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let writer = c % 4 == 0;
            let owner = format!("c{c}");
            for _ in 0..15 {
                let opts: &[&str] = if writer {
                    &["WAIT", "0"]
                } else {
                    &["WAIT", "0", "SHARED"]
                };
                acquire(&mut con, "RW", &owner, 10_000, opts).await.unwrap();
                {
                    let mut s = state.lock();
                    if writer {
                        s.1 += 1
                    } else {
                        s.0 += 1
                    }
                    assert!(
                        s.1 <= 1 && (s.1 == 0 || s.0 == 0),
                        "readers {} writers {}",
                        s.0,
                        s.1
                    );
                }
                tokio::task::yield_now().await;
                {
                    let mut s = state.lock();
                    if writer {
                        s.1 -= 1
                    } else {
                        s.0 -= 1
                    }
                }
                assert_eq!(release(&mut con, "RW", &owner).await, 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_never_has_more_than_limit_holders() {
    let server = start().await;
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..20 {
        let mut con = connect(&server).await;
        let (inside, peak) = (inside.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let owner = format!("c{c}");
            for _ in 0..10 {
                acquire(
                    &mut con,
                    "SEM",
                    &owner,
                    10_000,
                    &["WAIT", "0", "LIMIT", "3"],
                )
                .await
                .unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                assert!(now <= 3, "{now} holders");
                tokio::time::sleep(Duration::from_millis(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                assert_eq!(release(&mut con, "SEM", &owner).await, 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "the semaphore was actually shared"
    );
}

#[tokio::test]
async fn fencing_tokens_keep_increasing_across_a_restart() {
    let first = start().await;
    let mut con = connect(&first).await;
    let mut last = 0;
    for i in 0..100 {
        last = acquire(&mut con, &format!("k{i}"), "a", 10_000, &[])
            .await
            .unwrap();
    }
    first.shutdown().await;
    // A restart takes far more than the millisecond the token floor needs.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let second = start().await;
    let mut con = connect(&second).await;
    let t = acquire(&mut con, "k0", "b", 10_000, &[]).await.unwrap();
    assert!(t > last, "{t} after restart, {last} before");
}

/// Regression: commands pipelined behind a long wait used the time the batch
/// arrived, so a TTL set right after the grant was already partly spent.
#[tokio::test]
async fn commands_after_a_wait_see_the_time_after_it() {
    let server = start().await;
    let mut a = connect(&server).await;
    acquire(&mut a, "L", "a", 100_000, &[]).await.unwrap();
    let mut s = queue_raw(
        &server,
        "L",
        b"LOCK.ACQUIRE L b 1000 WAIT 0\r\nSET k v PX 200\r\nPTTL k\r\n",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    release(&mut a, "L", "a").await;
    let got = String::from_utf8(common::read_until(&mut s, 32).await).unwrap();
    let pttl: i64 = got.rsplit(':').next().unwrap().trim().parse().unwrap();
    assert!((150..=200).contains(&pttl), "PTTL {pttl} in {got:?}");
}

#[tokio::test]
async fn rename_refuses_a_lock_as_move_does() {
    let server = start().await;
    let mut con = connect(&server).await;
    acquire(&mut con, "L", "a", 100_000, &[]).await.unwrap();
    for words in [&["RENAME", "L", "M"][..], &["RENAMENX", "L", "M"]] {
        assert_eq!(
            err_text(&mut con, words).await,
            "An error was signalled by the server - ResponseError: not supported for this module key"
        );
    }
    // Nothing moved: the lock still holds at its key, under its lease.
    assert_eq!(server.lock_info("L").unwrap().holders.len(), 1);
    let exists: i64 = con.exists("M").await.unwrap();
    assert_eq!(exists, 0);
    // A missing key is still Redis's error first.
    assert!(err_text(&mut con, &["RENAME", "nosuch", "M"])
        .await
        .contains("no such key"));
}

#[tokio::test]
async fn a_lock_overwritten_by_another_value_sends_its_waiters_away() {
    let server = start().await;
    let mut con = connect(&server).await;
    acquire(&mut con, "D", "x", 100_000, &[]).await.unwrap();
    // Waits without a deadline: only the overwrite can end it.
    let forever = spawn_waiter(&server, connect(&server).await, "D", "y", 5_000, "0").await;
    let _: () = con.set("D", "foo").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), forever)
        .await
        .expect("the waiter is not left waiting")
        .unwrap();
    assert_eq!(got, None, "the reply of a wait that gave up");
    let value: String = con.get("D").await.unwrap();
    assert_eq!(value, "foo");
    // The same through a STORE onto the lock's key.
    acquire(&mut con, "E", "x", 100_000, &[]).await.unwrap();
    let waiter = spawn_waiter(&server, connect(&server).await, "E", "y", 5_000, "0").await;
    let _: i64 = con.sadd("s", "m").await.unwrap();
    let _: i64 = cmd(&mut con, &["SUNIONSTORE", "E", "s"])
        .await
        .map(|v| redis::from_redis_value(&v).unwrap())
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("the waiter is not left waiting")
        .unwrap();
    assert_eq!(got, None);
}

#[tokio::test]
async fn a_connection_timeout_counts_from_the_end_of_a_blocking_wait() {
    use tokio::io::AsyncWriteExt;
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["CONFIG", "SET", "timeout", "1"])
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"BLPOP nosuchq 1.5\r\n").await.unwrap();
    common::expect_reply(&mut s, "*-1\r\n").await;
    // Waiting longer than `timeout` is not idleness: Redis answers here.
    s.write_all(b"PING\r\n").await.unwrap();
    common::expect_reply(&mut s, "+PONG\r\n").await;
    // A lock wait too.
    acquire(&mut con, "TL", "h", 1_200, &[]).await.unwrap();
    s.write_all(b"LOCK.ACQUIRE TL me 10000 WAIT 5000\r\n")
        .await
        .unwrap();
    let token = common::read_until(&mut s, 1).await;
    assert_eq!(token[0], b':', "{}", String::from_utf8_lossy(&token));
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"PING\r\n").await.unwrap();
    let rest = common::read_until(&mut s, 7).await;
    assert!(String::from_utf8_lossy(&rest).ends_with("+PONG\r\n"));
    assert_eq!(
        server.lock_info("TL").unwrap().holders[0].owner.as_slice(),
        b"me"
    );
}

#[tokio::test]
async fn session_holds_are_released_on_disconnect_after_many_acquires_and_releases() {
    let server = start().await;
    let mut worker = connect(&server).await;
    // Far more than the first sweep (64): released holds are forgotten, and the
    // holds still live survive every sweep.
    for i in 0..300 {
        let key = format!("job:{i}");
        acquire(&mut worker, &key, "me", 60_000, &["SESSION"])
            .await
            .unwrap();
        if i % 3 != 0 {
            assert_eq!(release(&mut worker, &key, "me").await, 1);
        }
    }
    // A renewal without SESSION takes the hold off the connection's life.
    acquire(&mut worker, "job:0", "me", 60_000, &[])
        .await
        .unwrap();
    drop(worker);
    let mut con = connect(&server).await;
    for _ in 0..200 {
        if server.lock_info("job:3").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in (3..300).step_by(3) {
        assert!(
            server.lock_info(format!("job:{i}")).is_none(),
            "job:{i} released"
        );
    }
    assert!(
        server.lock_info("job:0").is_some(),
        "renewed without SESSION"
    );
    let keys: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(keys, 1);
}
