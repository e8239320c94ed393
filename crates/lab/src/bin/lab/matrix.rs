//! `lab matrix`: every semantic under every scenario, and the database rows,
//! with a spinner, the table, and optionally its JSON and chart.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use lab::experiments::matrix::{run_matrix, DbVariant, MatrixOptions};
use lab::faults::Scenario;
use lab::Cluster;

use crate::scenario::scenario_parser;
use crate::Target;

#[derive(clap::Args)]
pub struct MatrixArgs {
    #[arg(long, short = 'n', default_value_t = 2000, value_parser = crate::records, allow_negative_numbers = true)]
    records: u64,
    /// Runs per cell, each with the next seed
    #[arg(long, default_value_t = 3)]
    repetitions: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only these scenarios [default: all, unless --database is given]
    #[arg(long, value_parser = scenario_parser())]
    scenario: Vec<Scenario>,
    /// The database rows (scenario F: a consumer writing to SQLite, killed
    /// twice): these consumers, by name or number 1-5, or all five when none
    /// is named [default: all five, unless --scenario is given]
    #[arg(long, num_args = 0.., value_name = "CONSUMER", value_parser = crate::side_effects::variant_parser())]
    database: Option<Vec<DbVariant>>,
    /// The three-broker cluster for the leader failure
    #[arg(long, default_value = "127.0.0.1:19092")]
    three_bootstrap: String,
    /// Also write the cells as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw the matrix chart (matrix.svg and matrix.png) into this directory
    #[arg(long)]
    charts: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

impl MatrixArgs {
    pub fn run(self) -> lab::Result<()> {
        let single = self.target.cluster()?;
        // What is named runs; nothing named runs everything.
        let (scenarios, database) = match (self.scenario.is_empty(), self.database) {
            (true, None) => (Scenario::ALL.to_vec(), DbVariant::ALL.to_vec()),
            (_, Some(named)) if named.is_empty() => {
                (self.scenario, DbVariant::ALL.to_vec())
            }
            (_, named) => (self.scenario, named.unwrap_or_default()),
        };
        let three = if scenarios.iter().any(|s| s.needs_three_brokers()) {
            Cluster::connect(&self.three_bootstrap)
                .inspect_err(|e| {
                    eprintln!("note: leader-failure cells will be refused: {e}")
                })
                .ok()
        } else {
            None
        };
        let options = MatrixOptions {
            records: self.records,
            repetitions: self.repetitions,
            seed: self.seed,
            scenarios,
            database,
        };
        let spinner = ProgressBar::new_spinner();
        spinner.enable_steady_tick(Duration::from_millis(200));
        let started = Instant::now();
        let matrix = run_matrix(&single, three.as_ref(), &options, &mut |label| {
            spinner.set_message(label.to_string())
        })
        .matrix();
        spinner.finish_and_clear();
        println!("{}", matrix.markdown());
        println!(
            "{} cells in {:.0} s",
            matrix.cells.len() + matrix.database.len(),
            started.elapsed().as_secs_f64()
        );
        if let Some(path) = self.json {
            let text = serde_json::to_string_pretty(&matrix).expect("cells serialize");
            std::fs::write(&path, text).map_err(|source| lab::Error::Io {
                doing: format!("cannot write {}", path.display()),
                source,
            })?;
        }
        if let Some(dir) = self.charts {
            let chart = lab::charts::matrix_chart_of(&matrix);
            for file in lab::charts::save_all(&[("matrix", chart)], &dir)? {
                println!("chart written to {}", file.display());
            }
        }
        Ok(())
    }
}
