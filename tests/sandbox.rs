//! The Lua sandbox and script semantics: one client's script cannot change what
//! another client's scripts see, a SELECT inside a script stays inside it, and
//! error values reach the client as Redis converts them. The exact replies are
//! also recorded from redis-server in `redis-tests/sandbox.txt`.

mod common;

use common::{cmd, connect, err_line, start};
use redis::aio::MultiplexedConnection;
use redis::Value;

const READONLY: &str = "Attempt to modify a readonly table";

async fn eval(con: &mut MultiplexedConnection, script: &str) -> redis::RedisResult<Value> {
    cmd(con, &["EVAL", script, "0"]).await
}

async fn eval_err(con: &mut MultiplexedConnection, script: &str) -> String {
    err_line(con, &["EVAL", script, "0"]).await
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// Client A tries `attack`; it must fail with the read-only error, and client
/// B's `check` must then still give `expected`.
async fn attack_fails_and_b_is_unaffected(attack: &str, check: &str, expected: Value) {
    let server = start().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    let e = eval_err(&mut a, attack).await;
    assert!(e.contains(READONLY), "{attack}: {e}");
    assert_eq!(eval(&mut b, check).await.unwrap(), expected, "{attack}");
}

#[tokio::test]
async fn a_script_cannot_replace_redis_call_for_other_clients() {
    attack_fails_and_b_is_unaffected(
        "redis.call = function() return 'hijacked' end",
        "return redis.call('PING')",
        Value::SimpleString("PONG".into()),
    )
    .await;
}

#[tokio::test]
async fn a_script_cannot_remove_redis_call_for_other_clients() {
    attack_fails_and_b_is_unaffected(
        "redis.call = nil",
        "return redis.call('PING')",
        Value::SimpleString("PONG".into()),
    )
    .await;
}

#[tokio::test]
async fn a_script_cannot_remove_a_string_function_for_other_clients() {
    attack_fails_and_b_is_unaffected("string.rep = nil", "return string.rep('a', 3)", bulk("aaa"))
        .await;
}

#[tokio::test]
async fn a_script_cannot_change_string_methods_through_the_string_metatable() {
    attack_fails_and_b_is_unaffected(
        "getmetatable('').__index.upper = nil",
        "return ('abc'):upper()",
        bulk("ABC"),
    )
    .await;
    attack_fails_and_b_is_unaffected(
        "getmetatable('').__index = nil",
        "return ('abc'):upper()",
        bulk("ABC"),
    )
    .await;
}

#[tokio::test]
async fn a_script_cannot_strip_the_globals_metatable_and_then_add_globals() {
    let server = start().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    let e = eval_err(&mut a, "setmetatable(_G, nil) x = 1 return x").await;
    assert!(e.starts_with(&format!("ERR {READONLY} script: ")), "{e}");
    let e = eval_err(&mut a, "rawset(_G, 'x', 1) return x").await;
    assert!(e.starts_with(&format!("ERR {READONLY} script: ")), "{e}");
    let e = eval_err(&mut b, "return x").await;
    assert!(
        e.contains("Script attempted to access nonexistent global variable 'x'"),
        "{e}"
    );
    let e = eval_err(&mut b, "y = 1").await;
    assert!(e.contains(READONLY), "{e}");
}

#[tokio::test]
async fn rawset_and_table_insert_cannot_write_into_library_tables() {
    attack_fails_and_b_is_unaffected(
        "rawset(redis, 'call', function() return 'hijacked' end)",
        "return redis.call('PING')",
        Value::SimpleString("PONG".into()),
    )
    .await;
    attack_fails_and_b_is_unaffected(
        "rawset(string, 'rep', nil)",
        "return string.rep('a', 2)",
        bulk("aa"),
    )
    .await;
    attack_fails_and_b_is_unaffected("table.insert(string, 'x')", "return #string", Value::Int(0))
        .await;
    attack_fails_and_b_is_unaffected(
        "setmetatable(string, {__index = function() return 'hijacked' end})",
        "return type(string.nosuch)",
        bulk("nil"),
    )
    .await;
}

#[tokio::test]
async fn a_chunk_or_coroutine_started_by_a_script_is_sandboxed_too() {
    attack_fails_and_b_is_unaffected(
        "local f = loadstring('redis = nil') f()",
        "return type(redis)",
        bulk("table"),
    )
    .await;
    attack_fails_and_b_is_unaffected(
        "local c = coroutine.wrap(function() cjson = nil end) c()",
        "return type(cjson)",
        bulk("table"),
    )
    .await;
}

#[tokio::test]
async fn functions_redis_hides_are_not_reachable() {
    let server = start().await;
    let mut con = connect(&server).await;
    for name in [
        "getfenv", "setfenv", "newproxy", "print", "loadfile", "dofile", "require", "module",
        "debug", "io", "os", "package",
    ] {
        let e = eval_err(&mut con, &format!("return type({name})")).await;
        assert!(
            e.contains(&format!(
                "Script attempted to access nonexistent global variable '{name}'"
            )),
            "{name}: {e}"
        );
    }
}

#[tokio::test]
async fn library_tables_can_still_be_read_and_iterated() {
    let server = start().await;
    let mut con = connect(&server).await;
    let n = eval(
        &mut con,
        "local n=0 for k in pairs(string) do n=n+1 end return n",
    )
    .await
    .unwrap();
    assert_eq!(n, Value::Int(15), "as Redis 7.0");
    let v = eval(
        &mut con,
        "return {rawget(string, 'rep') == string.rep and 1 or 0, getmetatable('').__index == string and 1 or 0, type(getmetatable(string))}",
    )
    .await
    .unwrap();
    assert_eq!(
        v,
        Value::Array(vec![Value::Int(1), Value::Int(1), bulk("nil")])
    );
    // The script's own tables, KEYS and ARGV stay writable.
    let v = cmd(
        &mut con,
        &[
            "EVAL",
            "local t = {} rawset(t, 'a', 1) setmetatable(t, nil) table.insert(KEYS, 'k2') ARGV[1] = 'b' return {t.a, KEYS[2], ARGV[1]}",
            "1",
            "k1",
            "a",
        ],
    )
    .await
    .unwrap();
    assert_eq!(v, Value::Array(vec![Value::Int(1), bulk("k2"), bulk("b")]));
}

#[tokio::test]
async fn select_inside_a_script_does_not_change_the_callers_database() {
    let server = start().await;
    let mut con = connect(&server).await;
    for words in [
        &["SELECT", "10"][..],
        &["SET", "mykey", "original"],
        &["SELECT", "9"],
        &["SET", "mykey", "db9"],
        &["SELECT", "10"],
    ] {
        cmd(&mut con, words).await.unwrap();
    }
    eval(&mut con, "return redis.pcall('select','9')")
        .await
        .unwrap();
    let got = cmd(&mut con, &["GET", "mykey"]).await.unwrap();
    assert_eq!(got, bulk("original"));
    // Inside the script, the SELECT holds for the rest of the script.
    let got = eval(
        &mut con,
        "redis.call('select', '9') return redis.call('get', 'mykey')",
    )
    .await
    .unwrap();
    assert_eq!(got, bulk("db9"));
    // And a script starts in the caller's database.
    let got = eval(&mut con, "return redis.call('get', 'mykey')")
        .await
        .unwrap();
    assert_eq!(got, bulk("original"));
}

#[tokio::test]
async fn an_error_table_raised_by_a_script_replies_its_err_field() {
    let server = start().await;
    let mut con = connect(&server).await;
    let e = eval_err(&mut con, "error({err='custom'})").await;
    assert_eq!(
        e,
        format!(
            "custom script: {}, on @user_script:1.",
            latchkey::scripting::sha1_hex(b"error({err='custom'})")
        )
    );
    let e = eval_err(
        &mut con,
        "local function f()\nerror({err='MY deep'})\nend\n\nf()",
    )
    .await;
    assert!(
        e.starts_with("MY deep script: ") && e.ends_with(", on @user_script:2."),
        "{e}"
    );
    // Redis 7.0 crashes on an error table without `err`; latchkey answers.
    let e = eval_err(&mut con, "error({})").await;
    assert!(e.starts_with("ERR execution failure script: "), "{e}");
}

#[tokio::test]
async fn error_reply_and_status_reply_with_bad_arguments_reply_an_error() {
    let server = start().await;
    let mut con = connect(&server).await;
    for script in [
        "return redis.error_reply({})",
        "return redis.error_reply()",
        "return redis.error_reply(5)",
        "return redis.error_reply('a', 'b')",
        "return redis.status_reply({})",
        "return redis.status_reply()",
        "return redis.status_reply(5)",
    ] {
        let e = eval_err(&mut con, script).await;
        assert_eq!(e, "ERR wrong number or type of arguments", "{script}");
    }
    let e = eval_err(&mut con, "return redis.error_reply('x')").await;
    assert_eq!(e, "ERR x", "a bare message gets the ERR code");
}

#[tokio::test]
async fn struct_unpack_c0_with_a_negative_length_is_too_short_not_empty() {
    let server = start().await;
    let mut con = connect(&server).await;
    let e = eval_err(
        &mut con,
        "return struct.unpack('ic0', struct.pack('i',-1)..'abc')",
    )
    .await;
    assert!(
        e.starts_with(
            "ERR user_script:1: bad argument #2 to 'unpack' (data string too short) script: "
        ),
        "{e}"
    );
}

#[tokio::test]
async fn pcall_gives_a_caught_redis_error_as_its_message() {
    let server = start().await;
    let mut con = connect(&server).await;
    let v = eval(
        &mut con,
        "local ok, e = pcall(redis.call, 'nosuch') return {type(e), e}",
    )
    .await
    .unwrap();
    assert_eq!(
        v,
        Value::Array(vec![
            bulk("string"),
            bulk("ERR Unknown Redis command called from script")
        ])
    );
}

#[tokio::test]
async fn keys_and_args_reach_the_script_byte_for_byte() {
    let server = start().await;
    let mut con = connect(&server).await;
    let key: &[u8] = b"\xff\x00k";
    let arg: &[u8] = b"a\xffb\x00";
    let v: Value = redis::cmd("EVAL")
        .arg("return {KEYS[1], ARGV[1], ARGV[2], #KEYS, #ARGV}")
        .arg(1)
        .arg(key)
        .arg(arg)
        .arg("text")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        v,
        Value::Array(vec![
            Value::BulkString(key.to_vec()),
            Value::BulkString(arg.to_vec()),
            bulk("text"),
            Value::Int(1),
            Value::Int(2),
        ])
    );
}

/// pcall of a function that returns many values still has room for its
/// status (a debug build's Lua checks aborted the process here).
#[tokio::test]
async fn pcall_returning_many_values_keeps_its_status() {
    let server = start().await;
    let mut con = connect(&server).await;
    for n in [30, 1000] {
        let script = format!(
            "local t = {{}} for i = 1, {n} do t[i] = i end \
             local r = {{pcall(unpack, t)}} return {{#r, tostring(r[1])}}"
        );
        assert_eq!(
            eval(&mut con, &script).await.unwrap(),
            Value::Array(vec![Value::Int(n + 1), bulk("true")])
        );
    }
}
