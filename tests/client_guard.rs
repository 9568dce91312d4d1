//! The client-side lock guard (`latchkey::client`, feature `client`).
#![cfg(feature = "client")]

mod common;

use std::time::Duration;

use latchkey::client::{acquire, LockOptions};

fn client(server: &latchkey::ServerHandle) -> redis::Client {
    redis::Client::open(server.url()).unwrap()
}

#[tokio::test]
async fn guard_exposes_a_valid_token_and_releases_explicitly() {
    let server = common::start().await;
    let c = client(&server);
    let mut g = acquire(&c, "L", LockOptions::new(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    assert!(g.token() > 0);
    assert!(g.validate().await.unwrap());
    assert!(acquire(&c, "L", LockOptions::new(Duration::from_secs(1)))
        .await
        .unwrap()
        .is_none());
    assert!(g.release().await.unwrap());
    assert!(acquire(&c, "L", LockOptions::new(Duration::from_secs(1)))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn dropping_the_guard_releases_the_lock() {
    let server = common::start().await;
    let c = client(&server);
    let g = acquire(&c, "L", LockOptions::new(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    drop(g);
    let next = acquire(
        &c,
        "L",
        LockOptions::new(Duration::from_secs(1)).wait(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    assert!(next.is_some(), "the dropped guard's lock passed on");
}

#[tokio::test]
async fn waiting_guard_gets_the_lock_when_the_first_is_released() {
    let server = common::start().await;
    let c = client(&server);
    let first = acquire(&c, "L", LockOptions::new(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    let c2 = c.clone();
    let second = tokio::spawn(async move {
        acquire(
            &c2,
            "L",
            LockOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(5)),
        )
        .await
        .unwrap()
        .map(|g| g.token())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t1 = first.token();
    first.release().await.unwrap();
    let t2 = second.await.unwrap().unwrap();
    assert!(t2 > t1, "fencing tokens increase");
}

#[tokio::test]
async fn watchdog_keeps_the_lease_alive_past_its_ttl() {
    let server = common::start().await;
    let c = client(&server);
    let g = acquire(
        &c,
        "L",
        LockOptions::new(Duration::from_millis(150)).watchdog(),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!g.is_lost());
    assert!(acquire(&c, "L", LockOptions::new(Duration::from_secs(1)))
        .await
        .unwrap()
        .is_none());
    drop(g);
}

#[tokio::test]
async fn watchdog_reports_a_lost_lock() {
    let server = common::start().await;
    let c = client(&server);
    let mut g = acquire(
        &c,
        "L",
        LockOptions::new(Duration::from_millis(300)).watchdog(),
    )
    .await
    .unwrap()
    .unwrap();
    // Someone deletes the lock: the next extension is refused.
    let mut con = common::connect(&server).await;
    common::cmd(&mut con, &["DEL", "L"]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), g.lost())
        .await
        .expect("loss reported");
    assert!(g.is_lost());
}
