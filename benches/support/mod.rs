//! What the benchmarks read about their own process.

/// A `/proc/self/status` size field (`VmRSS`, `VmHWM`), in kB.
pub fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// A `/proc/self/status` size field (`VmRSS`, `VmHWM`), in MB.
pub fn status_mb(field: &str) -> u64 {
    status_kb(field) / 1024
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

/// GET `/metrics` (HTTP/1.0, so never chunked), handing each line to `each`; returns the
/// bytes read. Lines are not kept, so the client's copy does not count in the RSS.
#[allow(dead_code)]
pub async fn scrape(addr: std::net::SocketAddr, mut each: impl FnMut(&str)) -> usize {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    if s.write_all(b"GET /metrics HTTP/1.0\r\nhost: x\r\n\r\n")
        .await
        .is_err()
    {
        return 0;
    }
    let mut lines = BufReader::new(s).lines();
    let mut size = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        size += line.len() + 1;
        each(&line);
    }
    size
}
