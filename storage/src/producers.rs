//! The idempotent producers of one partition (Kafka's `ProducerStateManager`).
//!
//! For every producer id: its epoch, the sequence it must send next, and its
//! last [`CACHED_BATCHES`] batches with their offsets. A batch whose sequence
//! follows on is appended; a retry of a cached batch is answered with the
//! offsets it got the first time and not stored again; a gap, an old
//! uncached sequence or an older epoch is refused. The partition checks and
//! records under its appender lock, so the check, the append and the update
//! are one step.
//!
//! The state is rebuilt from the log (a replica rebuilds it from its own
//! log the same way): [`ProducerState::load`] reads the snapshot beside the
//! segments and the partition replays the batch headers after it. Snapshots
//! are written when a segment rolls (after the sealed segment is synced, so a
//! snapshot is never ahead of the log on disk) and at a clean close: after a
//! crash the replay covers at most the active segment.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use brook_protocol::batch::BatchHeader;

use crate::error::{Error, Result};
use crate::file::{replace_unsynced, write_atomic_in};
use crate::fs::FileSystem;

/// Batches remembered per producer (as Kafka's 5 in flight).
pub const CACHED_BATCHES: usize = 5;
/// The snapshot's file name in the partition directory.
pub(crate) const SNAPSHOT: &str = "producer-state";
const MAGIC_V1: &str = "brook-producers 1 ";
const MAGIC_V2: &str = "brook-producers 2 ";
const MAGIC_V3: &str = "brook-producers 3 ";

/// Where a stored batch of a producer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
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
    /// When its newest batch was appended (wall-clock ms): what its expiry
    /// counts from. The broker's clock, not the records' timestamps: a
    /// producer replaying old events must not expire as it writes.
    last_seen_ms: i64,
}

/// What to do with a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Append it (new, or not from an idempotent producer).
    Append,
    /// Already stored, there.
    Duplicate(Stored),
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, Producer>,
}

fn last_seq(h: &BatchHeader) -> i32 {
    // As Kafka's: over the batch's span, so a batch stored with gaps
    // (records the broker left out) keeps its producer's numbering.
    h.base_sequence.wrapping_add(h.last_offset_delta as i32)
}

impl ProducerState {
    /// Decides what to do with a batch (see the module doc).
    pub fn check(&self, h: &BatchHeader) -> Result<Verdict> {
        if h.producer_id < 0 {
            return Ok(Verdict::Append);
        }
        if h.base_sequence < 0 || h.producer_epoch < 0 {
            return Err(Error::InvalidProducerFields {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                sequence: h.base_sequence,
            });
        }
        let Some(p) = self.producers.get(&h.producer_id) else {
            return match h.base_sequence {
                0 => Ok(Verdict::Append),
                sequence => Err(Error::UnknownProducer {
                    producer_id: h.producer_id,
                    sequence,
                }),
            };
        };
        if h.producer_epoch < p.epoch {
            return Err(Error::ProducerFenced {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current_epoch: p.epoch,
            });
        }
        if h.producer_epoch > p.epoch {
            return match h.base_sequence {
                0 => Ok(Verdict::Append),
                received => Err(Error::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    received,
                    expected: 0,
                    reason: "a new producer epoch must start at sequence 0",
                }),
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
        Err(Error::OutOfOrderSequence {
            producer_id: h.producer_id,
            received: h.base_sequence,
            expected: p.next_seq,
            reason: if h.base_sequence > p.next_seq {
                "a batch is missing"
            } else {
                "an old batch that is no longer remembered"
            },
        })
    }

    /// Records a batch stored at `base_offset` at `seen_ms` (wall-clock ms
    /// of the append, or of the open that replays it).
    pub fn record(&mut self, h: &BatchHeader, base_offset: u64, seen_ms: i64) {
        if h.producer_id < 0 {
            return;
        }
        let p = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != p.epoch {
            *p = Producer {
                epoch: h.producer_epoch,
                ..Producer::default()
            };
        }
        p.next_seq = last_seq(h).wrapping_add(1);
        p.last_seen_ms = p.last_seen_ms.max(seen_ms);
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

    /// A producer's epoch and the sequence it must send next, if known.
    pub fn next_sequence(&self, producer_id: i64) -> Option<(i16, i32)> {
        (self.producers.get(&producer_id)).map(|p| (p.epoch, p.next_seq))
    }

    /// The last offset of every known producer's newest stored batch: the
    /// batches compaction keeps (emptied if need be), so that a replay of
    /// the log rebuilds each producer's epoch and next sequence.
    pub fn last_offsets(&self) -> std::collections::HashSet<u64> {
        self.producers
            .values()
            .filter_map(|p| p.recent.back().map(|s| s.last_offset))
            .collect()
    }

    /// Producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Forgets the producers whose newest batch was appended more than
    /// `max_idle_ms` before `now_ms` (Kafka's `producer.id.expiration.ms`): an idle
    /// producer's state does not stay forever. One that comes back later
    /// must start again at sequence 0 (else UNKNOWN_PRODUCER_ID). Returns
    /// how many were forgotten.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: u64) -> usize {
        let before = self.producers.len();
        let oldest = now_ms.saturating_sub(i64::try_from(max_idle_ms).unwrap_or(i64::MAX));
        self.producers.retain(|_, p| p.last_seen_ms >= oldest);
        before - self.producers.len()
    }

    pub(crate) fn encode(&self, valid_to: u64) -> String {
        let mut text = format!("{MAGIC_V3}{valid_to}\n");
        let mut ids: Vec<_> = self.producers.keys().collect();
        ids.sort();
        for pid in ids {
            let p = &self.producers[pid];
            text.push_str(&format!(
                "p {pid} {} {} {}\n",
                p.epoch, p.next_seq, p.last_seen_ms
            ));
            for b in &p.recent {
                text.push_str(&format!(
                    "b {} {} {} {}\n",
                    b.base_seq, b.last_seq, b.base_offset, b.last_offset
                ));
            }
        }
        // A torn or cut file must not pass for a state with fewer producers.
        let crc = crc32fast::hash(text.as_bytes());
        text.push_str(&format!("crc {crc}\n"));
        text
    }

    /// Writes the snapshot, valid up to offset `valid_to`, atomically;
    /// `durable` also fsyncs it and its directory before returning (without,
    /// the caller syncs the file system afterwards).
    pub fn save(
        &self,
        fs: &dyn FileSystem,
        dir: &Path,
        valid_to: u64,
        durable: bool,
    ) -> Result<()> {
        let text = self.encode(valid_to);
        match durable {
            true => write_atomic_in(fs, dir, SNAPSHOT, text.as_bytes()),
            false => replace_unsynced(fs, dir, SNAPSHOT, text.as_bytes()),
        }
    }

    /// Reads the snapshot in `dir` and the offset it is valid to; `None` if
    /// it is missing or does not pass its checks (the log replay then covers
    /// everything).
    pub fn load(dir: &Path) -> Option<(ProducerState, u64)> {
        let text = std::fs::read_to_string(dir.join(SNAPSHOT)).ok()?;
        decode(&text)
    }
}

pub(crate) fn decode(text: &str) -> Option<(ProducerState, u64)> {
    let checked = [MAGIC_V3, MAGIC_V2]
        .into_iter()
        .find(|m| text.starts_with(m));
    let (body, magic) = match checked {
        Some(magic) => {
            let trailer = text.trim_end_matches('\n').rfind('\n')? + 1;
            let crc: u32 = text[trailer..].trim().strip_prefix("crc ")?.parse().ok()?;
            let body = &text[..trailer];
            (crc32fast::hash(body.as_bytes()) == crc).then_some((body, magic))?
        }
        // Written by earlier versions, always durably: no checksum.
        None => (text, MAGIC_V1),
    };
    // Versions 1 and 2 kept no timestamps: their producers count as seen
    // now, and expire a whole expiry period after this open.
    let loaded_at = crate::now_ms();
    let mut lines = body.lines();
    let valid_to = lines.next()?.strip_prefix(magic)?.parse().ok()?;
    let mut state = ProducerState::default();
    let mut current: Option<&mut Producer> = None;
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["p", pid, epoch, next, rest @ ..] if rest.len() <= 1 => {
                let p = state.producers.entry(pid.parse().ok()?).or_default();
                p.epoch = epoch.parse().ok()?;
                p.next_seq = next.parse().ok()?;
                p.last_seen_ms = match rest {
                    [ts] => ts.parse().ok()?,
                    _ => loaded_at,
                };
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
        let mut s = ProducerState::default();
        assert_eq!(s.check(&header(7, 0, 0, 3)).unwrap(), Verdict::Append);
        s.record(&header(7, 0, 0, 3), 100, 0);
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
        assert!(
            matches!(
                gap,
                Error::OutOfOrderSequence {
                    expected: 3,
                    received: 5,
                    ..
                }
            ),
            "{gap}"
        );
        assert!(matches!(
            s.check(&header(8, 0, 4, 1)),
            Err(Error::UnknownProducer { sequence: 4, .. })
        ));
        s.record(&header(7, 1, 0, 1), 200, 0);
        assert!(matches!(
            s.check(&header(7, 0, 3, 1)),
            Err(Error::ProducerFenced {
                epoch: 0,
                current_epoch: 1,
                ..
            })
        ));
        assert!(matches!(
            s.check(&header(7, 0, -3, 1)),
            Err(Error::InvalidProducerFields { .. })
        ));
        assert_eq!(
            s.check(&header(-1, -1, -1, 1)).unwrap(),
            Verdict::Append,
            "non-idempotent batches pass"
        );
    }

    #[test]
    fn only_the_last_batches_are_remembered() {
        let mut s = ProducerState::default();
        for i in 0..10 {
            s.record(&header(1, 0, i, 1), u64::from(i as u32), 0);
        }
        assert!(matches!(
            s.check(&header(1, 0, 9, 1)),
            Ok(Verdict::Duplicate(_))
        ));
        assert!(s.check(&header(1, 0, 2, 1)).is_err(), "too old to tell");
    }

    #[test]
    fn snapshot_round_trips_and_refuses_a_cut_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        s.record(&header(3, 2, 0, 4), 10, 0);
        s.record(&header(3, 2, 4, 1), 14, 0);
        s.record(&header(9, 0, 0, 1), 15, 0);
        s.save(&crate::fs::RealFs, dir.path(), 16, true).unwrap();
        let (loaded, to) = ProducerState::load(dir.path()).unwrap();
        assert_eq!((loaded, to), (s.clone(), 16));
        let text = std::fs::read_to_string(dir.path().join(SNAPSHOT)).unwrap();
        // Cut at a line boundary: parses line by line, but the checksum fails.
        let cut = &text[..text.find("p 9").unwrap()];
        assert!(decode(cut).is_none());
        let flipped = text.replacen("p 3 2 5", "p 3 2 6", 1);
        assert!(decode(&flipped).is_none());
    }

    fn header_at(pid: i64, seq: i32) -> BatchHeader {
        let mut b = BatchBuilder::new().producer(pid, 0, seq);
        // Old record times on purpose: expiry counts from the append.
        b.push(1, None, Some(b"v"), &[]);
        *Batch::parse(b.build(0)).unwrap().header()
    }

    #[test]
    fn idle_producers_expire_and_the_snapshot_keeps_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        s.record(&header_at(1, 0), 0, 1_000);
        s.record(&header_at(2, 0), 1, 5_000);
        s.save(&crate::fs::RealFs, dir.path(), 2, true).unwrap();
        let (mut loaded, _) = ProducerState::load(dir.path()).unwrap();
        assert_eq!(loaded, s, "the timestamps survive the snapshot");
        // Producer 1 last appended 5 s ago, producer 2 1 s ago (whatever
        // their records' timestamps say).
        assert_eq!(loaded.expire(6_000, 2_000), 1);
        assert_eq!(loaded.len(), 1);
        assert!(matches!(
            loaded.check(&header_at(1, 1)),
            Err(Error::UnknownProducer { producer_id: 1, .. })
        ));
        assert_eq!(loaded.check(&header_at(1, 0)).unwrap(), Verdict::Append);
        assert_eq!(loaded.check(&header_at(2, 1)).unwrap(), Verdict::Append);
        assert_eq!(loaded.expire(6_000, 2_000), 0, "nothing more is idle");
    }

    #[test]
    fn a_version_2_snapshot_still_loads() {
        let body = "brook-producers 2 15\np 3 2 5\nb 0 3 10 13\nb 4 4 14 14\n";
        let text = format!("{body}crc {}\n", crc32fast::hash(body.as_bytes()));
        let (state, to) = decode(&text).unwrap();
        assert_eq!(to, 15);
        assert!(matches!(
            state.check(&header(3, 2, 4, 1)),
            Ok(Verdict::Duplicate(Stored {
                base_offset: 14,
                ..
            }))
        ));
        assert_eq!(
            state.clone().expire(crate::now_ms(), 60_000),
            0,
            "seen at load"
        );
        assert!(decode(&text.replace("crc ", "crc 1")).is_none());
    }

    #[test]
    fn a_version_1_snapshot_still_loads() {
        let text = "brook-producers 1 15\np 3 2 5\nb 0 3 10 13\nb 4 4 14 14\n";
        let (state, to) = decode(text).unwrap();
        assert_eq!(to, 15);
        // No timestamps in version 1: its producers count as seen at load.
        assert_eq!(state.clone().expire(crate::now_ms(), 60_000), 0);
        assert!(matches!(
            state.check(&header(3, 2, 4, 1)),
            Ok(Verdict::Duplicate(Stored {
                base_offset: 14,
                ..
            }))
        ));
    }
}
