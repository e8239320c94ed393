//! The grader of the database exercise (`offsets-in-database`): the
//! learner's consumer writes the input into an SQLite table, each batch in
//! one database transaction. In the crash runs the grader kills it with
//! SIGKILL right before or right after a database commit and starts its
//! replacement in the same group; in the rebalance run two instances work at
//! once, the second joining while the first is at it, so partitions move.
//! The audit reads the table with its own SQL (rows by id: missing,
//! duplicated) and explains a failure from the journals: what the database
//! held when the first process died, and where each assignment started.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use super::catalog::CodeExercise;
use super::code::{crash_then_replace, show, stage, start, End, SeedRun, Stage};
use super::kit::{CrashPoint, Entry, KitSpec};
use crate::cluster::Cluster;
use crate::error::{Error, Result};

/// The rebalance run's pause after each database commit: the first
/// instance is still at work when the second has joined.
const PACE_MS: u64 = 600;

/// One crash run: the first process, killed at `crash`; its replacement;
/// the audit of the table.
pub(super) fn run_crash(
    cluster: &Cluster,
    exercise: &'static CodeExercise,
    binary: &Path,
    crash: CrashPoint,
) -> Result<SeedRun> {
    let Stage { spec, dir } = stage(cluster, exercise, Some(crash))?;
    let how = "Commit each batch's database transaction with kit.commit_db(tx).";
    let (mut run, second) = crash_then_replace(binary, &spec, &dir, crash, how)?;
    let Some(second) = second else {
        return Ok(run);
    };
    let journals = [
        Journal::read(&spec.journal)?,
        Journal::read(&second.journal)?,
    ];
    audit(exercise, &spec, &journals, &mut run)?;
    Ok(run)
}

/// The rebalance run: two instances at once, the second started once the
/// first has committed a batch; both paced, so partitions move while the
/// first is still at work.
pub(super) fn run_rebalance(
    cluster: &Cluster,
    exercise: &'static CodeExercise,
    binary: &Path,
) -> Result<SeedRun> {
    let Stage { spec, dir } = stage(cluster, exercise, None)?;
    let first = KitSpec {
        pace_ms: PACE_MS,
        ..spec
    };
    let second = KitSpec {
        journal: dir.join("journal-2"),
        ..first.clone()
    };
    let one = {
        let (binary, spec, out) =
            (binary.to_path_buf(), first.clone(), dir.join("output-1"));
        std::thread::spawn(move || start(&binary, &spec, &out))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !one.is_finished()
        && Journal::read(&first.journal)?.commits.is_empty()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let two = start(binary, &second, &dir.join("output-2"))?;
    let one = one.join().map_err(|_| Error::Process {
        what: "the thread waiting for the first instance".into(),
        detail: "it panicked".into(),
    })??;
    let mut run = SeedRun::new(None);
    for (who, end) in [("The first instance", one), ("The second instance", two)] {
        match end {
            End::Finished => {}
            End::Killed => run.problems.push(format!("{who} was killed by SIGKILL.")),
            End::Failed { why, .. } => run.problems.push(format!("{who}: {why}")),
        }
    }
    let journals = [
        Journal::read(&first.journal)?,
        Journal::read(&second.journal)?,
    ];
    run.rebalance = Some(journals.iter().map(Journal::partitions).collect());
    if run.problems.is_empty() {
        audit(exercise, &first, &journals, &mut run)?;
    }
    Ok(run)
}

/// What one process did, from its journal.
#[derive(Default)]
struct Journal {
    /// Each database commit: the table's rows and the offsets the database
    /// kept, once committed.
    commits: Vec<(u64, Vec<(i32, i64)>)>,
    /// Its last commit of offsets to Kafka (partition, next offset).
    kafka_commit: Option<Vec<(i32, i64)>>,
    /// Each assignment: where each partition started.
    assigned: Vec<Vec<(i32, String)>>,
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
                Ok(Entry::DbCommitted { rows, offsets }) => {
                    journal.commits.push((rows, offsets))
                }
                Ok(Entry::Committed { positions }) => {
                    journal.kafka_commit = Some(positions)
                }
                Ok(Entry::Assigned { starts }) => journal.assigned.push(starts),
                Ok(Entry::Finished { how }) => journal.finished_idle = how == "idle",
                _ => {}
            }
        }
        Ok(journal)
    }

    fn partitions(&self) -> Vec<Vec<i32>> {
        self.assigned
            .iter()
            .map(|a| a.iter().map(|(p, _)| *p).collect())
            .collect()
    }

    /// The offsets the database kept after this process's last commit.
    fn stored_at_the_end(&self) -> Vec<(i32, i64)> {
        self.commits
            .last()
            .map(|(_, o)| o.clone())
            .unwrap_or_default()
    }
}

/// The results table, read with SQL of its own: per id, the partition and
/// offset of each row.
fn recount(file: &Path) -> Result<BTreeMap<u64, Vec<(i32, i64)>>> {
    let fail = |e: rusqlite::Error| {
        Error::Database {
        file: file.to_path_buf(),
        doing: "reading the results table back".into(),
        cause: e.to_string(),
        hint: "Did your program drop or rename the table results? Leave the grader's tables as they are.",
    }
    };
    let conn = rusqlite::Connection::open(file).map_err(fail)?;
    let mut query = conn
        .prepare("SELECT id, kafka_partition, kafka_offset FROM results")
        .map_err(fail)?;
    let rows = query
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<(i64, i32, i64)>>>())
        .map_err(fail)?;
    let mut table: BTreeMap<u64, Vec<(i32, i64)>> = BTreeMap::new();
    for (id, partition, offset) in rows {
        table
            .entry(id as u64)
            .or_default()
            .push((partition, offset));
    }
    Ok(table)
}

/// Counts the table by id and explains any row missing or repeated.
fn audit(
    exercise: &CodeExercise,
    spec: &KitSpec,
    journals: &[Journal; 2],
    run: &mut SeedRun,
) -> Result<()> {
    let file = spec.database.as_ref().ok_or_else(|| {
        Error::BadConfig("the database exercise's orders name no database".into())
    })?;
    let table = recount(file)?;
    run.lost = exercise
        .ids()
        .filter(|id| !table.contains_key(id))
        .collect();
    run.duplicated = table
        .iter()
        .filter(|(_, rows)| rows.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    if !run.duplicated.is_empty() {
        run.problems.push(explain_duplicated(run, &table, journals));
    }
    if !run.lost.is_empty() {
        run.problems.push(explain_lost(run, journals));
    }
    Ok(())
}

/// An assignment's starts in words: "partition 0 at offset 150, ...".
fn starts_text(starts: &[(i32, String)]) -> String {
    let one = |(p, offset): &(i32, String)| {
        let at = match offset.as_str() {
            "Stored" => "Kafka's committed offset (Offset::Stored)".to_string(),
            "Beginning" => "the beginning (Offset::Beginning)".to_string(),
            "End" => "the end (Offset::End)".to_string(),
            other => match other
                .strip_prefix("Offset(")
                .and_then(|o| o.strip_suffix(')'))
            {
                Some(n) => format!("offset {n}"),
                None => other.to_string(),
            },
        };
        format!("partition {p} at {at}")
    };
    let parts: Vec<String> = starts.iter().map(one).collect();
    if parts.is_empty() {
        "no partition".into()
    } else {
        parts.join(", ")
    }
}

/// Whether an assignment started every partition where `stored` says
/// (the beginning for a partition it has no offset for).
fn started_where_stored(starts: &[(i32, String)], stored: &[(i32, i64)]) -> bool {
    starts
        .iter()
        .all(|(p, offset)| match stored.iter().find(|(q, _)| q == p) {
            Some((_, next)) => *offset == format!("Offset({next})"),
            None => offset == "Beginning",
        })
}

fn offsets_text(offsets: &[(i32, i64)]) -> String {
    let parts: Vec<String> = offsets
        .iter()
        .map(|(p, o)| format!("partition {p}: {o}"))
        .collect();
    parts.join(", ")
}

fn explain_duplicated(
    run: &SeedRun,
    table: &BTreeMap<u64, Vec<(i32, i64)>>,
    [one, two]: &[Journal; 2],
) -> String {
    let most = table.values().map(Vec::len).max().unwrap_or(0);
    let times = if most > 2 { "more than once" } else { "twice" };
    let mut text = format!(
        "{} ids appear {times} in the table: ids {}.",
        run.duplicated.len(),
        show(&run.duplicated)
    );
    let same_record = run.duplicated.iter().all(|id| {
        table
            .get(&id)
            .is_some_and(|rows| rows.windows(2).all(|w| w[0] == w[1]))
    });
    if same_record {
        text += " Each is one record (same partition, same offset) written by two \
                 database transactions: it was read again.";
    }
    let Some(crash) = run.crash.filter(|_| run.crashed) else {
        // The rebalance run.
        let assignments = |j: &Journal| {
            let all: Vec<String> = j.assigned.iter().map(|a| starts_text(a)).collect();
            format!("[{}]", all.join("; "))
        };
        text += &format!(
            " The first instance's assignments started {}; the second's {}; the \
             database's offsets at the end: {}. A partition that moves must start where \
             the database says, and the database's offsets must be written in the same \
             transaction as the rows they cover.",
            assignments(one),
            assignments(two),
            offsets_text(&two.stored_at_the_end())
        );
        return text;
    };
    let stored = one.stored_at_the_end();
    let kafka = match &one.kafka_commit {
        Some(positions) => format!(
            "Kafka's committed offsets (its last kit.commit) were {}",
            offsets_text(positions)
        ),
        None => "it had committed no offset to Kafka".into(),
    };
    let starts = two.assigned.first().cloned().unwrap_or_default();
    if stored.is_empty() {
        text += &format!(
            " Your transaction stores no offsets: when the first process was killed \
             {crash}, consumed_offsets held nothing and {kafka}. Its replacement started \
             {}, before rows the table already held: Kafka never heard of the database \
             commit the crash followed.",
            starts_text(&starts)
        );
    } else if !started_where_stored(&starts, &stored) {
        text += &format!(
            " When the first process was killed {crash}, the database kept the next \
             offsets {}, but your start_from started the replacement at {}: read them \
             from consumed_offsets.",
            offsets_text(&stored),
            starts_text(&starts)
        );
    } else {
        text += &format!(
            " The replacement started where the database said ({}), but those offsets \
             did not cover every row the table held when the first process was killed \
             {crash}: store each partition's next offset (the last offset + 1) in the \
             same transaction as the rows.",
            starts_text(&starts)
        );
    }
    text
}

fn explain_lost(run: &SeedRun, [one, two]: &[Journal; 2]) -> String {
    let mut text = format!(
        "{} ids never reached the table: ids {}.",
        run.lost.len(),
        show(&run.lost)
    );
    let starts: Vec<String> = one
        .assigned
        .iter()
        .chain(&two.assigned)
        .map(|a| starts_text(a))
        .collect();
    text += &format!(
        " No transaction that committed held them. The assignments started at: {}; \
         the database's offsets at the end: {}. A start past the rows the table holds \
         skips records for good.",
        starts.join("; "),
        offsets_text(&two.stored_at_the_end())
    );
    if two.finished_idle {
        text += " (The last process stopped when nothing happened for 20 s: neither the \
                 database's offsets nor Kafka's committed ones reached the end of the input.)";
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_read_as_words_and_are_checked_against_the_stored_offsets() {
        let starts = vec![(0, "Offset(150)".to_string()), (1, "Beginning".to_string())];
        assert_eq!(
            starts_text(&starts),
            "partition 0 at offset 150, partition 1 at the beginning (Offset::Beginning)"
        );
        assert!(started_where_stored(&starts, &[(0, 150)]));
        assert!(!started_where_stored(&starts, &[(0, 150), (1, 20)]));
        let stored = vec![(0, "Stored".to_string())];
        assert!(!started_where_stored(&stored, &[(0, 150)]));
        assert!(starts_text(&stored).contains("Kafka's committed offset"));
    }
}
