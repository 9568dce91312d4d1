//! String commands through the `redis` crate: values, errors, TTL handling, and
//! concurrent counters.

mod common;

use std::time::Duration;

use common::{cmd, connect, start};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Value};

async fn err(con: &mut MultiplexedConnection, words: &[&str]) -> String {
    common::err_line(con, words).await
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[tokio::test]
async fn set_nx_does_not_overwrite_live_key() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["SET", "k", "a", "NX"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(
        cmd(&mut con, &["SET", "k", "b", "NX"]).await.unwrap(),
        Value::Nil
    );
    assert_eq!(server.get("k").as_deref(), Some(&b"a"[..]));
}

#[tokio::test]
async fn set_xx_only_overwrites_existing_key() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["SET", "k", "a", "XX"]).await.unwrap(),
        Value::Nil
    );
    server.set("k", "x", None);
    assert_eq!(
        cmd(&mut con, &["SET", "k", "a", "XX"]).await.unwrap(),
        Value::Okay
    );
}

#[tokio::test]
async fn set_get_returns_the_old_value() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["SET", "k", "a", "GET"]).await.unwrap(),
        Value::Nil
    );
    assert_eq!(
        cmd(&mut con, &["SET", "k", "b", "GET"]).await.unwrap(),
        bulk("a")
    );
    assert_eq!(
        cmd(&mut con, &["SET", "k", "c", "NX", "GET"])
            .await
            .unwrap(),
        bulk("b")
    );
    assert_eq!(server.get("k").as_deref(), Some(&b"b"[..]));
}

#[tokio::test]
async fn set_expiry_options_set_the_ttl() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    let now_s = server.now_ms() / 1000;
    for (opts, ttl_ms) in [
        (vec!["EX", "10"], 10_000),
        (vec!["PX", "2500"], 2500),
        (
            vec!["EXAT", &*(now_s + 20).to_string()],
            20_000 - (server.now_ms() % 1000),
        ),
        (vec!["PXAT", &*(server.now_ms() + 3000).to_string()], 3000),
    ] {
        let mut words = vec!["SET", "k", "v"];
        words.extend(opts.iter().copied());
        cmd(&mut con, &words).await.unwrap();
        assert_eq!(
            server.ttl("k"),
            Some(Duration::from_millis(ttl_ms)),
            "{opts:?}"
        );
    }
}

#[tokio::test]
async fn set_keepttl_keeps_and_plain_set_clears_the_ttl() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    cmd(&mut con, &["SET", "k", "v", "EX", "100"])
        .await
        .unwrap();
    cmd(&mut con, &["SET", "k", "w", "KEEPTTL"]).await.unwrap();
    assert_eq!(server.ttl("k"), Some(Duration::from_secs(100)));
    cmd(&mut con, &["SET", "k", "x"]).await.unwrap();
    assert_eq!(server.ttl("k"), None);
}

#[tokio::test]
async fn set_rejects_conflicting_or_bad_options() {
    let server = start().await;
    let mut con = connect(&server).await;
    for words in [
        &["SET", "k", "v", "NX", "XX"][..],
        &["SET", "k", "v", "EX", "10", "PX", "10"],
        &["SET", "k", "v", "EX", "10", "KEEPTTL"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "FOO"],
    ] {
        assert!(
            err(&mut con, words).await.contains("syntax error"),
            "{words:?}"
        );
    }
    assert!(err(&mut con, &["SET", "k", "v", "EX", "0"])
        .await
        .contains("invalid expire time in 'set' command"));
    assert!(err(&mut con, &["SET", "k", "v", "PX", "-1"])
        .await
        .contains("invalid expire time in 'set' command"));
    assert!(err(&mut con, &["SET", "k", "v", "EX", "x"])
        .await
        .contains("value is not an integer or out of range"));
    assert!(err(&mut con, &["SETEX", "k", "0", "v"])
        .await
        .contains("invalid expire time in 'setex' command"));
}

#[tokio::test]
async fn getex_and_getdel_change_ttl_and_delete() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    server.set("k", "v", None);
    assert_eq!(
        cmd(&mut con, &["GETEX", "k", "EX", "50"]).await.unwrap(),
        bulk("v")
    );
    assert_eq!(server.ttl("k"), Some(Duration::from_secs(50)));
    assert_eq!(
        cmd(&mut con, &["GETEX", "k", "PERSIST"]).await.unwrap(),
        bulk("v")
    );
    assert_eq!(server.ttl("k"), None);
    assert_eq!(cmd(&mut con, &["GETDEL", "k"]).await.unwrap(), bulk("v"));
    assert_eq!(server.get("k"), None);
}

#[tokio::test]
async fn incr_family_counts_and_keeps_ttl() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    assert_eq!(cmd(&mut con, &["INCR", "n"]).await.unwrap(), Value::Int(1));
    assert_eq!(
        cmd(&mut con, &["INCRBY", "n", "41"]).await.unwrap(),
        Value::Int(42)
    );
    assert_eq!(cmd(&mut con, &["DECR", "n"]).await.unwrap(), Value::Int(41));
    assert_eq!(
        cmd(&mut con, &["DECRBY", "n", "40"]).await.unwrap(),
        Value::Int(1)
    );
    cmd(&mut con, &["EXPIRE", "n", "100"]).await.unwrap();
    cmd(&mut con, &["INCR", "n"]).await.unwrap();
    assert_eq!(server.ttl("n"), Some(Duration::from_secs(100)));
}

#[tokio::test]
async fn incr_on_non_integer_or_overflow_is_an_error() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.set("s", "abc", None);
    server.set("z", "010", None);
    server.set("max", i64::MAX.to_string(), None);
    assert_eq!(
        err(&mut con, &["INCR", "s"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut con, &["INCR", "z"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut con, &["INCR", "max"]).await,
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        err(&mut con, &["DECRBY", "k", "-9223372036854775808"]).await,
        "ERR decrement would overflow"
    );
}

#[tokio::test]
async fn incrbyfloat_formats_like_redis() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["INCRBYFLOAT", "f", "0.1"]).await.unwrap(),
        bulk("0.1")
    );
    assert_eq!(
        cmd(&mut con, &["INCRBYFLOAT", "f", "0.2"]).await.unwrap(),
        bulk("0.3")
    );
    assert_eq!(
        cmd(&mut con, &["INCRBYFLOAT", "f", "3.0e3"]).await.unwrap(),
        bulk("3000.3")
    );
    server.set("inf", "inf", None);
    assert_eq!(
        err(&mut con, &["INCRBYFLOAT", "inf", "1"]).await,
        "ERR increment would produce NaN or Infinity"
    );
    assert_eq!(
        err(&mut con, &["INCRBYFLOAT", "f", "x"]).await,
        "ERR value is not a valid float"
    );
}

#[tokio::test]
async fn append_strlen_getrange_setrange() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["APPEND", "s", "Hello"]).await.unwrap(),
        Value::Int(5)
    );
    assert_eq!(
        cmd(&mut con, &["APPEND", "s", " World"]).await.unwrap(),
        Value::Int(11)
    );
    assert_eq!(
        cmd(&mut con, &["STRLEN", "s"]).await.unwrap(),
        Value::Int(11)
    );
    assert_eq!(
        cmd(&mut con, &["GETRANGE", "s", "-5", "-1"]).await.unwrap(),
        bulk("World")
    );
    assert_eq!(
        cmd(&mut con, &["SETRANGE", "s", "6", "Redis"])
            .await
            .unwrap(),
        Value::Int(11)
    );
    assert_eq!(server.get("s").as_deref(), Some(&b"Hello Redis"[..]));
    assert_eq!(
        cmd(&mut con, &["SETRANGE", "p", "3", "x"]).await.unwrap(),
        Value::Int(4)
    );
    assert_eq!(server.get("p").as_deref(), Some(&b"\0\0\0x"[..]));
    assert_eq!(
        cmd(&mut con, &["SETRANGE", "none", "3", ""]).await.unwrap(),
        Value::Int(0)
    );
    assert_eq!(
        server.get("none"),
        None,
        "an empty SETRANGE creates nothing"
    );
    assert_eq!(
        err(&mut con, &["SETRANGE", "s", "-1", "x"]).await,
        "ERR offset is out of range"
    );
}

#[tokio::test]
async fn mset_msetnx_mget_are_all_or_nothing() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["MSET", "a", "1", "b", "2"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(
        cmd(&mut con, &["MSETNX", "b", "x", "c", "3"])
            .await
            .unwrap(),
        Value::Int(0)
    );
    assert_eq!(server.get("c"), None);
    assert_eq!(
        cmd(&mut con, &["MSETNX", "c", "3", "d", "4"])
            .await
            .unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        cmd(&mut con, &["MGET", "a", "nokey", "d"]).await.unwrap(),
        Value::Array(vec![bulk("1"), Value::Nil, bulk("4")])
    );
    assert_eq!(
        err(&mut con, &["MSET", "a", "1", "b"]).await,
        "ERR wrong number of arguments for 'mset' command"
    );
}

#[tokio::test]
async fn string_commands_on_a_lock_are_wrongtype() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["LOCK.ACQUIRE", "L", "me", "10000"])
        .await
        .unwrap();
    for words in [
        &["GET", "L"][..],
        &["INCR", "L"],
        &["APPEND", "L", "x"],
        &["STRLEN", "L"],
        &["GETRANGE", "L", "0", "1"],
    ] {
        assert!(
            err(&mut con, words).await.starts_with("WRONGTYPE"),
            "{words:?}"
        );
    }
    assert_eq!(
        cmd(&mut con, &["MGET", "L"]).await.unwrap(),
        Value::Array(vec![Value::Nil])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_incr_loses_no_update() {
    let server = start().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut con = connect(&server).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                let _: i64 = con.incr("counter", 1).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.get("counter").as_deref(), Some(&b"4000"[..]));
}
