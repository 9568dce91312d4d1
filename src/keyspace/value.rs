//! What lives at a key: an [`Entry`] holding a typed [`Value`] and its expiry.

use std::num::NonZeroU64;

use bytes::Bytes;

use crate::types::lock::{HoldEnded, Lock, LockShared};
use crate::types::set::Set;
use crate::types::zset::ZSet;
use crate::types::CompactBytes;
use crate::types::Effects;
pub use crate::types::WrongType;

/// A value of one of the types the server knows. `TYPE` reports [`Value::type_name`],
/// and a command given a key of another type fails with `WRONGTYPE`.
#[derive(Debug)]
pub enum Value {
    /// A string: bytes, possibly an integer or float in text form.
    Str(CompactBytes),
    /// A list of strings (LPUSH, RPUSH, ...), boxed to keep `Value` at 24 bytes.
    List(Box<crate::types::list::List>),
    /// A hash of fields to values (HSET, ...): 16 bytes, in place.
    Hash(crate::types::hash::Hash),
    /// A lock (LOCK.ACQUIRE): holders, leases and a wait queue.
    Lock(Lock),
    /// A sorted set (ZADD, ...).
    ZSet(Box<ZSet>),
    /// A set of strings (SADD, ...): 16 bytes, in place.
    Set(Set),
    /// A stream (XADD, ...), boxed.
    Stream(Box<crate::types::stream::Stream>),
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

    /// A deep copy of the value for COPY, in the same encoding; `None` for a
    /// lock, which has no copy: its holders, leases, fencing tokens and queue
    /// belong to its key, and a second key holding them would hand out the
    /// same ownership twice (Redis refuses COPY of a module value without a
    /// copy callback the same way).
    pub fn duplicate(&self) -> Option<Value> {
        Some(match self {
            Value::Str(s) => Value::Str(s.clone()),
            Value::List(l) => Value::List(l.clone()),
            Value::Hash(h) => Value::Hash(h.clone()),
            Value::ZSet(z) => Value::ZSet(z.clone()),
            Value::Set(s) => Value::Set(s.clone()),
            Value::Stream(s) => Value::Stream(s.clone()),
            Value::Lock(_) => return None,
        })
    }

    /// A copy for a snapshot's before-image: [`Value::duplicate`] for every
    /// type, and for a lock its holders and limit without its wait queue
    /// (waiters belong to connections, which a snapshot does not keep).
    pub fn snapshot_copy(&self) -> Value {
        match self {
            Value::Str(s) => Value::Str(s.clone()),
            Value::List(l) => Value::List(l.clone()),
            Value::Hash(h) => Value::Hash(h.clone()),
            Value::ZSet(z) => Value::ZSet(z.clone()),
            Value::Set(s) => Value::Set(s.clone()),
            Value::Stream(s) => Value::Stream(s.clone()),
            Value::Lock(l) => Value::Lock(l.snapshot_copy()),
        }
    }

    /// Whether MOVE may take the value to another database: not a lock, whose
    /// SESSION holds, queued waiters and leases are filed under its key in its
    /// own database (a moved lock would leave them pointing at nothing).
    pub fn can_move(&self) -> bool {
        !matches!(self, Value::Lock(_))
    }

    /// The encoding OBJECT ENCODING names: the representation Redis would use
    /// for the same value. Each type keeps its own encoding as Redis would
    /// have converted it (at the thresholds in force when it was written), so
    /// the thresholds in force now (`_limits`) are not needed.
    pub fn encoding(&self, _limits: &crate::types::Encodings) -> &'static str {
        match self {
            Value::Str(s) => crate::types::string::encoding_name(s),
            Value::List(l) => l.encoding_name(),
            // A module type's value in Redis.
            Value::Lock(_) => "raw",
            Value::ZSet(z) => z.encoding_name(),
            Value::Set(s) => s.encoding_name(),
            Value::Hash(h) => h.encoding_name(),
            Value::Stream(_) => crate::types::stream::encoding_name(),
        }
    }

    /// Whether Redis would share this value between keys (the integers
    /// 0..9999): OBJECT REFCOUNT then reports `INT_MAX`.
    pub fn shared_integer(&self) -> bool {
        match self {
            Value::Str(s) => crate::types::string::shared_integer(s),
            _ => false,
        }
    }

    /// Runs the value's own timers (a lock's leases): what changed, and the
    /// deadlines to file under its key. Other types have none.
    pub fn settle(&mut self, now: u64, locks: &LockShared) -> Effects {
        match self {
            Value::Lock(lock) => lock.settle(now, locks),
            _ => Effects::default(),
        }
    }

    /// The deadlines of the value's own timers (a lock's lease ends and
    /// lock-delay end), for a value put back from a file; none for others.
    pub fn deadlines(&self) -> Vec<u64> {
        match self {
            Value::Lock(lock) => lock.deadlines(),
            _ => Vec::new(),
        }
    }

    /// The holds that end with this value when it is taken out of the
    /// keyspace at `now` (a held lock deleted, overwritten, flushed, its key
    /// expired); empty for a value nobody holds.
    pub fn removed_holds(&self, now: u64) -> Vec<HoldEnded> {
        match self {
            Value::Lock(lock) => lock.removed_holds(now),
            _ => Vec::new(),
        }
    }

    /// Whether clients wait inside this value (a lock's queue).
    pub fn has_waiters(&self) -> bool {
        matches!(self, Value::Lock(lock) if lock.has_waiters())
    }

    /// What stays at the key for the waiters of a value taken out of the
    /// keyspace (DEL, FLUSHDB, a TTL, an overwrite): a lock keeps its queue,
    /// as if every holder had released.
    pub fn take_waiters(&mut self) -> Option<Value> {
        match self {
            Value::Lock(lock) => lock.take_waiters().map(Value::Lock),
            _ => None,
        }
    }

    /// Tells the clients waiting inside this value that it is gone (a lock
    /// overwritten by another value): they stop waiting.
    pub fn abandon_waiters(&mut self) {
        if let Value::Lock(lock) = self {
            lock.abandon_waiters();
        }
    }

    /// Whether clients blocked on its key through the blocking registry must
    /// hear when the value leaves the keyspace (deleted, expired, flushed,
    /// overwritten, renamed away): a stream, whose group readers are told
    /// `UNBLOCKED` as in Redis.
    pub fn wakes_when_gone(&self) -> bool {
        matches!(self, Value::Stream(_))
    }

    /// Whether the value holds nothing and so its key does not exist (a lock
    /// with neither holders nor waiters). Containers are removed by the
    /// commands that empty them.
    pub fn is_vacant(&self) -> bool {
        matches!(self, Value::Lock(lock) if lock.is_empty())
    }

    /// The name `TYPE` replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Lock(_) => "lock",
            Value::ZSet(_) => "zset",
            Value::Set(_) => "set",
            Value::Stream(_) => "stream",
        }
    }
}

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

typed!(crate::types::list::List, List, |l| l.is_empty());
typed!(crate::types::hash::Hash, Hash, |h| h.is_empty());
typed!(Lock, Lock, |l| l.counts() == (0, 0));
typed!(ZSet, ZSet, |z| z.is_empty());
typed!(Set, Set, |s| s.is_empty());
// An empty stream is still a stream (XGROUP CREATE MKSTREAM, XDEL of the last
// entry): only DEL removes it.
typed!(crate::types::stream::Stream, Stream, |_s| false);

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

/// A key's value, its absolute expiry time (Unix ms on the server clock) and
/// when it was last used (for OBJECT IDLETIME). 40 bytes: the expiry uses the
/// niche of a non-zero integer, which leaves room for the access time.
#[derive(Debug)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// When the key expires; `None` for a persistent key.
    expires: Option<NonZeroU64>,
    /// Last access, in seconds on the server clock (Redis's LRU clock).
    access: u32,
}

impl Entry {
    /// An entry with no TTL.
    pub fn persistent(value: Value) -> Entry {
        Entry::new(value, None)
    }

    /// An entry expiring at `expires_at` (Unix ms; `None` for no TTL). A
    /// deadline of 0 is kept as 1 ms: long past either way.
    pub fn new(value: Value, expires_at: Option<u64>) -> Entry {
        Entry {
            value,
            expires: expires_at.map(|t| NonZeroU64::new(t).unwrap_or(NonZeroU64::MIN)),
            access: 0,
        }
    }

    /// When the key expires, or `None` for a persistent key.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires.map(NonZeroU64::get)
    }

    /// Sets the expiry, returning the previous one.
    pub(super) fn replace_expiry(&mut self, expires_at: Option<u64>) -> Option<u64> {
        let old = self.expires_at();
        self.expires = expires_at.map(|t| NonZeroU64::new(t).unwrap_or(NonZeroU64::MIN));
        old
    }

    /// Records an access at `now_ms`: its time, or under an LFU
    /// `maxmemory-policy` one more hit on its counter (`crate::memory`).
    pub(super) fn accessed(&mut self, now_ms: u64) {
        self.access = if crate::memory::lfu() {
            crate::memory::lfu_touch(self.access, now_ms)
        } else {
            (now_ms / 1000) as u32
        };
    }

    /// The raw access field: seconds of the last access, or LFU state.
    pub fn access_field(&self) -> u32 {
        self.access
    }

    /// Makes the key look idle for `seconds` at `now_ms` (RESTORE ... IDLETIME).
    pub fn set_idle_seconds(&mut self, seconds: u64, now_ms: u64) {
        self.access = ((now_ms / 1000).wrapping_sub(seconds)) as u32;
    }

    /// Seconds since the last access, for OBJECT IDLETIME (Redis's LRU clock
    /// also counts seconds and wraps; this one wraps after 136 years).
    pub fn idle_seconds(&self, now_ms: u64) -> u64 {
        u64::from(((now_ms / 1000) as u32).wrapping_sub(self.access))
    }

    /// When the key next loses its value, for TTL/PTTL: its own expiry, or for a
    /// lock the end of its longest lease, whichever is first.
    pub fn deadline(&self) -> Option<u64> {
        let lease = match &self.value {
            Value::Lock(lock) => lock.longest_lease(),
            _ => None,
        };
        match (self.expires_at(), lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the entry is logically gone at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires.is_some_and(|at| at.get() <= now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_is_an_independent_copy_in_the_same_encoding_and_a_lock_has_none() {
        let limits = crate::types::Encodings::default();
        let mut set = Set::default();
        let set_limits = crate::types::set::SetLimits::default();
        for m in [b"3".as_slice(), b"1", b"2"] {
            set.add(m, &set_limits);
        }
        let original = Value::Set(set);
        let Some(Value::Set(mut copy)) = original.duplicate() else {
            panic!("a set")
        };
        assert_eq!(copy.encoding_name(), "intset");
        copy.add(b"x", &set_limits);
        let Value::Set(set) = &original else {
            panic!("a set")
        };
        assert_eq!((set.len(), copy.len()), (3, 4));
        assert_eq!(original.encoding(&limits), "intset");

        let mut list = crate::types::list::List::new();
        list.push(crate::types::list::End::Right, b"a", -2);
        let Some(Value::List(copied)) = Value::List(Box::new(list)).duplicate() else {
            panic!("a list")
        };
        assert_eq!(copied.len(), 1);
        let lock = Value::Lock(Default::default());
        assert!(lock.duplicate().is_none());
        assert!(!lock.can_move());
        assert!(Value::string(b"v").can_move());
    }

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

    #[test]
    fn a_value_is_24_bytes_with_hashes_and_sets_in_place() {
        // A hash and a set sit in the value without a box of their own: what
        // keeps 100,000 small hashes or sets below redis-server's memory.
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert_eq!(std::mem::size_of::<crate::types::hash::Hash>(), 16);
        assert_eq!(std::mem::size_of::<Set>(), 16);
    }
}
