//! List commands through the `redis` crate.

mod common;

use common::{
    block_raw, cmd, connect, connect_resp3, err_line, expect_reply, start, until_blocked,
};
use redis::AsyncCommands;

#[tokio::test]
async fn push_pop_and_range_keep_order() {
    let server = start().await;
    let mut con = connect(&server).await;
    let n: i64 = con.rpush("q", &["a", "b", "c"]).await.unwrap();
    assert_eq!(n, 3);
    let n: i64 = con.lpush("q", "z").await.unwrap();
    assert_eq!(n, 4);
    let all: Vec<String> = con.lrange("q", 0, -1).await.unwrap();
    assert_eq!(all, ["z", "a", "b", "c"]);
    let first: Option<String> = con.lpop("q", None).await.unwrap();
    assert_eq!(first.as_deref(), Some("z"));
    let last: Option<String> = con.rpop("q", None).await.unwrap();
    assert_eq!(last.as_deref(), Some("c"));
    let len: i64 = con.llen("q").await.unwrap();
    assert_eq!(len, 2);
}

#[tokio::test]
async fn popping_the_last_element_deletes_the_list() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: i64 = con.rpush("q", "only").await.unwrap();
    let _: Option<String> = con.lpop("q", None).await.unwrap();
    assert_eq!(server.dbsize(0), 0);
}

#[tokio::test]
async fn list_commands_on_other_types_are_wrongtype() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.set("s", "v", None);
    cmd(&mut con, &["LOCK.ACQUIRE", "L", "me", "10000"])
        .await
        .unwrap();
    for key in ["s", "L"] {
        assert!(err_line(&mut con, &["LPUSH", key, "x"])
            .await
            .starts_with("WRONGTYPE"));
        assert!(err_line(&mut con, &["LLEN", key])
            .await
            .starts_with("WRONGTYPE"));
    }
    let _: i64 = con.rpush("q", "x").await.unwrap();
    assert!(err_line(&mut con, &["GET", "q"])
        .await
        .starts_with("WRONGTYPE"));
    assert!(err_line(&mut con, &["LOCK.ACQUIRE", "q", "me", "1000"])
        .await
        .starts_with("WRONGTYPE"));
}

#[tokio::test]
async fn blpop_waits_for_a_push_and_takes_the_element() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BLPOP q 0\r\n", 1).await;
    let n: i64 = con.rpush("q", &["a", "b"]).await.unwrap();
    assert_eq!(n, 2, "the pusher sees the length before the hand-over");
    expect_reply(&mut waiter, "*2\r\n$1\r\nq\r\n$1\r\na\r\n").await;
    let rest: Vec<String> = con.lrange("q", 0, -1).await.unwrap();
    assert_eq!(rest, ["b"]);
    until_blocked(&mut con, 0).await;
}

#[tokio::test]
async fn waiters_are_served_first_come_first_served_from_their_end() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut first = block_raw(&server, &mut con, "BRPOP q 0\r\n", 1).await;
    let mut second = block_raw(&server, &mut con, "BLPOP q 0\r\n", 2).await;
    let _: i64 = con.rpush("q", &["a", "b", "c"]).await.unwrap();
    expect_reply(&mut first, "*2\r\n$1\r\nq\r\n$1\r\nc\r\n").await;
    expect_reply(&mut second, "*2\r\n$1\r\nq\r\n$1\r\na\r\n").await;
    let rest: Vec<String> = con.lrange("q", 0, -1).await.unwrap();
    assert_eq!(rest, ["b"]);
}

#[tokio::test]
async fn a_waiter_on_several_keys_is_served_once() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BLPOP a b 0\r\n", 1).await;
    let _: i64 = con.rpush("b", "x").await.unwrap();
    expect_reply(&mut waiter, "*2\r\n$1\r\nb\r\n$1\r\nx\r\n").await;
    // Its place in a's queue went with it: a push to a stays in the list.
    let _: i64 = con.rpush("a", "y").await.unwrap();
    let len: i64 = con.llen("a").await.unwrap();
    assert_eq!(len, 1);
}

#[tokio::test]
async fn blpop_times_out_on_the_server_clock() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.pause_time();
    let mut waiter = block_raw(&server, &mut con, "BLPOP q 30\r\n", 1).await;
    server.advance_time(std::time::Duration::from_secs(31));
    expect_reply(&mut waiter, "*-1\r\n").await;
    until_blocked(&mut con, 0).await;
    // A push after the timeout stays in the list.
    let _: i64 = con.rpush("q", "x").await.unwrap();
    let len: i64 = con.llen("q").await.unwrap();
    assert_eq!(len, 1);
}

#[tokio::test]
async fn blpop_with_a_fraction_of_a_second_times_out_in_real_time() {
    let server = start().await;
    let mut con = connect_resp3(&server).await;
    let started = std::time::Instant::now();
    let v = cmd(&mut con, &["BLPOP", "q", "0.05"]).await.unwrap();
    assert_eq!(v, redis::Value::Nil);
    assert!(started.elapsed() >= std::time::Duration::from_millis(45));
}

#[tokio::test]
async fn a_script_push_is_handed_over_when_the_script_ends() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BLPOP sig 0\r\n", 1).await;
    // Inside the script the element is still in the list.
    let seen: i64 = redis::cmd("EVAL")
        .arg("redis.call('lpush', KEYS[1], 'go') return redis.call('llen', KEYS[1])")
        .arg(1)
        .arg("sig")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(seen, 1);
    expect_reply(&mut waiter, "*2\r\n$3\r\nsig\r\n$2\r\ngo\r\n").await;
    assert_eq!(server.dbsize(0), 0);
}

#[tokio::test]
async fn a_transaction_push_is_handed_over_after_exec() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BRPOP q 0\r\n", 1).await;
    let (len, after): (i64, i64) = redis::pipe()
        .atomic()
        .rpush("q", "x")
        .llen("q")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((len, after), (1, 1));
    expect_reply(&mut waiter, "*2\r\n$1\r\nq\r\n$1\r\nx\r\n").await;
}

#[tokio::test]
async fn renaming_a_list_onto_a_waited_key_serves_the_waiter() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BLPOP dst 0\r\n", 1).await;
    let _: i64 = con.rpush("src", "v").await.unwrap();
    let _: () = con.rename("src", "dst").await.unwrap();
    expect_reply(&mut waiter, "*2\r\n$3\r\ndst\r\n$1\r\nv\r\n").await;
}

#[tokio::test]
async fn a_waiter_that_disconnects_leaves_the_queue() {
    let server = start().await;
    let mut con = connect(&server).await;
    let waiter = block_raw(&server, &mut con, "BLPOP q 0\r\n", 1).await;
    drop(waiter);
    until_blocked(&mut con, 0).await;
    let _: i64 = con.rpush("q", "x").await.unwrap();
    let len: i64 = con.llen("q").await.unwrap();
    assert_eq!(len, 1, "nobody took the element");
}

#[tokio::test]
async fn blocked_clients_show_in_client_list() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _waiter = block_raw(&server, &mut con, "BLPOP q 0\r\n", 1).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        list.lines()
            .any(|l| l.contains("flags=b") && l.contains("cmd=blpop")),
        "{list}"
    );
}

async fn encoding(con: &mut redis::aio::MultiplexedConnection, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query_async(con)
        .await
        .unwrap()
}

async fn range(con: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    con.lrange(key, 0, -1).await.unwrap()
}

#[tokio::test]
async fn blmove_waits_for_a_push_and_moves_the_element() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BLMOVE src dst LEFT RIGHT 0\r\n", 1).await;
    let _: i64 = con.rpush("dst", "old").await.unwrap();
    let _: i64 = con.rpush("src", &["a", "b"]).await.unwrap();
    expect_reply(&mut waiter, "$1\r\na\r\n").await;
    assert_eq!(range(&mut con, "src").await, ["b"]);
    assert_eq!(range(&mut con, "dst").await, ["old", "a"]);
    until_blocked(&mut con, 0).await;
}

#[tokio::test]
async fn a_blmove_wakes_a_client_blocked_on_its_destination() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut popper = block_raw(&server, &mut con, "BLPOP dst 0\r\n", 1).await;
    let mut mover = block_raw(&server, &mut con, "BRPOPLPUSH src dst 0\r\n", 2).await;
    let _: i64 = con.rpush("src", "x").await.unwrap();
    expect_reply(&mut mover, "$1\r\nx\r\n").await;
    expect_reply(&mut popper, "*2\r\n$3\r\ndst\r\n$1\r\nx\r\n").await;
    assert_eq!(server.dbsize(0), 0, "the element went all the way through");
}

#[tokio::test]
async fn a_chain_of_blmoves_is_served_in_one_round() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut last = block_raw(&server, &mut con, "BLMPOP 0 1 c RIGHT COUNT 5\r\n", 1).await;
    let mut second = block_raw(&server, &mut con, "BLMOVE b c LEFT LEFT 0\r\n", 2).await;
    let mut first = block_raw(&server, &mut con, "BLMOVE a b RIGHT LEFT 0\r\n", 3).await;
    let _: i64 = con.lpush("a", "v").await.unwrap();
    expect_reply(&mut first, "$1\r\nv\r\n").await;
    expect_reply(&mut second, "$1\r\nv\r\n").await;
    expect_reply(&mut last, "*2\r\n$1\r\nc\r\n*1\r\n$1\r\nv\r\n").await;
    until_blocked(&mut con, 0).await;
    assert_eq!(server.dbsize(0), 0);
}

#[tokio::test]
async fn lmove_onto_a_waited_key_serves_the_waiter() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BRPOP dst 0\r\n", 1).await;
    let _: i64 = con.rpush("src", &["a", "b"]).await.unwrap();
    let moved: String = redis::cmd("LMOVE")
        .arg(&["src", "dst", "LEFT", "RIGHT"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(moved, "a");
    expect_reply(&mut waiter, "*2\r\n$3\r\ndst\r\n$1\r\na\r\n").await;
    assert_eq!(range(&mut con, "src").await, ["b"]);
}

#[tokio::test]
async fn a_blmove_whose_destination_became_another_type_gets_wrongtype() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BLMOVE src dst LEFT RIGHT 0\r\n", 1).await;
    server.set("dst", "string", None);
    let _: i64 = con.rpush("src", "x").await.unwrap();
    expect_reply(
        &mut waiter,
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    assert_eq!(range(&mut con, "src").await, ["x"], "nothing was taken");
}

#[tokio::test]
async fn blmpop_takes_up_to_count_from_the_first_list_pushed() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(&server, &mut con, "BLMPOP 0 2 k1 k2 RIGHT COUNT 2\r\n", 1).await;
    let _: i64 = con.rpush("k2", &["a", "b", "c"]).await.unwrap();
    expect_reply(
        &mut waiter,
        "*2\r\n$2\r\nk2\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
    )
    .await;
    assert_eq!(range(&mut con, "k2").await, ["a"]);
}

#[tokio::test]
async fn blmove_and_blmpop_time_out_with_a_nil_array() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.pause_time();
    let mut mover = block_raw(&server, &mut con, "BLMOVE s d LEFT LEFT 5\r\n", 1).await;
    let mut popper = block_raw(&server, &mut con, "BLMPOP 2.5 1 s LEFT\r\n", 2).await;
    server.advance_time(std::time::Duration::from_secs(3));
    expect_reply(&mut popper, "*-1\r\n").await;
    until_blocked(&mut con, 1).await;
    server.advance_time(std::time::Duration::from_secs(3));
    expect_reply(&mut mover, "*-1\r\n").await;
    until_blocked(&mut con, 0).await;
    let _: i64 = con.rpush("s", "x").await.unwrap();
    assert_eq!(range(&mut con, "s").await, ["x"]);
}

#[tokio::test]
async fn blocking_list_commands_do_not_wait_in_multi_or_scripts() {
    let server = start().await;
    let mut con = connect(&server).await;
    let (moved, popped): (Option<String>, Option<Vec<String>>) = redis::pipe()
        .atomic()
        .cmd("BLMOVE")
        .arg(&["nokey", "d", "LEFT", "RIGHT", "0"])
        .cmd("BLMPOP")
        .arg(&["0", "1", "nokey", "LEFT"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((moved, popped), (None, None));
    let v: Option<String> = redis::cmd("EVAL")
        .arg("return redis.call('blmpop', 0, 1, KEYS[1], 'LEFT')")
        .arg(1)
        .arg("nokey")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, None);
    let _: i64 = con.rpush("k", &["a", "b"]).await.unwrap();
    let v: Vec<redis::Value> = redis::cmd("EVAL")
        .arg("return redis.call('blmpop', 0, 1, KEYS[1], 'RIGHT')")
        .arg(1)
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v.len(), 2);
    let e = err_line(
        &mut con,
        &[
            "EVAL",
            "return redis.call('blmove', 'k', 'd', 'LEFT', 'LEFT', 0)",
            "0",
        ],
    )
    .await;
    assert!(
        e.contains("This Redis command is not allowed from script"),
        "{e}"
    );
    until_blocked(&mut con, 0).await;
}

#[tokio::test]
async fn encodings_follow_list_max_listpack_size_both_ways_as_redis_7_2() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["CONFIG", "SET", "list-max-listpack-size", "4"])
        .await
        .unwrap();
    let _: i64 = con.rpush("l", &["1", "2", "3", "4"]).await.unwrap();
    assert_eq!(encoding(&mut con, "l").await, "listpack");
    let _: i64 = con.rpush("l", "5").await.unwrap();
    assert_eq!(encoding(&mut con, "l").await, "quicklist");
    // Nodes of 4 and 1: popping the tail leaves one node, a listpack again
    // only at half the limit (2 elements).
    let _: Vec<String> = con.rpop("l", std::num::NonZeroUsize::new(2)).await.unwrap();
    assert_eq!(encoding(&mut con, "l").await, "quicklist");
    let _: Option<String> = con.rpop("l", None).await.unwrap();
    assert_eq!(encoding(&mut con, "l").await, "listpack");
    // A size class: -1 is 4 KB a node.
    cmd(&mut con, &["CONFIG", "SET", "list-max-listpack-size", "-1"])
        .await
        .unwrap();
    let big = "x".repeat(1000);
    for _ in 0..4 {
        let _: i64 = con.rpush("s", &big).await.unwrap();
    }
    assert_eq!(encoding(&mut con, "s").await, "listpack");
    let _: i64 = con.rpush("s", &big).await.unwrap();
    assert_eq!(encoding(&mut con, "s").await, "quicklist");
    cmd(&mut con, &["LTRIM", "s", "0", "0"]).await.unwrap();
    assert_eq!(encoding(&mut con, "s").await, "listpack");
    // LSET with an element bigger than a node, and back.
    cmd(&mut con, &["LSET", "s", "0", &"y".repeat(5000)])
        .await
        .unwrap();
    assert_eq!(encoding(&mut con, "s").await, "quicklist");
    cmd(&mut con, &["LSET", "s", "0", "small"]).await.unwrap();
    assert_eq!(encoding(&mut con, "s").await, "listpack");
    // LINSERT and LMOVE grow a list as a push does.
    let _: i64 = con.rpush("m", &["a", "b"]).await.unwrap();
    cmd(&mut con, &["LINSERT", "m", "AFTER", "a", &"z".repeat(5000)])
        .await
        .unwrap();
    assert_eq!(encoding(&mut con, "m").await, "quicklist");
    assert_eq!(range(&mut con, "m").await[1].len(), 5000);
}

#[tokio::test]
async fn a_waiter_for_another_type_does_not_hold_back_the_list_waiters_behind_it() {
    let server = common::start().await;
    let mut con = common::connect(&server).await;
    // First in line waits for a sorted set at k, second for a list.
    let mut zset_waiter = common::block_raw(&server, &mut con, "BZPOPMIN k 2\r\n", 1).await;
    let mut list_waiter = common::block_raw(&server, &mut con, "BLPOP k 2\r\n", 2).await;
    let _: i64 = redis::cmd("LPUSH")
        .arg("k")
        .arg("a")
        .query_async(&mut con)
        .await
        .unwrap();
    // As Redis: the list waiter is served, the other keeps waiting.
    common::expect_reply(&mut list_waiter, "*2\r\n$1\r\nk\r\n$1\r\na\r\n").await;
    common::until_blocked(&mut con, 1).await;
    let _: () = redis::cmd("DEL")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg("k")
        .arg(1)
        .arg("m")
        .query_async(&mut con)
        .await
        .unwrap();
    common::expect_reply(&mut zset_waiter, "*3\r\n$1\r\nk\r\n$1\r\nm\r\n$1\r\n1\r\n").await;
}

/// A connection's blocking waits share one timer, moved to each wait's
/// deadline: a shorter timeout after a longer one, a wait after one that timed
/// out, and a wait without timeout after one whose deadline is still ahead
/// each end when they should.
#[tokio::test]
async fn successive_waits_of_one_client_keep_their_own_timeouts() {
    use std::time::{Duration, Instant};
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = common::open(&server).await;
    // A long timeout, served at once: its deadline stays ahead.
    common::send(&mut waiter, &["BLPOP q 10"]).await;
    until_blocked(&mut con, 1).await;
    let _: i64 = con.rpush("q", "a").await.unwrap();
    expect_reply(&mut waiter, "*2\r\n$1\r\nq\r\n$1\r\na\r\n").await;
    // A shorter one after it times out on its own deadline, not the first's.
    let started = Instant::now();
    common::send(&mut waiter, &["BLPOP q 0.1"]).await;
    expect_reply(&mut waiter, "*-1\r\n").await;
    assert!(started.elapsed() >= Duration::from_millis(95));
    // After a timeout, the next wait times out too.
    let started = Instant::now();
    common::send(&mut waiter, &["BLPOP q 0.05"]).await;
    expect_reply(&mut waiter, "*-1\r\n").await;
    assert!(started.elapsed() >= Duration::from_millis(45));
    // A wait served before its deadline, then one without a timeout: the
    // first's deadline passing does not end the second.
    common::send(&mut waiter, &["BLPOP q 1"]).await;
    until_blocked(&mut con, 1).await;
    let _: i64 = con.rpush("q", "b").await.unwrap();
    expect_reply(&mut waiter, "*2\r\n$1\r\nq\r\n$1\r\nb\r\n").await;
    common::send(&mut waiter, &["BLPOP q 0"]).await;
    until_blocked(&mut con, 1).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    until_blocked(&mut con, 1).await;
    let _: i64 = con.rpush("q", "c").await.unwrap();
    expect_reply(&mut waiter, "*2\r\n$1\r\nq\r\n$1\r\nc\r\n").await;
}
