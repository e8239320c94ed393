//! The scenario matrix: every semantic under every fault, repeated with seeded
//! fault timing, in one table that names the backend and Kafka version.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::audit::Counts;
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::experiments::timelines::{self, TimelineRun};
pub use crate::faults::Scenario;
use crate::faults::ScenarioOptions;
use crate::semantics::Semantic;

/// One row of the matrix: a semantic, possibly with one setting changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub semantic: Semantic,
    /// `acks=1`: at-least-once as the module's source text configures it.
    pub acks: Option<String>,
}

impl Case {
    /// The rows of the matrix: the three semantics, and at-least-once with
    /// acks=1 (which the source material recommends, wrongly).
    pub fn all() -> Vec<Case> {
        let mut cases: Vec<Case> = Semantic::ALL
            .into_iter()
            .map(|semantic| Case {
                semantic,
                acks: None,
            })
            .collect();
        cases.insert(
            2,
            Case {
                semantic: Semantic::AtLeastOnce,
                acks: Some("1".into()),
            },
        );
        cases
    }

    pub fn label(&self) -> String {
        match &self.acks {
            Some(acks) => format!("{} (acks={acks})", self.semantic),
            None => self.semantic.to_string(),
        }
    }

    /// How `scenario` runs this case.
    pub fn options(&self, records: u64, seed: u64) -> ScenarioOptions {
        ScenarioOptions {
            producer_overrides: self
                .acks
                .iter()
                .map(|a| ("acks".to_string(), a.clone()))
                .collect(),
            ..ScenarioOptions::new(self.semantic, records, seed)
        }
    }
}

/// One cell: a case under a scenario, one repetition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cell {
    pub case: Case,
    pub scenario: Scenario,
    pub repetition: u32,
    pub seed: u64,
    /// The counts, or why this cell was refused or failed.
    pub result: std::result::Result<Counts, String>,
    pub backend: String,
    pub fault: Option<String>,
    pub seconds: f64,
}

/// Options of a matrix run.
#[derive(Clone, Debug)]
pub struct MatrixOptions {
    pub records: u64,
    pub repetitions: u32,
    pub seed: u64,
    pub scenarios: Vec<Scenario>,
}

impl MatrixOptions {
    /// The book's matrix: every scenario, 2,000 records, three seeded runs.
    pub fn book() -> MatrixOptions {
        MatrixOptions {
            records: 2000,
            repetitions: 3,
            seed: 1,
            scenarios: Scenario::ALL.to_vec(),
        }
    }
}

/// A matrix run: its cells, and the whole outcome (every record's fate) of
/// each first-seed run of a scenario with a timeline, so that the chapter's
/// timelines draw the very runs the matrix counts.
pub struct MatrixRun {
    pub cells: Vec<Cell>,
    pub timelines: Vec<TimelineRun>,
}

/// Runs every case under every scenario `repetitions` times. `progress` is
/// called before each cell with its label.
pub fn run_matrix(
    single: &Cluster,
    three: Option<&Cluster>,
    options: &MatrixOptions,
    progress: &mut dyn FnMut(&str),
) -> MatrixRun {
    let mut cells = Vec::new();
    let mut timelines = Vec::new();
    for scenario in &options.scenarios {
        for case in Case::all() {
            // acks=1 is only a question when a leader can die.
            if case.acks.is_some() && *scenario != Scenario::LeaderFailure {
                continue;
            }
            if !scenario.applies_to(case.semantic) {
                continue;
            }
            for repetition in 0..options.repetitions {
                let seed = options.seed + repetition as u64;
                progress(&format!(
                    "{} / {} / run {}",
                    scenario.label(),
                    case.label(),
                    repetition + 1
                ));
                let started = Instant::now();
                let outcome =
                    scenario.run(single, three, &case.options(options.records, seed));
                let (backend, fault) = match &outcome {
                    Ok(o) => (o.backend_description.clone(), o.fault.clone()),
                    Err(_) => (single.describe(), None),
                };
                if repetition == 0 && timelines::scenarios().any(|s| s == *scenario) {
                    timelines.push(TimelineRun {
                        scenario: *scenario,
                        case: case.clone(),
                        seed,
                        result: outcome.as_ref().cloned().map_err(|e| e.to_string()),
                    });
                }
                cells.push(Cell {
                    case: case.clone(),
                    scenario: *scenario,
                    repetition,
                    seed,
                    result: outcome.map(|o| o.counts).map_err(|e| e.to_string()),
                    backend,
                    fault,
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
        }
    }
    MatrixRun { cells, timelines }
}

/// Reads a recorded matrix (the book's is `book/src/generated/matrix.json`,
/// written by `cargo xtask regen`): what a notebook draws without running it.
pub fn read(path: impl AsRef<std::path::Path>) -> Result<Vec<Cell>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).doing(format!(
        "cannot read {} (record one with `cargo xtask regen --only matrix`)",
        path.display()
    ))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::BadData(format!(
            "{} is not a recorded scenario matrix: {e}",
            path.display()
        ))
    })
}

/// The matrix as a Markdown table: one line per case and scenario, the counts
/// of each repetition side by side as `lost / duplicated`.
pub fn markdown(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| scenario | semantic | lost (per run) | duplicated (per run) | acknowledged yet lost | aborted in log | aborted reads |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut keys: Vec<(Scenario, Case)> = Vec::new();
    for c in cells {
        if !keys.iter().any(|(s, k)| *s == c.scenario && *k == c.case) {
            keys.push((c.scenario, c.case.clone()));
        }
    }
    for (scenario, case) in keys {
        let runs: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.scenario == scenario && c.case == case)
            .collect();
        if runs.iter().all(|c| c.result.is_err()) {
            out += &format!(
                "| {} | {} | refused (below) | | | | |\n",
                scenario.label(),
                case.label()
            );
            continue;
        }
        let column = |f: &dyn Fn(&Counts) -> u64| {
            runs.iter()
                .map(|c| match &c.result {
                    Ok(counts) => f(counts).to_string(),
                    Err(_) => "refused".into(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            scenario.label(),
            case.label(),
            column(&|c| c.lost),
            column(&|c| c.duplicated),
            column(&|c| c.lost_in_log),
            column(&|c| c.aborted_in_log),
            column(&|c| c.aborted_reads),
        );
    }
    let mut refused: Vec<String> = cells
        .iter()
        .filter_map(|c| {
            c.result
                .as_ref()
                .err()
                .map(|e| format!("{} / {}: {e}", c.scenario.label(), c.case.label()))
        })
        .collect();
    refused.dedup();
    for r in refused {
        out += &format!("\n- refused: {r}");
    }
    let mut backends: Vec<&str> = cells.iter().map(|c| c.backend.as_str()).collect();
    backends.sort_unstable();
    backends.dedup();
    out += &format!("\n\nMeasured on {}.\n", backends.join("; "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_books_recorded_matrix_reads_back_and_a_wrong_file_says_what_it_is() {
        let book = concat!(env!("CARGO_MANIFEST_DIR"), "/../../book/src/generated");
        let cells = read(format!("{book}/matrix.json")).unwrap();
        assert!(cells.iter().any(|c| c.scenario == Scenario::LeaderFailure));
        assert!(cells.iter().any(|c| c.scenario == Scenario::LostAck));
        let err = read(format!("{book}/bench.json")).unwrap_err().to_string();
        assert!(err.contains("not a recorded scenario matrix"), "{err}");
        let err = read("no/such/matrix.json").unwrap_err().to_string();
        assert!(err.contains("xtask regen"), "{err}");
    }
}
