//! The append-only file through the binary, as an operator runs it: with
//! `appendonly yes` every write reaches `dir/appendonlydir` in Redis 7's
//! multi-part layout; a restart (after SHUTDOWN or `kill -9`) replays it into
//! the same keyspace (every type, TTLs as deadlines, locks with their
//! holders and tokens); BGREWRITEAOF and `CONFIG SET appendonly yes` write a
//! new base; a cut tail is cut (or refused) as `aof-load-truncated` says;
//! redis-check-aof accepts the files and redis-server loads an AOF of Redis
//! types.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::persist::*;
use redis::{Connection, Value};

const AOF: &[&str] = &["--save", "", "--appendonly", "yes"];

fn flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut f: Vec<&str> = AOF.to_vec();
    f.extend_from_slice(extra);
    f
}

/// Writes whose replay must not depend on when or how often it runs:
/// relative TTLs, random pops, float sums, served blocked clients, a
/// transaction, a script, keys that expire, a SWAPDB.
fn nondeterministic_writes(server: &Server, con: &mut Connection) {
    let writes: &[&[&str]] = &[
        &["SET", "ex", "v", "EX", "1000"],
        &["SETEX", "setex", "1000", "v"],
        &["PSETEX", "psetex", "1000000", "v"],
        &["SET", "gone-soon", "v", "PX", "1"],
        &["SET", "persist", "v"],
        &["EXPIRE", "persist", "500"],
        &["SET", "getex", "v"],
        &["GETEX", "getex", "PX", "700000"],
        &["INCRBYFLOAT", "float", "1.1"],
        &["INCRBYFLOAT", "float", "2.2"],
        &["HINCRBYFLOAT", "hfloat", "f", "0.1"],
        &["HINCRBYFLOAT", "hfloat", "f", "0.2"],
        &["SADD", "pops", "a", "b", "c", "d", "e", "f"],
        &["SPOP", "pops"],
        &["SPOP", "pops", "2"],
        &["RPUSH", "q", "1", "2", "3"],
        &["BLPOP", "q", "0"],
        &["BLMOVE", "q", "q2", "RIGHT", "LEFT", "0"],
        &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        &["BZPOPMIN", "z", "0"],
        &["MULTI"],
        &["SET", "in-multi", "1"],
        &["EXPIRE", "in-multi", "900"],
        &["SPOP", "pops"],
        &["EXEC"],
        &[
            "EVAL",
            "redis.call('SET', KEYS[1], 'x', 'EX', 800); return redis.call('SPOP', KEYS[2])",
            "2",
            "scripted",
            "pops",
        ],
        // Keys that change databases.
        &["SELECT", "7"],
        &["SET", "swapped", "v", "EX", "1000"],
        &["SWAPDB", "7", "8"],
        &["SELECT", "0"],
    ];
    for w in writes {
        run(con, w);
    }
    // RESTORE with a relative TTL.
    let payload: Vec<u8> = redis::cmd("DUMP").arg("persist").query(con).unwrap();
    let _: Value = redis::cmd("RESTORE")
        .arg("restored")
        .arg(600000)
        .arg(payload)
        .arg("REPLACE")
        .query(con)
        .unwrap();
    // A client blocked before the push is served by it (a serve step's
    // pop reaches the file, not the BLPOP).
    let sock = server.sock.clone();
    let waiter = std::thread::spawn(move || {
        let client = redis::Client::open(format!("unix://{}", sock.display())).unwrap();
        let mut con = client.get_connection().unwrap();
        let v: Value = redis::cmd("BLPOP")
            .arg("later")
            .arg(0)
            .query(&mut con)
            .unwrap();
        v
    });
    wait_blocked(con, 1);
    run(con, &["RPUSH", "later", "x", "y"]);
    assert!(matches!(waiter.join().unwrap(), Value::Array(_)));
    // Let `gone-soon` expire (removed by the expiry task: a DEL).
    std::thread::sleep(Duration::from_millis(50));
}

fn wait_blocked(con: &mut Connection, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
        let blocked = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if blocked >= n {
            return;
        }
        assert!(Instant::now() < deadline, "no client blocked");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every key's absolute deadline (PEXPIRETIME), to the millisecond.
fn deadlines(con: &mut Connection) -> Vec<(String, i64)> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let t = int(con, &["PEXPIRETIME", &k]);
            (k, t)
        })
        .collect()
}

fn aof_dir(dir: &Dir) -> std::path::PathBuf {
    dir.file("appendonlydir")
}

fn manifest(dir: &Dir) -> String {
    std::fs::read_to_string(aof_dir(dir).join("appendonly.aof.manifest")).unwrap()
}

fn check_aof(dir: &Dir) {
    if !redis_tools() {
        eprintln!("redis-check-aof not installed: check skipped");
        return;
    }
    let out = Command::new("redis-check-aof")
        .arg(aof_dir(dir).join("appendonly.aof.manifest"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("All AOF files and manifest are valid"),
        "redis-check-aof: {text}"
    );
}

#[test]
fn every_write_survives_kill_9_and_replays_to_the_same_keyspace() {
    let dir = Dir::new("aof-kill");
    let server = start(&dir, AOF);
    let mut con = server.con();
    populate(&mut con);
    nondeterministic_writes(&server, &mut con);
    let token = int(&mut con, &["LOCK.ACQUIRE", "lock:last", "me", "60000"]);
    assert_eq!(
        run(&mut con, &["LOCK.RELEASE", "lock:one", "owner-1"]),
        Value::Int(1)
    );
    let before = image(&mut con);
    run(&mut con, &["SELECT", "0"]);
    let times = deadlines(&mut con);
    assert_eq!(manifest(&dir).lines().count(), 2, "{}", manifest(&dir));
    server.signal("KILL");
    check_aof(&dir);

    let server = start(&dir, &flags(&["--lock-restart-grace", "0"]));
    let mut con = server.con();
    assert_eq!(image(&mut con), before);
    run(&mut con, &["SELECT", "0"]);
    assert_eq!(deadlines(&mut con), times, "deadlines replayed exactly");
    // The lock taken last and the one released are as they were left.
    let info = run(&mut con, &["LOCK.INFO", "lock:last"]);
    assert!(format!("{info:?}").contains(&token.to_string()), "{info:?}");
    assert_eq!(run(&mut con, &["LOCK.INFO", "lock:one"]), Value::Nil);
    // Tokens go on above every token issued before.
    let next = int(&mut con, &["LOCK.ACQUIRE", "lock:new", "x", "1000"]);
    assert!(next > token);
    drop(server);
}

#[test]
fn bgrewriteaof_writes_a_new_base_and_drops_the_old_files() {
    let dir = Dir::new("aof-rewrite");
    let server = start(&dir, AOF);
    let mut con = server.con();
    populate(&mut con);
    for i in 0..200 {
        run(&mut con, &["INCR", "counter"]);
        run(&mut con, &["SET", &format!("k{i}"), "v", "EX", "1000"]);
    }
    assert_eq!(
        run(&mut con, &["BGREWRITEAOF"]),
        Value::SimpleString("Background append only file rewriting started".into())
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "aof_rewrites") != "1"
        || info_field(&mut con, "aof_rewrite_in_progress") != "0"
    {
        assert!(Instant::now() < deadline, "the rewrite did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(info_field(&mut con, "aof_last_bgrewrite_status"), "ok");
    assert_eq!(
        manifest(&dir),
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    let mut files: Vec<String> = std::fs::read_dir(aof_dir(&dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "appendonly.aof.2.base.rdb",
            "appendonly.aof.2.incr.aof",
            "appendonly.aof.manifest"
        ]
    );
    // Writes after the rewrite go to the new incremental file.
    run(&mut con, &["SET", "after", "rewrite"]);
    let before = image(&mut con);
    check_aof(&dir);
    drop(con);
    let out = server.signal("TERM");
    assert!(!out.contains("ERROR"), "{out}");

    let server = start(&dir, &flags(&["--lock-restart-grace", "0"]));
    let mut con = server.con();
    assert_eq!(image(&mut con), before);
    assert_eq!(
        run(&mut con, &["GET", "counter"]),
        Value::BulkString(b"200".to_vec())
    );
}

/// The replies to `requests` sent in one write (so the server runs them in
/// one batch, microseconds apart): simple and error lines as they are, bulk
/// strings as their text.
fn pipelined(server: &Server, requests: &[&str]) -> Vec<String> {
    use std::io::{BufRead, BufReader, Read};
    let mut stream = std::os::unix::net::UnixStream::connect(&server.sock).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut wire = String::new();
    for r in requests {
        wire.push_str(r);
        wire.push_str("\r\n");
    }
    stream.write_all(wire.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::new();
    while replies.len() < requests.len() {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_owned();
        match line.strip_prefix('$') {
            Some(len) => {
                let mut body = vec![0; len.parse::<usize>().unwrap() + 2];
                reader.read_exact(&mut body).unwrap();
                body.truncate(body.len() - 2);
                replies.push(String::from_utf8(body).unwrap());
            }
            None => replies.push(line),
        }
    }
    replies
}

#[test]
fn a_rewrite_that_answered_started_is_in_progress_at_once() {
    // Redis forks before it answers "started": INFO, a second BGREWRITEAOF
    // and BGSAVE see the rewrite at once, though here a thread takes it up a
    // moment later.
    let dir = Dir::new("aof-rewrite-started");
    let server = start(&dir, AOF);
    let mut con = server.con();
    fill(&mut con, 20_000);
    let replies = pipelined(
        &server,
        &["BGREWRITEAOF", "INFO persistence", "BGREWRITEAOF", "BGSAVE"],
    );
    assert_eq!(replies[0], "+Background append only file rewriting started");
    assert!(
        replies[1].contains("aof_rewrite_in_progress:1\r\n")
            && replies[1].contains("aof_rewrite_scheduled:0\r\n"),
        "{}",
        replies[1]
    );
    assert_eq!(
        replies[2],
        "-ERR Background append only file rewriting already in progress"
    );
    assert!(
        replies[3].starts_with("-ERR Another child process is active (AOF?)"),
        "{}",
        replies[3]
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "the rewrite did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(info_field(&mut con, "aof_rewrites"), "1");
    assert_eq!(info_field(&mut con, "aof_rewrite_scheduled"), "0");
}

#[test]
fn config_set_appendonly_yes_rewrites_then_logs() {
    let dir = Dir::new("aof-turn-on");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    populate(&mut con);
    assert_eq!(info_field(&mut con, "aof_enabled"), "0");
    assert_eq!(
        run(&mut con, &["CONFIG", "SET", "appendonly", "yes"]),
        Value::Okay
    );
    assert_eq!(info_field(&mut con, "aof_enabled"), "1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "aof_rewrites") != "1"
        || info_field(&mut con, "aof_rewrite_in_progress") != "0"
    {
        assert!(Instant::now() < deadline, "the first rewrite did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    run(&mut con, &["SET", "logged", "after"]);
    run(&mut con, &["RPUSH", "list", "more"]);
    let before = image(&mut con);
    drop(con);
    server.signal("KILL");

    // Started again with the AOF on: the base and the log are the keyspace.
    let server = start(&dir, &flags(&["--lock-restart-grace", "0"]));
    let mut con = server.con();
    assert_eq!(image(&mut con), before);
    // And turning it off stops logging.
    assert_eq!(
        run(&mut con, &["CONFIG", "SET", "appendonly", "no"]),
        Value::Okay
    );
    assert_eq!(info_field(&mut con, "aof_enabled"), "0");
}

/// Cuts the first incremental file where `at` first appears; returns its
/// path, its bytes before the cut and where the cut is.
fn cut_incr(dir: &Dir, at: &str) -> (std::path::PathBuf, Vec<u8>, usize) {
    let incr = aof_dir(dir).join("appendonly.aof.1.incr.aof");
    let whole = std::fs::read(&incr).unwrap();
    let cut = String::from_utf8_lossy(&whole).find(at).unwrap();
    std::fs::write(&incr, &whole[..cut]).unwrap();
    (incr, whole, cut)
}

/// Starts a server on `dir`'s cut files: the cut is logged and `a` (set to
/// "1" before it) is there.
fn start_cut(dir: &Dir) -> (Server, Connection) {
    let server = start(dir, AOF);
    let out = server.log.lock().unwrap().clone();
    assert!(
        out.contains("Truncating the AOF appendonly.aof.1.incr.aof"),
        "{out}"
    );
    let mut con = server.con();
    assert_eq!(
        run(&mut con, &["GET", "a"]),
        Value::BulkString(b"1".to_vec())
    );
    (server, con)
}

/// What a server started on cut files writes survives the next restart.
fn written_after_the_cut_survives(dir: &Dir, server: Server, mut con: Connection) {
    run(&mut con, &["SET", "acked", "yes"]);
    drop(con);
    server.signal("KILL");
    let server = start(dir, AOF);
    let mut con = server.con();
    assert_eq!(
        run(&mut con, &["GET", "acked"]),
        Value::BulkString(b"yes".to_vec())
    );
    assert_eq!(
        run(&mut con, &["GET", "a"]),
        Value::BulkString(b"1".to_vec())
    );
    drop(con);
    drop(server);
    check_aof(dir);
}

/// A rewrite lists its new (empty) file in the manifest before it switches
/// writes to it: a crash in between leaves the file in use before an empty
/// one, and its cut tail is forgiven as the last file's is.
#[test]
fn a_cut_tail_before_only_empty_files_is_cut_as_the_last_files() {
    let dir = Dir::new("aof-truncated-before-empty");
    let server = start(&dir, AOF);
    let mut con = server.con();
    run(&mut con, &["SET", "a", "1"]);
    run(&mut con, &["SET", "b", "2"]);
    drop(con);
    server.signal("KILL");
    cut_incr(&dir, "$1\r\nb");
    std::fs::write(aof_dir(&dir).join("appendonly.aof.2.incr.aof"), b"").unwrap();
    let listed = format!(
        "{}file appendonly.aof.2.incr.aof seq 2 type i\n",
        manifest(&dir)
    );
    std::fs::write(aof_dir(&dir).join("appendonly.aof.manifest"), listed).unwrap();

    let (server, mut con) = start_cut(&dir);
    assert_eq!(run(&mut con, &["EXISTS", "b"]), Value::Int(0));
    // Writes go on in the last file.
    written_after_the_cut_survives(&dir, server, con);
}

/// A base is written whole and renamed into place: a cut one (a Redis
/// `.base.aof`) is damaged, and empty incremental files after it do not make
/// its tail forgivable.
#[test]
fn a_cut_base_before_only_empty_files_is_refused() {
    let dir = Dir::new("aof-cut-base");
    std::fs::create_dir_all(aof_dir(&dir)).unwrap();
    std::fs::write(
        aof_dir(&dir).join("appendonly.aof.1.base.aof"),
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$1\r\nb",
    )
    .unwrap();
    std::fs::write(aof_dir(&dir).join("appendonly.aof.1.incr.aof"), b"").unwrap();
    std::fs::write(
        aof_dir(&dir).join("appendonly.aof.manifest"),
        "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
    )
    .unwrap();
    let out = try_start(&dir, AOF).err().expect("start refused");
    assert!(
        out.contains(
            "Unexpected end of file reading the append only file appendonly.aof.1.base.aof"
        ),
        "{out}"
    );
}

#[test]
fn a_cut_tail_is_cut_with_aof_load_truncated_and_refused_without() {
    let dir = Dir::new("aof-truncated");
    let server = start(&dir, AOF);
    let mut con = server.con();
    run(&mut con, &["SET", "a", "1"]);
    run(&mut con, &["MULTI"]);
    run(&mut con, &["SET", "b", "2"]);
    run(&mut con, &["SET", "c", "3"]);
    run(&mut con, &["EXEC"]);
    drop(con);
    server.signal("KILL");
    // Cut inside the transaction: it is reverted, `a` stays.
    let (incr, whole, cut) = cut_incr(&dir, "$1\r\nc");

    let refused = try_start(&dir, &flags(&["--aof-load-truncated", "no"]));
    let out = refused.err().expect("start refused");
    assert!(
        out.contains(
            "Unexpected end of file reading the append only file appendonly.aof.1.incr.aof"
        ),
        "{out}"
    );

    // A command cut inside a transaction: the transaction is reverted and
    // the file cut where it began (Redis cuts after its last whole command,
    // leaving an open MULTI that swallows every later write at the next start).
    let (server, mut con) = start_cut(&dir);
    let out = server.log.lock().unwrap().clone();
    assert!(
        out.contains("Revert incomplete MULTI/EXEC transaction"),
        "{out}"
    );
    assert_eq!(run(&mut con, &["EXISTS", "b", "c"]), Value::Int(0));
    let now = std::fs::read(&incr).unwrap();
    assert!(now.len() < cut && whole.starts_with(&now));
    assert!(!String::from_utf8_lossy(&now).contains("MULTI"));
    written_after_the_cut_survives(&dir, server, con);

    // A damaged command (not a cut) is a format error whatever the option.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&incr)
        .unwrap();
    f.write_all(b"+garbage\r\n").unwrap();
    let at = std::fs::metadata(&incr).unwrap().len() - 10;
    let out = try_start(&dir, AOF).err().expect("start refused");
    assert!(
        out.contains(&format!(
            "Bad file format reading the append only file appendonly.aof.1.incr.aof at offset {at}"
        )),
        "{out}"
    );
    // So is a command latchkey does not know, named with its offset.
    std::fs::write(&incr, b"*1\r\n$7\r\nNOTACMD\r\n").unwrap();
    let out = try_start(&dir, AOF).err().expect("start refused");
    assert!(
        out.contains("Unknown command 'NOTACMD' reading the append only file appendonly.aof.1.incr.aof at offset 0"),
        "{out}"
    );
}

#[test]
fn redis_server_loads_an_aof_of_redis_types() {
    if !redis_tools() {
        eprintln!("redis-server not installed: skipped");
        return;
    }
    let dir = Dir::new("aof-interop");
    let server = start(&dir, AOF);
    let mut con = server.con();
    let writes: &[&[&str]] = &[
        &["SET", "s", "v", "EX", "1000"],
        &["RPUSH", "l", "a", "b", "c"],
        &["HSET", "h", "f", "1"],
        &["SADD", "set", "x", "y", "z"],
        &["SPOP", "set"],
        &["ZADD", "z", "1.5", "m"],
        &["INCRBYFLOAT", "f", "0.25"],
        &["SELECT", "2"],
        &["SET", "db2", "yes"],
        &["SELECT", "0"],
        &["XADD", "st", "1-1", "a", "b"],
        &["XGROUP", "CREATE", "st", "grp", "0"],
    ];
    for w in writes {
        run(&mut con, w);
    }
    run(&mut con, &["BGREWRITEAOF"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "aof_rewrites") != "1"
        || info_field(&mut con, "aof_rewrite_in_progress") != "0"
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    run(&mut con, &["RPUSH", "l", "after"]);
    run(&mut con, &["EXPIRE", "h", "5000"]);
    let before = image(&mut con);
    drop(con);
    server.signal("TERM");

    let (mut redis, sock) = start_redis_with(&dir, &["--appendonly", "yes"]);
    let mut con = connect_redis(&sock);
    let theirs = image(&mut con);
    let _ = redis.kill();
    let _ = redis.wait();
    assert_eq!(theirs, before);
}

#[test]
fn appendfsync_always_loses_no_acknowledged_write_or_grant_at_kill_9() {
    no_acknowledged_write_is_lost_at_kill_9("always");
}

/// `everysec` writes before each reply too (it syncs once a second): a
/// process killed loses nothing acknowledged, only the machine's crash could.
#[test]
fn appendfsync_everysec_loses_no_acknowledged_write_at_kill_9_either() {
    no_acknowledged_write_is_lost_at_kill_9("everysec");
}

/// Three rounds of `kill -9` at different moments under four writers
/// (SET, then LOCK.ACQUIRE): after each restart every acknowledged SET and
/// grant is there, and the next token is above all of them.
fn no_acknowledged_write_is_lost_at_kill_9(policy: &str) {
    let dir = Dir::new(&format!("aof-kill-{policy}"));
    let opts = flags(&["--appendfsync", policy, "--lock-restart-grace", "0"]);
    for round in 0..3 {
        let server = start(&dir, &opts);
        let sock = server.sock.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The kill's moment counts from when every writer is connected: on
        // a loaded machine the threads may take longer than the delay to
        // start, and a connection refused by a dead server proves nothing.
        let connected = std::sync::Arc::new(std::sync::Barrier::new(5));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let sock = sock.clone();
                let stop = stop.clone();
                let connected = connected.clone();
                std::thread::spawn(move || {
                    let client = redis::Client::open(format!("unix://{}", sock.display())).unwrap();
                    let mut con = client.get_connection().unwrap();
                    connected.wait();
                    let mut acked = Vec::new();
                    let mut tokens = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let key = format!("r{round}:w{w}:{i}");
                        if redis::cmd("SET")
                            .arg(&key)
                            .arg(i)
                            .query::<()>(&mut con)
                            .is_err()
                        {
                            break;
                        }
                        acked.push(key);
                        match redis::cmd("LOCK.ACQUIRE")
                            .arg(format!("lock:{w}:{i}"))
                            .arg("owner")
                            .arg(600000)
                            .query::<i64>(&mut con)
                        {
                            Ok(t) => tokens.push((format!("lock:{w}:{i}"), t)),
                            Err(_) => break,
                        }
                        i += 1;
                    }
                    (acked, tokens)
                })
            })
            .collect();
        connected.wait();
        std::thread::sleep(Duration::from_millis(150 + 100 * round));
        server.signal("KILL");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();

        let server = start(&dir, &opts);
        let mut con = server.con();
        let mut max_token = 0;
        for (acked, tokens) in &results {
            assert!(!acked.is_empty(), "the load ran");
            for key in acked {
                assert_eq!(
                    int(&mut con, &["EXISTS", key]),
                    1,
                    "acknowledged {key} lost"
                );
            }
            for (lock, token) in tokens {
                let info = run(&mut con, &["LOCK.INFO", lock]);
                assert!(
                    format!("{info:?}").contains(&token.to_string()),
                    "acknowledged grant {lock} {token} lost: {info:?}"
                );
                max_token = max_token.max(*token);
            }
        }
        let next = int(&mut con, &["LOCK.ACQUIRE", "lock:fresh", "x", "1000"]);
        assert!(next > max_token, "a token repeats: {next} <= {max_token}");
        run(&mut con, &["LOCK.RELEASE", "lock:fresh", "x"]);
        drop(con);
        server.signal("KILL");
    }
}

/// `always` gathers the writes of many clients into each sync and still
/// answers a client left alone at once: twenty writers, then one; every
/// write is acknowledged and replays after `kill -9`. (A group that waited
/// for clients that never come would stall the lone writer.)
#[test]
fn appendfsync_always_serves_many_writers_and_then_one_alone() {
    let dir = Dir::new("aof-always-groups");
    let opts = flags(&["--appendfsync", "always"]);
    let server = start(&dir, &opts);
    let sock = server.sock.clone();
    let writers: Vec<_> = (0..20)
        .map(|w| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let client = redis::Client::open(format!("unix://{}", sock.display())).unwrap();
                let mut con = client.get_connection().unwrap();
                for i in 0..50 {
                    let _: () = redis::cmd("SET")
                        .arg(format!("group:{w}:{i}"))
                        .arg(i)
                        .query(&mut con)
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut con = server.con();
    // A reply that never comes (a group waiting for clients that are gone)
    // fails here rather than hanging the test.
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    for i in 0..100 {
        run(&mut con, &["SET", &format!("alone:{i}"), "v"]);
    }
    // Generous: a sync on a slow disk, not a wait for absent clients
    // (GATHER_MAX is 1 ms a sync at most).
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(int(&mut con, &["DBSIZE"]), 1100);
    drop(con);
    server.signal("KILL");
    let server = start(&dir, &opts);
    let mut con = server.con();
    assert_eq!(int(&mut con, &["DBSIZE"]), 1100);
}

#[test]
fn waitaof_counts_the_local_fsync_and_info_reports_the_aof() {
    let dir = Dir::new("aof-waitaof");
    let server = start(&dir, AOF);
    let mut con = server.con();
    run(&mut con, &["SET", "k", "v"]);
    assert_eq!(
        run(&mut con, &["WAITAOF", "1", "0", "0"]),
        Value::Array(vec![Value::Int(1), Value::Int(0)])
    );
    assert_eq!(info_field(&mut con, "aof_enabled"), "1");
    assert_eq!(info_field(&mut con, "aof_last_write_status"), "ok");
    let size: u64 = info_field(&mut con, "aof_current_size").parse().unwrap();
    let base: u64 = info_field(&mut con, "aof_base_size").parse().unwrap();
    assert!(size > base && base > 0, "{size} {base}");
    // BGREWRITEAOF inside MULTI is scheduled, as in Redis.
    run(&mut con, &["MULTI"]);
    run(&mut con, &["BGREWRITEAOF"]);
    assert_eq!(
        run(&mut con, &["EXEC"]),
        Value::Array(vec![Value::SimpleString(
            "Background append only file rewriting scheduled".into()
        )])
    );
}

#[test]
fn latchkey_loads_the_aof_redis_server_wrote() {
    if !redis_tools() {
        eprintln!("redis-server not installed: skipped");
        return;
    }
    let dir = Dir::new("aof-from-redis");
    // `always`: under `everysec` redis-server may put off writing its buffer
    // while a background fsync runs (and still reply), so its last writes
    // could miss the file at the kill below.
    let (mut redis, sock) =
        start_redis_with(&dir, &["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = connect_redis(&sock);
    populate_redis_types(&mut con);
    // A rewrite, then more writes on top of the new base.
    run(&mut con, &["BGREWRITEAOF"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "aof_rewrite_in_progress") != "0"
        || info_field(&mut con, "aof_rewrite_scheduled") != "0"
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    for w in [
        &["RPUSH", "list", "after"][..],
        &["SET", "late", "v", "EX", "1000"],
        &["SPOP", "words"],
        &["INCRBYFLOAT", "fl", "3.5"],
        &["EXPIRE", "hash", "5000"],
        &["MULTI"],
        &["INCR", "int"],
        &["SELECT", "3"],
        &["SET", "in-3", "x"],
        &["EXEC"],
    ] {
        run(&mut con, w);
    }
    let before = image(&mut con);
    run(&mut con, &["SELECT", "0"]);
    let times = deadlines(&mut con);
    drop(con);
    let _ = redis.kill();
    let _ = redis.wait();

    let server = start(&dir, AOF);
    let mut con = server.con();
    assert_eq!(image(&mut con), before);
    run(&mut con, &["SELECT", "0"]);
    assert_eq!(deadlines(&mut con), times);
}

/// Every Redis type, with TTLs and more than one database, written with
/// commands whose propagation Redis rewrites.
fn populate_redis_types(con: &mut Connection) {
    let writes: &[&[&str]] = &[
        &["SET", "str", "hello"],
        &["SET", "int", "12345"],
        &["SET", "ttl", "soon", "PX", "3600000"],
        &["SETEX", "setex", "1000", "v"],
        &["RPUSH", "list", "a", "b", "3", "d"],
        &["HSET", "hash", "f1", "v1", "f2", "2"],
        &["HINCRBYFLOAT", "hash", "f3", "1.25"],
        &["SADD", "ints", "1", "2", "300000"],
        &["SADD", "words", "x", "y", "z", "w"],
        &["SPOP", "words"],
        &["ZADD", "zset", "1.5", "a", "-2", "b", "inf", "c"],
        &["ZINCRBY", "zset", "0.5", "a"],
        &["PFADD", "hll", "a", "b", "c"],
        &["SETBIT", "bits", "100", "1"],
        &["XADD", "stream", "1-1", "f", "v"],
        &["XADD", "stream", "2-1", "f", "w", "g", "x"],
        &["XGROUP", "CREATE", "stream", "grp", "0"],
        &["INCRBYFLOAT", "fl", "1.5"],
        &["SELECT", "3"],
        &["SET", "other-db", "v"],
        &["SELECT", "0"],
    ];
    for w in writes {
        run(con, w);
    }
}

/// A rewrite that keeps failing (here its temporary file cannot be made) is
/// held back after three failures in a row, as Redis's aofRewriteLimited:
/// the files and the manifest stop growing.
#[test]
fn failing_automatic_rewrites_are_held_back() {
    let dir = Dir::new("aof-rewrite-limit");
    let server = start(
        &dir,
        &flags(&[
            "--auto-aof-rewrite-min-size",
            "1",
            "--auto-aof-rewrite-percentage",
            "1",
        ]),
    );
    let pid = server.child.id();
    std::fs::create_dir_all(aof_dir(&dir).join(format!("temp-rewriteaof-bg-{pid}.aof"))).unwrap();
    let mut con = server.con();
    for i in 0..50 {
        run(&mut con, &["SET", &format!("k{i}"), "v"]);
    }
    // Three failures (on a slow machine they take their time), then no more.
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "aof_rewrites_consecutive_failures") != "3" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        info_field(&mut con, "aof_rewrites_consecutive_failures"),
        "3"
    );
    assert_eq!(info_field(&mut con, "aof_last_bgrewrite_status"), "err");
    let lines = manifest(&dir).lines().count();
    assert!(lines <= 5, "{}", manifest(&dir));
    // Writes go on being logged, and everything loads back.
    run(&mut con, &["SET", "after", "1"]);
    drop(con);
    server.signal("KILL");
    let server = start(&dir, AOF);
    let mut con = server.con();
    assert_eq!(int(&mut con, &["DBSIZE"]), 51);
}

/// A key whose TTL passes while the server is down stays gone: nothing
/// expires while the file is replayed (as in Redis), so a later write in the
/// file applies to the key with its TTL, not to a new key without one — from
/// the incremental file and from a rewrite's base. The server clock stands
/// still while the keys are written, so none of them expires before the
/// server is killed however slow the rewrite is (CI once took longer than
/// the TTL, and the APPEND then made a new key, as it should).
#[test]
fn keys_that_expired_while_down_do_not_come_back_without_a_ttl() {
    let dir = Dir::new("aof-expired-down");
    let server = start(&dir, &flags(&["--enable-debug-command", "local"]));
    let mut con = server.con();
    run(&mut con, &["DEBUG", "PAUSE-TIME"]);
    let paused = Instant::now();
    run(&mut con, &["SET", "k", "v", "PX", "400"]);
    run(&mut con, &["APPEND", "k", "x"]);
    run(&mut con, &["RPUSH", "l", "a"]);
    run(&mut con, &["PEXPIRE", "l", "400"]);
    run(&mut con, &["RPUSH", "l", "b"]);
    run(&mut con, &["SET", "base", "v", "PX", "400"]);
    run(&mut con, &["BGREWRITEAOF"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "aof_rewrites") != "1"
        || info_field(&mut con, "aof_rewrite_in_progress") != "0"
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    run(&mut con, &["APPEND", "base", "x"]);
    run(&mut con, &["SET", "stays", "1"]);
    assert!(int(&mut con, &["PTTL", "base"]) > 0);
    drop(con);
    server.signal("KILL");
    std::thread::sleep(Duration::from_millis(800).saturating_sub(paused.elapsed()));
    let server = start(&dir, AOF);
    let mut con = server.con();
    assert_eq!(run(&mut con, &["EXISTS", "k", "l", "base"]), Value::Int(0));
    assert_eq!(
        run(&mut con, &["GET", "stays"]),
        Value::BulkString(b"1".to_vec())
    );
}
