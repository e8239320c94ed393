//! `lab bench`: what each delivery guarantee costs, measured side by side on
//! one workload, and checked against Apache Kafka's own `ProducerPerformance`.
//!
//! The cases, each on a fresh topic, after a warm-up:
//!
//! - `acks=0`, `acks=1`, `acks=all` (idempotence off): how long the producer
//!   waits for the broker.
//! - `idempotent`: `acks=all` plus `enable.idempotence=true`.
//! - `transactional N ms`: idempotent, inside transactions committed every
//!   N ms (by time, as ProducerPerformance's `--transaction-duration-ms` does).
//!   Delivery reports are drained before each commit: the rdkafka crate's
//!   `BaseProducer::commit_transaction` first runs `BaseProducer::flush`,
//!   whose loop polls in steps of up to 100 ms and would make frequent
//!   commits look far slower than Kafka is.
//!
//! For each case the lab measures
//!
//! - throughput: records handed over, from the first measured send to the last
//!   acknowledgement (or commit), as records/s and MB/s;
//! - send-to-ack latency: from handing a record to the client to its delivery
//!   report (for acks=0: until the client wrote it to the socket). Under a
//!   saturating load this is mostly time queued in the client;
//! - end-to-end latency, in a second pass with a consumer thread reading the
//!   same topic (`read_committed`): from the `sent_at_us` stamp in the record's
//!   [`Payload`](crate::record::Payload) to the consumer receiving it. It has a
//!   pass of its own because the consumer shares the CPU with the producer;
//! - the same workload with Kafka's `ProducerPerformance` (Java client,
//!   same acks, idempotence, in-flight limit, record size and count, the same
//!   warm-up with `--warmup-records` where the tool has it (Kafka 4.2 and
//!   later), and for transactions the same `--transaction-duration-ms`), run
//!   right after each lab run of the case: the lab's throughput is reported
//!   as the ratio of each such pair, their median and spread;
//! - and, for both clients, the broker's side: how fast the topic's log grew
//!   on the broker's disk over the measured window ([`BrokerLog`]), beside
//!   the client's own figure, with a warning when the two differ by more than
//!   [`DISAGREEMENT`].
//!
//! Records are values of the requested size, no key (like ProducerPerformance).
//! The value is the lab's JSON [`Payload`](crate::record::Payload), built from
//! a precomputed template in which only the id and time stamp are rewritten:
//! encoding JSON per record ([`crate::record::value`]) is measured separately
//! and reported, so its cost is visible rather than hidden in the figures.
//!
//! Every figure names the backend and Kafka version it was measured on.
//!
//! The parts: `cases` (the configurations and their settings in both
//! clients), `measure` (the interleaved rounds, and the figure of each case),
//! `pass` (one pass: the warm-up, the measured loop, the end-to-end reader),
//! `payload` (the record values), `producer_performance` (the Java tool),
//! `host` (what /proc says of the machine), `broker_log` (how fast the
//! broker's log grew, the broker-side figure, and the CPU each side spent
//! per record), `wire` (librdkafka's own counters of the measured part:
//! requests, records per request, its broker thread's wake-ups), `report` (the figures and their
//! tables) and `claims` (published statements, checked). The command line,
//! `lab bench`, is the binary's.

mod broker_log;
mod cases;
mod claims;
mod commit_cost;
mod host;
mod measure;
mod pass;
mod payload;
mod producer_performance;
mod report;
mod wire;

use serde::{Deserialize, Serialize};

pub use broker_log::{BrokerLog, CpuPerRecord, LogGrowth, SAMPLE_EVERY};
pub use cases::{Case, COMMIT_INTERVALS_MS};
pub use claims::{claims_markdown, published_claims, Claim, TIE};
pub use commit_cost::transaction_cost_markdown;
pub use measure::{bench, bench_with_progress, paired_ratio};
pub use pass::{delete_topic, WARMUP_ID_BASE};
pub use payload::{EncodingCost, PayloadTemplate};
pub use producer_performance::{
    java, kafka_tools, parse_producer_performance, PerfResult, PerfRun,
};
pub use report::{
    cpu_comparison_markdown, BenchReport, EndToEnd, Figure, TransactionStats,
    DISAGREEMENT,
};
pub use wire::{JavaMetrics, WireCounts};

/// What to measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchOptions {
    /// Measured records per case.
    pub records: u64,
    /// Size of each record's value (no key), like ProducerPerformance's `--record-size`.
    pub record_bytes: usize,
    /// Records sent (and acknowledged) before each case's measurement starts.
    pub warmup_records: u64,
    /// Partitions of each fresh topic.
    pub partitions: i32,
    pub cases: Vec<Case>,
    /// max.in.flight.requests.per.connection=1 in every case (both clients):
    /// the in-order setup of Confluent's published comparison.
    pub one_in_flight: bool,
    /// Producer-alone runs per case, interleaved (every case once, then
    /// again, ...); the figures are those of the median run by throughput.
    pub repetitions: u32,
    /// Run a second pass per case with a consumer, for end-to-end latency.
    pub end_to_end: bool,
    /// Run Kafka's ProducerPerformance per case.
    pub producer_performance: bool,
    /// ProducerPerformance runs per case; its figure is the median run.
    #[serde(default = "one_run")]
    pub producer_performance_runs: u32,
    /// Extra producer settings for both clients (e.g. linger.ms=0), applied last.
    pub producer_overrides: Vec<(String, String)>,
    /// Before each measured run, wait (up to a minute) until the kernel holds
    /// less than this many MB of dirty page cache; 0: never wait. The broker
    /// writes into the page cache; once the dirty pages of earlier runs near
    /// the kernel's limit, it throttles the broker to the disk's speed, and
    /// whichever case runs then looks slow. The default, 2560, sits between
    /// the point where Linux starts writing back (10 % of available memory,
    /// about 2 GB on the course's 24 GB machines) and where it starts
    /// throttling writers (about 15 %).
    #[serde(default)]
    pub settle_dirty_mb: u64,
    /// A transactional case keeps sending past `records` until it has
    /// committed this many transactions. Without it a long interval would be
    /// measured wrongly: 100,000 records take a fraction of a second, so a
    /// "3000 ms" case would commit once, at the end, and look like a shorter
    /// interval than it is.
    #[serde(default = "one")]
    pub min_commits: u64,
}

fn one() -> u64 {
    1
}

fn one_run() -> u32 {
    1
}

impl BenchOptions {
    /// `records` records of `record_bytes` bytes, every default case, three
    /// repetitions, end-to-end latency and ProducerPerformance on; warm-up a
    /// tenth of the records (at least 1,000, at most 20,000).
    pub fn new(records: u64, record_bytes: usize) -> BenchOptions {
        BenchOptions {
            records,
            record_bytes,
            warmup_records: (records / 10).clamp(1_000, 20_000),
            partitions: 1,
            cases: Case::defaults(&COMMIT_INTERVALS_MS),
            one_in_flight: false,
            repetitions: 3,
            end_to_end: true,
            producer_performance: true,
            producer_performance_runs: 3,
            producer_overrides: Vec::new(),
            settle_dirty_mb: 2560,
            min_commits: 3,
        }
    }
}

impl Default for BenchOptions {
    /// 100,000 records of 1 KB, as in Confluent's published comparison.
    fn default() -> Self {
        BenchOptions::new(100_000, 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_and_labels() {
        let o = BenchOptions::default();
        assert_eq!(
            (o.records, o.record_bytes, o.warmup_records),
            (100_000, 1024, 10_000)
        );
        assert_eq!(BenchOptions::new(500, 10).warmup_records, 1_000);
        let labels: Vec<String> = o.cases.iter().map(|c| c.label()).collect();
        assert_eq!(
            labels,
            [
                "acks=0",
                "acks=1",
                "acks=all",
                "idempotent",
                "transactional 10 ms",
                "transactional 30 ms",
                "transactional 100 ms",
                "transactional 300 ms",
                "transactional 1000 ms",
                "transactional 3000 ms"
            ]
        );
        let json = serde_json::to_string(&o).unwrap();
        assert!(
            json.contains(r#"{"kind":"transactional","commit_interval_ms":100}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<BenchOptions>(&json).unwrap(), o);
    }
}
