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
