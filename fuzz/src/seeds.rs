//! The seed corpora of the `resp`, `commands`, `config` and `rdb` targets,
//! written from `redis-tests/*.txt` (the commands of each recording, and
//! the DUMP payloads redis-server gave there) and from values an in-process
//! server builds. `cargo test --manifest-path fuzz/Cargo.toml --target-dir
//! target write_seed_corpora -- --ignored` writes them again (each seed
//! small; about 0.5 MB in all).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use latchkey::reply::Reply;

/// One recorded command and the reply lines under it.
pub struct Recorded {
    /// The line as written after `> ` (an inline command).
    pub line: String,
    pub words: Vec<Bytes>,
    pub reply: Vec<String>,
}

/// The commands of every `redis-tests/*.txt`, by file, in name order.
pub fn recordings() -> Vec<(String, Vec<Recorded>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../redis-tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("redis-tests")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable");
            let mut commands: Vec<Recorded> = Vec::new();
            for line in text.lines() {
                let command = line.strip_prefix(">? ").or_else(|| line.strip_prefix("> "));
                if let Some(cmd) = command {
                    if let Some(words) = latchkey::protocol::split_args(cmd.as_bytes()) {
                        commands.push(Recorded {
                            line: cmd.to_string(),
                            words: words.into_iter().map(Bytes::from).collect(),
                            reply: Vec::new(),
                        });
                    }
                } else if !line.starts_with("# ") && !line.trim().is_empty() {
                    if let Some(last) = commands.last_mut() {
                        last.reply.push(line.to_string());
                    }
                }
            }
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, commands)
        })
        .collect()
}

/// A recorded bulk string reply line (`"..."`, escaped as FORMAT.md says).
pub fn unescape(line: &str) -> Option<Vec<u8>> {
    let inner = line.trim().strip_prefix('"')?.strip_suffix('"')?;
    let b = inner.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' if i + 3 < b.len() => {
                    out.push(
                        u8::from_str_radix(std::str::from_utf8(&b[i + 2..i + 4]).ok()?, 16).ok()?,
                    );
                    i += 4;
                    continue;
                }
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                c => out.push(c),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("the old seeds removed");
    }
    std::fs::create_dir_all(&dir).expect("a corpus directory");
    dir
}

/// A multibulk request.
pub fn multibulk(words: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
        out.extend_from_slice(w);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn write_resp(files: &[(String, Vec<Recorded>)]) {
    use crate::resp::header;
    let dir = corpus("resp");
    for (n, (name, commands)) in files.iter().enumerate() {
        // Every other command inline, as typed; the rest as multibulk.
        let mut stream = header(true, 0, 0, n as u16).to_vec();
        for (i, c) in commands.iter().enumerate() {
            if i % 2 == 1 && !c.line.contains(['\r', '\n']) {
                stream.extend_from_slice(c.line.as_bytes());
                stream.extend_from_slice(b"\r\n");
            } else {
                stream.extend(multibulk(&c.words));
            }
            if stream.len() > 3000 {
                break;
            }
        }
        std::fs::write(dir.join(format!("seed-{name}")), stream).unwrap();
    }
    let words =
        |w: &[&str]| -> Vec<Bytes> { w.iter().map(|s| Bytes::from(s.to_string())).collect() };
    let mut big = header(true, 0, 0, 9).to_vec();
    let value = "v".repeat(latchkey::protocol::BIG_ARG + 10);
    big.extend(multibulk(&words(&["SET", "k", &value])));
    big.extend(multibulk(&words(&["GET", "k"])));
    std::fs::write(dir.join("seed-big-argument"), big).unwrap();
    let special: &[(&str, [u8; 4], &[u8])] = &[
        (
            "unauthenticated",
            header(false, 0, 0, 1),
            b"*2\r\n$4\r\nAUTH\r\n$1\r\np\r\n*11\r\n",
        ),
        (
            "unauthenticated-bulk",
            header(false, 0, 0, 2),
            b"*1\r\n$16385\r\n",
        ),
        ("over-bulk-limit", header(true, 5, 0, 3), b"*1\r\n$101\r\n"),
        (
            "over-multibulk-limit",
            header(true, 0, 2, 4),
            b"*11\r\n$1\r\na\r\n",
        ),
        (
            "huge-bulk",
            header(true, 0, 0, 5),
            b"*1\r\n$536870912\r\nab",
        ),
        (
            "bad-lengths",
            header(true, 0, 0, 6),
            b"*1\r\n$-0\r\n*01\r\n$1\r\n",
        ),
        ("not-bulk", header(true, 0, 0, 7), b"*2\r\n:1\r\n"),
        (
            "inline-quotes",
            header(true, 0, 0, 8),
            b"SET k \"a\\x41\\n\" 'b\\'c'\r\nGET \"unbalanced\r\n",
        ),
        (
            "blank-and-empty",
            header(true, 0, 0, 9),
            b"\r\n\n*0\r\n*-1\r\n PING \r\n",
        ),
        ("filler", [0xf1, 0, 1, 0], b"*1\r\n$3"),
    ];
    for (name, head, stream) in special {
        let mut data = head.to_vec();
        data.extend_from_slice(stream);
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    }
}

fn write_commands(files: &[(String, Vec<Recorded>)]) {
    use crate::commands::{Writer, KEYS};
    let shared = crate::new_server();
    let dir = corpus("commands");
    for (name, commands) in files {
        let mut keys: Vec<Bytes> = Vec::new();
        let mut chunk = 0;
        let mut w = Writer::new(false, false);
        let mut in_chunk = 0;
        let flush = |w: &mut Writer, chunk: &mut usize, in_chunk: &mut usize| {
            if *in_chunk > 0 {
                std::fs::write(dir.join(format!("seed-{name}-{chunk}")), &w.out).unwrap();
                *chunk += 1;
            }
            *in_chunk = 0;
            *w = Writer::new(false, *chunk % 2 == 1);
        };
        for c in commands {
            let mut slot = |k: &[u8]| {
                let i = keys.iter().position(|x| x == k).unwrap_or_else(|| {
                    keys.push(Bytes::copy_from_slice(k));
                    keys.len() - 1
                });
                (i % KEYS.len()) as u8
            };
            if w.command(&shared, &c.words, &mut slot) {
                in_chunk += 1;
            }
            if in_chunk == 24 || w.out.len() > 2000 {
                flush(&mut w, &mut chunk, &mut in_chunk);
            }
        }
        flush(&mut w, &mut chunk, &mut in_chunk);
    }
}

fn write_config(files: &[(String, Vec<Recorded>)]) {
    use crate::config::{seed_file, seed_set};
    use latchkey::config::{Config, PARAMS};
    let dir = corpus("config");
    let defaults = Config::default();
    for (i, p) in PARAMS.iter().enumerate() {
        let mut out = Vec::new();
        seed_set(&mut out, p.name, &p.get(&defaults));
        // The setter with another option's default, and a file line.
        out.extend_from_slice(&[0x80, i as u8, 4, i as u8]);
        out.extend_from_slice(&[0xc0, i as u8, 4, i as u8]);
        std::fs::write(dir.join(format!("seed-{}", p.name)), out).unwrap();
    }
    let mut n = 0;
    for (name, commands) in files {
        for c in commands {
            let is = |i: usize, w: &str| {
                c.words
                    .get(i)
                    .is_some_and(|x| x.eq_ignore_ascii_case(w.as_bytes()))
            };
            if is(0, "config") && is(1, "set") && c.words.len() == 4 {
                let mut out = Vec::new();
                let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
                seed_set(&mut out, &text(&c.words[2]), &text(&c.words[3]));
                std::fs::write(dir.join(format!("seed-{name}-{n}")), out).unwrap();
                n += 1;
            }
        }
    }
    let mut out = Vec::new();
    seed_file(
        &mut out,
        "# a config file\nport 7000\nsave \"\"\nsave 3600 1\nsave 60 100\nrequirepass \"s p\"\nappendonly yes\n",
    );
    seed_file(
        &mut out,
        "maxmemory 1gb\nmaxmemory-policy allkeys-lru\nclient-output-buffer-limit normal 0 0 0 pubsub 32mb 8mb 60\n",
    );
    seed_file(
        &mut out,
        "user alice on >pw ~* +@all\nbind 127.0.0.1 -::1\nnotify-keyspace-events \"KEA\"\n",
    );
    std::fs::write(dir.join("seed-file"), out).unwrap();
}

/// Commands that make a value of every type and encoding, whose DUMPs seed
/// the `rdb` target.
const VALUES: &[&[&str]] = &[
    &["SET", "string", "hello"],
    &["SET", "int", "12345"],
    &["SET", "negative", "-7"],
    &["SET", "big-int", "9223372036854775807"],
    &[
        "SET",
        "compressible",
        "abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc",
    ],
    &[
        "RPUSH",
        "list",
        "a",
        "1",
        "-5",
        "300",
        "70000",
        "hello",
        "-4096",
        "9223372036854775807",
    ],
    &["HSET", "hash", "f", "v", "n", "12", "e", ""],
    &[
        "HSET",
        "hash-table",
        "f",
        "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv",
        "g",
        "1",
    ],
    &["SADD", "intset", "3", "1", "2", "-100000", "5000000000"],
    &["SADD", "set", "a", "b", "c", "1"],
    &[
        "SADD",
        "set-table",
        "a",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ],
    &[
        "ZADD", "zset", "1", "a", "2.5", "b", "-inf", "c", "inf", "d",
    ],
    &[
        "ZADD",
        "zset-skiplist",
        "1",
        "a",
        "2",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ],
    &["PFADD", "hll", "a", "b", "c"],
    &["XADD", "stream", "1-1", "a", "1", "b", "2"],
    &["XADD", "stream", "2-0", "c", "3"],
    &["XADD", "stream", "3-0", "a", "1", "b", "2"],
    &["XGROUP", "CREATE", "stream", "g1", "0"],
    &[
        "XREADGROUP",
        "GROUP",
        "g1",
        "alice",
        "COUNT",
        "2",
        "STREAMS",
        "stream",
        ">",
    ],
    &["XGROUP", "CREATECONSUMER", "stream", "g1", "bob"],
    &["XGROUP", "CREATE", "stream", "g2", "$"],
    &["XDEL", "stream", "2-0"],
    &["XADD", "stream-empty", "5-5", "f", "v"],
    &["XDEL", "stream-empty", "5-5"],
];

fn write_rdb(files: &[(String, Vec<Recorded>)]) {
    use crate::rdb::{flags, mode};
    let dir = corpus("rdb");
    let sealed = |payload: &[u8]| -> Option<Vec<u8>> {
        let (body, footer) = payload.split_at(payload.len().checked_sub(10)?);
        let version = u16::from_le_bytes([footer[0], footer[1]]);
        let mut data = vec![flags(mode::SEALED, version, false)];
        data.extend_from_slice(body);
        Some(data)
    };
    // Payloads redis-server gave (DUMP replies) or was given (RESTORE).
    let mut n = 0;
    for (name, commands) in files {
        for c in commands {
            let is = |w: &str| {
                c.words
                    .first()
                    .is_some_and(|x| x.eq_ignore_ascii_case(w.as_bytes()))
            };
            let payload = if is("dump") {
                c.reply.first().and_then(|l| unescape(l))
            } else if is("restore") {
                c.words.get(3).map(|p| p.to_vec())
            } else {
                None
            };
            if let Some(data) = payload.as_deref().and_then(sealed) {
                if data.len() < 8192 {
                    std::fs::write(dir.join(format!("seed-{name}-{n}")), data).unwrap();
                    n += 1;
                }
            }
        }
    }
    // Every type and encoding from an in-process server, at both thresholds.
    for small in [false, true] {
        let shared = crate::new_server();
        let mut session = crate::new_session(&shared, 1);
        let run = |session: &mut latchkey::session::Session, w: &[&str]| {
            let args: Vec<Bytes> = w.iter().map(|s| Bytes::from(s.to_string())).collect();
            crate::execute(&shared, session, &args)
        };
        if small {
            run(
                &mut session,
                &[
                    "CONFIG",
                    "SET",
                    "list-max-listpack-size",
                    "2",
                    "hash-max-listpack-entries",
                    "2",
                    "set-max-intset-entries",
                    "2",
                    "zset-max-listpack-entries",
                    "2",
                    "stream-node-max-entries",
                    "2",
                    "hll-sparse-max-bytes",
                    "30",
                ],
            );
        }
        for cmd in VALUES {
            run(&mut session, cmd);
        }
        // A dense HyperLogLog.
        for i in 0..30 {
            let elements: Vec<String> = (0..100).map(|j| format!("e{i}-{j}")).collect();
            let mut cmd = vec!["PFADD", "hll-dense"];
            cmd.extend(elements.iter().map(String::as_str));
            run(&mut session, &cmd);
        }
        let Reply::Array(keys) = run(&mut session, &["KEYS", "*"]) else {
            panic!("KEYS");
        };
        let mut writer = latchkey::rdb::file::Writer::new(
            Vec::new(),
            latchkey::rdb::file::WriteOptions::default(),
        )
        .unwrap();
        writer.select_db(0, keys.len() as u64, 0).unwrap();
        for k in keys {
            let Reply::Bulk(k) = k else { continue };
            let key = String::from_utf8_lossy(&k).into_owned();
            let Reply::Bulk(p) = run(&mut session, &["DUMP", &key]) else {
                continue;
            };
            let mut data = sealed(&p).unwrap();
            data[0] |= if small { mode::SMALL } else { 0 };
            std::fs::write(dir.join(format!("seed-built-{key}-{small}")), data).unwrap();
            let value = latchkey::rdb::undump(&p, &shared.encodings).unwrap();
            if p.len() < 2000 {
                writer.entry(&k, &value, Some(1_900_000_000_000)).unwrap();
            }
        }
        // A lock, as its aux field.
        let holder = latchkey::types::lock::Holder {
            owner: latchkey::types::CompactBytes::from_slice(b"owner-1"),
            token: 7,
            expires_at: 1_900_000_000_000,
            session: None,
            shared: false,
            delay_ms: 100,
        };
        let lock = latchkey::types::lock::Lock::restored(Some(3), [holder]);
        writer.select_db(2, 1, 0).unwrap();
        writer
            .entry(b"lock", &latchkey::keyspace::Value::Lock(lock), None)
            .unwrap();
        let file = writer.finish().unwrap();
        // After the magic, up to the checksum (the harness appends it).
        let mut data = vec![flags(mode::FILE, 10, small)];
        data.extend_from_slice(&file[9..file.len() - 8]);
        std::fs::write(dir.join(format!("seed-file-{small}")), data).unwrap();
    }
}

/// Writes the seed corpora of `resp`, `commands`, `config` and `rdb`
/// (each directory emptied first).
pub fn write_all() {
    let files = recordings();
    write_resp(&files);
    write_commands(&files);
    write_config(&files);
    write_rdb(&files);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_are_read() {
        let files = recordings();
        assert!(files.len() > 20);
        let dump = files.iter().find(|(n, _)| n == "dump_restore").unwrap();
        let payload = dump
            .1
            .iter()
            .find(|c| c.words[0].eq_ignore_ascii_case(b"dump") && c.words[1] == "s")
            .unwrap();
        assert_eq!(
            unescape(&payload.reply[0]).unwrap()[..7],
            b"\x00\x05hello"[..]
        );
    }

    /// Writes the seed corpora of `resp`, `commands`, `config` and `rdb`
    /// (run with `--ignored`).
    #[test]
    #[ignore]
    fn write_seed_corpora() {
        write_all();
    }
}
