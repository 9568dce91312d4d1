//! Value types: each module holds one type's representation and its pure
//! operations. Nothing here knows replies, commands or error text; a family file
//! in `commands/` turns these operations into a command's reply, and the shard's
//! typed access (`keyspace::Shard::read`, `write`, `get_or_create`) finds a
//! value of the right type or answers `WrongType`.

pub mod bitmap;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod lcs;
pub mod set;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

mod compact;
pub mod list;
pub mod lock;
pub mod stream;
pub mod string;
pub mod zset;

pub use compact::CompactBytes;

/// A command asked for one type at a key holding another: the caller answers
/// `WRONGTYPE` (no module below the commands knows error text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

/// What an operation on a value asks of the keyspace around it: tell
/// watchers (`changed`), and file these deadlines on the key's timer (a lock's
/// new leases).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// The value changed (WATCH sees it).
    pub changed: bool,
    /// Deadlines to file under the key.
    /// Held inline: a lock operation files at most one or two (no allocation
    /// per LOCK.ACQUIRE).
    pub deadlines: smallvec::SmallVec<[u64; 2]>,
    /// Holds that ended without their owner's release (a lock's leases that
    /// ran out), in the order they ended: the keyspace raises their events
    /// and the holders' loss notices. Empty (no allocation) when none did.
    pub ended: Vec<lock::HoldEnded>,
    /// Holds granted (at once, or to waiters): the keyspace raises an
    /// acquisition event for each, after those of `ended`.
    pub granted: u32,
}

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

/// The encoding thresholds as options (`hash-max-listpack-entries`, ...): what
/// the config file and CONFIG SET change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// `hash-max-listpack-entries` (alias `hash-max-ziplist-entries`).
    pub hash_entries: usize,
    /// `hash-max-listpack-value`.
    pub hash_value: usize,
    /// `set-max-intset-entries`.
    pub set_intset_entries: usize,
    /// `set-max-listpack-entries`.
    pub set_entries: usize,
    /// `set-max-listpack-value`.
    pub set_value: usize,
    /// `zset-max-listpack-entries` (alias `zset-max-ziplist-entries`).
    pub zset_entries: usize,
    /// `zset-max-listpack-value`.
    pub zset_value: usize,
    /// `list-max-listpack-size` (alias `list-max-ziplist-size`): positive, a
    /// count of entries per node; -1..-5, a node size of 4 KB..64 KB.
    pub list_size: i64,
    /// `list-compress-depth`.
    pub list_compress_depth: usize,
    /// `stream-node-max-entries`: entries per stream node (0: no limit).
    pub stream_node_entries: usize,
    /// `stream-node-max-bytes`: bytes per stream node (0: no limit).
    pub stream_node_bytes: usize,
}

impl Default for Thresholds {
    /// Redis 7's built-in defaults (redis-server without a config file).
    fn default() -> Self {
        Thresholds {
            hash_entries: 512,
            hash_value: 64,
            set_intset_entries: 512,
            set_entries: 128,
            set_value: 64,
            zset_entries: 128,
            zset_value: 64,
            list_size: -2,
            list_compress_depth: 0,
            stream_node_entries: 100,
            stream_node_bytes: 4096,
        }
    }
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
    /// DEBUG QUICKLIST-PACKED-THRESHOLD: elements of at least this many bytes
    /// get a plain node; 0, the default, leaves it to `list_size`.
    pub list_plain_at: AtomicUsize,
    /// `list-compress-depth`.
    pub list_compress_depth: AtomicUsize,
    /// `stream-node-max-entries`.
    pub stream_node_entries: AtomicUsize,
    /// `stream-node-max-bytes`.
    pub stream_node_bytes: AtomicUsize,
}

impl Default for Encodings {
    fn default() -> Self {
        let e = Encodings {
            hash_entries: AtomicUsize::new(0),
            hash_value: AtomicUsize::new(0),
            set_intset_entries: AtomicUsize::new(0),
            set_entries: AtomicUsize::new(0),
            set_value: AtomicUsize::new(0),
            zset_entries: AtomicUsize::new(0),
            zset_value: AtomicUsize::new(0),
            list_size: AtomicI64::new(0),
            list_plain_at: AtomicUsize::new(0),
            list_compress_depth: AtomicUsize::new(0),
            stream_node_entries: AtomicUsize::new(0),
            stream_node_bytes: AtomicUsize::new(0),
        };
        e.store(&Thresholds::default());
        e
    }
}

impl Encodings {
    /// Puts `t` in force (at start-up and after CONFIG SET).
    pub fn store(&self, t: &Thresholds) {
        let set = |a: &AtomicUsize, v: usize| a.store(v, Ordering::Relaxed);
        set(&self.hash_entries, t.hash_entries);
        set(&self.hash_value, t.hash_value);
        set(&self.set_intset_entries, t.set_intset_entries);
        set(&self.set_entries, t.set_entries);
        set(&self.set_value, t.set_value);
        set(&self.zset_entries, t.zset_entries);
        set(&self.zset_value, t.zset_value);
        self.list_size.store(t.list_size, Ordering::Relaxed);
        set(&self.list_compress_depth, t.list_compress_depth);
        set(&self.stream_node_entries, t.stream_node_entries);
        set(&self.stream_node_bytes, t.stream_node_bytes);
    }

    /// Stream node sizes (`stream-node-max-entries`, `stream-node-max-bytes`).
    pub fn stream_nodes(&self) -> stream::NodeLimits {
        stream::NodeLimits {
            entries: self.stream_node_entries.load(Ordering::Relaxed) as u64,
            bytes: self.stream_node_bytes.load(Ordering::Relaxed) as u64,
        }
    }

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

    /// `list-max-listpack-size`.
    pub fn list_size(&self) -> i64 {
        self.list_size.load(Ordering::Relaxed)
    }

    /// A list's node limits: `list-max-listpack-size` and the plain-node
    /// threshold.
    pub fn list_fill(&self) -> list::Fill {
        list::Fill {
            size: self.list_size(),
            plain_at: self.list_plain_at.load(Ordering::Relaxed),
        }
    }

    /// Thresholds for sorted sets.
    pub fn zset(&self) -> Limits {
        Limits {
            entries: self.zset_entries.load(Ordering::Relaxed),
            value: self.zset_value.load(Ordering::Relaxed),
        }
    }
}
