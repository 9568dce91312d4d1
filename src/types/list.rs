//! The list type (LPUSH, RPOP, LRANGE, LINSERT, ...): a deque of packed nodes,
//! as Redis's quicklist. Pure operations; the list family (`commands/list.rs`)
//! replies.
//!
//! **Representation.** A [`List`] is a deque of [`Node`]s; a node is one buffer
//! of entries, each `varint(len) bytes back-varint(len)`, so it is walked from
//! either end (the back varint is written so that it reads from its last byte).
//! Short elements cost their length plus two bytes and one allocation is shared
//! by hundreds of them, where a deque of `Bytes` paid an allocation and 32 bytes
//! per element.
//!
//! **Node limits and OBJECT ENCODING mirror Redis 7.2** (`list-max-listpack-size`
//! is `fill`): a node holds at most `fill` entries (and 8 KB) when `fill` is
//! positive, or 4 KB << (-fill - 1) bytes (up to 64 KB) when negative, counted
//! in Redis's listpack bytes ([`listpack_entry_size`]); an element too large
//! for any node gets a *plain* node of its own. A list starts `listpack` (one
//! node) and becomes `quicklist` when a write would take it over one node's
//! limit; a quicklist becomes a listpack again after a removal leaves it one
//! packed node at most half that limit (Redis 7.2's rule, so a list at the
//! threshold does not flip back and forth).

use std::collections::VecDeque;

use bytes::Bytes;

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (LPUSH, LPOP, BLPOP).
    Left,
    /// The tail (RPUSH, RPOP, BRPOP).
    Right,
}

/// Redis's node size limit for a positive `fill` (`SIZE_SAFETY_LIMIT`).
const SAFETY_LIMIT: usize = 8192;
/// What Redis adds to an element's length when it estimates a node's growth.
const SIZE_ESTIMATE_OVERHEAD: usize = 8;
/// The largest packed node (`list-max-listpack-size -5`).
const LARGEST_NODE: usize = 65_536;
/// An empty listpack's bytes (header and end mark).
const LISTPACK_EMPTY: usize = 7;

/// A node's limits under `fill`: (bytes, entries), `usize::MAX` for none.
fn node_limit(fill: i64) -> (usize, usize) {
    if fill >= 0 {
        (
            usize::MAX,
            usize::try_from(fill.max(1)).unwrap_or(usize::MAX),
        )
    } else {
        let level = (fill.unsigned_abs() - 1).min(4);
        (4096 << level, usize::MAX)
    }
}

/// Whether a node of `bytes` listpack bytes and `count` entries is over the
/// limits of `fill` (a positive fill also keeps nodes within 8 KB).
fn exceeds(fill: i64, bytes: usize, count: usize) -> bool {
    let (size_limit, count_limit) = node_limit(fill);
    if size_limit != usize::MAX {
        bytes > size_limit
    } else {
        bytes > SAFETY_LIMIT || count > count_limit
    }
}

/// A list's node limits: `list-max-listpack-size` and the test-only
/// threshold for plain nodes (DEBUG QUICKLIST-PACKED-THRESHOLD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// `list-max-listpack-size`: positive, a count of entries per node;
    /// -1..-5, a node size of 4 KB..64 KB.
    pub size: i64,
    /// Elements of at least this many bytes get a plain node of their own;
    /// 0 leaves it to `size` (Redis 7.4's `packed_threshold`).
    pub plain_at: usize,
}

impl From<i64> for Fill {
    fn from(size: i64) -> Fill {
        Fill { size, plain_at: 0 }
    }
}

/// Whether an element of `len` bytes gets a plain node of its own.
fn is_large(len: usize, fill: Fill) -> bool {
    if fill.plain_at != 0 {
        len >= fill.plain_at
    } else if fill.size >= 0 {
        len > SAFETY_LIMIT
    } else {
        len > node_limit(fill.size).0
    }
}

/// Bytes one element takes in a Redis listpack: its encoding and data, then
/// the back-length. Integers in canonical form are stored as integers.
pub fn listpack_entry_size(element: &[u8]) -> usize {
    let data = match super::string::canonical_integer(element) {
        Some(n) if (0..=127).contains(&n) => 1,
        Some(n) if (-4096..4096).contains(&n) => 2,
        Some(n) if i16::try_from(n).is_ok() => 3,
        Some(n) if (-(1 << 23)..(1 << 23)).contains(&n) => 4,
        Some(n) if i32::try_from(n).is_ok() => 5,
        Some(_) => 9,
        None if element.len() < 64 => 1 + element.len(),
        None if element.len() < 4096 => 2 + element.len(),
        None => 5 + element.len(),
    };
    let backlen = match data {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=268_435_455 => 4,
        _ => 5,
    };
    data + backlen
}

// ---- entries -------------------------------------------------------------------

/// What the allocator (glibc's malloc) adds to a block: a request of
/// `2^k - CHUNK_HEADER` bytes takes a chunk of exactly `2^k`.
const CHUNK_HEADER: usize = 8;

/// The buffer size a node of `need` bytes grows to: the smallest power of two
/// less the allocator's header. A full node of a 8 KB limit then takes an
/// 8 KB chunk, not 8 KB and 16 bytes: two of those would not fit where a
/// freed 16 KB block (a connection's read buffer) was, and each such hole
/// would keep an 8 KB remnant unused (a tenth of a big list's bytes).
fn node_capacity(need: usize) -> usize {
    need.checked_add(CHUNK_HEADER)
        .and_then(usize::checked_next_power_of_two)
        .map_or(need, |chunk| chunk - CHUNK_HEADER)
}

/// Bytes of a varint holding `n`.
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - (n | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// Bytes an entry of `len` data bytes takes in a node.
fn entry_len(len: usize) -> usize {
    len + 2 * varint_len(len)
}

/// Writes the entry for `data` into `out`, which is exactly `entry_len` long.
fn write_entry(out: &mut [u8], data: &[u8]) {
    let v = varint_len(data.len());
    let mut n = data.len();
    for (i, b) in out[..v].iter_mut().enumerate() {
        *b = (n & 0x7f) as u8 | if i + 1 < v { 0x80 } else { 0 };
        n >>= 7;
    }
    out[v..v + data.len()].copy_from_slice(data);
    // The back varint: its last byte holds the low bits, and a set high bit
    // says that more bytes precede.
    let mut n = data.len();
    let back = &mut out[v + data.len()..];
    for (i, b) in back.iter_mut().rev().enumerate() {
        *b = (n & 0x7f) as u8 | if i + 1 < v { 0x80 } else { 0 };
        n >>= 7;
    }
}

/// The entry starting at `pos`: its data range and where the next one starts.
fn read_forward(buf: &[u8], pos: usize) -> Option<(usize, usize, usize)> {
    let mut len = 0usize;
    let mut at = pos;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(at)?;
        at += 1;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    let v = at - pos;
    let end = at.checked_add(len)?.checked_add(v)?;
    (end <= buf.len()).then_some((at, at + len, end))
}

/// The entry ending at `end`: where it starts and its data range.
fn read_backward(buf: &[u8], end: usize) -> Option<(usize, usize, usize)> {
    let mut len = 0usize;
    let mut at = end;
    for shift in (0..64).step_by(7) {
        at = at.checked_sub(1)?;
        let b = *buf.get(at)?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    let v = end - at;
    let data_start = at.checked_sub(len)?;
    let start = data_start.checked_sub(v)?;
    Some((start, data_start, at))
}

// ---- nodes ---------------------------------------------------------------------

/// One packed node: its entries, their count, and the bytes Redis's listpack
/// would take for them (what the node limits are counted in).
#[derive(Debug, Clone, Default)]
struct Node {
    buf: Vec<u8>,
    count: u32,
    lp_bytes: u32,
    /// Holds one element too large for a packed node.
    plain: bool,
}

impl Node {
    fn new() -> Node {
        Node {
            lp_bytes: LISTPACK_EMPTY as u32,
            ..Node::default()
        }
    }

    fn count(&self) -> usize {
        self.count as usize
    }

    fn lp_bytes(&self) -> usize {
        self.lp_bytes as usize
    }

    fn add_stats(&mut self, data: &[u8]) {
        self.count += 1;
        let lp = u32::try_from(listpack_entry_size(data)).unwrap_or(u32::MAX);
        self.lp_bytes = self.lp_bytes.saturating_add(lp);
    }

    /// Inserts `data` as an entry at byte offset `pos`.
    fn insert_at(&mut self, pos: usize, data: &[u8]) {
        let e = entry_len(data.len());
        let old = self.buf.len();
        let need = old + e;
        if need > self.buf.capacity() {
            // Allocator-sized steps up to the largest node (a full node then
            // sits in a buffer of its limit's size, not up to twice that, as
            // plain doubling from an odd first entry would leave), exact beyond.
            let cap = if need <= LARGEST_NODE {
                node_capacity(need)
            } else {
                need
            };
            self.buf.reserve_exact(cap - old);
        }
        self.buf.resize(need, 0);
        self.buf.copy_within(pos..old, pos + e);
        write_entry(&mut self.buf[pos..pos + e], data);
        self.add_stats(data);
    }

    fn push(&mut self, end: End, data: &[u8]) {
        match end {
            End::Left => self.insert_at(0, data),
            End::Right => self.insert_at(self.buf.len(), data),
        }
    }

    /// The entry at `end`: (start, data start, data end, entry end).
    fn edge(&self, end: End) -> Option<(usize, usize, usize, usize)> {
        match end {
            End::Left => read_forward(&self.buf, 0).map(|(d, e, n)| (0, d, e, n)),
            End::Right => {
                read_backward(&self.buf, self.buf.len()).map(|(s, d, e)| (s, d, e, self.buf.len()))
            }
        }
    }

    /// Removes the entry at `end`, handing it to `f` first.
    fn pop_with<R>(&mut self, end: End, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let (start, d, e, stop) = self.edge(end)?;
        let value = self.buf.get(d..e)?;
        let lp = u32::try_from(listpack_entry_size(value)).unwrap_or(u32::MAX);
        let out = f(value);
        self.count -= 1;
        self.lp_bytes = self.lp_bytes.saturating_sub(lp).max(LISTPACK_EMPTY as u32);
        self.buf.drain(start..stop);
        Some(out)
    }

    fn iter(&self) -> NodeIter<'_> {
        NodeIter {
            buf: &self.buf,
            front: 0,
            back: self.buf.len(),
        }
    }

    /// Byte offset of entry `i` (or the end for `i == count`).
    fn offset_of(&self, i: usize) -> usize {
        let mut pos = 0;
        for _ in 0..i {
            match read_forward(&self.buf, pos) {
                Some((_, _, next)) => pos = next,
                None => break,
            }
        }
        pos
    }

    /// A node of the given elements.
    fn from_elements<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Node {
        let mut node = Node::new();
        for e in elements {
            node.push(End::Right, e);
        }
        node
    }

    /// Keeps the elements for which `keep` says so (called in order).
    fn retain(&mut self, mut keep: impl FnMut(usize, &[u8]) -> bool) {
        let mut out = Node::new();
        out.buf.reserve(self.buf.len());
        for (i, e) in self.iter().enumerate() {
            if keep(i, e) {
                out.push(End::Right, e);
            }
        }
        out.plain = self.plain;
        *self = out;
    }
}

/// The entries of one node, from either end.
#[derive(Debug, Clone)]
struct NodeIter<'a> {
    buf: &'a [u8],
    front: usize,
    back: usize,
}

impl<'a> Iterator for NodeIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (d, e, next) = read_forward(self.buf, self.front)?;
        self.front = next;
        self.buf.get(d..e)
    }
}

impl<'a> DoubleEndedIterator for NodeIter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (start, d, e) = read_backward(self.buf, self.back)?;
        self.back = start;
        self.buf.get(d..e)
    }
}

// ---- the list ------------------------------------------------------------------

/// A list value.
#[derive(Debug, Clone, Default)]
pub struct List {
    nodes: VecDeque<Node>,
    /// The number of elements, shifted left once; the low bit is Redis's
    /// encoding: set for a quicklist (several nodes allowed), clear for one
    /// listpack. One word for both keeps a `List` at 40 bytes (an allocator
    /// size class below 48), which every small list pays.
    meta: usize,
}

impl List {
    /// An empty list (a listpack).
    pub fn new() -> List {
        List::default()
    }

    /// The nodes in order, each as (whether it is a plain node, its elements
    /// head to tail): what an RDB writer stores as quicklist nodes.
    pub fn nodes(&self) -> impl Iterator<Item = (bool, impl Iterator<Item = &[u8]> + '_)> + '_ {
        self.nodes.iter().map(|n| (n.plain, n.iter()))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.meta >> 1
    }

    fn set_len(&mut self, len: usize) {
        self.meta = (len << 1) | (self.meta & 1);
    }

    /// Whether Redis would hold it as a quicklist.
    fn is_quicklist(&self) -> bool {
        self.meta & 1 == 1
    }

    fn set_quicklist(&mut self, quicklist: bool) {
        self.meta = (self.meta & !1) | usize::from(quicklist);
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports: `listpack` or `quicklist`.
    pub fn encoding_name(&self) -> &'static str {
        if self.is_quicklist() {
            "quicklist"
        } else {
            "listpack"
        }
    }

    /// Before adding `added` elements of `bytes` raw bytes in all: a listpack
    /// that would go over one node's limit becomes a quicklist (its one node
    /// stays as it is).
    fn grow_check(&mut self, fill: Fill, added: usize, bytes: usize) {
        if self.is_quicklist() {
            return;
        }
        let lp = self.nodes.front().map_or(LISTPACK_EMPTY, Node::lp_bytes);
        if exceeds(
            fill.size,
            lp.saturating_add(bytes),
            self.len().saturating_add(added),
        ) {
            self.set_quicklist(true);
        }
    }

    /// After a removal: a quicklist of one packed node within half a node's
    /// limit becomes a listpack again.
    fn shrink_check(&mut self, fill: Fill) {
        if !self.is_quicklist() || self.nodes.len() > 1 {
            return;
        }
        let Some(node) = self.nodes.front() else {
            self.set_quicklist(false);
            return;
        };
        let (size_limit, count_limit) = node_limit(fill.size);
        if !node.plain && node.lp_bytes() <= size_limit / 2 && node.count() <= count_limit / 2 {
            self.set_quicklist(false);
        }
    }

    /// Whether `node` can take one more element of `len` bytes.
    fn allows_insert(node: &Node, fill: Fill, len: usize) -> bool {
        !node.plain
            && !is_large(len, fill)
            && !exceeds(
                fill.size,
                node.lp_bytes() + len + SIZE_ESTIMATE_OVERHEAD,
                node.count() + 1,
            )
    }

    /// Adds `value` at `end` (no conversion check: see [`List::push_all`]).
    fn push_one(&mut self, end: End, value: &[u8], fill: Fill) {
        self.set_len(self.len() + 1);
        let quicklist = self.is_quicklist();
        let edge = match end {
            End::Left => self.nodes.front_mut(),
            End::Right => self.nodes.back_mut(),
        };
        if let Some(node) = edge {
            if !quicklist || List::allows_insert(node, fill, value.len()) {
                node.push(end, value);
                return;
            }
        }
        let large = quicklist && is_large(value.len(), fill);
        let mut node = Node::new();
        if quicklist && !large && fill.size < 0 {
            // A new node at the end of a quicklist is likely to fill up:
            // it starts at half its limit, so it grows once, not through
            // every power of two (each step leaves a freed buffer between
            // live ones for other allocations to split).
            node.buf
                .reserve_exact(node_capacity(node_limit(fill.size).0 / 2 - CHUNK_HEADER));
        }
        node.push(end, value);
        node.plain = large;
        if self.nodes.is_empty() {
            self.nodes.reserve_exact(1);
        }
        match end {
            End::Left => self.nodes.push_front(node),
            End::Right => self.nodes.push_back(node),
        }
    }

    /// Adds `values` at `end` one after the other (LPUSH a b c leaves c at
    /// the head), under `list-max-listpack-size` = `fill`.
    pub fn push_all<'a, I>(&mut self, end: End, values: I, fill: impl Into<Fill>)
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        let fill = fill.into();
        let values = values.into_iter();
        let (n, bytes) = values.clone().fold((0usize, 0usize), |(n, b), v| {
            (n + 1, b.saturating_add(v.len()))
        });
        self.grow_check(fill, n, bytes);
        if n > 0 && self.nodes.is_empty() && !self.is_quicklist() {
            // A new listpack gets exactly the room its first push needs (most
            // small lists are written once): no doubling slack to carry.
            let room: usize = values.clone().map(|v| entry_len(v.len())).sum();
            let mut node = Node::new();
            node.buf.reserve_exact(room);
            self.nodes.reserve_exact(1);
            self.nodes.push_back(node);
        }
        for v in values {
            self.push_one(end, v, fill);
        }
    }

    /// Adds one `value` at `end`.
    pub fn push(&mut self, end: End, value: &[u8], fill: impl Into<Fill>) {
        let fill = fill.into();
        self.push_all(end, [value], fill);
    }

    /// Takes the element at `end`.
    pub fn pop(&mut self, end: End, fill: impl Into<Fill>) -> Option<Bytes> {
        let fill = fill.into();
        self.pop_with(end, fill, Bytes::copy_from_slice)
    }

    /// Takes the element at `end`, handing it to `f` before it goes (a reply
    /// built straight from the node, without an owned copy first).
    pub fn pop_with<R>(
        &mut self,
        end: End,
        fill: impl Into<Fill>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let fill = fill.into();
        let node = match end {
            End::Left => self.nodes.front_mut(),
            End::Right => self.nodes.back_mut(),
        }?;
        let value = node.pop_with(end, f)?;
        if node.count == 0 {
            match end {
                End::Left => self.nodes.pop_front(),
                End::Right => self.nodes.pop_back(),
            };
        }
        self.set_len(self.len() - 1);
        self.shrink_check(fill);
        Some(value)
    }

    /// The node holding element `index` (0-based from the head) and the
    /// element's position in it.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len() {
            return None;
        }
        if index < self.len() / 2 {
            let mut i = index;
            for (n, node) in self.nodes.iter().enumerate() {
                if i < node.count() {
                    return Some((n, i));
                }
                i -= node.count();
            }
        } else {
            let mut i = self.len() - 1 - index;
            for (n, node) in self.nodes.iter().enumerate().rev() {
                if i < node.count() {
                    return Some((n, node.count() - 1 - i));
                }
                i -= node.count();
            }
        }
        None
    }

    /// A Redis index (negative counts from the tail) as a position.
    pub fn position(&self, index: i64) -> Option<usize> {
        let len = i64::try_from(self.len()).ok()?;
        let i = if index < 0 {
            len.checked_add(index)?
        } else {
            index
        };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// The element at Redis index `index` (LINDEX).
    pub fn get(&self, index: i64) -> Option<&[u8]> {
        let (n, i) = self.locate(self.position(index)?)?;
        self.nodes.get(n)?.iter().nth(i)
    }

    /// Replaces the element at Redis index `index` (LSET); false when out of
    /// range.
    pub fn set(&mut self, index: i64, value: &[u8], fill: impl Into<Fill>) -> bool {
        let fill = fill.into();
        let Some((n, i)) = self.position(index).and_then(|p| self.locate(p)) else {
            return false;
        };
        self.grow_check(fill, 1, value.len());
        let quicklist = self.is_quicklist();
        let Some(node) = self.nodes.get_mut(n) else {
            return false;
        };
        let old_lp = node.iter().nth(i).map_or(0, listpack_entry_size);
        let fits = !quicklist
            || (!node.plain
                && !is_large(value.len(), fill)
                && !exceeds(
                    fill.size,
                    node.lp_bytes() - old_lp + listpack_entry_size(value),
                    node.count(),
                ))
            || node.count() == 1;
        if fits {
            let mut rebuilt =
                Node::from_elements(
                    node.iter()
                        .enumerate()
                        .map(|(j, e)| if j == i { value } else { e }),
                );
            rebuilt.plain = quicklist && is_large(value.len(), fill);
            *node = rebuilt;
        } else {
            // As Redis: the new element goes in after the old one (in this
            // node, a neighbour or a node of its own), then the old one goes.
            self.delete_at(n, i);
            self.set_len(self.len() - 1);
            self.insert_at_index(self.index_of(n, i), value, fill);
        }
        self.shrink_check(fill);
        true
    }

    /// The list index of element `i` of node `n`.
    fn index_of(&self, n: usize, i: usize) -> usize {
        self.nodes.iter().take(n).map(Node::count).sum::<usize>() + i
    }

    /// Removes element `i` of node `n` (dropping the node if emptied); the
    /// caller fixes `len`.
    fn delete_at(&mut self, n: usize, i: usize) {
        if let Some(node) = self.nodes.get_mut(n) {
            node.retain(|j, _| j != i);
            if node.count == 0 {
                self.nodes.remove(n);
            }
        }
    }

    /// Inserts `value` so that it becomes element `index` (0..=len), with
    /// quicklist rules: into the node there if it has room, else a
    /// neighbouring node at its edge, else a node split in two.
    fn insert_at_index(&mut self, index: usize, value: &[u8], fill: Fill) {
        if index == 0 {
            return self.push_one(End::Left, value, fill);
        }
        if index >= self.len() {
            return self.push_one(End::Right, value, fill);
        }
        // The element now at `index - 1`: the new one goes after it.
        let Some((n, i)) = self.locate(index - 1) else {
            return;
        };
        self.set_len(self.len() + 1);
        let quicklist = self.is_quicklist();
        let Some(node) = self.nodes.get_mut(n) else {
            return;
        };
        let at_tail = i + 1 == node.count();
        if !quicklist || List::allows_insert(node, fill, value.len()) {
            let pos = node.offset_of(i + 1);
            node.insert_at(pos, value);
            return;
        }
        if at_tail {
            if let Some(next) = self.nodes.get_mut(n + 1) {
                if List::allows_insert(next, fill, value.len()) {
                    next.push(End::Left, value);
                    return;
                }
            }
            let mut node = Node::from_elements([value]);
            node.plain = is_large(value.len(), fill);
            self.nodes.insert(n + 1, node);
            return;
        }
        // Split after element `i`; the new element ends the first half (or
        // has a node of its own when even that is full).
        let tail = Node::from_elements(node.iter().skip(i + 1));
        node.retain(|j, _| j <= i);
        let fits = List::allows_insert(node, fill, value.len());
        if fits {
            node.push(End::Right, value);
        }
        self.nodes.insert(n + 1, tail);
        if !fits {
            let mut own = Node::from_elements([value]);
            own.plain = is_large(value.len(), fill);
            self.nodes.insert(n + 1, own);
        }
    }

    /// Inserts `value` before (or `after`) the first element equal to
    /// `pivot` (LINSERT): the new length, or `None` when there is no pivot.
    pub fn insert(
        &mut self,
        pivot: &[u8],
        value: &[u8],
        after: bool,
        fill: impl Into<Fill>,
    ) -> Option<usize> {
        let fill = fill.into();
        let at = self.iter().position(|e| e == pivot)?;
        self.grow_check(fill, 1, value.len());
        self.insert_at_index(at + usize::from(after), value, fill);
        Some(self.len())
    }

    /// Removes elements equal to `value` (LREM): `count` > 0 the first
    /// `count` from the head, < 0 from the tail, 0 all. Returns how many.
    pub fn remove(&mut self, value: &[u8], count: i64, fill: impl Into<Fill>) -> usize {
        let fill = fill.into();
        let limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let mut removed = 0usize;
        let order: Vec<usize> = if count < 0 {
            (0..self.nodes.len()).rev().collect()
        } else {
            (0..self.nodes.len()).collect()
        };
        for n in order {
            if removed == limit {
                break;
            }
            let Some(node) = self.nodes.get_mut(n) else {
                continue;
            };
            let matches: Vec<usize> = node
                .iter()
                .enumerate()
                .filter(|(_, e)| *e == value)
                .map(|(i, _)| i)
                .collect();
            if matches.is_empty() {
                continue;
            }
            let room = limit - removed;
            let doomed: &[usize] = if count < 0 {
                &matches[matches.len().saturating_sub(room)..]
            } else {
                &matches[..matches.len().min(room)]
            };
            removed += doomed.len();
            node.retain(|i, _| doomed.binary_search(&i).is_err());
        }
        self.nodes.retain(|node| node.count > 0);
        self.set_len(self.len() - removed);
        if removed > 0 {
            self.shrink_check(fill);
        }
        removed
    }

    /// Keeps only the elements at Redis indexes `start..=stop` (LTRIM); an
    /// empty range empties the list.
    pub fn trim(&mut self, start: i64, stop: i64, fill: impl Into<Fill>) {
        let fill = fill.into();
        let Some((first, last)) = index_range(start, stop, self.len()) else {
            self.nodes.clear();
            self.set_len(0);
            self.set_quicklist(false);
            return;
        };
        let mut base = 0;
        for node in self.nodes.iter_mut() {
            let count = node.count();
            let (lo, hi) = (base, base + count);
            base = hi;
            if lo >= first && hi <= last + 1 {
                continue;
            }
            node.retain(|i, _| (first..=last).contains(&(lo + i)));
        }
        self.nodes.retain(|node| node.count > 0);
        self.set_len(last + 1 - first);
        self.shrink_check(fill);
    }

    /// The positions of elements equal to `value` (LPOS): starting with the
    /// `rank`-th match (negative: from the tail, -1 the last), at most `count`
    /// of them (0: all), looking at no more than `maxlen` elements (0: all).
    /// `rank` must not be 0.
    pub fn positions(&self, value: &[u8], rank: i64, count: usize, maxlen: usize) -> Vec<usize> {
        let skip = rank.unsigned_abs().saturating_sub(1);
        let want = if count == 0 { usize::MAX } else { count };
        let scan = if maxlen == 0 { usize::MAX } else { maxlen };
        let mut found = Vec::new();
        let mut seen = 0u64;
        let mut take = |i: usize, e: &[u8]| {
            if e != value {
                return true;
            }
            seen += 1;
            if seen > skip {
                found.push(i);
            }
            found.len() < want
        };
        if rank > 0 {
            for (i, e) in self.iter().enumerate().take(scan) {
                if !take(i, e) {
                    break;
                }
            }
        } else {
            for (k, e) in self.iter().rev().enumerate().take(scan) {
                if !take(self.len() - 1 - k, e) {
                    break;
                }
            }
        }
        found
    }

    /// Every element, head to tail (double-ended).
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            nodes: self.nodes.iter(),
            front: None,
            back: None,
            remaining: self.len(),
        }
    }

    /// The elements at positions `start..=stop` (as [`index_range`] gives
    /// them), head to tail, without walking the nodes before `start`
    /// element by element.
    pub fn range(&self, start: usize, stop: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let mut skip = start;
        let mut first = 0;
        for node in &self.nodes {
            if skip < node.count() {
                break;
            }
            skip -= node.count();
            first += 1;
        }
        let take = (stop + 1).saturating_sub(start);
        self.nodes
            .iter()
            .skip(first)
            .flat_map(Node::iter)
            .skip(skip)
            .take(take)
    }
}

/// The elements of a [`List`], from either end.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    nodes: std::collections::vec_deque::Iter<'a, Node>,
    front: Option<NodeIter<'a>>,
    back: Option<NodeIter<'a>>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(e) = self.front.as_mut().and_then(Iterator::next) {
                self.remaining -= 1;
                return Some(e);
            }
            match self.nodes.next() {
                Some(node) => self.front = Some(node.iter()),
                None => {
                    let e = self.back.as_mut().and_then(Iterator::next)?;
                    self.remaining -= 1;
                    return Some(e);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(e) = self.back.as_mut().and_then(DoubleEndedIterator::next_back) {
                self.remaining -= 1;
                return Some(e);
            }
            match self.nodes.next_back() {
                Some(node) => self.back = Some(node.iter()),
                None => {
                    let e = self
                        .front
                        .as_mut()
                        .and_then(DoubleEndedIterator::next_back)?;
                    self.remaining -= 1;
                    return Some(e);
                }
            }
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The positions `start..=stop` of a list of `len` elements as Redis reads
/// them (negative counts from the end, clamped); `None` when the range is empty.
pub fn index_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 {
        len.saturating_add(start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len.saturating_add(stop)
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop as usize))
}

#[cfg(test)]
mod tests;
