//! Crash tests: write batches, damage the files the way a crash or a bad
//! disk does, reopen, and check that the log is exactly the longest valid
//! prefix and that appends continue from there.
//!
//! File damage stands in for a power cut (bytes that never reached the disk);
//! the SIGKILL test at the end covers the other gap, a process killed between
//! writing and acknowledging, where the page cache survives.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use brook_storage::{Error, FlushPolicy, Partition, PartitionConfig};
use common::{Rec, batch, log_files, read_all};
use proptest::prelude::*;

fn config() -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 512,
        flush: FlushPolicy::Never,
        retention_ms: None,
        ..Default::default()
    }
}

/// A batch as written: its records and where it sits in its segment file.
struct Written {
    records: Vec<Rec>,
    file: PathBuf,
    pos: u64,
    len: u64,
}

/// Appends `sizes.len()` batches (batch i has `sizes[i]` records of 1..300
/// bytes), then drops the partition without closing it, like a crash.
fn write_log(dir: &Path, sizes: &[(usize, usize)]) -> Vec<Written> {
    let p = Partition::open(dir, "t/0", config()).unwrap();
    let mut out: Vec<Written> = Vec::new();
    for (i, &(count, len)) in sizes.iter().enumerate() {
        let values: Vec<Vec<u8>> = (0..count).map(|j| vec![(i + j) as u8; len]).collect();
        let b = batch(1_000 + i as i64 * 10, &values);
        let segments_before = p.segment_count();
        let info = p.append(&b).unwrap();
        let (file, pos) = match out.last() {
            Some(prev) if p.segment_count() == segments_before => {
                (prev.file.clone(), prev.pos + prev.len)
            }
            _ => (dir.join(format!("{:020}.log", info.base_offset)), 0),
        };
        let records = values
            .iter()
            .enumerate()
            .map(|(j, v)| {
                (
                    info.base_offset + j as u64,
                    1_000 + i as i64 * 10 + j as i64,
                    v.clone(),
                )
            })
            .collect();
        out.push(Written {
            records,
            file,
            pos,
            len: b.bytes().len() as u64,
        });
    }
    drop(p);
    // Like a crash: no close. Let roll-time syncs finish first, so that they
    // cannot rewrite files after the test damaged them.
    brook_storage::drain_background_jobs();
    out
}

fn sizes() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((1usize..8, 1usize..300), 3..40)
}

/// Reopens, checks the log equals the first `keep` batches, appends one more
/// batch and checks it lands at the right offset, then reopens once more.
fn check_recovers_to(dir: &Path, written: &[Written], keep: usize) -> Result<(), TestCaseError> {
    let expected: Vec<Rec> = written[..keep]
        .iter()
        .flat_map(|w| w.records.clone())
        .collect();
    let end = expected.last().map_or(0, |r| r.0 + 1);
    let p = Partition::open(dir, "t/0", config()).unwrap();
    prop_assert_eq!(p.log_end_offset(), end);
    prop_assert_eq!(read_all(&p, 0), expected.clone());
    let info = p.append(&batch(5, &[b"after".to_vec()])).unwrap();
    prop_assert_eq!(
        info.base_offset,
        end,
        "appends continue at the recovered end"
    );
    drop(p);
    let p = Partition::open(dir, "t/0", config()).unwrap();
    let mut again = expected;
    again.push((end, 5, b"after".to_vec()));
    prop_assert_eq!(read_all(&p, 0), again);
    Ok(())
}

/// Index of the first batch (in the active file) that the damage at
/// `pos` touches; every batch before it must survive.
fn first_damaged(written: &[Written], file: &Path, pos: u64) -> usize {
    written
        .iter()
        .position(|w| w.file == file && w.pos + w.len > pos)
        .unwrap_or(written.len())
}

fn active_file(written: &[Written]) -> PathBuf {
    written.last().unwrap().file.clone()
}

/// A position inside the last three batches of the active segment.
fn pos_in_tail(written: &[Written], pick: prop::sample::Index) -> u64 {
    let file = active_file(written);
    let first = written
        .iter()
        .position(|w| w.file == file)
        .unwrap()
        .max(written.len().saturating_sub(3));
    let start = written[first].pos;
    let end = written.last().map(|w| w.pos + w.len).unwrap();
    start + pick.index((end - start) as usize) as u64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn torn_tail_is_cut_at_the_last_whole_batch(sizes in sizes(), pick in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), &sizes);
        let file = active_file(&written);
        let cut = pos_in_tail(&written, pick);
        OpenOptions::new().write(true).open(&file).unwrap().set_len(cut).unwrap();
        check_recovers_to(dir.path(), &written, first_damaged(&written, &file, cut))?;
    }

    #[test]
    fn zero_filled_tail_is_cut(sizes in sizes(), pick in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), &sizes);
        let file = active_file(&written);
        let from = pos_in_tail(&written, pick);
        let end = written.last().map(|w| w.pos + w.len).unwrap();
        let f = OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&vec![0u8; (end - from) as usize], from).unwrap();
        check_recovers_to(dir.path(), &written, first_damaged(&written, &file, from))?;
    }

    #[test]
    fn flipped_byte_is_contained_unless_it_is_in_the_last_batch(sizes in sizes(), pick in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), &sizes);
        let file = active_file(&written);
        let at = pos_in_tail(&written, pick);
        let f = OpenOptions::new().read(true).write(true).open(&file).unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ mask], at).unwrap();
        let k = first_damaged(&written, &file, at);
        if k + 1 == written.len() {
            // Nothing intact after it: the unsynced tail of an unclean stop.
            check_recovers_to(dir.path(), &written, k)?;
        } else {
            check_contains_damage(dir.path(), &written, &[k])?;
        }
    }

    #[test]
    fn lost_or_garbled_indexes_are_rebuilt(sizes in sizes(), garbage in proptest::collection::vec(any::<u8>(), 0..200), which in 0usize..4) {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), &sizes);
        // A clean close first, so the damaged indexes would otherwise be trusted.
        Partition::open(dir.path(), "t/0", config()).unwrap().close().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_string();
            match (which, ext.as_str()) {
                (0, "index") | (1, "timeindex") => std::fs::remove_file(&path).unwrap(),
                (2, "index") | (3, "timeindex") => std::fs::write(&path, &garbage).unwrap(),
                _ => {}
            }
        }
        check_recovers_to(dir.path(), &written, written.len())?;
        // Lookups through the rebuilt indexes agree with the data.
        let p = Partition::open(dir.path(), "t/0", config()).unwrap();
        for w in written.iter().step_by(3) {
            let first = &w.records[0];
            prop_assert_eq!(p.offset_for_timestamp(first.1).unwrap(), Some(first.0));
            let got = read_all(&p, first.0);
            prop_assert_eq!(&got[0], first);
        }
    }
}

/// Reopens a log whose batches `damaged` (in order, not the last) are
/// damaged and checks the damage is contained: every other batch reads
/// back, a read of a damaged batch's offsets fails naming exactly them, and
/// appends go on at the true end. Twice, so the damage survives a reopen.
fn check_contains_damage(
    dir: &Path,
    written: &[Written],
    damaged: &[usize],
) -> Result<(), TestCaseError> {
    let first_of = |i: usize| written[i].records[0].0;
    let end = written.last().unwrap().records.last().unwrap().0 + 1;
    for round in 0..2 {
        let p = Partition::open(dir, "t/0", config()).unwrap();
        prop_assert_eq!(
            p.log_end_offset(),
            end + round,
            "the log end never moves back"
        );
        let mut from_batch = 0;
        for &k in damaged.iter().chain(std::iter::once(&written.len())) {
            let until = if k == written.len() { end } else { first_of(k) };
            let expected: Vec<Rec> = written[from_batch..k]
                .iter()
                .flat_map(|w| w.records.clone())
                .collect();
            prop_assert_eq!(read_until(&p, first_of(from_batch), until), expected);
            if k < written.len() {
                match p.read(first_of(k), 1 << 20) {
                    Err(Error::Damaged {
                        first_offset,
                        end_offset,
                        ..
                    }) => {
                        prop_assert_eq!((first_offset, end_offset), (first_of(k), first_of(k + 1)));
                    }
                    other => prop_assert!(
                        false,
                        "expected Damaged at {}, got {:?}",
                        first_of(k),
                        other.map(|r| r.batches.len())
                    ),
                }
            }
            from_batch = k + 1;
        }
        prop_assert_eq!(p.damaged_ranges().len(), damaged.len());
        if round == 0 {
            let info = p.append(&batch(5, &[b"after".to_vec()])).unwrap();
            prop_assert_eq!(info.base_offset, end, "appends continue at the true end");
        }
    }
    Ok(())
}

/// Records from `from` up to (not including) offset `until`.
fn read_until(p: &Partition, from: u64, until: u64) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    let mut next = from;
    while next < until {
        let r = p.read(next, 1 << 20).expect("readable before the damage");
        for b in brook_protocol::batch::batches(r.batches) {
            for rec in b.expect("only intact batches are served").records() {
                let rec = rec.unwrap();
                if rec.offset >= next && rec.offset < until {
                    out.push((rec.offset, rec.timestamp, rec.value.unwrap().to_vec()));
                }
            }
        }
        next = out.last().map_or(until, |r| r.0 + 1);
    }
    out
}

/// Damage to the last batch of a sealed segment, found on open after a crash
/// (no recovery point) or after a clean close: no other record is lost, no
/// segment deleted, and the log end stays where it was.
#[test]
fn damage_in_a_sealed_segment_is_contained_and_later_segments_kept() {
    for clean in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let sizes = vec![(4usize, 250usize); 300];
        let written = write_log(dir.path(), &sizes);
        if clean {
            Partition::open(dir.path(), "t/0", config())
                .unwrap()
                .close()
                .unwrap();
        } else {
            std::fs::remove_file(dir.path().join("recovery-point")).ok();
        }
        let files: Vec<PathBuf> = {
            let mut f: Vec<PathBuf> = written.iter().map(|w| w.file.clone()).collect();
            f.dedup();
            f
        };
        assert!(files.len() >= 4, "the log spans several segments");
        // The last batch of a segment, as in the report that found the bug,
        // and one in the middle of another (below its last index entry, so
        // only the read path's checks can find it after a clean close).
        let last_of_1 = written.iter().rposition(|w| w.file == files[1]).unwrap();
        let in_2: Vec<usize> = (0..written.len())
            .filter(|&i| written[i].file == files[2])
            .collect();
        let middle_of_2 = in_2[in_2.len() / 3];
        for k in [last_of_1, middle_of_2] {
            let f = OpenOptions::new()
                .write(true)
                .open(&written[k].file)
                .unwrap();
            f.write_all_at(&[0xAB; 8], written[k].pos + 30).unwrap();
        }
        check_contains_damage(dir.path(), &written, &[last_of_1, middle_of_2]).unwrap();
        let segments = log_files(dir.path());
        assert!(
            segments >= files.len(),
            "no segment was deleted (clean: {clean})"
        );
    }
}

/// A segment file lost from the middle of the log: its offsets are reported
/// missing, the rest is served, and no offset is reused.
#[test]
fn a_lost_middle_segment_leaves_a_gap_not_a_shorter_log() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_log(dir.path(), &vec![(4usize, 250usize); 300]);
    let mut files: Vec<PathBuf> = written.iter().map(|w| w.file.clone()).collect();
    files.dedup();
    std::fs::remove_file(&files[1]).unwrap();
    let k = written.iter().position(|w| w.file == files[1]).unwrap();
    let after_k = written.iter().position(|w| w.file == files[2]).unwrap();
    let p = Partition::open(dir.path(), "t/0", config()).unwrap();
    let end = written.last().unwrap().records.last().unwrap().0 + 1;
    assert_eq!(p.log_end_offset(), end);
    match p.read(written[k].records[0].0, 1 << 20) {
        Err(Error::Damaged {
            first_offset,
            end_offset,
            ..
        }) => {
            assert_eq!(first_offset, written[k].records[0].0);
            assert_eq!(end_offset, written[after_k].records[0].0);
        }
        other => panic!("expected Damaged, got {:?}", other.map(|r| r.batches.len())),
    }
    assert_eq!(
        read_all(&p, written[after_k].records[0].0).len(),
        written[after_k..]
            .iter()
            .map(|w| w.records.len())
            .sum::<usize>()
    );
}

/// Environment variable that turns the test binary into the child of the SIGKILL test.
const CHILD_DIR: &str = "BROOK_STORAGE_CRASH_CHILD_DIR";

/// Child side: append forever, printing each acknowledged end offset.
#[test]
fn sigkill_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let p = Partition::open(&dir, "t/0", config()).unwrap();
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let info = p
            .append(&batch(i, &[vec![i as u8; 100], vec![7; 50]]))
            .unwrap();
        writeln!(out, "acked {}", info.log_end_offset).unwrap();
        out.flush().unwrap();
    }
}

/// A process killed with SIGKILL mid-stream loses nothing it acknowledged as
/// written (the page cache survives the process), and recovery finds a clean log.
#[test]
fn sigkill_loses_nothing_acknowledged_as_written() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = 0u64;
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("acked ") {
            acked = n.parse().unwrap();
            if acked >= 4_000 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        acked >= 4_000,
        "the child acknowledged {acked} records before dying"
    );
    let p = Partition::open(dir.path(), "t/0", config()).unwrap();
    assert!(!p.recovery_report().clean);
    assert!(
        p.log_end_offset() >= acked,
        "acked {acked}, recovered only {}",
        p.log_end_offset()
    );
    let all = read_all(&p, 0);
    assert_eq!(all.len() as u64, p.log_end_offset());
    assert!(all.iter().enumerate().all(|(i, r)| r.0 == i as u64));
}

/// An index file cut short after a clean close (the last entries lost) is
/// noticed on open and rebuilt, and lookups through it agree with the data.
#[test]
fn truncated_indexes_are_noticed_and_rebuilt() {
    for ext in ["index", "timeindex"] {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), &vec![(3usize, 200usize); 120]);
        Partition::open(dir.path(), "t/0", config())
            .unwrap()
            .close()
            .unwrap();
        let entry = if ext == "index" { 8 } else { 12 };
        let mut cut = 0;
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != ext) {
                continue;
            }
            // Entries written (the active segment keeps zeroed space after them).
            let bytes = std::fs::read(&path).unwrap();
            let written = bytes
                .chunks_exact(entry as usize)
                .take_while(|e| e.iter().any(|&b| b != 0))
                .count() as u64;
            if written > 0 {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len((written - 1) * entry)
                    .unwrap();
                cut += 1;
            }
        }
        assert!(cut > 0, "some {ext} file had entries to lose");
        let p = Partition::open(dir.path(), "t/0", config()).unwrap();
        assert!(p.recovery_report().clean);
        assert_eq!(
            p.recovery_report().indexes_rebuilt,
            cut,
            "every cut {ext} file was rebuilt"
        );
        for w in &written {
            let first = &w.records[0];
            assert_eq!(p.offset_for_timestamp(first.1).unwrap(), Some(first.0));
        }
        p.close().unwrap();
        let p = Partition::open(dir.path(), "t/0", config()).unwrap();
        assert_eq!(
            p.recovery_report().indexes_rebuilt,
            0,
            "rebuilt indexes are trusted next time"
        );
    }
}
