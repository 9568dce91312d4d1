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
            Reply::Int(i) => {
                out.extend_from_slice(b":");
                out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
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
            | Reply::Nested(_) => Frame2::Null,
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
            | Reply::Nested(_) => Frame3::Null,
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
                Part::Int(i) => {
                    out.extend_from_slice(b":");
                    out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
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
        Some((_, rest)) if resp3 => {
            out.reserve(frame.len());
            out.extend_from_slice(b">");
            out.extend_from_slice(rest);
        }
        _ => out.extend_from_slice(frame),
    }
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
    let text = format_double(d);
    if resp3 {
        line(out, b',', text.as_bytes());
    } else {
        bulk(out, text.as_bytes());
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
