//! Persistence: what SAVE, BGSAVE and the start-up load are built on.
//!
//! - [`Snapshot`]: a point-in-time image of every database, walked by a
//!   thread while clients keep reading and writing, into any
//!   [`SnapshotSink`].
//! - `rdb.rs`: the RDB writer as a sink, the file written beside its final
//!   name and renamed into place, and the start-up load.
//! - [`Persistence`]: the save state (what INFO reports, save points, the
//!   background thread's mailbox).
//!
//! Not here: file formats (`rdb/`); the commands (`commands/persist.rs`).

mod rdb;
mod snapshot;
mod state;

pub use rdb::{load_file, write_empty, write_snapshot, LoadError, LoadStats, RdbTarget};
pub use snapshot::{Detached, Snapshot, SnapshotError, SnapshotSink, SnapshotStats, SLICE};
pub use state::{BgsaveRefused, Job, Outcome, Persistence, Report, RETRY_DELAY_S};
