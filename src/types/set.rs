//! [`Set`]: an unordered collection of distinct byte strings, in the three
//! representations Redis 7.2 uses, chosen and converted as it does:
//!
//! - **intset** while every member is an integer in canonical form (what
//!   Redis's `string2ll` accepts: no `+`, no leading zero, no `-0`, fits an i64)
//!   and there are at most `set-max-intset-entries` of them. The integers are
//!   kept sorted, each in the narrowest of 16, 32 or 64 bits that holds them
//!   all, in one allocation: a small set of small numbers costs a few bytes.
//! - **listpack** while there are at most `set-max-listpack-entries` members of
//!   at most `set-max-listpack-value` bytes each, kept in insertion order.
//! - **hashtable** otherwise: members in a vector (so a random member is one
//!   index away) indexed by a keyed hash table.
//!
//! An intset that receives a non-integer becomes a listpack when the result
//! would be small enough, else a hashtable; a listpack that outgrows its limits
//! becomes a hashtable. Nothing converts back, except what SPOP rebuilds and what
//! the multi-set operations ([`union`], [`difference`], [`intersection_set`])
//! produce, which start small and grow exactly as Redis's do, so the members of
//! a small result come in the same order as Redis's.
//!
//! Nothing here knows commands or replies.

use std::hash::Hasher;

use hashbrown::hash_table::Entry as TableEntry;
use hashbrown::HashTable;

use super::Encodings;
use crate::types::CompactBytes;

/// The thresholds that decide a set's representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetLimits {
    /// `set-max-intset-entries`.
    pub intset_entries: usize,
    /// `set-max-listpack-entries`.
    pub entries: usize,
    /// `set-max-listpack-value`.
    pub value: usize,
}

impl Default for SetLimits {
    /// Redis 7's defaults.
    fn default() -> Self {
        SetLimits {
            intset_entries: 512,
            entries: 128,
            value: 64,
        }
    }
}

impl SetLimits {
    /// The thresholds in force.
    pub fn of(encodings: &Encodings) -> Self {
        let packed = encodings.set();
        SetLimits {
            intset_entries: encodings.set_intset(),
            entries: packed.entries,
            value: packed.value,
        }
    }

    /// Most members an intset holds: Redis caps the setting at 2^30.
    fn intset_max(&self) -> usize {
        self.intset_entries.min(1 << 30)
    }
}

/// `m` as an integer if it is one in canonical form (Redis's `string2ll`).
pub fn canonical_int(m: &[u8]) -> Option<i64> {
    if m.is_empty() || m.len() > 20 {
        return None;
    }
    let v: i64 = std::str::from_utf8(m).ok()?.parse().ok()?;
    let mut buf = itoa::Buffer::new();
    (buf.format(v).as_bytes() == m).then_some(v)
}

/// A member as a set holds it: an integer of an intset, or bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRef<'a> {
    /// An intset's member.
    Int(i64),
    /// A listpack's or hashtable's member.
    Bytes(&'a [u8]),
}

impl MemberRef<'_> {
    /// Runs `f` on the member's bytes (an integer in decimal).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            MemberRef::Int(v) => f(itoa::Buffer::new().format(*v).as_bytes()),
            MemberRef::Bytes(b) => f(b),
        }
    }

    /// An owned copy of the member's bytes.
    pub fn to_compact(&self) -> CompactBytes {
        self.with_bytes(CompactBytes::from_slice)
    }

    /// The member as an integer if it is one in canonical form.
    fn as_int(&self) -> Option<i64> {
        match self {
            MemberRef::Int(v) => Some(*v),
            MemberRef::Bytes(b) => canonical_int(b),
        }
    }
}

/// A set of byte strings; see the module documentation.
#[derive(Debug, Clone)]
pub struct Set(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// An intset: width, then the members, exactly as long as they are.
    Ints(Box<[u8]>),
    /// A listpack or a hashtable, behind one box so that a set is 16 bytes and
    /// sits in the key's `Value` itself: a small set of integers is then one
    /// allocation.
    Other(Box<Other>),
}

#[derive(Debug, Clone)]
enum Other {
    Pack(Vec<CompactBytes>),
    Table(Table),
}

/// A set's representation, borrowed.
enum View<'a> {
    Ints,
    Pack(&'a Vec<CompactBytes>),
    Table(&'a Table),
}

/// A set's representation, borrowed mutably.
enum ViewMut<'a> {
    Ints,
    Pack(&'a mut Vec<CompactBytes>),
    Table(&'a mut Table),
}

impl Default for Set {
    /// An empty intset, as Redis starts a set it builds.
    fn default() -> Self {
        Set(ints_repr(2, &[]))
    }
}

impl Set {
    fn view(&self) -> View<'_> {
        match &self.0 {
            Repr::Ints(_) => View::Ints,
            Repr::Other(o) => match &**o {
                Other::Pack(v) => View::Pack(v),
                Other::Table(t) => View::Table(t),
            },
        }
    }

    fn view_mut(&mut self) -> ViewMut<'_> {
        match &mut self.0 {
            Repr::Ints(_) => ViewMut::Ints,
            Repr::Other(o) => match &mut **o {
                Other::Pack(v) => ViewMut::Pack(v),
                Other::Table(t) => ViewMut::Table(t),
            },
        }
    }

    /// An empty set in the packed (listpack) representation.
    pub fn packed() -> Self {
        Set(Repr::Other(Box::new(Other::Pack(Vec::new()))))
    }

    /// Prepares a set for `hint` more members, the first of them `first`, as
    /// Redis's SADD does: a new (empty) set starts as an intset if `first` is an
    /// integer and `hint` fits one, else as a listpack if `hint` fits one, else
    /// as a hashtable; an existing intset or listpack that `hint` members
    /// (duplicates counted) would overflow becomes a hashtable at once.
    pub fn prepare(&mut self, first: &[u8], hint: usize, limits: &SetLimits) {
        if self.is_empty() {
            *self = if canonical_int(first).is_some() && hint <= limits.intset_entries {
                Set::default()
            } else if hint <= limits.entries {
                Set::packed()
            } else {
                Set(Repr::Other(Box::new(Other::Table(Table::default()))))
            };
            return;
        }
        let over = match self.view() {
            View::Pack(_) => hint > limits.entries,
            View::Ints => hint > limits.intset_entries,
            View::Table(_) => false,
        };
        if over {
            self.convert_to_table();
        }
    }

    /// `"intset"`, `"listpack"` or `"hashtable"`, as OBJECT ENCODING names it.
    pub fn encoding_name(&self) -> &'static str {
        match self.view() {
            View::Ints => "intset",
            View::Pack(_) => "listpack",
            View::Table(_) => "hashtable",
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self.view() {
            View::Ints => self.ints().map_or(0, |s| s.len()),
            View::Pack(v) => v.len(),
            View::Table(t) => t.members.len(),
        }
    }

    /// Whether the set has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `m` is a member.
    pub fn contains(&self, m: &[u8]) -> bool {
        match self.view() {
            View::Ints => canonical_int(m).is_some_and(|v| self.has_int(v)),
            View::Pack(v) => v.iter().any(|x| x.as_slice() == m),
            View::Table(t) => t.find(m).is_some(),
        }
    }

    fn contains_ref(&self, m: MemberRef<'_>) -> bool {
        match (self.view(), m) {
            (View::Ints, MemberRef::Int(v)) => self.has_int(v),
            (_, m) => m.with_bytes(|b| self.contains(b)),
        }
    }

    /// Adds `m`; false if it was already a member. Converts as Redis does.
    pub fn add(&mut self, m: &[u8], limits: &SetLimits) -> bool {
        self.add_ref(MemberRef::Bytes(m), limits)
    }

    /// Adds a member taken from another set.
    pub fn add_ref(&mut self, m: MemberRef<'_>, limits: &SetLimits) -> bool {
        match self.view_mut() {
            ViewMut::Ints => match m.as_int() {
                Some(v) => {
                    let added = self.int_insert(v);
                    if added && self.len() > limits.intset_max() {
                        self.convert_to_table();
                    }
                    added
                }
                None => {
                    let fits_pack = m.with_bytes(|b| {
                        self.ints()
                            .is_some_and(|s| s.fits_pack_with(b.len(), limits))
                    });
                    if fits_pack {
                        self.convert_to_pack();
                    } else {
                        self.convert_to_table();
                    }
                    self.add_ref(m, limits)
                }
            },
            ViewMut::Pack(v) => {
                let (present, fits) = m.with_bytes(|b| {
                    (
                        v.iter().any(|x| x.as_slice() == b),
                        v.len() < limits.entries && b.len() <= limits.value,
                    )
                });
                if present {
                    return false;
                }
                if fits {
                    v.push(m.to_compact());
                } else {
                    self.convert_to_table();
                    if let ViewMut::Table(t) = self.view_mut() {
                        m.with_bytes(|b| t.insert(b));
                    }
                }
                true
            }
            ViewMut::Table(t) => m.with_bytes(|b| t.insert(b)),
        }
    }

    /// Removes `m`; false if it was not a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self.view_mut() {
            ViewMut::Ints => canonical_int(m).is_some_and(|v| self.int_remove(v)),
            ViewMut::Pack(v) => match v.iter().position(|x| x.as_slice() == m) {
                Some(i) => {
                    v.remove(i);
                    true
                }
                None => false,
            },
            ViewMut::Table(t) => match t.find(m) {
                Some(i) => {
                    t.remove_at(i);
                    true
                }
                None => false,
            },
        }
    }

    fn remove_ref(&mut self, m: MemberRef<'_>) -> bool {
        match (self.view_mut(), m) {
            (ViewMut::Ints, MemberRef::Int(v)) => self.int_remove(v),
            (_, m) => m.with_bytes(|b| self.remove(b)),
        }
    }

    /// The members: an intset's ascending, a listpack's in insertion order, a
    /// hashtable's in no particular order.
    pub fn iter(&self) -> Iter<'_> {
        match self.view() {
            View::Ints => Iter::Ints(self.ints().unwrap_or_default(), 0),
            View::Pack(v) => Iter::Slice(v.iter()),
            View::Table(t) => Iter::Slice(t.members.iter()),
        }
    }

    /// The member at `i` in iteration order (`i < len`).
    fn at(&self, i: usize) -> Option<MemberRef<'_>> {
        match self.view() {
            View::Ints => self.ints()?.get(i).map(MemberRef::Int),
            View::Pack(v) => v.get(i).map(|b| MemberRef::Bytes(b)),
            View::Table(t) => t.members.get(i).map(|b| MemberRef::Bytes(b)),
        }
    }

    /// A random member, `None` when empty.
    pub fn random(&self, rng: &mut fastrand::Rng) -> Option<MemberRef<'_>> {
        if self.is_empty() {
            return None;
        }
        self.at(rng.usize(..self.len()))
    }

    /// Removes and returns a random member.
    pub fn pop_random(&mut self, rng: &mut fastrand::Rng) -> Option<CompactBytes> {
        if self.is_empty() {
            return None;
        }
        let i = rng.usize(..self.len());
        match self.view_mut() {
            ViewMut::Ints => {
                let v = self.ints()?.get(i)?;
                self.int_remove(v);
                Some(MemberRef::Int(v).to_compact())
            }
            ViewMut::Pack(v) => Some(v.remove(i)),
            ViewMut::Table(t) => Some(t.remove_at(i)),
        }
    }

    /// Removes and returns `count` random members (`count < len`), as Redis's
    /// SPOP with a count: few against what stays are popped one by one; when
    /// most go, the ones that stay are picked and rebuilt into a new set
    /// (an intset's into an intset, others' into a listpack that grows as
    /// needed), and the popped ones come in the old set's order.
    pub fn pop_many(
        &mut self,
        count: usize,
        limits: &SetLimits,
        rng: &mut fastrand::Rng,
    ) -> Vec<CompactBytes> {
        let len = self.len();
        let count = count.min(len);
        let remaining = len - count;
        if remaining.saturating_mul(5) > count {
            return (0..count).filter_map(|_| self.pop_random(rng)).collect();
        }
        let mut keep = vec![false; len];
        let mut order = pick_distinct(len, remaining, rng);
        if matches!(self.view(), View::Pack(_)) {
            order.sort_unstable();
        }
        let mut kept = match self.view() {
            View::Ints => Set::default(),
            _ => Set::packed(),
        };
        for &i in &order {
            keep[i] = true;
            if let Some(m) = self.at(i) {
                kept.add_ref(m, limits);
            }
        }
        let popped = self
            .iter()
            .zip(&keep)
            .filter(|(_, k)| !**k)
            .map(|(m, _)| m.to_compact())
            .collect();
        *self = kept;
        popped
    }

    /// `count` distinct random members (all of them when `count >= len`), as
    /// SRANDMEMBER with a positive count: the whole set in iteration order, a
    /// listpack's picks in its order, others' in no particular order.
    pub fn random_distinct(&self, count: usize, rng: &mut fastrand::Rng) -> Vec<MemberRef<'_>> {
        let len = self.len();
        if count >= len {
            return self.iter().collect();
        }
        let mut picks = pick_distinct(len, count, rng);
        if matches!(self.view(), View::Pack(_)) {
            picks.sort_unstable();
        }
        picks.into_iter().filter_map(|i| self.at(i)).collect()
    }

    /// `count` random members, repeats allowed (SRANDMEMBER with a negative
    /// count); empty when the set is.
    pub fn random_repeated(&self, count: usize, rng: &mut fastrand::Rng) -> Vec<MemberRef<'_>> {
        if self.is_empty() {
            return Vec::new();
        }
        (0..count).filter_map(|_| self.random(rng)).collect()
    }

    /// One SSCAN step from `cursor`, visiting about `count` members: an intset
    /// or listpack returns every member and cursor 0. A hashtable is walked in
    /// the order of a fixed hash of the members; the cursor is where the next
    /// step starts in that order, so a member present for the whole iteration is
    /// returned however the set changes meanwhile. 0 ends the iteration.
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<MemberRef<'_>>) {
        let View::Table(t) = self.view() else {
            return (0, self.iter().collect());
        };
        let mut ahead: Vec<(u64, &CompactBytes)> = t
            .members
            .iter()
            .map(|m| (scan_position(m), m))
            .filter(|(p, _)| *p >= cursor)
            .collect();
        let count = count.max(1);
        if ahead.len() <= count {
            return (
                0,
                ahead
                    .into_iter()
                    .map(|(_, m)| MemberRef::Bytes(m))
                    .collect(),
            );
        }
        ahead.select_nth_unstable_by_key(count - 1, |(p, _)| *p);
        let last = ahead[count - 1].0;
        // Members sharing the last position go in this step too.
        let more = ahead.iter().any(|(p, _)| *p > last);
        let taken = ahead
            .into_iter()
            .filter(|(p, _)| *p <= last)
            .map(|(_, m)| MemberRef::Bytes(m))
            .collect();
        (if more { last + 1 } else { 0 }, taken)
    }

    fn convert_to_table(&mut self) {
        if matches!(self.view(), View::Table(_)) {
            return;
        }
        let mut t = Table::default();
        t.reserve(self.len() + 1);
        for m in self.iter() {
            m.with_bytes(|b| t.insert(b));
        }
        self.0 = Repr::Other(Box::new(Other::Table(t)));
    }

    fn convert_to_pack(&mut self) {
        if let Some(s) = self.ints() {
            let mut v = Vec::with_capacity(s.len() + 1);
            v.extend(
                (0..s.len())
                    .filter_map(|i| s.get(i))
                    .map(|x| MemberRef::Int(x).to_compact()),
            );
            self.0 = Repr::Other(Box::new(Other::Pack(v)));
        }
    }

    /// If every member is an integer and they fit an intset, becomes one (what
    /// SINTERSTORE does with its result).
    fn convert_to_ints_if_integers(&mut self, limits: &SetLimits) {
        if self.ints().is_some() || self.len() > limits.intset_max() {
            return;
        }
        let mut ints = Set::default();
        for m in self.iter() {
            match m.as_int() {
                Some(v) => {
                    ints.int_insert(v);
                }
                None => return,
            }
        }
        *self = ints;
    }
}

/// Iterator over a set's members; see [`Set::iter`].
pub enum Iter<'a> {
    /// Over an intset, from an index.
    Ints(IntView<'a>, usize),
    /// Over a listpack's or hashtable's members.
    Slice(std::slice::Iter<'a, CompactBytes>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = MemberRef<'a>;

    fn next(&mut self) -> Option<MemberRef<'a>> {
        match self {
            Iter::Ints(s, i) => {
                let v = s.get(*i)?;
                *i += 1;
                Some(MemberRef::Int(v))
            }
            Iter::Slice(it) => it.next().map(|b| MemberRef::Bytes(b)),
        }
    }
}

/// `k` distinct indexes below `n` (`k <= n`), in random order: a partial
/// Fisher-Yates shuffle when `k` is a large part of `n`, else sampling with
/// rejection, so asking for a few of many costs memory for the few.
fn pick_distinct(n: usize, k: usize, rng: &mut fastrand::Rng) -> Vec<usize> {
    let k = k.min(n);
    if k.saturating_mul(3) > n {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = rng.usize(i..n);
            all.swap(i, j);
        }
        all.truncate(k);
        return all;
    }
    let mut seen = hashbrown::HashSet::with_capacity_and_hasher(k, ahash::RandomState::new());
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let i = rng.usize(..n);
        if seen.insert(i) {
            out.push(i);
        }
    }
    out
}

/// A member's place in SSCAN's order: a fixed (unkeyed) hash, so a cursor means
/// the same on every call; never 0, which starts an iteration.
fn scan_position(m: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(m);
    (h.finish() >> 1) + 1
}

/// An intset's representation holding `data`, members of `width` bytes.
fn ints_repr(width: u8, data: &[u8]) -> Repr {
    let mut all = Vec::with_capacity(1 + data.len());
    all.push(width);
    all.extend_from_slice(data);
    Repr::Ints(all.into_boxed_slice())
}

impl Set {
    /// The intset's members, if the set is one.
    fn ints(&self) -> Option<IntView<'_>> {
        match &self.0 {
            Repr::Ints(all) => Some(IntView {
                width: usize::from(all.first().copied().unwrap_or(2).max(1)),
                data: all.get(1..).unwrap_or_default(),
            }),
            _ => None,
        }
    }

    fn has_int(&self, v: i64) -> bool {
        self.ints().is_some_and(|s| s.find(v).is_ok())
    }

    /// Inserts `v` into an intset, widening every member if `v` needs it.
    fn int_insert(&mut self, v: i64) -> bool {
        let Some(s) = self.ints() else {
            return false;
        };
        let Err(at) = s.find(v) else {
            return false;
        };
        let width = if s.len() == 0 {
            width_of(v)
        } else {
            (s.width as u8).max(width_of(v))
        };
        let w = usize::from(width);
        let mut out = Vec::with_capacity((s.len() + 1) * w);
        let mut put = |x: i64| match w {
            2 => out.extend_from_slice(&(x as i16).to_le_bytes()),
            4 => out.extend_from_slice(&(x as i32).to_le_bytes()),
            _ => out.extend_from_slice(&x.to_le_bytes()),
        };
        for i in 0..s.len() {
            if i == at {
                put(v);
            }
            if let Some(x) = s.get(i) {
                put(x);
            }
        }
        if at == s.len() {
            put(v);
        }
        self.0 = ints_repr(width, &out);
        true
    }

    /// Removes `v` from an intset (the width stays, as Redis's does).
    fn int_remove(&mut self, v: i64) -> bool {
        let Some(s) = self.ints() else {
            return false;
        };
        let Ok(at) = s.find(v) else {
            return false;
        };
        let cut = at * s.width;
        let mut out = Vec::with_capacity(s.data.len().saturating_sub(s.width));
        out.extend_from_slice(s.data.get(..cut).unwrap_or_default());
        out.extend_from_slice(s.data.get(cut + s.width..).unwrap_or_default());
        self.0 = ints_repr(s.width as u8, &out);
        true
    }
}

fn width_of(v: i64) -> u8 {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

/// An intset's sorted members, each `width` bytes (2, 4 or 8, the narrowest
/// that holds every member), little-endian.
#[derive(Debug, Clone, Copy)]
pub struct IntView<'a> {
    width: usize,
    data: &'a [u8],
}

impl Default for IntView<'_> {
    fn default() -> Self {
        IntView {
            width: 2,
            data: &[],
        }
    }
}

impl IntView<'_> {
    fn len(&self) -> usize {
        self.data.len() / self.width
    }

    fn get(&self, i: usize) -> Option<i64> {
        let w = self.width;
        let b = self.data.get(i * w..i * w + w)?;
        Some(match *b {
            [a, b] => i64::from(i16::from_le_bytes([a, b])),
            [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => return None,
        })
    }

    /// `Ok(index)` of `v`, or `Err(index)` where it would go.
    fn find(&self, v: i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid) {
                Some(x) if x < v => lo = mid + 1,
                Some(x) if x > v => hi = mid,
                Some(_) => return Ok(mid),
                None => return Err(lo),
            }
        }
        Err(lo)
    }

    /// Whether converting to a listpack and adding a `len`-byte string stays
    /// within the listpack limits (Redis sizes the integers by the longest of
    /// the smallest and the largest in decimal).
    fn fits_pack_with(&self, len: usize, limits: &SetLimits) -> bool {
        let n = self.len();
        let longest = match (self.get(0), n.checked_sub(1).and_then(|i| self.get(i))) {
            (Some(min), Some(max)) => decimal_len(min).max(decimal_len(max)),
            _ => 0,
        };
        n < limits.entries && len <= limits.value && longest <= limits.value
    }
}

fn decimal_len(v: i64) -> usize {
    itoa::Buffer::new().format(v).len()
}

/// A hashtable set: the members in a vector, indexed by position in a table
/// keyed with a random hash (clients choose the members).
#[derive(Debug, Clone, Default)]
struct Table {
    members: Vec<CompactBytes>,
    index: HashTable<usize>,
    hasher: ahash::RandomState,
}

impl Table {
    fn reserve(&mut self, n: usize) {
        self.members.reserve(n);
        let Table {
            members,
            index,
            hasher,
        } = self;
        index.reserve(n, |&i| hash(hasher, members, i));
    }

    fn find(&self, m: &[u8]) -> Option<usize> {
        let h = self.hasher.hash_one(m);
        self.index
            .find(h, |&i| {
                self.members.get(i).is_some_and(|x| x.as_slice() == m)
            })
            .copied()
    }

    fn insert(&mut self, m: &[u8]) -> bool {
        let Table {
            members,
            index,
            hasher,
        } = self;
        let h = hasher.hash_one(m);
        let found = |&i: &usize| members.get(i).is_some_and(|x| x.as_slice() == m);
        match index.entry(h, found, |&i| hash(hasher, members, i)) {
            TableEntry::Occupied(_) => false,
            TableEntry::Vacant(slot) => {
                slot.insert(members.len());
                members.push(CompactBytes::from_slice(m));
                true
            }
        }
    }

    /// Removes the member at `i` (the last one takes its place).
    fn remove_at(&mut self, i: usize) -> CompactBytes {
        let h = hash(&self.hasher, &self.members, i);
        if let Ok(e) = self.index.find_entry(h, |&j| j == i) {
            e.remove();
        }
        let last = self.members.len() - 1;
        if i != last {
            let hl = hash(&self.hasher, &self.members, last);
            if let Some(slot) = self.index.find_mut(hl, |&j| j == last) {
                *slot = i;
            }
        }
        let m = self.members.swap_remove(i);
        if self.members.capacity() > 64 && self.members.len() < self.members.capacity() / 4 {
            self.members.shrink_to_fit();
            let Table {
                members,
                index,
                hasher,
            } = self;
            index.shrink_to_fit(|&j| hash(hasher, members, j));
        }
        m
    }
}

fn hash(hasher: &ahash::RandomState, members: &[CompactBytes], i: usize) -> u64 {
    members.get(i).map_or(0, |m| hasher.hash_one(m.as_slice()))
}

/// The sets of an intersection, smallest first (ties in the given order), as
/// Redis walks them.
fn by_size<'a>(sets: &[&'a Set]) -> Vec<&'a Set> {
    let mut sorted = sets.to_vec();
    sorted.sort_by_key(|s| s.len());
    sorted
}

/// The members of every set (SINTER): the smallest set's members, in its
/// order, that all the others hold.
pub fn intersection<'a>(sets: &[&'a Set]) -> Vec<MemberRef<'a>> {
    let sorted = by_size(sets);
    let Some((first, rest)) = sorted.split_first() else {
        return Vec::new();
    };
    first.iter().filter(|m| in_all(*m, first, rest)).collect()
}

fn in_all(m: MemberRef<'_>, first: &Set, rest: &[&Set]) -> bool {
    rest.iter()
        .all(|s| std::ptr::eq(*s, first) || s.contains_ref(m))
}

/// How many members every set holds (SINTERCARD), counting no further than
/// `limit` (0: no limit).
pub fn intersection_card(sets: &[&Set], limit: usize) -> usize {
    let sorted = by_size(sets);
    let Some((first, rest)) = sorted.split_first() else {
        return 0;
    };
    let mut n = 0;
    for m in first.iter() {
        if in_all(m, first, rest) {
            n += 1;
            if limit != 0 && n >= limit {
                break;
            }
        }
    }
    n
}

/// The intersection as a set to store (SINTERSTORE), encoded as Redis's: built
/// from the smallest set's order into an intset if that set is one, else a
/// listpack that grows as needed, and made an intset at the end if every member
/// is an integer that fits.
pub fn intersection_set(sets: &[&Set], limits: &SetLimits) -> Set {
    let sorted = by_size(sets);
    let Some((first, rest)) = sorted.split_first() else {
        return Set::default();
    };
    let mut out = match first.view() {
        View::Ints => Set::default(),
        _ => Set::packed(),
    };
    for m in first.iter() {
        if in_all(m, first, rest) {
            out.add_ref(m, limits);
        }
    }
    out.convert_to_ints_if_integers(limits);
    out
}

/// The members of any set (SUNION), added in order into a set that starts as an
/// empty intset, as Redis builds it. A missing key is an empty set (`None`).
pub fn union(sets: &[Option<&Set>], limits: &SetLimits) -> Set {
    let mut out = Set::default();
    for s in sets.iter().flatten() {
        for m in s.iter() {
            out.add_ref(m, limits);
        }
    }
    out
}

/// The members of the first set that no other holds (SDIFF), built as Redis
/// does: when walking the first set is cheaper it adds the first set's members
/// found in no other; otherwise it adds the whole first set and removes the
/// others' members (so a result can stay a hashtable though it is small).
/// `same_as_first` says a later key names the first set itself: the result is
/// empty.
pub fn difference(sets: &[Option<&Set>], same_as_first: bool, limits: &SetLimits) -> Set {
    let mut out = Set::default();
    let Some(Some(first)) = sets.first() else {
        return out;
    };
    if same_as_first {
        return out;
    }
    let present = sets.iter().flatten();
    let walk_first = present.clone().count().saturating_mul(first.len()) / 2;
    let walk_all: usize = present.map(|s| s.len()).sum();
    let rest = sets.get(1..).unwrap_or_default();
    if walk_first <= walk_all {
        let mut others: Vec<&Set> = rest.iter().flatten().copied().collect();
        others.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for m in first.iter() {
            if !others.iter().any(|s| s.contains_ref(m)) {
                out.add_ref(m, limits);
            }
        }
    } else {
        for m in first.iter() {
            out.add_ref(m, limits);
        }
        for s in rest.iter().flatten() {
            if out.is_empty() {
                break;
            }
            for m in s.iter() {
                out.remove_ref(m);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
