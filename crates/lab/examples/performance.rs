//! Performance, measured: what each guarantee costs in throughput and latency.
//!
//! A short version of `lab bench` (which the book's tables come from): four
//! cases, 20,000 records of 1 KB each, one run per case. Use a release build
//! for numbers worth comparing (broker up: `cargo xtask kafka up`):
//!
//!     cargo run --release -p lab --example performance
//!
//! The book's performance chapter includes the anchored part.

use lab::experiments::bench::{bench, BenchOptions, Case};
use lab::Cluster;

fn main() -> Result<(), lab::Error> {
    let cluster = Cluster::from_env()?;
    // ANCHOR: run
    let options = BenchOptions {
        cases: vec![
            Case::Acks1,
            Case::AcksAll,
            Case::Idempotent,
            Case::Transactional {
                commit_interval_ms: 100,
            },
        ],
        repetitions: 1,
        // Kafka's own Java client beside the lab's: off here, it takes a JVM per case.
        producer_performance: false,
        ..BenchOptions::new(20_000, 1024)
    };
    let report = bench(&cluster, &options)?;
    println!("{}", report.markdown());
    // ANCHOR_END: run
    Ok(())
}
