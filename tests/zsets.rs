//! Sorted-set commands through the `redis` crate: what the recorded cases in
//! `redis-tests/zset*.txt` cannot show (Redis 7.2's ZRANK WITHSCORE, RESP3
//! shapes, scripts, transactions, random replies and big sets).

mod common;

use common::{
    block_raw, cmd, connect, connect_resp3, err_line, expect_reply, start, until_blocked,
};
use redis::Value;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

async fn ok(con: &mut redis::aio::MultiplexedConnection, words: &[&str]) -> Value {
    cmd(con, words)
        .await
        .unwrap_or_else(|e| panic!("{words:?}: {e}"))
}

#[tokio::test]
async fn zrank_withscore_replies_the_rank_and_the_score() {
    let server = start().await;
    let mut con = connect(&server).await;
    ok(&mut con, &["ZADD", "z", "1", "a", "2.5", "b", "3", "c"]).await;
    assert_eq!(
        ok(&mut con, &["ZRANK", "z", "b", "WITHSCORE"]).await,
        Value::Array(vec![Value::Int(1), bulk("2.5")])
    );
    assert_eq!(
        ok(&mut con, &["ZREVRANK", "z", "c", "withscore"]).await,
        Value::Array(vec![Value::Int(0), bulk("3")])
    );
    assert_eq!(
        ok(&mut con, &["ZRANK", "z", "nosuch", "WITHSCORE"]).await,
        Value::Nil
    );
    assert_eq!(
        ok(&mut con, &["ZRANK", "nokey", "a", "WITHSCORE"]).await,
        Value::Nil
    );
    assert_eq!(
        err_line(&mut con, &["ZRANK", "z", "b", "WITHSCORES"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err_line(&mut con, &["ZREVRANK", "z", "b", "WITHSCORE", "x"]).await,
        "ERR wrong number of arguments for 'zrevrank' command"
    );
    let mut con3 = connect_resp3(&server).await;
    assert_eq!(
        ok(&mut con3, &["ZRANK", "z", "b", "WITHSCORE"]).await,
        Value::Array(vec![Value::Int(1), Value::Double(2.5)])
    );
    assert_eq!(
        ok(&mut con3, &["ZRANK", "z", "x", "WITHSCORE"]).await,
        Value::Nil
    );
}

#[tokio::test]
async fn resp3_replies_scores_as_doubles_and_pairs_as_arrays() {
    let server = start().await;
    let mut con = connect_resp3(&server).await;
    ok(&mut con, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]).await;
    let pair = |m: &str, s: f64| Value::Array(vec![bulk(m), Value::Double(s)]);
    assert_eq!(
        ok(&mut con, &["ZSCORE", "z", "b"]).await,
        Value::Double(2.0)
    );
    assert_eq!(
        ok(&mut con, &["ZRANGE", "z", "0", "1", "WITHSCORES"]).await,
        Value::Array(vec![pair("a", 1.0), pair("b", 2.0)])
    );
    assert_eq!(
        ok(
            &mut con,
            &["ZUNION", "1", "z", "WEIGHTS", "2", "WITHSCORES"]
        )
        .await,
        Value::Array(vec![pair("a", 2.0), pair("b", 4.0), pair("c", 6.0)])
    );
    assert_eq!(
        ok(&mut con, &["ZPOPMIN", "z"]).await,
        Value::Array(vec![bulk("a"), Value::Double(1.0)])
    );
    assert_eq!(
        ok(&mut con, &["ZPOPMAX", "z", "1"]).await,
        Value::Array(vec![pair("c", 3.0)])
    );
    assert_eq!(
        ok(&mut con, &["ZMPOP", "1", "z", "MIN"]).await,
        Value::Array(vec![bulk("z"), Value::Array(vec![pair("b", 2.0)])])
    );
    ok(&mut con, &["ZADD", "one", "7", "m"]).await;
    assert_eq!(
        ok(&mut con, &["ZRANDMEMBER", "one", "-2", "WITHSCORES"]).await,
        Value::Array(vec![pair("m", 7.0), pair("m", 7.0)])
    );
}

#[tokio::test]
async fn transactions_queue_and_run_sorted_set_commands() {
    let server = start().await;
    let mut con = connect(&server).await;
    ok(&mut con, &["MULTI"]).await;
    for words in [
        &["ZADD", "z", "1", "a", "2", "b"][..],
        &["ZINCRBY", "z", "5", "a"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["ZPOPMAX", "z"],
    ] {
        assert_eq!(
            ok(&mut con, words).await,
            Value::SimpleString("QUEUED".into())
        );
    }
    let replies = ok(&mut con, &["EXEC"]).await;
    let Value::Array(replies) = replies else {
        panic!("EXEC replies with an array: {replies:?}")
    };
    assert_eq!(replies[0], Value::Int(2));
    assert_eq!(replies[1], bulk("6"));
    assert_eq!(
        replies[2],
        Value::Array(vec![bulk("b"), bulk("2"), bulk("a"), bulk("6")])
    );
    assert_eq!(replies[3], Value::Array(vec![bulk("a"), bulk("6")]));
}

#[tokio::test]
async fn scripts_see_scores_as_strings_or_after_setresp_3_as_doubles() {
    let server = start().await;
    let mut con = connect(&server).await;
    ok(&mut con, &["ZADD", "z", "1.5", "a"]).await;
    let resp2 = "local s = redis.call('ZSCORE', KEYS[1], 'a') return {type(s), s}";
    assert_eq!(
        ok(&mut con, &["EVAL", resp2, "1", "z"]).await,
        Value::Array(vec![bulk("string"), bulk("1.5")])
    );
    let resp3 = "redis.setresp(3) local s = redis.call('ZSCORE', KEYS[1], 'a') \
                 return {type(s), tostring(s.double)}";
    assert_eq!(
        ok(&mut con, &["EVAL", resp3, "1", "z"]).await,
        Value::Array(vec![bulk("table"), bulk("1.5")])
    );
    let pairs = "redis.setresp(3) local r = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES') \
                 return {#r, #r[1], r[1][1], tostring(r[1][2].double)}";
    assert_eq!(
        ok(&mut con, &["EVAL", pairs, "1", "z"]).await,
        Value::Array(vec![Value::Int(1), Value::Int(2), bulk("a"), bulk("1.5")])
    );
    // A RESP3 caller does not change the protocol the script's calls speak.
    let mut con3 = connect_resp3(&server).await;
    let flat = "return #redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')";
    assert_eq!(
        ok(&mut con3, &["EVAL", flat, "1", "z"]).await,
        Value::Int(2)
    );
}

#[tokio::test]
async fn zrandmember_counts_give_distinct_or_repeated_members() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut args = vec!["ZADD".to_string(), "z".to_string()];
    for i in 0..300 {
        args.push(i.to_string());
        args.push(format!("m{i}"));
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&mut con, &words).await;
    for (key, size) in [("z", 300usize), ("small", 5)] {
        if key == "small" {
            ok(
                &mut con,
                &[
                    "ZADD", "small", "1", "m1", "2", "m2", "3", "m3", "4", "m4", "5", "m5",
                ],
            )
            .await;
        }
        for count in [1usize, 3, size - 1] {
            let Value::Array(got) = ok(&mut con, &["ZRANDMEMBER", key, &count.to_string()]).await
            else {
                panic!("an array")
            };
            let distinct: std::collections::HashSet<String> =
                got.iter().map(|v| format!("{v:?}")).collect();
            assert_eq!((got.len(), distinct.len()), (count, count), "{key} {count}");
        }
        let Value::Array(got) = ok(&mut con, &["ZRANDMEMBER", key, "-1000"]).await else {
            panic!("an array")
        };
        assert_eq!(got.len(), 1000);
        let distinct: std::collections::HashSet<String> =
            got.iter().map(|v| format!("{v:?}")).collect();
        assert!(distinct.len() <= size && distinct.len() > 1);
    }
    let Value::Array(got) = ok(&mut con, &["ZRANDMEMBER", "z", "2", "WITHSCORES"]).await else {
        panic!("an array")
    };
    assert_eq!(got.len(), 4);
    let one = ok(&mut con, &["ZRANDMEMBER", "z"]).await;
    assert!(matches!(one, Value::BulkString(ref m) if m.starts_with(b"m")));
    // A count no reply could hold is refused instead of allocated.
    assert_eq!(
        err_line(&mut con, &["ZRANDMEMBER", "z", "-4611686018427387903"]).await,
        "ERR value is out of range"
    );
    assert_eq!(
        err_line(
            &mut con,
            &["ZRANDMEMBER", "z", "-4611686018427387903", "WITHSCORES"]
        )
        .await,
        "ERR value is out of range"
    );
    assert_eq!(
        ok(&mut con, &["ZRANDMEMBER", "z", "9223372036854775807"])
            .await
            .as_sequence()
            .map(|s| s.len()),
        Some(300)
    );
}

#[tokio::test]
async fn zadd_picks_the_encoding_from_its_element_count_as_redis_7_2() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut args = vec!["ZADD".to_string(), "z".to_string()];
    for i in 0..129 {
        args.push(i.to_string());
        args.push("same".to_string());
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(ok(&mut con, &words).await, Value::Int(1));
    assert_eq!(ok(&mut con, &["ZCARD", "z"]).await, Value::Int(1));
    assert_eq!(
        ok(&mut con, &["OBJECT", "ENCODING", "z"]).await,
        bulk("skiplist")
    );
    ok(&mut con, &["ZADD", "y", "1", "a"]).await;
    assert_eq!(
        ok(&mut con, &["OBJECT", "ENCODING", "y"]).await,
        bulk("listpack")
    );
    args[1] = "y".to_string();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&mut con, &words).await;
    assert_eq!(
        ok(&mut con, &["OBJECT", "ENCODING", "y"]).await,
        bulk("skiplist")
    );
    assert_eq!(ok(&mut con, &["ZCARD", "y"]).await, Value::Int(2));
}

#[tokio::test]
async fn a_big_set_answers_ranks_ranges_and_scans_after_conversion() {
    let server = start().await;
    let mut con = connect(&server).await;
    let n = 5000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut args = vec!["ZADD".to_string(), "z".to_string()];
        for i in chunk {
            args.push(i.to_string());
            args.push(format!("m{i:05}"));
        }
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&mut con, &words).await;
    }
    assert_eq!(
        ok(&mut con, &["OBJECT", "ENCODING", "z"]).await,
        bulk("skiplist")
    );
    assert_eq!(
        ok(&mut con, &["ZRANK", "z", "m04321"]).await,
        Value::Int(4321)
    );
    assert_eq!(
        ok(&mut con, &["ZREVRANK", "z", "m04321"]).await,
        Value::Int(n - 1 - 4321)
    );
    assert_eq!(
        ok(
            &mut con,
            &["ZRANGE", "z", "(2500", "+inf", "BYSCORE", "LIMIT", "10", "2"]
        )
        .await,
        Value::Array(vec![bulk("m02511"), bulk("m02512")])
    );
    assert_eq!(
        ok(&mut con, &["ZCOUNT", "z", "100", "(200"]).await,
        Value::Int(100)
    );
    assert_eq!(
        ok(&mut con, &["ZREMRANGEBYSCORE", "z", "0", "(1000"]).await,
        Value::Int(1000)
    );
    assert_eq!(
        ok(&mut con, &["ZRANGE", "z", "0", "0"]).await,
        Value::Array(vec![bulk("m01000")])
    );
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    for _ in 0..10_000 {
        let Value::Array(reply) = ok(&mut con, &["ZSCAN", "z", &cursor, "COUNT", "100"]).await
        else {
            panic!("an array")
        };
        let (Some(Value::BulkString(next)), Some(Value::Array(items))) =
            (reply.first(), reply.get(1))
        else {
            panic!("cursor and items")
        };
        for pair in items.chunks(2) {
            seen.insert(format!("{:?}", pair[0]));
        }
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), (n - 1000) as usize);
}

#[tokio::test]
async fn sorted_sets_are_wrongtype_for_other_commands_and_typed_zset() {
    let server = start().await;
    let mut con = connect(&server).await;
    ok(&mut con, &["ZADD", "z", "1", "a"]).await;
    assert_eq!(
        ok(&mut con, &["TYPE", "z"]).await,
        Value::SimpleString("zset".into())
    );
    assert!(err_line(&mut con, &["LPUSH", "z", "x"])
        .await
        .starts_with("WRONGTYPE"));
    assert!(err_line(&mut con, &["GET", "z"])
        .await
        .starts_with("WRONGTYPE"));
    ok(&mut con, &["RPUSH", "l", "x"]).await;
    for words in [
        &["ZADD", "l", "1", "a"][..],
        &["ZRANGE", "l", "0", "-1"],
        &["ZUNIONSTORE", "d", "2", "z", "l"],
        &["ZMPOP", "2", "l", "z", "MIN"],
        &["ZSCAN", "l", "0"],
    ] {
        assert!(
            err_line(&mut con, words).await.starts_with("WRONGTYPE"),
            "{words:?}"
        );
    }
}

// ---- BZPOPMIN, BZPOPMAX, BZMPOP waiting on another connection ------------------

#[tokio::test]
async fn bzpopmin_waits_for_a_zadd_on_another_connection() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BZPOPMIN z 0\r\n", 1).await;
    assert_eq!(
        ok(&mut con, &["ZADD", "z", "2", "b", "1", "a"]).await,
        Value::Int(2)
    );
    expect_reply(&mut waiter, "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n").await;
    assert_eq!(
        ok(&mut con, &["ZRANGE", "z", "0", "-1"]).await,
        Value::Array(vec![bulk("b")])
    );
    until_blocked(&mut con, 0).await;
}

#[tokio::test]
async fn sorted_set_waiters_are_served_first_come_first_served() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut first = block_raw(&server, &mut con, "BZPOPMAX z 0\r\n", 1).await;
    let mut second = block_raw(&server, &mut con, "BZPOPMIN z 0\r\n", 2).await;
    ok(&mut con, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]).await;
    expect_reply(&mut first, "*3\r\n$1\r\nz\r\n$1\r\nc\r\n$1\r\n3\r\n").await;
    expect_reply(&mut second, "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n").await;
    assert_eq!(
        ok(&mut con, &["ZRANGE", "z", "0", "-1"]).await,
        Value::Array(vec![bulk("b")])
    );
}

#[tokio::test]
async fn bzmpop_count_takes_up_to_count_members_when_woken() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BZMPOP 0 2 x z MAX COUNT 2\r\n", 1).await;
    ok(&mut con, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]).await;
    expect_reply(
        &mut waiter,
        "*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
    )
    .await;
    assert_eq!(ok(&mut con, &["ZCARD", "z"]).await, Value::Int(1));
}

#[tokio::test]
async fn geoadd_and_zunionstore_wake_sorted_set_waiters() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BZPOPMIN g 0\r\n", 1).await;
    ok(
        &mut con,
        &["GEOADD", "g", "13.361389", "38.115556", "Palermo"],
    )
    .await;
    expect_reply(
        &mut waiter,
        "*3\r\n$1\r\ng\r\n$7\r\nPalermo\r\n$16\r\n3479099956230698\r\n",
    )
    .await;
    let mut waiter = block_raw(&server, &mut con, "BZPOPMAX dst 0\r\n", 1).await;
    ok(&mut con, &["SADD", "s", "m"]).await;
    assert_eq!(
        ok(&mut con, &["ZUNIONSTORE", "dst", "1", "s"]).await,
        Value::Int(1)
    );
    expect_reply(&mut waiter, "*3\r\n$3\r\ndst\r\n$1\r\nm\r\n$1\r\n1\r\n").await;
}

#[tokio::test]
async fn a_sorted_set_waiter_that_disconnects_takes_nothing() {
    let server = start().await;
    let mut con = connect(&server).await;
    let gone = block_raw(&server, &mut con, "BZPOPMIN z 0\r\n", 1).await;
    let mut next = block_raw(&server, &mut con, "BZPOPMIN z 0\r\n", 2).await;
    drop(gone);
    until_blocked(&mut con, 1).await;
    ok(&mut con, &["ZADD", "z", "1", "a"]).await;
    expect_reply(&mut next, "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n").await;
    let gone = block_raw(&server, &mut con, "BZPOPMIN z 0\r\n", 1).await;
    drop(gone);
    until_blocked(&mut con, 0).await;
    ok(&mut con, &["ZADD", "z", "2", "b"]).await;
    assert_eq!(
        ok(&mut con, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]).await,
        Value::Array(vec![bulk("b"), bulk("2")])
    );
}

#[tokio::test]
async fn bzpopmin_with_a_tenth_of_a_second_times_out_with_nil() {
    let server = start().await;
    let mut con = connect_resp3(&server).await;
    let started = std::time::Instant::now();
    assert_eq!(ok(&mut con, &["BZPOPMIN", "z", "0.1"]).await, Value::Nil);
    assert!(started.elapsed() >= std::time::Duration::from_millis(95));
    assert_eq!(
        ok(&mut con, &["BZMPOP", "0.1", "1", "z", "MIN"]).await,
        Value::Nil
    );
}

#[tokio::test]
async fn bzpopmin_in_resp3_replies_the_score_as_a_double() {
    let server = start().await;
    let mut con = connect_resp3(&server).await;
    ok(&mut con, &["ZADD", "z", "1.5", "a"]).await;
    assert_eq!(
        ok(&mut con, &["BZPOPMIN", "z", "0"]).await,
        Value::Array(vec![bulk("z"), bulk("a"), Value::Double(1.5)])
    );
}
