//! Streams where a recording cannot reach: blocking XREAD/XREADGROUP (woken by
//! XADD, first come first served, timeouts on the server clock, RESP3 map
//! replies, a destroyed group), idle times on a paused clock (XPENDING, XCLAIM,
//! XINFO CONSUMERS with Redis 7.2's `inactive` and `active-time`), and a big
//! stream trimmed approximately.

mod common;

use std::time::Duration;

use common::{block_raw, cmd, connect, err_line, expect_reply, read_until, start, until_blocked};
use redis::Value;
use tokio::io::AsyncWriteExt;

fn entry(id: &str, field: &str, value: &str) -> String {
    format!(
        "*2\r\n${}\r\n{id}\r\n*2\r\n${}\r\n{field}\r\n${}\r\n{value}\r\n",
        id.len(),
        field.len(),
        value.len()
    )
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// The value after `name` in a flat RESP2 field list.
fn field<'a>(fields: &'a [Value], name: &str) -> &'a Value {
    let at = fields
        .iter()
        .position(|v| matches!(v, Value::BulkString(b) if b == name.as_bytes()))
        .unwrap_or_else(|| panic!("no {name} in {fields:?}"));
    &fields[at + 1]
}

#[tokio::test]
async fn xread_block_waits_for_the_next_xadd_and_gets_only_new_entries() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["XADD", "s", "1-1", "old", "x"])
        .await
        .unwrap();
    let mut waiter = block_raw(&server, &mut con, "XREAD BLOCK 0 STREAMS s $\r\n", 1).await;
    cmd(&mut con, &["XADD", "other", "1-1", "a", "1"])
        .await
        .unwrap();
    cmd(&mut con, &["XADD", "s", "2-1", "new", "y"])
        .await
        .unwrap();
    let want = format!("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n{}", entry("2-1", "new", "y"));
    expect_reply(&mut waiter, &want).await;
    until_blocked(&mut con, 0).await;
}

#[tokio::test]
async fn xread_on_several_keys_is_woken_by_any_of_them() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut waiter = block_raw(
        &server,
        &mut con,
        "XREAD COUNT 5 BLOCK 0 STREAMS a b 0 0\r\n",
        1,
    )
    .await;
    cmd(&mut con, &["XADD", "b", "3-0", "f", "v"])
        .await
        .unwrap();
    let want = format!("*1\r\n*2\r\n$1\r\nb\r\n*1\r\n{}", entry("3-0", "f", "v"));
    expect_reply(&mut waiter, &want).await;
}

#[tokio::test]
async fn blocked_group_readers_are_served_first_come_first_served() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"])
        .await
        .unwrap();
    let mut first = block_raw(
        &server,
        &mut con,
        "XREADGROUP GROUP g c1 COUNT 1 BLOCK 0 STREAMS s >\r\n",
        1,
    )
    .await;
    let mut second = block_raw(
        &server,
        &mut con,
        "XREADGROUP GROUP g c2 COUNT 1 BLOCK 0 STREAMS s >\r\n",
        2,
    )
    .await;
    cmd(&mut con, &["XADD", "s", "1-0", "n", "1"])
        .await
        .unwrap();
    let one = format!("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n{}", entry("1-0", "n", "1"));
    expect_reply(&mut first, &one).await;
    until_blocked(&mut con, 1).await;
    cmd(&mut con, &["XADD", "s", "2-0", "n", "2"])
        .await
        .unwrap();
    let two = format!("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n{}", entry("2-0", "n", "2"));
    expect_reply(&mut second, &two).await;
    // Each delivery is pending for the consumer that got it.
    let Value::Array(summary) = cmd(&mut con, &["XPENDING", "s", "g"]).await.unwrap() else {
        panic!("XPENDING summary is an array");
    };
    assert_eq!(int(&summary[0]), 2);
}

#[tokio::test]
async fn a_block_timeout_runs_on_the_server_clock() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.pause_time();
    let mut waiter = block_raw(&server, &mut con, "XREAD BLOCK 5000 STREAMS s $\r\n", 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    until_blocked(&mut con, 1).await;
    server.advance_time(Duration::from_millis(5000));
    expect_reply(&mut waiter, "*-1\r\n").await;
    until_blocked(&mut con, 0).await;
}

#[tokio::test]
async fn a_blocked_xread_in_resp3_gets_a_map() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"HELLO 3\r\n").await.unwrap();
    let hello = read_until(&mut s, 1).await;
    assert!(hello.starts_with(b"%"), "{hello:?}");
    s.write_all(b"XREAD BLOCK 0 STREAMS s $\r\n").await.unwrap();
    until_blocked(&mut con, 1).await;
    cmd(&mut con, &["XADD", "s", "5-5", "k", "v"])
        .await
        .unwrap();
    let want = format!("%1\r\n$1\r\ns\r\n*1\r\n{}", entry("5-5", "k", "v"));
    expect_reply(&mut s, &want).await;
}

#[tokio::test]
async fn destroying_the_group_unblocks_its_readers_with_nogroup() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"])
        .await
        .unwrap();
    let mut waiter = block_raw(
        &server,
        &mut con,
        "XREADGROUP GROUP g c BLOCK 0 STREAMS s >\r\n",
        1,
    )
    .await;
    cmd(&mut con, &["XGROUP", "DESTROY", "s", "g"])
        .await
        .unwrap();
    expect_reply(
        &mut waiter,
        "-NOGROUP the consumer group this client was blocked on no longer exists\r\n",
    )
    .await;
}

#[tokio::test]
async fn blocking_reads_do_not_wait_inside_multi_and_are_refused_in_scripts() {
    let server = start().await;
    let mut con = connect(&server).await;
    let got: Value = redis::pipe()
        .atomic()
        .cmd("XREAD")
        .arg(&["BLOCK", "0", "STREAMS", "s", "$"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, Value::Array(vec![Value::Nil]));
    let e = err_line(
        &mut con,
        &[
            "EVAL",
            "return redis.call('XREAD','BLOCK',0,'STREAMS',KEYS[1],'$')",
            "1",
            "s",
        ],
    )
    .await;
    assert!(
        e.starts_with("ERR XREAD command is not allowed with BLOCK option from scripts"),
        "{e}"
    );
}

#[tokio::test]
async fn idle_times_follow_the_server_clock() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.pause_time();
    cmd(&mut con, &["XADD", "s", "1-1", "f", "v"])
        .await
        .unwrap();
    cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "0"])
        .await
        .unwrap();
    cmd(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"],
    )
    .await
    .unwrap();
    server.advance_time(Duration::from_millis(1500));
    let Value::Array(rows) = cmd(&mut con, &["XPENDING", "s", "g", "-", "+", "10"])
        .await
        .unwrap()
    else {
        panic!("rows");
    };
    let Value::Array(row) = &rows[0] else {
        panic!("row")
    };
    assert_eq!((int(&row[2]), int(&row[3])), (1500, 1));
    let Value::Array(none) = cmd(
        &mut con,
        &["XPENDING", "s", "g", "IDLE", "2000", "-", "+", "10"],
    )
    .await
    .unwrap() else {
        panic!("rows");
    };
    assert!(none.is_empty());
    // Too fresh to claim, then claimable.
    let Value::Array(claimed) = cmd(
        &mut con,
        &["XCLAIM", "s", "g", "bob", "2000", "1-1", "JUSTID"],
    )
    .await
    .unwrap() else {
        panic!("claimed");
    };
    assert!(claimed.is_empty());
    let Value::Array(consumers) = cmd(&mut con, &["XINFO", "CONSUMERS", "s", "g"])
        .await
        .unwrap()
    else {
        panic!("consumers");
    };
    assert_eq!(consumers.len(), 1, "a claim of nothing makes no consumer");
    let Value::Array(alice) = &consumers[0] else {
        panic!("alice")
    };
    assert_eq!(int(field(alice, "idle")), 1500);
    assert_eq!(int(field(alice, "inactive")), 1500);
    let Value::Array(claimed) = cmd(&mut con, &["XCLAIM", "s", "g", "bob", "1000", "1-1"])
        .await
        .unwrap()
    else {
        panic!("claimed");
    };
    assert_eq!(claimed.len(), 1);
    server.advance_time(Duration::from_millis(250));
    let Value::Array(rows) = cmd(&mut con, &["XPENDING", "s", "g", "-", "+", "10", "bob"])
        .await
        .unwrap()
    else {
        panic!("rows");
    };
    let Value::Array(row) = &rows[0] else {
        panic!("row")
    };
    assert_eq!((int(&row[2]), int(&row[3])), (250, 2));
    // A consumer that never read anything is inactive -1.
    cmd(&mut con, &["XGROUP", "CREATECONSUMER", "s", "g", "carl"])
        .await
        .unwrap();
    let Value::Array(consumers) = cmd(&mut con, &["XINFO", "CONSUMERS", "s", "g"])
        .await
        .unwrap()
    else {
        panic!("consumers");
    };
    let Value::Array(carl) = &consumers[2] else {
        panic!("carl")
    };
    assert_eq!(int(field(carl, "inactive")), -1);
    // XINFO STREAM FULL gives times as the server clock's.
    let now = server.now_ms() as i64;
    let Value::Array(full) = cmd(&mut con, &["XINFO", "STREAM", "s", "FULL"])
        .await
        .unwrap()
    else {
        panic!("full");
    };
    let Value::Array(groups) = field(&full, "groups") else {
        panic!("groups")
    };
    let Value::Array(g) = &groups[0] else {
        panic!("group")
    };
    let Value::Array(consumers) = field(g, "consumers") else {
        panic!("consumers")
    };
    let Value::Array(bob) = &consumers[1] else {
        panic!("bob")
    };
    assert_eq!(int(field(bob, "seen-time")), now - 250);
    assert_eq!(int(field(bob, "active-time")), now - 250);
}

#[tokio::test]
async fn an_approximate_trim_of_a_big_stream_keeps_whole_nodes() {
    let server = start().await;
    let mut con = connect(&server).await;
    for i in 1..=1000 {
        let id = format!("{i}-0");
        cmd(&mut con, &["XADD", "s", &id, "f", "v"]).await.unwrap();
    }
    let removed = cmd(&mut con, &["XTRIM", "s", "MAXLEN", "~", "550"])
        .await
        .unwrap();
    assert_eq!(int(&removed), 400, "four nodes of 100 entries");
    let len = cmd(&mut con, &["XLEN", "s"]).await.unwrap();
    assert_eq!(int(&len), 600);
    let removed = cmd(
        &mut con,
        &["XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "250"],
    )
    .await
    .unwrap();
    assert_eq!(
        int(&removed),
        200,
        "LIMIT stops before a node it cannot take whole"
    );
    let removed = cmd(&mut con, &["XTRIM", "s", "MAXLEN", "0"]).await.unwrap();
    assert_eq!(int(&removed), 400);
    let exists = cmd(&mut con, &["EXISTS", "s"]).await.unwrap();
    assert_eq!(int(&exists), 1, "an emptied stream stays");
}

#[tokio::test]
async fn hostile_numbers_neither_panic_nor_allocate() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["XADD", "s", "1-1", "f", "v"])
        .await
        .unwrap();
    cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "0"])
        .await
        .unwrap();
    for words in [
        &["XRANGE", "s", "-", "+", "COUNT", "9223372036854775807"][..],
        &["XREVRANGE", "s", "+", "-", "COUNT", "9223372036854775807"],
        &["XREAD", "COUNT", "9223372036854775807", "STREAMS", "s", "0"],
        &["XPENDING", "s", "g", "-", "+", "9223372036854775807"],
        &[
            "XPENDING",
            "s",
            "g",
            "IDLE",
            "-9223372036854775808",
            "-",
            "+",
            "1",
        ],
        &[
            "XINFO",
            "STREAM",
            "s",
            "FULL",
            "COUNT",
            "9223372036854775807",
        ],
        &[
            "XAUTOCLAIM",
            "s",
            "g",
            "c",
            "9223372036854775807",
            "0",
            "COUNT",
            "576460752303423487",
        ],
        &[
            "XCLAIM",
            "s",
            "g",
            "c",
            "0",
            "1-1",
            "IDLE",
            "-9223372036854775808",
        ],
        &[
            "XCLAIM",
            "s",
            "g",
            "c",
            "0",
            "1-1",
            "TIME",
            "9223372036854775807",
            "RETRYCOUNT",
            "9223372036854775807",
        ],
        &[
            "XTRIM",
            "s",
            "MAXLEN",
            "~",
            "9223372036854775807",
            "LIMIT",
            "9223372036854775807",
        ],
        &[
            "XADD",
            "s",
            "MAXLEN",
            "~",
            "0",
            "LIMIT",
            "9223372036854775807",
            "2-1",
            "f",
            "v",
        ],
    ] {
        assert!(cmd(&mut con, words).await.is_ok(), "{words:?}");
    }
    let e = err_line(
        &mut con,
        &[
            "XAUTOCLAIM",
            "s",
            "g",
            "c",
            "0",
            "0",
            "COUNT",
            "576460752303423488",
        ],
    )
    .await;
    assert_eq!(e, "ERR COUNT must be > 0");
}

/// A group reader and a plain reader blocked on `s` (a stream with group `g`,
/// no entries); returns (group reader, plain reader).
async fn two_readers(
    server: &latchkey::ServerHandle,
    con: &mut redis::aio::MultiplexedConnection,
) -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    cmd(con, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"])
        .await
        .unwrap();
    // The plain reader queues first: a reader that gets nothing must not
    // keep the group reader behind it from hearing.
    let plain = block_raw(server, con, "XREAD BLOCK 0 STREAMS s $\r\n", 1).await;
    let group = block_raw(
        server,
        con,
        "XREADGROUP GROUP g c BLOCK 0 STREAMS s >\r\n",
        2,
    )
    .await;
    (group, plain)
}

// Checked against redis-server 7.0.15: DEL, UNLINK, SET over the stream,
// RENAME away, MOVE, FLUSHDB, FLUSHALL and a TTL running out all answer a
// blocked XREADGROUP `-UNBLOCKED the stream key no longer exists`; a blocked
// XREAD stays blocked and is served when the stream comes back.
#[tokio::test]
async fn a_stream_that_leaves_unblocks_its_group_readers_and_not_plain_readers() {
    let server = start().await;
    let mut con = connect(&server).await;
    let actions: [&[&str]; 7] = [
        &["DEL", "s"],
        &["UNLINK", "s"],
        &["SET", "s", "x"],
        &["RENAME", "s", "t"],
        &["MOVE", "s", "1"],
        &["FLUSHDB"],
        &["FLUSHALL"],
    ];
    for action in actions {
        cmd(&mut con, &["FLUSHALL"]).await.unwrap();
        let (mut group, mut plain) = two_readers(&server, &mut con).await;
        cmd(&mut con, action).await.unwrap();
        expect_reply(&mut group, "-UNBLOCKED the stream key no longer exists\r\n").await;
        until_blocked(&mut con, 1).await;
        cmd(&mut con, &["DEL", "s"]).await.unwrap();
        cmd(&mut con, &["XADD", "s", "9-9", "f", "v"])
            .await
            .unwrap();
        let want = format!("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n{}", entry("9-9", "f", "v"));
        expect_reply(&mut plain, &want).await;
        until_blocked(&mut con, 0).await;
    }
}

#[tokio::test]
async fn a_stream_whose_ttl_runs_out_unblocks_its_group_readers() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.pause_time();
    let (mut group, _plain) = two_readers(&server, &mut con).await;
    cmd(&mut con, &["PEXPIRE", "s", "100"]).await.unwrap();
    server.advance_time(Duration::from_millis(100));
    expect_reply(&mut group, "-UNBLOCKED the stream key no longer exists\r\n").await;
    until_blocked(&mut con, 1).await;
}

#[tokio::test]
async fn a_stream_deleted_and_recreated_in_one_transaction_has_lost_the_group() {
    let server = start().await;
    let mut con = connect(&server).await;
    let (mut group, mut plain) = two_readers(&server, &mut con).await;
    let _: Value = redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg("s")
        .cmd("XADD")
        .arg(&["s", "5-1", "a", "1"])
        .query_async(&mut con)
        .await
        .unwrap();
    expect_reply(
        &mut group,
        "-NOGROUP the consumer group this client was blocked on no longer exists\r\n",
    )
    .await;
    let want = format!("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n{}", entry("5-1", "a", "1"));
    expect_reply(&mut plain, &want).await;
}

#[tokio::test]
async fn a_reader_with_nothing_new_does_not_hold_up_the_readers_behind_it() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["XADD", "s", "5-1", "a", "1"])
        .await
        .unwrap();
    let _ahead = block_raw(&server, &mut con, "XREAD BLOCK 0 STREAMS s 100-0\r\n", 1).await;
    let mut behind = block_raw(&server, &mut con, "XREAD BLOCK 0 STREAMS s 5-1\r\n", 2).await;
    cmd(&mut con, &["XADD", "s", "6-1", "b", "2"])
        .await
        .unwrap();
    let want = format!("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n{}", entry("6-1", "b", "2"));
    expect_reply(&mut behind, &want).await;
    until_blocked(&mut con, 1).await;
}
