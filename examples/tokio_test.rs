//! Embedding latchkey in async tests: start a server on a free port in a
//! `#[tokio::test]`, point the code under test at `server.url()`, and inspect the
//! keyspace directly.
//!
//! Run the tests with `cargo test --example tokio_test`, or the demo with
//! `cargo run --example tokio_test`.

use redis::AsyncCommands;

/// The code under test: caches a value for a minute.
async fn remember(
    con: &mut redis::aio::MultiplexedConnection,
    key: &str,
    value: &str,
) -> redis::RedisResult<()> {
    con.set_ex(key, value, 60).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = latchkey::Server::builder().start().await?;
    let mut con = redis::Client::open(server.url())?
        .get_multiplexed_async_connection()
        .await?;
    remember(&mut con, "greeting", "hello").await?;
    println!(
        "stored at {}: {:?}, ttl {:?}",
        server.url(),
        server.get("greeting"),
        server.ttl("greeting")
    );
    server.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn remembered_value_expires_after_a_minute() {
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
        remember(&mut con, "k", "v").await.unwrap();
        assert_eq!(server.get("k").as_deref(), Some(&b"v"[..]));
        server.advance_time(Duration::from_secs(60));
        assert_eq!(server.get("k"), None);
    }
}
