//! The nemesis: many faults injected into one long read-process-write
//! pipeline on the three-broker cluster, judged afterwards by
//! [`crate::audit::checker`]. A [`Schedule`] made from a seed says which
//! faults strike at which record counts and for how long; [`plan`] picks
//! their targets from the same seed; [`run`] executes it twice, for
//! exactly-once and for at-least-once, so that a run can be repeated fault
//! for fault.
//!
//! The record count of a step is the number of input records the processors
//! have committed so far (the sum of what every processor instance reports
//! after each of its commits). The processors reach the brokers through a
//! chaos proxy ([`crate::faults::proxy`]), which loses and delays their
//! responses when a step says so.

mod aim;
mod brokers;
mod executor;
mod plan;
mod processors;
mod report;
mod runner;
mod schedule;

pub use executor::{Executed, Injected, Replacement, HANG_LIMIT};
pub use plan::{plan, Action, Target};
pub use report::{
    nemesis_markdown, nemesis_steps_markdown, summary_table, NemesisRecord, Summary,
    NEMESIS_VERSION,
};
pub use runner::{
    run, run_schedules, NemesisOptions, NemesisRun, PipelineRun, PARTITIONS,
};
pub use schedule::{Fault, FaultKind, Schedule, ScheduleOptions, Step};
