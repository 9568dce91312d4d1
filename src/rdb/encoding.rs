//! The RDB format's building blocks, as pure code: lengths, strings (integer
//! and LZF encodings), Redis's CRC64, and the packed blobs values are stored
//! in (listpack, intset, and for reading only ziplist and zipmap).
//!
//! Reading works on a byte slice through [`Input`], which never allocates a
//! length the input gives before the bytes it promises are there, and whose
//! errors name the offset. Every blob is validated before it is used:
//! bounds, declared counts and sizes against what was walked.

use super::RdbError;

/// A 6-bit length (`00xxxxxx`).
const LEN_6BIT: u8 = 0;
/// A 14-bit length (`01xxxxxx xxxxxxxx`).
const LEN_14BIT: u8 = 1;
/// A 32-bit big-endian length follows.
const LEN_32BIT: u8 = 0x80;
/// A 64-bit big-endian length follows.
const LEN_64BIT: u8 = 0x81;
/// `11xxxxxx`: a special string encoding in the low six bits.
const ENC_SPECIAL: u8 = 3;
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Redis's CRC64 (Jones polynomial, reflected): the checksum of an RDB file
/// and of a DUMP payload.
pub const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// A cursor over RDB bytes that reports errors with their offset.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Added to `pos` in errors (a blob read on its own reports the offset of
    /// the blob in the file).
    base: usize,
}

/// A length as read: a plain length, or the special string encoding
/// (`11xxxxxx`) it announced.
enum Len {
    Plain(u64),
    Special(u8),
}

impl<'a> Input<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Input {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// A cursor over `buf` whose errors report offsets from `base`.
    pub fn at(buf: &'a [u8], base: usize) -> Self {
        Input { buf, pos: 0, base }
    }

    /// The offset of the next byte (from the start of the file).
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Whether every byte has been read.
    pub fn is_done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// An error at the current offset.
    pub fn invalid(&self, what: &'static str) -> RdbError {
        RdbError::Invalid {
            offset: self.offset(),
            what,
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        if self.remaining() < n {
            return Err(RdbError::Truncated {
                offset: self.offset(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// One byte.
    pub fn byte(&mut self) -> Result<u8, RdbError> {
        Ok(self.take(1)?[0])
    }

    fn raw_len(&mut self) -> Result<Len, RdbError> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            LEN_6BIT => Len::Plain(u64::from(first & 0x3f)),
            LEN_14BIT => Len::Plain((u64::from(first & 0x3f) << 8) | u64::from(self.byte()?)),
            ENC_SPECIAL => Len::Special(first & 0x3f),
            _ => match first {
                LEN_32BIT => Len::Plain(u64::from(u32::from_be_bytes(self.array()?))),
                LEN_64BIT => Len::Plain(u64::from_be_bytes(self.array()?)),
                _ => return Err(self.invalid("unknown length encoding")),
            },
        })
    }

    /// A length (not a string encoding).
    pub fn length(&mut self) -> Result<u64, RdbError> {
        match self.raw_len()? {
            Len::Plain(n) => Ok(n),
            Len::Special(_) => Err(self.invalid("string encoding where a length was expected")),
        }
    }

    /// A length that counts items of at least `min_item` bytes each still to
    /// come: refused when the input cannot hold that many, so nothing is
    /// allocated for a length the bytes do not back.
    pub fn count(&mut self, min_item: usize) -> Result<usize, RdbError> {
        let n = self.length()?;
        let cap = self.remaining() / min_item.max(1);
        match usize::try_from(n) {
            Ok(n) if n <= cap => Ok(n),
            _ => Err(self.invalid("count larger than the input")),
        }
    }

    /// A string in any of its encodings (raw, integer, LZF).
    pub fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        match self.raw_len()? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| self.invalid("string too long"))?;
                Ok(self.take(n)?.to_vec())
            }
            Len::Special(ENC_INT8) => Ok(itoa_vec(i64::from(self.byte()? as i8))),
            Len::Special(ENC_INT16) => Ok(itoa_vec(i64::from(i16::from_le_bytes(self.array()?)))),
            Len::Special(ENC_INT32) => Ok(itoa_vec(i64::from(i32::from_le_bytes(self.array()?)))),
            Len::Special(ENC_LZF) => self.lzf(),
            Len::Special(_) => Err(self.invalid("unknown string encoding")),
        }
    }

    fn lzf(&mut self) -> Result<Vec<u8>, RdbError> {
        let clen = self.length()?;
        let len = self.length()?;
        let start = self.offset();
        let clen = usize::try_from(clen).map_err(|_| self.invalid("LZF length"))?;
        let data = self.take(clen)?;
        // LZF expands at most ~ 8/3 + a bit per input byte pair; a claimed
        // length beyond what the compressed bytes could produce is refused
        // before it is allocated.
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l > 0 && l <= clen.saturating_mul(132).saturating_add(64))
            .ok_or(RdbError::Invalid {
                offset: start,
                what: "LZF length",
            })?;
        let mut out = vec![0u8; len];
        match lzf_rust::decompress(data, &mut out) {
            Ok(n) if n == len => Ok(out),
            _ => Err(RdbError::Invalid {
                offset: start,
                what: "LZF data",
            }),
        }
    }

    /// A little-endian binary double (ZSET_2 scores).
    pub fn binary_double(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A double as RDB v1 zsets stored it: a length byte (253 nan, 254 inf,
    /// 255 -inf) and that many characters.
    pub fn string_double(&mut self) -> Result<f64, RdbError> {
        let n = self.byte()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let s = self.take(usize::from(n))?;
                parse_double(s).ok_or_else(|| self.invalid("bad double"))
            }
        }
    }
}

fn itoa_vec(v: i64) -> Vec<u8> {
    itoa::Buffer::new().format(v).as_bytes().to_vec()
}

/// A double from its text as Redis stores it in a listpack or RDB v1 zset.
pub fn parse_double(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s).ok()?;
    match s {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok().filter(|d| !d.is_nan()),
    }
}

// ---- writing -------------------------------------------------------------------

/// Appends a length in its shortest encoding.
pub fn write_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(((n >> 8) as u8) | 0x40);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(LEN_32BIT);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(LEN_64BIT);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends a string as Redis's `rdbSaveRawString`: an integer encoding when
/// it is the canonical text of a 32-bit integer (11 bytes at most), else LZF
/// when `compress`, it is over 20 bytes and compression saves at least 4
/// bytes, else the bytes as they are.
pub fn write_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(v) = crate::types::string::canonical_integer(s) {
            if write_int(out, v) {
                return;
            }
        }
    }
    if compress && s.len() > 20 && write_lzf(out, s) {
        return;
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends `v` in the narrowest integer string encoding; false when it does
/// not fit 32 bits.
fn write_int(out: &mut Vec<u8>, v: i64) -> bool {
    let special = ENC_SPECIAL << 6;
    if let Ok(b) = i8::try_from(v) {
        out.extend_from_slice(&[special | ENC_INT8, b as u8]);
    } else if let Ok(h) = i16::try_from(v) {
        out.push(special | ENC_INT16);
        out.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        out.push(special | ENC_INT32);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        return false;
    }
    true
}

fn write_lzf(out: &mut Vec<u8>, s: &[u8]) -> bool {
    // Redis gives the compressor len - 4 bytes: it keeps the result only if
    // that saves more than 4 bytes.
    let Some(packed) = lzf_compress(s, s.len() - 4) else {
        return false;
    };
    out.push((ENC_SPECIAL << 6) | ENC_LZF);
    write_len(out, packed.len() as u64);
    write_len(out, s.len() as u64);
    out.extend_from_slice(&packed);
    true
}

/// `HLOG` of Redis's LZF: a hash table of 2^16 slots.
const LZF_HLOG: u32 = 16;
const LZF_MAX_LIT: usize = 32;
const LZF_MAX_OFF: usize = 1 << 13;
const LZF_MAX_REF: usize = (1 << 8) + (1 << 3);

/// LZF compression that makes the same choices as the liblzf Redis builds
/// (`VERY_FAST`, a hash of three bytes into 2^16 slots, position 0 never a
/// match source), so a DUMP payload is byte for byte Redis's. `None` when the
/// result would not fit `out_len` bytes (liblzf's exact checks).
/// lzf-rust's compressor makes other (valid) choices; it decompresses.
pub fn lzf_compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n == 0 || out_len == 0 {
        return None;
    }
    let idx = |h: u32| {
        ((h >> (24 - LZF_HLOG)).wrapping_sub(h.wrapping_mul(5)) & ((1 << LZF_HLOG) - 1)) as usize
    };
    let mut htab = vec![0usize; 1 << LZF_HLOG];
    let mut out = vec![0u8; out_len + 8];
    let (mut ip, mut op, mut lit) = (0usize, 1usize, 0usize);
    let mut hval: u32 = if n > 1 {
        (u32::from(input[0]) << 8) | u32::from(input[1])
    } else {
        0
    };
    while n >= 3 && ip < n - 2 {
        hval = (hval << 8) | u32::from(input[ip + 2]);
        let slot = idx(hval);
        let r = htab[slot];
        htab[slot] = ip;
        let matched = r > 0
            && r < ip
            && ip - r - 1 < LZF_MAX_OFF
            && input[r + 2] == input[ip + 2]
            && input[r] == input[ip]
            && input[r + 1] == input[ip + 1];
        if !matched {
            if op >= out_len {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == LZF_MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
            continue;
        }
        let off = ip - r - 1;
        let maxlen = (n - ip - 2).min(LZF_MAX_REF);
        if op + 4 >= out_len && op - usize::from(lit == 0) + 4 >= out_len {
            return None;
        }
        out[op - lit - 1] = (lit as u8).wrapping_sub(1);
        op -= usize::from(lit == 0);
        // liblzf's loop: 16 unrolled steps when maxlen > 16, then one
        // bounded by maxlen (so a match may end one past it, as there).
        let mut len = 2usize;
        let mut stopped = false;
        if maxlen > 16 {
            for _ in 0..16 {
                len += 1;
                if input[r + len] != input[ip + len] {
                    stopped = true;
                    break;
                }
            }
        }
        if !stopped {
            loop {
                len += 1;
                if !(len < maxlen && input[r + len] == input[ip + len]) {
                    break;
                }
            }
        }
        len -= 2;
        ip += 1;
        if len < 7 {
            out[op] = ((off >> 8) + (len << 5)) as u8;
            op += 1;
        } else {
            out[op] = ((off >> 8) + (7 << 5)) as u8;
            out[op + 1] = (len - 7) as u8;
            op += 2;
        }
        out[op] = off as u8;
        op += 2; // the offset's low byte, and the next literal run's header
        lit = 0;
        ip += len + 1;
        if ip >= n - 2 {
            break;
        }
        // VERY_FAST: hash the two positions before the new one.
        ip -= 2;
        hval = (u32::from(input[ip]) << 8) | u32::from(input[ip + 1]);
        for _ in 0..2 {
            hval = (hval << 8) | u32::from(input[ip + 2]);
            htab[idx(hval)] = ip;
            ip += 1;
        }
    }
    if op + 3 > out_len {
        return None;
    }
    while ip < n {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == LZF_MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

/// Appends a double as 8 little-endian bytes (ZSET_2).
pub fn write_binary_double(out: &mut Vec<u8>, d: f64) {
    out.extend_from_slice(&d.to_le_bytes());
}

/// A score as Redis 7.0's `d2string` writes it into a listpack: an integral
/// value within ±2^52 as an integer, else `%.17g`; `inf`, `-inf`, `0`, `-0`.
pub fn d2string(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d < 0.0 { "-inf" } else { "inf" }.into()
    } else if d == 0.0 {
        if d.is_sign_negative() { "-0" } else { "0" }.into()
    } else if d > -4_503_599_627_370_495.0 && d < 4_503_599_627_370_496.0 && d == d.trunc() {
        itoa::Buffer::new().format(d as i64).to_owned()
    } else {
        crate::reply::format_double(d)
    }
}

// ---- listpack --------------------------------------------------------------------

/// Builds a listpack as Redis does (`lpAppend`): each element as an integer
/// when it is the canonical text of one, else a string.
#[derive(Debug)]
pub struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackWriter {
    fn default() -> Self {
        ListpackWriter::new()
    }
}

impl ListpackWriter {
    /// An empty listpack.
    pub fn new() -> Self {
        ListpackWriter {
            buf: vec![0; 6],
            count: 0,
        }
    }

    /// Appends one element.
    pub fn push(&mut self, e: &[u8]) {
        let start = self.buf.len();
        match crate::types::string::canonical_integer(e) {
            Some(v) => self.push_int(v),
            None => self.push_str(e),
        }
        let entry = self.buf.len() - start;
        push_backlen(&mut self.buf, entry);
        self.count += 1;
    }

    /// Appends an integer element (stream fields, flags, IDs).
    pub fn push_integer(&mut self, v: i64) {
        let start = self.buf.len();
        self.push_int(v);
        let entry = self.buf.len() - start;
        push_backlen(&mut self.buf, entry);
        self.count += 1;
    }

    fn push_int(&mut self, v: i64) {
        let b = &mut self.buf;
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1fff;
            b.push(0xC0 | (u >> 8) as u8);
            b.push(u as u8);
        } else if let Ok(h) = i16::try_from(v) {
            b.push(0xF1);
            b.extend_from_slice(&h.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            b.push(0xF2);
            b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if let Ok(w) = i32::try_from(v) {
            b.push(0xF3);
            b.extend_from_slice(&w.to_le_bytes());
        } else {
            b.push(0xF4);
            b.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn push_str(&mut self, s: &[u8]) {
        let b = &mut self.buf;
        let n = s.len();
        if n < 64 {
            b.push(0x80 | n as u8);
        } else if n < 4096 {
            b.push(0xE0 | (n >> 8) as u8);
            b.push(n as u8);
        } else {
            b.push(0xF0);
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        b.extend_from_slice(s);
    }

    /// The listpack's bytes: header (total bytes, count or 65535 when over
    /// it), entries, end mark.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(u16::MAX);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// Appends the back-length of an entry of `len` bytes (read right to left,
/// the high bit of each byte but the leftmost marking one more).
fn push_backlen(b: &mut Vec<u8>, len: usize) {
    let l = len as u64;
    let groups = match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    for i in (0..groups).rev() {
        let part = ((l >> (7 * i)) & 127) as u8;
        // The leftmost byte has no continuation bit, the others have it.
        b.push(if i == groups - 1 { part } else { part | 128 });
    }
}

/// One element of a listpack or ziplist: bytes or an integer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Elem<'a> {
    /// A string element.
    Str(&'a [u8]),
    /// An integer element.
    Int(i64),
}

impl Elem<'_> {
    /// The element as bytes (an integer in decimal).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Elem::Str(s) => s.to_vec(),
            Elem::Int(v) => itoa_vec(v),
        }
    }
}

/// Reads and validates a whole listpack: every entry's encoding, length and
/// back-length within bounds, the total and (when not 65535) the count as
/// declared, the end mark last. `base` is the blob's offset, for errors.
pub fn read_listpack(lp: &[u8], base: usize) -> Result<Vec<Elem<'_>>, RdbError> {
    let mut inp = Input::at(lp, base);
    let total = u32::from_le_bytes(inp.array()?) as usize;
    let count = u16::from_le_bytes(inp.array()?);
    if total != lp.len() {
        return Err(RdbError::Invalid {
            offset: base,
            what: "listpack total bytes",
        });
    }
    let mut out = Vec::new();
    loop {
        let start = inp.pos;
        let b = inp.byte()?;
        if b == 0xFF {
            break;
        }
        let e = match b {
            0x00..=0x7F => Elem::Int(i64::from(b)),
            0x80..=0xBF => Elem::Str(inp.take(usize::from(b & 0x3f))?),
            0xC0..=0xDF => {
                let u = (u64::from(b & 0x1f) << 8) | u64::from(inp.byte()?);
                Elem::Int(sign_extend(u, 13))
            }
            0xE0..=0xEF => {
                let n = (usize::from(b & 0x0f) << 8) | usize::from(inp.byte()?);
                Elem::Str(inp.take(n)?)
            }
            0xF0 => {
                let n = u32::from_le_bytes(inp.array()?) as usize;
                Elem::Str(inp.take(n)?)
            }
            0xF1 => Elem::Int(i64::from(i16::from_le_bytes(inp.array()?))),
            0xF2 => {
                let a: [u8; 3] = inp.array()?;
                Elem::Int(sign_extend(
                    u64::from(u32::from_le_bytes([a[0], a[1], a[2], 0])),
                    24,
                ))
            }
            0xF3 => Elem::Int(i64::from(i32::from_le_bytes(inp.array()?))),
            0xF4 => Elem::Int(i64::from_le_bytes(inp.array()?)),
            _ => return Err(inp.invalid("listpack entry encoding")),
        };
        let entry = inp.pos - start;
        let mut expect = Vec::with_capacity(5);
        push_backlen(&mut expect, entry);
        if inp.take(expect.len())? != expect.as_slice() {
            return Err(inp.invalid("listpack back-length"));
        }
        out.push(e);
    }
    if !inp.is_done() {
        return Err(inp.invalid("bytes after listpack end"));
    }
    if count != u16::MAX && usize::from(count) != out.len() {
        return Err(RdbError::Invalid {
            offset: base,
            what: "listpack count",
        });
    }
    Ok(out)
}

fn sign_extend(u: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((u << shift) as i64) >> shift
}

// ---- ziplist (RDB before 7.0) -----------------------------------------------------

/// Reads and validates a whole ziplist (lists, hashes and zsets before Redis
/// 7.0): header sizes, each entry's previous-length, encoding and bounds,
/// the count when it is not 65535, the end mark last.
pub fn read_ziplist(zl: &[u8], base: usize) -> Result<Vec<Elem<'_>>, RdbError> {
    let mut inp = Input::at(zl, base);
    let total = u32::from_le_bytes(inp.array()?) as usize;
    let tail = u32::from_le_bytes(inp.array()?) as usize;
    let count = u16::from_le_bytes(inp.array()?);
    if total != zl.len() || tail >= zl.len() {
        return Err(RdbError::Invalid {
            offset: base,
            what: "ziplist header",
        });
    }
    let mut out = Vec::new();
    let mut prev_len = 0usize;
    let mut last_start = 10;
    loop {
        let start = inp.pos;
        let first = inp.byte()?;
        if first == 0xFF {
            break;
        }
        let prev = if first == 254 {
            u32::from_le_bytes(inp.array()?) as usize
        } else {
            usize::from(first)
        };
        if prev != prev_len {
            return Err(inp.invalid("ziplist previous-entry length"));
        }
        let enc = inp.byte()?;
        let e = match enc >> 6 {
            0 => Elem::Str(inp.take(usize::from(enc & 0x3f))?),
            1 => {
                let n = (usize::from(enc & 0x3f) << 8) | usize::from(inp.byte()?);
                Elem::Str(inp.take(n)?)
            }
            2 if enc == 0x80 => {
                let n = u32::from_be_bytes(inp.array()?) as usize;
                Elem::Str(inp.take(n)?)
            }
            2 => return Err(inp.invalid("ziplist entry encoding")),
            _ => match enc {
                0xC0 => Elem::Int(i64::from(i16::from_le_bytes(inp.array()?))),
                0xD0 => Elem::Int(i64::from(i32::from_le_bytes(inp.array()?))),
                0xE0 => Elem::Int(i64::from_le_bytes(inp.array()?)),
                0xF0 => {
                    let a: [u8; 3] = inp.array()?;
                    Elem::Int(sign_extend(
                        u64::from(u32::from_le_bytes([a[0], a[1], a[2], 0])),
                        24,
                    ))
                }
                0xFE => Elem::Int(i64::from(inp.byte()? as i8)),
                0xF1..=0xFD => Elem::Int(i64::from(enc & 0x0f) - 1),
                _ => return Err(inp.invalid("ziplist entry encoding")),
            },
        };
        prev_len = inp.pos - start;
        last_start = start;
        out.push(e);
    }
    if !inp.is_done() {
        return Err(inp.invalid("bytes after ziplist end"));
    }
    if (!out.is_empty() && tail != last_start)
        || (count != u16::MAX && usize::from(count) != out.len())
    {
        return Err(RdbError::Invalid {
            offset: base,
            what: "ziplist tail or count",
        });
    }
    Ok(out)
}

/// A field and its value.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Reads a zipmap (hashes before Redis 2.6): field, value pairs.
pub fn read_zipmap(zm: &[u8], base: usize) -> Result<Vec<Pair>, RdbError> {
    let mut inp = Input::at(zm, base);
    let _count = inp.byte()?;
    let mut out = Vec::new();
    loop {
        let n = match zipmap_len(&mut inp)? {
            None => break,
            Some(n) => n,
        };
        let field = inp.take(n)?.to_vec();
        let n = zipmap_len(&mut inp)?.ok_or_else(|| inp.invalid("zipmap value"))?;
        let free = usize::from(inp.byte()?);
        let value = inp.take(n)?.to_vec();
        inp.take(free)?;
        out.push((field, value));
    }
    if !inp.is_done() {
        return Err(inp.invalid("bytes after zipmap end"));
    }
    Ok(out)
}

fn zipmap_len(inp: &mut Input<'_>) -> Result<Option<usize>, RdbError> {
    match inp.byte()? {
        255 => Ok(None),
        254 => Ok(Some(u32::from_le_bytes(inp.array()?) as usize)),
        253 => Err(inp.invalid("zipmap length")),
        n => Ok(Some(usize::from(n))),
    }
}

// ---- intset ----------------------------------------------------------------------------

/// Builds an intset of sorted, distinct `values` in the narrowest width.
pub fn write_intset(values: &[i64]) -> Vec<u8> {
    let width: usize = if values.iter().all(|&v| i16::try_from(v).is_ok()) {
        2
    } else if values.iter().all(|&v| i32::try_from(v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + width * values.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for &v in values {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// Reads and validates an intset: a known width, the length as declared,
/// values strictly ascending.
pub fn read_intset(is: &[u8], base: usize) -> Result<Vec<i64>, RdbError> {
    let mut inp = Input::at(is, base);
    let width = u32::from_le_bytes(inp.array()?) as usize;
    let len = u32::from_le_bytes(inp.array()?) as usize;
    if !matches!(width, 2 | 4 | 8) || inp.remaining() != len.saturating_mul(width) || len == 0 {
        return Err(RdbError::Invalid {
            offset: base,
            what: "intset header",
        });
    }
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let b = inp.take(width)?;
        let v = match width {
            2 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            4 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        };
        if out.last().is_some_and(|&p| p >= v) {
            return Err(inp.invalid("intset not sorted"));
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_in_every_width() {
        for n in [
            0u64,
            63,
            64,
            16383,
            16384,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            write_len(&mut b, n);
            b.extend_from_slice(&[0; 8]);
            assert_eq!(Input::new(&b).length().unwrap(), n);
        }
    }

    #[test]
    fn listpack_matches_redis_bytes() {
        // DUMP of RPUSH l a 1 -5 300 70000 hello on redis-server 7.0.15.
        let mut w = ListpackWriter::new();
        for e in ["a", "1", "-5", "300", "70000", "hello"] {
            w.push(e.as_bytes());
        }
        let lp = w.finish();
        assert_eq!(
            lp,
            b"\x1e\x00\x00\x00\x06\x00\x81a\x02\x01\x01\xdf\xfb\x02\xc1,\x02\xf2p\x11\x01\x04\x85hello\x06\xff"
        );
        let back: Vec<Vec<u8>> = read_listpack(&lp, 0)
            .unwrap()
            .into_iter()
            .map(Elem::to_vec)
            .collect();
        assert_eq!(back, [&b"a"[..], b"1", b"-5", b"300", b"70000", b"hello"]);
    }

    #[test]
    fn listpack_long_entries_and_integers_round_trip() {
        let big = vec![b'x'; 20_000];
        let mid = vec![b'y'; 200];
        let ints = [
            "-4096",
            "4095",
            "-32768",
            "32767",
            "-8388608",
            "8388607",
            "-2147483648",
            "9223372036854775807",
        ];
        let mut w = ListpackWriter::new();
        w.push(&big);
        w.push(&mid);
        for i in ints {
            w.push(i.as_bytes());
        }
        let lp = w.finish();
        let back = read_listpack(&lp, 0).unwrap();
        assert_eq!(back[0], Elem::Str(&big));
        assert_eq!(back[1], Elem::Str(&mid));
        for (e, i) in back[2..].iter().zip(ints) {
            assert_eq!(e.to_vec(), i.as_bytes());
        }
    }

    #[test]
    fn strings_use_integer_and_lzf_encodings_as_redis() {
        let mut b = Vec::new();
        write_string(&mut b, b"12345", true);
        assert_eq!(b, b"\xc190");
        // What redis-server 7.0.15 wrote for 47 `a`s reads back.
        let redis = b"\xc3\t/\x01aa\xe0\"\x00\x01aa";
        assert_eq!(Input::new(redis).string().unwrap(), vec![b'a'; 47]);
        let mut b = Vec::new();
        write_string(&mut b, &[b'a'; 47], true);
        assert_eq!(b, redis);
        let mut b = Vec::new();
        write_string(&mut b, &[b'a'; 47], false);
        assert_eq!(b.len(), 48);
    }

    #[test]
    fn lzf_round_trips_random_inputs() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..300 {
            let alphabet = rng.u8(1..=30);
            let len = rng.usize(21..3000);
            let v: Vec<u8> = (0..len).map(|_| rng.u8(0..alphabet)).collect();
            if let Some(p) = lzf_compress(&v, v.len() - 4) {
                let mut out = vec![0u8; v.len()];
                assert_eq!(lzf_rust::decompress(&p, &mut out).unwrap(), v.len());
                assert_eq!(out, v);
            }
        }
    }

    #[test]
    fn hostile_blobs_are_errors() {
        assert!(read_listpack(b"\x07\x00\x00\x00\x01\x00\xff", 0).is_err());
        assert!(read_listpack(b"\x09\x00\x00\x00\x01\x00\x81a", 0).is_err());
        assert!(read_intset(b"\x02\x00\x00\x00\x02\x00\x00\x00\x02\x00\x01\x00", 0).is_err());
        assert!(Input::new(b"\xc3\x01\x7f\xff").string().is_err());
        assert!(Input::new(b"\x81\xff\xff\xff\xff\xff\xff\xff\xff")
            .count(1)
            .is_err());
    }
}
