//! `lab bench`: its command line, a spinner while it measures, and what it
//! writes (the table, the JSON report, the charts). The measuring itself is
//! the library's [`lab::experiments::bench`].

use std::path::PathBuf;
use std::time::Duration;

use lab::experiments::bench::{
    bench_with_progress, BenchOptions, Case, COMMIT_INTERVALS_MS,
};
use lab::faults::crash::worker::parse_key_value;

/// `lab bench`: throughput and latency per delivery guarantee, side by side,
/// and against Kafka's ProducerPerformance.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Measured records per case
    #[arg(long, short = 'n', default_value_t = 100_000, value_parser = crate::records, allow_negative_numbers = true)]
    pub records: u64,
    /// Size of each record's value in bytes
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Records sent before each measurement [default: a tenth of --records, 1000 to 20000]
    #[arg(long)]
    pub warmup_records: Option<u64>,
    /// Partitions of each fresh topic
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Run only this case (repeatable): acks-0, acks-1, acks-all, idempotent, transactional-100ms, ... [default: every case]
    #[arg(long = "case", value_name = "NAME")]
    pub case: Vec<String>,
    /// Commit intervals of the transactional cases, in ms (comma-separated)
    #[arg(long, value_delimiter = ',', default_values_t = COMMIT_INTERVALS_MS)]
    pub commit_interval_ms: Vec<u64>,
    /// A transactional case sends past --records until it has committed this many transactions
    #[arg(long, default_value_t = 3)]
    pub min_commits: u64,
    /// One request in flight in every case (both clients), as in Confluent's comparison
    #[arg(long)]
    pub one_in_flight: bool,
    /// Producer-alone runs per case (interleaved); the median is reported
    #[arg(long, default_value_t = 3)]
    pub repetitions: u32,
    /// Before each run, wait (up to 60 s) until under this many MB of page cache are dirty (0: never)
    #[arg(long, default_value_t = 2560)]
    pub settle_dirty_mb: u64,
    /// Skip the second pass that measures end-to-end latency with a consumer
    #[arg(long)]
    pub no_end_to_end: bool,
    /// Skip Kafka's ProducerPerformance
    #[arg(long)]
    pub no_producer_performance: bool,
    /// ProducerPerformance runs per case (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub producer_performance_runs: u32,
    /// Extra producer setting KEY=VALUE for both clients (repeatable), e.g. linger.ms=0
    #[arg(long = "producer-set", value_parser = parse_key_value)]
    pub producer_set: Vec<(String, String)>,
    /// Also write the report as JSON to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw the report's charts (SVG and PNG) into this directory
    #[arg(long)]
    pub charts: Option<PathBuf>,
    /// Kafka bootstrap servers [default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092]
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Use librdkafka's mock cluster (not Kafka: no transactions, no ProducerPerformance)
    #[arg(long, conflicts_with = "bootstrap")]
    pub mock: bool,
}

impl BenchArgs {
    /// The options, or why they cannot be (a case name that does not exist).
    pub fn options(&self) -> lab::Result<BenchOptions> {
        let mut options = BenchOptions::new(self.records, self.record_bytes);
        if let Some(w) = self.warmup_records {
            options.warmup_records = w;
        }
        options.partitions = self.partitions.max(1);
        options.cases = if self.case.is_empty() {
            Case::defaults(&self.commit_interval_ms)
        } else {
            Case::named(&self.case, &self.commit_interval_ms)?
        };
        options.one_in_flight = self.one_in_flight;
        options.repetitions = self.repetitions.max(1);
        options.settle_dirty_mb = self.settle_dirty_mb;
        options.end_to_end = !self.no_end_to_end;
        options.producer_performance = !self.no_producer_performance;
        options.producer_performance_runs = self.producer_performance_runs.max(1);
        options.producer_overrides = self.producer_set.clone();
        options.min_commits = self.min_commits.max(1);
        Ok(options)
    }
}

/// Runs `lab bench`: prints the table, and writes the JSON report and the
/// charts if asked.
pub fn run(args: &BenchArgs) -> lab::Result<()> {
    let options = args.options()?;
    let cluster = crate::cluster(args.bootstrap.as_deref(), args.mock)?;
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(200));
    let report = bench_with_progress(&cluster, &options, &mut |what| {
        spinner.set_message(what.to_string())
    });
    spinner.finish_and_clear();
    let report = report?;
    print!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()).map_err(|source| lab::Error::Io {
            doing: format!("cannot write {}", path.display()),
            source,
        })?;
        println!("JSON report written to {}", path.display());
    }
    if let Some(dir) = &args.charts {
        for file in lab::charts::save_all(&lab::charts::bench_charts(&report), dir)? {
            println!("chart written to {}", file.display());
        }
    }
    Ok(())
}
