//! The grader of the transactional exercise (`transactional-errors`): one
//! process of the learner's transactional producer writes the source while
//! its [kit](super::kit) injects one error of each kind (a lost commit
//! answer, a record the output topic refuses, a fencing successor). The
//! journal says which error each call got and what the program did next;
//! the audit by id reads the output with `read_committed`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::catalog::{ErrorPlan, OUTPUT_LIMIT, PARTITIONS, POISON_BYTES, RECORDS};
use super::code::{show, start, tail, DoingIo, End, ErrorsRun, SeedRun, IDLE_LIMIT_MS};
use super::kit::{Entry, KitSpec, EXIT_FENCED, EXIT_GAVE_UP};
use crate::audit::IdRanges;
use crate::cluster::Cluster;
use crate::error::Result;
use crate::read::{read_ids, Isolation};

const NAME: &str = "transactional-errors";

/// One seeded run: the program, under the errors of `plan`, then the audit.
pub(super) fn run_once(
    cluster: &Cluster,
    binary: &Path,
    plan: ErrorPlan,
) -> Result<SeedRun> {
    let output = cluster.fresh_name(&format!("exercise-{NAME}-out"));
    let limit = OUTPUT_LIMIT.to_string();
    cluster.create_topic_with(&output, PARTITIONS, &[("max.message.bytes", &limit)])?;
    let dir = std::env::temp_dir().join("lab-exercises").join(&output);
    fs::create_dir_all(&dir).doing_io(&dir)?;
    let spec = KitSpec {
        exercise: NAME.into(),
        bootstrap: cluster.bootstrap().into(),
        input: String::new(),
        input_end: Vec::new(),
        output: Some(output.clone()),
        group: cluster.fresh_name("exercise-group"),
        transactional_id: cluster.fresh_name("exercise-txn"),
        records: RECORDS,
        results: dir.join("results"),
        position: dir.join("position"),
        journal: dir.join("journal-1"),
        crash: None,
        idle_limit_ms: IDLE_LIMIT_MS,
        errors: Some(plan),
        database: None,
        pace_ms: 0,
    };
    let printed = dir.join("output-1");
    let end = start(binary, &spec, &printed)?;
    let exit_code = match &end {
        End::Finished => Some(0),
        End::Failed { code, .. } => *code,
        End::Killed => None,
    };
    let journal = read_journal(&spec.journal)?;
    let found = read_ids(cluster, &output, Isolation::ReadCommitted)?;
    let mut run = audit(&journal, &found, plan, exit_code);
    if let End::Failed { code: None, why } = end {
        run.problems.push(why);
    } else if !run.passed() && exit_code != Some(EXIT_FENCED) {
        run.problems.push(format!(
            "What your program printed last: {}",
            tail(&printed, 3)
        ));
    }
    Ok(run)
}

fn read_journal(path: &PathBuf) -> Result<Vec<Entry>> {
    let Ok(file) = fs::File::open(path) else {
        return Ok(Vec::new());
    };
    Ok(BufReader::new(file)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect())
}

/// What the journal says the program did.
#[derive(Default)]
struct Story {
    /// How many committed transactions held each id.
    committed: BTreeMap<u64, u64>,
    /// Ids of aborted transactions.
    aborted: BTreeSet<u64>,
    /// The ids of the transaction that was open when the successor fenced
    /// the program (None: it never got that far).
    fenced_open: Option<BTreeSet<u64>>,
    retriable: u64,
    abortable: u64,
    fatal: u64,
    /// Each error met, in order: "call: Code (kind)".
    seen: Vec<String>,
    /// What the program did after its errors, where that was wrong, by kind.
    mistakes: Vec<(&'static str, String)>,
}

/// Adds `what` to `seen`, or counts it on the last one if the same.
fn note_seen(seen: &mut Vec<String>, what: String) {
    match seen.last_mut() {
        Some(last) if last.split(" ×").next() == Some(what.as_str()) => {
            let n: u32 = last
                .rsplit_once(" ×")
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or(1);
            *last = format!("{what} ×{}", n + 1);
        }
        _ => seen.push(what),
    }
}

fn read_story(journal: &[Entry], plan: ErrorPlan) -> Story {
    let mut story = Story::default();
    let mut open = BTreeSet::new();
    for (i, entry) in journal.iter().enumerate() {
        match entry {
            Entry::Sent { id } => {
                open.insert(*id);
            }
            Entry::TransactionCommitted => {
                for id in std::mem::take(&mut open) {
                    *story.committed.entry(id).or_default() += 1;
                }
            }
            Entry::TransactionAborted => story.aborted.append(&mut open),
            Entry::Fenced => story.fenced_open = Some(open.clone()),
            Entry::TxnError {
                retriable,
                abortable,
                fatal,
                ..
            } => {
                let kind = if *fatal {
                    story.fatal += 1;
                    "fatal"
                } else if *retriable {
                    story.retriable += 1;
                    "retriable"
                } else if *abortable {
                    story.abortable += 1;
                    "abortable"
                } else {
                    "unclassified"
                };
                if let Entry::TxnError { call, code, .. } = entry {
                    note_seen(&mut story.seen, format!("{call}: {code} ({kind})"));
                }
                // The first wrong reaction to each kind is enough to tell.
                let told = story.mistakes.iter().any(|(k, _)| *k == kind);
                if let Some(m) = mistake(entry, &journal[i + 1..], &open, plan) {
                    if !told {
                        story.mistakes.push((kind, m));
                    }
                }
            }
            _ => {}
        }
    }
    story
}

/// The next transactional step after an error, from the journal.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Send,
    /// `commit_transaction`, and how many times in a row.
    Commit(usize),
    Abort,
    Exit,
}

fn next_step(rest: &[Entry]) -> Next {
    let is_commit = |e: &Entry| match e {
        Entry::TransactionCommitted => true,
        Entry::TxnError { call, .. } => call == "commit_transaction",
        _ => false,
    };
    for (i, entry) in rest.iter().enumerate() {
        match entry {
            Entry::Sent { .. } | Entry::SendFailed { .. } => return Next::Send,
            Entry::TransactionAborted => return Next::Abort,
            Entry::TxnError { call, .. } if call == "abort_transaction" => {
                return Next::Abort
            }
            e if is_commit(e) => {
                let times = rest[i..]
                    .iter()
                    .filter(|e| !matches!(e, Entry::AnswerDropped | Entry::Fenced))
                    .take_while(|e| is_commit(e))
                    .count();
                return Next::Commit(times);
            }
            _ => {}
        }
    }
    Next::Exit
}

/// What was wrong with the program's reaction to the error `entry`, if
/// anything; `open` holds the ids of its transaction.
fn mistake(
    entry: &Entry,
    rest: &[Entry],
    open: &BTreeSet<u64>,
    plan: ErrorPlan,
) -> Option<String> {
    let Entry::TxnError {
        call,
        code,
        retriable,
        abortable,
        fatal,
        ..
    } = entry
    else {
        return None;
    };
    let ids: IdRanges = open.iter().copied().collect();
    let mut what = format!(
        "{call} failed with {code}; the transaction held ids {}",
        show(&ids)
    );
    if open.contains(&plan.poison) && *abortable {
        what += &format!(
            ", and id {} in it has a {POISON_BYTES}-byte payload, more than the output \
             topic takes",
            plan.poison
        );
    }
    let next = next_step(rest);
    let did = match &next {
        Next::Send => "sent records again".to_string(),
        Next::Commit(1) => "called commit_transaction again".into(),
        Next::Commit(n) => format!("called commit_transaction again ({n} times)"),
        Next::Abort => "called abort_transaction".into(),
        Next::Exit => "stopped".into(),
    };
    if *fatal {
        return matches!(next, Next::Send | Next::Commit(_)).then(|| {
            format!(
                "After a fatal error ({what}), your program {did}: a fenced producer must \
                 send and commit nothing more. Exit with EXIT_FENCED."
            )
        });
    }
    if *retriable {
        return (!matches!(next, Next::Commit(_))).then(|| {
            format!(
                "After a retriable error ({what}), your program {did}. The commit goes on in \
                 the background: call commit_transaction again, and it returns the result."
            )
        });
    }
    if *abortable {
        return (next != Next::Abort).then(|| {
            format!(
                "After an abortable error ({what}), your program {did}: a transaction in \
                 that state can only be aborted (kit.abort_transaction), then its records \
                 sent again in a new one."
            )
        });
    }
    Some(format!(
        "Your program got an error the exercise does not inject ({what}) and {did}."
    ))
}

/// The verdict of one run from the journal and the `read_committed` ids.
fn audit(
    journal: &[Entry],
    found: &[u64],
    plan: ErrorPlan,
    exit_code: Option<i32>,
) -> SeedRun {
    let story = read_story(journal, plan);
    let mut times: BTreeMap<u64, u64> = BTreeMap::new();
    for id in found {
        *times.entry(*id).or_default() += 1;
    }
    // The part before the fence: every id below the fenced transaction's.
    let fence_start = story
        .fenced_open
        .as_ref()
        .and_then(|open| open.first().copied());
    let before = fence_start.unwrap_or(0);
    let mut run = SeedRun {
        crash: None,
        crashed: false,
        rebalance: None,
        errors: Some(ErrorsRun {
            plan,
            retriable: story.retriable,
            abortable: story.abortable,
            fatal: story.fatal,
            seen: story.seen.clone(),
            exit_code,
        }),
        lost: (0..before).filter(|id| !times.contains_key(id)).collect(),
        duplicated: times
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| *id)
            .collect(),
        problems: story.mistakes.iter().map(|(_, m)| m.clone()).collect(),
    };
    if !run.lost.is_empty() {
        run.problems.push(explain_lost(&run.lost, &story));
    }
    if !run.duplicated.is_empty() {
        run.problems
            .push(explain_duplicated(&run.duplicated, &story));
    }
    let late: IdRanges = times.keys().filter(|id| **id >= before).copied().collect();
    if fence_start.is_some() && !late.is_empty() {
        run.problems.push(format!(
            "{} records from the fenced transaction on are in the committed output: ids {}.",
            late.len(),
            show(&late)
        ));
    }
    run.problems
        .extend(how_it_ended(&story, plan, exit_code, journal));
    run
}

fn explain_lost(lost: &IdRanges, story: &Story) -> String {
    let aborted = lost.iter().filter(|id| story.aborted.contains(id)).count();
    let mut text = format!(
        "{} records before the fence are missing from the committed output: ids {}.",
        lost.len(),
        show(lost)
    );
    if aborted > 0 {
        text += &format!(
            " {aborted} of them were in a transaction your program aborted, and it never \
             sent them again: after an abort, send the whole batch again."
        );
    }
    text
}

fn explain_duplicated(duplicated: &IdRanges, story: &Story) -> String {
    let twice: IdRanges = duplicated
        .iter()
        .filter(|id| story.committed.get(id).is_some_and(|n| *n > 1))
        .collect();
    let mut text = format!(
        "{} records are twice in the committed output: ids {}.",
        duplicated.len(),
        show(duplicated)
    );
    if !twice.is_empty() {
        text += &format!(
            " Your program committed ids {} in two transactions: a commit that timed out \
             still went through, and the batch was sent again.",
            show(&twice)
        );
    }
    text
}

/// What is wrong with how the run ended: the fence not reached, the wrong
/// exit code, a kind of error never met.
fn how_it_ended(
    story: &Story,
    plan: ErrorPlan,
    exit_code: Option<i32>,
    journal: &[Entry],
) -> Vec<String> {
    let mut problems = Vec::new();
    if exit_code == Some(EXIT_GAVE_UP) {
        problems.push(format!(
            "The grader stopped your program after {} abortable errors in a row: it redid \
             the batch of id {} unchanged, and id {} has a {POISON_BYTES}-byte payload, more \
             than the output topic takes (kit.output_limit() = {OUTPUT_LIMIT}). When you \
             redo a batch, send such a record with an empty payload.",
            story.abortable, plan.poison, plan.poison
        ));
        return problems;
    }
    if let Some(Entry::SendFailed { id, error }) = journal.last() {
        if story.mistakes.is_empty() {
            problems.push(format!(
                "Your program stopped when kit.send of id {id} failed ({error}). A send \
                 fails like this once the transaction has failed (State) or the producer \
                 was fenced (Fatal): stop sending, and call commit_transaction, which \
                 returns the transaction's error with its kind."
            ));
            return problems;
        }
    }
    if story.fenced_open.is_none() && story.mistakes.is_empty() {
        problems.push(format!(
            "Your program ended (exit code {}) before the grader could fence it (at the \
             commit after id {}): it must write the source in transactions until then.",
            exit_code.map_or("none".into(), |c| c.to_string()),
            plan.fence
        ));
        return problems;
    }
    if story.fatal > 0 && exit_code != Some(EXIT_FENCED) && story.mistakes.is_empty() {
        problems.push(format!(
            "After the fatal error your program ended with exit code {}, not EXIT_FENCED \
             ({EXIT_FENCED}): whoever runs it must learn that it was fenced.",
            exit_code.map_or("none".into(), |c| c.to_string())
        ));
    }
    let missed: Vec<&str> = [
        (story.retriable, "retriable"),
        (story.abortable, "abortable"),
        (story.fatal, "fatal"),
    ]
    .iter()
    .filter(|(n, _)| *n == 0)
    .map(|(_, kind)| *kind)
    .collect();
    let through_kit = journal
        .iter()
        .any(|e| matches!(e, Entry::TransactionCommitted | Entry::TxnError { .. }));
    if !missed.is_empty() && problems.is_empty() && story.mistakes.is_empty() {
        problems.push(format!(
            "Your program's calls met no {} error: commit and abort through \
             kit.commit_transaction and kit.abort_transaction{}.",
            missed.join(", no "),
            if through_kit {
                ""
            } else {
                " (none of its commits went through the kit)"
            },
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(call: &str, retriable: bool, abortable: bool, fatal: bool) -> Entry {
        Entry::TxnError {
            call: call.into(),
            code: "Code".into(),
            retriable,
            abortable,
            fatal,
            message: "m".into(),
        }
    }

    fn sent(ids: std::ops::Range<u64>) -> Vec<Entry> {
        ids.map(|id| Entry::Sent { id }).collect()
    }

    const PLAN: ErrorPlan = ErrorPlan {
        lost_answer: 1,
        poison: 3,
        fence: 5,
    };

    #[test]
    fn commits_again_after_an_abortable_error_are_named_with_the_ids() {
        let mut journal = sent(0..2);
        journal.push(Entry::TransactionCommitted);
        journal.extend(sent(2..4));
        journal.extend((0..3).map(|_| error("commit_transaction", false, true, false)));
        let run = audit(&journal, &[0, 1], PLAN, Some(1));
        let text = run.problems.join("\n");
        assert!(
            text.contains("called commit_transaction again (2 times)")
                && text.contains("ids 2-3"),
            "{text}"
        );
        assert_eq!(run.errors.unwrap().abortable, 3);
    }

    #[test]
    fn the_same_error_in_a_row_is_counted_not_repeated() {
        let mut seen = Vec::new();
        for what in [
            "a: X (retriable)",
            "a: Y (abortable)",
            "a: Y (abortable)",
            "a: Y (abortable)",
        ] {
            note_seen(&mut seen, what.into());
        }
        assert_eq!(seen, ["a: X (retriable)", "a: Y (abortable) ×3"]);
    }

    #[test]
    fn a_right_reaction_to_each_kind_passes() {
        let mut journal = sent(0..2);
        journal.push(Entry::AnswerDropped);
        journal.push(error("commit_transaction", true, false, false));
        journal.push(Entry::TransactionCommitted);
        journal.extend(sent(2..4));
        journal.push(error("commit_transaction", false, true, false));
        journal.push(Entry::TransactionAborted);
        journal.extend(sent(2..4));
        journal.push(Entry::TransactionCommitted);
        journal.extend(sent(4..6));
        journal.push(Entry::Fenced);
        journal.push(error("commit_transaction", false, false, true));
        let run = audit(&journal, &[0, 1, 2, 3], PLAN, Some(EXIT_FENCED));
        assert!(run.passed(), "{:?}", run.problems);
        let met = run.errors.unwrap();
        assert_eq!((met.retriable, met.abortable, met.fatal), (1, 1, 1));
    }

    #[test]
    fn a_program_that_stops_on_a_refused_send_is_told_to_commit() {
        let mut journal = sent(0..2);
        journal.push(error("commit_transaction", false, true, false));
        journal.push(Entry::TransactionAborted);
        journal.extend(sent(0..1));
        journal.push(Entry::SendFailed {
            id: 1,
            error: "Message production error: State".into(),
        });
        let run = audit(&journal, &[], PLAN, Some(1));
        let text = run.problems.join("\n");
        assert!(text.contains("kit.send of id 1 failed"), "{text}");
        assert!(!run.passed());
    }

    #[test]
    fn a_batch_sent_twice_after_a_timed_out_commit_is_explained() {
        let mut journal = sent(0..2);
        journal.push(error("commit_transaction", true, false, false));
        journal.push(Entry::TransactionCommitted);
        journal.extend(sent(0..2));
        journal.push(Entry::TransactionCommitted);
        journal.extend(sent(2..4));
        journal.push(Entry::Fenced);
        journal.push(error("commit_transaction", false, false, true));
        let run = audit(&journal, &[0, 0, 1, 1], PLAN, Some(EXIT_FENCED));
        let text = run.problems.join("\n");
        assert!(
            text.contains("ids 0-1") && text.contains("two transactions"),
            "{text}"
        );
    }
}
