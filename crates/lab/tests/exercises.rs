//! The write-code exercises, proved from both sides on real Kafka: each
//! starter in crates/exercises/src/ breaks its rule under the grader's
//! crashes and is told what happened, with ids; each solution in
//! crates/exercises/solutions/ holds under every crash, and every crash
//! really fell.

mod common;

use lab::exercise::catalog::{self, Shape, EXERCISES};
use lab::exercise::code::{grade_program, ErrorsRun, Program};
use lab::exercise::configure::{self, try_settings};
use lab::exercise::kit::EXIT_FENCED;

fn both_sides(name: &str) {
    let cluster = common::kafka();
    let exercise = catalog::find(name).unwrap();
    let transactional = exercise.shape == Shape::Transactional;

    let starter = grade_program(&cluster, exercise, Program::Learner).unwrap();
    let text = starter.to_string();
    println!("the starter:\n{text}");
    assert!(
        !starter.passed(),
        "the starter crates/exercises/src/{}.rs passed; it must fail (if you solved \
         it, restore the starter with `git checkout crates/exercises/src`):\n{text}",
        name.replace('-', "_")
    );
    let failed = starter.runs.last().unwrap();
    assert!(text.contains("ids ") && text.contains("Hint: "), "{text}");
    if transactional {
        assert!(failed.errors.is_some(), "{text}");
    } else {
        assert!(
            failed.crashed,
            "the starter's failure came from its crash:\n{text}"
        );
        let crash = failed.crash.unwrap().to_string();
        assert!(text.contains(&crash), "the crash point is named:\n{text}");
    }
    if exercise.shape == Shape::Database {
        // The starter commits to Kafka after the database: the crash between
        // the two commits repeats the batch, and the grader says why.
        for expected in ["ids appear twice in the table", "stores no offsets"] {
            assert!(text.contains(expected), "{expected}:\n{text}");
        }
    }

    let solution = grade_program(&cluster, exercise, Program::Solution).unwrap();
    let text = solution.to_string();
    println!("the solution:\n{text}");
    assert!(solution.passed(), "the solution failed:\n{text}");
    assert_eq!(solution.runs.len(), exercise.seeds(), "{text}");
    for run in &solution.runs {
        match (&run.errors, &run.rebalance) {
            (Some(met), _) => check_each_kind_met(met, &text),
            (None, Some(assignments)) => check_partitions_moved(assignments, &text),
            (None, None) => assert!(run.crashed, "every crash fell:\n{text}"),
        }
    }
    assert!(text.starts_with('✔'), "{text}");
}

/// The rebalance run really moved partitions: the second instance was given
/// some, and the first was assigned more than once.
fn check_partitions_moved(assignments: &[Vec<Vec<i32>>], text: &str) {
    assert_eq!(assignments.len(), 2, "two instances:\n{text}");
    assert!(
        assignments[0].len() >= 2,
        "the first was assigned again:\n{text}"
    );
    assert!(
        assignments[1].iter().any(|a| !a.is_empty()),
        "the second instance took partitions:\n{text}"
    );
}

/// The transactional exercise's triggers produce the kinds they claim, as
/// librdkafka classifies them: a lost commit answer a retriable timeout, the
/// oversized record an abortable error, the successor a fatal fencing.
fn check_each_kind_met(met: &ErrorsRun, text: &str) {
    assert_eq!(met.exit_code, Some(EXIT_FENCED), "{text}");
    assert_eq!(met.retriable, 1, "one lost answer:\n{text}");
    assert!(met.abortable >= 1, "{text}");
    assert_eq!(met.fatal, 1, "{text}");
    let seen = met.seen.join("; ");
    for expected in [
        "commit_transaction: OperationTimedOut (retriable)",
        "commit_transaction: MessageSizeTooLarge (abortable)",
        "commit_transaction: Fenced (fatal)",
    ] {
        assert!(seen.contains(expected), "{expected} in {seen}");
    }
}

#[test]
fn every_exercise_has_a_test_here() {
    let this = include_str!("exercises.rs");
    for e in EXERCISES {
        let test = format!("both_sides(\"{}\")", e.name);
        assert!(this.contains(&test), "add a test calling {test}");
    }
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn at_most_once_consumer() {
    both_sides("at-most-once-consumer");
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn at_least_once_consumer() {
    both_sides("at-least-once-consumer");
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn at_least_once_producer() {
    both_sides("at-least-once-producer");
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn dedup_consumer() {
    both_sides("dedup-consumer");
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn offsets_in_database() {
    both_sides("offsets-in-database");
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn exactly_once_processor() {
    both_sides("exactly-once-processor");
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn transactional_errors() {
    both_sides("transactional-errors");
}

/// A configure exercise: the starter's settings fail with an explanation
/// naming ids, the solution's pass.
fn configure_both_sides(
    name: &str,
    starter: &[(&str, &str)],
    solution: &[(&str, &str)],
) {
    let cluster = common::kafka();
    let wrong = try_settings(&cluster, name, starter).unwrap();
    let text = wrong.to_string();
    assert!(!wrong.passed(), "the starter settings passed:\n{text}");
    assert!(text.contains("(ids ") && text.contains("Hint: "), "{text}");
    let right = try_settings(&cluster, name, solution).unwrap();
    assert!(right.passed(), "the solution's settings failed:\n{right}");
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn configure_new_group_reads_everything() {
    configure_both_sides(
        "new-group-reads-everything",
        &[],
        &[("auto.offset.reset", "earliest")],
    );
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn configure_no_duplicates_after_lost_ack() {
    configure_both_sides(
        "no-duplicates-after-lost-ack",
        &[],
        &[("enable.idempotence", "true")],
    );
    let err = try_settings(
        &common::kafka(),
        "no-duplicates-after-lost-ack",
        &[("transactional.id", "t")],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("remove transactional.id"), "{err}");
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn configure_reader_skips_aborted() {
    configure_both_sides(
        "reader-skips-aborted",
        &[],
        &[("isolation.level", "read_committed")],
    );
}

#[test]
fn every_configure_exercise_has_a_test_here() {
    // Without whitespace: rustfmt may break a call over lines.
    let this: String = include_str!("exercises.rs").split_whitespace().collect();
    for e in configure::EXERCISES {
        let test = format!("configure_both_sides(\"{}\"", e.name);
        assert!(this.contains(&test), "add a test calling {test}");
    }
}
