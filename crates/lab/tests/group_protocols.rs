//! The zombie processor of KIP-447 and the consumer group protocol of
//! KIP-848, on a real Apache Kafka broker.
//!
//!     cargo xtask kafka up
//!     KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo test -p lab --test group_protocols -- --include-ignored
//!
//! Under the consumer protocol a replacement waits out the broker's session
//! timeout: 6 s with the course's broker configuration, 45 s with Kafka's
//! default (then the two consumer-protocol tests take about a minute each).

mod common;

use lab::faults::crash::{consumer_crash_timed, zombie_processor, CrashOptions};
use lab::group_protocol::GroupProtocol;
use lab::Semantic;

const RECORDS: u64 = 2000;

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn a_zombie_processor_is_fenced_by_its_group_and_exactly_once_holds() {
    common::use_this_lab_binary();
    let cluster = common::kafka();
    let started = std::time::Instant::now();
    let z = zombie_processor(&cluster, &CrashOptions::new(RECORDS, 1)).unwrap();
    println!(
        "{}\nheld {}, paused {:.1} s, takeover {:.1} s, refused: {:?}",
        z.outcome, z.held, z.paused_seconds, z.takeover_seconds, z.refused
    );
    let refused = z
        .refused
        .as_ref()
        .unwrap_or_else(|| panic!("Kafka accepted the zombie's commit\n{}", z.outcome));
    assert!(
        refused.aborted,
        "the zombie aborted its transaction: {refused:?}"
    );
    // The group fenced it, not the transaction coordinator's timeout.
    assert!(
        ["UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION"].contains(&refused.code.as_str()),
        "{refused:?}"
    );
    assert!(
        z.paused_seconds * 1000.0 > z.session_timeout_ms as f64,
        "{z:?}"
    );
    assert!(
        z.paused_seconds * 1000.0 < z.transaction_timeout_ms as f64,
        "{z:?}"
    );
    let c = &z.outcome.counts;
    assert!(z.held > 0);
    assert_eq!(
        (c.lost, c.duplicated, c.aborted_reads),
        (0, 0, 0),
        "{}",
        z.outcome
    );
    assert_eq!(c.delivered, RECORDS);
    // The zombie's output is in the log, aborted: every record it held.
    assert_eq!(c.aborted_in_log, z.held, "{}", z.outcome);
    println!("took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn exactly_once_holds_under_the_consumer_group_protocol() {
    common::use_this_lab_binary();
    let cluster = common::kafka();
    let options = CrashOptions {
        group_protocol: GroupProtocol::Consumer,
        ..CrashOptions::new(RECORDS, 1)
    };
    let (o, takeover) =
        consumer_crash_timed(&cluster, Semantic::ExactlyOnce, &options).unwrap();
    println!("{o}\n{takeover:?}");
    assert_eq!(
        (o.counts.lost, o.counts.duplicated, o.counts.aborted_reads),
        (0, 0, 0),
        "{o}"
    );
    assert!(
        o.counts.aborted_in_log > 0,
        "the killed processor's open transaction\n{o}"
    );
    // The dead member's partitions waited for the broker's session timeout.
    let session = cluster
        .broker_config("group.consumer.session.timeout.ms")
        .unwrap()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(45_000.0);
    assert!(
        takeover.replacement_seconds * 1000.0 > session * 0.5,
        "{takeover:?} against a session timeout of {session} ms"
    );
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn a_zombie_processor_is_fenced_under_the_consumer_protocol_too() {
    common::use_this_lab_binary();
    let cluster = common::kafka();
    let options = CrashOptions {
        group_protocol: GroupProtocol::Consumer,
        ..CrashOptions::new(RECORDS, 2)
    };
    let z = zombie_processor(&cluster, &options).unwrap();
    println!("{}\nrefused: {:?}", z.outcome, z.refused);
    let refused = z
        .refused
        .as_ref()
        .expect("Kafka refused the zombie's offsets");
    assert!(refused.aborted, "{refused:?}");
    assert!(
        [
            "UNKNOWN_MEMBER_ID",
            "FENCED_MEMBER_EPOCH",
            "STALE_MEMBER_EPOCH"
        ]
        .contains(&refused.code.as_str()),
        "{refused:?}"
    );
    assert!(
        z.paused_seconds * 1000.0 > z.session_timeout_ms as f64,
        "{z:?}"
    );
    assert!(
        z.paused_seconds * 1000.0 < z.transaction_timeout_ms as f64,
        "{z:?}"
    );
    let c = &z.outcome.counts;
    assert_eq!(
        (c.lost, c.duplicated, c.aborted_reads),
        (0, 0, 0),
        "{}",
        z.outcome
    );
    assert_eq!(c.aborted_in_log, z.held, "{}", z.outcome);
}
