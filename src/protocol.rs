//! Turning the bytes a client sends into commands.
//!
//! A request is either a RESP multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or an
//! inline command (`GET k\r\n`, as typed into telnet). [`RequestParser`] scans a
//! multibulk's headers resumably, applying Redis's limits and error texts
//! (`Protocol error: invalid bulk length`, ...) before the body has arrived, and
//! records where each argument lies; once the whole frame is buffered the
//! arguments are `Bytes` slices of the read buffer, with no copy.
//!
//! Requests are a small subset of RESP (arrays of bulk strings) that must be
//! validated byte by byte for Redis's error texts anyway, so the scan that
//! validates also extracts. Handing the frame to `redis-protocol`'s general
//! decoder afterwards parsed it a second time and cost a third of the server's
//! user-space CPU under pipelined load; replies are still encoded by
//! `redis-protocol` (see `reply.rs`).
//!
//! Not here: what the arguments mean (that is the command table's job).

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline request or header line Redis accepts (`PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;

/// Before a client has authenticated (when a password is set), Redis caps requests.
const UNAUTH_MAX_MULTIBULK: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16384;

/// Limits applied while parsing, with Redis's option names.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `proto-max-bulk-len`: longest argument.
    pub proto_max_bulk_len: i64,
    /// Longest multibulk count (Redis: `INT_MAX`).
    pub max_multibulk_len: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            proto_max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as i64,
        }
    }
}

/// A protocol error: the client gets `-ERR Protocol error: <text>` and is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERR Protocol error: {}", self.0)
    }
}

fn perr(text: impl Into<String>) -> ProtocolError {
    ProtocolError(text.into())
}

/// Arguments of at least this many bytes get an allocation of their own, sized
/// exactly, which becomes the stored value without a copy (Redis's
/// `PROTO_MBULK_BIG_ARG`).
pub const BIG_ARG: usize = 32 * 1024;

/// Resumable request parser: takes each argument out of the buffer as soon as it
/// has fully arrived, so a frame arriving in many reads is scanned once.
///
/// A big argument (at least [`BIG_ARG`] bytes) that has not fully arrived is read
/// into a buffer of its own, exactly its size: while it is read the caller's read
/// buffer *is* that buffer (the ordinary one is set aside), and once complete the
/// argument is that whole allocation, frozen without a copy. Growing the ordinary
/// buffer to hold it instead would copy it on every doubling and leave it pinned
/// by a buffer twice its size.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// Elements of the current multibulk not yet taken; 0 when between frames.
    remaining: i64,
    /// The current multibulk's arguments taken so far.
    taken: Vec<Bytes>,
    /// Length of the big argument being read into its own buffer.
    big: Option<usize>,
    /// The ordinary read buffer, set aside while a big argument is read.
    spare: BytesMut,
}

/// A buffer for a big argument of `n` bytes (CRLF included): exactly that big,
/// so the stored value is the buffer itself, unless the allocator refuses that
/// much before a byte of it has arrived (a client may announce more than the
/// machine has; an infallible allocation would abort the server). Then it
/// starts small and grows as the bytes come.
fn buffer_for(n: usize) -> BytesMut {
    let mut exact = Vec::new();
    if exact.try_reserve_exact(n).is_ok() {
        // A fresh `Bytes` is unique: it turns back into a `BytesMut` over the
        // same allocation, capacity and all.
        if let Ok(own) = Bytes::from(exact).try_into_mut() {
            return own;
        }
    }
    BytesMut::with_capacity(n.min(1024 * 1024))
}

impl RequestParser {
    /// Takes the next complete command out of `buf` into `args` (cleared first):
    /// `Ok(false)` when more bytes are needed. Blank inline lines and empty
    /// multibulks are skipped, as in Redis.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
        args: &mut Vec<Bytes>,
    ) -> Result<bool, ProtocolError> {
        args.clear();
        loop {
            if self.remaining == 0 {
                if buf.is_empty() {
                    return Ok(false);
                }
                if buf[0] != b'*' {
                    match parse_inline(buf)? {
                        None => return Ok(false),
                        Some(inline) if inline.is_empty() => continue,
                        Some(inline) => {
                            *args = inline;
                            return Ok(true);
                        }
                    }
                }
                let Some(line_end) = find_crlf(buf, 1) else {
                    if buf.len() > INLINE_MAX {
                        return Err(perr("too big mbulk count string"));
                    }
                    return Ok(false);
                };
                let count = parse_i64(&buf[1..line_end])
                    .filter(|n| *n <= limits.max_multibulk_len)
                    .ok_or_else(|| perr("invalid multibulk length"))?;
                if !authenticated && count > UNAUTH_MAX_MULTIBULK {
                    return Err(perr("unauthenticated multibulk length"));
                }
                buf.advance(line_end + 2);
                if count <= 0 {
                    continue;
                }
                self.remaining = count;
                self.taken.clear();
            }
            if !self.take_elements(buf, limits, authenticated)? {
                return Ok(false);
            }
            std::mem::swap(args, &mut self.taken);
            return Ok(true);
        }
    }

    /// Makes room in `buf` for the next read: nothing while a big argument is read
    /// (its buffer is exactly its size), otherwise at least half of `chunk` free.
    pub fn reserve_for_read(&self, buf: &mut BytesMut, chunk: usize) {
        if buf.capacity() - buf.len() >= chunk / 2 {
            return;
        }
        match self.big {
            None => buf.reserve(chunk),
            // A big argument's buffer has its exact size from the start, unless
            // the allocator refused that much up front (`buffer_for`).
            Some(len) => buf.reserve(chunk.min((len + 2).saturating_sub(buf.len()))),
        }
    }

    /// Whether a big argument is being read into its own buffer.
    pub fn reading_big_arg(&self) -> bool {
        self.big.is_some()
    }

    /// Takes elements off the front of `buf`; true once the frame is complete.
    fn take_elements(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<bool, ProtocolError> {
        if let Some(len) = self.big {
            if buf.len() < len + 2 {
                return Ok(false);
            }
            self.take_big_arg(buf, len);
        }
        while self.remaining > 0 {
            if buf.is_empty() {
                return Ok(false);
            }
            let Some(cr) = memchr(b'\r', buf) else {
                if buf.len() > INLINE_MAX {
                    return Err(perr("too big bulk count string"));
                }
                return Ok(false);
            };
            if cr + 1 >= buf.len() {
                return Ok(false);
            }
            if buf[0] != b'$' {
                return Err(perr(format!("expected '$', got '{}'", buf[0] as char)));
            }
            let len = parse_i64(&buf[1..cr])
                .filter(|n| *n >= 0 && *n <= limits.proto_max_bulk_len)
                .ok_or_else(|| perr("invalid bulk length"))?;
            if !authenticated && len > UNAUTH_MAX_BULK {
                return Err(perr("unauthenticated bulk length"));
            }
            // `len` is at most proto-max-bulk-len, so this cannot overflow.
            let len = len as usize;
            let body = cr + 2;
            let end = body + len + 2;
            if len >= BIG_ARG {
                buf.advance(body);
                if buf.len() >= len + 2 {
                    // All here already, among other bytes: copy it out once so the
                    // stored value does not pin the read buffer.
                    self.taken.push(Bytes::copy_from_slice(&buf[..len]));
                    buf.advance(len + 2);
                } else {
                    // Everything buffered is the start of this argument.
                    let mut own = buffer_for(len + 2);
                    own.extend_from_slice(buf);
                    buf.clear();
                    self.spare = std::mem::replace(buf, own);
                    self.big = Some(len);
                    return Ok(false);
                }
            } else {
                if buf.len() < end {
                    buf.reserve(end - buf.len());
                    return Ok(false);
                }
                buf.advance(body);
                self.taken.push(buf.split_to(len).freeze());
                buf.advance(2);
            }
            self.remaining -= 1;
        }
        Ok(true)
    }

    /// The big argument is complete in its own buffer: freeze it and put the
    /// ordinary read buffer back, with any bytes read past the argument.
    fn take_big_arg(&mut self, buf: &mut BytesMut, len: usize) {
        self.taken.push(buf.split_to(len).freeze());
        buf.advance(2);
        let mut ordinary = std::mem::take(&mut self.spare);
        ordinary.extend_from_slice(buf);
        *buf = ordinary;
        self.big = None;
        self.remaining -= 1;
    }
}

/// Parses one inline command line; `Ok(None)` when the line is not complete yet.
fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(perr("too big inline request"));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    split_args(line)
        .map(|args| Some(args.into_iter().map(Bytes::from).collect()))
        .ok_or_else(|| perr("unbalanced quotes in request"))
}

/// Splits a line into arguments the way Redis's `sdssplitargs` does: white space
/// separates, "double quotes" take C escapes (`\n`, `\x41`, ...), 'single quotes'
/// take only `\'`. `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                let c = *line.get(i)?;
                if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        cur.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < line.len() {
                    cur.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                    continue;
                }
                if c == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                }
                cur.push(c);
                i += 1;
            } else if in_sq {
                let c = *line.get(i)?;
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                    continue;
                }
                if c == b'\'' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                }
                cur.push(c);
                i += 1;
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(c) => cur.push(*c),
                }
                i += 1;
            }
        }
        args.push(cur);
    }
}

/// `s` quoted as Redis's `sdscatrepr` (MONITOR's arguments, the AOF
/// manifest's file names): the inverse of [`split_args`]'s quoted form.
pub fn repr(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c),
            c => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]),
        }
    }
    out.push(b'"');
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let cr = memchr(b'\r', &buf[from..])? + from;
    (cr + 1 < buf.len()).then_some(cr)
}

/// Parses a decimal integer the way Redis's `string2ll` does: no spaces, no `+`,
/// no leading zeros, no `-0`, within `i64`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ if digits.len() > 19 => return None,
        _ => {}
    }
    // Accumulate negatively so i64::MIN parses without overflow.
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    if negative {
        Some(v)
    } else {
        v.checked_neg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut p = RequestParser::default();
        let mut out = Vec::new();
        let mut args = Vec::new();
        while p.next(&mut buf, &Limits::default(), true, &mut args)? {
            out.push(args.clone());
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline_mix_in_one_buffer() {
        let cmds = parse_all(b"*1\r\n$4\r\nPING\r\nECHO hi\r\n\r\n*0\r\n").unwrap();
        assert_eq!(cmds, vec![vec!["PING"], vec!["ECHO", "hi"]]);
    }

    #[test]
    fn frame_split_across_reads_is_parsed_once_complete() {
        let whole = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
        let mut p = RequestParser::default();
        let mut buf = BytesMut::new();
        let mut args = Vec::new();
        for (i, b) in whole.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = p
                .next(&mut buf, &Limits::default(), true, &mut args)
                .unwrap();
            assert_eq!(got, i == whole.len() - 1, "at byte {i}");
        }
        assert_eq!(args, vec!["GET", "hello"]);
    }

    #[test]
    fn big_argument_is_read_into_its_own_buffer_and_not_copied() {
        let len = BIG_ARG + 100;
        let mut frame = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${len}\r\n").into_bytes();
        frame.extend((0..len).map(|i| i as u8));
        frame.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n");
        let mut p = RequestParser::default();
        let mut args = Vec::new();
        let limits = Limits::default();
        // The first read brings the headers and the start of the value.
        let mut buf = BytesMut::with_capacity(16 * 1024);
        buf.extend_from_slice(&frame[..1000]);
        assert!(!p.next(&mut buf, &limits, true, &mut args).unwrap());
        assert!(p.reading_big_arg());
        assert_eq!(
            buf.capacity(),
            len + 2,
            "a buffer exactly the argument's size"
        );
        let start = buf.as_ptr();
        // Reads fill it, never past its end, and nothing makes it grow.
        let mut at = 1000;
        while p.reading_big_arg() {
            p.reserve_for_read(&mut buf, 16 * 1024);
            let room = (buf.capacity() - buf.len()).min(7000);
            assert!(room > 0);
            buf.extend_from_slice(&frame[at..at + room]);
            at += room;
            let done = p.next(&mut buf, &limits, true, &mut args).unwrap();
            assert_eq!(done, !p.reading_big_arg());
        }
        assert_eq!(args.len(), 3);
        assert_eq!(args[2].len(), len);
        assert_eq!(
            args[2].as_ptr(),
            start,
            "the argument is that buffer, not a copy"
        );
        assert!(args[2].iter().enumerate().all(|(i, b)| *b == i as u8));
        // The ordinary buffer is back and the next command parses.
        buf.extend_from_slice(&frame[at..]);
        assert!(p.next(&mut buf, &limits, true, &mut args).unwrap());
        assert_eq!(args, vec!["PING"]);
    }

    #[test]
    fn big_argument_already_buffered_is_copied_out_of_the_read_buffer() {
        let value = vec![b'v'; BIG_ARG];
        let mut frame = format!("*2\r\n$4\r\nECHO\r\n${}\r\n", value.len()).into_bytes();
        frame.extend_from_slice(&value);
        frame.extend_from_slice(b"\r\n");
        let cmds = parse_all(&frame).unwrap();
        assert_eq!(cmds, vec![vec![Bytes::from("ECHO"), Bytes::from(value)]]);
    }

    #[test]
    fn oversize_bulk_header_is_rejected_before_the_body() {
        let err = parse_all(b"*1\r\n$2000000000\r\n").unwrap_err();
        assert_eq!(err.to_string(), "ERR Protocol error: invalid bulk length");
    }

    #[test]
    fn non_bulk_element_is_a_protocol_error() {
        let err = parse_all(b"*1\r\n:1\r\n").unwrap_err();
        assert_eq!(err.to_string(), "ERR Protocol error: expected '$', got ':'");
    }

    #[test]
    fn inline_quotes_follow_sdssplitargs() {
        assert_eq!(
            split_args(br#"set "a\x41 b" 'c\'d'"#).unwrap(),
            vec![b"set".to_vec(), b"aA b".to_vec(), b"c'd".to_vec()]
        );
        assert!(split_args(br#"set "a"b"#).is_none());
        assert!(split_args(br#"set "ab"#).is_none());
    }

    #[test]
    fn parse_i64_rejects_what_string2ll_rejects() {
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b" 1",
            b"1a",
            b"-0",
            b"-",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn repr_quotes_as_sdscatrepr() {
        let mut out = Vec::new();
        super::repr(b"a \"b\"\\\n\r\t\x07\x08\x01\xff", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a \"b\"\\\n\r\t\a\b\x01\xff""#
        );
    }
}
