//! Pub/sub fan-out, latchkey and redis-server side by side in one run (both
//! listen on 127.0.0.1; bounded in messages and time):
//!
//! - (a) one publisher, 50 subscribers of one channel;
//! - (b) 1,000 channels with one subscriber each, the publisher cycling them.
//!
//! Each scenario runs in two modes: *saturated* (the publisher keeps a window of
//! pipelined PUBLISHes outstanding, so the server is the bottleneck) and *paced*
//! (a fixed publish rate, the same for both servers, for latency under load that
//! does not queue). Every payload carries its send time (nanoseconds since the
//! bench started); a subscriber takes the time once per read and records each
//! message's publish-to-receive latency. Figures per run: deliveries per second
//! (first publish to last delivery), p50/p99 latency, and the server's CPU time
//! per delivery (user + system from /proc/PID/stat, steadier than wall time on a
//! shared machine). Rounds alternate which server goes first; medians are
//! printed with the spread (min-max) in brackets. A lost or misdelivered
//! message fails the run.
//!
//! The client is one tokio process with raw sockets and a minimal RESP2 reader,
//! so on two cores it is not the bottleneck (see `client_cpu` in the output).
//!
//! `cargo bench --bench fanout [-- ROUNDS] [a|b]` (default 3 rounds, both
//! scenarios). The latchkey
//! binary is the one cargo builds for the bench (release), or `$LATCHKEY`.
//! Under `cargo test` (no `--bench` argument) it is a smoke run with a few
//! hundred messages against latchkey alone.

use std::io;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// How long any one run may take before it is reported as failed.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// Payload bytes: a 20-digit send time, then padding.
const PAYLOAD: usize = 32;

struct Server {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Server {
    fn start(name: &'static str, binary: &str, dir: &std::path::Path) -> Server {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--loglevel", "warning", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{binary} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { name, child, port }
    }

    /// User + system CPU time of the server process, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state (3).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // utime is field 14, stime 15; `f[0]` is field 3.
    num(11) + num(12)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Finds "\r\n" from `from`; the index of '\r'.
fn crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn int(digits: &[u8]) -> i64 {
    let (neg, d) = match digits.first() {
        Some(b'-') => (true, &digits[1..]),
        _ => (false, digits),
    };
    let v = d
        .iter()
        .fold(0i64, |v, c| v * 10 + i64::from(c.wrapping_sub(b'0')));
    if neg {
        -v
    } else {
        v
    }
}

/// One RESP2 array of bulk strings and integers at the start of `buf`: its parts
/// (up to 4) and the bytes it takes, or None if incomplete.
fn frame(buf: &[u8]) -> Option<(usize, [&[u8]; 4], usize)> {
    assert_eq!(buf.first(), Some(&b'*'), "unexpected frame {:?}", buf);
    let end = crlf(buf, 1)?;
    let n = usize::try_from(int(&buf[1..end])).unwrap();
    assert!(n <= 4, "array of {n}");
    let mut parts: [&[u8]; 4] = [&[]; 4];
    let mut pos = end + 2;
    for part in parts.iter_mut().take(n) {
        let e = crlf(buf, pos + 1)?;
        match buf[pos] {
            b'$' => {
                let len = usize::try_from(int(&buf[pos + 1..e])).unwrap();
                let start = e + 2;
                if buf.len() < start + len + 2 {
                    return None;
                }
                *part = &buf[start..start + len];
                pos = start + len + 2;
            }
            b':' => {
                *part = &buf[pos + 1..e];
                pos = e + 2;
            }
            other => panic!("unexpected type byte {other}"),
        }
    }
    Some((pos, parts, n))
}

fn command(parts: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
}

/// Subscribes to `channels`, waits at `ready`, then reads `expect` messages;
/// returns their latencies in nanoseconds.
async fn subscriber(
    port: u16,
    channels: Vec<Vec<u8>>,
    expect: usize,
    base: Instant,
    ready: Arc<Barrier>,
) -> io::Result<Vec<u64>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    let mut req = Vec::new();
    let mut parts: Vec<&[u8]> = vec![b"SUBSCRIBE"];
    parts.extend(channels.iter().map(Vec::as_slice));
    command(&parts, &mut req);
    s.write_all(&req).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut confirmed = 0;
    let mut lat = Vec::with_capacity(expect);
    let mut waited = false;
    loop {
        // Parse what is there.
        let mut at = 0;
        let now = base.elapsed().as_nanos() as u64;
        while let Some((used, p, n)) = buf.get(at..).filter(|b| !b.is_empty()).and_then(frame) {
            at += used;
            match p[0] {
                b"subscribe" => confirmed += 1,
                b"message" => {
                    assert_eq!(n, 3);
                    assert!(channels.iter().any(|c| c.as_slice() == p[1]));
                    let sent = u64::try_from(int(&p[2][..20])).unwrap();
                    lat.push(now.saturating_sub(sent));
                }
                other => panic!("unexpected {:?}", String::from_utf8_lossy(other)),
            }
        }
        buf.drain(..at);
        if confirmed == channels.len() && !waited {
            waited = true;
            ready.wait().await;
        }
        if lat.len() >= expect {
            assert_eq!(lat.len(), expect, "more messages than published");
            return Ok(lat);
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let n = s.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "subscriber closed after {} of {expect} messages",
                lat.len()
            )));
        }
    }
}

/// How the publisher sends.
#[derive(Clone, Copy)]
enum Mode {
    /// Keep this many PUBLISHes outstanding.
    Saturated { window: usize },
    /// This many PUBLISHes per second, sent each millisecond.
    Paced { per_second: u64 },
}

/// Publishes `n` messages cycling over `channels`; checks each reply counts
/// `receivers`.
async fn publisher(
    port: u16,
    channels: &[Vec<u8>],
    n: usize,
    receivers: i64,
    mode: Mode,
    base: Instant,
) -> io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    let mut out = Vec::new();
    let mut inb: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut sent = 0;
    let mut answered = 0;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while answered < n {
        let batch = match mode {
            Mode::Saturated { window } => window.min(n - sent),
            Mode::Paced { per_second } => {
                tick.tick().await;
                let due = (started.elapsed().as_micros() as u64 * per_second / 1_000_000) as usize;
                due.min(n) - sent
            }
        };
        out.clear();
        let mut payload = [b'.'; PAYLOAD];
        let ts = base.elapsed().as_nanos() as u64;
        payload[..20].copy_from_slice(format!("{ts:020}").as_bytes());
        for i in sent..sent + batch {
            command(
                &[b"PUBLISH", &channels[i % channels.len()], &payload],
                &mut out,
            );
        }
        sent += batch;
        s.write_all(&out).await?;
        let mut pending = batch;
        while pending > 0 {
            let mut at = 0;
            while let Some(e) = crlf(&inb, at) {
                assert_eq!(inb[at], b':', "{:?}", String::from_utf8_lossy(&inb[at..e]));
                assert_eq!(int(&inb[at + 1..e]), receivers);
                at = e + 2;
                pending -= 1;
                answered += 1;
            }
            inb.drain(..at);
            if pending > 0 && s.read_buf(&mut inb).await? == 0 {
                return Err(io::Error::other("publisher's connection closed"));
            }
        }
    }
    Ok(())
}

struct Run {
    delivered_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    server_cpu_us: f64,
    client_cpu: f64,
}

/// One run of a scenario against `server`.
async fn run(
    server: &Server,
    subscribers: usize,
    channels_per_sub: usize,
    publishes: usize,
    mode: Mode,
) -> Run {
    let channels: Vec<Vec<u8>> = (0..subscribers * channels_per_sub)
        .map(|i| format!("fanout:{i}").into_bytes())
        .collect();
    let shared = channels_per_sub == 0;
    let (channels, per_sub_expect, receivers) = if shared {
        (vec![b"fanout".to_vec()], publishes, subscribers as i64)
    } else {
        (
            channels,
            publishes / (subscribers * channels_per_sub) * channels_per_sub,
            1,
        )
    };
    assert!(shared || publishes.is_multiple_of(channels.len()));
    let base = Instant::now();
    let ready = Arc::new(Barrier::new(subscribers + 1));
    let mut tasks = Vec::new();
    for i in 0..subscribers {
        let mine = if shared {
            channels.clone()
        } else {
            channels[i * channels_per_sub..(i + 1) * channels_per_sub].to_vec()
        };
        tasks.push(tokio::spawn(subscriber(
            server.port,
            mine,
            per_sub_expect,
            base,
            ready.clone(),
        )));
    }
    tokio::time::timeout(RUN_LIMIT, ready.wait())
        .await
        .unwrap_or_else(|_| panic!("{}: subscribers did not get ready", server.name));
    let me = std::process::id();
    let (c0, m0) = (server.cpu_ticks(), cpu_ticks(me));
    let t0 = Instant::now();
    let body = async {
        publisher(server.port, &channels, publishes, receivers, mode, base)
            .await
            .expect("publisher");
        let mut lat = Vec::with_capacity(publishes * subscribers.max(1));
        for t in tasks {
            lat.extend(t.await.unwrap().expect("subscriber"));
        }
        lat
    };
    let mut lat = tokio::time::timeout(RUN_LIMIT, body)
        .await
        .unwrap_or_else(|_| panic!("{}: run took over {RUN_LIMIT:?}", server.name));
    let wall = t0.elapsed().as_secs_f64();
    let (c1, m1) = (server.cpu_ticks(), cpu_ticks(me));
    let hz = ticks_per_second();
    let delivered = lat.len();
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    Run {
        delivered_per_s: delivered as f64 / wall,
        p50_us: at(0.5),
        p99_us: at(0.99),
        server_cpu_us: (c1 - c0) as f64 / hz * 1e6 / delivered as f64,
        client_cpu: (m1 - m0) as f64 / hz / wall,
    }
}

fn median_spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn show(v: Vec<f64>, digits: usize) -> String {
    let (m, lo, hi) = median_spread(v);
    format!("{m:.digits$} [{lo:.digits$}-{hi:.digits$}]")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if full { 3 } else { 1 });
    let latchkey =
        std::env::var("LATCHKEY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_latchkey").into());
    let dir = std::env::temp_dir().join(format!("fanout-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut servers = vec![Server::start("latchkey", &latchkey, &dir)];
    if full {
        servers.push(Server::start("redis", "redis-server", &dir));
    }
    // (name, subscribers, channels each (0: all on one channel), publishes, mode)
    let scenarios: Vec<(&str, usize, usize, usize, Mode)> = if full {
        vec![
            (
                "(a) 50 subs, 1 channel, saturated (window 32)",
                50,
                0,
                40_000,
                Mode::Saturated { window: 32 },
            ),
            (
                "(a) 50 subs, 1 channel, paced 4,000 pub/s",
                50,
                0,
                8_000,
                Mode::Paced { per_second: 4_000 },
            ),
            (
                "(b) 1000 channels x 1 sub, saturated (window 32)",
                1000,
                1,
                400_000,
                Mode::Saturated { window: 32 },
            ),
            (
                "(b) 1000 channels x 1 sub, paced 10,000 pub/s",
                1000,
                1,
                20_000,
                Mode::Paced { per_second: 10_000 },
            ),
        ]
    } else {
        vec![
            ("(a) smoke", 50, 0, 200, Mode::Saturated { window: 32 }),
            (
                "(b) smoke",
                1000,
                1,
                2000,
                Mode::Paced { per_second: 20_000 },
            ),
        ]
    };
    // `a` or `b` among the arguments runs that scenario alone.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a == "a" || a == "b")
        .map(|a| format!("({a})"))
        .collect();
    let scenarios: Vec<_> = scenarios
        .into_iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| s.0.starts_with(o.as_str())))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (name, subs, per, publishes, mode) in scenarios {
            println!("{name}: {publishes} publishes, {rounds} rounds");
            let mut by_server: Vec<Vec<Run>> = servers.iter().map(|_| Vec::new()).collect();
            for round in 0..rounds {
                let mut order: Vec<usize> = (0..servers.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for i in order {
                    by_server[i].push(run(&servers[i], subs, per, publishes, mode).await);
                }
            }
            let mut medians = Vec::new();
            for (server, runs) in servers.iter().zip(by_server) {
                let col = |f: fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
                medians.push((
                    median_spread(col(|r| r.delivered_per_s)).0,
                    median_spread(col(|r| r.p99_us)).0,
                    median_spread(col(|r| r.server_cpu_us)).0,
                ));
                println!(
                    "  {:<8} delivered/s {}  p50 {} us  p99 {} us  server CPU/delivery {} us  client CPU {}",
                    server.name,
                    show(col(|r| r.delivered_per_s), 0),
                    show(col(|r| r.p50_us), 1),
                    show(col(|r| r.p99_us), 1),
                    show(col(|r| r.server_cpu_us), 3),
                    show(col(|r| r.client_cpu), 2),
                );
            }
            if let [l, r] = medians[..] {
                println!(
                    "  latchkey/redis: delivered/s {:.2}x  p99 {:.2}x  CPU/delivery {:.2}x",
                    l.0 / r.0,
                    l.1 / r.1,
                    l.2 / r.2
                );
            }
        }
    });
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}
