//! Replies, independent of the protocol version, and their encoding.
//!
//! Handlers build a [`Reply`]; the connection encodes it as RESP2 or RESP3
//! (after `HELLO 3`) through the `redis-protocol` crate. RESP3-only types are
//! downgraded the way Redis downgrades them for RESP2 clients: maps become flat
//! arrays, sets arrays, doubles bulk strings, booleans integers, and both kinds
//! of null become `$-1` or `*-1`.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::{BytesFrame as Frame3, FrameMap, FrameSet};

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
    Short(crate::keyspace::CompactBytes),
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
    /// `#t` in RESP3, `:1`/`:0` in RESP2.
    Bool(bool),
    /// `=n\r\ntxt:...` in RESP3, a bulk string in RESP2.
    Verbatim(Bytes),
    /// `>n` in RESP3 (out-of-band data), an array in RESP2.
    Push(Vec<Reply>),
    /// Nothing at all is sent (SHUTDOWN closes the connection without a reply).
    Silent,
}

impl Reply {
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
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply to `out`, as RESP3 when `resp3` is set, else RESP2.
    pub fn encode(&self, resp3: bool, out: &mut BytesMut) {
        match self {
            Reply::Silent => return,
            Reply::Short(b) => {
                // The one hand-written encoding: a bulk string of at most 22 bytes,
                // on GET's hot path, where building a frame would allocate.
                out.reserve(b.len() + 8);
                out.extend_from_slice(b"$");
                out.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
                return;
            }
            Reply::Array(items) | Reply::Set(items) | Reply::Push(items)
                if !resp3 && items.iter().any(|i| matches!(i, Reply::NilArray)) =>
            {
                // RESP2 frames cannot nest `*-1` (a BLPOP that timed out inside
                // EXEC), so this array's header is written here and each element
                // encodes itself.
                out.extend_from_slice(b"*");
                out.extend_from_slice(itoa::Buffer::new().format(items.len()).as_bytes());
                out.extend_from_slice(b"\r\n");
                for item in items {
                    item.encode(false, out);
                }
                return;
            }
            _ => {}
        }
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

    fn to_resp2(&self) -> Frame2 {
        match self {
            Reply::Simple(s) => Frame2::SimpleString(Bytes::from_static(s.as_bytes())),
            Reply::Status(b) => Frame2::SimpleString(b.clone()),
            Reply::Error(e) => Frame2::Error(e.to_string().into()),
            Reply::Int(i) => Frame2::Integer(*i),
            Reply::Bulk(b) | Reply::Verbatim(b) => Frame2::BulkString(b.clone()),
            Reply::Short(b) => Frame2::BulkString(b.to_bytes()),
            Reply::Nil => Frame2::Null,
            // `*-1` is written by `encode` (at top level, or in an array that holds
            // one); a frame cannot express it.
            Reply::NilArray | Reply::Silent => Frame2::Null,
            Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
                Frame2::Array(items.iter().map(Reply::to_resp2).collect())
            }
            Reply::Map(pairs) => Frame2::Array(
                pairs
                    .iter()
                    .flat_map(|(k, v)| [k.to_resp2(), v.to_resp2()])
                    .collect(),
            ),
            Reply::Double(d) => Frame2::BulkString(Bytes::from(format_double(*d))),
            Reply::Bool(b) => Frame2::Integer(i64::from(*b)),
        }
    }

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
            Reply::Nil | Reply::NilArray | Reply::Silent => Frame3::Null,
            Reply::Array(items) => Frame3::Array {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Push(items) => Frame3::Push {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Set(items) => {
                let mut set = FrameSet::default();
                for item in items {
                    set.insert(item.to_resp3());
                }
                Frame3::Set {
                    data: set,
                    attributes: None,
                }
            }
            Reply::Map(pairs) => {
                let mut map = FrameMap::default();
                for (k, v) in pairs {
                    map.insert(k.to_resp3(), v.to_resp3());
                }
                Frame3::Map {
                    data: map,
                    attributes: None,
                }
            }
            Reply::Double(d) => Frame3::Double {
                data: *d,
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
        }
    }
}

impl From<CommandError> for Reply {
    fn from(e: CommandError) -> Self {
        Reply::Error(e)
    }
}

/// Formats a double as Redis does in replies (`%.17g`, shortest round-trip form,
/// `inf`/`-inf`).
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == d.trunc() && d.abs() < 1e17 {
        return format!("{}", d as i64);
    }
    format!("{d}")
}
