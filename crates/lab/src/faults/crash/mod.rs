//! Scenarios B (the producer dies mid-stream) and C (the consumer dies between
//! its two steps): a child process running `lab worker ...` is killed with
//! SIGKILL at a seeded point, and a new one carries on by the semantic's
//! recovery rule. The audit then counts, by id, what was lost and duplicated.
//!
//! Scenario C also runs widely copied consumers that the course corrects
//! ([`consumer_crash_variant`]): auto-commit as "at-most-once" (beside
//! librdkafka's own at-least-once pattern with auto-commit on), and an
//! in-memory set of seen ids as "de-duplication".
//!
//! The parent and its workers talk through [`protocol`]: the parent's orders
//! are a [`WorkerSpec`], the worker's report a stream of
//! [`Event`](protocol::Event)s.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod db;
pub mod protocol;
mod supervisor;
mod topic_sink;
mod variants;
pub mod worker;
pub mod zombie;

pub use protocol::{AutoCommitCrash, ConsumerVariant};
pub use supervisor::worker_binary;
pub use variants::{consumer_crash_variant, VariantOutcome};
pub use zombie::{zombie_processor, ZombieOutcome};

use crate::audit;
use crate::cluster::Cluster;
use crate::error::{Doing, Result};
use crate::group_protocol::GroupProtocol;
use crate::outcome::{FaultWindow, Outcome};
use crate::produce::{self, ProduceOptions};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;
use crate::support::Seeded;
use protocol::{ConsumeSpec, ProduceSpec, WorkerSpec};
pub(crate) use supervisor::run_worker;
use supervisor::{run_to_death, WorkerRun};

/// How long to wait for produced records to be readable (high watermark).
const WAIT_FOR_LOG: Duration = Duration::from_secs(15);

/// The workload of a crash scenario.
#[derive(Clone, Debug)]
pub struct CrashOptions {
    pub records: u64,
    pub partitions: i32,
    /// Chooses the crash point, within the middle half of the stream.
    pub seed: u64,
    /// The consumer group protocol of scenario C's consumers.
    pub group_protocol: GroupProtocol,
}

impl CrashOptions {
    /// Refuses, on the mock cluster, a source its bounded log cannot keep.
    fn check_fits(&self, cluster: &Cluster, what: &str) -> Result<()> {
        cluster.check_fits(
            what,
            self.records,
            self.partitions,
            crate::record::least_bytes(PAYLOAD_BYTES),
        )
    }

    pub fn new(records: u64, seed: u64) -> CrashOptions {
        CrashOptions {
            records,
            partitions: 3,
            seed,
            group_protocol: GroupProtocol::Classic,
        }
    }

    fn crash_point(&self, salt: u64) -> u64 {
        let mut rng = Seeded::new(self.seed ^ salt);
        // Avoid checkpoint boundaries: a crash exactly on one would show an
        // at-least-once replay of nothing, which is true but teaches nothing.
        let k = rng.in_range(self.records / 4..self.records * 3 / 4);
        if (k + 1) % crate::recovery::CHECKPOINT_EVERY == 0 {
            k + 1
        } else {
            k
        }
    }
}

/// Where scenario `name` keeps its workers' state files (positions, sinks)
/// for `cluster`: a folder per cluster under the course's cache, so runs
/// against two brokers never share (or overwrite) one another's files.
fn state_dir(cluster: &Cluster, name: &str) -> Result<PathBuf> {
    let dir = state_root(&crate::local::cache_dir(), cluster).join(name);
    std::fs::create_dir_all(&dir).doing(format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The folder of `cluster`'s scenario state under `cache`:
/// `scenarios/<bootstrap>`, the address spelled as a file name
/// (`127.0.0.1_9092`); the mock cluster, whose port changes every run, is `mock`.
fn state_root(cache: &Path, cluster: &Cluster) -> PathBuf {
    let name = match cluster.backend() {
        crate::Backend::Mock => "mock".to_string(),
        crate::Backend::Kafka => file_name_of(cluster.bootstrap()),
    };
    cache.join("scenarios").join(name)
}

/// `text` as a file name: letters, digits, `.` and `-` kept, every other
/// character `_`, at most 120 characters.
fn file_name_of(text: &str) -> String {
    let name: String = text
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    match name.trim_matches('.') {
        "" => "unnamed".to_string(),
        _ => name,
    }
}

/// The size of each record's value in scenarios B and C.
const PAYLOAD_BYTES: usize = 100;

/// Scenario B: the producer process is SIGKILLed at a seeded record, then a new
/// one recovers by the semantic's rule and finishes the source.
pub fn producer_crash(
    cluster: &Cluster,
    semantic: Semantic,
    options: &CrashOptions,
) -> Result<Outcome> {
    cluster.require_faithful(semantic)?;
    options.check_fits(cluster, "the producer-crash scenario")?;
    let started = Instant::now();
    let topic = cluster.fresh_name(&format!("{semantic}-producer-crash"));
    cluster.create_topic(&topic, options.partitions)?;
    let state = state_dir(cluster, "producer-crash")?.join(format!("{topic}.position"));
    let crash_at = options.crash_point(1);
    let spec = ProduceSpec {
        semantic,
        bootstrap: cluster.bootstrap().to_string(),
        topic: topic.clone(),
        records: options.records,
        payload_bytes: PAYLOAD_BYTES,
        state,
        crash_at: None,
        overrides: Vec::new(),
    };
    let first = run_to_death(
        &WorkerSpec::Produce(ProduceSpec {
            crash_at: Some(crash_at),
            ..spec.clone()
        }),
        "the first producer",
    )?;
    let second = run_worker(&WorkerSpec::Produce(spec))?;

    // The records of the transaction that was open when the first died.
    let aborted: Vec<u64> = match semantic {
        Semantic::ExactlyOnce => {
            let through = first.committed_through.map_or(0, |c| c + 1);
            first
                .handed
                .iter()
                .copied()
                .filter(|&id| id >= through)
                .collect()
        }
        _ => Vec::new(),
    };
    let in_log = read_ids(cluster, &topic, Isolation::ReadCommitted)?;
    let in_log_uncommitted = read_ids(cluster, &topic, Isolation::ReadUncommitted)?;
    let acknowledged: Vec<u64> =
        first.acked.iter().chain(&second.acked).copied().collect();
    let mut outcome = Outcome::new(cluster, semantic, options.records, topic);
    outcome.fault = Some(format!(
        "producer SIGKILLed at record {crash_at} (seed {}); restarted, resumed at {}",
        options.seed,
        second.handed.first().copied().unwrap_or(options.records)
    ));
    outcome.window = Some(producer_crash_window(semantic, &first, &second, crash_at));
    // The producer's pipeline ends in the log: a read_committed reader's view.
    outcome.record_audit(&audit::Observed {
        source: options.records,
        sent: (first.handed.len() + second.handed.len()) as u64,
        acknowledged: &acknowledged,
        in_log: &in_log,
        in_log_uncommitted: &in_log_uncommitted,
        delivered: &in_log,
        aborted: &aborted,
    });
    outcome.produce_seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Scenario B's fault window: from where the restarted producer resumed (or,
/// if earlier, the first record the dead one handed over without hearing it
/// had left) to the record it died at.
fn producer_crash_window(
    semantic: Semantic,
    first: &WorkerRun,
    second: &WorkerRun,
    crash_at: u64,
) -> FaultWindow {
    let acked: std::collections::HashSet<u64> = first.acked.iter().copied().collect();
    let unsent = first
        .handed
        .iter()
        .copied()
        .filter(|id| !acked.contains(id))
        .min();
    let resumed = second.resumed.unwrap_or(crash_at + 1);
    let from = unsent.unwrap_or(resumed).min(resumed).min(crash_at + 1);
    let label = match semantic {
        Semantic::AtMostOnce => {
            "in the killed producer's buffer; its saved position was already past them"
        }
        Semantic::AtLeastOnce => {
            "acknowledged after the last checkpoint, so sent again after the restart"
        }
        Semantic::ExactlyOnce => {
            "the killed producer's open transaction, aborted by the restarted one"
        }
    };
    FaultWindow::span(label, from..crash_at + 1)
}

/// Scenario C's input: ids `0..records` written by `semantic`'s producer, and
/// in the log (up to the high watermark) before any consumer starts.
fn write_input(
    cluster: &Cluster,
    semantic: Semantic,
    input: &str,
    records: u64,
) -> Result<produce::ProduceReport> {
    let produced = produce::produce(
        cluster,
        semantic,
        input,
        &ProduceOptions {
            ids: 0..records,
            payload_bytes: PAYLOAD_BYTES,
            transaction_size: 500,
            overrides: Vec::new(),
        },
        &mut |_| {},
    )?;
    cluster.wait_for_records(
        input,
        produced.acknowledged.len() as u64,
        WAIT_FOR_LOG,
    )?;
    Ok(produced)
}

/// Scenario C, set up: the input written and in the log, the group and the
/// sink named, the consumers' clock started. Scenario D's exactly-once run
/// sets up its pipeline the same way.
pub(crate) struct ConsumerStage {
    pub(crate) input: String,
    /// Exactly-once's output topic.
    pub(crate) output: Option<String>,
    pub(crate) group: String,
    /// Where the workers of the other semantics process into.
    sink: PathBuf,
    produced: produce::ProduceReport,
    started: Instant,
    group_protocol: GroupProtocol,
}

impl ConsumerStage {
    /// Creates the topics and writes the input with `producer`'s settings.
    pub(crate) fn set_up(
        cluster: &Cluster,
        producer: Semantic,
        what: &str,
        options: &CrashOptions,
    ) -> Result<ConsumerStage> {
        let crate::run::Pipeline {
            input,
            output,
            group,
        } = crate::run::Pipeline::create(cluster, producer, what, options.partitions)?;
        let produced = write_input(cluster, producer, &input, options.records)?;
        let sink = state_dir(cluster, "consumer-crash")?.join(format!("{group}.sink"));
        Ok(ConsumerStage {
            input,
            output,
            group,
            sink,
            produced,
            started: Instant::now(),
            group_protocol: options.group_protocol,
        })
    }

    /// The orders of a consumer worker that runs to the end.
    pub(crate) fn spec(&self, cluster: &Cluster, semantic: Semantic) -> ConsumeSpec {
        ConsumeSpec {
            semantic,
            bootstrap: cluster.bootstrap().to_string(),
            input: self.input.clone(),
            output: self.output.clone(),
            group: self.group.clone(),
            sink: self.sink.clone(),
            crash_at: None,
            variant: None,
            crash_when: None,
            group_protocol: self.group_protocol,
            pause_at: None,
            transactional_id: None,
            pause_per_record_us: None,
            consumer_overrides: Vec::new(),
        }
    }

    /// The audit of what the consumers delivered, against the input as it was
    /// produced, as the outcome of `semantic`.
    pub(crate) fn outcome(
        self,
        cluster: &Cluster,
        semantic: Semantic,
        options: &CrashOptions,
        delivered: &[u64],
        aborted: &[u64],
    ) -> Result<Outcome> {
        let in_log = read_ids(cluster, &self.input, Isolation::ReadCommitted)?;
        let mut outcome = Outcome::new(cluster, semantic, options.records, self.input);
        outcome.output_topic = self.output;
        outcome.group = self.group;
        outcome.record_audit(&audit::Observed {
            source: options.records,
            sent: self.produced.sent,
            acknowledged: &self.produced.acknowledged,
            in_log: &in_log,
            in_log_uncommitted: &[],
            delivered,
            aborted,
        });
        outcome.produce_seconds = self.produced.elapsed.as_secs_f64();
        outcome.consume_seconds = self.started.elapsed().as_secs_f64();
        Ok(outcome)
    }
}

/// Scenario C: the records are produced; a consumer process is SIGKILLed in the
/// gap between its two steps (commit and process, in its semantic's order) at
/// a seeded record; a replacement joins the same group and finishes.
pub fn consumer_crash(
    cluster: &Cluster,
    semantic: Semantic,
    options: &CrashOptions,
) -> Result<Outcome> {
    consumer_crash_timed(cluster, semantic, options).map(|(outcome, _)| outcome)
}

/// How long scenario C's consumers took to get their first batch, each
/// from its own start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Takeover {
    /// The first consumer, alone in a new group.
    pub first_seconds: f64,
    /// The replacement, started as soon as the first was killed: the time
    /// the group took to hand it the dead member's partitions.
    pub replacement_seconds: f64,
}

/// [`consumer_crash`], and how long the replacement waited for the dead
/// consumer's partitions.
pub fn consumer_crash_timed(
    cluster: &Cluster,
    semantic: Semantic,
    options: &CrashOptions,
) -> Result<(Outcome, Takeover)> {
    cluster.require_faithful(semantic)?;
    options.check_fits(cluster, "the consumer-crash scenario")?;
    let stage = ConsumerStage::set_up(cluster, semantic, "consumer-crash", options)?;
    let crash_at = options.crash_point(2);
    let spec = stage.spec(cluster, semantic);
    let first = run_to_death(
        &WorkerSpec::Consume(ConsumeSpec {
            crash_at: Some(crash_at),
            ..spec.clone()
        }),
        "the first consumer",
    )?;
    let second = run_worker(&WorkerSpec::Consume(spec))?;
    let seconds = |run: &WorkerRun| run.first_batch_ms.unwrap_or(0) as f64 / 1000.0;
    let takeover = Takeover {
        first_seconds: seconds(&first),
        replacement_seconds: seconds(&second),
    };

    let (delivered, uncommitted) = match &stage.output {
        Some(out) => (
            read_ids(cluster, out, Isolation::ReadCommitted)?,
            read_ids(cluster, out, Isolation::ReadUncommitted)?,
        ),
        None => (read_sink(&stage.sink).unwrap_or_default(), Vec::new()),
    };
    // For exactly-once: output copies beyond the committed ones were written
    // in the transaction that died with the first consumer.
    let aborted = aborted_copies(&delivered, &uncommitted);
    let mut outcome =
        stage.outcome(cluster, semantic, options, &delivered, &aborted)?;
    outcome.fault = Some(format!(
        "consumer SIGKILLed between its two steps at its record {crash_at} (seed {}); a replacement \
         joined the group ({} protocol) and got its first records {:.1} s after it started",
        options.seed, options.group_protocol, takeover.replacement_seconds
    ));
    // The aborted copies are in the output topic, not the input log.
    outcome.counts.aborted_in_log = aborted.len() as u64;
    outcome.fates.aborted_in_log = aborted.iter().copied().collect();
    let label = match semantic {
        Semantic::AtMostOnce => {
            "committed, not yet processed when the consumer was killed"
        }
        Semantic::AtLeastOnce => {
            "processed, not yet committed when the consumer was killed"
        }
        Semantic::ExactlyOnce => {
            "written in the open transaction when the consumer was killed, then aborted"
        }
    };
    outcome.window = Some(FaultWindow::of_ids(
        label,
        first.in_gap.iter().copied().collect(),
        0,
    ));
    Ok((outcome, takeover))
}

/// The ids in a consumer worker's sink, one per line.
fn read_sink(sink: &Path) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(sink)
        .doing(format!("cannot read the sink {}", sink.display()))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The copies a read_uncommitted reader sees beyond a read_committed one.
pub(crate) fn aborted_copies(committed: &[u64], uncommitted: &[u64]) -> Vec<u64> {
    let mut seen = std::collections::HashMap::new();
    for id in committed {
        *seen.entry(*id).or_insert(0u64) += 1;
    }
    let mut extra = Vec::new();
    for id in uncommitted {
        match seen.get_mut(id) {
            Some(n) if *n > 0 => *n -= 1,
            _ => extra.push(*id),
        }
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_live_in_a_folder_per_cluster() {
        let cache = Path::new("/cache");
        let mock = Cluster::mock().unwrap();
        assert_eq!(state_root(cache, &mock), cache.join("scenarios/mock"));
        assert_eq!(file_name_of("127.0.0.1:9092"), "127.0.0.1_9092");
        assert_eq!(file_name_of("PLAINTEXT://h:1,h:2"), "PLAINTEXT___h_1_h_2");
        assert_ne!(
            file_name_of("127.0.0.1:9092"),
            file_name_of("127.0.0.1:19092")
        );
        // Nothing that climbs out of the cache.
        assert_eq!(file_name_of(".."), "unnamed");
        assert_eq!(file_name_of("../../etc"), ".._.._etc");
        assert!(!file_name_of("a/b\\c").contains(['/', '\\']));
        assert_eq!(file_name_of(&"x".repeat(500)).len(), 120);
    }
}
