//! Every command the server lists in `COMMAND LIST`, sent with garbage and extreme
//! arguments (i64 min/max, 2^64, nan, inf, empty, NUL bytes, long strings, huge
//! counts, option keywords) at arities 0 to 6. Each request must get a reply (a
//! blocking command may block instead), no connection may close except by QUIT or
//! CLIENT KILL, and the server must still answer PING and expire keys at the end.
//!
//! Runs against the in-process server and the `latchkey` binary of the same build
//! profile: `cargo test` checks the debug build (where arithmetic overflow
//! panics), `cargo test --release --test all_commands` (in `test.sh`) the release
//! build. The generator is seeded per command, so a failure names a request that
//! reproduces; `ALL_COMMANDS_TRACE=1` prints every request as it is sent.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// Commands that end the test's world, or run for seconds by design (PFSELFTEST
/// adds 10,000,000 elements, about 30 s in a debug build; tests/hyperloglog.rs
/// runs it), or that stop the probing connection's replies or the server's
/// commands for as long as an extreme argument says (CLIENT PAUSE, CLIENT
/// REPLY, MONITOR; tests/client_admin.rs covers them): never sent.
const SKIPPED: &[&str] = &[
    "shutdown",
    "pfselftest",
    "client|pause",
    "client|reply",
    "monitor",
];

/// Commands that may close the connection they run on (it is reopened).
const MAY_CLOSE: &[&str] = &["quit", "client|kill", "client"];

/// How long a command that does not block may take to reply (a debug build on a
/// busy machine is slow; a hang is forever).
const REPLY_WITHIN: Duration = Duration::from_secs(5);

/// How long a blocking command is given before it is taken as blocked.
const BLOCKED_AFTER: Duration = Duration::from_millis(100);

/// The whole run must end within this, whatever the server does.
const RUN_WITHIN: Duration = Duration::from_secs(120);

/// Options that take a number, each tried with every one of [`EDGE_NUMBERS`].
const NUMERIC_OPTIONS: &[&str] = &[
    "EX", "PX", "EXAT", "PXAT", "WAIT", "LIMIT", "COUNT", "ID", "MAXAGE",
];

/// The numbers at the edges of every range.
const EDGE_NUMBERS: &[&str] = &[
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "-1",
    "0",
    "nan",
    "inf",
];

/// Argument shapes before a positional number: none, and a key.
const POSITIONAL_PREFIXES: &[&[&str]] = &[&[], &["k"]];

/// Argument shapes before an option: a key and a value (SET's), and a lock key,
/// owner and ttl (LOCK.ACQUIRE's; the owner differs from the holder so WAIT queues).
const OPTION_PREFIXES: &[&[&str]] = &[&["k", "v"], &["L", "p", "1000"]];

/// How many of [`extreme_values`] (the first ones) are numbers.
const NUMBERS: usize = 21;

fn extreme_values() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "-9223372036854775808",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-18446744073709551616",
        "-1",
        "0",
        "1",
        "2",
        "3",
        "-0",
        "nan",
        "-nan",
        "inf",
        "-inf",
        "+inf",
        "1e308",
        "-1e400",
        "0x10",
        "1.5",
        "",
        " ",
        "\0",
        "a\0b",
        "*",
        "[",
        "\\",
        "%s%n",
        "\r\n",
        "\u{ff}",
        "2147483648",
        "4294967296",
        "-2147483649",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(vec![b'x'; 70_000]);
    v.push(vec![b'9'; 400]);
    v
}

/// Option keywords and names that take commands down their deeper paths. No
/// CONFIG option names: CONFIG SET requirepass or maxclients would change the
/// test's world, not probe the server.
const KEYWORDS: &[&str] = &[
    "EX",
    "PX",
    "EXAT",
    "PXAT",
    "KEEPTTL",
    "GET",
    "NX",
    "XX",
    "GT",
    "LT",
    "PERSIST",
    "WAIT",
    "LIMIT",
    "SHARED",
    "SESSION",
    "COUNT",
    "MATCH",
    "TYPE",
    "ID",
    "ADDR",
    "LADDR",
    "SKIPME",
    "USER",
    "MAXAGE",
    "ASYNC",
    "SYNC",
    "ON",
    "OFF",
    "yes",
    "no",
    "normal",
    "master",
    "replica",
    "pubsub",
    "string",
    "list",
    "lock",
    "LIB-NAME",
    "LIB-VER",
    "AUTH",
    "SETNAME",
    "FILTERBY",
    "ACLCAT",
    "PATTERN",
    "MODULE",
    "default",
    "return 1",
    "return ARGV[1]",
    "return redis.call(ARGV[1], KEYS[1])",
    "return {1, {2, 'x'}, true}",
];

const KEYS: &[&str] = &["k", "l", "L", "missing", "n"];

/// Where the server under test listens.
#[derive(Clone)]
enum Target {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

enum Outcome {
    Reply(Vec<u8>),
    /// Bytes that do not start a RESP value: an earlier reply broke the framing.
    Malformed(Vec<u8>),
    Closed,
    TimedOut,
}

impl Conn {
    /// Connects, or fails if the server does not accept within [`REPLY_WITHIN`]
    /// (a full backlog of a stalled server makes a Unix-socket connect wait).
    async fn open(target: &Target) -> std::io::Result<Conn> {
        let connect = async {
            Ok::<Box<dyn Io>, std::io::Error>(match target {
                Target::Tcp(addr) => Box::new(TcpStream::connect(addr).await?),
                Target::Unix(path) => Box::new(UnixStream::connect(path).await?),
            })
        };
        let io = tokio::time::timeout(REPLY_WITHIN, connect)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        Ok(Conn {
            io,
            buf: Vec::new(),
        })
    }

    async fn send(&mut self, args: &[Vec<u8>]) -> std::io::Result<()> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        // A server that stops reading must fail the request, not hang the run.
        tokio::time::timeout(REPLY_WITHIN, self.io.write_all(&out))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    /// Reads one complete reply, or says the connection closed or stayed silent.
    async fn reply(&mut self, within: Duration) -> Outcome {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self
                .buf
                .first()
                .is_some_and(|b| !b"+-:$*_,#!=(%~>|".contains(b))
            {
                return Outcome::Malformed(std::mem::take(&mut self.buf));
            }
            if let Some(n) = reply_len(&self.buf) {
                let rest = self.buf.split_off(n);
                return Outcome::Reply(std::mem::replace(&mut self.buf, rest));
            }
            let mut chunk = [0u8; 65536];
            match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
                Err(_) => return Outcome::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => return Outcome::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn call(&mut self, args: &[&[u8]], within: Duration) -> Outcome {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        if self.send(&args).await.is_err() {
            return Outcome::Closed;
        }
        self.reply(within).await
    }
}

/// The length of the first complete RESP2/RESP3 reply in `buf`, if there is one.
/// Iterative: a count of values still expected, not recursion.
fn reply_len(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    let mut pending: u64 = 1;
    while pending > 0 {
        let end = pos + buf.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
        let kind = *buf.get(pos)?;
        // A line without a type byte is not RESP: report it as no reply.
        let head = std::str::from_utf8(buf.get(pos + 1..end)?).ok()?;
        pos = end + 2;
        pending -= 1;
        match kind {
            b'$' | b'!' | b'=' => {
                let n: i64 = head.parse().ok()?;
                if n >= 0 {
                    pos += n as usize + 2;
                    if pos > buf.len() {
                        return None;
                    }
                }
            }
            b'*' | b'~' | b'>' => {
                let n: i64 = head.parse().ok()?;
                pending += n.max(0) as u64;
            }
            b'%' | b'|' => {
                let n: i64 = head.parse().ok()?;
                // An attribute precedes the reply it annotates.
                pending += 2 * n.max(0) as u64 + u64::from(kind == b'|');
            }
            _ => {}
        }
    }
    Some(pos)
}

/// A command to probe: the words that name it and whether it may block.
struct Probe {
    name: String,
    words: Vec<Vec<u8>>,
    blocking: bool,
}

async fn probes(target: &Target) -> Vec<Probe> {
    let mut con = Conn::open(target).await.expect("connects");
    let Outcome::Reply(list) = con.call(&[b"COMMAND", b"LIST"], REPLY_WITHIN).await else {
        panic!("COMMAND LIST gets no reply");
    };
    let names: Vec<String> = String::from_utf8_lossy(&list)
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with(['*', '$']))
        .map(str::to_string)
        .collect();
    assert!(names.len() > 40, "COMMAND LIST: {names:?}");
    let mut out = Vec::new();
    for name in names {
        if SKIPPED.contains(&name.as_str()) {
            continue;
        }
        let words: Vec<Vec<u8>> = name.split('|').map(|w| w.as_bytes().to_vec()).collect();
        let mut info = vec![b"COMMAND".to_vec(), b"INFO".to_vec()];
        info.push(words[0].clone());
        let info: Vec<&[u8]> = info.iter().map(Vec::as_slice).collect();
        let Outcome::Reply(info) = con.call(&info, REPLY_WITHIN).await else {
            panic!("COMMAND INFO {name} gets no reply");
        };
        let blocking = info.windows(11).any(|w| w == b"+blocking\r\n");
        out.push(Probe {
            name,
            words,
            blocking,
        });
    }
    out
}

/// Empties the server and puts a string, a list and a lock in place, so commands
/// meet each type and a deadline set by one request is the only one.
async fn setup(con: &mut Conn) {
    for words in [
        &["FLUSHALL"][..],
        &["SET", "k", "v"],
        &["SET", "n", "10"],
        &["RPUSH", "l", "a", "b", "c"],
        &["LOCK.ACQUIRE", "L", "o", "100000"],
    ] {
        let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        assert!(matches!(
            con.call(&words, REPLY_WITHIN).await,
            Outcome::Reply(_)
        ));
    }
}

fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn show(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            let s: String = String::from_utf8_lossy(&a[..a.len().min(24)])
                .escape_debug()
                .collect();
            if a.len() > 24 {
                format!("\"{s}...\"({} bytes)", a.len())
            } else {
                format!("\"{s}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends every probe its arguments; returns the failures and the request count.
async fn run(target: &Target) -> (Vec<String>, usize) {
    let started = Instant::now();
    let trace = std::env::var_os("ALL_COMMANDS_TRACE").is_some();
    let values = extreme_values();
    let mut failures = Vec::new();
    let mut sent = 0;
    for probe in probes(target).await {
        let mut rng = fastrand::Rng::with_seed(seed_of(&probe.name));
        let mut con = Conn::open(target).await.expect("connects");
        setup(&mut con).await;
        let samples = if probe.blocking { 3 } else { 8 };
        let mut requests: Vec<Vec<Vec<u8>>> = Vec::new();
        let word = |w: &&str| w.as_bytes().to_vec();
        for number in EDGE_NUMBERS {
            // A positional number (EXPIRE k n, SETEX k n v, BLPOP k n, SELECT n).
            for prefix in POSITIONAL_PREFIXES {
                let mut args = probe.words.clone();
                args.extend(prefix.iter().map(word));
                args.push(word(number));
                requests.push(args.clone());
                args.push(b"v".to_vec());
                requests.push(args);
            }
            for prefix in OPTION_PREFIXES {
                for option in NUMERIC_OPTIONS {
                    let mut args = probe.words.clone();
                    args.extend(prefix.iter().map(word));
                    args.push(word(option));
                    args.push(word(number));
                    requests.push(args);
                }
            }
        }
        for arity in 0..=6usize {
            for _ in 0..if arity == 0 { 1 } else { samples } {
                let mut args = probe.words.clone();
                let end = args.len() + arity;
                while args.len() < end {
                    match rng.u8(..10) {
                        0..=3 => args.push(values[rng.usize(..values.len())].clone()),
                        4..=6 => {
                            args.push(KEYWORDS[rng.usize(..KEYWORDS.len())].as_bytes().to_vec());
                            // An option followed by an extreme number reaches its
                            // arithmetic.
                            if args.len() < end && rng.u8(..10) < 7 {
                                args.push(values[rng.usize(..NUMBERS)].clone());
                            }
                        }
                        _ => args.push(KEYS[rng.usize(..KEYS.len())].as_bytes().to_vec()),
                    }
                }
                requests.push(args);
            }
        }
        for args in requests {
            assert!(started.elapsed() < RUN_WITHIN, "the run took too long");
            if trace {
                eprintln!("{} {}", probe.name, show(&args));
            }
            sent += 1;
            let within = if probe.blocking {
                BLOCKED_AFTER
            } else {
                REPLY_WITHIN
            };
            let outcome = match con.send(&args).await {
                Ok(()) => con.reply(within).await,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Outcome::TimedOut,
                Err(_) => Outcome::Closed,
            };
            match outcome {
                Outcome::Reply(_) => continue,
                Outcome::TimedOut if probe.blocking => {}
                Outcome::Closed if MAY_CLOSE.contains(&probe.name.as_str()) => {}
                Outcome::TimedOut => failures.push(format!("no reply: {}", show(&args))),
                Outcome::Malformed(bytes) => failures.push(format!(
                    "broken framing at or before: {} ({:?})",
                    show(&args),
                    String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
                )),
                Outcome::Closed => failures.push(format!("connection closed: {}", show(&args))),
            }
            // A new connection for what follows (the old one is blocked or gone).
            con = Conn::open(target).await.expect("the server still accepts");
            setup(&mut con).await;
        }
        let mut check = Conn::open(target).await.expect("the server still accepts");
        match check.call(&[b"PING"], REPLY_WITHIN).await {
            Outcome::Reply(r) if r == b"+PONG\r\n" => {}
            _ => failures.push(format!("no PONG after {}", probe.name)),
        }
    }
    (failures, sent)
}

/// Active expiry still runs: a key with a short TTL leaves DBSIZE by itself.
async fn expiry_still_runs(target: &Target) -> bool {
    let mut con = Conn::open(target).await.expect("connects");
    con.call(&[b"SELECT", b"0"], REPLY_WITHIN).await;
    con.call(&[b"FLUSHALL"], REPLY_WITHIN).await;
    con.call(&[b"SET", b"soon", b"v", b"PX", b"20"], REPLY_WITHIN)
        .await;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if let Outcome::Reply(r) = con.call(&[b"DBSIZE"], REPLY_WITHIN).await {
            if r == b":0\r\n" {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn check(what: &str, failures: &[String], sent: usize) {
    assert!(sent > 1_000, "{what}: only {sent} requests");
    assert!(
        failures.is_empty(),
        "{what}: {} of {sent} requests failed:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// An empty directory for a server's RDB file (SAVE and BGSAVE are among
/// the commands sent), so none lands in the crate's directory.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("latchkey-{}-all-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_with_extreme_arguments_gets_a_reply_in_process() {
    // SAVE, BGSAVE and FLUSHALL write their file in a directory of the test's own.
    let dir = scratch_dir("in-process");
    let server = latchkey::Server::builder()
        .dir(&dir)
        .expect("a directory")
        .start()
        .await
        .expect("starts");
    let target = Target::Tcp(server.addr());
    let (mut failures, sent) = run(&target).await;
    if !expiry_still_runs(&target).await {
        failures.push("active expiry stopped".into());
    }
    check("in-process server", &failures, sent);
}

/// The spawned binary, killed when dropped.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_with_extreme_arguments_gets_a_reply_from_the_binary() {
    let sock = std::env::temp_dir().join(format!("latchkey-{}-all.sock", std::process::id()));
    let log = std::env::temp_dir().join(format!("latchkey-{}-all.log", std::process::id()));
    let mut server = Spawned(
        Command::new(BIN)
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--loglevel",
                "warning",
                "--dir",
                scratch_dir("binary").to_str().expect("a UTF-8 path"),
                "--unixsocket",
            ])
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawns"),
    );
    let until = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&sock).await.is_err() {
        assert!(Instant::now() < until, "the binary never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let target = Target::Unix(sock.clone());
    let (mut failures, sent) = run(&target).await;
    if !expiry_still_runs(&target).await {
        failures.push("active expiry stopped".into());
    }
    let alive = server.0.try_wait().ok().flatten().is_none();
    drop(server);
    let _ = std::fs::remove_file(&sock);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(alive, "the binary exited:\n{output}");
    assert!(
        !output.contains("panicked"),
        "the binary panicked:\n{output}"
    );
    check("binary", &failures, sent);
}
