//! Fuzzing the options: the config-file parser (`Config::apply_file`), each
//! option's setter (`Param::set`) and CONFIG SET / CONFIG GET through the
//! dispatcher, on an in-process server.
//!
//! A case is a list of operations, each on an option of the table (by
//! index, sometimes by an alias or in another case) or a raw name, with
//! values from a pool (integers near the limits, memory sizes, yes/no,
//! policy and class words, every option's default, raw bytes):
//!
//! - CONFIG SET of one to three pairs through the dispatcher. When it
//!   answers OK, every option it set must round-trip: the value CONFIG GET
//!   gives is accepted by CONFIG SET again and CONFIG GET gives it back
//!   unchanged. (`appendonly` and `maxclients` are left to the setter
//!   alone: one starts writing the AOF, the other changes the process's
//!   open-files limit.)
//! - The setter alone on a scratch configuration, for every option
//!   (immutable ones included, which a config file sets): when it accepts
//!   a value, what the option's getter shows is accepted again, with
//!   CONFIG SET's reading of words (split for `save`), and shows the same.
//! - A config file: lines of an option and a value quoted as redis.conf
//!   quotes (every byte escaped back by the parser), which must set exactly
//!   what the setter sets for that value; then raw text, which must not
//!   panic, and whose options, when the whole file is accepted, round-trip
//!   as above.
//!
//! After each case every option CONFIG SET changed is set back to the
//! server's initial value through CONFIG SET, which must accept it.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use latchkey::config::{Config, Param, PARAMS};
use latchkey::reply::Reply;
use latchkey::server::Shared;
use latchkey::session::Session;

use crate::commands::Reader;

/// Not set through the dispatcher (see the module's documentation).
const SETTER_ONLY: &[&str] = &["appendonly", "maxclients"];

/// Values that mean something to some option.
const WORDS: &[&str] = &[
    "yes",
    "no",
    "YES",
    "No",
    "",
    " ",
    "0",
    "1",
    "-1",
    "-2",
    "-5",
    "-6",
    "2",
    "100",
    "1k",
    "1kb",
    "1K",
    "1m",
    "100mb",
    "1gb",
    "1g",
    "512mb",
    "1048575",
    "1048576",
    "4gb",
    "17179869184",
    "8589934591gb",
    "18446744073709551615",
    "18446744073709551616b",
    "1b",
    "1.5",
    "1e3",
    "-0",
    "+5",
    "0x10",
    "noeviction",
    "allkeys-lru",
    "volatile-lru",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
    "always",
    "everysec",
    "local",
    "KEA",
    "AKE",
    "Kx$",
    "g$lshzxetmndL",
    "Ex",
    "A",
    "x",
    "resetchannels",
    "allchannels",
    "normal 0 0 0",
    "replica 256mb 64mb 60",
    "pubsub 32mb 8mb 60",
    "normal 1 2 3 replica 4 5 6 pubsub 7 8 9",
    "normal 1gb",
    "slave 1 1 1",
    "3600 1 300 100 60 10000",
    "3600 1 300",
    "1 0",
    "0 1",
    "9223372036854775807 1",
    "\"\"",
    "TLSv1.2",
    "TLSv1.3",
    "TLSv1.2 TLSv1.3",
    "DEFAULT",
    "HIGH:!aNULL",
    "/",
    ".",
    "/nonexistent",
    "a b",
    "pass word",
    "debug",
    "notice",
];

pub const INTS: &[&str] = crate::commands::INTS;

/// The server the cases run on, with its configuration as it started.
fn server() -> &'static (Arc<Shared>, Config) {
    static SHARED: OnceLock<(Arc<Shared>, Config)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let shared = crate::new_server();
        let initial = shared.config.read().clone();
        (shared, initial)
    })
}

/// Every option's value, in table order.
fn snapshot(c: &Config) -> Vec<String> {
    PARAMS.iter().map(|p| p.get(c)).collect()
}

/// The words CONFIG SET hands a setter for one value.
fn words(p: &Param, value: &str) -> Vec<String> {
    if p.name == "save" {
        value.split_whitespace().map(String::from).collect()
    } else {
        vec![value.to_string()]
    }
}

/// A value quoted as a config file (or redis-cli) quotes it: every byte
/// that is not printable ASCII, and `"` and `\`, escaped.
fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for &b in value.as_bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x21..=0x7e | b' ' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// The setter's round trip: `value` was accepted into `c`; what the getter
/// shows must be accepted again and show the same.
fn setter_round_trip(p: &Param, c: &Config) {
    let shown = p.get(c);
    let mut again = c.clone();
    if let Err(e) = p.set(&mut again, &words(p, &shown)) {
        panic!("{}: {shown:?}, as shown, is refused: {e}", p.name);
    }
    assert_eq!(p.get(&again), shown, "{} shows another value", p.name);
}

/// One operation's option: by index (its name, an alias, or upper case),
/// or raw bytes.
fn name(r: &mut Reader<'_>) -> (String, Option<&'static Param>) {
    let tag = r.byte();
    if tag >= 0xf0 {
        let n = usize::from(r.byte() % 32);
        let raw = String::from_utf8_lossy(r.bytes(n)).into_owned();
        let p = latchkey::config::find(&raw);
        return (raw, p);
    }
    let p = &PARAMS[usize::from(r.byte()) % PARAMS.len()];
    let name = match tag % 8 {
        0 if !p.aliases.is_empty() => p.aliases[0].to_string(),
        1 => p.name.to_ascii_uppercase(),
        _ => p.name.to_string(),
    };
    (name, Some(p))
}

/// A value from the pool.
fn value(r: &mut Reader<'_>) -> String {
    let tag = r.byte();
    let pick = |r: &mut Reader<'_>, n: usize| usize::from(r.byte()) % n;
    match tag % 8 {
        0..=2 => WORDS[pick(r, WORDS.len())].to_string(),
        3 => INTS[pick(r, INTS.len())].to_string(),
        4 => {
            let p = &PARAMS[pick(r, PARAMS.len())];
            p.get(&server().1)
        }
        5 => format!(
            "{}{}",
            r.byte() as i8,
            ["", "kb", "mb", "gb", "b", "k"][pick(r, 6)]
        ),
        _ => {
            let n = usize::from(r.byte() % 48);
            String::from_utf8_lossy(r.bytes(n)).into_owned()
        }
    }
}

fn config(shared: &Shared, session: &mut Session, args: Vec<Bytes>) -> Reply {
    crate::execute(shared, session, &args)
}

fn bulk(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// CONFIG GET of one option, by its name: its value.
fn get(shared: &Shared, session: &mut Session, name: &str) -> String {
    let reply = config(
        shared,
        session,
        vec![bulk("CONFIG"), bulk("GET"), bulk(name)],
    );
    let Reply::Map(pairs) = &reply else {
        panic!("CONFIG GET {name}: {reply:?}");
    };
    // The first pair is the option by that name (a pattern-free name
    // matches itself, and an alias its own row).
    match pairs.first() {
        Some((_, Reply::Bulk(v))) => String::from_utf8_lossy(v).into_owned(),
        _ => panic!("CONFIG GET {name}: {reply:?}"),
    }
}

/// Runs the case and checks every round trip.
pub fn check(data: &[u8]) {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = crate::one_at_a_time(&ONE);
    let (shared, initial) = server();
    let mut session = crate::new_session(shared, 1);
    let mut r = Reader::new(data);
    let mut changed: BTreeSet<&'static str> = BTreeSet::new();
    let mut ops = 0;
    while !r.is_done() && ops < 16 {
        ops += 1;
        let op = r.byte();
        match op {
            // CONFIG SET through the dispatcher.
            0x00..=0x7f => {
                let mut args = vec![bulk("CONFIG"), bulk("SET")];
                let mut params = Vec::new();
                for _ in 0..=(op % 3) {
                    let (n, p) = name(&mut r);
                    args.push(bulk(&n));
                    args.push(bulk(&value(&mut r)));
                    params.extend(p);
                }
                if params.iter().any(|p| SETTER_ONLY.contains(&p.name)) {
                    continue;
                }
                let reply = config(shared, &mut session, args.clone());
                if !matches!(reply, Reply::Simple("OK")) {
                    assert!(matches!(reply, Reply::Error(_)), "{args:?}: {reply:?}");
                    continue;
                }
                for p in params {
                    changed.insert(p.name);
                    let shown = get(shared, &mut session, p.name);
                    let again = config(
                        shared,
                        &mut session,
                        vec![bulk("CONFIG"), bulk("SET"), bulk(p.name), bulk(&shown)],
                    );
                    assert!(
                        matches!(again, Reply::Simple("OK")),
                        "after {args:?}, CONFIG SET {} {shown:?} (as CONFIG GET shows it): {again:?}",
                        p.name
                    );
                    assert_eq!(
                        get(shared, &mut session, p.name),
                        shown,
                        "after {args:?}, {} shows another value",
                        p.name
                    );
                }
            }
            // The setter alone, on a scratch configuration.
            0x80..=0xbf => {
                let p = &PARAMS[usize::from(r.byte()) % PARAMS.len()];
                let v = value(&mut r);
                let mut c = initial.clone();
                if p.set(&mut c, &words(p, &v)).is_ok() {
                    setter_round_trip(p, &c);
                }
            }
            // A config file line, quoted, against the setter.
            0xc0..=0xdf => {
                let p = &PARAMS[usize::from(r.byte()) % PARAMS.len()];
                let v = value(&mut r);
                let mut by_setter = Config::default();
                let set = p.set(&mut by_setter, std::slice::from_ref(&v));
                let mut by_file = Config::default();
                let line = format!("{} {}\n", p.name, quoted(&v));
                let read = by_file.apply_file(&line);
                assert_eq!(
                    set.is_ok(),
                    read.is_ok(),
                    "{line:?}: the setter says {set:?}, the file {:?}",
                    read.as_ref().map(|_| ())
                );
                assert_eq!(snapshot(&by_file), snapshot(&by_setter), "{line:?}");
            }
            // Raw config file text.
            _ => {
                let n = usize::from(r.byte());
                let text = String::from_utf8_lossy(r.bytes(n)).into_owned();
                let mut c = Config::default();
                if let Ok(applied) = c.apply_file(&text) {
                    for p in applied {
                        setter_round_trip(p, &c);
                    }
                }
            }
        }
    }
    // Back to the initial configuration, through CONFIG SET.
    for name in changed {
        let p = latchkey::config::find(name).expect("a known option");
        let v = p.get(initial);
        let reply = config(
            shared,
            &mut session,
            vec![bulk("CONFIG"), bulk("SET"), bulk(name), bulk(&v)],
        );
        assert!(
            matches!(reply, Reply::Simple("OK")),
            "CONFIG SET {name} {v:?} (its initial value): {reply:?}"
        );
    }
    crate::block_on(latchkey::connection::release(shared, &mut session));
}

/// Writes a case for the seed corpus: CONFIG SET of one option by name
/// with a raw value (the inverse of the decoding above).
pub fn seed_set(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0); // CONFIG SET, one pair
    match PARAMS.iter().position(|p| p.name == name) {
        Some(i) if i < 256 => {
            out.extend_from_slice(&[2, i as u8]);
        }
        _ => {
            out.extend_from_slice(&[0xf0, name.len().min(31) as u8]);
            out.extend_from_slice(&name.as_bytes()[..name.len().min(31)]);
        }
    }
    let v = &value.as_bytes()[..value.len().min(47)];
    out.extend_from_slice(&[7, v.len() as u8]);
    out.extend_from_slice(v);
}

/// Writes a raw config file text operation for the seed corpus.
pub fn seed_file(out: &mut Vec<u8>, text: &str) {
    let t = &text.as_bytes()[..text.len().min(255)];
    out.extend_from_slice(&[0xe0, t.len() as u8]);
    out.extend_from_slice(t);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_round_trips_at_its_default() {
        let c = Config::default();
        for p in PARAMS {
            setter_round_trip(p, &c);
        }
    }

    #[test]
    fn quoted_values_read_back_whole() {
        for v in ["a b", "\"", "\\", "\u{e9}", "x\ny", ""] {
            let words = latchkey::protocol::split_args(quoted(v).as_bytes()).unwrap();
            assert_eq!(words, vec![v.as_bytes().to_vec()]);
        }
    }

    /// The fuzz target's check on random inputs, bounded in count and time.
    #[test]
    fn random_options_round_trip() {
        crate::check_random("config", 3000, 200, check);
    }

    #[test]
    fn the_seed_corpus_runs() {
        crate::check_corpus("config", check);
    }
}
