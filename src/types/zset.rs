//! Sorted sets: members with a score, ordered by (score, member).
//!
//! Two representations, as Redis has: a small set is *packed* (one sorted
//! vector of pairs, Redis's "listpack") while it holds at most
//! [`Limits::entries`] members of at most [`Limits::value`] bytes; a larger one is
//! *big* (Redis's "skiplist"): members live once in a slot arena indexed by a
//! hash table (member → slot), and the order is kept in a *chunked sorted list*
//! of `(score, slot)` items — a vector of sorted chunks of at most [`CHUNK`]
//! items, with the largest item of each chunk in one contiguous vector for the
//! binary search and a Fenwick tree of chunk sizes for ranks. Insert, remove,
//! rank and seek by rank, score or lex are O(log n) plus a move inside one
//! chunk; at about 64 bytes a member (for members up to 22 bytes) it is more
//! compact than a skiplist.
//!
//! Every range query comes down to ranks: a score or lex bound is turned into
//! the number of members before it ([`ZSet::score_bounds`],
//! [`ZSet::lex_bounds`]), and members are read by rank ([`ZSet::range`]).
//!
//! Nothing here knows commands or replies; errors are [`ZSetError`].

use std::cmp::Ordering;

use bytes::Bytes;
use hashbrown::HashTable;

use super::CompactBytes;
use super::Limits;

/// Most items in one chunk of the big representation.
pub const CHUNK: usize = 512;

/// What an operation refused to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZSetError {
    /// An increment made the score NaN (`+inf` plus `-inf`).
    NaN,
}

/// Options of an add (ZADD's NX, XX, GT, LT and INCR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddFlags {
    /// Only add new members.
    pub nx: bool,
    /// Only update existing members.
    pub xx: bool,
    /// Only update when the new score is greater.
    pub gt: bool,
    /// Only update when the new score is less.
    pub lt: bool,
    /// The score is an increment to the current one.
    pub incr: bool,
}

/// What an add did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Added {
    /// A new member, with this score.
    New(f64),
    /// An existing member's score changed to this.
    Updated(f64),
    /// The member exists with this score, which stays.
    Same(f64),
    /// The flags refused the change (NX on an existing member, XX on a new one,
    /// GT/LT on a score that does not qualify).
    Refused,
}

/// One end of a score range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    /// The score.
    pub value: f64,
    /// Whether the score itself is excluded (`(1.5`).
    pub exclusive: bool,
}

/// A score range `min..max` (ZRANGEBYSCORE, ZCOUNT, ...).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    /// Lower end.
    pub min: ScoreBound,
    /// Upper end.
    pub max: ScoreBound,
}

/// One end of a lex range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: before every member.
    Min,
    /// `+`: after every member.
    Max,
    /// `[m`: the member itself included.
    Inclusive(Bytes),
    /// `(m`: the member itself excluded.
    Exclusive(Bytes),
}

/// A lex range (ZRANGEBYLEX, ZLEXCOUNT, ...). Like Redis, it is meant for sets
/// whose members all have the same score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    /// Lower end.
    pub min: LexBound,
    /// Upper end.
    pub max: LexBound,
}

/// Aggregation of a member's weighted scores across inputs (ZUNION, ZINTER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// The sum (`+inf` plus `-inf` is 0).
    #[default]
    Sum,
    /// The smallest.
    Min,
    /// The largest.
    Max,
}

/// A member as a search's predicate sees it: read only when asked for, so a
/// search by score never touches a big set's slots (each a likely cache miss
/// in a large set).
#[derive(Clone, Copy)]
enum Member<'a> {
    Bytes(&'a [u8]),
    Slot(&'a [Slot], u32),
}

impl<'a> Member<'a> {
    fn get(self) -> &'a [u8] {
        match self {
            Member::Bytes(b) => b,
            Member::Slot(slots, id) => &slots[id as usize].member,
        }
    }
}

/// A sorted set.
#[derive(Debug, Clone)]
pub struct ZSet {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Packed(Vec<Pair>),
    Big(Box<Big>),
}

#[derive(Debug, Clone)]
struct Pair {
    member: CompactBytes,
    score: f64,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::new()
    }
}

/// Orders scores as Redis does (`<`), so `-0` and `0` are equal; scores are
/// never NaN.
fn cmp_score(a: f64, b: f64) -> Ordering {
    if a < b {
        Ordering::Less
    } else if a > b {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// A score as a packed set keeps it: Redis's listpack stores `-0` as the
/// integer 0.
fn packed_score(score: f64) -> f64 {
    score + 0.0
}

fn cmp_entry(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    cmp_score(s1, s2).then_with(|| m1.cmp(m2))
}

/// Whether a member with `score` lies before the start of `min`.
fn below_min(score: f64, min: ScoreBound) -> bool {
    if min.exclusive {
        score <= min.value
    } else {
        score < min.value
    }
}

/// Whether a member with `score` lies at or before the end of `max`.
fn within_max(score: f64, max: ScoreBound) -> bool {
    if max.exclusive {
        score < max.value
    } else {
        score <= max.value
    }
}

fn below_lex_min(member: &[u8], min: &LexBound) -> bool {
    match min {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Inclusive(m) => member < &m[..],
        LexBound::Exclusive(m) => member <= &m[..],
    }
}

fn within_lex_max(member: &[u8], max: &LexBound) -> bool {
    match max {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Inclusive(m) => member <= &m[..],
        LexBound::Exclusive(m) => member < &m[..],
    }
}

impl ZSet {
    /// An empty, packed set.
    pub fn new() -> Self {
        ZSet {
            repr: Repr::Packed(Vec::new()),
        }
    }

    /// An empty set in the representation Redis picks for about `size` members
    /// of about `value_len` bytes (`zsetTypeCreate`).
    pub fn with_hint(size: usize, value_len: usize, limits: Limits) -> Self {
        if size <= limits.entries && value_len <= limits.value {
            ZSet::new()
        } else {
            ZSet {
                repr: Repr::Big(Box::new(Big::new(size.min(1 << 20)))),
            }
        }
    }

    /// Converts a packed set to big when about `size` members will be added and
    /// that is more than a packed set holds (ZADD on an existing key).
    pub fn reserve_hint(&mut self, size: usize, limits: Limits) {
        if matches!(self.repr, Repr::Packed(_)) && size > limits.entries {
            self.convert_to_big();
        }
    }

    /// `"listpack"` or `"skiplist"`, as OBJECT ENCODING names them.
    pub fn encoding_name(&self) -> &'static str {
        match self.repr {
            Repr::Packed(_) => "listpack",
            Repr::Big(_) => "skiplist",
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(v) => v.len(),
            Repr::Big(b) => b.len,
        }
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Packed(v) => v.iter().find(|p| &p.member[..] == member).map(|p| p.score),
            Repr::Big(b) => b.find(member).map(|id| b.slot(id).score),
        }
    }

    /// Adds `member` with `score`, or changes its score, as ZADD does with
    /// `flags`. With `incr`, `score` is added to the current score; a NaN
    /// result is refused with [`ZSetError::NaN`] and changes nothing.
    pub fn add(
        &mut self,
        member: &[u8],
        score: f64,
        flags: AddFlags,
        limits: Limits,
    ) -> Result<Added, ZSetError> {
        if let Some(current) = self.score(member) {
            if flags.nx {
                return Ok(Added::Refused);
            }
            let new = if flags.incr {
                let s = current + score;
                if s.is_nan() {
                    return Err(ZSetError::NaN);
                }
                s
            } else {
                score
            };
            if (flags.lt && new >= current) || (flags.gt && new <= current) {
                return Ok(Added::Refused);
            }
            // Redis compares with `!=`, so 0 and -0 are the same score.
            #[allow(clippy::float_cmp)]
            if new == current {
                return Ok(Added::Same(current));
            }
            self.update(member, current, new);
            return Ok(Added::Updated(new));
        }
        if flags.xx {
            return Ok(Added::Refused);
        }
        if score.is_nan() {
            return Err(ZSetError::NaN);
        }
        self.insert_new(member, score, limits);
        Ok(Added::New(score))
    }

    /// Adds `member` with `score` or changes its score (no flags).
    pub fn insert(&mut self, member: &[u8], score: f64, limits: Limits) {
        let _ = self.add(member, score, AddFlags::default(), limits);
    }

    fn insert_new(&mut self, member: &[u8], score: f64, limits: Limits) {
        if let Repr::Packed(v) = &self.repr {
            if v.len() + 1 > limits.entries || member.len() > limits.value {
                self.convert_to_big();
            }
        }
        match &mut self.repr {
            Repr::Packed(v) => {
                let score = packed_score(score);
                let at = v.partition_point(|p| {
                    cmp_entry(p.score, &p.member, score, member) == Ordering::Less
                });
                v.insert(
                    at,
                    Pair {
                        member: CompactBytes::from_slice(member),
                        score,
                    },
                );
            }
            Repr::Big(b) => b.insert(member, score),
        }
    }

    fn update(&mut self, member: &[u8], old: f64, new: f64) {
        match &mut self.repr {
            Repr::Packed(v) => {
                if let Some(i) = v.iter().position(|p| &p.member[..] == member) {
                    let new = packed_score(new);
                    let mut pair = v.remove(i);
                    pair.score = new;
                    let at = v.partition_point(|p| {
                        cmp_entry(p.score, &p.member, new, member) == Ordering::Less
                    });
                    v.insert(at, pair);
                }
            }
            Repr::Big(b) => {
                if let Some(id) = b.find(member) {
                    b.unlink(old, id);
                    b.slots[id as usize].score = new;
                    b.link(new, id);
                }
            }
        }
    }

    /// Removes `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Packed(v) => {
                let i = v.iter().position(|p| &p.member[..] == member)?;
                Some(v.remove(i).score)
            }
            Repr::Big(b) => b.remove(member),
        }
    }

    /// The rank of `member` (0 for the lowest score; with `rev`, 0 for the
    /// highest) and its score.
    pub fn rank(&self, member: &[u8], rev: bool) -> Option<(usize, f64)> {
        let score = self.score(member)?;
        // The member is compared (and its slot read) only on a tie of scores.
        let below = self.count_before(|s, m| match cmp_score(s, score) {
            Ordering::Equal => m.get() < member,
            o => o == Ordering::Less,
        });
        let rank = if rev { self.len() - 1 - below } else { below };
        Some((rank, score))
    }

    /// The member at `rank` (ascending) and its score.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Packed(v) => v.get(rank).map(|p| (&p.member[..], p.score)),
            Repr::Big(b) => b.get(rank),
        }
    }

    /// Members of ranks `start..end` (ascending ranks, clamped to the set) in
    /// ascending order, or with `rev` in descending order (from rank `end - 1`
    /// down to `start`).
    pub fn range(
        &self,
        start: usize,
        end: usize,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        let end = end.min(self.len());
        let start = start.min(end);
        let n = end - start;
        match &self.repr {
            Repr::Packed(v) => {
                let items = v[start..end].iter().map(|p| (&p.member[..], p.score));
                if rev {
                    Box::new(items.rev())
                } else {
                    Box::new(items)
                }
            }
            Repr::Big(b) => b.range(start, end, n, rev),
        }
    }

    /// Calls `f` with the members of ranks `start..end` and their scores, in
    /// the order [`ZSet::range`] gives them, walking the chunks directly (a
    /// range reply's path).
    pub fn each_in_range(
        &self,
        start: usize,
        end: usize,
        rev: bool,
        mut f: impl FnMut(&[u8], f64),
    ) {
        let end = end.min(self.len());
        let start = start.min(end);
        match &self.repr {
            Repr::Packed(v) => {
                let items = &v[start..end];
                if rev {
                    items.iter().rev().for_each(|p| f(&p.member, p.score));
                } else {
                    items.iter().for_each(|p| f(&p.member, p.score));
                }
            }
            Repr::Big(b) => b.each_in_range(start, end, rev, f),
        }
    }

    /// Every member in ascending order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        self.range(0, usize::MAX, false)
    }

    /// The number of members before the first for which `before` is false;
    /// `before` must hold for a prefix of the order and for nothing after it.
    fn count_before(&self, before: impl Fn(f64, Member<'_>) -> bool) -> usize {
        match &self.repr {
            Repr::Packed(v) => v.partition_point(|p| before(p.score, Member::Bytes(&p.member))),
            Repr::Big(b) => b.count_before(before),
        }
    }

    /// The ranks `start..end` of the members inside `range` (empty when
    /// `end <= start`).
    pub fn score_bounds(&self, range: &ScoreRange) -> (usize, usize) {
        let start = self.count_before(|s, _| below_min(s, range.min));
        let end = self.count_before(|s, _| within_max(s, range.max));
        (start, end.max(start))
    }

    /// The ranks `start..end` of the members inside the lex `range`.
    pub fn lex_bounds(&self, range: &LexRange) -> (usize, usize) {
        let start = self.count_before(|_, m| below_lex_min(m.get(), &range.min));
        let end = self.count_before(|_, m| within_lex_max(m.get(), &range.max));
        (start, end.max(start))
    }

    /// How many members lie in the score range.
    pub fn count_in_score(&self, range: &ScoreRange) -> usize {
        let (a, b) = self.score_bounds(range);
        b - a
    }

    /// How many members lie in the lex range.
    pub fn count_in_lex(&self, range: &LexRange) -> usize {
        let (a, b) = self.lex_bounds(range);
        b - a
    }

    /// Removes the members of ranks `start..end` (ascending); how many.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match &mut self.repr {
            Repr::Packed(v) => {
                v.drain(start..end);
            }
            Repr::Big(b) => {
                let victims: Vec<(f64, u32)> = b.range_items(start, end).collect();
                for (score, id) in victims {
                    b.unlink(score, id);
                    b.free_slot(id);
                }
            }
        }
        end - start
    }

    /// Removes and returns up to `count` members from the low end (or with
    /// `max`, the high end), in the order they were taken.
    pub fn pop(&mut self, count: usize, max: bool) -> Vec<(Bytes, f64)> {
        let n = count.min(self.len());
        let len = self.len();
        let (start, end) = if max { (len - n, len) } else { (0, n) };
        let taken: Vec<(Bytes, f64)> = self
            .range(start, end, max)
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect();
        self.remove_ranks(start, end);
        taken
    }

    /// One step of ZSCAN from `cursor`: about `count` members and the next
    /// cursor (0 when done). A packed set is returned whole with cursor 0, as
    /// Redis does; a big one is walked by slot, so a member present for the
    /// whole scan is returned at least once.
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<(&[u8], f64)>) {
        match &self.repr {
            Repr::Packed(v) => (0, v.iter().map(|p| (&p.member[..], p.score)).collect()),
            Repr::Big(b) => {
                let mut out = Vec::new();
                let mut i = usize::try_from(cursor).unwrap_or(usize::MAX);
                let budget = count.max(1);
                let mut visited = 0;
                while i < b.slots.len() && visited < budget.saturating_mul(10) {
                    let slot = &b.slots[i];
                    i += 1;
                    visited += 1;
                    if slot.is_live() {
                        out.push((&slot.member[..], slot.score));
                        if out.len() >= budget {
                            break;
                        }
                    }
                }
                let next = if i >= b.slots.len() { 0 } else { i as u64 };
                (next, out)
            }
        }
    }

    /// Converts a big set back to packed if it fits the limits (Redis does
    /// this for the sets ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE store).
    pub fn shrink_if_small(&mut self, limits: Limits) {
        if let Repr::Big(b) = &self.repr {
            let fits =
                b.len <= limits.entries && b.live_slots().all(|s| s.member.len() <= limits.value);
            if fits {
                let pairs = self
                    .iter()
                    .map(|(m, s)| Pair {
                        member: CompactBytes::from_slice(m),
                        score: packed_score(s),
                    })
                    .collect();
                self.repr = Repr::Packed(pairs);
            }
        }
    }

    /// Converts a listpack-encoded set to the skiplist encoding (SORT does, as
    /// in Redis, and the set stays so); a no-op when it already is.
    pub fn to_skiplist(&mut self) {
        self.convert_to_big();
    }

    fn convert_to_big(&mut self) {
        if let Repr::Packed(v) = &mut self.repr {
            let pairs = std::mem::take(v);
            let mut big = Big::new(pairs.len());
            for p in pairs {
                big.insert(&p.member, p.score);
            }
            self.repr = Repr::Big(Box::new(big));
        }
    }
}

/// A set of scored members that the set operations read: a sorted set, or
/// (scores all 1) a plain set.
pub trait Scored {
    /// Number of members.
    fn members(&self) -> usize;
    /// The score of `member`, if present.
    fn score_of(&self, member: &[u8]) -> Option<f64>;
    /// Calls `f` with every member and its score.
    fn each(&self, f: &mut dyn FnMut(&[u8], f64));
}

impl Scored for ZSet {
    fn members(&self) -> usize {
        self.len()
    }
    fn score_of(&self, member: &[u8]) -> Option<f64> {
        self.score(member)
    }
    fn each(&self, f: &mut dyn FnMut(&[u8], f64)) {
        for (m, s) in self.iter() {
            f(m, s)
        }
    }
}

/// A plain set read as a sorted set: every member scored 1, as Redis's
/// ZUNION/ZINTER/ZDIFF read a set among their sources.
impl Scored for super::set::Set {
    fn members(&self) -> usize {
        self.len()
    }
    fn score_of(&self, member: &[u8]) -> Option<f64> {
        self.contains(member).then_some(1.0)
    }
    fn each(&self, f: &mut dyn FnMut(&[u8], f64)) {
        for m in self.iter() {
            m.with_bytes(|b| f(b, 1.0));
        }
    }
}

/// One input of a set operation: a set (`None` for a missing key, read as
/// empty) and its weight.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    /// The set, or `None` for a missing key.
    pub set: Option<&'a dyn Scored>,
    /// Its weight.
    pub weight: f64,
}

impl Input<'_> {
    fn len(&self) -> usize {
        self.set.map_or(0, |s| s.members())
    }
}

/// `weight * score`, 0 where that is NaN (`inf * 0`), as Redis does.
fn weighted(score: f64, weight: f64) -> f64 {
    let v = score * weight;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

fn aggregate(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += value;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if value < *target {
                *target = value
            }
        }
        Aggregate::Max => {
            if value > *target {
                *target = value
            }
        }
    }
}

fn by_size<'a>(inputs: &[Input<'a>]) -> Vec<Input<'a>> {
    let mut sorted = inputs.to_vec();
    sorted.sort_by_key(Input::len);
    sorted
}

/// The union of `inputs`, each score weighted and combined with `how`.
pub fn union(inputs: &[Input<'_>], how: Aggregate, limits: Limits) -> ZSet {
    let inputs = by_size(inputs);
    let mut acc: hashbrown::HashMap<Vec<u8>, f64, ahash::RandomState> =
        hashbrown::HashMap::with_hasher(ahash::RandomState::new());
    let mut order: Vec<Vec<u8>> = Vec::new();
    for input in &inputs {
        let Some(set) = input.set else { continue };
        set.each(&mut |m, s| {
            let v = weighted(s, input.weight);
            match acc.get_mut(m) {
                Some(t) => aggregate(t, v, how),
                None => {
                    acc.insert(m.to_vec(), v);
                    order.push(m.to_vec());
                }
            }
        });
    }
    let mut out = ZSet::with_hint(acc.len(), 0, big_only(limits));
    for m in order {
        if let Some(&s) = acc.get(&m) {
            out.insert(&m, s, limits);
        }
    }
    out
}

/// Limits that make [`ZSet::with_hint`] pick the big representation (Redis
/// builds every set-operation result as a skiplist).
fn big_only(limits: Limits) -> Limits {
    Limits {
        entries: 0,
        value: limits.value,
    }
}

/// The intersection of `inputs`, each score weighted and combined with `how`.
pub fn inter(inputs: &[Input<'_>], how: Aggregate, limits: Limits) -> ZSet {
    let mut out = ZSet::with_hint(1, 0, big_only(limits));
    inter_each(inputs, how, &mut |m, s| {
        out.insert(m, s, limits);
        true
    });
    out
}

/// The size of the intersection of `inputs`, counting stops at `limit` (0: no
/// limit).
pub fn inter_card(inputs: &[Input<'_>], limit: usize) -> usize {
    let mut n = 0;
    inter_each(inputs, Aggregate::Sum, &mut |_, _| {
        n += 1;
        limit == 0 || n < limit
    });
    n
}

/// Calls `f` with each member of the intersection until it returns false.
fn inter_each(inputs: &[Input<'_>], how: Aggregate, f: &mut dyn FnMut(&[u8], f64) -> bool) {
    let inputs = by_size(inputs);
    let Some(first) = inputs.first() else { return };
    let Some(smallest) = first.set else { return };
    let mut going = true;
    smallest.each(&mut |m, s| {
        if !going {
            return;
        }
        let mut score = weighted(s, first.weight);
        for other in &inputs[1..] {
            match other.set.and_then(|o| o.score_of(m)) {
                // No NaN guard on the product here: Redis's aggregate deals with it.
                Some(v) => aggregate(&mut score, v * other.weight, how),
                None => return,
            }
        }
        going = f(m, score);
    });
}

/// The members of the first input that are in none of the others, with their
/// scores in the first.
pub fn diff(inputs: &[Input<'_>], limits: Limits) -> ZSet {
    let mut out = ZSet::with_hint(1, 0, big_only(limits));
    let Some((first, rest)) = inputs.split_first() else {
        return out;
    };
    let Some(base) = first.set else { return out };
    base.each(&mut |m, s| {
        if !rest
            .iter()
            .any(|o| o.set.is_some_and(|o| o.score_of(m).is_some()))
        {
            out.insert(m, s, limits);
        }
    });
    out
}

// ---- the big representation ------------------------------------------------

#[derive(Debug, Clone)]
struct Slot {
    member: CompactBytes,
    /// NaN for a free slot (a score is never NaN).
    score: f64,
}

impl Slot {
    fn is_live(&self) -> bool {
        !self.score.is_nan()
    }
}

/// One position in the order: the score (kept here so comparisons rarely
/// reach the slot) and the slot of the member.
#[derive(Debug, Clone, Copy)]
struct Item {
    score: f64,
    id: u32,
}

#[derive(Debug, Clone)]
struct Big {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    chunks: Vec<Vec<Item>>,
    /// The last item of each chunk.
    maxes: Vec<Item>,
    /// Fenwick tree of chunk lengths (1-based).
    tree: Vec<usize>,
    len: usize,
}

impl Big {
    fn new(capacity: usize) -> Self {
        Big {
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            index: HashTable::with_capacity(capacity),
            hasher: ahash::RandomState::new(),
            chunks: Vec::new(),
            maxes: Vec::new(),
            tree: vec![0],
            len: 0,
        }
    }

    fn slot(&self, id: u32) -> &Slot {
        &self.slots[id as usize]
    }

    fn live_slots(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| s.is_live())
    }

    fn find(&self, member: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(member);
        let slots = &self.slots;
        self.index
            .find(hash, |&id| &slots[id as usize].member[..] == member)
            .copied()
    }

    fn member(&self, item: Item) -> &[u8] {
        &self.slots[item.id as usize].member
    }

    /// Whether `item` sorts before (`score`, `member`).
    fn item_before(&self, item: Item, score: f64, member: &[u8]) -> bool {
        cmp_entry(item.score, self.member(item), score, member) == Ordering::Less
    }

    fn insert(&mut self, member: &[u8], score: f64) {
        let slot = Slot {
            member: CompactBytes::from_slice(member),
            score,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let hash = self.hasher.hash_one(member);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, id, |&i| {
            hasher.hash_one(&slots[i as usize].member[..])
        });
        self.link(score, id);
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let id = self.find(member)?;
        let score = self.slot(id).score;
        self.unlink(score, id);
        self.free_slot(id);
        Some(score)
    }

    /// Drops slot `id` from the index and the arena (after [`Big::unlink`]).
    fn free_slot(&mut self, id: u32) {
        let slots = &self.slots;
        let hash = self.hasher.hash_one(&slots[id as usize].member[..]);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == id) {
            entry.remove();
        }
        let slot = &mut self.slots[id as usize];
        slot.member = CompactBytes::from_slice(b"");
        slot.score = f64::NAN;
        self.free.push(id);
    }

    /// Where (`score`, slot `id`'s member) sits in the order: the first chunk
    /// whose largest item is not before it (`chunks.len()` when past every
    /// chunk) and the position inside that chunk.
    fn position(&self, score: f64, id: u32) -> (usize, usize) {
        let member = &self.slots[id as usize].member[..];
        let ci = self
            .maxes
            .partition_point(|&m| self.item_before(m, score, member));
        match self.chunks.get(ci) {
            Some(chunk) => (
                ci,
                chunk.partition_point(|&it| self.item_before(it, score, member)),
            ),
            None => (ci, 0),
        }
    }

    /// Puts slot `id` with `score` in the order.
    fn link(&mut self, score: f64, id: u32) {
        let item = Item { score, id };
        self.len += 1;
        if self.chunks.is_empty() {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.push(item);
            self.chunks.push(chunk);
            self.maxes.push(item);
            self.rebuild_tree();
            return;
        }
        let (mut ci, mut at) = self.position(score, id);
        if ci == self.chunks.len() {
            // After every item: the end of the last chunk.
            ci -= 1;
            at = self.chunks[ci].len();
        }
        let last = ci + 1 == self.chunks.len();
        let chunk_len = self.chunks[ci].len();
        if chunk_len >= CHUNK && last && at == chunk_len {
            // Appending past the end: a fresh chunk keeps the full one full.
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.push(item);
            self.chunks.push(chunk);
            self.maxes.push(item);
            self.rebuild_tree();
            return;
        }
        if chunk_len >= CHUNK && ci == 0 && at == 0 {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.push(item);
            self.chunks.insert(0, chunk);
            self.maxes.insert(0, item);
            self.rebuild_tree();
            return;
        }
        self.chunks[ci].insert(at, item);
        if at + 1 == self.chunks[ci].len() {
            self.maxes[ci] = item;
        }
        if self.chunks[ci].len() > CHUNK {
            self.split(ci);
        } else {
            self.tree_add(ci, 1);
        }
    }

    fn split(&mut self, ci: usize) {
        let half = self.chunks[ci].len() / 2;
        let mut right = Vec::with_capacity(CHUNK);
        right.extend_from_slice(&self.chunks[ci][half..]);
        self.chunks[ci].truncate(half);
        self.chunks[ci].shrink_to(CHUNK);
        if let Some(&m) = self.chunks[ci].last() {
            self.maxes[ci] = m;
        }
        let right_max = right.last().copied();
        self.chunks.insert(ci + 1, right);
        if let Some(m) = right_max {
            self.maxes.insert(ci + 1, m);
        }
        self.rebuild_tree();
    }

    /// Takes slot `id` with `score` out of the order.
    fn unlink(&mut self, score: f64, id: u32) {
        let (ci, at) = self.position(score, id);
        let Some(chunk) = self.chunks.get(ci) else {
            return;
        };
        if chunk.get(at).map(|it| it.id) != Some(id) {
            return;
        }
        self.len -= 1;
        let chunk = &mut self.chunks[ci];
        chunk.remove(at);
        if chunk.is_empty() {
            self.chunks.remove(ci);
            self.maxes.remove(ci);
            self.rebuild_tree();
            return;
        }
        if at == chunk.len() {
            self.maxes[ci] = chunk[at - 1];
        }
        if chunk.len() < CHUNK / 4 && self.chunks.len() > 1 {
            self.merge(ci);
        } else {
            self.tree_sub(ci, 1);
        }
    }

    /// Joins small chunk `ci` with a neighbour (splitting again if too big).
    fn merge(&mut self, ci: usize) {
        let (left, right) = if ci + 1 < self.chunks.len() {
            (ci, ci + 1)
        } else {
            (ci - 1, ci)
        };
        let moved = self.chunks.remove(right);
        self.maxes.remove(right);
        self.chunks[left].extend_from_slice(&moved);
        if let Some(&m) = self.chunks[left].last() {
            self.maxes[left] = m;
        }
        if self.chunks[left].len() > CHUNK {
            self.split(left);
        } else {
            self.rebuild_tree();
        }
    }

    fn rebuild_tree(&mut self) {
        let n = self.chunks.len();
        self.tree.clear();
        self.tree.resize(n + 1, 0);
        for i in 0..n {
            let idx = i + 1;
            self.tree[idx] += self.chunks[i].len();
            let parent = idx + (idx & idx.wrapping_neg());
            if parent <= n {
                let v = self.tree[idx];
                self.tree[parent] += v;
            }
        }
    }

    fn tree_add(&mut self, ci: usize, d: usize) {
        let mut i = ci + 1;
        while i < self.tree.len() {
            self.tree[i] += d;
            i += i & i.wrapping_neg();
        }
    }

    fn tree_sub(&mut self, ci: usize, d: usize) {
        let mut i = ci + 1;
        while i < self.tree.len() {
            self.tree[i] -= d;
            i += i & i.wrapping_neg();
        }
    }

    /// Items in chunks `0..ci`.
    fn prefix(&self, ci: usize) -> usize {
        let mut i = ci;
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }

    /// The chunk holding `rank` and the offset in it.
    fn locate(&self, rank: usize) -> Option<(usize, usize)> {
        if rank >= self.len {
            return None;
        }
        let n = self.chunks.len();
        let mut pos = 0;
        let mut rest = rank;
        let mut step = n.next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] <= rest {
                pos = next;
                rest -= self.tree[next];
            }
            step >>= 1;
        }
        Some((pos, rest))
    }

    fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        let (ci, off) = self.locate(rank)?;
        let item = *self.chunks.get(ci)?.get(off)?;
        Some((self.member(item), item.score))
    }

    fn count_before(&self, before: impl Fn(f64, Member<'_>) -> bool) -> usize {
        let member = |it: Item| Member::Slot(&self.slots, it.id);
        let ci = self.maxes.partition_point(|&m| before(m.score, member(m)));
        match self.chunks.get(ci) {
            None => self.len,
            Some(chunk) => {
                self.prefix(ci) + chunk.partition_point(|&it| before(it.score, member(it)))
            }
        }
    }

    /// Items of ranks `start..end`, ascending.
    fn range_items(&self, start: usize, end: usize) -> impl Iterator<Item = (f64, u32)> + '_ {
        let (ci, off) = self.locate(start).unwrap_or((self.chunks.len(), 0));
        self.chunks
            .get(ci..)
            .unwrap_or(&[])
            .iter()
            .flatten()
            .skip(off)
            .take(end.saturating_sub(start))
            .map(|it| (it.score, it.id))
    }

    /// [`ZSet::each_in_range`] of a big set (`start < end <= len`, or nothing).
    fn each_in_range(&self, start: usize, end: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        let mut left = end.saturating_sub(start);
        if left == 0 {
            return;
        }
        if rev {
            let Some((mut ci, off)) = self.locate(end - 1) else {
                return;
            };
            let mut upto = off + 1;
            loop {
                let chunk = &self.chunks[ci][..upto];
                let take = chunk.len().min(left);
                for &it in chunk[chunk.len() - take..].iter().rev() {
                    f(self.member(it), it.score);
                }
                left -= take;
                if left == 0 || ci == 0 {
                    return;
                }
                ci -= 1;
                upto = self.chunks[ci].len();
            }
        } else {
            let Some((mut ci, mut off)) = self.locate(start) else {
                return;
            };
            while left > 0 && ci < self.chunks.len() {
                let chunk = &self.chunks[ci][off..];
                let take = chunk.len().min(left);
                for &it in &chunk[..take] {
                    f(self.member(it), it.score);
                }
                left -= take;
                ci += 1;
                off = 0;
            }
        }
    }

    fn range(
        &self,
        start: usize,
        end: usize,
        n: usize,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        if n == 0 {
            return Box::new(std::iter::empty());
        }
        if rev {
            let Some((ci, off)) = self.locate(end - 1) else {
                return Box::new(std::iter::empty());
            };
            let tail = self.chunks[ci].len() - 1 - off;
            Box::new(
                self.chunks[..=ci]
                    .iter()
                    .rev()
                    .flat_map(|c| c.iter().rev())
                    .skip(tail)
                    .take(n)
                    .map(|&it| (self.member(it), it.score)),
            )
        } else {
            Box::new(
                self.range_items(start, end)
                    .map(|(score, id)| (&self.slots[id as usize].member[..], score)),
            )
        }
    }
}

#[cfg(test)]
mod tests;
