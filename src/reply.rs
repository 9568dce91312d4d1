//! Replies, independent of the protocol version, and their encoding.
//!
//! Handlers build a [`Reply`]; the connection encodes it as RESP2 or RESP3
//! (after `HELLO 3`) through the `redis-protocol` crate. RESP3-only types are
//! downgraded the way Redis downgrades them for RESP2 clients: maps become flat
//! arrays, sets arrays, doubles bulk strings, booleans integers, and both kinds
//! of null become `$-1` or `*-1`.
//!
//! # Depth
//!
//! A script's result is the one reply whose shape a client chooses, so it is kept
//! flat ([`Nested`]: container headers and scalars in the order they are written)
//! and its depth costs no stack, whether it is built, encoded or dropped. Every
//! other reply is built by a handler and nests at most a few levels (EXEC's array
//! of replies, COMMAND's entries), so encoding recurses over those.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::BytesFrame as Frame3;

use crate::error::CommandError;

/// A reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`
    Simple(&'static str),
    /// `+text` with text built at run time (`TYPE`, `INFO` keys, ...).
    Status(Bytes),
    /// `-line`
    Error(CommandError),
    /// `:n`
    Int(i64),
    /// `$n\r\n...`
    Bulk(Bytes),
    /// A bulk string of at most 22 bytes held inline (a short stored value): GET
    /// replies without allocating.
    Short(crate::types::CompactBytes),
    /// The nil bulk string: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// The nil array: `*-1` in RESP2, `_` in RESP3.
    NilArray,
    /// `*n` followed by the elements.
    Array(Vec<Reply>),
    /// `%n` in RESP3, a flat array of key, value, ... in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// `~n` in RESP3, an array in RESP2.
    Set(Vec<Reply>),
    /// `,d` in RESP3, a bulk string in RESP2.
    Double(f64),
    /// A double printed as Redis's `addReplyHumanLongDouble` prints it (GEOPOS,
    /// WITHCOORD): [`format_human_double`], as `,d` in RESP3 and a bulk string in
    /// RESP2.
    HumanDouble(f64),
    /// `#t` in RESP3, `:1`/`:0` in RESP2.
    Bool(bool),
    /// `=n\r\ntxt:...` in RESP3, a bulk string in RESP2.
    Verbatim(Bytes),
    /// `>n` in RESP3 (out-of-band data), an array in RESP2.
    Push(Vec<Reply>),
    /// Nothing at all is sent (SHUTDOWN closes the connection without a reply).
    Silent,
    /// Several top-level frames one after the other, with no header: SUBSCRIBE's
    /// one confirmation per channel.
    Frames(Vec<Reply>),
    /// A script's result with nested arrays, maps or sets (or a RESP3 type only
    /// scripts produce), kept flat.
    Nested(Nested),
    /// An array or map of bulk strings and doubles written as the handler read
    /// them (ZRANGE, HGETALL): one buffer, not a `Reply` per element.
    Written(Written),
}

/// An array or map whose elements — bulk strings, doubles, and RESP3's
/// `[member, score]` pairs — are written into one buffer as a handler reads them
/// from a value, in the protocol its client spoke then (as Redis writes a reply
/// into the client's buffer while the command runs). A long range costs one
/// buffer instead of a `Reply`, a copy and a drop per element.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    map: bool,
    resp3: bool,
    /// Top-level elements written (a pair is one; a map's keys and values count
    /// one each).
    items: usize,
    wire: Vec<u8>,
}

impl Written {
    /// An empty array, its elements about `bytes` long in all.
    pub fn array(resp3: bool, bytes: usize) -> Written {
        Written {
            map: false,
            resp3,
            items: 0,
            wire: Vec::with_capacity(bytes),
        }
    }

    /// An empty map (`%n` in RESP3, a flat array in RESP2); write its keys and
    /// values alternately.
    pub fn map(resp3: bool, bytes: usize) -> Written {
        Written {
            map: true,
            ..Written::array(resp3, bytes)
        }
    }

    /// Appends a bulk string.
    pub fn bulk(&mut self, b: &[u8]) {
        write_bulk(&mut self.wire, b);
        self.items += 1;
    }

    /// Appends a member and its score: a `[member, score]` pair in RESP3, the
    /// two side by side in RESP2 (ZRANGE ... WITHSCORES).
    pub fn scored(&mut self, member: &[u8], score: f64) {
        if self.resp3 {
            self.wire.extend_from_slice(b"*2\r\n");
            write_bulk(&mut self.wire, member);
            let mut text = DoubleText::new();
            let d = text.format(score);
            self.wire.reserve(d.len() + 3);
            self.wire.push(b',');
            self.wire.extend_from_slice(d);
            self.wire.extend_from_slice(b"\r\n");
            self.items += 1;
        } else {
            write_bulk(&mut self.wire, member);
            write_bulk(&mut self.wire, DoubleText::new().format(score));
            self.items += 2;
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.wire.len() + 24);
        match (self.map, self.resp3) {
            (true, true) => header(out, b'%', self.items / 2),
            _ => header(out, b'*', self.items),
        }
        out.extend_from_slice(&self.wire);
    }

    /// The same reply as a tree of `Reply`s (a script's `redis.call` converts
    /// that).
    pub fn to_reply(&self) -> Reply {
        let mut items = Vec::with_capacity(self.items);
        let mut at = 0;
        while at < self.wire.len() {
            items.push(self.element(&mut at));
        }
        if self.map {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Reply::Map(pairs)
        } else {
            Reply::Array(items)
        }
    }

    /// The element written at `*at` (which this moves past): only what the
    /// methods above write is there.
    fn element(&self, at: &mut usize) -> Reply {
        let rest = &self.wire[*at..];
        let eol = rest.iter().position(|&c| c == b'\r').unwrap_or(rest.len());
        let text = &rest[1..eol];
        *at += eol + 2;
        match rest[0] {
            b'$' => {
                let n: usize = std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let b = Bytes::copy_from_slice(&self.wire[*at..*at + n]);
                *at += n + 2;
                Reply::Bulk(b)
            }
            b',' => Reply::Double(
                std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0.0),
            ),
            _ => Reply::Array(vec![self.element(at), self.element(at)]),
        }
    }
}

/// `$n\r\n<bytes>\r\n` into a `Vec`.
fn write_bulk(w: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    w.reserve(n + 24);
    // Most strings are shorter than 100 bytes: their length line is written
    // whole, without formatting.
    if n < 10 {
        w.extend_from_slice(&[b'$', b'0' + n as u8, b'\r', b'\n']);
    } else if n < 100 {
        w.extend_from_slice(&[
            b'$',
            b'0' + (n / 10) as u8,
            b'0' + (n % 10) as u8,
            b'\r',
            b'\n',
        ]);
    } else {
        w.push(b'$');
        w.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(b);
    w.extend_from_slice(b"\r\n");
}

/// A double's text as [`format_double`] writes it, without allocating when it
/// is an integer (most scores): `%.17g` prints an integer below 1e17 as its
/// digits.
struct DoubleText {
    int: itoa::Buffer,
    other: String,
}

impl DoubleText {
    fn new() -> Self {
        DoubleText {
            int: itoa::Buffer::new(),
            other: String::new(),
        }
    }

    fn format(&mut self, d: f64) -> &[u8] {
        // `-0.0` prints as `-0`, which the integer path would lose.
        if d.fract() == 0.0 && d.abs() < 1e15 && !(d == 0.0 && d.is_sign_negative()) {
            self.int.format(d as i64).as_bytes()
        } else {
            self.other = format_double(d);
            self.other.as_bytes()
        }
    }
}

/// A reply of any depth as a flat sequence: each container's header is followed
/// by its elements (a map's by key, value, ...), as it is written on the wire.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Nested(pub Vec<Part>);

/// One element of a [`Nested`] reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// `*n`: the next `n` parts (with their own elements) are its elements.
    Array(usize),
    /// `%n` in RESP3 (`*2n` in RESP2): `n` keys and values follow, alternating.
    Map(usize),
    /// `~n` in RESP3 (`*n` in RESP2).
    Set(usize),
    /// `:n`
    Int(i64),
    /// `$n\r\n...`
    Bulk(Bytes),
    /// `+text`; the text holds no CR or LF.
    Status(Bytes),
    /// `-text`; the text holds no CR or LF.
    Error(Bytes),
    /// `$-1` in RESP2, `_` in RESP3.
    Null,
    /// `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    Bool(bool),
    /// `,d` in RESP3, a bulk string in RESP2.
    Double(f64),
    /// `(digits` in RESP3, a bulk string in RESP2; the text holds no CR or LF.
    BigNumber(Bytes),
    /// `=n\r\nfmt:text` in RESP3 (a three-byte format), a bulk string in RESP2.
    Verbatim([u8; 3], Bytes),
}

impl Reply {
    /// A copy of `b` as a bulk reply: up to 22 bytes held inline (no
    /// allocation: HGETALL of a small hash, SMEMBERS, ZRANGE), longer ones in a
    /// buffer of their own.
    pub fn copy_of(b: &[u8]) -> Reply {
        if b.len() <= crate::types::CompactBytes::INLINE {
            Reply::Short(crate::types::CompactBytes::from_slice(b))
        } else {
            Reply::Bulk(Bytes::copy_from_slice(b))
        }
    }

    /// A stored string as a bulk reply, without allocating: a short value is
    /// copied into the reply (24 bytes), a long one shares its buffer.
    pub fn stored(v: &crate::types::CompactBytes) -> Reply {
        match v.shared() {
            Some(b) => Reply::Bulk(b.clone()),
            None => Reply::Short(v.clone()),
        }
    }

    /// `+OK`
    pub const OK: Reply = Reply::Simple("OK");

    /// A bulk string copied from a `&str`.
    pub fn bulk_str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A bulk string from an owned `String`, without copying.
    pub fn bulk_string(s: String) -> Reply {
        Reply::Bulk(Bytes::from(s))
    }

    /// The bulk string, or nil for `None`.
    pub fn bulk_or_nil(v: Option<Bytes>) -> Reply {
        v.map_or(Reply::Nil, Reply::Bulk)
    }

    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        match self {
            Reply::Error(_) => true,
            Reply::Nested(n) => matches!(n.0.as_slice(), [Part::Error(_)]),
            _ => false,
        }
    }

    /// Appends this reply to `out`, as RESP3 when `resp3` is set, else RESP2.
    ///
    /// Containers are written here, header then elements (recursing only over the
    /// few levels a handler builds; see the module doc), so a RESP2 `*-1` can sit
    /// inside an array (a BLPOP that timed out inside EXEC) and a [`Nested`] reply
    /// inside EXEC's. Scalars go through `redis-protocol`, except the short bulk
    /// string on GET's path and doubles, which Redis formats its own way.
    pub fn encode(&self, resp3: bool, out: &mut BytesMut) {
        match self {
            Reply::Silent => {}
            Reply::Frames(frames) => frames.iter().for_each(|f| f.encode(resp3, out)),
            // The commonest scalars are written here, as `redis-protocol`
            // would, without building its frame (a refcount taken and
            // dropped, a second match): about a tenth of an unpipelined
            // LMOVE's user-space instructions.
            Reply::Short(b) => bulk(out, b),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Int(i) => int(out, *i),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                items.iter().for_each(|i| i.encode(resp3, out));
            }
            Reply::Set(items) | Reply::Push(items) => {
                let kind = match (resp3, self) {
                    (false, _) => b'*',
                    (true, Reply::Set(_)) => b'~',
                    (true, _) => b'>',
                };
                header(out, kind, items.len());
                items.iter().for_each(|i| i.encode(resp3, out));
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len().saturating_mul(2));
                }
                for (k, v) in pairs {
                    k.encode(resp3, out);
                    v.encode(resp3, out);
                }
            }
            Reply::Double(d) => double(out, resp3, *d),
            Reply::Written(w) => w.encode(out),
            Reply::HumanDouble(d) => {
                let text = format_human_double(*d);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Nested(n) => n.encode(resp3, out),
            _ => self.encode_scalar(resp3, out),
        }
    }

    /// A scalar through `redis-protocol` (`encode` writes the rest).
    fn encode_scalar(&self, resp3: bool, out: &mut BytesMut) {
        let encoded = if resp3 {
            redis_protocol::resp3::encode::complete::extend_encode(out, &self.to_resp3(), false)
        } else if let Some(raw) = self.resp2_special() {
            out.extend_from_slice(raw);
            Ok(raw.len())
        } else {
            redis_protocol::resp2::encode::extend_encode(out, &self.to_resp2(), false)
        };
        if let Err(e) = encoded {
            // Every frame we build is encodable; this guards against a future mistake
            // turning into a broken stream rather than an error reply.
            tracing::error!("failed to encode reply: {e}");
            out.extend_from_slice(b"-ERR internal error encoding reply\r\n");
        }
    }

    /// RESP2 forms that `redis-protocol`'s RESP2 frame type cannot express.
    fn resp2_special(&self) -> Option<&'static [u8]> {
        match self {
            Reply::NilArray => Some(b"*-1\r\n"),
            Reply::Simple("OK") => Some(b"+OK\r\n"),
            Reply::Simple("QUEUED") => Some(b"+QUEUED\r\n"),
            Reply::Simple("PONG") => Some(b"+PONG\r\n"),
            _ => None,
        }
    }

    /// A scalar as a RESP2 frame. Containers, doubles and [`Nested`] replies are
    /// written by `encode` and never get here.
    fn to_resp2(&self) -> Frame2 {
        match self {
            Reply::Simple(s) => Frame2::SimpleString(Bytes::from_static(s.as_bytes())),
            Reply::Status(b) => Frame2::SimpleString(b.clone()),
            Reply::Error(e) => Frame2::Error(e.to_string().into()),
            Reply::Int(i) => Frame2::Integer(*i),
            Reply::Bulk(b) | Reply::Verbatim(b) => Frame2::BulkString(b.clone()),
            Reply::Short(b) => Frame2::BulkString(b.to_bytes()),
            Reply::Bool(b) => Frame2::Integer(i64::from(*b)),
            Reply::Nil
            | Reply::NilArray
            | Reply::Silent
            | Reply::Frames(_)
            | Reply::Array(_)
            | Reply::Set(_)
            | Reply::Push(_)
            | Reply::Map(_)
            | Reply::Double(_)
            | Reply::HumanDouble(_)
            | Reply::Nested(_)
            | Reply::Written(_) => Frame2::Null,
        }
    }

    /// A scalar as a RESP3 frame (see `to_resp2`).
    fn to_resp3(&self) -> Frame3 {
        match self {
            Reply::Simple(s) => Frame3::SimpleString {
                data: Bytes::from_static(s.as_bytes()),
                attributes: None,
            },
            Reply::Status(b) => Frame3::SimpleString {
                data: b.clone(),
                attributes: None,
            },
            Reply::Error(e) => Frame3::SimpleError {
                data: e.to_string().into(),
                attributes: None,
            },
            Reply::Int(i) => Frame3::Number {
                data: *i,
                attributes: None,
            },
            Reply::Bulk(b) => Frame3::BlobString {
                data: b.clone(),
                attributes: None,
            },
            Reply::Short(b) => Frame3::BlobString {
                data: b.to_bytes(),
                attributes: None,
            },
            Reply::Bool(b) => Frame3::Boolean {
                data: *b,
                attributes: None,
            },
            Reply::Verbatim(b) => Frame3::VerbatimString {
                data: b.clone(),
                format: redis_protocol::resp3::types::VerbatimStringFormat::Text,
                attributes: None,
            },
            Reply::Nil
            | Reply::NilArray
            | Reply::Silent
            | Reply::Frames(_)
            | Reply::Array(_)
            | Reply::Set(_)
            | Reply::Push(_)
            | Reply::Map(_)
            | Reply::Double(_)
            | Reply::HumanDouble(_)
            | Reply::Nested(_)
            | Reply::Written(_) => Frame3::Null,
        }
    }
}

impl Nested {
    /// Appends the whole reply to `out`: one pass over the parts, no recursion.
    pub fn encode(&self, resp3: bool, out: &mut BytesMut) {
        for part in &self.0 {
            match part {
                Part::Array(n) => header(out, b'*', *n),
                Part::Map(n) if resp3 => header(out, b'%', *n),
                Part::Map(n) => header(out, b'*', n.saturating_mul(2)),
                Part::Set(n) => header(out, if resp3 { b'~' } else { b'*' }, *n),
                Part::Int(i) => int(out, *i),
                Part::Bulk(b) => bulk(out, b),
                Part::Status(b) => line(out, b'+', b),
                Part::Error(b) => line(out, b'-', b),
                Part::Null if resp3 => out.extend_from_slice(b"_\r\n"),
                Part::Null => out.extend_from_slice(b"$-1\r\n"),
                Part::Bool(b) if resp3 => {
                    out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
                }
                Part::Bool(b) => out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
                Part::Double(d) => double(out, resp3, *d),
                Part::BigNumber(b) if resp3 => line(out, b'(', b),
                Part::BigNumber(b) => bulk(out, b),
                Part::Verbatim(format, b) if resp3 => {
                    header(out, b'=', b.len().saturating_add(4));
                    out.extend_from_slice(format);
                    out.extend_from_slice(b":");
                    out.extend_from_slice(b);
                    out.extend_from_slice(b"\r\n");
                }
                Part::Verbatim(_, b) => bulk(out, b),
            }
        }
    }
}

/// A push frame of bulk strings (a published message), encoded once for all
/// its receivers: the RESP2 array, which [`write_push`] turns into RESP3's push
/// by its first byte alone (the elements are the same in both).
pub fn push_frame(parts: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::with_capacity(
        parts
            .iter()
            .map(|p| p.len().saturating_add(16))
            .fold(8, usize::saturating_add),
    );
    header(&mut out, b'*', parts.len());
    parts.iter().for_each(|p| bulk(&mut out, p));
    out.freeze()
}

/// Appends a frame made by [`push_frame`] as RESP3 (`>`) when `resp3` is set,
/// else as the RESP2 array it is.
pub fn write_push(frame: &[u8], resp3: bool, out: &mut BytesMut) {
    match frame.split_first() {
        // An array becomes a push; a MONITOR line (a status) stays as it is.
        Some((b'*', rest)) if resp3 => {
            out.reserve(frame.len());
            out.extend_from_slice(b">");
            out.extend_from_slice(rest);
        }
        _ => out.extend_from_slice(frame),
    }
}

/// `:<i>\r\n`
fn int(out: &mut BytesMut, i: i64) {
    out.reserve(24);
    out.extend_from_slice(b":");
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `<kind><n>\r\n`: an aggregate's header, or a bulk string's length line.
fn header(out: &mut BytesMut, kind: u8, n: usize) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `$n\r\n<bytes>\r\n`
fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 16);
    header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// `<kind><text>\r\n` for a text already free of CR and LF.
fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// A double as Redis 7.0's `addReplyDouble`: `,<%.17g>` in RESP3, a bulk string
/// in RESP2, with `inf` and `-inf` spelled out.
fn double(out: &mut BytesMut, resp3: bool, d: f64) {
    let mut text = DoubleText::new();
    let text = text.format(d);
    if resp3 {
        line(out, b',', text);
    } else {
        bulk(out, text);
    }
}

impl From<CommandError> for Reply {
    fn from(e: CommandError) -> Self {
        Reply::Error(e)
    }
}

/// Formats a double as Redis's `ld2string` in its human mode (GEOPOS): C's
/// `%.17Lf` (17 digits after the point, the double's exact value rounded),
/// trailing zeros and a trailing point dropped, `-0` printed as `0`; `inf`,
/// `-inf` and `nan` spelled out.
pub fn format_human_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    let fixed = format!("{d:.17}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" {
        "0".into()
    } else {
        trimmed.into()
    }
}

/// Formats a double as Redis does in replies: C's `%.17g` (17 significant digits,
/// trailing zeros dropped, exponent form below 1e-4 and from 1e17), `inf`/`-inf`,
/// and `nan`/`-nan` by the sign bit as glibc prints them.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    // 17 significant digits, correctly rounded, as `d.ddddddddddddddddde<exp>`.
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::from(sign);
    if !(-4..17).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        let rest = rest.trim_end_matches('0');
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let magnitude = exp.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
    } else if exp >= 0 {
        let (int, frac) = digits.split_at(exp as usize + 1);
        out.push_str(int);
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
    } else {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores whose `%.17g` text takes each path: integers (and the edges of the
    /// integer path), `-0`, fractions, exponents, infinities.
    const SCORES: [f64; 16] = [
        0.0,
        -0.0,
        1.0,
        -3.0,
        0.1,
        2.5e-5,
        1e15 - 1.0,
        1e15,
        -1e15,
        1e16,
        1e17,
        123_456_789.5,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];

    #[test]
    fn a_double_is_formatted_the_same_on_the_integer_path() {
        for d in SCORES {
            let mut text = DoubleText::new();
            assert_eq!(text.format(d), format_double(d).as_bytes(), "{d:e}");
        }
        let mut text = DoubleText::new();
        assert_eq!(text.format(-0.0), b"-0");
        assert_eq!(text.format(-1e15), b"-1000000000000000");
        assert_eq!(text.format(1e17), b"1e+17");
    }

    /// Members that are empty, inline, long, and hold CR LF and `$`.
    const MEMBERS: [&[u8]; 9] = [
        b"",
        b"m",
        b"a member longer than twenty-two bytes",
        b"x\r\n$3\r\n",
        b"*2\r\n,1\r\n",
        b"ninechars",
        b"ten chars!",
        &[b'y'; 99],
        &[b'x'; 100],
    ];

    #[test]
    fn a_written_array_is_the_bytes_of_its_tree_in_both_protocols() {
        for resp3 in [false, true] {
            let mut plain = Written::array(resp3, 0);
            let mut scored = Written::array(resp3, 0);
            let (mut plain_tree, mut scored_tree) = (Vec::new(), Vec::new());
            for (i, m) in MEMBERS.iter().cycle().take(SCORES.len()).enumerate() {
                let score = SCORES[i];
                plain.bulk(m);
                scored.scored(m, score);
                plain_tree.push(Reply::copy_of(m));
                if resp3 {
                    scored_tree.push(Reply::Array(vec![Reply::copy_of(m), Reply::Double(score)]));
                } else {
                    scored_tree.push(Reply::copy_of(m));
                    scored_tree.push(Reply::Double(score));
                }
            }
            for (written, tree) in [(plain, plain_tree), (scored, scored_tree)] {
                let (mut want, mut got) = (BytesMut::new(), BytesMut::new());
                let tree = Reply::Array(tree);
                tree.encode(resp3, &mut want);
                Reply::Written(written.clone()).encode(resp3, &mut got);
                assert_eq!(got, want, "resp3 {resp3}");
                // Scripts see the same reply (doubles parse back exactly).
                let (mut again, mut want_again) = (BytesMut::new(), BytesMut::new());
                written.to_reply().encode(resp3, &mut again);
                tree.encode(resp3, &mut want_again);
                assert_eq!(again, want_again, "resp3 {resp3}");
            }
        }
    }

    #[test]
    fn a_written_map_is_a_map_in_resp3_and_flat_in_resp2() {
        for resp3 in [false, true] {
            let mut written = Written::map(resp3, 0);
            let mut pairs = Vec::new();
            for pair in MEMBERS.windows(2) {
                written.bulk(pair[0]);
                written.bulk(pair[1]);
                pairs.push((Reply::copy_of(pair[0]), Reply::copy_of(pair[1])));
            }
            let (mut want, mut got) = (BytesMut::new(), BytesMut::new());
            Reply::Map(pairs.clone()).encode(resp3, &mut want);
            Reply::Written(written.clone()).encode(resp3, &mut got);
            assert_eq!(got, want, "resp3 {resp3}");
            let mut bulk_pairs = pairs;
            for (k, v) in &mut bulk_pairs {
                for r in [k, v] {
                    if let Reply::Short(b) = r {
                        *r = Reply::Bulk(b.to_bytes());
                    }
                }
            }
            assert_eq!(written.to_reply(), Reply::Map(bulk_pairs));
        }
        let empty = Written::map(true, 0);
        let mut got = BytesMut::new();
        Reply::Written(empty).encode(true, &mut got);
        assert_eq!(&got[..], b"%0\r\n");
    }

    #[test]
    fn an_integer_reply_is_written_as_redis_writes_it() {
        for (i, text) in [
            (0, ":0\r\n"),
            (-7, ":-7\r\n"),
            (i64::MIN, ":-9223372036854775808\r\n"),
        ] {
            for resp3 in [false, true] {
                let mut out = BytesMut::new();
                Reply::Int(i).encode(resp3, &mut out);
                assert_eq!(&out[..], text.as_bytes());
            }
        }
    }

    #[test]
    fn bulk_and_integer_replies_are_written_as_redis_protocol_writes_them() {
        let replies = [
            Reply::Bulk(Bytes::new()),
            Reply::Bulk(Bytes::from_static(b"42")),
            Reply::Bulk(Bytes::from_static(b"a\r\nb\x00")),
            Reply::Bulk(Bytes::from(vec![b'x'; 70_000])),
            Reply::Int(0),
            Reply::Int(-1),
            Reply::Int(i64::MIN),
            Reply::Int(i64::MAX),
        ];
        for reply in replies {
            for resp3 in [false, true] {
                let mut fast = BytesMut::new();
                reply.encode(resp3, &mut fast);
                let mut library = BytesMut::new();
                reply.encode_scalar(resp3, &mut library);
                assert_eq!(fast, library, "{reply:?} resp3={resp3}");
            }
        }
    }

    #[test]
    fn a_shared_push_frame_is_the_push_reply_in_both_protocols() {
        let parts: [&[u8]; 4] = [b"pmessage", b"n*", b"news", b""];
        let frame = push_frame(&parts);
        let reply = Reply::Push(
            parts
                .iter()
                .map(|p| Reply::Bulk(Bytes::copy_from_slice(p)))
                .collect(),
        );
        for resp3 in [false, true] {
            let (mut want, mut got) = (BytesMut::new(), BytesMut::new());
            reply.encode(resp3, &mut want);
            write_push(&frame, resp3, &mut got);
            assert_eq!(got, want, "resp3 {resp3}");
        }
        assert!(frame.starts_with(b"*4\r\n$8\r\npmessage\r\n"));
    }

    /// Printed by Redis 7.0.15's GEOPOS (RESP2 bulk, RESP3 double).
    #[test]
    fn human_doubles_are_formatted_as_redis_geopos_prints_them() {
        let cases: &[(f64, &str)] = &[
            (13.361389338970184, "13.36138933897018433"),
            (180.0, "180"),
            (2.682_209_014_892_578e-6, "0.00000268220901489"),
            (-0.0, "0"),
            (-1e-18, "0"),
            (0.5, "0.5"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (d, want) in cases {
            assert_eq!(format_human_double(*d), *want, "{d:e}");
        }
        let mut out = BytesMut::new();
        Reply::HumanDouble(180.0).encode(false, &mut out);
        Reply::HumanDouble(0.5).encode(true, &mut out);
        assert_eq!(&out[..], b"$3\r\n180\r\n,0.5\r\n");
    }

    #[test]
    fn doubles_are_formatted_as_c_printf_17g() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (3.0, "3"),
            (0.1, "0.10000000000000001"),
            (1.5, "1.5"),
            (1e300, "1.0000000000000001e+300"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (-2.5e-7, "-2.4999999999999999e-07"),
            (5e-324, "4.9406564584124654e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-f64::NAN, "-nan"),
        ];
        for (d, want) in cases {
            assert_eq!(format_double(*d), *want, "{d:e}");
        }
    }

    #[test]
    fn a_nested_reply_of_depth_100000_encodes_and_drops_without_recursion() {
        let depth = 100_000;
        let mut parts = vec![Part::Array(1); depth];
        parts.push(Part::Int(7));
        let reply = Reply::Nested(Nested(parts));
        for resp3 in [false, true] {
            let mut out = BytesMut::new();
            reply.encode(resp3, &mut out);
            assert_eq!(out.len(), depth * 4 + 4);
            assert!(out.ends_with(b"*1\r\n:7\r\n"));
        }
        drop(reply);
    }

    #[test]
    fn nested_parts_encode_as_redis_writes_them() {
        let reply = Reply::Nested(Nested(vec![
            Part::Map(2),
            Part::Bulk(Bytes::from_static(b"k")),
            Part::Set(1),
            Part::Bool(true),
            Part::Double(0.5),
            Part::Verbatim(*b"t  ", Bytes::from_static(b"hi")),
        ]));
        let mut out = BytesMut::new();
        reply.encode(true, &mut out);
        assert_eq!(
            &out[..],
            b"%2\r\n$1\r\nk\r\n~1\r\n#t\r\n,0.5\r\n=6\r\nt  :hi\r\n"
        );
        out.clear();
        reply.encode(false, &mut out);
        assert_eq!(
            &out[..],
            b"*4\r\n$1\r\nk\r\n*1\r\n:1\r\n$3\r\n0.5\r\n$2\r\nhi\r\n"
        );
    }
}
