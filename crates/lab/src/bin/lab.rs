//! `lab`: run a delivery semantic against Kafka and count what happened.
//!
//!     lab run --semantic at-least-once --records 10000
//!     lab run --semantic exactly-once --records 10000 --json
//!     lab run --semantic at-most-once --mock
//!     lab settings --semantic exactly-once
//!     lab ping

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lab::{Cluster, RunOptions, Semantic, Stage};

#[derive(Parser)]
#[command(
    name = "lab",
    about = "Delivery semantics in Kafka, measured by record id"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Target {
    /// Kafka bootstrap servers [default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092]
    #[arg(long)]
    bootstrap: Option<String>,
    /// Use librdkafka's in-process mock cluster instead of Kafka (not Apache Kafka:
    /// at-most-once and at-least-once only)
    #[arg(long, conflicts_with = "bootstrap")]
    mock: bool,
}

impl Target {
    fn cluster(&self) -> lab::Result<Cluster> {
        match (&self.bootstrap, self.mock) {
            (_, true) => Cluster::mock(),
            (Some(b), false) => Cluster::connect(b),
            (None, false) => Cluster::from_env(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run one semantic on the happy path and print what the audit counted
    Run {
        /// at-most-once, at-least-once or exactly-once
        #[arg(long, short)]
        semantic: Semantic,
        /// How many records to send
        #[arg(long, short = 'n', default_value_t = 10_000)]
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
    },
    /// Print the producer and consumer settings of a semantic, with reasons
    Settings {
        /// Only this semantic [default: all three]
        #[arg(long, short)]
        semantic: Option<Semantic>,
        /// Markdown tables (as in the book) instead of plain text
        #[arg(long)]
        markdown: bool,
    },
    /// Check that a broker answers, and say which
    Ping {
        #[command(flatten)]
        target: Target,
    },
    /// Inject a failure into one semantic and count what it did
    Scenario {
        /// producer-crash (B), consumer-crash (C) or leader-failure (D, three brokers)
        #[arg(long, short)]
        fault: Fault,
        /// Extra producer setting KEY=VALUE (e.g. acks=1 for leader-failure)
        #[arg(long = "producer-set", value_parser = parse_key_value)]
        producer_set: Vec<(String, String)>,
        #[arg(long, short)]
        semantic: Semantic,
        #[arg(long, short = 'n', default_value_t = 2000)]
        records: u64,
        /// Chooses the (reproducible) crash point
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// A child process of the crash scenarios (started by the lab itself)
    #[command(hide = true, subcommand)]
    Worker(WorkerCommand),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Fault {
    ProducerCrash,
    ConsumerCrash,
    LeaderFailure,
}

#[derive(Subcommand)]
enum WorkerCommand {
    Produce(lab::faults::worker::ProduceWorker),
    Consume(lab::faults::worker::ConsumeWorker),
}

use lab::faults::worker::parse_key_value;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> lab::Result<()> {
    match cli.command {
        Command::Run {
            semantic,
            records,
            payload_bytes,
            partitions,
            producer_set,
            json,
            target,
        } => {
            let cluster = target.cluster()?;
            let options = RunOptions {
                records,
                payload_bytes,
                partitions,
                producer_overrides: producer_set,
                ..RunOptions::records(records)
            };
            let bar = progress_bar(json, records);
            let outcome = lab::run_with_progress(
                &cluster,
                semantic,
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
            if json {
                println!("{}", outcome.to_json());
            } else {
                println!("{outcome}");
            }
        }
        Command::Settings { semantic, markdown } => {
            let chosen = semantic.map(|s| vec![s]).unwrap_or(Semantic::ALL.to_vec());
            for s in chosen {
                if markdown {
                    println!("{}", s.settings_markdown());
                } else {
                    println!(
                        "{s}: producer\n{}",
                        lab::semantics::Setting::text_table(&s.producer_settings())
                    );
                    println!(
                        "{s}: consumer\n{}",
                        lab::semantics::Setting::text_table(&s.consumer_settings())
                    );
                }
            }
        }
        Command::Scenario {
            fault,
            producer_set,
            semantic,
            records,
            seed,
            json,
            target,
        } => {
            let cluster = target.cluster()?;
            let options = lab::faults::crash::CrashOptions::new(records, seed);
            let outcome = match fault {
                Fault::ProducerCrash => {
                    lab::faults::crash::producer_crash(&cluster, semantic, &options)?
                }
                Fault::LeaderFailure => lab::faults::leader::leader_failure(
                    &cluster,
                    semantic,
                    &lab::faults::leader::LeaderFailureOptions {
                        records,
                        seed,
                        overrides: producer_set,
                    },
                )?,
                Fault::ConsumerCrash => {
                    lab::faults::crash::consumer_crash(&cluster, semantic, &options)?
                }
            };
            if json {
                println!("{}", outcome.to_json());
            } else {
                println!("{outcome}");
            }
        }
        Command::Worker(WorkerCommand::Produce(w)) => lab::faults::worker::produce(&w)?,
        Command::Worker(WorkerCommand::Consume(w)) => lab::faults::worker::consume(&w)?,
        Command::Ping { target } => {
            let cluster = target.cluster()?;
            println!("ok: {}", cluster.describe());
        }
    }
    Ok(())
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
