//! The baseline printed beside a produce run: what this machine's disk does
//! alone with the same bytes, like `dd conv=fdatasync`, so that a reader can
//! trust a ratio on a noisy machine.

use std::path::PathBuf;
use std::time::Instant;

/// Sequential write of `bytes` in 1 MiB writes into a new file, then
/// fdatasync: what the machine does alone. Returns the bandwidth of the
/// writes alone (page cache) and of writes + sync (disk), in MiB/s.
pub(super) async fn write_baseline(dir: Option<PathBuf>, bytes: u64) -> anyhow::Result<(f64, f64)> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let dir = dir.unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("brook-bench-baseline-{}", std::process::id()));
        let buf = vec![0x42u8; 1 << 20];
        let started = Instant::now();
        let mut f = std::fs::File::create(&path)?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        let written = started.elapsed().as_secs_f64();
        f.sync_data()?;
        let synced = started.elapsed().as_secs_f64();
        drop(f);
        std::fs::remove_file(&path)?;
        let mib = bytes as f64 / (1 << 20) as f64;
        Ok((mib / written, mib / synced))
    })
    .await?
}
