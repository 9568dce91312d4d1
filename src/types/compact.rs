//! [`CompactBytes`]: the byte string keys and string values are stored as.
//!
//! Up to 22 bytes live inline in the 24-byte value itself, with no allocation;
//! longer ones are a boxed [`Bytes`], so `GET` of a large value clones a reference
//! count instead of copying. Most keys and many values are short: this is what keeps
//! a million small keys below redis-server's memory use.
//!
//! A value can also be changed in place ([`CompactBytes::edit`]: SETBIT,
//! BITFIELD, SETRANGE, APPEND): a long value whose buffer nobody else holds is
//! mutated and grown where it is, so setting one bit of a 16 MB bitmap does not
//! copy 16 MB. A value changed that way remembers it, because Redis then reports
//! it as a `raw` string whatever it holds.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::{Bytes, BytesMut};

const INLINE: usize = 22;

/// In an inline value's `meta` byte: the length in the low bits, and this bit
/// when the value was changed in place.
const EDITED: u8 = 0x80;

#[derive(Clone)]
enum Repr {
    /// `meta` is the length, or'ed with [`EDITED`].
    Inline {
        meta: u8,
        buf: [u8; INLINE],
    },
    Shared {
        edited: bool,
        bytes: Box<Bytes>,
    },
}

/// A byte string, inline when short, shared by reference count when long.
#[derive(Clone)]
pub struct CompactBytes(Repr);

impl CompactBytes {
    /// The longest value held inline (without an allocation).
    pub const INLINE: usize = INLINE;

    /// Copies `bytes` (inline if short enough).
    pub fn from_slice(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..bytes.len()].copy_from_slice(bytes);
            CompactBytes(Repr::Inline {
                meta: bytes.len() as u8,
                buf,
            })
        } else {
            Self::whole(Bytes::copy_from_slice(bytes))
        }
    }

    /// Takes an owned buffer; short ones are moved inline.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE {
            Self::from_slice(&bytes)
        } else {
            Self::whole(Bytes::from(bytes))
        }
    }

    /// Takes an owned buffer as a value built in place (Redis's `raw` string,
    /// as BITOP stores its result), without copying a long one.
    pub fn raw_from_vec(bytes: Vec<u8>) -> Self {
        let mut value = Self::from_vec(bytes);
        match &mut value.0 {
            Repr::Inline { meta, .. } => *meta |= EDITED,
            Repr::Shared { edited, .. } => *edited = true,
        }
        value
    }

    /// Keeps `bytes` by reference (a short one is copied inline): for a buffer
    /// that is exactly the value, such as a big request argument.
    pub fn from_bytes(bytes: Bytes) -> Self {
        if bytes.len() <= INLINE {
            Self::from_slice(&bytes)
        } else {
            Self::whole(bytes)
        }
    }

    fn whole(bytes: Bytes) -> Self {
        CompactBytes(Repr::Shared {
            edited: false,
            bytes: Box::new(bytes),
        })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { meta, buf } => &buf[..usize::from(*meta & !EDITED)],
            Repr::Shared { bytes, .. } => bytes,
        }
    }

    /// The shared buffer of a long value; `None` for a short one held inline.
    pub fn shared(&self) -> Option<&Bytes> {
        match &self.0 {
            Repr::Inline { .. } => None,
            Repr::Shared { bytes, .. } => Some(bytes),
        }
    }

    /// Whether the value was changed in place since it was stored whole (Redis
    /// then holds it as a `raw` string, even a short or numeric one).
    pub fn is_edited(&self) -> bool {
        match &self.0 {
            Repr::Inline { meta, .. } => meta & EDITED != 0,
            Repr::Shared { edited, .. } => *edited,
        }
    }

    /// Changes the value in place: `f` gets it as a growable buffer. A long value
    /// whose buffer is not shared (no reply still holding it) is changed without a
    /// copy and keeps its spare capacity, so repeated growth is amortized; a
    /// shared one is copied first. The value is marked edited.
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        let mut buf = match &mut self.0 {
            Repr::Inline { meta, buf } => BytesMut::from(&buf[..usize::from(*meta & !EDITED)]),
            // Unique: the same allocation, now writable; shared: a copy.
            Repr::Shared { bytes, .. } => BytesMut::from(std::mem::take(&mut **bytes)),
        };
        let out = f(&mut buf);
        self.0 = if buf.len() <= INLINE {
            let mut inline = [0u8; INLINE];
            inline[..buf.len()].copy_from_slice(&buf);
            Repr::Inline {
                meta: buf.len() as u8 | EDITED,
                buf: inline,
            }
        } else {
            match std::mem::replace(
                &mut self.0,
                Repr::Inline {
                    meta: 0,
                    buf: [0; INLINE],
                },
            ) {
                // Reuse the box.
                Repr::Shared { mut bytes, .. } => {
                    *bytes = buf.freeze();
                    Repr::Shared {
                        edited: true,
                        bytes,
                    }
                }
                Repr::Inline { .. } => Repr::Shared {
                    edited: true,
                    bytes: Box::new(buf.freeze()),
                },
            }
        };
        out
    }

    /// As [`Bytes`]: a reference-count bump for a long value, a copy of at most 22
    /// bytes for a short one.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Repr::Shared { bytes, .. } => Bytes::clone(bytes),
        }
    }
}

impl Default for CompactBytes {
    /// The empty string.
    fn default() -> Self {
        CompactBytes::from_slice(b"")
    }
}

impl Deref for CompactBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for CompactBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for CompactBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for CompactBytes {}

impl Hash for CompactBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", Bytes::copy_from_slice(self.as_slice()))
    }
}

impl From<&[u8]> for CompactBytes {
    fn from(b: &[u8]) -> Self {
        Self::from_slice(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_round_trip() {
        for n in [0, 1, 22, 23, 1000] {
            let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let c = CompactBytes::from_slice(&data);
            assert_eq!(c.as_slice(), &data[..]);
            assert_eq!(c.to_bytes(), Bytes::from(data.clone()));
            assert_eq!(CompactBytes::from_vec(data.clone()), c);
        }
    }

    #[test]
    fn edits_in_place_without_copying_a_unique_long_value() {
        let mut c = CompactBytes::from_vec(vec![1u8; 1000]);
        assert!(!c.is_edited());
        let before = c.as_ptr();
        c.edit(|b| b[10] = 9);
        assert_eq!(c.as_ptr(), before, "a unique buffer is changed where it is");
        assert_eq!(c[10], 9);
        assert!(c.is_edited());
        // A reply still holding the old bytes: the edit copies, the reply keeps its view.
        let held = c.to_bytes();
        c.edit(|b| b[10] = 7);
        assert_eq!(held[10], 9);
        assert_eq!(c[10], 7);
    }

    #[test]
    fn edits_move_between_inline_and_shared() {
        let mut c = CompactBytes::from_slice(b"abc");
        c.edit(|b| b.extend_from_slice(b"def"));
        assert_eq!(c.as_slice(), b"abcdef");
        assert!(c.is_edited() && c.shared().is_none());
        c.edit(|b| b.resize(100, b'x'));
        assert_eq!(c.len(), 100);
        assert!(c.is_edited() && c.shared().is_some());
        c.edit(|b| b.truncate(2));
        assert_eq!(c.as_slice(), b"ab");
        assert!(c.is_edited() && c.shared().is_none());
        assert_eq!(c, CompactBytes::from_slice(b"ab"));
    }

    #[test]
    fn stays_as_small_as_a_bytes_pointer_triple() {
        assert_eq!(std::mem::size_of::<CompactBytes>(), 24);
    }
}
