//! The binary's runtime with one worker (the default) and with several: a runaway
//! script must not wedge the server (other clients get BUSY, SCRIPT KILL and
//! SHUTDOWN NOSAVE work), and a client that never stops sending is still
//! disconnected when killed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

mod common;

use common::binary::{spawn_on_socket, Spawned};

const BUSY: &str =
    "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// Spawns the binary with a 100 ms busy threshold and `extra` flags.
fn spawn(name: &str, extra: &[&str]) -> Spawned {
    let mut args = vec!["--busy-reply-threshold", "100"];
    args.extend_from_slice(extra);
    spawn_on_socket(&format!("rt-{name}"), &args)
}

fn connect(server: &Spawned) -> UnixStream {
    let s = UnixStream::connect(&server.1).expect("socket accepts");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Reads one reply line (without its CRLF).
fn line(s: &mut UnixStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(1) => out.push(byte[0]),
            other => panic!("connection ended or timed out ({other:?}) after {out:?}"),
        }
    }
    out.truncate(out.len() - 2);
    String::from_utf8_lossy(&out).into_owned()
}

fn call(s: &mut UnixStream, args: &[&str]) -> String {
    s.write_all(&resp(args)).unwrap();
    line(s)
}

/// Starts `while true do end` on a connection of its own and returns that
/// connection once another client's PING gets BUSY.
fn start_busy_script(server: &Spawned, other: &mut UnixStream) -> UnixStream {
    let mut runner = connect(server);
    runner
        .write_all(&resp(&["EVAL", "while true do end", "0"]))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = call(other, &["PING"]);
        if got == BUSY {
            return runner;
        }
        assert_eq!(got, "+PONG", "before the script turns busy");
        assert!(Instant::now() < deadline, "the script never turned busy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn busy_script_is_answered_and_killed(io_threads: &str) {
    let server = spawn(&format!("kill{io_threads}"), &["--io-threads", io_threads]);
    let mut other = connect(&server);
    let mut runner = start_busy_script(&server, &mut other);
    // A client that connects while the script runs is served too.
    let mut late = connect(&server);
    assert_eq!(call(&mut late, &["GET", "k"]), BUSY);
    assert_eq!(call(&mut other, &["SCRIPT", "KILL"]), "+OK");
    assert!(line(&mut runner).starts_with("-ERR Script killed by user with SCRIPT KILL..."));
    assert_eq!(call(&mut late, &["PING"]), "+PONG");
    assert_eq!(call(&mut runner, &["PING"]), "+PONG");
}

#[test]
fn busy_script_on_the_default_single_worker_gets_busy_replies_and_script_kill() {
    busy_script_is_answered_and_killed("1");
}

#[test]
fn busy_script_on_two_workers_gets_busy_replies_and_script_kill() {
    busy_script_is_answered_and_killed("2");
}

fn shutdown_nosave_stops_a_busy_script(io_threads: &str) {
    let mut server = spawn(&format!("stop{io_threads}"), &["--io-threads", io_threads]);
    let mut other = connect(&server);
    let _runner = start_busy_script(&server, &mut other);
    other.write_all(&resp(&["SHUTDOWN", "NOSAVE"])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "SHUTDOWN NOSAVE did not stop the server"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shutdown_nosave_stops_a_busy_script_on_the_default_single_worker() {
    shutdown_nosave_stops_a_busy_script("1");
}

#[test]
fn shutdown_nosave_stops_a_busy_script_on_two_workers() {
    shutdown_nosave_stops_a_busy_script("2");
}

/// The connection waits for new bytes before it looks at kill and shutdown; a
/// client whose bytes never stop coming must still be dropped by CLIENT KILL.
#[test]
fn a_killed_client_that_never_stops_sending_is_disconnected() {
    let server = spawn("flood", &[]);
    let mut flooder = connect(&server);
    let id = call(&mut flooder, &["CLIENT", "ID"]);
    let id = id.trim_start_matches(':').to_string();
    let mut writer = flooder.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let batch = b"PING\r\n".repeat(64);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Bounded: ends when the server drops the connection or after 10 s.
        while Instant::now() < deadline && writer.write_all(&batch).is_ok() {}
    });
    // Drain replies so the server is never held up writing.
    let reading = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match flooder.read(&mut buf) {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
        false
    });
    std::thread::sleep(Duration::from_millis(100));
    // Another client connects and is served within a turn of the flood's
    // worker (a flooding client yields every 32 KB it reads; before, it kept
    // the one worker for seconds in a debug build).
    let started = Instant::now();
    let mut admin = connect(&server);
    assert_eq!(call(&mut admin, &["PING"]), "+PONG");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "served after {:?}",
        started.elapsed()
    );
    assert_eq!(call(&mut admin, &["CLIENT", "KILL", "ID", &id]), ":1");
    assert!(
        reading.join().unwrap(),
        "the killed client was not disconnected"
    );
    sending.join().unwrap();
    assert_eq!(call(&mut admin, &["PING"]), "+PONG");
}

/// Whether the server closed `s` within `within` (reads until EOF or the limit).
fn closed_within(s: &mut UnixStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0))
}

/// `timeout` is one timer per connection, re-armed when it fires: a client that
/// keeps sending is never dropped by it, however many times it fires.
#[test]
fn timeout_spares_a_client_that_keeps_sending() {
    let server = spawn("active", &["--timeout", "1"]);
    let mut s = connect(&server);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2600) {
        assert_eq!(call(&mut s, &["PING"]), "+PONG");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "then idle, it is closed"
    );
}

/// The timer armed for the old `timeout` must not outlast a lower one set with
/// CONFIG SET: a connected client is held to the new limit from its next wait.
#[test]
fn lowering_timeout_applies_to_connected_clients() {
    let server = spawn("lower", &["--timeout", "300"]);
    let mut s = connect(&server);
    let mut admin = connect(&server);
    assert_eq!(call(&mut s, &["PING"]), "+PONG");
    assert_eq!(call(&mut admin, &["CONFIG", "SET", "timeout", "1"]), "+OK");
    assert_eq!(call(&mut s, &["PING"]), "+PONG");
    let started = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(4)), "not closed");
    // The limit counts from the PING, a little before `started` (more on a
    // loaded machine): far from an at-once close either way.
    assert!(started.elapsed() >= Duration::from_millis(700));
}

/// `timeout` rides on the tick that releases an idle client's buffers after
/// 2 s: once released, the tick still waits for a longer `timeout`.
#[test]
fn an_idle_client_whose_buffers_were_released_is_still_closed_by_timeout() {
    let server = spawn("long", &["--timeout", "3"]);
    let mut s = connect(&server);
    assert_eq!(call(&mut s, &["PING"]), "+PONG");
    let started = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(6)), "not closed");
    // Past the 2 s release, with room for a loaded machine.
    assert!(started.elapsed() >= Duration::from_millis(2500));
}

/// The process's CPU time so far (user + system, all threads), in clock ticks.
fn cpu_ticks(server: &Spawned) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.0.id())).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// INFO cpu's `used_cpu_idle_spin`, in seconds.
fn spun_seconds(s: &mut UnixStream) -> f64 {
    let header = call(s, &["INFO", "cpu"]);
    let len: usize = header.strip_prefix('$').unwrap().parse().unwrap();
    let mut body = vec![0u8; len + 2];
    s.read_exact(&mut body).unwrap();
    let body = String::from_utf8(body).unwrap();
    let value = body
        .lines()
        .find_map(|l| l.strip_prefix("used_cpu_idle_spin:"))
        .unwrap_or_else(|| panic!("no used_cpu_idle_spin in {body}"));
    value.parse().unwrap()
}

/// CPU ticks a server spends over `rounds` rounds of one PING and `quiet`
/// of nothing.
fn ticks_for_pings(server: &Spawned, rounds: usize, quiet: Duration) -> u64 {
    let mut s = connect(server);
    assert_eq!(call(&mut s, &["PING"]), "+PONG");
    let before = cpu_ticks(server);
    for _ in 0..rounds {
        assert_eq!(call(&mut s, &["PING"]), "+PONG");
        std::thread::sleep(quiet);
    }
    cpu_ticks(server) - before
}

#[test]
fn idle_spin_watches_for_work_that_comes_back_within_it_and_not_on_a_quiet_server() {
    // A limit of 10 ms. PINGs 3 ms apart: the spin learns to cover the gap,
    // so the server spends about the whole 600 ms (60 ticks at 100 Hz) where
    // one that does not spin spends almost nothing.
    let spinning = spawn("spin", &["--idle-spin-us", "10000"]);
    let still = spawn("nospin", &["--idle-spin-us", "0"]);
    let gap = Duration::from_millis(3);
    let (spun, slept) = (
        ticks_for_pings(&spinning, 200, gap),
        ticks_for_pings(&still, 200, gap),
    );
    assert!(spun >= 15 && spun >= 3 * slept.max(1), "{spun} vs {slept}");
    // INFO counts the spinning: most of those ticks, and none on the other.
    let spin_info = spun_seconds(&mut connect(&spinning));
    assert!(
        spin_info * 100.0 >= spun as f64 / 2.0,
        "{spin_info} s of {spun} ticks"
    );
    assert_eq!(spun_seconds(&mut connect(&still)), 0.0);
    // PINGs 30 ms apart, past the limit: each quiet moment halves the spin,
    // so over the same 600 ms it stops spinning after a few.
    let quiet = ticks_for_pings(&spinning, 20, Duration::from_millis(30));
    assert!(quiet * 6 <= spun, "{quiet} quiet vs {spun} busy");
    // A command that comes during a spin is served at once, not when the
    // spin ends: the median of 100 round trips is far less than 10 ms.
    let mut s = connect(&spinning);
    let _ = ticks_for_pings(&spinning, 50, gap);
    let mut trips: Vec<Duration> = (0..100)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(call(&mut s, &["PING"]), "+PONG");
            started.elapsed()
        })
        .collect();
    trips.sort();
    assert!(trips[50] < Duration::from_millis(2), "{:?}", trips[50]);
    assert_eq!(call(&mut s, &["CONFIG", "GET", "idle-spin-us"]), "*2");
    assert_eq!(line(&mut s), "$12");
    assert_eq!(line(&mut s), "idle-spin-us");
    assert_eq!(line(&mut s), "$5");
    assert_eq!(line(&mut s), "10000");
    assert_eq!(
        call(&mut s, &["CONFIG", "SET", "idle-spin-us", "0"]),
        "-ERR CONFIG SET failed (possibly related to argument 'idle-spin-us') - can't set immutable config"
    );
    // The default limit is 100 µs.
    let default = spawn("default-spin", &[]);
    let mut s = connect(&default);
    assert_eq!(call(&mut s, &["CONFIG", "GET", "idle-spin-us"]), "*2");
    assert_eq!(line(&mut s), "$12");
    assert_eq!(line(&mut s), "idle-spin-us");
    assert_eq!(line(&mut s), "$3");
    assert_eq!(line(&mut s), "100");
}

#[test]
fn idle_spin_past_ten_ms_is_refused_at_start() {
    let out = std::process::Command::new(common::binary::BIN)
        .args(["--port", "0", "--idle-spin-us", "10001"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("'idle-spin-us' argument must be between 0 and 10000 inclusive"),
        "{text}"
    );
}

#[test]
fn idle_spin_ends_when_another_thread_wakes_a_task() {
    // Under `appendfsync always` a SET's reply waits for the sync thread,
    // which wakes the connection from its own thread: that ends the spin
    // too, so a SET does not wait out the 10 ms spin.
    // On tmpfs where there is one, so a sync is quick beside the spin.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("latchkey-spin-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = spawn(
        "spin-aof",
        &[
            "--idle-spin-us",
            "10000",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    // PINGs 6 ms apart teach the spin to last more than 6 ms; then each SET,
    // whose reply the sync thread wakes, must not wait that out.
    let _ = ticks_for_pings(&server, 24, Duration::from_millis(6));
    let mut s = connect(&server);
    let mut trips: Vec<Duration> = (0..21)
        .map(|i| {
            let started = Instant::now();
            assert_eq!(call(&mut s, &["SET", "k", &i.to_string()]), "+OK");
            started.elapsed()
        })
        .collect();
    trips.sort();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(trips[10] < Duration::from_millis(6), "{:?}", trips[10]);
}

/// Each thread's name and nice value, from /proc.
/// Each thread's (nice, scheduling policy), by name.
fn thread_nices(server: &Spawned) -> std::collections::HashMap<String, (i64, i64)> {
    let mut nice = std::collections::HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", server.0.id())).unwrap() {
        let task = task.unwrap().path();
        let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
            continue;
        };
        let (name, rest) = stat.split_once(" (").unwrap().1.rsplit_once(')').unwrap();
        // Fields 19 and 41 of stat are the nice value and the policy;
        // `rest` starts at field 3.
        let field =
            |n: usize| -> i64 { rest.split_whitespace().nth(n - 3).unwrap().parse().unwrap() };
        nice.insert(name.to_string(), (field(19), field(41)));
    }
    nice
}

/// The thread that runs background saves and rewrites is SCHED_IDLE, so a
/// worker serving clients takes the CPU whenever it wants it, and 10 nicer
/// than the workers (at most 19) for when its watch raises it to the normal
/// policy.
#[test]
fn the_save_thread_is_sched_idle_and_ten_nicer_than_the_workers() {
    let server = spawn("nice", &[]);
    let mut s = connect(&server);
    assert_eq!(call(&mut s, &["PING"]), "+PONG");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let nice = thread_nices(&server);
        let (worker, normal) = *nice.get("tokio-rt-worker").expect("a worker thread");
        assert_eq!(normal, libc::SCHED_OTHER as i64);
        // Where a thread could not leave SCHED_IDLE again, it never enters it.
        let policy = if latchkey::background::can_leave_idle(10) {
            libc::SCHED_IDLE
        } else {
            libc::SCHED_OTHER
        };
        let wanted = ((worker + 10).min(19), policy as i64);
        if nice.get("latchkey-save") == Some(&wanted) {
            break;
        }
        assert!(Instant::now() < deadline, "{nice:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
