//! The RDB writer as a snapshot's sink: a [`Snapshot`](super::Snapshot)
//! walked into a [`Writer`] is a dump.rdb, the fencing-token high-water mark
//! its `latchkey-fencing-token` aux field.

use std::io::{self, Write};

use crate::keyspace::Value;
use crate::rdb::file::Writer;
use crate::rdb::lock::AUX_FENCING;

use super::SnapshotSink;

impl<W: Write> SnapshotSink for Writer<W> {
    fn fencing_high_water(&mut self, token: u64) -> io::Result<()> {
        self.aux(AUX_FENCING, token.to_string().as_bytes())
    }

    fn select_db(&mut self, db: usize, keys: u64, expires: u64) -> io::Result<()> {
        Writer::select_db(self, db, keys, expires)
    }

    fn entry(&mut self, key: &[u8], value: &Value, expire_at_ms: Option<u64>) -> io::Result<()> {
        Writer::entry(self, key, value, expire_at_ms)
    }
}
