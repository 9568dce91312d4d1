//! Options are applied or refused, never accepted and ignored; CONFIG SET checks
//! Redis's ranges; `tcp-backlog` reaches every listener. Regression tests named
//! after the defects (the recorded texts are in redis-tests/config.txt).

mod common;

use std::time::Duration;

use common::{cmd, connect, err_line, start};
use latchkey::Server;
use redis::Value;

async fn get(con: &mut redis::aio::MultiplexedConnection, name: &str) -> String {
    match cmd(con, &["CONFIG", "GET", name]).await.unwrap() {
        Value::Array(v) if v.len() == 2 => match &v[1] {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        },
        other => panic!("CONFIG GET {name}: {other:?}"),
    }
}

#[tokio::test]
async fn config_set_maxmemory_is_refused_not_accepted_and_ignored() {
    // This test binary allocates with the system allocator, uncounted.
    let server = start().await;
    let mut con = connect(&server).await;
    assert!(err_line(&mut con, &["CONFIG", "SET", "maxmemory", "100"])
        .await
        .starts_with("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - latchkey counts memory with its own allocator"));
    assert_eq!(get(&mut con, "maxmemory").await, "0");
    assert_eq!(
        cmd(&mut con, &["CONFIG", "SET", "maxmemory", "0"])
            .await
            .unwrap(),
        Value::Okay
    );
    assert!(Server::builder().option("maxmemory", "1gb").is_err());
    assert!(Server::builder().option("maxmemory", "0").is_ok());
}

#[tokio::test]
async fn save_and_aof_options_are_applied() {
    let server = Server::builder()
        .option("save", "900 1 300 10")
        .and_then(|b| b.option("appendfsync", "always"))
        .and_then(|b| b.option("rdbcompression", "no"))
        .expect("persistence flags are accepted at start-up")
        .start()
        .await
        .unwrap();
    let mut con = connect(&server).await;
    assert_eq!(get(&mut con, "appendonly").await, "no");
    assert_eq!(get(&mut con, "appendfsync").await, "always");
    assert_eq!(get(&mut con, "save").await, "900 1 300 10");
    assert_eq!(get(&mut con, "rdbcompression").await, "no");
    assert_eq!(get(&mut con, "rdbchecksum").await, "yes");
    assert_eq!(get(&mut con, "dbfilename").await, "dump.rdb");
    assert_eq!(
        err_line(&mut con, &["CONFIG", "SET", "aof-use-rdb-preamble", "no"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'aof-use-rdb-preamble') - latchkey writes the AOF base as RDB only (aof-use-rdb-preamble yes)"
    );
    for (name, value) in [
        ("appendonly", "no"),
        ("save", "60 5"),
        ("rdbcompression", "yes"),
    ] {
        assert_eq!(
            cmd(&mut con, &["CONFIG", "SET", name, value])
                .await
                .unwrap(),
            Value::Okay
        );
        assert_eq!(get(&mut con, name).await, value);
    }
    assert_eq!(
        err_line(&mut con, &["CONFIG", "SET", "rdbchecksum", "no"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'rdbchecksum') - can't set immutable config"
    );
    let builder = Server::builder();
    assert_eq!(
        builder.config().save_points,
        Vec::new(),
        "an embedded server saves nothing unless asked"
    );
}

#[test]
fn daemonize_yes_is_refused_not_ignored() {
    assert!(Server::builder().option("daemonize", "yes").is_err());
    assert!(Server::builder().option("daemonize", "no").is_ok());
}

/// latchkey frees removed values at once, which `lazyfree-lazy-* no` asks for;
/// `yes` is refused, in a config file as by CONFIG SET.
#[test]
fn lazyfree_yes_is_refused_and_no_accepted() {
    for name in [
        "lazyfree-lazy-eviction",
        "lazyfree-lazy-expire",
        "lazyfree-lazy-server-del",
        "lazyfree-lazy-user-del",
        "lazyfree-lazy-user-flush",
    ] {
        let Err(err) = Server::builder().option(name, "yes") else {
            panic!("{name} yes accepted")
        };
        assert!(err.contains("not applied"), "{name}: {err}");
        assert!(Server::builder().option(name, "no").is_ok(), "{name}");
    }
}

/// The binary writes `pidfile` (tests/binary.rs); an embedded server, which is
/// its host's process, refuses one rather than ignore it.
#[test]
fn an_embedded_server_refuses_a_pidfile() {
    assert!(Server::builder().option("pidfile", "/tmp/x.pid").is_err());
    assert!(Server::builder().option("pidfile", "").is_ok());
}

#[tokio::test]
async fn replica_read_only_reports_what_was_set() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(get(&mut con, "replica-read-only").await, "yes");
    cmd(&mut con, &["CONFIG", "SET", "slave-read-only", "no"])
        .await
        .unwrap();
    assert_eq!(get(&mut con, "replica-read-only").await, "no");
}

#[tokio::test]
async fn config_set_values_out_of_redis_ranges_are_refused() {
    let server = start().await;
    let mut con = connect(&server).await;
    let failed = |name: &str, why: &str| {
        format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
    };
    for (name, value, why) in [
        (
            "client-query-buffer-limit",
            "1000",
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
        (
            "proto-max-bulk-len",
            "1000",
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
        (
            "timeout",
            "2147483648",
            "argument must be between 0 and 2147483647 inclusive",
        ),
        (
            "maxclients",
            "0",
            "argument must be between 1 and 4294967295 inclusive",
        ),
        (
            "busy-reply-threshold",
            "-1",
            "argument must be between 0 and 9223372036854775807 inclusive",
        ),
        ("dir", "/nonexistent", "can't set protected config"),
        ("tcp-backlog", "100", "can't set immutable config"),
    ] {
        assert_eq!(
            err_line(&mut con, &["CONFIG", "SET", name, value]).await,
            failed(name, why)
        );
    }
    assert_eq!(
        get(&mut con, "client-query-buffer-limit").await,
        "1073741824"
    );
    assert_eq!(get(&mut con, "timeout").await, "0");
    assert!(Server::builder().option("dir", "/nonexistent").is_err());
}

#[tokio::test]
async fn config_set_maxclients_beyond_the_open_files_limit_is_refused() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let hard = limit.rlim_max;
    if hard >= u64::from(u32::MAX) {
        // Unlimited: every maxclients fits, there is nothing to refuse.
        return;
    }
    let server = start().await;
    let mut con = connect(&server).await;
    let asked = (u64::from(u32::MAX)).min(hard * 10 + 1000).to_string();
    let line = err_line(&mut con, &["CONFIG", "SET", "maxclients", &asked]).await;
    let prefix = "ERR CONFIG SET failed (possibly related to argument 'maxclients') - The operating system is not able to handle the specified number of clients, try with ";
    let fits: u64 = line
        .strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        fits + 32 <= hard && fits + 32 + 16 > hard,
        "{fits} for {hard}"
    );
    assert_eq!(get(&mut con, "maxclients").await, "10000");
}

#[tokio::test]
async fn tcp_backlog_defaults_to_511_and_is_applied_to_every_listener() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(get(&mut con, "tcp-backlog").await, "511");
    drop(con);
    server.shutdown().await;

    let sock = std::env::temp_dir().join(format!("latchkey-{}-backlog.sock", std::process::id()));
    let server = Server::builder()
        .option("tcp-backlog", "77")
        .unwrap()
        .unixsocket(&sock)
        .start()
        .await
        .unwrap();
    let mut con = connect(&server).await;
    assert_eq!(get(&mut con, "tcp-backlog").await, "77");
    // A listening socket's Send-Q in `ss` is its backlog.
    let port = server.addr().port().to_string();
    let tcp = ss(&["-ltnH", "sport", "=", &format!(":{port}")]);
    assert_eq!(backlog_of(&tcp), Some(77), "{tcp}");
    let unix = ss(&["-lxH", "src", &sock.display().to_string()]);
    assert_eq!(backlog_of(&unix), Some(77), "{unix}");
    server.shutdown().await;
}

fn ss(args: &[&str]) -> String {
    let out = std::process::Command::new("ss")
        .args(args)
        .output()
        .expect("`ss` (iproute2) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Send-Q column of the one LISTEN line.
fn backlog_of(ss: &str) -> Option<u32> {
    let line = ss.lines().find(|l| l.contains("LISTEN"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "LISTEN")?;
    words.get(at + 2)?.parse().ok()
}

/// The SYNs this network namespace dropped for a full accept queue so far
/// (`TcpExt: ListenOverflows` in /proc/net/netstat).
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap();
    let mut tcp_ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next().unwrap(), tcp_ext.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_connections_fits_a_backlog_of_1024_without_a_syn_retry() {
    // The queue holds the whole burst however slowly this busy test runtime
    // accepts; a 128-entry queue would drop SYNs, each retried after 1 s.
    let server = Server::builder()
        .option("tcp-backlog", "1024")
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = server.addr();
    let overflows = listen_overflows();
    let conns: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(tokio::net::TcpStream::connect(addr)))
        .collect();
    let mut open = Vec::new();
    for c in conns {
        let c = tokio::time::timeout(Duration::from_secs(10), c)
            .await
            .expect("connects within the bound")
            .unwrap();
        open.push(c.expect("connects"));
    }
    // No SYN was dropped for a full queue (the kernel counts each; counted
    // rather than timed, as a retry after 1 s would be, on a slow machine).
    assert_eq!(listen_overflows(), overflows);
    let mut con = connect(&server).await;
    let Value::BulkString(list) = cmd(&mut con, &["CLIENT", "LIST"]).await.unwrap() else {
        panic!("CLIENT LIST");
    };
    assert!(String::from_utf8_lossy(&list).lines().count() >= 1001);
}

#[test]
fn a_tcp_backlog_above_somaxconn_is_warned_about_as_redis_does() {
    use std::io::{BufRead, BufReader};
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("Linux")
        .trim()
        .parse()
        .unwrap();
    let backlog = somaxconn + 1;
    let sock = std::env::temp_dir().join(format!("latchkey-{}-somaxconn.sock", std::process::id()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "--port",
            "0",
            "--tcp-backlog",
            &backlog.to_string(),
            "--save",
            "",
            "--unixsocket",
        ])
        .arg(&sock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut seen = String::new();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.map_while(Result::ok) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Ready to accept connections") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&sock);
    let want = format!(
        "WARNING: The TCP backlog setting of {backlog} cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of {somaxconn}."
    );
    assert!(seen.contains(&want), "{seen}");
}

#[tokio::test]
async fn maxmemory_needs_the_counting_allocator() {
    // This test binary allocates with the system allocator, uncounted.
    let err = Server::builder().option("maxmemory", "1mb").err().unwrap();
    assert!(err.contains("latchkey::memory::Counting"), "{err}");
    assert!(Server::builder()
        .option("maxmemory-policy", "allkeys-lru")
        .is_ok());
    assert!(Server::builder().option("maxmemory-policy", "lru").is_err());
}
