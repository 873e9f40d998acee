//! What one chunk of a source partition makes for the targets, arranged
//! into batches the way they must be appended.
//!
//! Each rule writes with a producer of its own, so its records for a
//! target partition go in batches of their own. Two constraints order
//! them: a rule's records stay in source order (its sequence numbers
//! follow it, and recovery counts them in that order), and so do an
//! aggregate's records across rules (a key's `OrderPlaced` from one rule
//! before its `OrderCancelled` from another, in the one target). Batches
//! are placed in *stages*, appended one after another: a record goes into
//! the stage of its rule's previous record, or the one after its key's
//! previous record when another rule wrote that. Rules that never share a
//! key in a chunk share one stage: one batch each, however their records
//! interleave in the source.

use std::collections::{BTreeMap, HashMap};

use brook_protocol::batch::BatchBuilder;
use bytes::Bytes;

/// Bytes of a target batch before another is started (or the target's
/// `max_batch_bytes`, if smaller).
const BATCH_BYTES: usize = 256 << 10;

/// A record's size in a batch, at most: its fields and their lengths.
fn record_size(key: Option<&Bytes>, value: Option<&[u8]>, headers: &[(&str, &[u8])]) -> usize {
    let fields: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
    key.map_or(0, |k| k.len()) + value.map_or(0, <[u8]>::len) + fields + 32
}

/// A record's producer fields: id, epoch, sequence.
pub type Stamp = (i64, i16, i32);

/// One rule's records, consecutive in its numbering, for one target
/// partition.
pub struct Run {
    /// The rule's cursor (its index in the delivery task).
    pub cursor: usize,
    /// The producer epoch its records carry (a rule starts a new one when
    /// its sequence numbers run out).
    pub epoch: i16,
    /// The records.
    pub batch: BatchBuilder,
}

/// The batches of one target partition, by stage.
#[derive(Default)]
struct Lane {
    stages: Vec<Vec<Run>>,
    /// A cursor's current stage and its open run there.
    open: HashMap<usize, (usize, usize)>,
    /// A key's last stage and the cursor that wrote it.
    keys: HashMap<Bytes, (usize, usize)>,
}

/// A chunk's records for every target partition.
#[derive(Default)]
pub struct Outbox {
    lanes: BTreeMap<(usize, u32), Lane>,
}

impl Outbox {
    /// Adds a record of `cursor`'s for the target partition `at` (the
    /// target's number in the chunk, the partition), whose batches may be
    /// at most `limit` bytes (its topic's `max_batch_bytes`).
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        cursor: usize,
        (pid, epoch, seq): Stamp,
        at: (usize, u32),
        limit: usize,
        (timestamp, key, value): (i64, Option<&Bytes>, Option<&[u8]>),
        headers: &[(&str, &[u8])],
    ) {
        let lane = self.lanes.entry(at).or_default();
        let mut stage = lane.open.get(&cursor).map_or(0, |(s, _)| *s);
        if let Some(&(s, by)) = key.and_then(|k| lane.keys.get(k)) {
            stage = stage.max(if by == cursor { s } else { s + 1 });
        }
        if lane.stages.len() <= stage {
            lane.stages.resize_with(stage + 1, Vec::new);
        }
        let runs = &mut lane.stages[stage];
        let size = record_size(key, value, headers);
        let open = match lane.open.get(&cursor) {
            Some(&(s, i))
                if s == stage
                    && runs[i].epoch == epoch
                    && runs[i].batch.size_bytes() + size <= limit.min(BATCH_BYTES) =>
            {
                i
            }
            _ => {
                runs.push(Run {
                    cursor,
                    epoch,
                    batch: BatchBuilder::new().producer(pid, epoch, seq),
                });
                runs.len() - 1
            }
        };
        runs[open]
            .batch
            .push(timestamp, key.map(|k| &k[..]), value, headers);
        lane.open.insert(cursor, (stage, open));
        if let Some(k) = key {
            lane.keys.insert(k.clone(), (stage, cursor));
        }
    }

    /// Every target partition's runs, in the order to append them.
    pub fn into_runs(self) -> impl Iterator<Item = ((usize, u32), Vec<Run>)> {
        (self.lanes.into_iter()).map(|(at, lane)| (at, lane.stages.into_iter().flatten().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::Batch;

    /// (cursor, first sequence, keys) of each run, in append order.
    fn layout(outbox: Outbox) -> Vec<(usize, i32, Vec<String>)> {
        let (_, runs) = outbox.into_runs().next().unwrap();
        runs.into_iter()
            .map(|r| {
                let batch = Batch::parse(r.batch.build(0)).unwrap();
                let keys = batch
                    .records()
                    .map(|rec| String::from_utf8(rec.unwrap().key.unwrap().to_vec()).unwrap())
                    .collect();
                (r.cursor, batch.header().base_sequence, keys)
            })
            .collect()
    }

    fn push(o: &mut Outbox, cursor: usize, seq: i32, key: &str) {
        let key = Bytes::from(key.to_string());
        let at = (0, 0);
        o.push(
            cursor,
            (7, 0, seq),
            at,
            1 << 20,
            (0, Some(&key), Some(b"v")),
            &[],
        );
    }

    #[test]
    fn rules_that_share_no_key_write_one_batch_each_however_they_interleave() {
        let mut o = Outbox::default();
        push(&mut o, 0, 0, "a");
        push(&mut o, 1, 0, "b");
        push(&mut o, 0, 1, "c");
        push(&mut o, 1, 1, "d");
        assert_eq!(
            layout(o),
            [
                (0, 0, vec!["a".into(), "c".into()]),
                (1, 0, vec!["b".into(), "d".into()])
            ]
        );
    }

    #[test]
    fn a_key_written_by_two_rules_keeps_its_order_and_each_rule_its_own() {
        let mut o = Outbox::default();
        push(&mut o, 0, 0, "o-1"); // placed
        push(&mut o, 1, 0, "o-2"); // cancelled, another order
        push(&mut o, 1, 1, "o-1"); // cancelled after placed: a stage later
        push(&mut o, 0, 1, "o-3"); // placed again: its rule's stage is 0
        push(&mut o, 0, 2, "o-1"); // placed after cancelled: stage 2
        push(&mut o, 1, 2, "o-4"); // rule 1 stays in stage 1
        assert_eq!(
            layout(o),
            [
                (0, 0, vec!["o-1".into(), "o-3".into()]),
                (1, 0, vec!["o-2".into()]),
                (1, 1, vec!["o-1".into(), "o-4".into()]),
                (0, 2, vec!["o-1".into()]),
            ]
        );
    }
}
