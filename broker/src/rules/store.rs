//! The rules and their progress, as a state machine over the rules log
//! `<data>/~rules/rules.log` (a [`StateLog`]): a rule's definition when it
//! is created, its state when paused, resumed or failed, and after each
//! delivered chunk its position in one source partition with the sequence
//! numbers it has reached in the target partitions.
//!
//! The position is what saves work after a restart; what makes delivery
//! exactly once is the targets' own producer state (see `deliver.rs`), so
//! a lost or late progress frame costs a re-read, never a duplicate.
//!
//! [`StateLog`]: crate::statelog::StateLog

use std::collections::BTreeMap;

use brook_protocol::v1;

use crate::statelog::Machine;

/// The log's first line.
pub const MAGIC: &[u8] = b"brook-rules-log 1\n";

/// The log's file name in `<data>/~rules/`.
pub const NAME: &str = "rules.log";

/// One frame: a change to one rule.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// The rule's name.
    #[prost(string, tag = "1")]
    pub rule: String,
    /// The change.
    #[prost(oneof = "Op", tags = "2, 3, 4, 5")]
    pub op: Option<Op>,
}

/// The changes a frame can hold.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    /// The rule is created.
    #[prost(message, tag = "2")]
    Create(CreateEntry),
    /// The rule is deleted (the value is its incarnation).
    #[prost(uint64, tag = "3")]
    Delete(u64),
    /// The rule is paused, resumed or failed.
    #[prost(message, tag = "4")]
    State(StateEntry),
    /// The rule's progress in one source partition.
    #[prost(message, tag = "5")]
    Progress(ProgressEntry),
}

/// A rule's creation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateEntry {
    /// What the rule is.
    #[prost(message, optional, tag = "1")]
    pub definition: Option<v1::RuleDefinition>,
    /// Unique among every rule this log has held: progress of a deleted
    /// rule never lands on a new one of the same name.
    #[prost(uint64, tag = "2")]
    pub incarnation: u64,
    /// When it was created (ms since the Unix epoch).
    #[prost(int64, tag = "3")]
    pub created_ms: i64,
}

/// A rule's state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StateEntry {
    /// The rule's incarnation the state is for.
    #[prost(uint64, tag = "1")]
    pub incarnation: u64,
    /// A `v1::RuleState`.
    #[prost(int32, tag = "2")]
    pub state: i32,
    /// Why it is not running.
    #[prost(string, tag = "3")]
    pub reason: String,
}

/// Where a target partition's sequence numbers stand for one writer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TargetSequence {
    /// The target topic.
    #[prost(string, tag = "1")]
    pub topic: String,
    /// The target partition.
    #[prost(uint32, tag = "2")]
    pub partition: u32,
    /// The producer epoch used there.
    #[prost(int32, tag = "3")]
    pub epoch: i32,
    /// The sequence of the next record written there.
    #[prost(int32, tag = "4")]
    pub next_sequence: i32,
}

/// A rule's progress in one source partition. Sequences listed replace
/// those known for their target partitions; others stay.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProgressEntry {
    /// The rule's incarnation the progress is for.
    #[prost(uint64, tag = "1")]
    pub incarnation: u64,
    /// The source partition.
    #[prost(uint32, tag = "2")]
    pub partition: u32,
    /// The next source offset to look at.
    #[prost(uint64, tag = "3")]
    pub position: u64,
    /// The idempotent producer id the rule writes this partition's
    /// records with.
    #[prost(int64, tag = "4")]
    pub producer_id: i64,
    /// Records of this partition selected, in total.
    #[prost(uint64, tag = "5")]
    pub matched: u64,
    /// Records written to targets from this partition, in total.
    #[prost(uint64, tag = "6")]
    pub forwarded: u64,
    /// Target partitions' sequences that changed.
    #[prost(message, repeated, tag = "7")]
    pub sequences: Vec<TargetSequence>,
}

/// A rule's progress in one source partition, in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The next source offset to look at.
    pub position: u64,
    /// 0 until one is allocated (ids are positive).
    pub producer_id: i64,
    /// Records selected, in total.
    pub matched: u64,
    /// Records written to targets, in total.
    pub forwarded: u64,
    /// (topic, partition) → (epoch, next sequence).
    pub sequences: BTreeMap<(String, u32), (i16, i32)>,
}

/// One rule, in memory.
#[derive(Clone, Debug)]
pub struct StoredRule {
    /// What the rule is.
    pub definition: v1::RuleDefinition,
    /// Which creation of its name it is.
    pub incarnation: u64,
    /// When it was created (ms since the Unix epoch).
    pub created_ms: i64,
    /// Running, paused or failed.
    pub state: v1::RuleState,
    /// Why it is not running.
    pub reason: String,
    /// By source partition.
    pub partitions: BTreeMap<u32, Progress>,
}

/// Every rule.
#[derive(Default)]
pub struct RuleBook {
    /// By name.
    pub rules: BTreeMap<String, StoredRule>,
    /// The highest incarnation handed out.
    pub last_incarnation: u64,
}

impl RuleBook {
    /// What the log keeps, one line per item: the incarnation count, each
    /// rule's definition and state, each partition's progress. Equal lines,
    /// equal durable state.
    pub fn durable_lines(&self) -> Vec<String> {
        let mut out = vec![format!("last incarnation {}", self.last_incarnation)];
        for (name, r) in &self.rules {
            out.push(format!(
                "{name:?} {} {} {:?} {:?} {:?}",
                r.incarnation, r.created_ms, r.state, r.reason, r.definition
            ));
            for (p, at) in &r.partitions {
                out.push(format!("{name:?}/{p} {at:?}"));
            }
        }
        out
    }

    /// The rule named, if it is the incarnation given.
    fn current(&mut self, name: &str, incarnation: u64) -> Option<&mut StoredRule> {
        (self.rules.get_mut(name)).filter(|r| r.incarnation == incarnation)
    }
}

impl Machine for RuleBook {
    type Entry = Entry;
    const MAGIC: &'static [u8] = MAGIC;
    const WHAT: &'static str = "the rules log";

    fn apply(&mut self, entry: Entry) {
        let Some(op) = entry.op else { return };
        match op {
            Op::Create(c) => {
                self.last_incarnation = self.last_incarnation.max(c.incarnation);
                let rule = StoredRule {
                    definition: c.definition.unwrap_or_default(),
                    incarnation: c.incarnation,
                    created_ms: c.created_ms,
                    state: v1::RuleState::Running,
                    reason: String::new(),
                    partitions: BTreeMap::new(),
                };
                self.rules.insert(entry.rule, rule);
            }
            Op::Delete(incarnation) => {
                if self.current(&entry.rule, incarnation).is_some() {
                    self.rules.remove(&entry.rule);
                }
            }
            Op::State(s) => {
                if let Some(r) = self.current(&entry.rule, s.incarnation) {
                    r.state = v1::RuleState::try_from(s.state).unwrap_or(v1::RuleState::Paused);
                    r.reason = s.reason;
                }
            }
            Op::Progress(p) => {
                if let Some(r) = self.current(&entry.rule, p.incarnation) {
                    let at = r.partitions.entry(p.partition).or_default();
                    at.position = p.position;
                    at.producer_id = p.producer_id;
                    at.matched = p.matched;
                    at.forwarded = p.forwarded;
                    for s in p.sequences {
                        let epoch = i16::try_from(s.epoch).unwrap_or(i16::MAX);
                        at.sequences
                            .insert((s.topic, s.partition), (epoch, s.next_sequence));
                    }
                }
            }
        }
    }

    fn snapshot(&self, out: &mut dyn FnMut(Entry)) {
        let live = self.rules.values().map(|r| r.incarnation).max();
        if live.is_none_or(|l| l < self.last_incarnation) {
            // Keeps incarnations unique after the newest rule was deleted;
            // first, so that a stored rule of any name is created after it.
            out(Entry {
                rule: String::new(),
                op: Some(Op::Create(CreateEntry {
                    definition: None,
                    incarnation: self.last_incarnation,
                    created_ms: 0,
                })),
            });
            out(Entry {
                rule: String::new(),
                op: Some(Op::Delete(self.last_incarnation)),
            });
        }
        for (name, r) in &self.rules {
            let entry = |op| Entry {
                rule: name.clone(),
                op: Some(op),
            };
            out(entry(Op::Create(CreateEntry {
                definition: Some(r.definition.clone()),
                incarnation: r.incarnation,
                created_ms: r.created_ms,
            })));
            if r.state != v1::RuleState::Running {
                out(entry(Op::State(StateEntry {
                    incarnation: r.incarnation,
                    state: r.state as i32,
                    reason: r.reason.clone(),
                })));
            }
            for (&partition, p) in &r.partitions {
                out(entry(Op::Progress(progress_entry(
                    r.incarnation,
                    partition,
                    p,
                    p.sequences.iter(),
                ))));
            }
        }
    }
}

/// The frame that records `progress` of one source partition, with the
/// sequences given.
pub fn progress_entry<'a>(
    incarnation: u64,
    partition: u32,
    progress: &Progress,
    sequences: impl Iterator<Item = (&'a (String, u32), &'a (i16, i32))>,
) -> ProgressEntry {
    ProgressEntry {
        incarnation,
        partition,
        position: progress.position,
        producer_id: progress.producer_id,
        matched: progress.matched,
        forwarded: progress.forwarded,
        sequences: sequences
            .map(|((topic, partition), (epoch, next))| TargetSequence {
                topic: topic.clone(),
                partition: *partition,
                epoch: i32::from(*epoch),
                next_sequence: *next,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, incarnation: u64) -> Entry {
        Entry {
            rule: name.into(),
            op: Some(Op::Create(CreateEntry {
                definition: Some(v1::RuleDefinition {
                    name: name.into(),
                    ..Default::default()
                }),
                incarnation,
                created_ms: 1,
            })),
        }
    }

    fn progress(name: &str, incarnation: u64, position: u64) -> Entry {
        let mut p = Progress {
            position,
            producer_id: 7,
            ..Progress::default()
        };
        p.sequences.insert(("t".into(), 0), (0, position as i32));
        Entry {
            rule: name.into(),
            op: Some(Op::Progress(progress_entry(
                incarnation,
                0,
                &p,
                p.sequences.iter(),
            ))),
        }
    }

    #[test]
    fn progress_of_a_deleted_rule_does_not_land_on_its_successor() {
        let mut book = RuleBook::default();
        book.apply(create("r", 1));
        book.apply(progress("r", 1, 10));
        book.apply(Entry {
            rule: "r".into(),
            op: Some(Op::Delete(1)),
        });
        book.apply(create("r", 2));
        book.apply(progress("r", 1, 20));
        assert!(book.rules["r"].partitions.is_empty());
        book.apply(progress("r", 2, 5));
        assert_eq!(book.rules["r"].partitions[&0].position, 5);
    }

    #[test]
    fn a_snapshot_rebuilds_rules_states_progress_and_the_incarnation_count() {
        let mut book = RuleBook::default();
        book.apply(create("a", 1));
        book.apply(progress("a", 1, 10));
        book.apply(create("b", 2));
        book.apply(Entry {
            rule: "b".into(),
            op: Some(Op::State(StateEntry {
                incarnation: 2,
                state: v1::RuleState::Failed as i32,
                reason: "target gone".into(),
            })),
        });
        let mut again = RuleBook::default();
        book.snapshot(&mut |e| again.apply(e));
        assert_eq!(again.rules["a"].partitions, book.rules["a"].partitions);
        assert_eq!(again.rules["b"].state, v1::RuleState::Failed);
        assert_eq!(again.rules["b"].reason, "target gone");
        assert_eq!(again.last_incarnation, 2);

        // The newest rule deleted, an older one left: the count survives.
        book.apply(create("c", 3));
        book.apply(Entry {
            rule: "c".into(),
            op: Some(Op::Delete(3)),
        });
        let mut again = RuleBook::default();
        book.snapshot(&mut |e| again.apply(e));
        assert_eq!(again.durable_lines(), book.durable_lines());
        assert_eq!(again.last_incarnation, 3);

        let mut empty = RuleBook::default();
        empty.apply(create("a", 3));
        empty.apply(Entry {
            rule: "a".into(),
            op: Some(Op::Delete(3)),
        });
        let mut again = RuleBook::default();
        empty.snapshot(&mut |e| again.apply(e));
        assert!(again.rules.is_empty());
        assert_eq!(again.last_incarnation, 3);
    }
}
