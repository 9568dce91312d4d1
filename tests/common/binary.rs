//! The `latchkey` binary in its own process, for what only a whole process
//! shows: its runtime, its thread stacks, an abort.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// A spawned server and its Unix socket; killed (and the socket removed) when
/// dropped, so a failing test leaves none behind.
pub struct Spawned(pub Child, pub PathBuf);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// Spawns the binary on a Unix socket named after the test (`name`) with
/// `extra` flags, and waits (10 s at most) for its readiness line.
pub fn spawn_on_socket(name: &str, extra: &[&str]) -> Spawned {
    let sock = std::env::temp_dir().join(format!("latchkey-{}-{name}.sock", std::process::id()));
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--save", "", "--unixsocket"])
        .arg(&sock)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = Spawned(child, sock);
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no readiness line");
        match lines.next() {
            Some(Ok(line)) if line.contains("Ready to accept connections") => break,
            Some(Ok(_)) => {}
            _ => panic!("server exited before it was ready"),
        }
    }
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    server
}
