//! DEBUG behind `enable-debug-command`, and the clock a test in any
//! language controls through it: ADVANCE-TIME makes TTLs and lock leases run
//! out (the next waiter is granted at once), PAUSE-TIME and RESUME-TIME; the
//! Redis subcommands test suites use (SET-ACTIVE-EXPIRE, RELOAD, OBJECT,
//! SLEEP). Refused by default with Redis's text (redis-tests/debug.txt).

mod common;

use std::time::{Duration, Instant};

use common::{cmd, connect, err_line};
use latchkey::{Server, ServerHandle};
use redis::Value;

async fn start_with(allowed: &str) -> ServerHandle {
    Server::builder()
        .option("enable-debug-command", allowed)
        .unwrap()
        .start()
        .await
        .unwrap()
}

/// A server with DEBUG on and its files in a new temporary directory.
async fn start_in_dir(name: &str) -> (ServerHandle, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("latchkey-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = Server::builder()
        .option("enable-debug-command", "yes")
        .unwrap()
        .dir(&dir)
        .unwrap()
        .start()
        .await
        .unwrap();
    (server, dir)
}

fn int(v: Value) -> i64 {
    match v {
        Value::Int(n) => n,
        v => panic!("{v:?}"),
    }
}

#[tokio::test]
async fn refused_unless_enabled_and_local_allows_loopback() {
    let server = Server::builder().start().await.unwrap();
    let mut con = connect(&server).await;
    assert_eq!(
        err_line(&mut con, &["DEBUG", "SLEEP", "0"]).await,
        "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."
    );
    let server = start_with("local").await;
    let mut con = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["DEBUG", "SLEEP", "0"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(
        err_line(&mut con, &["DEBUG", "NOPE"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'NOPE'. Try DEBUG HELP."
    );
}

#[tokio::test]
async fn advance_time_expires_keys_and_hands_a_lease_to_the_waiter() {
    let server = start_with("yes").await;
    let mut con = connect(&server).await;
    let mut waiter = connect(&server).await;
    assert_eq!(
        cmd(&mut con, &["DEBUG", "PAUSE-TIME"]).await.unwrap(),
        Value::Okay
    );
    let Value::Array(t0) = cmd(&mut con, &["TIME"]).await.unwrap() else {
        panic!()
    };
    cmd(&mut con, &["SET", "k", "v", "PX", "5000"])
        .await
        .unwrap();
    let token = int(cmd(&mut con, &["LOCK.ACQUIRE", "lk", "a", "1000"])
        .await
        .unwrap());
    // A second owner waits (no timeout) for the lease to run out.
    let queued = tokio::spawn(async move {
        cmd(
            &mut waiter,
            &["LOCK.ACQUIRE", "lk", "b", "1000", "WAIT", "0"],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !queued.is_finished(),
        "the clock is paused: the lease holds"
    );
    assert_eq!(
        cmd(&mut con, &["DEBUG", "ADVANCE-TIME", "6000"])
            .await
            .unwrap(),
        Value::Okay
    );
    let granted = tokio::time::timeout(Duration::from_secs(5), queued)
        .await
        .expect("granted at once")
        .unwrap()
        .unwrap();
    assert!(int(granted) > token);
    assert_eq!(cmd(&mut con, &["GET", "k"]).await.unwrap(), Value::Nil);
    let Value::Array(t1) = cmd(&mut con, &["TIME"]).await.unwrap() else {
        panic!()
    };
    let secs = |t: &[Value]| match &t[0] {
        Value::BulkString(b) => String::from_utf8_lossy(b).parse::<i64>().unwrap(),
        v => panic!("{v:?}"),
    };
    assert_eq!(secs(&t1) - secs(&t0), 6, "TIME follows the moved clock");
    assert!(err_line(&mut con, &["DEBUG", "ADVANCE-TIME", "-1"])
        .await
        .starts_with("ERR time must be"));
    assert_eq!(
        cmd(&mut con, &["DEBUG", "RESUME-TIME"]).await.unwrap(),
        Value::Okay
    );
    // Inside MULTI the clock does not move; SLEEP and OBJECT run there
    // (under the transaction's own hold of the server).
    cmd(&mut con, &["SET", "o", "1"]).await.unwrap();
    cmd(&mut con, &["MULTI"]).await.unwrap();
    cmd(&mut con, &["DEBUG", "SLEEP", "0"]).await.unwrap();
    cmd(&mut con, &["DEBUG", "OBJECT", "o"]).await.unwrap();
    cmd(&mut con, &["DEBUG", "ADVANCE-TIME", "1"])
        .await
        .unwrap();
    let exec = cmd(&mut con, &["EXEC"]).await;
    assert!(
        format!("{exec:?}").contains("cannot run inside MULTI"),
        "{exec:?}"
    );
}

#[tokio::test]
async fn set_active_expire_0_leaves_keys_to_lookups() {
    let server = start_with("yes").await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"])
        .await
        .unwrap();
    cmd(&mut con, &["SET", "k", "v", "PX", "5"]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(int(cmd(&mut con, &["DBSIZE"]).await.unwrap()), 1);
    assert_eq!(cmd(&mut con, &["GET", "k"]).await.unwrap(), Value::Nil);
    assert_eq!(int(cmd(&mut con, &["DBSIZE"]).await.unwrap()), 0);
    cmd(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"])
        .await
        .unwrap();
    cmd(&mut con, &["SET", "k2", "v", "PX", "5"]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while int(cmd(&mut con, &["DBSIZE"]).await.unwrap()) != 0 {
        assert!(Instant::now() < deadline, "active expiry is back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reload_saves_and_loads_back_and_object_describes_a_key() {
    let (server, dir) = start_in_dir("debug").await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["RPUSH", "l", "a", "b"]).await.unwrap();
    cmd(&mut con, &["SET", "s", "v", "EX", "100"])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["DEBUG", "RELOAD"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(int(cmd(&mut con, &["LLEN", "l"]).await.unwrap()), 2);
    assert!(int(cmd(&mut con, &["TTL", "s"]).await.unwrap()) > 90);
    // NOSAVE loads the file as it is: a key set since is gone again.
    cmd(&mut con, &["SET", "new", "1"]).await.unwrap();
    cmd(&mut con, &["DEBUG", "RELOAD", "NOSAVE"]).await.unwrap();
    assert_eq!(int(cmd(&mut con, &["EXISTS", "new"]).await.unwrap()), 0);
    // NOFLUSH without MERGE finds the file's keys already there.
    assert_eq!(
        err_line(&mut con, &["DEBUG", "RELOAD", "NOFLUSH", "NOSAVE"]).await,
        "ERR Error trying to load the RDB dump"
    );
    cmd(&mut con, &["SET", "new", "2"]).await.unwrap();
    cmd(&mut con, &["DEBUG", "RELOAD", "NOFLUSH", "NOSAVE", "MERGE"])
        .await
        .unwrap();
    assert_eq!(
        int(cmd(&mut con, &["EXISTS", "new", "l"]).await.unwrap()),
        2
    );
    assert_eq!(
        err_line(&mut con, &["DEBUG", "RELOAD", "FAST"]).await,
        "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options."
    );
    let Value::SimpleString(line) = cmd(&mut con, &["DEBUG", "OBJECT", "l"]).await.unwrap() else {
        panic!()
    };
    assert!(
        line.contains(" encoding:listpack serializedlength:"),
        "{line}"
    );
    assert_eq!(
        err_line(&mut con, &["DEBUG", "OBJECT", "nokey"]).await,
        "ERR no such key"
    );
    let started = Instant::now();
    cmd(&mut con, &["DEBUG", "SLEEP", "0.1"]).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    drop(con);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn raw_exchange(server: &ServerHandle, send: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let _ = s.write_all(send).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

/// Sends `send` and reads one line back.
async fn raw_exchange_one(server: &ServerHandle, send: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut s = tokio::io::BufReader::new(s);
    s.get_mut().write_all(send).await.unwrap();
    let mut line = Vec::new();
    s.read_until(b'\n', &mut line).await.unwrap();
    line
}

#[tokio::test]
async fn faults_error_delay_close_drop_refuse_and_clear() {
    let server = start_with("yes").await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["SET", "k", "v"]).await.unwrap();
    cmd(
        &mut con,
        &["DEBUG", "FAULT", "ERROR", "get", "2", "LOADING injected"],
    )
    .await
    .unwrap();
    for _ in 0..2 {
        assert_eq!(err_line(&mut con, &["GET", "k"]).await, "LOADING injected");
    }
    assert_eq!(
        cmd(&mut con, &["GET", "k"]).await.unwrap(),
        Value::BulkString(b"v".to_vec())
    );
    // A delayed reply; the server itself is not held up.
    cmd(&mut con, &["DEBUG", "FAULT", "DELAY", "GET", "1", "300"])
        .await
        .unwrap();
    let mut other = connect(&server).await;
    let started = Instant::now();
    let slow = tokio::spawn(async move { cmd(&mut con, &["GET", "k"]).await.map(|_| con) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let quick = Instant::now();
    cmd(&mut other, &["PING"]).await.unwrap();
    assert!(quick.elapsed() < Duration::from_millis(200));
    let mut con = slow.await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    // CLOSE: the next command of any name gets no reply, the connection ends.
    cmd(&mut con, &["DEBUG", "FAULT", "CLOSE", "*", "1"])
        .await
        .unwrap();
    assert_eq!(raw_exchange(&server, b"PING\r\n").await, b"");
    // The rule is spent: the next connection is answered.
    assert_eq!(raw_exchange_one(&server, b"PING\r\n").await, b"+PONG\r\n");
    // DROP-CLIENTS closes every other connection.
    cmd(&mut con, &["DEBUG", "FAULT", "DROP-CLIENTS"])
        .await
        .unwrap();
    assert!(cmd(&mut other, &["PING"]).await.is_err(), "dropped");
    assert_eq!(
        cmd(&mut con, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    // REFUSE: new connections are closed for a while.
    cmd(&mut con, &["DEBUG", "FAULT", "REFUSE", "300"])
        .await
        .unwrap();
    assert_eq!(raw_exchange(&server, b"PING\r\n").await, b"");
    tokio::time::sleep(Duration::from_millis(350)).await;
    cmd(&mut con, &["DEBUG", "FAULT", "ERROR", "*", "5", "ERR x"])
        .await
        .unwrap();
    let Value::Array(rules) = cmd(&mut con, &["DEBUG", "FAULT", "LIST"]).await.unwrap() else {
        panic!()
    };
    assert_eq!(rules.len(), 1);
    // DEBUG itself is exempt and spends nothing: all 5 are left.
    let Value::Array(rule) = &rules[0] else {
        panic!()
    };
    assert_eq!(rule[1], Value::Int(5), "{rules:?}");
    cmd(&mut con, &["DEBUG", "FAULT", "CLEAR"]).await.unwrap();
    assert_eq!(
        cmd(&mut con, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    assert!(
        err_line(&mut con, &["DEBUG", "FAULT", "ERROR", "get", "0", "x"])
            .await
            .starts_with("ERR count must be")
    );
}

#[tokio::test]
async fn reset_flushes_scripts_functions_faults_and_lets_the_clock_run() {
    let server = start_with("yes").await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["SET", "k", "v"]).await.unwrap();
    cmd(&mut con, &["SELECT", "3"]).await.unwrap();
    cmd(&mut con, &["SET", "k3", "v"]).await.unwrap();
    cmd(&mut con, &["LOCK.ACQUIRE", "lk", "me", "100000"])
        .await
        .unwrap();
    let Value::BulkString(sha) = cmd(&mut con, &["SCRIPT", "LOAD", "return 1"])
        .await
        .unwrap()
    else {
        panic!()
    };
    let sha = String::from_utf8(sha).unwrap();
    cmd(
        &mut con,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function('f', function() return 1 end)",
        ],
    )
    .await
    .unwrap();
    cmd(&mut con, &["DEBUG", "PAUSE-TIME"]).await.unwrap();
    cmd(&mut con, &["DEBUG", "FAULT", "ERROR", "get", "10", "ERR x"])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["DEBUG", "RESET"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(int(cmd(&mut con, &["DBSIZE"]).await.unwrap()), 0);
    cmd(&mut con, &["SELECT", "0"]).await.unwrap();
    assert_eq!(int(cmd(&mut con, &["DBSIZE"]).await.unwrap()), 0);
    assert_eq!(
        cmd(&mut con, &["GET", "k"]).await.unwrap(),
        Value::Nil,
        "no fault left"
    );
    assert_eq!(
        cmd(&mut con, &["SCRIPT", "EXISTS", &sha]).await.unwrap(),
        Value::Array(vec![Value::Int(0)])
    );
    assert_eq!(
        cmd(&mut con, &["FUNCTION", "LIST"]).await.unwrap(),
        Value::Array(vec![]),
        "no library left"
    );
    let t0 = server.now_ms();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(server.now_ms() > t0, "the clock runs again");
}

/// DEBUG LISTPACK and QUICKLIST answer by the value's encoding, as Redis
/// 7.2 does (a small list is a listpack); STRINGMATCH-TEST runs the glob
/// matcher over random input.
#[tokio::test]
async fn listpack_quicklist_and_stringmatch_test() {
    let server = start_with("yes").await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["RPUSH", "small", "a", "b"]).await.unwrap();
    cmd(&mut con, &["SET", "s", "1"]).await.unwrap();
    cmd(&mut con, &["CONFIG", "SET", "list-max-listpack-size", "2"])
        .await
        .unwrap();
    cmd(&mut con, &["RPUSH", "big", "a", "b", "c", "d"])
        .await
        .unwrap();
    let status = |s: &str| Value::SimpleString(s.to_string());
    assert_eq!(
        cmd(&mut con, &["DEBUG", "LISTPACK", "small"])
            .await
            .unwrap(),
        status("Listpack structure printed on stdout")
    );
    assert_eq!(
        cmd(&mut con, &["DEBUG", "QUICKLIST", "big", "1"])
            .await
            .unwrap(),
        status("Quicklist structure printed on stdout")
    );
    for (words, error) in [
        (
            &["DEBUG", "LISTPACK", "big"][..],
            "ERR Not a listpack encoded object.",
        ),
        (
            &["DEBUG", "LISTPACK", "s"],
            "ERR Not a listpack encoded object.",
        ),
        (
            &["DEBUG", "QUICKLIST", "small"],
            "ERR Not a quicklist encoded object.",
        ),
        (&["DEBUG", "LISTPACK", "nokey"], "ERR no such key"),
        (
            &["DEBUG", "QUICKLIST", "big", "1", "2"],
            "ERR unknown subcommand or wrong number of arguments for 'QUICKLIST'. Try DEBUG HELP.",
        ),
    ] {
        assert_eq!(err_line(&mut con, words).await, error, "{words:?}");
    }
    assert_eq!(
        cmd(&mut con, &["DEBUG", "STRINGMATCH-TEST"]).await.unwrap(),
        status("Apparently Redis did not crash: test passed")
    );
}

/// DEBUG QUICKLIST-PACKED-THRESHOLD: Redis's list tests set it low to put
/// small elements in plain nodes; every list command keeps its answers
/// (the cases of Redis 7.2's tests/unit/type/list.tcl "plain nodes"), and
/// the argument errors are Redis's (replies taken from redis-server 7.0.15
/// with enable-debug-command yes: record.py's server cannot enable DEBUG).
#[tokio::test]
async fn quicklist_packed_threshold_keeps_every_list_answer() {
    let (server, dir) = start_in_dir("plain").await;
    let mut con = connect(&server).await;
    let ok = Value::Okay;
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    for size in [
        "1b",
        "0",
        "5b",
        "100",
        "1k",
        "1kb",
        "1gb",
        "1B",
        "1Kb",
        "",
        "4293918720",
    ] {
        assert_eq!(
            cmd(&mut con, &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", size])
                .await
                .unwrap(),
            ok,
            "{size:?}"
        );
    }
    for size in [
        "4gb",
        "4294967296",
        "4293918721",
        "-1",
        "abc",
        "1.5",
        "99999999999999999999",
    ] {
        assert_eq!(
            err_line(&mut con, &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", size]).await,
            "ERR argument must be a memory value bigger than 1 and smaller than 4gb",
            "{size:?}"
        );
    }
    assert_eq!(
        err_line(&mut con, &["DEBUG", "QUICKLIST-PACKED-THRESHOLD"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'QUICKLIST-PACKED-THRESHOLD'. Try DEBUG HELP."
    );

    // Small nodes (two entries), so that every list is a quicklist of
    // several nodes and the plain ones sit between packed ones.
    cmd(&mut con, &["CONFIG", "SET", "list-max-listpack-size", "2"])
        .await
        .unwrap();
    cmd(&mut con, &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1b"])
        .await
        .unwrap();
    let x10 = "x".repeat(10);
    let x11 = "x".repeat(11);
    // LPUSH and LPOP, RPOP, then through an RDB reload.
    cmd(&mut con, &["LPUSH", "lst", "9"]).await.unwrap();
    cmd(&mut con, &["LPUSH", "lst", &x10]).await.unwrap();
    cmd(&mut con, &["LPUSH", "lst", &x10]).await.unwrap();
    assert_eq!(int(cmd(&mut con, &["LLEN", "lst"]).await.unwrap()), 3);
    assert_eq!(cmd(&mut con, &["RPOP", "lst"]).await.unwrap(), bulk("9"));
    assert_eq!(cmd(&mut con, &["RPOP", "lst"]).await.unwrap(), bulk(&x10));
    assert_eq!(cmd(&mut con, &["LPOP", "lst"]).await.unwrap(), bulk(&x10));
    // LINDEX and LINSERT.
    cmd(&mut con, &["RPUSH", "ins", &x11, "9"]).await.unwrap();
    cmd(&mut con, &["LPUSH", "ins", &x11]).await.unwrap();
    cmd(&mut con, &["LINSERT", "ins", "BEFORE", "9", "8"])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["LINDEX", "ins", "2"]).await.unwrap(),
        bulk("8")
    );
    cmd(&mut con, &["LINSERT", "ins", "BEFORE", "9", "7"])
        .await
        .unwrap();
    cmd(&mut con, &["LINSERT", "ins", "BEFORE", "9", &x11])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["LRANGE", "ins", "0", "-1"]).await.unwrap(),
        Value::Array(
            [x11.as_str(), &x11, "8", "7", &x11, "9"]
                .iter()
                .map(|s| bulk(s))
                .collect()
        )
    );
    // LTRIM, LREM, LPOS, LSET.
    cmd(&mut con, &["LPUSH", "t", "9", &x11, "9"])
        .await
        .unwrap();
    cmd(&mut con, &["LTRIM", "t", "1", "-1"]).await.unwrap();
    assert_eq!(int(cmd(&mut con, &["LLEN", "t"]).await.unwrap()), 2);
    cmd(&mut con, &["LPUSH", "r", "one", &x11, "9"])
        .await
        .unwrap();
    assert_eq!(
        int(cmd(&mut con, &["LREM", "r", "-2", "one"]).await.unwrap()),
        1
    );
    cmd(&mut con, &["RPUSH", "p", "aa", "bb", "cc"])
        .await
        .unwrap();
    cmd(&mut con, &["LSET", "p", "0", &x11]).await.unwrap();
    assert_eq!(int(cmd(&mut con, &["LPOS", "p", &x11]).await.unwrap()), 0);
    // LMOVE between two lists holding plain nodes.
    cmd(&mut con, &["RPUSH", "m2", "aa", "bb"]).await.unwrap();
    cmd(&mut con, &["LSET", "m2", "0", &x11]).await.unwrap();
    cmd(&mut con, &["RPUSH", "m2", "cc", "dd"]).await.unwrap();
    cmd(&mut con, &["LMOVE", "m2", "m1", "RIGHT", "LEFT"])
        .await
        .unwrap();
    cmd(&mut con, &["LMOVE", "m2", "m1", "LEFT", "RIGHT"])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["LRANGE", "m1", "0", "-1"]).await.unwrap(),
        Value::Array(vec![bulk("dd"), bulk(&x11)])
    );
    assert_eq!(
        cmd(&mut con, &["LRANGE", "m2", "0", "-1"]).await.unwrap(),
        Value::Array(vec![bulk("bb"), bulk("cc")])
    );
    // LSET across packed and plain (threshold 5 bytes): plain to packed,
    // packed to plain, plain to plain, packed to packed; and a packed node
    // split in the middle.
    cmd(&mut con, &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "5b"])
        .await
        .unwrap();
    let big = |c: &str| c.repeat(50_001);
    cmd(&mut con, &["RPUSH", "s", "aa", "bb"]).await.unwrap();
    for (set, push) in [
        (big("d"), big("f")),
        (big("e"), big("m")),
        ("bb".into(), "bb".into()),
    ] {
        cmd(&mut con, &["LSET", "s", "0", &set]).await.unwrap();
        assert_eq!(cmd(&mut con, &["LPOP", "s"]).await.unwrap(), bulk(&set));
        cmd(&mut con, &["RPUSH", "s", &push]).await.unwrap();
    }
    cmd(&mut con, &["LSET", "s", "0", "cc"]).await.unwrap();
    assert_eq!(cmd(&mut con, &["LPOP", "s"]).await.unwrap(), bulk("cc"));
    cmd(&mut con, &["RPUSH", "sp", "aa", "bb", "cc", "dd", "ee"])
        .await
        .unwrap();
    cmd(&mut con, &["LSET", "sp", "2", &"e".repeat(10)])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["LRANGE", "sp", "0", "-1"]).await.unwrap(),
        Value::Array(
            ["aa", "bb", &"e".repeat(10), "dd", "ee"]
                .iter()
                .map(|s| bulk(s))
                .collect()
        )
    );
    // Setting the last element to a large one (Redis once crashed there).
    cmd(&mut con, &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "10b"])
        .await
        .unwrap();
    cmd(&mut con, &["LPUSH", "c", "aa", "bb"]).await.unwrap();
    cmd(&mut con, &["LSET", "c", "-2", &x10]).await.unwrap();
    cmd(&mut con, &["RPOP", "c"]).await.unwrap();
    assert_eq!(
        cmd(&mut con, &["LRANGE", "c", "0", "-1"]).await.unwrap(),
        Value::Array(vec![bulk(&x10)])
    );
    // Lists keep their elements through an RDB reload; DEBUG RESET
    // restores the default threshold.
    let before = cmd(&mut con, &["LRANGE", "ins", "0", "-1"]).await.unwrap();
    assert_eq!(cmd(&mut con, &["DEBUG", "RELOAD"]).await.unwrap(), ok);
    assert_eq!(
        cmd(&mut con, &["LRANGE", "ins", "0", "-1"]).await.unwrap(),
        before
    );
    cmd(&mut con, &["DEBUG", "RESET"]).await.unwrap();
    assert_eq!(
        server
            .shared()
            .encodings
            .list_plain_at
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The embedding API's faults, dropped clients and reset are DEBUG's: a
/// client sees the injected error, loses its connection, and finds the
/// server empty after a reset.
#[tokio::test]
async fn the_handle_injects_faults_drops_clients_and_resets() {
    use latchkey::faults::Action;
    let server = Server::builder().start().await.unwrap();
    let mut con = connect(&server).await;
    server
        .faults()
        .add(Some(b"get"), 1, Action::Error("LOADING injected".into()));
    assert_eq!(err_line(&mut con, &["GET", "k"]).await, "LOADING injected");
    assert_eq!(cmd(&mut con, &["GET", "k"]).await.unwrap(), Value::Nil);
    cmd(&mut con, &["SET", "k", "v"]).await.unwrap();
    cmd(&mut con, &["LOCK.ACQUIRE", "lk", "me", "100000"])
        .await
        .unwrap();
    server.faults().add(None, 3, Action::Close);
    server.reset().unwrap();
    assert!(server.faults().list().is_empty(), "reset clears faults");
    assert_eq!(server.dbsize(0), 0);
    assert!(
        server.lock_info("lk").is_none(),
        "the lock went with its db"
    );
    // The connection survives a reset; then the handle drops it.
    assert_eq!(cmd(&mut con, &["GET", "k"]).await.unwrap(), Value::Nil);
    server.drop_clients();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if cmd(&mut con, &["PING"]).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "the connection stays open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Under `local`, a client that is not on loopback or the Unix socket gets
/// DEBUG refused (a session built as the accept loop builds one for a
/// remote peer: tests bind loopback only); `yes` lets it run. A user
/// without the permission gets ACL's NOPERM, whatever the option says.
#[test]
fn debug_is_refused_to_remote_peers_under_local_and_to_users_without_it() {
    use bytes::Bytes;
    use latchkey::session::{ClientInfo, Session};
    use std::sync::Arc;
    let run = |allowed: &str, local: bool, user: Option<&str>| -> String {
        let mut config = latchkey::config::Config::default();
        config
            .apply("enable-debug-command", &[allowed.to_string()])
            .unwrap();
        let shared = latchkey::server::Shared::new(config, Arc::new(latchkey::clock::Clock::new()));
        let mut info = ClientInfo::new(1, "10.1.2.3:4000".into(), "10.1.2.4:6379".into(), -1, 0);
        info.local = local;
        let acl_user = match user {
            Some(rules) => {
                let words: Vec<Bytes> = ["ACL", "SETUSER", "u"]
                    .iter()
                    .map(|w| Bytes::from(w.to_string()))
                    .chain(rules.split(' ').map(|w| Bytes::from(w.to_string())))
                    .collect();
                let mut admin = Session::new(
                    Arc::new(ClientInfo::new(2, "a".into(), "b".into(), -1, 0)),
                    shared.acl.default_user(),
                    true,
                );
                latchkey::commands::execute(&shared, &mut admin, &words);
                shared.acl.user(b"u").unwrap()
            }
            None => shared.acl.default_user(),
        };
        let mut session = Session::new(Arc::new(info), acl_user, true);
        let reply = latchkey::commands::execute(
            &shared,
            &mut session,
            &[
                Bytes::from_static(b"DEBUG"),
                Bytes::from_static(b"SLEEP"),
                Bytes::from_static(b"0"),
            ],
        );
        format!("{reply:?}")
    };
    let refused = run("local", false, None);
    assert!(refused.contains("DEBUG command not allowed"), "{refused}");
    assert!(
        run("local", true, None).contains("OK"),
        "loopback under local"
    );
    assert!(run("yes", false, None).contains("OK"), "anyone under yes");
    let noperm = run("yes", true, Some("on nopass ~* +@all -debug"));
    assert!(noperm.contains("NOPERM"), "{noperm}");
}
