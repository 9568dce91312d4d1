//! The metrics endpoint (`metrics-port`): the Prometheus exposition under a
//! lock contention load, the status page (and its escaping of client bytes),
//! HTTP on the main port, hostile HTTP requests, LOCK.LIST and INFO locks.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{cmd, connect, err_line};
use latchkey::{Server, ServerHandle};
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start_with_metrics() -> ServerHandle {
    Server::builder().metrics().start().await.expect("starts")
}

/// Sends `request` to `addr` and reads until the server closes (5 s at most).
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(request).await.expect("writes");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

/// A response: status line, head, body.
struct Response {
    status: String,
    head: String,
    body: String,
}

async fn get(addr: SocketAddr, path: &str) -> Response {
    let raw = exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
    .await;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Response {
        status: head.lines().next().unwrap_or("").to_string(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// The samples of an exposition: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(server: &ServerHandle) -> HashMap<String, f64> {
    let r = get(server.metrics_addr().expect("metrics on"), "/metrics").await;
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert!(
        r.head.contains("Content-Type: text/plain; version=0.0.4"),
        "{}",
        r.head
    );
    samples(&r.body)
}

fn value(s: &HashMap<String, f64>, name: &str) -> f64 {
    *s.get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {s:?}"))
}

async fn acquire(con: &mut MultiplexedConnection, key: &str, owner: &str, opts: &[&str]) -> Value {
    let mut words = vec!["LOCK.ACQUIRE", key, owner, "10000"];
    words.extend_from_slice(opts);
    cmd(con, &words).await.expect("acquire runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_moves_the_histograms_and_the_gauges_return_to_zero() {
    let server = start_with_metrics().await;
    let before = scrape(&server).await;
    assert_eq!(value(&before, "latchkey_lock_wait_seconds_count"), 0.0);
    const CLIENTS: usize = 4;
    const ROUNDS: usize = 75;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut con = connect(&server).await;
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{c}");
            for _ in 0..ROUNDS {
                let got = acquire(&mut con, "hot", &owner, &["WAIT", "5000"]).await;
                assert!(matches!(got, Value::Int(_)), "granted: {got:?}");
                tokio::time::sleep(Duration::from_millis(1)).await;
                let released = cmd(&mut con, &["LOCK.RELEASE", "hot", &owner]).await;
                assert_eq!(released, Ok(Value::Int(1)));
            }
        }));
    }
    // Scraped while the load runs: a well-formed exposition every time.
    for _ in 0..5 {
        let during = scrape(&server).await;
        assert!(value(&during, "latchkey_lock_holders") <= 1.0);
        // The metrics port's own connections are no Redis clients.
        assert_eq!(value(&during, "latchkey_connected_clients"), CLIENTS as f64);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("load ends in time")
            .expect("load task");
    }
    let after = scrape(&server).await;
    let total = (CLIENTS * ROUNDS) as f64;
    let immediate = value(
        &after,
        "latchkey_lock_acquisitions_total{outcome=\"immediate\"}",
    );
    let waited = value(
        &after,
        "latchkey_lock_acquisitions_total{outcome=\"after_wait\"}",
    );
    assert_eq!(immediate + waited, total);
    assert!(waited > 0.0, "four clients on one lock waited sometimes");
    assert_eq!(value(&after, "latchkey_lock_wait_seconds_count"), total);
    assert_eq!(
        value(&after, "latchkey_lock_wait_seconds_bucket{le=\"+Inf\"}"),
        total
    );
    // Immediate grants are the 0 bucket's, at least.
    assert!(value(&after, "latchkey_lock_wait_seconds_bucket{le=\"0\"}") >= immediate);
    assert!(value(&after, "latchkey_lock_wait_seconds_sum") > 0.0);
    assert_eq!(value(&after, "latchkey_lock_hold_seconds_count"), total);
    assert!(value(&after, "latchkey_lock_hold_seconds_sum") > 0.0);
    // The load is over: nothing held, nobody waiting or blocked.
    for gauge in [
        "latchkey_lock_holders",
        "latchkey_lock_waiters",
        "latchkey_locks",
        "latchkey_blocked_clients",
    ] {
        assert_eq!(value(&after, gauge), 0.0, "{gauge}");
    }
    assert!(value(&after, "latchkey_lock_fencing_token_high_water") > 0.0);
    assert!(
        value(&after, "latchkey_command_calls_total{cmd=\"lock.acquire\"}") >= total,
        "per-command calls"
    );
    assert!(value(&after, "latchkey_commands_processed_total") >= 2.0 * total);
    assert!(value(&after, "latchkey_uptime_seconds") >= 0.0);
}

#[tokio::test]
async fn timeouts_expiries_extends_and_refused_releases_are_counted() {
    let server = start_with_metrics().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    assert!(matches!(
        acquire(&mut a, "k", "a", &[]).await,
        Value::Int(_)
    ));
    // b waits 50 ms and gives up.
    assert_eq!(acquire(&mut b, "k", "b", &["WAIT", "50"]).await, Value::Nil);
    assert_eq!(
        cmd(&mut b, &["LOCK.RELEASE", "k", "b"]).await,
        Ok(Value::Int(0))
    );
    assert_eq!(
        cmd(&mut a, &["LOCK.EXTEND", "k", "a", "20"]).await,
        Ok(Value::Int(1))
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    // The lease ran out: the next operation on the key settles it.
    assert_eq!(
        cmd(&mut b, &["LOCK.VALIDATE", "k", "1"]).await,
        Ok(Value::Int(0))
    );
    let s = scrape(&server).await;
    assert_eq!(
        value(
            &s,
            "latchkey_lock_acquisitions_total{outcome=\"timed_out\"}"
        ),
        1.0
    );
    assert_eq!(value(&s, "latchkey_lock_releases_refused_total"), 1.0);
    assert_eq!(value(&s, "latchkey_lock_extends_total"), 1.0);
    assert_eq!(value(&s, "latchkey_lock_lease_expiries_total"), 1.0);
    // One immediate grant (0) and one wait of about 50 ms.
    assert_eq!(value(&s, "latchkey_lock_wait_seconds_count"), 2.0);
    assert!(value(&s, "latchkey_lock_wait_seconds_sum") >= 0.045);
    assert_eq!(value(&s, "latchkey_lock_hold_seconds_count"), 1.0);
    assert!(value(&s, "latchkey_lock_hold_seconds_sum") >= 0.05);
    // A SESSION hold released by its connection closing.
    let mut c = connect(&server).await;
    assert!(matches!(
        acquire(&mut c, "s", "c", &["SESSION"]).await,
        Value::Int(_)
    ));
    drop(c);
    let mut released = 0.0;
    for _ in 0..100 {
        released = value(
            &scrape(&server).await,
            "latchkey_lock_session_releases_total",
        );
        if released > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(released, 1.0);
    // INFO locks reads the same counters.
    let info: String = redis::cmd("INFO")
        .arg("locks")
        .query_async(&mut a)
        .await
        .expect("info");
    for line in [
        "lock_wait_timeouts:1",
        "lock_releases_refused:1",
        "lock_extends:1",
        "lock_lease_expiries:1",
        "lock_session_releases:1",
        // Two grants at once (a, then c's SESSION hold) and b's timeout.
        "lock_wait_count:3",
        "lock_hold_count:2",
    ] {
        assert!(info.contains(line), "{line} in {info}");
    }
    assert!(info.contains("lock_fencing_token_high_water:"));
}

#[tokio::test]
async fn lock_list_shows_holders_and_waiters_with_match_and_count() {
    let server = Server::builder().start().await.expect("starts");
    let mut a = connect(&server).await;
    let mut w = connect(&server).await;
    for key in ["job:1", "job:2", "other"] {
        assert!(matches!(
            acquire(&mut a, key, "owner-a", &[]).await,
            Value::Int(_)
        ));
    }
    let waiting = tokio::spawn(async move {
        let got = acquire(&mut w, "job:2", "owner-w", &["WAIT", "10000"]).await;
        (w, got)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let listed = cmd(&mut a, &["LOCK.LIST", "MATCH", "job:*"])
        .await
        .expect("lists");
    let Value::Array(locks) = listed else {
        panic!("an array: {listed:?}")
    };
    assert_eq!(locks.len(), 2);
    let text = format!("{locks:?}");
    assert!(text.contains("job:1") && text.contains("job:2") && !text.contains("other"));
    assert!(text.contains("owner-w"), "the waiter is listed: {text}");
    // In name order; job:2 has one waiter.
    let Value::Array(second) = &locks[1] else {
        panic!("RESP2 map as array: {:?}", locks[1])
    };
    assert_eq!(second[1], Value::BulkString(b"job:2".to_vec()));
    assert_eq!(second[7], Value::Int(1));
    let counted = cmd(&mut a, &["LOCK.LIST", "COUNT", "1"])
        .await
        .expect("lists");
    assert!(matches!(counted, Value::Array(ref v) if v.len() == 1));
    assert_eq!(
        err_line(&mut a, &["LOCK.LIST", "COUNT", "0"]).await,
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        err_line(&mut a, &["LOCK.LIST", "BOGUS"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        cmd(&mut a, &["LOCK.RELEASE", "job:2", "owner-a"]).await,
        Ok(Value::Int(1))
    );
    let (_w, got) = waiting.await.expect("waiter");
    assert!(matches!(got, Value::Int(_)));
}

#[tokio::test]
async fn the_status_page_escapes_hostile_lock_names_and_owners() {
    let server = start_with_metrics().await;
    let mut a = connect(&server).await;
    let mut w = connect(&server).await;
    let name = "<script>alert(1)</script>";
    let owner = "\"><img src=x onerror=alert(2)>";
    assert!(matches!(
        acquire(&mut a, name, owner, &[]).await,
        Value::Int(_)
    ));
    let waiter = tokio::spawn(async move {
        acquire(
            &mut w,
            "<script>alert(1)</script>",
            "<b>waiter</b>",
            &["WAIT", "10000"],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let page = get(server.metrics_addr().expect("on"), "/").await;
    assert_eq!(page.status, "HTTP/1.1 200 OK");
    assert!(page.head.contains("Content-Type: text/html"));
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(!page.body.contains("<img"), "{}", page.body);
    assert!(!page.body.contains("<b>waiter"), "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page
        .body
        .contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
    assert!(page.body.contains("&lt;b&gt;waiter&lt;/b&gt;"));
    assert!(page.body.contains("<svg id=\"wait-histogram\""));
    assert_eq!(
        cmd(&mut a, &["LOCK.RELEASE", name, owner]).await,
        Ok(Value::Int(1))
    );
    assert!(matches!(waiter.await.expect("waiter"), Value::Int(_)));
}

#[tokio::test]
async fn the_main_port_answers_http_only_while_metrics_are_on() {
    let on = start_with_metrics().await;
    let r = get(on.addr(), "/metrics").await;
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert!(r
        .body
        .contains("# TYPE latchkey_lock_wait_seconds histogram"));
    let r = get(on.addr(), "/").await;
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert!(r.body.starts_with("<!DOCTYPE html>"));
    // Redis's inline commands are no HTTP, even a key with a slash.
    let got = common::raw(&on, b"GET /k\r\nPING\r\n", 12).await;
    assert_eq!(String::from_utf8_lossy(&got), "$-1\r\n+PONG\r\n");
    // Redis clients are unaffected.
    let mut con = connect(&on).await;
    assert_eq!(
        cmd(&mut con, &["PING"]).await,
        Ok(Value::SimpleString("PONG".into()))
    );
    // Off: the request is Redis's inline command, answered as redis-server
    // answers it.
    let off = Server::builder().start().await.expect("starts");
    assert!(off.metrics_addr().is_none());
    let want = "-ERR wrong number of arguments for 'get' command\r\n";
    let got = common::raw(&off, b"GET / HTTP/1.1\r\n\r\n", want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);
    // With a password the main port does not answer HTTP either (the page
    // would show every lock's owner to a client that never authenticated):
    // the request is Redis's inline GET again, whose arity is checked before
    // authentication, as redis-server does. The metrics port still answers.
    let locked = Server::builder()
        .metrics()
        .option("requirepass", "secret")
        .unwrap()
        .start()
        .await
        .expect("starts");
    let want = "-ERR wrong number of arguments for 'get' command\r\n";
    let got = common::raw(&locked, b"GET / HTTP/1.1\r\n\r\n", want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);
    let r = get(locked.metrics_addr().unwrap(), "/metrics").await;
    assert_eq!(r.status, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn malformed_oversized_and_slow_requests_are_refused_without_harm() {
    let server = start_with_metrics().await;
    let addr = server.metrics_addr().expect("on");
    let status = |raw: Vec<u8>| parse_response(&raw).status;
    assert_eq!(
        status(exchange(addr, b"\x00\x01garbage\r\n\r\n").await),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status(exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(
        status(exchange(addr, b"GET /secret HTTP/1.1\r\n\r\n").await),
        "HTTP/1.1 404 Not Found"
    );
    let big = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_eq!(
        status(exchange(addr, big.as_bytes()).await),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let many: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
    assert_eq!(
        status(exchange(addr, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).await),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // HEAD: the head without the body.
    let head = parse_response(&exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await);
    assert_eq!(head.status, "HTTP/1.1 200 OK");
    assert!(head.body.is_empty());
    // A client that never finishes its request is closed unanswered.
    let started = std::time::Instant::now();
    let mut slow = TcpStream::connect(addr).await.expect("connects");
    slow.write_all(b"GET /metr").await.expect("writes");
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), slow.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "closed by the server");
    assert!(out.is_empty());
    assert!(started.elapsed() >= Duration::from_secs(4));
    // The server still serves.
    assert!(scrape(&server)
        .await
        .contains_key("latchkey_uptime_seconds"));
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["PING"]).await,
        Ok(Value::SimpleString("PONG".into()))
    );
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_and_the_slots_come_back() {
    let server = start_with_metrics().await;
    let addr = server.metrics_addr().expect("on");
    let mut idle = Vec::new();
    for _ in 0..latchkey::metrics::http::MAX_CONNECTIONS {
        idle.push(TcpStream::connect(addr).await.expect("connects"));
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let refused = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(refused.is_empty(), "closed unanswered past the limit");
    assert!(started.elapsed() < Duration::from_secs(2), "at once");
    // Clients that leave give their slots back.
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(scrape(&server)
        .await
        .contains_key("latchkey_uptime_seconds"));
}

#[tokio::test]
async fn metrics_port_is_shown_and_set_only_at_start_up() {
    let server = start_with_metrics().await;
    let port = server.metrics_addr().expect("on").port();
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["CONFIG", "GET", "metrics-port"]).await,
        Ok(Value::Array(vec![
            Value::BulkString(b"metrics-port".to_vec()),
            Value::BulkString(port.to_string().into_bytes()),
        ]))
    );
    assert_eq!(
        err_line(&mut con, &["CONFIG", "SET", "metrics-port", "9999"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'metrics-port') - can't set immutable config"
    );
    let off = Server::builder().start().await.expect("starts");
    let mut con = connect(&off).await;
    assert_eq!(
        cmd(&mut con, &["CONFIG", "GET", "metrics-port"]).await,
        Ok(Value::Array(vec![
            Value::BulkString(b"metrics-port".to_vec()),
            Value::BulkString(b"0".to_vec()),
        ]))
    );
}

#[tokio::test]
async fn keyspace_lookups_and_network_bytes_are_counted() {
    let server = start_with_metrics().await;
    let mut con = connect(&server).await;
    let before = scrape(&server).await;
    assert_eq!(value(&before, "latchkey_keyspace_hits_total"), 0.0);
    assert_eq!(cmd(&mut con, &["SET", "k", "v"]).await, Ok(Value::Okay));
    for _ in 0..3 {
        cmd(&mut con, &["GET", "k"]).await.expect("get");
    }
    for _ in 0..2 {
        cmd(&mut con, &["GET", "missing"]).await.expect("get");
    }
    let after = scrape(&server).await;
    assert_eq!(value(&after, "latchkey_keyspace_hits_total"), 3.0);
    assert_eq!(value(&after, "latchkey_keyspace_misses_total"), 2.0);
    // Every request and reply went over the wire: "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    // is 22 bytes, "$1\r\nv\r\n" 7.
    let net_in = value(&after, "latchkey_net_input_bytes_total")
        - value(&before, "latchkey_net_input_bytes_total");
    let net_out = value(&after, "latchkey_net_output_bytes_total")
        - value(&before, "latchkey_net_output_bytes_total");
    assert!(net_in >= 3.0 * 22.0, "{net_in}");
    assert!(net_out >= 3.0 * 7.0 + 2.0 * 5.0, "{net_out}");
    // A client that leaves keeps its bytes in the totals.
    drop(con);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let later = scrape(&server).await;
    assert!(
        value(&later, "latchkey_net_input_bytes_total")
            >= value(&after, "latchkey_net_input_bytes_total")
    );
    let mut con = connect(&server).await;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut con)
        .await
        .expect("info");
    assert!(info.contains("keyspace_hits:3\r\n"), "{info}");
    assert!(info.contains("keyspace_misses:2\r\n"), "{info}");
    assert!(info.contains("total_net_input_bytes:"), "{info}");
    assert_eq!(
        cmd(&mut con, &["CONFIG", "RESETSTAT"]).await,
        Ok(Value::Okay)
    );
    let reset = scrape(&server).await;
    assert_eq!(value(&reset, "latchkey_keyspace_hits_total"), 0.0);
}
