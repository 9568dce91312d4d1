//! The stream type (XADD, XRANGE, XREADGROUP, ...): entries in ID order, the
//! bookkeeping Redis keeps beside them (last ID, largest deleted ID, entries ever
//! added, first ID) and consumer groups with their pending entries lists.
//!
//! Entries sit in a map by ID; beside it the stream keeps the outline of the
//! nodes Redis would have packed them into (`stream-node-max-entries` entries or
//! `stream-node-max-bytes` bytes each), because approximate trimming (`~`) removes
//! only whole nodes and so its result depends on where the nodes end.
//!
//! Pure operations only: no replies and no error text; failures are [`IdError`]
//! and [`GroupError`] values the command family turns into Redis's lines.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use bytes::Bytes;

/// A stream entry ID: milliseconds and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// The milliseconds part.
    pub ms: u64,
    /// The sequence part.
    pub seq: u64,
}

impl StreamId {
    /// The smallest ID, `0-0`.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An ID from its parts.
    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID, or `None` after the largest.
    pub fn next(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => self.ms.checked_add(1).map(|ms| StreamId::new(ms, 0)),
        }
    }

    /// The previous ID, or `None` before the smallest.
    pub fn prev(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => self.ms.checked_sub(1).map(|ms| StreamId::new(ms, u64::MAX)),
        }
    }

    /// Whether this is `0-0`.
    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The ID as Redis prints it, `ms-seq`.
    pub fn to_bytes(self) -> Bytes {
        Bytes::from(format!("{}-{}", self.ms, self.seq))
    }
}

/// Reads an unsigned decimal number as Redis's `string2ull` does: digits only.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parses `ms` or `ms-seq`; `ms` alone takes `missing_seq` as its sequence
/// (0 for a start, the largest for an end).
pub fn parse_id(arg: &[u8], missing_seq: u64) -> Option<StreamId> {
    match arg.iter().position(|&b| b == b'-') {
        None => Some(StreamId::new(parse_u64(arg)?, missing_seq)),
        Some(dash) => Some(StreamId::new(
            parse_u64(&arg[..dash])?,
            parse_u64(&arg[dash + 1..])?,
        )),
    }
}

/// The end of a range as given: `-`, `+`, an ID, an exclusive `(ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    /// Included.
    Incl(StreamId),
    /// Excluded (`(`).
    Excl(StreamId),
}

/// Parses a range bound: `-` and `+` are the smallest and largest IDs, `(id`
/// an exclusive one; `ms` alone means `ms-0` as a start and `ms-max` as an end.
pub fn parse_range_end(arg: &[u8], is_start: bool) -> Option<RangeEnd> {
    let missing = if is_start { 0 } else { u64::MAX };
    match arg {
        b"-" => Some(RangeEnd::Incl(StreamId::MIN)),
        b"+" => Some(RangeEnd::Incl(StreamId::MAX)),
        [b'(', rest @ ..] => Some(RangeEnd::Excl(parse_id(rest, missing)?)),
        _ => Some(RangeEnd::Incl(parse_id(arg, missing)?)),
    }
}

/// The ID XADD is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddId {
    /// `*`: from the clock.
    Auto,
    /// `ms-*`: the given milliseconds, the next sequence.
    Seq(u64),
    /// An explicit ID (`ms` alone is `ms-0`).
    Explicit(StreamId),
}

/// Parses XADD's ID argument.
pub fn parse_add_id(arg: &[u8]) -> Option<AddId> {
    if arg == b"*" {
        return Some(AddId::Auto);
    }
    if let Some(ms) = arg.strip_suffix(b"-*") {
        return parse_u64(ms).map(AddId::Seq);
    }
    parse_id(arg, 0).map(AddId::Explicit)
}

/// Why an ID cannot be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    /// `0-0` was given.
    Zero,
    /// Not above the stream's last ID.
    TooSmall,
    /// No ID is left above the last one.
    Exhausted,
}

/// What a trim keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimTo {
    /// At most this many entries.
    MaxLen(u64),
    /// No entry below this ID.
    MinId(StreamId),
}

/// A trim request: the strategy, whether approximate (`~`), and the most
/// entries it may remove (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// What to keep.
    pub to: TrimTo,
    /// `~`: only whole nodes are removed.
    pub approx: bool,
    /// The most entries removed; 0 for no limit.
    pub limit: u64,
}

/// Node sizes: `stream-node-max-entries` and `stream-node-max-bytes` (0: no
/// limit on that measure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    /// Entries per node.
    pub entries: u64,
    /// Bytes per node.
    pub bytes: u64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            entries: 100,
            bytes: 4096,
        }
    }
}

/// The outline of one node: its first (master) ID and fields, its last ID,
/// live entries, entries ever put in it and the size of the listpack Redis
/// would have packed them into (which decides where the next node starts).
#[derive(Debug, Clone)]
struct Node {
    master: StreamId,
    master_fields: Box<[Bytes]>,
    last: StreamId,
    live: u64,
    total: u64,
    bytes: u64,
}

/// Bytes a listpack spends on an integer element (encoding and back-length).
fn lp_int_size(v: i64) -> u64 {
    match v {
        0..=127 => 2,
        -4096..=4095 => 3,
        -32768..=32767 => 4,
        -8_388_608..=8_388_607 => 5,
        -2_147_483_648..=2_147_483_647 => 6,
        _ => 10,
    }
}

/// Bytes a listpack spends on a string element: an integer-looking one is
/// stored as an integer, as `lpAppend` does.
fn lp_str_size(s: &[u8]) -> u64 {
    let canonical = s.len() <= 20
        && std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|n| n.to_string().as_bytes() == s);
    if canonical {
        let n = std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0);
        return lp_int_size(n);
    }
    let len = s.len() as u64;
    let head = match len {
        0..=63 => 1,
        64..=4095 => 2,
        _ => 5,
    };
    let body = head + len;
    let back = match body {
        0..=127 => 1,
        128..=16383 => 2,
        16384..=2_097_151 => 3,
        2_097_152..=268_435_455 => 4,
        _ => 5,
    };
    body + back
}

impl Node {
    /// A node whose master entry is `id` with `fields` (names and values).
    fn new<T: AsRef<[u8]>>(id: StreamId, fields: &[T]) -> Node {
        let names: Box<[Bytes]> = fields
            .iter()
            .step_by(2)
            .map(|f| Bytes::copy_from_slice(f.as_ref()))
            .collect();
        // Header and terminator, then the master entry: count, deleted,
        // number of fields, the names, and its 0 terminator.
        let bytes = 7
            + lp_int_size(1)
            + lp_int_size(0)
            + lp_int_size(names.len() as i64)
            + names.iter().map(|n| lp_str_size(n)).sum::<u64>()
            + lp_int_size(0);
        Node {
            master: id,
            master_fields: names,
            last: id,
            live: 0,
            total: 0,
            bytes,
        }
    }

    /// The bytes entry `id` with `fields` adds to this node.
    fn entry_size<T: AsRef<[u8]>>(&self, id: StreamId, fields: &[T]) -> u64 {
        let same = fields.len() == self.master_fields.len() * 2
            && fields
                .iter()
                .step_by(2)
                .zip(self.master_fields.iter())
                .all(|(a, b)| a.as_ref() == &b[..]);
        let ms = id.ms.wrapping_sub(self.master.ms) as i64;
        let seq = id.seq.wrapping_sub(self.master.seq) as i64;
        let mut size = lp_int_size(if same { 2 } else { 0 }) + lp_int_size(ms) + lp_int_size(seq);
        let elements = if same {
            size += fields
                .iter()
                .skip(1)
                .step_by(2)
                .map(|v| lp_str_size(v.as_ref()))
                .sum::<u64>();
            fields.len() as i64 / 2 + 3
        } else {
            size += lp_int_size(fields.len() as i64 / 2);
            size += fields.iter().map(|f| lp_str_size(f.as_ref())).sum::<u64>();
            fields.len() as i64 + 4
        };
        size + lp_int_size(elements)
    }
}

/// A pending entry: delivered to a consumer, not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The consumer that owns it.
    pub consumer: Bytes,
    /// When it was last delivered (ms on the server clock).
    pub delivered: u64,
    /// How many times it was delivered.
    pub count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Last time it tried anything (ms).
    pub seen: u64,
    /// Last time it read or claimed something (ms), `None` if never.
    pub active: Option<u64>,
    /// The IDs it owns in the group's PEL.
    pub pel: BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// The last ID delivered to the group.
    pub last_id: StreamId,
    /// Entries read by the group, `None` when it cannot be known (Redis's -1).
    pub entries_read: Option<i64>,
    /// The pending entries list.
    pub pel: BTreeMap<StreamId, Pending>,
    /// Consumers by name.
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    /// The consumer `name`, created if missing (seen now); whether it was created.
    pub fn consumer(&mut self, name: &Bytes, now: u64) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        let c = self
            .consumers
            .entry(name.clone())
            .or_insert_with(|| Consumer {
                seen: now,
                active: None,
                pel: BTreeSet::new(),
            });
        (c, created)
    }

    /// Removes the consumer `name` and its pending entries; how many were pending.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<u64> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len() as u64)
    }

    /// Acknowledges `id`: removes it from the PEL; whether it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(p) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(c) = self.consumers.get_mut(&p.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// Gives pending `id` to `consumer` (which must exist), delivered at `now`
    /// `count` times in all.
    pub fn assign(&mut self, id: StreamId, consumer: &Bytes, delivered: u64, count: u64) {
        if let Some(old) = self.pel.insert(
            id,
            Pending {
                consumer: consumer.clone(),
                delivered,
                count,
            },
        ) {
            if let Some(c) = self.consumers.get_mut(&old.consumer) {
                c.pel.remove(&id);
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }
}

/// Why a group operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupError {
    /// A group of that name exists.
    Exists,
    /// No group of that name.
    Missing,
}

/// An entry's fields and values packed in one allocation, each preceded by
/// its length as a LEB128 varint: a small entry costs its bytes and a few
/// more, not an allocation per field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields(Box<[u8]>);

impl Fields {
    /// Packs `items` (names and values in turn).
    pub fn pack<T: AsRef<[u8]>>(items: &[T]) -> Fields {
        let size: usize = items.iter().map(|i| i.as_ref().len() + 10).sum();
        let mut buf = Vec::with_capacity(size);
        for item in items {
            let item = item.as_ref();
            let mut n = item.len() as u64;
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    buf.push(byte);
                    break;
                }
                buf.push(byte | 0x80);
            }
            buf.extend_from_slice(item);
        }
        Fields(buf.into_boxed_slice())
    }

    /// The names and values in turn.
    pub fn iter(&self) -> FieldIter<'_> {
        FieldIter(&self.0)
    }
}

/// The items of a [`Fields`].
#[derive(Debug, Clone)]
pub struct FieldIter<'a>(&'a [u8]);

impl<'a> Iterator for FieldIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let mut len = 0u64;
        let mut shift = 0;
        let mut at = 0;
        loop {
            let byte = *self.0.get(at)?;
            at += 1;
            len |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        let item = self.0.get(at..end)?;
        self.0 = self.0.get(end..)?;
        Some(item)
    }
}

/// An entry as read: its ID and its fields and values, borrowed.
pub type EntryRef<'a> = (StreamId, &'a Fields);

/// An entry as delivered to a group: its ID and a copy of its fields and values.
pub type OwnedEntry = (StreamId, Fields);

/// A stream.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    entries: BTreeMap<StreamId, Fields>,
    nodes: VecDeque<Node>,
    /// The last ID added (or set with XSETID).
    pub last_id: StreamId,
    /// The largest ID deleted.
    pub max_deleted: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// The first entry's ID as recorded (0-0 when empty).
    pub first_id: StreamId,
    /// Consumer groups by name.
    pub groups: BTreeMap<Bytes, Group>,
}

impl Stream {
    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether it has no entries (an empty stream still exists).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of nodes (XINFO's `radix-tree-keys`).
    pub fn node_count(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// The nodes of the radix tree Redis files the stream's nodes in, keyed by
    /// their first IDs as 16 big-endian bytes (XINFO's `radix-tree-nodes`): a
    /// compressed trie, where a run of bytes shared by every key below is one
    /// node and a key's end is a node of its own.
    pub fn tree_nodes(&self) -> u64 {
        let keys: Vec<[u8; 16]> = self
            .nodes
            .iter()
            .map(|n| {
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(&n.master.ms.to_be_bytes());
                k[8..].copy_from_slice(&n.master.seq.to_be_bytes());
                k
            })
            .collect();
        if keys.is_empty() {
            return 1;
        }
        trie_nodes(&keys, 0)
    }

    /// The ID a new entry gets: `add` resolved against the last ID and the
    /// clock `now_ms`.
    pub fn next_id(&self, add: AddId, now_ms: u64) -> Result<StreamId, IdError> {
        let last = self.last_id;
        let id = match add {
            AddId::Auto => {
                if now_ms > last.ms {
                    StreamId::new(now_ms, 0)
                } else {
                    last.next().ok_or(IdError::Exhausted)?
                }
            }
            AddId::Seq(ms) => {
                if ms == last.ms {
                    if last.seq == u64::MAX {
                        return Err(IdError::TooSmall);
                    }
                    StreamId::new(ms, last.seq + 1)
                } else {
                    StreamId::new(ms, 0)
                }
            }
            AddId::Explicit(id) => id,
        };
        if id.is_zero() {
            return Err(IdError::Zero);
        }
        if id <= last {
            return Err(IdError::TooSmall);
        }
        Ok(id)
    }

    /// Appends an entry with `id` (from [`Stream::next_id`]).
    pub fn append<T: AsRef<[u8]>>(&mut self, id: StreamId, fields: &[T], limits: NodeLimits) {
        // Redis starts a node when the last one has its fill of entries, or
        // when its listpack plus the new entry's raw length reaches the byte
        // limit.
        let raw: u64 = fields.iter().map(|f| f.as_ref().len() as u64).sum();
        let fresh = match self.nodes.back() {
            None => true,
            Some(n) => {
                (limits.bytes > 0 && n.bytes.saturating_add(raw) >= limits.bytes)
                    || (limits.entries > 0 && n.total >= limits.entries)
            }
        };
        if fresh {
            self.nodes.push_back(Node::new(id, fields));
        }
        if let Some(n) = self.nodes.back_mut() {
            let size = n.entry_size(id, fields);
            n.last = id;
            n.live += 1;
            n.total += 1;
            n.bytes = n.bytes.saturating_add(size);
        }
        if self.entries.is_empty() {
            self.first_id = id;
        }
        self.entries.insert(id, Fields::pack(fields));
        self.last_id = id;
        self.entries_added = self.entries_added.saturating_add(1);
    }

    /// The entry `id`'s fields and values.
    pub fn get(&self, id: StreamId) -> Option<&Fields> {
        self.entries.get(&id)
    }

    /// Entries from `start` to `end` included, in order (reversed if `rev`),
    /// at most `count` (`None`: all).
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        count: Option<usize>,
    ) -> Vec<EntryRef<'_>> {
        if start > end {
            return Vec::new();
        }
        let it = self.entries.range(start..=end);
        let take = count.unwrap_or(usize::MAX);
        if rev {
            it.rev().take(take).map(|(k, v)| (*k, v)).collect()
        } else {
            it.take(take).map(|(k, v)| (*k, v)).collect()
        }
    }

    /// The first and last entries.
    pub fn edges(&self) -> (Option<EntryRef<'_>>, Option<EntryRef<'_>>) {
        (
            self.entries.iter().next().map(|(k, v)| (*k, v)),
            self.entries.iter().next_back().map(|(k, v)| (*k, v)),
        )
    }

    /// The node holding `id`.
    fn node_of(&self, id: StreamId) -> Option<usize> {
        let i = self.nodes.partition_point(|n| n.last < id);
        (i < self.nodes.len()).then_some(i)
    }

    /// Deletes entry `id`; whether it was there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        if self.entries.remove(&id).is_none() {
            return false;
        }
        if let Some(i) = self.node_of(id) {
            if let Some(n) = self.nodes.get_mut(i) {
                n.live = n.live.saturating_sub(1);
                if n.live == 0 {
                    self.nodes.remove(i);
                }
            }
        }
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        if id == self.first_id {
            self.first_id = self.entries.keys().next().copied().unwrap_or(StreamId::MIN);
        }
        true
    }

    /// Removes entries as `trim` says; how many.
    pub fn trim(&mut self, trim: Trim) -> u64 {
        let mut deleted = 0u64;
        if let TrimTo::MaxLen(max) = trim.to {
            if self.len() <= max {
                return 0;
            }
        }
        while let Some(node) = self.nodes.front().cloned() {
            if trim.limit > 0 && deleted.saturating_add(node.live) > trim.limit {
                break;
            }
            let whole = match trim.to {
                TrimTo::MaxLen(max) => {
                    if self.len() <= max {
                        break;
                    }
                    self.len() - node.live >= max
                }
                TrimTo::MinId(min) => node.last < min,
            };
            if whole {
                let keep = match node.last.next() {
                    Some(after) => self.entries.split_off(&after),
                    None => BTreeMap::new(),
                };
                let removed = std::mem::replace(&mut self.entries, keep);
                deleted += removed.len() as u64;
                self.nodes.pop_front();
                continue;
            }
            if trim.approx {
                break;
            }
            // Entry by entry inside the first node.
            let ids: Vec<StreamId> = self.entries.range(..=node.last).map(|(k, _)| *k).collect();
            for id in ids {
                let stop = match trim.to {
                    TrimTo::MaxLen(max) => self.len() <= max,
                    TrimTo::MinId(min) => id >= min,
                };
                if stop {
                    break;
                }
                self.entries.remove(&id);
                if let Some(n) = self.nodes.front_mut() {
                    n.live = n.live.saturating_sub(1);
                }
                deleted += 1;
                if trim.limit > 0 && deleted == trim.limit {
                    break;
                }
            }
            if self.nodes.front().is_some_and(|n| n.live == 0) {
                self.nodes.pop_front();
            }
            break;
        }
        if deleted > 0 {
            self.first_id = self.entries.keys().next().copied().unwrap_or(StreamId::MIN);
        }
        deleted
    }

    /// Whether a deleted entry may lie between `start` and the end of the
    /// stream (the group's read counter cannot be trusted past it).
    pub fn has_tombstones_after(&self, start: StreamId) -> bool {
        if self.entries.is_empty() || self.max_deleted.is_zero() {
            return false;
        }
        start <= self.max_deleted
    }

    /// How many entries were added up to `id`, when that can be known.
    pub fn entries_before(&self, id: StreamId) -> Option<i64> {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.entries.is_empty() && id <= self.last_id {
            return Some(added);
        }
        if id == self.last_id {
            return Some(added);
        }
        if id > self.last_id {
            return None;
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            let base = added.wrapping_sub(self.len() as i64);
            if id < self.first_id {
                return Some(base);
            }
            if id == self.first_id {
                return Some(base.wrapping_add(1));
            }
        }
        None
    }

    /// A group's lag: entries added it has not read, when that can be known.
    pub fn lag(&self, group: &Group) -> Option<i64> {
        let added = self.entries_added as i64;
        if added == 0 {
            return Some(0);
        }
        if let Some(read) = group.entries_read {
            if !self.has_tombstones_after(group.last_id) {
                return Some(added.wrapping_sub(read));
            }
        }
        self.entries_before(group.last_id)
            .map(|read| added.wrapping_sub(read))
    }

    /// Creates group `name` at `last_id`.
    pub fn create_group(
        &mut self,
        name: &Bytes,
        last_id: StreamId,
        entries_read: Option<i64>,
    ) -> Result<(), GroupError> {
        if self.groups.contains_key(name) {
            return Err(GroupError::Exists);
        }
        self.groups.insert(
            name.clone(),
            Group {
                last_id,
                entries_read,
                ..Group::default()
            },
        );
        Ok(())
    }

    /// Reads new entries for group `name` after its last delivered ID, at most
    /// `count`, advancing the group; with `noack` they are not made pending.
    /// Returns the entries delivered.
    pub fn read_new(
        &mut self,
        group: &[u8],
        consumer: &Bytes,
        count: Option<usize>,
        noack: bool,
        now: u64,
    ) -> Result<Vec<OwnedEntry>, GroupError> {
        let Some(g) = self.groups.get(group) else {
            return Err(GroupError::Missing);
        };
        let mut out = Vec::new();
        let take = count.unwrap_or(usize::MAX);
        for (id, fields) in self
            .entries
            .range((Bound::Excluded(g.last_id), Bound::Unbounded))
            .take(take)
        {
            out.push((*id, fields.clone()));
        }
        let mut read = g.entries_read;
        let mut last = g.last_id;
        for (id, _) in &out {
            if *id > last {
                read = if read.is_some() && !self.has_tombstones_after(*id) {
                    read.map(|r| r.wrapping_add(1))
                } else {
                    self.entries_before(*id)
                };
                last = *id;
            }
        }
        let Some(g) = self.groups.get_mut(group) else {
            return Err(GroupError::Missing);
        };
        g.entries_read = read;
        g.last_id = last;
        if out.is_empty() {
            // Redis 7.0 looks the consumer up (making it) only when it has
            // entries to give it.
            return Ok(out);
        }
        let (c, _) = g.consumer(consumer, now);
        c.seen = now;
        c.active = Some(now);
        if !noack {
            for (id, _) in &out {
                g.assign(*id, consumer, now, 1);
            }
        }
        Ok(out)
    }

    /// Whether entry `id` exists.
    pub fn contains(&self, id: StreamId) -> bool {
        self.entries.contains_key(&id)
    }

    /// Sets the last ID (XSETID, XGROUP SETID helpers are the caller's).
    pub fn set_last_id(&mut self, id: StreamId) {
        self.last_id = id;
    }
}

/// Nodes of the compressed trie holding `keys` (sorted, distinct, all 16
/// bytes) from byte `depth` on, the node at `depth` included.
fn trie_nodes(keys: &[[u8; 16]], depth: usize) -> u64 {
    if depth >= 16 {
        return 1;
    }
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
        return 0;
    };
    // Sorted keys share exactly the prefix their first and last share.
    let shared = (depth..16).take_while(|&i| first[i] == last[i]).count();
    if shared > 0 {
        // One compressed node for the shared run, then what follows it.
        return 1 + trie_nodes(keys, depth + shared);
    }
    // A branching node, one child per distinct byte.
    let mut total = 1;
    let mut start = 0;
    while start < keys.len() {
        let byte = keys[start][depth];
        let end = start
            + keys[start..]
                .iter()
                .take_while(|k| k[depth] == byte)
                .count();
        total += trie_nodes(&keys[start..end], depth + 1);
        start = end;
    }
    total
}

/// The name OBJECT ENCODING reports.
pub fn encoding_name() -> &'static str {
    "stream"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fv() -> Vec<Bytes> {
        vec![Bytes::from_static(b"f"), Bytes::from_static(b"v")]
    }

    fn filled(n: u64) -> Stream {
        let mut s = Stream::default();
        for i in 1..=n {
            s.append(StreamId::new(i, 0), &fv(), NodeLimits::default());
        }
        s
    }

    #[test]
    fn packed_fields_come_back_as_given() {
        let long = vec![b'x'; 300];
        let items: Vec<&[u8]> = vec![b"", b"a", &long, b"\x00\xff"];
        let packed = Fields::pack(&items);
        assert_eq!(packed.iter().collect::<Vec<_>>(), items);
        assert_eq!(
            Fields(Box::new([0x85])).iter().count(),
            0,
            "a cut length ends the items"
        );
    }

    #[test]
    fn ids_parse_as_redis_reads_them() {
        assert_eq!(parse_id(b"5", 0), Some(StreamId::new(5, 0)));
        assert_eq!(parse_id(b"5", u64::MAX), Some(StreamId::new(5, u64::MAX)));
        assert_eq!(parse_id(b"5-3", 0), Some(StreamId::new(5, 3)));
        assert_eq!(parse_id(b"5-", 0), None);
        assert_eq!(parse_id(b"-5", 0), None);
        assert_eq!(parse_id(b"+5", 0), None);
        assert_eq!(parse_id(b"99999999999999999999", 0), None);
        assert_eq!(parse_add_id(b"7-*"), Some(AddId::Seq(7)));
        assert_eq!(parse_add_id(b"*"), Some(AddId::Auto));
        assert_eq!(
            parse_range_end(b"(3", false),
            Some(RangeEnd::Excl(StreamId::new(3, u64::MAX)))
        );
    }

    #[test]
    fn xadd_ids_must_grow_and_zero_is_refused() {
        let mut s = Stream::default();
        assert_eq!(
            s.next_id(AddId::Explicit(StreamId::MIN), 1),
            Err(IdError::Zero)
        );
        let id = s.next_id(AddId::Seq(5), 1).unwrap();
        assert_eq!(id, StreamId::new(5, 0));
        s.append(id, &fv(), NodeLimits::default());
        assert_eq!(s.next_id(AddId::Seq(5), 1), Ok(StreamId::new(5, 1)));
        assert_eq!(s.next_id(AddId::Seq(4), 1), Err(IdError::TooSmall));
        assert_eq!(s.next_id(AddId::Auto, 1), Ok(StreamId::new(5, 1)));
        assert_eq!(s.next_id(AddId::Auto, 9), Ok(StreamId::new(9, 0)));
    }

    #[test]
    fn approximate_trim_removes_only_whole_nodes() {
        let mut s = filled(250);
        assert_eq!(s.node_count(), 3);
        let trim = Trim {
            to: TrimTo::MaxLen(120),
            approx: true,
            limit: 0,
        };
        assert_eq!(s.trim(trim), 100);
        assert_eq!(s.len(), 150);
        let exact = Trim {
            approx: false,
            ..trim
        };
        assert_eq!(s.trim(exact), 30);
        assert_eq!(s.len(), 120);
        assert_eq!(s.first_id, StreamId::new(131, 0));
    }

    #[test]
    fn deleting_every_entry_of_a_node_drops_it_and_tracks_the_largest_deleted() {
        let mut s = filled(3);
        assert!(s.delete(StreamId::new(2, 0)));
        assert!(!s.delete(StreamId::new(2, 0)));
        assert_eq!(s.max_deleted, StreamId::new(2, 0));
        assert!(s.delete(StreamId::new(1, 0)));
        assert_eq!(s.first_id, StreamId::new(3, 0));
        assert!(s.delete(StreamId::new(3, 0)));
        assert_eq!(s.node_count(), 0);
        assert_eq!(s.first_id, StreamId::MIN);
    }

    #[test]
    fn a_group_reads_new_entries_and_tracks_them_as_pending() {
        let mut s = filled(3);
        s.create_group(&Bytes::from_static(b"g"), StreamId::MIN, None)
            .unwrap();
        let c = Bytes::from_static(b"c");
        let got = s.read_new(b"g", &c, Some(2), false, 10).unwrap();
        assert_eq!(got.len(), 2);
        let g = &s.groups[&b"g"[..]];
        assert_eq!(g.last_id, StreamId::new(2, 0));
        assert_eq!(g.entries_read, Some(2));
        assert_eq!(g.pel.len(), 2);
        assert_eq!(s.lag(g), Some(1));
        let g = s.groups.get_mut(&b"g"[..]).unwrap();
        assert!(g.ack(StreamId::new(1, 0)));
        assert_eq!(g.delete_consumer(b"c"), Some(1));
        assert!(g.pel.is_empty());
    }
}
