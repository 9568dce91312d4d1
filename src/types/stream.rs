//! The stream type (XADD, XRANGE, XREADGROUP, ...): entries in ID order, the
//! bookkeeping Redis keeps beside them (last ID, largest deleted ID, entries ever
//! added, first ID) and consumer groups with their pending entries lists.
//!
//! Entries are packed as Redis packs them: in nodes of up to
//! `stream-node-max-entries` entries or `stream-node-max-bytes` bytes of
//! Redis's listpack, each node one buffer where an entry's ID is a difference
//! from the node's first ID and its field names are left out when they are the
//! first entry's. A small entry costs about its values' bytes and four more.
//! The nodes end where Redis's would, so approximate trimming (`~`), which
//! removes only whole nodes, removes what Redis removes.
//!
//! Pure operations only: no replies and no error text; failures are [`IdError`]
//! and [`GroupError`] values the command family turns into Redis's lines.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

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

    /// The ID as Redis prints it, written into `buf` without allocating;
    /// returns its length.
    pub fn write_to(self, buf: &mut [u8; 41]) -> usize {
        fn digits(mut n: u64, out: &mut [u8]) -> usize {
            let mut tmp = [0u8; 20];
            let mut i = tmp.len();
            loop {
                i -= 1;
                tmp[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            let len = tmp.len() - i;
            out[..len].copy_from_slice(&tmp[i..]);
            len
        }
        let mut at = digits(self.ms, &mut buf[..]);
        buf[at] = b'-';
        at += 1;
        at + digits(self.seq, &mut buf[at..])
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
    /// `<ms>-*` for the last ID's millisecond, whose sequence is at its
    /// maximum.
    SeqExhausted,
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

/// The integer a listpack stores `s` as: a canonical decimal (no sign but a
/// leading `-`, no leading zero, no `-0`) that fits 64 bits. No allocation:
/// XADD asks for every field.
fn lp_int(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty() || s.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && s.len() > 1 {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Bytes a listpack spends on a string element: an integer-looking one is
/// stored as an integer, as `lpAppend` does.
fn lp_str_size(s: &[u8]) -> u64 {
    if let Some(n) = lp_int(s) {
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

/// Entry flag: deleted (XDEL, an exact trim inside a node); its bytes stay
/// until the whole node goes, as in Redis.
const DELETED: u8 = 1;
/// Entry flag: the entry has its node's master fields, so only its values are
/// stored.
const SAME_FIELDS: u8 = 2;

/// Appends one entry to a node's buffer: its flags byte, its ID as deltas
/// from the node's master ID (`ms`, `seq`), the length of what follows, and
/// each item with its length.
fn put_entry<T: AsRef<[u8]>>(
    data: &mut Vec<u8>,
    flags: u8,
    ms: u64,
    seq: u64,
    items: impl Iterator<Item = T> + Clone,
) {
    let body: usize = items
        .clone()
        .map(|f| varint_len(f.as_ref().len() as u64) + f.as_ref().len())
        .sum();
    data.reserve(body + 32);
    data.push(flags);
    put_varint(data, ms);
    put_varint(data, seq);
    put_varint(data, body as u64);
    for f in items {
        put_varint(data, f.as_ref().len() as u64);
        data.extend_from_slice(f.as_ref());
    }
}

/// Appends `n` as a LEB128 varint.
fn put_varint(buf: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

/// Bytes `n` takes as a LEB128 varint.
fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads a LEB128 varint at `*at`, moving past it.
fn get_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*at)?;
        *at += 1;
        n |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
        shift += 7;
    }
}

/// One node, as Redis packs a stream: up to `stream-node-max-entries`
/// entries (or `stream-node-max-bytes` bytes of Redis's listpack) in one
/// buffer, each entry's ID stored as a difference from the node's first
/// (master) ID, and the field names left out of an entry that has the
/// master's. An entry is: a flags byte ([`DELETED`], [`SAME_FIELDS`]), the
/// milliseconds after the master's, the sequence (after the master's when the
/// milliseconds are the same), the body's length, and the body: the values
/// (same fields) or the names and values in turn, each length-prefixed, as in
/// [`Fields`]. Also kept: the last ID put in, the live entries, every entry put
/// in, and the size of the listpack Redis would have built (which decides
/// where the next node starts).
#[derive(Debug, Clone)]
struct Node {
    master: StreamId,
    names: Box<[u8]>,
    last: StreamId,
    live: u64,
    total: u64,
    bytes: u64,
    data: Vec<u8>,
}

/// One entry of a node as stored, deleted or not.
#[derive(Debug, Clone, Copy)]
struct Raw<'a> {
    /// Where its flags byte is.
    at: usize,
    /// Where the next entry starts.
    next: usize,
    id: StreamId,
    flags: u8,
    body: &'a [u8],
}

impl Node {
    /// A node whose master entry is `id` with `fields` (names and values).
    fn new<T: AsRef<[u8]>>(id: StreamId, fields: &[T]) -> Node {
        let names: Vec<&[u8]> = fields.iter().step_by(2).map(|f| f.as_ref()).collect();
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
            names: Fields::pack(&names).0,
            last: id,
            live: 0,
            total: 0,
            bytes,
            data: Vec::new(),
        }
    }

    /// Whether `fields` has this node's master field names, in order.
    fn same_names<T: AsRef<[u8]>>(&self, fields: &[T]) -> bool {
        let mut master = FieldIter(&self.names);
        fields
            .iter()
            .step_by(2)
            .all(|f| master.next() == Some(f.as_ref()))
            && master.next().is_none()
    }

    /// The bytes entry `id` with `fields` adds to Redis's listpack.
    fn lp_entry_size<T: AsRef<[u8]>>(&self, id: StreamId, fields: &[T], same: bool) -> u64 {
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

    /// Packs entry `id` (above every ID in the node) with `fields`.
    fn push<T: AsRef<[u8]>>(&mut self, id: StreamId, fields: &[T]) {
        let same = self.same_names(fields);
        self.bytes = self
            .bytes
            .saturating_add(self.lp_entry_size(id, fields, same));
        let ms = id.ms.wrapping_sub(self.master.ms);
        let seq = if ms == 0 {
            id.seq.wrapping_sub(self.master.seq)
        } else {
            id.seq
        };
        let items = fields
            .iter()
            .skip(usize::from(same))
            .step_by(1 + usize::from(same));
        put_entry(
            &mut self.data,
            if same { SAME_FIELDS } else { 0 },
            ms,
            seq,
            items,
        );
        self.last = id;
        self.live += 1;
        self.total += 1;
    }

    /// The entry whose flags byte is at `at`.
    fn raw_at(&self, at: usize) -> Option<Raw<'_>> {
        let flags = *self.data.get(at)?;
        let mut pos = at + 1;
        let ms = get_varint(&self.data, &mut pos)?;
        let seq = get_varint(&self.data, &mut pos)?;
        let len = usize::try_from(get_varint(&self.data, &mut pos)?).ok()?;
        let end = pos.checked_add(len)?;
        let body = self.data.get(pos..end)?;
        let id = if ms == 0 {
            StreamId::new(self.master.ms, self.master.seq.wrapping_add(seq))
        } else {
            StreamId::new(self.master.ms.wrapping_add(ms), seq)
        };
        Some(Raw {
            at,
            next: end,
            id,
            flags,
            body,
        })
    }

    /// Every entry, deleted ones included, in ID order.
    fn raws(&self) -> RawIter<'_> {
        RawIter { node: self, at: 0 }
    }

    /// The live entry `id`.
    fn find(&self, id: StreamId) -> Option<Raw<'_>> {
        if id < self.master || id > self.last {
            return None;
        }
        self.raws()
            .take_while(|r| r.id <= id)
            .find(|r| r.id == id && r.flags & DELETED == 0)
    }

    /// An entry's fields and values.
    fn fields<'a>(&'a self, raw: &Raw<'a>) -> FieldsRef<'a> {
        FieldsRef {
            names: (raw.flags & SAME_FIELDS != 0).then_some(&self.names[..]),
            items: raw.body,
        }
    }

    /// Marks the entry at `at` deleted.
    fn mark_deleted(&mut self, at: usize) {
        if let Some(flags) = self.data.get_mut(at) {
            *flags |= DELETED;
        }
        self.live = self.live.saturating_sub(1);
    }
}

/// The entries of a node in order.
#[derive(Debug, Clone)]
struct RawIter<'a> {
    node: &'a Node,
    at: usize,
}

impl<'a> Iterator for RawIter<'a> {
    type Item = Raw<'a>;

    fn next(&mut self) -> Option<Raw<'a>> {
        let raw = self.node.raw_at(self.at)?;
        self.at = raw.next;
        Some(raw)
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

impl Fields {
    /// A borrowed view of it.
    pub fn as_view(&self) -> FieldsRef<'_> {
        FieldsRef {
            names: None,
            items: &self.0,
        }
    }
}

/// An entry's fields and values as stored in its node: the names and values
/// in turn, or (an entry with its node's master fields) the values alone
/// beside the master's names.
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldsRef<'a> {
    names: Option<&'a [u8]>,
    items: &'a [u8],
}

impl<'a> FieldsRef<'a> {
    /// The names and values in turn.
    pub fn iter(self) -> FieldsRefIter<'a> {
        FieldsRefIter {
            names: self.names.map(FieldIter),
            items: FieldIter(self.items),
            value_next: false,
        }
    }

    /// A copy in one allocation.
    pub fn to_owned(self) -> Fields {
        if self.names.is_none() {
            return Fields(self.items.into());
        }
        let items: Vec<&[u8]> = self.iter().collect();
        Fields::pack(&items)
    }
}

/// The names and values of a [`FieldsRef`].
#[derive(Debug, Clone)]
pub struct FieldsRefIter<'a> {
    names: Option<FieldIter<'a>>,
    items: FieldIter<'a>,
    value_next: bool,
}

impl<'a> Iterator for FieldsRefIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let Some(names) = &mut self.names else {
            return self.items.next();
        };
        let item = if self.value_next {
            self.items.next()
        } else {
            names.next()
        };
        self.value_next = !self.value_next;
        item
    }
}

/// An entry as read: its ID and its fields and values, borrowed from its node.
pub type EntryRef<'a> = (StreamId, FieldsRef<'a>);

/// A stream.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// The nodes in ID order (each node's IDs above the previous node's); a
    /// node whose entries are all deleted is dropped.
    nodes: VecDeque<Node>,
    /// Live entries.
    length: u64,
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
        self.length
    }

    /// Whether it has no entries (an empty stream still exists).
    pub fn is_empty(&self) -> bool {
        self.length == 0
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
                        return Err(IdError::SeqExhausted);
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
        let fresh = match self.nodes.back_mut() {
            None => true,
            Some(n) => {
                let full = (limits.bytes > 0 && n.bytes.saturating_add(raw) >= limits.bytes)
                    || (limits.entries > 0 && n.total >= limits.entries);
                if full {
                    // A node takes no more entries: it keeps no spare room.
                    n.data.shrink_to_fit();
                }
                full
            }
        };
        if fresh {
            self.nodes.push_back(Node::new(id, fields));
        }
        if let Some(n) = self.nodes.back_mut() {
            n.push(id, fields);
        }
        if self.length == 0 {
            self.first_id = id;
        }
        self.length += 1;
        self.last_id = id;
        self.entries_added = self.entries_added.saturating_add(1);
    }

    /// The index of the node that may hold `id`.
    fn node_of(&self, id: StreamId) -> Option<usize> {
        let i = self.nodes.partition_point(|n| n.last < id);
        (i < self.nodes.len()).then_some(i)
    }

    /// The entry `id`'s fields and values.
    pub fn get(&self, id: StreamId) -> Option<FieldsRef<'_>> {
        let node = self.nodes.get(self.node_of(id)?)?;
        let raw = node.find(id)?;
        Some(node.fields(&raw))
    }

    /// Whether entry `id` exists.
    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
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
        let take = count.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if start > end || take == 0 {
            return out;
        }
        if rev {
            let upto = self.nodes.partition_point(|n| n.master <= end);
            for node in self.nodes.range(..upto).rev() {
                if node.last < start {
                    break;
                }
                let raws: smallvec::SmallVec<[Raw<'_>; 128]> = node
                    .raws()
                    .filter(|r| r.flags & DELETED == 0 && r.id >= start && r.id <= end)
                    .collect();
                for raw in raws.iter().rev() {
                    out.push((raw.id, node.fields(raw)));
                    if out.len() == take {
                        return out;
                    }
                }
            }
        } else {
            let from = self.nodes.partition_point(|n| n.last < start);
            for node in self.nodes.range(from..) {
                if node.master > end {
                    break;
                }
                for raw in node.raws() {
                    if raw.id > end {
                        return out;
                    }
                    if raw.id < start || raw.flags & DELETED != 0 {
                        continue;
                    }
                    out.push((raw.id, node.fields(&raw)));
                    if out.len() == take {
                        return out;
                    }
                }
            }
        }
        out
    }

    /// The first live entry of a node.
    fn first_of(node: &Node) -> Option<EntryRef<'_>> {
        node.raws()
            .find(|r| r.flags & DELETED == 0)
            .map(|r| (r.id, node.fields(&r)))
    }

    /// The first and last entries.
    pub fn edges(&self) -> (Option<EntryRef<'_>>, Option<EntryRef<'_>>) {
        let first = self.nodes.front().and_then(Stream::first_of);
        let last = self.nodes.back().and_then(|node| {
            node.raws()
                .filter(|r| r.flags & DELETED == 0)
                .last()
                .map(|r| (r.id, node.fields(&r)))
        });
        (first, last)
    }

    /// The first live entry's ID, 0-0 when empty.
    fn first_live(&self) -> StreamId {
        self.nodes
            .front()
            .and_then(Stream::first_of)
            .map_or(StreamId::MIN, |(id, _)| id)
    }

    /// Deletes entry `id`; whether it was there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(i) = self.node_of(id) else {
            return false;
        };
        let Some(node) = self.nodes.get_mut(i) else {
            return false;
        };
        let Some(at) = node.find(id).map(|r| r.at) else {
            return false;
        };
        node.mark_deleted(at);
        if node.live == 0 {
            self.nodes.remove(i);
        }
        self.length -= 1;
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        if id == self.first_id {
            self.first_id = self.first_live();
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
        while let Some(node) = self.nodes.front_mut() {
            let live = node.live;
            if trim.limit > 0 && deleted.saturating_add(live) > trim.limit {
                break;
            }
            let whole = match trim.to {
                TrimTo::MaxLen(max) => {
                    if self.length <= max {
                        break;
                    }
                    self.length - live >= max
                }
                TrimTo::MinId(min) => node.last < min,
            };
            if whole {
                self.nodes.pop_front();
                self.length -= live;
                deleted += live;
                continue;
            }
            if trim.approx {
                break;
            }
            // Entry by entry inside the first node: marked deleted, as Redis
            // does.
            let mut at = 0;
            while let Some(raw) = node.raw_at(at) {
                at = raw.next;
                if raw.flags & DELETED != 0 {
                    continue;
                }
                let stop = match trim.to {
                    TrimTo::MaxLen(max) => self.length <= max,
                    TrimTo::MinId(min) => raw.id >= min,
                };
                if stop {
                    break;
                }
                let here = raw.at;
                node.mark_deleted(here);
                self.length -= 1;
                deleted += 1;
                if trim.limit > 0 && deleted == trim.limit {
                    break;
                }
            }
            if node.live == 0 {
                self.nodes.pop_front();
            }
            break;
        }
        if deleted > 0 {
            self.first_id = self.first_live();
        }
        deleted
    }

    /// Whether a deleted entry may lie between `start` and the end of the
    /// stream (the group's read counter cannot be trusted past it).
    pub fn has_tombstones_after(&self, start: StreamId) -> bool {
        if self.is_empty() || self.max_deleted.is_zero() {
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
        if self.is_empty() && id <= self.last_id {
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
    /// Returns the IDs delivered: the live entries from the first to the last
    /// of them, as [`Stream::range`] gives them.
    pub fn read_new(
        &mut self,
        group: &[u8],
        consumer: &Bytes,
        count: Option<usize>,
        noack: bool,
        now: u64,
    ) -> Result<Vec<StreamId>, GroupError> {
        let Some(g) = self.groups.get(group) else {
            return Err(GroupError::Missing);
        };
        let out: Vec<StreamId> = match g.last_id.next() {
            Some(start) => self
                .range(start, StreamId::MAX, false, count)
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            None => Vec::new(),
        };
        let mut read = g.entries_read;
        let mut last = g.last_id;
        for id in &out {
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
            for id in &out {
                g.assign(*id, consumer, now, 1);
            }
        }
        Ok(out)
    }

    /// Sets the last ID (XSETID, XGROUP SETID helpers are the caller's).
    pub fn set_last_id(&mut self, id: StreamId) {
        self.last_id = id;
    }

    /// The nodes in ID order, as stored (the RDB writer's view).
    pub fn nodes(&self) -> impl Iterator<Item = NodeView<'_>> {
        self.nodes.iter().map(|node| NodeView { node })
    }

    /// The ID of the last entry stored, deleted ones included (0-0 with no
    /// node).
    pub fn last_stored(&self) -> StreamId {
        self.nodes.back().map_or(StreamId::MIN, |n| n.last)
    }

    /// The ID of the first entry stored, deleted ones included; the largest
    /// ID with no node (Redis's `streamGetEdgeID` keeping tombstones: what an
    /// approximate MINID trim is logged as).
    pub fn first_stored(&self) -> StreamId {
        self.nodes
            .front()
            .and_then(|n| n.raws().next())
            .map_or(StreamId::MAX, |r| r.id)
    }

    /// Puts a rebuilt node after the last one, counting its live entries; a
    /// node with none is dropped (a stream keeps no such node). `first_id`
    /// follows. The caller sets the bookkeeping fields.
    pub fn push_node(&mut self, b: NodeBuilder) -> Result<(), NodeError> {
        let mut node = b.node;
        if let Some(prev) = self.nodes.back() {
            if node.master <= prev.last {
                return Err(NodeError::NodeOrder);
            }
        }
        if node.live == 0 {
            return Ok(());
        }
        node.data.shrink_to_fit();
        self.length += node.live;
        self.nodes.push_back(node);
        self.first_id = self.first_live();
        Ok(())
    }
}

/// One node of a stream as stored, for the RDB writer ([`Stream::nodes`]).
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    node: &'a Node,
}

impl<'a> NodeView<'a> {
    /// The node's master ID (its first entry's, the key Redis files it under).
    pub fn master(self) -> StreamId {
        self.node.master
    }

    /// The master entry's field names.
    pub fn master_fields(self) -> FieldIter<'a> {
        FieldIter(&self.node.names)
    }

    /// Live entries.
    pub fn live(self) -> u64 {
        self.node.live
    }

    /// Entries marked deleted whose bytes the node still holds.
    pub fn deleted(self) -> u64 {
        self.node.total - self.node.live
    }

    /// Every entry, deleted ones included, in ID order.
    pub fn entries(self) -> impl Iterator<Item = StoredEntry<'a>> {
        self.node.raws().map(|r| StoredEntry {
            id: r.id,
            deleted: r.flags & DELETED != 0,
            same_fields: r.flags & SAME_FIELDS != 0,
            items: FieldIter(r.body),
        })
    }
}

/// One entry of a node as stored.
#[derive(Debug, Clone)]
pub struct StoredEntry<'a> {
    /// Its ID.
    pub id: StreamId,
    /// Marked deleted.
    pub deleted: bool,
    /// It has the master's field names: `items` holds its values alone.
    pub same_fields: bool,
    /// The values (`same_fields`), or the names and values in turn.
    pub items: FieldIter<'a>,
}

/// Why a node cannot be put back into a stream (a corrupt snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeError {
    /// An entry's ID is not above the one before it (or below the master).
    IdOrder,
    /// A same-fields entry whose number of values is not the master's.
    FieldCount,
    /// The node's master ID is not above the previous node's last entry.
    NodeOrder,
}

/// A node rebuilt entry by entry from a snapshot, then put back with
/// [`Stream::push_node`].
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    node: Node,
    master_fields: usize,
}

impl NodeBuilder {
    /// A node filed under `master` whose master entry has `names`; `bytes` is
    /// the size of its listpack (where the next node starts depends on it).
    pub fn new<T: AsRef<[u8]>>(master: StreamId, names: &[T], bytes: u64) -> NodeBuilder {
        NodeBuilder {
            node: Node {
                master,
                names: Fields::pack(names).0,
                last: master,
                live: 0,
                total: 0,
                bytes,
                data: Vec::new(),
            },
            master_fields: names.len(),
        }
    }

    /// Appends an entry as stored: `items` are its values when `same_fields`,
    /// else its names and values in turn. Its ID must be above the previous
    /// entry's (the first may equal the master ID, not be below it).
    pub fn push<T: AsRef<[u8]>>(
        &mut self,
        id: StreamId,
        deleted: bool,
        same_fields: bool,
        items: &[T],
    ) -> Result<(), NodeError> {
        let n = &mut self.node;
        let in_order = if n.total == 0 {
            id >= n.master
        } else {
            id > n.last
        };
        if !in_order {
            return Err(NodeError::IdOrder);
        }
        if same_fields && items.len() != self.master_fields {
            return Err(NodeError::FieldCount);
        }
        let ms = id.ms - n.master.ms;
        let seq = if ms == 0 {
            id.seq - n.master.seq
        } else {
            id.seq
        };
        put_entry(
            &mut n.data,
            (u8::from(deleted) * DELETED) | (u8::from(same_fields) * SAME_FIELDS),
            ms,
            seq,
            items.iter(),
        );
        n.last = id;
        n.total += 1;
        n.live += u64::from(!deleted);
        Ok(())
    }

    /// Live entries so far.
    pub fn live(&self) -> u64 {
        self.node.live
    }

    /// Entries so far, deleted ones included.
    pub fn total(&self) -> u64 {
        self.node.total
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
    fn listpack_integers_are_canonical_decimals() {
        for (s, want) in [
            (&b"0"[..], Some(0)),
            (b"-12", Some(-12)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"-9223372036854775808", Some(i64::MIN)),
            (b"9223372036854775808", None),
            (b"-0", None),
            (b"01", None),
            (b"+1", None),
            (b"", None),
            (b"-", None),
            (b"1a", None),
        ] {
            assert_eq!(lp_int(s), want, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn ids_are_written_as_redis_prints_them() {
        for id in [
            StreamId::MIN,
            StreamId::new(1_733_381_234_567, 12),
            StreamId::MAX,
        ] {
            let mut buf = [0u8; 41];
            let n = id.write_to(&mut buf);
            assert_eq!(&buf[..n], &id.to_bytes()[..]);
        }
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

    fn items(f: FieldsRef<'_>) -> Vec<Vec<u8>> {
        f.iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn entries_come_back_with_their_own_or_the_master_fields() {
        let mut s = Stream::default();
        let ids = [
            StreamId::new(5, 7),
            StreamId::new(5, 9),
            StreamId::new(6, 0),
            StreamId::new(1 << 40, u64::MAX),
        ];
        let shapes: [&[&[u8]]; 4] = [
            &[b"a", b"1", b"b", b"2"],
            &[b"a", b"x", b"b", b""],
            &[b"b", b"1", b"a", b"2"],
            &[b"a", b"1"],
        ];
        for (id, f) in ids.iter().zip(shapes) {
            s.append(*id, f, NodeLimits::default());
        }
        assert_eq!(s.node_count(), 1);
        let got = s.range(StreamId::MIN, StreamId::MAX, false, None);
        assert_eq!(got.len(), 4);
        for ((id, f), (want_id, want)) in got.iter().zip(ids.iter().zip(shapes)) {
            assert_eq!(id, want_id);
            assert_eq!(
                items(*f),
                want.iter().map(|x| x.to_vec()).collect::<Vec<_>>()
            );
        }
        let rev: Vec<StreamId> = s
            .range(StreamId::new(5, 8), StreamId::new(6, 0), true, None)
            .iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(rev, vec![ids[2], ids[1]]);
        assert_eq!(
            items(s.get(ids[1]).unwrap()),
            vec![b"a".to_vec(), b"x".to_vec(), b"b".to_vec(), vec![]]
        );
        assert!(s.get(StreamId::new(5, 8)).is_none());
        assert_eq!(
            items(s.get(ids[2]).unwrap().to_owned().as_view()),
            vec![b"b".to_vec(), b"1".to_vec(), b"a".to_vec(), b"2".to_vec()]
        );
    }

    #[test]
    fn ranges_cross_nodes_and_skip_deleted_entries_both_ways() {
        let mut s = filled(250);
        for i in [1, 100, 101, 150, 250] {
            assert!(s.delete(StreamId::new(i, 0)));
        }
        assert_eq!(s.len(), 245);
        assert_eq!(s.first_id, StreamId::new(2, 0));
        let fwd: Vec<u64> = s
            .range(StreamId::new(98, 0), StreamId::new(103, 0), false, None)
            .iter()
            .map(|(id, _)| id.ms)
            .collect();
        assert_eq!(fwd, vec![98, 99, 102, 103]);
        let back: Vec<u64> = s
            .range(StreamId::MIN, StreamId::MAX, true, Some(3))
            .iter()
            .map(|(id, _)| id.ms)
            .collect();
        assert_eq!(back, vec![249, 248, 247]);
        let (first, last) = s.edges();
        assert_eq!(first.map(|e| e.0), Some(StreamId::new(2, 0)));
        assert_eq!(last.map(|e| e.0), Some(StreamId::new(249, 0)));
        assert_eq!(
            s.range(StreamId::MIN, StreamId::MAX, false, Some(0)).len(),
            0
        );
    }

    #[test]
    fn a_small_entry_costs_its_value_and_a_few_bytes() {
        let mut s = Stream::default();
        for i in 0..10_000u64 {
            let v = format!("value:{i}");
            s.append(
                StreamId::new(1 + i / 100, i % 100),
                &[&b"field"[..], v.as_bytes()],
                NodeLimits::default(),
            );
        }
        let packed: usize = s.nodes.iter().map(|n| n.data.capacity()).sum();
        // "value:NNNN" is 10 bytes; flags, two ID deltas and two lengths.
        assert!(packed <= 10_000 * 16, "{packed} bytes");
    }

    #[test]
    fn rebuilt_nodes_keep_their_ids_in_order() {
        let names: [&[u8]; 1] = [b"f"];
        let mut b = NodeBuilder::new(StreamId::new(5, 5), &names, 40);
        assert_eq!(
            b.push(StreamId::new(5, 4), false, true, &[b"v"]),
            Err(NodeError::IdOrder)
        );
        b.push(StreamId::new(5, 5), true, true, &[b"v"]).unwrap();
        assert_eq!(
            b.push(StreamId::new(5, 5), false, true, &[b"v"]),
            Err(NodeError::IdOrder)
        );
        assert_eq!(
            b.push(StreamId::new(6, 0), false, true, &[b"v", b"w"]),
            Err(NodeError::FieldCount)
        );
        b.push(StreamId::new(6, 0), false, false, &[b"g", b"w"])
            .unwrap();
        assert_eq!((b.live(), b.total()), (1, 2));
        let mut s = Stream::default();
        s.push_node(b).unwrap();
        assert_eq!((s.len(), s.first_id), (1, StreamId::new(6, 0)));
        assert_eq!(
            items(s.get(StreamId::new(6, 0)).unwrap()),
            vec![b"g".to_vec(), b"w".to_vec()]
        );
        assert!(s.get(StreamId::new(5, 5)).is_none());
        // A node at or below the last one's entries is refused; one with no
        // live entry is dropped.
        let mut low = NodeBuilder::new(StreamId::new(6, 0), &names, 40);
        low.push(StreamId::new(7, 0), false, true, &[b"v"]).unwrap();
        assert_eq!(s.push_node(low), Err(NodeError::NodeOrder));
        let mut dead = NodeBuilder::new(StreamId::new(8, 0), &names, 40);
        dead.push(StreamId::new(8, 0), true, true, &[b"v"]).unwrap();
        s.push_node(dead).unwrap();
        assert_eq!((s.node_count(), s.len()), (1, 1));
        let view: Vec<_> = s.nodes().next().unwrap().entries().collect();
        assert_eq!(view.len(), 2);
        assert!(view[0].deleted && view[0].same_fields);
        assert!(!view[1].deleted && !view[1].same_fields);
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
