//! Scenarios B and C on a real Apache Kafka broker, three seeds each: a real
//! child process is SIGKILLed, a new one recovers by its semantic's rule, and
//! the outcome must be what the course claims, every time.
//!
//!     cargo xtask kafka up
//!     cargo test -p lab --test crash_scenarios -- --include-ignored

mod common;

use lab::faults::crash::{consumer_crash, producer_crash, CrashOptions};
use lab::recovery::CHECKPOINT_EVERY;
use lab::{Outcome, Semantic};

const RECORDS: u64 = 2000;
const SEEDS: [u64; 3] = [1, 2, 3];

/// The audit's view of the log must match a plain consumer's recount.
fn recount_agrees(outcome: &Outcome, bootstrap: &str) {
    let counts = common::recount(bootstrap, &outcome.input_topic, true);
    let copies: u64 = counts.values().map(|&n| n as u64).sum();
    assert_eq!(
        counts.len() as u64,
        outcome.counts.durable,
        "durable, recounted"
    );
    assert_eq!(
        copies - counts.len() as u64,
        outcome.counts.written_twice,
        "written twice, recounted"
    );
}

fn each_seed(run: impl Fn(&lab::Cluster, &CrashOptions) -> Outcome) {
    common::use_this_lab_binary();
    let cluster = common::kafka();
    for seed in SEEDS {
        let outcome = run(&cluster, &CrashOptions::new(RECORDS, seed));
        println!("{outcome}\n");
        recount_agrees(&outcome, cluster.bootstrap());
        common::window_covers_every_fate(&outcome);
        let c = &outcome.counts;
        assert_eq!(c.source, RECORDS);
        assert_eq!(
            c.lost_in_log, 0,
            "the broker lost nothing it acknowledged\n{outcome}"
        );
    }
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn b_at_most_once_producer_crash_loses_and_never_duplicates() {
    each_seed(|cluster, options| {
        let o = producer_crash(cluster, Semantic::AtMostOnce, options).unwrap();
        assert!(
            o.counts.lost > 0,
            "records in the client's buffer die with it\n{o}"
        );
        assert_eq!(o.counts.duplicated, 0, "{o}");
        o
    });
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn b_at_least_once_producer_crash_duplicates_and_never_loses() {
    each_seed(|cluster, options| {
        let o = producer_crash(cluster, Semantic::AtLeastOnce, options).unwrap();
        assert_eq!(o.counts.lost, 0, "{o}");
        assert!(
            o.counts.duplicated > 0,
            "the replay from the checkpoint repeats acknowledged records\n{o}"
        );
        // The checkpoint is saved once everything before it is acknowledged,
        // so the replay is the stretch from the last multiple of the interval
        // to the crash point: fixed by the seed, never more than an interval.
        let w = o.window.as_ref().expect("a crash has a window");
        assert_eq!(
            w.from % CHECKPOINT_EVERY,
            0,
            "checkpoint at {}\n{o}",
            w.from
        );
        assert_eq!(o.counts.duplicated, w.to - w.from, "{o}");
        assert!(o.counts.duplicated <= CHECKPOINT_EVERY, "{o}");
        o
    });
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn b_exactly_once_producer_crash_is_fenced_and_aborted() {
    each_seed(|cluster, options| {
        let o = producer_crash(cluster, Semantic::ExactlyOnce, options).unwrap();
        assert_eq!(
            (o.counts.lost, o.counts.duplicated, o.counts.aborted_reads),
            (0, 0, 0),
            "{o}"
        );
        // The dead producer's open transaction really was in the log, and was aborted.
        assert!(o.counts.aborted_in_log > 0, "{o}");
        o
    });
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn c_at_most_once_consumer_crash_loses_and_never_duplicates() {
    each_seed(|cluster, options| {
        let o = consumer_crash(cluster, Semantic::AtMostOnce, options).unwrap();
        assert!(
            o.counts.lost > 0,
            "committed before processing, then died\n{o}"
        );
        assert_eq!(o.counts.duplicated, 0, "{o}");
        o
    });
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn c_at_least_once_consumer_crash_duplicates_and_never_loses() {
    each_seed(|cluster, options| {
        let o = consumer_crash(cluster, Semantic::AtLeastOnce, options).unwrap();
        assert_eq!(o.counts.lost, 0, "{o}");
        assert!(
            o.counts.duplicated > 0,
            "processed, then died before committing\n{o}"
        );
        o
    });
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn c_exactly_once_consumer_crash_neither_loses_nor_duplicates() {
    each_seed(|cluster, options| {
        let o = consumer_crash(cluster, Semantic::ExactlyOnce, options).unwrap();
        assert_eq!(
            (o.counts.lost, o.counts.duplicated, o.counts.aborted_reads),
            (0, 0, 0),
            "{o}"
        );
        assert!(
            o.counts.aborted_in_log > 0,
            "the dead consumer's transaction was aborted\n{o}"
        );
        // An independent reader of the output topic agrees: each id once.
        let out = o.output_topic.as_ref().unwrap();
        let counts = common::recount(cluster.bootstrap(), out, true);
        assert_eq!(counts.len() as u64, RECORDS);
        assert!(counts.values().all(|&n| n == 1));
        // A read_uncommitted reader sees the aborted copies too.
        let dirty = common::recount(cluster.bootstrap(), out, false);
        assert!(dirty.values().any(|&n| n > 1));
        o
    });
}
