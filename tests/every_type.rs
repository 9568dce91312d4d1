//! What every value type shares with the rest of the keyspace: TYPE, SCAN ...
//! TYPE, RENAME, DEL, EXPIRE, WATCH, OBJECT ENCODING and INFO keyspace work the
//! same on hashes, sets and sorted sets as on strings and lists.

mod common;

use std::time::Duration;

use common::{cmd, connect, start};
use redis::Value;

/// One key of each type, made by its own command.
const MAKERS: &[(&str, &[&str], &str)] = &[
    ("s", &["SET", "s", "v"], "string"),
    ("l", &["RPUSH", "l", "a"], "list"),
    ("h", &["HSET", "h", "f", "v"], "hash"),
    ("st", &["SADD", "st", "a"], "set"),
    ("z", &["ZADD", "z", "1", "a"], "zset"),
    (
        "g",
        &["GEOADD", "g", "13.361389", "38.115556", "Palermo"],
        "zset",
    ),
];

fn text(v: Value) -> String {
    match v {
        Value::SimpleString(s) => s,
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn type_scan_rename_del_and_info_see_every_type() {
    let server = start().await;
    let mut con = connect(&server).await;
    for (key, make, name) in MAKERS {
        cmd(&mut con, make).await.unwrap();
        assert_eq!(text(cmd(&mut con, &["TYPE", key]).await.unwrap()), *name);
    }
    for (_, _, name) in MAKERS {
        let Value::Array(reply) = cmd(&mut con, &["SCAN", "0", "TYPE", name]).await.unwrap() else {
            panic!("SCAN replies with an array");
        };
        let Value::Array(keys) = &reply[1] else {
            panic!("keys");
        };
        let want = MAKERS.iter().filter(|(_, _, n)| n == name).count();
        assert_eq!(keys.len(), want, "SCAN TYPE {name}");
    }
    let info = text(cmd(&mut con, &["INFO", "keyspace"]).await.unwrap());
    assert!(info.contains("db0:keys=6,expires=0"), "{info}");
    for (key, _, name) in MAKERS {
        let moved = format!("{key}-moved");
        cmd(&mut con, &["RENAME", key, &moved]).await.unwrap();
        assert_eq!(text(cmd(&mut con, &["TYPE", &moved]).await.unwrap()), *name);
        assert_eq!(
            cmd(&mut con, &["DEL", &moved]).await.unwrap(),
            Value::Int(1)
        );
    }
    assert_eq!(cmd(&mut con, &["DBSIZE"]).await.unwrap(), Value::Int(0));
}

#[tokio::test]
async fn every_type_expires_and_wrongtype_is_one_error() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    for (key, make, _) in MAKERS {
        cmd(&mut con, make).await.unwrap();
        assert_eq!(
            cmd(&mut con, &["EXPIRE", key, "10"]).await.unwrap(),
            Value::Int(1)
        );
    }
    // Each family refuses the others' keys with the same error.
    for cmd_words in [
        &["HGET", "s", "f"][..],
        &["SCARD", "h"],
        &["ZSCORE", "st", "a"],
        &["LLEN", "z"],
        &["GET", "h"],
        &["GEOPOS", "st", "a"],
    ] {
        let err = cmd(&mut con, cmd_words).await.unwrap_err();
        assert_eq!(err.code(), Some("WRONGTYPE"), "{cmd_words:?}");
    }
    server.advance_time(Duration::from_secs(10));
    assert_eq!(cmd(&mut con, &["DBSIZE"]).await.unwrap(), Value::Int(0));
}

#[tokio::test]
async fn a_write_to_any_type_aborts_a_watching_transaction() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut other = connect(&server).await;
    let writes: &[(&[&str], &[&str])] = &[
        (&["HSET", "h", "f", "v"], &["HSET", "h", "f", "w"]),
        (&["SADD", "st", "a"], &["SREM", "st", "a"]),
        (&["ZADD", "z", "1", "a"], &["ZINCRBY", "z", "1", "a"]),
    ];
    for (make, change) in writes {
        cmd(&mut con, make).await.unwrap();
        let key = make[1];
        cmd(&mut con, &["WATCH", key]).await.unwrap();
        cmd(&mut other, change).await.unwrap();
        cmd(&mut con, &["MULTI"]).await.unwrap();
        cmd(&mut con, &["PING"]).await.unwrap();
        assert_eq!(
            cmd(&mut con, &["EXEC"]).await.unwrap(),
            Value::Nil,
            "{change:?} aborts the transaction watching {key}"
        );
    }
}

#[tokio::test]
async fn encodings_switch_at_the_configured_thresholds() {
    let server = start().await;
    let mut con = connect(&server).await;
    let enc = |v: Value| text(v);
    for (opt, value) in [
        ("hash-max-listpack-entries", "2"),
        ("set-max-intset-entries", "2"),
        ("set-max-listpack-entries", "2"),
        ("zset-max-listpack-entries", "2"),
    ] {
        cmd(&mut con, &["CONFIG", "SET", opt, value]).await.unwrap();
    }
    cmd(&mut con, &["HSET", "h", "a", "1", "b", "2"])
        .await
        .unwrap();
    cmd(&mut con, &["SADD", "i", "1", "2"]).await.unwrap();
    cmd(&mut con, &["SADD", "st", "a", "b"]).await.unwrap();
    cmd(&mut con, &["ZADD", "z", "1", "a", "2", "b"])
        .await
        .unwrap();
    for (key, small) in [
        ("h", "listpack"),
        ("i", "intset"),
        ("st", "listpack"),
        ("z", "listpack"),
    ] {
        assert_eq!(
            enc(cmd(&mut con, &["OBJECT", "ENCODING", key]).await.unwrap()),
            small
        );
    }
    cmd(&mut con, &["HSET", "h", "c", "3"]).await.unwrap();
    cmd(&mut con, &["SADD", "i", "3"]).await.unwrap();
    cmd(&mut con, &["SADD", "st", "c"]).await.unwrap();
    cmd(&mut con, &["ZADD", "z", "3", "c"]).await.unwrap();
    for (key, large) in [
        ("h", "hashtable"),
        ("i", "hashtable"),
        ("st", "hashtable"),
        ("z", "skiplist"),
    ] {
        assert_eq!(
            enc(cmd(&mut con, &["OBJECT", "ENCODING", key]).await.unwrap()),
            large
        );
    }
}

#[tokio::test]
async fn a_write_that_changes_nothing_leaves_a_watching_transaction_alone() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut other = connect(&server).await;
    cmd(&mut con, &["HSET", "h", "a", "1"]).await.unwrap();
    cmd(&mut con, &["ZADD", "z", "1", "a"]).await.unwrap();
    cmd(&mut con, &["SADD", "st", "a"]).await.unwrap();
    // As Redis: none of these modifies its key, so none aborts the EXEC.
    let no_ops: &[&[&str]] = &[
        &["HDEL", "h", "nosuch"],
        &["HSETNX", "h", "a", "9"],
        &["HINCRBY", "h", "nosuch-but-bad", "x"],
        &["ZADD", "z", "XX", "1", "nosuch"],
        &["ZADD", "z", "1", "a"],
        &["ZADD", "z", "NX", "5", "a"],
        &["ZREM", "z", "nosuch"],
        &["ZINCRBY", "z", "0", "a"],
        &["ZREMRANGEBYSCORE", "z", "100", "200"],
        &["SREM", "st", "nosuch"],
        &["SADD", "st", "a"],
    ];
    for words in no_ops {
        let key = words[1];
        cmd(&mut con, &["WATCH", key]).await.unwrap();
        let _ = cmd(&mut other, words).await;
        cmd(&mut con, &["MULTI"]).await.unwrap();
        cmd(&mut con, &["PING"]).await.unwrap();
        assert_eq!(
            cmd(&mut con, &["EXEC"]).await.unwrap(),
            Value::Array(vec![Value::SimpleString("PONG".into())]),
            "{words:?} aborted a transaction watching {key}"
        );
    }
}
