//! Value types: each module holds one type's representation and its pure
//! operations. Nothing here knows replies, commands or error text; a family file
//! in `commands/` turns these operations into a command's reply, and the shard's
//! typed access (`keyspace::Shard::read`, `write`, `get_or_create`) finds a
//! value of the right type or answers `WrongType`.

pub mod hash;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

/// When a small container stops being packed: more than `entries` elements, or
/// an element longer than `value` bytes, makes it convert to its large
/// representation (Redis's `*-max-listpack-entries` / `-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most elements (fields, members) a packed container holds.
    pub entries: usize,
    /// Longest element, in bytes, a packed container holds.
    pub value: usize,
}

/// The encoding thresholds in force: CONFIG SET changes them at run time, and
/// every command reads them without a lock.
#[derive(Debug)]
pub struct Encodings {
    /// `hash-max-listpack-entries` (alias `hash-max-ziplist-entries`).
    pub hash_entries: AtomicUsize,
    /// `hash-max-listpack-value`.
    pub hash_value: AtomicUsize,
    /// `set-max-intset-entries`.
    pub set_intset_entries: AtomicUsize,
    /// `set-max-listpack-entries`.
    pub set_entries: AtomicUsize,
    /// `set-max-listpack-value`.
    pub set_value: AtomicUsize,
    /// `zset-max-listpack-entries` (alias `zset-max-ziplist-entries`).
    pub zset_entries: AtomicUsize,
    /// `zset-max-listpack-value`.
    pub zset_value: AtomicUsize,
    /// `list-max-listpack-size` (alias `list-max-ziplist-size`): positive, a
    /// count of entries per node; -1..-5, a node size of 4 KB..64 KB.
    pub list_size: AtomicI64,
    /// `list-compress-depth`.
    pub list_compress_depth: AtomicUsize,
}

impl Default for Encodings {
    /// Redis 7's defaults.
    fn default() -> Self {
        Encodings {
            hash_entries: AtomicUsize::new(128),
            hash_value: AtomicUsize::new(64),
            set_intset_entries: AtomicUsize::new(512),
            set_entries: AtomicUsize::new(128),
            set_value: AtomicUsize::new(64),
            zset_entries: AtomicUsize::new(128),
            zset_value: AtomicUsize::new(64),
            list_size: AtomicI64::new(-2),
            list_compress_depth: AtomicUsize::new(0),
        }
    }
}

impl Encodings {
    /// Thresholds for hashes.
    pub fn hash(&self) -> Limits {
        Limits {
            entries: self.hash_entries.load(Ordering::Relaxed),
            value: self.hash_value.load(Ordering::Relaxed),
        }
    }

    /// Thresholds for sets of strings (the packed form); integer sets use
    /// [`Encodings::set_intset`].
    pub fn set(&self) -> Limits {
        Limits {
            entries: self.set_entries.load(Ordering::Relaxed),
            value: self.set_value.load(Ordering::Relaxed),
        }
    }

    /// Most members an integer set holds.
    pub fn set_intset(&self) -> usize {
        self.set_intset_entries.load(Ordering::Relaxed)
    }

    /// Thresholds for sorted sets.
    pub fn zset(&self) -> Limits {
        Limits {
            entries: self.zset_entries.load(Ordering::Relaxed),
            value: self.zset_value.load(Ordering::Relaxed),
        }
    }
}
