//! Exactly-once, measured: idempotence under a lost acknowledgement, and a
//! read-process-write consumer killed mid-stream.
//!
//! Run it (broker up: `cargo xtask kafka up`):
//!
//!     cargo run -p lab --example exactly_once
//!
//! The book's exactly-once chapters include the anchored parts.

use lab::faults::lost_ack::{lost_ack, LostAckOptions};
use lab::faults::{Scenario, ScenarioOptions};
use lab::{Cluster, Semantic};

fn main() -> Result<(), lab::Error> {
    let cluster = Cluster::from_env()?;
    // ANCHOR: idempotence_is_the_difference
    // Scenario A twice, with the at-least-once settings; the only difference
    // is enable.idempotence=true. The broker drops the retried copy.
    for idempotent in [false, true] {
        let mut options = LostAckOptions::new(2000, 1);
        if idempotent {
            options.overrides = vec![("enable.idempotence".into(), "true".into())];
        }
        let outcome = lost_ack(&cluster, Semantic::AtLeastOnce, &options)?;
        println!(
            "enable.idempotence={idempotent}: {} duplicated, {} lost",
            outcome.counts.duplicated, outcome.counts.lost
        );
    }
    // ANCHOR_END: idempotence_is_the_difference

    // ANCHOR: consumer_crash
    // C: the consumer reads, writes its results and commits its offsets in
    // one transaction; killed anywhere, its successor neither loses nor repeats.
    for seed in 1..=3 {
        let options = ScenarioOptions::new(Semantic::ExactlyOnce, 2000, seed);
        let outcome = Scenario::ConsumerCrash.run(&cluster, None, &options)?;
        let counts = &outcome.counts;
        println!(
            "C (seed {seed}): {} lost, {} duplicated",
            counts.lost, counts.duplicated
        );
    }
    // ANCHOR_END: consumer_crash
    Ok(())
}
