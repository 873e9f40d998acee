//! The process limits that many partitions meet: the file-descriptor limit
//! (raised at start and logged) and the memory-mapping limit (checked).

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and logs both; returns
/// the soft limit in force.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the file-descriptor limit");
        return 0;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot raise the file-descriptor limit");
        }
    }
    tracing::info!(
        soft_before = before,
        soft = lim.rlim_cur,
        hard = lim.rlim_max,
        "file-descriptor limit (each active partition holds one descriptor, each connection one)"
    );
    lim.rlim_cur
}

/// Warns when the process's memory mappings approach `vm.max_map_count`:
/// every segment maps its log and two indexes, and past the limit opening a
/// partition or rolling a segment fails.
pub fn check_map_count() {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let max: Option<u64> = read("/proc/sys/vm/max_map_count").and_then(|s| s.trim().parse().ok());
    let used = read("/proc/self/maps").map(|s| s.lines().count() as u64);
    if let (Some(max), Some(used)) = (max, used) {
        if used * 2 > max {
            tracing::warn!(
                mappings = used,
                max_map_count = max,
                "memory mappings are past half of vm.max_map_count (3 per segment): raise it (sysctl vm.max_map_count=262144) before adding partitions"
            );
        } else {
            tracing::info!(
                mappings = used,
                max_map_count = max,
                "memory mappings (3 per segment)"
            );
        }
    }
}
