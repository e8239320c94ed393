//! Scenarios B (the producer dies mid-stream) and C (the consumer dies between
//! its two steps): a child process running `lab worker ...` is killed with
//! SIGKILL at a seeded point, and a new one carries on by the semantic's
//! recovery rule. The audit then counts, by id, what was lost and duplicated.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::audit::{self, read_ids, Isolation};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::faults::Seeded;
use crate::outcome::{FaultWindow, Outcome};
use crate::produce::{self, ProduceOptions};
use crate::semantics::Semantic;

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
        if (k + 1) % super::worker::CHECKPOINT_EVERY == 0 {
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
    let produced = produce::produce(
        cluster,
        semantic,
        &input,
        &ProduceOptions {
            ids: 0..options.records,
            payload_bytes: 100,
            transaction_size: 500,
            overrides: Vec::new(),
        },
        &mut |_| {},
    )?;
    cluster.wait_for_records(
        &input,
        produced.acknowledged.len() as u64,
        WAIT_FOR_LOG,
    )?;
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
