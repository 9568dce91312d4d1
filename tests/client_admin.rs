//! CLIENT PAUSE / UNPAUSE, CLIENT REPLY, CLIENT UNBLOCK: what other clients
//! see while they act.

mod common;

use std::time::Duration;

use common::*;

/// Nothing arrives on `s` for a little while.
async fn silent(s: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await;
    assert!(got.is_err(), "expected nothing, got {:?}", got);
}

#[tokio::test]
async fn a_write_pause_postpones_writes_and_runs_them_in_order_on_unpause() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["CLIENT", "PAUSE", "100000", "WRITE"])
        .await
        .unwrap();
    let mut first = block_raw(&server, &mut con, "RPUSH l a\r\n", 1).await;
    let mut second = block_raw(&server, &mut con, "RPUSH l b\r\n", 2).await;
    // EVAL may write, PUBLISH propagates, PFCOUNT may rewrite its cache.
    let mut eval = block_raw(&server, &mut con, "EVAL \"return 1\" 0\r\n", 3).await;
    let mut publish = block_raw(&server, &mut con, "PUBLISH ch m\r\n", 4).await;
    let mut pfcount = block_raw(&server, &mut con, "PFCOUNT h\r\n", 5).await;
    // Reads run, from anyone.
    let mut reader = open(&server).await;
    send(&mut reader, &["LLEN l", "EVAL_RO \"return 2\" 0", "PING"]).await;
    expect_reply(&mut reader, ":0\r\n:2\r\n+PONG\r\n").await;
    silent(&mut first).await;
    let list = latchkey_list(&mut con).await;
    assert!(
        list.contains("flags=b") && list.contains("cmd=rpush"),
        "{list}"
    );
    cmd(&mut con, &["CLIENT", "UNPAUSE"]).await.unwrap();
    expect_reply(&mut first, ":1\r\n").await;
    expect_reply(&mut second, ":2\r\n").await;
    expect_reply(&mut eval, ":1\r\n").await;
    expect_reply(&mut publish, ":0\r\n").await;
    expect_reply(&mut pfcount, ":0\r\n").await;
    until_blocked(&mut con, 0).await;
    let l: Vec<String> = redis::AsyncCommands::lrange(&mut con, "l", 0, -1)
        .await
        .unwrap();
    assert_eq!(l, ["a", "b"]);
}

async fn latchkey_list(con: &mut redis::aio::MultiplexedConnection) -> String {
    redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(con)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_all_pause_postpones_everything_until_it_runs_out() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    cmd(&mut con, &["SET", "k", "v"]).await.unwrap();
    cmd(&mut con, &["CLIENT", "PAUSE", "1000"]).await.unwrap();
    let mut a = open(&server).await;
    send(&mut a, &["GET k", "PING"]).await;
    let mut b = open(&server).await;
    // Even CLIENT UNPAUSE waits (Redis 7.0 exempts nothing).
    send(&mut b, &["CLIENT UNPAUSE"]).await;
    silent(&mut a).await;
    silent(&mut b).await;
    server.advance_time(Duration::from_millis(999));
    silent(&mut a).await;
    server.advance_time(Duration::from_millis(2));
    expect_reply(&mut a, "$1\r\nv\r\n+PONG\r\n").await;
    expect_reply(&mut b, "+OK\r\n").await;
}

#[tokio::test]
async fn a_transaction_waits_at_exec_only_if_it_writes() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut t = open(&server).await;
    send(&mut t, &["MULTI", "SET k 1"]).await;
    expect_reply(&mut t, "+OK\r\n+QUEUED\r\n").await;
    cmd(&mut con, &["CLIENT", "PAUSE", "100000", "WRITE"])
        .await
        .unwrap();
    send(&mut t, &["GET k"]).await;
    expect_reply(&mut t, "+QUEUED\r\n").await;
    send(&mut t, &["EXEC"]).await;
    until_blocked(&mut con, 1).await;
    silent(&mut t).await;
    // A read-only one runs.
    let mut r = open(&server).await;
    send(&mut r, &["MULTI", "GET k", "EXEC"]).await;
    expect_reply(&mut r, "+OK\r\n+QUEUED\r\n*1\r\n$-1\r\n").await;
    // Queueing a write is postponed too, as in Redis.
    send(&mut r, &["MULTI", "SET k 2"]).await;
    expect_reply(&mut r, "+OK\r\n").await;
    until_blocked(&mut con, 2).await;
    cmd(&mut con, &["CLIENT", "UNPAUSE"]).await.unwrap();
    expect_reply(&mut t, "*2\r\n+OK\r\n$1\r\n1\r\n").await;
    expect_reply(&mut r, "+QUEUED\r\n").await;
}

/// A library with `w`, which may write, and `r`, flagged `no-writes`.
const KV_LIBRARY: &str = "#!lua name=kv
redis.register_function('w', function(keys, args) return redis.call('SET', keys[1], args[1]) end)
redis.register_function{function_name='r', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}";

#[tokio::test]
async fn a_write_pause_postpones_fcall_of_a_function_that_may_write() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["FUNCTION", "LOAD", KV_LIBRARY])
        .await
        .unwrap();
    let mut t = open(&server).await;
    send(&mut t, &["MULTI", "FCALL w 1 k x"]).await;
    expect_reply(&mut t, "+OK\r\n+QUEUED\r\n").await;
    cmd(&mut con, &["CLIENT", "PAUSE", "100000", "WRITE"])
        .await
        .unwrap();
    // As redis-server 7.0 (fcallGetCommandFlags): a call of a function that
    // may write is a write, FCALL_RO's too (refused only when it runs), and
    // FCALL of no function keeps FCALL's may-replicate; so is EXEC of such a
    // call.
    let mut w = block_raw(&server, &mut con, "FCALL w 1 k v\r\n", 1).await;
    let mut w_ro = block_raw(&server, &mut con, "FCALL_RO w 1 k v\r\n", 2).await;
    let mut missing = block_raw(&server, &mut con, "FCALL nope 0\r\n", 3).await;
    send(&mut t, &["EXEC"]).await;
    until_blocked(&mut con, 4).await;
    // A `no-writes` function runs, by FCALL or FCALL_RO, alone or in a
    // transaction; FCALL_RO of no function answers at once.
    let mut r = open(&server).await;
    send(
        &mut r,
        &[
            "FCALL r 1 k",
            "FCALL_RO r 1 k",
            "FCALL_RO nope 0",
            "MULTI",
            "FCALL r 1 k",
            "EXEC",
        ],
    )
    .await;
    expect_reply(
        &mut r,
        "$-1\r\n$-1\r\n-ERR Function not found\r\n+OK\r\n+QUEUED\r\n*1\r\n$-1\r\n",
    )
    .await;
    silent(&mut w).await;
    cmd(&mut con, &["CLIENT", "UNPAUSE"]).await.unwrap();
    expect_reply(&mut w, "+OK\r\n").await;
    expect_reply(
        &mut w_ro,
        "-ERR Can not execute a script with write flag using *_ro command.\r\n",
    )
    .await;
    expect_reply(&mut missing, "-ERR Function not found\r\n").await;
    expect_reply(&mut t, "*1\r\n+OK\r\n").await;
    let v: String = redis::AsyncCommands::get(&mut con, "k").await.unwrap();
    assert_eq!(v, "x");
}

#[tokio::test]
async fn a_pause_can_be_extended_and_a_postponed_client_can_leave() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    cmd(&mut con, &["CLIENT", "PAUSE", "100", "WRITE"])
        .await
        .unwrap();
    let mut w = block_raw(&server, &mut con, "SET k 1\r\n", 1).await;
    let gone = block_raw(&server, &mut con, "SET k 2\r\n", 2).await;
    drop(gone);
    until_blocked(&mut con, 1).await;
    // A later end wins; a less restrictive mode does not lower it.
    cmd(&mut con, &["CLIENT", "PAUSE", "500", "WRITE"])
        .await
        .unwrap();
    server.advance_time(Duration::from_millis(200));
    silent(&mut w).await;
    server.advance_time(Duration::from_millis(301));
    expect_reply(&mut w, "+OK\r\n").await;
    let v: String = redis::AsyncCommands::get(&mut con, "k").await.unwrap();
    assert_eq!(v, "1");
}

#[tokio::test]
async fn keys_do_not_expire_actively_while_writes_are_paused() {
    let server = start().await;
    server.pause_time();
    let mut con = connect(&server).await;
    cmd(&mut con, &["SET", "k", "v", "PX", "10"]).await.unwrap();
    cmd(&mut con, &["CLIENT", "PAUSE", "100000", "WRITE"])
        .await
        .unwrap();
    server.advance_time(Duration::from_millis(50));
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(n, 1, "the expired key is still there");
    cmd(&mut con, &["CLIENT", "UNPAUSE"]).await.unwrap();
    server.advance_time(Duration::from_millis(1));
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(n, 0);
}

/// Sends `lines` on a fresh connection and checks that exactly `want` comes
/// back (the bytes redis-server 7.0 sent for the same lines).
async fn exchange(server: &latchkey::ServerHandle, lines: &[&str], want: &str) {
    let mut s = open(server).await;
    send(&mut s, lines).await;
    expect_reply(&mut s, want).await;
    silent(&mut s).await;
}

#[tokio::test]
async fn client_reply_off_skip_and_on_as_redis() {
    let server = start().await;
    exchange(
        &server,
        &[
            "CLIENT REPLY SKIP",
            "SET a 1",
            "GET a",
            "CLIENT REPLY OFF",
            "GET a",
            "CLIENT REPLY SKIP",
            "CLIENT REPLY FOO",
            "CLIENT REPLY ON",
            "GET a",
            "CLIENT REPLY SKIP",
            "CLIENT REPLY ON",
            "PING",
            "CLIENT REPLY FOO",
            "CLIENT REPLY",
        ],
        "$1\r\n1\r\n+OK\r\n$1\r\n1\r\n+OK\r\n+PONG\r\n-ERR syntax error\r\n-ERR wrong number of arguments for 'client|reply' command\r\n",
    )
    .await;
    // Subscription confirmations are pushes and still go out; RESET ends OFF.
    exchange(
        &server,
        &["CLIENT REPLY OFF", "SUBSCRIBE ch", "PING", "UNSUBSCRIBE ch", "RESET", "PING"],
        "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n+RESET\r\n+PONG\r\n",
    )
    .await;
    // A SKIP before RESET skips RESET's reply; SKIP SKIP skips one command.
    exchange(
        &server,
        &[
            "CLIENT REPLY SKIP",
            "RESET",
            "PING",
            "CLIENT REPLY SKIP",
            "MULTI",
            "PING",
            "EXEC",
            "CLIENT REPLY SKIP",
            "CLIENT REPLY SKIP",
            "PING",
            "PING",
        ],
        "+PONG\r\n+QUEUED\r\n*1\r\n+PONG\r\n+PONG\r\n",
    )
    .await;
}

#[tokio::test]
async fn client_reply_off_still_delivers_published_messages_and_silences_blocked_replies() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut off = open(&server).await;
    send(
        &mut off,
        &["CLIENT REPLY OFF", "GET k", "SUBSCRIBE ch", "PING"],
    )
    .await;
    expect_reply(&mut off, "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n").await;
    silent(&mut off).await;
    let _: i64 = redis::AsyncCommands::publish(&mut con, "ch", "m")
        .await
        .unwrap();
    expect_reply(&mut off, "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n").await;
    // A blocked command after SKIP: its reply, when it comes, is skipped.
    let mut b = open(&server).await;
    send(&mut b, &["CLIENT REPLY SKIP", "BLPOP q 0"]).await;
    until_blocked(&mut con, 1).await;
    let _: i64 = redis::AsyncCommands::rpush(&mut con, "q", "x")
        .await
        .unwrap();
    until_blocked(&mut con, 0).await;
    send(&mut b, &["PING"]).await;
    expect_reply(&mut b, "+PONG\r\n").await;
}

/// The id of the client whose `CLIENT LIST` line shows `cmd=<cmd>`.
async fn id_of(con: &mut redis::aio::MultiplexedConnection, cmd: &str) -> String {
    let list = latchkey_list(con).await;
    let line = list
        .lines()
        .find(|l| l.contains(&format!(" cmd={cmd} ")))
        .unwrap_or_else(|| panic!("no client in {cmd}: {list}"));
    line.split(' ').next().unwrap()["id=".len()..].to_string()
}

#[tokio::test]
async fn client_unblock_ends_every_kind_of_wait_with_its_timeout_reply_or_an_error() {
    let server = start().await;
    let mut con = connect(&server).await;
    let cases = [
        ("BLPOP q 0\r\n", "blpop", "*-1\r\n"),
        ("BRPOPLPUSH q d 0\r\n", "brpoplpush", "*-1\r\n"),
        ("BZPOPMIN z 0\r\n", "bzpopmin", "*-1\r\n"),
        ("XREAD BLOCK 0 STREAMS s $\r\n", "xread", "*-1\r\n"),
        ("LOCK.ACQUIRE l other 10000\r\n", "lock.acquire", ":"),
    ];
    for (request, name, timeout_reply) in cases {
        if name == "lock.acquire" {
            // Held by another, so the next acquire with WAIT queues.
            let mut holder = open(&server).await;
            send(&mut holder, &["LOCK.ACQUIRE l holder 100000"]).await;
            let _ = read_until(&mut holder, 1).await;
        }
        for error in [false, true] {
            let request = if name == "lock.acquire" {
                "LOCK.ACQUIRE l w 10000 WAIT 0\r\n"
            } else {
                request
            };
            let mut w = block_raw(&server, &mut con, request, 1).await;
            let id = id_of(&mut con, name).await;
            let how = if error { "ERROR" } else { "TIMEOUT" };
            let n = cmd(&mut con, &["CLIENT", "UNBLOCK", &id, how])
                .await
                .unwrap();
            assert_eq!(n, redis::Value::Int(1), "{name}");
            let want = match (error, name) {
                (true, _) => "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n",
                (false, "lock.acquire") => "$-1\r\n",
                (false, _) => timeout_reply,
            };
            expect_reply(&mut w, want).await;
            until_blocked(&mut con, 0).await;
            // Not blocked any more: 0.
            let n = cmd(&mut con, &["CLIENT", "UNBLOCK", &id]).await.unwrap();
            assert_eq!(n, redis::Value::Int(0));
            // Its place in the queue went with it.
            send(&mut w, &["PING"]).await;
            expect_reply(&mut w, "+PONG\r\n").await;
        }
    }
    // A queued lock waiter that left is not granted the lock later.
    let info = cmd(&mut con, &["LOCK.INFO", "l"]).await.unwrap();
    assert!(!format!("{info:?}").contains("\"w\""), "{info:?}");
}

#[tokio::test]
async fn client_unblock_leaves_a_paused_client_alone() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["CLIENT", "PAUSE", "100000", "WRITE"])
        .await
        .unwrap();
    let mut w = block_raw(&server, &mut con, "SET k v\r\n", 1).await;
    let id = id_of(&mut con, "set").await;
    let n = cmd(&mut con, &["CLIENT", "UNBLOCK", &id]).await.unwrap();
    assert_eq!(n, redis::Value::Int(0));
    silent(&mut w).await;
    cmd(&mut con, &["CLIENT", "UNPAUSE"]).await.unwrap();
    expect_reply(&mut w, "+OK\r\n").await;
}

/// The MONITOR lines that arrive on `m` (at least `n`), timestamps cut off.
async fn monitor_lines(m: &mut tokio::net::TcpStream, n: usize) -> Vec<String> {
    let mut text = String::new();
    for _ in 0..40 {
        text.push_str(&String::from_utf8_lossy(&read_until(m, 1).await));
        if text.matches("\r\n").count() >= n {
            break;
        }
    }
    text.split_terminator("\r\n")
        .map(|l| {
            assert!(l.starts_with('+'), "{l}");
            let (stamp, rest) = l[1..].split_once(' ').unwrap();
            let (s, us) = stamp.split_once('.').unwrap();
            assert!(s.parse::<u64>().is_ok() && us.len() == 6, "{l}");
            rest.to_string()
        })
        .collect()
}

#[tokio::test]
async fn monitor_shows_commands_as_redis_writes_them() {
    let server = start().await;
    let mut m = open(&server).await;
    send(&mut m, &["MONITOR"]).await;
    expect_reply(&mut m, "+OK\r\n").await;
    let mut c = open(&server).await;
    let peer = c.local_addr().unwrap().to_string();
    send(
        &mut c,
        &[
            "SET k 5",
            "SELECT 1",
            "GET k",
            "AUTH foo",
            "AUTH u p",
            "HELLO 2 AUTH default x SETNAME n",
            "MULTI",
            "SET a \"x y\\n\"",
            "EXEC",
            "EVAL \"redis.call('set','z',1) return 1\" 0",
            "CONFIG GET port",
            "CLIENT ID",
            "PING",
            "FOO",
            "GET",
        ],
    )
    .await;
    // The same lines redis-server 7.0 wrote for these commands (bar the peer).
    let want: Vec<String> = [
        r#"[0 P] "SET" "k" "5""#,
        r#"[1 P] "SELECT" "1""#,
        r#"[1 P] "GET" "k""#,
        r#"[1 P] "AUTH" "(redacted)""#,
        r#"[1 P] "AUTH" "(redacted)" "(redacted)""#,
        r#"[1 P] "HELLO" "2" "AUTH" "(redacted)" "(redacted)" "SETNAME" "n""#,
        r#"[1 P] "MULTI""#,
        r#"[1 P] "SET" "a" "x y\n""#,
        r#"[1 P] "EXEC""#,
        r#"[1 P] "EVAL" "redis.call('set','z',1) return 1" "0""#,
        r#"[1 lua] "set" "z" "1""#,
        r#"[1 P] "CLIENT" "ID""#,
        r#"[1 P] "PING""#,
    ]
    .iter()
    .map(|l| l.replace(" P]", &format!(" {peer}]")))
    .collect();
    assert_eq!(monitor_lines(&mut m, want.len()).await, want);
    // The monitor itself: PING runs (and shows), keyspace commands are
    // refused, a second MONITOR is ignored, CLIENT LIST shows `O`.
    send(&mut m, &["PING", "GET k", "MONITOR", "CLIENT INFO"]).await;
    let got = String::from_utf8_lossy(&read_until(&mut m, 200).await).into_owned();
    assert!(got.starts_with("+PONG\r\n+"), "{got}");
    assert!(
        got.contains("\"PING\"\r\n-ERR Replica can't interact with the keyspace\r\n$"),
        "{got}"
    );
    assert!(got.contains(" flags=O "), "{got}");
    // RESET ends it: nothing more arrives.
    send(&mut m, &["RESET"]).await;
    expect_reply(&mut m, "+RESET\r\n").await;
    send(&mut c, &["PING"]).await;
    silent(&mut m).await;
}

#[tokio::test]
async fn a_monitor_may_fcall_only_a_no_writes_function() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["FUNCTION", "LOAD", KV_LIBRARY])
        .await
        .unwrap();
    let mut m = open(&server).await;
    send(&mut m, &["MONITOR"]).await;
    expect_reply(&mut m, "+OK\r\n").await;
    // As redis-server 7.0: FCALL of a `no-writes` function has neither the
    // write, readonly nor may-replicate flag; the others are refused.
    let refused = "-ERR Replica can't interact with the keyspace\r\n";
    for call in [
        "FCALL w 1 k v",
        "FCALL_RO r 1 k",
        "FCALL nope 0",
        "FCALL_RO nope 0",
    ] {
        send(&mut m, &[call]).await;
        expect_reply(&mut m, refused).await;
    }
    send(&mut m, &["FCALL r 1 k"]).await;
    let got = String::from_utf8_lossy(&read_until(&mut m, 80).await).into_owned();
    assert!(got.contains("$-1\r\n"), "{got}");
    assert!(got.contains(r#" "FCALL" "r" "1" "k""#), "{got}");
}

#[tokio::test]
async fn monitor_names_a_unix_socket_client_by_the_socket_path() {
    use tokio::io::AsyncWriteExt;
    let dir = std::env::temp_dir().join(format!("latchkey-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let server = latchkey::Server::builder()
        .unixsocket(&path)
        .start()
        .await
        .unwrap();
    let mut m = open(&server).await;
    send(&mut m, &["MONITOR"]).await;
    expect_reply(&mut m, "+OK\r\n").await;
    let mut u = tokio::net::UnixStream::connect(&path).await.unwrap();
    u.write_all(b"PING\r\n").await.unwrap();
    let want = vec![format!("[0 unix:{}] \"PING\"", path.display())];
    assert_eq!(monitor_lines(&mut m, 1).await, want);
    let _ = std::fs::remove_dir_all(&dir);
}
