//! SORT beyond what `redis-tests/sort.txt` records (the recording server is
//! Redis 7.0, whose small sets and lists have other encodings than 7.2's): a
//! listpack set's own order with NOSORT, the encoding of a STORE result, a
//! client blocked on the STORE key, and SORT with patterns (which locks the
//! whole database) running beside writers.

mod common;

use std::time::Duration;

use common::{block_raw, cmd, connect, expect_reply, start};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

async fn strings(con: &mut MultiplexedConnection, words: &[&str]) -> Vec<String> {
    let mut c = redis::cmd(words[0]);
    for w in &words[1..] {
        c.arg(*w);
    }
    c.query_async(con).await.unwrap()
}

#[tokio::test]
async fn nosort_gives_a_listpack_set_in_insertion_order_unless_stored_or_scripted() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.sadd("s", &["b", "c", "a"]).await.unwrap();
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("s")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(enc, "listpack");
    assert_eq!(
        strings(&mut con, &["SORT", "s", "BY", "nosort"]).await,
        ["b", "c", "a"]
    );
    // A set has no order to reverse.
    assert_eq!(
        strings(&mut con, &["SORT", "s", "BY", "nosort", "DESC"]).await,
        ["b", "c", "a"]
    );
    assert_eq!(
        strings(&mut con, &["SORT", "s", "BY", "nosort", "LIMIT", "1", "5"]).await,
        ["c", "a"]
    );
    // STORE and scripts sort it as strings instead.
    let n: i64 = redis::cmd("SORT")
        .arg(&["s", "BY", "nosort", "STORE", "d"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        strings(&mut con, &["LRANGE", "d", "0", "-1"]).await,
        ["a", "b", "c"]
    );
    let script = "return redis.call('sort', KEYS[1], 'by', 'nosort', 'desc')";
    assert_eq!(
        strings(&mut con, &["EVAL", script, "1", "s"]).await,
        ["c", "b", "a"]
    );
}

#[tokio::test]
async fn stored_result_takes_the_list_encoding_of_its_size() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.rpush("l", &["3", "1", "2", "5", "4"]).await.unwrap();
    let encoding = |key: &'static str| redis::cmd("OBJECT").arg("ENCODING").arg(key).clone();
    let n: i64 = redis::cmd("SORT")
        .arg(&["l", "STORE", "small"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let e: String = encoding("small").query_async(&mut con).await.unwrap();
    assert_eq!(e, "listpack");
    cmd(&mut con, &["CONFIG", "SET", "list-max-listpack-size", "4"])
        .await
        .unwrap();
    let _: i64 = redis::cmd("SORT")
        .arg(&["l", "STORE", "big"])
        .query_async(&mut con)
        .await
        .unwrap();
    let e: String = encoding("big").query_async(&mut con).await.unwrap();
    assert_eq!(e, "quicklist");
    assert_eq!(
        strings(&mut con, &["LRANGE", "big", "0", "-1"]).await,
        ["1", "2", "3", "4", "5"]
    );
}

#[tokio::test]
async fn store_serves_a_client_blocked_on_the_destination() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.rpush("src", &["2", "1"]).await.unwrap();
    let mut s = block_raw(&server, &mut con, "BLPOP dst 0\r\n", 1).await;
    let n: i64 = redis::cmd("SORT")
        .arg(&["src", "STORE", "dst"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 2);
    expect_reply(&mut s, "*2\r\n$3\r\ndst\r\n$1\r\n1\r\n").await;
    assert_eq!(
        strings(&mut con, &["LRANGE", "dst", "0", "-1"]).await,
        ["2"]
    );
}

#[tokio::test]
async fn store_of_nothing_deletes_the_destination_and_tells_its_watchers() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut watcher = connect(&server).await;
    let _: () = con.set("dst", "x").await.unwrap();
    cmd(&mut watcher, &["WATCH", "dst"]).await.unwrap();
    let n: i64 = redis::cmd("SORT")
        .arg(&["nokey", "STORE", "dst"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let exists: i64 = con.exists("dst").await.unwrap();
    assert_eq!(exists, 0);
    cmd(&mut watcher, &["MULTI"]).await.unwrap();
    cmd(&mut watcher, &["PING"]).await.unwrap();
    let r = cmd(&mut watcher, &["EXEC"]).await.unwrap();
    assert_eq!(r, redis::Value::Nil);
}

#[tokio::test]
async fn sort_with_patterns_runs_beside_multi_key_writers() {
    let server = start().await;
    let mut con = connect(&server).await;
    let ids: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    let _: () = con.rpush("ids", &ids).await.unwrap();
    for i in 0..200 {
        let _: () = con.set(format!("w_{i}"), 200 - i).await.unwrap();
        let _: () = con
            .hset(format!("h_{i}"), "name", format!("n{i}"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for t in 0..3 {
        let mut c = connect(&server).await;
        tasks.push(tokio::spawn(async move {
            for round in 0..30 {
                if t == 0 {
                    let got: Vec<String> = redis::cmd("SORT")
                        .arg(&["ids", "BY", "w_*", "GET", "h_*->name", "LIMIT", "0", "3"])
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    assert_eq!(got, ["n199", "n198", "n197"]);
                } else {
                    let a = format!("w_{}", round % 200);
                    let b = format!("x_{t}_{round}");
                    let _: () = redis::cmd("MSET")
                        .arg(&[&b, "1", &format!("y_{round}"), "2"])
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    let _: i64 = redis::cmd("COPY")
                        .arg(&[&a, &b, "DB", "1", "REPLACE"])
                        .query_async(&mut c)
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("no deadlock")
            .unwrap();
    }
}

#[tokio::test]
async fn huge_limits_and_many_gets_are_bounded_by_the_elements() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.rpush("l", &["b", "a"]).await.unwrap();
    let mut c = redis::cmd("SORT");
    c.arg(&[
        "l",
        "ALPHA",
        "LIMIT",
        "-9223372036854775808",
        "9223372036854775807",
    ]);
    for _ in 0..1000 {
        c.arg(&["GET", "#"]);
    }
    let got: Vec<String> = c.query_async(&mut con).await.unwrap();
    assert_eq!(got.len(), 2000);
    assert_eq!((got[0].as_str(), got[1999].as_str()), ("a", "b"));
}

#[tokio::test]
async fn a_lock_cannot_be_sorted_and_reads_as_missing_through_a_pattern() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["LOCK.ACQUIRE", "L", "me", "100000"])
        .await
        .unwrap();
    let e = common::err_line(&mut con, &["SORT", "L"]).await;
    assert!(e.starts_with("WRONGTYPE"), "{e}");
    let _: () = con.rpush("l", &["L", "a"]).await.unwrap();
    let _: () = con.set("a", "7").await.unwrap();
    // BY *: the lock at "L" is no weight (0), "a" weighs 7; GET *: nil for it.
    let got: Vec<Option<String>> = redis::cmd("SORT")
        .arg(&["l", "BY", "*", "GET", "#", "GET", "*"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        got,
        [Some("L".into()), None, Some("a".into()), Some("7".into())]
    );
}
