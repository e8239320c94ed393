//! The nemesis's results in a table: one row per schedule.

use serde::{Deserialize, Serialize};

use super::plan::Target;
use super::runner::{NemesisRun, PipelineRun};
use super::schedule::FaultKind;
use crate::error::Doing;

/// Bumped whenever what a seed's schedule does changes (its faults, their
/// targets, the pipeline): recorded runs of another version are run again.
/// 2: broker kills aimed at leaders and coordinators.
pub const NEMESIS_VERSION: u32 = 2;

/// One schedule's row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub seed: u64,
    /// Faults that struck (skipped ones not counted), and steps reached.
    pub faults: usize,
    pub steps: usize,
    pub records: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub aborted_reads: u64,
    pub out_of_order: u64,
    pub same_ids: bool,
    /// Exactly-once processors that hung (librdkafka), replaced.
    pub hung: usize,
    /// Other processor failures, replaced.
    pub failed: usize,
    /// At-least-once under the same schedule: lost, duplicated.
    pub alo_lost: Option<u64>,
    pub alo_duplicated: Option<u64>,
    pub seconds: f64,
}

fn struck(p: &PipelineRun) -> usize {
    p.executed
        .injected
        .iter()
        .filter(|i| !i.detail.starts_with("skipped"))
        .count()
}

impl Summary {
    pub fn of(run: &NemesisRun) -> Summary {
        let e = &run.exactly_once;
        let v = &e.verdict;
        let steps: std::collections::BTreeSet<usize> =
            e.executed.injected.iter().map(|i| i.step).collect();
        Summary {
            seed: run.seed,
            faults: struck(e),
            steps: steps.len(),
            records: v.input_records,
            lost: v.lost.count,
            duplicated: v.duplicated.count,
            aborted_reads: v.aborted_reads.count,
            out_of_order: v.out_of_order.count,
            same_ids: v.same_ids(),
            hung: e.hung(),
            failed: e.executed.replacements.len() - e.hung(),
            alo_lost: run.at_least_once.as_ref().map(|a| a.verdict.lost.count),
            alo_duplicated: run
                .at_least_once
                .as_ref()
                .map(|a| a.verdict.duplicated.count),
            seconds: run.seconds,
        }
    }
}

/// The table of `runs` in Markdown.
pub fn summary_table(runs: &[NemesisRun]) -> String {
    let mut out = String::from(
        "| seed | faults (steps) | records | exactly-once: lost / duplicated / aborted reads \
         / out of order | output = input | processor hung, replaced | other processor \
         failures | at-least-once: lost / duplicated | seconds |\n\
         |---:|---:|---:|:---:|:---:|---:|---:|:---:|---:|\n",
    );
    for s in runs.iter().map(Summary::of) {
        let alo = match (s.alo_lost, s.alo_duplicated) {
            (Some(l), Some(d)) => format!("{l} / {d}"),
            _ => "not run".into(),
        };
        out += &format!(
            "| {} | {} ({}) | {} | {} / {} / {} / {} | {} | {} | {} | {} | {:.0} |\n",
            s.seed,
            s.faults,
            s.steps,
            s.records,
            s.lost,
            s.duplicated,
            s.aborted_reads,
            s.out_of_order,
            if s.same_ids { "yes" } else { "no" },
            s.hung,
            s.failed,
            alo,
            s.seconds
        );
    }
    out
}

/// Several schedules run on one cluster: what the book records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NemesisRecord {
    /// [`NEMESIS_VERSION`] when the runs were recorded (1 if not said).
    #[serde(default = "first_version")]
    pub version: u32,
    /// The cluster, as [`crate::Cluster::describe`] says it.
    pub cluster: String,
    pub runs: Vec<NemesisRun>,
    pub seconds: f64,
}

fn first_version() -> u32 {
    1
}

impl NemesisRecord {
    /// Reads a recorded campaign (the book's is
    /// `book/src/generated/nemesis.json`).
    pub fn read(
        path: impl AsRef<std::path::Path>,
    ) -> crate::error::Result<NemesisRecord> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).doing(format!(
            "cannot read {} (record one with `cargo xtask regen --only nemesis`)",
            path.display()
        ))?;
        serde_json::from_str(&text).map_err(|e| {
            crate::error::Error::BadData(format!(
                "{} is not a recorded nemesis campaign: {e}",
                path.display()
            ))
        })
    }
}

/// What the exactly-once runs' broker kills were aimed at, as a sentence
/// (empty for runs recorded before kills were aimed).
fn kill_aims(runs: &[NemesisRun]) -> String {
    let mut aims: std::collections::BTreeMap<String, usize> = Default::default();
    let kills = runs
        .iter()
        .flat_map(|r| &r.exactly_once.executed.injected)
        .filter(|i| i.kind == FaultKind::BrokerKill && i.broker.is_some());
    for i in kills {
        let aim = match i.target {
            Target::Leader { led, .. } if led.partition.is_some() => {
                format!("an {}'s leader", led.role.name())
            }
            Target::Leader { led, .. } => format!("the {}", led.role.name()),
            _ => "a broker picked by the seed".to_string(),
        };
        *aims.entry(aim).or_default() += 1;
    }
    let total: usize = aims.values().sum();
    let each: Vec<String> = aims.iter().map(|(a, n)| format!("{a}: {n}")).collect();
    match total {
        0 => String::new(),
        _ => format!(
            " The exactly-once runs' {total} broker kills were aimed at {}.",
            each.join("; ")
        ),
    }
}

/// The record as the book shows it: the table, the totals, and every
/// verdict that is not clean.
pub fn nemesis_markdown(record: &NemesisRecord) -> String {
    let runs = &record.runs;
    let faults: usize = runs.iter().map(|r| Summary::of(r).faults).sum();
    let hung: usize = runs.iter().map(|r| r.exactly_once.hung()).sum();
    let clean = runs
        .iter()
        .filter(|r| r.exactly_once.verdict.clean())
        .count();
    let alo_lost: u64 = runs
        .iter()
        .filter_map(|r| r.at_least_once.as_ref())
        .map(|a| a.verdict.lost.count)
        .sum();
    let alo_dup: u64 = runs
        .iter()
        .filter_map(|r| r.at_least_once.as_ref())
        .map(|a| a.verdict.duplicated.count)
        .sum();
    let mut out = format!(
        "{} schedules on {}, {} faults injected in all, {:.0} minutes of running. \
         Exactly-once: {clean} of {} histories clean (nothing lost, duplicated, read from an \
         aborted transaction or out of order; output = input); the processor hung and was \
         replaced {hung} time(s). At-least-once under the same schedules: {alo_lost} records \
         lost, {alo_dup} duplicated.{}\n\n",
        runs.len(),
        record.cluster,
        faults,
        record.seconds / 60.0,
        runs.len(),
        kill_aims(runs),
    );
    out += &summary_table(runs);
    for r in runs.iter().filter(|r| !r.exactly_once.verdict.clean()) {
        out += &format!(
            "\nSeed {}, exactly-once:\n\n```text\n{}\n```\n",
            r.seed, r.exactly_once.verdict
        );
    }
    out
}

/// The first schedule's faults as they were injected into the exactly-once
/// pipeline, and every processor the runs replaced, as lists.
pub fn nemesis_steps_markdown(record: &NemesisRecord) -> String {
    let mut out = String::new();
    if let Some(run) = record.runs.first() {
        out += &format!(
            "The schedule of seed {} ({} steps over {} records), as the exactly-once run \
             met it:\n\n",
            run.seed, run.schedule.options.steps, run.schedule.options.records
        );
        for i in &run.exactly_once.executed.injected {
            out += &format!(
                "- step {}, planned at record {}, struck at {} ({:.1} s to {:.1} s): {}, {}: {}\n",
                i.step + 1,
                i.planned_at_records,
                i.at_records,
                i.started_s,
                i.ended_s,
                i.kind.label(),
                i.target,
                i.detail
            );
        }
        for s in &run.exactly_once.executed.not_reached {
            out +=
                &format!("- step {}: not reached, the pipeline had finished\n", s + 1);
        }
    }
    let replaced: Vec<String> = record
        .runs
        .iter()
        .flat_map(|r| {
            r.exactly_once
                .executed
                .replacements
                .iter()
                .map(move |x| (r.seed, x))
        })
        .map(|(seed, x)| {
            let after = x
                .after_step
                .map_or("before the first step".to_string(), |s| {
                    format!("after step {}", s + 1)
                });
            let what = if x.hung {
                "hung, replaced"
            } else {
                "failed, replaced"
            };
            format!(
                "- seed {seed}, {:.0} s, {after}: {what} ({})\n",
                x.at_s, x.reason
            )
        })
        .collect();
    out += "\nThe checker's counts beside Kafka's own recount of the output's log files:\n\n";
    for r in &record.runs {
        let v = &r.exactly_once.verdict;
        out += &format!(
            "- seed {}: the checker read {} committed records ({} in the log counting aborted \
             ones, {} at aborted positions); {}\n",
            r.seed,
            v.committed_records,
            v.uncommitted_records,
            v.aborted_in_log,
            r.exactly_once.aborted_from
        );
    }
    out += "\nExactly-once processors the runs replaced themselves (not a planned fault):\n\n";
    out += &match replaced.is_empty() {
        true => "- none\n".to_string(),
        false => replaced.concat(),
    };
    out
}
