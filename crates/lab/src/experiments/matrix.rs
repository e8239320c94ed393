//! The scenario matrix: every semantic under every fault, repeated with seeded
//! fault timing, in one table that names the backend and Kafka version.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::audit::Counts;
use crate::cluster::Cluster;
use crate::error::Result;
use crate::faults::crash::{consumer_crash, producer_crash, CrashOptions};
use crate::faults::eos_stress;
use crate::faults::leader::{leader_failure, LeaderFailureOptions};
use crate::faults::lost_ack::{lost_ack, LostAckOptions};
use crate::outcome::Outcome;
use crate::semantics::Semantic;

/// A failure the course injects (the letters follow the book).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A: the ack is lost after the write.
    LostAck,
    /// B: the producer dies mid-stream.
    ProducerCrash,
    /// C: the consumer dies between its two steps.
    ConsumerCrash,
    /// D: the partition leader dies (three brokers).
    LeaderFailure,
    /// E1: a zombie producer is fenced by its successor's transactional.id.
    ZombieFenced,
    /// E2: the answer to a transaction's commit (EndTxn) is lost.
    LostEndTxn,
    /// E3: a transaction is left open past its timeout.
    TransactionTimeout,
    /// E4: an open transaction holds read_committed readers back.
    OpenTransaction,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::LostAck,
        Scenario::ProducerCrash,
        Scenario::ConsumerCrash,
        Scenario::LeaderFailure,
        Scenario::ZombieFenced,
        Scenario::LostEndTxn,
        Scenario::TransactionTimeout,
        Scenario::OpenTransaction,
    ];

    /// E is about exactly-once's own machinery: the other semantics have no
    /// transactions to stress.
    pub fn exactly_once_only(self) -> bool {
        matches!(
            self,
            Scenario::ZombieFenced
                | Scenario::LostEndTxn
                | Scenario::TransactionTimeout
                | Scenario::OpenTransaction
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Scenario::LostAck => "A lost ack",
            Scenario::ProducerCrash => "B producer crash",
            Scenario::ConsumerCrash => "C consumer crash",
            Scenario::LeaderFailure => "D leader dies",
            Scenario::ZombieFenced => "E1 zombie fenced",
            Scenario::LostEndTxn => "E2 lost EndTxn",
            Scenario::TransactionTimeout => "E3 transaction timeout",
            Scenario::OpenTransaction => "E4 open transaction",
        }
    }

    /// Runs this scenario once. `three` is the three-broker cluster, needed by D.
    pub fn run(
        self,
        single: &Cluster,
        three: Option<&Cluster>,
        case: &Case,
        records: u64,
        seed: u64,
    ) -> Result<Outcome> {
        match self {
            Scenario::LostAck => {
                lost_ack(single, case.semantic, &LostAckOptions::new(records, seed))
            }
            Scenario::ProducerCrash => {
                producer_crash(single, case.semantic, &CrashOptions::new(records, seed))
            }
            Scenario::ConsumerCrash => {
                consumer_crash(single, case.semantic, &CrashOptions::new(records, seed))
            }
            Scenario::LeaderFailure => leader_failure(
                three.unwrap_or(single),
                case.semantic,
                &LeaderFailureOptions {
                    records,
                    seed,
                    overrides: case.overrides(),
                },
            ),
            Scenario::ZombieFenced => {
                eos_stress::zombie_fenced(single, &stress(records, seed))
            }
            Scenario::LostEndTxn => {
                eos_stress::lost_end_txn(single, &stress(records, seed))
            }
            Scenario::TransactionTimeout => {
                eos_stress::transaction_timeout(single, &stress(records, seed))
            }
            Scenario::OpenTransaction => {
                eos_stress::open_transaction_holds_back_readers(
                    single,
                    &stress(records, seed),
                )
            }
        }
    }
}

fn stress(records: u64, seed: u64) -> eos_stress::EosStressOptions {
    eos_stress::EosStressOptions { records, seed }
}

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

    fn overrides(&self) -> Vec<(String, String)> {
        self.acks
            .iter()
            .map(|a| ("acks".to_string(), a.clone()))
            .collect()
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

/// Runs every case under every scenario `repetitions` times. `progress` is
/// called before each cell with its label.
pub fn run_matrix(
    single: &Cluster,
    three: Option<&Cluster>,
    options: &MatrixOptions,
    progress: &mut dyn FnMut(&str),
) -> Vec<Cell> {
    let mut cells = Vec::new();
    for scenario in &options.scenarios {
        for case in Case::all() {
            // acks=1 is only a question when a leader can die.
            if case.acks.is_some() && *scenario != Scenario::LeaderFailure {
                continue;
            }
            if scenario.exactly_once_only() && case.semantic != Semantic::ExactlyOnce {
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
                let outcome = scenario.run(single, three, &case, options.records, seed);
                let (backend, fault) = match &outcome {
                    Ok(o) => (o.backend_description.clone(), o.fault.clone()),
                    Err(_) => (single.describe(), None),
                };
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
    cells
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
