//! Lock events (class `L` of `notify-keyspace-events`) and the holder's loss
//! notice (`__lock_lost__:<owner>`), frame by frame: every event name, their
//! order around the grants they cause, events from MULTI/EXEC and scripts, and
//! a notice that reaches the holder, with its token, as its lease runs out —
//! but never for its own release.

mod common;

use std::time::{Duration, Instant};

use common::{expect_reply, open, read_until, send, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// Reads one line, without its CRLF (byte by byte: nothing after it is taken).
async fn line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut byte))
            .await
            .expect("a reply")
            .unwrap();
        assert_eq!(n, 1, "connection closed after {out:?}");
        out.push(byte[0]);
    }
    out.truncate(out.len() - 2);
    String::from_utf8(out).unwrap()
}

/// Reads one integer reply (`:<n>\r\n`), a fencing token.
async fn int_reply(s: &mut TcpStream) -> u64 {
    let l = line(s).await;
    l.strip_prefix(':')
        .unwrap_or_else(|| panic!("an integer, got {l:?}"))
        .parse()
        .unwrap()
}

fn pmessage(pattern: &str, chan: &str, msg: &str) -> String {
    format!(
        "*4\r\n{}{}{}{}",
        bulk("pmessage"),
        bulk(pattern),
        bulk(chan),
        bulk(msg)
    )
}

/// The frames a `PSUBSCRIBE __key*` subscriber gets for `event` on `key` of
/// database 0 with `K` and `E` on: keyspace first, then keyevent.
fn both(event: &str, key: &str) -> String {
    pmessage("__key*", &format!("__keyspace@0__:{key}"), event)
        + &pmessage("__key*", &format!("__keyevent@0__:{event}"), key)
}

/// A RESP2 `message` frame.
fn message(chan: &str, msg: &str) -> String {
    format!("*3\r\n{}{}{}", bulk("message"), bulk(chan), bulk(msg))
}

/// The loss notice `owner` gets on its channel.
fn lost(owner: &str, event: &str, token: u64, key: &str) -> String {
    message(
        &format!("__lock_lost__:{owner}"),
        &format!("{event} 0 {token} {key}"),
    )
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

/// A connection subscribed to `owner`'s loss notices.
async fn listening_for(server: &latchkey::ServerHandle, owner: &str) -> TcpStream {
    let mut s = open(server).await;
    let chan = format!("__lock_lost__:{owner}");
    send(&mut s, &[&format!("SUBSCRIBE {chan}")]).await;
    expect_reply(
        &mut s,
        &format!("*3\r\n{}{}:1\r\n", bulk("subscribe"), bulk(&chan)),
    )
    .await;
    s
}

/// Nothing more arrives on `s` for a moment.
async fn quiet(s: &mut TcpStream) {
    let got = tokio::time::timeout(Duration::from_millis(100), read_until(s, 1)).await;
    if let Ok(got) = got {
        assert!(
            got.is_empty(),
            "unexpected: {}",
            String::from_utf8_lossy(&got)
        );
    }
}

#[tokio::test]
async fn acquire_renew_extend_release_and_hand_off() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEL").await;
    let mut waiter = open(&server).await;
    send(&mut c, &["LOCK.ACQUIRE L a 10000"]).await;
    let t1 = int_reply(&mut c).await;
    send(&mut c, &["LOCK.ACQUIRE L a 10000", "LOCK.EXTEND L a 5000"]).await;
    expect_reply(&mut c, &format!(":{t1}\r\n:1\r\n")).await;
    send(&mut waiter, &["LOCK.ACQUIRE L b 10000 WAIT 0"]).await;
    // The waiter is queued before the release.
    let mut probe = common::connect(&server).await;
    common::until_blocked(&mut probe, 1).await;
    send(&mut c, &["LOCK.RELEASE L a"]).await;
    expect_reply(&mut c, ":1\r\n").await;
    let t2 = int_reply(&mut waiter).await;
    assert!(t2 > t1);
    let want = both("lock.acquired", "L")
        + &both("lock.extended", "L")
        + &both("lock.extended", "L")
        + &both("lock.released", "L")
        + &both("lock.acquired", "L");
    expect_reply(&mut sub, &want).await;
    // A failed release, extension or acquisition raises nothing.
    send(
        &mut c,
        &[
            "LOCK.RELEASE L a",
            "LOCK.EXTEND L a 10",
            "LOCK.ACQUIRE L c 1000",
        ],
    )
    .await;
    expect_reply(&mut c, ":0\r\n:0\r\n$-1\r\n").await;
    quiet(&mut sub).await;
}

#[tokio::test]
async fn a_lease_running_out_is_an_event_and_the_holders_notice_with_its_token() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEL").await;
    let mut notice = listening_for(&server, "a").await;
    server.pause_time();
    send(&mut c, &["LOCK.ACQUIRE L a 100"]).await;
    let token = int_reply(&mut c).await;
    expect_reply(&mut sub, &both("lock.acquired", "L")).await;
    server.advance_time(Duration::from_millis(99));
    quiet(&mut notice).await;
    server.advance_time(Duration::from_millis(1));
    expect_reply(&mut notice, &lost("a", "lock.expired", token, "L")).await;
    expect_reply(&mut sub, &both("lock.expired", "L")).await;
    send(&mut c, &["EXISTS L"]).await;
    expect_reply(&mut c, ":0\r\n").await;
}

#[tokio::test]
async fn the_holder_hears_of_its_lease_running_out_at_once_in_real_time() {
    // The notice is not configured: loss notices need no
    // notify-keyspace-events. The lease is short and the bound generous; this
    // checks that the expiry task, not a later command, sends it.
    let server = start().await;
    let mut notice = listening_for(&server, "holder").await;
    let mut c = open(&server).await;
    let lease = Duration::from_millis(40);
    let sent = Instant::now();
    send(&mut c, &["LOCK.ACQUIRE L holder 40"]).await;
    let token = int_reply(&mut c).await;
    expect_reply(&mut notice, &lost("holder", "lock.expired", token, "L")).await;
    let after = sent.elapsed();
    assert!(
        after + Duration::from_millis(2) >= lease,
        "early: {after:?}"
    );
    assert!(
        after < lease + Duration::from_millis(250),
        "late: {after:?}"
    );
}

#[tokio::test]
async fn releasing_its_own_lock_sends_the_holder_no_notice() {
    let server = start().await;
    let mut notice = listening_for(&server, "a").await;
    let mut c = open(&server).await;
    send(&mut c, &["LOCK.ACQUIRE L a 10000"]).await;
    int_reply(&mut c).await;
    send(
        &mut c,
        &["LOCK.RELEASE L a", "PUBLISH __lock_lost__:a marker"],
    )
    .await;
    expect_reply(&mut c, ":1\r\n:1\r\n").await;
    // The marker is the first thing the holder hears.
    expect_reply(&mut notice, &message("__lock_lost__:a", "marker")).await;
}

#[tokio::test]
async fn deleting_a_held_lock_grants_its_waiter() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEgL").await;
    let mut notice = listening_for(&server, "a").await;
    let mut waiter = open(&server).await;
    send(&mut c, &["LOCK.ACQUIRE L a 10000"]).await;
    let t1 = int_reply(&mut c).await;
    send(&mut waiter, &["LOCK.ACQUIRE L b 10000 WAIT 0"]).await;
    let mut probe = common::connect(&server).await;
    common::until_blocked(&mut probe, 1).await;
    send(&mut c, &["DEL L"]).await;
    expect_reply(&mut c, ":1\r\n").await;
    int_reply(&mut waiter).await;
    expect_reply(
        &mut sub,
        &(both("lock.acquired", "L")
            + &both("lock.deleted", "L")
            + &both("lock.acquired", "L")
            + &both("del", "L")),
    )
    .await;
    expect_reply(&mut notice, &lost("a", "lock.deleted", t1, "L")).await;
}

#[tokio::test]
async fn overwriting_a_held_lock() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KE$L").await;
    let mut notice = listening_for(&server, "a").await;
    send(&mut c, &["LOCK.ACQUIRE M a 10000"]).await;
    let t2 = int_reply(&mut c).await;
    send(&mut c, &["SET M v"]).await;
    expect_reply(&mut c, "+OK\r\n").await;
    expect_reply(
        &mut sub,
        &(both("lock.acquired", "M") + &both("lock.deleted", "M") + &both("set", "M")),
    )
    .await;
    expect_reply(&mut notice, &lost("a", "lock.deleted", t2, "M")).await;
}

#[tokio::test]
async fn a_held_lock_whose_key_expires() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KExL").await;
    let mut notice = listening_for(&server, "a").await;
    server.pause_time();
    send(&mut c, &["LOCK.ACQUIRE N a 10000", "PEXPIRE N 10"]).await;
    let t3 = int_reply(&mut c).await;
    expect_reply(&mut c, ":1\r\n").await;
    server.advance_time(Duration::from_millis(10));
    expect_reply(
        &mut sub,
        &(both("lock.acquired", "N") + &both("expired", "N") + &both("lock.deleted", "N")),
    )
    .await;
    expect_reply(&mut notice, &lost("a", "lock.deleted", t3, "N")).await;
}

#[tokio::test]
async fn flushing_a_held_lock() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEL").await;
    let mut notice = listening_for(&server, "a").await;
    send(&mut c, &["LOCK.ACQUIRE O a 10000"]).await;
    let t4 = int_reply(&mut c).await;
    send(&mut c, &["FLUSHALL"]).await;
    expect_reply(&mut c, "+OK\r\n").await;
    expect_reply(
        &mut sub,
        &(both("lock.acquired", "O") + &both("lock.deleted", "O")),
    )
    .await;
    expect_reply(&mut notice, &lost("a", "lock.deleted", t4, "O")).await;
}

#[tokio::test]
async fn a_session_hold_ends_with_its_connection() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEL").await;
    let mut notice = listening_for(&server, "s").await;
    let mut holder = open(&server).await;
    send(&mut holder, &["LOCK.ACQUIRE L s 10000 SESSION"]).await;
    let token = int_reply(&mut holder).await;
    drop(holder);
    expect_reply(
        &mut sub,
        &(both("lock.acquired", "L") + &both("lock.session-released", "L")),
    )
    .await;
    expect_reply(&mut notice, &lost("s", "lock.session-released", token, "L")).await;
    send(&mut c, &["EXISTS L"]).await;
    expect_reply(&mut c, ":0\r\n").await;
}

#[tokio::test]
async fn shared_holders_and_semaphore_slots_each_raise_their_own_events() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "EL").await;
    let mut notices = open(&server).await;
    send(&mut notices, &["PSUBSCRIBE __lock_lost__:*"]).await;
    expect_reply(
        &mut notices,
        &format!(
            "*3\r\n{}{}:1\r\n",
            bulk("psubscribe"),
            bulk("__lock_lost__:*")
        ),
    )
    .await;
    server.pause_time();
    send(&mut c, &["LOCK.ACQUIRE R r1 100 SHARED"]).await;
    let t1 = int_reply(&mut c).await;
    send(&mut c, &["LOCK.ACQUIRE R r2 100 SHARED"]).await;
    let t2 = int_reply(&mut c).await;
    send(&mut c, &["LOCK.ACQUIRE S s1 100 LIMIT 2"]).await;
    let t3 = int_reply(&mut c).await;
    let event = |name: &str, key: &str| pmessage("__key*", &format!("__keyevent@0__:{name}"), key);
    expect_reply(
        &mut sub,
        &(event("lock.acquired", "R")
            + &event("lock.acquired", "R")
            + &event("lock.acquired", "S")),
    )
    .await;
    server.advance_time(Duration::from_millis(100));
    // Each key's expiries in holder order; the two keys in either order.
    let r = event("lock.expired", "R") + &event("lock.expired", "R");
    let s = event("lock.expired", "S");
    let got = read_until(&mut sub, r.len() + s.len()).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got == r.clone() + &s || got == s.clone() + &r, "{got}");
    let note = |owner: &str, token: u64, key: &str| {
        pmessage(
            "__lock_lost__:*",
            &format!("__lock_lost__:{owner}"),
            &format!("lock.expired 0 {token} {key}"),
        )
    };
    let r = note("r1", t1, "R") + &note("r2", t2, "R");
    let s = note("s1", t3, "S");
    let got = read_until(&mut notices, r.len() + s.len()).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got == r.clone() + &s || got == s.clone() + &r, "{got}");
}

#[tokio::test]
async fn events_of_multi_and_scripts_leave_when_they_end_in_order() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEL").await;
    send(
        &mut c,
        &[
            "MULTI",
            "LOCK.ACQUIRE L a 1000",
            "LOCK.EXTEND L a 2000",
            "LOCK.RELEASE L a",
            "EXEC",
        ],
    )
    .await;
    for want in ["+OK", "+QUEUED", "+QUEUED", "+QUEUED", "*3"] {
        assert_eq!(line(&mut c).await, want);
    }
    int_reply(&mut c).await;
    assert_eq!(line(&mut c).await, ":1");
    assert_eq!(line(&mut c).await, ":1");
    expect_reply(
        &mut sub,
        &(both("lock.acquired", "L") + &both("lock.extended", "L") + &both("lock.released", "L")),
    )
    .await;
    let script = "redis.call('LOCK.ACQUIRE', KEYS[1], 'o', 1000) return redis.call('LOCK.RELEASE', KEYS[1], 'o')";
    let req = format!(
        "*4\r\n{}{}{}{}",
        bulk("EVAL"),
        bulk(script),
        bulk("1"),
        bulk("K")
    );
    c.write_all(req.as_bytes()).await.unwrap();
    expect_reply(&mut c, ":1\r\n").await;
    expect_reply(
        &mut sub,
        &(both("lock.acquired", "K") + &both("lock.released", "K")),
    )
    .await;
}

#[tokio::test]
async fn a_resp3_holder_is_pushed_its_notice_on_its_own_connection() {
    let server = start().await;
    server.pause_time();
    let mut c = open(&server).await;
    send(&mut c, &["HELLO 3"]).await;
    // The HELLO map, then nothing else: a PING's reply marks its end.
    send(&mut c, &["PING"]).await;
    let mut hello = Vec::new();
    while !hello.ends_with(b"+PONG\r\n") {
        hello.extend_from_slice(&read_until(&mut c, 1).await);
    }
    assert!(
        hello.starts_with(b"%"),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    send(&mut c, &["SUBSCRIBE __lock_lost__:me"]).await;
    expect_reply(
        &mut c,
        &format!(
            ">3\r\n{}{}:1\r\n",
            bulk("subscribe"),
            bulk("__lock_lost__:me")
        ),
    )
    .await;
    send(&mut c, &["LOCK.ACQUIRE L me 50"]).await;
    let token = int_reply(&mut c).await;
    server.advance_time(Duration::from_millis(50));
    expect_reply(
        &mut c,
        &format!(
            ">3\r\n{}{}{}",
            bulk("message"),
            bulk("__lock_lost__:me"),
            bulk(&format!("lock.expired 0 {token} L"))
        ),
    )
    .await;
}

#[tokio::test]
async fn events_name_the_database_and_stay_off_without_l() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEA").await;
    // `A` does not include `L`: no lock event.
    send(&mut c, &["LOCK.ACQUIRE L a 1000", "SET k v"]).await;
    int_reply(&mut c).await;
    expect_reply(&mut c, "+OK\r\n").await;
    expect_reply(&mut sub, &both("set", "k")).await;
    let mut notice = listening_for(&server, "b").await;
    send(
        &mut c,
        &[
            "CONFIG SET notify-keyspace-events EL",
            "SELECT 3",
            "LOCK.ACQUIRE L b 1000",
            "DEL L",
        ],
    )
    .await;
    assert_eq!(line(&mut c).await, "+OK");
    assert_eq!(line(&mut c).await, "+OK");
    let token = int_reply(&mut c).await;
    assert_eq!(line(&mut c).await, ":1");
    let ev = |name: &str| pmessage("__key*", &format!("__keyevent@3__:{name}"), "L");
    expect_reply(&mut sub, &(ev("lock.acquired") + &ev("lock.deleted"))).await;
    expect_reply(
        &mut notice,
        &message("__lock_lost__:b", &format!("lock.deleted 3 {token} L")),
    )
    .await;
}
