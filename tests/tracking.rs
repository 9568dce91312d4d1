//! Client-side caching over raw bytes: the exact invalidation frames Redis
//! sends (RESP3 pushes, RESP2 `message`s on `__redis__:invalidate` through
//! REDIRECT, the flush null, `tracking-redir-broken`), default mode, BCAST
//! with prefixes, OPTIN/OPTOUT, NOLOOP, MULTI and scripts, expiry, the
//! `tracking-table-max-keys` bound, and clean-up when a client leaves.
//!
//! Every expected byte string below was recorded from redis-server 7.0.15
//! with the same requests on the same connections (a Python socket script
//! sending the lines below and printing what each connection received),
//! since redis-tests/ cases run on one connection only. Where 7.0 and 7.2
//! differ (keys read by a script), 7.2 is followed and says so.

mod common;

use std::time::Duration;

use common::{expect_reply, open, read_until, send, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one command as a multibulk request (no inline length limit).
async fn send_args(s: &mut TcpStream, args: &[String]) {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).await.unwrap();
}

/// Sends `lines` and checks the exact bytes that come back.
async fn exchange(s: &mut TcpStream, lines: &[&str], want: &str) {
    send(s, lines).await;
    Box::pin(expect_reply(s, want)).await;
}

/// Checks that nothing arrives on `s` for a while.
async fn quiet(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(Duration::from_millis(150), s.read(&mut buf)).await {
        Err(_) => {}
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Ok(Err(e)) => panic!("read failed: {e}"),
    }
}

/// A connection in RESP3 (HELLO's reply read and dropped).
async fn resp3(server: &latchkey::ServerHandle) -> TcpStream {
    let mut s = open(server).await;
    send(&mut s, &["HELLO 3", "PING"]).await;
    let mut got = Vec::new();
    while !got.ends_with(b"+PONG\r\n") {
        let chunk = read_until(&mut s, 1).await;
        assert!(!chunk.is_empty(), "no reply to HELLO 3");
        got.extend_from_slice(&chunk);
    }
    s
}

async fn client_id(s: &mut TcpStream) -> u64 {
    send(s, &["CLIENT ID"]).await;
    let got = read_until(s, 3).await;
    let mut got = got;
    while !got.ends_with(b"\r\n") {
        got.extend(read_until(s, 1).await);
    }
    String::from_utf8_lossy(&got[1..got.len() - 2])
        .parse()
        .unwrap()
}

fn inval(keys: &[&str]) -> String {
    let mut s = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len());
    for k in keys {
        s.push_str(&format!("${}\r\n{k}\r\n", k.len()));
    }
    s
}

const FLUSHED: &str = ">2\r\n$10\r\ninvalidate\r\n_\r\n";

async fn info_field(s: &mut TcpStream, section: &str, name: &str) -> String {
    send(s, &[&format!("INFO {section}")]).await;
    let mut got = Vec::new();
    loop {
        got.extend(read_until(s, 1).await);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(start) = text.find(&format!("{name}:")) {
            if let Some(end) = text[start..].find("\r\n") {
                let v = text[start + name.len() + 1..start + end].to_string();
                // Let the rest of the reply arrive and drop it.
                tokio::time::sleep(Duration::from_millis(30)).await;
                let mut rest = vec![0u8; 65536];
                let _ = tokio::time::timeout(Duration::from_millis(30), s.read(&mut rest)).await;
                return v;
            }
        }
    }
}

#[tokio::test]
async fn default_mode_invalidates_once_after_another_clients_write() {
    let server = start().await;
    let mut a = resp3(&server).await;
    let mut b = open(&server).await;
    exchange(
        &mut a,
        &["CLIENT TRACKING on", "GET k", "MGET k x"],
        "+OK\r\n_\r\n*2\r\n_\r\n_\r\n",
    )
    .await;
    exchange(&mut b, &["SET k v"], "+OK\r\n").await;
    expect_reply(&mut a, &inval(&["k"])).await;
    // Forgotten once sent: a second write says nothing.
    exchange(&mut b, &["SET k v2"], "+OK\r\n").await;
    quiet(&mut a).await;
    // The client's own write: the push follows the reply.
    exchange(
        &mut a,
        &["GET k", "SET k 1"],
        &format!("$2\r\nv2\r\n+OK\r\n{}", inval(&["k"])),
    )
    .await;
    // A flush from anyone: the null, to every tracking client.
    exchange(&mut a, &["GET k"], "$1\r\n1\r\n").await;
    exchange(&mut b, &["FLUSHDB"], "+OK\r\n").await;
    expect_reply(&mut a, FLUSHED).await;
    exchange(&mut a, &["FLUSHALL"], &format!("+OK\r\n{FLUSHED}")).await;
    // A RESP2 tracking client without a redirection gets nothing at all.
    let mut c = open(&server).await;
    exchange(&mut c, &["CLIENT TRACKING on", "GET k"], "+OK\r\n$-1\r\n").await;
    exchange(&mut b, &["SET k 9"], "+OK\r\n").await;
    quiet(&mut c).await;
}

#[tokio::test]
async fn invalidations_from_multi_and_scripts_leave_after_the_reply() {
    let server = start().await;
    let mut a = resp3(&server).await;
    let mut b = open(&server).await;
    exchange(
        &mut a,
        &[
            "CLIENT TRACKING on",
            "GET k",
            "MULTI",
            "GET k",
            "SET k 2",
            "GET j",
            "EXEC",
        ],
        &format!(
            "+OK\r\n_\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n_\r\n+OK\r\n_\r\n{}",
            inval(&["k"])
        ),
    )
    .await;
    // j was read last in the transaction: still tracked.
    exchange(&mut b, &["SET j 1"], "+OK\r\n").await;
    expect_reply(&mut a, &inval(&["j"])).await;
    // A script's reads are tracked (the keys its commands read, as Redis 7.2;
    // 7.0 tracks the declared keys instead), its writes sent when it ends.
    exchange(
        &mut a,
        &["EVAL \"redis.call('get', 's'); redis.call('set', 'k', 1); return 1\" 0"],
        ":1\r\n",
    )
    .await;
    exchange(&mut b, &["SET s 1"], "+OK\r\n").await;
    expect_reply(&mut a, &inval(&["s"])).await;
    exchange(
        &mut a,
        &[
            "GET k",
            "EVAL \"redis.call('set', 'k', 2); redis.call('set', 'k', 3); return 1\" 0",
        ],
        &format!("$1\r\n1\r\n:1\r\n{}", inval(&["k"])),
    )
    .await;
    quiet(&mut a).await;
}

#[tokio::test]
async fn noloop_skips_the_clients_own_writes() {
    let server = start().await;
    let mut a = resp3(&server).await;
    let mut b = open(&server).await;
    exchange(
        &mut a,
        &["CLIENT TRACKING on NOLOOP", "GET k", "SET k 3"],
        "+OK\r\n_\r\n+OK\r\n",
    )
    .await;
    quiet(&mut a).await;
    // Its own write forgot the key (Redis forgets it whoever wrote).
    exchange(&mut b, &["DEL k"], ":1\r\n").await;
    quiet(&mut a).await;
    exchange(&mut a, &["GET k"], "_\r\n").await;
    exchange(&mut b, &["SET k 4"], "+OK\r\n").await;
    expect_reply(&mut a, &inval(&["k"])).await;
}

#[tokio::test]
async fn bcast_sends_keys_under_each_prefix_after_the_batch() {
    let server = start().await;
    let mut a = resp3(&server).await;
    let mut b = open(&server).await;
    exchange(
        &mut a,
        &["CLIENT TRACKING on BCAST PREFIX a PREFIX b"],
        "+OK\r\n",
    )
    .await;
    exchange(&mut b, &["MSET a1 x b2 y c3 z"], "+OK\r\n").await;
    expect_reply(&mut a, &format!("{}{}", inval(&["a1"]), inval(&["b2"]))).await;
    // A pipeline's writes come after all its replies.
    exchange(
        &mut a,
        &["SET a9 1", "SET b9 1", "SET z 1"],
        &format!("+OK\r\n+OK\r\n+OK\r\n{}{}", inval(&["a9"]), inval(&["b9"])),
    )
    .await;
    // Prefixes add up; NOLOOP leaves out the client's own writes.
    exchange(
        &mut a,
        &["CLIENT TRACKING on BCAST NOLOOP PREFIX c"],
        "+OK\r\n",
    )
    .await;
    exchange(&mut a, &["MSET a1 1 c1 1"], "+OK\r\n").await;
    quiet(&mut a).await;
    exchange(&mut b, &["MSET a1 1 c1 1"], "+OK\r\n").await;
    expect_reply(&mut a, &format!("{}{}", inval(&["a1"]), inval(&["c1"]))).await;
    exchange(
        &mut a,
        &["CLIENT TRACKINGINFO"],
        "%3\r\n$5\r\nflags\r\n~3\r\n$2\r\non\r\n$5\r\nbcast\r\n$6\r\nnoloop\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
    )
    .await;
    // Several keys under one prefix in one command: one message.
    exchange(&mut b, &["MSET a2 1 a3 1 a1 2"], "+OK\r\n").await;
    expect_reply(&mut a, &inval(&["a1", "a2", "a3"])).await;
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_prefixes").await,
        "3"
    );
    exchange(&mut a, &["CLIENT TRACKING off"], "+OK\r\n").await;
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_prefixes").await,
        "0"
    );
}

#[tokio::test]
async fn a_collision_past_the_first_prefix_replies_an_error_then_ok() {
    // Redis's checkPrefixCollisionsOrReply returns its loop index on this
    // path, so the command goes on: two replies, and the prefixes are taken.
    let server = start().await;
    let mut d = open(&server).await;
    exchange(
        &mut d,
        &["CLIENT TRACKING on BCAST PREFIX x PREFIX b PREFIX bc", "CLIENT TRACKINGINFO"],
        "-ERR Prefix 'b' overlaps with another provided prefix 'bc'. Prefixes for a single client must not overlap.\r\n+OK\r\n*6\r\n$5\r\nflags\r\n*2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*3\r\n$1\r\nb\r\n$2\r\nbc\r\n$1\r\nx\r\n",
    )
    .await;
}

#[tokio::test]
async fn optin_and_optout_follow_client_caching() {
    let server = start().await;
    let mut a = resp3(&server).await;
    let mut b = open(&server).await;
    exchange(
        &mut a,
        &[
            "CLIENT TRACKING on OPTIN",
            "GET x",
            "CLIENT CACHING yes",
            "GET y",
            "GET z",
        ],
        "+OK\r\n_\r\n+OK\r\n_\r\n_\r\n",
    )
    .await;
    exchange(&mut b, &["MSET x 1 y 1 z 1"], "+OK\r\n").await;
    expect_reply(&mut a, &inval(&["y"])).await;
    quiet(&mut a).await;
    // CACHING lasts for a whole transaction.
    exchange(
        &mut a,
        &["CLIENT CACHING yes", "MULTI", "GET x", "GET z", "EXEC"],
        "+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$1\r\n1\r\n$1\r\n1\r\n",
    )
    .await;
    exchange(&mut b, &["DEL x z"], ":2\r\n").await;
    let want = [inval(&["x"]), inval(&["z"])];
    let got = read_until(&mut a, want[0].len() * 2).await;
    let got = String::from_utf8_lossy(&got).to_string();
    assert!(
        got == want.concat() || got == format!("{}{}", want[1], want[0]),
        "{got:?}"
    );
    exchange(
        &mut a,
        &[
            "CLIENT TRACKING off",
            "CLIENT TRACKING on OPTOUT",
            "GET p",
            "CLIENT CACHING no",
            "GET q",
        ],
        "+OK\r\n+OK\r\n_\r\n+OK\r\n_\r\n",
    )
    .await;
    exchange(&mut b, &["MSET p 1 q 1"], "+OK\r\n").await;
    expect_reply(&mut a, &inval(&["p"])).await;
    quiet(&mut a).await;
}

#[tokio::test]
async fn redirect_to_a_resp2_subscriber_and_a_broken_redirect() {
    let server = start().await;
    let mut r = open(&server).await;
    let rid = client_id(&mut r).await;
    exchange(
        &mut r,
        &["SUBSCRIBE __redis__:invalidate"],
        "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
    )
    .await;
    let mut c = open(&server).await;
    let mut b = open(&server).await;
    exchange(
        &mut c,
        &[
            &format!("CLIENT TRACKING on REDIRECT {rid}"),
            "GET k",
            "CLIENT GETREDIR",
        ],
        &format!("+OK\r\n$-1\r\n:{rid}\r\n"),
    )
    .await;
    exchange(&mut b, &["SET k 5"], "+OK\r\n").await;
    expect_reply(
        &mut r,
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n",
    )
    .await;
    quiet(&mut c).await;
    // The flush null is the tracking client's own: `$-1` from a RESP2 one,
    // `_` from a RESP3 one, even inside a RESP2 message.
    let mut a = resp3(&server).await;
    exchange(
        &mut a,
        &[&format!("CLIENT TRACKING on REDIRECT {rid}")],
        "+OK\r\n",
    )
    .await;
    exchange(&mut b, &["FLUSHALL"], "+OK\r\n").await;
    let nulls = [
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n",
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n_\r\n",
    ];
    expect_reply(&mut r, &nulls.concat()).await;
    let list = {
        send(&mut b, &["CLIENT LIST"]).await;
        String::from_utf8_lossy(&read_until(&mut b, 400).await).to_string()
    };
    assert!(list.contains("flags=t db=0"), "{list}");
    assert!(list.contains(&format!("redir={rid} resp=3")), "{list}");
    // The target leaves: the next invalidation tells the RESP3 client so,
    // every time, and CLIENT LIST / TRACKINGINFO show it.
    drop(r);
    tokio::time::sleep(Duration::from_millis(100)).await;
    exchange(&mut a, &["GET k"], "_\r\n").await;
    exchange(&mut b, &["SET k 6"], "+OK\r\n").await;
    let broken = format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{rid}\r\n");
    expect_reply(&mut a, &broken).await;
    exchange(
        &mut a,
        &["CLIENT TRACKINGINFO", "GET k"],
        &format!("%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$15\r\nbroken_redirect\r\n$8\r\nredirect\r\n:{rid}\r\n$8\r\nprefixes\r\n*0\r\n$1\r\n6\r\n"),
    )
    .await;
    exchange(&mut b, &["SET k 7"], "+OK\r\n").await;
    expect_reply(&mut a, &broken).await;
    send(&mut b, &["CLIENT LIST"]).await;
    let list = String::from_utf8_lossy(&read_until(&mut b, 400).await).to_string();
    assert!(list.contains("flags=tR db=0"), "{list}");
}

#[tokio::test]
async fn expiry_invalidates_a_tracked_key() {
    let server = common::start().await;
    server.pause_time();
    let mut a = resp3(&server).await;
    exchange(
        &mut a,
        &["SET t 1 PX 100", "CLIENT TRACKING on", "GET t"],
        "+OK\r\n+OK\r\n$1\r\n1\r\n",
    )
    .await;
    server.advance_time(Duration::from_millis(200));
    expect_reply(&mut a, &inval(&["t"])).await;
}

#[tokio::test]
async fn the_table_stays_under_tracking_table_max_keys() {
    let server = start().await;
    let mut a = resp3(&server).await;
    let mut b = open(&server).await;
    exchange(&mut b, &["CONFIG SET tracking-table-max-keys 2"], "+OK\r\n").await;
    exchange(
        &mut a,
        &["CLIENT TRACKING on", "GET k1", "GET k2"],
        "+OK\r\n_\r\n_\r\n",
    )
    .await;
    quiet(&mut a).await;
    // A third key evicts one of the first two, which is invalidated.
    send(&mut a, &["GET k3"]).await;
    let got =
        String::from_utf8_lossy(&read_until(&mut a, 4 + inval(&["k1"]).len()).await).to_string();
    assert!(
        ["k1", "k2", "k3"]
            .iter()
            .any(|k| got == format!("_\r\n{}", inval(&[k]))),
        "{got:?}"
    );
    quiet(&mut a).await;
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_keys").await,
        "2"
    );
    // A hostile MGET of many keys: the table stays bounded.
    let mut req = String::from("MGET");
    for i in 0..5000 {
        req.push_str(&format!(" h{i}"));
    }
    send(&mut a, &[&req]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_keys").await,
        "2"
    );
    assert_eq!(info_field(&mut b, "clients", "tracking_clients").await, "1");
    // Lowering the limit trims at once, telling the client.
    exchange(&mut b, &["CONFIG SET tracking-table-max-keys 1"], "+OK\r\n").await;
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_keys").await,
        "1"
    );
}

#[tokio::test]
async fn a_client_that_leaves_or_resets_is_no_longer_tracking() {
    let server = start().await;
    let mut a = resp3(&server).await;
    let mut b = open(&server).await;
    exchange(
        &mut a,
        &["CLIENT TRACKING on BCAST PREFIX p", "RESET"],
        "+OK\r\n+RESET\r\n",
    )
    .await;
    assert_eq!(info_field(&mut b, "clients", "tracking_clients").await, "0");
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_prefixes").await,
        "0"
    );
    let mut a = resp3(&server).await;
    exchange(
        &mut a,
        &["CLIENT TRACKING on", "MGET x y z"],
        "+OK\r\n*3\r\n_\r\n_\r\n_\r\n",
    )
    .await;
    assert_eq!(info_field(&mut b, "clients", "tracking_clients").await, "1");
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_items").await,
        "3"
    );
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(info_field(&mut b, "clients", "tracking_clients").await, "0");
    // Lazily, as Redis: the keys go when they are written.
    exchange(&mut b, &["MSET x 1 y 1 z 1"], "+OK\r\n").await;
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_keys").await,
        "0"
    );
    // A hostile client: many prefixes, checked in n log n and dropped on leave.
    let mut h = open(&server).await;
    let mut req: Vec<String> = ["CLIENT", "TRACKING", "on", "BCAST"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for i in 0..20000 {
        req.push("PREFIX".into());
        req.push(format!("p{i:06}:"));
    }
    send_args(&mut h, &req).await;
    expect_reply(&mut h, "+OK\r\n").await;
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_prefixes").await,
        "20000"
    );
    drop(h);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        info_field(&mut b, "stats", "tracking_total_prefixes").await,
        "0"
    );
}

/// Reads one frame of the few kinds this test meets: a bulk reply (`$n`), an
/// integer, `+OK`, or an invalidation push; returns (is_push, payload).
async fn next_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> (bool, Vec<u8>) {
    loop {
        if let Some(parsed) = parse_frame(buf) {
            return parsed;
        }
        let mut chunk = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("a frame in time")
            .unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_frame(buf: &mut Vec<u8>) -> Option<(bool, Vec<u8>)> {
    let line_end = |from: usize, b: &[u8]| {
        b[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| from + p)
    };
    let first = line_end(0, buf)?;
    let head = buf[..first].to_vec();
    let (push, payload, end) = match head.first() {
        Some(b'$') => {
            let n: usize = std::str::from_utf8(&head[1..]).unwrap().parse().unwrap();
            let end = first + 2 + n + 2;
            if buf.len() < end {
                return None;
            }
            (false, buf[first + 2..first + 2 + n].to_vec(), end)
        }
        Some(b':') | Some(b'+') => (false, head[1..].to_vec(), first + 2),
        Some(b'_') => (false, b"0".to_vec(), first + 2),
        Some(b'>') => {
            // >2 $10 invalidate *1 $n key: five more lines.
            let mut at = first + 2;
            for _ in 0..5 {
                at = line_end(at, buf)? + 2;
            }
            (true, Vec::new(), at)
        }
        other => panic!("unexpected frame {other:?}"),
    };
    buf.drain(..end);
    Some((push, payload))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_racing_writes_never_leaves_a_stale_cached_value() {
    // The reader keeps what it read until an invalidation arrives after that
    // reply; once the writer stops, whatever it still holds must be the
    // last value written. Reads and writes run on two threads at once.
    let server = start().await;
    for round in 0..20 {
        let mut reader = resp3(&server).await;
        exchange(&mut reader, &["CLIENT TRACKING on"], "+OK\r\n").await;
        let mut writer = open(&server).await;
        let key = format!("race{round}");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let w = {
            let stop = stop.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let mut last = 0u64;
                let mut buf = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    send(&mut writer, &[&format!("INCR {key}")]).await;
                    let (_, v) = next_frame(&mut writer, &mut buf).await;
                    last = String::from_utf8(v).unwrap().parse().unwrap();
                }
                last
            })
        };
        let mut buf = Vec::new();
        let mut cached: Option<Vec<u8>> = None;
        for _ in 0..200 {
            send(&mut reader, &[&format!("GET {key}")]).await;
            // A push before the reply drops the previous value, which the
            // reply replaces anyway.
            cached = loop {
                let (push, v) = next_frame(&mut reader, &mut buf).await;
                if !push {
                    break Some(v);
                }
            };
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let last = w.await.unwrap();
        // Pushes still on their way.
        send(&mut reader, &["PING"]).await;
        loop {
            let (push, v) = next_frame(&mut reader, &mut buf).await;
            if push {
                cached = None;
            } else {
                assert_eq!(v, b"PONG");
                break;
            }
        }
        if let Some(v) = cached {
            assert_eq!(
                String::from_utf8(v).unwrap(),
                last.to_string(),
                "round {round}: a stale value stayed cached"
            );
        }
    }
}

#[tokio::test]
async fn an_idle_resp3_client_made_a_redirect_target_gets_the_invalidation() {
    // redis-server 7.0.15 pushes `>2 invalidate [k]` to B, which sent
    // nothing after becoming the target.
    let server = start().await;
    let mut b = resp3(&server).await;
    let id = client_id(&mut b).await;
    // B is idle, waiting for bytes, before it becomes anyone's target.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut a = open(&server).await;
    exchange(
        &mut a,
        &[&format!("CLIENT TRACKING on REDIRECT {id}"), "GET k"],
        "+OK\r\n$-1\r\n",
    )
    .await;
    let mut c = open(&server).await;
    exchange(&mut c, &["SET k 1"], "+OK\r\n").await;
    // At once, not at B's next idle tick (its buffers' release, 2 s on).
    let want = inval(&["k"]);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1024];
    while got.len() < want.len() {
        match tokio::time::timeout(Duration::from_millis(500), b.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    assert_eq!(String::from_utf8_lossy(&got), want);
}
