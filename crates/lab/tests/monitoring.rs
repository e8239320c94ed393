//! What librdkafka's statistics show per semantic, on Apache Kafka: a lost
//! acknowledgement shows as request timeouts and retries (and, without
//! idempotence, as duplicates), the happy path shows none, and a read_committed
//! reader behind an open transaction is held at the last stable offset until
//! the transaction commits.
//!
//! Ignored by a plain `cargo test` (they need a broker); `cargo xtask test`
//! starts one and runs them with `--include-ignored`. By hand:
//!
//!     cargo xtask kafka up
//!     cargo test -p lab --test monitoring -- --include-ignored --nocapture

mod common;

use lab::experiments::monitored::{
    open_transaction_lag, run_monitored, MonitoredScenario,
};
use lab::faults::eos_stress::EosStressOptions;
use lab::Semantic;

const RECORDS: u64 = 1000;

#[test]
#[ignore = "needs Apache Kafka: cargo xtask kafka up"]
fn a_lost_ack_shows_as_timeouts_and_retries_and_the_happy_path_shows_none() {
    let cluster = common::kafka();
    let happy = run_monitored(
        &cluster,
        MonitoredScenario::HappyPath,
        Semantic::AtLeastOnce,
        RECORDS,
        1,
    )
    .unwrap();
    let lost_ack = run_monitored(
        &cluster,
        MonitoredScenario::Fault(lab::faults::Scenario::LostAck),
        Semantic::AtLeastOnce,
        RECORDS,
        1,
    )
    .unwrap();
    println!("happy path: {:?}", happy.producers);
    println!("lost ack:   {:?}", lost_ack.producers);
    // Both runs were watched: a producer and (happy path) a consumer reported.
    assert!(happy.recording.clients.iter().any(|c| c.kind == "consumer"));
    for run in [&happy, &lost_ack] {
        let producer = run.recording.clients_named("producer").next().unwrap();
        assert!(producer.samples.len() >= 2, "{:?}", producer.samples.len());
        assert!(run.producers.requests > 0, "{:?}", run.producers);
    }
    assert_eq!(
        (happy.producers.retries, happy.producers.request_timeouts),
        (0, 0),
        "{:?}",
        happy.producers
    );
    assert_eq!((happy.lost, happy.duplicated), (0, 0));
    assert!(
        lost_ack.producers.request_timeouts > 0,
        "{:?}",
        lost_ack.producers
    );
    // librdkafka puts the records of a timed-out Produce request back in the
    // queue and sends them in a new request: `txmsgs` counts them again, the
    // request-retry counter `txretries` does not.
    assert!(
        lost_ack.producers.records_resent > 0,
        "{:?}",
        lost_ack.producers
    );
    assert_eq!(lost_ack.producers.retries, 0, "{:?}", lost_ack.producers);
    assert_eq!(happy.producers.records_resent, 0, "{:?}", happy.producers);
    // The records sent again are what wrote the duplicates: idempotence is off.
    assert!(lost_ack.duplicated > 0, "{lost_ack:?}");
    assert_eq!(lost_ack.lost, 0);
    // The happy path's consumer caught up: its last lag is 0 on every partition.
    let consumer = happy.recording.clients_named("consumer").next().unwrap();
    let last = consumer.last().unwrap();
    assert!(!last.partitions.is_empty());
    assert!(
        last.partitions.iter().all(|p| p.consumer_lag == 0),
        "{last:?}"
    );
}

#[test]
#[ignore = "needs Apache Kafka: cargo xtask kafka up"]
fn exactly_once_retries_a_lost_ack_without_duplicates_and_counts_its_epoch() {
    let cluster = common::kafka();
    let run = run_monitored(
        &cluster,
        MonitoredScenario::Fault(lab::faults::Scenario::LostAck),
        Semantic::ExactlyOnce,
        RECORDS,
        1,
    )
    .unwrap();
    println!("{:?} {:?}", run.producers, run.txn_states);
    assert!(run.producers.request_timeouts > 0, "{:?}", run.producers);
    assert!(run.producers.records_resent > 0, "{:?}", run.producers);
    // Sent again, written once: the broker dropped the copies by sequence number.
    assert_eq!((run.lost, run.duplicated), (0, 0));
    assert!(
        run.producers.producer_id_assignments >= 1,
        "{:?}",
        run.producers
    );
    assert!(
        run.txn_states.iter().any(|s| s.contains("InTransaction")),
        "{:?}",
        run.txn_states
    );
}

#[test]
#[ignore = "needs Apache Kafka: cargo xtask kafka up"]
fn a_read_committed_reader_is_held_at_the_lso_while_a_transaction_is_open() {
    let cluster = common::kafka();
    let run =
        open_transaction_lag(&cluster, &EosStressOptions::new(RECORDS, 1)).unwrap();
    let while_open = run.reader_while_open();
    for p in &while_open {
        println!("{p:?}");
    }
    let end = run.reader_at_end().unwrap();
    println!("end: {end:?}");
    assert!(
        !while_open.is_empty(),
        "no report while the transaction was open"
    );
    let records = RECORDS as i64;
    // Once B's later records are in, the high watermark runs ahead of the
    // last stable offset, which stays at A's first record.
    let held = while_open
        .iter()
        .filter(|p| p.hi_offset == records)
        .collect::<Vec<_>>();
    assert!(
        !held.is_empty(),
        "the high watermark never reached {records}"
    );
    for p in &held {
        assert_eq!(p.ls_offset, run.before as i64, "{p:?}");
        assert_eq!(p.held_back(), Some(records - run.before as i64), "{p:?}");
        // The reader is held at the LSO: behind the high watermark ...
        assert!(p.behind_high_watermark().unwrap() > 0, "{p:?}");
        assert!(p.committed_offset <= run.before as i64, "{p:?}");
        // ... but librdkafka measures a read_committed consumer's lag against
        // the LSO, so its consumer_lag says nothing is waiting.
        assert_eq!(p.consumer_lag, 0, "{p:?}");
    }
    // ... and after the commit it reads everything: no lag at all.
    assert_eq!(end.behind_high_watermark(), Some(0), "{end:?}");
    assert_eq!(end.consumer_lag, 0, "{end:?}");
    assert_eq!(end.held_back(), Some(0), "{end:?}");
    assert!(
        end.hi_offset > records,
        "the commit marker takes an offset: {end:?}"
    );
}
