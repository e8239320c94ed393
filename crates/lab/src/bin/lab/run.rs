//! `lab run`: one semantic on the happy path, with a progress bar.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use lab::faults::crash::worker::parse_key_value;
use lab::{RunOptions, Semantic, Stage};

use crate::{Leave, Target};

#[derive(clap::Args)]
pub struct RunArgs {
    /// at-most-once, at-least-once or exactly-once
    #[arg(long, short)]
    semantic: Semantic,
    /// How many records to send
    #[arg(long, short = 'n', default_value_t = 10_000, value_parser = crate::records, allow_negative_numbers = true)]
    records: u64,
    /// Size of each record's value in bytes
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Partitions of the fresh input topic
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Extra producer setting KEY=VALUE, applied after the semantic's (repeatable)
    #[arg(long = "producer-set", value_parser = parse_key_value)]
    producer_set: Vec<(String, String)>,
    /// Print the outcome as JSON instead of a table
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    leave: Leave,
}

impl RunArgs {
    pub fn run(self) -> lab::Result<()> {
        let cluster = self.target.cluster()?;
        let options = RunOptions {
            records: self.records,
            payload_bytes: self.payload_bytes,
            partitions: self.partitions,
            producer_overrides: self.producer_set,
            ..RunOptions::records(self.records)
        };
        let bar = progress_bar(self.json, self.records);
        // While no broker answers, the run says so above the bar (the bar
        // itself stands still: nothing is acknowledged).
        let above = bar.clone();
        lab::liveness::on_silence(move |line| above.suspend(|| eprintln!("{line}")));
        let outcome = lab::run_with_progress(
            &cluster,
            self.semantic,
            &options,
            &mut |stage, n| {
                let label = match stage {
                    Stage::Produce => "produce",
                    Stage::Consume => "consume",
                    Stage::Audit => "audit",
                };
                bar.set_message(label);
                bar.set_position(n);
            },
        );
        bar.finish_and_clear();
        let outcome = outcome?;
        if self.json {
            println!("{}", outcome.to_json());
        } else {
            println!("{outcome}");
        }
        self.leave.tidy(&cluster, &outcome)
    }
}

fn progress_bar(hidden: bool, total: u64) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} ({elapsed})")
            .expect("a fixed template parses")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
