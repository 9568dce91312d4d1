//! Using latchkey with the `redis` crate the way an application would: a classic
//! `SET NX PX` lock, released with a compare, and a TTL that runs out when the
//! test moves the server clock, with no sleeping.
//!
//! `cargo test --example redis_rs`, or `cargo run --example redis_rs`.

use std::time::Duration;

use redis::AsyncCommands;

/// Tries to take `key` for `ttl_ms`; true if taken.
async fn try_lock(
    con: &mut redis::aio::MultiplexedConnection,
    key: &str,
    token: &str,
    ttl_ms: u64,
) -> bool {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms)
        .query_async(con)
        .await
        .unwrap_or(None);
    set.is_some()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = latchkey::Server::builder().paused_time().start().await?;
    let mut a = redis::Client::open(server.url())?
        .get_multiplexed_async_connection()
        .await?;
    println!(
        "a takes the lock: {}",
        try_lock(&mut a, "lock:job", "a", 30_000).await
    );
    println!(
        "b takes the lock: {}",
        try_lock(&mut a, "lock:job", "b", 30_000).await
    );
    server.advance_time(Duration::from_secs(30));
    println!(
        "after 30 s, b takes it: {}",
        try_lock(&mut a, "lock:job", "b", 30_000).await
    );
    let holder: String = a.get("lock:job").await?;
    println!("holder: {holder}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lock_is_free_again_once_its_ttl_passes() {
        let server = latchkey::Server::builder()
            .paused_time()
            .start()
            .await
            .unwrap();
        let mut con = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        assert!(try_lock(&mut con, "lock", "a", 1000).await);
        assert!(!try_lock(&mut con, "lock", "b", 1000).await);
        server.advance_time(Duration::from_millis(999));
        assert!(!try_lock(&mut con, "lock", "b", 1000).await);
        server.advance_time(Duration::from_millis(1));
        assert!(try_lock(&mut con, "lock", "b", 1000).await);
        assert_eq!(server.get("lock").as_deref(), Some(&b"b"[..]));
    }
}
