//! HyperLogLog: Redis's cardinality estimator, byte for byte.
//!
//! A HyperLogLog is a string value (PFADD writes it, GET reads it, SET of bytes
//! copied from redis-server brings one in), so this module works on the bytes
//! themselves, in Redis's layout:
//!
//! - a 16-byte header: `HYLL`, an encoding byte (0 dense, 1 sparse), three unused
//!   bytes, and the last computed cardinality as a little-endian `u64` whose top
//!   bit set means "stale, recompute";
//! - dense: 16384 registers of 6 bits packed from the low bit of each byte up
//!   (12288 bytes);
//! - sparse: run-length opcodes, `00xxxxxx` (ZERO: 1..64 zero registers),
//!   `01xxxxxx yyyyyyyy` (XZERO: 1..16384 zero registers), `1vvvvvxx` (VAL: 1..4
//!   registers of value 1..32), promoted to dense when a value exceeds 32 or the
//!   value would grow past `hll-sparse-max-bytes`.
//!
//! Elements are hashed with MurmurHash64A (seed `0xadc83b19`); the low 14 bits
//! pick the register, the position of the lowest set bit among the other 50 (plus
//! one) is the candidate value. The cardinality is Ertl's improved estimator
//! (tau/sigma) over the register histogram, as Redis 7 computes it, so counts
//! and stored bytes match redis-server's for the same inputs.
//!
//! Sparse values are checked as Redis does since its fix for CVE-2025-32023
//! (in 7.2.10, and in the 7.0.15 Debian ships): opcodes that run past register
//! 16383 make the value corrupt for counting, merging and conversion to dense.
//!
//! Not here: replies and error text (`commands/hll.rs` turns [`HllError`] into
//! Redis's `WRONGTYPE`/`INVALIDOBJ` lines).

use std::borrow::Cow;

/// Bits of the hash that select a register.
const P: u32 = 14;
/// Number of registers.
pub const REGISTERS: usize = 1 << P;
/// Bits of the hash left for the run of zeros.
const Q: usize = 64 - P as usize;
/// Largest register value (6 bits).
const REGISTER_MAX: u8 = 63;
/// Bytes of the header.
pub const HEADER_LEN: usize = 16;
/// Bytes of a dense HyperLogLog, header included.
pub const DENSE_LEN: usize = HEADER_LEN + REGISTERS * 6 / 8;
/// The default of `hll-sparse-max-bytes`.
pub const DEFAULT_SPARSE_MAX_BYTES: usize = 3000;
/// Redis's seed for MurmurHash64A.
const SEED: u64 = 0xadc8_3b19;
/// 0.5 / ln 2: the estimator's constant for an infinite number of registers.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

const ENC_DENSE: u8 = 0;
const ENC_SPARSE: u8 = 1;
/// Byte of the header holding the stale flag (top bit of the cached count).
const CACHE_FLAG_BYTE: usize = 15;

const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;

/// Why bytes cannot be used as a HyperLogLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HllError {
    /// Not a HyperLogLog at all: too short, wrong magic, unknown encoding, or a
    /// dense value of the wrong length (Redis answers WRONGTYPE).
    NotHll,
    /// A well-formed header over registers that do not add up (INVALIDOBJ).
    Corrupt,
}

/// How the registers are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 16384 packed 6-bit registers.
    Dense,
    /// Run-length opcodes.
    Sparse,
}

impl Encoding {
    /// The name PFDEBUG ENCODING answers.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Dense => "dense",
            Encoding::Sparse => "sparse",
        }
    }
}

/// MurmurHash64A over `data`, reading 8-byte blocks little-endian (Redis's
/// endian-neutral variant).
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut word = [0u8; 8];
        word.copy_from_slice(block);
        let mut k = u64::from_le_bytes(word).wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= u64::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register `element` falls in, and the value it offers that register: one
/// more than the number of zero bits above the register index (1..=51).
pub fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// An empty HyperLogLog as PFADD creates it: sparse, one XZERO opcode over all
/// registers, cached count 0.
pub fn new_sparse() -> Vec<u8> {
    let mut v = vec![0u8; HEADER_LEN];
    v[..4].copy_from_slice(b"HYLL");
    v[4] = ENC_SPARSE;
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(SPARSE_XZERO_MAX_LEN);
        push_xzero(&mut v, run);
        left -= run;
    }
    v
}

/// The encoding of `bytes` if they look like a HyperLogLog (header checks only,
/// as Redis's `isHLLObjectOrReply`).
pub fn check(bytes: &[u8]) -> Result<Encoding, HllError> {
    if bytes.len() < HEADER_LEN || !bytes.starts_with(b"HYLL") {
        return Err(HllError::NotHll);
    }
    match bytes[4] {
        ENC_DENSE if bytes.len() == DENSE_LEN => Ok(Encoding::Dense),
        ENC_SPARSE => Ok(Encoding::Sparse),
        _ => Err(HllError::NotHll),
    }
}

/// The cached cardinality, if it is still valid.
pub fn cached_count(bytes: &[u8]) -> Option<u64> {
    let card: [u8; 8] = bytes.get(8..HEADER_LEN)?.try_into().ok()?;
    let n = u64::from_le_bytes(card);
    (n >> 63 == 0).then_some(n)
}

/// Stores `count` as the cached cardinality (valid).
pub fn store_count(buf: &mut [u8], count: u64) {
    if let Some(card) = buf.get_mut(8..HEADER_LEN) {
        card.copy_from_slice(&count.to_le_bytes());
    }
}

/// Marks the cached cardinality stale.
pub fn invalidate_cache(buf: &mut [u8]) {
    if let Some(b) = buf.get_mut(CACHE_FLAG_BYTE) {
        *b |= 0x80;
    }
}

// ---- dense registers ----

fn dense_get(regs: &[u8], index: usize) -> u8 {
    let byte = index * 6 / 8;
    let shift = (index * 6) & 7;
    let b0 = u16::from(regs.get(byte).copied().unwrap_or(0));
    let b1 = u16::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> shift) | (b1 << (8 - shift))) & u16::from(REGISTER_MAX)) as u8
}

fn dense_put(regs: &mut [u8], index: usize, value: u8) {
    let byte = index * 6 / 8;
    let shift = (index * 6) & 7;
    let v = u16::from(value);
    let max = u16::from(REGISTER_MAX);
    if let Some(b) = regs.get_mut(byte) {
        *b = (*b & !((max << shift) as u8)) | ((v << shift) as u8);
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b = (*b & !((max >> (8 - shift)) as u8)) | ((v >> (8 - shift)) as u8);
    }
}

/// Raises register `index` of a dense value to `count`; true if it grew.
fn dense_set(buf: &mut [u8], index: usize, count: u8) -> bool {
    let start = HEADER_LEN.min(buf.len());
    let regs = &mut buf[start..];
    if count > dense_get(regs, index) {
        dense_put(regs, index, count);
        true
    } else {
        false
    }
}

/// The four registers packed in three bytes of a dense value.
fn unpack4(c: &[u8]) -> [u8; 4] {
    let w = u32::from(c[0]) | u32::from(c[1]) << 8 | u32::from(c[2]) << 16;
    [0, 6, 12, 18].map(|s| ((w >> s) & 63) as u8)
}

/// Every register of a dense value, four from each three bytes.
fn dense_registers(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bytes
        .get(HEADER_LEN..)
        .unwrap_or_default()
        .chunks_exact(3)
        .flat_map(unpack4)
}

// ---- sparse opcodes ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `len` zero registers, one byte.
    Zero(usize),
    /// `len` zero registers, two bytes.
    XZero(usize),
    /// `len` registers of `value`, one byte.
    Val(u8, usize),
}

impl Op {
    /// The opcode at `p`; an XZERO cut short by the end reads its missing byte
    /// as 0, as Redis reads the string's terminating NUL.
    fn at(buf: &[u8], p: usize) -> Op {
        let b = buf.get(p).copied().unwrap_or(0);
        if b & 0x80 != 0 {
            Op::Val(((b >> 2) & 0x1f) + 1, usize::from(b & 3) + 1)
        } else if b & 0x40 != 0 {
            let lo = usize::from(buf.get(p + 1).copied().unwrap_or(0));
            Op::XZero(((usize::from(b & 0x3f) << 8) | lo) + 1)
        } else {
            Op::Zero(usize::from(b & 0x3f) + 1)
        }
    }

    fn bytes(self) -> usize {
        match self {
            Op::XZero(_) => 2,
            _ => 1,
        }
    }

    fn span(self) -> usize {
        match self {
            Op::Zero(n) | Op::XZero(n) | Op::Val(_, n) => n,
        }
    }
}

fn val_byte(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | ((len - 1) as u8 & 3)
}

fn push_xzero(out: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    out.push(0x40 | ((l >> 8) as u8 & 0x3f));
    out.push((l & 0xff) as u8);
}

/// A run of `len` zeros: ZERO up to 64, XZERO above.
fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        push_xzero(out, len);
    } else {
        out.push((len - 1) as u8);
    }
}

/// The opcodes of a sparse value, with their byte offsets.
fn sparse_ops(buf: &[u8]) -> impl Iterator<Item = (usize, Op)> + '_ {
    let mut p = HEADER_LEN;
    std::iter::from_fn(move || {
        if p >= buf.len() {
            return None;
        }
        let op = Op::at(buf, p);
        let at = p;
        p += op.bytes();
        Some((at, op))
    })
}

/// Raises register `index` of a sparse value to `count`, splitting and merging
/// opcodes as Redis does (so the bytes come out the same), promoting to dense
/// when needed. `Ok(true)` if the register grew.
fn sparse_set(
    buf: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, HllError> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(buf, index, count);
    }
    // Step 1: the opcode covering `index`.
    let mut first = 0;
    let mut prev = None;
    let mut found = None;
    for (at, op) in sparse_ops(buf) {
        if index < first + op.span() {
            found = Some((at, op));
            break;
        }
        prev = Some(at);
        first += op.span();
    }
    let Some((p, op)) = found else {
        return Err(HllError::Corrupt);
    };
    // Step 2: cases that need no split.
    match op {
        Op::Val(old, _) if old >= count => return Ok(false),
        Op::Val(_, 1) | Op::Zero(1) => {
            buf[p] = val_byte(count, 1);
            merge_neighbours(buf, prev);
            return Ok(true);
        }
        _ => {}
    }
    // The general case: split the opcode around `index`.
    let last = first + op.span() - 1;
    let mut seq = Vec::with_capacity(5);
    match op {
        Op::Val(value, _) => {
            if index != first {
                seq.push(val_byte(value, index - first));
            }
            seq.push(val_byte(count, 1));
            if index != last {
                seq.push(val_byte(value, last - index));
            }
        }
        Op::Zero(_) | Op::XZero(_) => {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_byte(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
    }
    // Step 3: put the new sequence in place of the opcode.
    let old_len = op.bytes();
    let new_total = buf.len() + seq.len() - old_len;
    if seq.len() > old_len && new_total > max_bytes {
        return promote(buf, index, count);
    }
    let tail_from = (p + old_len).min(buf.len());
    buf.splice(p..tail_from, seq);
    // An XZERO cut short by the end: its missing byte was not in the string.
    buf.truncate(new_total);
    merge_neighbours(buf, prev);
    Ok(true)
}

/// Step 4 of a sparse update: from the opcode before the changed one, up to five
/// opcodes are scanned and adjacent VALs of one value merged (up to four
/// registers), then the cached count is marked stale.
fn merge_neighbours(buf: &mut Vec<u8>, prev: Option<usize>) {
    let mut p = prev.unwrap_or(HEADER_LEN);
    let mut scans = 5;
    while p < buf.len() && scans > 0 {
        scans -= 1;
        let op = Op::at(buf, p);
        let Op::Val(v1, l1) = op else {
            p += op.bytes();
            continue;
        };
        if let Some(&next) = buf.get(p + 1) {
            if let Op::Val(v2, l2) = Op::at(&[next], 0) {
                if v1 == v2 && l1 + l2 <= SPARSE_VAL_MAX_LEN {
                    buf[p + 1] = val_byte(v1, l1 + l2);
                    buf.remove(p);
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate_cache(buf);
}

/// Converts to dense, then sets the register (which must grow).
fn promote(buf: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    to_dense(buf)?;
    Ok(dense_set(buf, index, count))
}

/// Converts a sparse value to dense (header and cached count kept); `Ok(false)`
/// if it was dense already, `Corrupt` if its opcodes do not cover exactly 16384
/// registers, `NotHll` if it is no HyperLogLog.
pub fn to_dense(buf: &mut Vec<u8>) -> Result<bool, HllError> {
    if check(buf)? == Encoding::Dense {
        return Ok(false);
    }
    let mut dense = vec![0u8; DENSE_LEN];
    dense[..HEADER_LEN].copy_from_slice(&buf[..HEADER_LEN]);
    dense[4] = ENC_DENSE;
    let mut idx = 0;
    for (_, op) in sparse_ops(buf) {
        let n = op.span();
        if idx + n > REGISTERS {
            return Err(HllError::Corrupt);
        }
        if let Op::Val(value, _) = op {
            for i in idx..idx + n {
                dense_put(&mut dense[HEADER_LEN..], i, value);
            }
        }
        idx += n;
    }
    if idx != REGISTERS {
        return Err(HllError::Corrupt);
    }
    *buf = dense;
    Ok(true)
}

/// Raises register `index` to `count` in a value of either encoding.
fn set_register(
    buf: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, HllError> {
    match check(buf)? {
        Encoding::Dense => Ok(dense_set(buf, index, count)),
        Encoding::Sparse => sparse_set(buf, index, count, max_bytes),
    }
}

/// Adds `element` (PFADD of one element): `Ok(true)` if a register grew. The
/// value is copied only when it changes: a dense value whose register is already
/// high enough stays borrowed. The cached count is not touched for a dense value
/// (PFADD marks it stale once at the end).
pub fn add(value: &mut Cow<'_, [u8]>, element: &[u8], max_bytes: usize) -> Result<bool, HllError> {
    let (index, count) = pattern(element);
    match check(value)? {
        Encoding::Dense => {
            if count <= dense_get(&value[HEADER_LEN..], index) {
                return Ok(false);
            }
            dense_put(&mut value.to_mut()[HEADER_LEN..], index, count);
            Ok(true)
        }
        Encoding::Sparse => sparse_set(value.to_mut(), index, count, max_bytes),
    }
}

/// Adds `element` to a dense value in place (PFADD's path for dense values,
/// which are edited rather than copied): true if a register grew. `buf` must be
/// a value [`check`] found dense; the cached count is not touched.
pub fn add_dense(buf: &mut [u8], element: &[u8]) -> bool {
    let (index, count) = pattern(element);
    dense_set(buf, index, count)
}

/// The register histogram: how many registers hold each value. `Err(Corrupt)`
/// for a sparse value that does not cover exactly 16384 registers.
fn histogram(bytes: &[u8]) -> Result<[u32; 64], HllError> {
    let mut h = [0u32; 64];
    match check(bytes)? {
        Encoding::Dense => {
            for c in bytes[HEADER_LEN..].chunks_exact(3) {
                for r in unpack4(c) {
                    h[usize::from(r)] += 1;
                }
            }
        }
        Encoding::Sparse => {
            let mut idx = 0usize;
            for (_, op) in sparse_ops(bytes) {
                let (value, n) = match op {
                    Op::Zero(n) | Op::XZero(n) => (0, n),
                    Op::Val(v, n) => (usize::from(v), n),
                };
                if idx + n > REGISTERS {
                    return Err(HllError::Corrupt);
                }
                idx += n;
                h[value] += n as u32;
            }
            if idx != REGISTERS {
                return Err(HllError::Corrupt);
            }
        }
    }
    Ok(h)
}

/// Ertl's sigma function.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

/// Ertl's tau function.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// The estimate from a register histogram, as Redis's `hllCount`: Ertl's
/// improved estimator, rounded half away from zero. A value out of range (all
/// registers above 51 in a doctored value) comes out as Redis's `llroundl` gives
/// it on x86-64: the bits of `i64::MIN`.
fn estimate(h: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(h[Q + 1])) / m);
    for j in (1..=Q).rev() {
        z += f64::from(h[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(h[0]) / m);
    let e = (ALPHA_INF * m * m / z).round();
    if e.is_finite() && e > -9.2e18 && e < 9.2e18 {
        e as i64 as u64
    } else {
        i64::MIN as u64
    }
}

/// The cardinality of one HyperLogLog, computed (the cache is not read).
pub fn count(bytes: &[u8]) -> Result<u64, HllError> {
    Ok(estimate(&histogram(bytes)?))
}

/// Registers one byte each: the union of several HyperLogLogs (PFCOUNT of
/// several keys, PFMERGE).
pub struct Union {
    max: Vec<u8>,
    any_dense: bool,
}

impl Default for Union {
    fn default() -> Self {
        Union {
            max: vec![0; REGISTERS],
            any_dense: false,
        }
    }
}

impl Union {
    /// Folds in `bytes`: each register becomes the larger of the two.
    pub fn merge(&mut self, bytes: &[u8]) -> Result<(), HllError> {
        match check(bytes)? {
            Encoding::Dense => {
                self.any_dense = true;
                let packed = bytes[HEADER_LEN..].chunks_exact(3);
                for (m, c) in self.max.chunks_exact_mut(4).zip(packed) {
                    for (m, r) in m.iter_mut().zip(unpack4(c)) {
                        *m = (*m).max(r);
                    }
                }
            }
            Encoding::Sparse => {
                let mut idx = 0;
                for (_, op) in sparse_ops(bytes) {
                    let n = op.span();
                    let Some(regs) = self.max.get_mut(idx..idx + n) else {
                        return Err(HllError::Corrupt);
                    };
                    if let Op::Val(value, _) = op {
                        regs.iter_mut().for_each(|m| *m = (*m).max(value));
                    }
                    idx += n;
                }
                if idx != REGISTERS {
                    return Err(HllError::Corrupt);
                }
            }
        }
        Ok(())
    }

    /// Whether one of the merged values was dense (PFMERGE then writes dense).
    pub fn any_dense(&self) -> bool {
        self.any_dense
    }

    /// The union's cardinality.
    pub fn count(&self) -> u64 {
        let mut h = [0u32; 64];
        for r in &self.max {
            h[usize::from(*r & 63)] += 1;
        }
        estimate(&h)
    }

    /// Writes the union into `dest` (a valid HyperLogLog) as PFMERGE does:
    /// converted to dense first if a source was dense, then every non-zero
    /// register raised, and the cached count marked stale.
    pub fn store_into(&self, dest: &mut Vec<u8>, max_bytes: usize) -> Result<(), HllError> {
        if self.any_dense {
            to_dense(dest)?;
        }
        for (j, &v) in self.max.iter().enumerate() {
            if v != 0 {
                // Redis ignores a failure here: `dest` was checked when merged.
                let _ = set_register(dest, j, v, max_bytes);
            }
        }
        invalidate_cache(dest);
        Ok(())
    }
}

/// The 16384 register values of a dense value (PFDEBUG GETREG).
pub fn registers(bytes: &[u8]) -> Vec<u8> {
    dense_registers(bytes).collect()
}

/// The opcodes of a sparse value as PFDEBUG DECODE prints them (`z:N`, `Z:N`,
/// `v:VALUE,LEN`, space separated); `None` for a dense value.
pub fn decode(bytes: &[u8]) -> Option<String> {
    if check(bytes).ok()? != Encoding::Sparse {
        return None;
    }
    let words: Vec<String> = sparse_ops(bytes)
        .map(|(_, op)| match op {
            Op::Zero(n) => format!("z:{n}"),
            Op::XZero(n) => format!("Z:{n}"),
            Op::Val(v, n) => format!("v:{v},{n}"),
        })
        .collect();
    Some(words.join(" "))
}

/// What PFSELFTEST found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfTestFailure {
    /// A dense register read back another value than was written.
    Register {
        /// The register.
        index: usize,
        /// What was written.
        expected: u8,
        /// What was read.
        actual: u8,
    },
    /// A small HyperLogLog was no longer sparse.
    NotSparse,
    /// The dense and sparse forms of the same elements counted differently.
    Disagree,
    /// The estimate was off by more than six standard errors.
    TooBigError {
        /// The true cardinality.
        cardinality: u64,
        /// How far off the estimate was.
        error: u64,
    },
}

/// PFSELFTEST: `cycles` rounds of random register writes read back, then
/// `elements` distinct elements added to a dense and a sparse HyperLogLog,
/// checked at every power of ten (Redis runs 1000 cycles and 10,000,000
/// elements).
pub fn selftest(cycles: u32, elements: u64, max_bytes: usize) -> Result<(), SelfTestFailure> {
    let mut rng = fastrand::Rng::new();
    let mut dense = vec![0u8; DENSE_LEN];
    dense[..4].copy_from_slice(b"HYLL");
    let mut expected = vec![0u8; REGISTERS];
    for _ in 0..cycles {
        for (i, e) in expected.iter_mut().enumerate() {
            *e = rng.u8(..) & REGISTER_MAX;
            dense_put(&mut dense[HEADER_LEN..], i, *e);
        }
        for (i, &e) in expected.iter().enumerate() {
            let actual = dense_get(&dense[HEADER_LEN..], i);
            if actual != e {
                return Err(SelfTestFailure::Register {
                    index: i,
                    expected: e,
                    actual,
                });
            }
        }
    }
    dense[HEADER_LEN..].fill(0);
    let mut sparse = Cow::Owned(new_sparse());
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let seed = rng.u64(..);
    let mut checkpoint = 1u64;
    for j in 1..=elements {
        let element = (j ^ seed).to_ne_bytes();
        let (index, value) = pattern(&element);
        dense_set(&mut dense, index, value);
        let _ = add(&mut sparse, &element, max_bytes);
        if j != checkpoint {
            continue;
        }
        if j < (max_bytes / 2) as u64 && check(&sparse) != Ok(Encoding::Sparse) {
            return Err(SelfTestFailure::NotSparse);
        }
        let estimate = count(&dense).unwrap_or(0);
        if count(&sparse) != Ok(estimate) {
            return Err(SelfTestFailure::Disagree);
        }
        let error = checkpoint.abs_diff(estimate);
        let max_error = if j == 10 {
            1
        } else {
            (relerr * 6.0 * checkpoint as f64).ceil() as u64
        };
        if error > max_error {
            return Err(SelfTestFailure::TooBigError {
                cardinality: checkpoint,
                error,
            });
        }
        checkpoint = checkpoint.saturating_mul(10);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hll_of(elements: impl IntoIterator<Item = Vec<u8>>, max_bytes: usize) -> Vec<u8> {
        let mut v = Cow::Owned(new_sparse());
        for e in elements {
            add(&mut v, &e, max_bytes).unwrap();
        }
        v.into_owned()
    }

    #[test]
    fn murmur_matches_known_values() {
        // Reference values of MurmurHash64A computed independently.
        assert_eq!(murmur64a(b"", 0), 0);
        assert_eq!(murmur64a(b"", SEED), murmur64a(&[], SEED));
        // Every tail length takes a different path.
        let hashes: Vec<u64> = (0..=16)
            .map(|n| murmur64a(&b"abcdefghijklmnop"[..n], SEED))
            .collect();
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn elements_land_where_redis_puts_them() {
        // redis-server stores PFADD h a as XZERO:12711 VAL:2,1 XZERO:3672.
        assert_eq!(pattern(b"a"), (12711, 2));
        let h = hll_of([b"a".to_vec()], DEFAULT_SPARSE_MAX_BYTES);
        assert_eq!(&h[HEADER_LEN..], b"q\xa6\x84NW");
    }

    #[test]
    fn opcodes_past_the_last_register_are_corrupt() {
        // XZERO:16384 then VAL:2,1: the VAL runs past the end.
        let mut v = new_sparse();
        v.push(val_byte(2, 1));
        assert_eq!(count(&v), Err(HllError::Corrupt));
        assert_eq!(Union::default().merge(&v), Err(HllError::Corrupt));
        assert_eq!(to_dense(&mut v.clone()), Err(HllError::Corrupt));
        // A change inside the covered registers still works, as in Redis.
        let mut cow = Cow::Borrowed(&v[..]);
        assert_eq!(add(&mut cow, b"a", DEFAULT_SPARSE_MAX_BYTES), Ok(true));
        // A promotion has to convert the whole value, and fails.
        let mut cow = Cow::Borrowed(&v[..]);
        assert_eq!(add(&mut cow, b"a", 18), Err(HllError::Corrupt));
    }

    #[test]
    fn a_new_value_is_one_xzero_over_all_registers() {
        let v = new_sparse();
        assert_eq!(v.len(), 18);
        assert_eq!(&v[..5], b"HYLL\x01");
        assert_eq!(decode(&v).unwrap(), "Z:16384");
        assert_eq!(count(&v), Ok(0));
        assert_eq!(cached_count(&v), Some(0));
    }

    #[test]
    fn dense_registers_read_back_what_was_written() {
        assert_eq!(selftest(3, 0, DEFAULT_SPARSE_MAX_BYTES), Ok(()));
        let mut regs = vec![0u8; REGISTERS * 6 / 8];
        dense_put(&mut regs, 1, 63);
        assert_eq!(regs[0], 0b1100_0000);
        assert_eq!(regs[1], 0b0000_1111);
        dense_put(&mut regs, REGISTERS - 1, 5);
        assert_eq!(dense_get(&regs, REGISTERS - 1), 5);
        assert_eq!(dense_get(&regs, REGISTERS - 2), 0);
    }

    #[test]
    fn sparse_and_dense_count_alike_and_promotion_happens_at_the_limit() {
        let elements = |n: u32| (0..n).map(|i| format!("e{i}").into_bytes());
        let sparse = hll_of(elements(500), DEFAULT_SPARSE_MAX_BYTES);
        assert_eq!(check(&sparse), Ok(Encoding::Sparse));
        assert!(sparse.len() <= DEFAULT_SPARSE_MAX_BYTES);
        let mut dense = sparse.clone();
        assert_eq!(to_dense(&mut dense), Ok(true));
        assert_eq!(dense.len(), DENSE_LEN);
        assert_eq!(count(&sparse), count(&dense));
        let n = count(&sparse).unwrap();
        assert!((490..=510).contains(&n), "{n}");
        let big = hll_of(elements(3000), DEFAULT_SPARSE_MAX_BYTES);
        assert_eq!(check(&big), Ok(Encoding::Dense));
        let tiny = hll_of(elements(50), 30);
        assert_eq!(check(&tiny), Ok(Encoding::Dense));
    }

    #[test]
    fn sparse_updates_keep_the_registers_a_dense_value_gets() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..40 {
            let max_bytes = [30, 300, 3000, 12000][round % 4];
            let n = rng.usize(1..2000);
            let mut sparse = Cow::Owned(new_sparse());
            let mut dense = new_sparse();
            to_dense(&mut dense).unwrap();
            let mut dense = Cow::Owned(dense);
            for _ in 0..n {
                let e = rng.u64(..).to_le_bytes();
                let e = &e[..rng.usize(0..8)];
                let grew = add(&mut dense, e, max_bytes).unwrap();
                assert_eq!(add(&mut sparse, e, max_bytes).unwrap(), grew);
                if check(&sparse) == Ok(Encoding::Sparse) {
                    assert!(sparse.len() <= max_bytes.max(18));
                }
            }
            assert_eq!(count(&sparse), count(&dense));
            let mut in_place = new_sparse();
            to_dense(&mut in_place).unwrap();
            let mut rng2 = fastrand::Rng::with_seed(round as u64);
            for _ in 0..n {
                add_dense(&mut in_place, &rng2.u64(..).to_le_bytes());
            }
            let mut copied = Cow::Owned(new_sparse());
            let mut rng2 = fastrand::Rng::with_seed(round as u64);
            for _ in 0..n {
                add(&mut copied, &rng2.u64(..).to_le_bytes(), 0).unwrap();
            }
            assert_eq!(&in_place[..], &copied[..]);
            let mut as_dense = sparse.into_owned();
            to_dense(&mut as_dense).unwrap();
            assert_eq!(registers(&as_dense), registers(&dense));
        }
    }

    #[test]
    fn the_selftest_sees_a_value_turned_dense_too_early() {
        // A fresh value is 18 bytes and its first element needs at least 19
        // (21 unless the register is within 64 of either end, so a 20-byte
        // limit failed about one run in 128).
        assert_eq!(selftest(0, 10, 18), Err(SelfTestFailure::NotSparse));
        assert_eq!(selftest(0, 10, DEFAULT_SPARSE_MAX_BYTES), Ok(()));
    }

    #[test]
    fn the_estimator_is_within_a_few_percent() {
        assert_eq!(selftest(0, 100_000, DEFAULT_SPARSE_MAX_BYTES), Ok(()));
    }

    #[test]
    fn union_counts_what_both_hold() {
        let a = hll_of((0..1000).map(|i| format!("{i}").into_bytes()), 3000);
        let b = hll_of((500..1500).map(|i| format!("{i}").into_bytes()), 3000);
        let mut u = Union::default();
        u.merge(&a).unwrap();
        u.merge(&b).unwrap();
        let all = hll_of((0..1500).map(|i| format!("{i}").into_bytes()), 3000);
        assert_eq!(u.count(), count(&all).unwrap());
        let mut dest = new_sparse();
        u.store_into(&mut dest, 3000).unwrap();
        assert_eq!(count(&dest), count(&all));
    }

    #[test]
    fn corrupted_values_are_refused() {
        assert_eq!(check(b"HYLL"), Err(HllError::NotHll));
        assert_eq!(
            check(b"HYLX\x01\0\0\0\0\0\0\0\0\0\0\0"),
            Err(HllError::NotHll)
        );
        assert_eq!(
            check(b"HYLL\x00\0\0\0\0\0\0\0\0\0\0\0"),
            Err(HllError::NotHll)
        );
        assert_eq!(
            check(b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\0"),
            Err(HllError::NotHll)
        );
        let mut short = new_sparse();
        short.pop(); // XZERO cut short: covers 16384 - 255 registers.
        assert_eq!(count(&short), Err(HllError::Corrupt));
        let mut v = Cow::Owned(short.clone());
        // An element in the uncovered tail cannot be placed.
        let tail = (0..10_000u32)
            .map(|i| i.to_string().into_bytes())
            .find(|e| pattern(e).0 >= 16384 - 256)
            .unwrap();
        assert_eq!(add(&mut v, &tail, 3000), Err(HllError::Corrupt));
        let mut u = Union::default();
        assert_eq!(u.merge(&short), Err(HllError::Corrupt));
        let mut empty_body = new_sparse();
        empty_body.truncate(HEADER_LEN);
        assert_eq!(count(&empty_body), Err(HllError::Corrupt));
        assert_eq!(to_dense(&mut empty_body), Err(HllError::Corrupt));
        assert_eq!(to_dense(&mut b"HYLL".to_vec()), Err(HllError::NotHll));
    }

    #[test]
    fn the_cache_flag_is_the_top_bit() {
        let mut v = new_sparse();
        store_count(&mut v, 42);
        assert_eq!(cached_count(&v), Some(42));
        invalidate_cache(&mut v);
        assert_eq!(cached_count(&v), None);
        assert_eq!(v[15], 0x80);
    }

    #[test]
    fn sigma_and_tau_limits() {
        assert_eq!(sigma(1.0), f64::INFINITY);
        assert_eq!(sigma(0.0), 0.0);
        assert_eq!(tau(0.0), 0.0);
        assert_eq!(tau(1.0), 0.0);
        let mut h = [0u32; 64];
        h[0] = REGISTERS as u32;
        assert_eq!(estimate(&h), 0);
        let mut all_high = [0u32; 64];
        all_high[63] = REGISTERS as u32;
        assert_eq!(estimate(&all_high), i64::MIN as u64);
    }
}
