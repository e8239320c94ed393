//! `lab`: the helper crate of the course *Delivery Semantics in Kafka, hands-on
//! in Rust*. The book's listings, the notebooks and the tests all use it.
//!
//! A map of the modules, in the order an experiment uses them:
//!
//! - [`semantics`]: `Semantic::{AtMostOnce, AtLeastOnce, ExactlyOnce}` and the
//!   exact producer and consumer settings behind each, with the reasons.
//! - [`cluster`]: where Kafka is (a real broker by address, or the mock cluster),
//!   fresh topics and group names.
//! - [`local`]: the course's cache and the local brokers `cargo xtask kafka up` started.
//! - [`record`]: every record carries a unique id; this is its format.
//! - [`produce`] and [`consume`]: the producer and consumer loops per semantic.
//! - [`audit`]: reads back what the log holds and counts, by id, what was
//!   lost and duplicated.
//! - [`run`]: one experiment end to end; [`outcome`]: its result.
//! - [`faults`]: the failure scenarios: crashes of real child processes,
//!   a chaos proxy that loses acknowledgements, broker failures.
//! - [`exercise`]: self-checking predictions for the notebooks.
//! - [`bench`] and [`metrics`]: throughput and latency per semantic, side by
//!   side and against Kafka's own ProducerPerformance (`lab bench`).
//! - [`monitor`]: librdkafka's statistics recorded during a run (retries,
//!   request timeouts, the producer's epoch and transaction state, consumer
//!   lag), the counters each semantic should be watched for.
//! - [`charts`]: charts of recorded results (SVG, PNG, inline in a notebook):
//!   bars per semantic and scenario, latency distributions, the cost of
//!   exactly-once over the commit interval, a run's timeline with its fault
//!   window, a reader held back by an open transaction.
//!
//! ```no_run
//! use lab::{Cluster, RunOptions, Semantic};
//! let cluster = Cluster::from_env()?;
//! let outcome = lab::run(&cluster, Semantic::AtLeastOnce, &RunOptions::records(1000))?;
//! println!("{outcome}");
//! # Ok::<(), lab::Error>(())
//! ```

// The layers, from the bottom; a module imports only its own layer or lower
// ones (tests/layers.rs checks it).

// Support: no Kafka, no knowledge of the course.
pub mod error;
pub mod local;
pub mod metrics;
pub mod record;
pub mod support;

// Clients: settings per semantic, where Kafka is, producer and consumer loops.
mod client;
pub use client::{cluster, consume, produce, read, recovery, semantics, stats};

// What happened: the audit by id, and one run's outcome.
pub mod audit;
pub mod outcome;

// One run, and the failure scenarios.
pub mod faults;
pub mod run;

// Many runs: the scenario matrix, monitored runs, the benchmark.
pub mod experiments;

// Pictures of recorded results.
pub mod charts;

// Self-checking exercises for the notebooks.
pub mod exercise;

pub use cluster::{Backend, Cluster};
pub use error::{Error, Result};
pub use outcome::Outcome;
pub use run::{run, run_with_progress, RunOptions, Stage};
pub use semantics::Semantic;
