//! What a bench run prints: one human summary or one JSON object, with the
//! baselines measured in the same run beside the figures.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The outcome of one workload.
pub(super) struct Report {
    pub(super) workload: &'static str,
    pub(super) messages: u64,
    pub(super) bytes: u64,
    pub(super) elapsed: Duration,
    pub(super) latency: Option<Histogram<u64>>,
    pub(super) baseline_mib_s: Option<f64>,
    /// The same writes without the sync: the page cache's bandwidth here.
    pub(super) buffered_baseline_mib_s: Option<f64>,
    pub(super) broker_peak_rss_kib: Option<u64>,
    /// Anonymous (heap) memory now: RSS less the mapped file pages, which are page cache.
    pub(super) broker_rss_anon_kib: Option<u64>,
    /// The round trip of the cheapest RPC (`DescribeTopic`, answered from
    /// memory) in the same run, µs: what any request costs here before the
    /// broker does anything, the floor under a single awaited send.
    pub(super) rpc_baseline_us: Option<(u64, u64)>,
    /// Records per second a plain consumer read the same records at, in
    /// the same run (the rules workload's baseline).
    pub(super) baseline_records_per_s: Option<f64>,
}

/// Latencies in µs from 1 µs to a minute, 3 significant digits.
pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl Report {
    /// A report with the workload's own figures; the rest is filled in by the caller.
    pub(super) fn new(
        workload: &'static str,
        messages: u64,
        bytes: u64,
        elapsed: Duration,
        latency: Option<Histogram<u64>>,
    ) -> Report {
        Report {
            workload,
            messages,
            bytes,
            elapsed,
            latency,
            baseline_mib_s: None,
            buffered_baseline_mib_s: None,
            baseline_records_per_s: None,
            broker_peak_rss_kib: None,
            broker_rss_anon_kib: None,
            rpc_baseline_us: None,
        }
    }

    /// Prints the summary on stdout: one JSON object with `json` (null for
    /// what this workload does not measure), else a few human lines.
    pub(super) fn print(&self, json: bool) {
        let secs = self.elapsed.as_secs_f64();
        let (msgs, mib) = (
            self.messages as f64 / secs,
            self.bytes as f64 / (1 << 20) as f64 / secs,
        );
        let pct = |q: f64| self.latency.as_ref().map(|h| h.value_at_quantile(q));
        if json {
            let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
            let optf = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.1}"));
            println!(
                "{{\"workload\":\"{}\",\"messages\":{},\"seconds\":{secs:.3},\"msgs_per_s\":{msgs:.0},\"mib_per_s\":{mib:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"baseline_write_mib_per_s\":{},\"baseline_buffered_mib_per_s\":{},\"broker_peak_rss_kib\":{},\"broker_rss_anon_kib\":{},\"rpc_baseline_p50_us\":{},\"rpc_baseline_p99_us\":{},\"baseline_records_per_s\":{}}}",
                self.workload,
                self.messages,
                opt(pct(0.5)),
                opt(pct(0.99)),
                opt(pct(0.999)),
                optf(self.baseline_mib_s),
                optf(self.buffered_baseline_mib_s),
                opt(self.broker_peak_rss_kib),
                opt(self.broker_rss_anon_kib),
                opt(self.rpc_baseline_us.map(|r| r.0)),
                opt(self.rpc_baseline_us.map(|r| r.1)),
                optf(self.baseline_records_per_s),
            );
            return;
        }
        println!(
            "{}: {} records in {secs:.2} s = {msgs:.0} msgs/s, {mib:.1} MiB/s",
            self.workload, self.messages
        );
        if let Some(h) = &self.latency {
            println!(
                "  latency p50 {} µs, p99 {} µs, p999 {} µs, max {} µs",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        if let Some(b) = self.baseline_mib_s {
            println!(
                "  baseline: sequential write + fdatasync of the same bytes {b:.1} MiB/s; this run = {:.2}x of it",
                mib / b
            );
        }
        if let Some(b) = self.buffered_baseline_mib_s {
            println!(
                "  baseline: the same writes without the sync (page cache) {b:.1} MiB/s; this run = {:.2}x of it",
                mib / b
            );
        }
        if let Some(b) = self.baseline_records_per_s {
            println!(
                "  baseline: a plain consumer read the same records at {b:.0}/s; this run = {:.2}x of it",
                msgs / b
            );
        }
        if let Some((p50, p99)) = self.rpc_baseline_us {
            println!(
                "  baseline: the cheapest RPC (DescribeTopic) round trip p50 {p50} µs, p99 {p99} µs"
            );
        }
        if let Some(kib) = self.broker_peak_rss_kib {
            let anon = self.broker_rss_anon_kib.map_or(String::new(), |a| {
                format!(
                    " (of which heap now {:.1} MiB; the rest is mapped page cache)",
                    a as f64 / 1024.0
                )
            });
            println!("  broker peak RSS {:.1} MiB{anon}", kib as f64 / 1024.0);
        }
    }
}
