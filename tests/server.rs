//! Server and connection introspection: CLIENT, INFO, CONFIG, COMMAND, CLUSTER,
//! and the handshakes popular clients send (shared/CLIENT-HANDSHAKES.md).

mod common;

use common::{cmd, connect, connect_resp3, err_line, raw, start};
use redis::aio::MultiplexedConnection;
use redis::Value;

async fn text(con: &mut MultiplexedConnection, words: &[&str]) -> String {
    match cmd(con, words).await.unwrap() {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        Value::VerbatimString { text, .. } => text,
        v => panic!("{words:?}: {v:?}"),
    }
}

#[tokio::test]
async fn client_setname_getname_and_id() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["CLIENT", "GETNAME"]).await.unwrap(),
        Value::Nil
    );
    assert_eq!(
        cmd(&mut con, &["CLIENT", "SETNAME", "worker-1"])
            .await
            .unwrap(),
        Value::Okay
    );
    assert_eq!(text(&mut con, &["CLIENT", "GETNAME"]).await, "worker-1");
    assert_eq!(
        err_line(&mut con, &["CLIENT", "SETNAME", "a b"]).await,
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    let Value::Int(id) = cmd(&mut con, &["CLIENT", "ID"]).await.unwrap() else {
        panic!()
    };
    let info = text(&mut con, &["CLIENT", "INFO"]).await;
    assert!(info.starts_with(&format!("id={id} ")), "{info}");
    assert!(info.contains(" name=worker-1 "), "{info}");
}

#[tokio::test]
async fn client_list_shows_every_connection_with_redis_fields() {
    let server = start().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    cmd(&mut b, &["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"])
        .await
        .unwrap();
    cmd(&mut b, &["SELECT", "3"]).await.unwrap();
    let list = text(&mut a, &["CLIENT", "LIST"]).await;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    for field in [
        "id=",
        " addr=127.0.0.1:",
        " laddr=",
        " fd=",
        " age=",
        " idle=",
        " flags=N",
        " cmd=",
        " resp=2",
    ] {
        assert!(lines.iter().all(|l| l.contains(field)), "{field} in {list}");
    }
    assert!(
        list.contains(" db=3 ") && list.contains(" lib-name=redis-rs "),
        "{list}"
    );
}

#[tokio::test]
async fn client_kill_closes_the_target_connection() {
    let server = start().await;
    let mut admin = connect(&server).await;
    let mut victim = connect(&server).await;
    let Value::Int(id) = cmd(&mut victim, &["CLIENT", "ID"]).await.unwrap() else {
        panic!()
    };
    let killed = cmd(&mut admin, &["CLIENT", "KILL", "ID", &id.to_string()])
        .await
        .unwrap();
    assert_eq!(killed, Value::Int(1));
    assert!(
        cmd(&mut victim, &["PING"]).await.is_err(),
        "killed client's next command fails"
    );
    assert_eq!(
        err_line(&mut admin, &["CLIENT", "KILL", "1.2.3.4:5"]).await,
        "ERR No such client"
    );
    assert_eq!(
        err_line(&mut admin, &["CLIENT", "KILL", "ID", "x"]).await,
        "ERR client-id should be greater than 0"
    );
}

#[tokio::test]
async fn info_starts_with_server_section_and_reports_role_and_keyspace() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.set("a", "1", None);
    server.set("b", "2", Some(std::time::Duration::from_secs(100)));
    let info = text(&mut con, &["INFO"]).await;
    assert!(
        info.starts_with("# Server\r\nredis_version:7.2.0\r\n"),
        "{info}"
    );
    assert!(info.contains("\r\nrole:master\r\n"));
    assert!(info.contains("\r\nloading:0\r\n"));
    assert!(
        info.contains("\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n"),
        "{info}"
    );
    assert!(info.contains("\r\n# Locks\r\n"));
    assert!(
        !info.contains("# Commandstats"),
        "commandstats only when asked"
    );
    let repl = text(&mut con, &["INFO", "replication"]).await;
    assert!(
        repl.starts_with("# Replication\r\nrole:master\r\n"),
        "{repl}"
    );
}

#[tokio::test]
async fn info_commandstats_counts_calls_and_failures() {
    let server = start().await;
    let mut con = connect(&server).await;
    for _ in 0..3 {
        cmd(&mut con, &["GET", "k"]).await.unwrap();
    }
    let _ = cmd(&mut con, &["SET", "k", "v", "EX", "0"]).await;
    let stats = text(&mut con, &["INFO", "commandstats"]).await;
    assert!(stats.contains("cmdstat_get:calls=3,"), "{stats}");
    assert!(
        stats.contains("cmdstat_set:calls=1,") && stats.contains("failed_calls=1"),
        "{stats}"
    );
}

#[tokio::test]
async fn info_locks_counts_holders_and_waiters() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["LOCK.ACQUIRE", "L", "a", "10000"])
        .await
        .unwrap();
    cmd(&mut con, &["LOCK.ACQUIRE", "S", "a", "10000", "LIMIT", "2"])
        .await
        .unwrap();
    cmd(&mut con, &["LOCK.ACQUIRE", "S", "b", "10000", "LIMIT", "2"])
        .await
        .unwrap();
    let locks = text(&mut con, &["INFO", "locks"]).await;
    assert!(
        locks.contains("locks:2\r\nlock_holders:3\r\nlock_waiters:0\r\n"),
        "{locks}"
    );
    assert!(
        locks.contains("lock_acquisitions:3\r\nlock_acquired_immediately:3\r\n"),
        "{locks}"
    );
}

#[tokio::test]
async fn info_is_a_verbatim_string_in_resp3() {
    let server = start().await;
    let mut con = connect_resp3(&server).await;
    let info = cmd(&mut con, &["INFO", "server"]).await.unwrap();
    assert!(matches!(info, Value::VerbatimString { .. }), "{info:?}");
}

#[tokio::test]
async fn config_get_set_round_trip_and_errors() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["CONFIG", "SET", "timeout", "30"])
            .await
            .unwrap(),
        Value::Okay
    );
    let got = cmd(&mut con, &["CONFIG", "GET", "timeout"]).await.unwrap();
    assert_eq!(
        got,
        Value::Array(vec![
            Value::BulkString(b"timeout".to_vec()),
            Value::BulkString(b"30".to_vec())
        ])
    );
    assert_eq!(
        err_line(&mut con, &["CONFIG", "SET", "databases", "3"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config"
    );
    assert_eq!(
        err_line(&mut con, &["CONFIG", "SET", "nosuch", "1"]).await,
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(
        err_line(&mut con, &["CONFIG", "SET", "maxclients", "abc"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer"
    );
    assert_eq!(
        err_line(&mut con, &["CONFIG", "GET"]).await,
        "ERR wrong number of arguments for 'config|get' command"
    );
    assert_eq!(
        err_line(&mut con, &["CONFIG", "NOPE"]).await,
        "ERR unknown subcommand 'NOPE'. Try CONFIG HELP."
    );
}

#[tokio::test]
async fn config_get_answers_what_clients_ask_at_connect() {
    let server = start().await;
    let mut con = connect(&server).await;
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("timeout")
        .arg("databases")
        .arg("maxmemory")
        .arg("replica-read-only")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        got,
        [
            "timeout",
            "0",
            "databases",
            "16",
            "maxmemory",
            "0",
            "replica-read-only",
            "yes"
        ]
    );
}

#[tokio::test]
async fn maxclients_refuses_the_next_connection() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["CONFIG", "SET", "maxclients", "1"])
        .await
        .unwrap();
    let got = raw(&server, b"PING\r\n", 100).await;
    assert_eq!(got, b"-ERR max number of clients reached\r\n");
    cmd(&mut con, &["CONFIG", "SET", "maxclients", "10"])
        .await
        .unwrap();
    assert_eq!(raw(&server, b"PING\r\n", 7).await, b"+PONG\r\n");
}

#[tokio::test]
async fn command_count_info_docs_come_from_the_table() {
    let server = start().await;
    let mut con = connect(&server).await;
    let Value::Int(n) = cmd(&mut con, &["COMMAND", "COUNT"]).await.unwrap() else {
        panic!()
    };
    let Value::Array(all) = cmd(&mut con, &["COMMAND"]).await.unwrap() else {
        panic!()
    };
    assert_eq!(n as usize, all.len());
    assert!(n >= 60, "{n}");
    let Value::Array(info) = cmd(&mut con, &["COMMAND", "INFO", "get", "nosuch"])
        .await
        .unwrap()
    else {
        panic!()
    };
    let Value::Array(get) = &info[0] else {
        panic!()
    };
    assert_eq!(get[0], Value::BulkString(b"get".to_vec()));
    assert_eq!(get[1], Value::Int(2));
    assert_eq!(
        get[2],
        Value::Array(vec![
            Value::SimpleString("readonly".into()),
            Value::SimpleString("fast".into())
        ])
    );
    assert_eq!(&get[3..6], &[Value::Int(1), Value::Int(1), Value::Int(1)]);
    assert_eq!(info[1], Value::Nil);
    let docs = cmd(&mut con, &["COMMAND", "DOCS", "get"]).await.unwrap();
    let Value::Array(docs) = docs else { panic!() };
    assert_eq!(docs[0], Value::BulkString(b"get".to_vec()));
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(keys, ["a", "b"]);
}

#[tokio::test]
async fn cluster_commands_say_cluster_is_disabled() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        err_line(&mut con, &["CLUSTER", "NODES"]).await,
        "ERR This instance has cluster support disabled"
    );
}

#[tokio::test]
async fn handshakes_of_popular_clients_get_proper_replies() {
    let server = start().await;
    // redis-rs's pipeline; StackExchange.Redis's probes; ServiceStack's trio.
    let req = b"HELLO 3\r\nSELECT 1\r\nCLIENT SETINFO LIB-NAME redis-rs\r\nCLIENT SETINFO LIB-VER 1.0\r\n\
CLIENT SETNAME app\r\nCLIENT ID\r\nCONFIG GET timeout\r\nINFO replication\r\nCLUSTER NODES\r\n\
GET __Booksleeve_TieBreak\r\nECHO x\r\nSENTINEL MASTERS\r\nPING\r\n";
    let got = String::from_utf8_lossy(&raw(&server, req, 1_000_000).await).into_owned();
    assert!(got.starts_with("%7\r\n"), "{got}");
    assert!(
        got.contains("+OK\r\n+OK\r\n+OK\r\n+OK\r\n:"),
        "SELECT, SETINFO x2, SETNAME: {got}"
    );
    assert!(got.contains("role:master"), "{got}");
    assert!(got.contains("-ERR This instance has cluster support disabled\r\n"));
    assert!(
        got.contains("-ERR unknown command 'SENTINEL', with args beginning with: 'MASTERS' \r\n")
    );
    assert!(got.ends_with("+PONG\r\n"), "{got}");
}

/// LOLWUT answers with this server's Redis version, as Redis answers for
/// any version it draws nothing for; VERSION 5 and 6 draw Redis's two
/// pieces (random each time) above the version line.
#[tokio::test]
async fn lolwut_prints_the_version_line_and_draws_versions_5_and_6() {
    let server = common::start().await;
    let mut con = common::connect(&server).await;
    let want = format!("Redis ver. {}\n", latchkey::server::REDIS_VERSION);
    for words in [
        &["LOLWUT"][..],
        &["LOLWUT", "VERSION", "7", "x"],
        &["LOLWUT", "foo"],
    ] {
        let got: String = redis::cmd(words[0])
            .arg(&words[1..])
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(got, want, "{words:?}");
    }
    assert_eq!(
        common::err_line(&mut con, &["LOLWUT", "VERSION", "x"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        common::err_line(&mut con, &["LOLWUT", "VERSION", "5", "x"]).await,
        "ERR value is not an integer or out of range"
    );
    let five: String = redis::cmd("LOLWUT")
        .arg(&["VERSION", "5", "20"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(five.ends_with(&format!(
        "Georg Nees - schotter, plotter on paper, 1968. {want}"
    )));
    assert_eq!(five.lines().next().unwrap().chars().count(), 20);
    let six: String = redis::cmd("LOLWUT")
        .arg(&["VERSION", "6", "10", "5"])
        .query_async(&mut con)
        .await
        .unwrap();
    // Five rows of ten coloured cells, then the two caption lines.
    assert_eq!(six.lines().count(), 7);
    assert_eq!(six.lines().next().unwrap().matches("\x1b[0m").count(), 10);
    assert!(six.ends_with(&format!(
        "Original 8 bit image from Plaguemon by hikikomori. {want}"
    )));
}

/// With `enable-module-command` on, MODULE LOAD fails as Redis's does for a
/// library it cannot load, and there is never a module to unload.
#[tokio::test]
async fn module_load_fails_as_an_unloadable_library_does() {
    let server = latchkey::Server::builder()
        .option("enable-module-command", "local")
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut con = common::connect(&server).await;
    for words in [
        &["MODULE", "LOAD", "/tmp/x.so"][..],
        &["MODULE", "LOADEX", "/tmp/x.so", "ARGS", "a"],
    ] {
        assert_eq!(
            common::err_line(&mut con, words).await,
            "ERR Error loading the extension. Please check the server logs."
        );
    }
    assert_eq!(
        common::err_line(&mut con, &["MODULE", "UNLOAD", "x"]).await,
        "ERR Error unloading module: no such module with that name"
    );
    assert_eq!(
        common::cmd(&mut con, &["MODULE", "LIST"]).await.unwrap(),
        redis::Value::Array(vec![])
    );
}

/// The kernel's timer on the server's end of the TCP connection whose client
/// end is `client` (`/proc/net/tcp`'s `tr:tm->when`): `(2, seconds)` while the
/// keepalive timer runs, `(0, _)` while no timer does.
#[cfg(target_os = "linux")]
fn server_side_timer(server: std::net::SocketAddr, client: std::net::SocketAddr) -> (u8, u64) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let end = |a: std::net::SocketAddr| format!("0100007F:{:04X}", a.port());
    let (local, remote) = (end(server), end(client));
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[1] == local && f[2] == remote {
            let (kind, when) = f[5].split_once(':').unwrap();
            // `when` is in USER_HZ ticks (100 a second).
            let ticks = u64::from_str_radix(when, 16).unwrap();
            return (kind.parse().unwrap(), ticks / 100);
        }
    }
    panic!("no server-side socket for {client} in {table}");
}

/// The server's end of a fresh connection to `server`, once it has answered a
/// PING (so the connection was accepted and tuned).
#[cfg(target_os = "linux")]
fn timer_of_new_connection(server: std::net::SocketAddr) -> (u8, u64) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(server).unwrap();
    c.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    c.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    server_side_timer(server, c.local_addr().unwrap())
}

#[cfg(target_os = "linux")]
async fn new_connection_timer(server: std::net::SocketAddr) -> (u8, u64) {
    tokio::task::spawn_blocking(move || timer_of_new_connection(server))
        .await
        .unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_keepalive_probes_each_accepted_connection_after_its_idle_time() {
    let server = start().await;
    let addr = server.addr();
    let mut con = connect(&server).await;
    // Redis's default: probes after 300 idle seconds.
    assert_eq!(
        text_pair(&mut con, "tcp-keepalive").await,
        "300".to_string()
    );
    // A value above the kernel's maximum idle time (32,767 s) still turns
    // keepalive on, at the kernel's own idle time, as redis-server's does.
    let kernel_idle: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A new value applies to connections accepted from then on; 0 turns the
    // probes off (no timer at all).
    for (idle, want) in [
        (None, Some(300)),
        (Some("100"), Some(100)),
        (Some("2147483647"), Some(kernel_idle)),
        (Some("0"), None),
    ] {
        if let Some(idle) = idle {
            cmd(&mut con, &["CONFIG", "SET", "tcp-keepalive", idle])
                .await
                .unwrap();
        }
        let (kind, secs) = new_connection_timer(addr).await;
        match want {
            Some(at) => {
                assert_eq!(kind, 2, "keepalive timer on at {idle:?}");
                assert!(
                    (at.saturating_sub(10)..=at).contains(&secs),
                    "{secs} s at {idle:?}"
                );
            }
            None => assert_eq!(kind, 0, "no timer without keepalive"),
        }
    }
}

async fn text_pair(con: &mut MultiplexedConnection, name: &str) -> String {
    match cmd(con, &["CONFIG", "GET", name]).await.unwrap() {
        Value::Array(v) if v.len() == 2 => match &v[1] {
            Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
            v => panic!("{v:?}"),
        },
        v => panic!("{name}: {v:?}"),
    }
}
