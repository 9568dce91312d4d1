//! `maxmemory-clients` through the binary: once the clients together hold
//! the limit, the biggest is closed (counted in INFO's `evicted_clients`), a
//! client with `CLIENT NO-EVICT on` never is, a lower limit applies at once,
//! and a percentage applies only under `maxmemory`. `CLIENT NO-TOUCH on`
//! leaves the keys' LRU alone, but for TOUCH. CONFIG's texts are recorded in
//! redis-tests/config.txt.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::persist::*;
use redis::{Connection, Value};

fn info_field(con: &mut Connection, section: &str, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg(section).query(con).unwrap();
    let prefix = format!("{name}:");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// A raw client that has sent half of a 4 MB SET: its read buffer holds the
/// argument being read.
fn big_query(server: &Server, preamble: &[u8]) -> UnixStream {
    let mut s = UnixStream::connect(&server.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if !preamble.is_empty() {
        s.write_all(preamble).unwrap();
        let mut ok = [0u8; 5];
        s.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
    }
    s.write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$4000000\r\n")
        .unwrap();
    // The server may close it before it took everything.
    let _ = s.write_all(&vec![b'x'; 2_000_000]);
    s
}

/// Whether the server closed `s` (it reads EOF, or the connection resets)
/// within a few seconds.
fn closed(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

/// Waits until the clients' total reaches `at_least` bytes.
fn wait_clients_memory(con: &mut Connection, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(con, "memory", "mem_clients_normal") < at_least {
        assert!(Instant::now() < deadline, "the clients' memory never grew");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_biggest_client_is_closed_and_a_no_evict_client_is_not() {
    let dir = Dir::new("client-evict");
    let server = start(&dir, &["--save", ""]);
    let mut admin = server.con();
    run(&mut admin, &["CLIENT", "NO-EVICT", "on"]);
    let mut small = server.con();
    assert_eq!(
        run(&mut small, &["PING"]),
        Value::SimpleString("PONG".into())
    );
    run(&mut admin, &["CONFIG", "SET", "maxmemory-clients", "1mb"]);

    let mut big = big_query(&server, b"");
    assert!(closed(&mut big), "the big client was not closed");
    assert_eq!(info_field(&mut admin, "stats", "evicted_clients"), 1);
    // The small client, and the one that may not be evicted, go on.
    assert_eq!(
        run(&mut small, &["PING"]),
        Value::SimpleString("PONG".into())
    );
    assert_eq!(run(&mut admin, &["EXISTS", "big"]), Value::Int(0));
    assert!(server.log.lock().unwrap().contains("Evicting client: id="));

    // The same request from a client that set NO-EVICT is read to its end.
    let mut spared = big_query(&server, b"CLIENT NO-EVICT on\r\n");
    wait_clients_memory(&mut admin, 2_000_000);
    let list = match run(&mut admin, &["CLIENT", "LIST"]) {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        v => panic!("{v:?}"),
    };
    let line = list
        .lines()
        .find(|l| l.contains("cmd=client|no-evict"))
        .unwrap();
    assert!(line.contains(" flags=e "), "{line}");
    spared.write_all(&vec![b'x'; 2_000_000]).unwrap();
    spared.write_all(b"\r\n").unwrap();
    let mut reply = [0u8; 5];
    spared.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n");
    assert_eq!(run(&mut admin, &["STRLEN", "big"]), Value::Int(4_000_000));
}

#[test]
fn a_lower_limit_applies_at_once_and_a_percentage_needs_maxmemory() {
    let dir = Dir::new("client-evict-lower");
    let server = start(&dir, &["--save", "", "--maxmemory-clients", "10%"]);
    let mut admin = server.con();
    run(&mut admin, &["CLIENT", "NO-EVICT", "on"]);
    assert_eq!(
        run(&mut admin, &["CONFIG", "GET", "maxmemory-clients"]),
        Value::Array(vec![
            Value::BulkString(b"maxmemory-clients".to_vec()),
            Value::BulkString(b"10%".to_vec()),
        ])
    );
    // 10% of no maxmemory is no limit: the big client stays.
    let mut big = big_query(&server, b"");
    wait_clients_memory(&mut admin, 2_000_000);
    assert_eq!(info_field(&mut admin, "stats", "evicted_clients"), 0);
    run(&mut admin, &["CONFIG", "SET", "maxmemory-clients", "512kb"]);
    assert!(closed(&mut big), "the big client was not closed");
    assert_eq!(info_field(&mut admin, "stats", "evicted_clients"), 1);
    // Its count left the total with it.
    assert!(info_field(&mut admin, "memory", "mem_clients_normal") < 1_000_000);
}

#[test]
fn a_no_touch_client_leaves_the_lru_alone_but_for_touch() {
    let dir = Dir::new("no-touch");
    let server = start(&dir, &["--save", "", "--enable-debug-command", "yes"]);
    let mut con = server.con();
    run(&mut con, &["SET", "k", "v"]);
    run(&mut con, &["SET", "t", "v"]);
    run(&mut con, &["DEBUG", "ADVANCE-TIME", "20000"]);
    let idle = |con: &mut Connection, key: &str| int(con, &["OBJECT", "IDLETIME", key]);
    assert!(idle(&mut con, "k") >= 20);
    run(&mut con, &["CLIENT", "NO-TOUCH", "on"]);
    let info = match run(&mut con, &["CLIENT", "INFO"]) {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        v => panic!("{v:?}"),
    };
    assert!(info.contains(" flags=T "), "{info}");
    run(&mut con, &["GET", "k"]);
    let _: Value = redis::pipe()
        .cmd("MULTI")
        .cmd("GET")
        .arg("k")
        .cmd("TOUCH")
        .arg("t")
        .cmd("EXEC")
        .query(&mut con)
        .unwrap();
    assert!(idle(&mut con, "k") >= 20, "GET touched the key");
    assert_eq!(idle(&mut con, "t"), 0, "TOUCH in a transaction did not");
    run(&mut con, &["DEBUG", "ADVANCE-TIME", "20000"]);
    run(&mut con, &["TOUCH", "t"]);
    assert_eq!(idle(&mut con, "t"), 0, "TOUCH did not touch the key");
    run(&mut con, &["CLIENT", "NO-TOUCH", "off"]);
    run(&mut con, &["GET", "k"]);
    assert_eq!(idle(&mut con, "k"), 0);
    assert!(run_err(&mut con, &["CLIENT", "NO-TOUCH", "maybe"]).contains("syntax error"));
}
