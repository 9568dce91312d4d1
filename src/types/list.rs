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
