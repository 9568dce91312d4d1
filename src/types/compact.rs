//! [`CompactBytes`]: the byte string keys and string values are stored as.
//!
//! Up to 22 bytes live inline in the 24-byte value itself, with no allocation;
//! longer ones are a boxed [`Bytes`], so `GET` of a large value clones a reference
//! count instead of copying. Most keys and many values are short: this is what keeps
//! a million small keys below redis-server's memory use.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Shared(Box<Bytes>),
}

/// An immutable byte string, inline when short.
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
                len: bytes.len() as u8,
                buf,
            })
        } else {
            CompactBytes(Repr::Shared(Box::new(Bytes::copy_from_slice(bytes))))
        }
    }

    /// Takes an owned buffer; short ones are moved inline.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE {
            Self::from_slice(&bytes)
        } else {
            CompactBytes(Repr::Shared(Box::new(Bytes::from(bytes))))
        }
    }

    /// Keeps `bytes` by reference (a short one is copied inline): for a buffer
    /// that is exactly the value, such as a big request argument.
    pub fn from_bytes(bytes: Bytes) -> Self {
        if bytes.len() <= INLINE {
            Self::from_slice(&bytes)
        } else {
            CompactBytes(Repr::Shared(Box::new(bytes)))
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Shared(b) => b,
        }
    }

    /// The shared buffer of a long value; `None` for a short one held inline.
    pub fn shared(&self) -> Option<&Bytes> {
        match &self.0 {
            Repr::Inline { .. } => None,
            Repr::Shared(b) => Some(b),
        }
    }

    /// As [`Bytes`]: a reference-count bump for a long value, a copy of at most 22
    /// bytes for a short one.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Repr::Shared(b) => Bytes::clone(b),
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
    fn stays_as_small_as_a_bytes_pointer_triple() {
        assert_eq!(std::mem::size_of::<CompactBytes>(), 24);
    }
}
