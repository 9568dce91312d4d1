//! GET/SET latency of 50 clients while a snapshot of 1,000,000 keys is taken
//! (`persist::Snapshot` into a sink that discards the bytes), against the same
//! load without a snapshot. Bounded: two timed phases on 127.0.0.1.
//!
//! `cargo bench --bench snapshot_latency [-- KEYS CLIENTS]`
//!
//! The server runs on its own 2-worker runtime (`start_blocking`), the
//! clients on another; the snapshot on a plain thread, as BGSAVE will.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::keyspace::{Entry, Value};
use latchkey::persist::{Snapshot, SnapshotSink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Touches what an encoder would read (lengths), writes nothing.
#[derive(Default)]
struct Discard {
    keys: u64,
    bytes: u64,
}

impl SnapshotSink for Discard {
    fn fencing_high_water(&mut self, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn select_db(&mut self, _: usize, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn entry(&mut self, key: &[u8], value: &Value, _: Option<u64>) -> io::Result<()> {
        self.keys += 1;
        self.bytes += key.len() as u64;
        if let Value::Str(s) = value {
            self.bytes += s.as_slice().len() as u64;
        }
        Ok(())
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    if samples.is_empty() {
        println!("{name}: no samples");
        return;
    }
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    println!(
        "{name:<20} n={:<8} p50={:>8.1?} p99={:>8.1?} p99.9={:>8.1?} max={:>8.1?}",
        samples.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

/// One client: alternating GET and SET of random keys until `stop`.
async fn client(
    addr: std::net::SocketAddr,
    keys: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256];
    let mut x = seed | 1;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("key:{}", x as usize % keys);
        let req = if n.is_multiple_of(2) {
            format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len())
        } else {
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$5\r\nvalue\r\n",
                key.len()
            )
        };
        n += 1;
        let t = Instant::now();
        s.write_all(req.as_bytes()).await.unwrap();
        // Every reply here fits one read and ends with \r\n.
        let mut got = 0;
        loop {
            got += s.read(&mut buf[got..]).await.unwrap();
            if complete(&buf[..got]) {
                break;
            }
        }
        out.push(t.elapsed());
    }
    out
}

/// Whether `b` holds a whole reply: a bulk string (two lines) or one line.
fn complete(b: &[u8]) -> bool {
    let lines = b.windows(2).filter(|w| w == b"\r\n").count();
    match b.first() {
        Some(b'$') if !b.starts_with(b"$-1") => lines >= 2,
        Some(_) => lines >= 1,
        None => false,
    }
}

fn load(
    clients: usize,
    keys: usize,
    addr: std::net::SocketAddr,
    phase: impl FnOnce(),
) -> Vec<Duration> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            rt.spawn(client(
                addr,
                keys,
                0x9E37_79B9 * (i as u64 + 1),
                stop.clone(),
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    phase();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(rt.block_on(t).unwrap());
    }
    all
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test` runs bench targets with no arguments but --bench may be
    // absent: keep it small then.
    let under_test = !args.iter().any(|a| a == "--bench");
    let num = |i: usize, d: usize| {
        args.iter()
            .filter(|a| !a.starts_with("--"))
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let keys = num(1, if under_test { 10_000 } else { 1_000_000 });
    let clients = num(2, if under_test { 4 } else { 50 });

    let server = latchkey::Server::builder().start_blocking().unwrap();
    let shared = server.shared().clone();
    let t = Instant::now();
    {
        let db = shared.keyspace.db(0).unwrap();
        let now = shared.clock.now_ms();
        for i in 0..keys {
            let key = format!("key:{i}");
            let value = Value::string(format!("value:{i}").as_bytes());
            db.lock(key.as_bytes())
                .insert(key.as_bytes(), Entry::persistent(value), now);
        }
    }
    println!(
        "loaded {keys} keys in {:.1?}; {clients} clients GET/SET",
        t.elapsed()
    );

    let mut without = Duration::ZERO;
    let base = load(clients, keys, server.addr(), || {
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(if under_test { 1 } else { 3 }));
        without = t.elapsed();
    });
    percentiles("without snapshot", base);

    let mut took = Duration::ZERO;
    let mut stats = Default::default();
    let mut sink = Discard::default();
    let during = load(clients, keys, server.addr(), || {
        let t = Instant::now();
        let snap = Snapshot::begin(&shared.keyspace, &shared.gate, &shared.clock).unwrap();
        let begun = t.elapsed();
        stats = snap.write_to(&mut sink).unwrap();
        took = t.elapsed();
        println!("snapshot: begin {begun:.1?}, total {took:.1?}");
    });
    percentiles("during snapshot", during);
    println!(
        "snapshot emitted {} keys ({} live, {} preserved), {} bytes of keys and strings",
        sink.keys, stats.live, stats.preserved, sink.bytes
    );
}
