//! Scenario C with the consumers the course corrects: the widely copied
//! auto-commit "at-most-once" consumer beside librdkafka's own at-least-once
//! pattern (auto-commit on, offsets stored after processing), and
//! at-least-once behind a set of seen ids kept in memory or kept with the
//! results. Each consumer is a real child process, SIGKILLed and replaced in
//! its group; the audit counts by id.
//!
//! Run it (broker up: `cargo xtask kafka up`):
//!
//!     cargo run -p lab --example consumer_corrections -- 1
//!
//! The argument is the seed. The book's consumer-crash page includes the
//! anchored part.

use lab::faults::crash::{consumer_crash_variant, ConsumerVariant, CrashOptions};
use lab::Cluster;

fn main() -> Result<(), lab::Error> {
    let seed: u64 = match std::env::args().nth(1) {
        None => 1,
        Some(text) => text.parse().map_err(|_| {
            lab::Error::BadConfig(format!("the seed must be a number, got {text:?}"))
        })?,
    };
    let cluster = Cluster::from_env()?;

    // ANCHOR: run
    for variant in ConsumerVariant::ALL {
        let run =
            consumer_crash_variant(&cluster, variant, &CrashOptions::new(2000, seed))?;
        let c = &run.outcome.counts;
        println!(
            "{:<44} lost {:>4}  duplicated {:>4}   (workers reported: {} committed, not \
             processed; {} processed, not committed; {} skipped as seen)",
            variant.label(),
            c.lost,
            c.duplicated,
            run.committed_unprocessed,
            run.processed_uncommitted,
            run.skipped_as_seen
        );
    }
    // ANCHOR_END: run
    Ok(())
}
