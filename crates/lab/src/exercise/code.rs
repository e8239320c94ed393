//! The grader of the write-code exercises: builds the learner's program (or
//! the solution), runs it as a real child process against Kafka, kills it
//! with SIGKILL at a seeded step, starts its replacement in the same group,
//! and audits by id what reached the end.
//!
//! A verdict never says only "wrong": it names the ids lost or duplicated
//! and what the journals of the two processes show happened to them.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::catalog::{self, CodeExercise, ErrorPlan, Rule, Shape, PARTITIONS};
use super::kit::{CrashPoint, Entry, KitSpec};
use super::{db_grade, txn_grade};
use crate::audit::IdRanges;
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::produce::{produce, ProduceOptions};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;

/// How long one run of a learner's program may take.
pub(super) const CHILD_LIMIT: Duration = Duration::from_secs(90);

/// [`Kit::finished`](super::kit::Kit::finished) gives up after this long
/// without a step: longer than a replacement waits for a dead member's
/// session (6 s) and a rebalance.
pub(super) const IDLE_LIMIT_MS: u64 = 20_000;

/// Which program the grader runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// The learner's: `crates/exercises/src/`, binary `exercises`.
    Learner,
    /// The course's: `crates/exercises/solutions/`, binary `solutions`.
    Solution,
}

impl Program {
    /// `COURSE_EXERCISES=solutions` grades the solutions (what the course's
    /// tests run); otherwise the learner's code.
    pub fn from_env() -> Program {
        match std::env::var("COURSE_EXERCISES").as_deref() {
            Ok("solutions") => Program::Solution,
            _ => Program::Learner,
        }
    }

    fn binary_name(self) -> &'static str {
        match self {
            Program::Learner => "exercises",
            Program::Solution => "solutions",
        }
    }
}

/// What one seeded run found.
#[derive(Clone, Debug)]
pub struct SeedRun {
    /// Where the grader killed the first process (None: the transactional
    /// exercise, which injects errors instead).
    pub crash: Option<CrashPoint>,
    /// Whether the first process reached its crash point.
    pub crashed: bool,
    /// The transactional exercise: the errors injected, and met.
    pub errors: Option<ErrorsRun>,
    /// A run of two instances at once (no crash): per instance, the
    /// partitions of each assignment it was given.
    pub rebalance: Option<Vec<Vec<Vec<i32>>>>,
    pub lost: IdRanges,
    /// Ids found more than once.
    pub duplicated: IdRanges,
    /// Empty when the rule held; otherwise what happened, in sentences.
    pub problems: Vec<String>,
}

impl SeedRun {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The transactional exercise's run: what was injected, and what the
/// program's calls got, by librdkafka's classification.
#[derive(Clone, Debug)]
pub struct ErrorsRun {
    pub plan: ErrorPlan,
    pub retriable: u64,
    pub abortable: u64,
    pub fatal: u64,
    /// Each error the program's calls got, in order: "call: Code (kind)".
    pub seen: Vec<String>,
    /// The program's exit code (None: killed by a signal).
    pub exit_code: Option<i32>,
}

/// The verdict on one exercise: every seeded run, stopping at the first
/// that breaks the rule.
#[derive(Clone, Debug)]
pub struct CodeGrade {
    pub exercise: &'static CodeExercise,
    pub program: Program,
    pub runs: Vec<SeedRun>,
}

impl CodeGrade {
    pub fn passed(&self) -> bool {
        self.runs.len() == self.exercise.seeds()
            && self.runs.iter().all(SeedRun::passed)
    }
}

impl fmt::Display for CodeGrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.exercise;
        let mark = if self.passed() { "✔" } else { "✘" };
        writeln!(f, "{mark} {}: {} ({})", e.name, e.title, e.rule.phrase())?;
        for (i, run) in self.runs.iter().enumerate() {
            write!(f, "  run {} of {}, ", i + 1, e.seeds())?;
            match (&run.crash, &run.errors) {
                (_, Some(errors)) => writeln!(
                    f,
                    "{}: {} lost, {} duplicated; your calls met {} retriable, {} \
                     abortable, {} fatal error(s); exit code {}",
                    errors.plan,
                    run.lost.len(),
                    run.duplicated.len(),
                    errors.retriable,
                    errors.abortable,
                    errors.fatal,
                    errors
                        .exit_code
                        .map_or("none (killed)".into(), |c| c.to_string())
                )?,
                (Some(crash), None) => writeln!(
                    f,
                    "SIGKILL {crash} ({}): {} lost, {} duplicated",
                    if run.crashed {
                        "killed"
                    } else {
                        "never reached its crash point"
                    },
                    run.lost.len(),
                    run.duplicated.len()
                )?,
                (None, None) => match &run.rebalance {
                    Some(assignments) => writeln!(
                        f,
                        "two instances at once, the second joining while the first \
                         worked (partitions of each assignment: first {:?}, second {:?}): \
                         {} lost, {} duplicated",
                        assignments.first().cloned().unwrap_or_default(),
                        assignments.get(1).cloned().unwrap_or_default(),
                        run.lost.len(),
                        run.duplicated.len()
                    )?,
                    None => writeln!(f, "nothing injected")?,
                },
            }
            if let Some(errors) = run.errors.as_ref().filter(|e| !e.seen.is_empty()) {
                writeln!(f, "    errors met, in order: {}", errors.seen.join("; "))?;
            }
            for p in &run.problems {
                writeln!(f, "    {p}")?;
            }
        }
        if !self.passed() {
            writeln!(f, "  Hint: {}", e.hint)?;
        }
        Ok(())
    }
}

/// Grades the exercise `name` with the program [`Program::from_env`] picks.
pub fn grade(cluster: &Cluster, name: &str) -> Result<CodeGrade> {
    grade_program(cluster, catalog::find(name)?, Program::from_env())
}

/// Grades `exercise` with `program`: builds it, then one run per seeded
/// crash, stopping at the first run that breaks the rule.
pub fn grade_program(
    cluster: &Cluster,
    exercise: &'static CodeExercise,
    program: Program,
) -> Result<CodeGrade> {
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    let binary = build(program)?;
    let mut runs = Vec::new();
    let seeded = (0..exercise.seeds()).map(|i| {
        match (exercise.errors.get(i), exercise.crashes.get(i)) {
            (Some(plan), _) => txn_grade::run_once(cluster, &binary, *plan),
            (None, Some(crash)) if exercise.shape == Shape::Database => {
                db_grade::run_crash(cluster, exercise, &binary, *crash)
            }
            (None, Some(crash)) => run_once(cluster, exercise, &binary, *crash),
            (None, None) => db_grade::run_rebalance(cluster, exercise, &binary),
        }
    });
    for run in seeded {
        let run = run?;
        let passed = run.passed();
        runs.push(run);
        if !passed {
            break;
        }
    }
    Ok(CodeGrade {
        exercise,
        program,
        runs,
    })
}

/// Builds the exercises crate's `program` and returns its path; a compile
/// error comes back with the compiler's messages.
pub fn build(program: Program) -> Result<PathBuf> {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../exercises/Cargo.toml");
    let name = program.binary_name();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "--bin",
            name,
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .stderr(Stdio::piped())
        .output()
        .doing("cannot run cargo to build the exercises")?;
    if !out.status.success() {
        return Err(Error::Process {
            what: format!(
                "building your exercises (crates/exercises, binary `{name}`)"
            ),
            detail: format!(
                "the compiler says:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .find(|p| p.file_stem().is_some_and(|n| n == name))
        .ok_or_else(|| Error::Process {
            what: format!("building the `{name}` binary"),
            detail: "cargo named no such binary; run `cargo build -p exercises`".into(),
        })
}

/// The topics, group and files of one run.
pub(super) struct Stage {
    pub(super) spec: KitSpec,
    pub(super) dir: PathBuf,
}

pub(super) fn stage(
    cluster: &Cluster,
    exercise: &CodeExercise,
    crash: Option<CrashPoint>,
) -> Result<Stage> {
    let input = match exercise.shape {
        Shape::Produce | Shape::Transactional => String::new(),
        _ => cluster.fresh_name(&format!("exercise-{}", exercise.name)),
    };
    if !input.is_empty() {
        cluster.create_topic(&input, PARTITIONS)?;
    }
    let fill = |ids: std::ops::Range<u64>| {
        let options = ProduceOptions {
            ids,
            payload_bytes: 100,
            transaction_size: 100,
            overrides: Vec::new(),
        };
        produce(
            cluster,
            Semantic::AtLeastOnce,
            &input,
            &options,
            &mut |_| {},
        )
    };
    if !input.is_empty() {
        fill(exercise.ids())?;
    }
    if let Some((a, b)) = exercise.duplicated_input {
        fill(a..b)?;
    }
    let output = match exercise.shape {
        Shape::Consume | Shape::Database => None,
        Shape::ReadProcessWrite | Shape::Produce | Shape::Transactional => {
            let output = cluster.fresh_name(&format!("exercise-{}-out", exercise.name));
            cluster.create_topic(&output, PARTITIONS)?;
            Some(output)
        }
    };
    let output_name = output.clone().unwrap_or_default();
    let dir = std::env::temp_dir()
        .join("lab-exercises")
        .join(if input.is_empty() {
            &output_name
        } else {
            &input
        });
    fs::create_dir_all(&dir).doing_io(&dir)?;
    let spec = KitSpec {
        exercise: exercise.name.into(),
        bootstrap: cluster.bootstrap().into(),
        input_end: if input.is_empty() {
            Vec::new()
        } else {
            cluster.end_offsets(&input)?
        },
        records: catalog::RECORDS,
        position: dir.join("position"),
        input,
        output,
        group: cluster.fresh_name("exercise-group"),
        transactional_id: cluster.fresh_name("exercise-txn"),
        results: dir.join("results"),
        journal: dir.join("journal-1"),
        crash,
        idle_limit_ms: IDLE_LIMIT_MS,
        errors: None,
        database: (exercise.shape == Shape::Database)
            .then(|| dir.join("results.sqlite")),
        pace_ms: 0,
    };
    fs::write(&spec.results, "").doing_io(&spec.results)?;
    if let Some(file) = &spec.database {
        // The tables the learner writes to, empty (the scenario's schema).
        crate::sink::SqliteStore::open(file, crate::sink::Table::Plain)?;
    }
    Ok(Stage { spec, dir })
}

/// One seeded run: the first process, killed at `crash`; its replacement;
/// the audit.
fn run_once(
    cluster: &Cluster,
    exercise: &'static CodeExercise,
    binary: &Path,
    crash: CrashPoint,
) -> Result<SeedRun> {
    let Stage { spec, dir } = stage(cluster, exercise, Some(crash))?;
    // A program that steps around the kit's wrappers steps around the crash
    // too, and would pass without being tested.
    let how = "Process each record with kit.process, and commit through kit.commit / \
               kit.commit_transaction.";
    let (mut run, second) = crash_then_replace(binary, &spec, &dir, crash, how)?;
    if let Some(second) = second {
        audit(cluster, exercise, &spec, &second, &mut run)?;
    }
    Ok(run)
}

impl SeedRun {
    /// A run that has found nothing yet.
    pub(super) fn new(crash: Option<CrashPoint>) -> SeedRun {
        SeedRun {
            crash,
            crashed: false,
            errors: None,
            rebalance: None,
            lost: IdRanges::default(),
            duplicated: IdRanges::default(),
            problems: Vec::new(),
        }
    }
}

/// The sequence every crash run shares: the first process, which must be
/// killed at `crash` (`how` tells a program that finished anyway how to
/// reach the kit's crash points), then its replacement in the same group.
/// Returns the run so far and, when both processes ran as they should, the
/// replacement's orders (its journal) for the audit; otherwise the run's
/// problems say what went wrong.
pub(super) fn crash_then_replace(
    binary: &Path,
    spec: &KitSpec,
    dir: &Path,
    crash: CrashPoint,
    how: &str,
) -> Result<(SeedRun, Option<KitSpec>)> {
    let mut run = SeedRun::new(Some(crash));
    match start(binary, spec, &dir.join("output-1"))? {
        End::Killed => run.crashed = true,
        End::Finished => {
            run.problems.push(format!(
                "Your program finished without reaching its crash point ({crash}): the \
                 grader can only kill it inside the kit's steps. {how}"
            ));
            return Ok((run, None));
        }
        End::Failed { why, .. } => {
            run.problems.push(why);
            return Ok((run, None));
        }
    }
    let second = KitSpec {
        crash: None,
        journal: dir.join("journal-2"),
        ..spec.clone()
    };
    if let End::Failed { why, .. } = start(binary, &second, &dir.join("output-2"))? {
        run.problems.push(format!("The replacement: {why}"));
        return Ok((run, None));
    }
    Ok((run, Some(second)))
}

/// How a run of the learner's program ended.
pub(super) enum End {
    Killed,
    Finished,
    /// It failed in a way that is not the grader's crash, in a sentence,
    /// with its exit code if it exited.
    Failed {
        why: String,
        code: Option<i32>,
    },
}

pub(super) fn start(binary: &Path, spec: &KitSpec, output: &Path) -> Result<End> {
    let log = fs::File::create(output).doing_io(output)?;
    let mut child = crate::local::dies_with_parent(&mut Command::new(binary))
        .arg(&spec.exercise)
        .arg(serde_json::to_string(spec).expect("a kit spec serializes"))
        .stdout(log.try_clone().doing_io(output)?)
        .stderr(log)
        .spawn()
        .doing("cannot start your exercise program")?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .doing("waiting for your exercise program")?
        {
            break status;
        }
        if started.elapsed() > CHILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(End::Failed {
                why: format!(
                    "your program was still running after {CHILD_LIMIT:?} and was stopped: \
                     does its loop end when kit.finished() says so? Its output: {}",
                    tail(output, 15)
                ),
                code: None,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(if status.signal() == Some(libc::SIGKILL) {
        End::Killed
    } else if status.success() {
        End::Finished
    } else {
        End::Failed {
            why: format!(
                "your program ended with {status}. Its output: {}",
                tail(output, 15)
            ),
            code: status.code(),
        }
    })
}

/// The last `n` lines a program wrote, for a message.
pub(super) fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let last = &lines[lines.len().saturating_sub(n)..];
    if last.is_empty() {
        "(nothing)".into()
    } else {
        format!("\n      {}", last.join("\n      "))
    }
}

/// What each process did, from its journal.
#[derive(Default)]
struct Journal {
    handled: std::collections::HashSet<u64>,
    last_commit: Option<Vec<(i32, i64)>>,
    finished_idle: bool,
}

impl Journal {
    fn read(path: &Path) -> Result<Journal> {
        let mut journal = Journal::default();
        let Ok(file) = fs::File::open(path) else {
            return Ok(journal);
        };
        for line in BufReader::new(file).lines().map_while(|l| l.ok()) {
            // A SIGKILL can cut the last line short; it is then skipped.
            match serde_json::from_str::<Entry>(&line) {
                Ok(Entry::Processed { id, .. } | Entry::Sent { id }) => {
                    journal.handled.insert(id);
                }
                Ok(Entry::Committed { positions }) => {
                    journal.last_commit = Some(positions)
                }
                Ok(Entry::Finished { how }) => journal.finished_idle = how == "idle",
                _ => {}
            }
        }
        Ok(journal)
    }
}

/// Counts what reached the end by id and explains any break of the rule.
fn audit(
    cluster: &Cluster,
    exercise: &CodeExercise,
    first: &KitSpec,
    second: &KitSpec,
    run: &mut SeedRun,
) -> Result<()> {
    let found: Vec<u64> = match &first.output {
        None => fs::read_to_string(&first.results)
            .doing_io(&first.results)?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect(),
        Some(output) => read_ids(cluster, output, Isolation::ReadCommitted)?,
    };
    let mut times: BTreeMap<u64, u64> = BTreeMap::new();
    for id in found {
        *times.entry(id).or_default() += 1;
    }
    run.lost = exercise
        .ids()
        .filter(|id| !times.contains_key(id))
        .collect();
    run.duplicated = times
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    let (one, two) = (
        Journal::read(&first.journal)?,
        Journal::read(&second.journal)?,
    );
    let lost_breaks = exercise.rule != Rule::NoDuplicates && !run.lost.is_empty();
    let dup_breaks = exercise.rule != Rule::NoLoss && !run.duplicated.is_empty();
    if lost_breaks {
        run.problems.push(explain_lost(exercise, run, &one, &two));
    }
    if dup_breaks {
        run.problems
            .push(explain_duplicated(exercise, run, &one, &two));
    }
    Ok(())
}

fn explain_lost(
    exercise: &CodeExercise,
    run: &SeedRun,
    one: &Journal,
    two: &Journal,
) -> String {
    let mut text = format!("{} records lost: ids {}.", run.lost.len(), show(&run.lost));
    let crash = crash_text(run);
    let by_nobody = run
        .lost
        .iter()
        .all(|id| !one.handled.contains(&id) && !two.handled.contains(&id));
    if by_nobody && run.crashed {
        text += &format!(
            " Neither process {} them: the first one was killed {}, after its offsets \
             had moved past them, so its replacement in the group started after them.",
            active_verb(exercise),
            crash
        );
    } else if by_nobody {
        text += &format!(" No process {} them.", active_verb(exercise));
    } else if exercise.shape == Shape::Produce {
        text += &format!(
            " The first process handed them to its client (kit.send) and was killed {} \
             while they still waited in the client's queue, unwritten; its replacement \
             resumed from the saved position, after them.",
            crash
        );
    } else {
        text += " They were handled in a transaction that never committed, while the \
                 group's offsets moved past them.";
    }
    if two.finished_idle {
        text +=
            " (The replacement stopped when nothing happened for 20 s: its commits \
                 never reached the end of the input.)";
    }
    text
}

fn explain_duplicated(
    exercise: &CodeExercise,
    run: &SeedRun,
    one: &Journal,
    two: &Journal,
) -> String {
    let replayed: IdRanges = run
        .duplicated
        .iter()
        .filter(|id| one.handled.contains(id) && two.handled.contains(id))
        .collect();
    let crash = crash_text(run);
    let mut text = format!(
        "{} records {} twice: ids {}.",
        run.duplicated.len(),
        verb(exercise),
        show(&run.duplicated)
    );
    if !replayed.is_empty() {
        let commit = match &one.last_commit {
            Some(positions) => format!(
                "its last commit was at offsets {positions:?} (partition, next offset)"
            ),
            None => "it had committed nothing through kit.commit".into(),
        };
        text += &format!(
            " {} of them ({}) by both processes: the first was killed {} ({commit}) before \
             a commit covered them, and its replacement started from the group's last \
             committed offset.",
            replayed.len(),
            show(&replayed),
            crash
        );
    }
    if replayed.len() < run.duplicated.len() {
        text += " Others were handled twice by one process: the input holds them twice (a \
                 producer's retry wrote them again), and nothing remembered that they were done.";
    }
    text
}

/// Where the run's crash fell, for a sentence.
fn crash_text(run: &SeedRun) -> String {
    run.crash.map(|c| c.to_string()).unwrap_or_default()
}

fn active_verb(exercise: &CodeExercise) -> &'static str {
    match exercise.shape {
        Shape::Consume => "processed",
        Shape::Database => "wrote to the table",
        Shape::ReadProcessWrite | Shape::Produce | Shape::Transactional => "wrote",
    }
}

fn verb(exercise: &CodeExercise) -> &'static str {
    match exercise.shape {
        Shape::Consume => "processed",
        Shape::Database => "written to the table",
        Shape::ReadProcessWrite | Shape::Produce | Shape::Transactional => {
            "written to the output"
        }
    }
}

/// At most a few ranges of ids, for a sentence.
pub(super) fn show(ids: &IdRanges) -> String {
    let mut parts: Vec<String> = ids
        .ranges()
        .iter()
        .take(6)
        .map(|[a, b]| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if ids.ranges().len() > 6 {
        parts.push(format!("and {} more ranges", ids.ranges().len() - 6));
    }
    parts.join(", ")
}

pub(super) trait DoingIo<T> {
    fn doing_io(self, path: &Path) -> Result<T>;
}

impl<T> DoingIo<T> for std::io::Result<T> {
    fn doing_io(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            doing: format!("writing or reading {}", path.display()),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_list_of_ids_is_cut_short() {
        let ids: IdRanges = (0..40).map(|i| i * 3).collect();
        let text = show(&ids);
        assert!(
            text.starts_with("0, 3, 6, 9, 12, 15, and 34 more ranges"),
            "{text}"
        );
        assert_eq!(show(&IdRanges::span(5..9)), "5-8");
    }
}
