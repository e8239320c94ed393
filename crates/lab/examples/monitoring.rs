//! Monitoring, measured: librdkafka's own counters while an ack is lost.
//!
//! Shows: the retried request behind a duplicate is visible in the client's
//! statistics (request timeouts, records sent again) while the run is going
//! on, before any audit. Run it (broker up: `cargo xtask kafka up`):
//!
//!     cargo run -p lab --example monitoring
//!
//! The book's monitoring chapter includes the anchored part.

use lab::faults::lost_ack::{lost_ack, LostAckOptions};
use lab::stats::Monitor;
use lab::{Cluster, Semantic};

fn main() -> Result<(), lab::Error> {
    let cluster = Cluster::from_env()?;
    // ANCHOR: watch_a_run
    // Every client the lab builds while `during` runs is watched: statistics
    // on, one report per 100 ms, kept per client.
    let monitor = Monitor::new();
    let outcome = monitor.during(|| {
        lost_ack(
            &cluster,
            Semantic::AtLeastOnce,
            &LostAckOptions::new(2000, 1),
        )
    })?;
    for client in monitor.recording().clients {
        let totals = client.totals();
        println!(
            "{} ({}): {} request timeouts, {} records sent again, {} retries",
            client.role,
            client.kind,
            totals.request_timeouts,
            totals.records_resent,
            totals.retries
        );
    }
    println!("the audit: {} duplicated", outcome.counts.duplicated);
    // ANCHOR_END: watch_a_run
    Ok(())
}
