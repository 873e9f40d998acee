//! How long a read holds its thread when its pages are not in the page
//! cache, against the cost of moving the read to a blocking-pool thread:
//! the measurement behind the broker's `read_off_worker` (docs/benchmarks.md,
//! "Reads off the async workers"). Needs root (drops the page cache).
//!   cargo run --release -p brook-storage --example cold_read [MIB]   (default 512)

use std::time::{Duration, Instant};

use brook_protocol::batch::{Batch, BatchBuilder};
use brook_storage::{FlushPolicy, Partition, PartitionConfig};

fn percentiles(mut d: Vec<Duration>) -> String {
    d.sort();
    let at = |q: f64| d[((d.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    format!(
        "p50 {:.0} us, p99 {:.0} us, max {:.0} us ({} reads)",
        at(0.5),
        at(0.99),
        at(1.0),
        d.len()
    )
}

fn read_all(p: &Partition) -> Vec<Duration> {
    let mut times = Vec::new();
    let mut next = 0;
    while next < p.log_end_offset() {
        let t = Instant::now();
        let r = p.read(next, 1 << 20).expect("read");
        times.push(t.elapsed());
        let last = brook_protocol::batch::headers(&r.batches)
            .last()
            .expect("a batch");
        next = last.next_offset();
    }
    times
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let dir = tempfile::tempdir_in(std::env::var("BROOK_BENCH_DIR").unwrap_or("/tmp".into()))
        .expect("temp dir");
    let config = PartitionConfig {
        flush: FlushPolicy::Never,
        ..Default::default()
    };
    let p = Partition::open(dir.path(), "cold/0", config.clone()).expect("open");
    let value = vec![7u8; 1000];
    for _ in 0..mib * 64 {
        let mut b = BatchBuilder::new();
        for _ in 0..16 {
            b.push(1, None, Some(&value), &[]);
        }
        p.append(&Batch::parse(b.build(0)).expect("batch"))
            .expect("append");
    }
    p.close().expect("close");
    drop(p);
    std::process::Command::new("sync").status().expect("sync");
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (run as root)");
    let p = Partition::open(dir.path(), "cold/0", config).expect("reopen");
    println!("cold 1 MiB reads: {}", percentiles(read_all(&p)));
    println!("warm 1 MiB reads: {}", percentiles(read_all(&p)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let hops: Vec<Duration> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            rt.block_on(async { tokio::task::spawn_blocking(|| ()).await })
                .expect("hop");
            t.elapsed()
        })
        .collect();
    println!("spawn_blocking round trip: {}", percentiles(hops));
}
