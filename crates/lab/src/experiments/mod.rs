//! Experiments: many runs of the layers below, put together into what the book
//! shows: the scenario matrix, monitored runs, the timelines, and the
//! benchmark. `cargo xtask regen` calls them and records their JSON.

use crate::cluster::Cluster;
use crate::error::Result;
use crate::outcome::Outcome;
use crate::semantics::Semantic;

pub mod bench;
pub mod matrix;
pub mod monitored;
pub mod pipeline;
pub mod timelines;

/// The introduction's first run: each semantic on the happy path, `records` each.
pub fn first_run(cluster: &Cluster, records: u64) -> Result<Vec<Outcome>> {
    Semantic::ALL
        .into_iter()
        .map(|semantic| {
            crate::run(cluster, semantic, &crate::RunOptions::records(records))
        })
        .collect()
}
