//! Bitmaps: a string seen as a sequence of bits, bit 0 being the most
//! significant bit of byte 0 (as Redis numbers them). The pure operations behind
//! SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP and BITFIELD live here; the commands,
//! their argument parsing and their error texts are in `commands/bitmap.rs`.
//!
//! Reading past the end of a string reads zeros; writing past it is the caller's
//! business (it grows the string first, see [`bytes_for_bit`]).

/// How many bytes a string needs to hold bit `bit`.
pub fn bytes_for_bit(bit: u64) -> u64 {
    (bit >> 3) + 1
}

/// The bit at `offset`; zero past the end.
pub fn get_bit(bytes: &[u8], offset: u64) -> bool {
    let Ok(byte) = usize::try_from(offset >> 3) else {
        return false;
    };
    bytes
        .get(byte)
        .is_some_and(|b| b & (0x80 >> (offset & 7)) != 0)
}

/// Sets the bit at `offset` to `on` and returns what it was. The caller has made
/// the string long enough; a bit past the end is left alone (and reads as zero).
pub fn set_bit(bytes: &mut [u8], offset: u64, on: bool) -> bool {
    let mask = 0x80u8 >> (offset & 7);
    let Some(b) = usize::try_from(offset >> 3)
        .ok()
        .and_then(|i| bytes.get_mut(i))
    else {
        return false;
    };
    let old = *b & mask != 0;
    if on {
        *b |= mask;
    } else {
        *b &= !mask;
    }
    old
}

/// The number of set bits in `bytes`, eight bytes at a time.
pub fn count_ones(bytes: &[u8]) -> u64 {
    let chunks = bytes.chunks_exact(32);
    let tail: u64 = chunks
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    let mut sums = [0u64; 4];
    for chunk in chunks {
        for (sum, word) in sums.iter_mut().zip(chunk.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *sum += u64::from(u64::from_ne_bytes(w).count_ones());
        }
    }
    sums.iter().sum::<u64>() + tail
}

/// Whether a range's numbers count bytes or bits (BITCOUNT and BITPOS's
/// `BYTE|BIT` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Start and end are byte indexes (the default).
    Byte,
    /// Start and end are bit indexes.
    Bit,
}

/// The inclusive bit range `[first, last]` that `start..=end` names in a string of
/// `len` bytes, as Redis resolves it: negative indexes count from the end, both
/// ends are clamped to the string, and an empty range is `None`. `end` is `None`
/// when not given (the string's end).
pub fn bit_range(len: usize, start: i64, end: Option<i64>, unit: Unit) -> Option<(u64, u64)> {
    let bytes = i64::try_from(len).unwrap_or(i64::MAX >> 3);
    let total = match unit {
        Unit::Byte => bytes,
        Unit::Bit => bytes << 3,
    };
    let end = end.unwrap_or(total - 1);
    let resolve = |i: i64| if i < 0 { total + i } else { i }.max(0);
    let (start, end) = (resolve(start), resolve(end).min(total - 1));
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(match unit {
        Unit::Byte => (start << 3, (end << 3) + 7),
        Unit::Bit => (start, end),
    })
}

/// The set bits in the inclusive bit range `[first, last]` of `bytes` (which
/// the range lies within).
pub fn count_range(bytes: &[u8], first: u64, last: u64) -> u64 {
    let (Ok(a), Ok(b)) = (usize::try_from(first >> 3), usize::try_from(last >> 3)) else {
        return 0;
    };
    let Some(span) = bytes.get(a..=b) else {
        return 0;
    };
    let mut count = count_ones(span);
    // Take away the bits of the edge bytes outside the range.
    let before = (0xFFu16 << (8 - (first & 7))) as u8;
    let after = (0xFFu8 >> (last & 7)) >> 1;
    if let (Some(f), Some(l)) = (span.first(), span.last()) {
        count -= u64::from((f & before).count_ones());
        count -= u64::from((l & after).count_ones());
    }
    count
}

/// The first bit equal to `bit` in the inclusive bit range `[first, last]` of
/// `bytes` (which the range lies within), or `None`.
pub fn find_bit(bytes: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let a = usize::try_from(first >> 3).ok()?;
    let b = usize::try_from(last >> 3).ok()?;
    let span = bytes.get(a..=b)?;
    // Looking for a 1 in the byte itself, or for a 1 in its complement.
    let want = |byte: u8| if bit { byte } else { !byte };
    let before = (0xFFu16 << (8 - (first & 7))) as u8;
    let after = (0xFFu8 >> (last & 7)) >> 1;
    let skip = if bit { 0u64 } else { u64::MAX };
    let mut i = 0;
    while i < span.len() {
        // Whole words that cannot hold the bit are skipped eight bytes at a time.
        if i > 0 && i + 9 <= span.len() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&span[i..i + 8]);
            if u64::from_ne_bytes(w) == skip {
                i += 8;
                continue;
            }
        }
        let mut v = want(span[i]);
        if i == 0 {
            v &= !before;
        }
        if i + 1 == span.len() {
            v &= !after;
        }
        if v != 0 {
            return Some(((a + i) as u64) * 8 + u64::from(v.leading_zeros()));
        }
        i += 1;
    }
    None
}

/// A BITOP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    /// Bitwise AND.
    And,
    /// Bitwise OR.
    Or,
    /// Bitwise XOR.
    Xor,
    /// Bitwise NOT of one source.
    Not,
}

/// The length of `op`'s result over `sources`: the longest source (NOT has one).
pub fn result_len(op: BitOp, sources: &[&[u8]]) -> usize {
    match (op, sources.first()) {
        (BitOp::Not, Some(first)) => first.len(),
        _ => sources.iter().map(|s| s.len()).max().unwrap_or(0),
    }
}

/// `op` over `sources` into `out`, which is [`result_len`] long (every byte of it
/// is written): a shorter source counts as zero-padded, so AND with a short or
/// empty source clears the rest. NOT takes the first source only.
pub fn bitop_into(op: BitOp, sources: &[&[u8]], out: &mut [u8]) {
    match op {
        BitOp::And => fold(sources, out, |x, y| x & y, true),
        BitOp::Or => fold(sources, out, |x, y| x | y, false),
        BitOp::Xor => fold(sources, out, |x, y| x ^ y, false),
        BitOp::Not => {
            let first = sources.first().map_or(&[][..], |s| s);
            for (o, x) in out.iter_mut().zip(first) {
                *o = !x;
            }
        }
    }
}

/// One pass per source, each a plain loop over bytes that the compiler turns into
/// vector instructions (`f` is known at compile time). `zero_pads_clear`: a
/// source's zero padding clears the result (AND) instead of keeping it.
fn fold(sources: &[&[u8]], out: &mut [u8], f: impl Fn(u8, u8) -> u8 + Copy, zero_pads_clear: bool) {
    let Some((first, rest)) = sources.split_first() else {
        out.fill(0);
        return;
    };
    // The first two sources in one pass.
    let second = rest.first().map_or(&[][..], |s| s);
    let common = first.len().min(second.len()).min(out.len());
    for ((o, x), y) in out[..common]
        .iter_mut()
        .zip(&first[..common])
        .zip(&second[..common])
    {
        *o = f(*x, *y);
    }
    let longer = if first.len() > second.len() {
        first
    } else {
        second
    };
    let kept = longer.len().min(out.len()) - common;
    let (head, tail) = out[common..].split_at_mut(kept);
    if zero_pads_clear && !rest.is_empty() {
        head.fill(0);
    } else {
        head.copy_from_slice(&longer[common..common + head.len()]);
    }
    tail.fill(0);
    for source in rest.iter().skip(1) {
        let n = source.len().min(out.len());
        let (head, tail) = out.split_at_mut(n);
        for (o, s) in head.iter_mut().zip(&source[..n]) {
            *o = f(*o, *s);
        }
        if zero_pads_clear {
            tail.fill(0);
        }
    }
}

/// `op` over `sources` as a new buffer (see [`bitop_into`]).
pub fn bitop(op: BitOp, sources: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0u8; result_len(op, sources)];
    bitop_into(op, sources, &mut out);
    out
}

/// A BITFIELD integer type: `i1`..`i64` or `u1`..`u63`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Two's complement (`i`) or unsigned (`u`).
    pub signed: bool,
    /// Width in bits.
    pub bits: u32,
}

impl Field {
    /// Reads a type as Redis does: `i` or `u` (lower case), then a width of 1 to
    /// 64 for signed and 1 to 63 for unsigned types (a u64 would not fit the
    /// signed 64-bit replies).
    pub fn parse(arg: &[u8]) -> Option<Field> {
        let (signed, width) = match arg.split_first()? {
            (b'i', w) => (true, w),
            (b'u', w) => (false, w),
            _ => return None,
        };
        let bits = crate::protocol::parse_i64(width)?;
        let max = if signed { 64 } else { 63 };
        (1..=max).contains(&bits).then_some(Field {
            signed,
            bits: bits as u32,
        })
    }

    fn min(self) -> i128 {
        if self.signed {
            -(1i128 << (self.bits - 1))
        } else {
            0
        }
    }

    fn max(self) -> i128 {
        if self.signed {
            (1i128 << (self.bits - 1)) - 1
        } else {
            (1i128 << self.bits) - 1
        }
    }

    /// `v` taken modulo 2^bits, read back as this type.
    fn wrap(self, v: i128) -> i64 {
        let m = v.rem_euclid(1i128 << self.bits);
        if self.signed && m > self.max() {
            (m - (1i128 << self.bits)) as i64
        } else {
            m as i64
        }
    }

    /// The integer the field at bit `offset` of `bytes` holds; bits past the end
    /// read as zero.
    pub fn get(self, bytes: &[u8], offset: u64) -> i64 {
        let raw = read_bits(bytes, offset, self.bits);
        if self.signed {
            let shift = 64 - self.bits;
            ((raw << shift) as i64) >> shift
        } else {
            raw as i64
        }
    }

    /// Stores `value`'s low `bits` bits at bit `offset` of `bytes` (which is long
    /// enough; bits past its end are dropped).
    pub fn set(self, bytes: &mut [u8], offset: u64, value: i64) {
        let Ok(start) = usize::try_from(offset >> 3) else {
            return;
        };
        let shift = offset & 7;
        // A window of 9 bytes (72 bits) always holds the field.
        let mut window = [0u8; 16];
        let end = bytes.len().min(start.saturating_add(9));
        let Some(have) = bytes.get(start..end) else {
            return;
        };
        window[7..7 + have.len()].copy_from_slice(have);
        let mut w = u128::from_be_bytes(window);
        let low = 72 - shift - u64::from(self.bits);
        let mask = ((1u128 << self.bits) - 1) << low;
        w = (w & !mask) | (((value as u64 as u128) << low) & mask);
        let out = w.to_be_bytes();
        if let Some(dst) = bytes.get_mut(start..end) {
            dst.copy_from_slice(&out[7..7 + (end - start)]);
        }
    }

    /// What storing `value` (SET) or the old value plus an increment (INCRBY),
    /// computed exactly, leaves in this field under `overflow`: the value itself
    /// when it fits, else wrapped or saturated; `None` when it does not fit and
    /// the policy is FAIL.
    pub fn settle(self, value: i128, overflow: Overflow) -> Option<i64> {
        if (self.min()..=self.max()).contains(&value) {
            return Some(value as i64);
        }
        match overflow {
            Overflow::Wrap => Some(self.wrap(value)),
            Overflow::Sat if value > self.max() => Some(self.max() as i64),
            Overflow::Sat => Some(self.min() as i64),
            Overflow::Fail => None,
        }
    }

    /// The value a SET argument stands for: for an unsigned field Redis reads the
    /// argument as an unsigned 64-bit number (so -1 is 2^64 - 1, which overflows).
    pub fn set_value(self, arg: i64) -> i128 {
        if self.signed {
            i128::from(arg)
        } else {
            i128::from(arg as u64)
        }
    }
}

/// `bits` (at most 64) bits from bit `offset`, most significant first, zero past
/// the end of `bytes`.
fn read_bits(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    let Ok(start) = usize::try_from(offset >> 3) else {
        return 0;
    };
    let mut window = [0u8; 16];
    if let Some(have) = bytes.get(start..) {
        let n = have.len().min(9);
        window[7..7 + n].copy_from_slice(&have[..n]);
    }
    let w = u128::from_be_bytes(window);
    let low = 72 - (offset & 7) - u64::from(bits);
    ((w >> low) & ((1u128 << bits) - 1)) as u64
}

/// BITFIELD's OVERFLOW policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Modulo 2^bits (the default).
    #[default]
    Wrap,
    /// Clamp to the type's minimum or maximum.
    Sat,
    /// Leave the field unchanged and reply nil.
    Fail,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference model: a string as a vector of bits.
    fn bits_of(bytes: &[u8]) -> Vec<bool> {
        (0..bytes.len() as u64 * 8)
            .map(|i| bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0)
            .collect()
    }

    fn random_bytes(rng: &mut fastrand::Rng, max: usize) -> Vec<u8> {
        let len = rng.usize(0..=max);
        let dense = rng.u8(..);
        (0..len)
            .map(|_| match dense % 3 {
                0 => rng.u8(..),
                1 => [0u8, 0xFF][rng.usize(0..2)],
                _ => [0u8, 0x10, 0xFF, 0xEF][rng.usize(0..4)],
            })
            .collect()
    }

    #[test]
    fn bits_are_numbered_from_the_most_significant() {
        let mut b = vec![0u8; 2];
        assert!(!set_bit(&mut b, 0, true));
        assert!(!set_bit(&mut b, 15, true));
        assert_eq!(b, [0x80, 0x01]);
        assert!(set_bit(&mut b, 15, false));
        assert!(get_bit(&b, 0) && !get_bit(&b, 1) && !get_bit(&b, 100));
        assert!(!get_bit(&b, u64::MAX));
        assert!(!set_bit(&mut b, u64::MAX, true));
        assert_eq!(bytes_for_bit(7), 1);
        assert_eq!(bytes_for_bit(8), 2);
    }

    #[test]
    fn ranges_resolve_like_redis() {
        assert_eq!(bit_range(3, 0, Some(-1), Unit::Byte), Some((0, 23)));
        assert_eq!(bit_range(3, 1, Some(1), Unit::Byte), Some((8, 15)));
        assert_eq!(bit_range(3, 5, Some(1), Unit::Bit), None);
        assert_eq!(bit_range(3, -5, Some(-1), Unit::Bit), Some((19, 23)));
        assert_eq!(bit_range(3, -100, Some(100), Unit::Bit), Some((0, 23)));
        assert_eq!(
            bit_range(3, i64::MIN, Some(i64::MAX), Unit::Byte),
            Some((0, 23))
        );
        assert_eq!(bit_range(0, 0, None, Unit::Byte), None);
        assert_eq!(bit_range(2, 1, None, Unit::Byte), Some((8, 15)));
    }

    /// Random strings and ranges against the bit-vector model.
    #[test]
    fn count_and_find_agree_with_a_bit_vector() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..3000 {
            let bytes = random_bytes(&mut rng, 80);
            let model = bits_of(&bytes);
            assert_eq!(
                count_ones(&bytes),
                model.iter().filter(|b| **b).count() as u64
            );
            let unit = if rng.bool() { Unit::Bit } else { Unit::Byte };
            let total = bytes.len() as i64 * if unit == Unit::Bit { 8 } else { 1 };
            let start = rng.i64(-total - 3..=total + 3);
            let end = rng.i64(-total - 3..=total + 3);
            let Some((first, last)) = bit_range(bytes.len(), start, Some(end), unit) else {
                continue;
            };
            let slice = &model[first as usize..=last as usize];
            assert_eq!(
                count_range(&bytes, first, last),
                slice.iter().filter(|b| **b).count() as u64
            );
            for bit in [false, true] {
                let want = slice
                    .iter()
                    .position(|b| *b == bit)
                    .map(|p| p as u64 + first);
                assert_eq!(
                    find_bit(&bytes, bit, first, last),
                    want,
                    "{bytes:?} {first} {last} {bit}"
                );
            }
        }
    }

    #[test]
    fn bitop_agrees_with_a_bit_vector() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..500 {
            let n = rng.usize(1..5);
            let sources: Vec<Vec<u8>> = (0..n).map(|_| random_bytes(&mut rng, 40)).collect();
            let refs: Vec<&[u8]> = sources.iter().map(|s| &s[..]).collect();
            let longest = sources.iter().map(Vec::len).max().unwrap_or(0);
            let models: Vec<Vec<bool>> = sources.iter().map(|s| bits_of(s)).collect();
            let bit = |m: &Vec<bool>, i: usize| m.get(i).copied().unwrap_or(false);
            for op in [BitOp::And, BitOp::Or, BitOp::Xor] {
                let out = bitop(op, &refs);
                assert_eq!(out.len(), longest);
                // Into a buffer that held something else (a reused destination):
                // every byte is written.
                let mut reused = vec![0xA5u8; result_len(op, &refs)];
                bitop_into(op, &refs, &mut reused);
                assert_eq!(reused, out);
                let got = bits_of(&out);
                for (i, g) in got.iter().enumerate() {
                    let mut want = bit(&models[0], i);
                    for m in &models[1..] {
                        want = match op {
                            BitOp::And => want & bit(m, i),
                            BitOp::Or => want | bit(m, i),
                            _ => want ^ bit(m, i),
                        };
                    }
                    assert_eq!(*g, want, "{op:?} bit {i}");
                }
            }
            let not = bitop(BitOp::Not, &refs[..1]);
            let mut reused = vec![0x5Au8; not.len()];
            bitop_into(BitOp::Not, &refs[..1], &mut reused);
            assert_eq!(reused, not);
            assert_eq!(
                bits_of(&not),
                models[0].iter().map(|b| !b).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn field_types_parse_like_redis() {
        assert_eq!(
            Field::parse(b"i64"),
            Some(Field {
                signed: true,
                bits: 64
            })
        );
        assert_eq!(
            Field::parse(b"u63"),
            Some(Field {
                signed: false,
                bits: 63
            })
        );
        for bad in [
            &b"u64"[..],
            b"i65",
            b"i0",
            b"u",
            b"I8",
            b"u08",
            b"",
            b"x8",
            b"i-1",
        ] {
            assert_eq!(Field::parse(bad), None, "{bad:?}");
        }
    }

    /// Random fields written and read back against the bit-vector model.
    #[test]
    fn fields_agree_with_a_bit_vector() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..3000 {
            let signed = rng.bool();
            let bits = rng.u32(1..=if signed { 64 } else { 63 });
            let field = Field { signed, bits };
            let mut bytes = random_bytes(&mut rng, 20);
            let offset = rng.u64(0..200);
            let need = bytes_for_bit(offset + u64::from(bits) - 1) as usize;
            // Reading past the end reads zeros.
            let mut padded = bytes.clone();
            padded.resize(padded.len().max(need), 0);
            let model = bits_of(&padded);
            let raw = (0..bits as usize).fold(0u128, |acc, i| {
                (acc << 1) | u128::from(model[offset as usize + i])
            });
            let want = if signed && raw >> (bits - 1) == 1 {
                raw as i128 - (1i128 << bits)
            } else {
                raw as i128
            };
            assert_eq!(i128::from(field.get(&bytes, offset)), want);
            // Writing changes exactly those bits.
            bytes.resize(bytes.len().max(need), 0);
            let value = rng.i64(..);
            field.set(&mut bytes, offset, value);
            let after = bits_of(&bytes);
            for (i, (a, b)) in model.iter().zip(&after).enumerate() {
                let inside = (offset as usize..offset as usize + bits as usize).contains(&i);
                if inside {
                    let k = bits as usize - 1 - (i - offset as usize);
                    assert_eq!(*b, (value as u64 >> k) & 1 == 1);
                } else {
                    assert_eq!(a, b);
                }
            }
        }
    }

    #[test]
    fn overflow_wraps_saturates_or_fails() {
        let u8f = Field {
            signed: false,
            bits: 8,
        };
        let i8f = Field {
            signed: true,
            bits: 8,
        };
        let i64f = Field {
            signed: true,
            bits: 64,
        };
        let u63 = Field {
            signed: false,
            bits: 63,
        };
        assert_eq!(u8f.settle(256, Overflow::Wrap), Some(0));
        assert_eq!(u8f.settle(-1, Overflow::Wrap), Some(255));
        assert_eq!(u8f.settle(300, Overflow::Sat), Some(255));
        assert_eq!(u8f.settle(-3, Overflow::Sat), Some(0));
        assert_eq!(u8f.settle(256, Overflow::Fail), None);
        assert_eq!(u8f.settle(u8f.set_value(-1), Overflow::Sat), Some(255));
        assert_eq!(i8f.settle(128, Overflow::Wrap), Some(-128));
        assert_eq!(i8f.settle(-129, Overflow::Wrap), Some(127));
        assert_eq!(i8f.settle(1000, Overflow::Sat), Some(127));
        assert_eq!(i8f.settle(-1000, Overflow::Sat), Some(-128));
        assert_eq!(i8f.settle(127, Overflow::Fail), Some(127));
        let big = i128::from(i64::MAX) + 1;
        assert_eq!(i64f.settle(big, Overflow::Wrap), Some(i64::MIN));
        assert_eq!(i64f.settle(big, Overflow::Sat), Some(i64::MAX));
        assert_eq!(i64f.settle(big, Overflow::Fail), None);
        assert_eq!(
            u63.settle(u63.set_value(-1), Overflow::Wrap),
            Some(i64::MAX)
        );
        assert_eq!(
            u63.settle(i128::from(i64::MAX), Overflow::Fail),
            Some(i64::MAX)
        );
    }
}
