//! The load driver of `benches/streams.sh`: a consumer group read and acked by
//! 10 consumers while producers add, on one server at 127.0.0.1.
//!
//! `cargo bench --bench stream_groups -- PORT ENTRIES [CONSUMERS] [PRODUCERS]`
//!
//! The stream `s` gets `ENTRIES` entries (`XADD s * f v`, one field) from
//! `PRODUCERS` connections (default 2); each of `CONSUMERS` connections
//! (default 10) loops on `XREADGROUP GROUP g cN COUNT 10 BLOCK 100 STREAMS s >`
//! and acknowledges what it got with one `XACK s g id...`, until every entry
//! has been acknowledged. Unpipelined: each connection waits for its reply.
//! Prints `requests seconds` (XADD + XREADGROUP + XACK sent, wall time) and
//! checks that the group ends with nothing pending.
//! Without PORT (as `cargo test` runs it) it is a smoke run of 300 entries
//! against an in-process latchkey.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
enum Resp {
    Simple,
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.set_nodelay(true).unwrap();
        Conn {
            s,
            buf: Vec::with_capacity(1 << 16),
            pos: 0,
        }
    }

    async fn call(&mut self, args: &[&[u8]]) -> Resp {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.s.write_all(&req).await.expect("write");
        loop {
            let mut at = self.pos;
            if let Some(r) = parse(&self.buf, &mut at) {
                self.pos = at;
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                return r;
            }
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn line(buf: &[u8], at: &mut usize) -> Option<Vec<u8>> {
    let rest = buf.get(*at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let out = rest[..end].to_vec();
    *at += end + 2;
    Some(out)
}

fn num(b: &[u8]) -> i64 {
    std::str::from_utf8(b).unwrap().parse().unwrap()
}

/// One reply from `buf` at `at`, or `None` if it has not all arrived.
fn parse(buf: &[u8], at: &mut usize) -> Option<Resp> {
    let l = line(buf, at)?;
    let (kind, rest) = (l[0], &l[1..]);
    Some(match kind {
        b'+' => Resp::Simple,
        b'-' => panic!("error reply: {}", String::from_utf8_lossy(rest)),
        b':' => Resp::Int(num(rest)),
        b'$' => {
            let n = num(rest);
            if n < 0 {
                Resp::Bulk(None)
            } else {
                let n = n as usize;
                let data = buf.get(*at..*at + n)?.to_vec();
                buf.get(*at + n..*at + n + 2)?;
                *at += n + 2;
                Resp::Bulk(Some(data))
            }
        }
        b'*' => {
            let n = num(rest);
            if n < 0 {
                Resp::Array(None)
            } else {
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(parse(buf, at)?);
                }
                Resp::Array(Some(items))
            }
        }
        other => panic!("unexpected reply type {}", other as char),
    })
}

/// The entry IDs of an XREADGROUP reply on one stream.
fn ids(reply: Resp) -> Vec<Vec<u8>> {
    let Resp::Array(Some(streams)) = reply else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in streams {
        let Resp::Array(Some(mut kv)) = s else {
            continue;
        };
        let Some(Resp::Array(Some(entries))) = kv.pop() else {
            continue;
        };
        for e in entries {
            if let Resp::Array(Some(mut pair)) = e {
                if let Resp::Bulk(Some(id)) = pair.swap_remove(0) {
                    out.push(id);
                }
            }
        }
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    // Without a port (`cargo test` runs bench targets so) it is a smoke run
    // against an in-process latchkey: a few hundred entries, 2 consumers.
    let (_server, port, entries, consumers, producers) = match args.first() {
        Some(port) => (
            None,
            port.parse::<u16>().unwrap(),
            args.get(1).map_or(100_000, |a| a.parse().unwrap()),
            args.get(2).map_or(10, |a| a.parse().unwrap()),
            args.get(3).map_or(2, |a| a.parse().unwrap()),
        ),
        None => {
            let server = latchkey::Server::builder().start().await.unwrap();
            let port = server.addr().port();
            (Some(server), port, 300u64, 2usize, 1u64)
        }
    };

    let mut admin = Conn::open(port).await;
    admin.call(&[b"DEL", b"s"]).await;
    admin
        .call(&[b"XGROUP", b"CREATE", b"s", b"g", b"$", b"MKSTREAM"])
        .await;

    let requests = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let requests = requests.clone();
        let share = entries / producers + u64::from(p < entries % producers);
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(port).await;
            for _ in 0..share {
                c.call(&[b"XADD", b"s", b"*", b"f", b"v"]).await;
                requests.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for i in 0..consumers {
        let (requests, acked) = (requests.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(port).await;
            let name = format!("c{i}").into_bytes();
            while acked.load(Ordering::Relaxed) < entries {
                let got = ids(c
                    .call(&[
                        b"XREADGROUP",
                        b"GROUP",
                        b"g",
                        &name,
                        b"COUNT",
                        b"10",
                        b"BLOCK",
                        b"100",
                        b"STREAMS",
                        b"s",
                        b">",
                    ])
                    .await);
                requests.fetch_add(1, Ordering::Relaxed);
                if got.is_empty() {
                    continue;
                }
                let mut ack: Vec<&[u8]> = vec![b"XACK", b"s", b"g"];
                ack.extend(got.iter().map(|id| &id[..]));
                match c.call(&ack).await {
                    Resp::Int(n) => assert_eq!(n as usize, got.len(), "acked"),
                    other => panic!("XACK replied {other:?}"),
                }
                requests.fetch_add(1, Ordering::Relaxed);
                acked.fetch_add(got.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed().as_secs_f64();
    match admin.call(&[b"XPENDING", b"s", b"g"]).await {
        Resp::Array(Some(summary)) => match &summary[0] {
            Resp::Int(0) => {}
            other => panic!("still pending: {other:?}"),
        },
        other => panic!("XPENDING replied {other:?}"),
    }
    match admin.call(&[b"XLEN", b"s"]).await {
        Resp::Int(n) => assert_eq!(n as u64, entries, "XLEN"),
        other => panic!("XLEN replied {other:?}"),
    }
    println!("{} {:.3}", requests.load(Ordering::Relaxed), took);
}
