//! Redis 7 functions beyond what `redis-tests/functions.txt` can say: the
//! libraries survive a restart with an RDB file and with the AOF (and its
//! rewrite's base), FUNCTION KILL stops a busy function from another
//! connection, FCALL_RO and `no-writes` refuse writes, and FCALL inside
//! MULTI runs with the transaction.

mod common;

use std::time::{Duration, Instant};

use common::persist::{info_field, int, run, start, Dir};
use common::{cmd, connect, err_line};
use redis::Value;

const LIB: &str = "#!lua name=lib\n\
    redis.register_function('setget', function(keys, args)\n\
      redis.call('set', keys[1], args[1])\n\
      return redis.call('get', keys[1])\n\
    end)\n\
    redis.register_function{function_name='peek', flags={'no-writes'}, \
      callback=function(keys) return redis.call('get', keys[1]) end}";

const LIB2: &str = "#!lua name=lib2\nredis.register_function('two', function() return 2 end)";

fn bulk(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// A map reply's pairs (RESP2 gives them as a flat array).
fn pairs(v: Value) -> Vec<(Value, Value)> {
    match v {
        Value::Map(pairs) => pairs,
        Value::Array(items) => items
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect(),
        other => panic!("not a map: {other:?}"),
    }
}

/// The library names FUNCTION LIST gives, sorted.
fn libraries(con: &mut redis::Connection) -> Vec<String> {
    let Value::Array(libs) = run(con, &["FUNCTION", "LIST"]) else {
        panic!("FUNCTION LIST is not an array");
    };
    let mut names: Vec<String> = libs
        .iter()
        .map(|lib| match lib {
            Value::Array(fields) => bulk(&fields[1]),
            Value::Map(pairs) => bulk(&pairs[0].1),
            other => panic!("{other:?}"),
        })
        .collect();
    names.sort();
    names
}

#[test]
fn libraries_survive_a_restart_through_the_rdb_file() {
    let dir = Dir::new("functions-rdb");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    assert_eq!(bulk(&run(&mut con, &["FUNCTION", "LOAD", LIB])), "lib");
    assert_eq!(bulk(&run(&mut con, &["FUNCTION", "LOAD", LIB2])), "lib2");
    // Library changes count as changes, as in Redis (save points see them).
    assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "2");
    assert_eq!(
        bulk(&run(&mut con, &["FCALL", "setget", "1", "k", "v"])),
        "v"
    );
    run(&mut con, &["SAVE"]);
    drop(con);
    server.signal("KILL");

    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    assert_eq!(libraries(&mut con), ["lib", "lib2"]);
    assert_eq!(bulk(&run(&mut con, &["FCALL_RO", "peek", "1", "k"])), "v");
    assert_eq!(int(&mut con, &["FCALL", "two", "0"]), 2);
}

#[test]
fn libraries_survive_a_restart_through_the_aof_and_its_rewrite() {
    let dir = Dir::new("functions-aof");
    let flags = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let server = start(&dir, &flags);
    let mut con = server.con();
    run(&mut con, &["FUNCTION", "LOAD", LIB]);
    run(&mut con, &["FUNCTION", "LOAD", LIB2]);
    run(&mut con, &["FUNCTION", "DELETE", "lib2"]);
    run(&mut con, &["FCALL", "setget", "1", "k", "v1"]);
    drop(con);
    server.signal("KILL");

    // The incremental file replays FUNCTION LOAD and DELETE, then the FCALL.
    let server = start(&dir, &flags);
    let mut con = server.con();
    assert_eq!(libraries(&mut con), ["lib"]);
    assert_eq!(bulk(&run(&mut con, &["GET", "k"])), "v1");
    // A rewrite's base file carries the libraries.
    run(&mut con, &["BGREWRITEAOF"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "aof_rewrites") != "1"
        || info_field(&mut con, "aof_rewrite_in_progress") != "0"
    {
        assert!(Instant::now() < deadline, "the rewrite did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    run(&mut con, &["FUNCTION", "LOAD", LIB2]);
    drop(con);
    server.signal("KILL");

    let server = start(&dir, &flags);
    let mut con = server.con();
    assert_eq!(libraries(&mut con), ["lib", "lib2"]);
    assert_eq!(bulk(&run(&mut con, &["FCALL_RO", "peek", "1", "k"])), "v1");
    // FUNCTION FLUSH is replayed as well.
    run(&mut con, &["FUNCTION", "FLUSH"]);
    drop(con);
    server.signal("KILL");
    let server = start(&dir, &flags);
    let mut con = server.con();
    assert!(libraries(&mut con).is_empty());
}

const BUSY_LIB: &str = "#!lua name=busy\n\
    redis.register_function('spin', function()\n\
      local i = 0\n\
      while true do i = i + 1 end\n\
    end)\n\
    redis.register_function('write_then_spin', function(keys)\n\
      redis.call('set', keys[1], 'x')\n\
      while true do end\n\
    end)";

const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// Sends `FCALL name 0` (or with one key) on a raw connection; returns it
/// once the function is busy.
async fn start_busy_function(
    server: &latchkey::ServerHandle,
    con: &mut redis::aio::MultiplexedConnection,
    words: &[&str],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut req = format!("*{}\r\n", words.len());
    for w in words {
        req.push_str(&format!("${}\r\n{w}\r\n", w.len()));
    }
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(err_line(con, &["PING"]).await, BUSY_FUNCTION);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn function_kill_from_another_connection_ends_a_busy_function() {
    let server = common::start_with_short_busy_threshold().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["FUNCTION", "LOAD", BUSY_LIB])
        .await
        .unwrap();
    let mut runner = start_busy_function(&server, &mut con, &["FCALL", "spin", "0"]).await;
    // SCRIPT KILL is for EVAL's scripts.
    assert_eq!(err_line(&mut con, &["SCRIPT", "KILL"]).await, BUSY_FUNCTION);
    // FUNCTION STATS names the function and its command.
    let stats = pairs(cmd(&mut con, &["FUNCTION", "STATS"]).await.unwrap());
    let running = pairs(stats[0].1.clone());
    assert_eq!(bulk(&running[0].1), "spin");
    assert_eq!(
        running[1].1,
        Value::Array(vec![
            Value::BulkString(b"FCALL".to_vec()),
            Value::BulkString(b"spin".to_vec()),
            Value::BulkString(b"0".to_vec()),
        ])
    );
    assert_eq!(
        cmd(&mut con, &["FUNCTION", "KILL"]).await.unwrap(),
        Value::Okay
    );
    let want =
        "-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:4.\r\n";
    let got = common::read_until(&mut runner, want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);
    assert_eq!(
        cmd(&mut con, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    assert_eq!(
        err_line(&mut con, &["FUNCTION", "KILL"]).await,
        "NOTBUSY No scripts in execution right now."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_function_that_wrote_is_unkillable_and_eval_kill_words_differ() {
    let server = common::start_with_short_busy_threshold().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["FUNCTION", "LOAD", BUSY_LIB])
        .await
        .unwrap();
    let _runner =
        start_busy_function(&server, &mut con, &["FCALL", "write_then_spin", "1", "k"]).await;
    assert!(err_line(&mut con, &["FUNCTION", "KILL"])
        .await
        .starts_with("UNKILLABLE Sorry the script already executed write commands"));
    // SHUTDOWN NOSAVE is what is left; the embedded server just stops here.
    let _ = cmd(&mut con, &["SHUTDOWN", "NOSAVE"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn function_kill_refuses_a_busy_eval_script() {
    let server = common::start_with_short_busy_threshold().await;
    let mut con = connect(&server).await;
    use tokio::io::AsyncWriteExt;
    let script = "while true do end";
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let req = format!(
        "*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n",
        script.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let busy_eval =
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
    assert_eq!(err_line(&mut con, &["FUNCTION", "KILL"]).await, busy_eval);
    assert_eq!(err_line(&mut con, &["FUNCTION", "STATS"]).await, busy_eval);
    assert_eq!(
        cmd(&mut con, &["SCRIPT", "KILL"]).await.unwrap(),
        Value::Okay
    );
}

#[tokio::test]
async fn fcall_ro_and_no_writes_functions_refuse_writes() {
    let server = latchkey::Server::builder().start().await.unwrap();
    let mut con = connect(&server).await;
    cmd(&mut con, &["FUNCTION", "LOAD", LIB]).await.unwrap();
    cmd(
        &mut con,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=sneaky\nredis.register_function{function_name='sneak', \
             flags={'no-writes'}, callback=function(keys) \
             return redis.call('del', keys[1]) end}",
        ],
    )
    .await
    .unwrap();
    cmd(&mut con, &["SET", "k", "v"]).await.unwrap();
    assert_eq!(
        err_line(&mut con, &["FCALL_RO", "setget", "1", "k", "w"]).await,
        "ERR Can not execute a script with write flag using *_ro command."
    );
    assert_eq!(
        err_line(&mut con, &["FCALL", "sneak", "1", "k"]).await,
        "ERR Write commands are not allowed from read-only scripts. script: sneak, on \
         @user_function:2."
    );
    assert_eq!(
        err_line(&mut con, &["FCALL_RO", "sneak", "1", "k"]).await,
        "ERR Write commands are not allowed from read-only scripts. script: sneak, on \
         @user_function:2."
    );
    assert_eq!(server.get("k").as_deref(), Some(&b"v"[..]));
    assert_eq!(
        cmd(&mut con, &["FCALL_RO", "peek", "1", "k"])
            .await
            .unwrap(),
        Value::BulkString(b"v".to_vec())
    );
}

#[tokio::test]
async fn fcall_inside_multi_runs_with_the_transaction() {
    let server = latchkey::Server::builder().start().await.unwrap();
    let mut con = connect(&server).await;
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB)
        .cmd("FCALL")
        .arg("setget")
        .arg(1)
        .arg("k")
        .arg("in-multi")
        .cmd("FCALL_RO")
        .arg("peek")
        .arg(1)
        .arg("k");
    let got: Vec<Value> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(
        got,
        vec![
            Value::BulkString(b"lib".to_vec()),
            Value::BulkString(b"in-multi".to_vec()),
            Value::BulkString(b"in-multi".to_vec()),
        ]
    );
    // A function that fails inside EXEC fails alone.
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("FCALL")
        .arg("nosuch")
        .arg(0)
        .cmd("SET")
        .arg("after")
        .arg("1");
    let got: redis::RedisResult<Vec<Value>> = pipe.query_async(&mut con).await;
    assert!(got.is_err());
    assert_eq!(server.get("after").as_deref(), Some(&b"1"[..]));
}

#[tokio::test]
async fn a_dump_restores_on_another_server_with_the_same_functions() {
    let a = latchkey::Server::builder().start().await.unwrap();
    let b = latchkey::Server::builder().start().await.unwrap();
    let mut ca = connect(&a).await;
    let mut cb = connect(&b).await;
    cmd(&mut ca, &["FUNCTION", "LOAD", LIB]).await.unwrap();
    cmd(&mut ca, &["FUNCTION", "LOAD", LIB2]).await.unwrap();
    let Value::BulkString(payload) = cmd(&mut ca, &["FUNCTION", "DUMP"]).await.unwrap() else {
        panic!("FUNCTION DUMP is not a bulk string");
    };
    let mut restore = redis::cmd("FUNCTION");
    restore.arg("RESTORE").arg(payload);
    let ok: Value = restore.query_async(&mut cb).await.unwrap();
    assert_eq!(ok, Value::Okay);
    assert_eq!(
        cmd(&mut cb, &["FCALL", "two", "0"]).await.unwrap(),
        Value::Int(2)
    );
    assert_eq!(
        cmd(&mut cb, &["FCALL", "setget", "1", "k", "v"])
            .await
            .unwrap(),
        Value::BulkString(b"v".to_vec())
    );
}

/// Over `maxmemory` (the binary counts its allocations; an embedding cannot):
/// a writing function without `allow-oom` is refused as a `denyoom` command,
/// a `no-writes` one runs, an `allow-oom` one writes. (Replies as
/// redis-server 7.0 gives them with `maxmemory 1`.)
#[test]
fn over_maxmemory_only_allow_oom_and_no_writes_functions_run() {
    let dir = Dir::new("functions-oom");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    let lib = "#!lua name=o\n\
        redis.register_function('w', function(keys) return redis.call('set', keys[1], 'v') end)\n\
        redis.register_function{function_name='ro', flags={'no-writes'}, \
          callback=function(keys) return redis.call('get', keys[1]) end}\n\
        redis.register_function{function_name='oom', flags={'allow-oom'}, \
          callback=function(keys) return redis.call('set', keys[1], 'v') end}";
    run(&mut con, &["FUNCTION", "LOAD", lib]);
    run(&mut con, &["SET", "k", "v"]);
    run(&mut con, &["CONFIG", "SET", "maxmemory", "1"]);
    let e = common::persist::run_err(&mut con, &["FCALL", "w", "1", "a"]);
    assert!(
        e.contains("command not allowed when used memory > 'maxmemory'."),
        "{e}"
    );
    assert_eq!(bulk(&run(&mut con, &["FCALL", "ro", "1", "k"])), "v");
    assert_eq!(run(&mut con, &["FCALL", "oom", "1", "a"]), Value::Okay);
    run(&mut con, &["CONFIG", "SET", "maxmemory", "0"]);
}

/// EVAL scripts with a shebang are held to their flags as functions are: over
/// `maxmemory` a writing one is refused before it runs, a `no-writes` or
/// `allow-oom` one runs; one without a shebang runs and its write is refused
/// inside it. (Replies as redis-server 7.0 gives them with `maxmemory 1`.)
#[test]
fn over_maxmemory_eval_scripts_run_by_their_shebang_flags() {
    let dir = Dir::new("eval-shebang-oom");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    run(&mut con, &["SET", "k", "v"]);
    run(&mut con, &["CONFIG", "SET", "maxmemory", "1"]);
    let set = "return redis.call('set', KEYS[1], 'v')";
    let e = common::persist::run_err(&mut con, &["EVAL", &format!("#!lua\n{set}"), "1", "a"]);
    assert_eq!(
        e,
        "OOM: command not allowed when used memory > 'maxmemory'."
    );
    let get = "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])";
    assert_eq!(bulk(&run(&mut con, &["EVAL", get, "1", "k"])), "v");
    let oom = format!("#!lua flags=allow-oom\n{set}");
    assert_eq!(run(&mut con, &["EVAL", &oom, "1", "a"]), Value::Okay);
    let e = common::persist::run_err(&mut con, &["EVAL", set, "1", "b"]);
    assert!(
        e.starts_with("OOM: command not allowed when used memory > 'maxmemory'. script: "),
        "{e}"
    );
    run(&mut con, &["CONFIG", "SET", "maxmemory", "0"]);
}

/// Each FCALL hands the function tables of its own, as Redis's
/// `luaCreateArray` builds them: a library that keeps the KEYS and ARGV of
/// earlier calls (in a local of its code, which the sandbox allows) finds them
/// as they were, whatever ran since.
#[tokio::test]
async fn a_function_keeps_the_keys_and_args_of_its_earlier_calls() {
    let server = latchkey::Server::builder().start().await.unwrap();
    let mut con = connect(&server).await;
    let lib = "#!lua name=keep\n\
        local seen = {}\n\
        redis.register_function('keep', function(keys, args)\n\
          seen[#seen + 1] = {keys, args}\n\
          keys[1] = 'changed'\n\
          return #seen\n\
        end)\n\
        redis.register_function('seen', function(keys, args)\n\
          local out = {}\n\
          for i, s in ipairs(seen) do\n\
            out[i] = table.concat(s[1], ',') .. '|' .. table.concat(s[2], ',')\n\
          end\n\
          out[#out + 1] = tostring(rawequal(seen[1][1], seen[2][1]))\n\
          return out\n\
        end)";
    cmd(&mut con, &["FUNCTION", "LOAD", lib]).await.unwrap();
    for call in [
        &["FCALL", "keep", "2", "a", "b", "x"][..],
        &["FCALL", "keep", "1", "c", "y", "z"][..],
        &["FCALL", "keep", "0"][..],
    ] {
        cmd(&mut con, call).await.unwrap();
    }
    let got = cmd(&mut con, &["FCALL", "seen", "1", "q", "r"])
        .await
        .unwrap();
    let want: Vec<Value> = ["changed,b|x", "changed|y,z", "changed|", "false"]
        .iter()
        .map(|s| Value::BulkString(s.as_bytes().to_vec()))
        .collect();
    assert_eq!(got, Value::Array(want));
}

/// `redis.call` names the script's line in its error, whether its arguments
/// are all strings or not (numbers take another path), and `redis.pcall`
/// hands back the error table either way.
#[tokio::test]
async fn redis_call_errors_name_the_line_for_string_and_number_arguments() {
    let server = latchkey::Server::builder().start().await.unwrap();
    let mut con = connect(&server).await;
    let lib = "#!lua name=errs\n\
        redis.register_function('words', function(keys)\n\
          return redis.call('incrby', keys[1], 'x')\n\
        end)\n\
        redis.register_function('numbers', function(keys)\n\
          redis.call('set', keys[1], 1)\n\
          return redis.call('incrby', keys[1], 1.5)\n\
        end)\n\
        redis.register_function('caught', function(keys)\n\
          local a = redis.pcall('incrby', keys[1], 'x')\n\
          local b = redis.pcall('incrby', keys[1], 1.5)\n\
          return {a['err'], b['err'], redis.call('get', keys[1]), redis.call('ping')['ok']}\n\
        end)";
    cmd(&mut con, &["FUNCTION", "LOAD", lib]).await.unwrap();
    let not_int = "ERR value is not an integer or out of range";
    assert_eq!(
        err_line(&mut con, &["FCALL", "words", "1", "k"]).await,
        format!("{not_int} script: words, on @user_function:3.")
    );
    assert_eq!(
        err_line(&mut con, &["FCALL", "numbers", "1", "k"]).await,
        format!("{not_int} script: numbers, on @user_function:7.")
    );
    let got = cmd(&mut con, &["FCALL", "caught", "1", "k"]).await.unwrap();
    let want: Vec<Value> = [not_int, not_int, "1", "PONG"]
        .iter()
        .map(|s| Value::BulkString(s.as_bytes().to_vec()))
        .collect();
    assert_eq!(got, Value::Array(want));
}

/// The Lua VMs are built on first use: before any script or library, every
/// command that needs none answers as it did with them built at start-up,
/// and the first EVAL and FUNCTION LOAD then work as usual.
#[tokio::test]
async fn scripting_commands_answer_the_same_before_any_vm_is_built() {
    let server = latchkey::Server::builder().start().await.unwrap();
    let mut con = connect(&server).await;
    assert_eq!(
        err_line(&mut con, &["FCALL", "f", "0"]).await,
        "ERR Function not found"
    );
    assert_eq!(
        err_line(&mut con, &["FCALL_RO", "f", "0"]).await,
        "ERR Function not found"
    );
    assert_eq!(
        err_line(&mut con, &["FUNCTION", "DELETE", "lib"]).await,
        "ERR Library not found"
    );
    assert_eq!(
        err_line(
            &mut con,
            &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"]
        )
        .await,
        "NOSCRIPT No matching script. Please use EVAL."
    );
    assert_eq!(
        err_line(&mut con, &["SCRIPT", "KILL"]).await,
        "NOTBUSY No scripts in execution right now."
    );
    assert_eq!(
        err_line(&mut con, &["FUNCTION", "KILL"]).await,
        "NOTBUSY No scripts in execution right now."
    );
    assert_eq!(
        cmd(&mut con, &["FUNCTION", "LIST"]).await.unwrap(),
        Value::Array(vec![])
    );
    let dump = cmd(&mut con, &["FUNCTION", "DUMP"]).await.unwrap();
    let Value::BulkString(dump) = dump else {
        panic!("FUNCTION DUMP: {dump:?}");
    };
    let mut restore = redis::cmd("FUNCTION");
    restore.arg("RESTORE").arg(dump).arg("FLUSH");
    assert_eq!(
        restore.query_async::<Value>(&mut con).await.unwrap(),
        Value::Okay
    );
    for flush in [["SCRIPT", "FLUSH"], ["FUNCTION", "FLUSH"]] {
        assert_eq!(cmd(&mut con, &flush).await.unwrap(), Value::Okay);
    }
    assert_eq!(
        server.shared().scripts.vms_built(),
        (false, false),
        "none of the above built a VM"
    );
    let startup = |stats: Value| -> i64 {
        let Value::Array(fields) = stats else {
            panic!("MEMORY STATS: {stats:?}")
        };
        let at = fields
            .iter()
            .position(|f| matches!(f, Value::BulkString(b) if b == b"startup.allocated"))
            .unwrap();
        match fields[at + 1] {
            Value::Int(n) => n,
            ref v => panic!("startup.allocated: {v:?}"),
        }
    };
    let before = startup(cmd(&mut con, &["MEMORY", "STATS"]).await.unwrap());
    assert_eq!(
        cmd(&mut con, &["EVAL", "return cjson.encode({1})", "0"])
            .await
            .unwrap(),
        Value::BulkString(b"[1]".to_vec())
    );
    assert_eq!(server.shared().scripts.vms_built(), (true, false));
    // The VM built counts as start-up memory, as Redis's (built at start)
    // does, not as data.
    let built = server.shared().scripts.vms_built_bytes();
    assert!(built > 10_000, "a VM holds its libraries: {built}");
    let after = startup(cmd(&mut con, &["MEMORY", "STATS"]).await.unwrap());
    assert_eq!(after - before, built as i64);
    cmd(&mut con, &["FUNCTION", "LOAD", LIB]).await.unwrap();
    assert_eq!(server.shared().scripts.vms_built(), (true, true));
    assert_eq!(
        cmd(&mut con, &["FCALL", "setget", "1", "k", "v"])
            .await
            .unwrap(),
        Value::BulkString(b"v".to_vec())
    );
}
