//! What the benchmark reads of the machine it runs on (Linux's /proc): dirty
//! page cache, which it waits to be written back before a measured run, and
//! the load average, which it reports.

use std::time::{Duration, Instant};

/// Dirty and under-write-back page cache, in MB (Linux).
fn dirty_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((kb("Dirty:")? + kb("Writeback:")?) / 1024)
}

/// Waits for the page cache to settle before a measured run.
pub(super) struct Settle {
    limit_mb: u64,
    /// Time spent waiting, in all.
    pub(super) waited: Duration,
    /// The most dirty page cache seen at the start of a run, in MB.
    pub(super) max_dirty_mb: Option<u64>,
}

impl Settle {
    pub(super) fn new(limit_mb: u64) -> Settle {
        Settle {
            limit_mb,
            waited: Duration::ZERO,
            max_dirty_mb: None,
        }
    }

    /// Waits (up to a minute) until less than the limit is dirty, saying so
    /// through `progress`.
    pub(super) fn wait(&mut self, progress: &mut dyn FnMut(&str)) {
        let started = Instant::now();
        if self.limit_mb > 0 {
            while let Some(dirty) = dirty_mb().filter(|&d| d >= self.limit_mb) {
                if started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                progress(&format!(
                    "waiting for {dirty} MB of dirty pages to be written"
                ));
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        self.waited += started.elapsed();
        if let Some(dirty) = dirty_mb() {
            self.max_dirty_mb = Some(self.max_dirty_mb.unwrap_or(0).max(dirty));
        }
    }
}

/// /proc/loadavg: the load average over 1, 5 and 15 minutes.
pub(super) fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}
