//! [`ShardSnap`]: a shard's part of a running point-in-time snapshot
//! (`persist::Snapshot` drives it; this is only the shard's bookkeeping).
//!
//! From the snapshot's instant until its dumper has visited the whole shard,
//! every key the shard held at the instant is in exactly one of three places:
//!
//! - **emitted**: the dumper has handed it to the sink (slab positions below
//!   `cursor` that are not in `saved`);
//! - **live**: at a slab position at or past `cursor`, not in `saved`, its
//!   value untouched since the instant (the dumper will emit it from the table);
//! - **saved**: its before-image copied into `saved` because a write reached
//!   it first (emitted when the dumper finishes the shard).
//!
//! A key created after the instant is in `saved` as `None` ("absent at the
//! instant"), so the dumper skips it when it reaches it. The shard calls
//! [`ShardSnap::preserve`] before every change to a key (write, TTL change,
//! removal, insertion) and [`ShardSnap::preserve_moved`] before a removal,
//! whose `swap_remove` moves the last slot to the removed one's place: a key
//! moved from the live part to below the cursor is saved first. So the rule
//! holds whatever the writes do, and a slice of the walk can let go of the
//! shard lock at any position.

use std::collections::HashMap;

use super::table::Table;
use super::value::Entry;
use crate::types::CompactBytes;

/// The snapshot state of one shard while a snapshot has not finished it.
#[derive(Debug, Default)]
pub struct ShardSnap {
    /// Slab positions below this have been visited by the dumper.
    cursor: usize,
    /// Before-images of keys changed before the dumper reached them; `None`
    /// for a key that did not exist at the instant.
    saved: HashMap<CompactBytes, Option<Entry>, ahash::RandomState>,
}

impl ShardSnap {
    /// Keeps the instant's value of `key` before a change to it, unless it is
    /// already kept or already emitted.
    pub(super) fn preserve(&mut self, map: &Table, key: &[u8]) {
        if self.saved.contains_key(key) {
            return;
        }
        match map.find(key) {
            Some(pos) if pos >= self.cursor => {
                let entry = map.entry(pos);
                self.save(key, entry);
            }
            // Emitted already: later changes are not the snapshot's business.
            Some(_) => {}
            // Not there: created after the instant (or emitted and since
            // removed, where `None` changes nothing).
            None => {
                self.saved.insert(CompactBytes::from_slice(key), None);
            }
        }
    }

    /// Before `key` is removed: the table's last slot moves to its place; if
    /// that takes a key not yet visited below the cursor, it is saved now.
    pub(super) fn preserve_moved(&mut self, map: &Table, key: &[u8]) {
        let Some(pos) = map.find(key) else {
            return;
        };
        let last = map.len() - 1;
        if pos < self.cursor && last >= self.cursor {
            if let Some((moved, entry)) = map.at(last) {
                if !self.saved.contains_key(moved) {
                    self.save(moved, entry);
                }
            }
        }
    }

    /// Before the shard is emptied (FLUSHDB, FLUSHALL): every key not yet
    /// visited is saved.
    pub(super) fn preserve_all(&mut self, map: &Table) {
        for pos in self.cursor..map.len() {
            if let Some((key, entry)) = map.at(pos) {
                if !self.saved.contains_key(key) {
                    self.save(key, entry);
                }
            }
        }
    }

    /// Ends the walk of this shard: what it has not visited is saved
    /// already ([`Self::preserve_all`]) and the table now holds other keys
    /// (SWAPDB).
    pub(super) fn end_walk(&mut self) {
        self.cursor = usize::MAX;
    }

    fn save(&mut self, key: &[u8], entry: &Entry) {
        let copy = Entry::new(entry.value.snapshot_copy(), entry.expires_at());
        self.saved.insert(CompactBytes::from_slice(key), Some(copy));
    }

    /// Visits up to `max` slab positions from the cursor, handing each key
    /// still holding its instant's value to `emit`, which answers whether to
    /// go on (false ends the visit after that key); true once the cursor has
    /// passed the end of the table.
    pub(super) fn visit<E>(
        &mut self,
        map: &Table,
        max: usize,
        mut emit: impl FnMut(&[u8], &Entry) -> Result<bool, E>,
    ) -> Result<bool, E> {
        let end = map.len().min(self.cursor.saturating_add(max));
        while self.cursor < end {
            let mut more = true;
            if let Some((key, entry)) = map.at(self.cursor) {
                if !self.saved.contains_key(key) {
                    more = emit(key, entry)?;
                }
            }
            self.cursor += 1;
            if !more {
                break;
            }
        }
        Ok(self.cursor >= map.len())
    }

    /// The before-images kept, for the dumper to emit once it has visited
    /// the whole table.
    pub(super) fn into_saved(self) -> impl Iterator<Item = (CompactBytes, Entry)> {
        self.saved
            .into_iter()
            .filter_map(|(key, entry)| Some((key, entry?)))
    }
}
