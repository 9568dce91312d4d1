//! What lives at a key: an [`Entry`] holding a typed [`Value`] and its expiry.

use std::collections::VecDeque;

use bytes::Bytes;

use super::compact::CompactBytes;
use super::lock::Lock;

/// A value of one of the types the server knows. `TYPE` reports [`Value::type_name`],
/// and a command given a key of another type fails with `WRONGTYPE`.
#[derive(Debug)]
pub enum Value {
    /// A string: bytes, possibly an integer or float in text form.
    Str(CompactBytes),
    /// A list of strings (LPUSH, RPUSH, ...), boxed to keep `Value` at 24 bytes.
    List(Box<VecDeque<Bytes>>),
    /// A hash of fields to values (HSET, ...), boxed to keep `Value` at 24 bytes.
    Hash(Box<crate::types::hash::Hash>),
    /// A lock (LOCK.ACQUIRE): holders, leases and a wait queue.
    Lock(Box<Lock>),
}

impl Value {
    /// A string value holding its own copy of `bytes`: a stored value must not keep
    /// the client's whole read buffer alive.
    pub fn string(bytes: &[u8]) -> Value {
        Value::Str(CompactBytes::from_slice(bytes))
    }

    /// A string value from a request argument. A big argument
    /// ([`crate::protocol::BIG_ARG`] bytes or more) was read into an allocation of
    /// its own, exactly its size, so it is kept without a copy; a smaller one is a
    /// slice of the read buffer and is copied, as [`Value::string`].
    pub fn string_arg(arg: &Bytes) -> Value {
        if arg.len() >= crate::protocol::BIG_ARG {
            Value::Str(CompactBytes::from_bytes(arg.clone()))
        } else {
            Value::string(arg)
        }
    }

    /// The name `TYPE` replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Lock(_) => "lock",
        }
    }
}

/// A command asked for one type at a key holding another: the caller answers
/// `WRONGTYPE` (the storage layer knows no error text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

/// A value type reached through [`Value`]: how to see it inside a value, how to
/// make a new empty one, and when it is empty (an empty container is not kept at
/// its key). The shard's typed access ([`super::Shard::read`],
/// [`super::Shard::write`], [`super::Shard::get_or_create`]) is built on it, so
/// no command matches on `Value` itself.
pub trait Typed: Sized {
    /// The value as this type, or `None` for another type.
    fn of(value: &Value) -> Option<&Self>;
    /// The value as this type, mutable.
    fn of_mut(value: &mut Value) -> Option<&mut Self>;
    /// A new, empty value of this type, wrapped.
    fn new_value() -> Value;
    /// Whether the value holds nothing (and so its key should not exist).
    fn is_empty_value(&self) -> bool;
}

/// Implements [`Typed`] for a type stored boxed in one `Value` arm.
macro_rules! typed {
    ($ty:ty, $arm:ident, |$v:ident| $empty:expr) => {
        impl Typed for $ty {
            fn of(value: &Value) -> Option<&Self> {
                match value {
                    Value::$arm(v) => Some(v),
                    _ => None,
                }
            }
            fn of_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$arm(v) => Some(v),
                    _ => None,
                }
            }
            fn new_value() -> Value {
                Value::$arm(Default::default())
            }
            fn is_empty_value(&self) -> bool {
                let $v = self;
                $empty
            }
        }
    };
}

typed!(VecDeque<Bytes>, List, |l| l.is_empty());
typed!(crate::types::hash::Hash, Hash, |h| h.is_empty());
typed!(Lock, Lock, |l| l.counts() == (0, 0));

impl Typed for CompactBytes {
    fn of(value: &Value) -> Option<&Self> {
        match value {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }
    fn of_mut(value: &mut Value) -> Option<&mut Self> {
        match value {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }
    fn new_value() -> Value {
        Value::string(b"")
    }
    /// An empty string is a value like any other.
    fn is_empty_value(&self) -> bool {
        false
    }
}

/// A key's value and its absolute expiry time (Unix ms on the server clock).
#[derive(Debug)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// When the key expires, or `None` for a persistent key.
    pub expires_at: Option<u64>,
}

impl Entry {
    /// An entry with no TTL.
    pub fn persistent(value: Value) -> Entry {
        Entry {
            value,
            expires_at: None,
        }
    }

    /// When the key next loses its value, for TTL/PTTL: its own expiry, or for a
    /// lock the end of its longest lease, whichever is first.
    pub fn deadline(&self) -> Option<u64> {
        let lease = match &self.value {
            Value::Lock(lock) => lock.longest_lease(),
            _ => None,
        };
        match (self.expires_at, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the entry is logically gone at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_argument_is_stored_without_a_copy_and_a_small_one_is_copied() {
        let big = Bytes::from(vec![7u8; crate::protocol::BIG_ARG]);
        let Value::Str(stored) = Value::string_arg(&big) else {
            panic!("a string")
        };
        assert_eq!(stored.as_ptr(), big.as_ptr());
        let small = Bytes::from(vec![7u8; 100]);
        let Value::Str(stored) = Value::string_arg(&small) else {
            panic!("a string")
        };
        assert_ne!(stored.as_ptr(), small.as_ptr());
        assert_eq!(stored.as_slice(), &small[..]);
    }
}
