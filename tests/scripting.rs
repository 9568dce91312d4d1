//! EVAL through the `redis` crate: the classic Lua lock, atomicity with concurrent
//! clients, and scripts meeting native locks.

mod common;

use std::time::Duration;

use common::{cmd, connect, err_line, start};
use redis::{Script, Value};

const ACQUIRE: &str = "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])";
const IS_HOLDER: &str = "return redis.call('GET', KEYS[1]) == ARGV[1]";
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

#[tokio::test]
async fn classic_single_instance_lock_in_lua() {
    let server = start().await;
    let mut con = connect(&server).await;
    let acquire = Script::new(ACQUIRE);
    let got: Option<String> = acquire
        .key("lock")
        .arg("me")
        .arg(30)
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("OK"));
    let got: Option<String> = acquire
        .key("lock")
        .arg("you")
        .arg(30)
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, None, "taken");
    let holder: Value = Script::new(IS_HOLDER)
        .key("lock")
        .arg("me")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(holder, Value::Int(1), "Lua true is 1");
    let not: Value = Script::new(IS_HOLDER)
        .key("lock")
        .arg("you")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(not, Value::Nil, "Lua false is nil");
    let release = Script::new(RELEASE);
    let n: i64 = release
        .key("lock")
        .arg("you")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 0, "only the holder releases");
    let n: i64 = release
        .key("lock")
        .arg("me")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(server.get("lock"), None);
}

#[tokio::test]
async fn evalsha_works_after_eval_and_fails_after_flush() {
    let server = start().await;
    let mut con = connect(&server).await;
    let script = Script::new("return ARGV[1]");
    let v: String = script.arg("x").invoke_async(&mut con).await.unwrap();
    assert_eq!(v, "x");
    let v: String = redis::cmd("EVALSHA")
        .arg(script.get_hash())
        .arg(0)
        .arg("y")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, "y");
    cmd(&mut con, &["SCRIPT", "FLUSH"]).await.unwrap();
    assert_eq!(
        err_line(&mut con, &["EVALSHA", script.get_hash(), "0"]).await,
        "NOSCRIPT No matching script. Please use EVAL."
    );
}

/// A read-modify-write in a script is atomic even with two worker threads and
/// many clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_atomic_under_concurrency() {
    let server = start().await;
    let rmw = Script::new(
        "local v = tonumber(redis.call('GET', KEYS[1]) or '0') redis.call('SET', KEYS[1], v + 1) return v + 1",
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut con = connect(&server).await;
        let rmw = rmw.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                let _: i64 = rmw.key("n").invoke_async(&mut con).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.get("n").as_deref(), Some(&b"2000"[..]));
}

#[tokio::test]
async fn lock_acquire_with_wait_is_refused_in_scripts() {
    let server = start().await;
    let mut con = connect(&server).await;
    let e = err_line(
        &mut con,
        &[
            "EVAL",
            "return redis.call('LOCK.ACQUIRE', 'L', 'me', 1000, 'WAIT', 10)",
            "0",
        ],
    )
    .await;
    assert!(
        e.starts_with("ERR LOCK.ACQUIRE with WAIT is not allowed from scripts script: "),
        "{e}"
    );
    let t = cmd(
        &mut con,
        &[
            "EVAL",
            "return redis.call('LOCK.ACQUIRE', 'L', 'me', 1000)",
            "0",
        ],
    )
    .await
    .unwrap();
    assert!(matches!(t, Value::Int(n) if n > 0));
}

/// A script that frees a lock hands it to the waiter only when the script ends.
#[tokio::test]
async fn lock_freed_by_a_script_is_granted_after_the_script() {
    let server = start().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    cmd(&mut a, &["LOCK.ACQUIRE", "L", "a", "100000"])
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        redis::cmd("LOCK.ACQUIRE")
            .arg("L")
            .arg("b")
            .arg(10_000)
            .arg("WAIT")
            .arg(5000)
            .query_async::<Option<i64>>(&mut b)
            .await
            .unwrap()
    });
    while server.lock_info("L").map_or(0, |i| i.waiters) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Release, then keep running: the waiter holds the lock only after this.
    let script = "redis.call('LOCK.RELEASE', 'L', 'a') local t = redis.call('LOCK.INFO', 'L') \
                  redis.call('SET', 'after', 'x') return t[6][1][2]";
    let holder = cmd(&mut a, &["EVAL", script, "0"]).await.unwrap();
    assert_eq!(
        holder,
        Value::BulkString(b"b".to_vec()),
        "granted inside the script's critical section"
    );
    assert!(waiter.await.unwrap().is_some());
    assert_eq!(server.get("after").as_deref(), Some(&b"x"[..]));
}
