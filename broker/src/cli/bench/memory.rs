//! The broker's memory as Linux reports it in `/proc/PID/status`, for the
//! bench summary.

/// A `kB` field of the broker's /proc status (VmHWM: peak RSS; RssAnon: heap).
pub(super) fn proc_status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The one `brook serve` process on this machine, if there is exactly one:
/// with two, a guess could report the wrong broker's memory.
pub(super) fn find_broker() -> Option<u32> {
    let found: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.first().is_some_and(|a| a.ends_with(b"brook"))
                    && args.iter().any(|a| *a == b"serve")
            })
        })
        .collect();
    (found.len() == 1).then(|| found[0])
}
