//! [`Hash`]: a map of fields to values (HSET, HGET, ...), in Redis's two
//! representations.
//!
//! A small hash is *packed* (Redis's "listpack"): one byte buffer holding field,
//! value, field, value, ... in insertion order, each prefixed by its length. It
//! stays packed while it has at most [`Limits::entries`] fields and no field or
//! value is longer than [`Limits::value`] bytes; the first insert beyond either
//! turns it into a *table* for good, as in Redis.
//!
//! The table is a chained hash table with a power-of-two bucket array, so HSCAN can
//! walk it with Redis's reverse-binary cursor: a field present for a whole scan is
//! returned at least once however the table grows or shrinks between calls. Its
//! entries are 32-byte slots holding field and value together, inline when they
//! fit in 25 bytes: a million short fields take less memory than in Redis.
//!
//! Nothing here knows replies or error text: the hash command family does.

use super::Limits;

/// A hash value.
#[derive(Debug, Clone)]
pub struct Hash {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    /// Length-prefixed field, value, ... in insertion order, exactly as long as
    /// its contents. The count is not stored: counting at most a few hundred
    /// items is cheap, and leaving it out keeps a hash at 16 bytes, small
    /// enough to sit in the key's `Value` without a box of its own.
    Packed(Box<[u8]>),
    Table(Box<Table>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

/// Why HINCRBY could not add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrError {
    /// The field's value is not a 64-bit integer.
    NotInteger,
    /// The sum does not fit in 64 bits.
    Overflow,
}

impl Hash {
    /// An empty, packed hash.
    pub fn new() -> Self {
        Hash {
            repr: Repr::Packed(Box::default()),
        }
    }

    /// Redis's name for the representation (`OBJECT ENCODING`).
    pub fn encoding_name(&self) -> &'static str {
        match self.repr {
            Repr::Packed(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(buf) => packed_len(buf),
            Repr::Table(t) => t.len,
        }
    }

    /// Whether there is no field.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Packed(buf) => packed_find(buf, field).map(|at| &buf[at.value.clone()]),
            Repr::Table(t) => t.get(field),
        }
    }

    /// Whether `field` exists.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Length of the value of `field`, 0 when missing (HSTRLEN).
    pub fn strlen(&self, field: &[u8]) -> usize {
        self.get(field).map_or(0, <[u8]>::len)
    }

    /// Sets `field` to `value`; true if the field is new. Converts to a table
    /// first when the pair would break `limits`.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        if field.len() > limits.value || value.len() > limits.value {
            self.convert();
        }
        let added = match &mut self.repr {
            Repr::Packed(buf) => edit(buf, |buf| packed_set(buf, field, value)),
            Repr::Table(t) => t.set(field, value),
        };
        if self.len() > limits.entries {
            self.convert();
        }
        added
    }

    /// Sets every pair in order (HSET with many fields) and returns how many
    /// fields were new. A packed hash grows once for all of them, not once per
    /// pair, which keeps the heap from fragmenting.
    pub fn set_many<'a>(
        &mut self,
        pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
        limits: Limits,
    ) -> usize {
        if let Repr::Packed(buf) = &mut self.repr {
            // When every pair fits the limits, the buffer grows once for all of
            // them, not once per pair, which keeps the heap from fragmenting.
            let (mut room, mut count, mut fits) = (0usize, packed_len(buf), true);
            for (f, v) in pairs.clone() {
                room =
                    room.saturating_add(len_size(f.len()) + f.len() + len_size(v.len()) + v.len());
                count += 1;
                fits &= f.len() <= limits.value && v.len() <= limits.value;
            }
            if fits && count <= limits.entries {
                return edit(buf, |buf| {
                    buf.reserve_exact(room);
                    pairs.filter(|(f, v)| packed_set(buf, f, v)).count()
                });
            }
        }
        pairs.filter(|(f, v)| self.set(f, v, limits)).count()
    }

    /// Sets `field` only if it does not exist; true if it was set (HSETNX).
    pub fn set_nx(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        !self.contains(field) && self.set(field, value, limits)
    }

    /// Removes `field`; true if it existed. A table never goes back to packed.
    pub fn delete(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(buf) => match packed_find(buf, field) {
                Some(at) => {
                    edit(buf, |buf| buf.drain(at.start..at.value.end).for_each(drop));
                    true
                }
                None => false,
            },
            Repr::Table(t) => t.delete(field),
        }
    }

    /// Adds `by` to the integer value of `field` (0 when missing) and returns the
    /// new value (HINCRBY).
    pub fn incr_by(&mut self, field: &[u8], by: i64, limits: Limits) -> Result<i64, IncrError> {
        let current = match self.get(field) {
            None => 0,
            Some(v) => crate::protocol::parse_i64(v).ok_or(IncrError::NotInteger)?,
        };
        let next = current.checked_add(by).ok_or(IncrError::Overflow)?;
        let mut text = itoa::Buffer::new();
        self.set(field, text.format(next).as_bytes(), limits);
        Ok(next)
    }

    /// HINCRBYFLOAT: `add` gets the current value of `field` (`None` when
    /// missing) and returns the new value's text, or why it cannot; the new text
    /// is stored and returned. The sum is the caller's, so that HINCRBYFLOAT and
    /// INCRBYFLOAT add and print numbers the same way.
    pub fn incr_by_float<E>(
        &mut self,
        field: &[u8],
        limits: Limits,
        add: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        let next = add(self.get(field))?;
        self.set(field, &next, limits);
        Ok(next)
    }

    /// Every field and value, in Redis's order (packed: insertion order).
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Packed(buf) => Iter(IterRepr::Packed { buf, pos: 0 }),
            Repr::Table(t) => Iter(IterRepr::Table {
                table: t,
                bucket: 0,
                slot: NONE,
            }),
        }
    }

    /// One HSCAN step from `cursor`: calls `emit` for the fields visited (about
    /// `count`; a packed hash gives everything at once) and returns the next
    /// cursor, 0 when the scan is over.
    pub fn scan(&self, cursor: u64, count: usize, mut emit: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Packed(_) => {
                for (f, v) in self.iter() {
                    emit(f, v);
                }
                0
            }
            Repr::Table(t) => t.scan(cursor, count, emit),
        }
    }

    /// Random fields for HRANDFIELD: `count` distinct ones (all of them, in
    /// order, when `count` is at least the size) when `distinct`, else `count`
    /// picks that may repeat. The caller bounds `count`.
    pub fn random_pairs(
        &self,
        count: usize,
        distinct: bool,
        rng: &mut fastrand::Rng,
    ) -> Vec<(&[u8], &[u8])> {
        let len = self.len();
        if len == 0 || count == 0 {
            return Vec::new();
        }
        if !distinct {
            return (0..count).filter_map(|_| self.random_pair(rng)).collect();
        }
        if count >= len {
            return self.iter().collect();
        }
        if count.saturating_mul(3) > len {
            // Many of them: shuffle a copy partly and keep the first `count`.
            let mut all: Vec<_> = self.iter().collect();
            for i in 0..count {
                let j = rng.usize(i..all.len());
                all.swap(i, j);
            }
            all.truncate(count);
            return all;
        }
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let Some(pair) = self.random_pair(rng) else {
                break;
            };
            if seen.insert(pair.0) {
                out.push(pair);
            }
        }
        out
    }

    /// One field and its value, uniformly at random.
    fn random_pair(&self, rng: &mut fastrand::Rng) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Packed(buf) => {
                let n = rng.usize(0..packed_len(buf).max(1));
                self.iter().nth(n)
            }
            Repr::Table(t) => t.random_pair(rng),
        }
    }

    /// Turns a packed hash into a table (no-op for a table).
    fn convert(&mut self) {
        if let Repr::Packed(_) = self.repr {
            let mut table = Table::with_buckets(bucket_count(self.len()));
            for (f, v) in self.iter() {
                table.set(f, v);
            }
            self.repr = Repr::Table(Box::new(table));
        }
    }
}

/// Changes a packed buffer as a `Vec`; it is stored back exactly as long as
/// its contents (one reallocation, as Redis reallocates a listpack).
fn edit<R>(buf: &mut Box<[u8]>, change: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut v = std::mem::take(buf).into_vec();
    let out = change(&mut v);
    *buf = v.into_boxed_slice();
    out
}

/// Sets `field` to `value` in a packed buffer; true if the field is new.
fn packed_set(buf: &mut Vec<u8>, field: &[u8], value: &[u8]) -> bool {
    match packed_find(buf, field) {
        Some(at) => {
            let mut encoded = Vec::with_capacity(value.len() + 5);
            put_len(&mut encoded, value.len());
            encoded.extend_from_slice(value);
            buf.splice(at.value_len_start..at.value.end, encoded);
            false
        }
        None => {
            // Exactly the room needed (none wasted) unless the caller reserved.
            buf.reserve_exact(
                len_size(field.len()) + field.len() + len_size(value.len()) + value.len(),
            );
            put_len(buf, field.len());
            buf.extend_from_slice(field);
            put_len(buf, value.len());
            buf.extend_from_slice(value);
            true
        }
    }
}

/// Iterator over a hash's fields and values.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    /// Over a packed buffer, from `pos`.
    Packed { buf: &'a [u8], pos: usize },
    /// Over a table, bucket by bucket.
    Table {
        table: &'a Table,
        bucket: usize,
        slot: u32,
    },
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Packed { buf, pos } => {
                let (field, after) = read_item(buf, *pos)?;
                let (value, after) = read_item(buf, after)?;
                *pos = after;
                Some((&buf[field], &buf[value]))
            }
            IterRepr::Table {
                table,
                bucket,
                slot,
            } => {
                while *slot == NONE {
                    *slot = *table.heads.get(*bucket)?;
                    *bucket += 1;
                }
                let s = table.slots.get(*slot as usize)?;
                *slot = s.next();
                s.pair()
            }
        }
    }
}

// ---- packed representation ----

/// Where a field's entry lies in a packed buffer.
struct Found {
    /// Start of the field's length prefix.
    start: usize,
    /// Start of the value's length prefix.
    value_len_start: usize,
    /// The value's bytes.
    value: std::ops::Range<usize>,
}

/// Appends `n` as a LEB128 varint (one byte below 128).
fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Bytes [`put_len`] writes for `n`.
fn len_size(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// Number of pairs in a packed buffer.
fn packed_len(buf: &[u8]) -> usize {
    let (mut items, mut pos) = (0, 0);
    while let Some((_, next)) = read_item(buf, pos) {
        items += 1;
        pos = next;
    }
    items / 2
}

/// The item at `pos` (its byte range) and the position after it.
fn read_item(buf: &[u8], mut pos: usize) -> Option<(std::ops::Range<usize>, usize)> {
    let mut n = 0usize;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(pos)?;
        pos += 1;
        n |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = pos.checked_add(n).filter(|&e| e <= buf.len())?;
    Some((pos..end, end))
}

fn packed_find(buf: &[u8], field: &[u8]) -> Option<Found> {
    let mut pos = 0;
    while pos < buf.len() {
        let (f, after_field) = read_item(buf, pos)?;
        let (v, after_value) = read_item(buf, after_field)?;
        if buf.get(f) == Some(field) {
            return Some(Found {
                start: pos,
                value_len_start: after_field,
                value: v,
            });
        }
        pos = after_value;
    }
    None
}

// ---- table representation ----

/// "No slot": the end of a chain or of the free list.
const NONE: u32 = u32::MAX;

/// Field and value bytes held inline in a slot.
const INLINE: usize = 25;

/// The smallest bucket array.
const MIN_BUCKETS: usize = 4;

/// One entry of a table: a field and its value (inline or in one allocation),
/// or a free slot; `next` links the bucket's chain or the free list.
#[derive(Debug, Clone)]
enum Slot {
    Inline {
        next: u32,
        field_len: u8,
        value_len: u8,
        buf: [u8; INLINE],
    },
    Heap {
        next: u32,
        field_len: u32,
        buf: Box<[u8]>,
    },
    Free {
        next: u32,
    },
}

impl Slot {
    fn new(field: &[u8], value: &[u8], next: u32) -> Slot {
        let total = field.len() + value.len();
        match (u8::try_from(field.len()), u8::try_from(value.len())) {
            (Ok(field_len), Ok(value_len)) if total <= INLINE => {
                let mut buf = [0u8; INLINE];
                buf[..field.len()].copy_from_slice(field);
                buf[field.len()..total].copy_from_slice(value);
                Slot::Inline {
                    next,
                    field_len,
                    value_len,
                    buf,
                }
            }
            _ => {
                let mut buf = Vec::with_capacity(total);
                buf.extend_from_slice(field);
                buf.extend_from_slice(value);
                Slot::Heap {
                    next,
                    // A field is a request argument: far below 4 GiB.
                    field_len: u32::try_from(field.len()).unwrap_or(u32::MAX),
                    buf: buf.into_boxed_slice(),
                }
            }
        }
    }

    fn next(&self) -> u32 {
        match self {
            Slot::Inline { next, .. } | Slot::Heap { next, .. } | Slot::Free { next } => *next,
        }
    }

    fn set_next(&mut self, to: u32) {
        match self {
            Slot::Inline { next, .. } | Slot::Heap { next, .. } | Slot::Free { next } => *next = to,
        }
    }

    fn pair(&self) -> Option<(&[u8], &[u8])> {
        match self {
            Slot::Inline {
                field_len,
                value_len,
                buf,
                ..
            } => {
                let f = usize::from(*field_len);
                let v = f + usize::from(*value_len);
                Some((buf.get(..f)?, buf.get(f..v)?))
            }
            Slot::Heap { field_len, buf, .. } => {
                let split = (*field_len as usize).min(buf.len());
                Some(buf.split_at(split))
            }
            Slot::Free { .. } => None,
        }
    }

    fn field(&self) -> Option<&[u8]> {
        self.pair().map(|(f, _)| f)
    }
}

/// A chained hash table: `heads[bucket]` is the first slot of the bucket's
/// chain. Free slots are reused; when more than half the slots are free they are
/// compacted away.
#[derive(Clone)]
struct Table {
    heads: Vec<u32>,
    slots: Vec<Slot>,
    free: u32,
    len: usize,
    hasher: ahash::RandomState,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len)
            .field("buckets", &self.heads.len())
            .finish()
    }
}

/// The bucket count for `n` fields: the power of two at or above it.
fn bucket_count(n: usize) -> usize {
    n.max(MIN_BUCKETS)
        .checked_next_power_of_two()
        .unwrap_or(1 << (usize::BITS - 1))
}

impl Table {
    fn with_buckets(n: usize) -> Table {
        Table {
            heads: vec![NONE; n],
            slots: Vec::new(),
            free: NONE,
            len: 0,
            hasher: ahash::RandomState::new(),
        }
    }

    fn bucket_of(&self, field: &[u8]) -> usize {
        (self.hasher.hash_one(field) as usize) & (self.heads.len() - 1)
    }

    /// The slot holding `field`.
    fn find(&self, field: &[u8]) -> Option<u32> {
        let mut at = *self.heads.get(self.bucket_of(field))?;
        while let Some(slot) = self.slots.get(at as usize) {
            if slot.field() == Some(field) {
                return Some(at);
            }
            at = slot.next();
        }
        None
    }

    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let at = self.find(field)?;
        self.slots.get(at as usize)?.pair().map(|(_, v)| v)
    }

    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Some(at) = self.find(field) {
            if let Some(slot) = self.slots.get_mut(at as usize) {
                *slot = Slot::new(field, value, slot.next());
            }
            return false;
        }
        if self.len >= self.heads.len() {
            self.rebuild(bucket_count(self.len + 1));
        }
        let bucket = self.bucket_of(field);
        let slot = Slot::new(field, value, self.heads[bucket]);
        let at = if self.free != NONE {
            let at = self.free;
            if let Some(free) = self.slots.get_mut(at as usize) {
                self.free = free.next();
                *free = slot;
            }
            at
        } else {
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        };
        self.heads[bucket] = at;
        self.len += 1;
        true
    }

    fn delete(&mut self, field: &[u8]) -> bool {
        let bucket = self.bucket_of(field);
        let mut prev = NONE;
        let mut at = self.heads[bucket];
        while let Some(slot) = self.slots.get(at as usize) {
            let next = slot.next();
            if slot.field() == Some(field) {
                match self.slots.get_mut(prev as usize) {
                    Some(p) => p.set_next(next),
                    None => self.heads[bucket] = next,
                }
                self.slots[at as usize] = Slot::Free { next: self.free };
                self.free = at;
                self.len -= 1;
                self.after_delete();
                return true;
            }
            prev = at;
            at = next;
        }
        false
    }

    /// Shrinks the bucket array below 10% use (as Redis) and drops free slots
    /// once they outnumber the fields.
    fn after_delete(&mut self) {
        let buckets = self.heads.len();
        if buckets > MIN_BUCKETS && self.len * 10 < buckets {
            self.rebuild(bucket_count(self.len));
        } else if self.slots.len() > 2 * self.len + 16 {
            self.rebuild(buckets);
        }
    }

    /// Rebuilds the chains over `buckets` buckets, compacting the slots.
    fn rebuild(&mut self, buckets: usize) {
        let old = std::mem::take(&mut self.slots);
        self.heads = vec![NONE; buckets];
        self.slots = Vec::with_capacity(self.len);
        self.free = NONE;
        for mut slot in old {
            let Some(field) = slot.field() else { continue };
            let bucket = self.bucket_of(field);
            slot.set_next(self.heads[bucket]);
            self.heads[bucket] = self.slots.len() as u32;
            self.slots.push(slot);
        }
    }

    /// Redis's reverse-binary cursor: visits bucket `cursor & mask`, then the
    /// next cursor in bit-reversed order, until about `count` fields (or
    /// `10 * count` empty buckets) are seen.
    fn scan(&self, mut cursor: u64, count: usize, mut emit: impl FnMut(&[u8], &[u8])) -> u64 {
        let mask = (self.heads.len() - 1) as u64;
        let (mut seen, mut empty) = (0usize, 0usize);
        let max_empty = count.saturating_mul(10);
        loop {
            let mut at = self.heads[(cursor & mask) as usize];
            if at == NONE {
                empty += 1;
            }
            while let Some(slot) = self.slots.get(at as usize) {
                if let Some((f, v)) = slot.pair() {
                    emit(f, v);
                    seen += 1;
                }
                at = slot.next();
            }
            cursor = next_cursor(cursor, mask);
            if cursor == 0 || seen >= count || empty >= max_empty {
                return cursor;
            }
        }
    }

    fn random_pair(&self, rng: &mut fastrand::Rng) -> Option<(&[u8], &[u8])> {
        if self.len == 0 {
            return None;
        }
        // At least a third of the slots are in use (see `after_delete`).
        for _ in 0..64 {
            if let Some(pair) = self.slots.get(rng.usize(0..self.slots.len()))?.pair() {
                return Some(pair);
            }
        }
        let n = rng.usize(0..self.len);
        self.slots.iter().filter_map(Slot::pair).nth(n)
    }
}

/// The cursor after `cursor` for a table of `mask + 1` buckets: increments the
/// bucket bits in reversed order, so a cursor stays valid when the table doubles
/// or halves between calls.
fn next_cursor(cursor: u64, mask: u64) -> u64 {
    let v = (cursor | !mask).reverse_bits();
    v.wrapping_add(1).reverse_bits()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    const SMALL: Limits = Limits {
        entries: 4,
        value: 8,
    };
    const DEFAULT: Limits = Limits {
        entries: 128,
        value: 64,
    };

    fn filled(n: usize, limits: Limits) -> Hash {
        let mut h = Hash::new();
        for i in 0..n {
            h.set(
                format!("f{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                limits,
            );
        }
        h
    }

    #[test]
    fn slots_stay_at_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        assert_eq!(std::mem::size_of::<Hash>(), 16);
    }

    #[test]
    fn stays_packed_up_to_the_entry_limit_then_converts_for_good() {
        let mut h = filled(128, DEFAULT);
        assert_eq!(h.encoding_name(), "listpack");
        assert!(h.set(b"one-more", b"x", DEFAULT));
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.len(), 129);
        for i in 0..128 {
            assert!(h.delete(format!("f{i}").as_bytes()));
        }
        assert!(h.delete(b"one-more"));
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn a_long_field_or_value_converts() {
        let long = [b'x'; 65];
        let mut h = filled(1, DEFAULT);
        h.set(b"ok", &long[..64], DEFAULT);
        assert_eq!(h.encoding_name(), "listpack");
        h.set(b"ok", &long, DEFAULT);
        assert_eq!(h.encoding_name(), "hashtable");
        let mut h = filled(1, DEFAULT);
        h.set(&long, b"v", DEFAULT);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.get(&long), Some(&b"v"[..]));
        // Overwriting an existing field with a long value converts too.
        let mut h = filled(2, DEFAULT);
        assert!(!h.set(b"f0", &long, DEFAULT));
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.get(b"f0"), Some(&long[..]));
    }

    #[test]
    fn zero_entry_limit_makes_every_hash_a_table() {
        let none = Limits {
            entries: 0,
            value: 64,
        };
        let h = filled(1, none);
        assert_eq!(h.encoding_name(), "hashtable");
    }

    #[test]
    fn packed_keeps_insertion_order_and_updates_in_place() {
        let mut h = Hash::new();
        assert!(h.set(b"b", b"1", DEFAULT));
        assert!(h.set(b"a", b"2", DEFAULT));
        assert!(!h.set(b"b", b"a longer value", DEFAULT));
        assert!(h.set(b"c", b"", DEFAULT));
        let pairs: Vec<_> = h.iter().collect();
        assert_eq!(
            pairs,
            [
                (&b"b"[..], &b"a longer value"[..]),
                (b"a", b"2"),
                (b"c", b"")
            ]
        );
        assert!(h.delete(b"a"));
        assert!(!h.delete(b"a"));
        assert_eq!(h.iter().map(|p| p.0).collect::<Vec<_>>(), [b"b", b"c"]);
        assert_eq!(h.strlen(b"b"), 14);
        assert_eq!(h.strlen(b"zz"), 0);
        assert!(h.contains(b"c"));
    }

    #[test]
    fn long_items_use_multi_byte_lengths_in_the_packed_form() {
        let big = Limits {
            entries: 10,
            value: 100_000,
        };
        let v = vec![7u8; 70_000];
        let mut h = Hash::new();
        h.set(b"a", &v, big);
        h.set(&v[..300], b"b", big);
        assert_eq!(h.encoding_name(), "listpack");
        assert_eq!(h.get(b"a"), Some(&v[..]));
        assert_eq!(h.get(&v[..300]), Some(&b"b"[..]));
    }

    #[test]
    fn length_prefixes_are_sized_exactly() {
        for n in [0, 1, 127, 128, 16_383, 16_384, 1 << 30] {
            let mut buf = Vec::new();
            put_len(&mut buf, n);
            assert_eq!(buf.len(), len_size(n), "{n}");
        }
    }

    #[test]
    fn set_many_counts_new_fields() {
        let mut h = filled(2, DEFAULT);
        let pairs: [(&[u8], &[u8]); 3] = [(b"f0", b"x"), (b"new", b"y"), (b"new", b"z")];
        assert_eq!(h.set_many(pairs.into_iter(), DEFAULT), 1);
        assert_eq!(h.get(b"new"), Some(&b"z"[..]));
        assert_eq!(h.get(b"f0"), Some(&b"x"[..]));
        assert_eq!(h.encoding_name(), "listpack");
        // Crossing the limit in the middle converts and goes on.
        let many: Vec<(Vec<u8>, Vec<u8>)> = (0..10)
            .map(|i| (format!("m{i}").into_bytes(), b"v".to_vec()))
            .collect();
        let added = h.set_many(many.iter().map(|(f, v)| (&f[..], &v[..])), SMALL);
        assert_eq!(added, 10);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.len(), 13);
    }

    #[test]
    fn set_nx_does_not_overwrite() {
        let mut h = Hash::new();
        assert!(h.set_nx(b"f", b"1", DEFAULT));
        assert!(!h.set_nx(b"f", b"2", DEFAULT));
        assert_eq!(h.get(b"f"), Some(&b"1"[..]));
    }

    #[test]
    fn incr_by_checks_the_value_and_overflow() {
        let mut h = Hash::new();
        assert_eq!(h.incr_by(b"n", 5, DEFAULT), Ok(5));
        assert_eq!(h.incr_by(b"n", -7, DEFAULT), Ok(-2));
        assert_eq!(h.get(b"n"), Some(&b"-2"[..]));
        h.set(b"s", b" 1", DEFAULT);
        assert_eq!(h.incr_by(b"s", 1, DEFAULT), Err(IncrError::NotInteger));
        h.set(b"m", b"9223372036854775807", DEFAULT);
        assert_eq!(h.incr_by(b"m", 1, DEFAULT), Err(IncrError::Overflow));
        assert_eq!(h.get(b"m"), Some(&b"9223372036854775807"[..]));
    }

    #[test]
    fn incr_by_float_stores_what_the_adder_returns() {
        let mut h = Hash::new();
        let r: Result<_, ()> = h.incr_by_float(b"f", DEFAULT, |cur| {
            assert_eq!(cur, None);
            Ok(b"1.5".to_vec())
        });
        assert_eq!(r, Ok(b"1.5".to_vec()));
        let r: Result<Vec<u8>, &str> = h.incr_by_float(b"f", DEFAULT, |cur| {
            assert_eq!(cur, Some(&b"1.5"[..]));
            Err("no")
        });
        assert_eq!(r, Err("no"));
        assert_eq!(h.get(b"f"), Some(&b"1.5"[..]));
    }

    #[test]
    fn random_pairs_are_distinct_for_a_positive_count() {
        let mut rng = fastrand::Rng::with_seed(7);
        for n in [3, 50, 1000] {
            let h = filled(n, DEFAULT);
            for count in [1, 2, n / 3, n / 2, n - 1, n, n + 5] {
                let got = h.random_pairs(count, true, &mut rng);
                assert_eq!(got.len(), count.min(n));
                let fields: HashSet<_> = got.iter().map(|p| p.0).collect();
                assert_eq!(fields.len(), got.len());
                for (f, v) in got {
                    assert_eq!(h.get(f), Some(v));
                }
            }
            let repeats = h.random_pairs(3 * n, false, &mut rng);
            assert_eq!(repeats.len(), 3 * n);
            assert!(repeats.iter().all(|(f, v)| h.get(f) == Some(*v)));
        }
        assert!(Hash::new().random_pairs(5, false, &mut rng).is_empty());
    }

    #[test]
    fn packed_scan_returns_everything_with_cursor_zero() {
        let h = filled(5, DEFAULT);
        let mut n = 0;
        assert_eq!(h.scan(0, 1, |_, _| n += 1), 0);
        assert_eq!(n, 5);
    }

    /// Scans to the end, applying `between` after each step.
    fn full_scan(h: &mut Hash, count: usize, mut between: impl FnMut(&mut Hash)) -> Vec<Vec<u8>> {
        let mut seen = Vec::new();
        let mut cursor = 0;
        for _ in 0..1_000_000 {
            cursor = h.scan(cursor, count, |f, _| seen.push(f.to_vec()));
            if cursor == 0 {
                return seen;
            }
            between(h);
        }
        panic!("scan did not end");
    }

    #[test]
    fn table_scan_sees_every_field_while_the_table_grows_and_shrinks() {
        let mut h = filled(1000, DEFAULT);
        let all: HashSet<Vec<u8>> = h.iter().map(|p| p.0.to_vec()).collect();
        let seen: HashSet<_> = full_scan(&mut h, 10, |_| {}).into_iter().collect();
        assert_eq!(seen, all);
        // Growing between steps.
        let mut extra = 0;
        let seen: HashSet<_> = full_scan(&mut h, 7, |h| {
            for _ in 0..50 {
                h.set(format!("x{extra}").as_bytes(), b"v", DEFAULT);
                extra += 1;
            }
        })
        .into_iter()
        .collect();
        assert!(all.is_subset(&seen));
        // Shrinking between steps: the original fields stay, the rest go.
        let mut gone = 0;
        let seen: HashSet<_> = full_scan(&mut h, 7, |h| {
            for _ in 0..200 {
                h.delete(format!("x{gone}").as_bytes());
                gone += 1;
            }
        })
        .into_iter()
        .collect();
        assert!(all.is_subset(&seen));
    }

    #[test]
    fn the_cursor_walks_every_bucket_once() {
        let mask = 15;
        let mut cursor = 0;
        let mut visited = HashSet::new();
        loop {
            assert!(visited.insert(cursor & mask));
            cursor = next_cursor(cursor, mask);
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(visited.len(), 16);
    }

    /// Random operations against a `HashMap`, with thresholds small enough that
    /// conversions happen often.
    #[test]
    fn behaves_like_a_map_under_random_operations() {
        for seed in 0..40 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let limits = if seed % 2 == 0 { SMALL } else { DEFAULT };
            let mut h = Hash::new();
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut converted = false;
            for _ in 0..2000 {
                let field = format!("f{}", rng.usize(0..300)).into_bytes();
                let value = vec![b'v'; rng.usize(0..12)];
                match rng.usize(0..6) {
                    0 | 1 => {
                        let new = h.set(&field, &value, limits);
                        assert_eq!(new, model.insert(field.clone(), value).is_none());
                    }
                    2 => assert_eq!(h.delete(&field), model.remove(&field).is_some()),
                    3 => {
                        let by = rng.i64(-5..5);
                        let want = match model.get(&field) {
                            None => Ok(by),
                            Some(v) => std::str::from_utf8(v)
                                .ok()
                                .and_then(|s| s.parse::<i64>().ok())
                                .map(|n| n + by)
                                .ok_or(IncrError::NotInteger),
                        };
                        assert_eq!(h.incr_by(&field, by, limits), want);
                        if let Ok(n) = want {
                            model.insert(field.clone(), n.to_string().into_bytes());
                        }
                    }
                    _ => assert_eq!(h.get(&field), model.get(&field).map(|v| &v[..])),
                }
                assert_eq!(h.len(), model.len());
                if h.encoding_name() == "hashtable" {
                    converted = true;
                } else {
                    assert!(!converted, "a table went back to packed");
                    assert!(h.len() <= limits.entries);
                    assert!(h
                        .iter()
                        .all(|(f, v)| f.len() <= limits.value && v.len() <= limits.value));
                }
            }
            let listed: HashMap<Vec<u8>, Vec<u8>> =
                h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            assert_eq!(listed, model);
            let scanned: HashSet<_> = full_scan(&mut h, 5, |_| {}).into_iter().collect();
            assert_eq!(scanned, model.keys().cloned().collect::<HashSet<_>>());
        }
    }
}
