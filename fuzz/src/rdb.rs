//! Fuzzing what reads RDB bytes a client controls: RESTORE's payload
//! (`rdb::undump`, and RESTORE / DUMP through the dispatcher) and the RDB
//! file loader (`rdb::file::load`, which DEBUG RELOAD and the start-up load
//! feed a file's bytes).
//!
//! A case is a flags byte and a body. The flags choose the mode (a payload
//! whose version and CRC64 the harness appends, so that mutations reach the
//! value readers rather than die at the checksum; a payload taken as it is;
//! a file, the body after the `REDISnnnn` magic, with its CRC64 appended or
//! 0), the RDB version, and the encodings' thresholds (defaults, or 2, so
//! a value loads into its big representation).
//!
//! [`check`] asserts that nothing panics; that no single allocation while
//! reading is larger than [`ALLOCATION_PER_BYTE`] per input byte (plus a
//! constant): no length field becomes an allocation before the bytes behind
//! it exist; and that what loads round-trips:
//!
//! - a payload that loads DUMPs to a payload that loads to a value that
//!   DUMPs the same (compressed or not); RESTORE through the dispatcher
//!   answers OK exactly when the payload loads, DUMP of the key gives that
//!   same payload, and reads and writes of every type's commands on the
//!   key get well-formed replies (a loaded value must be as sound as a
//!   built one);
//! - a file that loads, written again entry by entry, loads to the same
//!   entries (name, database, expiry, payload, or a lock's aux field).

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use latchkey::keyspace::Value;
use latchkey::rdb::{self, encoding::CRC64, file};
use latchkey::reply::Reply;
use latchkey::server::Shared;
use latchkey::types::Encodings;

/// Reading may allocate this much per input byte (an LZF string expands up
/// to about 100 times, a collection's table holds a few words per element).
pub const ALLOCATION_PER_BYTE: usize = 256;
/// ... plus this.
pub const ALLOCATION_SLACK: usize = 1 << 20;

/// Payload versions a case picks from (12 is newer than any read).
const VERSIONS: [u16; 4] = [10, 9, 11, 12];

pub mod mode {
    /// Body, then the version and the CRC64 appended.
    pub const SEALED: u8 = 0;
    /// The whole payload as it is.
    pub const RAW: u8 = 2;
    /// A file after its magic.
    pub const FILE: u8 = 3;
    /// A flag: the encodings' thresholds at 2.
    pub const SMALL: u8 = 0x10;
    /// A flag (file): the CRC64 appended is 0, which the loader skips.
    pub const NO_CRC: u8 = 0x20;
}

/// The flags byte for a case (for the seed corpus).
pub fn flags(mode: u8, version: u16, small: bool) -> u8 {
    let v = VERSIONS.iter().position(|x| *x == version).unwrap_or(0) as u8;
    mode | (v << 2) | if small { mode::SMALL } else { 0 }
}

/// Thresholds of a case.
fn encodings(small: bool) -> &'static Encodings {
    static DEFAULT: OnceLock<Encodings> = OnceLock::new();
    static SMALL: OnceLock<Encodings> = OnceLock::new();
    if !small {
        return DEFAULT.get_or_init(Encodings::default);
    }
    SMALL.get_or_init(|| {
        let e = Encodings::default();
        let mut t = latchkey::config::Config::default().encodings;
        t.hash_entries = 2;
        t.set_intset_entries = 2;
        t.set_entries = 2;
        t.zset_entries = 2;
        t.list_size = 2;
        t.stream_node_entries = 2;
        e.store(&t);
        e
    })
}

/// DUMP's payload of a value (none for a lock).
fn dump(v: &Value, compress: bool) -> Option<Vec<u8>> {
    rdb::dump(v, compress).ok()
}

/// What a value holds, comparable between two loads: its payload, except
/// for a hash or set in a hash table, whose order is the table's (it
/// differs from one table to the next, as Redis's dicts do): those as
/// their encoding and sorted contents.
fn canonical(v: &Value) -> Option<Vec<u8>> {
    let sorted = |encoding: &str, mut items: Vec<Vec<u8>>| {
        items.sort();
        let mut out = encoding.as_bytes().to_vec();
        for i in items {
            out.extend_from_slice(&(i.len() as u64).to_le_bytes());
            out.extend(i);
        }
        out
    };
    match v {
        Value::Hash(h) if h.encoding_name() == "hashtable" => Some(sorted(
            "hash",
            h.iter()
                .map(|(f, v)| [&(f.len() as u64).to_le_bytes()[..], f, v].concat())
                .collect(),
        )),
        Value::Set(s) if s.encoding_name() == "hashtable" => Some(sorted(
            "set",
            s.iter()
                .map(|m| match m {
                    latchkey::types::set::MemberRef::Int(i) => i.to_string().into_bytes(),
                    latchkey::types::set::MemberRef::Bytes(b) => b.to_vec(),
                })
                .collect(),
        )),
        _ => dump(v, true),
    }
}

/// The payload of `body` sealed with `version` and its CRC64.
pub fn seal(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let crc = CRC64.checksum(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

fn bound(input: usize) -> usize {
    ALLOCATION_PER_BYTE * input + ALLOCATION_SLACK
}

/// The server RESTORE runs on, for each thresholds choice.
fn server(small: bool) -> &'static Arc<Shared> {
    static DEFAULT: OnceLock<Arc<Shared>> = OnceLock::new();
    static SMALL: OnceLock<Arc<Shared>> = OnceLock::new();
    let make = |small: bool| {
        let shared = crate::new_server();
        if small {
            let mut session = crate::new_session(&shared, 1);
            let mut args = vec![Bytes::from_static(b"CONFIG"), Bytes::from_static(b"SET")];
            for (name, value) in [
                ("hash-max-listpack-entries", "2"),
                ("set-max-intset-entries", "2"),
                ("set-max-listpack-entries", "2"),
                ("zset-max-listpack-entries", "2"),
                ("list-max-listpack-size", "2"),
                ("stream-node-max-entries", "2"),
            ] {
                args.push(Bytes::from_static(name.as_bytes()));
                args.push(Bytes::from_static(value.as_bytes()));
            }
            let reply = crate::execute(&shared, &mut session, &args);
            assert!(matches!(reply, Reply::Simple("OK")), "{reply:?}");
        }
        shared
    };
    if small {
        SMALL.get_or_init(|| make(true))
    } else {
        DEFAULT.get_or_init(|| make(false))
    }
}

fn words(w: &[&[u8]]) -> Vec<Bytes> {
    w.iter().map(|w| Bytes::copy_from_slice(w)).collect()
}

/// Commands run on a restored key: every type's reads, and writes that
/// convert or extend a value (most answer WRONGTYPE for other types).
const ON_KEY: &[&[&str]] = &[
    &["TYPE", "k"],
    &["OBJECT", "ENCODING", "k"],
    &["MEMORY", "USAGE", "k"],
    &["GET", "k"],
    &["STRLEN", "k"],
    &["GETRANGE", "k", "0", "-1"],
    &["LRANGE", "k", "0", "-1"],
    &["LINDEX", "k", "-1"],
    &["LPOS", "k", "a"],
    &["HGETALL", "k"],
    &["HSCAN", "k", "0", "COUNT", "1000"],
    &["HRANDFIELD", "k", "-5", "WITHVALUES"],
    &["SMEMBERS", "k"],
    &["SSCAN", "k", "0"],
    &["SISMEMBER", "k", "1"],
    &["SRANDMEMBER", "k", "-5"],
    &["ZRANGE", "k", "0", "-1", "WITHSCORES"],
    &["ZRANGEBYSCORE", "k", "-inf", "+inf", "WITHSCORES"],
    &["ZRANGEBYLEX", "k", "-", "+"],
    &["ZREVRANK", "k", "a"],
    &["ZSCAN", "k", "0"],
    &["XRANGE", "k", "-", "+"],
    &["XREVRANGE", "k", "+", "-", "COUNT", "3"],
    &["XINFO", "STREAM", "k", "FULL"],
    &["XINFO", "GROUPS", "k"],
    &["XLEN", "k"],
    &["PFCOUNT", "k"],
    &["SORT", "k", "ALPHA", "LIMIT", "0", "10"],
    &[
        "LPUSH",
        "k",
        "a",
        "1",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ],
    &["LTRIM", "k", "1", "-2"],
    &["LINSERT", "k", "BEFORE", "1", "z"],
    &[
        "HSET",
        "k",
        "f",
        "v",
        "g",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ],
    &["HDEL", "k", "f"],
    &["SADD", "k", "1", "a", "-9223372036854775808"],
    &["SREM", "k", "1"],
    &["SPOP", "k"],
    &[
        "ZADD",
        "k",
        "1",
        "a",
        "-inf",
        "b",
        "2",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ],
    &["ZINCRBY", "k", "5", "a"],
    &["ZREMRANGEBYRANK", "k", "0", "0"],
    &["XADD", "k", "*", "f", "v"],
    &["XTRIM", "k", "MAXLEN", "2"],
    &["XDEL", "k", "0-1"],
    &[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "COUNT",
        "2",
        "STREAMS",
        "k",
        ">",
    ],
    &["XAUTOCLAIM", "k", "g", "c", "0", "0-0"],
    &["XPENDING", "k", "g", "-", "+", "10"],
    &["PFADD", "k", "x", "y"],
    &["PFMERGE", "k", "k"],
    &["SETRANGE", "k", "3", "ab"],
    &["APPEND", "k", "z"],
    &["INCR", "k"],
    &["SETBIT", "k", "100", "1"],
    &["BITCOUNT", "k"],
    &["DUMP", "k"],
];

/// A payload case.
fn check_payload(payload: &[u8], small: bool) {
    let enc = encodings(small);
    let (loaded, largest) = crate::alloc::largest_allocation(|| rdb::undump(payload, enc));
    assert!(
        largest <= bound(payload.len()),
        "reading a payload of {} bytes allocated {largest} bytes at once",
        payload.len()
    );
    if let Ok(v) = &loaded {
        if let Some(p2) = dump(v, true) {
            let v2 = rdb::undump(&p2, enc)
                .unwrap_or_else(|e| panic!("DUMP of a loaded value does not load: {e:?}"));
            assert_eq!(canonical(&v2), canonical(v), "DUMP, RESTORE: another value");
            let plain = dump(v, false).expect("as compressed");
            let v3 = rdb::undump(&plain, enc)
                .unwrap_or_else(|e| panic!("an uncompressed DUMP does not load: {e:?}"));
            assert_eq!(
                canonical(&v3),
                canonical(v),
                "compression changed the value"
            );
        }
    }
    // Through the dispatcher, as a client sends it.
    let shared = server(small);
    let mut session = crate::new_session(shared, 1);
    let run = |session: &mut latchkey::session::Session, args: &[Bytes]| {
        let reply = crate::execute(shared, session, args);
        let mut out = BytesMut::new();
        reply.encode(false, &mut out);
        assert_eq!(
            crate::frames(&out, false),
            Ok(1),
            "{args:?}: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(300)])
        );
        reply
    };
    run(&mut session, &words(&[b"FLUSHALL"]));
    let restore = words(&[b"RESTORE", b"k", b"0", payload, b"REPLACE"]);
    let (reply, largest) = crate::alloc::largest_allocation(|| run(&mut session, &restore));
    assert!(
        largest <= bound(payload.len()),
        "RESTORE of a payload of {} bytes allocated {largest} bytes at once",
        payload.len()
    );
    assert_eq!(
        matches!(reply, Reply::Simple("OK")),
        loaded.is_ok(),
        "RESTORE answered {reply:?} where the payload reads as {:?}",
        loaded.as_ref().map(|_| ())
    );
    if let Ok(v) = &loaded {
        let Reply::Bulk(p) = run(&mut session, &words(&[b"DUMP", b"k"])) else {
            panic!("DUMP of a restored key");
        };
        let stored = rdb::undump(&p, &shared.encodings).expect("DUMP of a restored key loads");
        assert_eq!(
            canonical(&stored),
            canonical(v),
            "the stored value is another"
        );
        for cmd in ON_KEY {
            let args: Vec<Bytes> = cmd
                .iter()
                .map(|w| Bytes::from_static(w.as_bytes()))
                .collect();
            run(&mut session, &args);
        }
    }
}

/// What a loaded file item is, for comparing two loads.
fn describe(item: &file::Loaded) -> Vec<u8> {
    match item {
        file::Loaded::Entry {
            db,
            key,
            value,
            expire_at_ms,
        } => {
            let mut d = format!("{db} {expire_at_ms:?} ").into_bytes();
            d.extend_from_slice(key);
            d.push(b' ');
            match value {
                Value::Lock(lock) => {
                    d.extend(rdb::lock::encode(*db as usize, key, lock, *expire_at_ms))
                }
                v => d.extend(canonical(v).expect("a value that is not a lock DUMPs")),
            }
            d
        }
        _ => Vec::new(),
    }
}

/// A file case.
fn check_file(bytes: &[u8], small: bool) {
    let enc = encodings(small);
    let mut items = Vec::new();
    let (loaded, largest) = crate::alloc::largest_allocation(|| {
        file::load(bytes, enc, &mut |item| {
            items.push(item);
            Ok(())
        })
    });
    assert!(
        largest <= bound(bytes.len()),
        "loading a file of {} bytes allocated {largest} bytes at once",
        bytes.len()
    );
    if loaded.is_err() {
        return;
    }
    let entries: Vec<&file::Loaded> = items
        .iter()
        .filter(|i| matches!(i, file::Loaded::Entry { .. }))
        .collect();
    // The database of a key is a `usize` in the server; the file may name
    // any number. Those past it stay out of the rewrite.
    if entries
        .iter()
        .any(|e| matches!(e, file::Loaded::Entry { db, .. } if *db > u32::MAX as u64))
    {
        return;
    }
    let mut w = file::Writer::new(Vec::new(), file::WriteOptions::default()).expect("in memory");
    let mut current = None;
    for e in &entries {
        let file::Loaded::Entry {
            db,
            key,
            value,
            expire_at_ms,
        } = e
        else {
            continue;
        };
        if current != Some(*db) {
            w.select_db(*db as usize, 1, 0).expect("in memory");
            current = Some(*db);
        }
        w.entry(key, value, *expire_at_ms).expect("in memory");
    }
    let again = w.finish().expect("in memory");
    let mut items2 = Vec::new();
    file::load(&again, enc, &mut |item| {
        items2.push(item);
        Ok(())
    })
    .unwrap_or_else(|e| panic!("a rewritten file does not load: {e}"));
    let first: Vec<Vec<u8>> = entries.iter().map(|e| describe(e)).collect();
    let second: Vec<Vec<u8>> = items2
        .iter()
        .filter(|i| matches!(i, file::Loaded::Entry { .. }))
        .map(describe)
        .collect();
    assert_eq!(first, second, "a file written again loads otherwise");
}

/// Runs one case (see the module's documentation).
pub fn check(data: &[u8]) {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = crate::one_at_a_time(&ONE);
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let small = flags & mode::SMALL != 0;
    let version = VERSIONS[usize::from((flags >> 2) & 3)];
    match flags & 3 {
        mode::RAW => check_payload(body, small),
        mode::FILE => {
            let mut bytes = format!("REDIS{version:04}").into_bytes();
            bytes.extend_from_slice(body);
            let crc = if flags & mode::NO_CRC != 0 {
                0
            } else {
                CRC64.checksum(&bytes)
            };
            bytes.extend_from_slice(&crc.to_le_bytes());
            check_file(&bytes, small);
        }
        _ => check_payload(&seal(body, version), small),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dumped_string_round_trips() {
        let p = rdb::dump(&Value::string(b"hello"), true).unwrap();
        let mut data = vec![flags(mode::SEALED, 10, false)];
        data.extend_from_slice(&p[..p.len() - 10]);
        check(&data);
        let mut data = vec![flags(mode::RAW, 10, true)];
        data.extend_from_slice(&p);
        check(&data);
    }

    /// The fuzz target's check on random inputs, bounded in count and
    /// time: the seed corpus's payloads and files with bytes flipped,
    /// inserted and deleted, and random bytes.
    #[test]
    fn random_payloads_load_or_fail_cleanly() {
        crate::check_random("rdb", 3000, 200, check);
    }

    #[test]
    fn the_seed_corpus_runs() {
        crate::check_corpus("rdb", check);
    }
}
