//! Fuzzing the dispatcher and every handler: argument vectors run through
//! `commands::execute`, as a connection runs them, against an in-process
//! server.
//!
//! A case is a flags byte (HELLO 3 first; the encodings' thresholds at 2 so
//! that few elements convert a listpack or an intset) and up to
//! [`MAX_COMMANDS`] commands. Each command is mostly a row of the command
//! table (its name words, its arity's count of arguments, keys where its
//! key positions are) and otherwise a raw name; each argument is a key from
//! a small set (so that types collide: WRONGTYPE paths, conversions), an
//! integer near a limit (i64, i32, u64, 2^53, a bit offset, a byte length),
//! a float (inf, nan, -0, 1e308, denormals, `(` and `[` ranges), an option
//! keyword, a small integer, a value (short, at a listpack threshold,
//! binary), or raw bytes. A command may also be "time passes" (the paused
//! clock advanced: expiry, leases, blocked clients' deadlines).
//!
//! [`check`] asserts that nothing panics and that every reply is exactly
//! one well-formed RESP frame (SUBSCRIBE's one per channel, also inside
//! EXEC's array as redis-server writes them; none for a command that
//! answers nothing), with only RESP2's types before HELLO 3;
//! no single allocation while a command runs exceeds [`MAX_ALLOCATION`]
//! (no count or length a client sent becomes an allocation of that size).
//!
//! Not run: what ends the process or its world (SHUTDOWN), writes files
//! (SAVE, BGSAVE, BGREWRITEAOF, CONFIG REWRITE, ACL SAVE/LOAD), changes
//! state that outlives a case beyond the keyspace (ACL SETUSER/DELUSER;
//! CONFIG SET other than the encoding thresholds and a few harmless
//! options; a CLIENT PAUSE ends with its case), runs for seconds by design
//! (PFSELFTEST) or runs Lua (EVAL and friends: the `script` target's). A
//! command that blocks is ended at once as its timeout would end it
//! (`connection::time_out_wait`), whatever its timeout. Negative counts of
//! the random-member commands past 1000 are brought to -1000: a million
//! replies is their documented cap, not a bug, and would make a case slow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use latchkey::reply::Reply;
use latchkey::server::Shared;
use latchkey::session::Session;

/// Commands run per case at most.
pub const MAX_COMMANDS: usize = 32;
/// The largest single allocation a command may make: a string may be 1 MiB
/// (`proto-max-bulk-len` as [`crate::new_server`] sets it) and be copied
/// or doubled once or twice, an LCS table is capped at that size too.
pub const MAX_ALLOCATION: usize = 16 << 20;

/// Never run (see the module's documentation).
const EXCLUDED: &[&str] = &[
    "shutdown",
    "save",
    "bgsave",
    "bgrewriteaof",
    "config|rewrite",
    "acl|save",
    "acl|load",
    "acl|setuser",
    "acl|deluser",
    "pfselftest",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
];

/// Options CONFIG SET may change in a case (reset before the next).
const CONFIG_SAFE: &[&str] = &[
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-intset-entries",
    "set-max-listpack-entries",
    "set-max-listpack-value",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "list-max-listpack-size",
    "list-compress-depth",
    "stream-node-max-entries",
    "stream-node-max-bytes",
    "hll-sparse-max-bytes",
    "notify-keyspace-events",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "lfu-log-factor",
    "lfu-decay-time",
    "tracking-table-max-keys",
];

/// The thresholds a case may lower to 2, so few elements convert.
const SMALL_ENCODINGS: &[(&str, &str)] = &[
    ("hash-max-listpack-entries", "2"),
    ("set-max-intset-entries", "2"),
    ("set-max-listpack-entries", "2"),
    ("zset-max-listpack-entries", "2"),
    ("list-max-listpack-size", "2"),
    ("stream-node-max-entries", "2"),
    ("hll-sparse-max-bytes", "30"),
];

/// Keys: few, so that commands of different types meet on them.
pub const KEYS: &[&str] = &["a", "b", "c", "{a}d", "L"];

pub const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "10",
    "100",
    "-100",
    "1000",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775806",
    "-9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "4611686018427387903",
    "4611686018427387904",
    "-4611686018427387904",
    "-4611686018427387905",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "4294967297",
    "9007199254740992",
    "9007199254740993",
    "1048575",
    "1048576",
    "8388607",
    "8388608",
    "536870911",
    "536870912",
    "281474976710655",
    "922337203685477580",
    "-0",
    "+1",
    "01",
    " 1",
    "1 ",
    "0x10",
    "1e3",
    "",
];

pub const FLOATS: &[&str] = &[
    "inf",
    "-inf",
    "+inf",
    "nan",
    "-nan",
    "infinity",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "2e308",
    "5e-324",
    "2.2250738585072014e-308",
    "1e-400",
    "-0.0",
    "0.0",
    "0.1",
    "1.5",
    "-1.5",
    "3.0e-20",
    "123456789.123456789",
    "9007199254740993.0",
    "(1",
    "(-inf",
    "(+inf",
    "(nan",
    "[a",
    "(a",
    "[",
    "(",
    "+",
    "-",
    "85.05112878",
    "-85.05112879",
    "180",
    "-180.0000001",
    "1.0e",
    "1,5",
];

/// Option keywords the handlers look for (harvested from `src/commands`),
/// and words with a meaning for several families.
pub const KEYWORDS: &[&str] = &[
    "ABSTTL",
    "ADDR",
    "AFTER",
    "AGGREGATE",
    "ALPHA",
    "AND",
    "ANY",
    "ASC",
    "ASYNC",
    "AUTH",
    "BCAST",
    "BEFORE",
    "BIT",
    "BLOCK",
    "BY",
    "BYBOX",
    "BYLEX",
    "BYRADIUS",
    "BYSCORE",
    "BYTE",
    "CH",
    "CONSUMERS",
    "COUNT",
    "CREATE",
    "CREATECONSUMER",
    "DB",
    "DELCONSUMER",
    "DESC",
    "DESTROY",
    "ENCODING",
    "ENTRIESADDED",
    "ENTRIESREAD",
    "EX",
    "EXAT",
    "FAIL",
    "FORCE",
    "FREQ",
    "FROMLONLAT",
    "FROMMEMBER",
    "FULL",
    "GET",
    "GROUP",
    "GROUPS",
    "GT",
    "HELP",
    "ID",
    "IDLE",
    "IDLETIME",
    "IDX",
    "INCR",
    "INCRBY",
    "JUSTID",
    "KEEPTTL",
    "KM",
    "LADDR",
    "LASTID",
    "LEFT",
    "LEN",
    "LIB-NAME",
    "LIB-VER",
    "LIMIT",
    "LOCKDELAY",
    "LT",
    "M",
    "MATCH",
    "MAX",
    "MAXDELETEDID",
    "MAXLEN",
    "MIN",
    "MINID",
    "MINMATCHLEN",
    "MKSTREAM",
    "NO",
    "NOACK",
    "NOLOOP",
    "NOMKSTREAM",
    "NOT",
    "NOVALUES",
    "NX",
    "OFF",
    "ON",
    "OPTIN",
    "OPTOUT",
    "OR",
    "OVERFLOW",
    "PERSIST",
    "PREFIX",
    "PX",
    "PXAT",
    "RANK",
    "REDIRECT",
    "REFCOUNT",
    "REPLACE",
    "RETRYCOUNT",
    "REV",
    "RIGHT",
    "SAMPLES",
    "SAT",
    "SESSION",
    "SET",
    "SETID",
    "SHARED",
    "SKIPME",
    "STORE",
    "STOREDIST",
    "STREAM",
    "STREAMS",
    "SUM",
    "TIME",
    "TYPE",
    "USER",
    "WAIT",
    "WEIGHTS",
    "WITHCOORD",
    "WITHDIST",
    "WITHHASH",
    "WITHMATCHLEN",
    "WITHSCORE",
    "WITHSCORES",
    "WITHVALUES",
    "WRAP",
    "XOR",
    "XX",
    "YES",
    "~",
    "=",
    "*",
    "-",
    "+",
    "$",
    ">",
    "0-0",
    "0-1",
    "1-0",
    "18446744073709551615-18446744073709551615",
    "5-*",
    "i8",
    "u8",
    "i64",
    "u63",
    "u1",
    "i1",
    "#0",
    "#1",
    "#9223372036854775807",
    "ft",
    "mi",
    "string",
    "list",
    "set",
    "zset",
    "hash",
    "stream",
    "lock",
    "normal",
    "pubsub",
    "master",
    "replica",
    "default",
    "nopass",
    "on",
    "+@all",
    "~*",
    "&*",
    "latchkey",
];

pub const VALUES: &[&[u8]] = &[
    b"v",
    b"",
    b"1",
    b"-1",
    b"3.5",
    b"abc",
    b"a\0b",
    b"hello world",
    b"\xff\xfe\x00",
    b"*",
    b"a*",
    b"h?llo",
    b"[a-z]",
    b"\\",
    b"{a}",
    b"12345678901234567890",
    b"-9223372036854775808",
    b"0.1",
    // At and past the listpack value limit (64 bytes).
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// A reader over the fuzzer's bytes: zeros once they run out.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn is_done(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = (start + n).min(self.data.len());
        self.pos = start + n;
        &self.data[start..end]
    }
}

/// Argument kinds, by the low 3 bits of their tag byte.
pub mod kind {
    pub const KEY: u8 = 0;
    pub const INT: u8 = 1;
    pub const FLOAT: u8 = 2;
    pub const KEYWORD: u8 = 3;
    pub const SMALL: u8 = 4;
    pub const VALUE: u8 = 5;
    pub const RAW: u8 = 6;
    /// A tag at a key position below this is a key whatever its kind bits.
    pub const KEY_TAG_BELOW: u8 = 0xc0;
    /// A raw argument anywhere.
    pub const RAW_TAG: u8 = 0xc6;
}

/// Command tags: below this, a table row; then a raw name; then time.
pub const RAW_NAME_TAG: u8 = 0xf0;
pub const TIME_TAG: u8 = 0xf8;
/// An arity byte at or past this gives its excess as the count of
/// arguments after the name, whatever the arity.
pub const ANY_ARITY: u8 = 0xe0;

fn argument(r: &mut Reader<'_>, tag: u8) -> Bytes {
    let pick = |r: &mut Reader<'_>, n: usize| usize::from(r.byte()) % n;
    match tag & 7 {
        kind::KEY => Bytes::from_static(KEYS[pick(r, KEYS.len())].as_bytes()),
        kind::INT => Bytes::from_static(INTS[pick(r, INTS.len())].as_bytes()),
        kind::FLOAT => Bytes::from_static(FLOATS[pick(r, FLOATS.len())].as_bytes()),
        kind::KEYWORD | 7 => Bytes::from_static(KEYWORDS[pick(r, KEYWORDS.len())].as_bytes()),
        kind::SMALL => Bytes::from((r.byte() as i8).to_string()),
        kind::VALUE => Bytes::from_static(VALUES[pick(r, VALUES.len())]),
        _ => {
            let n = usize::from(r.byte());
            Bytes::copy_from_slice(r.bytes(n))
        }
    }
}

/// One step of a case.
#[derive(Debug)]
pub enum Step {
    Command(Vec<Bytes>),
    /// The paused clock moves on this many ms.
    Time(u64),
}

/// A decoded case.
#[derive(Debug)]
pub struct Case {
    pub hello3: bool,
    pub small_encodings: bool,
    pub steps: Vec<Step>,
}

/// The command table's names, as words (`config|set` → CONFIG SET).
fn names(shared: &Shared) -> &'static [(Vec<&'static str>, usize)] {
    static NAMES: OnceLock<Vec<(Vec<&'static str>, usize)>> = OnceLock::new();
    NAMES.get_or_init(|| {
        shared
            .commands
            .all()
            .iter()
            .map(|c| {
                let words = c
                    .full_name
                    .split('|')
                    .map(|w| &*w.to_string().leak())
                    .collect();
                (words, c.index)
            })
            .collect()
    })
}

impl Case {
    pub fn decode(shared: &Shared, data: &[u8]) -> Case {
        let names = names(shared);
        let mut r = Reader::new(data);
        let flags = r.byte();
        let mut steps = Vec::new();
        while !r.is_done() && steps.len() < MAX_COMMANDS {
            let tag = r.byte();
            if tag >= TIME_TAG {
                let unit = [1u64, 100, 1000, 60_000][usize::from(tag & 3)];
                steps.push(Step::Time(unit * u64::from(r.byte())));
                continue;
            }
            let mut args: Vec<Bytes> = Vec::new();
            let mut spec = None;
            if tag >= RAW_NAME_TAG {
                args.push(argument(&mut r, kind::RAW));
            } else {
                let i = (usize::from(tag) << 8 | usize::from(r.byte())) % names.len();
                let (words, index) = &names[i];
                args.extend(words.iter().map(|w| Bytes::from_static(w.as_bytes())));
                spec = Some(shared.commands.all()[*index].spec);
            }
            let count = r.byte();
            let n = match spec {
                _ if count >= ANY_ARITY => usize::from(count - ANY_ARITY),
                Some(s) => {
                    let arity = s.arity.unsigned_abs() as usize;
                    let at_least = arity.saturating_sub(args.len());
                    if s.arity < 0 {
                        at_least + usize::from(count % 6)
                    } else {
                        at_least
                    }
                }
                None => usize::from(count % 10),
            };
            for _ in 0..n {
                let pos = args.len();
                let tag = r.byte();
                let at_key = spec.is_some_and(|s| {
                    s.first_key > 0
                        && pos >= s.first_key as usize
                        && (s.last_key < 0 || pos <= s.last_key as usize)
                        && (pos - s.first_key as usize).is_multiple_of(s.step.max(1) as usize)
                });
                let arg = if at_key && tag < kind::KEY_TAG_BELOW {
                    argument(&mut r, kind::KEY)
                } else {
                    argument(&mut r, tag)
                };
                args.push(arg);
            }
            steps.push(Step::Command(args));
        }
        Case {
            hello3: flags & 1 == 1,
            small_encodings: flags & 2 == 2,
            steps,
        }
    }
}

/// The server the cases run on, and whether a case changed its options.
fn server() -> &'static Arc<Shared> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    SHARED.get_or_init(crate::new_server)
}

/// The options CONFIG SET may change, at their defaults, as one CONFIG SET.
fn config_reset() -> &'static [Bytes] {
    static RESET: OnceLock<Vec<Bytes>> = OnceLock::new();
    RESET.get_or_init(|| {
        let defaults = latchkey::config::Config::default();
        let mut args = vec![Bytes::from_static(b"CONFIG"), Bytes::from_static(b"SET")];
        for name in CONFIG_SAFE {
            let p = latchkey::config::find(name).expect("a known option");
            args.push(Bytes::from_static(name.as_bytes()));
            args.push(Bytes::from(p.get(&defaults)));
        }
        args
    })
}

/// Whether the command may run (see the module's documentation), and the
/// arguments it runs with.
fn admit(shared: &Shared, mut args: Vec<Bytes>) -> Option<Vec<Bytes>> {
    let Some(cmd) = shared.commands.lookup(&args) else {
        // Unknown: the dispatcher's error.
        return Some(args);
    };
    let name = cmd.full_name.as_str();
    if EXCLUDED.contains(&name) {
        return None;
    }
    if name == "config|set" {
        let all_safe = args[2..].chunks(2).all(|pair| {
            let name = String::from_utf8_lossy(&pair[0]);
            latchkey::config::find(&name).is_some_and(|p| CONFIG_SAFE.contains(&p.name))
        });
        if !all_safe {
            return None;
        }
    }
    if matches!(name, "srandmember" | "zrandmember" | "hrandfield") {
        if let Some(n) = args
            .get(2)
            .and_then(|c| std::str::from_utf8(c).ok()?.parse::<i64>().ok())
        {
            let capped = n > -(1 << 24) || name == "srandmember";
            if n < -1000 && n != i64::MIN && capped {
                args[2] = Bytes::from_static(b"-1000");
            }
        }
    }
    Some(args)
}

/// How many top-level frames `reply` is written as, or `None` if it would
/// write an array or map that does not hold what its header announces.
/// SUBSCRIBE, PSUBSCRIBE and UNSUBSCRIBE of several channels inside
/// MULTI write one confirmation per channel into EXEC's array, whose
/// header counts commands: the extra ones follow the array as frames of
/// their own (redis-server 7.0 writes exactly that); a reply that writes
/// nothing inside an array would shift every frame after it.
fn expected_frames(reply: &Reply) -> Option<usize> {
    let within = |items: &mut dyn Iterator<Item = &Reply>| -> Option<usize> {
        let mut extra = 0;
        for r in items {
            extra += expected_frames(r)?.checked_sub(1)?;
        }
        Some(1 + extra)
    };
    match reply {
        Reply::Silent => Some(0),
        Reply::Frames(f) => f.iter().map(expected_frames).sum(),
        Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => within(&mut v.iter()),
        Reply::Map(pairs) => within(&mut pairs.iter().flat_map(|(k, v)| [k, v])),
        _ => Some(1),
    }
}

fn check_reply(args: &[Bytes], reply: &Reply, resp3: bool) {
    let mut out = BytesMut::new();
    reply.encode(resp3, &mut out);
    let want = expected_frames(reply);
    match crate::frames(&out, resp3) {
        Ok(n) if Some(n) == want => {}
        got => panic!(
            "{:?}: {:?} frame(s) expected, got {got:?} in {:?}",
            args.iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>(),
            want,
            String::from_utf8_lossy(&out[..out.len().min(512)])
        ),
    }
}

/// Runs one step; false once the client would be closed.
fn step(shared: &Shared, session: &mut Session, args: &[Bytes]) -> bool {
    let (reply, largest) =
        crate::alloc::largest_allocation(|| crate::execute(shared, session, args));
    assert!(
        largest <= MAX_ALLOCATION,
        "{:?}: an allocation of {largest} bytes",
        args.iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>()
    );
    check_reply(args, &reply, session.resp3);
    drop(reply);
    if session.blocked.is_some() {
        let reply = crate::block_on(latchkey::connection::time_out_wait(shared, session));
        check_reply(args, &reply, session.resp3);
    }
    // Pushes for this client (its own subscriptions, invalidations) are
    // not kept: a connection would have written them.
    session.held_pushes.clear();
    while session.inbox.try_recv().is_some() {}
    !session.close_after_reply && !session.info.is_killed()
}

/// Runs the case on the shared server and checks every reply.
pub fn check(data: &[u8]) {
    static CASES: AtomicU64 = AtomicU64::new(0);
    static CONFIG_CHANGED: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = crate::one_at_a_time(&ONE);
    let shared = server();
    let n = CASES.fetch_add(1, Ordering::Relaxed);
    if n % 1024 == 1023 {
        shared.scripts.flush();
    }
    let case = Case::decode(shared, data);
    // A CLIENT PAUSE of an earlier case ends with it (the clock moves only
    // when a case says so; CLIENT UNPAUSE would be postponed under ALL).
    shared.pause.unpause();
    let mut session = crate::new_session(shared, n + 1);
    let run = |session: &mut Session, words: &[Bytes]| {
        let reply = crate::execute(shared, session, words);
        assert!(
            matches!(reply, Reply::Simple(_) | Reply::Status(_)),
            "{words:?}: {reply:?}"
        );
    };
    // FLUSHDB of the databases left with keys (FLUSHALL clears all 16
    // databases' 32 shards each: a third of a case's time when it ran
    // every time).
    for (i, db) in shared.keyspace.dbs().iter().enumerate() {
        if !db.is_empty() {
            run(
                &mut session,
                &[Bytes::from_static(b"SELECT"), Bytes::from(i.to_string())],
            );
            run(&mut session, &[Bytes::from_static(b"FLUSHDB")]);
        }
    }
    run(
        &mut session,
        &[Bytes::from_static(b"SELECT"), Bytes::from_static(b"0")],
    );
    if CONFIG_CHANGED.swap(false, Ordering::Relaxed) {
        run(&mut session, config_reset());
    }
    if case.small_encodings {
        let mut args = vec![Bytes::from_static(b"CONFIG"), Bytes::from_static(b"SET")];
        for (name, value) in SMALL_ENCODINGS {
            args.push(Bytes::from_static(name.as_bytes()));
            args.push(Bytes::from_static(value.as_bytes()));
        }
        run(&mut session, &args);
        CONFIG_CHANGED.store(true, Ordering::Relaxed);
    }
    if case.hello3 {
        let reply = crate::execute(
            shared,
            &mut session,
            &[Bytes::from_static(b"HELLO"), Bytes::from_static(b"3")],
        );
        check_reply(&[], &reply, session.resp3);
    }
    for s in case.steps {
        match s {
            Step::Time(ms) => shared.advance_time(std::time::Duration::from_millis(ms)),
            Step::Command(args) => {
                let Some(args) = admit(shared, args) else {
                    continue;
                };
                if latchkey::commands::is(&args[0], "config") {
                    CONFIG_CHANGED.store(true, Ordering::Relaxed);
                }
                if !step(shared, &mut session, &args) {
                    break;
                }
            }
        }
    }
    crate::block_on(latchkey::connection::release(shared, &mut session));
}

/// Writes a case (the inverse of [`Case::decode`] for the seed corpus):
/// table rows by index, arguments raw, keys as key slots.
pub struct Writer {
    pub out: Vec<u8>,
}

impl Writer {
    pub fn new(hello3: bool, small_encodings: bool) -> Writer {
        Writer {
            out: vec![u8::from(hello3) | (u8::from(small_encodings) << 1)],
        }
    }

    /// Appends a command; `key_slot` maps a key name to its slot in
    /// [`KEYS`]. False if it cannot be written (a name not in the table,
    /// an argument over 255 bytes).
    pub fn command(
        &mut self,
        shared: &Shared,
        words: &[Bytes],
        key_slot: &mut impl FnMut(&[u8]) -> u8,
    ) -> bool {
        let names = names(shared);
        let Some(cmd) = shared.commands.lookup(words) else {
            return false;
        };
        let Some(i) = names.iter().position(|(_, index)| *index == cmd.index) else {
            return false;
        };
        let name_words = names[i].0.len();
        if words.len() < name_words
            || words.len() - name_words > usize::from(u8::MAX - ANY_ARITY)
            || words[name_words..].iter().any(|w| w.len() > 255)
        {
            return false;
        }
        let keys: Vec<usize> = cmd.spec.keys_of(words).iter().map(|k| k.pos).collect();
        self.out.push((i >> 8) as u8);
        self.out.push(i as u8);
        let extra = words.len() - name_words;
        self.out.push(ANY_ARITY + extra as u8);
        for (pos, w) in words.iter().enumerate().skip(name_words) {
            if keys.contains(&pos) {
                self.out.push(kind::KEY);
                self.out.push(key_slot(w));
            } else {
                self.out.push(kind::RAW_TAG);
                self.out.push(w.len() as u8);
                self.out.extend_from_slice(w);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_excluded_and_safe_name_exists() {
        let shared = server();
        for name in EXCLUDED {
            assert!(
                shared.commands.all().iter().any(|c| c.full_name == *name),
                "{name}"
            );
        }
        for name in CONFIG_SAFE {
            assert!(latchkey::config::find(name).is_some(), "{name}");
        }
    }

    #[test]
    fn a_written_case_decodes_to_its_commands() {
        let shared = server();
        let words: Vec<Bytes> = ["SET", "k", "hello", "EX", "10"]
            .iter()
            .map(|w| Bytes::from(w.to_string()))
            .collect();
        let mut w = Writer::new(false, true);
        assert!(w.command(shared, &words, &mut |_| 2));
        let case = Case::decode(shared, &w.out);
        assert!(case.small_encodings && !case.hello3);
        let [Step::Command(args)] = &case.steps[..] else {
            panic!("{case:?}");
        };
        assert_eq!(args, &["set", "c", "hello", "EX", "10"]);
        check(&w.out);
    }

    #[test]
    fn blocking_commands_end_at_once() {
        let shared = server();
        let mut w = Writer::new(false, false);
        for cmd in [
            &["BLPOP", "k", "0"][..],
            &["XREAD", "BLOCK", "0", "STREAMS", "k", "$"],
            &["BZPOPMIN", "k", "0"],
            &["SUBSCRIBE", "a", "b"],
        ] {
            let words: Vec<Bytes> = cmd.iter().map(|w| Bytes::from(w.to_string())).collect();
            assert!(w.command(shared, &words, &mut |_| 0));
        }
        check(&w.out);
    }

    /// Found by the target: SSUBSCRIBE of two channels inside MULTI made
    /// EXEC's array hold three frames under a header of one (redis-server
    /// refuses SSUBSCRIBE there); SUBSCRIBE's extra frames are Redis's own.
    #[test]
    fn subscriptions_inside_exec() {
        let shared = server();
        let mut w = Writer::new(false, false);
        for cmd in [
            &["MULTI"][..],
            &["SSUBSCRIBE", "a", "b"],
            &["SUBSCRIBE", "c", "d"],
            &["UNSUBSCRIBE"],
            &["EXEC"],
        ] {
            let words: Vec<Bytes> = cmd.iter().map(|w| Bytes::from(w.to_string())).collect();
            assert!(w.command(shared, &words, &mut |_| 0));
        }
        check(&w.out);
    }

    /// Found by the target in CI: a case's `CLIENT PAUSE ... ALL` outlived it
    /// (the fuzz clock moves only when a case says so), and the next case's
    /// first SELECT was postponed (no reply) instead of run.
    #[test]
    fn a_pause_ends_with_its_case() {
        let shared = server();
        let mut w = Writer::new(false, false);
        for cmd in [&["CLIENT", "PAUSE", "100000", "ALL"][..], &["GET", "k"]] {
            let words: Vec<Bytes> = cmd.iter().map(|w| Bytes::from(w.to_string())).collect();
            assert!(w.command(shared, &words, &mut |_| 0));
        }
        check(&w.out);
        let mut next = Writer::new(false, false);
        let words: Vec<Bytes> = ["SET", "k", "v"]
            .iter()
            .map(|w| Bytes::from(w.to_string()))
            .collect();
        assert!(next.command(shared, &words, &mut |_| 0));
        check(&next.out);
    }

    /// Prints the commands of the case in the file `LATCHKEY_FUZZ_CASE` names
    /// (a crash libFuzzer wrote), one per line, as redis-cli would take
    /// them (run with `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn print_case() {
        let path = std::env::var("LATCHKEY_FUZZ_CASE").expect("LATCHKEY_FUZZ_CASE=file");
        let data = std::fs::read(path).expect("readable");
        let case = Case::decode(server(), &data);
        println!(
            "hello3: {}, small encodings: {}",
            case.hello3, case.small_encodings
        );
        for s in &case.steps {
            match s {
                Step::Time(ms) => println!("# {ms} ms pass"),
                Step::Command(args) => {
                    let words: Vec<String> = args
                        .iter()
                        .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
                        .collect();
                    println!("{}", words.join(" "));
                }
            }
        }
    }

    /// The fuzz target's check on random inputs, bounded in count and time.
    #[test]
    fn random_commands_get_one_well_formed_reply_each() {
        crate::check_random("commands", 2000, 400, check);
    }

    #[test]
    fn the_seed_corpus_runs() {
        crate::check_corpus("commands", check);
    }
}
