//! At-most-once, measured: a producer and a consumer killed mid-stream.
//!
//! Shows: at-most-once loses what was in flight when a process died, and
//! never delivers a record twice. Run it (broker up: `cargo xtask kafka up`):
//!
//!     cargo run -p lab --example at_most_once
//!
//! The book's at-most-once chapter includes the anchored part.

use lab::faults::{Scenario, ScenarioOptions};
use lab::{Cluster, Semantic};

fn main() -> Result<(), lab::Error> {
    let cluster = Cluster::from_env()?;
    // ANCHOR: run
    // B: the producer process is SIGKILLed after a seeded number of records and
    // restarted; C: the same for the consumer. Each seed kills at another point.
    for scenario in [Scenario::ProducerCrash, Scenario::ConsumerCrash] {
        for seed in 1..=3 {
            let options = ScenarioOptions::new(Semantic::AtMostOnce, 2000, seed);
            let outcome = scenario.run(&cluster, None, &options)?;
            let counts = &outcome.counts;
            println!(
                "{} (seed {seed}): {} lost, {} duplicated",
                scenario.label(),
                counts.lost,
                counts.duplicated
            );
            // The promise, checked: whatever was lost, nothing came twice.
            assert_eq!(counts.duplicated, 0, "{outcome}");
        }
    }
    // ANCHOR_END: run
    Ok(())
}
