//! The nemesis on the course's three-broker cluster: one short seeded
//! schedule of faults (a broker killed, the processor killed, a second
//! processor joining, a zombie, a lost EndTxn response) against the
//! exactly-once pipeline, judged clean by the checker.
//!
//!     cargo xtask kafka up --three
//!     cargo test -p lab --test nemesis -- --include-ignored
//!
//! It kills brokers: do not run it beside the leader-failure tests.

mod common;

use lab::faults::nemesis::{self, plan, FaultKind, NemesisOptions, Target};

use common::three_brokers;

#[test]
#[ignore = "needs the three-broker cluster: run through `cargo xtask test`"]
fn a_short_schedule_leaves_exactly_once_clean() {
    let cluster = three_brokers();
    let options = NemesisOptions {
        seed: 7,
        records: 3_000,
        steps: 3,
        most_at_once: 2,
        pipeline_seconds: 25,
        kinds: vec![
            FaultKind::BrokerKill,
            FaultKind::ProcessorKill,
            FaultKind::SecondProcessor,
            FaultKind::ZombiePause,
            FaultKind::LostEndTxnResponse,
        ],
        at_least_once: false,
    };
    let run = nemesis::run(&cluster, &options).unwrap();
    let eos = &run.exactly_once;
    println!("{}", nemesis::summary_table(std::slice::from_ref(&run)));
    println!("{}", eos.verdict);
    assert!(eos.verdict.clean(), "{}", eos.verdict);
    assert!(
        eos.verdict.same_ids() && eos.verdict.aborted_known,
        "{}",
        eos.verdict
    );
    assert_eq!(eos.verdict.committed_records, options.records);
    assert!(
        eos.aborted_from.starts_with("DumpLogSegments"),
        "{}",
        eos.aborted_from
    );

    // The faults struck in the planned order, each after its planned count,
    // each ended, and the history names them.
    let brokers: Vec<u32> = vec![1, 2, 3];
    let planned = plan(&run.schedule, &brokers, nemesis::PARTITIONS);
    let injected = &eos.executed.injected;
    assert!(!injected.is_empty(), "no fault struck: {:?}", eos.executed);
    for (done, want) in injected.iter().zip(&planned) {
        assert_eq!(
            (done.step, done.kind, done.target),
            (want.step, want.kind, want.target)
        );
        assert!(done.at_records >= want.at_records, "{done:?}");
        assert!(done.ended_s >= done.started_s, "{done:?}");
        // A broker fault names the broker it struck and what that broker
        // led; one aimed at a role says where the role was.
        match done.target {
            Target::Broker(_) | Target::Leader { .. } => {
                assert!(
                    done.broker.is_some_and(|b| brokers.contains(&b)),
                    "{done:?}"
                );
                assert!(done.detail.contains("it led"), "{done:?}");
            }
            _ => assert_eq!(done.broker, None, "{done:?}"),
        }
        if let (Target::Leader { .. }, Some(b)) = (done.target, done.broker) {
            assert!(done.detail.starts_with(&format!("broker {b}")), "{done:?}");
        }
    }
    let reached = injected.len()
        + eos
            .executed
            .not_reached
            .iter()
            .map(|s| run.schedule.steps[*s].faults.len())
            .sum::<usize>();
    assert_eq!(reached, planned.len());
    assert!(!eos.verdict.faults.is_empty());
    let json = run.to_json();
    assert!(json.contains("\"seed\": 7"), "{json}");
}
