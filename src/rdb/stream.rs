//! A stream ↔ its RDB payload: STREAM_LISTPACKS_2 (Redis 7.0) written;
//! STREAM_LISTPACKS (5.0 to 6.2), STREAM_LISTPACKS_2 and STREAM_LISTPACKS_3
//! (7.2) read.
//!
//! Payload: the number of nodes, then per node its master ID as a 16-byte
//! big-endian string and its listpack; the length; the last ID (ms, seq as
//! lengths); from type 19 on, the first ID, the largest deleted ID and the
//! entries ever added; the groups: name, last delivered ID, from type 19 on
//! the entries read (a length; -1 as 2^64-1), the group's PEL (count, then per
//! entry the raw 16-byte ID, delivery time as 8 bytes LE ms and delivery
//! count), its consumers (count, then name, seen time as 8 bytes LE, from
//! type 21 on the active time, and the IDs of its PEL, each one that must be
//! in the group's).
//!
//! A node's listpack, as Redis's `t_stream.c` lays it out: the master entry
//! (live count, deleted count, number of master fields, the names, a 0), then
//! per entry: flags (1 deleted, 2 same fields as the master), the ms and seq
//! differences from the master ID, then the values alone (same fields) or the
//! number of fields and the names and values in turn, then the number of
//! elements the entry took (the backlink Redis walks backwards with).
//!
//! Reading checks what Redis's deep sanitization checks and what latchkey's
//! stream relies on: every listpack element and count, IDs rising within a
//! node and from node to node, the live count against the stated length, the
//! last ID at or above every entry, the group and consumer names distinct,
//! every consumer's PEL entry in the group's PEL and owned by one consumer,
//! every PEL entry owned. Every count is checked against the bytes left before
//! anything is allocated for it.

use super::encoding::{read_listpack, write_len, write_string, Elem, Input, ListpackWriter};
use super::value::kind;
use super::RdbError;
use crate::types::stream::{Consumer, Group, NodeBuilder, Pending, Stream, StreamId};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// Entry flags in a node's listpack.
const FLAG_DELETED: i64 = 1;
const FLAG_SAME_FIELDS: i64 = 2;

fn id_key(id: StreamId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.ms.to_be_bytes());
    k[8..].copy_from_slice(&id.seq.to_be_bytes());
    k
}

fn id_of(k: &[u8; 16]) -> StreamId {
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&k[..8]);
    seq.copy_from_slice(&k[8..]);
    StreamId::new(u64::from_be_bytes(ms), u64::from_be_bytes(seq))
}

fn write_id(out: &mut Vec<u8>, id: StreamId) {
    write_len(out, id.ms);
    write_len(out, id.seq);
}

/// Appends a stream's STREAM_LISTPACKS_2 payload (without the type byte).
pub fn write(out: &mut Vec<u8>, s: &Stream, compress: bool) {
    write_as(out, s, compress, kind::STREAM_LISTPACKS_2);
}

/// The payload in the layout of type `kind_byte` (15, 19 or 21: the older
/// and newer ones only for tests of the reader).
fn write_as(out: &mut Vec<u8>, s: &Stream, compress: bool, kind_byte: u8) {
    let v2 = kind_byte >= kind::STREAM_LISTPACKS_2;
    write_len(out, s.node_count());
    for node in s.nodes() {
        write_string(out, &id_key(node.master()), compress);
        write_string(out, &node_listpack(node), compress);
    }
    write_len(out, s.len());
    write_id(out, s.last_id);
    if v2 {
        write_id(out, s.first_id);
        write_id(out, s.max_deleted);
        write_len(out, s.entries_added);
    }
    write_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        write_string(out, name, compress);
        write_id(out, g.last_id);
        if v2 {
            write_len(out, g.entries_read.map_or(u64::MAX, |r| r as u64));
        }
        write_len(out, g.pel.len() as u64);
        for (id, p) in &g.pel {
            out.extend_from_slice(&id_key(*id));
            out.extend_from_slice(&p.delivered.to_le_bytes());
            write_len(out, p.count);
        }
        write_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            write_string(out, cname, compress);
            out.extend_from_slice(&c.seen.to_le_bytes());
            if kind_byte >= kind::STREAM_LISTPACKS_3 {
                out.extend_from_slice(&c.active.map_or(u64::MAX, |t| t).to_le_bytes());
            }
            write_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id_key(*id));
            }
        }
    }
}

fn node_listpack(node: crate::types::stream::NodeView<'_>) -> Vec<u8> {
    let mut lp = ListpackWriter::new();
    let names: Vec<&[u8]> = node.master_fields().collect();
    lp.push_integer(node.live() as i64);
    lp.push_integer(node.deleted() as i64);
    lp.push_integer(names.len() as i64);
    for n in &names {
        lp.push(n);
    }
    lp.push_integer(0);
    let master = node.master();
    for e in node.entries() {
        let flags = if e.deleted { FLAG_DELETED } else { 0 }
            | if e.same_fields { FLAG_SAME_FIELDS } else { 0 };
        lp.push_integer(flags);
        lp.push_integer(e.id.ms.wrapping_sub(master.ms) as i64);
        lp.push_integer(e.id.seq.wrapping_sub(master.seq) as i64);
        let mut items = 0i64;
        if e.same_fields {
            for v in e.items {
                lp.push(v);
                items += 1;
            }
            lp.push_integer(items + 3);
        } else {
            let all: Vec<&[u8]> = e.items.collect();
            lp.push_integer(all.len() as i64 / 2);
            for f in &all {
                lp.push(f);
            }
            lp.push_integer(all.len() as i64 + 4);
        }
    }
    lp.finish()
}

// ---- reading --------------------------------------------------------------------

/// A listpack's elements with a cursor; every read is checked.
struct Elems<'a> {
    items: Vec<Elem<'a>>,
    at: usize,
    base: usize,
}

impl<'a> Elems<'a> {
    fn bad(&self, what: &'static str) -> RdbError {
        RdbError::Invalid {
            offset: self.base,
            what,
        }
    }

    fn next(&mut self) -> Result<Elem<'a>, RdbError> {
        let e = *self
            .items
            .get(self.at)
            .ok_or(self.bad("stream listpack ends inside an entry"))?;
        self.at += 1;
        Ok(e)
    }

    /// An integer element (a string holding one's text counts, as in Redis).
    fn int(&mut self) -> Result<i64, RdbError> {
        match self.next()? {
            Elem::Int(v) => Ok(v),
            Elem::Str(s) => crate::types::string::canonical_integer(s)
                .ok_or(self.bad("stream listpack integer expected")),
        }
    }

    /// A count of elements still to come in this listpack.
    fn count(&mut self) -> Result<usize, RdbError> {
        let n = self.int()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.items.len() - self.at => Ok(n),
            _ => Err(self.bad("stream listpack count")),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>, RdbError> {
        Ok(self.next()?.to_vec())
    }
}

/// Reads the payload of a stream of type `kind_byte` (15, 19 or 21).
pub fn read(kind_byte: u8, inp: &mut Input<'_>) -> Result<Stream, RdbError> {
    let at = inp.offset();
    let bad = |what: &'static str| RdbError::Invalid { offset: at, what };
    let mut s = Stream::default();
    // A node is at least its key (17 bytes) and a listpack string.
    let nodes = inp.count(18)?;
    for _ in 0..nodes {
        let key_at = inp.offset();
        let key = inp.string()?;
        let key: [u8; 16] = key.as_slice().try_into().map_err(|_| RdbError::Invalid {
            offset: key_at,
            what: "stream node key is not a stream ID",
        })?;
        let lp_at = inp.offset();
        let lp = inp.string()?;
        let node = read_node(id_of(&key), &lp, lp_at)?;
        s.push_node(node).map_err(|_| RdbError::Invalid {
            offset: key_at,
            what: "stream nodes out of order",
        })?;
    }
    let length = inp.length()?;
    s.last_id = read_id(inp)?;
    if kind_byte >= kind::STREAM_LISTPACKS_2 {
        // The first ID is recomputed from the entries (latchkey keeps 0-0 for
        // an empty stream, where Redis may keep the largest ID).
        read_id(inp)?;
        s.max_deleted = read_id(inp)?;
        s.entries_added = inp.length()?;
    } else {
        s.entries_added = length;
    }
    if length != s.len() {
        return Err(bad("stream length does not match its entries"));
    }
    if s.last_id < s.last_stored() {
        return Err(bad("stream last ID below an entry"));
    }
    if s.entries_added < length {
        return Err(bad("stream entries added below its length"));
    }
    // A group is at least a name, an ID, a read counter and two counts.
    let groups = inp.count(6)?;
    for _ in 0..groups {
        let name = Bytes::from(inp.string()?);
        let last_id = read_id(inp)?;
        let entries_read = if kind_byte >= kind::STREAM_LISTPACKS_2 {
            match inp.length()? as i64 {
                -1 => None,
                n if n >= 0 => Some(n),
                _ => return Err(inp.invalid("stream group entries read")),
            }
        } else {
            s.entries_before(last_id)
        };
        let g = read_group(kind_byte, inp, last_id, entries_read)?;
        if s.groups.insert(name, g).is_some() {
            return Err(inp.invalid("duplicate stream group"));
        }
    }
    Ok(s)
}

fn read_id(inp: &mut Input<'_>) -> Result<StreamId, RdbError> {
    Ok(StreamId::new(inp.length()?, inp.length()?))
}

fn read_group(
    kind_byte: u8,
    inp: &mut Input<'_>,
    last_id: StreamId,
    entries_read: Option<i64>,
) -> Result<Group, RdbError> {
    let mut pel: BTreeMap<StreamId, (u64, u64)> = BTreeMap::new();
    // ID, time and a count.
    for _ in 0..inp.count(25)? {
        let id = id_of(&inp.array()?);
        let delivered = u64::from_le_bytes(inp.array()?);
        let count = inp.length()?;
        if pel.insert(id, (delivered, count)).is_some() {
            return Err(inp.invalid("duplicate stream PEL entry"));
        }
    }
    let mut g = Group {
        last_id,
        entries_read,
        ..Group::default()
    };
    // A name, a time and a count.
    for _ in 0..inp.count(10)? {
        let name = Bytes::from(inp.string()?);
        let seen = u64::from_le_bytes(inp.array()?);
        let active = if kind_byte >= kind::STREAM_LISTPACKS_3 {
            // -1: never active.
            Some(u64::from_le_bytes(inp.array()?)).filter(|&t| t != u64::MAX)
        } else {
            // What Redis 7.2 takes for a consumer from an older file.
            Some(seen)
        };
        let mut owned = BTreeSet::new();
        for _ in 0..inp.count(16)? {
            let id = id_of(&inp.array()?);
            let Some((delivered, count)) = pel.remove(&id) else {
                return Err(inp.invalid("consumer PEL entry not in the group PEL"));
            };
            g.pel.insert(
                id,
                Pending {
                    consumer: name.clone(),
                    delivered,
                    count,
                },
            );
            owned.insert(id);
        }
        let c = Consumer {
            seen,
            active,
            pel: owned,
        };
        if g.consumers.insert(name, c).is_some() {
            return Err(inp.invalid("duplicate stream consumer"));
        }
    }
    if !pel.is_empty() {
        return Err(inp.invalid("stream PEL entry without a consumer"));
    }
    Ok(g)
}

/// One node's listpack, validated, as a node filed under `master`.
fn read_node(master: StreamId, lp: &[u8], base: usize) -> Result<NodeBuilder, RdbError> {
    let mut e = Elems {
        items: read_listpack(lp, base)?,
        at: 0,
        base,
    };
    let live = u64::try_from(e.int()?).map_err(|_| e.bad("stream node count"))?;
    let deleted = u64::try_from(e.int()?).map_err(|_| e.bad("stream node count"))?;
    let nfields = e.count()?;
    let mut names = Vec::with_capacity(nfields);
    for _ in 0..nfields {
        names.push(e.bytes()?);
    }
    if e.int()? != 0 {
        return Err(e.bad("stream master entry terminator"));
    }
    let mut node = NodeBuilder::new(master, &names, lp.len() as u64);
    let mut items: Vec<Vec<u8>> = Vec::new();
    while e.at < e.items.len() {
        let flags = e.int()?;
        if flags & !(FLAG_DELETED | FLAG_SAME_FIELDS) != 0 {
            return Err(e.bad("stream entry flags"));
        }
        let ms = master.ms.wrapping_add(e.int()? as u64);
        let seq = master.seq.wrapping_add(e.int()? as u64);
        let same = flags & FLAG_SAME_FIELDS != 0;
        items.clear();
        let elements = if same {
            for _ in 0..nfields {
                items.push(e.bytes()?);
            }
            nfields + 3
        } else {
            let n = e.count()?;
            // Names and values in turn.
            for _ in 0..n.checked_mul(2).ok_or(e.bad("stream entry fields"))? {
                items.push(e.bytes()?);
            }
            2 * n + 4
        };
        if usize::try_from(e.int()?).ok() != Some(elements) {
            return Err(e.bad("stream entry backlink count"));
        }
        node.push(
            StreamId::new(ms, seq),
            flags & FLAG_DELETED != 0,
            same,
            &items,
        )
        .map_err(|_| e.bad("stream entry IDs out of order"))?;
    }
    if node.total() == 0 {
        return Err(e.bad("stream node without entries"));
    }
    if node.live() != live || node.total() - node.live() != deleted {
        return Err(e.bad("stream node counts do not match its entries"));
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::stream::NodeLimits;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    /// Everything a stream holds, comparable: its nodes as stored (master,
    /// counts, entries with flags), the bookkeeping and the groups.
    fn view(s: &Stream) -> String {
        let mut out = String::new();
        for n in s.nodes() {
            let names: Vec<_> = n.master_fields().map(<[u8]>::to_vec).collect();
            out += &format!(
                "node {:?} {} {} {names:?}\n",
                n.master(),
                n.live(),
                n.deleted()
            );
            for e in n.entries() {
                let items: Vec<_> = e.items.map(<[u8]>::to_vec).collect();
                out += &format!(" {:?} {} {} {items:?}\n", e.id, e.deleted, e.same_fields);
            }
        }
        out += &format!(
            "len {} last {:?} first {:?} maxdel {:?} added {}\n",
            s.len(),
            s.last_id,
            s.first_id,
            s.max_deleted,
            s.entries_added
        );
        out + &format!("{:?}", s.groups)
    }

    fn dump(s: &Stream, kind_byte: u8) -> Vec<u8> {
        let mut out = Vec::new();
        write_as(&mut out, s, false, kind_byte);
        out
    }

    fn load(kind_byte: u8, b: &[u8]) -> Result<Stream, RdbError> {
        let mut inp = Input::new(b);
        let s = read(kind_byte, &mut inp)?;
        if !inp.is_done() {
            return Err(inp.invalid("bytes after the stream"));
        }
        Ok(s)
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Entries of every shape (same and other fields, integers, long values,
    /// far-apart IDs), two deleted, and groups with pending entries, a
    /// consumer with none and one whose read counter is unknown.
    fn varied() -> Stream {
        let mut s = Stream::default();
        let long = "x".repeat(5000);
        let mid = "y".repeat(100);
        let entries: [(StreamId, Vec<&str>); 7] = [
            (id(5, 1), vec!["a", "1", "b", "2"]),
            (id(5, 2), vec!["a", "-70000", "b", &mid]),
            (id(5, 9), vec!["c", "hello"]),
            (id(9, 0), vec!["a", "9223372036854775807", "b", &long]),
            (id(1 << 40, u64::MAX), vec!["a", "", "b", "-0"]),
            (id((1 << 40) + 1, 0), vec!["a", "1"]),
            (id((1 << 40) + 2, 3), vec!["a", "x", "b", "y"]),
        ];
        for (i, f) in &entries {
            s.append(*i, f, NodeLimits::default());
        }
        assert!(s.delete(id(5, 1)));
        assert!(s.delete(id(9, 0)));
        s.create_group(&b("g1"), StreamId::MIN, Some(0)).unwrap();
        s.create_group(&b("g2"), s.last_id, None).unwrap();
        let alice = b("alice");
        let bob = b("bob");
        s.read_new(b"g1", &alice, Some(2), false, 1_700_000_000_000)
            .unwrap();
        s.read_new(b"g1", &bob, Some(1), false, 1_700_000_000_500)
            .unwrap();
        let g = s.groups.get_mut(&b"g1"[..]).unwrap();
        g.consumer(&b("carol"), 1_700_000_001_000);
        g.assign(id(5, 9), &bob, 1_700_000_002_000, 4);
        s
    }

    /// 1000 entries over ten nodes, exactly trimmed to 950 (five entries of
    /// the first remaining node marked deleted).
    fn trimmed() -> Stream {
        let mut s = Stream::default();
        for i in 1..=1000u64 {
            let v = format!("value-{i}");
            s.append(id(i, 0), &["f", v.as_str()], NodeLimits::default());
        }
        let trim = crate::types::stream::Trim {
            to: crate::types::stream::TrimTo::MaxLen(950),
            approx: false,
            limit: 0,
        };
        assert_eq!(s.trim(trim), 50);
        s.create_group(&b("g"), id(960, 0), Some(960)).unwrap();
        s
    }

    /// No entries left, groups kept.
    fn emptied() -> Stream {
        let mut s = Stream::default();
        s.append(id(7, 0), &["f", "v"], NodeLimits::default());
        assert!(s.delete(id(7, 0)));
        s.create_group(&b("g"), id(7, 0), Some(1)).unwrap();
        s.create_group(&b("h"), StreamId::MIN, None).unwrap();
        s.groups.get_mut(&b"h"[..]).unwrap().consumer(&b("c"), 42);
        s
    }

    fn samples() -> Vec<Stream> {
        vec![varied(), trimmed(), emptied(), Stream::default()]
    }

    #[test]
    fn streams_round_trip_as_stored() {
        for s in samples() {
            let bytes = dump(&s, kind::STREAM_LISTPACKS_2);
            let back = load(kind::STREAM_LISTPACKS_2, &bytes).unwrap();
            // A 7.0 file has no active time: the seen time stands for it.
            let mut want = s.clone();
            for g in want.groups.values_mut() {
                for c in g.consumers.values_mut() {
                    c.active = Some(c.seen);
                }
            }
            assert_eq!(view(&back), view(&want));
            assert_eq!(dump(&back, kind::STREAM_LISTPACKS_2), bytes);
            // 7.2's layout keeps the active times as they are.
            let v3 = load(
                kind::STREAM_LISTPACKS_3,
                &dump(&s, kind::STREAM_LISTPACKS_3),
            )
            .unwrap();
            assert_eq!(view(&v3), view(&s));
        }
        assert_eq!(trimmed().node_count(), 10);
        assert_eq!(
            load(kind::STREAM_LISTPACKS_2, &dump(&trimmed(), 19))
                .unwrap()
                .nodes()
                .next()
                .map(|n| n.deleted()),
            Some(50)
        );
    }

    #[test]
    fn a_stream_from_before_7_0_gets_its_counters_estimated() {
        let s = trimmed();
        let back = load(kind::STREAM_LISTPACKS, &dump(&s, kind::STREAM_LISTPACKS)).unwrap();
        assert_eq!(back.len(), 950);
        assert_eq!(back.entries_added, 950);
        assert_eq!(back.max_deleted, StreamId::MIN);
        assert_eq!(back.first_id, id(51, 0));
        // As Redis estimates it: 960 is neither the first nor the last ID.
        assert_eq!(back.groups[&b"g"[..]].entries_read, None);
        let mut s = varied();
        s.groups.get_mut(&b"g2"[..]).unwrap().last_id = s.last_id;
        let back = load(kind::STREAM_LISTPACKS, &dump(&s, kind::STREAM_LISTPACKS)).unwrap();
        assert_eq!(back.groups[&b"g2"[..]].entries_read, Some(5));
    }

    #[test]
    fn every_cut_of_a_stream_payload_is_an_error() {
        for s in [varied(), emptied()] {
            for k in [
                kind::STREAM_LISTPACKS,
                kind::STREAM_LISTPACKS_2,
                kind::STREAM_LISTPACKS_3,
            ] {
                let whole = dump(&s, k);
                for n in 0..whole.len() {
                    assert!(load(k, &whole[..n]).is_err(), "type {k} cut at {n}");
                }
            }
        }
    }

    #[test]
    fn corrupt_payloads_are_refused_or_load_as_a_consistent_stream() {
        let mut rng = fastrand::Rng::with_seed(19);
        let mut loaded = 0;
        for s in [varied(), trimmed(), emptied()] {
            let whole = dump(&s, kind::STREAM_LISTPACKS_2);
            for _ in 0..800 {
                let mut b = whole.clone();
                for _ in 0..rng.usize(1..4) {
                    let i = rng.usize(..b.len());
                    b[i] = rng.u8(..);
                }
                // What loads is whole: it writes and loads back the same.
                if let Ok(back) = load(kind::STREAM_LISTPACKS_2, &b) {
                    loaded += 1;
                    let again = dump(&back, kind::STREAM_LISTPACKS_2);
                    let third = load(kind::STREAM_LISTPACKS_2, &again).unwrap();
                    assert_eq!(view(&third), view(&back));
                }
            }
        }
        assert!(loaded > 0, "some changes (a value's byte) still load");
    }

    /// A payload of `nodes` (master ID, listpack) and what follows them.
    fn payload(nodes: &[(StreamId, Vec<u8>)], tail: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_len(&mut out, nodes.len() as u64);
        for (master, lp) in nodes {
            write_string(&mut out, &id_key(*master), false);
            write_string(&mut out, lp, false);
        }
        out.extend_from_slice(tail);
        out
    }

    /// length, last ID, first ID, max deleted, entries added, no groups.
    fn meta(len: u64, last: StreamId) -> Vec<u8> {
        let mut out = Vec::new();
        write_len(&mut out, len);
        write_id(&mut out, last);
        write_id(&mut out, StreamId::MIN);
        write_id(&mut out, StreamId::MIN);
        write_len(&mut out, len);
        write_len(&mut out, 0);
        out
    }

    /// A listpack of `items` (integers as integers).
    fn lp(items: &[i64], strs: &[(usize, &str)]) -> Vec<u8> {
        let mut w = ListpackWriter::new();
        for (i, v) in items.iter().enumerate() {
            match strs.iter().find(|(at, _)| *at == i) {
                Some((_, s)) => w.push(s.as_bytes()),
                None => w.push_integer(*v),
            }
        }
        w.finish()
    }

    /// One node with entries at master+0 and master+(1,ms): master field "f".
    fn node(e2_ms: i64, e2_seq: i64, counts: (i64, i64), backlink: i64) -> Vec<u8> {
        lp(
            &[
                counts.0, counts.1, 1, 0, 0, // master: count, deleted, 1 field "f", 0
                2, 0, 0, 0, 4, // same fields, +0 +0, value, backlink
                2, e2_ms, e2_seq, 0, backlink,
            ],
            &[(3, "f"), (8, "v"), (13, "w")],
        )
    }

    #[test]
    fn hostile_payloads_are_refused() {
        let m = id(10, 5);
        let good = payload(&[(m, node(1, 0, (2, 0), 4))], &meta(2, id(11, 5)));
        let s = load(19, &good).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.last_stored(), id(11, 5));
        let bad: Vec<(&str, Vec<u8>)> = vec![
            (
                "ids go down",
                payload(&[(m, node(0, -1, (2, 0), 4))], &meta(2, id(11, 5))),
            ),
            (
                "same id twice",
                payload(&[(m, node(0, 0, (2, 0), 4))], &meta(2, id(11, 5))),
            ),
            (
                "backlink",
                payload(&[(m, node(1, 0, (2, 0), 5))], &meta(2, id(11, 5))),
            ),
            (
                "node counts",
                payload(&[(m, node(1, 0, (1, 0), 4))], &meta(2, id(11, 5))),
            ),
            (
                "length",
                payload(&[(m, node(1, 0, (2, 0), 4))], &meta(3, id(11, 5))),
            ),
            (
                "last id",
                payload(&[(m, node(1, 0, (2, 0), 4))], &meta(2, id(10, 9))),
            ),
            (
                "nodes out of order",
                payload(
                    &[
                        (m, node(1, 0, (2, 0), 4)),
                        (id(11, 5), node(1, 0, (2, 0), 4)),
                    ],
                    &meta(4, id(20, 0)),
                ),
            ),
            ("node key size", {
                let mut p = Vec::new();
                write_len(&mut p, 1);
                write_string(&mut p, b"short", false);
                write_string(&mut p, &node(1, 0, (2, 0), 4), false);
                p.extend_from_slice(&meta(2, id(11, 5)));
                p
            }),
            (
                "flags",
                payload(
                    &[(
                        m,
                        lp(&[1, 0, 1, 0, 0, 6, 0, 0, 0, 4], &[(3, "f"), (8, "v")]),
                    )],
                    &meta(1, id(11, 5)),
                ),
            ),
            (
                "master terminator",
                payload(
                    &[(
                        m,
                        lp(&[1, 0, 1, 0, 1, 2, 0, 0, 0, 4], &[(3, "f"), (8, "v")]),
                    )],
                    &meta(1, id(11, 5)),
                ),
            ),
            (
                "field count beyond the listpack",
                payload(
                    &[(m, lp(&[1, 0, 1, 0, 0, 0, 0, 0, 999, 0], &[(3, "f")]))],
                    &meta(1, id(11, 5)),
                ),
            ),
            (
                "no entries",
                payload(&[(m, lp(&[0, 0, 0, 0], &[]))], &meta(0, id(11, 5))),
            ),
            (
                "huge node count",
                vec![0x81, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (what, p) in bad {
            assert!(load(19, &p).is_err(), "{what}");
        }
    }

    /// `good`'s bytes up to its group count, then `groups` groups as `tail`.
    fn with_groups(groups: u64, tail: &[u8]) -> Vec<u8> {
        let mut m = meta(2, id(11, 5));
        m.pop();
        write_len(&mut m, groups);
        m.extend_from_slice(tail);
        payload(&[(id(10, 5), node(1, 0, (2, 0), 4))], &m)
    }

    fn group(name: &str, pel: &[(StreamId, u64)], consumers: &[(&str, &[StreamId])]) -> Vec<u8> {
        let mut out = Vec::new();
        write_string(&mut out, name.as_bytes(), false);
        write_id(&mut out, id(11, 5));
        write_len(&mut out, u64::MAX);
        write_len(&mut out, pel.len() as u64);
        for (i, count) in pel {
            out.extend_from_slice(&id_key(*i));
            out.extend_from_slice(&7u64.to_le_bytes());
            write_len(&mut out, *count);
        }
        write_len(&mut out, consumers.len() as u64);
        for (c, ids) in consumers {
            write_string(&mut out, c.as_bytes(), false);
            out.extend_from_slice(&9u64.to_le_bytes());
            write_len(&mut out, ids.len() as u64);
            for i in *ids {
                out.extend_from_slice(&id_key(*i));
            }
        }
        out
    }

    #[test]
    fn groups_must_hold_together() {
        let a = id(10, 5);
        let b2 = id(11, 5);
        let ok = group("g", &[(a, 1), (b2, 3)], &[("x", &[a]), ("y", &[b2])]);
        let s = load(19, &with_groups(1, &ok)).unwrap();
        let g = &s.groups[&b"g"[..]];
        assert_eq!(g.pel[&b2].consumer, &b"y"[..]);
        assert_eq!(g.pel[&b2].count, 3);
        assert_eq!(g.entries_read, None);
        assert!(g.consumers[&b"x"[..]].pel.contains(&a));
        let bad: Vec<(&str, Vec<u8>)> = vec![
            (
                "pel entry without consumer",
                with_groups(1, &group("g", &[(a, 1), (b2, 1)], &[("x", &[a])])),
            ),
            (
                "consumer entry not in the pel",
                with_groups(1, &group("g", &[(a, 1)], &[("x", &[a, b2])])),
            ),
            (
                "entry owned twice",
                with_groups(1, &group("g", &[(a, 1)], &[("x", &[a]), ("y", &[a])])),
            ),
            (
                "duplicate pel entry",
                with_groups(1, &group("g", &[(a, 1), (a, 1)], &[("x", &[a])])),
            ),
            (
                "duplicate consumer",
                with_groups(1, &group("g", &[], &[("x", &[]), ("x", &[])])),
            ),
            (
                "duplicate group",
                with_groups(2, &[group("g", &[], &[]), group("g", &[], &[])].concat()),
            ),
            ("huge group count", with_groups(1 << 40, &[])),
            (
                "huge pel count",
                with_groups(1, &{
                    let mut g = Vec::new();
                    write_string(&mut g, b"g", false);
                    write_id(&mut g, a);
                    write_len(&mut g, 0);
                    write_len(&mut g, 1 << 40);
                    g
                }),
            ),
            (
                "entries read below -1",
                with_groups(1, &{
                    let mut g = Vec::new();
                    write_string(&mut g, b"g", false);
                    write_id(&mut g, a);
                    write_len(&mut g, u64::MAX - 1);
                    write_len(&mut g, 0);
                    write_len(&mut g, 0);
                    g
                }),
            ),
        ];
        for (what, p) in bad {
            assert!(load(19, &p).is_err(), "{what}");
        }
    }
}
