//! `lab pipeline-bench`: what exactly-once costs where it is paid, in the
//! consume-transform-produce pipeline, beside at-least-once's pipeline.
//!
//! One *cell* is one pipeline at one commit interval, on fresh topics:
//!
//! 1. **Backlog, for throughput.** An upstream producer (at-least-once's
//!    settings) writes `records` records of the lab ([`crate::record`]: the
//!    key is the id, the value carries the send time) to the input topic as
//!    fast as it can, and waits for every acknowledgement. Then the processor
//!    starts on that backlog; a downstream reader (`read_committed`, no
//!    group) reads the output topic. Throughput: the backlog's records over
//!    the time from the processor's first record to the reader's having all
//!    of them. The processor commits every interval, and once more after the
//!    backlog's last record, so that the finite backlog does not end by
//!    waiting out an interval.
//! 2. **Steady stream, for latency.** Then the upstream producer sends at a
//!    steady `rate` for at least `latency_seconds` (and at least
//!    `min_commits` intervals). For each record the reader takes the time from
//!    the upstream send (the `sent_at_us` stamp the processor copies with the
//!    value) to its read: the end-to-end latency.
//!
//! The processors are the lab's read-process-write loop with each semantic's
//! own client settings ([`Semantic::producer_config`],
//! [`Semantic::consumer_config`]), committing by time instead of by batch:
//!
//! - at-least-once: acks=all producer; every interval it waits until the
//!   outputs are acknowledged, then commits the consumed offsets;
//! - exactly-once: transactional producer, `read_committed` input; every
//!   interval the consumed offsets go into the transaction, which commits.
//!
//! Beside the cells: what the broker pays (commit markers, counted as the
//! output log's offsets that hold no record, and the coordinator requests
//! per commit from librdkafka's statistics) and what the consumer pays
//! (`read_committed` against `read_uncommitted` on a log of transactions,
//! some aborted: [`consumer_cost`]).

mod cell;
mod consumer_cost;
mod report;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::metrics::{LatencySummary, Throughput};
use crate::semantics::Semantic;

pub use consumer_cost::{
    consumer_cost, ConsumerCost, ConsumerCostOptions, IsolationRead,
};
pub use report::{claims_markdown, consumer_cost_markdown, pipeline_markdown};

/// The commit intervals measured by default, in ms.
pub const PIPELINE_INTERVALS_MS: [u64; 4] = [10, 100, 1000, 3000];

/// One of the two processors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pipeline {
    /// Outputs acknowledged, then the consumed offsets committed.
    AtLeastOnce,
    /// Outputs and consumed offsets in one transaction.
    ExactlyOnce,
}

impl Pipeline {
    pub const ALL: [Pipeline; 2] = [Pipeline::AtLeastOnce, Pipeline::ExactlyOnce];

    /// The semantic whose client settings the processor uses.
    pub fn semantic(self) -> Semantic {
        match self {
            Pipeline::AtLeastOnce => Semantic::AtLeastOnce,
            Pipeline::ExactlyOnce => Semantic::ExactlyOnce,
        }
    }

    pub fn label(self) -> &'static str {
        self.semantic().name()
    }
}

/// What to measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineOptions {
    /// Records of the backlog each cell's throughput is measured on.
    pub records: u64,
    /// Size of each record's value.
    pub record_bytes: usize,
    /// Records per second of the steady stream the latency is measured on.
    pub rate: u64,
    /// The steady stream lasts at least this long...
    pub latency_seconds: f64,
    /// ...and at least this many commit intervals.
    pub min_commits: u64,
    pub commit_intervals_ms: Vec<u64>,
    pub pipelines: Vec<Pipeline>,
    /// Measure the consumer's own cost too (on the first cluster only).
    pub consumer_cost: Option<ConsumerCostOptions>,
}

impl Default for PipelineOptions {
    /// 50,000 records of 1 KB per backlog; 2,000 records/s for at least 3 s
    /// and 3 intervals; both pipelines at 10 ms, 100 ms, 1 s and 3 s.
    fn default() -> Self {
        PipelineOptions {
            records: 50_000,
            record_bytes: 1024,
            rate: 2_000,
            latency_seconds: 3.0,
            min_commits: 3,
            commit_intervals_ms: PIPELINE_INTERVALS_MS.to_vec(),
            pipelines: Pipeline::ALL.to_vec(),
            consumer_cost: Some(ConsumerCostOptions::default()),
        }
    }
}

impl PipelineOptions {
    /// Refuses options that cannot measure anything, saying what to change.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::BadConfig(what.to_string()));
        if self.records == 0 || self.rate == 0 {
            return bad("--records and --rate must be at least 1");
        }
        if self.commit_intervals_ms.is_empty() || self.commit_intervals_ms.contains(&0)
        {
            return bad("give at least one commit interval, each at least 1 ms, e.g. --commit-interval-ms 10,100");
        }
        if self.commit_intervals_ms.iter().any(|&ms| ms > 60_000) {
            return bad("a commit interval above 60000 ms outlives transaction.timeout.ms (60 s): the coordinator would abort the transaction");
        }
        if self.pipelines.is_empty() {
            return bad("choose at least one pipeline: at-least-once or exactly-once");
        }
        if self.latency_seconds <= 0.0 || self.latency_seconds > 600.0 {
            return bad("--latency-seconds must be above 0 and at most 600");
        }
        Ok(())
    }
}

/// One pipeline at one commit interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub pipeline: Pipeline,
    pub commit_interval_ms: u64,
    /// The backlog, from the processor's first record to the reader's last.
    pub throughput: Throughput,
    /// Commits while the backlog went through (the last one included).
    pub throughput_commits: u64,
    /// The steady stream: upstream send to `read_committed` read.
    pub latency: LatencySummary,
    /// The steady stream's rate as sent, and how long it lasted.
    pub stream_rate: f64,
    pub stream_seconds: f64,
    /// Commits (offset commits or transactions) in the whole cell.
    pub commits: u64,
    /// Mean time of a commit: draining the outputs, then committing.
    pub mean_commit_ms: f64,
    /// Records the processor wrote (acknowledged) to the output topic.
    pub output_records: u64,
    /// Input ids the reader never saw, and ids it saw more than once.
    pub missing: u64,
    pub duplicates: u64,
    /// Offsets of the output log that hold no record: commit markers.
    pub markers: i64,
    /// From the processor's first record to its last commit.
    pub processor_seconds: f64,
    /// Requests sent by the processor's clients, by type, over the cell.
    pub requests: BTreeMap<String, u64>,
}

impl Cell {
    /// Commit markers written into the output topic per second.
    pub fn markers_per_sec(&self) -> f64 {
        self.markers.max(0) as f64 / self.processor_seconds.max(1e-9)
    }

    /// Requests of `kind` per commit.
    pub fn per_commit(&self, kind: &str) -> f64 {
        self.requests.get(kind).copied().unwrap_or(0) as f64
            / self.commits.max(1) as f64
    }
}

/// The cells measured on one cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterRun {
    pub backend_description: String,
    pub kafka_version: String,
    pub brokers: usize,
    /// Replication factor of the topics (and min.insync.replicas, if set).
    pub replication: i32,
    pub min_insync_replicas: Option<u32>,
    pub cells: Vec<Cell>,
}

impl ClusterRun {
    pub fn cell(&self, pipeline: Pipeline, interval_ms: u64) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.pipeline == pipeline && c.commit_interval_ms == interval_ms)
    }

    /// "1 broker" or "3 brokers, replication 3, min ISR 2".
    pub fn setup(&self) -> String {
        match (self.brokers, self.min_insync_replicas) {
            (1, _) => "1 broker".into(),
            (n, Some(isr)) => format!(
                "{n} brokers, replication {}, min ISR {isr}",
                self.replication
            ),
            (n, None) => format!("{n} brokers, replication {}", self.replication),
        }
    }
}

/// Everything one `lab pipeline-bench` measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineReport {
    pub options: PipelineOptions,
    pub librdkafka_version: String,
    pub cpus: usize,
    /// The 1-minute load average before and after (None off Linux).
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
    pub started_unix_secs: u64,
    pub seconds: f64,
    pub clusters: Vec<ClusterRun>,
    pub consumer_cost: Option<ConsumerCost>,
}

impl PipelineReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// Whether every figure comes from Apache Kafka.
    pub fn on_kafka(&self) -> bool {
        self.clusters
            .iter()
            .all(|c| c.backend_description.starts_with("Apache Kafka"))
    }
}

/// Measures every cell of `options` on each of `clusters` (interleaved by
/// cell: each pipeline at each interval in turn), then the consumer's cost
/// on the first cluster. `progress` hears what is being measured.
pub fn pipeline_bench(
    clusters: &[&Cluster],
    options: &PipelineOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<PipelineReport> {
    options.check()?;
    for cluster in clusters {
        cluster.require_faithful(Semantic::ExactlyOnce)?;
    }
    let started = Instant::now();
    let load_before = load_average();
    let mut runs = Vec::new();
    for cluster in clusters {
        let min_isr = (cluster.broker_count() >= 3).then_some(2);
        let mut run = ClusterRun {
            backend_description: cluster.describe(),
            kafka_version: cluster.kafka_version().to_string(),
            brokers: cluster.broker_count(),
            replication: cluster.broker_count().clamp(1, 3) as i32,
            min_insync_replicas: min_isr,
            cells: Vec::new(),
        };
        for &interval in &options.commit_intervals_ms {
            for &pipeline in &options.pipelines {
                progress(&format!(
                    "{} at {interval} ms on {}",
                    pipeline.label(),
                    run.setup()
                ));
                run.cells.push(cell::run_cell(
                    cluster, pipeline, interval, min_isr, options,
                )?);
            }
        }
        runs.push(run);
    }
    let consumer_cost = match (&options.consumer_cost, clusters.first()) {
        (Some(cost), Some(cluster)) => {
            progress("read_committed against read_uncommitted");
            Some(consumer_cost(cluster, cost)?)
        }
        _ => None,
    };
    Ok(PipelineReport {
        options: options.clone(),
        librdkafka_version: crate::cluster::librdkafka_version(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_before,
        load_after: load_average(),
        started_unix_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_sub(started.elapsed().as_secs()),
        seconds: started.elapsed().as_secs_f64(),
        clusters: runs,
        consumer_cost,
    })
}

/// The 1-minute load average, from /proc/loadavg.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
