//! Throughput and latency, the way the benchmark reports them.
//!
//! - [`Throughput`]: records and bytes over a measured time, as records/s and
//!   MB/s. "MB" is 2^20 bytes, the unit Kafka's own `ProducerPerformance`
//!   prints as "MB/sec", so the two can be compared directly.
//! - [`LatencyHistogram`]: an HdrHistogram of latencies in microseconds
//!   (3 significant digits: every percentile is within 0.1 % of the exact
//!   value), summarised as a serializable [`LatencySummary`] with p50, p99 and
//!   p99.9.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Bytes in the "MB" of MB/s (ProducerPerformance's unit: a mebibyte).
pub const MB: f64 = 1024.0 * 1024.0;

/// How much went through in how long.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub records: u64,
    /// Payload bytes (record values), as ProducerPerformance counts them.
    pub bytes: u64,
    /// The measured time.
    pub seconds: f64,
    pub records_per_sec: f64,
    /// 2^20 bytes per second.
    pub mb_per_sec: f64,
}

impl Throughput {
    /// `records` records of `bytes` bytes in all, in `elapsed`.
    pub fn new(records: u64, bytes: u64, elapsed: Duration) -> Throughput {
        Throughput::from_seconds(records, bytes, elapsed.as_secs_f64())
    }

    /// As [`Throughput::new`], with the time in seconds. A zero time counts as
    /// one nanosecond, so the rates stay finite.
    pub fn from_seconds(records: u64, bytes: u64, seconds: f64) -> Throughput {
        let t = seconds.max(1e-9);
        Throughput {
            records,
            bytes,
            seconds,
            records_per_sec: records as f64 / t,
            mb_per_sec: bytes as f64 / MB / t,
        }
    }

    /// This throughput as a fraction of `other`'s, in records/s.
    pub fn ratio_to(&self, other: &Throughput) -> f64 {
        self.records_per_sec / other.records_per_sec
    }
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0} records/s ({:.2} MB/s; {} records in {:.3} s)",
            self.records_per_sec, self.mb_per_sec, self.records, self.seconds
        )
    }
}

/// A latency histogram in microseconds, from 1 µs up to whatever is recorded
/// (it grows as needed), with 3 significant digits.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    histogram: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> LatencyHistogram {
        LatencyHistogram {
            histogram: Histogram::new(3)
                .expect("3 significant digits is a valid precision"),
        }
    }

    /// Records one latency in microseconds. The histogram grows to hold it (up
    /// to about 146,000 years); beyond that the value is clamped.
    pub fn record_us(&mut self, micros: u64) {
        // `saturating_record` alone would clamp to the current size instead of
        // growing.
        if self.histogram.record(micros).is_err() {
            self.histogram.saturating_record(micros);
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds every value recorded in `other`.
    pub fn add(&mut self, other: &LatencyHistogram) {
        // Both auto-resize with the same precision, so adding cannot fail.
        self.histogram
            .add(&other.histogram)
            .expect("histograms of the same precision add up");
    }

    /// Forgets everything recorded (e.g. the warm-up).
    pub fn reset(&mut self) {
        self.histogram.reset();
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The value at `quantile` (0.0 to 1.0), in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        self.histogram.value_at_quantile(quantile)
    }

    /// Count, min, mean, p50, p99, p99.9 and max. All zero when nothing was recorded.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.histogram;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            percentiles: DISTRIBUTION
                .iter()
                .map(|&p| (p, h.value_at_quantile(p / 100.0)))
                .collect(),
        }
    }
}

/// The percentiles a [`LatencySummary`] keeps for drawing the distribution:
/// denser towards the tail, where the semantics differ.
pub const DISTRIBUTION: [f64; 14] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999,
    100.0,
];

/// What a latency histogram says, in microseconds. Percentiles are the
/// highest value equivalent to the recorded ones at 3 significant digits, so
/// `min <= p50 <= p99 <= p99.9 <= max` always holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// (percentile, microseconds) at each of [`DISTRIBUTION`]: the whole
    /// curve, for charts. Empty in reports recorded before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percentiles: Vec<(f64, u64)>,
}

impl LatencySummary {
    /// Whether the percentiles are in order (they always are for a summary of
    /// a histogram; the check is for summaries read back from JSON).
    pub fn is_ordered(&self) -> bool {
        self.min_us <= self.p50_us
            && self.p50_us <= self.p99_us
            && self.p99_us <= self.p999_us
            && self.p999_us <= self.max_us
    }
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} p99 {} p99.9 {} (max {}, {} samples)",
            format_us(self.p50_us as f64),
            format_us(self.p99_us as f64),
            format_us(self.p999_us as f64),
            format_us(self.max_us as f64),
            self.count
        )
    }
}

/// A duration in microseconds for people: `850 µs`, `12.3 ms`, `1.25 s`.
pub fn format_us(micros: f64) -> String {
    if micros < 1_000.0 {
        format!("{micros:.0} µs")
    } else if micros < 100_000.0 {
        format!("{:.1} ms", micros / 1_000.0)
    } else if micros < 1_000_000.0 {
        format!("{:.0} ms", micros / 1_000.0)
    } else {
        format!("{:.2} s", micros / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within the histogram's precision: 3 significant digits.
    fn close(actual: u64, expected: u64) -> bool {
        (actual as f64 - expected as f64).abs() <= expected as f64 * 0.001 + 1.0
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = LatencyHistogram::new();
        for us in 1..=100_000 {
            h.record_us(us);
        }
        let s = h.summary();
        assert_eq!(s.count, 100_000);
        assert_eq!(s.min_us, 1);
        assert!(close(s.p50_us, 50_000), "{s:?}");
        assert!(close(s.p99_us, 99_000), "{s:?}");
        assert!(close(s.p999_us, 99_900), "{s:?}");
        assert!(close(s.max_us, 100_000), "{s:?}");
        assert!((s.mean_us - 50_000.5).abs() < 50.0, "{s:?}");
        assert!(s.is_ordered());
    }

    #[test]
    fn the_tail_is_seen_even_when_it_is_rare() {
        // 999 fast values and one slow one: p99 is fast, p99.9 and max are not.
        let mut h = LatencyHistogram::new();
        for _ in 0..999 {
            h.record(Duration::from_micros(200));
        }
        h.record(Duration::from_secs(2));
        let s = h.summary();
        assert!(close(s.p50_us, 200) && close(s.p99_us, 200), "{s:?}");
        assert!(
            close(s.p999_us, 200),
            "the 999th of 1000 is still fast: {s:?}"
        );
        assert!(close(s.max_us, 2_000_000), "{s:?}");
        h.record(Duration::from_secs(2));
        assert!(close(h.summary().p999_us, 2_000_000), "{:?}", h.summary());
    }

    #[test]
    fn empty_histogram_summarises_to_zeros_and_zero_is_recordable() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.summary(), LatencySummary::default());
        assert!(h.summary().is_ordered());
        h.record_us(0);
        assert_eq!(h.summary().count, 1);
        assert_eq!(h.summary().p50_us, 0);
    }

    #[test]
    fn adding_and_resetting() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for us in 1..=10 {
            a.record_us(us);
            b.record_us(us * 1000);
        }
        a.add(&b);
        assert_eq!(a.len(), 20);
        assert!(close(a.summary().max_us, 10_000));
        a.reset();
        assert!(a.is_empty());
    }

    #[test]
    fn huge_values_saturate_instead_of_failing() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_secs(u64::MAX));
        h.record_us(u64::MAX);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn throughput_arithmetic() {
        let t = Throughput::new(1000, 1000 * 1024, Duration::from_secs(2));
        assert_eq!(t.records_per_sec, 500.0);
        assert!((t.mb_per_sec - 0.48828125).abs() < 1e-12);
        // throughput * time = records
        assert!((t.records_per_sec * t.seconds - 1000.0).abs() < 1e-9);
        let half = Throughput::new(1000, 0, Duration::from_secs(4));
        assert_eq!(half.ratio_to(&t), 0.5);
        let instant = Throughput::from_seconds(10, 10, 0.0);
        assert!(instant.records_per_sec.is_finite());
    }

    #[test]
    fn summaries_round_trip_through_json() {
        let mut h = LatencyHistogram::new();
        for us in [5, 50, 500, 5000] {
            h.record_us(us);
        }
        let s = h.summary();
        let back: LatencySummary =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let t = Throughput::new(3, 3072, Duration::from_millis(1500));
        let back: Throughput =
            serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_us(850.0), "850 µs");
        assert_eq!(format_us(12_345.0), "12.3 ms");
        assert_eq!(format_us(123_456.0), "123 ms");
        assert_eq!(format_us(1_250_000.0), "1.25 s");
    }
}
