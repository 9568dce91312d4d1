//! The Rust `redis` crate as applications use it: a blocking connection, an async
//! one, and a `ConnectionManager` that reconnects by itself after the server
//! restarts on the same port.

use std::time::{Duration, Instant};

use latchkey::Server;
use redis::{AsyncCommands, Commands};

#[test]
fn blocking_connection_runs_commands_pipelines_and_the_native_lock() {
    let server = Server::builder().start_blocking().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = con.set_ex("k", "v", 100).unwrap();
    let v: String = con.get("k").unwrap();
    assert_eq!(v, "v");
    let ttl: i64 = con.ttl("k").unwrap();
    assert!((99..=100).contains(&ttl));
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("n", 1)
        .incr("n", 41)
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b), (1, 42));
    let token: Option<i64> = redis::cmd("LOCK.ACQUIRE")
        .arg("job")
        .arg("me")
        .arg(5000)
        .query(&mut con)
        .unwrap();
    assert!(token.is_some_and(|t| t > 0));
    let err = redis::cmd("INCR")
        .arg("k")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert_eq!(
        err.detail(),
        Some("value is not an integer or out of range")
    );
}

#[tokio::test]
async fn connection_manager_reconnects_after_a_restart() {
    let first = Server::builder().start().await.unwrap();
    let port = first.addr().port();
    let client = redis::Client::open(first.url()).unwrap();
    let mut manager = redis::aio::ConnectionManager::new(client).await.unwrap();
    let _: () = manager.set("before", "1").await.unwrap();
    first.shutdown().await;

    // A new server on the same port: the manager finds it without being rebuilt.
    let second = Server::builder().port(port).start().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match manager.set::<_, _, ()>("after", "2").await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                assert!(
                    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal(),
                    "{e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no reconnect: {e}"),
        }
    }
    let after: String = manager.get("after").await.unwrap();
    assert_eq!(after, "2");
    // Data lives in memory: the restarted server starts empty.
    let before: Option<String> = manager.get("before").await.unwrap();
    assert_eq!(before, None);
    assert_eq!(second.get("after").as_deref(), Some(&b"2"[..]));
}
