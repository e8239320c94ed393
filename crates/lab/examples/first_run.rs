//! First run: at-least-once on the happy path, counted by id.
//!
//! Shows: what the lab measures for one semantic when nothing goes wrong.
//! Run it (with a broker up: `cargo xtask kafka up`):
//!
//!     cargo run -p lab --example first_run
//!
//! The book's introduction includes the anchored parts of this file.

use lab::{Cluster, RunOptions, Semantic};

fn main() -> Result<(), lab::Error> {
    // ANCHOR: connect
    // KAFKA_BOOTSTRAP_SERVERS, or the course's local broker at 127.0.0.1:9092.
    let cluster = Cluster::from_env()?;
    println!("connected to {}", cluster.describe());
    // ANCHOR_END: connect

    // ANCHOR: run
    // A fresh topic and consumer group, 1,000 records with unique ids,
    // produced, consumed, then read back and counted by id.
    let outcome =
        lab::run(&cluster, Semantic::AtLeastOnce, &RunOptions::records(1000))?;
    println!("{outcome}");
    assert_eq!(
        outcome.counts.lost, 0,
        "at-least-once lost an acknowledged record"
    );
    // ANCHOR_END: run
    Ok(())
}
