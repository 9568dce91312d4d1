//! Generic key commands through the `redis` crate, with time control for expiry.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{cmd, connect, start};
use redis::aio::MultiplexedConnection;
use redis::Value;

async fn int(con: &mut MultiplexedConnection, words: &[&str]) -> i64 {
    match cmd(con, words).await.unwrap() {
        Value::Int(i) => i,
        v => panic!("{words:?}: {v:?}"),
    }
}

async fn err(con: &mut MultiplexedConnection, words: &[&str]) -> String {
    common::err_line(con, words).await
}

#[tokio::test]
async fn del_unlink_exists_touch_count_keys() {
    let server = start().await;
    let mut con = connect(&server).await;
    for k in ["a", "b", "c"] {
        server.set(k, "v", None);
    }
    assert_eq!(int(&mut con, &["EXISTS", "a", "a", "zz"]).await, 2);
    assert_eq!(int(&mut con, &["TOUCH", "a", "b", "zz"]).await, 2);
    assert_eq!(int(&mut con, &["DEL", "a", "zz"]).await, 1);
    assert_eq!(int(&mut con, &["UNLINK", "b", "c"]).await, 2);
    assert_eq!(server.dbsize(0), 0);
}

#[tokio::test]
async fn expire_sets_ttl_and_key_vanishes_when_time_passes() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    server.set("k", "v", None);
    assert_eq!(int(&mut con, &["EXPIRE", "k", "10"]).await, 1);
    assert_eq!(int(&mut con, &["TTL", "k"]).await, 10);
    assert_eq!(int(&mut con, &["PTTL", "k"]).await, 10_000);
    server.advance_time(Duration::from_secs(10));
    assert_eq!(int(&mut con, &["EXISTS", "k"]).await, 0);
    assert_eq!(int(&mut con, &["TTL", "k"]).await, -2);
}

#[tokio::test]
async fn expire_options_nx_xx_gt_lt() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    server.set("k", "v", None);
    assert_eq!(
        int(&mut con, &["EXPIRE", "k", "100", "XX"]).await,
        0,
        "XX needs a TTL"
    );
    assert_eq!(
        int(&mut con, &["EXPIRE", "k", "100", "GT"]).await,
        0,
        "no TTL counts as infinite"
    );
    assert_eq!(int(&mut con, &["EXPIRE", "k", "100", "NX"]).await, 1);
    assert_eq!(int(&mut con, &["EXPIRE", "k", "50", "NX"]).await, 0);
    assert_eq!(int(&mut con, &["EXPIRE", "k", "50", "GT"]).await, 0);
    assert_eq!(int(&mut con, &["EXPIRE", "k", "200", "GT"]).await, 1);
    assert_eq!(int(&mut con, &["EXPIRE", "k", "300", "LT"]).await, 0);
    assert_eq!(int(&mut con, &["EXPIRE", "k", "30", "LT"]).await, 1);
    assert_eq!(int(&mut con, &["TTL", "k"]).await, 30);
    assert_eq!(
        err(&mut con, &["EXPIRE", "k", "1", "NX", "XX"]).await,
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut con, &["EXPIRE", "k", "1", "GT", "LT"]).await,
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut con, &["EXPIRE", "k", "1", "FOO"]).await,
        "ERR Unsupported option FOO"
    );
    assert_eq!(
        err(&mut con, &["EXPIRE", "k", "9223372036854775807"]).await,
        "ERR invalid expire time in 'expire' command"
    );
}

#[tokio::test]
async fn expire_in_the_past_deletes_the_key() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.set("k", "v", None);
    assert_eq!(int(&mut con, &["PEXPIREAT", "k", "1000"]).await, 1);
    assert_eq!(server.get("k"), None);
    server.set("k", "v", None);
    assert_eq!(int(&mut con, &["EXPIRE", "k", "-1"]).await, 1);
    assert_eq!(server.get("k"), None);
}

#[tokio::test]
async fn expiretime_persist_and_ttl_codes() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.set("k", "v", None);
    assert_eq!(int(&mut con, &["EXPIRETIME", "nokey"]).await, -2);
    assert_eq!(int(&mut con, &["EXPIRETIME", "k"]).await, -1);
    cmd(&mut con, &["PEXPIREAT", "k", "99999999999500"])
        .await
        .unwrap();
    assert_eq!(
        int(&mut con, &["PEXPIRETIME", "k"]).await,
        99_999_999_999_500
    );
    assert_eq!(int(&mut con, &["EXPIRETIME", "k"]).await, 100_000_000_000);
    assert_eq!(int(&mut con, &["PERSIST", "k"]).await, 1);
    assert_eq!(int(&mut con, &["PERSIST", "k"]).await, 0);
    assert_eq!(int(&mut con, &["TTL", "k"]).await, -1);
}

#[tokio::test]
async fn rename_moves_value_and_ttl() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    server.set("src", "v", Some(Duration::from_secs(77)));
    assert_eq!(
        cmd(&mut con, &["RENAME", "src", "dst"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(server.get("src"), None);
    assert_eq!(server.get("dst").as_deref(), Some(&b"v"[..]));
    assert_eq!(server.ttl("dst"), Some(Duration::from_secs(77)));
    assert_eq!(
        err(&mut con, &["RENAME", "nokey", "x"]).await,
        "ERR no such key"
    );
    server.set("other", "o", None);
    assert_eq!(int(&mut con, &["RENAMENX", "dst", "other"]).await, 0);
    assert_eq!(int(&mut con, &["RENAMENX", "dst", "fresh"]).await, 1);
    assert_eq!(
        cmd(&mut con, &["RENAME", "fresh", "fresh"]).await.unwrap(),
        Value::Okay
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_across_shards_never_shows_both_or_neither() {
    let server = start().await;
    server.set("a", "token", None);
    let mut mover = connect(&server).await;
    let mut reader = connect(&server).await;
    let moves = tokio::spawn(async move {
        for i in 0..300 {
            let (from, to) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
            cmd(&mut mover, &["RENAME", from, to]).await.unwrap();
        }
    });
    for _ in 0..300 {
        let n = match cmd(&mut reader, &["EXISTS", "a", "b"]).await.unwrap() {
            Value::Int(n) => n,
            v => panic!("{v:?}"),
        };
        assert_eq!(n, 1, "exactly one of the two names exists at any time");
    }
    moves.await.unwrap();
}

#[tokio::test]
async fn keys_matches_glob_patterns() {
    let server = start().await;
    let mut con = connect(&server).await;
    for k in ["lock:a", "lock:b", "user:1", "hello", "hallo"] {
        server.set(k, "v", None);
    }
    let mut got: Vec<String> = redis::cmd("KEYS")
        .arg("lock:*")
        .query_async(&mut con)
        .await
        .unwrap();
    got.sort();
    assert_eq!(got, vec!["lock:a", "lock:b"]);
    let mut got: Vec<String> = redis::cmd("KEYS")
        .arg("h[ae]llo")
        .query_async(&mut con)
        .await
        .unwrap();
    got.sort();
    assert_eq!(got, vec!["hallo", "hello"]);
}

async fn scan_all(
    con: &mut MultiplexedConnection,
    extra: &[&str],
    mut between: impl FnMut(usize),
) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut out = Vec::new();
    let mut calls = 0;
    loop {
        let mut c = redis::cmd("SCAN");
        c.arg(&cursor);
        for e in extra {
            c.arg(*e);
        }
        let (next, keys): (String, Vec<String>) = c.query_async(con).await.unwrap();
        out.extend(keys);
        calls += 1;
        between(calls);
        if next == "0" {
            return out;
        }
        cursor = next;
    }
}

#[tokio::test]
async fn scan_returns_every_key_present_throughout_despite_changes() {
    let server = start().await;
    let mut con = connect(&server).await;
    for i in 0..1000 {
        server.set(format!("stable:{i}"), "v", None);
    }
    let got = scan_all(&mut con, &["COUNT", "25"], |call| {
        // Keys come and go between calls.
        for j in 0..20 {
            server.set(format!("churn:{call}:{j}"), "v", None);
        }
        if call > 2 {
            for j in 0..20 {
                server
                    .shared()
                    .keyspace
                    .db(0)
                    .unwrap()
                    .lock(format!("churn:{}:{j}", call - 2).as_bytes())
                    .remove(
                        format!("churn:{}:{j}", call - 2).as_bytes(),
                        server.now_ms(),
                    );
            }
        }
    })
    .await;
    let seen: HashSet<_> = got.iter().filter(|k| k.starts_with("stable:")).collect();
    assert_eq!(seen.len(), 1000);
}

#[tokio::test]
async fn scan_match_and_type_filter() {
    let server = start().await;
    let mut con = connect(&server).await;
    for i in 0..50 {
        server.set(format!("k{i}"), "v", None);
    }
    cmd(&mut con, &["LOCK.ACQUIRE", "L1", "me", "10000"])
        .await
        .unwrap();
    let mut got = scan_all(&mut con, &["MATCH", "k1*"], |_| {}).await;
    got.sort();
    assert_eq!(got.len(), 11, "{got:?}");
    let got = scan_all(&mut con, &["TYPE", "lock"], |_| {}).await;
    assert_eq!(got, vec!["L1"]);
    assert_eq!(err(&mut con, &["SCAN", "abc"]).await, "ERR invalid cursor");
    assert_eq!(
        err(&mut con, &["SCAN", "0", "COUNT", "0"]).await,
        "ERR syntax error"
    );
}

#[tokio::test]
async fn small_database_is_scanned_in_one_call() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.set("only", "v", None);
    let got = cmd(&mut con, &["SCAN", "0"]).await.unwrap();
    assert_eq!(
        got,
        Value::Array(vec![
            Value::BulkString(b"0".to_vec()),
            Value::Array(vec![Value::BulkString(b"only".to_vec())])
        ])
    );
}

#[tokio::test]
async fn randomkey_returns_an_existing_key_or_nil() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(cmd(&mut con, &["RANDOMKEY"]).await.unwrap(), Value::Nil);
    for i in 0..10 {
        server.set(format!("k{i}"), "v", None);
    }
    for _ in 0..20 {
        let k: String = redis::cmd("RANDOMKEY").query_async(&mut con).await.unwrap();
        assert!(server.get(&k).is_some());
    }
}

#[tokio::test]
async fn type_reports_each_value_type() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.set("s", "v", None);
    cmd(&mut con, &["LOCK.ACQUIRE", "l", "me", "1000"])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["TYPE", "s"]).await.unwrap(),
        Value::SimpleString("string".into())
    );
    assert_eq!(
        cmd(&mut con, &["TYPE", "l"]).await.unwrap(),
        Value::SimpleString("lock".into())
    );
    assert_eq!(
        cmd(&mut con, &["TYPE", "none"]).await.unwrap(),
        Value::SimpleString("none".into())
    );
}

#[tokio::test]
async fn object_idletime_counts_seconds_since_the_last_access_on_the_server_clock() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    cmd(&mut con, &["SET", "k", "v"]).await.unwrap();
    cmd(&mut con, &["RPUSH", "l", "a"]).await.unwrap();
    server.advance_time(Duration::from_secs(7));
    assert_eq!(int(&mut con, &["OBJECT", "IDLETIME", "k"]).await, 7);
    // OBJECT, TYPE, TTL and EXISTS look without touching, as in Redis.
    cmd(&mut con, &["TYPE", "k"]).await.unwrap();
    cmd(&mut con, &["TTL", "k"]).await.unwrap();
    cmd(&mut con, &["EXISTS", "k"]).await.unwrap();
    assert_eq!(int(&mut con, &["OBJECT", "IDLETIME", "k"]).await, 7);
    // A read is an access; a write to another key is not.
    cmd(&mut con, &["GET", "k"]).await.unwrap();
    cmd(&mut con, &["LPUSH", "l", "b"]).await.unwrap();
    server.advance_time(Duration::from_secs(2));
    assert_eq!(int(&mut con, &["OBJECT", "IDLETIME", "k"]).await, 2);
    assert_eq!(int(&mut con, &["OBJECT", "IDLETIME", "l"]).await, 2);
}

#[tokio::test]
async fn object_encoding_follows_the_list_size_option() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["RPUSH", "l", "a", "b", "c"]).await.unwrap();
    let enc = |v: Value| match v {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        enc(cmd(&mut con, &["OBJECT", "ENCODING", "l"]).await.unwrap()),
        "listpack"
    );
    // As in Redis, a list changes encoding when it is written, not when the
    // option changes.
    cmd(&mut con, &["CONFIG", "SET", "list-max-listpack-size", "2"])
        .await
        .unwrap();
    assert_eq!(
        enc(cmd(&mut con, &["OBJECT", "ENCODING", "l"]).await.unwrap()),
        "listpack"
    );
    cmd(&mut con, &["RPUSH", "l", "d"]).await.unwrap();
    assert_eq!(
        enc(cmd(&mut con, &["OBJECT", "ENCODING", "l"]).await.unwrap()),
        "quicklist"
    );
    cmd(&mut con, &["CONFIG", "SET", "list-max-ziplist-size", "10"])
        .await
        .unwrap();
    cmd(&mut con, &["LTRIM", "l", "0", "1"]).await.unwrap();
    assert_eq!(
        enc(cmd(&mut con, &["OBJECT", "ENCODING", "l"]).await.unwrap()),
        "listpack"
    );
    cmd(&mut con, &["SET", "s", "1"]).await.unwrap();
    assert_eq!(
        enc(cmd(&mut con, &["OBJECT", "ENCODING", "s"]).await.unwrap()),
        "int"
    );
}
