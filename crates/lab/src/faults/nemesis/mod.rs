//! The nemesis: many faults injected into one long exactly-once
//! read-process-write pipeline, judged afterwards by
//! [`crate::audit::checker`]. So far the plan alone: a [`Schedule`] made
//! from a seed, so that a run can be repeated fault for fault.

mod schedule;

pub use schedule::{Fault, FaultKind, Schedule, ScheduleOptions, Step};
