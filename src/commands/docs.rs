//! Redis's COMMAND DOCS for the commands latchkey shares with it: argument
//! lists (what redis-cli shows as hints while one types), complexity,
//! history, deprecation, as recorded from redis-server in
//! `redis-tests/command_docs.txt` (record.py regenerates it; `--check` in CI
//! holds it to a real server). Read once, at the first COMMAND DOCS.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::reply::Reply;

/// The recording, in redis-tests/FORMAT.md's notation.
const RECORDING: &str = include_str!("../../redis-tests/command_docs.txt");

/// One command's documentation fields, in Redis's order, without its
/// `subcommands` (the caller lists the ones latchkey has).
pub type Fields = Vec<(Reply, Reply)>;

/// The recorded fields of `full_name` (`get`, `config|get`), if Redis has
/// that command.
pub fn recorded(full_name: &str) -> Option<&'static Fields> {
    static DOCS: OnceLock<HashMap<String, Fields>> = OnceLock::new();
    DOCS.get_or_init(|| parse(RECORDING)).get(full_name)
}

/// Every `> COMMAND DOCS name` reply of the recording, by full name, the
/// subcommands' own entries included.
fn parse(text: &str) -> HashMap<String, Fields> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with('>'))
        .collect();
    let mut out = HashMap::new();
    let mut at = 0;
    while at < lines.len() {
        let Some((reply, next)) = value(&lines, at) else {
            break;
        };
        at = next;
        if let Reply::Map(entries) = reply {
            for (name, doc) in entries {
                file(name, doc, &mut out);
            }
        }
    }
    out
}

/// Files one command's documentation map under its name, and its
/// subcommands' under theirs.
fn file(name: Reply, doc: Reply, out: &mut HashMap<String, Fields>) {
    let (Reply::Bulk(name), Reply::Map(fields)) = (name, doc) else {
        return;
    };
    let mut own = Vec::with_capacity(fields.len());
    for (key, value) in fields {
        match (&key, value) {
            (Reply::Bulk(k), Reply::Map(subs)) if &k[..] == b"subcommands" => {
                for (sub, doc) in subs {
                    file(sub, doc, out);
                }
            }
            (_, value) => own.push((key, value)),
        }
    }
    out.insert(String::from_utf8_lossy(&name).into_owned(), own);
}

/// The value starting at `lines[at]` and the index after it.
fn value(lines: &[&str], at: usize) -> Option<(Reply, usize)> {
    let line = lines.get(at)?.trim_start();
    let (kind, rest) = line.split_at(line.char_indices().nth(1).map_or(line.len(), |(i, _)| i));
    let aggregate = |n: usize| -> Option<(Vec<Reply>, usize)> {
        let mut items = Vec::with_capacity(n);
        let mut next = at + 1;
        for _ in 0..n {
            let (item, after) = value(lines, next)?;
            items.push(item);
            next = after;
        }
        Some((items, next))
    };
    Some(match kind {
        "\"" => (Reply::Bulk(unescape(rest.strip_suffix('"')?)?), at + 1),
        "+" => (
            Reply::Status(Bytes::copy_from_slice(rest.as_bytes())),
            at + 1,
        ),
        ":" => (Reply::Int(rest.parse().ok()?), at + 1),
        "*" => {
            let (items, next) = aggregate(rest.parse().ok()?)?;
            (Reply::Array(items), next)
        }
        "~" => {
            let (items, next) = aggregate(rest.parse().ok()?)?;
            (Reply::Set(items), next)
        }
        "%" => {
            let (items, next) = aggregate(2 * rest.parse::<usize>().ok()?)?;
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            (Reply::Map(pairs), next)
        }
        _ if line == "(nil)" => (Reply::Nil, at + 1),
        _ => return None,
    })
}

/// A bulk string's bytes from FORMAT.md's escapes.
fn unescape(s: &str) -> Option<Bytes> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next()? {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'x' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            other => out.push(other),
        }
    }
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recording_reads_whole() {
        let set = recorded("set").expect("SET is recorded");
        let names: Vec<&[u8]> = set
            .iter()
            .map(|(k, _)| match k {
                Reply::Bulk(b) => &b[..],
                _ => panic!("{k:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                &b"summary"[..],
                b"since",
                b"group",
                b"complexity",
                b"history",
                b"arguments"
            ]
        );
        assert!(
            recorded("config|get").is_some(),
            "subcommands are filed too"
        );
        assert!(recorded("lock.acquire").is_none());
        // Every command of the recording parsed (about 240 and their
        // subcommands).
        assert!(parse(RECORDING).len() > 300);
        assert_eq!(unescape(r#"a\"b\\c\x41"#).unwrap(), &b"a\"b\\cA"[..]);
    }
}
