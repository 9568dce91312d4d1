//! Embedding and lock latencies, printed as percentiles (bounded: a few thousand
//! iterations on 127.0.0.1).
//!
//! `cargo bench --bench latency`
//!
//! - start-to-ready: `Server::builder().start().await` until a client's PING is
//!   answered, then shutdown;
//! - lock hand-off: a holder releases while a second client waits in
//!   `LOCK.ACQUIRE ... WAIT`; measured from sending LOCK.RELEASE to the waiter's
//!   token arriving.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    println!(
        "{name:<16} n={:<5} p50={:>8.1?} p90={:>8.1?} p99={:>8.1?} max={:>8.1?}",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

async fn roundtrip(s: &mut TcpStream, req: &[u8]) -> Vec<u8> {
    s.write_all(req).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    buf.truncate(n);
    buf
}

async fn start_to_ready(n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let server = latchkey::Server::builder().start().await.unwrap();
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"PING\r\n").await, b"+PONG\r\n");
        out.push(t.elapsed());
        drop(s);
        server.shutdown().await;
    }
    out
}

async fn handoff(n: usize) -> Vec<Duration> {
    let server = latchkey::Server::builder().start().await.unwrap();
    let mut a = TcpStream::connect(server.addr()).await.unwrap();
    let mut b = TcpStream::connect(server.addr()).await.unwrap();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let got = roundtrip(&mut a, b"LOCK.ACQUIRE L a 10000\r\n").await;
        assert_eq!(got[0], b':');
        b.write_all(b"LOCK.ACQUIRE L b 10000 WAIT 0\r\n")
            .await
            .unwrap();
        // Let the waiter's request reach the queue.
        while server.lock_info("L").map_or(0, |i| i.waiters) == 0 {
            tokio::task::yield_now().await;
        }
        let t = Instant::now();
        a.write_all(b"LOCK.RELEASE L a\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = b.read(&mut buf).await.unwrap();
        out.push(t.elapsed());
        assert_eq!(buf[0], b':', "{:?}", &buf[..n]);
        let mut ack = [0u8; 8];
        let _ = a.read(&mut ack).await.unwrap();
        assert_eq!(&roundtrip(&mut b, b"LOCK.RELEASE L b\r\n").await, b":1\r\n");
    }
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        percentiles("start-to-ready", start_to_ready(300).await);
        percentiles("lock hand-off", handoff(2000).await);
    });
}
