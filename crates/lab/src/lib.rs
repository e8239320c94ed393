//! `lab`: the helper crate of the course *Delivery Semantics in Kafka, hands-on
//! in Rust*. The book's listings, the notebooks and the tests all use it.
//!
//! The modules, in layers from the bottom; a module uses only its own layer
//! and the ones below it (`tests/shape.rs` checks it):
//!
//! 1. Support: [`error`] (one error type whose messages say what to do),
//!    [`record`] (every record carries a unique id), [`local`] (the course's
//!    cache and local brokers), [`metrics`] (latency histograms), [`support`]
//!    (seeded randomness, a lock, first-seen order).
//! 2. Clients: [`semantics`] (`Semantic::{AtMostOnce, AtLeastOnce,
//!    ExactlyOnce}` and the exact settings behind each, with the reasons),
//!    [`stats`] (librdkafka's statistics, recorded while a [`stats::Monitor`]
//!    watches), [`group_protocol`] (classic or KIP-848's consumer group
//!    protocol), [`cluster`] (a real broker by address, or the mock cluster;
//!    fresh topics and groups), [`broker_version`] (the broker's release,
//!    read from its `ApiVersions` answer), [`connection`] (a learner's
//!    client-settings file for a secured cluster; secrets never shown), [`liveness`] (is any broker answering? every
//!    wait on Kafka asks after a few silent seconds, and fails within about
//!    10 s of the last answer), [`produce`] and [`consume`] (the loops per
//!    semantic), [`offset_store`] (librdkafka's at-least-once pattern with
//!    auto-commit on), [`effective`] (the settings librdkafka really runs
//!    with), [`read`] (a topic read back to its end), [`recovery`] (where
//!    a producer starts again after a crash), [`sink`] (stores outside Kafka:
//!    a database behind a small trait, SQLite built in, and an append-only
//!    log of notifications sent).
//! 3. What happened: [`audit`] (counts by id: lost, duplicated, aborted),
//!    [`outcome`] (one run's result), [`audit::checker`] (a whole
//!    exactly-once pipeline's history judged at once: lost, duplicated,
//!    aborted reads, order, committed offsets, each finding placed among the
//!    faults in force) and [`audit::dump_log`] (a topic recounted from the
//!    local broker's files by Kafka's `DumpLogSegments`).
//! 4. One run: [`run`](mod@run) (the happy path end to end) and [`faults`] (the
//!    failure scenarios, one list in [`faults::Scenario`]: real process deaths,
//!    a chaos proxy that loses acknowledgements, broker failures, the
//!    transaction protocol under stress; [`faults::nemesis`]: a seeded
//!    schedule of many faults for one long pipeline run).
//! 5. Many runs: [`experiments`] (the scenario matrix, monitored runs, the
//!    timelines, the benchmark, the consume-transform-produce pipeline's
//!    benchmark), what `cargo xtask regen` records for the book.
//! 6. Pictures: [`charts`] (SVG, PNG, inline in a notebook).
//! 7. Learners: [`exercise`] (predictions, settings and code the learner
//!    writes, each checked against a real run).
//!
//! The `lab` binary (`src/bin/lab/`) sits on top; it alone uses clap and
//! indicatif, behind the default `cli` feature, so a notebook's
//! `:dep lab = { path = "...", default-features = false }` compiles neither.
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
pub mod support;
pub use support::{error, local, metrics, record};

// Clients: settings per semantic, where Kafka is, producer and consumer loops.
mod client;
pub use client::{
    broker_version, clean, cluster, connection, consume, effective, group_protocol,
    liveness, offset_store, produce, read, recovery, semantics, stats,
};

// Stores outside Kafka that consumers write results to (no Kafka in them).
pub mod sink;

// What happened: the audit by id, and one run's outcome.
pub mod audit;
pub use audit::outcome;

// One run, and the failure scenarios.
pub mod faults;
pub mod run;

// Many runs: the scenario matrix, monitored runs, the benchmark.
pub mod experiments;

// Pictures of recorded results.
pub mod charts;

// Self-checking exercises for the notebooks.
pub mod exercise;

// The Kafka client itself, for notebooks and exercises that write their own
// producers and consumers: `use lab::rdkafka::producer::BaseProducer;` gets
// the very build the lab uses, with no second `:dep` to keep in step.
pub use rdkafka;

// The SQLite binding of the lab's database sink, for notebooks that read a
// scenario's database with SQL of their own.
pub use rusqlite;

pub use cluster::{Backend, Cluster};
pub use error::{Error, Result};
pub use outcome::Outcome;
pub use run::{run, run_with_progress, RunOptions, Stage};
pub use semantics::Semantic;
