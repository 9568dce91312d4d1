//! Structured inputs for fuzzing latchkey's script path, and the check the fuzz
//! target and the stable randomized test both run.
//!
//! An [`Input`] is a script's return value as a tree of Lua expressions (nested
//! tables, strings, numbers, booleans, nil, `{err=}`/`{ok=}`/`{double=}`/`{map=}`/
//! `{set=}`/... tables, KEYS and ARGV values, `redis.pcall` results, tables nested
//! thousands deep by a loop), with KEYS and ARGV and the protocol settings.
//! [`check`] renders it as a script, runs `EVAL` through the same dispatcher a
//! connection uses, on an in-process server, under RESP2 and RESP3 (and with
//! `redis.setresp(3)` when asked), and asserts that a reply comes back and that it
//! is exactly one well-formed RESP frame. A panic or an abort fails the run.
//!
//! The other targets' inputs and checks are in their modules, which share
//! the helpers here (an in-process server and session, the frame checker):
//! [`acl`], [`resp`], [`commands`], [`config`], [`rdb`]. [`alloc`] is the
//! crate's allocator, [`seeds`] writes their seed corpora.

pub mod acl;
pub mod alloc;
pub mod commands;
pub mod config;
pub mod rdb;
pub mod resp;
pub mod seeds;

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use latchkey::clock::Clock;
use latchkey::commands as dispatch;
use latchkey::config::Config;
use latchkey::server::Shared;
use latchkey::session::{ClientInfo, Session};

/// One fuzz case.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// `HELLO 3` before the script: the reply is written as RESP3.
    pub hello3: bool,
    /// `redis.setresp(3)` at the script's start: RESP3 conversions both ways.
    pub setresp3: bool,
    pub keys: Vec<Vec<u8>>,
    pub argv: Vec<Vec<u8>>,
    /// Statements run before the return (their results are discarded).
    pub before: Vec<Expr>,
    pub ret: Expr,
}

/// A Lua expression.
#[derive(Arbitrary, Debug)]
pub enum Expr {
    Nil,
    Bool(bool),
    Int(i64),
    Float(Float),
    Str(Vec<u8>),
    /// `KEYS[i]` (nil past the end).
    Key(u8),
    /// `ARGV[i]`.
    Arg(u8),
    /// `{a, b, ...}`
    Array(Vec<Expr>),
    /// `{[k]=v, ...}`
    Table(Vec<(Expr, Expr)>),
    /// `{name=v, ...}` with the field names the reply conversion looks for.
    Fields(Vec<(Field, Expr)>),
    /// `{map={[k]=v, ...}}`
    Map(Vec<(Expr, Expr)>),
    /// `{set={[k]=true, ...}}`
    Set(Vec<Expr>),
    /// The value nested `depth` tables deep by a loop (up to 20,000): `{{{v}}}`.
    Deep(u16, Box<Expr>),
    /// Like `Deep`, through `{map={k=...}}` or `{set={[...]=true}}` levels.
    DeepMap(u16, Box<Expr>),
    DeepSet(u16, Box<Expr>),
    /// `redis.pcall(name, args...)`: a reply converted to Lua and back.
    Call(Command, Vec<Expr>),
    /// `redis.error_reply(s)`, `redis.status_reply(s)`
    ErrorReply(Vec<u8>),
    StatusReply(Vec<u8>),
    /// `cjson.decode(cjson.encode(v))`
    Json(Box<Expr>),
    /// `cjson.decode(s)`
    JsonText(Vec<u8>),
    /// `string.rep(s, n)` with n below 1,000.
    Rep(Vec<u8>, u16),
    /// `tostring(v)`
    ToString(Box<Expr>),
}

/// Special and ordinary doubles.
#[derive(Arbitrary, Debug)]
pub enum Float {
    Nan,
    Inf,
    NegInf,
    NegZero,
    Bits(u64),
    Ratio(i32, i32),
}

/// Field names Redis's conversion reads.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Field {
    Err,
    Ok,
    Double,
    BigNumber,
    VerbatimString,
    Format,
    String,
    Map,
    Set,
}

/// Commands a script may call, chosen to return every reply shape.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Command {
    Ping,
    Echo,
    Get,
    Set,
    Incr,
    Incrbyfloat,
    Del,
    Lpush,
    Lrange,
    Type,
    Exists,
    Mget,
    Command,
    ClientInfo,
    LockAcquire,
    LockRelease,
    LockInfo,
    Time,
    Nosuch,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::Ping => "'ping'",
            Command::Echo => "'echo'",
            Command::Get => "'get'",
            Command::Set => "'set'",
            Command::Incr => "'incr'",
            Command::Incrbyfloat => "'incrbyfloat'",
            Command::Del => "'del'",
            Command::Lpush => "'lpush'",
            Command::Lrange => "'lrange'",
            Command::Type => "'type'",
            Command::Exists => "'exists'",
            Command::Mget => "'mget'",
            Command::Command => "'command', 'info'",
            Command::ClientInfo => "'client', 'info'",
            Command::LockAcquire => "'lock.acquire'",
            Command::LockRelease => "'lock.release'",
            Command::LockInfo => "'lock.info'",
            Command::Time => "'time'",
            Command::Nosuch => "'nosuch'",
        }
    }
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Err => "err",
            Field::Ok => "ok",
            Field::Double => "double",
            Field::BigNumber => "big_number",
            Field::VerbatimString => "verbatim_string",
            Field::Format => "format",
            Field::String => "string",
            Field::Map => "map",
            Field::Set => "set",
        }
    }
}

/// How deep the rendered source nests before the rest is cut to `nil` (Lua's
/// parser allows 200 levels; beyond is only a compile error).
const MAX_SOURCE_DEPTH: usize = 60;
/// Elements kept per table constructor and bytes per string, so a case stays fast.
const MAX_ITEMS: usize = 64;
const MAX_STRING: usize = 256;

/// A Lua string literal for any bytes (`\ddd` escapes outside printable ASCII).
fn lua_string(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes.iter().take(MAX_STRING) {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b}")),
        }
    }
    out.push('"');
}

fn render(e: &Expr, depth: usize, out: &mut String) {
    if depth > MAX_SOURCE_DEPTH {
        out.push_str("nil");
        return;
    }
    let d = depth + 1;
    match e {
        Expr::Nil => out.push_str("nil"),
        Expr::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Expr::Int(i) => out.push_str(&format!("({i})")),
        Expr::Float(f) => match f {
            Float::Nan => out.push_str("(0/0)"),
            Float::Inf => out.push_str("(1/0)"),
            Float::NegInf => out.push_str("(-1/0)"),
            Float::NegZero => out.push_str("(-0.0)"),
            Float::Bits(bits) => {
                let v = f64::from_bits(*bits);
                if v.is_finite() {
                    out.push_str(&format!("({v:e})"));
                } else {
                    out.push_str("(0/0)");
                }
            }
            Float::Ratio(a, b) => out.push_str(&format!("({a}/{b})")),
        },
        Expr::Str(s) => lua_string(s, out),
        Expr::Key(i) => out.push_str(&format!("KEYS[{}]", i % 8)),
        Expr::Arg(i) => out.push_str(&format!("ARGV[{}]", i % 8)),
        Expr::Array(items) => {
            out.push('{');
            for item in items.iter().take(MAX_ITEMS) {
                render(item, d, out);
                out.push(',');
            }
            out.push('}');
        }
        Expr::Table(pairs) | Expr::Map(pairs) => {
            let map = matches!(e, Expr::Map(_));
            out.push_str(if map {
                "{map=(function() local t={} "
            } else {
                "(function() local t={} "
            });
            for (k, v) in pairs.iter().take(MAX_ITEMS) {
                // Assignments skip nil and NaN keys instead of failing.
                out.push_str("do local k=");
                render(k, d, out);
                out.push_str(" if k~=nil and k==k then t[k]=");
                render(v, d, out);
                out.push_str(" end end ");
            }
            out.push_str(if map {
                "return t end)()}"
            } else {
                "return t end)()"
            });
        }
        Expr::Fields(fields) => {
            out.push('{');
            for (name, v) in fields.iter().take(MAX_ITEMS) {
                out.push_str(name.name());
                out.push('=');
                render(v, d, out);
                out.push(',');
            }
            out.push('}');
        }
        Expr::Set(members) => {
            out.push_str("{set=(function() local t={} ");
            for m in members.iter().take(MAX_ITEMS) {
                out.push_str("do local k=");
                render(m, d, out);
                out.push_str(" if k~=nil and k==k then t[k]=true end end ");
            }
            out.push_str("return t end)()}");
        }
        Expr::Deep(n, v) | Expr::DeepMap(n, v) | Expr::DeepSet(n, v) => {
            let level = match e {
                Expr::Deep(..) => "t={t}",
                Expr::DeepMap(..) => "t={map={k=t}}",
                _ => "t={set={[t]=true}}",
            };
            out.push_str("(function() local t=");
            render(v, d, out);
            out.push_str(&format!(
                " for i=1,{} do {level} end return t end)()",
                n % 20_001
            ));
        }
        Expr::Call(cmd, args) => {
            out.push_str("redis.pcall(");
            out.push_str(cmd.name());
            for a in args.iter().take(8) {
                out.push(',');
                render(a, d, out);
            }
            out.push(')');
        }
        Expr::ErrorReply(s) | Expr::StatusReply(s) => {
            out.push_str(if matches!(e, Expr::ErrorReply(_)) {
                "redis.error_reply("
            } else {
                "redis.status_reply("
            });
            lua_string(s, out);
            out.push(')');
        }
        Expr::Json(v) => {
            out.push_str("cjson.decode(cjson.encode(");
            render(v, d, out);
            out.push_str("))");
        }
        Expr::JsonText(s) => {
            out.push_str("cjson.decode(");
            lua_string(s, out);
            out.push(')');
        }
        Expr::Rep(s, n) => {
            out.push_str("string.rep(");
            lua_string(&s[..s.len().min(16)], out);
            out.push_str(&format!(",{})", n % 1000));
        }
        Expr::ToString(v) => {
            out.push_str("tostring(");
            render(v, d, out);
            out.push(')');
        }
    }
}

impl Input {
    /// The script this case runs.
    pub fn script(&self) -> String {
        let mut out = String::new();
        if self.setresp3 {
            out.push_str("redis.setresp(3) ");
        }
        for e in self.before.iter().take(8) {
            out.push_str("local _ = ");
            render(e, 0, &mut out);
            out.push(' ');
        }
        out.push_str("return ");
        render(&self.ret, 0, &mut out);
        out
    }
}

/// The server the cases run on: one per process, as the fuzzer runs millions of
/// cases (the keyspace is flushed before each).
fn shared() -> &'static Arc<Shared> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let clock = Arc::new(Clock::new());
        // No save points: FLUSHALL before each case would write (and sync)
        // a dump.rdb in the working directory.
        let config = Config {
            save_points: Vec::new(),
            ..Config::default()
        };
        Arc::new(Shared::new(config, clock))
    })
}

fn run(shared: &Shared, session: &mut Session, words: &[&[u8]]) -> latchkey::reply::Reply {
    let args: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w)).collect();
    session.mark_time(&shared.clock);
    dispatch::execute(shared, session, &args)
}

/// Runs the case and checks every reply; panics on a malformed one.
pub fn check(input: &Input) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let shared = shared();
    // Every script run stays cached (as in Redis); flush now and then so a long
    // run does not grow without bound.
    if RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1024 == 1023 {
        shared.scripts.flush();
    }
    let script = input.script();
    let keys: Vec<&[u8]> = input.keys.iter().take(8).map(Vec::as_slice).collect();
    let argv: Vec<&[u8]> = input.argv.iter().take(8).map(Vec::as_slice).collect();
    let numkeys = keys.len().to_string();
    let mut eval: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), numkeys.as_bytes()];
    eval.extend(&keys);
    eval.extend(&argv);
    for resp3 in [false, true] {
        let info = Arc::new(ClientInfo::new(
            1,
            "fuzz".into(),
            "fuzz".into(),
            -1,
            shared.clock.now_ms(),
        ));
        let mut session = Session::new(info, shared.acl.default_user(), true);
        run(shared, &mut session, &[b"FLUSHALL"]);
        if resp3 || input.hello3 {
            run(shared, &mut session, &[b"HELLO", b"3"]);
        }
        let reply = run(shared, &mut session, &eval);
        let mut out = BytesMut::new();
        reply.encode(session.resp3, &mut out);
        if let Err(at) = one_frame(&out) {
            panic!(
                "malformed reply (at byte {at}) to {script:?}: {:?}",
                String::from_utf8_lossy(&out[..out.len().min(512)])
            );
        }
        drop(reply);
    }
}

/// A server for a target's cases: no save points (a FLUSHALL would write a
/// dump.rdb in the working directory), `proto-max-bulk-len` at the least
/// CONFIG SET allows (SETRANGE, SETBIT and BITFIELD may make strings that
/// long, and a case must stay fast), the clock paused (time moves only when
/// a case says so).
pub fn new_server() -> Arc<Shared> {
    let clock = Arc::new(Clock::new());
    clock.pause();
    let config = Config {
        save_points: Vec::new(),
        proto_max_bulk_len: 1024 * 1024,
        ..Config::default()
    };
    Arc::new(Shared::new(config, clock))
}

/// A session as a connection starts one (authenticated: no password is set).
pub fn new_session(shared: &Shared, id: u64) -> Session {
    let info = Arc::new(ClientInfo::new(
        id,
        "fuzz".into(),
        "fuzz".into(),
        -1,
        shared.clock.now_ms(),
    ));
    let mut session = Session::new(info, shared.acl.default_user(), true);
    session.mark_time(&shared.clock);
    session
}

/// The stable randomized test of a target that reads bytes: up to `cases`
/// inputs (`LATCHKEY_FUZZ_CASES` overrides it) mutated from its seed corpus,
/// or random, up to `max_len` bytes, for 20 s at most; a panic fails the
/// test with the seed and the case that raised it.
pub fn check_random(target: &str, cases: usize, max_len: usize, check: fn(&[u8])) {
    let cases: usize = std::env::var("LATCHKEY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let seeds = seeds(target);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for i in 0..cases {
        if std::time::Instant::now() > deadline {
            break;
        }
        let data = random_input(&mut rng, &seeds, max_len);
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "seed {seed}, case {i}: {data:?}");
    }
}

/// Runs `check` on every file of `target`'s seed corpus (there must be one).
pub fn check_corpus(target: &str, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("the seed corpus") {
        check(&std::fs::read(entry.expect("an entry").path()).expect("readable"));
        seen += 1;
    }
    assert!(seen > 0, "no seed");
}

/// The seed corpus of `target` (`fuzz/corpus/<target>/`).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    seeds.sort();
    seeds
}

/// An input for a stable randomized test: one time in 8 (or with no seeds)
/// random bytes up to `max_len`, else a seed with up to 8 bytes changed,
/// inserted or removed (the first byte, a case's flags, kept).
pub fn random_input(rng: &mut fastrand::Rng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    if seeds.is_empty() || rng.u8(..8) == 0 {
        return (0..rng.usize(1..max_len)).map(|_| rng.u8(..)).collect();
    }
    let mut data = seeds[rng.usize(..seeds.len())].clone();
    for _ in 0..rng.usize(0..=8) {
        if data.len() < 2 {
            break;
        }
        let at = rng.usize(1..data.len());
        match rng.u8(..3) {
            0 => data[at] = rng.u8(..),
            1 => data.insert(at, rng.u8(..)),
            _ => {
                data.remove(at);
            }
        }
    }
    data
}

/// Holds `lock` for one case: the tests run cases on several threads,
/// and a target's cases share its server (a FLUSHALL or an EXEC of one
/// case must not land inside another's).
pub fn one_at_a_time(lock: &'static std::sync::Mutex<()>) -> std::sync::MutexGuard<'static, ()> {
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs one command through the dispatcher, as a connection does.
pub fn execute(shared: &Shared, session: &mut Session, args: &[Bytes]) -> latchkey::reply::Reply {
    session.mark_time(&shared.clock);
    dispatch::execute(shared, session, args)
}

/// Drives a future of the server's that never waits on anything but an
/// uncontended lock (the gate, held by nobody else in a fuzz case).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1000 {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
    panic!("a future that should be ready at once kept waiting");
}

/// Checks that `data` is exactly one complete RESP2/RESP3 frame, without
/// recursion; returns the offset of the first problem.
pub fn one_frame(data: &[u8]) -> Result<(), usize> {
    match frames(data, true)? {
        1 => Ok(()),
        _ => Err(0),
    }
}

/// Counts the complete top-level frames `data` holds, one after the other
/// with nothing left over, checking each without recursion: every header,
/// length, count and terminator; with `resp3` false, only RESP2's types
/// (`+ - : $ *`), as a RESP2 client reads them. Returns the offset of the
/// first problem.
pub fn frames(data: &[u8], resp3: bool) -> Result<usize, usize> {
    let mut pos = 0usize;
    let mut count = 0;
    while pos < data.len() {
        pos += frame_at(&data[pos..], resp3).map_err(|at| pos + at)?;
        count += 1;
    }
    Ok(count)
}

/// The length of the one complete frame at the start of `data`.
fn frame_at(data: &[u8], resp3: bool) -> Result<usize, usize> {
    let mut pos = 0usize;
    // Frames still to read.
    let mut need: u64 = 1;
    while need > 0 {
        need -= 1;
        let end = data[pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| pos + i)
            .ok_or(pos)?;
        let line = &data[pos..end];
        let kind = *line.first().ok_or(pos)?;
        let body = &line[1..];
        if body.contains(&b'\r') || body.contains(&b'\n') {
            return Err(pos);
        }
        let at = pos;
        let number = || -> Result<i64, usize> {
            std::str::from_utf8(body)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or(at)
        };
        pos = end + 2;
        if !resp3 && !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
            return Err(at);
        }
        match kind {
            b'+' | b'-' | b'_' | b'#' | b',' | b'(' => {}
            b':' => {
                number()?;
            }
            b'$' | b'=' | b'!' => {
                let n = number()?;
                if n >= 0 {
                    let n = n as usize;
                    if data.len() < pos + n + 2 || &data[pos + n..pos + n + 2] != b"\r\n" {
                        return Err(pos);
                    }
                    pos += n + 2;
                } else if n != -1 || kind != b'$' {
                    return Err(pos);
                }
            }
            b'*' | b'~' | b'>' => {
                let n = number()?;
                if n > 0 {
                    need += n as u64;
                } else if n < -1 || (n == -1 && kind != b'*') {
                    return Err(pos);
                }
            }
            b'%' => {
                let n = number()?;
                if n < 0 {
                    return Err(pos);
                }
                need += 2 * n as u64;
            }
            _ => return Err(pos),
        }
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbitrary::Unstructured;

    /// The fuzz target's check on random inputs, for machines without the nightly
    /// toolchain: bounded in count and in time.
    #[test]
    fn random_scripts_always_get_one_well_formed_reply() {
        let cases: usize = std::env::var("LATCHKEY_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let seed = fastrand::u64(..);
        let mut rng = fastrand::Rng::with_seed(seed);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        for i in 0..cases {
            if std::time::Instant::now() > deadline {
                break;
            }
            let bytes: Vec<u8> = (0..rng.usize(1..1024)).map(|_| rng.u8(..)).collect();
            if let Ok(input) = Input::arbitrary(&mut Unstructured::new(&bytes)) {
                let outcome = std::panic::catch_unwind(|| check(&input));
                assert!(outcome.is_ok(), "seed {seed}, case {i}: {input:?}");
            }
        }
    }

    #[test]
    fn the_seed_corpus_runs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/script");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("the seed corpus") {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("readable");
            if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(&bytes)) {
                check(&input);
                seen += 1;
            }
        }
        assert!(seen > 0, "no seed parsed");
    }

    /// Writes the committed seed corpus: one random input for each shape that
    /// matters (run with `--ignored` to regenerate).
    #[test]
    #[ignore]
    fn write_seed_corpus() {
        type Wanted = fn(&Input) -> bool;
        let wanted: &[(&str, Wanted)] = &[
            (
                "deep-array",
                |i| matches!(i.ret, Expr::Deep(n, _) if n % 20_001 > 8000),
            ),
            (
                "deep-map",
                |i| matches!(i.ret, Expr::DeepMap(n, _) if n % 20_001 > 3000),
            ),
            (
                "deep-set",
                |i| matches!(i.ret, Expr::DeepSet(n, _) if n % 20_001 > 3000),
            ),
            ("call", |i| matches!(i.ret, Expr::Call(..))),
            ("json", |i| matches!(i.ret, Expr::Json(_))),
            ("json-text", |i| matches!(i.ret, Expr::JsonText(_))),
            (
                "fields",
                |i| matches!(&i.ret, Expr::Fields(f) if f.len() > 2),
            ),
            ("map", |i| matches!(&i.ret, Expr::Map(p) if p.len() > 2)),
            ("set", |i| matches!(&i.ret, Expr::Set(m) if m.len() > 2)),
            ("array", |i| matches!(&i.ret, Expr::Array(a) if a.len() > 3)),
            ("table", |i| matches!(&i.ret, Expr::Table(p) if p.len() > 2)),
            ("error-reply", |i| matches!(i.ret, Expr::ErrorReply(_))),
            ("status-reply", |i| matches!(i.ret, Expr::StatusReply(_))),
            ("float", |i| matches!(i.ret, Expr::Float(_))),
            ("resp3", |i| {
                i.hello3 && i.setresp3 && matches!(i.ret, Expr::Array(_))
            }),
            ("keys-argv", |i| i.keys.len() > 1 && i.argv.len() > 1),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/script");
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = fastrand::Rng::with_seed(10);
        for (name, want) in wanted {
            let bytes = (0..2_000_000)
                .find_map(|_| {
                    let bytes: Vec<u8> = (0..rng.usize(8..400)).map(|_| rng.u8(..)).collect();
                    let input = Input::arbitrary_take_rest(Unstructured::new(&bytes)).ok()?;
                    want(&input).then_some(bytes)
                })
                .unwrap_or_else(|| panic!("no input for {name}"));
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }

    /// Prints every corpus input as a JSON line (script, KEYS and ARGV in hex,
    /// whether HELLO 3 comes first), for replaying against a real redis-server
    /// (run with `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn print_corpus_scripts() {
        let hex = |b: &[u8]| b.iter().map(|c| format!("{c:02x}")).collect::<String>();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/script");
        for entry in std::fs::read_dir(dir).expect("the corpus") {
            let bytes = std::fs::read(entry.expect("an entry").path()).expect("readable");
            let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(&bytes)) else {
                continue;
            };
            let list = |items: &[Vec<u8>]| {
                let quoted: Vec<String> = items
                    .iter()
                    .take(8)
                    .map(|i| format!("\"{}\"", hex(i)))
                    .collect();
                format!("[{}]", quoted.join(","))
            };
            println!(
                "{{\"script\":\"{}\",\"keys\":{},\"argv\":{},\"hello3\":{}}}",
                hex(input.script().as_bytes()),
                list(&input.keys),
                list(&input.argv),
                input.hello3
            );
        }
    }

    #[test]
    fn frames_are_checked() {
        assert_eq!(one_frame(b"*2\r\n:1\r\n$1\r\na\r\n"), Ok(()));
        assert_eq!(one_frame(b"%1\r\n+a\r\n_\r\n"), Ok(()));
        assert!(one_frame(b"*2\r\n:1\r\n").is_err());
        assert!(one_frame(b"+a\r\nb\r\n").is_err());
        assert!(one_frame(b"$3\r\nab\r\n").is_err());
        assert!(one_frame(b"").is_err());
    }
}
