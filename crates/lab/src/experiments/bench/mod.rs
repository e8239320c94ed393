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
//!   Delivery reports are drained before each commit: `commit_transaction`'s
//!   own flush loop polls in 100 ms steps and would make frequent commits look
//!   far slower than Kafka is (see the field notes).
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
//! - and the same workload with Kafka's `ProducerPerformance` (Java client,
//!   same acks, idempotence, in-flight limit, record size and count, and for
//!   transactions the same `--transaction-duration-ms`); the lab's throughput
//!   is reported as a ratio of it.
//!
//! Records are values of the requested size, no key (like ProducerPerformance).
//! The value is the lab's JSON [`Payload`](crate::record::Payload), built from
//! a precomputed template in which only the id and time stamp are rewritten:
//! encoding JSON per record ([`crate::record::value`]) is measured separately
//! and reported, so its cost is visible rather than hidden in the figures.
//!
//! Every figure names the backend and Kafka version it was measured on.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::cluster::{librdkafka_version, Backend, Cluster};
use crate::error::{Doing, Error, Result};
use crate::metrics::{format_us, LatencyHistogram, LatencySummary, Throughput};
use crate::produce;
use crate::semantics::Semantic;

/// Ids of warm-up records start here, so the end-to-end reader can tell them
/// from measured ones (measured records have ids `0..records`).
pub const WARMUP_ID_BASE: u64 = 1 << 62;

/// How long the end-to-end reader waits for missing records after the
/// producer has finished (acks=0 may lose some).
const READER_IDLE: Duration = Duration::from_secs(5);

/// One producer configuration to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Case {
    /// Fire and forget: no acknowledgement, no retries.
    Acks0,
    /// The leader's acknowledgement only; idempotence off.
    Acks1,
    /// Every in-sync replica; idempotence off.
    AcksAll,
    /// acks=all with enable.idempotence=true.
    Idempotent,
    /// Idempotent, inside transactions committed every `commit_interval_ms`.
    Transactional { commit_interval_ms: u64 },
}

impl Case {
    /// acks=0, acks=1, acks=all, idempotent, then one transactional case per interval.
    pub fn defaults(commit_intervals_ms: &[u64]) -> Vec<Case> {
        let mut cases = vec![Case::Acks0, Case::Acks1, Case::AcksAll, Case::Idempotent];
        cases.extend(commit_intervals_ms.iter().map(|&ms| Case::Transactional {
            commit_interval_ms: ms.max(1),
        }));
        cases
    }

    /// `acks=0`, ..., `transactional 100 ms`.
    pub fn label(self) -> String {
        match self {
            Case::Acks0 => "acks=0".into(),
            Case::Acks1 => "acks=1".into(),
            Case::AcksAll => "acks=all".into(),
            Case::Idempotent => "idempotent".into(),
            Case::Transactional { commit_interval_ms } => {
                format!("transactional {commit_interval_ms} ms")
            }
        }
    }

    /// A topic-name-safe form of the label.
    fn slug(self) -> String {
        match self {
            Case::Acks0 => "acks0".into(),
            Case::Acks1 => "acks1".into(),
            Case::AcksAll => "acksall".into(),
            Case::Idempotent => "idempotent".into(),
            Case::Transactional { commit_interval_ms } => {
                format!("tx{commit_interval_ms}ms")
            }
        }
    }

    /// The lab semantic whose settings the case starts from.
    pub fn semantic(self) -> Semantic {
        match self {
            Case::Acks0 => Semantic::AtMostOnce,
            Case::Acks1 | Case::AcksAll | Case::Idempotent => Semantic::AtLeastOnce,
            Case::Transactional { .. } => Semantic::ExactlyOnce,
        }
    }

    pub fn commit_interval(self) -> Option<Duration> {
        match self {
            Case::Transactional { commit_interval_ms } => {
                Some(Duration::from_millis(commit_interval_ms))
            }
            _ => None,
        }
    }

    // ANCHOR: cases
    /// What the case changes in its semantic's librdkafka settings, plus the
    /// in-flight limit, which every case sets to the Java client's default
    /// (librdkafka's is 1,000,000) so both clients run alike.
    pub fn lab_overrides(self, one_in_flight: bool) -> Vec<(String, String)> {
        let mut o = match self {
            Case::Acks1 => vec![("acks", "1")],
            Case::Idempotent => vec![("enable.idempotence", "true")],
            _ => vec![],
        };
        o.push((
            "max.in.flight.requests.per.connection",
            in_flight(one_in_flight),
        ));
        o.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    /// The same case for the Java client, as ProducerPerformance properties.
    pub fn java_props(self, one_in_flight: bool) -> Vec<(String, String)> {
        let mut o = match self {
            Case::Acks0 => vec![
                ("acks", "0"),
                ("enable.idempotence", "false"),
                ("retries", "0"),
            ],
            Case::Acks1 => vec![("acks", "1"), ("enable.idempotence", "false")],
            Case::AcksAll => vec![("acks", "all"), ("enable.idempotence", "false")],
            Case::Idempotent | Case::Transactional { .. } => {
                vec![("acks", "all"), ("enable.idempotence", "true")]
            }
        };
        o.push((
            "max.in.flight.requests.per.connection",
            in_flight(one_in_flight),
        ));
        // The Java client batches 16 KB per partition by default, librdkafka
        // up to 1 MB (batch.size=1000000): with the defaults, the comparison
        // would measure batch sizes, not clients. Both batch up to 1 MB.
        o.push(("batch.size", "1000000"));
        o.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }
    // ANCHOR_END: cases
}

fn in_flight(one: bool) -> &'static str {
    if one {
        "1"
    } else {
        "5"
    }
}

/// The commit intervals measured by default: the cost of exactly-once as a
/// curve, from frequent commits (10 ms) to rare ones (3 s).
pub const COMMIT_INTERVALS_MS: [u64; 6] = [10, 30, 100, 300, 1000, 3000];

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

/// The figures of one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub case: Case,
    pub label: String,
    /// e.g. `Apache Kafka 4.1.1, 1 broker at 127.0.0.1:9092`.
    pub backend_description: String,
    pub kafka_version: String,
    /// The librdkafka settings used (the transactional id left out).
    pub producer_settings: BTreeMap<String, String>,
    pub records: u64,
    pub record_bytes: usize,
    /// Records whose delivery report was an error, in all runs (none on a
    /// healthy broker).
    pub failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Producer alone: first measured send to the last acknowledgement or
    /// commit; of the median run.
    pub throughput: Throughput,
    /// Records/s of every producer-alone run, in the order they ran.
    pub throughput_runs: Vec<f64>,
    /// Producer alone: handing a record over to its delivery report (median run).
    pub ack_latency: LatencySummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<TransactionStats>,
    /// The second pass, with a consumer reading along.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_to_end: Option<EndToEnd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_performance: Option<PerfRun>,
    /// Throughput (records/s) as a fraction of the acks=all case's: the median
    /// of the ratios of runs of the same round, which ran close together in
    /// time (a round is every case once), so that a busy spell of the machine
    /// cancels out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_acks_all: Option<f64>,
    /// Throughput (records/s) as a fraction of ProducerPerformance's on the same case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_producer_performance: Option<f64>,
}

/// How the commits of a transactional case went.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionStats {
    pub commit_interval_ms: u64,
    /// Transactions committed in the measured part (the last one included).
    pub commits: u64,
    /// Time spent draining delivery reports and committing, in all.
    pub commit_seconds: f64,
    /// Per commit, drain included.
    pub mean_commit_ms: f64,
}

/// The pass with a consumer reading the topic while the producer writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndToEnd {
    /// Measured records the consumer received.
    pub received: u64,
    /// From the record's `sent_at_us` to the consumer receiving it.
    pub latency: LatencySummary,
    /// The producer's throughput in this pass (sharing the CPU with the consumer).
    pub throughput: Throughput,
    pub ack_latency: LatencySummary,
}

/// A run of Kafka's ProducerPerformance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerfRun {
    pub command: Vec<String>,
    /// The kafka-tools jar it ran from.
    pub tools_jar: String,
    /// Wall-clock time of the whole process, JVM start included.
    pub wall_seconds: f64,
    /// Of the median run (by throughput).
    pub result: PerfResult,
    /// Records/s of every run, in the order they ran.
    #[serde(default)]
    pub records_per_sec_runs: Vec<f64>,
}

/// The final line of ProducerPerformance's output.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerfResult {
    pub records: u64,
    pub records_per_sec: f64,
    /// 2^20 bytes per second ("MB/sec" in its output).
    pub mb_per_sec: f64,
    pub avg_latency_ms: f64,
    pub max_latency_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// What encoding a record value costs, per record, on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncodingCost {
    pub record_bytes: usize,
    /// `record::value`: serde_json twice (to size the padding) and a fresh buffer.
    pub json_ns_per_record: f64,
    /// The benchmark's template: the id and time stamp written in place.
    pub template_ns_per_record: f64,
}

/// Everything `lab bench` measured. Serializes to JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub backend: Backend,
    pub backend_description: String,
    /// Brokers in the cluster (0 in reports recorded before it was kept).
    #[serde(default)]
    pub brokers: usize,
    pub kafka_version: String,
    pub librdkafka_version: String,
    pub options: BenchOptions,
    /// /proc/loadavg (1, 5, 15 minutes) before and after: other work on the
    /// machine shows up here.
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
    pub cpus: usize,
    pub started_unix_secs: u64,
    pub seconds: f64,
    pub payload_encoding: EncodingCost,
    /// Time spent waiting for dirty pages to be written back (see
    /// `BenchOptions::settle_dirty_mb`), and the most dirty page cache seen
    /// at the start of a measured run, in MB.
    pub settle_seconds: f64,
    pub max_dirty_mb_at_start: Option<u64>,
    pub figures: Vec<Figure>,
    /// What was skipped or went wrong, and caveats for reading the figures.
    pub notes: Vec<String>,
}

impl BenchReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a bench report always serializes")
    }

    /// Reads a report written by `lab bench --json FILE` (the book's is
    /// `book/src/generated/bench.json`).
    pub fn read(path: impl AsRef<std::path::Path>) -> Result<BenchReport> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::BadConfig(format!(
                "cannot read {}: {e} (write one with `lab bench --json FILE`)",
                path.display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            Error::BadConfig(format!(
                "{} is not a lab bench report: {e}",
                path.display()
            ))
        })
    }

    pub fn figure(&self, case: Case) -> Option<&Figure> {
        self.figures.iter().find(|f| f.case == case)
    }

    /// `1 broker`, `3 brokers, replication factor 3`: what the acks settings
    /// wait for depends on it.
    pub fn setup(&self) -> String {
        match self.brokers {
            0 => "broker count not recorded".into(),
            1 => "1 broker".into(),
            n => format!("{n} brokers, replication factor {}", n.min(3)),
        }
    }

    /// The report as the book shows it: throughput, latency and transaction
    /// tables, the line naming what measured them, and the notes.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let dash = || "–".to_string();
        let mut out = String::from(
            "| case | records/s | MB/s | × acks=all | runs, k/s | Java records/s | lab ÷ Java |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        for f in &self.figures {
            let pp = f.producer_performance.as_ref().map(|p| p.result);
            out += &format!(
                "| {} | {:.0} | {:.1} | {} | {} | {} | {} |\n",
                f.label,
                f.throughput.records_per_sec,
                f.throughput.mb_per_sec,
                f.vs_acks_all.map_or_else(dash, |r| format!("{r:.2}")),
                spread(&f.throughput_runs),
                pp.map_or_else(dash, |p| format!("{:.0}", p.records_per_sec)),
                f.vs_producer_performance
                    .map_or_else(dash, |r| format!("{r:.2}")),
            );
        }
        out += "\n| case | ack p50 | ack p99 | ack p99.9 | e2e p50 | e2e p99 | e2e p99.9 |\n\
                |---|---:|---:|---:|---:|---:|---:|\n";
        for f in &self.figures {
            let e2e = f.end_to_end.as_ref().map(|e| &e.latency);
            let us = |v: Option<u64>| v.map_or_else(dash, |v| format_us(v as f64));
            let a = &f.ack_latency;
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                f.label,
                format_us(a.p50_us as f64),
                format_us(a.p99_us as f64),
                format_us(a.p999_us as f64),
                us(e2e.map(|l| l.p50_us)),
                us(e2e.map(|l| l.p99_us)),
                us(e2e.map(|l| l.p999_us)),
            );
        }
        let transactional: Vec<&Figure> = self
            .figures
            .iter()
            .filter(|f| f.transactions.is_some())
            .collect();
        if !transactional.is_empty() {
            out += "\n| case | records sent | transactions | mean transaction | mean drain + commit |\n\
                    |---|---:|---:|---:|---:|\n";
            for f in transactional {
                let t = f.transactions.expect("filtered on it");
                out += &format!(
                    "| {} | {} | {} | {:.0} ms | {:.1} ms |\n",
                    f.label,
                    f.throughput.records,
                    t.commits,
                    f.throughput.seconds * 1000.0 / t.commits.max(1) as f64,
                    t.mean_commit_ms,
                );
            }
        }
        let load = |l: Option<[f64; 3]>| {
            l.map_or_else(|| "?".into(), |l| format!("{:.2}", l[0]))
        };
        out += &format!(
            "\nMeasured on {}, librdkafka {}, {} CPUs (load average {} before, {} after): \
             {} records of {} B per case after {} warm-up records, the median of {} interleaved \
             run{}, {} partition{}, max.in.flight.requests.per.connection={}.\n",
            self.backend_description,
            self.librdkafka_version,
            self.cpus,
            load(self.load_before),
            load(self.load_after),
            o.records,
            o.record_bytes,
            o.warmup_records,
            o.repetitions.max(1),
            if o.repetitions > 1 { "s" } else { "" },
            o.partitions,
            if o.partitions == 1 { "" } else { "s" },
            in_flight(o.one_in_flight),
        );
        if !self.notes.is_empty() {
            out += "\n";
            for note in &self.notes {
                out += &format!("- {note}\n");
            }
        }
        out
    }
}

/// A published statement about what the guarantees cost, checked against a
/// report: what was claimed, by whom, what this run measured, and whether it
/// reproduced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub claim: String,
    pub source: String,
    pub measured: String,
    /// None: the report lacks a case the claim needs.
    pub reproduced: Option<bool>,
}

/// Two throughputs closer than this (as a fraction) are a tie on one noisy
/// machine, not an order.
pub const TIE: f64 = 0.05;

/// The published relationships the course checks (Confluent's and the
/// module's), against `report` (five requests in flight), for the in-order
/// comparison `in_order` (one in flight), and for the order of the acks
/// settings where followers exist, `replicated` (three brokers).
pub fn published_claims(
    report: &BenchReport,
    in_order: Option<&BenchReport>,
    replicated: Option<&BenchReport>,
) -> Vec<Claim> {
    let vs_all = |r: &BenchReport, c: Case| r.figure(c).and_then(|f| f.vs_acks_all);
    let tx = |ms| Case::Transactional {
        commit_interval_ms: ms,
    };
    let mut claims = Vec::new();

    // The ratios the tables show (each paired by round), so the verdict
    // agrees with the "× acks=all" column.
    let acks_order =
        "acks=0 is faster than acks=1, which is at least as fast as acks=all";
    for (setup, r) in [
        (report.setup(), Some(report)),
        (
            replicated.map_or_else(|| "replicated".into(), BenchReport::setup),
            replicated,
        ),
    ] {
        let order =
            r.and_then(|r| Some((vs_all(r, Case::Acks0)?, vs_all(r, Case::Acks1)?)));
        claims.push(Claim {
            claim: format!("{acks_order} ({setup})"),
            source: "the course module's comparison table".into(),
            measured: order.map_or_else(
                || "not measured".into(),
                |(a0, a1)| {
                    format!(
                        "acks=0 {a0:.2}×, acks=1 {a1:.2}× the throughput of acks=all"
                    )
                },
            ),
            reproduced: order.map(|(a0, a1)| a0 > a1 * (1.0 + TIE) && a1 >= 1.0 - TIE),
        });
    }

    // The same ratio for Kafka's own Java client, from its ProducerPerformance runs.
    let java_vs_all = |r: &BenchReport, c: Case| {
        let rate = |c| {
            r.figure(c)?
                .producer_performance
                .as_ref()
                .map(|p| p.result.records_per_sec)
        };
        Some(rate(c)? / rate(Case::AcksAll)?)
    };
    let idempotence =
        "the idempotent producer keeps at least 95 % of acks=all's throughput";
    for (client, ratio) in [
        ("lab, librdkafka", vs_all(report, Case::Idempotent)),
        ("Java client", java_vs_all(report, Case::Idempotent)),
    ] {
        claims.push(Claim {
            claim: format!("{idempotence} ({client})"),
            source: "Confluent (KIP-98 benchmarks)".into(),
            measured: ratio
                .map_or_else(|| "not measured".into(), |r| format!("{r:.2}× acks=all")),
            reproduced: ratio.map(|r| r >= 0.95),
        });
    }

    let transactions =
        "transactions committed every 100 ms, 1 KB records, one request in \
                        flight: within about 5 % of acks=all (Confluent measured 3 %)";
    for (client, ratio) in [
        ("lab, librdkafka", in_order.and_then(|r| vs_all(r, tx(100)))),
        (
            "Java client",
            in_order.and_then(|r| java_vs_all(r, tx(100))),
        ),
    ] {
        claims.push(Claim {
            claim: format!("{transactions} ({client})"),
            source: "Confluent, \"Transactions in Apache Kafka\"".into(),
            measured: ratio.map_or_else(
                || "not measured".into(),
                |r| format!("{r:.2}× acks=all, one in flight"),
            ),
            reproduced: ratio.map(|r| r >= 0.95),
        });
    }

    let curve: Vec<(u64, f64)> = report
        .figures
        .iter()
        .filter_map(|f| match f.case {
            Case::Transactional { commit_interval_ms } => {
                Some((commit_interval_ms, f.throughput.records_per_sec))
            }
            _ => None,
        })
        .collect();
    let ends = (curve.len() >= 2).then(|| {
        let first = curve.iter().min_by_key(|c| c.0).expect("two or more");
        let last = curve.iter().max_by_key(|c| c.0).expect("two or more");
        (*first, *last)
    });
    claims.push(Claim {
        claim: "the longer the commit interval, the smaller the cost of transactions"
            .into(),
        source: "Confluent, \"Transactions in Apache Kafka\"".into(),
        measured: ends.map_or_else(
            || "not measured".into(),
            |((a, ra), (b, rb))| {
                format!(
                    "{b} ms commits: {:.2}× the throughput of {a} ms commits",
                    rb / ra
                )
            },
        ),
        reproduced: ends.map(|((_, ra), (_, rb))| rb > ra * (1.0 + TIE)),
    });

    let vs_pp: Vec<f64> = report
        .figures
        .iter()
        .filter_map(|f| f.vs_producer_performance)
        .collect();
    let lowest = vs_pp.iter().copied().reduce(f64::min);
    claims.push(Claim {
        claim: "the lab's harness is no slower than Kafka's own ProducerPerformance \
                (at least 0.9× on every case), so it measures Kafka, not itself"
            .into(),
        source: "the course's own goal".into(),
        measured: lowest.map_or_else(
            || "not measured".into(),
            |l| format!("lowest ratio {l:.2}× over {} cases", vs_pp.len()),
        ),
        reproduced: lowest.map(|l| l >= 0.9),
    });
    claims
}

/// The claims as a Markdown table.
pub fn claims_markdown(claims: &[Claim]) -> String {
    let mut out = String::from(
        "| claim | from | measured here | reproduced |\n|---|---|---|---|\n",
    );
    for c in claims {
        out += &format!(
            "| {} | {} | {} | {} |\n",
            c.claim,
            c.source,
            c.measured,
            match c.reproduced {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            }
        );
    }
    out
}

/// Runs every case of `options` on `cluster`.
pub fn bench(cluster: &Cluster, options: &BenchOptions) -> Result<BenchReport> {
    bench_with_progress(cluster, options, &mut |_| {})
}

/// As [`bench`], saying what it is doing through `progress`.
pub fn bench_with_progress(
    cluster: &Cluster,
    options: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    if options.records == 0 {
        return Err(Error::BadConfig(
            "a benchmark needs at least one record".into(),
        ));
    }
    let started = Instant::now();
    let load_before = load_average();
    let started_unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut notes = vec![client_defaults_note(options)];
    progress("measuring payload encoding");
    let payload_encoding = measure_encoding(options.record_bytes);
    let mut settle = Settle::new(options.settle_dirty_mb);

    let mut cases = Vec::new();
    for &case in &options.cases {
        if case.commit_interval().is_some() {
            if let Err(e) = cluster.require_faithful(Semantic::ExactlyOnce) {
                notes.push(format!("{} skipped: {e}", case.label()));
                continue;
            }
        }
        cases.push(case);
    }
    // The producer-alone runs, interleaved so that a change in the machine's
    // load spreads over every case instead of landing on one.
    let repetitions = options.repetitions.max(1);
    // A failed run (say, the broker stalled) is left out and noted; three
    // failures in a row end the benchmark.
    let mut runs: Vec<Vec<Option<Pass>>> = cases.iter().map(|_| Vec::new()).collect();
    let mut failures_in_a_row = 0;
    for r in 1..=repetitions {
        for (i, &case) in cases.iter().enumerate() {
            progress(&format!(
                "{}: producer alone, run {r} of {repetitions}",
                case.label()
            ));
            settle.wait(progress);
            match produce_pass(cluster, case, options, false) {
                Ok(pass) => {
                    failures_in_a_row = 0;
                    runs[i].push(Some(pass));
                }
                Err(e) => {
                    failures_in_a_row += 1;
                    if failures_in_a_row >= 3 {
                        return Err(e);
                    }
                    notes.push(format!(
                        "{}: run {r} failed, left out: {e}",
                        case.label()
                    ));
                    runs[i].push(None);
                }
            }
        }
    }
    let rates: Vec<Vec<Option<f64>>> = runs
        .iter()
        .map(|r| {
            r.iter()
                .map(|p| p.as_ref().map(|p| p.throughput.records_per_sec))
                .collect()
        })
        .collect();
    let acks_all = cases.iter().position(|&c| c == Case::AcksAll);

    let mut figures = Vec::new();
    for (i, (&case, runs)) in cases.iter().zip(runs).enumerate() {
        let label = case.label();
        let runs: Vec<Pass> = runs.into_iter().flatten().collect();
        if runs.is_empty() {
            notes.push(format!("{label}: every run failed, so it has no figure"));
            continue;
        }
        let vs_acks_all = acks_all.and_then(|a| paired_ratio(&rates[i], &rates[a]));
        let throughput_runs: Vec<f64> =
            runs.iter().map(|p| p.throughput.records_per_sec).collect();
        let failed = runs.iter().map(|p| p.failed).sum();
        let first_error = runs.iter().find_map(|p| p.first_error.clone());
        let alone = median_run(runs);
        let end_to_end = if options.end_to_end {
            progress(&format!("{label}: with a consumer reading along"));
            settle.wait(progress);
            match produce_pass(cluster, case, options, true) {
                Ok(pass) => {
                    if pass.received < options.records {
                        notes.push(format!(
                            "{label}: the end-to-end reader received {} of {} records",
                            pass.received, options.records
                        ));
                    }
                    Some(EndToEnd {
                        received: pass.received,
                        latency: pass.end_to_end.unwrap_or_default(),
                        throughput: pass.throughput,
                        ack_latency: pass.ack_latency,
                    })
                }
                Err(e) => {
                    notes.push(format!("{label}: the end-to-end pass failed: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let producer_performance = if options.producer_performance {
            // A JVM per run, no warm-up (Kafka 4.1's tool has none): several
            // runs, and the median, so one slow JIT does not make the figure.
            let mut runs = Vec::new();
            for r in 1..=options.producer_performance_runs.max(1) {
                progress(&format!("{label}: ProducerPerformance, run {r}"));
                settle.wait(progress);
                match producer_performance(
                    cluster,
                    case,
                    options,
                    alone.throughput.records,
                ) {
                    Ok(run) => runs.push(run),
                    Err(e) => notes.push(format!(
                        "{label}: ProducerPerformance run {r} did not run: {e}"
                    )),
                }
            }
            let rates: Vec<f64> =
                runs.iter().map(|p| p.result.records_per_sec).collect();
            runs.sort_by(|a, b| {
                a.result
                    .records_per_sec
                    .total_cmp(&b.result.records_per_sec)
            });
            let middle = runs.len().saturating_sub(1) / 2;
            (!runs.is_empty()).then(|| PerfRun {
                records_per_sec_runs: rates,
                ..runs.swap_remove(middle)
            })
        } else {
            None
        };
        let vs_producer_performance = producer_performance
            .as_ref()
            .map(|p| alone.throughput.records_per_sec / p.result.records_per_sec);
        figures.push(Figure {
            case,
            label,
            backend_description: cluster.describe(),
            kafka_version: cluster.kafka_version().to_string(),
            producer_settings: alone.settings,
            records: options.records,
            record_bytes: options.record_bytes,
            failed,
            first_error,
            throughput: alone.throughput,
            throughput_runs,
            ack_latency: alone.ack_latency,
            transactions: alone.transactions,
            end_to_end,
            producer_performance,
            vs_acks_all,
            vs_producer_performance,
        });
    }
    if options.producer_performance {
        notes.push(
            format!(
                "ProducerPerformance: the median of {} run{} per case, each in a fresh JVM \
                 without a warm-up (its time includes the JIT's; Kafka 4.1's tool has no \
                 warm-up option), sending a random payload without a key; the lab's figure is \
                 the median of its runs after a warm-up",
                options.producer_performance_runs.max(1),
                if options.producer_performance_runs > 1 { "s" } else { "" }
            ),
        );
    }
    if options.end_to_end {
        notes.push(
            "end-to-end latency: the consumer uses librdkafka's defaults (fetch.wait.max.ms=500) \
             and read_committed, so a transactional record waits for its commit"
                .into(),
        );
    }
    Ok(BenchReport {
        backend: cluster.backend(),
        backend_description: cluster.describe(),
        brokers: cluster.broker_count(),
        kafka_version: cluster.kafka_version().to_string(),
        librdkafka_version: librdkafka_version(),
        options: options.clone(),
        load_before,
        load_after: load_average(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        started_unix_secs,
        seconds: started.elapsed().as_secs_f64(),
        payload_encoding,
        settle_seconds: settle.waited.as_secs_f64(),
        max_dirty_mb_at_start: settle.max_dirty_mb,
        figures,
        notes,
    })
}

fn client_defaults_note(options: &BenchOptions) -> String {
    let mut note = String::from(
        "both clients batch up to 1,000,000 bytes per partition (librdkafka's default batch.size; \
         the Java client's default of 16384 is raised to match) and otherwise use their \
         defaults: linger.ms=5 in both, librdkafka also caps a batch at batch.num.messages=10000; \
         no compression",
    );
    if !options.producer_overrides.is_empty() {
        let extra: Vec<String> = options
            .producer_overrides
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        note += &format!("; overridden in both: {}", extra.join(" "));
    }
    note
}

// ---------------------------------------------------------------------------
// The producer passes
// ---------------------------------------------------------------------------

/// Files each delivery report's send-to-ack time in a histogram. The opaque
/// of each record is the microsecond (since `origin`) it was handed over.
struct BenchContext {
    origin: Instant,
    acks: Mutex<LatencyHistogram>,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl BenchContext {
    fn new() -> BenchContext {
        BenchContext {
            origin: Instant::now(),
            acks: Mutex::new(LatencyHistogram::new()),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    fn stamp(&self) -> usize {
        self.origin.elapsed().as_micros() as usize
    }

    fn reset(&self) {
        lock(&self.acks).reset();
        self.failed.store(0, Ordering::Relaxed);
        *lock(&self.first_error) = None;
    }
}

impl ClientContext for BenchContext {}

impl ProducerContext for BenchContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: usize) {
        match result {
            Ok(_) => {
                let now = self.origin.elapsed().as_micros() as u64;
                lock(&self.acks).record_us(now.saturating_sub(sent_at as u64));
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                lock(&self.first_error).get_or_insert_with(|| error.to_string());
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one pass measured.
struct Pass {
    settings: BTreeMap<String, String>,
    throughput: Throughput,
    ack_latency: LatencySummary,
    failed: u64,
    first_error: Option<String>,
    transactions: Option<TransactionStats>,
    /// With a reader: what it received, and its latency.
    received: u64,
    end_to_end: Option<LatencySummary>,
}

/// The median of `runs[i] / base[i]` over the rounds where both ran; for an
/// even count, the mean of the two middle ratios.
pub fn paired_ratio(runs: &[Option<f64>], base: &[Option<f64>]) -> Option<f64> {
    let mut ratios: Vec<f64> = runs
        .iter()
        .zip(base)
        .filter_map(|(r, b)| Some((*r)? / (*b)?))
        .filter(|r| r.is_finite())
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    Some(if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    })
}

/// The run of median throughput (the lower middle of an even number).
fn median_run(mut runs: Vec<Pass>) -> Pass {
    runs.sort_by(|a, b| {
        a.throughput
            .records_per_sec
            .total_cmp(&b.throughput.records_per_sec)
    });
    let middle = (runs.len() - 1) / 2;
    runs.swap_remove(middle)
}

/// Between the producer and the end-to-end reader of a pass.
#[derive(Default)]
struct ReaderShared {
    warmup_seen: AtomicU64,
    producer_done: AtomicBool,
    reader_gone: AtomicBool,
}

/// One pass of one case on a fresh topic, with or without a reader.
fn produce_pass(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    with_reader: bool,
) -> Result<Pass> {
    let topic = cluster.fresh_name(&format!("bench-{}", case.slug()));
    cluster.create_topic(&topic, options.partitions)?;
    let pass = produce_pass_on(cluster, case, options, with_reader, &topic);
    delete_topic(cluster, &topic);
    pass
}

/// Deletes a benchmark topic once measured: a run writes gigabytes, which
/// would otherwise stay on the broker's disk for the retention time (the
/// broker removes the files a minute later, `log.segment.delete.delay.ms`).
/// Best effort: a topic left behind is only disk space.
pub fn delete_topic(cluster: &Cluster, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    if cluster.backend() != Backend::Kafka {
        return; // the mock cluster keeps its topics in memory, and goes with them
    }
    let Ok(admin) = cluster
        .client_config()
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let _ = futures_executor::block_on(admin.delete_topics(&[topic], &options));
}

fn produce_pass_on(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    with_reader: bool,
    topic: &str,
) -> Result<Pass> {
    let shared = ReaderShared::default();
    let bootstrap = cluster.bootstrap().to_string();
    let group = cluster.fresh_name("bench-reader");
    std::thread::scope(|scope| {
        let reader = with_reader.then(|| {
            let (shared, group, bootstrap) = (&shared, &group, &bootstrap);
            scope.spawn(move || {
                let read = read_end_to_end(bootstrap, topic, group, options, shared);
                shared.reader_gone.store(true, Ordering::SeqCst);
                read
            })
        });
        let produced = produce_measured(
            cluster,
            case,
            options,
            topic,
            reader.as_ref().map(|_| &shared),
        );
        shared.producer_done.store(true, Ordering::SeqCst);
        let read = reader.map(|r| {
            r.join().unwrap_or_else(|_| {
                Err(Error::BadConfig("the end-to-end reader panicked".into()))
            })
        });
        let mut pass = produced?;
        if let Some(read) = read {
            let (histogram, received) = read?;
            pass.received = received;
            pass.end_to_end = Some(histogram.summary());
        }
        Ok(pass)
    })
}

fn produce_measured(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    topic: &str,
    reader: Option<&ReaderShared>,
) -> Result<Pass> {
    let transactional_id = cluster.fresh_name("bench-tx");
    let mut overrides = case.lab_overrides(options.one_in_flight);
    overrides.extend(options.producer_overrides.iter().cloned());
    let config = case.semantic().producer_config(
        cluster.bootstrap(),
        Some(&transactional_id),
        &overrides,
    )?;
    let settings: BTreeMap<String, String> = config
        .config_map()
        .iter()
        .filter(|(k, _)| !["transactional.id", "bootstrap.servers"].contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let producer: BaseProducer<BenchContext> = config
        .create_with_context(BenchContext::new())
        .doing("creating the benchmark producer")?;
    let interval = case.commit_interval();
    if interval.is_some() {
        producer
            .init_transactions(Duration::from_secs(30))
            .doing("initialising transactions")?;
    }
    let mut template = PayloadTemplate::new(options.record_bytes);

    // Warm-up: connections, metadata, the transaction coordinator, the JIT of
    // the broker. Acknowledged (and committed) before the clock starts.
    if interval.is_some() {
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
    }
    for i in 0..options.warmup_records {
        send(
            &producer,
            topic,
            template.fill(WARMUP_ID_BASE + i, now_us()),
        )?;
    }
    if interval.is_some() {
        produce::commit(&producer)?;
    } else {
        produce::drain(&producer, Duration::from_secs(120))?;
    }
    if let Some(shared) = reader {
        // The reader is caught up (and so fetching) once it has the warm-up.
        let deadline = Instant::now() + Duration::from_secs(30);
        while shared.warmup_seen.load(Ordering::SeqCst) < options.warmup_records
            && !shared.reader_gone.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    producer.context().reset();

    let started = Instant::now();
    let mut commits = 0u64;
    let mut commit_time = Duration::ZERO;
    let mut transaction_started = started;
    if interval.is_some() {
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
    }
    // ANCHOR: measured_loop
    let mut id = 0;
    // The last commit, after the loop, is one more.
    while id < options.records
        || (interval.is_some() && commits + 1 < options.min_commits)
    {
        send(&producer, topic, template.fill(id, now_us()))?;
        id += 1;
        if let Some(interval) = interval {
            if transaction_started.elapsed() >= interval {
                let t = Instant::now();
                produce::commit(&producer)?;
                commit_time += t.elapsed();
                commits += 1;
                producer
                    .begin_transaction()
                    .doing("beginning a transaction")?;
                transaction_started = Instant::now();
            }
        }
    }
    if interval.is_some() {
        let t = Instant::now();
        produce::commit(&producer)?;
        commit_time += t.elapsed();
        commits += 1;
    } else {
        produce::drain(&producer, Duration::from_secs(330))?;
    }
    let elapsed = started.elapsed();
    // ANCHOR_END: measured_loop

    let context = producer.context();
    let ack_latency = lock(&context.acks).summary();
    let failed = context.failed.load(Ordering::Relaxed);
    let first_error = lock(&context.first_error).clone();
    Ok(Pass {
        settings,
        throughput: Throughput::new(id, id * options.record_bytes as u64, elapsed),
        ack_latency,
        failed,
        first_error,
        transactions: interval.map(|i| TransactionStats {
            commit_interval_ms: i.as_millis() as u64,
            commits,
            commit_seconds: commit_time.as_secs_f64(),
            mean_commit_ms: commit_time.as_secs_f64() * 1000.0 / commits.max(1) as f64,
        }),
        received: 0,
        end_to_end: None,
    })
}

/// Hands one value (no key) to the client, waiting for room if its queue is full.
fn send(
    producer: &BaseProducer<BenchContext>,
    topic: &str,
    payload: &[u8],
) -> Result<()> {
    let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(
        topic,
        producer.context().stamp(),
    )
    .payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e).doing("sending a benchmark record"),
        }
    }
    producer.poll(Duration::ZERO);
    Ok(())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The end-to-end reader: a consumer assigned every partition of `topic` from
/// the beginning, timing each measured record from its `sent_at_us` stamp.
fn read_end_to_end(
    bootstrap: &str,
    topic: &str,
    group: &str,
    options: &BenchOptions,
    shared: &ReaderShared,
) -> Result<(LatencyHistogram, u64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .doing("creating the end-to-end reader")?;
    let mut list = TopicPartitionList::new();
    for p in 0..options.partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .doing("assigning the end-to-end reader")?;
    }
    consumer
        .assign(&list)
        .doing("assigning the end-to-end reader")?;
    // A partition list that outlives its consumer makes dropping the consumer hang.
    drop(list);
    let mut histogram = LatencyHistogram::new();
    let mut received = 0u64;
    let mut last_message = Instant::now();
    while received < options.records {
        if shared.producer_done.load(Ordering::SeqCst)
            && last_message.elapsed() > READER_IDLE
        {
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(message) = message else {
            continue; // transient fetch errors; a lasting one ends by idleness
        };
        last_message = Instant::now();
        let Some((id, sent_at_us)) = message.payload().and_then(parse_stamp) else {
            continue;
        };
        if id >= WARMUP_ID_BASE {
            shared.warmup_seen.fetch_add(1, Ordering::SeqCst);
        } else {
            histogram.record_us(now_us().saturating_sub(sent_at_us));
            received += 1;
        }
    }
    Ok((histogram, received))
}

/// The id and send time in a record value.
fn parse_stamp(value: &[u8]) -> Option<(u64, u64)> {
    #[derive(Deserialize)]
    struct Stamp {
        id: u64,
        sent_at_us: u64,
    }
    let stamp: Stamp = serde_json::from_slice(value).ok()?;
    Some((stamp.id, stamp.sent_at_us))
}

// ---------------------------------------------------------------------------
// The payload
// ---------------------------------------------------------------------------

/// A record value in the lab's [`Payload`](crate::record::Payload) JSON format,
/// built once: `fill` writes the id and time stamp into fixed-width fields
/// (right-aligned, padded with spaces, which JSON allows before a number), so
/// a record costs two small integer formats and no allocation.
pub struct PayloadTemplate {
    bytes: Vec<u8>,
    id_at: usize,
    sent_at: usize,
}

const FIELD: usize = 20; // digits of u64::MAX

impl PayloadTemplate {
    /// A value of `size` bytes, or of the bare document (70 bytes) if larger.
    pub fn new(size: usize) -> PayloadTemplate {
        let head = format!(
            "{{\"id\":{:>FIELD$},\"sent_at_us\":{:>FIELD$},\"pad\":\"",
            0, 0
        );
        let tail = "\"}";
        let pad = size.saturating_sub(head.len() + tail.len());
        let mut bytes = head.into_bytes();
        bytes.resize(bytes.len() + pad, b'x');
        bytes.extend_from_slice(tail.as_bytes());
        let id_at = "{\"id\":".len();
        let sent_at = id_at + FIELD + ",\"sent_at_us\":".len();
        PayloadTemplate {
            bytes,
            id_at,
            sent_at,
        }
    }

    /// The value for record `id`, sent at `sent_at_us`.
    pub fn fill(&mut self, id: u64, sent_at_us: u64) -> &[u8] {
        put_number(&mut self.bytes[self.id_at..self.id_at + FIELD], id);
        put_number(
            &mut self.bytes[self.sent_at..self.sent_at + FIELD],
            sent_at_us,
        );
        &self.bytes
    }
}

/// Writes `value` right-aligned into `field`, spaces before it.
fn put_number(field: &mut [u8], mut value: u64) {
    let mut i = field.len();
    loop {
        i -= 1;
        field[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    field[..i].fill(b' ');
}

/// Times `record::value` and the template on this machine.
fn measure_encoding(record_bytes: usize) -> EncodingCost {
    const N: u64 = 20_000;
    let started = Instant::now();
    for id in 0..N {
        std::hint::black_box(crate::record::value(
            std::hint::black_box(id),
            record_bytes,
        ));
    }
    let json = started.elapsed();
    let mut template = PayloadTemplate::new(record_bytes);
    let started = Instant::now();
    for id in 0..N {
        std::hint::black_box(template.fill(std::hint::black_box(id), now_us()));
    }
    let filled = started.elapsed();
    EncodingCost {
        record_bytes,
        json_ns_per_record: json.as_nanos() as f64 / N as f64,
        template_ns_per_record: filled.as_nanos() as f64 / N as f64,
    }
}

// ---------------------------------------------------------------------------
// Kafka's ProducerPerformance
// ---------------------------------------------------------------------------

/// The Java to run Kafka's tools with: `$JAVA_HOME/bin/java`, else `java` on the PATH.
pub fn java() -> Option<PathBuf> {
    std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin/java"))
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("java"))
                .find(|p| p.is_file())
        })
}

/// The kafka-tools jar in the course's cache: of `version` if cached, else
/// of any cached version. Returns (the libs folder, the jar's file name).
pub fn kafka_tools(version: &str) -> Option<(PathBuf, String)> {
    let kafka = crate::local::cache_dir().join("kafka");
    let tools_in = |libs: &PathBuf| -> Option<String> {
        std::fs::read_dir(libs)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|name| {
                name.starts_with("kafka-tools-")
                    && !name.starts_with("kafka-tools-api")
                    && name.ends_with(".jar")
            })
    };
    let exact = kafka.join(version).join("libs");
    if let Some(jar) = tools_in(&exact) {
        return Some((exact, jar));
    }
    let mut others: Vec<PathBuf> = std::fs::read_dir(&kafka)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("libs")))
        .collect();
    others.sort();
    others.into_iter().rev().find_map(|libs| {
        let jar = tools_in(&libs)?;
        Some((libs, jar))
    })
}

/// Runs ProducerPerformance for `case` on a fresh topic and parses its
/// result. `records`: as many as the lab's run sent (a transactional case may
/// send more than `options.records`, see `BenchOptions::min_commits`).
fn producer_performance(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    records: u64,
) -> std::result::Result<PerfRun, String> {
    if cluster.backend() != Backend::Kafka {
        return Err("it needs Apache Kafka, not the mock cluster".into());
    }
    let java = java().ok_or("no Java: set JAVA_HOME or put java on the PATH")?;
    let (libs, tools_jar) = kafka_tools(cluster.kafka_version()).ok_or(
        "Kafka's jars are not in the course's cache (`cargo xtask kafka up` fetches them)",
    )?;
    let topic = cluster.fresh_name(&format!("bench-pp-{}", case.slug()));
    cluster
        .create_topic(&topic, options.partitions)
        .map_err(|e| e.to_string())?;
    let mut command: Vec<String> = vec![
        java.display().to_string(),
        // Numbers with a decimal point whatever the machine's locale.
        "-Duser.language=en".into(),
        "-Duser.country=US".into(),
        "-cp".into(),
        format!("{}/*", libs.display()),
        "org.apache.kafka.tools.ProducerPerformance".into(),
        "--topic".into(),
        topic.clone(),
        "--num-records".into(),
        records.to_string(),
        "--record-size".into(),
        options.record_bytes.to_string(),
        "--throughput".into(),
        "-1".into(),
    ];
    if let Some(interval) = case.commit_interval() {
        command.push("--transactional-id".into());
        command.push(cluster.fresh_name("bench-pp-tx"));
        command.push("--transaction-duration-ms".into());
        command.push(interval.as_millis().to_string());
    }
    command.push("--producer-props".into());
    command.push(format!("bootstrap.servers={}", cluster.bootstrap()));
    for (k, v) in case
        .java_props(options.one_in_flight)
        .into_iter()
        .chain(options.producer_overrides.iter().cloned())
    {
        command.push(format!("{k}={v}"));
    }
    let started = Instant::now();
    let output = Command::new(&command[0]).args(&command[1..]).output();
    let wall_seconds = started.elapsed().as_secs_f64();
    delete_topic(cluster, &topic);
    let output = output.map_err(|e| format!("cannot start {}: {e}", command[0]))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = parse_producer_performance(&stdout).ok_or_else(|| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        format!(
            "{}; no result line in its output. stdout ends: {:?}; stderr ends: {:?}",
            output.status,
            stdout.lines().last().unwrap_or(""),
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )
    })?;
    Ok(PerfRun {
        command,
        tools_jar,
        wall_seconds,
        result,
        records_per_sec_runs: vec![result.records_per_sec],
    })
}

/// Parses ProducerPerformance's final line, e.g.
///
/// ```text
/// 100000 records sent, 22634.7 records/sec (22.10 MB/sec), 1018.50 ms avg latency,
/// 1598.00 ms max latency, 1005 ms 50th, 1523 ms 95th, 1591 ms 99th, 1596 ms 99.9th.
/// ```
///
/// (one line). The periodic lines before it have no percentiles and are skipped.
pub fn parse_producer_performance(output: &str) -> Option<PerfResult> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains("50th"))?;
    let number = |text: &str| -> Option<f64> {
        text.split_whitespace()
            .next()?
            .trim_start_matches('(')
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
    };
    let (mut records, mut rate, mut mb, mut avg, mut max) =
        (None, None, None, None, None);
    let (mut p50, mut p95, mut p99, mut p999) = (None, None, None, None);
    for part in line.trim().trim_end_matches('.').split(", ") {
        let part = part.trim();
        if part.ends_with("records sent") {
            records = number(part).map(|n| n as u64);
        } else if part.contains("records/sec") {
            rate = number(part);
            mb = part
                .split_once('(')
                .and_then(|(_, rest)| rest.strip_suffix("MB/sec)"))
                .and_then(number);
        } else if part.ends_with("ms avg latency") {
            avg = number(part);
        } else if part.ends_with("ms max latency") {
            max = number(part);
        } else if part.ends_with("ms 50th") {
            p50 = number(part);
        } else if part.ends_with("ms 95th") {
            p95 = number(part);
        } else if part.ends_with("ms 99th") {
            p99 = number(part);
        } else if part.ends_with("ms 99.9th") {
            p999 = number(part);
        }
    }
    Some(PerfResult {
        records: records?,
        records_per_sec: rate?,
        mb_per_sec: mb?,
        avg_latency_ms: avg?,
        max_latency_ms: max?,
        p50_ms: p50?,
        p95_ms: p95?,
        p99_ms: p99?,
        p999_ms: p999?,
    })
}

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
struct Settle {
    limit_mb: u64,
    waited: Duration,
    max_dirty_mb: Option<u64>,
}

impl Settle {
    fn new(limit_mb: u64) -> Settle {
        Settle {
            limit_mb,
            waited: Duration::ZERO,
            max_dirty_mb: None,
        }
    }

    fn wait(&mut self, progress: &mut dyn FnMut(&str)) {
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

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// The lowest and highest of some records/s, in thousands: `301-320`.
fn spread(runs: &[f64]) -> String {
    let lo = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = runs.iter().copied().fold(0.0, f64::max);
    match runs.len() {
        0 => "-".into(),
        1 => format!("{:.0}", lo / 1000.0),
        _ => format!("{:.0}-{:.0}", lo / 1000.0, hi / 1000.0),
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}"))
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "{} records of {} B per case ({} warm-up, median of {} run{}), {} partition{}, \
             max.in.flight={}; {}; librdkafka {}",
            o.records,
            o.record_bytes,
            o.warmup_records,
            o.repetitions.max(1),
            if o.repetitions > 1 { "s" } else { "" },
            o.partitions,
            if o.partitions == 1 { "" } else { "s" },
            in_flight(o.one_in_flight),
            self.backend_description,
            self.librdkafka_version
        )?;
        let load = |l: Option<[f64; 3]>| {
            l.map_or_else(
                || "?".into(),
                |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]),
            )
        };
        writeln!(
            f,
            "{} CPUs; load average before {}, after {}; {:.0} s in all, {:.0} s of it \
             waiting for dirty pages (at most {} MB dirty at a run's start)",
            self.cpus,
            load(self.load_before),
            load(self.load_after),
            self.seconds,
            self.settle_seconds,
            self.max_dirty_mb_at_start
                .map_or_else(|| "?".into(), |d| d.to_string()),
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<22} {:>9} {:>7} {:>6} {:>9} {:>7} {:>6} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
            "case",
            "rec/s",
            "MB/s",
            "x all",
            "PP rec/s",
            "PP MB/s",
            "x PP",
            "ack p50",
            "ack p99",
            "ack p99.9",
            "e2e p50",
            "e2e p99",
            "e2e p99.9"
        )?;
        for fig in &self.figures {
            let pp = fig.producer_performance.as_ref().map(|p| p.result);
            let e2e = fig.end_to_end.as_ref().map(|e| &e.latency);
            let us =
                |v: Option<u64>| v.map_or_else(|| "-".into(), |v| format_us(v as f64));
            writeln!(
                f,
                "{:<22} {:>9.0} {:>7.1} {:>6} {:>9} {:>7} {:>6} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
                fig.label,
                fig.throughput.records_per_sec,
                fig.throughput.mb_per_sec,
                ratio(fig.vs_acks_all),
                pp.map_or_else(|| "-".into(), |p| format!("{:.0}", p.records_per_sec)),
                pp.map_or_else(|| "-".into(), |p| format!("{:.1}", p.mb_per_sec)),
                ratio(fig.vs_producer_performance),
                format_us(fig.ack_latency.p50_us as f64),
                format_us(fig.ack_latency.p99_us as f64),
                format_us(fig.ack_latency.p999_us as f64),
                us(e2e.map(|l| l.p50_us)),
                us(e2e.map(|l| l.p99_us)),
                us(e2e.map(|l| l.p999_us)),
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<22} {:>12} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>8} {:>10}",
            "case",
            "runs k rec/s",
            "PP p50",
            "PP p99",
            "PP p99.9",
            "e2e rec/s",
            "received",
            "failed",
            "commits",
            "commit ms"
        )?;
        for fig in &self.figures {
            let pp = fig.producer_performance.as_ref().map(|p| p.result);
            let ms =
                |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0} ms"));
            writeln!(
                f,
                "{:<22} {:>12} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>8} {:>10}",
                fig.label,
                spread(&fig.throughput_runs),
                ms(pp.map(|p| p.p50_ms)),
                ms(pp.map(|p| p.p99_ms)),
                ms(pp.map(|p| p.p999_ms)),
                fig.end_to_end.as_ref().map_or_else(
                    || "-".into(),
                    |e| format!("{:.0}", e.throughput.records_per_sec)
                ),
                fig.end_to_end
                    .as_ref()
                    .map_or_else(|| "-".into(), |e| e.received.to_string()),
                fig.failed,
                fig.transactions
                    .map_or_else(|| "-".into(), |t| t.commits.to_string()),
                fig.transactions
                    .map_or_else(|| "-".into(), |t| format!("{:.1}", t.mean_commit_ms)),
            )?;
        }
        writeln!(f)?;
        let e = &self.payload_encoding;
        writeln!(
            f,
            "payload encoding per {} B record: JSON (record::value) {:.0} ns, template {:.0} ns",
            e.record_bytes, e.json_ns_per_record, e.template_ns_per_record
        )?;
        writeln!(
            f,
            "x all: records/s as a fraction of acks=all; x PP: of Kafka's ProducerPerformance \
             (Java client) on the same case; MB = 2^20 bytes"
        )?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// `lab bench`
// ---------------------------------------------------------------------------

/// `lab bench`: throughput and latency per delivery guarantee, side by side,
/// and against Kafka's ProducerPerformance.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Measured records per case
    #[arg(long, short = 'n', default_value_t = 100_000)]
    pub records: u64,
    /// Size of each record's value in bytes
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Records sent before each measurement [default: a tenth of --records, 1000 to 20000]
    #[arg(long)]
    pub warmup_records: Option<u64>,
    /// Partitions of each fresh topic
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Commit intervals of the transactional cases, in ms (comma-separated)
    #[arg(long, value_delimiter = ',', default_values_t = COMMIT_INTERVALS_MS)]
    pub commit_interval_ms: Vec<u64>,
    /// A transactional case sends past --records until it has committed this many transactions
    #[arg(long, default_value_t = 3)]
    pub min_commits: u64,
    /// One request in flight in every case (both clients), as in Confluent's comparison
    #[arg(long)]
    pub one_in_flight: bool,
    /// Producer-alone runs per case (interleaved); the median is reported
    #[arg(long, default_value_t = 3)]
    pub repetitions: u32,
    /// Before each run, wait (up to 60 s) until under this many MB of page cache are dirty (0: never)
    #[arg(long, default_value_t = 2560)]
    pub settle_dirty_mb: u64,
    /// Skip the second pass that measures end-to-end latency with a consumer
    #[arg(long)]
    pub no_end_to_end: bool,
    /// Skip Kafka's ProducerPerformance
    #[arg(long)]
    pub no_producer_performance: bool,
    /// ProducerPerformance runs per case (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub producer_performance_runs: u32,
    /// Extra producer setting KEY=VALUE for both clients (repeatable), e.g. linger.ms=0
    #[arg(long = "producer-set", value_parser = crate::faults::crash::worker::parse_key_value)]
    pub producer_set: Vec<(String, String)>,
    /// Also write the report as JSON to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw the report's charts (SVG and PNG) into this directory
    #[arg(long)]
    pub charts: Option<PathBuf>,
    /// Kafka bootstrap servers [default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092]
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Use librdkafka's mock cluster (not Kafka: no transactions, no ProducerPerformance)
    #[arg(long, conflicts_with = "bootstrap")]
    pub mock: bool,
}

impl BenchArgs {
    pub fn options(&self) -> BenchOptions {
        let mut options = BenchOptions::new(self.records, self.record_bytes);
        if let Some(w) = self.warmup_records {
            options.warmup_records = w;
        }
        options.partitions = self.partitions.max(1);
        options.cases = Case::defaults(&self.commit_interval_ms);
        options.one_in_flight = self.one_in_flight;
        options.repetitions = self.repetitions.max(1);
        options.settle_dirty_mb = self.settle_dirty_mb;
        options.end_to_end = !self.no_end_to_end;
        options.producer_performance = !self.no_producer_performance;
        options.producer_performance_runs = self.producer_performance_runs.max(1);
        options.producer_overrides = self.producer_set.clone();
        options.min_commits = self.min_commits.max(1);
        options
    }
}

/// Runs `lab bench`: prints the table, and writes the JSON report if asked.
pub fn cli(args: &BenchArgs) -> Result<()> {
    let cluster = match (&args.bootstrap, args.mock) {
        (_, true) => Cluster::mock()?,
        (Some(b), false) => Cluster::connect(b)?,
        (None, false) => Cluster::from_env()?,
    };
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(200));
    let report = bench_with_progress(&cluster, &args.options(), &mut |what| {
        spinner.set_message(what.to_string())
    });
    spinner.finish_and_clear();
    let report = report?;
    print!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()).map_err(|e| {
            Error::BadConfig(format!("cannot write {}: {e}", path.display()))
        })?;
        println!("JSON report written to {}", path.display());
    }
    if let Some(dir) = &args.charts {
        for file in crate::charts::save_all(&crate::charts::bench_charts(&report), dir)?
        {
            println!("chart written to {}", file.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Payload;

    const FINAL_LINE: &str =
        "100000 records sent, 22634.7 records/sec (22.10 MB/sec), \
        1018.50 ms avg latency, 1598.00 ms max latency, 1005 ms 50th, 1523 ms 95th, \
        1591 ms 99th, 1596 ms 99.9th.";

    #[test]
    fn parses_producer_performance_output() {
        let output = format!(
            "61234 records sent, 12246.8 records/sec (11.96 MB/sec), 900.1 ms avg latency, 1400.0 ms max latency.\n\
             {FINAL_LINE}\n"
        );
        let r = parse_producer_performance(&output).unwrap();
        assert_eq!(r.records, 100_000);
        assert_eq!(r.records_per_sec, 22634.7);
        assert_eq!(r.mb_per_sec, 22.10);
        assert_eq!(r.avg_latency_ms, 1018.5);
        assert_eq!(r.max_latency_ms, 1598.0);
        assert_eq!(
            (r.p50_ms, r.p95_ms, r.p99_ms, r.p999_ms),
            (1005.0, 1523.0, 1591.0, 1596.0)
        );
    }

    #[test]
    fn parses_older_formats_and_refuses_incomplete_ones() {
        // Kafka 3.x printed the rate with six decimals.
        let old = "50000 records sent, 49950.049950 records/sec (48.78 MB/sec), 3.21 ms avg latency, \
                   210.00 ms max latency, 2 ms 50th, 5 ms 95th, 20 ms 99th, 200 ms 99.9th.";
        let r = parse_producer_performance(old).unwrap();
        assert_eq!(r.records_per_sec, 49950.04995);
        assert_eq!(r.p999_ms, 200.0);
        // Only periodic lines, an error, a cut-off line: no result.
        assert!(parse_producer_performance(
            "5000 records sent, 999.8 records/sec (0.98 MB/sec), 1.0 ms avg latency, 2.0 ms max latency."
        )
        .is_none());
        assert!(
            parse_producer_performance("Exception in thread \"main\" ...").is_none()
        );
        assert!(
            parse_producer_performance(&FINAL_LINE[..FINAL_LINE.len() - 20]).is_none()
        );
        assert!(
            parse_producer_performance(&FINAL_LINE.replace("22634.7", "NaN")).is_none()
        );
    }

    #[test]
    fn the_template_is_a_lab_payload_of_the_requested_size() {
        let mut t = PayloadTemplate::new(1024);
        for (id, at) in [
            (0, 0),
            (7, 1_790_000_000_123_456),
            (u64::MAX, u64::MAX),
            (42, 5),
        ] {
            let value = t.fill(id, at).to_vec();
            assert_eq!(value.len(), 1024);
            let p: Payload = serde_json::from_slice(&value).unwrap();
            assert_eq!((p.id, p.sent_at_us), (id, at));
            assert_eq!(parse_stamp(&value), Some((id, at)));
        }
        // The same size as the lab's own encoder gives.
        assert_eq!(crate::record::value(3, 1024).len(), 1024);
        // Smaller than the bare document: the bare document.
        let mut small = PayloadTemplate::new(10);
        let value = small.fill(1, 2).to_vec();
        assert_eq!(value.len(), 70);
        assert!(serde_json::from_slice::<Payload>(&value).is_ok());
    }

    #[test]
    fn the_reader_reads_the_lab_encoder_too() {
        let value = crate::record::value(99, 300);
        let (id, at) = parse_stamp(&value).unwrap();
        assert_eq!(id, 99);
        assert!(at > 0);
        assert_eq!(parse_stamp(b"not json"), None);
    }

    #[test]
    fn cases_configure_both_clients_alike() {
        for one in [false, true] {
            for case in Case::defaults(&[100]) {
                let lab: BTreeMap<_, _> = case.lab_overrides(one).into_iter().collect();
                let java: BTreeMap<_, _> = case.java_props(one).into_iter().collect();
                let key = "max.in.flight.requests.per.connection";
                assert_eq!(lab[key], java[key]);
                assert_eq!(lab[key], if one { "1" } else { "5" });
                // The semantic's own settings plus the case's give the same acks
                // and idempotence as the Java properties.
                let config = case
                    .semantic()
                    .producer_config("x:1", Some("t"), &case.lab_overrides(one))
                    .unwrap();
                let acks = config.get("acks").unwrap();
                assert_eq!(acks, java["acks"], "{case:?}");
                let idem = config.get("enable.idempotence").unwrap();
                assert_eq!(idem, java["enable.idempotence"], "{case:?}");
                // Java batches as much as librdkafka does by default.
                assert_eq!(java["batch.size"], "1000000");
            }
        }
    }

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

    #[test]
    fn ratios_are_paired_by_round() {
        // Each round's ratio, then their median: a round in which the machine
        // was busy for one of the two cases only is outvoted.
        let case = [Some(200.0), Some(100.0), Some(210.0)];
        let base = [Some(400.0), Some(400.0), Some(420.0)];
        assert_eq!(paired_ratio(&case, &base), Some(0.5));
        assert_eq!(
            paired_ratio(&[Some(3.0), Some(1.0)], &[Some(4.0), Some(4.0)]),
            Some(0.5)
        );
        // A round where either failed is left out.
        let gaps = [Some(1.0), None, Some(2.0), Some(9.0)];
        let base = [Some(2.0), Some(1.0), None, Some(18.0)];
        assert_eq!(paired_ratio(&gaps, &base), Some(0.5));
        assert_eq!(paired_ratio(&[], &[]), None);
        assert_eq!(paired_ratio(&[Some(1.0)], &[Some(0.0)]), None);
    }

    /// A figure of `case` at `rate` records/s (the lab) and `java` (ProducerPerformance).
    fn figure(case: Case, rate: f64, all: f64, java: f64) -> Figure {
        let result = parse_producer_performance(&format!(
            "1000 records sent, {java} records/sec (1.0 MB/sec), 1.0 ms avg latency, \
             2.0 ms max latency, 1 ms 50th, 2 ms 95th, 2 ms 99th, 2 ms 99.9th."
        ))
        .unwrap();
        Figure {
            case,
            label: case.label(),
            backend_description: "Apache Kafka 4.1.1, 1 broker".into(),
            kafka_version: "4.1.1".into(),
            producer_settings: BTreeMap::new(),
            records: 1000,
            record_bytes: 1024,
            failed: 0,
            first_error: None,
            throughput: Throughput::from_seconds(1000, 1024 * 1000, 1000.0 / rate),
            throughput_runs: vec![rate],
            ack_latency: LatencySummary::default(),
            transactions: None,
            end_to_end: None,
            producer_performance: Some(PerfRun {
                command: Vec::new(),
                tools_jar: String::new(),
                wall_seconds: 1.0,
                result,
                records_per_sec_runs: vec![java],
            }),
            vs_acks_all: Some(rate / all),
            vs_producer_performance: Some(rate / java),
        }
    }

    fn report(figures: Vec<Figure>) -> BenchReport {
        BenchReport {
            backend: Backend::Kafka,
            backend_description: "Apache Kafka 4.1.1, 1 broker".into(),
            brokers: 1,
            kafka_version: "4.1.1".into(),
            librdkafka_version: "2.12.1".into(),
            options: BenchOptions::default(),
            load_before: None,
            load_after: None,
            cpus: 2,
            started_unix_secs: 0,
            seconds: 1.0,
            payload_encoding: measure_encoding(100),
            settle_seconds: 0.0,
            max_dirty_mb_at_start: None,
            figures,
            notes: Vec::new(),
        }
    }

    #[test]
    fn published_claims_follow_the_figures() {
        let tx = |ms| Case::Transactional {
            commit_interval_ms: ms,
        };
        // The lab: acks=0 clearly first, idempotence at 0.70, a rising curve.
        // Java: idempotence at 0.97.
        let all = 100_000.0;
        let five = report(vec![
            figure(Case::Acks0, 130_000.0, all, 40_000.0),
            figure(Case::Acks1, 101_000.0, all, 40_000.0),
            figure(Case::AcksAll, all, all, 40_000.0),
            figure(Case::Idempotent, 70_000.0, all, 38_800.0),
            figure(tx(10), 40_000.0, all, 20_000.0),
            figure(tx(3000), 69_000.0, all, 38_000.0),
        ]);
        // One in flight: transactions at 100 ms at 0.96 (lab), 0.90 (Java).
        let one = report(vec![
            figure(Case::AcksAll, all, all, 40_000.0),
            figure(tx(100), 96_000.0, all, 36_000.0),
        ]);
        // Three brokers: acks=all waits for followers, the order shows.
        let mut three = report(vec![
            figure(Case::Acks0, 110_000.0, 70_000.0, 1.0),
            figure(Case::Acks1, 95_000.0, 70_000.0, 1.0),
            figure(Case::AcksAll, 70_000.0, 70_000.0, 1.0),
        ]);
        three.brokers = 3;
        let claims = published_claims(&five, Some(&one), Some(&three));
        assert!(
            claims[0].claim.ends_with("(1 broker)"),
            "{}",
            claims[0].claim
        );
        assert!(
            claims[1]
                .claim
                .ends_with("(3 brokers, replication factor 3)"),
            "{}",
            claims[1].claim
        );
        let verdicts: Vec<Option<bool>> = claims.iter().map(|c| c.reproduced).collect();
        assert_eq!(
            verdicts,
            [
                Some(true),  // acks order, one broker
                Some(true),  // acks order, three brokers
                Some(false), // idempotence, lab: 0.70
                Some(true),  // idempotence, Java: 0.97
                Some(true),  // transactions, lab: 0.96
                Some(false), // transactions, Java: 0.90
                Some(true),  // the curve rises
                Some(true),  // lab >= 0.9x ProducerPerformance everywhere
            ],
            "{claims:#?}"
        );
        assert_eq!(claims[2].measured, "0.70× acks=all");
        assert!(
            claims[6].measured.starts_with("3000 ms commits: 1.73×"),
            "{}",
            claims[6].measured
        );
        // A tie between acks=1 and acks=0 is no order; a missing report is no verdict.
        let tie = report(vec![
            figure(Case::Acks0, 102_000.0, all, 1.0),
            figure(Case::Acks1, 100_000.0, all, 1.0),
            figure(Case::AcksAll, all, all, 1.0),
        ]);
        let claims = published_claims(&tie, None, None);
        assert_eq!(claims[0].reproduced, Some(false));
        assert_eq!(claims[1].reproduced, None);
        assert_eq!(claims[4].reproduced, None);
        assert_eq!(claims[4].measured, "not measured");
        let table = claims_markdown(&claims);
        assert!(
            table.contains("| **no** |") && table.contains("| – |"),
            "{table}"
        );
    }

    #[test]
    fn numbers_are_written_right_aligned() {
        let mut field = [b'?'; 5];
        put_number(&mut field, 42);
        assert_eq!(&field, b"   42");
        put_number(&mut field, 0);
        assert_eq!(&field, b"    0");
        put_number(&mut field, 99999);
        assert_eq!(&field, b"99999");
    }
}
