//! DUMP / RESTORE and RDB files beyond `redis-tests/dump_restore.txt`: round
//! trips of every type and encoding (big values, TTLs), a lock refused, WATCH
//! seeing RESTORE, hostile payloads, and interop with a real redis-server 7.0
//! both ways (its `dump.rdb` loads into latchkey; a file latchkey writes loads
//! into redis-server with the same DEBUG DIGEST, and redis-check-rdb accepts
//! it; streams carry their groups, PEL and consumers across, compared with
//! XINFO STREAM FULL). redis-server runs with `sanitize-dump-payload yes`, so
//! it deep-checks every payload latchkey gives it. The interop tests are
//! skipped, with a message, when redis-server is not installed.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{connect, err_line, start};
use latchkey::rdb::{self, encoding::CRC64, file};
use latchkey::types::Encodings;
use redis::aio::MultiplexedConnection;
use redis::Value;

async fn q(con: &mut MultiplexedConnection, args: &[&[u8]]) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(con).await
}

async fn ok(con: &mut MultiplexedConnection, args: &[&[u8]]) -> Value {
    q(con, args)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(args[0])))
}

fn bulk(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

/// Commands that fill keys of every type and encoding (default thresholds).
fn every_type() -> Vec<Vec<Vec<u8>>> {
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut c = |words: Vec<Vec<u8>>| cmds.push(words);
    let w = |s: &str| s.as_bytes().to_vec();
    let mut rng = fastrand::Rng::with_seed(14);
    let random: Vec<u8> = (0..5000).map(|_| rng.u8(..)).collect();
    c(vec![w("SET"), w("str:int"), w("-123456")]);
    c(vec![w("SET"), w("str:i64"), w("9223372036854775807")]);
    c(vec![w("SET"), w("str:short"), w("hello")]);
    c(vec![
        w("SET"),
        w("str:lzf"),
        "abc".repeat(2000).into_bytes(),
    ]);
    c(vec![w("SET"), w("str:random"), random]);
    c(vec![w("SET"), w("str:empty"), w("")]);
    c(vec![
        w("SET"),
        w("str:ttl"),
        w("v"),
        w("PX"),
        w("100000000"),
    ]);
    let mut push = |key: &str, items: Vec<Vec<u8>>| {
        let mut v = vec![w("RPUSH"), w(key)];
        v.extend(items);
        c(v);
    };
    push("list:small", vec![w("a"), w("1"), w("-70000"), w("x")]);
    push(
        "list:big",
        (0..2000)
            .map(|i| format!("item-{i}").into_bytes())
            .collect(),
    );
    push(
        "list:plain",
        vec![vec![b'p'; 10_000], w("small"), vec![b'q'; 20_000]],
    );
    let members = |prefix: &str, n: usize| {
        (0..n)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .collect::<Vec<_>>()
    };
    let mut sadd = |key: &str, items: Vec<Vec<u8>>| {
        let mut v = vec![w("SADD"), w(key)];
        v.extend(items);
        c(v);
    };
    sadd("set:int16", members("", 10));
    sadd("set:int64", vec![w("5000000000"), w("-5000000000"), w("7")]);
    sadd("set:strings", vec![w("a"), w("b"), w("c")]);
    sadd("set:big", members("m", 1000));
    sadd("set:manyints", members("", 1000));
    let mut hset = |key: &str, n: usize, long: bool| {
        let mut v = vec![w("HSET"), w(key)];
        for i in 0..n {
            v.push(format!("f{i}").into_bytes());
            v.push(if long {
                vec![b'v'; 100]
            } else {
                format!("{i}").into_bytes()
            });
        }
        c(v);
    };
    hset("hash:small", 5, false);
    hset("hash:long", 3, true);
    hset("hash:big", 1000, false);
    let mut zadd = |key: &str, n: usize| {
        let mut v = vec![w("ZADD"), w(key)];
        for i in 0..n {
            v.push(format!("{}", i as f64 * 1.25 - 100.0).into_bytes());
            v.push(format!("z{i}").into_bytes());
        }
        v.extend([
            w("inf"),
            w("top"),
            w("-inf"),
            w("bottom"),
            w("0.1"),
            w("tenth"),
        ]);
        c(v);
    };
    zadd("zset:small", 5);
    zadd("zset:big", 1000);
    c(vec![w("EXPIRE"), w("zset:big"), w("100000")]);
    for line in STREAM_SMALL {
        c(line.split(' ').map(w).collect());
    }
    c(vec![
        w("XADD"),
        w("stream:small"),
        w("4-0"),
        w("a"),
        w("x"),
        w("b"),
        vec![b'y'; 5000],
    ]);
    // Ten nodes, an exact trim that leaves deleted entries in the first.
    for i in 1..=1000 {
        c(vec![
            w("XADD"),
            w("stream:big"),
            format!("{i}-0").into_bytes(),
            w("f"),
            format!("value-{i}").into_bytes(),
        ]);
    }
    for line in [
        "XTRIM stream:big MAXLEN 950",
        "XGROUP CREATE stream:big g 500-0",
        "XREADGROUP GROUP g c COUNT 3 STREAMS stream:big >",
        "XGROUP CREATE stream:empty g $ MKSTREAM",
        "XADD stream:empty 5-0 f v",
        "XDEL stream:empty 5-0",
        "XGROUP CREATECONSUMER stream:empty g idle",
        "XADD stream:ttl 1-0 f v",
        "PEXPIRE stream:ttl 100000000",
    ] {
        c(line.split(' ').map(w).collect());
    }
    cmds
}

/// A stream with entries of several shapes, one deleted, and groups with
/// pending entries, a consumer with none and a group at its end.
const STREAM_SMALL: &[&str] = &[
    "XADD stream:small 1-1 a 1 b 2",
    "XADD stream:small 1-2 a 3 b 4",
    "XADD stream:small 2-0 c hello",
    "XADD stream:small 3-5 a -7 b 99999999999",
    "XDEL stream:small 1-2",
    "XGROUP CREATE stream:small g1 0",
    "XGROUP CREATE stream:small g2 $",
    "XREADGROUP GROUP g1 alice COUNT 2 STREAMS stream:small >",
    "XREADGROUP GROUP g1 bob COUNT 1 STREAMS stream:small >",
    "XGROUP CREATECONSUMER stream:small g1 carol",
    "XACK stream:small g1 1-1",
];

const KEYS: &[&str] = &[
    "str:int",
    "str:i64",
    "str:short",
    "str:lzf",
    "str:random",
    "str:empty",
    "str:ttl",
    "list:small",
    "list:big",
    "list:plain",
    "set:int16",
    "set:int64",
    "set:strings",
    "set:big",
    "set:manyints",
    "hash:small",
    "hash:long",
    "hash:big",
    "zset:small",
    "zset:big",
    "stream:small",
    "stream:big",
    "stream:empty",
    "stream:ttl",
];

/// A key's content in an order-free form, its encoding and whether it has a TTL.
async fn content(con: &mut MultiplexedConnection, key: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>, bool) {
    let t = bulk_or_status(ok(con, &[b"TYPE", key]).await);
    let mut items: Vec<Vec<u8>> = match t.as_slice() {
        b"string" => vec![bulk(ok(con, &[b"GET", key]).await)],
        b"list" => flat(ok(con, &[b"LRANGE", key, b"0", b"-1"]).await),
        b"set" => sorted(flat(ok(con, &[b"SMEMBERS", key]).await)),
        b"hash" => sorted(
            flat(ok(con, &[b"HGETALL", key]).await)
                .chunks(2)
                .map(|p| [p[0].clone(), b"=".to_vec(), p[1].clone()].concat())
                .collect(),
        ),
        b"zset" => flat(ok(con, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]).await),
        // XINFO STREAM FULL has the entries, the bookkeeping, the groups with
        // their PEL and consumers; its times are the servers' own clocks.
        b"stream" => mask_times(xinfo_full(con, key).await),
        other => panic!("unexpected type {other:?}"),
    };
    items.insert(0, t);
    let enc = bulk(ok(con, &[b"OBJECT", b"ENCODING", key]).await);
    let ttl = matches!(ok(con, &[b"PTTL", key]).await, Value::Int(n) if n > 0);
    (items, enc, ttl)
}

/// PEXPIRETIME of `key` as text, "0" when it has none.
async fn expire_time(con: &mut MultiplexedConnection, key: &[u8]) -> Vec<u8> {
    match ok(con, &[b"PEXPIRETIME", key]).await {
        Value::Int(n) if n > 0 => n.to_string().into_bytes(),
        _ => b"0".to_vec(),
    }
}

fn bulk_or_status(v: Value) -> Vec<u8> {
    match v {
        Value::SimpleString(s) => s.into_bytes(),
        Value::Okay => b"OK".to_vec(),
        other => bulk(other),
    }
}

fn flat(v: Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(a) => a.into_iter().map(bulk_or_status).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// Every leaf of a reply, in order (integers in decimal, nil as `(nil)`).
fn leaves(v: Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::Array(a) => a.into_iter().for_each(|x| leaves(x, out)),
        Value::Int(n) => out.push(n.to_string().into_bytes()),
        Value::Nil => out.push(b"(nil)".to_vec()),
        other => out.push(bulk_or_status(other)),
    }
}

/// XINFO STREAM key FULL flattened, without latchkey's `active-time` (a
/// Redis 7.2 field that 7.0's reply and RDB format do not have).
async fn xinfo_full(con: &mut MultiplexedConnection, key: &[u8]) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    leaves(
        ok(con, &[b"XINFO", b"STREAM", key, b"FULL"]).await,
        &mut all,
    );
    let mut out = Vec::new();
    let mut it = all.into_iter();
    while let Some(x) = it.next() {
        if x == b"active-time" {
            it.next();
            continue;
        }
        out.push(x);
    }
    out
}

/// Unix-ms times (seen, delivered) as `T`: two servers filled apart differ there.
fn mask_times(v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.into_iter()
        .map(|x| {
            match std::str::from_utf8(&x)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(n) if n > 1_000_000_000_000 => b"T".to_vec(),
                _ => x,
            }
        })
        .collect()
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

async fn fill(con: &mut MultiplexedConnection) {
    for c in every_type() {
        let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        ok(con, &args).await;
    }
}

#[tokio::test]
async fn every_type_round_trips_through_dump_and_restore() {
    let server = start().await;
    let mut con = connect(&server).await;
    fill(&mut con).await;
    for key in KEYS {
        let key = key.as_bytes();
        let payload = bulk(ok(&mut con, &[b"DUMP", key]).await);
        let pttl = match ok(&mut con, &[b"PTTL", key]).await {
            Value::Int(n) if n > 0 => n.to_string(),
            _ => "0".into(),
        };
        let copy = [b"copy:", key].concat();
        ok(&mut con, &[b"RESTORE", &copy, pttl.as_bytes(), &payload]).await;
        let (items, enc, ttl) = content(&mut con, key).await;
        assert_eq!(
            (items, enc.clone(), ttl),
            content(&mut con, &copy).await,
            "{}",
            String::from_utf8_lossy(key)
        );
        // Deterministic encodings (not a hashtable's order) give the same
        // payload again.
        let again = bulk(ok(&mut con, &[b"DUMP", &copy]).await);
        if enc != b"hashtable" {
            assert_eq!(payload, again, "{}", String::from_utf8_lossy(key));
        }
    }
}

#[tokio::test]
async fn dump_of_a_lock_is_refused() {
    let server = start().await;
    let mut con = connect(&server).await;
    ok(&mut con, &[b"LOCK.ACQUIRE", b"L", b"me", b"100000"]).await;
    assert_eq!(
        err_line(&mut con, &["DUMP", "L"]).await,
        "ERR not supported for this module key"
    );
}

#[tokio::test]
async fn restore_is_a_write_that_watch_sees() {
    let server = start().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    ok(&mut a, &[b"SET", b"src", b"v"]).await;
    let payload = bulk(ok(&mut a, &[b"DUMP", b"src"]).await);
    ok(&mut a, &[b"WATCH", b"k"]).await;
    ok(&mut a, &[b"MULTI"]).await;
    ok(&mut a, &[b"SET", b"k", b"mine"]).await;
    ok(&mut b, &[b"RESTORE", b"k", b"0", &payload]).await;
    assert_eq!(ok(&mut a, &[b"EXEC"]).await, Value::Nil);
    assert_eq!(bulk(ok(&mut a, &[b"GET", b"k"]).await), b"v");
}

/// Payloads of every type, from latchkey's own DUMP.
async fn sample_payloads() -> Vec<Vec<u8>> {
    let server = start().await;
    let mut con = connect(&server).await;
    fill(&mut con).await;
    let mut out = Vec::new();
    for key in KEYS {
        out.push(bulk(ok(&mut con, &[b"DUMP", key.as_bytes()]).await));
    }
    out
}

fn reseal(body: &[u8]) -> Vec<u8> {
    let mut p = body.to_vec();
    let crc = CRC64.checksum(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

#[tokio::test]
async fn hostile_payloads_are_errors_never_panics() {
    let enc = Encodings::default();
    let mut rng = fastrand::Rng::with_seed(99);
    for payload in sample_payloads().await {
        assert!(rdb::undump(&payload, &enc).is_ok());
        let body = &payload[..payload.len() - 8];
        // Every truncation of the value (CRC made right) is refused.
        let value_len = body.len() - 2;
        for cut in (0..value_len).step_by((value_len / 64).max(1)) {
            let mut b = body[..cut].to_vec();
            b.extend_from_slice(&body[value_len..]);
            assert!(rdb::undump(&reseal(&b), &enc).is_err(), "cut at {cut}");
        }
        // Random corruption with a right CRC: an error or a value, no panic.
        for _ in 0..300 {
            let mut b = body.to_vec();
            for _ in 0..rng.usize(1..4) {
                let i = rng.usize(..value_len.max(1));
                b[i] = rng.u8(..);
            }
            let _ = rdb::undump(&reseal(&b), &enc);
        }
        // A wrong CRC is refused.
        let mut bad = payload.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            rdb::undump(&bad, &enc).unwrap_err(),
            rdb::PayloadError::VersionOrChecksum
        );
    }
    // Huge lengths are refused before anything is allocated.
    for body in [
        &b"\x00\x81\xff\xff\xff\xff\xff\xff\xff\xff"[..],
        b"\x02\x81\x00\x00\x00\xff\xff\xff\xff\xff",
        b"\x12\x80\xff\xff\xff\xff",
        b"\x00\xc3\x01\x80\xff\xff\xff\xff\x00",
    ] {
        let mut b = body.to_vec();
        b.extend_from_slice(&10u16.to_le_bytes());
        assert!(matches!(
            rdb::undump(&reseal(&b), &enc),
            Err(rdb::PayloadError::BadData(_))
        ));
    }
}

// ---- interop with redis-server --------------------------------------------------

fn have(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A redis-server of our own on a free port in `dir`, stopped on drop.
struct Redis {
    child: std::process::Child,
    port: u16,
}

impl Redis {
    async fn start(dir: &Path, dbfilename: &str) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            // Deep checks of every payload latchkey hands it, as of a file.
            .args(["--sanitize-dump-payload", "yes"])
            .args(["--enable-debug-command", "yes", "--dir"])
            .arg(dir)
            .args(["--dbfilename", dbfilename])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let r = Redis { child, port };
        for _ in 0..100 {
            if let Ok(mut con) = r.connect().await {
                if q(&mut con, &[b"PING"]).await.is_ok() {
                    return r;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start");
    }

    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?
            .get_multiplexed_async_connection()
            .await
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("latchkey-rdb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn payloads_move_between_redis_server_and_latchkey_both_ways() {
    if !have("redis-server") {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let dir = temp_dir("payloads");
    let redis = Redis::start(&dir, "dump.rdb").await;
    let mut r = redis.connect().await.unwrap();
    let server = start().await;
    let mut l = connect(&server).await;
    fill(&mut r).await;
    fill(&mut l).await;
    for key in KEYS {
        let key = key.as_bytes();
        let theirs = bulk(ok(&mut r, &[b"DUMP", key]).await);
        let ours = bulk(ok(&mut l, &[b"DUMP", key]).await);
        let copy = [b"copy:", key].concat();
        // The copy expires when the original does (DEBUG DIGEST-VALUE counts it).
        let at = expire_time(&mut r, key).await;
        ok(&mut l, &[b"RESTORE", &copy, &at, &theirs, b"ABSTTL"]).await;
        ok(&mut r, &[b"RESTORE", &copy, &at, &ours, b"ABSTTL"]).await;
        let (mut a, _, _) = content(&mut l, &copy).await;
        let (mut b, _, _) = content(&mut r, &copy).await;
        let (want, _, _) = content(&mut r, key).await;
        a.truncate(want.len());
        b.truncate(want.len());
        assert_eq!(a, want, "redis → latchkey {}", String::from_utf8_lossy(key));
        assert_eq!(b, want, "latchkey → redis {}", String::from_utf8_lossy(key));
        // The same DEBUG DIGEST-VALUE as the original in redis-server.
        let d = flat(ok(&mut r, &[b"DEBUG", b"DIGEST-VALUE", key, &copy]).await);
        assert_eq!(d[0], d[1], "{}", String::from_utf8_lossy(key));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn rdb_files_move_between_redis_server_and_latchkey_both_ways() {
    if !have("redis-server") {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let dir = temp_dir("files");
    let redis = Redis::start(&dir, "dump.rdb").await;
    let mut r = redis.connect().await.unwrap();
    fill(&mut r).await;
    ok(&mut r, &[b"SELECT", b"3"]).await;
    ok(&mut r, &[b"SET", b"in-db-3", b"x", b"EX", b"100000"]).await;
    ok(&mut r, &[b"RPUSH", b"list-in-3", b"a", b"b"]).await;
    ok(&mut r, &[b"SAVE"]).await;
    let digest = bulk_or_status(ok(&mut r, &[b"DEBUG", b"DIGEST"]).await);
    let bytes = std::fs::read(dir.join("dump.rdb")).unwrap();

    // redis-server's file loads into latchkey with every key, type and TTL.
    let enc = Encodings::default();
    let mut loaded: BTreeMap<(u64, Vec<u8>), (latchkey::keyspace::Value, Option<u64>)> =
        BTreeMap::new();
    let mut aux = Vec::new();
    file::load(&bytes, &enc, &mut |item| {
        match item {
            file::Loaded::Entry {
                db,
                key,
                value,
                expire_at_ms,
            } => {
                loaded.insert((db, key), (value, expire_at_ms));
            }
            file::Loaded::Aux { key, .. } => aux.push(key),
            file::Loaded::Db { .. } | file::Loaded::Function { .. } => {}
        }
        Ok(())
    })
    .unwrap();
    assert!(aux.contains(&b"redis-ver".to_vec()));
    assert_eq!(loaded.len(), KEYS.len() + 2);
    for key in KEYS {
        let (value, expire) = &loaded[&(0, key.as_bytes().to_vec())];
        ok(&mut r, &[b"SELECT", b"0"]).await;
        let pexpiretime = ok(&mut r, &[b"PEXPIRETIME", key.as_bytes()]).await;
        match pexpiretime {
            Value::Int(n) if n > 0 => assert_eq!(*expire, Some(n as u64), "{key}"),
            _ => assert_eq!(*expire, None, "{key}"),
        }
        // Its value, dumped by latchkey and restored into redis-server, has
        // the original's digest.
        let payload = rdb::dump(value, true).unwrap();
        let copy = format!("copy:{key}");
        let at = expire.map_or("0".to_string(), |t| t.to_string());
        ok(
            &mut r,
            &[
                b"RESTORE",
                copy.as_bytes(),
                at.as_bytes(),
                &payload,
                b"ABSTTL",
            ],
        )
        .await;
        let d = flat(
            ok(
                &mut r,
                &[b"DEBUG", b"DIGEST-VALUE", key.as_bytes(), copy.as_bytes()],
            )
            .await,
        );
        assert_eq!(d[0], d[1], "{key}");
        ok(&mut r, &[b"DEL", copy.as_bytes()]).await;
    }
    assert!(loaded[&(3, b"in-db-3".to_vec())].1.is_some());

    // latchkey writes the same data back; redis-server loads it with the
    // same DEBUG DIGEST, and redis-check-rdb accepts it.
    let out_path = dir.join("latchkey.rdb");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut w =
        file::Writer::new(std::io::BufWriter::new(out), file::WriteOptions::default()).unwrap();
    for db in [0u64, 3] {
        let keys: Vec<_> = loaded.iter().filter(|((d, _), _)| *d == db).collect();
        let expires = keys.iter().filter(|(_, (_, e))| e.is_some()).count() as u64;
        w.select_db(db as usize, keys.len() as u64, expires)
            .unwrap();
        for ((_, key), (value, expire)) in keys {
            w.entry(key, value, *expire).unwrap();
        }
        // A lock, which redis-server must skip (the digest stays the same).
        let holder = latchkey::types::lock::Holder {
            owner: latchkey::types::CompactBytes::from_slice(b"owner"),
            token: 99,
            expires_at: 4_000_000_000_000,
            session: None,
            shared: false,
            delay_ms: 0,
        };
        let lock =
            latchkey::keyspace::Value::Lock(latchkey::types::lock::Lock::restored(None, [holder]));
        w.entry(b"a-lock", &lock, None).unwrap();
    }
    w.finish().unwrap();
    let written = std::fs::read(&out_path).unwrap();
    let mut locks = 0;
    file::load(&written, &enc, &mut |item| {
        if let file::Loaded::Entry {
            value: latchkey::keyspace::Value::Lock(lock),
            ..
        } = item
        {
            assert_eq!(lock.info().holders[0].token, 99);
            locks += 1;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(locks, 2);
    if have("redis-check-rdb") {
        let check = Command::new("redis-check-rdb")
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "redis-check-rdb: {}",
            String::from_utf8_lossy(&check.stdout)
        );
    } else {
        eprintln!("SKIPPED: redis-check-rdb is not installed");
    }
    drop(r);
    drop(redis);
    let second = Redis::start(&dir, "latchkey.rdb").await;
    let mut r2 = second.connect().await.unwrap();
    assert_eq!(
        bulk_or_status(ok(&mut r2, &[b"DEBUG", b"DIGEST"]).await),
        digest
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn restore_raises_restore_and_a_past_ttl_under_replace_raises_del() {
    use tokio::io::AsyncWriteExt;
    let server = start().await;
    let frame = |words: &[&[u8]]| {
        let mut out = format!("*{}\r\n", words.len()).into_bytes();
        for w in words {
            out.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
            out.extend_from_slice(w);
            out.extend_from_slice(b"\r\n");
        }
        out
    };
    let bulk_s = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    let event = |ev: &str, key: &str| {
        let pm = |chan: String, msg: &str| {
            format!(
                "*4\r\n{}{}{}{}",
                bulk_s("pmessage"),
                bulk_s("__key*"),
                bulk_s(&chan),
                bulk_s(msg)
            )
        };
        pm(format!("__keyspace@0__:{key}"), ev) + &pm(format!("__keyevent@0__:{ev}"), key)
    };
    let mut sub = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    sub.write_all(&frame(&[b"PSUBSCRIBE", b"__key*"]))
        .await
        .unwrap();
    common::expect_reply(
        &mut sub,
        &format!("*3\r\n{}{}:1\r\n", bulk_s("psubscribe"), bulk_s("__key*")),
    )
    .await;
    let mut con = connect(&server).await;
    ok(&mut con, &[b"SET", b"src", b"v"]).await;
    let payload = bulk(ok(&mut con, &[b"DUMP", b"src"]).await);
    ok(
        &mut con,
        &[b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA"],
    )
    .await;
    ok(&mut con, &[b"RESTORE", b"k", b"0", &payload]).await;
    ok(
        &mut con,
        &[b"RESTORE", b"k", b"100000", &payload, b"REPLACE"],
    )
    .await;
    ok(
        &mut con,
        &[b"RESTORE", b"k", b"1", &payload, b"REPLACE", b"ABSTTL"],
    )
    .await;
    let want = event("restore", "k") + &event("restore", "k") + &event("del", "k");
    common::expect_reply(&mut sub, &want).await;
}

/// A stream with groups, pending entries and consumers crosses both ways
/// with every field of XINFO STREAM FULL, times included, as it was.
#[tokio::test]
async fn a_stream_crosses_to_redis_server_and_back_with_its_groups_intact() {
    if !have("redis-server") {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let dir = temp_dir("stream");
    let redis = Redis::start(&dir, "dump.rdb").await;
    let mut r = redis.connect().await.unwrap();
    let server = start().await;
    let mut l = connect(&server).await;
    let key = b"stream:small";
    for con in [&mut l, &mut r] {
        for line in STREAM_SMALL {
            let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            ok(con, &words).await;
        }
        // Delivered twice, now carol's.
        ok(con, &[b"XCLAIM", key, b"g1", b"carol", b"0", b"2-0"]).await;
    }
    for (mut from, mut to, way) in [
        (l.clone(), r.clone(), "latchkey → redis"),
        (r.clone(), l.clone(), "redis → latchkey"),
    ] {
        let (from, to) = (&mut from, &mut to);
        let payload = bulk(ok(from, &[b"DUMP", key]).await);
        ok(to, &[b"RESTORE", b"copy", b"0", &payload, b"REPLACE"]).await;
        let want = xinfo_full(from, key).await;
        assert!(want.iter().any(|x| x == b"carol"), "{way}");
        assert_eq!(xinfo_full(to, b"copy").await, want, "{way}");
        let mut a = Vec::new();
        let mut b = Vec::new();
        leaves(ok(from, &[b"XPENDING", key, b"g1"]).await, &mut a);
        leaves(ok(to, &[b"XPENDING", b"copy", b"g1"]).await, &mut b);
        assert_eq!(a, b, "{way}");
        // carol's history is the entry claimed.
        let mut a = Vec::new();
        leaves(
            ok(
                to,
                &[
                    b"XREADGROUP",
                    b"GROUP",
                    b"g1",
                    b"carol",
                    b"STREAMS",
                    b"copy",
                    b"0",
                ],
            )
            .await,
            &mut a,
        );
        assert_eq!(a, [&b"copy"[..], b"2-0", b"c", b"hello"], "{way}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
