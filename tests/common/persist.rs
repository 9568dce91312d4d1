//! A latchkey binary with a data directory, as an operator runs it, and a
//! redis-server beside it: what the persistence tests (RDB and AOF) share.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::{Connection, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// A directory of its own per test, removed at the end.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        let path =
            std::env::temp_dir().join(format!("latchkey-persist-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running binary on a Unix socket in the test's directory; SIGKILLed
/// when dropped.
pub struct Server {
    pub child: Child,
    pub sock: PathBuf,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `--dir dir` and `flags`: the server once ready,
/// or everything it printed if it exited first.
pub fn try_start(dir: &Dir, flags: &[&str]) -> Result<Server, String> {
    try_start_in(dir, &dir.0, flags)
}

/// As [`try_start`], with the socket in `dir` and `--dir data`.
pub fn try_start_in(dir: &Dir, data: &Path, flags: &[&str]) -> Result<Server, String> {
    let sock = dir.file("s.sock");
    let _ = std::fs::remove_file(&sock);
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .arg("--dir")
        .arg(data)
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let err_log = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            err_log.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let out_log = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Ready to accept connections") {
                let _ = tx.send(());
            }
            out_log.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if rx.recv_timeout(Duration::from_millis(20)).is_ok() {
            return Ok(Server { child, sock, log });
        }
        if let Ok(Some(_)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            return Err(log.lock().unwrap().clone());
        }
        assert!(Instant::now() < deadline, "no readiness line");
    }
}

pub fn start(dir: &Dir, flags: &[&str]) -> Server {
    try_start(dir, flags).unwrap_or_else(|out| panic!("the server did not start:\n{out}"))
}

impl Server {
    pub fn con(&self) -> Connection {
        let client = redis::Client::open(format!("unix://{}", self.sock.display())).unwrap();
        client.get_connection().unwrap()
    }

    /// Sends a signal (`TERM`, `KILL`) and waits for the exit.
    pub fn signal(mut self, sig: &str) -> String {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_exit()
    }

    /// Waits (20 s at most) for the process to end; returns its output.
    pub fn wait_exit(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.log.lock().unwrap().clone()
    }
}

pub fn run(con: &mut Connection, args: &[&str]) -> Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub fn run_err(con: &mut Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<Value>(con) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{args:?} answered {v:?}"),
    }
}

pub fn int(con: &mut Connection, args: &[&str]) -> i64 {
    match run(con, args) {
        Value::Int(n) => n,
        v => panic!("{args:?}: {v:?}"),
    }
}

pub fn info_field(con: &mut Connection, name: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .trim()
        .to_string()
}

/// Every type, several encodings, TTLs, locks (plain, shared, semaphore,
/// lease-only, in a lock-delay) and more than one database.
pub fn populate(con: &mut Connection) {
    let writes: &[&[&str]] = &[
        &["SET", "str", "hello"],
        &["SET", "int", "12345"],
        &["SET", "long", &"x".repeat(300)],
        &["SET", "ttl", "soon", "PX", "3600000"],
        &["RPUSH", "list", "a", "b", "3", "d"],
        &["HSET", "hash", "f1", "v1", "f2", "2"],
        &["SADD", "ints", "1", "2", "300000"],
        &["SADD", "words", "x", "y"],
        &["ZADD", "zset", "1.5", "a", "-2", "b", "inf", "c"],
        &["PFADD", "hll", "a", "b", "c"],
        &["SETBIT", "bits", "100", "1"],
        &["XADD", "stream", "1-1", "f", "v"],
        &["XADD", "stream", "2-1", "f", "w", "g", "x"],
        &["XGROUP", "CREATE", "stream", "grp", "0"],
        &[
            "XREADGROUP",
            "GROUP",
            "grp",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "stream",
            ">",
        ],
        &["LOCK.ACQUIRE", "lock:one", "owner-1", "60000"],
        &["LOCK.ACQUIRE", "lock:shared", "r1", "60000", "SHARED"],
        &["LOCK.ACQUIRE", "lock:shared", "r2", "60000", "SHARED"],
        &["LOCK.ACQUIRE", "lock:sem", "w1", "60000", "LIMIT", "3"],
        &["SELECT", "3"],
        &["SET", "other-db", "v"],
        &["LOCK.ACQUIRE", "lock:db3", "owner-3", "60000"],
        &["SELECT", "0"],
    ];
    for w in writes {
        run(con, w);
    }
    let big: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let mut sadd = redis::cmd("SADD");
    sadd.arg("bigset").arg(&big);
    let _: i64 = sadd.query(con).unwrap();
    let mut rpush = redis::cmd("RPUSH");
    rpush.arg("biglist").arg(&big);
    let _: i64 = rpush.query(con).unwrap();
}

/// `keys` string keys `k<chunk>:<i>`, set 2,000 to an MSET.
pub fn fill(con: &mut Connection, keys: usize) {
    for chunk in 0..keys.div_ceil(2000) {
        let mut mset = redis::cmd("MSET");
        for i in 0..2000.min(keys - chunk * 2000) {
            mset.arg(format!("k{chunk}:{i}")).arg(i);
        }
        let _: () = mset.query(con).unwrap();
    }
}

pub fn render(v: &Value) -> String {
    match v {
        Value::BulkString(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        Value::Nil => "nil".into(),
        Value::Array(items) | Value::Set(items) => {
            let parts: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", parts.join(","))
        }
        other => format!("{other:?}"),
    }
}

/// A LOCK.INFO reply without what changes by the millisecond: every value
/// after a `ttl` or `delay` field name.
pub fn without_ttl(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let mut parts = Vec::new();
            let mut skip = false;
            for item in items {
                if skip {
                    skip = false;
                    continue;
                }
                if matches!(item, Value::BulkString(b) if b == b"ttl" || b == b"delay") {
                    skip = true;
                    continue;
                }
                parts.push(without_ttl(item));
            }
            format!("[{}]", parts.join(","))
        }
        other => render(other),
    }
}

/// Each key of databases 0..16 with its type and value as commands read it
/// (sets sorted; a lock's mode, owners and tokens, not its remaining
/// lease), and whether it has a TTL.
pub fn image(con: &mut Connection) -> BTreeMap<(u8, String), String> {
    let mut out = BTreeMap::new();
    for db in 0..16u8 {
        run(con, &["SELECT", &db.to_string()]);
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(con).unwrap();
            let value = match kind.as_str() {
                "string" => render(&run(con, &["GET", &key])),
                "list" => render(&run(con, &["LRANGE", &key, "0", "-1"])),
                "hash" => {
                    let mut pairs: Vec<(String, String)> =
                        redis::cmd("HGETALL").arg(&key).query(con).unwrap();
                    pairs.sort();
                    format!("{pairs:?}")
                }
                "set" => {
                    let mut members: Vec<String> =
                        redis::cmd("SMEMBERS").arg(&key).query(con).unwrap();
                    members.sort();
                    format!("{members:?}")
                }
                "zset" => render(&run(con, &["ZRANGE", &key, "0", "-1", "WITHSCORES"])),
                "stream" => {
                    let entries = render(&run(con, &["XRANGE", &key, "-", "+"]));
                    let pending = render(&run(con, &["XPENDING", &key, "grp"]));
                    format!("{entries} pending {pending}")
                }
                _ => format!("{kind} {}", without_ttl(&run(con, &["LOCK.INFO", &key]))),
            };
            let pttl = int(con, &["PTTL", &key]);
            out.insert((db, key), format!("{kind} {value} ttl:{}", pttl > 0));
        }
    }
    run(con, &["SELECT", "0"]);
    out
}

pub fn redis_tools() -> bool {
    ["redis-server", "redis-check-rdb", "redis-cli"]
        .iter()
        .all(|t| {
            Command::new(t)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// redis-server on a Unix socket in `dir`, loading `dir/dump.rdb`.
pub fn start_redis(dir: &Dir) -> (Child, PathBuf) {
    start_redis_with(dir, &[])
}

/// [`start_redis`] with more flags (`--appendonly yes`, ...).
pub fn start_redis_with(dir: &Dir, flags: &[&str]) -> (Child, PathBuf) {
    let sock = dir.file("r.sock");
    let child = Command::new("redis-server")
        .args(["--port", "0", "--save", "", "--unixsocket"])
        .arg(&sock)
        .arg("--dir")
        .arg(&dir.0)
        .args(flags)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, sock)
}

pub fn connect_redis(sock: &Path) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let client = redis::Client::open(format!("unix://{}", sock.display())).unwrap();
        if let Ok(mut con) = client.get_connection() {
            if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                return con;
            }
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}
