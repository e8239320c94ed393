//! Fast tests on librdkafka's in-process mock cluster. The mock is fine for the
//! happy path of at-most-once and at-least-once; it must refuse exactly-once,
//! which it cannot simulate (see `lab::cluster::why_not_on_mock`), and it must
//! never pass off what its bounded log threw away as records a semantic lost
//! (see `lab::cluster::MOCK_PARTITION_BYTES`).

use lab::{Backend, Cluster, Error, RunOptions, Semantic};

fn happy_path_on_mock(semantic: Semantic) {
    let cluster = Cluster::mock().unwrap();
    assert_eq!(cluster.backend(), Backend::Mock);
    let outcome = lab::run(&cluster, semantic, &RunOptions::records(500)).unwrap();
    let c = &outcome.counts;
    assert_eq!(
        (c.sent, c.acknowledged, c.durable, c.delivered),
        (500, 500, 500, 500),
        "{outcome}"
    );
    assert_eq!((c.lost, c.duplicated), (0, 0), "{outcome}");
    // The outcome says plainly that this was not Apache Kafka.
    assert!(
        outcome.backend_description.contains("not Apache Kafka"),
        "{}",
        outcome.backend_description
    );
    assert_eq!(outcome.backend, Backend::Mock);
}

#[test]
fn at_most_once_happy_path_on_the_mock() {
    happy_path_on_mock(Semantic::AtMostOnce);
}

#[test]
fn at_least_once_happy_path_on_the_mock() {
    happy_path_on_mock(Semantic::AtLeastOnce);
}

#[test]
fn exactly_once_is_refused_on_the_mock_with_the_reason() {
    let cluster = Cluster::mock().unwrap();
    let err = lab::run(&cluster, Semantic::ExactlyOnce, &RunOptions::records(10))
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("does not filter aborted transactions"),
        "{text}"
    );
    assert!(text.contains("cargo xtask kafka up"), "{text}");
}

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
    let c = &outcome.counts;
    assert_eq!(
        (c.acknowledged, c.durable, c.delivered),
        (40_000, 40_000, 40_000),
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
