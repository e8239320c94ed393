//! At-least-once, measured: a lost acknowledgement, and a leader that dies.
//!
//! Shows: at-least-once pays for losing nothing with duplicates, and only
//! with `acks=all`: the common `acks=1` loses what a dead leader had
//! acknowledged alone. Run it (brokers up: `cargo xtask kafka up` and
//! `cargo xtask kafka up --three`):
//!
//!     cargo run -p lab --example at_least_once
//!
//! The book's at-least-once chapter includes the anchored part.

use lab::faults::{Scenario, ScenarioOptions};
use lab::{Cluster, Semantic};

fn main() -> Result<(), lab::Error> {
    let single = Cluster::from_env()?;
    let three = Cluster::connect(
        &std::env::var("KAFKA_THREE_BOOTSTRAP_SERVERS")
            .unwrap_or("127.0.0.1:19092".into()),
    )?;
    // ANCHOR: run
    // A: the broker appends a batch and its answer is lost; the producer
    // retries, and the batch is in the log twice.
    let options = ScenarioOptions::new(Semantic::AtLeastOnce, 2000, 1);
    let outcome = Scenario::LostAck.run(&single, None, &options)?;
    println!(
        "A, acks=all: {} duplicated, {} lost",
        outcome.counts.duplicated, outcome.counts.lost
    );

    // D: the leader alone holds the newest records when it dies.
    for acks in ["all", "1"] {
        let options = ScenarioOptions {
            producer_overrides: vec![("acks".into(), acks.into())],
            ..ScenarioOptions::new(Semantic::AtLeastOnce, 2000, 1)
        };
        let outcome = Scenario::LeaderFailure.run(&single, Some(&three), &options)?;
        println!("D, acks={acks}: {} lost", outcome.counts.lost);
    }
    // ANCHOR_END: run
    Ok(())
}
