//! The write-code exercises: what each asks of the learner's program, the
//! crashes the grader puts it through (one per seeded run), and what must
//! hold afterwards.
//!
//! Each exercise's starter (in `crates/exercises/src/`) is a widely copied
//! recipe that breaks under its crashes; its solution (in
//! `crates/exercises/solutions/`) holds under all of them. The tests run
//! both on real Kafka.

use std::ops::Range;

use super::kit::{CrashPoint, Step};

/// What the learner's program does with the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Consumes the input; [`Kit::process`](super::kit::Kit::process) is
    /// the side effect the audit counts.
    Consume,
    /// Consumes the input and writes each record to the output topic; the
    /// audit counts what a `read_committed` reader finds there.
    ReadProcessWrite,
    /// Produces the source (ids `0..RECORDS`) to the output topic,
    /// resuming from a position it saves; the audit reads the output.
    Produce,
}

/// What must hold for every seeded run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No record processed twice (losing some is the price).
    NoDuplicates,
    /// No record lost (some processed twice is the price).
    NoLoss,
    /// Every record exactly once.
    Exact,
}

impl Rule {
    pub fn phrase(self) -> &'static str {
        match self {
            Rule::NoDuplicates => "no record processed twice",
            Rule::NoLoss => "no record lost",
            Rule::Exact => "every record exactly once",
        }
    }
}

/// One write-code exercise.
#[derive(Clone, Copy, Debug)]
pub struct CodeExercise {
    /// The name of its file in `crates/exercises/src/` (with `_`) and on
    /// the command line (with `-`).
    pub name: &'static str,
    pub title: &'static str,
    pub shape: Shape,
    /// Ids written to the input a second time, after all the others (as a
    /// producer's retry would), if the exercise needs them.
    pub duplicated_input: Option<(u64, u64)>,
    /// One crash per seeded run, in order.
    pub crashes: &'static [CrashPoint],
    pub rule: Rule,
    /// The book page it belongs to, under `book/src/`.
    pub page: &'static str,
    /// What to look at when the program breaks the rule.
    pub hint: &'static str,
}

/// Records in the input of every run: a few batches, seconds per run.
pub const RECORDS: u64 = 300;

/// Partitions of the input (and output) topic.
pub const PARTITIONS: i32 = 2;

const fn crash(step: Step, nth: u64) -> CrashPoint {
    CrashPoint { step, nth }
}

/// Every write-code exercise, in the order of the book.
pub const EXERCISES: &[CodeExercise] = &[
    CodeExercise {
        name: "at-most-once-consumer",
        title: "An at-most-once consumer: never process a record twice",
        shape: Shape::Consume,
        duplicated_input: None,
        crashes: &[crash(Step::Process, 120), crash(Step::Process, 201)],
        rule: Rule::NoDuplicates,
        page: "at-most-once.md",
        hint: "At-most-once moves the committed offset past a record before the record \
               is processed: a crash may then lose it, but no replacement reads it again. \
               With enable.auto.commit the offsets are committed on a timer, whatever \
               you have processed; commit them yourself (kit.commit) before kit.process.",
    },
    CodeExercise {
        name: "at-least-once-consumer",
        title: "An at-least-once consumer: survive SIGKILL without losing a record",
        shape: Shape::Consume,
        duplicated_input: None,
        crashes: &[crash(Step::Commit, 2), crash(Step::Process, 130)],
        rule: Rule::NoLoss,
        page: "at-least-once.md",
        hint: "A committed offset says 'everything before this is done'. Commit only \
               offsets of records already processed: process the batch, then \
               kit.commit(&consumer, CommitMode::Sync).",
    },
    CodeExercise {
        name: "at-least-once-producer",
        title: "An at-least-once producer that resumes after SIGKILL without losing a record",
        shape: Shape::Produce,
        duplicated_input: None,
        crashes: &[crash(Step::Send, 150), crash(Step::Send, 260)],
        rule: Rule::NoLoss,
        page: "at-least-once.md",
        hint: "A record handed to the client (send) is not yet written: it waits in \
               librdkafka's queue for linger.ms, then for the broker's acknowledgement. \
               Save a position only past records whose delivery reports said success: \
               send a batch, flush, check the reports, then save.",
    },
    CodeExercise {
        name: "dedup-consumer",
        title: "De-duplication that survives a restart",
        shape: Shape::Consume,
        duplicated_input: Some((100, 150)),
        crashes: &[crash(Step::Process, 130), crash(Step::Commit, 3)],
        rule: Rule::Exact,
        page: "exactly-once/side-effects.md",
        hint: "The ids already processed must outlive the process: a set in memory \
               starts empty after a crash. Keep them where the results are (the results \
               store: kit.processed_ids()) and read them back when the program starts.",
    },
    CodeExercise {
        name: "exactly-once-processor",
        title: "The exactly-once read-process-write loop",
        shape: Shape::ReadProcessWrite,
        duplicated_input: None,
        crashes: &[crash(Step::CommitTransaction, 2), crash(Step::Send, 130)],
        rule: Rule::Exact,
        page: "exactly-once/read-process-write.md",
        hint: "The consumer's offsets must commit in the same transaction as the output \
               records: producer.send_offsets_to_transaction(&consumer.position()?, \
               &consumer.group_metadata().unwrap(), timeout) before kit.commit_transaction, \
               and no consumer commit of its own.",
    },
];

/// The exercise called `name` (`-` or `_` alike).
pub fn find(name: &str) -> crate::Result<&'static CodeExercise> {
    let wanted = name.trim().replace('_', "-");
    EXERCISES.iter().find(|e| e.name == wanted).ok_or_else(|| {
        crate::Error::BadConfig(format!(
            "no write-code exercise {name:?}: use one of {}",
            EXERCISES
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

impl CodeExercise {
    /// The ids of the input, each once.
    pub fn ids(&self) -> Range<u64> {
        0..RECORDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_either_way_and_an_unknown_one_lists_them() {
        assert_eq!(find("dedup_consumer").unwrap().name, "dedup-consumer");
        let err = find("dedup").unwrap_err().to_string();
        assert!(
            err.contains("at-most-once-consumer, at-least-once-consumer"),
            "{err}"
        );
    }

    #[test]
    fn every_exercise_crashes_inside_its_input() {
        for e in EXERCISES {
            assert!(e.crashes.len() >= 2, "{}: several seeded crashes", e.name);
            for c in e.crashes {
                assert!(c.nth >= 1 && c.nth < RECORDS, "{}: {c}", e.name);
            }
            if let Some((a, b)) = e.duplicated_input {
                assert!(a < b && b <= RECORDS, "{}", e.name);
            }
        }
    }
}
