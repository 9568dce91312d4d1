//! [`Table`]: a shard's key → entry map, laid out for memory.
//!
//! Entries sit densely in a `Vec` (key and entry side by side, 64 bytes each);
//! a `hashbrown::HashTable` of `u32` positions indexes them by key hash. Compared
//! with a `HashMap<Bytes, Entry>` this costs 5 bytes per index bucket instead of a
//! whole entry, so the table's growth by doubling wastes little, and removal is a
//! `swap_remove` that keeps the slab dense (and lets RANDOMKEY pick by position).

use hashbrown::HashTable;

use super::value::Entry;
use crate::types::CompactBytes;

struct Slot {
    key: CompactBytes,
    entry: Entry,
}

/// Keys and entries of one shard.
pub struct Table {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    hasher: ahash::RandomState,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            index: HashTable::new(),
            slots: Vec::new(),
            hasher: ahash::RandomState::new(),
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} keys)", self.slots.len())
    }
}

impl Table {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The hash `key` is indexed under: what the shard files a key's
    /// deadlines under, instead of a copy of the key.
    pub fn hash_of(&self, key: &[u8]) -> u64 {
        self.hash(key)
    }

    /// The keys whose hash is `hash` (from [`Table::hash_of`]).
    pub fn keys_with_hash(&self, hash: u64) -> impl Iterator<Item = &[u8]> {
        self.index
            .iter_hash(hash)
            .map(|&i| self.slots[i as usize].key.as_slice())
            .filter(move |key| self.hash(key) == hash)
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(self.hash(key), |&i| slots[i as usize].key.as_slice() == key)
            .map(|&i| i as usize)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slab position of `key`, for a caller that looks once and then reads or
    /// writes by position.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.position(key)
    }

    /// The entry at slab position `pos` (from [`Table::find`]).
    pub fn entry(&self, pos: usize) -> &Entry {
        &self.slots[pos].entry
    }

    /// The entry at slab position `pos`, mutable.
    pub fn entry_mut(&mut self, pos: usize) -> &mut Entry {
        &mut self.slots[pos].entry
    }

    /// The entry at `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.position(key).map(|i| &self.slots[i].entry)
    }

    /// The entry at `key`, mutable.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.position(key).map(|i| &mut self.slots[i].entry)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.position(key).is_some()
    }

    /// Stores `entry` at `key`; returns the entry it replaced.
    pub fn insert(&mut self, key: &[u8], entry: Entry) -> Option<Entry> {
        if let Some(i) = self.position(key) {
            return Some(std::mem::replace(&mut self.slots[i].entry, entry));
        }
        let pos = self.slots.len() as u32;
        self.slots.push(Slot {
            key: CompactBytes::from_slice(key),
            entry,
        });
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(self.hasher.hash_one(key), pos, |&i| {
                hasher.hash_one(slots[i as usize].key.as_slice())
            });
        None
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = self.hash(key);
        let slots = &self.slots;
        let found = self
            .index
            .find_entry(hash, |&i| slots[i as usize].key.as_slice() == key)
            .ok()?;
        let (pos, _) = found.remove();
        let pos = pos as usize;
        let last = self.slots.len() - 1;
        let removed = self.slots.swap_remove(pos);
        if pos != last {
            // The last slot moved to `pos`: repoint its index entry.
            let moved_hash = self.hash(self.slots[pos].key.as_slice());
            if let Some(i) = self.index.find_mut(moved_hash, |&i| i as usize == last) {
                *i = pos as u32;
            }
        }
        Some(removed.entry)
    }

    /// Removes every key. The hasher stays: deadlines filed by hash remain
    /// meaningful.
    pub fn clear(&mut self) {
        self.index = HashTable::new();
        self.slots = Vec::new();
    }

    /// Holds nothing and has nothing allocated: [`Table::clear`] would
    /// leave it as it is.
    pub fn is_unallocated(&self) -> bool {
        self.slots.capacity() == 0 && self.index.capacity() == 0
    }

    /// Every key and entry, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.slots.iter().map(|s| (s.key.as_slice(), &s.entry))
    }

    /// The key and entry at slab position `i` (for picking a random key).
    pub fn at(&self, i: usize) -> Option<(&[u8], &Entry)> {
        self.slots.get(i).map(|s| (s.key.as_slice(), &s.entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Value;

    fn e(v: &str) -> Entry {
        Entry::persistent(Value::string(v.as_bytes()))
    }

    #[test]
    fn insert_get_remove_keep_index_consistent() {
        let mut t = Table::default();
        for i in 0..1000 {
            assert!(t.insert(format!("k{i}").as_bytes(), e("v")).is_none());
        }
        for i in (0..1000).step_by(3) {
            assert!(t.remove(format!("k{i}").as_bytes()).is_some());
        }
        for i in 0..1000 {
            let present = t.get(format!("k{i}").as_bytes()).is_some();
            assert_eq!(present, i % 3 != 0, "k{i}");
        }
        assert_eq!(t.len(), 666);
        assert_eq!(t.iter().count(), 666);
        assert!(
            t.insert(b"k1", e("w")).is_some(),
            "replacing returns the old entry"
        );
        assert_eq!(t.len(), 666);
    }
}
