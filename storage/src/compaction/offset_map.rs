//! The latest offset of every key of a log's dirty part, in bounded memory.

use std::collections::HashMap;

use bytes::Bytes;

/// What one entry costs beyond its key's bytes: the map's slot (a `Bytes`
/// and an offset) and its share of the table's spare room.
const ENTRY_OVERHEAD: usize = 64;

/// Keys to their latest offset. Keys are kept whole (zero-copy slices of
/// the segments read), so that two keys never share an entry: Kafka keeps
/// a 16-byte digest instead, and a collision there drops a record.
#[derive(Debug, Clone, Default)]
pub struct OffsetMap {
    latest: HashMap<Bytes, u64>,
    bytes: usize,
    limit: usize,
}

impl OffsetMap {
    /// An empty map that holds at most `limit_bytes` of keys and entries.
    pub fn new(limit_bytes: usize) -> OffsetMap {
        OffsetMap {
            latest: HashMap::new(),
            bytes: 0,
            limit: limit_bytes,
        }
    }

    /// Records `key` at `offset` (offsets come in log order). False, and
    /// nothing recorded, when the key is new and the map is full.
    pub fn put(&mut self, key: &Bytes, offset: u64) -> bool {
        if let Some(at) = self.latest.get_mut(key) {
            *at = (*at).max(offset);
            return true;
        }
        let cost = key.len() + ENTRY_OVERHEAD;
        if self.bytes + cost > self.limit {
            return false;
        }
        self.bytes += cost;
        self.latest.insert(key.clone(), offset);
        true
    }

    /// Records `key` at `offset` whether or not it fits: a pass always
    /// takes its first batch, however many keys it holds, so that a
    /// partition is never stuck behind one batch larger than the map.
    pub fn put_anyway(&mut self, key: &Bytes, offset: u64) {
        if !self.put(key, offset) {
            self.bytes += key.len() + ENTRY_OVERHEAD;
            self.latest.insert(key.clone(), offset);
        }
    }

    /// Whether every one of `keys` that is new fits.
    pub fn has_room_for<'a>(&self, keys: impl IntoIterator<Item = &'a Bytes>) -> bool {
        let mut new: Vec<&Bytes> = keys
            .into_iter()
            .filter(|k| !self.latest.contains_key(*k))
            .collect();
        new.sort_unstable();
        new.dedup();
        let cost: usize = new.iter().map(|k| k.len() + ENTRY_OVERHEAD).sum();
        self.bytes + cost <= self.limit
    }

    /// The latest offset of `key`, if the map has it.
    pub fn latest(&self, key: &[u8]) -> Option<u64> {
        self.latest.get(key).copied()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Bytes it accounts for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
