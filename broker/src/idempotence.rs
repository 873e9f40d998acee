//! The idempotent producer, broker side.
//!
//! Per partition, for every producer id: its epoch, the sequence it must
//! send next, and its last [`CACHED_BATCHES`] batches with their offsets. A
//! batch whose sequence follows on is appended; a retry of a cached batch is
//! answered with the offsets it got the first time and not stored again; a
//! gap, an old uncached sequence or an older epoch is refused with
//! FAILED_PRECONDITION. The check, the append and the update happen under one
//! lock per partition.
//!
//! The state survives restarts: `<partition dir>/producer-state` is written
//! with the log offset it is valid to, every few seconds while it changes
//! (after the log is flushed to that offset, so that a crash cannot leave
//! the log shorter than the snapshot) and at clean shutdown. The first
//! idempotent produce after a start replays the batch headers after that
//! offset — or the whole log if the snapshot is missing, damaged or ahead of
//! the log.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use brook_protocol::batch::{BatchHeader, headers};
use brook_storage::Partition;
use tonic::Status;

/// Batches remembered per producer and partition (as Kafka's 5 in-flight).
pub const CACHED_BATCHES: usize = 5;
const SNAPSHOT: &str = "producer-state";

/// Where a stored batch of a producer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    base_seq: i32,
    last_seq: i32,
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Producer {
    epoch: i16,
    next_seq: i32,
    recent: VecDeque<Stored>,
}

/// What to do with a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Append it (new, or not from an idempotent producer).
    Append,
    /// Already stored, there.
    Duplicate(Stored),
}

/// The producers of one partition.
#[derive(Debug, Default, Clone)]
pub struct PartitionProducers {
    producers: HashMap<i64, Producer>,
    /// Batches recorded since load: tells whether a new snapshot is due.
    version: u64,
}

fn last_seq(h: &BatchHeader) -> i32 {
    h.base_sequence.wrapping_add(h.record_count as i32 - 1)
}

impl PartitionProducers {
    /// Decides what to do with a batch (see the module doc).
    pub fn check(&self, h: &BatchHeader) -> Result<Verdict, Status> {
        if h.producer_id < 0 {
            return Ok(Verdict::Append);
        }
        if h.base_sequence < 0 || h.producer_epoch < 0 {
            return Err(Status::invalid_argument(format!(
                "producer {} sent base_sequence {} and epoch {}: both must be >= 0",
                h.producer_id, h.base_sequence, h.producer_epoch
            )));
        }
        let Some(p) = self.producers.get(&h.producer_id) else {
            return match h.base_sequence {
                0 => Ok(Verdict::Append),
                s => Err(Status::failed_precondition(format!(
                    "unknown producer {} must start at sequence 0, not {s} (call InitProducer again)",
                    h.producer_id
                ))),
            };
        };
        if h.producer_epoch < p.epoch {
            return Err(Status::failed_precondition(format!(
                "producer {} epoch {} is fenced by epoch {}",
                h.producer_id, h.producer_epoch, p.epoch
            )));
        }
        if h.producer_epoch > p.epoch {
            return match h.base_sequence {
                0 => Ok(Verdict::Append),
                s => Err(Status::failed_precondition(format!(
                    "a new producer epoch must start at sequence 0, not {s}"
                ))),
            };
        }
        if let Some(b) = p
            .recent
            .iter()
            .find(|b| b.base_seq == h.base_sequence && b.last_seq == last_seq(h))
        {
            return Ok(Verdict::Duplicate(*b));
        }
        if h.base_sequence == p.next_seq {
            return Ok(Verdict::Append);
        }
        Err(Status::failed_precondition(format!(
            "producer {} sent sequence {} but the partition expects {}: {}",
            h.producer_id,
            h.base_sequence,
            p.next_seq,
            if h.base_sequence > p.next_seq {
                "a batch is missing"
            } else {
                "an old batch that is no longer remembered"
            }
        )))
    }

    /// Records a batch stored at `base_offset` (after an append, or while replaying the log).
    pub fn record(&mut self, h: &BatchHeader, base_offset: u64) {
        if h.producer_id < 0 {
            return;
        }
        self.version += 1;
        let p = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != p.epoch {
            *p = Producer {
                epoch: h.producer_epoch,
                ..Producer::default()
            };
        }
        p.next_seq = last_seq(h).wrapping_add(1);
        p.recent.push_back(Stored {
            base_seq: h.base_sequence,
            last_seq: last_seq(h),
            base_offset,
            last_offset: base_offset + u64::from(h.last_offset_delta),
        });
        while p.recent.len() > CACHED_BATCHES {
            p.recent.pop_front();
        }
    }

    /// Replays the batch headers of `partition` from `from` to its end,
    /// passing over damaged ranges (their producers' sequences are lost with
    /// them; a retry of such a batch is then appended again, not deduplicated).
    fn replay(&mut self, partition: &Partition, from: u64) -> Result<(), Status> {
        let mut next = from.max(partition.log_start_offset());
        while next < partition.log_end_offset() {
            let read = match partition.read(next, 8 << 20) {
                Ok(read) => read,
                Err(brook_storage::Error::Damaged { end_offset, .. }) if end_offset > next => {
                    next = end_offset;
                    continue;
                }
                Err(e) => return Err(crate::status::to_status(e)),
            };
            let mut last = None;
            for h in headers(&read.batches) {
                if h.next_offset() > next {
                    self.record(&h, h.base_offset);
                }
                last = Some(h.next_offset());
            }
            match last {
                Some(n) if n > next => next = n,
                _ => break,
            }
        }
        Ok(())
    }

    /// Loads the snapshot, if any and usable, then replays the rest of the log.
    pub fn load(partition: &Partition) -> Result<PartitionProducers, Status> {
        let (mut state, valid_to) = read_snapshot(&partition.dir().join(SNAPSHOT))
            .filter(|(_, to)| *to <= partition.log_end_offset())
            .unwrap_or_default();
        state.replay(partition, valid_to)?;
        Ok(state)
    }

    /// Writes the snapshot, valid up to `valid_to`, atomically; `durable`
    /// also fsyncs it (and its directory) before returning.
    pub fn save(&self, dir: &Path, valid_to: u64, durable: bool) -> std::io::Result<()> {
        let mut text = format!("brook-producers 1 {valid_to}\n");
        for (pid, p) in &self.producers {
            text.push_str(&format!("p {pid} {} {}\n", p.epoch, p.next_seq));
            for b in &p.recent {
                text.push_str(&format!(
                    "b {} {} {} {}\n",
                    b.base_seq, b.last_seq, b.base_offset, b.last_offset
                ));
            }
        }
        let tmp = dir.join(format!("{SNAPSHOT}.tmp"));
        std::fs::write(&tmp, text)?;
        if !durable {
            // Renaming over an existing file makes ext4 write the new one
            // out at once (auto_da_alloc), ~0.3 ms per file: thousands of
            // snapshots at shutdown would take seconds. Without the old one
            // in the way the rename is cheap, and the sync that follows the
            // shutdown covers both. (A crash in between only means a longer
            // replay: no snapshot is a valid state.)
            let path = dir.join(SNAPSHOT);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            return std::fs::rename(&tmp, path);
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join(SNAPSHOT))?;
        std::fs::File::open(dir)?.sync_all()
    }
}

/// Parses a snapshot; `None` if missing or malformed (the log replay then covers everything).
fn read_snapshot(path: &Path) -> Option<(PartitionProducers, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let valid_to = lines
        .next()?
        .strip_prefix("brook-producers 1 ")?
        .parse()
        .ok()?;
    let mut state = PartitionProducers::default();
    let mut current: Option<&mut Producer> = None;
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["p", pid, epoch, next] => {
                let p = state.producers.entry(pid.parse().ok()?).or_default();
                p.epoch = epoch.parse().ok()?;
                p.next_seq = next.parse().ok()?;
                current = Some(p);
            }
            ["b", base, last, bo, lo] => current.as_mut()?.recent.push_back(Stored {
                base_seq: base.parse().ok()?,
                last_seq: last.parse().ok()?,
                base_offset: bo.parse().ok()?,
                last_offset: lo.parse().ok()?,
            }),
            _ => return None,
        }
    }
    Some((state, valid_to))
}

/// One partition's producer state, locked around check + append + record.
type SharedState = Arc<Mutex<PartitionProducers>>;

/// Producer state of every partition that an idempotent producer used since start.
#[derive(Default)]
pub struct Producers {
    /// Each with the partition it was loaded from: a topic deleted and
    /// created again under the same name must not inherit the old state.
    partitions: Mutex<HashMap<(String, u32), (Partition, SharedState)>>,
    /// The `version` of each partition's last snapshot.
    saved: Mutex<HashMap<(String, u32), u64>>,
    /// Held by snapshot writers and by topic deletion: a snapshot is never
    /// written into a partition directory being deleted (or recreated).
    writing: Mutex<()>,
}

impl Producers {
    /// The state of one partition, loaded (snapshot + replay) on first use.
    pub fn partition(
        &self,
        topic: &str,
        id: u32,
        p: &Partition,
    ) -> Result<Arc<Mutex<PartitionProducers>>, Status> {
        let key = (topic.to_string(), id);
        if let Some((loaded_from, s)) = self
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && loaded_from.same_as(p)
        {
            return Ok(Arc::clone(s));
        }
        let loaded = Arc::new(Mutex::new(PartitionProducers::load(p)?));
        let mut map = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&key) {
            Some((loaded_from, s)) if loaded_from.same_as(p) => Ok(Arc::clone(s)),
            // Missing, or left from a deleted incarnation of the topic.
            _ => {
                map.insert(key.clone(), (p.clone(), Arc::clone(&loaded)));
                self.saved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                Ok(loaded)
            }
        }
    }

    /// Deletes a topic with `delete` while no snapshot is being written, and
    /// forgets its state (its snapshots go with its files).
    pub fn delete_topic<R>(&self, topic: &str, delete: impl FnOnce() -> R) -> R {
        let _no_snapshot_meanwhile = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let result = delete();
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(t, _), _| t != topic);
        self.saved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(t, _), _| t != topic);
        result
    }

    /// Snapshots every partition whose state changed since its last
    /// snapshot. The state is copied with the log end under its lock (so the
    /// copy is exactly the state at that offset), then the log is flushed to
    /// that offset before the snapshot is written: a crash can lose unflushed
    /// batches, and a snapshot ahead of the log would answer a retry of a
    /// lost batch as a duplicate.
    pub fn snapshot_changed(&self, log: &brook_storage::Log) {
        let _one_writer = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let states: Vec<((String, u32), Partition, SharedState)> = self
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, (p, s))| (k.clone(), p.clone(), Arc::clone(s)))
            .collect();
        for (key, p, state) in states {
            // Only the partition the state was loaded from, if it is still
            // the topic's (deletion waits for `writing`, held here).
            let current = log.topic(&key.0).and_then(|t| t.partition(key.1));
            if !current.is_ok_and(|c| c.same_as(&p)) {
                continue;
            }
            let saved = self
                .saved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .copied();
            let (copy, valid_to) = {
                let state = state.lock().unwrap_or_else(|e| e.into_inner());
                if saved == Some(state.version) {
                    continue;
                }
                (state.clone(), p.log_end_offset())
            };
            let written = p
                .flush_to(valid_to)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|()| copy.save(p.dir(), valid_to, true));
            match written {
                Ok(()) => {
                    self.saved
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, copy.version);
                }
                Err(e) => {
                    tracing::warn!(topic = key.0, partition = key.1, error = %e, "could not write the producer-state snapshot; a crash now replays more of the log");
                }
            }
        }
    }

    /// Writes a snapshot for every loaded partition, at the clean shutdown:
    /// after the last append, from inside [`brook_storage::Log::close_with`]
    /// once the log is on disk. The snapshots are not synced one by one: the
    /// close syncs the file system again after them.
    /// A snapshot already on disk for the state's current version stays: no
    /// idempotent batch came since, so replaying after it rebuilds nothing.
    /// The rest are written on a few threads (thousands of small files).
    pub fn save_all(&self, log: &brook_storage::Log) {
        let _one_writer = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let map = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        let stale: Vec<_> = map
            .iter()
            .filter(|(key, (p, state))| {
                let current = log.topic(&key.0).and_then(|t| t.partition(key.1));
                let version = state.lock().unwrap_or_else(|e| e.into_inner()).version;
                current.is_ok_and(|c| c.same_as(p)) && saved.get(*key) != Some(&version)
            })
            .collect();
        let threads = 16.min(stale.len()).max(1);
        std::thread::scope(|s| {
            for chunk in stale.chunks(stale.len().div_ceil(threads).max(1)) {
                s.spawn(move || {
                    for ((topic, id), (p, state)) in chunk {
                        let state = state.lock().unwrap_or_else(|e| e.into_inner());
                        if let Err(e) = state.save(p.dir(), p.log_end_offset(), false) {
                            tracing::warn!(topic, partition = id, error = %e, "could not write the producer-state snapshot; the next start replays the log");
                        }
                    }
                });
            }
        });
    }
}

/// Hands out producer ids, unique across restarts: blocks of ids are
/// reserved in `<data>/~producer-ids` (atomically replaced) before use.
pub struct ProducerIds {
    path: std::path::PathBuf,
    state: Mutex<(i64, i64)>,
}

const ID_BLOCK: i64 = 1000;

impl ProducerIds {
    /// Reads the reservation file under `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<ProducerIds> {
        let path = data_dir.join("~producer-ids");
        let reserved = match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().parse().map_err(|_| {
                std::io::Error::other(format!("{} is not a number", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIds {
            path,
            state: Mutex::new((reserved, reserved)),
        })
    }

    /// The next unused id.
    pub fn allocate(&self) -> std::io::Result<i64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0 == st.1 {
            let reserved = st.1 + ID_BLOCK;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, format!("{reserved}\n"))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            st.1 = reserved;
        }
        st.0 += 1;
        Ok(st.0 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::{Batch, BatchBuilder};

    fn header(pid: i64, epoch: i16, seq: i32, count: u32) -> BatchHeader {
        let mut b = BatchBuilder::new().producer(pid, epoch, seq);
        for _ in 0..count {
            b.push(1, None, Some(b"v"), &[]);
        }
        *Batch::parse(b.build(0)).unwrap().header()
    }

    #[test]
    fn sequences_dedupe_gaps_and_fencing() {
        let mut s = PartitionProducers::default();
        assert_eq!(s.check(&header(7, 0, 0, 3)).unwrap(), Verdict::Append);
        s.record(&header(7, 0, 0, 3), 100);
        assert_eq!(
            s.check(&header(7, 0, 0, 3)).unwrap(),
            Verdict::Duplicate(Stored {
                base_seq: 0,
                last_seq: 2,
                base_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(s.check(&header(7, 0, 3, 2)).unwrap(), Verdict::Append);
        let gap = s.check(&header(7, 0, 5, 1)).unwrap_err();
        assert_eq!(gap.code(), tonic::Code::FailedPrecondition);
        assert!(gap.message().contains("expects 3"), "{}", gap.message());
        assert_eq!(
            s.check(&header(8, 0, 4, 1)).unwrap_err().code(),
            tonic::Code::FailedPrecondition,
            "unknown producers start at 0"
        );
        s.record(&header(7, 1, 0, 1), 200);
        assert_eq!(
            s.check(&header(7, 0, 3, 1)).unwrap_err().code(),
            tonic::Code::FailedPrecondition,
            "old epoch is fenced"
        );
        assert_eq!(
            s.check(&header(-1, -1, -1, 1)).unwrap(),
            Verdict::Append,
            "non-idempotent batches pass"
        );
    }

    /// Regression (review): state loaded from a partition of a topic that
    /// was then deleted and created again under the same name must not
    /// answer for the new topic, or a retry would be called a duplicate of
    /// a record that no longer exists.
    #[test]
    fn a_recreated_topic_does_not_inherit_producer_state() {
        let dir = tempfile::tempdir().unwrap();
        let log = brook_storage::Log::open(dir.path()).unwrap();
        let config = || brook_storage::TopicConfig {
            partitions: 1,
            partition: Default::default(),
        };
        let producers = Producers::default();
        log.create_topic("pay", config()).unwrap();
        let old = log.topic("pay").unwrap().partition(0).unwrap();
        let state = producers.partition("pay", 0, &old).unwrap();
        state.lock().unwrap().record(&header(7, 0, 0, 3), 0);
        // A produce that looked the partition up before the deletion.
        log.delete_topic("pay").unwrap();
        log.create_topic("pay", config()).unwrap();
        let new = log.topic("pay").unwrap().partition(0).unwrap();
        let state = producers.partition("pay", 0, &new).unwrap();
        assert_eq!(
            state.lock().unwrap().check(&header(7, 0, 0, 3)).unwrap(),
            Verdict::Append,
            "the new topic has no record of the old one's batches"
        );
        // Snapshots only go to the partition the state came from.
        producers.snapshot_changed(&log);
        assert!(
            new.dir().join(SNAPSHOT).exists(),
            "the new partition's own state is snapshotted"
        );
        let (copy, valid_to) = read_snapshot(&new.dir().join(SNAPSHOT)).unwrap();
        assert_eq!(valid_to, 0);
        assert!(copy.producers.is_empty());
    }

    #[test]
    fn only_the_last_batches_are_remembered() {
        let mut s = PartitionProducers::default();
        for i in 0..10 {
            s.record(&header(1, 0, i, 1), u64::from(i as u32));
        }
        assert!(matches!(
            s.check(&header(1, 0, 9, 1)),
            Ok(Verdict::Duplicate(_))
        ));
        assert!(s.check(&header(1, 0, 2, 1)).is_err(), "too old to tell");
    }

    #[test]
    fn producer_ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path()).unwrap();
        let a: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        drop(ids);
        let ids = ProducerIds::open(dir.path()).unwrap();
        let b = ids.allocate().unwrap();
        assert_eq!(a, [0, 1, 2]);
        assert!(
            b > 2,
            "after a restart ids continue past the reserved block: {b}"
        );
    }

    #[test]
    fn snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PartitionProducers::default();
        s.record(&header(3, 2, 0, 4), 10);
        s.record(&header(3, 2, 4, 1), 14);
        s.save(dir.path(), 15, true).unwrap();
        let (loaded, to) = read_snapshot(&dir.path().join(SNAPSHOT)).unwrap();
        assert_eq!(to, 15);
        assert_eq!(loaded.producers, s.producers);
    }
}
