//! Hole (b) on the course's three-broker cluster: the broker leading
//! partition 0 is SIGKILLed while the producer has requests in flight to
//! it, then started again. The idempotent producer alone, against a
//! transactional one (read_committed) and a plain acks=all one.
//!
//!     cargo xtask kafka up --three
//!     cargo test -p lab --test holes_leader -- --include-ignored --nocapture
//!
//! It kills brokers: `cargo xtask test` runs it apart, after the other
//! files that kill brokers, never beside them.

mod common;

use lab::faults::holes::{
    leader_in_flight, InFlightProducer, LeaderInFlightOptions, LeaderInFlightReport,
    IN_FLIGHT_RECORDS,
};
use lab::{Cluster, Error};

use common::three_brokers;

/// What every trial must show whatever the producer: the leader really
/// died with records in flight, others took over, it came back, and the
/// client ended without a fatal error.
fn struck_with_records_in_flight(r: &LeaderInFlightReport) {
    assert!(!r.killed_partitions.is_empty(), "{r:#?}");
    assert!(r.killed_partitions.contains(&0), "{r:#?}");
    assert!(r.unacknowledged_at_kill > 0, "{r:#?}");
    assert!(
        r.taken_over_s > 0.0 && r.taken_over_s <= r.back_in_sync_s,
        "{r:#?}"
    );
    assert_eq!(r.fatal, None, "{r:#?}");
    // Without transactions the producer had requests in flight to the dead
    // leader and sent their records again (librdkafka's `txretries` stays 0
    // when a connection dies: its `txmsgs` counts what was sent again).
    // A transactional producer that had just committed may have had none.
    if r.producer != InFlightProducer::Transactional {
        assert!(
            r.records_resent.is_some_and(|n| n > 0),
            "records to the dead leader were sent again: {r:#?}"
        );
    }
}

/// The three producers, one kill point each (the same for all three).
#[test]
#[ignore = "needs the three-broker cluster: run through `cargo xtask test`"]
fn a_leader_killed_with_requests_in_flight_loses_no_acknowledged_record() {
    let cluster = three_brokers();
    let options = LeaderInFlightOptions::new(IN_FLIGHT_RECORDS, 1);
    for producer in InFlightProducer::ALL {
        let r = leader_in_flight(&cluster, producer, &options).unwrap();
        println!("{}", serde_json::to_string_pretty(&r).unwrap());
        struck_with_records_in_flight(&r);
        assert_eq!(r.killed_after, options.kill_point(), "{r:#?}");
        // acks=all: nothing acknowledged was lost, by any of the three.
        assert_eq!(r.audit.lost, 0, "{r:#?}");
        match producer {
            InFlightProducer::Transactional => {
                // Every transaction committed, each id once for a
                // read_committed reader.
                assert_eq!(r.acknowledged, IN_FLIGHT_RECORDS, "{r:#?}");
                assert_eq!((r.audit.missing, r.audit.duplicated), (0, 0), "{r:#?}");
                assert_eq!(r.audit.read, IN_FLIGHT_RECORDS, "{r:#?}");
            }
            InFlightProducer::Idempotent => {
                assert_eq!(r.acknowledged, IN_FLIGHT_RECORDS, "{r:#?}");
                assert_eq!(r.audit.missing, 0, "{r:#?}");
                // Ordered by sequence number: a retried batch never lands
                // after a later one.
                assert_eq!(r.audit.out_of_order, 0, "{r:#?}");
            }
            InFlightProducer::PlainAcksAll => {
                assert_eq!(r.acknowledged, IN_FLIGHT_RECORDS, "{r:#?}");
            }
        }
    }
}

/// Without the three-broker cluster the run is refused, saying what to do,
/// before anything is created or killed.
#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn the_single_broker_is_refused_with_what_to_do() {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:9092".into());
    let cluster = Cluster::connect(&bootstrap).unwrap_or_else(|e| panic!("{e}"));
    let e = leader_in_flight(
        &cluster,
        InFlightProducer::Idempotent,
        &LeaderInFlightOptions::new(IN_FLIGHT_RECORDS, 1),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("kafka up --three"), "{e}");
}
