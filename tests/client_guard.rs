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
        // Renewed every 200 ms: a stall of the test's thread under 400 ms
        // (a loaded machine) loses nothing.
        LockOptions::new(Duration::from_millis(600)).watchdog(),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
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

#[tokio::test]
async fn a_guard_without_watchdog_hears_its_lease_run_out_at_once() {
    let server = common::start().await;
    let c = client(&server);
    let lease = Duration::from_millis(60);
    let started = std::time::Instant::now();
    let mut g = acquire(&c, "L", LockOptions::new(lease))
        .await
        .unwrap()
        .unwrap();
    assert!(!g.is_lost());
    // A generous bound: the notice is sent by the expiry task as the lease
    // ends, not at some later renewal (there is none).
    tokio::time::timeout(lease + Duration::from_millis(250), g.lost())
        .await
        .expect("loss reported soon after the lease ended");
    assert!(started.elapsed() + Duration::from_millis(2) >= lease);
    assert!(g.is_lost());
}

#[tokio::test]
async fn a_guard_hears_its_lock_deleted_and_only_its_own_notice() {
    let server = common::start().await;
    let c = client(&server);
    let mut g = acquire(
        &c,
        "L",
        LockOptions::new(Duration::from_secs(60)).owner("me"),
    )
    .await
    .unwrap()
    .unwrap();
    let mut con = common::connect(&server).await;
    // Notices of another hold (token, key or database) are not this guard's.
    for fake in [
        format!("lock.expired 0 {} L", g.token() + 1),
        format!("lock.expired 0 {} M", g.token()),
        format!("lock.expired 1 {} L", g.token()),
        "garbage".to_string(),
    ] {
        common::cmd(&mut con, &["PUBLISH", "__lock_lost__:me", &fake])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!g.is_lost());
    common::cmd(&mut con, &["DEL", "L"]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), g.lost())
        .await
        .expect("loss reported");
    assert!(g.is_lost());
}

#[tokio::test]
async fn a_guard_that_releases_is_not_told_it_lost() {
    let server = common::start().await;
    let c = client(&server);
    let mut con = common::connect(&server).await;
    let g = acquire(
        &c,
        "L",
        LockOptions::new(Duration::from_secs(60)).owner("me"),
    )
    .await
    .unwrap()
    .unwrap();
    // The guard's connection listens on the owner's loss channel.
    let n: i64 = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("__lock_lost__:me")
        .query_async::<(String, i64)>(&mut con)
        .await
        .unwrap()
        .1;
    assert_eq!(n, 1);
    // The owner's own release (here from another connection, so the guard
    // stays to be asked) sends no notice; a DEL after a new acquire does, as
    // the test above shows.
    let released: i64 = redis::cmd("LOCK.RELEASE")
        .arg("L")
        .arg("me")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(released, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!g.is_lost(), "an owner's own release is not a loss");
}
