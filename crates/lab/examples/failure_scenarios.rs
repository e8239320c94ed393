//! Failure scenarios A to E, one run each, for the semantic you name.
//!
//! Shows: what a lost ack, a producer crash, a consumer crash and a leader
//! failure do to a delivery guarantee (and, for exactly-once, what zombies,
//! lost commits and stalled transactions do), counted by record id on Apache Kafka.
//! Run it (broker up: `cargo xtask kafka up`, and `--three` for D):
//!
//!     cargo run -p lab --example failure_scenarios -- at-least-once
//!
//! The book's failure-scenario chapter includes the anchored parts.

use lab::faults::crash::{consumer_crash, producer_crash, CrashOptions};
use lab::faults::leader::{leader_failure, LeaderFailureOptions};
use lab::faults::lost_ack::{lost_ack, LostAckOptions};
use lab::faults::{Scenario, ScenarioOptions};
use lab::{Cluster, Semantic};

fn main() -> Result<(), lab::Error> {
    let semantic: Semantic = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "at-least-once".into())
        .parse()?;
    let cluster = Cluster::from_env()?;

    // ANCHOR: lost_ack
    // A: the proxy forwards one Produce request to the broker, then swallows
    // its response. The producer times out and, if it retries, sends again.
    let outcome = lost_ack(&cluster, semantic, &LostAckOptions::new(2000, 1))?;
    println!("{outcome}\n");
    // ANCHOR_END: lost_ack

    // ANCHOR: producer_crash
    // B: a child `lab worker produce` is SIGKILLed at a seeded record; a new
    // one recovers by the semantic's rule and finishes the 2,000 records.
    let outcome = producer_crash(&cluster, semantic, &CrashOptions::new(2000, 1))?;
    println!("{outcome}\n");
    // ANCHOR_END: producer_crash

    // ANCHOR: consumer_crash
    // C: a child `lab worker consume` is SIGKILLed between its two steps
    // (commit and process, in the semantic's order); a replacement joins
    // the same group and carries on.
    let outcome = consumer_crash(&cluster, semantic, &CrashOptions::new(2000, 1))?;
    println!("{outcome}\n");
    // ANCHOR_END: consumer_crash

    // ANCHOR: leader_failure
    // D: on three brokers, the followers are paused, the leader takes records
    // alone, then dies. Compare acks=1 with the semantic's own setting.
    if let Ok(three) = Cluster::connect("127.0.0.1:19092") {
        for acks in [None, Some("1")] {
            let options = LeaderFailureOptions {
                records: 2000,
                seed: 1,
                overrides: acks
                    .map(|a| vec![("acks".into(), a.into())])
                    .unwrap_or_default(),
            };
            match leader_failure(&three, semantic, &options) {
                Ok(outcome) => println!("{outcome}\n"),
                Err(refused) => println!("D refused: {refused}\n"),
            }
        }
    }
    // ANCHOR_END: leader_failure

    // ANCHOR: eos_stress
    // E: faults aimed at the transaction protocol itself. Exactly-once only.
    if semantic == Semantic::ExactlyOnce {
        let options = ScenarioOptions::new(semantic, 1000, 1);
        for scenario in Scenario::ALL.into_iter().filter(|s| s.exactly_once_only()) {
            let outcome = scenario.run(&cluster, None, &options)?;
            println!("{}:\n{outcome}\n", scenario.label());
        }
    }
    // ANCHOR_END: eos_stress
    Ok(())
}
