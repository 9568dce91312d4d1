//! Keyspace notifications (`notify-keyspace-events`): the channels and frames
//! redis-server 7.0.15 sends for the same commands (its order of events was
//! read from a real server with `PSUBSCRIBE __key*` beside the same requests),
//! events raised by the keyspace itself (`expired`, `new`), and MULTI/EXEC.

mod common;

use std::time::Duration;

use common::{expect_reply, start};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn open(server: &latchkey::ServerHandle) -> TcpStream {
    TcpStream::connect(server.addr()).await.unwrap()
}

async fn send(s: &mut TcpStream, lines: &[&str]) {
    let mut req = String::new();
    for l in lines {
        req.push_str(l);
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.unwrap();
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// The frames a `PSUBSCRIBE __key*` subscriber gets for event `event` on
/// `key` in database 0 with `K` and `E` on: keyspace first, then keyevent.
fn both(event: &str, key: &str) -> String {
    let pm = |chan: String, msg: &str| {
        format!(
            "*4\r\n{}{}{}{}",
            bulk("pmessage"),
            bulk("__key*"),
            bulk(&chan),
            bulk(msg)
        )
    };
    pm(format!("__keyspace@0__:{key}"), event) + &pm(format!("__keyevent@0__:{event}"), key)
}

/// A subscriber to every keyspace channel, and a second connection that has
/// set `classes`.
async fn watching(server: &latchkey::ServerHandle, classes: &str) -> (TcpStream, TcpStream) {
    let mut sub = open(server).await;
    send(&mut sub, &["PSUBSCRIBE __key*"]).await;
    expect_reply(
        &mut sub,
        &format!("*3\r\n{}{}:1\r\n", bulk("psubscribe"), bulk("__key*")),
    )
    .await;
    let mut c = open(server).await;
    send(
        &mut c,
        &[&format!("CONFIG SET notify-keyspace-events {classes}")],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n").await;
    (sub, c)
}

#[tokio::test]
async fn set_with_a_ttl_then_del_then_expiry() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEA").await;
    send(
        &mut c,
        &["SET k v PX 100000", "DEL k nothere", "SET k2 v PX 30"],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n:1\r\n+OK\r\n").await;
    let want = both("set", "k")
        + &both("expire", "k")
        + &both("del", "k")
        + &both("set", "k2")
        + &both("expire", "k2")
        + &both("expired", "k2");
    expect_reply(&mut sub, &want).await;
}

#[tokio::test]
async fn moving_a_paused_clock_past_a_ttl_raises_expired() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "Ex").await;
    server.pause_time();
    send(&mut c, &["SET k v PX 10", "SET other v"]).await;
    expect_reply(&mut c, "+OK\r\n+OK\r\n").await;
    server.advance_time(Duration::from_millis(50));
    let expired = format!(
        "*4\r\n{}{}{}{}",
        bulk("pmessage"),
        bulk("__key*"),
        bulk("__keyevent@0__:expired"),
        bulk("k")
    );
    expect_reply(&mut sub, &expired).await;
}

#[tokio::test]
async fn new_keys_and_classes_off() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEAn").await;
    send(
        &mut c,
        &["SET k3 v", "SET k3 v", "CONFIG GET notify-keyspace-events"],
    )
    .await;
    expect_reply(
        &mut c,
        &format!(
            "+OK\r\n+OK\r\n*2\r\n{}{}",
            bulk("notify-keyspace-events"),
            bulk("AKE")
        ),
    )
    .await;
    expect_reply(
        &mut sub,
        &(both("new", "k3") + &both("set", "k3") + &both("set", "k3")),
    )
    .await;
    // Only the generic class: SET raises nothing, DEL does.
    send(
        &mut c,
        &["CONFIG SET notify-keyspace-events gK", "SET k3 w", "DEL k3"],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n+OK\r\n:1\r\n").await;
    let only_space = format!(
        "*4\r\n{}{}{}{}",
        bulk("pmessage"),
        bulk("__key*"),
        bulk("__keyspace@0__:k3"),
        bulk("del")
    );
    expect_reply(&mut sub, &only_space).await;
}

#[tokio::test]
async fn events_of_a_transaction_leave_in_order_when_it_ends() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEA").await;
    send(&mut c, &["MULTI", "SET a 1", "DEL a", "EXEC"]).await;
    expect_reply(&mut c, "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:1\r\n").await;
    expect_reply(&mut sub, &(both("set", "a") + &both("del", "a"))).await;
}

#[tokio::test]
async fn a_bad_class_letter_is_refused_and_changes_nothing() {
    let server = start().await;
    let mut c = open(&server).await;
    send(
        &mut c,
        &[
            "CONFIG SET notify-keyspace-events Kq",
            "CONFIG GET notify-keyspace-events",
        ],
    )
    .await;
    expect_reply(
        &mut c,
        &format!(
            "-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.\r\n*2\r\n{}{}",
            bulk("notify-keyspace-events"),
            bulk("")
        ),
    )
    .await;
}

/// Reads one RESP2 value of arrays and bulk/simple strings from `r` as its
/// strings, flattened (all a pmessage frame holds).
async fn read_frame(r: &mut BufReader<TcpStream>, out: &mut Vec<String>) {
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1);
    match kind {
        "*" => {
            for _ in 0..rest.parse::<usize>().unwrap() {
                Box::pin(read_frame(r, out)).await;
            }
        }
        "$" => {
            let mut data = vec![0; rest.parse::<usize>().unwrap() + 2];
            r.read_exact(&mut data).await.unwrap();
            data.truncate(data.len() - 2);
            out.push(String::from_utf8(data).unwrap());
        }
        _ => out.push(rest.to_string()),
    }
}

/// The keyevents `cmds` raise, run in order on one connection after
/// `CONFIG SET notify-keyspace-events classes`: (event, key) pairs, the event
/// followed by `@<db>` outside database 0. The expected sequences were read
/// from redis-server 7.0.15 running the same commands (arguments are split at
/// spaces; `redis-tests/capture_events.py` prints them).
async fn events_of(
    server: &latchkey::ServerHandle,
    classes: &str,
    cmds: &[&str],
) -> Vec<(String, String)> {
    let mut sub = BufReader::new(open(server).await);
    send(sub.get_mut(), &["PSUBSCRIBE __keyevent@*"]).await;
    read_frame(&mut sub, &mut Vec::new()).await;
    let mut c = open(server).await;
    let mut all = vec![
        "FLUSHALL".to_string(),
        format!("CONFIG SET notify-keyspace-events {classes}"),
    ];
    all.extend(cmds.iter().map(|c| c.to_string()));
    all.push("PUBLISH __keyevent@0__:end x".into());
    let mut req = Vec::new();
    for cmd in &all {
        let words: Vec<&str> = cmd.split(' ').collect();
        req.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for w in words {
            req.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
        }
    }
    c.write_all(&req).await.unwrap();
    let mut got = Vec::new();
    let deadline = Duration::from_secs(10);
    loop {
        let mut frame = Vec::new();
        tokio::time::timeout(deadline, read_frame(&mut sub, &mut frame))
            .await
            .unwrap_or_else(|_| panic!("no end marker; so far {got:?}"));
        let channel = &frame[2];
        let (db, event) = channel["__keyevent@".len()..].split_once("__:").unwrap();
        if event == "end" {
            return got;
        }
        let event = if db == "0" {
            event.to_string()
        } else {
            format!("{event}@{db}")
        };
        got.push((event, frame[3].clone()));
    }
}

/// Checks that `cmds` raise exactly `want`.
async fn check(server: &latchkey::ServerHandle, classes: &str, cmds: &[&str], want: &[(&str, &str)]) {
    let got = events_of(server, classes, cmds).await;
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(e, k)| (e.to_string(), k.to_string()))
        .collect();
    assert_eq!(got, want, "events of {cmds:?}");
}

#[tokio::test]
async fn string_bitmap_and_hyperloglog_events() {
    let server = start().await;
    check(&server, "EA", &["SET s v", "SET s v NX", "SET s w XX KEEPTTL", "SETNX s x", "SETNX s2 x", "SETEX s3 100 v", "PSETEX s4 100000 v", "GETSET s y", "MSET m1 a m2 b", "MSETNX m1 a m3 b", "MSETNX m4 a m5 b", "GETDEL m4", "GETDEL nokey", "GETEX m5 EX 100", "GETEX m5 PERSIST", "GETEX m5 PERSIST", "GETEX m5", "GETEX m5 PXAT 1", "INCR n", "DECR n", "INCRBY n 5", "DECRBY n 2", "INCRBYFLOAT n 1.5", "APPEND n x", "APPEND a1 x", "SETRANGE n 0 z", "SETRANGE n 0 ", "SETRANGE r1 2 ab", "GET s", "STRLEN s", "LCS s n"], &[("set", "s"), ("set", "s"), ("set", "s2"), ("set", "s3"), ("expire", "s3"), ("set", "s4"), ("expire", "s4"), ("set", "s"), ("set", "m1"), ("set", "m2"), ("set", "m4"), ("set", "m5"), ("del", "m4"), ("expire", "m5"), ("persist", "m5"), ("del", "m5"), ("incrby", "n"), ("incrby", "n"), ("incrby", "n"), ("incrby", "n"), ("incrbyfloat", "n"), ("append", "n"), ("append", "a1"), ("setrange", "n"), ("setrange", "r1")]).await;
    check(&server, "EA", &["SETBIT b 3 1", "SETBIT b 3 1", "BITOP OR d b b", "BITOP AND d nokey", "BITOP AND d2 nokey", "BITFIELD bf SET u8 0 1", "BITFIELD bf GET u8 0", "BITFIELD bf INCRBY u8 0 1 OVERFLOW FAIL INCRBY u8 0 1000", "BITFIELD bf OVERFLOW FAIL INCRBY u8 0 1000", "PFADD h a b", "PFADD h a", "PFADD h", "PFADD h2", "PFMERGE h3 h h2", "PFMERGE h4", "PFCOUNT h"], &[("setbit", "b"), ("set", "d"), ("del", "d"), ("setbit", "bf"), ("setbit", "bf"), ("pfadd", "h"), ("pfadd", "h2"), ("pfadd", "h3"), ("pfadd", "h4")]).await;
}
