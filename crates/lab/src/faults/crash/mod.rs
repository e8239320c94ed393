//! Scenarios B (the producer dies mid-stream) and C (the consumer dies between
//! its two steps): a child process running `lab worker ...` is killed with
//! SIGKILL at a seeded point, and a new one carries on by the semantic's
//! recovery rule. The audit then counts, by id, what was lost and duplicated.
//!
//! Scenario C also runs the consumers of the source notes that the course
//! corrects ([`consumer_crash_variant`]): auto-commit as "at-most-once", and
//! an in-memory set of seen ids as "de-duplication".

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod worker;

use crate::audit::{self, read_ids, Isolation};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::outcome::{FaultWindow, Outcome};
use crate::produce::{self, ProduceOptions};
use crate::semantics::Semantic;
use crate::support::Seeded;

/// How long one worker may run before the scenario gives up on it.
const WORKER_LIMIT: Duration = Duration::from_secs(180);

/// How long to wait for produced records to be readable (high watermark).
const WAIT_FOR_LOG: Duration = Duration::from_secs(15);

/// The workload of a crash scenario.
#[derive(Clone, Debug)]
pub struct CrashOptions {
    pub records: u64,
    pub partitions: i32,
    /// Chooses the crash point, within the middle half of the stream.
    pub seed: u64,
}

impl CrashOptions {
    pub fn new(records: u64, seed: u64) -> CrashOptions {
        CrashOptions {
            records,
            partitions: 3,
            seed,
        }
    }

    fn crash_point(&self, salt: u64) -> u64 {
        let mut rng = Seeded::new(self.seed ^ salt);
        // Avoid checkpoint boundaries: a crash exactly on one would show an
        // at-least-once replay of nothing, which is true but teaches nothing.
        let k = rng.in_range(self.records / 4..self.records * 3 / 4);
        if (k + 1) % worker::CHECKPOINT_EVERY == 0 {
            k + 1
        } else {
            k
        }
    }
}

/// What one worker process did, read from its report lines.
#[derive(Debug, Default)]
struct WorkerRun {
    handed: Vec<u64>,
    acked: Vec<u64>,
    committed_through: Option<u64>,
    /// Where a producer worker started in the source.
    resumed: Option<u64>,
    /// A consumer worker's batch when it died between its two steps.
    in_gap: Vec<u64>,
    killed: bool,
    /// Consumer variants: records whose offsets were committed, unprocessed,
    /// when the worker died.
    committed_unprocessed: u64,
    /// Consumer variants: records processed, their offsets not committed,
    /// when the worker died.
    processed_uncommitted: u64,
    /// Records skipped because their ids had been seen.
    skipped: u64,
}

/// The `lab` binary that runs the workers: `LAB_WORKER_BIN`, this process if
/// it is `lab`, or the workspace's own, built on demand (from a notebook).
pub fn worker_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("LAB_WORKER_BIN") {
        return Ok(PathBuf::from(path));
    }
    if let Ok(exe) = std::env::current_exe() {
        if exe.file_stem().is_some_and(|n| n == "lab") {
            return Ok(exe);
        }
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "--bin",
            "lab",
            "--message-format=json",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            Error::BadConfig(format!("cannot run cargo to build the lab binary: {e}"))
        })?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .find(|p| p.file_stem().is_some_and(|n| n == "lab"))
        .ok_or_else(|| {
            Error::BadConfig(
                "could not build the `lab` binary for the crash workers; \
                 run `cargo build -p lab` and set LAB_WORKER_BIN to target/debug/lab"
                    .into(),
            )
        })
}

/// Runs one worker to its end (or its death) and reads its report.
fn run_worker(args: &[String]) -> Result<WorkerRun> {
    let mut child = Command::new(worker_binary()?)
        .arg("worker")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::BadConfig(format!("cannot start the lab worker: {e}")))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            text += &line;
            text += "\n";
        }
        text
    });
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
            .collect::<Vec<_>>()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::BadConfig(e.to_string()))?
        {
            break status;
        }
        if started.elapsed() > WORKER_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Stalled {
                stage: "crash worker",
                waited: WORKER_LIMIT,
                detail: format!("`lab worker {}` did not finish", args.join(" ")),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = lines.join().unwrap_or_default();
    let stderr = errors.join().unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    let killed = status.signal() == Some(libc::SIGKILL);
    if !status.success() && !killed {
        return Err(Error::BadConfig(format!(
            "the lab worker failed ({status}):\n{stderr}"
        )));
    }
    let mut run = WorkerRun {
        killed,
        ..Default::default()
    };
    for line in lines {
        let mut words = line.split_whitespace();
        let (Some(what), Some(n)) =
            (words.next(), words.next().and_then(|n| n.parse().ok()))
        else {
            continue;
        };
        match what {
            "handed" => run.handed.push(n),
            "acked" => run.acked.push(n),
            "committed" => run.committed_through = Some(n),
            "committed-unprocessed" => run.committed_unprocessed += n,
            "processed-uncommitted" => run.processed_uncommitted += n,
            "skipped" => run.skipped += n,
            "resumed" => run.resumed = Some(n),
            "in-gap" => run.in_gap.push(n),
            _ => {}
        }
    }
    Ok(run)
}

fn state_dir(name: &str) -> Result<PathBuf> {
    let dir = crate::local::cache_dir().join("scenarios").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::BadConfig(format!("cannot create {}: {e}", dir.display()))
    })?;
    Ok(dir)
}

/// Scenario B: the producer process is SIGKILLed at a seeded record, then a new
/// one recovers by the semantic's rule and finishes the source.
pub fn producer_crash(
    cluster: &Cluster,
    semantic: Semantic,
    options: &CrashOptions,
) -> Result<Outcome> {
    cluster.require_faithful(semantic)?;
    let started = Instant::now();
    let topic = cluster.fresh_name(&format!("{semantic}-producer-crash"));
    cluster.create_topic(&topic, options.partitions)?;
    let state = state_dir("producer-crash")?.join(format!("{topic}.position"));
    let crash_at = options.crash_point(1);
    let args = vec![
        "produce".to_string(),
        format!("--semantic={semantic}"),
        format!("--bootstrap={}", cluster.bootstrap()),
        format!("--topic={topic}"),
        format!("--records={}", options.records),
        format!("--state={}", state.display()),
    ];
    let first =
        run_worker(&[args.clone(), vec![format!("--crash-at={crash_at}")]].concat())?;
    if !first.killed {
        return Err(Error::BadConfig(
            "the first producer was meant to die, but it finished".into(),
        ));
    }
    let second = run_worker(&args)?;

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
            payload_bytes: 100,
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

/// Scenario C: the records are produced; a consumer process is SIGKILLed in the
/// gap between its two steps (commit and process, in its semantic's order) at
/// a seeded record; a replacement joins the same group and finishes.
pub fn consumer_crash(
    cluster: &Cluster,
    semantic: Semantic,
    options: &CrashOptions,
) -> Result<Outcome> {
    cluster.require_faithful(semantic)?;
    let crate::run::Pipeline {
        input,
        output,
        group,
    } = crate::run::Pipeline::create(
        cluster,
        semantic,
        "consumer-crash",
        options.partitions,
    )?;
    let produced = write_input(cluster, semantic, &input, options.records)?;
    let started = Instant::now();
    let sink = state_dir("consumer-crash")?.join(format!("{group}.sink"));
    let crash_at = options.crash_point(2);
    let mut args = vec![
        "consume".to_string(),
        format!("--semantic={semantic}"),
        format!("--bootstrap={}", cluster.bootstrap()),
        format!("--input={input}"),
        format!("--group={group}"),
        format!("--sink={}", sink.display()),
    ];
    if let Some(out) = &output {
        args.push(format!("--output={out}"));
    }
    let first =
        run_worker(&[args.clone(), vec![format!("--crash-at={crash_at}")]].concat())?;
    if !first.killed {
        return Err(Error::BadConfig(
            "the first consumer was meant to die, but it finished".into(),
        ));
    }
    run_worker(&args)?;

    let in_log = read_ids(cluster, &input, Isolation::ReadCommitted)?;
    let (delivered, uncommitted) = match &output {
        Some(out) => (
            read_ids(cluster, out, Isolation::ReadCommitted)?,
            read_ids(cluster, out, Isolation::ReadUncommitted)?,
        ),
        None => {
            let text = std::fs::read_to_string(&sink).unwrap_or_default();
            (
                text.lines().filter_map(|l| l.trim().parse().ok()).collect(),
                Vec::new(),
            )
        }
    };
    // For exactly-once: output copies beyond the committed ones were written
    // in the transaction that died with the first consumer.
    let aborted = aborted_copies(&delivered, &uncommitted);
    let mut outcome = Outcome::new(cluster, semantic, options.records, input);
    outcome.output_topic = output;
    outcome.group = group;
    outcome.fault = Some(format!(
        "consumer SIGKILLed between its two steps at its record {crash_at} (seed {}); a replacement joined the group",
        options.seed
    ));
    outcome.record_audit(&audit::Observed {
        source: options.records,
        sent: produced.sent,
        acknowledged: &produced.acknowledged,
        in_log: &in_log,
        in_log_uncommitted: &[],
        delivered: &delivered,
        aborted: &aborted,
    });
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
    outcome.produce_seconds = produced.elapsed.as_secs_f64();
    outcome.consume_seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// A consumer of scenario C as the source notes write it, or as the course
/// corrects it. Each runs as real child processes, SIGKILLed and replaced in
/// the same group, and is audited by id like every scenario.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerVariant {
    /// The notes' "at-most-once": `enable.auto.commit=true`, no commit of its
    /// own. Killed once just after an auto-commit covered records it had not
    /// processed, and once just after processing records no auto-commit had
    /// covered yet.
    AutoCommit,
    /// At-least-once behind the notes' `IdempotentProcessor`: seen ids in a
    /// set in memory, which the restarted process does not have.
    DedupInMemory,
    /// At-least-once behind seen ids kept with the results: a restarted
    /// process reads them back.
    DedupDurable,
}

impl ConsumerVariant {
    pub const ALL: [ConsumerVariant; 3] = [
        ConsumerVariant::AutoCommit,
        ConsumerVariant::DedupInMemory,
        ConsumerVariant::DedupDurable,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerVariant::AutoCommit => "auto-commit",
            ConsumerVariant::DedupInMemory => "dedup-in-memory",
            ConsumerVariant::DedupDurable => "dedup-durable",
        }
    }

    /// What the variant is, in a few words (table rows, chart groups).
    pub fn label(self) -> &'static str {
        match self {
            ConsumerVariant::AutoCommit => "auto-commit",
            ConsumerVariant::DedupInMemory => "seen ids in memory",
            ConsumerVariant::DedupDurable => "seen ids kept with the results",
        }
    }

    /// The semantic the variant's consumer claims (and whose settings it
    /// starts from).
    pub fn semantic(self) -> Semantic {
        match self {
            ConsumerVariant::AutoCommit => Semantic::AtMostOnce,
            ConsumerVariant::DedupInMemory | ConsumerVariant::DedupDurable => {
                Semantic::AtLeastOnce
            }
        }
    }
}

impl std::fmt::Display for ConsumerVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which side of an auto-commit the auto-commit consumer dies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AutoCommitCrash {
    /// Just after the timer committed a batch handed over but not processed:
    /// the replacement starts after it, so it is lost.
    CommittedNotProcessed,
    /// Just after processing a batch that no commit covers yet: the
    /// replacement starts before it, so it is processed again.
    ProcessedNotCommitted,
}

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
/// - The dedup variants: the consumer dies between processing a batch and
///   committing it, as at-least-once does in scenario C; a replacement
///   finishes.
pub fn consumer_crash_variant(
    cluster: &Cluster,
    variant: ConsumerVariant,
    options: &CrashOptions,
) -> Result<VariantOutcome> {
    let crate::run::Pipeline { input, group, .. } = crate::run::Pipeline::create(
        cluster,
        Semantic::AtLeastOnce,
        &format!("consumer-crash-{variant}"),
        options.partitions,
    )?;
    let produced =
        write_input(cluster, Semantic::AtLeastOnce, &input, options.records)?;
    let started = Instant::now();
    let sink = state_dir("consumer-crash")?.join(format!("{group}.sink"));
    let args = vec![
        "consume".to_string(),
        format!("--semantic={}", variant.semantic()),
        format!("--variant={variant}"),
        format!("--bootstrap={}", cluster.bootstrap()),
        format!("--input={input}"),
        format!("--group={group}"),
        format!("--sink={}", sink.display()),
    ];
    let killed = |extra: Vec<String>| -> Result<WorkerRun> {
        let run = run_worker(&[args.clone(), extra].concat())?;
        if !run.killed {
            return Err(Error::BadConfig(format!(
                "the {variant} consumer was meant to die, but it finished"
            )));
        }
        Ok(run)
    };
    let (mut runs, fault) = match variant {
        ConsumerVariant::AutoCommit => {
            // Early enough that two more batches follow the first crash (of
            // up to 500 records each), and the second crash in the
            // replacement's first batches, so a batch is left for it to die on.
            let first_at = Seeded::new(options.seed ^ 3)
                .in_range(options.records / 8..options.records / 4)
                .max(1);
            let second_at =
                Seeded::new(options.seed ^ 4).in_range(1..(options.records / 8).max(2));
            let first = killed(vec![
                format!("--crash-at={first_at}"),
                "--crash-when=committed-not-processed".into(),
            ])?;
            let second = killed(vec![
                format!("--crash-at={second_at}"),
                "--crash-when=processed-not-committed".into(),
            ])?;
            let fault = format!(
                "auto.commit.interval.ms={}: consumer SIGKILLed at its record {first_at} just after an \
                 auto-commit covered a batch it had not processed; the replacement SIGKILLed at its \
                 record {second_at} just after processing a batch no auto-commit covered yet; a third \
                 finished (seed {})",
                crate::consume::AUTO_COMMIT_INTERVAL_MS,
                options.seed
            );
            (vec![first, second], fault)
        }
        ConsumerVariant::DedupInMemory | ConsumerVariant::DedupDurable => {
            let crash_at = options.crash_point(2);
            let first = killed(vec![format!("--crash-at={crash_at}")])?;
            let fault = format!(
                "consumer with {} SIGKILLed after processing, before committing, at its record \
                 {crash_at} (seed {}); a replacement joined the group",
                variant.label(),
                options.seed
            );
            (vec![first], fault)
        }
    };
    runs.push(run_worker(&args)?);

    let in_log = read_ids(cluster, &input, Isolation::ReadCommitted)?;
    let delivered = read_sink(&sink)?;
    let mut outcome = Outcome::new(cluster, variant.semantic(), options.records, input);
    outcome.group = group;
    outcome.fault = Some(fault);
    outcome.record_audit(&audit::Observed {
        source: options.records,
        sent: produced.sent,
        acknowledged: &produced.acknowledged,
        in_log: &in_log,
        in_log_uncommitted: &[],
        delivered: &delivered,
        aborted: &[],
    });
    outcome.produce_seconds = produced.elapsed.as_secs_f64();
    outcome.consume_seconds = started.elapsed().as_secs_f64();
    Ok(VariantOutcome {
        variant,
        seed: options.seed,
        outcome,
        committed_unprocessed: runs.iter().map(|r| r.committed_unprocessed).sum(),
        processed_uncommitted: runs.iter().map(|r| r.processed_uncommitted).sum(),
        skipped_as_seen: runs.iter().map(|r| r.skipped).sum(),
        sink,
    })
}

fn read_sink(sink: &Path) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(sink).map_err(|e| {
        Error::BadConfig(format!("cannot read the sink {}: {e}", sink.display()))
    })?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
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

/// The copies a read_uncommitted reader sees beyond a read_committed one.
fn aborted_copies(committed: &[u64], uncommitted: &[u64]) -> Vec<u64> {
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
