//! Storage benchmark: append and read throughput of the segment log, each
//! next to a plain-file baseline measured in the same run, so the ratios
//! mean something on a shared, noisy machine.
//!
//! ```text
//! cargo bench -p brook-storage                      # 512 MiB per workload
//! BROOK_BENCH_MB=2048 cargo bench -p brook-storage  # more data
//! BROOK_BENCH_DIR=/mnt/disk cargo bench -p brook-storage
//! ```
//! Workload: 1 KiB records in batches of 1,000 (≈1 MiB per batch).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use brook_protocol::batch::{Batch, BatchBuilder, BatchHeader};
use brook_storage::{AppendMode, FlushPolicy, Partition, PartitionConfig};

const RECORDS_PER_BATCH: usize = 1000;
const RECORD_BYTES: usize = 1024;

struct Row {
    name: String,
    bytes: u64,
    records: u64,
    elapsed: Duration,
    baseline: Option<(&'static str, f64)>,
}

impl Row {
    fn mib_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.elapsed.as_secs_f64()
    }
}

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

/// The offset after the last batch in `buf`, walking only the headers.
fn next_offset_after(buf: &[u8]) -> u64 {
    let (mut pos, mut next) = (0usize, 0u64);
    while pos < buf.len() {
        let h = BatchHeader::parse(&buf[pos..], u32::MAX).expect("stored batches parse");
        next = h.next_offset();
        pos += h.total_len();
    }
    next
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes for test names.
    }
    let mb: usize = std::env::var("BROOK_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let root = std::env::var_os("BROOK_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let batch = make_batch();
    let n = (mb << 20) / batch.bytes().len();
    let bytes = (n * batch.bytes().len()) as u64;
    let records = (n * RECORDS_PER_BATCH) as u64;
    let durable_n = (n / 4).max(8);
    let durable_bytes = (durable_n * batch.bytes().len()) as u64;
    let durable_records = (durable_n * RECORDS_PER_BATCH) as u64;
    eprintln!(
        "storage bench: {n} batches of {RECORDS_PER_BATCH} x {RECORD_BYTES} B ({mb} MiB) under {}",
        root.display()
    );
    let mut rows = Vec::new();
    let mut row = |name: &str, bytes, records, elapsed, baseline| {
        let r = Row {
            name: name.to_string(),
            bytes,
            records,
            elapsed,
            baseline,
        };
        eprintln!("  {:<44} {:>9.1} MiB/s", r.name, r.mib_s());
        rows.push(r);
    };

    let base = tempfile::tempdir_in(&root).unwrap();
    let write_loop = plain_write(base.path(), batch.bytes(), n, false);
    let write_mib = bytes as f64 / (1 << 20) as f64 / write_loop.as_secs_f64();
    row(
        "baseline: File::write_all loop",
        bytes,
        records,
        write_loop,
        None,
    );
    let (read_loop, read_bytes) = plain_read(base.path());
    let read_mib = read_bytes as f64 / (1 << 20) as f64 / read_loop.as_secs_f64();
    row(
        "baseline: File::read loop (page cache)",
        read_bytes,
        records,
        read_loop,
        None,
    );
    let sync_loop = plain_write(base.path(), batch.bytes(), durable_n, true);
    let sync_mib = durable_bytes as f64 / (1 << 20) as f64 / sync_loop.as_secs_f64();
    row(
        "baseline: write_all + fdatasync per batch",
        durable_bytes,
        durable_records,
        sync_loop,
        None,
    );
    drop(base);

    let mut never_mib = 0.0;
    for (mode, label) in [(AppendMode::Write, "pwritev"), (AppendMode::Mmap, "mmap")] {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let (t, p) = append(dir.path(), &batch, n, config(FlushPolicy::Never, mode), 1);
        let name = format!("append never, 1 appender ({label})");
        let mib = bytes as f64 / (1 << 20) as f64 / t.as_secs_f64();
        if mode == AppendMode::Write {
            never_mib = mib;
        }
        row(&name, bytes, records, t, Some(("write loop", write_mib)));
        let (t, total) = read_all(&p);
        assert_eq!(total, bytes, "read back everything");
        row(
            &format!("read from page cache ({label}-written)"),
            total,
            records,
            t,
            Some(("read loop", read_mib)),
        );
    }
    for threads in [1, 8] {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let (t, _p) = append(
            dir.path(),
            &batch,
            durable_n,
            config(FlushPolicy::Always, AppendMode::Write),
            threads,
        );
        let name = format!("append always, {threads} appender(s)");
        row(
            &name,
            durable_bytes,
            durable_records,
            t,
            Some(("append never", never_mib)),
        );
    }
    row(
        "(ref) fdatasync-per-batch baseline vs never",
        durable_bytes,
        durable_records,
        sync_loop,
        Some(("append never", never_mib)),
    );

    println!("\n| workload | MiB/s | records/s | ratio |");
    println!("|---|---:|---:|---|");
    for r in &rows {
        let ratio = r.baseline.map_or("baseline".to_string(), |(what, b)| {
            format!("{:.2}x {what}", r.mib_s() / b)
        });
        println!(
            "| {} | {:.0} | {:.0} | {} |",
            r.name,
            r.mib_s(),
            r.records as f64 / r.elapsed.as_secs_f64(),
            ratio
        );
    }
    println!("\nfdatasync baseline: {sync_mib:.0} MiB/s");
}
