//! The zombie processor of KIP-447, staged: in scenario C's exactly-once
//! read-process-write pipeline, processor A takes a batch, writes its output
//! inside an open transaction and is stopped (SIGSTOP) before it sends the
//! offsets and commits, for longer than the group's session timeout.
//! Processor B, in the same group but with a `transactional.id` of its own
//! (KIP-447 lets every instance have its own), is handed A's partitions,
//! processes them and commits. Then A is resumed (SIGCONT) and goes on with
//! the transaction it held: it sends its offsets with the group metadata it
//! took before the pause, and Kafka's group coordinator must refuse them
//! (A's generation, or under the consumer protocol its member epoch, is no
//! longer the group's), so that A aborts and its output is never read.
//!
//! A's transaction timeout is made longer than the pause, so that the group,
//! not the transaction coordinator's timeout, is what stops A.

use std::fs;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::protocol::{ConsumeSpec, Refusal, WorkerSpec};
use super::supervisor::{is_stopped, run_worker, wait_for_pid, WorkerRun};
use super::worker::ZOMBIE_TRANSACTION_TIMEOUT_MS;
use super::{aborted_copies, ConsumerStage, CrashOptions};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::group_protocol::GroupProtocol;
use crate::outcome::{FaultWindow, Outcome};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;
use crate::support::Seeded;

/// The session timeout the classic protocol's consumers ask for.
const CLASSIC_SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// The broker's session timeout of consumer-protocol groups when it says
/// nothing else (`group.consumer.session.timeout.ms`).
const CONSUMER_SESSION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(45);

/// One staged zombie processor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZombieOutcome {
    pub group_protocol: GroupProtocol,
    pub seed: u64,
    /// The audit of the output as a read_committed reader sees it.
    pub outcome: Outcome,
    /// The group's session timeout (the classic consumers' own, or the
    /// broker's for the consumer protocol).
    pub session_timeout_ms: u64,
    /// A's `transaction.timeout.ms`, longer than the pause.
    pub transaction_timeout_ms: u64,
    /// How long A stayed stopped.
    pub paused_seconds: f64,
    /// The records of the batch A held in its open transaction.
    pub held: u64,
    /// How long B, started as A stopped, waited for its first records.
    pub takeover_seconds: f64,
    /// How Kafka refused A's transaction once it was resumed (None: it did
    /// not, and the audit says what that cost).
    pub refused: Option<Refusal>,
}

/// Stages the zombie processor once (see the module's docs).
pub fn zombie_processor(
    cluster: &Cluster,
    options: &CrashOptions,
) -> Result<ZombieOutcome> {
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    options.check_fits(cluster, "the zombie-processor scenario")?;
    let session = session_timeout(cluster, options.group_protocol)?;
    let stage =
        ConsumerStage::set_up(cluster, Semantic::ExactlyOnce, "zombie", options)?;
    // A stops inside the transaction of a batch in the first half.
    let at = Seeded::new(options.seed ^ 5).in_range(1..(options.records / 2).max(2));
    let flag = std::env::temp_dir().join(format!("{}.zombie-pid", stage.group));
    let _ = fs::remove_file(&flag);
    let spec = stage.spec(cluster, Semantic::ExactlyOnce);
    let a = WorkerSpec::Consume(ConsumeSpec {
        pause_at: Some((at, flag.clone())),
        transactional_id: Some(format!("{}-processor-a", stage.group)),
        ..spec.clone()
    });
    let b = WorkerSpec::Consume(ConsumeSpec {
        transactional_id: Some(format!("{}-processor-b", stage.group)),
        ..spec
    });
    let first = std::thread::spawn(move || run_worker(&a));
    let (a, b, paused_seconds) = pause_a_while_b_works(first, &flag, &b, session)?;
    let _ = fs::remove_file(&flag);

    let output = stage
        .output
        .clone()
        .expect("exactly-once writes an output topic");
    let delivered = read_ids(cluster, &output, Isolation::ReadCommitted)?;
    let uncommitted = read_ids(cluster, &output, Isolation::ReadUncommitted)?;
    let aborted = aborted_copies(&delivered, &uncommitted);
    let mut outcome = stage.outcome(
        cluster,
        Semantic::ExactlyOnce,
        options,
        &delivered,
        &aborted,
    )?;
    outcome.counts.aborted_in_log = aborted.len() as u64;
    outcome.fates.aborted_in_log = aborted.iter().copied().collect();
    let refusal = a.refused.as_ref().map_or_else(
        || "its commit was accepted".to_string(),
        |r| format!("Kafka refused it: {} ({})", r.code, r.message),
    );
    outcome.fault = Some(format!(
        "processor A ({} protocol) SIGSTOPped for {paused_seconds:.1} s inside its open \
         transaction at its record {at} (seed {}); B took its partitions and committed; \
         A resumed: {refusal}",
        options.group_protocol, options.seed
    ));
    outcome.window = Some(FaultWindow::of_ids(
        "written by the zombie in its open transaction, then aborted",
        a.paused.iter().copied().collect(),
        0,
    ));
    Ok(ZombieOutcome {
        group_protocol: options.group_protocol,
        seed: options.seed,
        outcome,
        session_timeout_ms: session.as_millis() as u64,
        transaction_timeout_ms: ZOMBIE_TRANSACTION_TIMEOUT_MS,
        paused_seconds,
        held: a.paused.len() as u64,
        takeover_seconds: b.first_batch_ms.unwrap_or(0) as f64 / 1000.0,
        refused: a.refused,
    })
}

/// A runs (on `first`) until it stops itself; B then runs to the end; A is
/// resumed once the pause has outlasted `session` and B is done. A guard
/// resumes A whatever happens. Returns both runs and the pause.
fn pause_a_while_b_works(
    first: JoinHandle<Result<WorkerRun>>,
    flag: &Path,
    b: &WorkerSpec,
    session: Duration,
) -> Result<(WorkerRun, WorkerRun, f64)> {
    let pid = match wait_for_pid(flag, &first, "the processor meant to pause") {
        Ok(pid) => pid,
        Err(e) => {
            // A ended (or never paused): its own error says more.
            return Err(match first.join() {
                Ok(Err(own)) => own,
                _ => e,
            });
        }
    };
    let guard = Resume { pid };
    let stopped = Instant::now();
    let second = run_worker(b);
    // B cannot finish before the broker has evicted A; should it have, the
    // pause still outlasts the session timeout.
    let least = session + Duration::from_secs(1);
    std::thread::sleep(least.saturating_sub(stopped.elapsed()));
    let was_stopped = is_stopped(pid);
    let paused_seconds = stopped.elapsed().as_secs_f64();
    drop(guard);
    let first = first.join().map_err(|_| Error::Process {
        what: "the thread waiting for the zombie processor".into(),
        detail: "it panicked".into(),
    })??;
    let second = second?;
    if !was_stopped {
        return Err(Error::Process {
            what: "the zombie processor".into(),
            detail: "it was not stopped when its successor had finished".into(),
        });
    }
    Ok((first, second, paused_seconds))
}

/// Resumes (SIGCONT) a stopped child when dropped, on every path out.
struct Resume {
    pid: i32,
}

impl Drop for Resume {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a process id and a signal number has no
        // memory-safety preconditions; the child is ours and not yet reaped
        // (its waiting thread reaps it only after it exits).
        unsafe {
            libc::kill(self.pid, libc::SIGCONT);
        }
    }
}

/// The group's session timeout under `protocol`: the classic consumers' own,
/// or the broker's `group.consumer.session.timeout.ms`.
fn session_timeout(cluster: &Cluster, protocol: GroupProtocol) -> Result<Duration> {
    match protocol {
        GroupProtocol::Classic => Ok(CLASSIC_SESSION_TIMEOUT),
        GroupProtocol::Consumer => Ok(cluster
            .broker_config("group.consumer.session.timeout.ms")?
            .and_then(|v| v.parse().ok())
            .map_or(CONSUMER_SESSION_TIMEOUT_DEFAULT, Duration::from_millis)),
    }
}

/// A row of the group-protocol comparison: scenario C for one semantic, or
/// the zombie processor, under one protocol, over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProtocolRow {
    pub group_protocol: GroupProtocol,
    /// "consumer crash, at-least-once", "zombie processor".
    pub case: String,
    pub seeds: Vec<u64>,
    /// Per seed: seconds until the replacement (or B) got its first records.
    pub takeover_seconds: Vec<f64>,
    /// The zombie's refusal, per seed (empty for scenario C).
    pub errors: Vec<String>,
    pub lost: Vec<u64>,
    pub duplicated: Vec<u64>,
    pub aborted_reads: Vec<u64>,
    pub aborted_in_log: Vec<u64>,
}

impl ProtocolRow {
    /// The row of scenario C's runs of one semantic.
    pub fn of_crashes(
        protocol: GroupProtocol,
        semantic: Semantic,
        runs: &[(u64, Outcome, super::Takeover)],
    ) -> ProtocolRow {
        let counts =
            |f: &dyn Fn(&Outcome) -> u64| runs.iter().map(|(_, o, _)| f(o)).collect();
        ProtocolRow {
            group_protocol: protocol,
            case: format!("consumer crash, {semantic}"),
            seeds: runs.iter().map(|(s, _, _)| *s).collect(),
            takeover_seconds: runs
                .iter()
                .map(|(_, _, t)| t.replacement_seconds)
                .collect(),
            errors: Vec::new(),
            lost: counts(&|o| o.counts.lost),
            duplicated: counts(&|o| o.counts.duplicated),
            aborted_reads: counts(&|o| o.counts.aborted_reads),
            aborted_in_log: counts(&|o| o.counts.aborted_in_log),
        }
    }

    /// The row of the zombie's runs under one protocol.
    pub fn of_zombies(protocol: GroupProtocol, runs: &[ZombieOutcome]) -> ProtocolRow {
        let counts =
            |f: &dyn Fn(&Outcome) -> u64| runs.iter().map(|z| f(&z.outcome)).collect();
        ProtocolRow {
            group_protocol: protocol,
            case: "zombie processor".into(),
            seeds: runs.iter().map(|z| z.seed).collect(),
            takeover_seconds: runs.iter().map(|z| z.takeover_seconds).collect(),
            errors: runs
                .iter()
                .map(|z| {
                    z.refused
                        .as_ref()
                        .map_or("accepted".into(), |r| r.code.clone())
                })
                .collect(),
            lost: counts(&|o| o.counts.lost),
            duplicated: counts(&|o| o.counts.duplicated),
            aborted_reads: counts(&|o| o.counts.aborted_reads),
            aborted_in_log: counts(&|o| o.counts.aborted_in_log),
        }
    }

    /// The rows as a Markdown table (a line per protocol and case, the
    /// seeds' figures side by side), then `note`.
    pub fn markdown_table(rows: &[ProtocolRow], note: &str) -> String {
        let mut out = String::from(
            "| protocol | case | takeover (s) | zombie's error | lost | dup. | aborted reads | aborted in log |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        let join =
            |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        for r in rows {
            let takeover: Vec<String> = r
                .takeover_seconds
                .iter()
                .map(|s| format!("{s:.1}"))
                .collect();
            let mut errors = r.errors.clone();
            errors.dedup();
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.group_protocol,
                r.case,
                takeover.join(", "),
                if errors.is_empty() {
                    "".into()
                } else {
                    errors.join(", ")
                },
                join(&r.lost),
                join(&r.duplicated),
                join(&r.aborted_reads),
                join(&r.aborted_in_log),
            );
        }
        out += "\n";
        out += note;
        out += "\n";
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_child_is_resumed_by_the_guard() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(pid, libc::SIGSTOP);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_stopped(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(is_stopped(pid));
        drop(Resume { pid });
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_stopped(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!is_stopped(pid), "the guard resumed it");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
