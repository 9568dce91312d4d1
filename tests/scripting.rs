//! EVAL through the `redis` crate: the classic Lua lock, atomicity with concurrent
//! clients, and scripts meeting native locks.

mod common;

use std::time::Duration;

use common::{cmd, connect, err_line, start};
use redis::{Script, Value};

const ACQUIRE: &str = "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])";
const IS_HOLDER: &str = "return redis.call('GET', KEYS[1]) == ARGV[1]";
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

#[tokio::test]
async fn classic_single_instance_lock_in_lua() {
    let server = start().await;
    let mut con = connect(&server).await;
    let acquire = Script::new(ACQUIRE);
    let got: Option<String> = acquire
        .key("lock")
        .arg("me")
        .arg(30)
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("OK"));
    let got: Option<String> = acquire
        .key("lock")
        .arg("you")
        .arg(30)
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, None, "taken");
    let holder: Value = Script::new(IS_HOLDER)
        .key("lock")
        .arg("me")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(holder, Value::Int(1), "Lua true is 1");
    let not: Value = Script::new(IS_HOLDER)
        .key("lock")
        .arg("you")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(not, Value::Nil, "Lua false is nil");
    let release = Script::new(RELEASE);
    let n: i64 = release
        .key("lock")
        .arg("you")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 0, "only the holder releases");
    let n: i64 = release
        .key("lock")
        .arg("me")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(server.get("lock"), None);
}

#[tokio::test]
async fn evalsha_works_after_eval_and_fails_after_flush() {
    let server = start().await;
    let mut con = connect(&server).await;
    let script = Script::new("return ARGV[1]");
    let v: String = script.arg("x").invoke_async(&mut con).await.unwrap();
    assert_eq!(v, "x");
    let v: String = redis::cmd("EVALSHA")
        .arg(script.get_hash())
        .arg(0)
        .arg("y")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, "y");
    cmd(&mut con, &["SCRIPT", "FLUSH"]).await.unwrap();
    assert_eq!(
        err_line(&mut con, &["EVALSHA", script.get_hash(), "0"]).await,
        "NOSCRIPT No matching script. Please use EVAL."
    );
}

/// A read-modify-write in a script is atomic even with two worker threads and
/// many clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_atomic_under_concurrency() {
    let server = start().await;
    let rmw = Script::new(
        "local v = tonumber(redis.call('GET', KEYS[1]) or '0') redis.call('SET', KEYS[1], v + 1) return v + 1",
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut con = connect(&server).await;
        let rmw = rmw.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                let _: i64 = rmw.key("n").invoke_async(&mut con).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.get("n").as_deref(), Some(&b"2000"[..]));
}

#[tokio::test]
async fn lock_acquire_with_wait_is_refused_in_scripts() {
    let server = start().await;
    let mut con = connect(&server).await;
    let e = err_line(
        &mut con,
        &[
            "EVAL",
            "return redis.call('LOCK.ACQUIRE', 'L', 'me', 1000, 'WAIT', 10)",
            "0",
        ],
    )
    .await;
    assert!(
        e.starts_with("ERR LOCK.ACQUIRE with WAIT is not allowed from scripts script: "),
        "{e}"
    );
    let t = cmd(
        &mut con,
        &[
            "EVAL",
            "return redis.call('LOCK.ACQUIRE', 'L', 'me', 1000)",
            "0",
        ],
    )
    .await
    .unwrap();
    assert!(matches!(t, Value::Int(n) if n > 0));
}

/// A script that frees a lock hands it to the waiter only when the script ends.
#[tokio::test]
async fn lock_freed_by_a_script_is_granted_after_the_script() {
    let server = start().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    cmd(&mut a, &["LOCK.ACQUIRE", "L", "a", "100000"])
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        redis::cmd("LOCK.ACQUIRE")
            .arg("L")
            .arg("b")
            .arg(10_000)
            .arg("WAIT")
            .arg(5000)
            .query_async::<Option<i64>>(&mut b)
            .await
            .unwrap()
    });
    while server.lock_info("L").map_or(0, |i| i.waiters) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Release, then keep running: the waiter holds the lock only after this.
    let script = "redis.call('LOCK.RELEASE', 'L', 'a') local t = redis.call('LOCK.INFO', 'L') \
                  redis.call('SET', 'after', 'x') return t[6][1][2]";
    let holder = cmd(&mut a, &["EVAL", script, "0"]).await.unwrap();
    assert_eq!(
        holder,
        Value::BulkString(b"b".to_vec()),
        "granted inside the script's critical section"
    );
    assert!(waiter.await.unwrap().is_some());
    assert_eq!(server.get("after").as_deref(), Some(&b"x"[..]));
}

/// Sends `EVAL script 0` on a raw connection and returns it once the script is busy
/// (another client's PING gets BUSY).
async fn start_busy_script(
    server: &latchkey::ServerHandle,
    con: &mut redis::aio::MultiplexedConnection,
    script: &str,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let req = format!(
        "*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n",
        script.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        err_line(con, &["PING"]).await,
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    );
    s
}

/// Sends SCRIPT KILL for the busy `script` and checks that the script's caller
/// gets Redis's kill error.
async fn kill_busy_script(
    con: &mut redis::aio::MultiplexedConnection,
    runner: &mut tokio::net::TcpStream,
    script: &str,
) {
    assert_eq!(cmd(con, &["SCRIPT", "KILL"]).await.unwrap(), Value::Okay);
    let want = format!(
        "-ERR Script killed by user with SCRIPT KILL... script: {}, on @user_script:1.\r\n",
        latchkey::scripting::sha1_hex(script.as_bytes())
    );
    let got = common::read_until(runner, want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);
}

// Multi-thread runtimes: the busy script hands its worker thread over; one worker
// is the binary's default.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_busy_script_gets_busy_replies_and_script_kill_ends_it() {
    let server = common::start_with_short_busy_threshold().await;
    let mut con = connect(&server).await;
    let script = "local i = 0 while true do i = i + 1 end";
    let mut runner = start_busy_script(&server, &mut con, script).await;
    assert!(err_line(&mut con, &["GET", "k"]).await.starts_with("BUSY "));
    assert!(err_line(&mut con, &["EVAL", "return 1", "0"])
        .await
        .starts_with("BUSY "));
    // The commands Redis allows beside a busy script still run. In a
    // transaction, a refused command dooms it and the refused EXEC says why.
    assert_eq!(cmd(&mut con, &["MULTI"]).await.unwrap(), Value::Okay);
    assert!(err_line(&mut con, &["SET", "k", "v"])
        .await
        .starts_with("BUSY "));
    let queued = cmd(&mut con, &["SCRIPT", "KILL"]).await.unwrap();
    assert_eq!(queued, Value::SimpleString("QUEUED".into()));
    assert_eq!(
        err_line(&mut con, &["EXEC"]).await,
        "EXECABORT Transaction discarded because of: BUSY Redis is busy running a script. \
         You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    );
    assert_eq!(cmd(&mut con, &["MULTI"]).await.unwrap(), Value::Okay);
    assert_eq!(cmd(&mut con, &["DISCARD"]).await.unwrap(), Value::Okay);
    kill_busy_script(&mut con, &mut runner, script).await;
    assert_eq!(
        cmd(&mut con, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    assert_eq!(
        err_line(&mut con, &["SCRIPT", "KILL"]).await,
        "NOTBUSY No scripts in execution right now."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcall_cannot_swallow_script_kill() {
    let server = common::start_with_short_busy_threshold().await;
    let mut con = connect(&server).await;
    let script = "while true do pcall(function() while true do end end) end";
    let mut runner = start_busy_script(&server, &mut con, script).await;
    kill_busy_script(&mut con, &mut runner, script).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_script_that_wrote_is_unkillable_but_shutdown_nosave_stops_it() {
    let server = common::start_with_short_busy_threshold().await;
    let mut con = connect(&server).await;
    let script = "redis.call('set', 'w', '1') while true do end";
    let mut runner = start_busy_script(&server, &mut con, script).await;
    assert!(err_line(&mut con, &["SCRIPT", "KILL"])
        .await
        .starts_with("UNKILLABLE Sorry the script already executed write commands"));
    assert!(err_line(&mut con, &["SHUTDOWN"]).await.starts_with("BUSY "));
    let _ = cmd(&mut con, &["SHUTDOWN", "NOSAVE"]).await;
    // The script's caller is disconnected without a reply, as Redis exits.
    assert!(common::read_until(&mut runner, 1).await.is_empty());
    assert!(server.shared().is_shutting_down());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn below_the_threshold_other_clients_wait_for_the_script() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut other = connect(&server).await;
    let slow = tokio::spawn(async move {
        let n: i64 = redis::cmd("EVAL")
            .arg("local t = 0 for i = 1, 3000000 do t = t + 1 end redis.call('set', 'done', t) return t")
            .arg(0)
            .query_async(&mut other)
            .await
            .unwrap();
        n
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let done: Option<i64> = redis::cmd("GET")
        .arg("done")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(slow.await.unwrap(), 3_000_000);
    // Either the GET ran before the script, or after it: never a BUSY.
    assert!(matches!(done, None | Some(3_000_000)));
}

#[tokio::test]
async fn math_random_continues_redis_sequence_across_scripts() {
    // The first numbers a fresh redis-server 7 gives, one script call at a time.
    let server = start().await;
    let mut con = connect(&server).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let v: String = redis::cmd("EVAL")
            .arg("return tostring(math.random())")
            .arg(0)
            .query_async(&mut con)
            .await
            .unwrap();
        got.push(v);
    }
    assert_eq!(
        got,
        ["0.39646477363839", "0.84048536971234", "0.35333609737146"]
    );
}

#[tokio::test]
async fn setresp_3_gives_scripts_maps_and_nil() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["LOCK.ACQUIRE", "L", "me", "10000"])
        .await
        .unwrap();
    let script = "redis.setresp(3) \
        local info = redis.call('lock.info', KEYS[1]) \
        return {info['map']['waiters'], #info['map']['holders'], type(redis.call('get', 'nokey'))}";
    let got = cmd(&mut con, &["EVAL", script, "1", "L"]).await.unwrap();
    assert_eq!(
        got,
        Value::Array(vec![
            Value::Int(0),
            Value::Int(1),
            Value::BulkString(b"nil".to_vec())
        ])
    );
}

/// The compare-and-delete and compare-and-pexpire scripts a Go client such as
/// redsync sends (written here from their behaviour: act only while the stored
/// value is the caller's), around a `SET NX PX` acquire.
#[tokio::test]
async fn compare_and_delete_and_compare_and_pexpire_scripts() {
    let server = start().await;
    let mut con = connect(&server).await;
    let delete_if_mine = Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
    );
    let pexpire_if_mine = Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
    );
    let set = cmd(&mut con, &["SET", "mutex", "tok-a", "NX", "PX", "8000"])
        .await
        .unwrap();
    assert_eq!(set, Value::Okay);
    let refused = cmd(&mut con, &["SET", "mutex", "tok-b", "NX", "PX", "8000"])
        .await
        .unwrap();
    assert_eq!(refused, Value::Nil);
    let n: i64 = pexpire_if_mine
        .key("mutex")
        .arg("tok-b")
        .arg(60000)
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 0, "not the holder: no extension");
    let n: i64 = pexpire_if_mine
        .key("mutex")
        .arg("tok-a")
        .arg(60000)
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(server.ttl("mutex").unwrap() > Duration::from_secs(59));
    let n: i64 = delete_if_mine
        .key("mutex")
        .arg("tok-b")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 0, "not the holder: not deleted");
    assert!(server.get("mutex").is_some());
    let n: i64 = delete_if_mine
        .key("mutex")
        .arg("tok-a")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(server.get("mutex").is_none());
    // After expiry the holder can neither extend nor delete.
    server.pause_time();
    cmd(&mut con, &["SET", "mutex", "tok-c", "NX", "PX", "100"])
        .await
        .unwrap();
    server.advance_time(Duration::from_millis(101));
    let n: i64 = pexpire_if_mine
        .key("mutex")
        .arg("tok-c")
        .arg(1000)
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_fencing_token_passes_through_a_script_exactly() {
    // Lua 5.1 numbers are doubles: a token must stay below 2^53 to survive.
    let server = start().await;
    let mut con = connect(&server).await;
    let token: i64 = redis::cmd("EVAL")
        .arg("return redis.call('lock.acquire', KEYS[1], 'me', 10000)")
        .arg(1)
        .arg("L")
        .query_async(&mut con)
        .await
        .unwrap();
    let valid = cmd(&mut con, &["LOCK.VALIDATE", "L", &token.to_string()])
        .await
        .unwrap();
    assert_eq!(valid, Value::Int(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_inside_a_coroutine_is_busy_and_killable() {
    let server = common::start_with_short_busy_threshold().await;
    let mut con = connect(&server).await;
    let script = "coroutine.wrap(function() while true do end end)()";
    let mut runner = start_busy_script(&server, &mut con, script).await;
    kill_busy_script(&mut con, &mut runner, script).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_sent_before_a_script_turns_busy_get_busy_once_it_does() {
    use tokio::io::AsyncWriteExt;
    let server = common::start_with_short_busy_threshold().await;
    let mut con = connect(&server).await;
    let script = "while 1 do end";
    let mut runner = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    runner
        .write_all(b"*3\r\n$4\r\nEVAL\r\n$14\r\nwhile 1 do end\r\n$1\r\n0\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Both wait for the script's gate, then learn it is busy.
    let mut eval = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    eval.write_all(b"EVAL \"return 1\" 0\r\n").await.unwrap();
    let mut get = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    get.write_all(b"GET k\r\n").await.unwrap();
    let busy = "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
    for s in [&mut eval, &mut get] {
        let got = common::read_until(s, busy.len()).await;
        assert_eq!(String::from_utf8_lossy(&got), busy);
    }
    kill_busy_script(&mut con, &mut runner, script).await;
}

/// A script nested close to Lua's C-call limit: `redis.call` either runs
/// its command and the script gets the reply, or fails before the command
/// runs — never a command done and its reply lost (an array reply and an
/// error are converted in a call deeper than the command's; found by a
/// review of the direct redis.call path). The list holds 4 elements before
/// each run; LPOP of 2 leaves 2 only when the script saw the 2 it popped.
#[tokio::test]
async fn near_the_c_call_limit_a_command_runs_whole_or_not_at_all() {
    let server = start().await;
    let mut con = connect(&server).await;
    let script = |call: &str, tail: &str| {
        format!(
            "local function f(n) if n == 0 then return redis.{call}({tail}) end \
             local ok, v = pcall(f, n - 1) return v end \
             local r = f(tonumber(ARGV[1])) \
             return {{type(r) == 'table' and (r[1] or r.err) or tostring(r), redis.call('llen', 'l')}}"
        )
    };
    for depth in 185..=200 {
        for (call, tail, want) in [
            ("call", "'lpop', 'l', '2'", "\"a\""),
            ("pcall", "'lpop', 'l', '2'", "\"a\""),
            ("call", "'lpop', 's', '2'", "WRONGTYPE"),
            ("pcall", "'lpop', 's', '2'", "WRONGTYPE"),
            // Nested arrays (XRANGE), after an LPOP in its arguments.
            (
                "call",
                "'xrange', 'x', '-', '+', 'COUNT', redis.call('lpop', 'l', '2')[1] and '1'",
                "\"1-1\"",
            ),
        ] {
            cmd(&mut con, &["DEL", "l"]).await.unwrap();
            cmd(&mut con, &["RPUSH", "l", "a", "b", "c", "d"])
                .await
                .unwrap();
            cmd(&mut con, &["SET", "s", "x"]).await.unwrap();
            cmd(&mut con, &["DEL", "x"]).await.unwrap();
            cmd(&mut con, &["XADD", "x", "1-1", "f", "v"])
                .await
                .unwrap();
            let got = cmd(
                &mut con,
                &["EVAL", &script(call, tail), "0", &depth.to_string()],
            )
            .await
            .unwrap();
            let Value::Array(v) = got else {
                panic!("{got:?}")
            };
            let (first, len) = (format!("{:?}", v[0]), &v[1]);
            let len = match len {
                Value::Int(n) => *n,
                v => panic!("{v:?}"),
            };
            if first.contains(want) {
                let left = if want == "\"a\"" || want == "\"1-1\"" {
                    2
                } else {
                    4
                };
                assert_eq!(len, left, "depth {depth} {call}: {first}");
            } else {
                assert!(
                    first.contains("stack overflow"),
                    "depth {depth} {call}: {first}"
                );
                assert_eq!(
                    len, 4,
                    "depth {depth} {call}: the command ran, its reply lost"
                );
            }
        }
    }
}
