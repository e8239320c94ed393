//! The timelines of the failure-scenarios chapter: the first seeded run of
//! A, B, C and D per semantic (D also with acks=1), every record's fate kept,
//! drawn by [`crate::charts::timeline_chart`]. The matrix keeps them as it
//! runs ([`crate::experiments::matrix::MatrixRun`]): a timeline and the
//! matrix's cell of the same seed are one run, so they always agree.

use serde::{Deserialize, Serialize};

use crate::experiments::matrix::Case;
use crate::faults::Scenario;
use crate::outcome::Outcome;

/// One run of a timeline: a case of a scenario, with its outcome or the
/// reason the lab refused it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimelineRun {
    pub scenario: Scenario,
    pub case: Case,
    pub seed: u64,
    pub result: std::result::Result<Outcome, String>,
}

/// The scenarios with a timeline: those every semantic runs (A to D).
pub fn scenarios() -> impl Iterator<Item = Scenario> {
    Scenario::ALL.into_iter().filter(|s| !s.exactly_once_only())
}
