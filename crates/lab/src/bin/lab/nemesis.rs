//! `lab nemesis`: seeded fault schedules on the three-broker cluster, each
//! run against the exactly-once pipeline and then the at-least-once one.

use std::path::PathBuf;

use lab::faults::nemesis::{self, NemesisOptions, NemesisRecord};

use crate::Target;

#[derive(clap::Args)]
pub struct NemesisArgs {
    /// How many schedules (seeds S, S+1, ...); each takes a few minutes
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    schedules: u64,
    /// The first schedule's seed: the same seed gives the same faults at the same record counts
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Input records per pipeline
    #[arg(long, default_value_t = 20_000, value_parser = crate::records, allow_negative_numbers = true)]
    records: u64,
    /// Steps per schedule (each strikes 1 to 3 faults together)
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=100))]
    steps: u64,
    /// How long the slowed processor takes for the whole input with no fault
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
    pipeline_seconds: u64,
    /// Run exactly-once only (not at-least-once under the same schedule)
    #[arg(long)]
    exactly_once_only: bool,
    /// Also write every schedule's run as JSON here
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

impl NemesisArgs {
    pub fn run(self) -> lab::Result<()> {
        let cluster = self.target.cluster()?;
        let options = NemesisOptions {
            seed: self.seed,
            records: self.records,
            steps: self.steps,
            pipeline_seconds: self.pipeline_seconds,
            at_least_once: !self.exactly_once_only,
            ..NemesisOptions::default()
        };
        let started = std::time::Instant::now();
        let runs =
            nemesis::run_schedules(&cluster, &options, self.schedules, &mut |run| {
                eprintln!(
                    "seed {}: {} faults, exactly-once {}, {:.0} s",
                    run.seed,
                    nemesis::Summary::of(run).faults,
                    if run.exactly_once.verdict.clean() {
                        "clean"
                    } else {
                        "NOT clean"
                    },
                    run.seconds
                );
            })?;
        println!("{}", nemesis::summary_table(&runs));
        for run in &runs {
            if !run.exactly_once.verdict.clean() {
                println!(
                    "seed {} (exactly-once):\n{}",
                    run.seed, run.exactly_once.verdict
                );
            }
            if let Some(a) = run
                .at_least_once
                .as_ref()
                .filter(|a| a.verdict.lost.count > 0)
            {
                println!("seed {} (at-least-once):\n{}", run.seed, a.verdict);
            }
        }
        if let Some(path) = &self.json {
            let record = NemesisRecord {
                version: nemesis::NEMESIS_VERSION,
                cluster: cluster.describe(),
                runs,
                seconds: started.elapsed().as_secs_f64(),
            };
            crate::write_json(path, &record)?;
        }
        Ok(())
    }
}
