//! The scenario matrix: every semantic under every fault, repeated with seeded
//! fault timing, in one table that names the backend and Kafka version; and
//! its database rows (scenario F): the consumers that write to a database,
//! each killed twice between its steps, counted in the table they wrote and
//! in the notifications they sent.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::audit::Counts;
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::experiments::timelines::{self, TimelineRun};
pub use crate::faults::crash::db::DbVariant;
use crate::faults::crash::db::{db_sink_scenario, DbOptions, DbOutcome};
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

/// The name of the database rows' scenario in tables and charts.
pub const DATABASE_SCENARIO: &str = "F database sink";

/// One cell of the database rows: a consumer that writes each record to a
/// database table and sends a notification (a [`DbVariant`] of the
/// side-effects scenario), killed twice at seeded points, one repetition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DbCell {
    pub variant: DbVariant,
    pub repetition: u32,
    pub seed: u64,
    /// The counts, or why this cell was refused or failed.
    pub result: std::result::Result<DbCounts, String>,
    pub backend: String,
    pub seconds: f64,
}

/// What a database cell counted, by record id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbCounts {
    /// Records in the topic.
    pub source: u64,
    /// Ids the table never got.
    pub rows_lost: u64,
    /// Rows beyond the first per id.
    pub rows_duplicated: u64,
    /// Ids never notified.
    pub notifications_lost: u64,
    /// Notifications beyond the first per id: sent again, not to be undone.
    pub notifications_duplicated: u64,
}

impl DbCounts {
    pub fn of(outcome: &DbOutcome) -> DbCounts {
        DbCounts {
            source: outcome.records,
            rows_lost: outcome.rows.missing,
            rows_duplicated: outcome.rows.duplicated,
            notifications_lost: outcome.notifications.missing,
            notifications_duplicated: outcome.notifications.duplicated,
        }
    }
}

/// A recorded matrix: the cells of the semantics, and the database rows.
/// It reads back from either shape `cargo xtask regen` has written: this
/// one, or the cells alone (a list), from before the database rows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "Recorded")]
pub struct Matrix {
    pub cells: Vec<Cell>,
    pub database: Vec<DbCell>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Recorded {
    Rows {
        cells: Vec<Cell>,
        #[serde(default)]
        database: Vec<DbCell>,
    },
    Cells(Vec<Cell>),
}

impl From<Recorded> for Matrix {
    fn from(recorded: Recorded) -> Matrix {
        match recorded {
            Recorded::Rows { cells, database } => Matrix { cells, database },
            Recorded::Cells(cells) => Matrix {
                cells,
                database: Vec::new(),
            },
        }
    }
}

/// Options of a matrix run.
#[derive(Clone, Debug)]
pub struct MatrixOptions {
    pub records: u64,
    pub repetitions: u32,
    pub seed: u64,
    pub scenarios: Vec<Scenario>,
    /// The database rows to run (scenario F), one per consumer.
    pub database: Vec<DbVariant>,
}

impl MatrixOptions {
    /// The book's matrix: every scenario, 2,000 records, three seeded runs.
    pub fn book() -> MatrixOptions {
        MatrixOptions {
            records: 2000,
            repetitions: 3,
            seed: 1,
            scenarios: Scenario::ALL.to_vec(),
            database: DbVariant::ALL.to_vec(),
        }
    }
}

/// A matrix run: its cells, and the whole outcome (every record's fate) of
/// each first-seed run of a scenario with a timeline, so that the chapter's
/// timelines draw the very runs the matrix counts.
pub struct MatrixRun {
    pub cells: Vec<Cell>,
    pub database: Vec<DbCell>,
    pub timelines: Vec<TimelineRun>,
}

impl MatrixRun {
    /// What `cargo xtask regen` records: the cells and the database rows.
    pub fn matrix(&self) -> Matrix {
        Matrix {
            cells: self.cells.clone(),
            database: self.database.clone(),
        }
    }
}

/// Runs every case under every scenario `repetitions` times, then each
/// database row as many times. `progress` is called before each cell with
/// its label.
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
    let database = run_database_rows(single, options, progress);
    MatrixRun {
        cells,
        database,
        timelines,
    }
}

/// The database rows: each consumer of `options.database`, killed twice at
/// the seeded points of each repetition; its database and notifications
/// log removed once counted.
fn run_database_rows(
    single: &Cluster,
    options: &MatrixOptions,
    progress: &mut dyn FnMut(&str),
) -> Vec<DbCell> {
    let mut cells = Vec::new();
    for variant in &options.database {
        for repetition in 0..options.repetitions {
            let seed = options.seed + repetition as u64;
            progress(&format!(
                "{DATABASE_SCENARIO} / {} / run {}",
                variant.label(),
                repetition + 1
            ));
            let started = Instant::now();
            let outcome = db_sink_scenario(
                single,
                *variant,
                &DbOptions::new(options.records, seed),
            );
            if let Ok(o) = &outcome {
                let _ = std::fs::remove_file(&o.database);
                let _ = std::fs::remove_file(&o.notifications_log);
            }
            cells.push(DbCell {
                variant: *variant,
                repetition,
                seed,
                backend: match &outcome {
                    Ok(o) => o.backend_description.clone(),
                    Err(_) => single.describe(),
                },
                result: outcome.map(|o| DbCounts::of(&o)).map_err(|e| e.to_string()),
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
    cells
}

/// Reads a recorded matrix (the book's is `book/src/generated/matrix.json`,
/// written by `cargo xtask regen`): what a notebook draws without running it.
pub fn read(path: impl AsRef<std::path::Path>) -> Result<Vec<Cell>> {
    Ok(read_matrix(path)?.cells)
}

/// Reads a recorded matrix with its database rows (none in a matrix
/// recorded before them).
pub fn read_matrix(path: impl AsRef<std::path::Path>) -> Result<Matrix> {
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

impl Matrix {
    /// The whole matrix as Markdown: the semantics' table, then the
    /// database rows' (each left out when it has no cells).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.cells.is_empty() {
            out += &markdown(&self.cells);
        }
        if !self.database.is_empty() {
            if !out.is_empty() {
                out += "\n";
            }
            out += &database_markdown(&self.database);
        }
        out
    }
}

/// The database rows as a Markdown table: a line per consumer, each
/// repetition's count side by side.
pub fn database_markdown(cells: &[DbCell]) -> String {
    let mut out = String::from(
        "| scenario | consumer | rows lost (per run) | rows duplicated (per run) | \
         notifications repeated (per run) |\n|---|---|---|---|---|\n",
    );
    let variants = crate::support::distinct(cells.iter().map(|c| c.variant));
    for variant in variants {
        let runs: Vec<&DbCell> =
            cells.iter().filter(|c| c.variant == variant).collect();
        let column = |f: &dyn Fn(&DbCounts) -> u64| {
            let all: Vec<String> = runs
                .iter()
                .map(|c| match &c.result {
                    Ok(counts) => f(counts).to_string(),
                    Err(_) => "refused".into(),
                })
                .collect();
            all.join(", ")
        };
        out += &format!(
            "| {DATABASE_SCENARIO} | {} | {} | {} | {} |\n",
            variant.label(),
            column(&|c| c.rows_lost),
            column(&|c| c.rows_duplicated),
            column(&|c| c.notifications_duplicated),
        );
    }
    let refused = crate::support::distinct(cells.iter().filter_map(|c| {
        let why = c.result.as_ref().err()?;
        Some(format!(
            "{DATABASE_SCENARIO} / {}: {why}",
            c.variant.label()
        ))
    }));
    for r in refused {
        out += &format!("\n- refused: {r}");
    }
    let backends = crate::support::distinct(cells.iter().map(|c| c.backend.clone()));
    out += &format!(
        "\n\nF: each consumer writes every record to an SQLite table and sends one \
         notification per record, and is killed twice (SIGKILL) between its steps, each \
         time replaced; counted by record id in the table and in the notifications log. \
         Measured on {}.\n",
        backends.join("; ")
    );
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

    fn db_cell(variant: DbVariant, seed: u64, rows_duplicated: u64) -> DbCell {
        DbCell {
            variant,
            repetition: seed as u32 - 1,
            seed,
            result: Ok(DbCounts {
                source: 2000,
                rows_lost: 0,
                rows_duplicated,
                notifications_lost: 0,
                notifications_duplicated: rows_duplicated + 1,
            }),
            backend: "Apache Kafka 4.4.0, 1 broker at 127.0.0.1:9092".into(),
            seconds: 15.0,
        }
    }

    #[test]
    fn a_matrix_with_database_rows_reads_back_as_does_one_of_cells_alone() {
        let book = concat!(env!("CARGO_MANIFEST_DIR"), "/../../book/src/generated");
        let text = std::fs::read_to_string(format!("{book}/matrix.json")).unwrap();
        let cells: Vec<Cell> = serde_json::from_str(&text)
            .unwrap_or_else(|_| serde_json::from_str::<Matrix>(&text).unwrap().cells);
        let dir =
            std::env::temp_dir().join(format!("lab-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Cells alone (the shape recorded before the database rows).
        let old = dir.join("old.json");
        std::fs::write(&old, serde_json::to_string(&cells).unwrap()).unwrap();
        let read_old = read_matrix(&old).unwrap();
        assert_eq!(read_old.cells.len(), cells.len());
        assert!(read_old.database.is_empty());
        // With database rows.
        let matrix = Matrix {
            cells,
            database: vec![
                db_cell(DbVariant::RowThenCommit, 1, 100),
                db_cell(DbVariant::RowThenCommit, 2, 70),
                db_cell(DbVariant::OffsetsInDb, 1, 0),
            ],
        };
        let new = dir.join("new.json");
        std::fs::write(&new, serde_json::to_string(&matrix).unwrap()).unwrap();
        let back = read_matrix(&new).unwrap();
        assert_eq!(back.cells.len(), matrix.cells.len());
        assert_eq!(back.database.len(), 3);
        assert_eq!(read(&new).unwrap().len(), matrix.cells.len());
        let text = back.markdown();
        assert!(
            text.contains("| F database sink | 1. row, then Kafka commit | 0, 0 | 100, 70 | 101, 71 |"),
            "{text}"
        );
        assert!(text.contains("| F database sink | 4. offsets in the database transaction | 0 | 0 | 1 |"), "{text}");
        assert!(text.contains("| A lost ack |"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
