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
    /// Produces the source to the output topic in transactions while the
    /// grader injects one error of each kind ([`ErrorPlan`]); one process,
    /// no crash. The audit reads the output with `read_committed`.
    Transactional,
    /// Consumes the input into an SQLite table (the grader's database,
    /// [`Kit::database`](super::kit::Kit::database)), each batch in one
    /// database transaction; the audit counts the table's rows by id. After
    /// the crash runs, one run of two instances at once (a rebalance).
    Database,
}

/// The three transactional errors of one seeded run, each named by the id
/// whose transaction meets it. The grader's [`Kit`](super::kit::Kit) makes
/// them happen for real, inside the learner's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorPlan {
    /// Retriable: the answer to the first commit after this id was sent is
    /// lost by the chaos proxy, and that `commit_transaction` call times out.
    pub lost_answer: u64,
    /// Abortable: this id's payload is larger than the output topic's
    /// `max.message.bytes`, so the broker refuses it.
    pub poison: u64,
    /// Fatal: before the first commit after this id was sent, a successor
    /// with the same `transactional.id` calls `init_transactions`.
    pub fence: u64,
}

impl std::fmt::Display for ErrorPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the answer to the commit after id {} lost, id {} too large for the output, \
             fenced before the commit after id {}",
            self.lost_answer, self.poison, self.fence
        )
    }
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
    /// After the crash runs, one run of two instances at once, the second
    /// joining the group while the first is at work.
    pub rebalance: bool,
    /// [`Shape::Transactional`]: the injected errors of each seeded run,
    /// in order (no crash then).
    pub errors: &'static [ErrorPlan],
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

/// [`Shape::Transactional`]: the output topic's `max.message.bytes`.
pub const OUTPUT_LIMIT: usize = 100_000;

/// [`Shape::Transactional`]: the payload of the poison record, more than the
/// output topic takes (and less than the client's own 1 MB limit, so the
/// broker is the one to refuse it).
pub const POISON_BYTES: usize = 200_000;

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
        errors: &[],
        rebalance: false,
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
        errors: &[],
        rebalance: false,
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
        errors: &[],
        rebalance: false,
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
        errors: &[],
        rebalance: false,
        crashes: &[crash(Step::Process, 130), crash(Step::Commit, 3)],
        rule: Rule::Exact,
        page: "exactly-once/side-effects.md",
        hint: "The ids already processed must outlive the process: a set in memory \
               starts empty after a crash. Keep them where the results are (the results \
               store: kit.processed_ids()) and read them back when the program starts.",
    },
    CodeExercise {
        name: "offsets-in-database",
        title: "Exactly-once into a database: the offsets in the rows' transaction",
        shape: Shape::Database,
        duplicated_input: None,
        errors: &[],
        rebalance: true,
        crashes: &[crash(Step::DbCommit, 3), crash(Step::BeforeDbCommit, 2)],
        rule: Rule::Exact,
        page: "exactly-once/side-effects.md",
        hint: "Kafka's committed offset and the database commit are two commits: a crash \
               between them repeats or skips a batch. Keep the offsets where the rows are: \
               in the same database transaction, write each partition's next offset (the \
               batch's last offset + 1) to consumed_offsets, and in start_from read it back \
               (Offset::Offset(next)), Offset::Beginning when the table has none. Kafka's \
               committed offsets are then never read.",
    },
    CodeExercise {
        name: "exactly-once-processor",
        title: "The exactly-once read-process-write loop",
        shape: Shape::ReadProcessWrite,
        duplicated_input: None,
        errors: &[],
        rebalance: false,
        crashes: &[crash(Step::CommitTransaction, 2), crash(Step::Send, 130)],
        rule: Rule::Exact,
        page: "exactly-once/read-process-write.md",
        hint: "The consumer's offsets must commit in the same transaction as the output \
               records: producer.send_offsets_to_transaction(&consumer.position()?, \
               &consumer.group_metadata().unwrap(), timeout) before kit.commit_transaction, \
               and no consumer commit of its own.",
    },
    CodeExercise {
        name: "transactional-errors",
        title: "Retriable, abortable, fatal: a transactional producer's three kinds of error",
        shape: Shape::Transactional,
        duplicated_input: None,
        crashes: &[],
        rebalance: false,
        errors: &[
            ErrorPlan {
                lost_answer: 99,
                poison: 149,
                fence: 249,
            },
            ErrorPlan {
                lost_answer: 199,
                poison: 49,
                fence: 299,
            },
        ],
        rule: Rule::Exact,
        page: "exactly-once/transactions.md",
        hint: "Tell the kinds apart on KafkaError::Transaction(e), in this order: \
               e.is_retriable(): call the same function again (the commit goes on in the \
               background); e.txn_requires_abort(): kit.abort_transaction, then send the \
               whole batch again in a new transaction, records larger than \
               kit.output_limit() with an empty payload; e.is_fatal(): send and commit \
               nothing more, std::process::exit(EXIT_FENCED). A send that fails with State \
               or Fatal means the transaction already failed: stop sending, and \
               commit_transaction returns the error with its kind.",
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

    /// How many seeded runs the grader makes: one per crash, or one per
    /// error plan, and the rebalance run.
    pub fn seeds(&self) -> usize {
        self.crashes.len().max(self.errors.len()) + usize::from(self.rebalance)
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
            assert!(e.seeds() >= 2, "{}: several seeded runs", e.name);
            assert_eq!(
                e.errors.is_empty(),
                e.shape != Shape::Transactional,
                "{}: error plans are for the transactional shape only",
                e.name
            );
            for plan in e.errors {
                let ids = [plan.lost_answer, plan.poison, plan.fence];
                assert!(ids.iter().all(|id| *id < RECORDS), "{}: {plan}", e.name);
                assert!(plan.lost_answer.max(plan.poison) < plan.fence, "{plan}");
            }
            for c in e.crashes {
                assert!(c.nth >= 1 && c.nth < RECORDS, "{}: {c}", e.name);
            }
            if let Some((a, b)) = e.duplicated_input {
                assert!(a < b && b <= RECORDS, "{}", e.name);
            }
        }
    }
}
