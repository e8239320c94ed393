//! The parent's side of one worker process: find the `lab` binary, start
//! `lab worker` with its [`WorkerSpec`], give up on it after
//! [`WORKER_LIMIT`], and read the [`Event`]s it reported into a
//! [`WorkerRun`].

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::protocol::{Event, WorkerSpec};
use crate::error::{Doing, Error, Result};
use crate::liveness::{self, BrokerWatch};
use crate::support::lock;

/// How long one worker may run before the scenario gives up on it.
const WORKER_LIMIT: Duration = Duration::from_secs(180);

/// What one worker process did, read from its events.
#[derive(Debug, Default)]
pub(crate) struct WorkerRun {
    pub handed: Vec<u64>,
    pub acked: Vec<u64>,
    pub committed_through: Option<u64>,
    /// Where a producer worker started in the source.
    pub resumed: Option<u64>,
    /// A consumer worker's batch when it died between its two steps.
    pub in_gap: Vec<u64>,
    pub killed: bool,
    /// Consumer variants: records whose offsets were committed, unprocessed,
    /// when the worker died.
    pub committed_unprocessed: u64,
    /// Consumer variants: records processed, their offsets not committed,
    /// when the worker died.
    pub processed_uncommitted: u64,
    /// Records skipped because their ids had been seen.
    pub skipped: u64,
    /// The partitions of each assignment a consumer worker was given.
    pub assignments: Vec<Vec<i32>>,
    /// The worker gave up because no broker answered: the error it gave.
    pub no_broker: Option<Error>,
    /// The batch a consumer worker held when it stopped itself.
    pub paused: Vec<u64>,
    /// Resumed, the rows its held batch's transaction applied and the
    /// offsets the database held after it.
    pub after_pause: Option<(u64, Vec<(i32, i64)>)>,
    /// A consumer worker's first batch, in ms after it started.
    pub first_batch_ms: Option<u64>,
    /// How Kafka refused an exactly-once worker's transaction.
    pub refused: Option<super::protocol::Refusal>,
}

impl WorkerRun {
    /// Reads a worker's stdout, one event per line; any other line is an error.
    fn read(killed: bool, lines: &[String]) -> Result<WorkerRun> {
        let mut run = WorkerRun {
            killed,
            ..Default::default()
        };
        for line in lines {
            run.record(Event::parse(line)?);
        }
        Ok(run)
    }

    fn record(&mut self, event: Event) {
        match event {
            Event::Handed { id } => self.handed.push(id),
            Event::Acked { id } => self.acked.push(id),
            Event::Committed { through } => self.committed_through = Some(through),
            Event::CommittedUnprocessed { records } => {
                self.committed_unprocessed += records
            }
            Event::ProcessedUncommitted { records } => {
                self.processed_uncommitted += records
            }
            Event::Skipped { records } => self.skipped += records,
            Event::Resumed { id } => self.resumed = Some(id),
            Event::NoBroker {
                bootstrap,
                waited_ms,
                doing,
                cause,
            } => {
                self.no_broker = Some(Error::NoBroker {
                    bootstrap,
                    waited: Duration::from_millis(waited_ms),
                    doing: format!("{doing}, in a crash scenario's worker process"),
                    cause,
                })
            }
            Event::InGap { ids } => self.in_gap.extend(ids),
            Event::Assigned { partitions } => self.assignments.push(partitions),
            Event::Paused { ids } => self.paused.extend(ids),
            Event::AfterPause { applied, offsets } => {
                self.after_pause = Some((applied, offsets))
            }
            Event::FirstBatch { ms } => {
                self.first_batch_ms.get_or_insert(ms);
            }
            Event::Refused {
                doing,
                code,
                message,
                aborted,
            } => {
                self.refused = Some(super::protocol::Refusal {
                    doing,
                    code,
                    message,
                    aborted,
                })
            }
            // Reported for a reader of the pipe; the scenarios count these
            // from the log and the sink instead.
            Event::Failed { .. }
            | Event::Processed { .. }
            | Event::Progress { .. }
            | Event::Done => {}
        }
    }
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
        .doing("cannot run cargo to build the lab binary")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .find(|p| p.file_stem().is_some_and(|n| n == "lab"))
        .ok_or_else(|| Error::Process {
            what: "building the `lab` binary for the crash workers".into(),
            detail: "cargo named no such binary; run `cargo build -p lab` and set \
                         LAB_WORKER_BIN to target/debug/lab"
                .into(),
        })
}

/// Runs one worker to its end (or its death) and reads its report.
pub(crate) fn run_worker(spec: &WorkerSpec) -> Result<WorkerRun> {
    let orders = spec.to_json();
    let mut child = crate::local::dies_with_parent(&mut Command::new(worker_binary()?))
        .arg("worker")
        .arg(&orders)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .doing("cannot start the lab worker")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // Both pipes are read while the child runs, so it never blocks on a full one.
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            text += &line;
            text += "\n";
        }
        text
    });
    // How many lines the worker has written (news that it is still at
    // work), and whether one said that no broker answers.
    let heard = Arc::new(Heard::default());
    let counter = heard.clone();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
            .inspect(|line| counter.line(line))
            .collect::<Vec<_>>()
    });
    let mut watch =
        BrokerWatch::new(spec.bootstrap(), "waiting for a crash scenario's worker")
            .with_limit(liveness::NO_ANSWER_LIMIT + BACKSTOP_MARGIN);
    let status = wait_within(&mut child, &orders, &heard, &mut watch)?;
    let lines = lines.join().unwrap_or_default();
    let stderr = errors.join().unwrap_or_default();
    let killed = status.signal() == Some(libc::SIGKILL);
    let run = WorkerRun::read(killed, &lines)?;
    if !status.success() && !killed {
        // A worker that lost its broker said so: the same error as in-process.
        if let Some(no_broker) = run.no_broker {
            return Err(no_broker);
        }
        return Err(Error::Process {
            what: "the lab worker".into(),
            detail: format!("{status}:\n{stderr}"),
        });
    }
    Ok(run)
}

/// Runs a worker that is meant to die at its crash point; one that finishes
/// instead is an error naming `who` it was.
pub(super) fn run_to_death(spec: &WorkerSpec, who: &str) -> Result<WorkerRun> {
    let run = run_worker(spec)?;
    if !run.killed {
        return Err(Error::Process {
            what: who.into(),
            detail: "it was meant to die at its crash point, but it finished".into(),
        });
    }
    Ok(run)
}

/// How much longer than a worker's own watch the parent waits before it
/// gives up on a silent worker with no broker answering: the worker's own
/// verdict, which says what it was doing, comes first.
const BACKSTOP_MARGIN: Duration = Duration::from_secs(4);

/// What the parent has heard from a worker so far.
#[derive(Default)]
struct Heard {
    lines: AtomicU64,
    no_broker: Mutex<Option<Event>>,
}

impl Heard {
    fn line(&self, line: &str) {
        self.lines.fetch_add(1, Ordering::Relaxed);
        if let Ok(event @ Event::NoBroker { .. }) = Event::parse(line) {
            *lock(&self.no_broker) = Some(event);
        }
    }
}

/// Waits for the child to exit, or kills it: once [`WORKER_LIMIT`] has
/// passed; as soon as it said that no broker answers (its clients would take
/// seconds more to close); or once it has written nothing and no broker has
/// answered for the watch's limit (a worker stuck in a call its own watch
/// cannot interrupt).
fn wait_within(
    child: &mut Child,
    orders: &str,
    heard: &Heard,
    watch: &mut BrokerWatch,
) -> Result<ExitStatus> {
    let started = Instant::now();
    let mut seen = 0;
    loop {
        if let Some(status) = child.try_wait().doing("waiting for the lab worker")? {
            return Ok(status);
        }
        if let Some(event) = lock(&heard.no_broker).take() {
            let _ = child.kill();
            let _ = child.wait();
            let mut run = WorkerRun::default();
            run.record(event);
            return Err(run.no_broker.expect("a no-broker event sets it"));
        }
        let now = heard.lines.load(Ordering::Relaxed);
        if now > seen {
            seen = now;
            watch.heard();
        }
        if let Err(no_broker) = watch.check() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(no_broker);
        }
        if started.elapsed() > WORKER_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Stalled {
                stage: "crash worker",
                waited: WORKER_LIMIT,
                detail: format!("`lab worker {orders}` did not finish"),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The process id a worker writes to `flag` just before it stops itself
/// (SIGSTOP), waited for up to two minutes; an error naming `what` if the
/// worker (`first`) ends first or never writes it.
pub(crate) fn wait_for_pid(
    flag: &Path,
    first: &std::thread::JoinHandle<Result<WorkerRun>>,
    what: &'static str,
) -> Result<i32> {
    let limit = Duration::from_secs(120);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(pid) = std::fs::read_to_string(flag)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return Ok(pid);
        }
        if first.is_finished() {
            return Err(Error::Process {
                what: what.into(),
                detail: "it ended without reaching its pause point".into(),
            });
        }
        if Instant::now() > deadline {
            return Err(Error::Stalled {
                stage: what,
                waited: limit,
                detail: format!("it never wrote {}", flag.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` is stopped (state `T` in `/proc/<pid>/stat`).
/// Where there is no `/proc`, it is taken to be.
pub(crate) fn is_stopped(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('T')),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_adds_up_and_a_stray_line_fails_it() {
        let lines: Vec<String> = [
            Event::Resumed { id: 3 },
            Event::Handed { id: 3 },
            Event::Acked { id: 3 },
            Event::InGap { ids: vec![4, 5] },
            Event::InGap { ids: vec![6] },
            Event::Skipped { records: 2 },
            Event::Skipped { records: 1 },
            Event::Done,
        ]
        .iter()
        .map(Event::to_line)
        .collect();
        let run = WorkerRun::read(true, &lines).unwrap();
        assert_eq!(run.resumed, Some(3));
        assert_eq!((run.handed, run.acked), (vec![3], vec![3]));
        assert_eq!(run.in_gap, [4, 5, 6]);
        assert_eq!(run.skipped, 3);
        assert!(run.killed);

        let mut typo = lines.clone();
        typo.insert(2, "commited 3".into());
        let err = WorkerRun::read(true, &typo).unwrap_err().to_string();
        assert!(err.contains("\"commited 3\""), "{err}");
    }
}
