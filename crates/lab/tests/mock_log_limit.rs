//! librdkafka's mock cluster keeps about 5 MB per partition and drops its
//! oldest record batches beyond that (`lab::cluster::MOCK_PARTITION_BYTES`).
//! What it throws away must never be counted as records a semantic lost: the
//! lab refuses such a run before it starts, or refuses to count once it sees
//! the mock cut the log; just inside the limit it counts exactly, and Apache
//! Kafka counts the same sizes exactly.
//!
//! A file of its own: its Kafka test writes 48,000 records, and runs alone.

mod common;

use lab::{Cluster, Error, RunOptions, Semantic};

#[test]
fn a_run_the_mocks_log_cannot_keep_is_refused_before_it_starts() {
    let cluster = Cluster::mock().unwrap();
    let started = std::time::Instant::now();
    let err = lab::run(
        &cluster,
        Semantic::AtLeastOnce,
        &RunOptions::records(1_000_000),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    let text = err.to_string();
    for says in [
        "1000000 records",
        "5 MB of records per partition",
        "threw away",
        "cargo xtask kafka up",
    ] {
        assert!(text.contains(says), "{says:?} missing from: {text}");
    }
    // Refused from arithmetic, before a record is sent.
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

/// One partition of 100-byte records: 48,000 pass the check before the run
/// (keys, values and the least framing a record can have come to 5.18 MB,
/// under the mock's 5 MiB), but with their real framing the log needs about
/// 5.6 MB, so the mock drops its oldest batches while the run goes on.
fn one_partition(records: u64) -> RunOptions {
    RunOptions {
        partitions: 1,
        ..RunOptions::records(records)
    }
}

#[test]
fn what_the_mock_threw_away_is_refused_never_counted_as_lost() {
    let cluster = Cluster::mock().unwrap();
    let err =
        lab::run(&cluster, Semantic::AtLeastOnce, &one_partition(48_000)).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    let text = err.to_string();
    for says in [
        "dropped offsets 0 to",
        "of partition 0",
        "not lost by the semantic",
    ] {
        assert!(text.contains(says), "{says:?} missing from: {text}");
    }
}

#[test]
fn a_run_just_inside_the_mocks_log_is_counted_exactly() {
    let cluster = Cluster::mock().unwrap();
    let outcome =
        lab::run(&cluster, Semantic::AtLeastOnce, &one_partition(40_000)).unwrap();
    assert_exact(&outcome, 40_000);
}

/// Every record acknowledged, in the log and delivered once.
fn assert_exact(outcome: &lab::Outcome, records: u64) {
    let c = &outcome.counts;
    assert_eq!(
        (c.acknowledged, c.durable, c.delivered),
        (records, records, records),
        "{outcome}"
    );
    assert_eq!(
        (c.lost, c.lost_in_log, c.duplicated),
        (0, 0, 0),
        "{outcome}"
    );
}

#[test]
fn the_crash_scenarios_check_the_mocks_log_too() {
    let cluster = Cluster::mock().unwrap();
    let options = lab::faults::crash::CrashOptions::new(1_000_000, 1);
    let err =
        lab::faults::crash::producer_crash(&cluster, Semantic::AtLeastOnce, &options)
            .unwrap_err();
    assert!(
        err.to_string().contains("5 MB of records per partition"),
        "{err}"
    );
}

/// The size the mock cannot keep in one partition (above)
/// is counted exactly by Apache Kafka.
#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn kafka_keeps_what_the_mocks_bounded_log_would_drop() {
    let cluster = common::kafka();
    let outcome =
        lab::run(&cluster, Semantic::AtLeastOnce, &one_partition(48_000)).unwrap();
    assert_exact(&outcome, 48_000);
}
