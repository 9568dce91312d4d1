//! Persistence: what SAVE, BGSAVE and BGREWRITEAOF are built on.
//!
//! For now the point-in-time [`Snapshot`] of the whole keyspace, walked by a
//! background thread while clients keep reading and writing, into any
//! [`SnapshotSink`] (the RDB writer implements it, in `rdb.rs`). Not here: file formats
//! (`rdb/`), commands and config.

mod rdb;
mod snapshot;

pub use snapshot::{Snapshot, SnapshotError, SnapshotSink, SnapshotStats, SLICE};
