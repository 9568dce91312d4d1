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
    let dir = std::env::temp_dir().join(format!("latchkey-debug-{}", std::process::id()));
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
    // DEBUG itself (the LIST just sent) neither fails nor uses up a rule.
    let Value::Array(rule) = &rules[0] else {
        panic!()
    };
    assert_eq!(rule[1], Value::Int(5));
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
async fn reset_flushes_scripts_faults_and_lets_the_clock_run() {
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
