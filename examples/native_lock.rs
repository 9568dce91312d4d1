//! latchkey's native lock from Rust through the `redis` crate's generic command
//! call: a second worker waits in the server's queue (no polling) and is handed
//! the lock with a newer fencing token when the first releases; the old token is
//! then refused by `LOCK.VALIDATE`, as a guarded resource would refuse it.
//!
//! `cargo run --example native_lock` (an in-process server), or point `REDIS_URL`
//! at a running latchkey. `cargo test --example native_lock` checks it.

use std::time::Duration;

type Con = redis::aio::MultiplexedConnection;

/// `LOCK.ACQUIRE key owner ttl-ms [WAIT wait-ms]`: a fencing token once held, or
/// `None` if not granted in time.
async fn acquire(
    con: &mut Con,
    key: &str,
    owner: &str,
    ttl_ms: u64,
    wait_ms: Option<u64>,
) -> redis::RedisResult<Option<i64>> {
    let mut cmd = redis::cmd("LOCK.ACQUIRE");
    cmd.arg(key).arg(owner).arg(ttl_ms);
    if let Some(wait) = wait_ms {
        cmd.arg("WAIT").arg(wait);
    }
    cmd.query_async(con).await
}

/// `LOCK.RELEASE key owner`: true if `owner` held it and no longer does.
async fn release(con: &mut Con, key: &str, owner: &str) -> redis::RedisResult<bool> {
    let n: i64 = redis::cmd("LOCK.RELEASE")
        .arg(key)
        .arg(owner)
        .query_async(con)
        .await?;
    Ok(n == 1)
}

async fn valid(con: &mut Con, key: &str, token: i64) -> redis::RedisResult<bool> {
    let n: i64 = redis::cmd("LOCK.VALIDATE")
        .arg(key)
        .arg(token)
        .query_async(con)
        .await?;
    Ok(n == 1)
}

/// Two workers and one job; returns the two fencing tokens.
async fn demo(url: &str) -> Result<(i64, i64), Box<dyn std::error::Error>> {
    let client = redis::Client::open(url)?;
    let mut first = client.get_multiplexed_async_connection().await?;
    let mut second = client.get_multiplexed_async_connection().await?;
    let t1 = acquire(&mut first, "job", "worker-1", 10_000, None)
        .await?
        .ok_or("not granted")?;
    println!("worker-1 holds the job with token {t1}");
    let waiting = tokio::spawn(async move {
        // Blocks in the server's FIFO queue until worker-1 lets go (or 5 s pass).
        acquire(&mut second, "job", "worker-2", 10_000, Some(5_000)).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    release(&mut first, "job", "worker-1").await?;
    let t2 = waiting.await??.ok_or("worker-2 was not granted")?;
    println!("worker-2 was handed the job with token {t2}");
    println!(
        "token {t1} still valid: {}, token {t2} valid: {}",
        valid(&mut first, "job", t1).await?,
        valid(&mut first, "job", t2).await?
    );
    release(&mut first, "job", "worker-2").await?;
    Ok((t1, t2))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            demo(&url).await?;
        }
        Err(_) => {
            let server = latchkey::Server::builder().start().await?;
            demo(&server.url()).await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_waiter_gets_a_newer_token_and_the_old_one_is_refused() {
    let server = latchkey::Server::builder().start().await.unwrap();
    let (t1, t2) = demo(&server.url()).await.unwrap();
    assert!(t2 > t1);
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert!(!valid(&mut con, "job", t1).await.unwrap());
}
