//! lock-delay: after a hold ends other than by its owner's release (lease
//! expiry, a SESSION holder's disconnect), its key is granted to nobody for the
//! delay the hold was acquired with (`LOCKDELAY`, or the server's `lock-delay`).
//! Every timing here is on the server's paused clock.

mod common;

use std::time::Duration;

use common::{cmd, connect, connect_resp3, err_line};
use latchkey::{Server, ServerHandle};
use redis::aio::MultiplexedConnection;
use redis::Value;

async fn start_with_delay(ms: &str) -> ServerHandle {
    let server = Server::builder()
        .option("lock-delay", ms)
        .unwrap()
        .paused_time()
        .start()
        .await
        .unwrap();
    server
}

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

fn waiters(server: &ServerHandle, key: &str) -> usize {
    server.lock_info(key).map_or(0, |i| i.waiters)
}

/// Starts `LOCK.ACQUIRE key owner ttl WAIT 0` on a new connection and returns
/// once it is queued.
async fn spawn_waiter(
    server: &ServerHandle,
    key: &'static str,
    owner: &'static str,
) -> tokio::task::JoinHandle<Option<i64>> {
    let before = waiters(server, key);
    let mut con = connect(server).await;
    let task =
        tokio::spawn(async move { acquire(&mut con, key, owner, 10_000, &["WAIT", "0"]).await });
    for _ in 0..1000 {
        if waiters(server, key) > before {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{owner} never queued on {key}");
}

/// The holder of `key` as the server has it now, if any.
fn holder(server: &ServerHandle, key: &str) -> Option<Vec<u8>> {
    let info = server.lock_info(key)?;
    info.holders.first().map(|h| h.owner.as_slice().to_vec())
}

fn advance(server: &ServerHandle, ms: u64) {
    server.advance_time(Duration::from_millis(ms));
}

#[tokio::test]
async fn lease_expiry_grants_the_waiter_only_when_the_delay_ends() {
    let server = start_with_delay("500").await;
    let mut a = connect(&server).await;
    let token = acquire(&mut a, "L", "a", 1000, &[]).await.unwrap();
    let waiter = spawn_waiter(&server, "L", "b").await;
    advance(&server, 1000);
    let info = server.lock_info("L").expect("the key stays in its delay");
    assert!(info.holders.is_empty(), "a's lease ran out");
    assert_eq!(info.waiters, 1, "b still waits");
    assert!(info.delay_until.is_some());
    advance(&server, 499);
    assert_eq!(
        holder(&server, "L"),
        None,
        "not granted 1 ms before the end"
    );
    assert_eq!(waiters(&server, "L"), 1);
    advance(&server, 1);
    let granted = waiter.await.unwrap().expect("granted when the delay ends");
    assert!(granted > token);
    assert_eq!(holder(&server, "L").as_deref(), Some(&b"b"[..]));
}

#[tokio::test]
async fn a_session_holders_disconnect_starts_its_lockdelay() {
    let server = Server::builder().paused_time().start().await.unwrap();
    let mut a = connect(&server).await;
    acquire(&mut a, "L", "a", 100_000, &["SESSION", "LOCKDELAY", "300"])
        .await
        .unwrap();
    let waiter = spawn_waiter(&server, "L", "b").await;
    drop(a);
    for _ in 0..1000 {
        if server.lock_info("L").is_some_and(|i| i.holders.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let info = server.lock_info("L").unwrap();
    assert!(info.holders.is_empty(), "released on disconnect");
    assert_eq!(info.waiters, 1, "but not granted during the delay");
    advance(&server, 299);
    assert_eq!(waiters(&server, "L"), 1);
    advance(&server, 1);
    assert!(waiter.await.unwrap().is_some());
}

#[tokio::test]
async fn a_release_by_the_owner_starts_no_delay() {
    let server = start_with_delay("10000").await;
    let mut a = connect(&server).await;
    acquire(&mut a, "L", "a", 1000, &["LOCKDELAY", "5000"])
        .await
        .unwrap();
    let waiter = spawn_waiter(&server, "L", "b").await;
    let released: i64 = redis::cmd("LOCK.RELEASE")
        .arg("L")
        .arg("a")
        .query_async(&mut a)
        .await
        .unwrap();
    assert_eq!(released, 1);
    assert!(waiter.await.unwrap().is_some(), "granted at once");
    let info = server.lock_info("L").unwrap();
    assert_eq!(info.delay_until, None);
    // And with nobody waiting the key goes at once.
    let mut c = connect(&server).await;
    acquire(&mut c, "M", "c", 1000, &[]).await.unwrap();
    let _: i64 = redis::cmd("LOCK.RELEASE")
        .arg("M")
        .arg("c")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(server.lock_info("M").is_none());
}

#[tokio::test]
async fn the_per_acquire_lockdelay_beats_the_server_option() {
    let server = start_with_delay("10000").await;
    let mut con = connect(&server).await;
    acquire(&mut con, "none", "a", 100, &["LOCKDELAY", "0"])
        .await
        .unwrap();
    acquire(&mut con, "short", "a", 100, &["LOCKDELAY", "200"])
        .await
        .unwrap();
    acquire(&mut con, "option", "a", 100, &[]).await.unwrap();
    advance(&server, 100);
    assert!(server.lock_info("none").is_none(), "no delay: the key went");
    assert!(acquire(&mut con, "none", "b", 1000, &[]).await.is_some());
    advance(&server, 199);
    assert_eq!(acquire(&mut con, "short", "b", 1000, &[]).await, None);
    advance(&server, 1);
    assert!(acquire(&mut con, "short", "b", 1000, &[]).await.is_some());
    advance(&server, 9_799);
    assert_eq!(acquire(&mut con, "option", "b", 1000, &[]).await, None);
    advance(&server, 1);
    assert!(acquire(&mut con, "option", "b", 1000, &[]).await.is_some());
}

#[tokio::test]
async fn config_set_lock_delay_applies_to_holds_acquired_after_it() {
    let server = Server::builder().paused_time().start().await.unwrap();
    let mut con = connect(&server).await;
    acquire(&mut con, "before", "a", 100, &[]).await.unwrap();
    cmd(&mut con, &["CONFIG", "SET", "lock-delay", "250"])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["CONFIG", "GET", "lock-delay"])
            .await
            .unwrap(),
        Value::Array(vec![
            Value::BulkString(b"lock-delay".to_vec()),
            Value::BulkString(b"250".to_vec())
        ])
    );
    acquire(&mut con, "after", "a", 100, &[]).await.unwrap();
    advance(&server, 100);
    assert!(
        acquire(&mut con, "before", "b", 1000, &[]).await.is_some(),
        "acquired with the delay of its time: none"
    );
    assert_eq!(acquire(&mut con, "after", "b", 1000, &[]).await, None);
    advance(&server, 250);
    assert!(acquire(&mut con, "after", "b", 1000, &[]).await.is_some());
}

#[tokio::test]
async fn a_new_acquirer_during_the_delay_is_refused_or_queued_behind_the_waiters() {
    let server = start_with_delay("400").await;
    let mut a = connect(&server).await;
    acquire(&mut a, "L", "a", 100, &[]).await.unwrap();
    let first = spawn_waiter(&server, "L", "b").await;
    advance(&server, 100);
    assert_eq!(acquire(&mut a, "L", "c", 1000, &[]).await, None, "no WAIT");
    let second = spawn_waiter(&server, "L", "d").await;
    assert_eq!(waiters(&server, "L"), 2);
    advance(&server, 400);
    assert!(first.await.unwrap().is_some(), "FIFO: b first");
    assert_eq!(holder(&server, "L").as_deref(), Some(&b"b"[..]));
    assert_eq!(waiters(&server, "L"), 1, "d waits for b");
    let _: i64 = redis::cmd("LOCK.RELEASE")
        .arg("L")
        .arg("b")
        .query_async(&mut a)
        .await
        .unwrap();
    assert!(second.await.unwrap().is_some());
}

#[tokio::test]
async fn lock_info_shows_the_delay_and_the_idle_key_goes_when_it_ends() {
    let server = start_with_delay("300").await;
    let mut con = connect(&server).await;
    acquire(&mut con, "L", "a", 100, &[]).await.unwrap();
    advance(&server, 150);
    let info = cmd(&mut con, &["LOCK.INFO", "L"]).await.unwrap();
    let Value::Array(items) = info else {
        panic!("{info:?}")
    };
    assert_eq!(items[5], Value::Array(vec![]), "no holders");
    assert_eq!(items[7], Value::Int(0), "no waiters");
    assert_eq!(items[8], Value::BulkString(b"delay".to_vec()));
    assert_eq!(items[9], Value::Int(250), "ms left: 100 + 300 - 150");
    assert_eq!(
        cmd(&mut con, &["EXISTS", "L"]).await.unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        cmd(&mut con, &["TYPE", "L"]).await.unwrap(),
        Value::SimpleString("lock".into())
    );
    assert_eq!(
        cmd(&mut con, &["PTTL", "L"]).await.unwrap(),
        Value::Int(250)
    );
    advance(&server, 250);
    assert_eq!(
        cmd(&mut con, &["LOCK.INFO", "L"]).await.unwrap(),
        Value::Nil
    );
    assert_eq!(
        cmd(&mut con, &["EXISTS", "L"]).await.unwrap(),
        Value::Int(0)
    );
    assert!(server.lock_info("L").is_none());
    // A lock never delayed reports a delay of 0.
    acquire(&mut con, "M", "a", 100, &[]).await.unwrap();
    let mut resp3 = connect_resp3(&server).await;
    let Value::Map(pairs) = cmd(&mut resp3, &["LOCK.INFO", "M"]).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        pairs.last(),
        Some(&(Value::BulkString(b"delay".to_vec()), Value::Int(0)))
    );
}

#[tokio::test]
async fn del_ends_a_delay_and_deleting_a_held_lock_starts_none() {
    let server = start_with_delay("1000").await;
    let mut con = connect(&server).await;
    acquire(&mut con, "L", "a", 100, &[]).await.unwrap();
    advance(&server, 100);
    assert_eq!(acquire(&mut con, "L", "b", 1000, &[]).await, None);
    assert_eq!(cmd(&mut con, &["DEL", "L"]).await.unwrap(), Value::Int(1));
    assert!(acquire(&mut con, "L", "b", 1000, &[]).await.is_some());
    let waiter = spawn_waiter(&server, "L", "c").await;
    assert_eq!(cmd(&mut con, &["DEL", "L"]).await.unwrap(), Value::Int(1));
    assert!(waiter.await.unwrap().is_some(), "DEL frees at once");
}

#[tokio::test]
async fn a_semaphore_grants_no_slot_during_a_lost_holders_delay() {
    let server = Server::builder().paused_time().start().await.unwrap();
    let mut con = connect(&server).await;
    acquire(&mut con, "S", "a", 100, &["LIMIT", "2", "LOCKDELAY", "200"])
        .await
        .unwrap();
    acquire(&mut con, "S", "b", 10_000, &["LIMIT", "2"])
        .await
        .unwrap();
    advance(&server, 100);
    assert_eq!(server.lock_info("S").unwrap().holders.len(), 1);
    assert_eq!(
        acquire(&mut con, "S", "c", 1000, &["LIMIT", "2"]).await,
        None,
        "a's slot is free but in its delay"
    );
    // The holder that remains renews as ever.
    assert!(acquire(&mut con, "S", "b", 10_000, &["LIMIT", "2"])
        .await
        .is_some());
    advance(&server, 200);
    assert!(acquire(&mut con, "S", "c", 1000, &["LIMIT", "2"])
        .await
        .is_some());
}

#[tokio::test]
async fn multi_exec_and_scripts_see_the_delay() {
    let server = start_with_delay("500").await;
    let mut con = connect(&server).await;
    let script = "return redis.call('LOCK.ACQUIRE', KEYS[1], ARGV[1], 100, 'LOCKDELAY', ARGV[2])";
    let got = cmd(&mut con, &["EVAL", script, "1", "L", "a", "200"])
        .await
        .unwrap();
    assert!(matches!(got, Value::Int(_)));
    advance(&server, 100);
    let got = cmd(&mut con, &["EVAL", script, "1", "L", "b", "0"])
        .await
        .unwrap();
    assert_eq!(got, Value::Nil, "refused in the script: the delay is a's");
    let replies: Value = redis::pipe()
        .atomic()
        .cmd("LOCK.ACQUIRE")
        .arg("L")
        .arg("b")
        .arg(100)
        .arg("WAIT")
        .arg(0)
        .cmd("LOCK.INFO")
        .arg("L")
        .query_async(&mut con)
        .await
        .unwrap();
    let Value::Array(replies) = replies else {
        panic!("{replies:?}")
    };
    assert_eq!(replies[0], Value::Nil, "WAIT inside EXEC tries once");
    let Value::Array(info) = &replies[1] else {
        panic!()
    };
    assert_eq!(info[9], Value::Int(200));
    advance(&server, 200);
    let got = cmd(&mut con, &["EVAL", script, "1", "L", "b", "0"])
        .await
        .unwrap();
    assert!(matches!(got, Value::Int(_)));
}

#[tokio::test]
async fn bad_lock_delays_are_refused_with_redis_errors() {
    let server = Server::builder().paused_time().start().await.unwrap();
    let mut con = connect(&server).await;
    for bad in ["-1", "4294967296", "9223372036854775807", "abc", "1.5"] {
        assert_eq!(
            err_line(
                &mut con,
                &["LOCK.ACQUIRE", "L", "a", "100", "LOCKDELAY", bad]
            )
            .await,
            "ERR value is not an integer or out of range",
            "{bad}"
        );
    }
    assert!(
        err_line(&mut con, &["LOCK.ACQUIRE", "L", "a", "100", "LOCKDELAY"]).await
            == "ERR syntax error"
    );
    assert!(server.lock_info("L").is_none(), "nothing acquired");
    for bad in ["-1", "4294967296", "x"] {
        let e = err_line(&mut con, &["CONFIG", "SET", "lock-delay", bad]).await;
        assert!(
            e.starts_with("ERR CONFIG SET failed (possibly related to argument 'lock-delay')"),
            "{e}"
        );
    }
    // The largest delay is taken, and its end saturates with the lease's.
    acquire(&mut con, "big", "a", 100, &["LOCKDELAY", "4294967295"])
        .await
        .unwrap();
    cmd(&mut con, &["CONFIG", "SET", "lock-delay", "4294967295"])
        .await
        .unwrap();
    advance(&server, 100);
    let Value::Array(info) = cmd(&mut con, &["LOCK.INFO", "big"]).await.unwrap() else {
        panic!()
    };
    assert_eq!(info[9], Value::Int(4_294_967_295));
    assert_eq!(acquire(&mut con, "big", "b", 100, &[]).await, None);
}

#[tokio::test]
async fn the_loss_notice_still_comes_at_the_moment_of_loss() {
    let server = start_with_delay("1000").await;
    let mut a = connect(&server).await;
    let token = acquire(&mut a, "L", "a", 100, &[]).await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("__lock_lost__:a").await.unwrap();
    advance(&server, 100);
    use futures_util::StreamExt;
    let msg = tokio::time::timeout(Duration::from_secs(2), pubsub.on_message().next())
        .await
        .expect("told at once, not at the delay's end")
        .unwrap();
    let payload: String = msg.get_payload().unwrap();
    assert_eq!(payload, format!("lock.expired 0 {token} L"));
}

#[tokio::test]
async fn a_renewal_by_the_holder_sets_the_delay_anew() {
    let server = Server::builder().paused_time().start().await.unwrap();
    let mut con = connect(&server).await;
    acquire(&mut con, "L", "a", 100, &[]).await.unwrap();
    acquire(&mut con, "L", "a", 100, &["LOCKDELAY", "200"])
        .await
        .unwrap();
    acquire(&mut con, "M", "a", 100, &["LOCKDELAY", "200"])
        .await
        .unwrap();
    acquire(&mut con, "M", "a", 100, &[]).await.unwrap();
    advance(&server, 100);
    assert_eq!(acquire(&mut con, "L", "b", 100, &[]).await, None);
    assert!(acquire(&mut con, "M", "b", 100, &[]).await.is_some());
    advance(&server, 200);
    assert!(acquire(&mut con, "L", "b", 100, &[]).await.is_some());
}
