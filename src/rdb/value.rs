//! One value ↔ its RDB type byte and payload (Redis 7.0, RDB version 10),
//! for every type latchkey has but locks (see the module doc of
//! [`crate::rdb`] for how a file holds those). A stream is written as
//! STREAM_LISTPACKS_2 and read from that, its 5.0 and its 7.2 layout by
//! [`super::stream`].
//!
//! Writing picks the encoding the value has (OBJECT ENCODING): a listpack
//! hash or zset as HASH_LISTPACK / ZSET_LISTPACK, an intset as SET_INTSET,
//! a list as QUICKLIST_2 with one listpack per node; a table-encoded hash,
//! set or zset as HASH / SET / ZSET_2. A listpack set (Redis 7.2) is written
//! as SET, which 7.0 reads. Reading takes every encoding Redis 7.0 writes and
//! the older ones a `dump.rdb` may still hold, and builds the value with the
//! type's own operations, so its encoding follows latchkey's thresholds.

use super::encoding::{
    d2string, parse_double, read_intset, read_listpack, read_ziplist, read_zipmap,
    write_binary_double, write_intset, write_len, write_string, Elem, Input, ListpackWriter, Pair,
};
use super::RdbError;
use crate::keyspace::Value;
use crate::types::hash::Hash;
use crate::types::list::{End, List};
use crate::types::set::{Set, SetLimits};
use crate::types::zset::ZSet;
use crate::types::{CompactBytes, Encodings};

/// RDB type bytes.
pub mod kind {
    /// A string.
    pub const STRING: u8 = 0;
    /// A list as a linked list of strings (before 3.2).
    pub const LIST: u8 = 1;
    /// A set as its members.
    pub const SET: u8 = 2;
    /// A zset with text scores (before 3.0).
    pub const ZSET: u8 = 3;
    /// A hash as its pairs.
    pub const HASH: u8 = 4;
    /// A zset with binary scores.
    pub const ZSET_2: u8 = 5;
    /// A module value (not supported).
    pub const MODULE: u8 = 6;
    /// A module value, version 2 (not supported).
    pub const MODULE_2: u8 = 7;
    /// A hash as a zipmap (before 2.6).
    pub const HASH_ZIPMAP: u8 = 9;
    /// A list as a ziplist (before 3.2).
    pub const LIST_ZIPLIST: u8 = 10;
    /// A set of integers.
    pub const SET_INTSET: u8 = 11;
    /// A zset as a ziplist (before 7.0).
    pub const ZSET_ZIPLIST: u8 = 12;
    /// A hash as a ziplist (before 7.0).
    pub const HASH_ZIPLIST: u8 = 13;
    /// A quicklist of ziplists (3.2 to 6.2).
    pub const LIST_QUICKLIST: u8 = 14;
    /// A stream (5.0 to 6.2).
    pub const STREAM_LISTPACKS: u8 = 15;
    /// A hash as a listpack (7.0).
    pub const HASH_LISTPACK: u8 = 16;
    /// A zset as a listpack (7.0).
    pub const ZSET_LISTPACK: u8 = 17;
    /// A quicklist of listpacks and plain nodes (7.0).
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// A stream (7.0).
    pub const STREAM_LISTPACKS_2: u8 = 19;
    /// A set as a listpack (7.2).
    pub const SET_LISTPACK: u8 = 20;
    /// A stream (7.2).
    pub const STREAM_LISTPACKS_3: u8 = 21;
}

/// Quicklist node containers (QUICKLIST_2).
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// Why a value has no RDB form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// A lock: Redis has no type for it (a file holds it in aux fields).
    Lock,
}

/// Appends `value`'s type byte and payload; `compress` is `rdbcompression`.
pub fn write(out: &mut Vec<u8>, value: &Value, compress: bool) -> Result<(), Unsupported> {
    match value {
        Value::Str(s) => {
            out.push(kind::STRING);
            write_string(out, s.as_slice(), compress);
        }
        Value::List(l) => write_list(out, l, compress),
        Value::Set(s) => write_set(out, s, compress),
        Value::Hash(h) => write_hash(out, h, compress),
        Value::ZSet(z) => write_zset(out, z, compress),
        Value::Stream(st) => {
            out.push(kind::STREAM_LISTPACKS_2);
            super::stream::write(out, st, compress);
        }
        Value::Lock(_) => return Err(Unsupported::Lock),
    }
    Ok(())
}

fn write_list(out: &mut Vec<u8>, l: &List, compress: bool) {
    out.push(kind::LIST_QUICKLIST_2);
    let nodes: Vec<_> = l.nodes().collect();
    write_len(out, nodes.len() as u64);
    for (plain, elems) in nodes {
        if plain {
            write_len(out, CONTAINER_PLAIN);
            for e in elems {
                write_string(out, e, compress);
            }
        } else {
            write_len(out, CONTAINER_PACKED);
            let mut lp = ListpackWriter::new();
            for e in elems {
                lp.push(e);
            }
            write_string(out, &lp.finish(), compress);
        }
    }
}

fn write_set(out: &mut Vec<u8>, s: &Set, compress: bool) {
    if s.encoding_name() == "intset" {
        let mut ints: Vec<i64> = s
            .iter()
            .filter_map(|m| m.with_bytes(crate::types::string::canonical_integer))
            .collect();
        ints.sort_unstable();
        out.push(kind::SET_INTSET);
        write_string(out, &write_intset(&ints), compress);
        return;
    }
    out.push(kind::SET);
    write_len(out, s.len() as u64);
    for m in s.iter() {
        m.with_bytes(|b| write_string(out, b, compress));
    }
}

fn write_hash(out: &mut Vec<u8>, h: &Hash, compress: bool) {
    if h.encoding_name() == "listpack" {
        out.push(kind::HASH_LISTPACK);
        let mut lp = ListpackWriter::new();
        for (f, v) in h.iter() {
            lp.push(f);
            lp.push(v);
        }
        write_string(out, &lp.finish(), compress);
        return;
    }
    out.push(kind::HASH);
    write_len(out, h.len() as u64);
    for (f, v) in h.iter() {
        write_string(out, f, compress);
        write_string(out, v, compress);
    }
}

fn write_zset(out: &mut Vec<u8>, z: &ZSet, compress: bool) {
    if z.encoding_name() == "listpack" {
        out.push(kind::ZSET_LISTPACK);
        let mut lp = ListpackWriter::new();
        for (m, score) in z.iter() {
            lp.push(m);
            lp.push(d2string(score).as_bytes());
        }
        write_string(out, &lp.finish(), compress);
        return;
    }
    // Redis writes a skiplist from the highest score down, so that loading
    // inserts each member at the head.
    out.push(kind::ZSET_2);
    write_len(out, z.len() as u64);
    let members: Vec<_> = z.iter().collect();
    for (m, score) in members.into_iter().rev() {
        write_string(out, m, compress);
        write_binary_double(out, score);
    }
}

// ---- reading --------------------------------------------------------------------

/// Reads the payload of a value of type `kind` into a latchkey value built
/// under `enc`'s thresholds. A value with no elements is an error, as in
/// Redis (`Empty`).
pub fn read(kind_byte: u8, inp: &mut Input<'_>, enc: &Encodings) -> Result<Value, RdbError> {
    let at = inp.offset();
    let value = match kind_byte {
        kind::STRING => Value::Str(CompactBytes::from_vec(inp.string()?)),
        kind::LIST => {
            let n = inp.count(1)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(inp.string()?);
            }
            list_of(&items, enc)
        }
        kind::LIST_ZIPLIST => {
            let zl = blob(inp)?;
            let items = elems(read_ziplist(&zl.0, zl.1)?);
            list_of(&items, enc)
        }
        kind::LIST_QUICKLIST | kind::LIST_QUICKLIST_2 => read_quicklist(kind_byte, inp, enc)?,
        kind::SET => {
            let n = inp.count(1)?;
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                members.push(inp.string()?);
            }
            set_of(&members, enc, at)?
        }
        kind::SET_INTSET => {
            let is = blob(inp)?;
            let ints = read_intset(&is.0, is.1)?;
            let members: Vec<Vec<u8>> = ints.iter().map(|v| v.to_string().into_bytes()).collect();
            set_of(&members, enc, at)?
        }
        kind::SET_LISTPACK => {
            let lp = blob(inp)?;
            set_of(&elems(read_listpack(&lp.0, lp.1)?), enc, at)?
        }
        kind::HASH => {
            let n = inp.count(2)?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                pairs.push((inp.string()?, inp.string()?));
            }
            hash_of(&pairs, enc, at)?
        }
        kind::HASH_ZIPMAP => {
            let zm = blob(inp)?;
            hash_of(&read_zipmap(&zm.0, zm.1)?, enc, at)?
        }
        kind::HASH_ZIPLIST | kind::HASH_LISTPACK => {
            let b = blob(inp)?;
            let items = if kind_byte == kind::HASH_ZIPLIST {
                read_ziplist(&b.0, b.1)?
            } else {
                read_listpack(&b.0, b.1)?
            };
            hash_of(&pairs_of(items, at)?, enc, at)?
        }
        kind::ZSET | kind::ZSET_2 => {
            let n = inp.count(2)?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                let m = inp.string()?;
                let score = if kind_byte == kind::ZSET {
                    inp.string_double()?
                } else {
                    inp.binary_double()?
                };
                pairs.push((m, score));
            }
            zset_of(pairs, enc, at)?
        }
        kind::ZSET_ZIPLIST | kind::ZSET_LISTPACK => {
            let b = blob(inp)?;
            let items = if kind_byte == kind::ZSET_ZIPLIST {
                read_ziplist(&b.0, b.1)?
            } else {
                read_listpack(&b.0, b.1)?
            };
            let mut pairs = Vec::with_capacity(items.len() / 2);
            for (m, s) in pairs_of(items, at)? {
                let score = parse_double(&s).ok_or(RdbError::Invalid {
                    offset: at,
                    what: "zset score",
                })?;
                pairs.push((m, score));
            }
            zset_of(pairs, enc, at)?
        }
        kind::STREAM_LISTPACKS | kind::STREAM_LISTPACKS_2 | kind::STREAM_LISTPACKS_3 => {
            Value::Stream(Box::new(super::stream::read(kind_byte, inp)?))
        }
        _ => {
            return Err(RdbError::Invalid {
                offset: at.saturating_sub(1),
                what: "unknown or unsupported value type",
            })
        }
    };
    if is_empty(&value) {
        return Err(RdbError::Empty { offset: at });
    }
    Ok(value)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::List(l) => l.is_empty(),
        Value::Set(s) => s.is_empty(),
        Value::Hash(h) => h.is_empty(),
        Value::ZSet(z) => z.is_empty(),
        _ => false,
    }
}

/// A string holding a blob, and the blob's offset (for errors inside it).
fn blob(inp: &mut Input<'_>) -> Result<(Vec<u8>, usize), RdbError> {
    let at = inp.offset();
    Ok((inp.string()?, at))
}

fn elems(items: Vec<Elem<'_>>) -> Vec<Vec<u8>> {
    items.into_iter().map(Elem::to_vec).collect()
}

fn pairs_of(items: Vec<Elem<'_>>, at: usize) -> Result<Vec<Pair>, RdbError> {
    if !items.len().is_multiple_of(2) {
        return Err(RdbError::Invalid {
            offset: at,
            what: "odd number of elements",
        });
    }
    Ok(items
        .chunks_exact(2)
        .map(|p| (p[0].to_vec(), p[1].to_vec()))
        .collect())
}

fn read_quicklist(kind_byte: u8, inp: &mut Input<'_>, enc: &Encodings) -> Result<Value, RdbError> {
    let nodes = inp.count(2)?;
    let mut items: Vec<Vec<u8>> = Vec::new();
    for _ in 0..nodes {
        let container = if kind_byte == kind::LIST_QUICKLIST_2 {
            inp.length()?
        } else {
            CONTAINER_PACKED
        };
        let b = blob(inp)?;
        match container {
            CONTAINER_PLAIN => items.push(b.0),
            CONTAINER_PACKED if kind_byte == kind::LIST_QUICKLIST => {
                let node = read_ziplist(&b.0, b.1)?;
                if node.is_empty() {
                    return Err(RdbError::Invalid {
                        offset: b.1,
                        what: "empty quicklist node",
                    });
                }
                items.extend(node.into_iter().map(Elem::to_vec));
            }
            // Redis 7.0 skips an empty listpack node.
            CONTAINER_PACKED => {
                items.extend(read_listpack(&b.0, b.1)?.into_iter().map(Elem::to_vec))
            }
            _ => {
                return Err(RdbError::Invalid {
                    offset: b.1,
                    what: "quicklist node container",
                })
            }
        }
    }
    Ok(list_of(&items, enc))
}

fn list_of(items: &[Vec<u8>], enc: &Encodings) -> Value {
    let mut l = List::new();
    l.push_all(End::Right, items.iter().map(Vec::as_slice), enc.list_fill());
    Value::List(Box::new(l))
}

fn duplicate(at: usize) -> RdbError {
    RdbError::Invalid {
        offset: at,
        what: "duplicate member or field",
    }
}

fn set_of(members: &[Vec<u8>], enc: &Encodings, at: usize) -> Result<Value, RdbError> {
    let limits = SetLimits::of(enc);
    let mut s = Set::packed();
    if let Some(first) = members.first() {
        s.prepare(first, members.len(), &limits);
    }
    for m in members {
        if !s.add(m, &limits) {
            return Err(duplicate(at));
        }
    }
    Ok(Value::Set(s))
}

fn hash_of(pairs: &[Pair], enc: &Encodings, at: usize) -> Result<Value, RdbError> {
    let mut h = Hash::new();
    for (f, v) in pairs {
        if !h.set(f, v, enc.hash()) {
            return Err(duplicate(at));
        }
    }
    Ok(Value::Hash(h))
}

fn zset_of(pairs: Vec<(Vec<u8>, f64)>, enc: &Encodings, at: usize) -> Result<Value, RdbError> {
    let limits = enc.zset();
    let value_len = pairs.iter().map(|p| p.0.len()).max().unwrap_or(0);
    let mut z = ZSet::with_hint(pairs.len(), value_len, limits);
    for (m, score) in pairs {
        if score.is_nan() {
            return Err(RdbError::Invalid {
                offset: at,
                what: "zset score is NaN",
            });
        }
        if z.score(&m).is_some() {
            return Err(duplicate(at));
        }
        z.insert(&m, score, limits);
    }
    Ok(Value::ZSet(Box::new(z)))
}
