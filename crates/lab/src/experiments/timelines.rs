//! The timelines of the failure-scenarios chapter: one seeded run of A, B, C
//! and D per semantic (D also with acks=1), every record's fate kept, drawn
//! by [`crate::charts::timeline_chart`].

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::experiments::matrix::Case;
use crate::faults::crash::{consumer_crash, CrashOptions};
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

/// Records per run: enough for a batch or two in every fault window.
pub const RECORDS: u64 = 2000;
/// The one seed the chapter shows.
pub const SEED: u64 = 1;

/// Runs every timeline. A run the lab refuses is recorded as refused; any
/// other failure stops the measurement. `progress` hears each run's label
/// before it starts, then its outcome.
pub fn measure(
    single: &Cluster,
    three: &Cluster,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<TimelineRun>> {
    let mut runs = Vec::new();
    for scenario in scenarios() {
        let cases = Case::all()
            .into_iter()
            .filter(|c| c.acks.is_none() || scenario == Scenario::LeaderFailure);
        for case in cases {
            let label = format!("{} / {}", scenario.label(), case.label());
            progress(&label);
            let result = match run_one(single, three, scenario, &case) {
                Ok(outcome) => {
                    progress(&outcome.to_string());
                    Ok(outcome)
                }
                Err(refused @ Error::Unsupported { .. }) => Err(refused.to_string()),
                Err(e) => return Err(e),
            };
            runs.push(TimelineRun {
                scenario,
                case,
                seed: SEED,
                result,
            });
        }
    }
    Ok(runs)
}

fn run_one(
    single: &Cluster,
    three: &Cluster,
    scenario: Scenario,
    case: &Case,
) -> Result<Outcome> {
    match scenario {
        // One partition, so the consumer takes records in id order and the
        // batch it dies with is one stretch of ids.
        Scenario::ConsumerCrash => consumer_crash(
            single,
            case.semantic,
            &CrashOptions {
                partitions: 1,
                ..CrashOptions::new(RECORDS, SEED)
            },
        ),
        _ => scenario.run(single, Some(three), &case.options(RECORDS, SEED)),
    }
}
