//! `lab pipeline-bench`: its command line, a spinner while it measures, and
//! what it writes (the tables, the JSON report, the charts). The measuring
//! is the library's [`lab::experiments::pipeline`].

use std::path::PathBuf;
use std::time::Duration;

use lab::experiments::pipeline::{
    claims_markdown, consumer_cost_markdown, pipeline_bench, pipeline_markdown,
    ConsumerCostOptions, Pipeline, PipelineOptions, PIPELINE_INTERVALS_MS,
};
use lab::Cluster;

/// `lab pipeline-bench`: the consume-transform-produce pipeline, at-least-once
/// beside exactly-once, over commit intervals.
#[derive(Clone, Debug, clap::Args)]
pub struct PipelineArgs {
    /// Records of each cell's backlog (the throughput)
    #[arg(long, short = 'n', default_value_t = 50_000, value_parser = crate::records, allow_negative_numbers = true)]
    pub records: u64,
    /// Size of each record's value in bytes
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Records per second of the steady stream (the latency)
    #[arg(long, default_value_t = 2000, value_parser = rate)]
    pub rate: u64,
    /// The steady stream lasts at least this many seconds...
    #[arg(long, default_value_t = 3.0)]
    pub latency_seconds: f64,
    /// ...and at least this many commit intervals
    #[arg(long, default_value_t = 3)]
    pub min_commits: u64,
    /// Commit intervals in ms (comma-separated)
    #[arg(long, value_delimiter = ',', default_values_t = PIPELINE_INTERVALS_MS)]
    pub commit_interval_ms: Vec<u64>,
    /// Only this pipeline (at-least-once or exactly-once) [default: both]
    #[arg(long, value_parser = pipeline_parser)]
    pub pipeline: Vec<Pipeline>,
    /// Records of the log read with both isolation levels (0: skip that part)
    #[arg(long, default_value_t = 40_000)]
    pub consumer_cost_records: u64,
    /// Kafka bootstrap servers [default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092]
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Also measure on the three-broker cluster at this address (replication 3, min ISR 2)
    #[arg(long)]
    pub three_bootstrap: Option<String>,
    /// Measure on the three-broker cluster only (needs --three-bootstrap)
    #[arg(long, requires = "three_bootstrap")]
    pub three_only: bool,
    /// Also write the report as JSON to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw the charts (SVG and PNG) into this directory
    #[arg(long)]
    pub charts: Option<PathBuf>,
}

/// `--rate`: records per second, 1 to 1,000,000.
fn rate(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err("the rate is records per second, a whole number from 1 to 1000000, e.g. --rate 2000".into()),
    }
}

fn pipeline_parser(text: &str) -> Result<Pipeline, String> {
    match lab::Semantic::parse(text) {
        Ok(lab::Semantic::AtLeastOnce) => Ok(Pipeline::AtLeastOnce),
        Ok(lab::Semantic::ExactlyOnce) => Ok(Pipeline::ExactlyOnce),
        _ => Err(format!(
            "{text:?} is no pipeline: use at-least-once or exactly-once"
        )),
    }
}

impl PipelineArgs {
    pub fn options(&self) -> PipelineOptions {
        PipelineOptions {
            records: self.records,
            record_bytes: self.record_bytes,
            rate: self.rate,
            latency_seconds: self.latency_seconds,
            min_commits: self.min_commits.max(1),
            commit_intervals_ms: self.commit_interval_ms.clone(),
            pipelines: if self.pipeline.is_empty() {
                Pipeline::ALL.to_vec()
            } else {
                self.pipeline.clone()
            },
            consumer_cost: (self.consumer_cost_records > 0).then(|| {
                ConsumerCostOptions {
                    records: self.consumer_cost_records,
                    record_bytes: self.record_bytes,
                    ..ConsumerCostOptions::default()
                }
            }),
        }
    }

    /// Runs `lab pipeline-bench`: prints the tables, writes JSON and charts if asked.
    pub fn run(&self) -> lab::Result<()> {
        let options = self.options();
        options.check()?;
        let mut clusters = Vec::new();
        if !self.three_only {
            clusters.push(crate::cluster(self.bootstrap.as_deref(), false)?);
        }
        if let Some(three) = &self.three_bootstrap {
            clusters.push(Cluster::connect(three)?);
        }
        let clusters: Vec<&Cluster> = clusters.iter().collect();
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.enable_steady_tick(Duration::from_millis(200));
        let report = pipeline_bench(&clusters, &options, &mut |what| {
            spinner.set_message(what.to_string())
        });
        spinner.finish_and_clear();
        let report = report?;
        print!("{}", pipeline_markdown(&report));
        println!();
        print!("{}", claims_markdown(&report));
        if let Some(cost) = &report.consumer_cost {
            println!();
            print!("{}", consumer_cost_markdown(cost));
        }
        if let Some(path) = &self.json {
            std::fs::write(path, report.to_json()).map_err(|source| {
                lab::Error::Io {
                    doing: format!("cannot write {}", path.display()),
                    source,
                }
            })?;
            println!("JSON report written to {}", path.display());
        }
        if let Some(dir) = &self.charts {
            for file in
                lab::charts::save_all(&lab::charts::pipeline_charts(&report), dir)?
            {
                println!("chart written to {}", file.display());
            }
        }
        Ok(())
    }
}
