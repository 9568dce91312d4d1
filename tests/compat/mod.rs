//! Replays a `redis-tests/*.txt` case file against latchkey and compares replies
//! with those recorded from a real redis-server (format: redis-tests/FORMAT.md).

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply as read off the wire.
#[derive(Debug)]
pub enum Resp {
    /// `+`, `-`, `:`, `,`, `(`, `#`: the type byte and the line.
    Line(u8, Vec<u8>),
    /// `$` or `=` with its payload.
    Blob(u8, Vec<u8>),
    /// `$-1`
    Nil,
    /// `*-1`
    NilArray,
    /// `_`
    Null,
    /// `*`, `~`, `>`, `%` (a map's elements flattened).
    Aggregate(u8, Vec<Resp>),
}

/// A raw connection to a server, reading replies as [`Resp`].
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// A connection to `addr`.
    pub async fn open(addr: std::net::SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.expect("connects"),
            buf: Vec::new(),
        }
    }

    /// Sends the command `words` and reads its reply as FORMAT.md lines.
    pub async fn ask_lines(&mut self, words: &[&str]) -> Vec<String> {
        let args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        self.stream.write_all(&encode(&args)).await.expect("write");
        let mut lines = Vec::new();
        render(&self.reply().await, 0, &mut lines);
        lines
    }

    async fn fill(&mut self) {
        // On the heap: a 64 KiB array in this future was copied onto the stack at
        // every level of a nested reply (debug builds), overflowing it 5 deep.
        let mut chunk = vec![0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
            .await
            .expect("reply within 5 s")
            .expect("read");
        assert!(n > 0, "connection closed while a reply was expected");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    async fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return line;
            }
            self.fill().await;
        }
    }

    async fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n + 2 {
            self.fill().await;
        }
        let data = self.buf[..n].to_vec();
        self.buf.drain(..n + 2);
        data
    }

    async fn reply(&mut self) -> Resp {
        let line = self.line().await;
        let (t, rest) = (line[0], &line[1..]);
        let num = || -> i64 { std::str::from_utf8(rest).unwrap().parse().unwrap() };
        match t {
            b'+' | b'-' | b':' | b',' | b'(' | b'#' => Resp::Line(t, rest.to_vec()),
            b'_' => Resp::Null,
            b'$' | b'=' if num() < 0 => Resp::Nil,
            b'$' | b'=' => Resp::Blob(t, self.exact(num() as usize).await),
            b'*' | b'~' | b'>' | b'%' if num() < 0 => Resp::NilArray,
            b'*' | b'~' | b'>' | b'%' => {
                let n = if t == b'%' { 2 * num() } else { num() };
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(Box::pin(self.reply()).await);
                }
                Resp::Aggregate(t, items)
            }
            other => panic!("unexpected reply type {:?}", other as char),
        }
    }
}

fn escape(b: &[u8]) -> String {
    let mut out = String::new();
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out
}

/// Renders a reply as FORMAT.md's lines (the same rules as record.py).
pub fn render(reply: &Resp, indent: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    match reply {
        Resp::Line(t, text) => out.push(format!(
            "{pad}{}{}",
            *t as char,
            String::from_utf8_lossy(text)
        )),
        Resp::Null => out.push(format!("{pad}_")),
        Resp::Nil => out.push(format!("{pad}(nil)")),
        Resp::NilArray => out.push(format!("{pad}(nil-array)")),
        Resp::Blob(b'$', data) => out.push(format!("{pad}\"{}\"", escape(data))),
        Resp::Blob(_, data) => out.push(format!("{pad}={}", escape(data))),
        Resp::Aggregate(t, items) => {
            let n = if *t == b'%' {
                items.len() / 2
            } else {
                items.len()
            };
            out.push(format!("{pad}{}{n}", *t as char));
            for item in items {
                render(item, indent + 2, out);
            }
        }
    }
}

/// Splits a command line as redis-cli does (double quotes with escapes, single
/// quotes).
pub fn split(line: &str) -> Vec<Vec<u8>> {
    latchkey::protocol::split_args(line.as_bytes()).unwrap_or_else(|| panic!("bad quotes: {line}"))
}

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One command of a case file with its recorded reply lines.
struct Case {
    line_no: usize,
    command: String,
    check: bool,
    expected: Vec<String>,
}

fn parse(text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(cmd) = line.strip_prefix(">? ") {
            cases.push(Case {
                line_no: i + 1,
                command: cmd.into(),
                check: false,
                expected: Vec::new(),
            });
        } else if let Some(cmd) = line.strip_prefix("> ") {
            cases.push(Case {
                line_no: i + 1,
                command: cmd.into(),
                check: true,
                expected: Vec::new(),
            });
        } else if line.trim().is_empty() || line.starts_with("# ") || line.trim_end() == "#" {
            // Comments; a reply line `#t` (a RESP3 boolean) has no space.
            continue;
        } else if let Some(last) = cases.last_mut() {
            last.expected.push(line.to_string());
        }
    }
    cases
}

/// Replays `redis-tests/<name>.txt` against a fresh in-process latchkey and panics
/// listing every reply that differs from the recording.
pub async fn replay(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("redis-tests")
        .join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let server = latchkey::Server::builder().start().await.unwrap();
    let mut conn = Conn::open(server.addr()).await;
    conn.ask_lines(&["FLUSHALL"]).await;
    let mut failures = Vec::new();
    let cases = parse(&text);
    assert!(!cases.is_empty(), "{name}.txt has no commands");
    for case in &cases {
        conn.stream
            .write_all(&encode(&split(&case.command)))
            .await
            .unwrap();
        let reply = conn.reply().await;
        if !case.check {
            continue;
        }
        let mut got = Vec::new();
        render(&reply, 0, &mut got);
        if got != case.expected {
            failures.push(format!(
                "{name}.txt:{} > {}\n  redis-server: {}\n  latchkey:     {}",
                case.line_no,
                case.command,
                case.expected.join("\n                "),
                got.join("\n                ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} replies differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
