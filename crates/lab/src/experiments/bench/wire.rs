//! What librdkafka itself says of a measured window: how many Produce
//! requests carried the records, how big they were, and how often its broker
//! thread woke up to do it. Read from two statistics reports, one as the
//! clock starts and one after the last acknowledgement, so the warm-up is
//! left out. ProducerPerformance's counterpart comes from its
//! `--print-metrics` (over its whole run, warm-up included).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::support::lock;

/// How often the bench's producer reports statistics: often enough that a
/// fresh report follows the warm-up and the measured part within a few
/// hundred milliseconds, rarely enough to cost nothing measurable.
pub(super) const STATS_EVERY: Duration = Duration::from_millis(100);

/// librdkafka's counters over a measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WireCounts {
    /// Produce requests sent.
    pub produce_requests: u64,
    /// Records sent (`txmsgs`; a record sent twice counts twice).
    pub records: u64,
    /// Bytes written to the broker connections (`txbytes`), requests'
    /// framing included.
    pub bytes: u64,
    /// Times the broker threads woke up (`wakeups`): each wake-up is a
    /// round of the thread's loop, CPU spent whether or not it sends.
    pub wakeups: u64,
}

impl WireCounts {
    pub fn records_per_request(&self) -> Option<f64> {
        (self.produce_requests > 0)
            .then(|| self.records as f64 / self.produce_requests as f64)
    }

    pub fn wakeups_per_record(&self) -> Option<f64> {
        (self.records > 0).then(|| self.wakeups as f64 / self.records as f64)
    }

    /// The counters of one statistics report (cumulative since the client
    /// started), summed over its broker connections.
    pub(super) fn from_statistics(json: &[u8]) -> Option<WireCounts> {
        let stats: serde_json::Value = serde_json::from_slice(json).ok()?;
        let mut counts = WireCounts {
            records: stats.get("txmsgs")?.as_u64()?,
            ..WireCounts::default()
        };
        for broker in stats.get("brokers")?.as_object()?.values() {
            let field = |k: &str| broker.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            counts.bytes += field("txbytes");
            counts.wakeups += field("wakeups");
            counts.produce_requests += broker
                .get("req")
                .and_then(|r| r.get("Produce"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
        }
        Some(counts)
    }

    /// What happened between `earlier` and `self` (both cumulative).
    pub(super) fn since(&self, earlier: &WireCounts) -> WireCounts {
        WireCounts {
            produce_requests: self
                .produce_requests
                .saturating_sub(earlier.produce_requests),
            records: self.records.saturating_sub(earlier.records),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            wakeups: self.wakeups.saturating_sub(earlier.wakeups),
        }
    }
}

/// The latest statistics report a producer delivered, and how many it has.
#[derive(Default)]
pub(super) struct LatestStatistics {
    latest: Mutex<Option<WireCounts>>,
    reports: AtomicU64,
}

impl LatestStatistics {
    /// Called from the client context's `stats_raw`.
    pub(super) fn deliver(&self, json: &[u8]) {
        if let Some(counts) = WireCounts::from_statistics(json) {
            *lock(&self.latest) = Some(counts);
            self.reports.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A report made after this call: waits (calling `poll`, which is what
    /// delivers statistics) for the second report from now, since the next
    /// one may have been made just before; None after a second without.
    pub(super) fn fresh(&self, mut poll: impl FnMut()) -> Option<WireCounts> {
        let wanted = self.reports.load(Ordering::SeqCst) + 2;
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.reports.load(Ordering::SeqCst) < wanted {
            if Instant::now() > deadline {
                return None;
            }
            poll();
        }
        *lock(&self.latest)
    }
}

/// ProducerPerformance's own metrics (`--print-metrics`), over its whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JavaMetrics {
    /// `records-per-request-avg`.
    pub records_per_request: Option<f64>,
    /// `batch-size-avg`, bytes.
    pub batch_bytes: Option<f64>,
}

impl JavaMetrics {
    /// Reads the `producer-metrics:NAME:{client-id=...} : VALUE` lines that
    /// `--print-metrics` prints at the end of a run.
    pub(super) fn parse(output: &str) -> JavaMetrics {
        let metric = |name: &str| {
            output.lines().find_map(|line| {
                let rest = line.strip_prefix("producer-metrics:")?;
                let (key, value) =
                    rest.split_once(" : ").or_else(|| rest.split_once(':'))?;
                (key.split(':').next()? == name)
                    .then(|| value.trim().parse::<f64>().ok())
                    .flatten()
                    .filter(|v| v.is_finite())
            })
        };
        JavaMetrics {
            records_per_request: metric("records-per-request-avg"),
            batch_bytes: metric("batch-size-avg"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_summed_over_brokers_and_taken_between_two_reports() {
        let report = |txmsgs: u64, produce: u64, wakeups: u64| {
            format!(
                r#"{{"txmsgs": {txmsgs}, "brokers": {{
                    "127.0.0.1:9092/1": {{"txbytes": {}, "wakeups": {wakeups}, "req": {{"Produce": {produce}, "Metadata": 3}}}},
                    "GroupCoordinator": {{"txbytes": 10, "wakeups": 5, "req": {{}}}}
                }}}}"#,
                produce * 1000
            )
        };
        let start = WireCounts::from_statistics(report(100, 1, 10).as_bytes()).unwrap();
        let end =
            WireCounts::from_statistics(report(2100, 5, 4010).as_bytes()).unwrap();
        let window = end.since(&start);
        assert_eq!(
            window,
            WireCounts {
                produce_requests: 4,
                records: 2000,
                bytes: 4000,
                wakeups: 4000
            }
        );
        assert_eq!(window.records_per_request(), Some(500.0));
        assert_eq!(window.wakeups_per_record(), Some(2.0));
        assert_eq!(WireCounts::default().records_per_request(), None);
        assert_eq!(WireCounts::from_statistics(b"not json"), None);
    }

    #[test]
    fn java_metrics_are_read_from_print_metrics() {
        let output = "\
200000 steady state records sent, 85506.6 records/sec (83.50 MB/sec), 91.13 ms avg latency\n\
producer-metrics:batch-size-avg:{client-id=perf-producer-client}          : 906292.159\n\
producer-metrics:records-per-request-avg:{client-id=perf-producer-client} : 876.494\n\
producer-node-metrics:request-size-avg:{client-id=perf-producer-client, node-id=node-1} : 1.0\n";
        let m = JavaMetrics::parse(output);
        assert_eq!(m.records_per_request, Some(876.494));
        assert_eq!(m.batch_bytes, Some(906292.159));
        assert_eq!(JavaMetrics::parse("no metrics"), JavaMetrics::default());
    }
}
