//! The list type: a double-ended queue of byte strings (LPUSH, RPOP, LRANGE, ...).
//! Pure operations; the list family (`commands/list.rs`) replies.

use std::collections::VecDeque;

use bytes::Bytes;

/// A list value.
pub type List = VecDeque<Bytes>;

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (LPUSH, LPOP, BLPOP).
    Left,
    /// The tail (RPUSH, RPOP, BRPOP).
    Right,
}

/// Adds `value` at `end`.
pub fn push(list: &mut List, end: End, value: Bytes) {
    match end {
        End::Left => list.push_front(value),
        End::Right => list.push_back(value),
    }
}

/// Takes the element at `end`.
pub fn pop(list: &mut List, end: End) -> Option<Bytes> {
    match end {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    }
}

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

/// OBJECT ENCODING of a list under `list-max-listpack-size` = `fill`, as Redis
/// 7.2 decides it: `listpack` while the list fits in one quicklist node (at most
/// `fill` elements and 8 KB when `fill` is positive; at most 4 KB << (-fill - 1)
/// bytes, up to 64 KB, when negative), else `quicklist`. Redis converts back
/// only once a list shrinks to half that; this looks at the list as it is.
pub fn encoding_name(list: &List, fill: i64) -> &'static str {
    const SAFETY_LIMIT: usize = 8192;
    let bytes = 7 + list
        .iter()
        .map(|e| listpack_entry_size(e))
        .fold(0usize, usize::saturating_add);
    let fits = if fill >= 0 {
        bytes <= SAFETY_LIMIT && list.len() as u64 <= fill as u64
    } else {
        let level = (fill.unsigned_abs() - 1).min(4);
        bytes <= 4096 << level
    };
    if fits {
        "listpack"
    } else {
        "quicklist"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_redis_reads_them() {
        assert_eq!(index_range(0, -1, 4), Some((0, 3)));
        assert_eq!(index_range(-2, -1, 4), Some((2, 3)));
        assert_eq!(index_range(5, 10, 4), None);
        assert_eq!(index_range(2, 1, 4), None);
        assert_eq!(index_range(-100, 100, 4), Some((0, 3)));
        assert_eq!(index_range(i64::MIN, i64::MAX, 4), Some((0, 3)));
        assert_eq!(index_range(0, i64::MIN, 4), None);
        assert_eq!(index_range(0, 0, 0), None);
    }

    #[test]
    fn small_lists_are_listpacks_until_a_node_is_full() {
        let list = |n: usize, len: usize| -> List {
            (0..n).map(|_| Bytes::from(vec![b'x'; len])).collect()
        };
        assert_eq!(encoding_name(&list(3, 1), -2), "listpack");
        // 8 KB at -2: 100-byte elements take 103 bytes each.
        assert_eq!(encoding_name(&list(79, 100), -2), "listpack");
        assert_eq!(encoding_name(&list(80, 100), -2), "quicklist");
        assert_eq!(encoding_name(&list(81, 100), -3), "listpack");
        assert_eq!(encoding_name(&list(5, 1), 5), "listpack");
        assert_eq!(encoding_name(&list(6, 1), 5), "quicklist");
        assert_eq!(encoding_name(&list(1, 9000), 5), "quicklist");
        assert_eq!(encoding_name(&list(1, 1), i64::MIN), "listpack");
        assert_eq!(listpack_entry_size(b"12"), 2);
        assert_eq!(listpack_entry_size(b"1000"), 3);
    }

    #[test]
    fn push_and_pop_at_either_end() {
        let mut l = List::new();
        push(&mut l, End::Left, Bytes::from_static(b"a"));
        push(&mut l, End::Right, Bytes::from_static(b"b"));
        push(&mut l, End::Left, Bytes::from_static(b"c"));
        assert_eq!(pop(&mut l, End::Right).as_deref(), Some(&b"b"[..]));
        assert_eq!(pop(&mut l, End::Left).as_deref(), Some(&b"c"[..]));
        assert_eq!(pop(&mut l, End::Left).as_deref(), Some(&b"a"[..]));
        assert_eq!(pop(&mut l, End::Left), None);
    }
}
