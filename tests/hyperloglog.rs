//! PFSELFTEST through the server: Redis's self-test of the register layout and
//! the estimator (1000 rounds of 16384 registers, then 10,000,000 elements), so it
//! runs in optimised builds only (about 30 s unoptimised, 1 s optimised):
//! `cargo test --release --test hyperloglog`. The rest of the HyperLogLog
//! commands are in redis-tests/hyperloglog.txt.

mod common;

use redis::Value;

#[tokio::test]
#[cfg_attr(
    debug_assertions,
    ignore = "10,000,000 elements; run with: cargo test --release --test hyperloglog"
)]
async fn pfselftest_passes_and_fails_as_redis_does() {
    let server = common::start().await;
    let mut con = common::connect(&server).await;
    let ok = common::cmd(&mut con, &["PFSELFTEST"]).await.unwrap();
    assert_eq!(ok, Value::Okay);
    // With an 18-byte limit (a fresh sparse value's own size) the first
    // element always makes the value dense: redis-server 7.0.15 answers this
    // same line. (At 20 a first element within 64 registers of either end
    // still fits, about one run in 128.)
    common::cmd(&mut con, &["CONFIG", "SET", "hll-sparse-max-bytes", "18"])
        .await
        .unwrap();
    assert_eq!(
        common::err_line(&mut con, &["PFSELFTEST"]).await,
        "ERR TESTFAILED sparse encoding not used"
    );
}
