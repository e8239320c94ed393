//! `lab`: run a delivery semantic against Kafka and count what happened.
//!
//!     lab run --semantic at-least-once --records 10000
//!     lab run --semantic exactly-once --records 10000 --json
//!     lab run --semantic at-most-once --mock
//!     lab scenario --fault consumer-crash --variant auto-commit
//!     lab settings --semantic exactly-once
//!     lab ping
//!     lab bench --records 200000 --json bench.json --charts charts/
//!     lab matrix --repetitions 3 --json matrix.json --charts charts/
//!     lab charts --from-matrix book/src/generated/matrix.json --out charts

mod bench;

use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lab::faults::{Scenario, ScenarioOptions};
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
        cluster(self.bootstrap.as_deref(), self.mock)
    }
}

/// The mock cluster, else Kafka at `bootstrap`, else where the environment says.
fn cluster(bootstrap: Option<&str>, mock: bool) -> lab::Result<Cluster> {
    match (bootstrap, mock) {
        (_, true) => Cluster::mock(),
        (Some(b), false) => Cluster::connect(b),
        (None, false) => Cluster::from_env(),
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
        /// lost-ack (A), producer-crash (B), consumer-crash (C), leader-failure (D,
        /// three brokers), or one of exactly-once's: zombie-fenced (E1),
        /// lost-end-txn (E2), transaction-timeout (E3), open-transaction (E4)
        #[arg(long, short, value_parser = scenario_parser())]
        fault: Scenario,
        /// Extra producer setting KEY=VALUE (e.g. acks=1 for leader-failure)
        #[arg(long = "producer-set", value_parser = parse_key_value)]
        producer_set: Vec<(String, String)>,
        #[arg(long, short, required_unless_present = "variant")]
        semantic: Option<Semantic>,
        /// consumer-crash only: a consumer of the source notes instead of a
        /// semantic's own (auto-commit, dedup-in-memory, dedup-durable)
        #[arg(long, value_parser = variant_parser(), conflicts_with = "semantic")]
        variant: Option<ConsumerVariant>,
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
    /// Every semantic under every fault, repeated, in one table
    Matrix {
        #[arg(long, short = 'n', default_value_t = 2000)]
        records: u64,
        /// Runs per cell, each with the next seed
        #[arg(long, default_value_t = 3)]
        repetitions: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only these scenarios [default: all]
        #[arg(long, value_parser = scenario_parser())]
        scenario: Vec<Scenario>,
        /// The three-broker cluster for the leader failure
        #[arg(long, default_value = "127.0.0.1:19092")]
        three_bootstrap: String,
        /// Also write the cells as JSON to this file
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Also draw the matrix chart (matrix.svg and matrix.png) into this directory
        #[arg(long)]
        charts: Option<std::path::PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Draw recorded results as charts (SVG and PNG) into a directory
    #[command(group = clap::ArgGroup::new("input").required(true).multiple(true))]
    Charts {
        /// A matrix recorded with `lab matrix --json FILE`
        #[arg(long, group = "input")]
        from_matrix: Option<std::path::PathBuf>,
        /// Outcomes recorded as a JSON list (e.g. book/src/generated/first-run.json)
        #[arg(long, group = "input")]
        from_outcomes: Option<std::path::PathBuf>,
        /// Where to write matrix.svg/.png and outcomes.svg/.png
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Throughput and latency per semantic, side by side and against Kafka's ProducerPerformance
    Bench(bench::BenchArgs),
    /// A child process of the crash scenarios (started by the lab itself)
    #[command(hide = true)]
    Worker {
        /// Its orders: the JSON of a `WorkerSpec`
        spec: String,
    },
}

/// Scenarios by name, with the names listed in `--help` and in the error.
fn scenario_parser() -> impl clap::builder::TypedValueParser<Value = Scenario> {
    clap::builder::PossibleValuesParser::new(Scenario::ALL.map(Scenario::name))
        .map(|name| name.parse::<Scenario>().expect("a listed name"))
}

use lab::faults::crash::protocol::WorkerSpec;
use lab::faults::crash::worker::parse_key_value;
use lab::faults::crash::ConsumerVariant;

/// `--variant`: the library's names of the variants, listed in the help and
/// in the error for an unknown one, and parsed by `ConsumerVariant`'s `FromStr`.
fn variant_parser() -> impl clap::builder::TypedValueParser<Value = ConsumerVariant> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        ConsumerVariant::ALL.map(|v| PossibleValue::new(v.name()).help(v.label())),
    )
    .try_map(|name| name.parse::<ConsumerVariant>())
}

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
            variant,
            records,
            seed,
            json,
            target,
        } => {
            if variant.is_some() && fault != Scenario::ConsumerCrash {
                return Err(lab::Error::BadConfig(
                    "--variant is a consumer of scenario C: use it with --fault consumer-crash"
                        .into(),
                ));
            }
            let cluster = target.cluster()?;
            let options = lab::faults::crash::CrashOptions::new(records, seed);
            let semantic = match (semantic, variant, fault) {
                (_, Some(variant), Scenario::ConsumerCrash) => {
                    let run = lab::faults::crash::consumer_crash_variant(
                        &cluster, variant, &options,
                    )?;
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&run)
                                .expect("outcomes serialize")
                        );
                    } else {
                        println!("{} ({})\n{}", variant.label(), variant, run.outcome);
                        println!(
                            "  the killed workers reported: {} committed, not processed; \
                             {} processed, not committed; {} skipped as seen",
                            run.committed_unprocessed,
                            run.processed_uncommitted,
                            run.skipped_as_seen
                        );
                    }
                    return Ok(());
                }
                (_, Some(_), _) => unreachable!("checked before connecting"),
                (Some(semantic), None, _) => semantic,
                (None, None, _) => {
                    return Err(lab::Error::BadConfig(
                        "name a --semantic (or, with consumer-crash, a --variant)"
                            .into(),
                    ))
                }
            };
            let outcome = fault.run(
                &cluster,
                None,
                &ScenarioOptions {
                    producer_overrides: producer_set,
                    ..ScenarioOptions::new(semantic, records, seed)
                },
            )?;
            if json {
                println!("{}", outcome.to_json());
            } else {
                println!("{outcome}");
            }
        }
        Command::Matrix {
            records,
            repetitions,
            seed,
            scenario,
            three_bootstrap,
            json,
            charts,
            target,
        } => {
            use lab::experiments::matrix::{markdown, run_matrix, MatrixOptions};
            let single = target.cluster()?;
            let scenarios = if scenario.is_empty() {
                Scenario::ALL.to_vec()
            } else {
                scenario
            };
            let three = if scenarios.contains(&Scenario::LeaderFailure) {
                match Cluster::connect(&three_bootstrap) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        eprintln!("note: leader-failure cells will be refused: {e}");
                        None
                    }
                }
            } else {
                None
            };
            let options = MatrixOptions {
                records,
                repetitions,
                seed,
                scenarios,
            };
            let spinner = ProgressBar::new_spinner();
            spinner.enable_steady_tick(Duration::from_millis(200));
            let started = std::time::Instant::now();
            let cells = run_matrix(&single, three.as_ref(), &options, &mut |label| {
                spinner.set_message(label.to_string())
            });
            spinner.finish_and_clear();
            println!("{}", markdown(&cells));
            println!(
                "{} cells in {:.0} s",
                cells.len(),
                started.elapsed().as_secs_f64()
            );
            if let Some(path) = json {
                let text =
                    serde_json::to_string_pretty(&cells).expect("cells serialize");
                std::fs::write(&path, text).map_err(|e| {
                    lab::Error::BadConfig(format!(
                        "cannot write {}: {e}",
                        path.display()
                    ))
                })?;
            }
            if let Some(dir) = charts {
                let chart = lab::charts::matrix_chart(&cells);
                for file in lab::charts::save_all(&[("matrix", chart)], &dir)? {
                    println!("chart written to {}", file.display());
                }
            }
        }
        Command::Charts {
            from_matrix,
            from_outcomes,
            out,
        } => {
            let written = lab::charts::write_charts(
                from_matrix.as_deref(),
                from_outcomes.as_deref(),
                &out,
            )?;
            for path in written {
                println!("wrote {}", path.display());
            }
        }
        Command::Bench(args) => bench::run(&args)?,
        Command::Worker { spec } => {
            lab::faults::crash::worker::run(&WorkerSpec::from_json(&spec)?)?
        }
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
