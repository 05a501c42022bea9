//! What the benchmarks read about their own process.

/// A `/proc/self/status` size field (`VmRSS`, `VmHWM`), in MB.
pub fn status_mb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// Resident memory now, MB.
#[allow(dead_code)]
pub fn rss_mb() -> u64 {
    status_mb("VmRSS")
}

/// Peak resident memory so far, MB.
#[allow(dead_code)]
pub fn peak_rss_mb() -> u64 {
    status_mb("VmHWM")
}
