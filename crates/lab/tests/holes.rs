//! The holes a client can still fall into, on Apache Kafka: (a) a Produce
//! request of a finished transaction that reaches the broker late, (c) the
//! consumer group metadata of a read-process-write processor taken before a
//! rebalance and reused after it.
//!
//! Ignored by a plain `cargo test` (they need a broker); by hand:
//!
//!     cargo xtask kafka up
//!     KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
//!         cargo test -p lab --test holes -- --include-ignored --nocapture

mod common;

use lab::faults::holes::{
    late_produce, stale_metadata, LateCase, LateProduceOptions, MetadataUse,
    PER_TRANSACTION,
};

/// (a), the retried case: librdkafka times the held request out, sends the
/// batch again on a new connection, and T1 commits. The original request
/// reaches the broker seconds after T1 ended, while T2 is open on the same
/// partition: the broker answers it as a duplicate of the batch it already
/// has, and nothing of it lands in T2.
#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn a_late_retried_produce_of_a_committed_transaction_is_answered_as_a_duplicate() {
    let cluster = common::kafka();
    let r =
        late_produce(&cluster, &LateProduceOptions::new(LateCase::Retried)).unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert!(r.t1_committed && r.t2_committed, "{r:?}");
    assert!(r.arrived_during_t2 && r.arrived_after_t1_ms > 0, "{r:?}");
    let batch = &r.held.batches[0];
    assert!(
        batch.transactional && batch.base_sequence == PER_TRANSACTION as i32,
        "{r:?}"
    );
    assert!(
        r.held.client_gone,
        "the client had given up on that connection"
    );
    // The broker's answer: no error, yet nothing appended a second time.
    assert_eq!(r.late_errors, ["NONE"], "{r:?}");
    for t in ["T0", "T1", "T2"] {
        assert_eq!(
            r.committed_seen[t],
            (PER_TRANSACTION, PER_TRANSACTION),
            "{t}: {r:?}"
        );
    }
    assert_eq!((r.anomalies, r.aborted_in_log), (0, 0), "{r:?}");
}

/// (a), the expired case: the records time out, T1 can only be aborted, and
/// librdkafka bumps its producer epoch. The held request reaches the broker
/// while T2 is open on the same partition, with the old epoch: refused.
#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn a_late_produce_of_an_aborted_transaction_is_refused_for_its_old_epoch() {
    let cluster = common::kafka();
    let r =
        late_produce(&cluster, &LateProduceOptions::new(LateCase::Expired)).unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert!(!r.t1_committed && r.t2_committed, "{r:?}");
    assert!(r.t1_end.contains("timed out"), "{}", r.t1_end);
    assert!(r.arrived_during_t2 && r.arrived_after_t1_ms > 0, "{r:?}");
    assert_eq!(r.late_errors, ["INVALID_PRODUCER_EPOCH"], "{r:?}");
    assert_eq!(
        r.delivery_failures.values().sum::<u64>(),
        PER_TRANSACTION,
        "{r:?}"
    );
    assert_eq!(
        r.committed_seen["T1"],
        (0, 0),
        "no id of the aborted T1 leaks: {r:?}"
    );
    assert_eq!(r.committed_seen["T2"], (PER_TRANSACTION, PER_TRANSACTION));
    assert_eq!(r.anomalies, 0, "{r:?}");
}

/// (c): the same read-process-write processor through a rebalance (a second
/// instance joins), with the group metadata taken once or fresh per commit.
/// The stale one is refused with ILLEGAL_GENERATION on every transaction
/// after the rebalance (no duplicate gets in); when it gives up and leaves,
/// the other instance finishes from the committed offsets;
/// the fresh one commits through the rebalance, nothing lost or duplicated.
#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn stale_group_metadata_is_refused_after_a_rebalance_and_fresh_is_accepted() {
    let cluster = common::kafka();
    let stale = stale_metadata(&cluster, MetadataUse::TakenOnce).unwrap();
    println!("{}", serde_json::to_string_pretty(&stale).unwrap());
    assert!(
        stale.tried_after_rebalance > 0,
        "the rebalance came too late: {stale:?}"
    );
    assert_eq!(stale.committed_after_rebalance, 0, "{stale:?}");
    assert!(stale.aborted > 0 && stale.errors.len() == 1, "{stale:?}");
    let error = stale.errors.keys().next().unwrap();
    assert!(
        error.starts_with("IllegalGeneration (abortable)"),
        "{error}"
    );
    assert_eq!(stale.duplicated, 0, "{stale:?}");
    // It gives up and leaves the group; the second instance takes its
    // partitions from the committed offsets and finishes the input.
    assert!(stale.joiner_committed > 0, "{stale:?}");
    assert_eq!(stale.missing, 0, "{stale:?}");

    let fresh = stale_metadata(&cluster, MetadataUse::FreshPerCommit).unwrap();
    println!("{}", serde_json::to_string_pretty(&fresh).unwrap());
    assert!(fresh.committed_after_rebalance > 0, "{fresh:?}");
    assert!(fresh.errors.is_empty() && fresh.aborted == 0, "{fresh:?}");
    assert_eq!((fresh.missing, fresh.duplicated), (0, 0), "{fresh:?}");
}
