//! One experiment end to end: fresh topics, produce, consume, audit.

use crate::audit;
use crate::cluster::Cluster;
use crate::consume;
use crate::error::Result;
use crate::outcome::Outcome;
use crate::produce::{self, ProduceOptions};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;
use std::time::Duration;

/// The workload of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub records: u64,
    pub payload_bytes: usize,
    pub partitions: i32,
    /// Exactly-once: records per transaction of the upstream producer.
    pub transaction_size: u64,
    /// Extra producer settings, applied after the semantic's (and checked).
    pub producer_overrides: Vec<(String, String)>,
}

impl RunOptions {
    /// `records` records of 100 bytes on 3 partitions.
    pub fn records(records: u64) -> RunOptions {
        RunOptions {
            records,
            payload_bytes: 100,
            partitions: 3,
            transaction_size: 500,
            producer_overrides: Vec::new(),
        }
    }
}

/// The fresh topics and consumer group of one experiment: nothing an earlier
/// run wrote can leak into it.
pub(crate) struct Pipeline {
    pub input: String,
    /// Exactly-once's read-process-write loop writes here.
    pub output: Option<String>,
    pub group: String,
}

impl Pipeline {
    pub(crate) fn create(
        cluster: &Cluster,
        semantic: Semantic,
        what: &str,
        partitions: i32,
    ) -> Result<Pipeline> {
        let input = cluster.fresh_name(&format!("{semantic}-{what}-in"));
        cluster.create_topic(&input, partitions)?;
        let output = if semantic == Semantic::ExactlyOnce {
            let name = cluster.fresh_name(&format!("{semantic}-{what}-out"));
            cluster.create_topic(&name, partitions)?;
            Some(name)
        } else {
            None
        };
        let group = cluster.fresh_name(&format!("{semantic}-{what}-group"));
        Ok(Pipeline {
            input,
            output,
            group,
        })
    }
}

/// What can be refused before anything is created: what the backend cannot
/// show, a workload the mock's log cannot keep, settings that do not go
/// together.
fn refuse_before_running(
    cluster: &Cluster,
    semantic: Semantic,
    options: &RunOptions,
) -> Result<()> {
    cluster.require_faithful(semantic)?;
    cluster.check_fits(
        "a run",
        options.records,
        options.partitions,
        crate::record::least_bytes(options.payload_bytes),
    )?;
    // Checks the settings (no client is built: nothing to monitor).
    crate::stats::unwatched(|| {
        semantic.producer_config(
            cluster.bootstrap(),
            Some("check"),
            &options.producer_overrides,
        )
    })?;
    Ok(())
}

/// Which stage a progress report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Produce,
    Consume,
    Audit,
}

/// Runs `semantic` on the happy path: a fresh input topic (and output topic for
/// exactly-once) and consumer group, `options.records` records, then the audit.
pub fn run(
    cluster: &Cluster,
    semantic: Semantic,
    options: &RunOptions,
) -> Result<Outcome> {
    run_with_progress(cluster, semantic, options, &mut |_, _| {})
}

/// `run`, reporting progress as (stage, records so far).
pub fn run_with_progress(
    cluster: &Cluster,
    semantic: Semantic,
    options: &RunOptions,
    progress: &mut dyn FnMut(Stage, u64),
) -> Result<Outcome> {
    refuse_before_running(cluster, semantic, options)?;

    let Pipeline {
        input,
        output,
        group,
    } = Pipeline::create(cluster, semantic, "happy-path", options.partitions)?;

    let produced = produce::produce(
        cluster,
        semantic,
        &input,
        &ProduceOptions {
            ids: 0..options.records,
            payload_bytes: options.payload_bytes,
            transaction_size: options.transaction_size,
            overrides: options.producer_overrides.clone(),
        },
        &mut |n| progress(Stage::Produce, n),
    )?;
    // A consumer reads up to the high watermark, which passes a record only
    // once every in-sync replica has it: with acks=0 or acks=1 the producer can
    // be done before that. Wait for the log (bounded: records may be lost).
    cluster.wait_for_records(
        &input,
        produced.acknowledged.len() as u64,
        Duration::from_secs(15),
    )?;
    let consumed = consume::consume(
        cluster,
        semantic,
        &input,
        output.as_deref(),
        &group,
        &[],
        &mut Vec::new(),
        &mut |n| progress(Stage::Consume, n),
    )?;

    progress(Stage::Audit, 0);
    let in_log = read_ids(cluster, &input, Isolation::ReadCommitted)?;
    let delivered = match &output {
        Some(topic) => read_ids(cluster, topic, Isolation::ReadCommitted)?,
        None => consumed.processed.clone(),
    };
    let (counts, fates) = audit::audit(&audit::Observed {
        source: options.records,
        sent: produced.sent,
        acknowledged: &produced.acknowledged,
        in_log: &in_log,
        delivered: &delivered,
        aborted: &consumed.aborted,
        ..Default::default()
    });
    Ok(Outcome {
        output_topic: output,
        group,
        payload_bytes: options.payload_bytes,
        counts,
        fates,
        failures: produced.failed,
        produce_seconds: produced.elapsed.as_secs_f64(),
        consume_seconds: consumed.elapsed.as_secs_f64(),
        ..Outcome::new(cluster, semantic, options.records, input)
    })
}
