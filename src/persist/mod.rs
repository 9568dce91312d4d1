//! Persistence: what SAVE, BGSAVE and the start-up load are built on.
//!
//! - [`Snapshot`]: a point-in-time image of every database, walked by a
//!   thread while clients keep reading and writing, into any
//!   [`SnapshotSink`].
//! - `rdb.rs`: the RDB writer as a sink, the file written beside its final
//!   name and renamed into place, and the start-up load.
//! - `aof.rs`: the append-only file (Redis 7's manifest, base and
//!   incremental files), its writing, syncing, rewrites and loading.
//! - [`Persistence`]: the save state (what INFO reports, save points, the
//!   background thread's mailbox).
//!
//! Not here: file formats (`rdb/`); the commands (`commands/persist.rs`).

pub mod aof;
mod rdb;
mod snapshot;
mod state;

pub use aof::Aof;
pub use rdb::{
    load_file, load_file_with, write_base, write_empty, write_snapshot, LoadError, LoadOptions,
    LoadStats, RdbTarget,
};
pub use snapshot::{
    Detached, Snapshot, SnapshotError, SnapshotSink, SnapshotStats, HELD_MAX, SLICE,
};
pub use state::{BgsaveRefused, Job, Outcome, Persistence, Report, RETRY_DELAY_S};
