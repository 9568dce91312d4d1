//! Redis's RDB format (7.0, RDB version 10) as pure code: what DUMP, RESTORE
//! and the snapshot machinery (`persist`) share. No replies, no I/O beyond
//! the `Write` a [`file::Writer`] is given.
//!
//! - [`encoding`]: lengths, string encodings (integers, LZF), CRC64 and the
//!   packed blobs (listpack, intset; ziplist and zipmap for reading).
//! - [`value`]: one value ↔ type byte and payload.
//! - [`file`]: a whole file, written as a stream and loaded from bytes.
//!
//! Input is untrusted (a DUMP payload comes from a client): reading never
//! panics, never allocates a length before the bytes behind it exist, and
//! validates every blob. Errors name the byte offset.
//!
//! - [`stream`]: a stream's payload (nodes as Redis's listpacks, the
//!   bookkeeping, consumer groups with their PEL and consumers).
//! - [`lock`]: a lock as an AUX field (Redis has no type for it), which
//!   redis-server skips and latchkey's loader restores.
//!
//! [`value::write`] answers [`value::Unsupported`] for a lock only (no value
//! in Redis's sense); DUMP of one is refused.

pub mod encoding;
pub mod file;
pub mod lock;
pub mod stream;
pub mod value;

use std::fmt;

/// The RDB version written (Redis 7.0).
pub const RDB_VERSION: u16 = 10;
/// The newest RDB version read (Redis 7.2 writes 11).
pub const RDB_VERSION_MAX: u16 = 11;

/// What went wrong while reading RDB bytes, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdbError {
    /// The input ended inside an item that starts before `offset`.
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// Bytes that are not valid RDB.
    Invalid {
        /// Where the bad item starts.
        offset: usize,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A collection with no elements (Redis refuses those too).
    Empty {
        /// Where its payload starts.
        offset: usize,
    },
    /// The file's CRC64 does not match its bytes.
    Checksum {
        /// Where the checksum is.
        offset: usize,
    },
    /// Not an RDB file, or a version newer than this reader knows.
    Version {
        /// The version found (0 when the magic is wrong).
        found: u16,
    },
}

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RdbError::Truncated { offset } => {
                write!(f, "unexpected end of data at offset {offset}")
            }
            RdbError::Invalid { offset, what } => write!(f, "{what} at offset {offset}"),
            RdbError::Empty { offset } => write!(f, "empty collection at offset {offset}"),
            RdbError::Checksum { offset } => write!(f, "wrong CRC64 checksum at offset {offset}"),
            RdbError::Version { found } => {
                write!(f, "not an RDB file of a known version (found {found})")
            }
        }
    }
}

impl std::error::Error for RdbError {}

/// A DUMP payload of `value`: type byte, payload, RDB version (2 bytes LE)
/// and the CRC64 of all that (8 bytes LE).
pub fn dump(value: &crate::keyspace::Value, compress: bool) -> Result<Vec<u8>, value::Unsupported> {
    let mut out = Vec::new();
    value::write(&mut out, value, compress)?;
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = encoding::CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// FUNCTION DUMP's payload: each library's code as an RDB `FUNCTION2` entry
/// (opcode 245 and the code as a string), the RDB version and the CRC64.
pub fn dump_functions(codes: &[bytes::Bytes], compress: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(file::FUNCTION2);
        encoding::write_string(&mut out, code, compress);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = encoding::CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The libraries' code in a FUNCTION RESTORE payload, with Redis's errors
/// (the text after `ERR `).
pub fn undump_functions(payload: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    const WRONG: &str = "DUMP payload version or checksum are wrong";
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(WRONG);
    };
    let footer = &payload[body_len..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION_MAX {
        return Err(WRONG);
    }
    let mut crc_bytes = [0u8; 8];
    crc_bytes.copy_from_slice(&footer[2..]);
    if encoding::CRC64.checksum(&payload[..body_len + 2]) != u64::from_le_bytes(crc_bytes) {
        return Err(WRONG);
    }
    let mut inp = encoding::Input::new(&payload[..body_len]);
    let mut codes = Vec::new();
    while !inp.is_done() {
        let kind = inp.byte().map_err(|_| "can not read data type")?;
        match kind {
            file::FUNCTION2 => {
                codes.push(inp.string().map_err(|_| "Failed loading library payload")?)
            }
            file::FUNCTION => codes.push(file::old_function(&mut inp)?),
            _ => return Err("given type is not a function"),
        }
    }
    Ok(codes)
}

/// Why a RESTORE payload is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Too short, a newer RDB version, or a wrong CRC64.
    VersionOrChecksum,
    /// The value bytes are not valid.
    BadData(RdbError),
}

/// The value of a DUMP payload, built under `enc`'s thresholds. The version
/// and CRC64 are checked first, as Redis's `verifyDumpPayload` does.
pub fn undump(
    payload: &[u8],
    enc: &crate::types::Encodings,
) -> Result<crate::keyspace::Value, PayloadError> {
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(PayloadError::VersionOrChecksum);
    };
    let (body, footer) = payload.split_at(body_len);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION_MAX {
        return Err(PayloadError::VersionOrChecksum);
    }
    let mut crc_bytes = [0u8; 8];
    crc_bytes.copy_from_slice(&footer[2..]);
    if encoding::CRC64.checksum(&payload[..body_len + 2]) != u64::from_le_bytes(crc_bytes) {
        return Err(PayloadError::VersionOrChecksum);
    }
    let mut inp = encoding::Input::new(body);
    let kind = inp.byte().map_err(PayloadError::BadData)?;
    let v = value::read(kind, &mut inp, enc).map_err(PayloadError::BadData)?;
    if !inp.is_done() {
        return Err(PayloadError::BadData(inp.invalid("bytes after the value")));
    }
    Ok(v)
}
