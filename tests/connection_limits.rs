//! A connection's life at its edges: clients that stop reading their replies,
//! panics while serving one client, what CLIENT LIST reports about buffers, and
//! large values moving from the socket to the keyspace.

mod common;

use std::time::Duration;

use common::{cmd, connect, read_until, start};
use latchkey::ServerHandle;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw client that holds lock `L` with SESSION and then pipelines GETs of a
/// 1 MB value without reading a byte of the replies, so the server's writes to it
/// stall. Returns the socket (kept open by the caller) and the client's id.
async fn client_that_stops_reading(server: &ServerHandle) -> (TcpStream, i64) {
    let mut admin = connect(server).await;
    let big = "x".repeat(1 << 20);
    cmd(&mut admin, &["SET", "big", &big]).await.unwrap();
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"CLIENT ID\r\nLOCK.ACQUIRE L victim 100000 SESSION\r\n")
        .await
        .unwrap();
    let got = read_until(&mut s, 8).await;
    let text = String::from_utf8_lossy(&got).to_string();
    let mut lines = text.split("\r\n");
    let id: i64 = lines.next().unwrap()[1..].parse().unwrap();
    assert!(lines.next().is_some_and(|l| l.starts_with(':')), "{text:?}");
    // 200 GETs of 1 MB: far more than the socket buffers hold.
    let gets = "GET big\r\n".repeat(200);
    s.write_all(gets.as_bytes()).await.unwrap();
    // Give the server time to fill the socket and block in its write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (s, id)
}

/// Polls until client `id` has left CLIENT LIST and another client can take lock
/// `L`; fails after `within`.
async fn assert_gone_and_lock_free(con: &mut MultiplexedConnection, id: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    let needle = format!("id={id} ");
    loop {
        let Value::BulkString(list) = cmd(con, &["CLIENT", "LIST"]).await.unwrap() else {
            panic!("CLIENT LIST is a bulk string")
        };
        let listed = String::from_utf8_lossy(&list).contains(&needle);
        let took = cmd(con, &["LOCK.ACQUIRE", "L", "other", "1000"])
            .await
            .unwrap();
        if !listed && matches!(took, Value::Int(_)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "client {id} still listed: {listed}, lock still held: {took:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_kill_could_not_drop_a_client_that_stops_reading() {
    let server = start().await;
    let (victim, id) = client_that_stops_reading(&server).await;
    let mut admin = connect(&server).await;
    let killed = cmd(&mut admin, &["CLIENT", "KILL", "ID", &id.to_string()])
        .await
        .unwrap();
    assert_eq!(killed, Value::Int(1));
    assert_gone_and_lock_free(&mut admin, id, Duration::from_secs(2)).await;
    drop(victim);
}

#[tokio::test]
async fn idle_timeout_could_not_drop_a_client_that_stops_reading() {
    let server = start().await;
    let mut admin = connect(&server).await;
    cmd(&mut admin, &["CONFIG", "SET", "timeout", "1"])
        .await
        .unwrap();
    let (victim, id) = client_that_stops_reading(&server).await;
    // The admin connection runs a command at least every 50 ms, so only the
    // stalled client is idle. Redis drops a client idle more than `timeout`
    // seconds; allow a margin on a busy machine.
    assert_gone_and_lock_free(&mut admin, id, Duration::from_secs(5)).await;
    drop(victim);
}

#[tokio::test]
async fn shutdown_waited_forever_for_a_client_that_stops_reading() {
    let server = start().await;
    let (victim, _id) = client_that_stops_reading(&server).await;
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown finishes although a client stopped reading");
    drop(victim);
}

#[cfg(all(feature = "test-hooks", debug_assertions))]
#[tokio::test]
async fn a_panicking_connection_kept_its_session_lock_and_client_entry() {
    let server = start().await;
    let mut victim = connect(&server).await;
    let Value::Int(id) = cmd(&mut victim, &["CLIENT", "ID"]).await.unwrap() else {
        panic!("CLIENT ID is an integer")
    };
    let took = cmd(
        &mut victim,
        &["LOCK.ACQUIRE", "L", "victim", "100000", "SESSION"],
    )
    .await
    .unwrap();
    assert!(matches!(took, Value::Int(_)), "{took:?}");
    cmd(&mut victim, &["WATCH", "w"]).await.unwrap();
    // A second client queued behind the lock must be granted it, not stranded.
    let mut waiter = connect(&server).await;
    let queued = tokio::spawn(async move {
        cmd(
            &mut waiter,
            &["LOCK.ACQUIRE", "L", "waiter", "1000", "WAIT", "10000"],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(cmd(&mut victim, &["LATCHKEY.TEST-PANIC"]).await.is_err());
    let granted = tokio::time::timeout(Duration::from_secs(2), queued)
        .await
        .expect("the waiter is granted the lock the panicking client held")
        .unwrap()
        .unwrap();
    assert!(matches!(granted, Value::Int(_)), "{granted:?}");
    let mut admin = connect(&server).await;
    let Value::BulkString(list) = cmd(&mut admin, &["CLIENT", "LIST"]).await.unwrap() else {
        panic!("CLIENT LIST is a bulk string")
    };
    assert!(
        !String::from_utf8_lossy(&list).contains(&format!("id={id} ")),
        "the panicked client left CLIENT LIST"
    );
    assert_eq!(
        cmd(&mut admin, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
}

/// The fields of `CLIENT INFO` for the client itself, by name.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

/// Sends `chunks` one after another on a fresh connection and returns the last
/// CLIENT INFO line received.
async fn client_info_after(server: &ServerHandle, chunks: &[&str]) -> String {
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    for chunk in chunks {
        s.write_all(chunk.as_bytes()).await.unwrap();
    }
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !got.contains("lib-ver=") || !got.ends_with("\r\n") {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            other => panic!("no CLIENT INFO line in {got:?}: {other:?}"),
        }
    }
    got.lines()
        .rfind(|l| l.starts_with("id="))
        .unwrap()
        .to_string()
}

// The expected figures were recorded from redis-server 7.0.15 with the same
// bytes (e.g. `*2\r\n$6\r\nCLIENT\r\n$4\r\nINFO\r\n` on a fresh connection
// answers `qbuf=26 ... argv-mem=10 multi-mem=0`).
#[tokio::test]
async fn client_info_reported_qbuf_0_for_the_command_in_flight() {
    let server = start().await;
    let line = client_info_after(&server, &["*2\r\n$6\r\nCLIENT\r\n$4\r\nINFO\r\n"]).await;
    assert_eq!(field(&line, "qbuf"), "26", "{line}");
    assert_eq!(field(&line, "argv-mem"), "10", "{line}");
    assert_eq!(field(&line, "multi-mem"), "0", "{line}");
    assert_ne!(field(&line, "qbuf-free"), "0", "{line}");
    assert_ne!(field(&line, "tot-mem"), "0", "{line}");
    // Pipelined inline commands: the whole batch is in the query buffer.
    let line = client_info_after(&server, &["PING\r\nCLIENT INFO\r\n"]).await;
    assert_eq!(field(&line, "qbuf"), "19", "{line}");
}

/// Client `id`'s CLIENT LIST line, as another client sees it.
async fn list_line(con: &mut MultiplexedConnection, id: &str) -> String {
    let Value::BulkString(list) = cmd(con, &["CLIENT", "LIST", "ID", id]).await.unwrap() else {
        panic!("CLIENT LIST is a bulk string")
    };
    String::from_utf8(list).unwrap()
}

#[tokio::test]
async fn client_list_reported_0_for_queued_and_blocked_commands() {
    let server = start().await;
    let mut admin = connect(&server).await;
    // Recorded from redis-server 7.0.15 with the same commands: the client in
    // MULTI shows `multi=2 qbuf=0 argv-mem=0 multi-mem=69` (argument bytes plus
    // one pointer per argument), the one in BLPOP `argv-mem=12`.
    let mut a = TcpStream::connect(server.addr()).await.unwrap();
    a.write_all(b"CLIENT ID\r\nMULTI\r\nSET a bbbbbbbbbbbbbbb\r\nCLIENT INFO\r\n")
        .await
        .unwrap();
    let got = String::from_utf8(read_until(&mut a, 35).await).unwrap();
    let id = got.lines().next().unwrap()[1..].to_string();
    let line = list_line(&mut admin, &id).await;
    assert_eq!(field(&line, "multi"), "2", "{line}");
    assert_eq!(field(&line, "multi-mem"), "69", "{line}");
    assert_eq!(field(&line, "qbuf"), "0", "{line}");
    assert_eq!(field(&line, "argv-mem"), "0", "{line}");
    let mut b = TcpStream::connect(server.addr()).await.unwrap();
    b.write_all(b"CLIENT ID\r\nBLPOP nolist 0\r\n")
        .await
        .unwrap();
    let got = String::from_utf8(read_until(&mut b, 3).await).unwrap();
    let id = got.lines().next().unwrap()[1..].to_string();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let line = list_line(&mut admin, &id).await;
    assert_eq!(field(&line, "flags"), "b", "{line}");
    assert_eq!(field(&line, "argv-mem"), "12", "{line}");
}

#[tokio::test]
async fn client_list_reported_no_output_for_a_client_that_stops_reading() {
    let server = start().await;
    let (victim, id) = client_that_stops_reading(&server).await;
    let mut admin = connect(&server).await;
    let line = list_line(&mut admin, &id.to_string()).await;
    // Redis: the static 16 KB buffer is full and the rest waits in 16 KB blocks.
    assert_eq!(field(&line, "obl"), "16384", "{line}");
    let omem: usize = field(&line, "omem").parse().unwrap();
    let oll: usize = field(&line, "oll").parse().unwrap();
    assert!(omem > 0 && oll == omem.div_ceil(16384), "{line}");
    assert_eq!(field(&line, "events"), "rw", "{line}");
    drop(victim);
}

#[tokio::test]
async fn an_idle_client_held_its_read_and_write_buffers() {
    let server = start().await;
    let mut admin = connect(&server).await;
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    // A pipeline bigger than the first small read buffer grows it.
    let pings = "PING\r\n".repeat(1000);
    s.write_all(format!("CLIENT ID\r\n{pings}").as_bytes())
        .await
        .unwrap();
    let got = String::from_utf8(read_until(&mut s, 7000).await).unwrap();
    let id = got.lines().next().unwrap()[1..].to_string();
    let line = list_line(&mut admin, &id).await;
    assert!(
        field(&line, "qbuf-free").parse::<usize>().unwrap() >= 8192,
        "{line}"
    );
    assert_ne!(field(&line, "rbs"), "0", "{line}");
    // Redis frees an idle client's query buffer after 2 s; latchkey gives back
    // both buffers after 2 to 4 s without a read.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let line = list_line(&mut admin, &id).await;
    assert_eq!(field(&line, "qbuf-free"), "0", "{line}");
    assert_eq!(field(&line, "rbs"), "0", "{line}");
    s.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_until(&mut s, 7).await, b"+PONG\r\n");
}

/// INFO's `field:value` line, as text.
#[cfg(all(feature = "test-hooks", debug_assertions))]
async fn info_field(con: &mut MultiplexedConnection, section: &str, name: &str) -> String {
    let Value::BulkString(info) = cmd(con, &["INFO", section]).await.unwrap() else {
        panic!("INFO is a bulk string")
    };
    let text = String::from_utf8(info).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[cfg(all(feature = "test-hooks", debug_assertions))]
#[tokio::test]
async fn a_connection_panicking_while_blocked_left_its_waits_queued() {
    let server = start().await;
    let mut admin = connect(&server).await;
    cmd(&mut admin, &["LOCK.ACQUIRE", "L", "holder", "100000"])
        .await
        .unwrap();
    for wait in [
        &["LOCK.ACQUIRE", "L", "victim", "1000", "WAIT", "100000"][..],
        &["BLPOP", "list", "0"][..],
    ] {
        let mut victim = connect(&server).await;
        cmd(
            &mut victim,
            &["CLIENT", "SETNAME", "latchkey-test-panic-in-wait"],
        )
        .await
        .unwrap();
        assert!(cmd(&mut victim, wait).await.is_err(), "{wait:?}");
    }
    assert_eq!(info_field(&mut admin, "locks", "lock_waiters").await, "0");
    assert_eq!(
        info_field(&mut admin, "clients", "blocked_clients").await,
        "0"
    );
    // The element pushed is not handed to a waiter that is gone.
    cmd(&mut admin, &["RPUSH", "list", "x"]).await.unwrap();
    assert_eq!(
        cmd(&mut admin, &["LLEN", "list"]).await.unwrap(),
        Value::Int(1)
    );
    let Value::BulkString(list) = cmd(&mut admin, &["CLIENT", "LIST"]).await.unwrap() else {
        panic!("CLIENT LIST is a bulk string")
    };
    let list = String::from_utf8(list).unwrap();
    assert!(!list.contains("latchkey-test-panic-in-wait"), "{list}");
}

#[tokio::test]
async fn a_bulk_header_announcing_100_gb_no_longer_aborts_the_server() {
    // The parser allocated a big argument's whole buffer from its header alone:
    // with the limits raised, `$100000000000` made the allocator abort the
    // process before a byte of the value had arrived.
    let server = start().await;
    let mut admin = connect(&server).await;
    for (name, value) in [
        ("client-query-buffer-limit", "200gb"),
        ("proto-max-bulk-len", "100gb"),
    ] {
        let ok = cmd(&mut admin, &["CONFIG", "SET", name, value]).await;
        assert_eq!(ok.unwrap(), Value::Okay);
    }
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"*2\r\n$3\r\nGET\r\n$100000000000\r\nabcdefgh")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // More of the value arrives, in pieces: the connection reads on.
    for _ in 0..64 {
        s.write_all(&[b'x'; 64 * 1024]).await.unwrap();
    }
    let pong = cmd(&mut admin, &["PING"]).await.unwrap();
    assert_eq!(pong, Value::SimpleString("PONG".into()));
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        list.lines().count(),
        2,
        "both clients are still there: {list}"
    );
}

/// A server that also listens on a Unix socket named after `name` and this
/// process; the caller removes the socket file.
async fn unix_server(name: &str) -> (ServerHandle, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("latchkey-{}-{name}.sock", std::process::id()));
    let server = latchkey::Server::builder()
        .option("unixsocket", path.to_str().unwrap())
        .unwrap()
        .start()
        .await
        .unwrap();
    (server, path)
}

#[tokio::test]
async fn a_unix_socket_client_that_reads_late_gets_every_reply() {
    // Unix-socket clients are registered for reading only; a write that finds
    // the socket full waits for room on a second registration. 200 replies of
    // 64 KB overflow the socket buffer many times over.
    let (server, path) = unix_server("late").await;
    let mut admin = connect(&server).await;
    let value = "v".repeat(64 * 1024);
    cmd(&mut admin, &["SET", "big", &value]).await.unwrap();
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut batch = Vec::new();
    for _ in 0..200 {
        batch.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    batch.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    s.write_all(&batch).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let one = format!("$65536\r\n{value}\r\n");
    let want = one.len() * 200 + b"+PONG\r\n".len();
    let mut got = vec![0u8; want];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
        .await
        .expect("every reply arrives")
        .unwrap();
    assert!(got.ends_with(b"+PONG\r\n"));
    assert_eq!(&got[..one.len()], one.as_bytes());
    let _ = std::fs::remove_file(&path);
}

/// Writes `requests` whole before reading a byte, as redis-py's pipelines and
/// `redis-cli --pipe` do, then reads `want` bytes of replies; fails if either
/// side stalls.
async fn pipeline_then_read<S>(s: &mut S, requests: &[u8], want: usize) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(Duration::from_secs(30), async {
        s.write_all(requests).await.unwrap();
        let mut got = vec![0u8; want];
        s.read_exact(&mut got).await.unwrap();
        got
    })
    .await
    .expect("the server keeps reading a client that has not taken its replies")
}

/// 1,000 ECHOs of 10 KB and 40 KB by turns: 25 MB each way, more than both
/// directions' socket buffers hold, so the server's replies fill the socket
/// long before the client has written its last request. The 40 KB ones are big
/// arguments (32 KB or more), read into buffers of their own size.
fn echo_pipeline() -> (Vec<u8>, Vec<u8>) {
    let mut requests = Vec::new();
    let mut replies = Vec::new();
    for i in 0..1_000 {
        let n = if i % 2 == 0 { 10_000 } else { 40_000 };
        let value = "e".repeat(n);
        requests.extend_from_slice(format!("*2\r\n$4\r\nECHO\r\n${n}\r\n{value}\r\n").as_bytes());
        replies.extend_from_slice(format!("${n}\r\n{value}\r\n").as_bytes());
    }
    requests.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    replies.extend_from_slice(b"+PONG\r\n");
    (requests, replies)
}

#[tokio::test]
async fn a_client_writing_a_long_pipeline_before_reading_stalled_with_the_server() {
    let server = start().await;
    let (requests, replies) = echo_pipeline();
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    let got = pipeline_then_read(&mut s, &requests, replies.len()).await;
    assert!(got == replies, "the replies differ");
    // The connection carries on as before.
    s.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_until(&mut s, 7).await, b"+PONG\r\n");
}

#[tokio::test]
async fn a_unix_socket_client_writing_a_long_pipeline_before_reading_stalled_with_the_server() {
    let (server, path) = unix_server("pipe").await;
    let (requests, replies) = echo_pipeline();
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    let got = pipeline_then_read(&mut s, &requests, replies.len()).await;
    assert!(got == replies, "the replies differ");
    drop(server);
    let _ = std::fs::remove_file(&path);
}
