//! Fuzzing the request parser (`latchkey::protocol::RequestParser`): the
//! bytes a client sends, multibulk and inline, fed as a connection feeds
//! them.
//!
//! A case is four header bytes (authenticated or not, the limits, a seed for
//! the read sizes, filler) and the stream. [`check`] parses the stream
//! three ways — all at once; in reads of seeded sizes into the spare room
//! the connection leaves (`reserve_for_read`, the exact buffer of a big
//! argument, the trim of an idle empty buffer); in pieces of seeded sizes
//! appended whatever the room; and, when short, a byte at a time — and
//! asserts:
//!
//! - nothing panics;
//! - every way gives the same commands and the same end (waiting for more,
//!   or the same protocol error), and that is what [`reference`] — a plain
//!   whole-buffer reading of Redis's rules, limits included — gives: an
//!   argument over `proto-max-bulk-len`, a count over the multibulk limit,
//!   an unauthenticated client's 11th argument or 16385th byte is an error
//!   before anything of that size exists;
//! - the parser never waits for bytes without leaving room to read them;
//! - the read buffer and every single allocation stay within a bound set by
//!   the bytes sent and the limits, never by a length the client announced
//!   (a big argument's exact buffer is allowed up to `proto-max-bulk-len`,
//!   only once authenticated, as Redis does).
//!
//! Streams longer than `INLINE_MAX` (filler cases) may end differently
//! depending on the read sizes (a header line over 64 KiB is refused only
//! once that much is buffered, as in Redis): for those only the bounds and
//! the absence of panics are checked.

use bytes::{Bytes, BytesMut};
use latchkey::protocol::{split_args, Limits, ProtocolError, RequestParser, BIG_ARG, INLINE_MAX};

/// The connection's read size (`connection.rs`'s `READ_CHUNK`).
const READ_CHUNK: usize = 16 * 1024;
/// A read buffer this big and empty is given back between batches
/// (`connection.rs`'s `READ_KEEP`).
const READ_KEEP: usize = 2 * READ_CHUNK;
/// Redis's limits before authentication (`protocol.rs`).
const UNAUTH_MAX_MULTIBULK: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16384;
/// The largest piece the split feeds append at once.
const MAX_PIECE: usize = 65536;

/// `proto-max-bulk-len` values a case picks from: the default, the least
/// CONFIG SET allows, both sides of the big-argument size, tiny ones.
const BULK_LIMITS: [i64; 8] = [
    512 * 1024 * 1024,
    1024 * 1024,
    BIG_ARG as i64 + 10,
    BIG_ARG as i64 - 1,
    16384,
    100,
    1,
    0,
];
const MULTIBULK_LIMITS: [i64; 4] = [i32::MAX as i64, 1000, 10, 1];
const FILLER: [u8; 4] = [b'a', b'0', b'\r', b' '];

/// One case, decoded from the fuzzer's bytes.
#[derive(Debug, Clone)]
pub struct Case {
    pub limits: Limits,
    pub authenticated: bool,
    pub seed: u64,
    pub stream: Vec<u8>,
}

/// The header bytes for a case (the inverse of [`Case::decode`] for the
/// seed corpus).
pub fn header(authenticated: bool, bulk: usize, multibulk: usize, seed: u16) -> [u8; 4] {
    let [lo, hi] = seed.to_le_bytes();
    [
        u8::from(authenticated),
        (bulk % 8) as u8 | (((multibulk % 4) as u8) << 3),
        lo,
        hi,
    ]
}

impl Case {
    pub fn decode(data: &[u8]) -> Case {
        let at = |i: usize| data.get(i).copied().unwrap_or(0);
        let (flags, limits) = (at(0), at(1));
        let seed = u64::from(u16::from_le_bytes([at(2), at(3)]));
        let mut stream = data.get(4..).unwrap_or_default().to_vec();
        // One case in 16 ends with more than a header line may hold, no CRLF.
        if flags & 0xf0 == 0xf0 {
            let fill = FILLER[usize::from((flags >> 2) & 3)];
            let extra = INLINE_MAX + 1 + (seed as usize % 4096);
            stream.extend(std::iter::repeat_n(fill, extra));
        }
        Case {
            limits: Limits {
                proto_max_bulk_len: BULK_LIMITS[usize::from(limits & 7)],
                max_multibulk_len: MULTIBULK_LIMITS[usize::from((limits >> 3) & 3)],
            },
            // Mostly authenticated, as most clients are.
            authenticated: flags & 3 != 0,
            seed,
            stream,
        }
    }
}

/// What a way of feeding the stream ends with: the commands, then either
/// `Ok(())` (waiting for more bytes) or the protocol error that closes the
/// connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub commands: Vec<Vec<Bytes>>,
    pub end: Result<(), ProtocolError>,
}

/// A small deterministic generator for read sizes (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A read size: often tiny, sometimes up to 64 KiB.
    fn piece(&mut self) -> usize {
        let r = self.next();
        let n = (r >> 8) as usize;
        1 + match r % 4 {
            0 => n % 4,
            1 => n % 64,
            2 => n % 4096,
            _ => n % MAX_PIECE,
        }
    }
}

/// The most a buffer may hold or have room for, and the largest single
/// allocation a parse may make: set by the bytes fed and the limits, never
/// by a length the client announced, except a big argument's own buffer,
/// up to `proto-max-bulk-len`, once authenticated.
fn bounds(case: &Case) -> (usize, usize) {
    let arg = if case.authenticated {
        usize::try_from(case.limits.proto_max_bulk_len).unwrap_or(usize::MAX) + 2
    } else {
        UNAUTH_MAX_BULK as usize + 2
    };
    let held = INLINE_MAX + 2 * MAX_PIECE + BIG_ARG + arg;
    let room = 4 * (INLINE_MAX + 2 * MAX_PIECE + BIG_ARG + READ_CHUNK) + arg;
    (held, room)
}

/// Runs the parser over what `buf` holds until it waits or fails.
fn drain(
    p: &mut RequestParser,
    buf: &mut BytesMut,
    case: &Case,
    out: &mut Parsed,
) -> Result<(), ()> {
    let mut args = Vec::new();
    loop {
        match p.next(buf, &case.limits, case.authenticated, &mut args) {
            Ok(true) => out.commands.push(std::mem::take(&mut args)),
            Ok(false) => return Ok(()),
            Err(e) => {
                out.end = Err(e);
                return Err(());
            }
        }
    }
}

/// How the stream reaches the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// All of it in one buffer.
    Whole,
    /// Reads of seeded sizes into the room `reserve_for_read` leaves, with
    /// the idle trim, as `connection.rs` reads.
    Connection,
    /// Pieces of seeded sizes appended whatever the room.
    Pieces,
    /// One byte at a time.
    Bytewise,
}

/// Feeds the stream as `how` says, checking the room and the bounds after
/// every read.
pub fn feed(case: &Case, how: Feed) -> Parsed {
    let (held, room) = bounds(case);
    let mut rng = Rng(case.seed);
    let mut p = RequestParser::default();
    let mut buf = BytesMut::new();
    let mut out = Parsed {
        commands: Vec::new(),
        end: Ok(()),
    };
    let mut rest = &case.stream[..];
    while !rest.is_empty() {
        let n = match how {
            Feed::Whole => rest.len(),
            Feed::Bytewise => 1,
            Feed::Pieces => rng.piece().min(rest.len()),
            Feed::Connection => {
                if buf.is_empty() && buf.capacity() > READ_KEEP && !p.reading_big_arg() {
                    buf = BytesMut::new();
                }
                p.reserve_for_read(&mut buf, READ_CHUNK);
                let free = buf.capacity() - buf.len();
                assert!(
                    free > 0,
                    "the parser waits for more bytes and leaves no room to read them \
                     ({} buffered, big argument: {})",
                    buf.len(),
                    p.reading_big_arg()
                );
                rng.piece().min(rest.len()).min(free)
            }
        };
        let (piece, after) = rest.split_at(n);
        buf.extend_from_slice(piece);
        rest = after;
        if drain(&mut p, &mut buf, case, &mut out).is_err() {
            break;
        }
        assert!(
            buf.len() <= held,
            "{} bytes held waiting (bound {held})",
            buf.len()
        );
        assert!(
            buf.capacity() <= room,
            "a read buffer of {} bytes (bound {room})",
            buf.capacity()
        );
    }
    out
}

/// Redis's reading of a whole buffer, written plainly (no resumption): the
/// oracle [`feed`]'s ways are held to. Only for streams of at most
/// `INLINE_MAX` bytes, where no header line can be too long.
pub fn reference(case: &Case) -> Parsed {
    let s = &case.stream[..];
    let l = &case.limits;
    let err = |t: &str| Err(ProtocolError(t.to_string()));
    let mut out = Parsed {
        commands: Vec::new(),
        end: Ok(()),
    };
    let mut p = 0;
    'commands: while p < s.len() {
        if s[p] != b'*' {
            let Some(nl) = s[p..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let mut line = &s[p..p + nl];
            p += nl + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            match split_args(line) {
                None => {
                    out.end = err("unbalanced quotes in request");
                    break;
                }
                Some(args) if args.is_empty() => {}
                Some(args) => out
                    .commands
                    .push(args.into_iter().map(Bytes::from).collect()),
            }
            continue;
        }
        // A header line ends at the first CR with a byte after it (that byte
        // is taken as the LF without looking, as Redis does).
        let line_end = |from: usize| {
            s[from..]
                .iter()
                .position(|&b| b == b'\r')
                .map(|i| from + i)
                .filter(|cr| cr + 1 < s.len())
        };
        let Some(cr) = line_end(p + 1) else {
            break;
        };
        let count = match number(&s[p + 1..cr]) {
            Some(n) if n <= l.max_multibulk_len => n,
            _ => {
                out.end = err("invalid multibulk length");
                break;
            }
        };
        if !case.authenticated && count > UNAUTH_MAX_MULTIBULK {
            out.end = err("unauthenticated multibulk length");
            break;
        }
        p = cr + 2;
        let mut args = Vec::new();
        for _ in 0..count.max(0) {
            if p >= s.len() {
                break 'commands;
            }
            let Some(cr) = line_end(p) else {
                break 'commands;
            };
            if s[p] != b'$' {
                out.end = Err(ProtocolError(format!(
                    "expected '$', got '{}'",
                    s[p] as char
                )));
                break 'commands;
            }
            let len = match number(&s[p + 1..cr]) {
                Some(n) if (0..=l.proto_max_bulk_len).contains(&n) => n as usize,
                _ => {
                    out.end = err("invalid bulk length");
                    break 'commands;
                }
            };
            if !case.authenticated && len as i64 > UNAUTH_MAX_BULK {
                out.end = err("unauthenticated bulk length");
                break 'commands;
            }
            let body = cr + 2;
            if s.len() < body + len + 2 {
                break 'commands;
            }
            args.push(Bytes::copy_from_slice(&s[body..body + len]));
            p = body + len + 2;
        }
        if count > 0 {
            out.commands.push(args);
        }
    }
    out
}

/// A decimal as Redis's `string2ll` reads it: optional `-`, digits, no
/// leading zero (but `0`), no `-0`, within `i64` — checked through `i128`.
fn number(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty()
        || digits.len() > 20
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits[0] == b'0' && (digits.len() > 1 || digits.len() < s.len()))
    {
        return None;
    }
    let v: i128 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    i64::try_from(if digits.len() < s.len() { -v } else { v }).ok()
}

/// The fuzz target's check (see the module's documentation).
pub fn check(data: &[u8]) {
    let case = Case::decode(data);
    let (held, room) = bounds(&case);
    let ((), largest) = crate::alloc::largest_allocation(|| {
        let connection = feed(&case, Feed::Connection);
        let pieces = feed(&case, Feed::Pieces);
        if case.stream.len() > INLINE_MAX {
            return;
        }
        let whole = feed(&case, Feed::Whole);
        let expected = reference(&case);
        assert_eq!(whole, expected, "all at once, against the reference");
        assert_eq!(
            connection, whole,
            "connection-like reads, against all at once"
        );
        assert_eq!(pieces, whole, "pieces, against all at once");
        if case.stream.len() <= 2048 {
            assert_eq!(feed(&case, Feed::Bytewise), whole, "byte by byte");
        }
    });
    // What the check itself holds: the stream, and the commands it parsed
    // (a `Vec` per command, a `Bytes` per argument: up to 32 bytes for each
    // byte of a stream of one-letter words, doubled as a `Vec` grows).
    let own = 64 * case.stream.len() + 4096;
    assert!(
        largest <= room.max(held) + own,
        "an allocation of {largest} bytes (bound {})",
        room.max(held) + own
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(auth: bool, bulk: i64, stream: &[u8]) -> Case {
        Case {
            limits: Limits {
                proto_max_bulk_len: bulk,
                max_multibulk_len: i32::MAX as i64,
            },
            authenticated: auth,
            seed: 7,
            stream: stream.to_vec(),
        }
    }

    #[test]
    fn the_reference_reads_what_redis_reads() {
        let c = case(
            true,
            512 << 20,
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING x\r\n\r\n*0\r\n",
        );
        let r = reference(&c);
        assert_eq!(r.commands, vec![vec!["GET", "k"], vec!["PING", "x"]]);
        assert_eq!(r.end, Ok(()));
        let r = reference(&case(true, 3, b"*1\r\n$4\r\nPING\r\n"));
        assert_eq!(r.end, Err(ProtocolError("invalid bulk length".into())));
        let r = reference(&case(false, 512 << 20, b"*11\r\n"));
        assert_eq!(
            r.end,
            Err(ProtocolError("unauthenticated multibulk length".into()))
        );
        assert_eq!(number(b"-0"), None);
        assert_eq!(number(b"007"), None);
        assert_eq!(number(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(number(b"9223372036854775808"), None);
    }

    #[test]
    fn a_big_argument_split_anywhere_is_one_argument() {
        let mut stream = format!("*2\r\n$4\r\nECHO\r\n${}\r\n", BIG_ARG + 5).into_bytes();
        stream.extend(std::iter::repeat_n(b'v', BIG_ARG + 5));
        stream.extend_from_slice(b"\r\nPING\r\n");
        let mut data = header(true, 0, 0, 3).to_vec();
        data.extend_from_slice(&stream);
        check(&data);
        let whole = feed(&Case::decode(&data), Feed::Whole);
        assert_eq!(whole.commands.len(), 2);
        assert_eq!(whole.commands[0][1].len(), BIG_ARG + 5);
    }

    #[test]
    fn an_announced_length_is_not_an_allocation() {
        // Unauthenticated, or over the limit: refused at the header.
        for (auth, bulk) in [(false, 0), (true, 5), (true, 7)] {
            let mut data = header(auth, bulk, 0, 1).to_vec();
            data.extend_from_slice(b"*1\r\n$400000000\r\nabc");
            check(&data);
        }
    }

    /// The fuzz target's check on random inputs, bounded in count and time:
    /// streams built from RESP pieces (headers, lengths near the limits,
    /// inline lines with quotes) so that most are near-valid.
    #[test]
    fn random_streams_parse_the_same_however_split() {
        let cases: usize = std::env::var("LATCHKEY_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000);
        let seed = fastrand::u64(..);
        let mut rng = fastrand::Rng::with_seed(seed);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        const PIECES: &[&[u8]] = &[
            b"*",
            b"$",
            b"\r\n",
            b"\r",
            b"\n",
            b"*1\r\n",
            b"*2\r\n",
            b"*3\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"$0\r\n\r\n",
            b"$3\r\nGET\r\n",
            b"$1\r\nk\r\n",
            b"$-1\r\n",
            b"$16384\r\n",
            b"$16385\r\n",
            b"$32768\r\n",
            b"$100\r\n",
            b"$101\r\n",
            b"*11\r\n",
            b"*10\r\n",
            b"*1001\r\n",
            b"*2147483648\r\n",
            b"$9223372036854775807\r\n",
            b"$9223372036854775808\r\n",
            b"$01\r\n",
            b"$-0\r\n",
            b"PING\r\n",
            b"SET k \"a\\x41 b\"\n",
            b"'x\\'y'",
            b"\"",
            b"'",
            b"\"\\x",
            b" ",
            b"\t",
            b"ECHO hi\r\n",
            b"a",
            b"\0",
        ];
        for i in 0..cases {
            if std::time::Instant::now() > deadline {
                break;
            }
            let mut data: Vec<u8> = (0..4).map(|_| rng.u8(..)).collect();
            for _ in 0..rng.usize(0..40) {
                if rng.u8(..) < 200 {
                    data.extend_from_slice(PIECES[rng.usize(..PIECES.len())]);
                } else {
                    let n = [1, 10, 100, 20_000, BIG_ARG + 1][rng.usize(..5)];
                    data.extend((0..rng.usize(0..=n)).map(|_| rng.u8(..)));
                }
            }
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "seed {seed}, case {i}: {data:?}");
        }
    }

    #[test]
    fn the_seed_corpus_runs() {
        crate::check_corpus("resp", check);
    }
}
