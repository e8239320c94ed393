//! Scenario C with widely copied consumers that the course corrects:
//! auto-commit as "at-most-once" (beside librdkafka's own at-least-once
//! pattern with auto-commit on), and a set of seen ids, in memory or kept
//! with the results, as "de-duplication".

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::protocol::{AutoCommitCrash, ConsumeSpec, ConsumerVariant, WorkerSpec};
use super::supervisor::{run_to_death, run_worker, WorkerRun};
use super::{read_sink, ConsumerStage, CrashOptions};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::outcome::Outcome;
use crate::semantics::Semantic;
use crate::support::Seeded;

/// One run of a [`ConsumerVariant`] under scenario C: the audit's outcome, and
/// what the killed workers reported about the moment they died, which
/// predicts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantOutcome {
    pub variant: ConsumerVariant,
    pub seed: u64,
    pub outcome: Outcome,
    /// Records whose offsets were committed but which were not processed when
    /// a worker died: the replacement starts after them.
    pub committed_unprocessed: u64,
    /// Records processed whose offsets nobody had committed when a worker
    /// died: the replacement gets them again.
    pub processed_uncommitted: u64,
    /// Records a worker skipped because its seen-id set held their ids.
    pub skipped_as_seen: u64,
    /// Where the killed workers died: each one's count of records taken,
    /// from the seed (the auto-commit variants share theirs).
    #[serde(default)]
    pub crash_points: Vec<u64>,
    /// The file the workers processed into (not recorded).
    #[serde(skip)]
    pub sink: PathBuf,
}

/// Scenario C with one of the consumers the course corrects. The input is
/// written with at-least-once's producer (acks=all), so every record is in the
/// log and whatever goes missing goes missing in the consumer.
///
/// - [`ConsumerVariant::AutoCommit`]: the first consumer dies just after an
///   auto-commit covered a batch it had not processed; its replacement dies
///   just after processing a batch no auto-commit had covered; a third
///   finishes. Both crash points are set by the seed and placed against the
///   timer by asking the broker for the committed offsets, so both windows are
///   hit every time, whatever the interval.
/// - [`ConsumerVariant::StoreAfterProcessing`]: the same two deaths at the
///   same seeded points. The first waits a whole auto-commit interval with
///   its batch handed over and unprocessed, then dies; the second dies just
///   after processing and storing a batch no auto-commit has covered yet.
/// - The dedup variants: the consumer dies between processing a batch and
///   committing it, as at-least-once does in scenario C; a replacement
///   finishes.
pub fn consumer_crash_variant(
    cluster: &Cluster,
    variant: ConsumerVariant,
    options: &CrashOptions,
) -> Result<VariantOutcome> {
    options.check_fits(cluster, "the consumer-crash scenario")?;
    let stage = ConsumerStage::set_up(
        cluster,
        Semantic::AtLeastOnce,
        &format!("consumer-crash-{variant}"),
        options,
    )?;
    let spec = ConsumeSpec {
        variant: Some(variant),
        ..stage.spec(cluster, variant.semantic())
    };
    let (mut runs, fault, crash_points) = match variant {
        ConsumerVariant::AutoCommit | ConsumerVariant::StoreAfterProcessing => {
            auto_commit_crashes(&spec, options)?
        }
        ConsumerVariant::DedupInMemory | ConsumerVariant::DedupDurable => {
            dedup_crash(&spec, variant, options)?
        }
    };
    runs.push(run_worker(&WorkerSpec::Consume(spec))?);

    let sink = stage.sink.clone();
    let delivered = read_sink(&sink)?;
    let mut outcome =
        stage.outcome(cluster, variant.semantic(), options, &delivered, &[])?;
    outcome.fault = Some(fault);
    Ok(VariantOutcome {
        variant,
        seed: options.seed,
        outcome,
        committed_unprocessed: runs.iter().map(|r| r.committed_unprocessed).sum(),
        processed_uncommitted: runs.iter().map(|r| r.processed_uncommitted).sum(),
        skipped_as_seen: runs.iter().map(|r| r.skipped).sum(),
        crash_points,
        sink,
    })
}

/// An auto-commit consumer's two deaths, one on each side of an
/// auto-commit: the killed workers' runs, the fault they make, and the two
/// crash points.
fn auto_commit_crashes(
    spec: &ConsumeSpec,
    options: &CrashOptions,
) -> Result<(Vec<WorkerRun>, String, Vec<u64>)> {
    // Early enough that two more batches follow the first crash (of up to 500
    // records each), and the second crash in the replacement's first batches,
    // so a batch is left for it to die on.
    let first_at = Seeded::new(options.seed ^ 3)
        .in_range(options.records / 8..options.records / 4)
        .max(1);
    let second_at =
        Seeded::new(options.seed ^ 4).in_range(1..(options.records / 8).max(2));
    let first = killed(spec, first_at, Some(AutoCommitCrash::CommittedNotProcessed))?;
    let second = killed(
        spec,
        second_at,
        Some(AutoCommitCrash::ProcessedNotCommitted),
    )?;
    let first_death = if spec.variant == Some(ConsumerVariant::AutoCommit) {
        "just after an auto-commit covered a batch it had not processed"
    } else {
        "a whole auto-commit interval after it was handed a batch it had not processed"
    };
    let fault = format!(
        "auto.commit.interval.ms={}: consumer SIGKILLed at its record {first_at} {first_death}; \
         the replacement SIGKILLed at its record {second_at} just after processing a batch no \
         auto-commit covered yet; a third finished (seed {})",
        crate::consume::AUTO_COMMIT_INTERVAL_MS,
        options.seed
    );
    Ok((vec![first, second], fault, vec![first_at, second_at]))
}

/// A dedup consumer's death between processing a batch and committing it.
fn dedup_crash(
    spec: &ConsumeSpec,
    variant: ConsumerVariant,
    options: &CrashOptions,
) -> Result<(Vec<WorkerRun>, String, Vec<u64>)> {
    let crash_at = options.crash_point(2);
    let first = killed(spec, crash_at, None)?;
    let fault = format!(
        "consumer with {} SIGKILLed after processing, before committing, at its record \
         {crash_at} (seed {}); a replacement joined the group",
        variant.label(),
        options.seed
    );
    Ok((vec![first], fault, vec![crash_at]))
}

/// Runs the variant's consumer to its death at its record `at`.
fn killed(
    spec: &ConsumeSpec,
    at: u64,
    when: Option<AutoCommitCrash>,
) -> Result<WorkerRun> {
    let variant = spec.variant.expect("a variant's spec names it");
    run_to_death(
        &WorkerSpec::Consume(ConsumeSpec {
            crash_at: Some(at),
            crash_when: when,
            ..spec.clone()
        }),
        &format!("the {variant} consumer"),
    )
}

impl VariantOutcome {
    /// The runs as a Markdown table, one line per variant with every seed's
    /// counts side by side, and the line naming the backend.
    pub fn markdown_table(runs: &[VariantOutcome]) -> String {
        let mut out = String::from(
            "| consumer | claims | lost (per run) | duplicated (per run) | committed, not processed | processed, not committed | skipped as seen |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for variant in ConsumerVariant::ALL {
            let mine: Vec<&VariantOutcome> =
                runs.iter().filter(|r| r.variant == variant).collect();
            if mine.is_empty() {
                continue;
            }
            let column = |f: &dyn Fn(&VariantOutcome) -> u64| {
                mine.iter()
                    .map(|r| f(r).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                variant.label(),
                variant.semantic(),
                column(&|r| r.outcome.counts.lost),
                column(&|r| r.outcome.counts.duplicated),
                column(&|r| r.committed_unprocessed),
                column(&|r| r.processed_uncommitted),
                column(&|r| r.skipped_as_seen),
            );
        }
        let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let mut sources: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{}, librdkafka {}",
                    r.outcome.backend_description, r.outcome.librdkafka_version
                )
            })
            .collect();
        sources.sort_unstable();
        sources.dedup();
        let records: Vec<String> = {
            let mut r: Vec<String> =
                runs.iter().map(|r| r.outcome.records.to_string()).collect();
            r.dedup();
            r
        };
        out += &format!(
            "\n{} records per run, seeds {}. Measured on {}.\n",
            records.join(", "),
            seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            sources.join("; ")
        );
        out
    }
}
