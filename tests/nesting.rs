//! Scripts whose results nest deeply or hold bytes that could break the reply
//! stream: the conversion to a reply is bounded as Redis's is, and the server
//! survives, in process (a 2 MiB test thread, debug build) and as the binary.
//!
//! The figures pinned here were measured on redis-server 7.0.15: an array nested
//! 7,995 levels below the script's result is replaced by `-ERR reached lua stack
//! limit` (Lua's 8,000-slot C stack limit, checked before each value), and a script
//! returning 10,000 or 100,000 levels gets the same cut reply.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::binary::{spawn_on_socket, Spawned};

/// The depth at which Redis's conversion gives up (see the module doc).
const REDIS_CUT: usize = 7995;

/// `EVAL <script> 0` as a RESP request.
fn eval(script: &str) -> Vec<u8> {
    let mut req = format!("*3\r\n$4\r\nEVAL\r\n${}\r\n", script.len()).into_bytes();
    req.extend_from_slice(script.as_bytes());
    req.extend_from_slice(b"\r\n$1\r\n0\r\n");
    req
}

fn chain(depth: usize) -> String {
    format!("local t={{}} local c=t for i=1,{depth} do c[1]={{}} c=c[1] end return t")
}

/// The reply Redis gives to [`chain`]`(depth)`.
fn chain_reply(depth: usize) -> Vec<u8> {
    let mut want = b"*1\r\n".repeat(depth.min(REDIS_CUT));
    if depth < REDIS_CUT {
        want.extend_from_slice(b"*0\r\n");
    } else {
        want.extend_from_slice(b"-ERR reached lua stack limit\r\n");
    }
    want
}

/// Sends `req` on a fresh connection and reads exactly `want` bytes back.
async fn exchange(server: &latchkey::ServerHandle, req: &[u8], want: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(server.addr()).await.expect("connects");
    s.write_all(req).await.expect("writes");
    let mut out = vec![0u8; want];
    tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut out))
        .await
        .expect("reply in time")
        .expect("reads");
    out
}

async fn assert_alive(server: &latchkey::ServerHandle) {
    assert_eq!(
        exchange(server, b"*1\r\n$4\r\nPING\r\n", 7).await,
        b"+PONG\r\n"
    );
}

#[tokio::test]
async fn a_script_returning_5000_nested_tables_does_not_abort_the_server() {
    let server = common::start().await;
    let want = chain_reply(5000);
    assert_eq!(
        exchange(&server, &eval(&chain(5000)), want.len()).await,
        want
    );
    assert_alive(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_nested_past_luas_stack_limit_is_cut_where_redis_cuts_it() {
    let server = common::start().await;
    for depth in [REDIS_CUT - 1, REDIS_CUT, 10_000, 100_000] {
        let want = chain_reply(depth);
        let got = exchange(&server, &eval(&chain(depth)), want.len()).await;
        assert!(got == want, "depth {depth}: reply differs from Redis's");
    }
    assert_alive(&server).await;
}

#[tokio::test]
async fn a_deep_map_in_resp3_is_cut_where_redis_cuts_it_and_the_connection_goes_on() {
    let server = common::start().await;
    let mut s = TcpStream::connect(server.addr()).await.expect("connects");
    // A map whose value nests another map: 3 stack slots a level in Redis's
    // conversion (4 for a key), so at level 2,665 both the key and the value are
    // past the limit.
    let script = "local t={} local c=t for i=1,5000 do local n={} c.map={k=n} c=n end return t";
    let mut want = b"%1\r\n$1\r\nk\r\n".repeat(2664);
    want.extend_from_slice(b"%1\r\n");
    want.extend_from_slice(&b"-ERR reached lua stack limit\r\n".repeat(2));
    want.extend_from_slice(b"+PONG\r\n");
    let mut req = b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n".to_vec();
    req.extend_from_slice(&eval(script));
    req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    s.write_all(&req).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while !got.ends_with(b"+PONG\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("reads in time")
            .unwrap();
        assert!(n > 0, "the server closed the connection");
        got.extend_from_slice(&buf[..n]);
    }
    // HELLO's own reply comes first.
    assert!(got.ends_with(&want), "map chain differs from Redis's");
}

#[tokio::test]
async fn status_and_error_tables_cannot_split_the_reply_stream() {
    let server = common::start().await;
    // Redis cuts the text at a NUL, trims CR and LF off an error's end and makes
    // the others spaces; the PING after each still gets its own reply.
    let cases: [(&str, &[u8]); 5] = [
        ("return {ok='a\\r\\n+b'}", b"+a  +b\r\n"),
        ("return {err='x\\r\\n:1'}", b"-x  :1\r\n"),
        ("return {err='x\\r\\n'}", b"-x\r\n"),
        ("return {ok='a\\0b'}", b"+a\r\n"),
        ("return {big_number='1\\r\\n2'}", b"$4\r\n1  2\r\n"),
    ];
    for (script, want) in cases {
        let mut req = eval(script);
        req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let got = exchange(&server, &req, want.len() + 7).await;
        assert_eq!(got, [want, b"+PONG\r\n"].concat(), "{script}");
    }
}

#[tokio::test]
async fn script_numbers_out_of_integer_range_convert_as_redis_on_x86_64() {
    let server = common::start().await;
    let mut con = common::connect(&server).await;
    for script in ["return 0/0", "return 1/0", "return -1e300", "return 2^63"] {
        let v = common::cmd(&mut con, &["EVAL", script, "0"]).await.unwrap();
        assert_eq!(v, redis::Value::Int(i64::MIN), "{script}");
    }
    let v = common::cmd(&mut con, &["EVAL", "return -2^63", "0"])
        .await
        .unwrap();
    assert_eq!(v, redis::Value::Int(i64::MIN));
    let v = common::cmd(&mut con, &["EVAL", "return -3.9", "0"])
        .await
        .unwrap();
    assert_eq!(v, redis::Value::Int(-3));
}

// --- the binary -------------------------------------------------------------

fn spawn(name: &str) -> Spawned {
    spawn_on_socket(&format!("nesting-{name}"), &[])
}

fn unix_exchange(sock: &std::path::Path, req: &[u8], want: usize) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(req).unwrap();
    let mut out = vec![0u8; want];
    s.read_exact(&mut out).expect("the whole reply");
    out
}

#[test]
fn the_binary_survives_scripts_returning_5000_to_100000_nested_tables() {
    let mut server = spawn("deep");
    for depth in [5000, 10_000, 100_000] {
        let want = chain_reply(depth);
        let got = unix_exchange(&server.1, &eval(&chain(depth)), want.len());
        assert!(got == want, "depth {depth}: reply differs from Redis's");
    }
    assert_eq!(
        unix_exchange(&server.1, b"*1\r\n$4\r\nPING\r\n", 7),
        b"+PONG\r\n"
    );
    assert!(server.0.try_wait().unwrap().is_none(), "the server exited");
}

// --- found by the script fuzz target ------------------------------------------

#[tokio::test]
async fn caching_9000_scripts_does_not_exhaust_the_vms_reference_slots() {
    // Each cached script held one of the VM's 8,000 reference slots: the 7,997th
    // distinct script panicked the connection, and every new script after it.
    let server = common::start().await;
    let mut con = common::connect(&server).await;
    let mut pipe = redis::pipe();
    for i in 0..9000 {
        pipe.cmd("SCRIPT").arg("LOAD").arg(format!("return {i}"));
    }
    let shas: Vec<String> = pipe.query_async(&mut con).await.expect("all load");
    for (i, sha) in [(0, &shas[0]), (8999, &shas[8999])] {
        let v = common::cmd(&mut con, &["EVALSHA", sha, "0"]).await.unwrap();
        assert_eq!(v, redis::Value::Int(i));
    }
    let v = common::cmd(&mut con, &["EVAL", "return 'new'", "0"])
        .await
        .unwrap();
    assert_eq!(v, redis::Value::BulkString(b"new".to_vec()));
    common::cmd(&mut con, &["SCRIPT", "FLUSH"]).await.unwrap();
    let v = common::cmd(&mut con, &["EVAL", "return 2", "0"])
        .await
        .unwrap();
    assert_eq!(v, redis::Value::Int(2));
}

// --- Lua's own C recursion and its bytecode loader -----------------------------

/// A blocking connection to a spawned binary.
fn sync_con(server: &Spawned) -> redis::Connection {
    let url = format!("unix://{}", server.1.display());
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connects")
}

#[test]
fn a_long_optional_pattern_no_longer_aborts_the_server() {
    // Lua 5.1's matcher recursed once per `a?` on the worker's 2 MiB stack:
    // 60,000 of them aborted the whole process, where Redis survives 150,000.
    let server = spawn("pattern");
    let mut con = sync_con(&server);
    for n in [60_000, 150_000] {
        let script =
            format!("local n={n} return {{string.find(string.rep('a',n), string.rep('a?',n))}}");
        let got: Vec<i64> = redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .query(&mut con)
            .unwrap();
        assert_eq!(got, vec![1, n]);
        let script =
            format!("local n={n} return #string.gmatch(string.rep('a',n), string.rep('a?',n))()");
        let got: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .query(&mut con)
            .unwrap();
        assert_eq!(got, n);
    }
    // Longer than Redis itself survives: refused, not run.
    let err = redis::cmd("EVAL")
        .arg("return string.gsub('a', string.rep('a?', 500000), '')")
        .arg(0)
        .query::<redis::Value>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("user_script:1: pattern too complex"),
        "{err}"
    );
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn a_script_can_no_longer_load_bytecode_that_corrupts_memory() {
    // loadstring(string.dump(f)) ran bytecode, and a few flipped bytes in it
    // aborted the server within three requests. Redis parses it as text.
    let server = spawn("bytecode");
    let mut con = sync_con(&server);
    let dump: Vec<u8> = redis::cmd("EVAL")
        .arg("return string.dump(function(a, b) return a + b end)")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(dump[0], 0x1b, "a Lua dump starts with ESC");
    let mut rng = 7u64;
    for _ in 0..50 {
        let mut payload = dump.clone();
        for _ in 0..3 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = 1 + (rng >> 33) as usize % (payload.len() - 1);
            payload[at] ^= (rng >> 13) as u8 | 1;
        }
        let got: Vec<Vec<u8>> = redis::cmd("EVAL")
            .arg("local f, e = loadstring(ARGV[1]) return {tostring(f), e}")
            .arg(0)
            .arg(&payload)
            .query(&mut con)
            .unwrap();
        assert_eq!(got[0], b"nil".to_vec());
        assert!(
            got[1].ends_with(b":1: unexpected symbol near 'char(27)'"),
            "{got:?}"
        );
    }
    let err = redis::cmd("EVAL")
        .arg(&dump)
        .arg(0)
        .query::<redis::Value>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("unexpected symbol near 'char(27)'"),
        "{err}"
    );
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}
