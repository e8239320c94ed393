//! Fast tests on librdkafka's in-process mock cluster. The mock is fine for the
//! happy path of at-most-once and at-least-once; it must refuse exactly-once,
//! which it cannot simulate (see `lab::cluster::why_not_on_mock`); what its
//! bounded log throws away is `tests/mock_log_limit.rs`'s.

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
