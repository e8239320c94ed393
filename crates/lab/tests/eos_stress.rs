//! Scenario E, exactly-once under stress, on Apache Kafka: a zombie producer
//! fenced by its successor, a lost EndTxn response, a transaction that times
//! out, and an open transaction holding back read_committed readers.
//!
//! Every count is checked twice: by `lab::audit` inside the scenario and by
//! `common::recount`, an independent reader. Each test runs three seeds.
//!
//! Ignored by a plain `cargo test` (they need a broker); `cargo xtask test`
//! starts one and runs them with `--include-ignored`. By hand:
//!
//!     cargo xtask kafka up
//!     cargo test -p lab --test eos_stress -- --include-ignored --nocapture

mod common;

use std::time::{Duration, Instant};

use lab::faults::eos_stress::{
    lost_end_txn_report, open_transaction_holds_back_readers_report,
    transaction_timeout_report, zombie_fenced_report, EosStressOptions, TxnError,
    TRANSACTION_TIMEOUT_MS,
};
use lab::faults::proxy::ApiKey;
use lab::{Cluster, Outcome, Semantic};
use rdkafka::error::RDKafkaErrorCode;

const RECORDS: u64 = 1000;
const SEEDS: [u64; 3] = [1, 2, 3];

/// Exactly once, end to end: every source record delivered to read_committed
/// readers once, none of an aborted transaction among them.
fn assert_exactly_once(o: &Outcome) {
    let c = &o.counts;
    assert_eq!(o.semantic, Semantic::ExactlyOnce);
    assert_eq!(
        (c.source, c.durable, c.delivered),
        (RECORDS, RECORDS, RECORDS),
        "{o}"
    );
    assert_eq!((c.lost, c.duplicated, c.aborted_reads), (0, 0, 0), "{o}");
    assert_eq!((c.written_twice, c.lost_in_log), (0, 0), "{o}");
    assert_eq!(c.acknowledged, RECORDS, "{o}");
    assert!(o.failures.is_empty(), "{:?}", o.failures);
}

/// Recounts the topic with a reader that shares no code with `lab::audit`:
/// read_committed must agree with `delivered` (each id once), and the
/// records only a read_uncommitted reader sees with `aborted_in_log`.
fn cross_check(cluster: &Cluster, o: &Outcome) {
    let committed = common::recount(cluster.bootstrap(), &o.input_topic, true);
    assert_eq!(committed.len() as u64, o.counts.delivered, "{o}");
    assert!(committed.keys().all(|&id| id < RECORDS));
    assert!(
        committed.values().all(|&n| n == 1),
        "an id twice in read_committed"
    );
    let everything = common::recount(cluster.bootstrap(), &o.input_topic, false);
    let copies = |m: &std::collections::HashMap<u64, u32>| -> u64 {
        m.values().map(|&n| n as u64).sum()
    };
    assert_eq!(
        copies(&everything) - copies(&committed),
        o.counts.aborted_in_log,
        "{o}"
    );
}

fn assert_fenced(error: &Option<TxnError>, what: &str) {
    let error = error
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: the call succeeded"));
    assert_eq!(error.code, RDKafkaErrorCode::Fenced, "{what}: {error}");
    assert!(
        error.fatal,
        "{what}: a fenced producer is done for: {error}"
    );
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn a_zombie_producer_is_fenced_and_its_transaction_aborted() {
    let cluster = common::kafka();
    for seed in SEEDS {
        let started = Instant::now();
        let r = zombie_fenced_report(&cluster, &EosStressOptions::new(RECORDS, seed))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let o = &r.outcome;
        println!(
            "seed {seed}: {:.1} s, zombie error {:?}\n{o}",
            started.elapsed().as_secs_f64(),
            r.zombie_error
        );
        assert_fenced(&r.zombie_error, "the zombie's commit");
        assert_exactly_once(o);
        assert!(r.zombie_records > 0);
        // The zombie's records are in the log, in an aborted transaction,
        // and no read_committed reader sees them.
        assert_eq!(o.counts.aborted_in_log, r.zombie_records, "{o}");
        assert_eq!(o.counts.sent, RECORDS + r.zombie_records);
        assert_eq!(r.transactions, RECORDS.div_ceil(100));
        cross_check(&cluster, o);
    }
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn a_lost_end_txn_response_is_retried_and_commits_exactly_once() {
    let cluster = common::kafka();
    let mut victims = Vec::new();
    for seed in SEEDS {
        let started = Instant::now();
        let r = lost_end_txn_report(&cluster, &EosStressOptions::new(RECORDS, seed))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let o = &r.outcome;
        println!(
            "seed {seed}: {:.1} s, victim {} committed in {:?}, EndTxn requests {:?}\n{o}",
            started.elapsed().as_secs_f64(),
            r.victim,
            r.victim_commit,
            r.proxy.requests_by_api.get("EndTxn")
        );
        // The fault happened: one EndTxn answer lost, the commit sent again.
        assert_eq!(r.proxy.dropped_of(ApiKey::EndTxn), 1, "{:?}", r.proxy);
        // One EndTxn per transaction, and the retry of the one whose answer
        // was lost (more only if the retry found the coordinator still
        // writing its markers and was told to try again).
        assert!(
            r.proxy.requests_of(ApiKey::EndTxn) > r.transactions,
            "{:?}",
            r.proxy
        );
        assert_eq!(r.proxy.responses_dropped, 0, "no Produce response dropped");
        assert_eq!(r.proxy.malformed_frames, 0);
        assert!(
            r.victim_commit >= Duration::from_millis(2000),
            "the retry came after socket.timeout.ms: {:?}",
            r.victim_commit
        );
        assert_exactly_once(o);
        assert_eq!(o.counts.aborted_in_log, 0, "nothing was aborted\n{o}");
        cross_check(&cluster, o);
        victims.push(r.victim);
    }
    assert!(
        victims.windows(2).any(|w| w[0] != w[1]),
        "the seed moves the fault: {victims:?}"
    );
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn a_timed_out_transaction_is_aborted_and_resent_by_a_new_instance() {
    // The coordinator looks for expired transactions every 10 s: run the
    // three seeds side by side, so the test waits for about one such scan.
    let started = Instant::now();
    let reports = std::thread::scope(|scope| {
        let handles: Vec<_> = SEEDS
            .map(|seed| {
                scope.spawn(move || {
                    let cluster = common::kafka();
                    let r = transaction_timeout_report(
                        &cluster,
                        &EosStressOptions::new(RECORDS, seed),
                    )
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                    cross_check(&cluster, &r.outcome);
                    (seed, r)
                })
            })
            .into_iter()
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Vec<_>>()
    });
    println!("three seeds in {:.1} s", started.elapsed().as_secs_f64());
    for (seed, r) in reports {
        let o = &r.outcome;
        println!(
            "seed {seed}: abort after {:.1} s, late commit {:?}\n{o}",
            r.waited_for_abort.as_secs_f64(),
            r.commit_error
        );
        assert_fenced(&r.commit_error, "the late commit");
        assert!(r.stalled_records > 0);
        // While the transaction was open, exactly its records were held back.
        assert_eq!(r.held_back_at_stall, r.stalled_records as i64);
        // The coordinator aborted it no earlier than the timeout allows, and
        // within one cleanup interval (10 s) after that, plus slack.
        assert!(
            r.waited_for_abort
                <= Duration::from_millis(TRANSACTION_TIMEOUT_MS + 15_000),
            "{:?}",
            r.waited_for_abort
        );
        assert_exactly_once(o);
        assert_eq!(o.counts.aborted_in_log, r.stalled_records, "{o}");
        assert_eq!(o.counts.sent, RECORDS + r.stalled_records);
    }
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn an_open_transaction_holds_back_read_committed_readers() {
    let cluster = common::kafka();
    for seed in SEEDS {
        let started = Instant::now();
        let r = open_transaction_holds_back_readers_report(
            &cluster,
            &EosStressOptions::new(RECORDS, seed),
        )
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let o = &r.outcome;
        println!(
            "seed {seed}: {:.1} s; before {}, open {}, after {}; LSO {} HW {}; \
             read_committed {} ({} of after), read_uncommitted {}, after commit {}",
            started.elapsed().as_secs_f64(),
            r.before,
            r.in_open_transaction,
            r.after,
            r.last_stable_offset_while_open,
            r.high_watermark_while_open,
            r.read_committed_while_open,
            r.read_committed_after_while_open,
            r.read_uncommitted_while_open,
            r.read_committed_after_commit
        );
        assert_eq!(r.before + r.in_open_transaction + r.after, RECORDS);
        assert!(r.in_open_transaction > 0 && r.after > 0);
        // One partition: the last stable offset is A's first record.
        assert_eq!(r.last_stable_offset_while_open, r.before as i64);
        assert_eq!(r.high_watermark_while_open, RECORDS as i64);
        // read_committed: B's early records, none of B's later ones.
        assert_eq!(r.read_committed_while_open, r.before);
        assert_eq!(r.read_committed_after_while_open, 0);
        // read_uncommitted: everything, A's open transaction included.
        assert_eq!(r.read_uncommitted_while_open, RECORDS);
        // After A commits: everything, once.
        assert_eq!(r.read_committed_after_commit, RECORDS);
        assert_exactly_once(o);
        assert_eq!(o.counts.aborted_in_log, 0);
        cross_check(&cluster, o);
    }
}
