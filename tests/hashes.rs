//! Hash commands through the `redis` crate: what the recorded cases in
//! `redis-tests/hashes.txt` cannot show (random replies, big tables, HSCAN's
//! NOVALUES from Redis 7.4, transactions and scripts).

mod common;

use std::collections::{HashMap, HashSet};

use common::{cmd, connect, connect_resp3, err_line, start};
use redis::Value;

/// Fills `key` with `n` fields `f0..` whose values are `v0..`.
async fn fill(con: &mut redis::aio::MultiplexedConnection, key: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut c = redis::cmd("HSET");
        c.arg(key);
        for i in chunk {
            c.arg(format!("f{i}")).arg(format!("v{i}"));
        }
        let _: i64 = c.query_async(con).await.unwrap();
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// Runs HSCAN to the end and returns every field and value it gave.
async fn hscan_all(
    con: &mut redis::aio::MultiplexedConnection,
    key: &str,
    options: &[&str],
) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut items = Vec::new();
    for _ in 0..100_000 {
        let mut words = vec!["HSCAN", key, &cursor];
        words.extend_from_slice(options);
        let Value::Array(reply) = cmd(con, &words).await.unwrap() else {
            panic!("HSCAN replies with an array")
        };
        let Value::Array(batch) = &reply[1] else {
            panic!("HSCAN's items are an array")
        };
        items.extend(batch.iter().map(text));
        cursor = text(&reply[0]);
        if cursor == "0" {
            return items;
        }
    }
    panic!("HSCAN did not end");
}

#[tokio::test]
async fn a_big_hash_answers_like_a_small_one() {
    let server = start().await;
    let mut con = connect(&server).await;
    fill(&mut con, "h", 1000).await;
    let len: i64 = redis::cmd("HLEN")
        .arg("h")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(len, 1000);
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg("h")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(all["f999"], "v999");
    let n: i64 = redis::cmd("HDEL")
        .arg("h")
        .arg("f1")
        .arg("f2")
        .arg("nope")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let v: Option<String> = redis::cmd("HGET")
        .arg("h")
        .arg("f1")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, None);
}

#[tokio::test]
async fn hscan_of_a_big_hash_returns_every_field_in_several_steps() {
    let server = start().await;
    let mut con = connect(&server).await;
    fill(&mut con, "h", 1000).await;
    let Value::Array(first) = cmd(&mut con, &["HSCAN", "h", "0", "COUNT", "10"])
        .await
        .unwrap()
    else {
        panic!("an array")
    };
    assert_ne!(text(&first[0]), "0", "a table is scanned in steps");
    let items = hscan_all(&mut con, "h", &["COUNT", "37"]).await;
    let pairs: HashMap<&str, &str> = items
        .chunks(2)
        .map(|p| (p[0].as_str(), p[1].as_str()))
        .collect();
    assert_eq!(pairs.len(), 1000);
    assert!(pairs.iter().all(|(f, v)| f[1..] == v[1..]));

    let matched: HashSet<String> = hscan_all(&mut con, "h", &["MATCH", "f99*", "NOVALUES"])
        .await
        .into_iter()
        .collect();
    let want: HashSet<String> = ["f99".to_string()]
        .into_iter()
        .chain((0..10).map(|i| format!("f99{i}")))
        .collect();
    assert_eq!(matched, want);
}

#[tokio::test]
async fn hscan_novalues_gives_fields_only() {
    let server = start().await;
    let mut con = connect(&server).await;
    fill(&mut con, "small", 3).await;
    let items = hscan_all(&mut con, "small", &["NOVALUES"]).await;
    assert_eq!(items, ["f0", "f1", "f2"]);
    let items = hscan_all(&mut con, "small", &["novalues", "MATCH", "*1"]).await;
    assert_eq!(items, ["f1"]);
}

#[tokio::test]
async fn hrandfield_picks_distinct_fields_for_a_positive_count() {
    let server = start().await;
    let mut con = connect(&server).await;
    for n in [10, 300] {
        let key = format!("h{n}");
        fill(&mut con, &key, n).await;
        for count in [1, 3, n / 2, n - 1] {
            let fields: Vec<String> = redis::cmd("HRANDFIELD")
                .arg(&key)
                .arg(count)
                .query_async(&mut con)
                .await
                .unwrap();
            assert_eq!(fields.len(), count);
            assert_eq!(fields.iter().collect::<HashSet<_>>().len(), count);
            assert!(fields
                .iter()
                .all(|f| f[1..].parse::<usize>().is_ok_and(|i| i < n)));
        }
        let pairs: Vec<String> = redis::cmd("HRANDFIELD")
            .arg(&key)
            .arg(-(3 * n as i64))
            .arg("WITHVALUES")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(pairs.len(), 6 * n);
        assert!(pairs.chunks(2).all(|p| p[0][1..] == p[1][1..]));
        let distinct: HashSet<_> = pairs.chunks(2).map(|p| &p[0]).collect();
        assert!(distinct.len() > 1, "repeated picks vary");
    }
}

#[tokio::test]
async fn a_huge_negative_hrandfield_count_is_refused_not_allocated() {
    let server = start().await;
    let mut con = connect(&server).await;
    fill(&mut con, "h", 3).await;
    assert_eq!(
        err_line(&mut con, &["HRANDFIELD", "h", "-9223372036854775807"]).await,
        "ERR value is out of range"
    );
    assert_eq!(
        err_line(&mut con, &["HRANDFIELD", "h", "-10000001"]).await,
        "ERR value is out of range"
    );
    // A huge positive count is the whole hash.
    let all: Vec<String> = redis::cmd("HRANDFIELD")
        .arg("h")
        .arg(i64::MAX)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(all, ["f0", "f1", "f2"]);
}

#[tokio::test]
async fn resp3_shapes_of_hgetall_and_hrandfield() {
    let server = start().await;
    let mut con = connect_resp3(&server).await;
    fill(&mut con, "h", 2).await;
    let Value::Map(map) = cmd(&mut con, &["HGETALL", "h"]).await.unwrap() else {
        panic!("HGETALL is a map in RESP3")
    };
    assert_eq!(map.len(), 2);
    let Value::Array(pairs) = cmd(&mut con, &["HRANDFIELD", "h", "-3", "WITHVALUES"])
        .await
        .unwrap()
    else {
        panic!("an array")
    };
    assert_eq!(pairs.len(), 3);
    for pair in pairs {
        let Value::Array(p) = pair else {
            panic!("each pick is a [field, value] pair in RESP3")
        };
        assert_eq!(text(&p[0])[1..], text(&p[1])[1..]);
    }
}

#[tokio::test]
async fn hash_commands_queue_and_run_in_a_transaction() {
    let server = start().await;
    let mut con = connect(&server).await;
    let (added, n, f, all): (i64, i64, String, Vec<String>) = redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg("h")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .cmd("HINCRBY")
        .arg("h")
        .arg("a")
        .arg(41)
        .cmd("HINCRBYFLOAT")
        .arg("h")
        .arg("b")
        .arg("0.5")
        .cmd("HGETALL")
        .arg("h")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((added, n, f.as_str()), (2, 42, "2.5"));
    assert_eq!(all, ["a", "42", "b", "2.5"]);
}

#[tokio::test]
async fn scripts_see_hgetall_and_hrandfield_as_flat_tables() {
    let server = start().await;
    // Scripts speak RESP2 unless they ask, even for a RESP3 caller.
    let mut con = connect_resp3(&server).await;
    fill(&mut con, "h", 1).await;
    let script = "local all = redis.call('HGETALL', KEYS[1]) \
                  local picks = redis.call('HRANDFIELD', KEYS[1], -2, 'WITHVALUES') \
                  return {#all, all[1], all[2], #picks, picks[1], picks[2]}";
    let Value::Array(got) = cmd(&mut con, &["EVAL", script, "1", "h"]).await.unwrap() else {
        panic!("an array")
    };
    assert_eq!(got[0], Value::Int(2));
    assert_eq!(text(&got[1]), "f0");
    assert_eq!(text(&got[2]), "v0");
    assert_eq!(got[3], Value::Int(4));
    assert_eq!(text(&got[4]), "f0");
    assert_eq!(text(&got[5]), "v0");
    let err = err_line(
        &mut con,
        &[
            "EVAL",
            "return redis.call('HINCRBY', KEYS[1], 'f0', 1)",
            "1",
            "h",
        ],
    )
    .await;
    assert!(err.contains("hash value is not an integer"), "{err}");
}

#[tokio::test]
async fn the_last_field_deleted_takes_the_key_along() {
    let server = start().await;
    let mut con = connect(&server).await;
    fill(&mut con, "big", 200).await;
    let mut c = redis::cmd("HDEL");
    c.arg("big");
    for i in 0..200 {
        c.arg(format!("f{i}"));
    }
    let n: i64 = c.query_async(&mut con).await.unwrap();
    assert_eq!(n, 200);
    assert_eq!(server.dbsize(0), 0);
}
