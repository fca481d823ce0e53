//! Helpers shared by the examples (a folder without `main.rs`, so not an example itself).
// Each example uses only part of this.
#![allow(dead_code)]

/// Resident memory in MB, threads and open file descriptors of this process (Linux `/proc`;
/// zeros where it cannot be read).
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub rss_mb: f64,
    pub threads: usize,
    pub fds: usize,
}

impl Usage {
    pub fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.count());
        Usage {
            rss_mb: rss_kb / 1024.0,
            threads: count("/proc/self/task"),
            fds: count("/proc/self/fd"),
        }
    }

    /// As JSON, memory to 0.01 MB.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "rss_mb": (self.rss_mb * 100.0).round() / 100.0,
            "threads": self.threads,
            "fds": self.fds,
        })
    }
}
