//! Storage benchmark: append and read throughput of the segment log, each
//! next to a plain-file baseline measured in the same run, so the ratios
//! mean something on a shared, noisy machine.
//!
//! ```text
//! cargo bench -p brook-storage --bench storage     # 256 MiB per workload, 5 rounds
//! BROOK_BENCH_MB=1024 BROOK_BENCH_ROUNDS=3 cargo bench -p brook-storage --bench storage
//! BROOK_BENCH_DIR=/mnt/disk cargo bench -p brook-storage --bench storage
//! ```
//! Workload: 1 KiB records in batches of 1,000 (≈1 MiB per batch). Each
//! round runs every workload once, with `sync` between them; the report
//! gives the median of each workload over the rounds, and the ratios.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use brook_protocol::batch::{Batch, BatchBuilder, headers};
use brook_storage::{AppendMode, FlushPolicy, Partition, PartitionConfig};

const RECORDS_PER_BATCH: usize = 1000;
const RECORD_BYTES: usize = 1024;

fn make_batch() -> Batch {
    let mut b = BatchBuilder::with_capacity(RECORDS_PER_BATCH * (RECORD_BYTES + 32));
    let value = vec![0x5a_u8; RECORD_BYTES];
    for i in 0..RECORDS_PER_BATCH {
        let key = format!("order-{i:06}");
        b.push(
            1_700_000_000_000 + i as i64,
            Some(key.as_bytes()),
            Some(&value),
            &[],
        );
    }
    Batch::parse(b.build(0)).expect("valid batch")
}

fn config(flush: FlushPolicy, mode: AppendMode) -> PartitionConfig {
    PartitionConfig {
        flush,
        append_mode: mode,
        retention_ms: None,
        ..Default::default()
    }
}

/// Folds every byte into a checksum, so that both read paths really touch the data.
fn touch(buf: &[u8]) -> u64 {
    let (chunks, rest) = buf.as_chunks::<8>();
    chunks.iter().fold(rest.len() as u64, |acc, c| {
        acc.wrapping_add(u64::from_ne_bytes(*c))
    })
}

fn plain_write(dir: &Path, batch: &[u8], n: usize, sync_each: bool) -> Duration {
    let path = dir.join("baseline.dat");
    let mut f = File::create(&path).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(batch).unwrap();
        if sync_each {
            f.sync_data().unwrap();
        }
    }
    let elapsed = t.elapsed();
    drop(f);
    elapsed
}

fn plain_read(dir: &Path) -> (Duration, u64) {
    let mut f = File::open(dir.join("baseline.dat")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let (mut sum, mut total) = (0u64, 0u64);
    let t = Instant::now();
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sum = sum.wrapping_add(touch(&buf[..n]));
        total += n as u64;
    }
    std::hint::black_box(sum);
    (t.elapsed(), total)
}

fn append(
    dir: &Path,
    batch: &Batch,
    n: usize,
    cfg: PartitionConfig,
    threads: usize,
) -> (Duration, Partition) {
    let p = Partition::open(dir, "bench/0", cfg).unwrap();
    let t = Instant::now();
    std::thread::scope(|s| {
        for i in 0..threads {
            let p = p.clone();
            let share = n / threads + usize::from(i < n % threads);
            s.spawn(move || {
                for _ in 0..share {
                    p.append(batch).unwrap();
                }
            });
        }
    });
    (t.elapsed(), p)
}

fn read_all(p: &Partition) -> (Duration, u64) {
    let (mut offset, mut sum, mut total) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    while offset < p.log_end_offset() {
        let r = p.read(offset, 1 << 20).unwrap();
        sum = sum.wrapping_add(touch(&r.batches));
        total += r.batches.len() as u64;
        offset = next_offset_after(&r.batches);
    }
    std::hint::black_box(sum);
    (t.elapsed(), total)
}

/// The offset after the last batch in `buf`.
fn next_offset_after(buf: &[u8]) -> u64 {
    headers(buf)
        .last()
        .expect("a read returns at least one batch")
        .next_offset()
}

/// Lets the previous workload's dirty pages reach the disk and frees its
/// files, so that one workload's writeback does not slow the next one.
fn settle(dir: tempfile::TempDir) {
    drop(dir);
    unsafe { libc::sync() };
}

fn preallocated_write(dir: &Path, batch: &[u8], n: usize, sync_each: bool) -> Duration {
    use std::os::fd::AsRawFd;
    let f = File::create(dir.join("prealloc.dat")).unwrap();
    let len = (batch.len() * n) as libc::off_t;
    assert_eq!(unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len) }, 0);
    let mut f = f;
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(batch).unwrap();
        if sync_each {
            f.sync_data().unwrap();
        }
    }
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes for test names.
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mb = env("BROOK_BENCH_MB", 256);
    let rounds = env("BROOK_BENCH_ROUNDS", 5).max(1);
    let root: std::path::PathBuf =
        std::env::var_os("BROOK_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let batch = make_batch();
    let n = (mb << 20) / batch.bytes().len();
    let durable_n = (n / 4).max(8);
    let size = batch.bytes().len() as u64;
    eprintln!(
        "storage bench: {n} batches of {RECORDS_PER_BATCH} x {RECORD_BYTES} B ({mb} MiB), {rounds} rounds, under {}",
        root.display()
    );

    // name -> (batches per run, samples)
    let mut samples: Vec<(&'static str, usize, Vec<Duration>)> = Vec::new();
    let mut record = |name: &'static str, batches: usize, d: Duration| match samples
        .iter_mut()
        .find(|s| s.0 == name)
    {
        Some(s) => s.2.push(d),
        None => samples.push((name, batches, vec![d])),
    };
    for round in 0..rounds {
        eprintln!("  round {}/{rounds}", round + 1);
        let dir = tempfile::tempdir_in(&root).unwrap();
        record(
            "baseline: File::write_all loop",
            n,
            plain_write(dir.path(), batch.bytes(), n, false),
        );
        let (t, total) = plain_read(dir.path());
        assert_eq!(total, size * n as u64);
        record("baseline: File::read loop (page cache)", n, t);
        settle(dir);
        let dir = tempfile::tempdir_in(&root).unwrap();
        let t = preallocated_write(dir.path(), batch.bytes(), n, false);
        record("baseline: write_all into a preallocated file", n, t);
        settle(dir);
        let dir = tempfile::tempdir_in(&root).unwrap();
        let t = preallocated_write(dir.path(), batch.bytes(), durable_n, true);
        record(
            "baseline: write_all + fdatasync per batch, preallocated file",
            durable_n,
            t,
        );
        settle(dir);
        let dir = tempfile::tempdir_in(&root).unwrap();
        record(
            "baseline: write_all + fdatasync per batch",
            durable_n,
            plain_write(dir.path(), batch.bytes(), durable_n, true),
        );
        settle(dir);
        for (mode, append_name, read_name) in [
            (
                AppendMode::Write,
                "append never, pwritev (default)",
                "read via mmap (pwritev-written)",
            ),
            (
                AppendMode::Mmap,
                "append never, memcpy into mmap",
                "read via mmap (mmap-written)",
            ),
        ] {
            let dir = tempfile::tempdir_in(&root).unwrap();
            let (t, p) = append(dir.path(), &batch, n, config(FlushPolicy::Never, mode), 1);
            record(append_name, n, t);
            let (t, total) = read_all(&p);
            assert_eq!(total, size * n as u64, "read back everything");
            record(read_name, n, t);
            drop(p);
            settle(dir);
        }
        for (threads, name) in [
            (1, "append always, 1 appender"),
            (8, "append always, 8 appenders"),
        ] {
            let dir = tempfile::tempdir_in(&root).unwrap();
            let (t, p) = append(
                dir.path(),
                &batch,
                durable_n,
                config(FlushPolicy::Always, AppendMode::Write),
                threads,
            );
            record(name, durable_n, t);
            drop(p);
            settle(dir);
        }
    }

    let mib_s = |name: &str| {
        let (_, batches, v) = samples.iter().find(|s| s.0 == name).unwrap();
        (*batches as u64 * size) as f64 / (1 << 20) as f64 / median(v.clone()).as_secs_f64()
    };
    let ratios: &[(&str, &str)] = &[
        (
            "append never, pwritev (default)",
            "baseline: File::write_all loop",
        ),
        (
            "append never, memcpy into mmap",
            "baseline: File::write_all loop",
        ),
        (
            "read via mmap (pwritev-written)",
            "baseline: File::read loop (page cache)",
        ),
        (
            "read via mmap (mmap-written)",
            "baseline: File::read loop (page cache)",
        ),
        (
            "append always, 1 appender",
            "append never, pwritev (default)",
        ),
        (
            "append always, 8 appenders",
            "append never, pwritev (default)",
        ),
        (
            "append always, 8 appenders",
            "baseline: write_all + fdatasync per batch",
        ),
    ];
    println!(
        "\nMedians of {rounds} rounds; {mb} MiB per workload ({} MiB for the fdatasync ones).\n",
        (durable_n as u64 * size) >> 20
    );
    println!("| workload | MiB/s | records/s |");
    println!("|---|---:|---:|");
    for (name, _, _) in &samples {
        let m = mib_s(name);
        println!(
            "| {name} | {m:.0} | {:.0} |",
            m * (1 << 20) as f64 / size as f64 * RECORDS_PER_BATCH as f64
        );
    }
    println!("\n| ratio | value |");
    println!("|---|---:|");
    for (a, b) in ratios {
        println!("| {a} / {b} | {:.2}x |", mib_s(a) / mib_s(b));
    }
}
