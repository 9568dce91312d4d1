//! The `latchkey` binary as test wrappers spawn `redis-server`: flags, config file
//! from stdin, readiness line, Unix socket, version string, graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// A spawned server that is killed when dropped, so a failing test never leaves
/// one running (holding the test's output open).
struct Spawned(Child);

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the readiness line redis-server wrappers look for; returns the output
/// read so far.
fn wait_ready(child: &mut Spawned) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("Ready to accept connections") {
                    // Keep draining so the child never blocks on a full pipe.
                    std::thread::spawn(move || for _ in lines {});
                    return seen;
                }
            }
            _ => break,
        }
    }
    panic!("no readiness line; output:\n{seen}");
}

/// Sends SIGTERM to the server.
fn sigterm(child: &Spawned) {
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

fn unix_roundtrip(path: &std::path::Path, req: &[u8], want: usize) -> Vec<u8> {
    let mut s = UnixStream::connect(path).expect("unix socket accepts");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(req).unwrap();
    let mut out = vec![0u8; want];
    s.read_exact(&mut out).unwrap();
    out
}

fn sock_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("latchkey-{}-{name}.sock", std::process::id()))
}

/// Spawns the binary with `--port 0 --unixsocket <temp path>` and `extra` flags,
/// and waits for its readiness line; returns the server, its socket and the output
/// read so far.
fn spawn_on_socket(name: &str, extra: &[&str]) -> (Spawned, std::path::PathBuf, String) {
    let sock = sock_path(name);
    let mut child = Spawned(
        Command::new(BIN)
            // No save points: a graceful stop must not leave a dump.rdb here.
            .args(["--port", "0", "--save", "", "--unixsocket"])
            .arg(&sock)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = wait_ready(&mut child);
    (child, sock, out)
}

#[test]
fn version_flag_prints_redis_style_version() {
    let out = Command::new(BIN).arg("-v").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.starts_with("Redis server v=7.2.0 "), "{text}");
    assert!(text.contains("latchkey"));
}

#[test]
fn port_zero_with_unixsocket_serves_only_the_socket_and_stops_on_sigterm() {
    let (mut child, sock, out) = spawn_on_socket("flags", &["--save", "", "--appendonly", "no"]);
    assert!(!out.contains("tcp"), "no TCP listener with --port 0: {out}");
    assert_eq!(unix_roundtrip(&sock, b"PING\r\n", 7), b"+PONG\r\n");
    // SIGTERM: graceful shutdown, exit status 0.
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A server whose parent went away (its stdout and stderr pipes closed, as
/// when a wrapper is killed) still stops on SIGTERM: a log line it cannot
/// write is dropped, not a panic in the task that handles the signal.
#[test]
fn sigterm_stops_a_server_whose_output_pipes_are_closed() {
    let sock = sock_path("orphan");
    let mut child = Spawned(
        Command::new(BIN)
            .args(["--port", "0", "--save", "", "--unixsocket"])
            .arg(&sock)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) if line.contains("Ready to accept connections") => break,
            Some(Ok(_)) => {}
            _ => panic!("no readiness line"),
        }
    }
    drop(lines);
    drop(child.stderr.take());
    sigterm(&child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&sock);
}

#[test]
fn config_from_stdin_is_applied() {
    let sock = sock_path("stdin");
    let mut child = Spawned(
        Command::new(BIN)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let conf = format!(
        "port 0\nunixsocket {}\nrequirepass pw\nsave \"\"\n",
        sock.display()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    wait_ready(&mut child);
    let got = unix_roundtrip(&sock, b"GET k\r\n", 34);
    assert_eq!(got, b"-NOAUTH Authentication required.\r\n");
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn unknown_option_is_refused_with_a_message() {
    let out = Command::new(BIN)
        .args(["--no-such-option", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-option"), "{err}");
}

#[test]
fn shutdown_command_stops_the_server() {
    let (mut child, sock, _) = spawn_on_socket("shutdown", &[]);
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(b"SHUTDOWN NOSAVE\r\n").unwrap();
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "SHUTDOWN closes without a reply");
    let status = child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn unixsocketperm_sets_the_socket_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (mut child, sock, _) = spawn_on_socket("perm", &["--unixsocketperm", "700"]);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    child.kill().unwrap();
    let _ = child.wait();
}

/// The process's tokio worker threads (tokio names them `tokio-rt-worker`).
fn worker_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.starts_with("tokio-rt-worker"))
        .count()
}

/// The worker count once it settles (at most 2 s): tokio names a worker
/// once its thread has started, which can be just after the readiness line,
/// and a thread a worker starts (latchkey-save, latchkey-aof) carries its
/// parent's name until it sets its own, so a count can be briefly off
/// either way.
fn settled_worker_threads(pid: u32, expected: usize) -> usize {
    let mut seen = worker_threads(pid);
    for _ in 0..200 {
        if seen == expected {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        seen = worker_threads(pid);
    }
    seen
}

#[test]
fn io_threads_option_runs_a_worker_pool_and_is_reported() {
    let (mut child, sock, _) = spawn_on_socket("io", &["--io-threads", "2"]);
    assert_eq!(settled_worker_threads(child.id(), 2), 2);
    let got = unix_roundtrip(&sock, b"CONFIG GET io-threads\r\n", 28);
    assert_eq!(got, b"*2\r\n$10\r\nio-threads\r\n$1\r\n2\r\n");
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn default_io_threads_is_a_single_event_loop_thread() {
    let (mut child, sock, _) = spawn_on_socket("io1", &[]);
    assert_eq!(settled_worker_threads(child.id(), 1), 1);
    assert_eq!(unix_roundtrip(&sock, b"PING\r\n", 7), b"+PONG\r\n");
    child.kill().unwrap();
    let _ = child.wait();
}

/// `--port auto` listens on a free port the server picks (no probing race for
/// a wrapper), and `--ready-file` names it once the server is ready; CONFIG
/// GET port answers the port bound.
#[test]
fn port_auto_and_ready_file_tell_a_wrapper_where_to_connect() {
    let dir = std::env::temp_dir().join(format!("latchkey-ready-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("ready");
    let mut child = std::process::Command::new(BIN)
        .args(["--port", "auto", "--save", "", "--ready-file"])
        .arg(&ready)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "no ready file");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let text = std::fs::read_to_string(&ready).unwrap();
    let addr = text
        .lines()
        .find_map(|l| l.strip_prefix("tcp "))
        .unwrap_or_else(|| panic!("{text}"));
    let port = addr.rsplit(':').next().unwrap();
    assert_ne!(port, "0");
    let client = redis::Client::open(format!("redis://{addr}")).unwrap();
    let mut con = client.get_connection().unwrap();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["port", port]);
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `pidfile` (as in Debian's stock redis.conf): the process id and a newline,
/// written at start, removed at a clean stop; a path that cannot be written is
/// a warning, not a failure, as in Redis.
#[test]
fn pidfile_holds_the_process_id_until_a_clean_stop() {
    let pidfile = std::env::temp_dir().join(format!("latchkey-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&pidfile);
    let (mut child, sock, _) =
        spawn_on_socket("pidfile", &["--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        format!("{}\n", child.id())
    );
    let path = pidfile.to_str().unwrap();
    let want = format!("*2\r\n$7\r\npidfile\r\n${}\r\n{path}\r\n", path.len());
    assert_eq!(
        unix_roundtrip(&sock, b"CONFIG GET pidfile\r\n", want.len()),
        want.as_bytes()
    );
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert!(!pidfile.exists(), "removed at a clean stop");

    let nowhere = "/nonexistent-dir/latchkey.pid";
    let (mut child, sock, out) = spawn_on_socket("pidfile-bad", &["--pidfile", nowhere]);
    assert!(out.contains("Failed to write PID file"), "{out}");
    assert_eq!(unix_roundtrip(&sock, b"PING\r\n", 7), b"+PONG\r\n");
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}
