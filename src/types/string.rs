//! The string type's properties that Redis reports: which encoding OBJECT
//! ENCODING names, and which values Redis shares. Strings are stored as
//! [`CompactBytes`]; their commands are in `commands/string.rs`.

use super::CompactBytes;

/// Longest string Redis keeps in one allocation with its header (`embstr`).
const EMBSTR_MAX: usize = 44;

/// Redis shares the integer objects below this.
const SHARED_INTEGERS: i64 = 10_000;

/// `bytes` as Redis's `string2ll` reads an integer: optional `-`, digits with
/// no leading zero (or `0` alone), within `i64`. Anything else is `None`.
pub fn canonical_integer(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    match digits {
        [] => return None,
        [b'0'] if digits.len() != bytes.len() => return None, // "-0"
        [b'0', _, ..] => return None,
        _ => {}
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// `int` for a value Redis stores as an integer, `embstr` for up to 44 bytes,
/// else `raw`. A value changed in place (SETBIT, BITFIELD, SETRANGE, APPEND on an
/// existing key) is `raw` whatever it holds, as Redis unshares it into a `raw`
/// string before changing it.
pub fn encoding_name(s: &CompactBytes) -> &'static str {
    if s.is_edited() {
        "raw"
    } else if canonical_integer(s).is_some() {
        "int"
    } else if s.len() <= EMBSTR_MAX {
        "embstr"
    } else {
        "raw"
    }
}

/// Whether Redis would use one of its shared integer objects for this value.
pub fn shared_integer(s: &CompactBytes) -> bool {
    !s.is_edited() && canonical_integer(s).is_some_and(|n| (0..SHARED_INTEGERS).contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> &'static str {
        encoding_name(&CompactBytes::from_slice(s.as_bytes()))
    }

    #[test]
    fn encodings_switch_where_redis_switches() {
        assert_eq!(enc("12345"), "int");
        assert_eq!(enc("-123"), "int");
        assert_eq!(enc("0"), "int");
        assert_eq!(enc("0123"), "embstr");
        assert_eq!(enc("-0"), "embstr");
        assert_eq!(enc("12345678901234567890"), "embstr");
        assert_eq!(enc("-9223372036854775808"), "int");
        assert_eq!(enc(&"x".repeat(44)), "embstr");
        assert_eq!(enc(&"x".repeat(45)), "raw");
        assert_eq!(enc(""), "embstr");
    }

    #[test]
    fn a_value_changed_in_place_is_raw_and_not_shared() {
        let mut s = CompactBytes::from_slice(b"12");
        s.edit(|b| b[1] = b'3');
        assert_eq!(encoding_name(&s), "raw");
        assert!(!shared_integer(&s));
    }

    #[test]
    fn small_integers_are_shared() {
        let shared = |s: &str| shared_integer(&CompactBytes::from_slice(s.as_bytes()));
        assert!(shared("0") && shared("9999"));
        assert!(!shared("10000") && !shared("-1") && !shared("01") && !shared("a"));
    }
}
