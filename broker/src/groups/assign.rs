//! Partition assignment strategies: range, round-robin and sticky.
//!
//! Every strategy gives each partition of a subscribed topic to exactly one
//! member subscribed to that topic (while there is one), and no partition to
//! two members.

use std::collections::{BTreeMap, BTreeSet};

/// A topic partition.
pub type Tp = (String, u32);

/// What the assignor knows of a member.
pub struct MemberView<'a> {
    /// Member id (members are ordered by it).
    pub id: &'a str,
    /// Topics it subscribed to.
    pub topics: &'a BTreeSet<String>,
    /// What it owns now (used by sticky).
    pub current: &'a [Tp],
}

/// The strategies, as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Per topic, contiguous ranges in member-id order.
    Range,
    /// Every partition dealt in turn.
    RoundRobin,
    /// Keep what members own, balance by moving as few partitions as possible.
    Sticky,
}

/// Assigns the partitions of `partitions` (topic → partition count) to `members`.
pub fn assign(
    strategy: Strategy,
    members: &[MemberView<'_>],
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, Vec<Tp>> {
    let mut out: BTreeMap<String, Vec<Tp>> = members
        .iter()
        .map(|m| (m.id.to_string(), Vec::new()))
        .collect();
    if members.is_empty() {
        return out;
    }
    match strategy {
        Strategy::Range => range(members, partitions, &mut out),
        Strategy::RoundRobin => round_robin(members, partitions, &mut out),
        Strategy::Sticky => sticky(members, partitions, &mut out),
    }
    for tps in out.values_mut() {
        tps.sort();
    }
    out
}

fn subscribed<'a>(members: &'a [MemberView<'a>], topic: &str) -> Vec<&'a MemberView<'a>> {
    let mut v: Vec<_> = members
        .iter()
        .filter(|m| m.topics.contains(topic))
        .collect();
    v.sort_by_key(|m| m.id);
    v
}

fn range(
    members: &[MemberView<'_>],
    partitions: &BTreeMap<String, u32>,
    out: &mut BTreeMap<String, Vec<Tp>>,
) {
    for (topic, &count) in partitions {
        let subs = subscribed(members, topic);
        if subs.is_empty() {
            continue;
        }
        let (each, extra) = (count / subs.len() as u32, count % subs.len() as u32);
        let mut next = 0;
        for (i, m) in subs.iter().enumerate() {
            let n = each + u32::from((i as u32) < extra);
            out.get_mut(m.id)
                .expect("member listed")
                .extend((next..next + n).map(|p| (topic.clone(), p)));
            next += n;
        }
    }
}

fn round_robin(
    members: &[MemberView<'_>],
    partitions: &BTreeMap<String, u32>,
    out: &mut BTreeMap<String, Vec<Tp>>,
) {
    let mut sorted: Vec<&MemberView<'_>> = members.iter().collect();
    sorted.sort_by_key(|m| m.id);
    let mut turn = 0usize;
    for (topic, &count) in partitions {
        for p in 0..count {
            // The next member in turn that subscribed to this topic.
            let Some(k) = (0..sorted.len())
                .map(|k| (turn + k) % sorted.len())
                .find(|&k| sorted[k].topics.contains(topic))
            else {
                break;
            };
            out.get_mut(sorted[k].id)
                .expect("member listed")
                .push((topic.clone(), p));
            turn = k + 1;
        }
    }
}

fn sticky(
    members: &[MemberView<'_>],
    partitions: &BTreeMap<String, u32>,
    out: &mut BTreeMap<String, Vec<Tp>>,
) {
    let all: BTreeSet<Tp> = partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.topics.contains(*t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .collect();
    // Keep what each member owns and may still own, once.
    let mut taken = BTreeSet::new();
    for m in members {
        let keep = m.current.iter().filter(|tp| {
            all.contains(*tp) && m.topics.contains(&tp.0) && taken.insert((*tp).clone())
        });
        out.get_mut(m.id)
            .expect("member listed")
            .extend(keep.cloned());
    }
    // Quotas: members that own more now get the larger quotas, so fewer move.
    let mut order: Vec<&MemberView<'_>> = members.iter().collect();
    order.sort_by_key(|m| (std::cmp::Reverse(out[m.id].len()), m.id));
    let (base, extra) = (all.len() / members.len(), all.len() % members.len());
    let quota: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, base + usize::from(i < extra)))
        .collect();
    let mut free: BTreeSet<Tp> = all
        .iter()
        .filter(|tp| !taken.contains(*tp))
        .cloned()
        .collect();
    for m in &order {
        let owned = out.get_mut(m.id).expect("member listed");
        owned.sort();
        while owned.len() > quota[m.id] {
            free.insert(owned.pop().expect("over quota means non-empty"));
        }
    }
    for tp in free {
        let eligible = members.iter().filter(|m| m.topics.contains(&tp.0));
        let best = eligible.min_by_key(|m| {
            let n = out[m.id].len();
            (n >= quota[m.id], n, m.id)
        });
        if let Some(m) = best {
            out.get_mut(m.id).expect("member listed").push(tp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn check_exactly_once(a: &BTreeMap<String, Vec<Tp>>, partitions: &BTreeMap<String, u32>) {
        let mut seen = BTreeSet::new();
        for tps in a.values() {
            for tp in tps {
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice");
            }
        }
        let total: u32 = partitions.values().sum();
        assert_eq!(seen.len() as u32, total, "every partition assigned");
    }

    #[test]
    fn every_strategy_assigns_each_partition_once_and_balances() {
        let subs = topics(&["a", "b"]);
        let partitions: BTreeMap<String, u32> = [("a".to_string(), 6), ("b".to_string(), 5)].into();
        let ids = ["m1", "m2", "m3"];
        let members: Vec<MemberView<'_>> = ids
            .iter()
            .map(|id| MemberView {
                id,
                topics: &subs,
                current: &[],
            })
            .collect();
        for s in [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky] {
            let a = assign(s, &members, &partitions);
            check_exactly_once(&a, &partitions);
            let sizes: Vec<usize> = a.values().map(Vec::len).collect();
            let spread = sizes.iter().max().unwrap() - sizes.iter().min().unwrap();
            assert!(
                spread <= if s == Strategy::Range { 2 } else { 1 },
                "{s:?} unbalanced: {sizes:?}"
            );
        }
        let r = assign(Strategy::Range, &members, &partitions);
        assert_eq!(
            r["m1"],
            [
                ("a".into(), 0),
                ("a".into(), 1),
                ("b".into(), 0),
                ("b".into(), 1)
            ]
        );
    }

    #[test]
    fn only_subscribers_get_a_topic() {
        let (ab, a) = (topics(&["a", "b"]), topics(&["a"]));
        let partitions: BTreeMap<String, u32> = [("a".to_string(), 4), ("b".to_string(), 4)].into();
        let members = [
            MemberView {
                id: "x",
                topics: &ab,
                current: &[],
            },
            MemberView {
                id: "y",
                topics: &a,
                current: &[],
            },
        ];
        for s in [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky] {
            let out = assign(s, &members, &partitions);
            check_exactly_once(&out, &partitions);
            assert!(
                out["y"].iter().all(|tp| tp.0 == "a"),
                "{s:?}: y got a topic it did not subscribe to"
            );
        }
    }

    #[test]
    fn sticky_moves_only_what_it_must() {
        let subs = topics(&["t"]);
        let partitions: BTreeMap<String, u32> = [("t".to_string(), 6)].into();
        let two: Vec<MemberView<'_>> = ["m1", "m2"]
            .iter()
            .map(|id| MemberView {
                id,
                topics: &subs,
                current: &[],
            })
            .collect();
        let first = assign(Strategy::Sticky, &two, &partitions);
        // A third member joins: the old members keep everything they do not hand over.
        let three = [
            MemberView {
                id: "m1",
                topics: &subs,
                current: &first["m1"],
            },
            MemberView {
                id: "m2",
                topics: &subs,
                current: &first["m2"],
            },
            MemberView {
                id: "m3",
                topics: &subs,
                current: &[],
            },
        ];
        let second = assign(Strategy::Sticky, &three, &partitions);
        check_exactly_once(&second, &partitions);
        for id in ["m1", "m2"] {
            assert!(
                second[id].iter().all(|tp| first[id].contains(tp)),
                "{id} only loses partitions"
            );
            assert_eq!(second[id].len(), 2);
        }
        assert_eq!(second["m3"].len(), 2);
        // m2 leaves: only its partitions move.
        let after = [
            MemberView {
                id: "m1",
                topics: &subs,
                current: &second["m1"],
            },
            MemberView {
                id: "m3",
                topics: &subs,
                current: &second["m3"],
            },
        ];
        let third = assign(Strategy::Sticky, &after, &partitions);
        check_exactly_once(&third, &partitions);
        for id in ["m1", "m3"] {
            assert!(
                second[id].iter().all(|tp| third[id].contains(tp)),
                "{id} keeps what it had"
            );
        }
    }
}
