//! RDB persistence through the binary, as an operator runs it: SAVE, BGSAVE
//! and save points write `dir/dbfilename`; a restart on the same directory
//! (after SHUTDOWN, SIGTERM or `kill -9`) loads every type back with its TTL,
//! and locks with their holders, tokens and leases; fencing tokens stay above
//! every token issued before; a damaged file stops the start naming the file
//! and offset; and the file is Redis's: redis-server 7 and redis-check-rdb
//! read latchkey's, latchkey reads redis-server's.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::persist::*;
use redis::Value;

#[test]
fn save_then_kill_9_and_restart_keeps_every_type_ttl_and_lock() {
    let dir = Dir::new("save-kill");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    populate(&mut con);
    let before = image(&mut con);
    let token = int(&mut con, &["LOCK.ACQUIRE", "lock:last", "me", "60000"]);
    assert_eq!(run(&mut con, &["SAVE"]), Value::Okay);
    assert!(dir.file("dump.rdb").exists());
    assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "0");
    server.signal("KILL");

    // No restart grace here: new locks are asked for at once (the grace
    // has its own test).
    let server = start(&dir, &["--save", "", "--lock-restart-grace", "0"]);
    let mut con = server.con();
    let mut after = image(&mut con);
    after
        .remove(&(0, "lock:last".into()))
        .expect("the last lock too");
    assert_eq!(before, after);
    let ttl = int(&mut con, &["PTTL", "ttl"]);
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
    let lease = int(&mut con, &["PTTL", "lock:one"]);
    assert!(lease > 50_000 && lease <= 60_000, "{lease}");
    // Still held by its owner: nobody else gets it, its owner can release it.
    assert_eq!(
        run(&mut con, &["LOCK.ACQUIRE", "lock:one", "intruder", "1000"]),
        Value::Nil
    );
    assert_eq!(int(&mut con, &["LOCK.RELEASE", "lock:one", "owner-1"]), 1);
    // Tokens after the restart are above every token before it.
    let next = int(&mut con, &["LOCK.ACQUIRE", "lock:new", "me", "1000"]);
    assert!(next > token, "{next} after {token}");
    assert_eq!(
        info_field(&mut con, "rdb_last_load_keys_loaded"),
        before.len().saturating_add(1).to_string()
    );
}

#[test]
fn bgsave_writes_while_clients_run_and_reports_progress() {
    let dir = Dir::new("bgsave");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    // Enough keys that the save takes a while.
    fill(&mut con, 50 * 2000);
    assert_eq!(
        info_field(&mut con, "rdb_changes_since_last_save"),
        "100000"
    );
    let last = int(&mut con, &["LASTSAVE"]);
    assert_eq!(
        run(&mut con, &["BGSAVE"]),
        Value::SimpleString("Background saving started".into())
    );
    // One save at a time, whichever asks.
    let again = run_err(&mut con, &["BGSAVE"]);
    let save = run_err(&mut con, &["SAVE"]);
    assert!(
        again.contains("Background save already in progress"),
        "{again}"
    );
    assert!(
        save.contains("Background save already in progress"),
        "{save}"
    );
    // Writes go on meanwhile, and count for the next save.
    run(&mut con, &["SET", "during", "1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut con, "rdb_bgsave_in_progress") == "1" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "ok");
    // The snapshot's instant is BGSAVE's: `during` came after it.
    assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "1");
    assert!(int(&mut con, &["LASTSAVE"]) >= last);
    assert_eq!(info_field(&mut con, "rdb_saves"), "1");
    server.signal("KILL");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    assert_eq!(int(&mut con, &["DBSIZE"]), 100_000);
    assert_eq!(
        run(&mut con, &["GET", "during"]),
        Value::Nil,
        "after the instant"
    );
}

#[test]
fn a_save_point_saves_in_the_background() {
    let dir = Dir::new("savepoint");
    let server = start(&dir, &["--save", "1 3"]);
    let mut con = server.con();
    run(&mut con, &["SET", "a", "1"]);
    run(&mut con, &["SET", "b", "1"]);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!dir.file("dump.rdb").exists(), "two changes: not yet");
    run(&mut con, &["SET", "c", "1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.file("dump.rdb").exists() || info_field(&mut con, "rdb_bgsave_in_progress") == "1" {
        assert!(Instant::now() < deadline, "the save point did not fire");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "0");
    let out = server.signal("KILL");
    assert!(out.contains("3 changes in 1 seconds. Saving..."), "{out}");
    let server = start(&dir, &["--save", ""]);
    assert_eq!(int(&mut server.con(), &["DBSIZE"]), 3);
}

#[test]
fn shutdown_and_sigterm_save_as_redis_does() {
    let dir = Dir::new("shutdown");
    // Save points set: SIGTERM saves.
    let server = start(&dir, &["--save", "3600 1"]);
    run(&mut server.con(), &["SET", "a", "1"]);
    let out = server.signal("TERM");
    assert!(
        out.contains("Saving the final RDB snapshot before exiting."),
        "{out}"
    );
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    assert_eq!(int(&mut con, &["DBSIZE"]), 1);
    // No save points: SHUTDOWN does not save; SHUTDOWN SAVE does.
    run(&mut con, &["SET", "b", "1"]);
    let _ = redis::cmd("SHUTDOWN").query::<Value>(&mut con);
    drop(con);
    let mut server = server;
    server.wait_exit();
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    assert_eq!(int(&mut con, &["DBSIZE"]), 1, "b was not saved");
    run(&mut con, &["SET", "c", "1"]);
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<Value>(&mut con);
    let mut server = server;
    server.wait_exit();
    let server = start(&dir, &["--save", "3600 1"]);
    let mut con = server.con();
    assert_eq!(int(&mut con, &["DBSIZE"]), 2);
    // SHUTDOWN NOSAVE with save points set: no save.
    run(&mut con, &["SET", "d", "1"]);
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query::<Value>(&mut con);
    let mut server = server;
    server.wait_exit();
    let server = start(&dir, &["--save", ""]);
    assert_eq!(int(&mut server.con(), &["DBSIZE"]), 2);
}

#[test]
fn a_failed_save_is_an_error_and_shutdown_stays_up() {
    let dir = Dir::new("failing");
    let data = dir.file("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = try_start_in(&dir, &data, &["--save", "3600 1"]).unwrap();
    let mut con = server.con();
    run(&mut con, &["SET", "a", "1"]);
    // The directory goes away under the running server.
    std::fs::remove_dir_all(&data).unwrap();
    // Redis's bare `-ERR` (the log says why).
    let mut raw = std::os::unix::net::UnixStream::connect(&server.sock).unwrap();
    std::io::Write::write_all(&mut raw, b"*1\r\n$4\r\nSAVE\r\n").unwrap();
    let mut reply = [0u8; 6];
    std::io::Read::read_exact(&mut raw, &mut reply).unwrap();
    assert_eq!(&reply, b"-ERR\r\n");
    run(&mut con, &["BGSAVE"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut con, "rdb_bgsave_in_progress") == "1" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "err");
    assert!(run_err(&mut con, &["SHUTDOWN"]).contains("Errors trying to SHUTDOWN. Check logs."));
    assert_eq!(
        run(&mut con, &["GET", "a"]),
        Value::BulkString(b"1".to_vec())
    );
    // FORCE stops it anyway.
    let _ = redis::cmd("SHUTDOWN").arg("FORCE").query::<Value>(&mut con);
    let mut server = server;
    let out = server.wait_exit();
    assert!(
        out.contains("Error trying to save the DB. Exit anyway."),
        "{out}"
    );
}

#[test]
fn flushall_with_save_points_saves_the_empty_keyspace() {
    let dir = Dir::new("flushall");
    let server = start(&dir, &["--save", "3600 1"]);
    let mut con = server.con();
    run(&mut con, &["SET", "a", "1"]);
    run(&mut con, &["SAVE"]);
    let token = int(&mut con, &["LOCK.ACQUIRE", "l", "o", "60000"]);
    run(&mut con, &["FLUSHALL"]);
    server.signal("KILL");
    let server = start(&dir, &["--save", "", "--lock-restart-grace", "0"]);
    let mut con = server.con();
    assert_eq!(int(&mut con, &["DBSIZE"]), 0);
    assert!(int(&mut con, &["LOCK.ACQUIRE", "l", "o", "1000"]) > token);
}

#[test]
fn a_damaged_file_stops_the_start_naming_file_and_offset() {
    let dir = Dir::new("damaged");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    populate(&mut con);
    run(&mut con, &["SAVE"]);
    server.signal("KILL");
    let good = std::fs::read(dir.file("dump.rdb")).unwrap();
    // A flipped byte in the middle: the checksum (or the structure) fails.
    let mut flipped = good.clone();
    let at = good.len() / 2;
    flipped[at] ^= 0x5a;
    std::fs::write(dir.file("dump.rdb"), &flipped).unwrap();
    let out = try_start(&dir, &["--save", ""]).err().expect("refused");
    assert!(out.contains("dump.rdb") && out.contains("offset"), "{out}");
    // Cut short.
    std::fs::write(dir.file("dump.rdb"), &good[..good.len() - 20]).unwrap();
    let out = try_start(&dir, &["--save", ""]).err().expect("refused");
    assert!(out.contains("dump.rdb") && out.contains("offset"), "{out}");
    // With rdbchecksum no, the checksum is not what refuses a file: a good
    // file with a wrong checksum loads.
    let mut wrong_sum = good.clone();
    let n = wrong_sum.len();
    wrong_sum[n - 1] ^= 1;
    std::fs::write(dir.file("dump.rdb"), &wrong_sum).unwrap();
    assert!(try_start(&dir, &["--save", ""]).is_err());
    let server = start(&dir, &["--save", "", "--rdbchecksum", "no"]);
    assert!(int(&mut server.con(), &["DBSIZE"]) > 0);
}

#[test]
fn expired_keys_in_the_file_are_left_out() {
    let dir = Dir::new("expired");
    let server = start(&dir, &["--save", "", "--enable-debug-command", "local"]);
    let mut con = server.con();
    // The clock stands still until the kill: "short" is in the file however
    // slow the machine is.
    run(&mut con, &["DEBUG", "PAUSE-TIME"]);
    let paused = Instant::now();
    run(&mut con, &["SET", "short", "v", "PX", "300"]);
    run(&mut con, &["SET", "long", "v", "PX", "600000"]);
    run(&mut con, &["SAVE"]);
    server.signal("KILL");
    std::thread::sleep(Duration::from_millis(400).saturating_sub(paused.elapsed()));
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    assert_eq!(int(&mut con, &["DBSIZE"]), 1);
    assert_eq!(info_field(&mut con, "rdb_last_load_keys_expired"), "1");
}

#[test]
fn redis_server_and_latchkey_read_each_others_files() {
    if !redis_tools() {
        eprintln!("skipped: redis-server, redis-cli or redis-check-rdb not installed");
        return;
    }
    let dir = Dir::new("interop");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    populate(&mut con);
    let ours = image(&mut con);
    run(&mut con, &["SAVE"]);
    server.signal("KILL");
    let check = Command::new("redis-check-rdb")
        .arg(dir.file("dump.rdb"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && said.contains("RDB looks OK"),
        "{said}"
    );

    // redis-server loads every key but the locks (aux fields it skips).
    let (mut redis, sock) = start_redis(&dir);
    let mut rcon = connect_redis(&sock);
    let theirs = image(&mut rcon);
    let expected: BTreeMap<_, _> = ours
        .iter()
        .filter(|(_, v)| !v.starts_with("lock"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(theirs, expected);
    // And its own file loads into latchkey.
    run(&mut rcon, &["SET", "from-redis", "yes"]);
    run(&mut rcon, &["SAVE"]);
    let _ = redis.kill();
    let _ = redis.wait();
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    let mut back = image(&mut con);
    assert_eq!(
        back.remove(&(0, "from-redis".into())).as_deref(),
        Some("string \"yes\" ttl:false")
    );
    assert_eq!(back, expected);
}

#[test]
fn after_a_restart_no_lock_is_granted_while_an_unsaved_holder_may_hold_it() {
    let dir = Dir::new("grace");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    // The longest lease granted before the save: the next start's grace.
    int(&mut con, &["LOCK.ACQUIRE", "saved", "a", "1500"]);
    run(&mut con, &["SAVE"]);
    // Acquired after the save: the file does not know this holder.
    int(&mut con, &["LOCK.ACQUIRE", "unsaved", "b", "1000"]);
    server.signal("KILL");

    let server = start(&dir, &["--save", ""]);
    assert_eq!(
        run(&mut server.con(), &["CONFIG", "GET", "lock-restart-grace"]),
        Value::Array(vec![
            Value::BulkString(b"lock-restart-grace".to_vec()),
            Value::BulkString(b"auto".to_vec())
        ])
    );
    let started = Instant::now();
    let mut con = server.con();
    assert_eq!(
        run(&mut con, &["LOCK.ACQUIRE", "unsaved", "c", "1000"]),
        Value::Nil,
        "b may still believe it holds it"
    );
    assert_eq!(
        run(&mut con, &["LOCK.ACQUIRE", "never-held", "c", "1000"]),
        Value::Nil,
        "nothing says nobody held it"
    );
    assert_eq!(
        run(&mut con, &["LOCK.ACQUIRE", "saved", "c", "1000"]),
        Value::Nil
    );
    // LOCK.INFO shows the key in its delay.
    let info = without_ttl(&run(&mut con, &["LOCK.INFO", "unsaved"]));
    assert!(info.contains("holders\",[]"), "{info}");
    // A waiter is granted when the grace ends.
    let token = int(
        &mut con,
        &["LOCK.ACQUIRE", "unsaved", "c", "1000", "WAIT", "10000"],
    );
    assert!(token > 0);
    let waited = started.elapsed();
    // Counted from after the start (the grace counts from the load), so
    // with room for a slow machine's start: without the grace it is at once.
    assert!(
        waited >= Duration::from_millis(1000),
        "granted after {waited:?}, inside the 1500 ms grace"
    );
    server.signal("KILL");

    // Set to 0, there is no grace.
    let server = start(&dir, &["--save", "", "--lock-restart-grace", "0"]);
    let mut con = server.con();
    assert!(int(&mut con, &["LOCK.ACQUIRE", "unsaved", "c", "1000"]) > 0);
}

#[test]
fn a_restart_grace_set_without_a_file_holds_every_lock() {
    let dir = Dir::new("grace-nofile");
    let server = start(&dir, &["--save", "", "--lock-restart-grace", "800"]);
    let mut con = server.con();
    let started = Instant::now();
    assert_eq!(
        run(&mut con, &["LOCK.ACQUIRE", "k", "o", "1000"]),
        Value::Nil
    );
    int(
        &mut con,
        &["LOCK.ACQUIRE", "k", "o", "1000", "WAIT", "5000"],
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[test]
fn kill_9_at_random_moments_keeps_the_file_the_tokens_and_the_locks() {
    let dir = Dir::new("crash");
    // A saved lease of 1 s: every later lease is at most that, so the
    // automatic restart grace covers every holder the file misses.
    let server = start(&dir, &["--save", ""]);
    int(&mut server.con(), &["LOCK.ACQUIRE", "seed", "s", "1000"]);
    run(&mut server.con(), &["SAVE"]);
    server.signal("KILL");
    let mut highest_token = 0i64;
    let mut granted: Vec<(String, Instant)> = Vec::new();
    let mut checked = 0usize;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..5usize {
        let server = start(&dir, &["--save", "1 1"]);
        let mut con = server.con();
        // No lock granted before the kill goes to another while its lease
        // may still run (whether or not a save caught it).
        for (lock, at) in granted.drain(..) {
            let got = run(&mut con, &["LOCK.ACQUIRE", &lock, "newcomer", "1000"]);
            if at.elapsed() < Duration::from_millis(900) {
                assert_eq!(got, Value::Nil, "round {round}: {lock} granted again");
                checked += 1;
            }
        }
        // The grace ends (1 s), then load for a random while with saves
        // running, then kill -9.
        std::thread::sleep(Duration::from_millis(1000));
        let run_for = Duration::from_millis(200 + next() % 600);
        let t0 = Instant::now();
        let mut i = 0u64;
        while t0.elapsed() < run_for {
            i += 1;
            run(&mut con, &["SET", &format!("k:{round}:{i}"), "v"]);
            if i.is_multiple_of(25) {
                let _ = redis::cmd("BGSAVE").query::<Value>(&mut con);
            }
            let lock = format!("lock:{round}:{i}");
            let owner = format!("o{i}");
            if let Value::Int(t) = run(&mut con, &["LOCK.ACQUIRE", &lock, &owner, "1000"]) {
                assert!(
                    t > highest_token,
                    "round {round}: token {t} not above {highest_token}"
                );
                highest_token = t;
                granted.push((lock, Instant::now()));
            }
        }
        assert!(!granted.is_empty(), "round {round}: the grace never ended");
        server.signal("KILL");
        // A save cut short leaves its temporary file (as Redis's does); the
        // next start ignores it.
        for entry in std::fs::read_dir(&dir.0).unwrap().filter_map(|e| e.ok()) {
            if entry.file_name().to_string_lossy().starts_with("temp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    assert!(
        checked > 0,
        "no lock was looked at while its lease could run"
    );
    // Every start loaded the file whole (a damaged one stops the start), and
    // tokens after the last restart are above all before it.
    let server = start(&dir, &["--save", "", "--lock-restart-grace", "0"]);
    let after = int(&mut server.con(), &["LOCK.ACQUIRE", "fresh", "o", "1000"]);
    assert!(after > highest_token, "{after} after {highest_token}");
}

#[test]
fn only_granted_leases_set_the_grace_and_it_is_capped_at_an_hour() {
    let dir = Dir::new("grace-abuse");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    int(&mut con, &["LOCK.ACQUIRE", "k1", "alice", "800"]);
    // Refused requests ask for huge leases: they must not count.
    assert_eq!(
        run(
            &mut con,
            &["LOCK.ACQUIRE", "k1", "mallory", "9000000000000000"]
        ),
        Value::Nil
    );
    let _ = redis::cmd("LOCK.ACQUIRE")
        .arg(&["k1", "mallory", "9000000000000002", "LIMIT", "5"])
        .query::<Value>(&mut con);
    run(&mut con, &["SAVE"]);
    server.signal("KILL");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    std::thread::sleep(Duration::from_millis(900));
    assert!(
        int(&mut con, &["LOCK.ACQUIRE", "fresh", "bob", "1000"]) > 0,
        "the grace is alice's 800 ms, not mallory's refused asks"
    );
    // A lease really granted for ever: the grace it sets is at most an hour.
    int(
        &mut con,
        &["LOCK.ACQUIRE", "forever", "eve", "9000000000000000"],
    );
    run(&mut con, &["SAVE"]);
    server.signal("KILL");
    let server = start(&dir, &["--save", ""]);
    let out = server.signal("KILL");
    assert!(out.contains("granted again in 3600000 ms"), "{out}");
}

/// Waits (20 s at most) until the server answers BUSY: a script has run
/// past busy-reply-threshold.
fn until_busy(server: &Server) {
    let mut con = server.con();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !redis::cmd("PING")
        .query::<Value>(&mut con)
        .is_err_and(|e| e.to_string().starts_with("BUSY"))
    {
        assert!(Instant::now() < deadline, "no script ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_behind_a_busy_script_then_shutdown_nosave_saves_nothing() {
    let dir = Dir::new("busy-term");
    let server = start(&dir, &["--save", "3600 1", "--busy-reply-threshold", "100"]);
    run(&mut server.con(), &["SET", "before", "1"]);
    let sock = server.sock.clone();
    let script = std::thread::spawn(move || {
        let client = redis::Client::open(format!("unix://{}", sock.display())).unwrap();
        let mut con = client.get_connection().unwrap();
        let _ = redis::cmd("EVAL")
            .arg("redis.call('set','partial','1') while true do end")
            .arg(0)
            .query::<Value>(&mut con);
    });
    until_busy(&server);
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query::<Value>(&mut server.con());
    let mut server = server;
    server.wait_exit();
    let _ = script.join();
    assert!(
        !dir.file("dump.rdb").exists(),
        "the stopped script's half-done write was saved"
    );
}

#[test]
fn flushall_during_a_background_save_keeps_the_status_ok() {
    let dir = Dir::new("flush-bgsave");
    let server = start(&dir, &["--save", "3600 1"]);
    let mut con = server.con();
    fill(&mut con, 60 * 2000);
    run(&mut con, &["BGSAVE"]);
    run(&mut con, &["FLUSHALL"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut con, "rdb_bgsave_in_progress") == "1" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "ok");
    server.signal("KILL");
    // Whatever order they finished in, the flushed file is the one in place.
    let server = start(&dir, &["--save", ""]);
    assert_eq!(int(&mut server.con(), &["DBSIZE"]), 0);
}

/// The replies `redis-cli` prints for `commands`, one run per command.
fn cli_replies(sock: &Path, commands: &[&[&str]]) -> Vec<String> {
    commands
        .iter()
        .map(|args| {
            let out = Command::new("redis-cli")
                .arg("-s")
                .arg(sock)
                .args(*args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

#[test]
fn after_a_failed_background_save_writes_get_misconf_as_from_redis_server() {
    if !redis_tools() {
        eprintln!("skipped: redis-server or redis-cli not installed");
        return;
    }
    // The same steps on both servers, whose directory goes away.
    let steps: &[&[&str]] = &[
        &["SET", "b", "1"],
        &["PING"],
        &["GET", "a"],
        &["EVAL", "return redis.call('set','x','1')", "0"],
        &["EVAL", "return redis.pcall('set','x','1')", "0"],
        &["EVAL", "return 1", "0"],
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"],
        &["SET", "b", "1"],
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "yes"],
        &["SET", "b", "2"],
        &["CONFIG", "SET", "save", ""],
        &["SET", "b", "3"],
    ];
    let mut seen = Vec::new();
    for which in ["redis-server", "latchkey"] {
        let dir = Dir::new(&format!("misconf-{which}"));
        let data = dir.file("data");
        std::fs::create_dir_all(&data).unwrap();
        let sock = dir.file("m.sock");
        let binary = if which == "latchkey" { BIN } else { which };
        let mut child = Command::new(binary)
            .args(["--port", "0", "--save", "3600 1", "--unixsocket"])
            .arg(&sock)
            .arg("--dir")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut con = connect_redis(&sock);
        run(&mut con, &["SET", "a", "1"]);
        std::fs::remove_dir_all(&data).unwrap();
        run(&mut con, &["BGSAVE"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while info_field(&mut con, "rdb_last_bgsave_status") != "err" {
            assert!(Instant::now() < deadline, "{which}: the save did not fail");
            std::thread::sleep(Duration::from_millis(20));
        }
        // MULTI queues nothing that writes, and EXEC aborts.
        let mut multi = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        std::io::Write::write_all(&mut multi, b"MULTI\r\nSET c 1\r\nEXEC\r\n").unwrap();
        let mut reader = BufReader::new(multi);
        let mut lines = String::new();
        for _ in 0..3 {
            reader.read_line(&mut lines).unwrap();
        }
        let mut replies = cli_replies(&sock, steps);
        replies.push(lines);
        seen.push(replies);
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(seen[0][0].starts_with("MISCONF Redis is configured to save RDB snapshots"));
    for (i, (theirs, ours)) in seen[0].iter().zip(&seen[1]).enumerate() {
        assert_eq!(theirs, ours, "step {i}");
    }
}

#[test]
fn while_the_file_loads_clients_get_loading_as_from_redis_server() {
    let dir = Dir::new("loading");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    fill(&mut con, 400_000);
    run(&mut con, &["SAVE"]);
    server.signal("KILL");
    // Started by hand: the test talks to it before its readiness line.
    let sock = dir.file("l.sock");
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--save", "", "--unixsocket"])
        .arg(&sock)
        .arg("--dir")
        .arg(&dir.0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    // The file is there from bind(), a moment before listen(): a connect in
    // between is refused, and tried again.
    let raw = loop {
        match std::os::unix::net::UnixStream::connect(&sock) {
            Ok(raw) => break raw,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                assert!(Instant::now() < deadline, "never accepted");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{e}"),
        }
    };
    let mut reader = BufReader::new(raw.try_clone().unwrap());
    fn ask(
        raw: &std::os::unix::net::UnixStream,
        reader: &mut BufReader<std::os::unix::net::UnixStream>,
        req: &[u8],
    ) -> String {
        std::io::Write::write_all(&mut &*raw, req).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line
    }
    let (mut loading, mut info_said_loading) = (0, false);
    loop {
        assert!(Instant::now() < deadline, "the load did not end");
        match ask(&raw, &mut reader, b"PING\r\n").as_str() {
            "-LOADING Redis is loading the dataset in memory\r\n" => loading += 1,
            "+PONG\r\n" => break,
            other => panic!("{other:?}"),
        }
        // INFO has Redis's `loading` flag: it answers, saying so.
        let header = ask(&raw, &mut reader, b"INFO persistence\r\n");
        let len: usize = header.trim_start_matches('$').trim().parse().unwrap();
        let mut body = vec![0u8; len + 2];
        std::io::Read::read_exact(&mut reader, &mut body).unwrap();
        info_said_loading |= String::from_utf8_lossy(&body).contains("loading:1\r\n");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(loading > 0, "no PING was answered -LOADING");
    assert!(info_said_loading, "INFO never said loading:1");
    assert_eq!(ask(&raw, &mut reader, b"DBSIZE\r\n"), ":400000\r\n");
    let _ = child.kill();
    let _ = child.wait();
}

/// WAITAOF as Redis 7.2's waitaofCommand answers it with `appendonly no` and
/// no replicas (the recording server, 7.0, has no WAITAOF; the texts are
/// 7.2's source's).
#[test]
fn waitaof_answers_for_a_server_without_aof_or_replicas() {
    let dir = Dir::new("waitaof");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    let zeros = Value::Array(vec![Value::Int(0), Value::Int(0)]);
    assert_eq!(run(&mut con, &["WAITAOF", "0", "0", "0"]), zeros);
    // No replica can answer: at once, not after the timeout.
    let t0 = Instant::now();
    assert_eq!(run(&mut con, &["WAITAOF", "0", "2", "5000"]), zeros);
    assert!(t0.elapsed() < Duration::from_secs(2));
    for (args, want) in [
        (
            ["x", "0", "0"],
            "ERR value is not an integer or out of range",
        ),
        (
            ["2", "0", "0"],
            "ERR value is out of range, value must between 0 and 1",
        ),
        (
            ["-1", "0", "0"],
            "ERR value is out of range, value must between 0 and 1",
        ),
        (
            ["0", "-1", "0"],
            "ERR value is out of range, must be positive",
        ),
        (
            ["0", "x", "0"],
            "ERR value is not an integer or out of range",
        ),
        (
            ["0", "0", "x"],
            "ERR timeout is not an integer or out of range",
        ),
        (["0", "0", "-1"], "ERR timeout is negative"),
        (
            ["0", "0", "9223372036854775807"],
            "ERR timeout is out of range",
        ),
        (
            ["1", "0", "0"],
            "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.",
        ),
        (
            ["1", "-1", "0"],
            "ERR value is out of range, must be positive",
        ),
    ] {
        let mut raw = std::os::unix::net::UnixStream::connect(&server.sock).unwrap();
        let req = format!(
            "*4\r\n$7\r\nWAITAOF\r\n${}\r\n{}\r\n${}\r\n{}\r\n${}\r\n{}\r\n",
            args[0].len(),
            args[0],
            args[1].len(),
            args[1],
            args[2].len(),
            args[2]
        );
        std::io::Write::write_all(&mut raw, req.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(raw).read_line(&mut line).unwrap();
        assert_eq!(line, format!("-{want}\r\n"), "WAITAOF {args:?}");
    }
    assert!(run_err(
        &mut con,
        &["EVAL", "return redis.call('waitaof','0','0','0')", "0"]
    )
    .contains("This Redis command is not allowed from script"));
}

#[test]
fn save_and_bgsave_beside_a_busy_script_answer_busy() {
    let dir = Dir::new("busy-save");
    let server = start(&dir, &["--save", "", "--busy-reply-threshold", "100"]);
    let sock = server.sock.clone();
    let script = std::thread::spawn(move || {
        let client = redis::Client::open(format!("unix://{}", sock.display())).unwrap();
        let mut con = client.get_connection().unwrap();
        let _ = redis::cmd("EVAL")
            .arg("while true do end")
            .arg(0)
            .query::<Value>(&mut con);
    });
    until_busy(&server);
    let mut con = server.con();
    for cmd in ["SAVE", "BGSAVE"] {
        assert_eq!(
            run_err(&mut con, &[cmd]),
            "BUSY: Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            "{cmd}"
        );
    }
    run(&mut con, &["SCRIPT", "KILL"]);
    script.join().unwrap();
    assert_eq!(run(&mut con, &["SAVE"]), Value::Okay);
    assert!(dir.file("dump.rdb").exists());
}
