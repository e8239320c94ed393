//! `lab`: run a delivery semantic against Kafka and count what happened.
//!
//!     lab run --semantic at-least-once --records 10000
//!     lab run --semantic exactly-once --records 10000 --json
//!     lab run --semantic at-most-once --mock
//!     lab scenario --fault consumer-crash --variant auto-commit
//!     lab side-effects --variant offsets-in-db --seed 2
//!     lab settings --semantic exactly-once
//!     lab ping
//!     lab bench --records 200000 --json bench.json --charts charts/
//!     lab pipeline-bench --three-bootstrap 127.0.0.1:19092 --json pipeline.json
//!     lab holes-leader --seeds 3 --bootstrap 127.0.0.1:19092 --json holes-leader.json
//!     lab nemesis --schedules 5 --seed 1 --bootstrap 127.0.0.1:19092 --json nemesis.json
//!     lab matrix --repetitions 3 --json matrix.json --charts charts/
//!     lab charts --from-matrix book/src/generated/matrix.json --out charts
//!     lab clean --dry-run
//!
//! The command line lives here alone (one file per command with options):
//! the library knows neither clap nor indicatif.

mod bench;
mod holes_leader;
mod matrix;
mod nemesis;
mod pipeline;
mod run;
mod scenario;
mod side_effects;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lab::faults::crash::protocol::WorkerSpec;
use lab::{Cluster, Semantic};

#[derive(Parser)]
#[command(
    name = "lab",
    about = "Delivery semantics in Kafka, measured by record id"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where Kafka is, for every command that talks to it.
#[derive(clap::Args)]
pub struct Target {
    /// Kafka bootstrap servers [default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092]
    #[arg(long)]
    bootstrap: Option<String>,
    /// Use librdkafka's in-process mock cluster instead of Kafka (not Apache Kafka:
    /// at-most-once and at-least-once only)
    #[arg(long, conflicts_with = "bootstrap")]
    mock: bool,
    /// Client settings for every client of the run, in librdkafka's key=value
    /// format (security.protocol, sasl.*, ssl.*) [default: $KAFKA_CLIENT_CONFIG]
    #[arg(long, conflicts_with = "mock")]
    client_config: Option<std::path::PathBuf>,
}

impl Target {
    pub fn cluster(&self) -> lab::Result<Cluster> {
        if let Some(file) = &self.client_config {
            // Set at the start of a command, before the lab starts a thread.
            // Through the variable the crash scenarios' workers (child
            // processes) get the same settings.
            std::env::set_var(lab::connection::ENV, file);
        }
        cluster(self.bootstrap.as_deref(), self.mock)
    }
}

/// What a run does with its topics once it has printed its outcome.
#[derive(clap::Args)]
pub struct Leave {
    /// Keep the run's topics and consumer group on the broker, to look at them
    /// (by default they are deleted once the audit has counted them)
    #[arg(long)]
    keep_topics: bool,
}

impl Leave {
    /// Deletes the run's topics and group, saying so on stderr, unless asked
    /// to keep them. The mock cluster ends with the process anyway.
    pub fn tidy(&self, cluster: &Cluster, outcome: &lab::Outcome) -> lab::Result<()> {
        if self.keep_topics || cluster.backend() == lab::Backend::Mock {
            return Ok(());
        }
        let run = lab::clean::Leftovers {
            topics: [
                Some(outcome.input_topic.clone()),
                outcome.output_topic.clone(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            groups: vec![outcome.group.clone()],
        };
        let removed = lab::clean::remove(cluster, &run)?;
        eprintln!(
            "deleted the run's topics {} (--keep-topics keeps them)",
            removed.topics.join(", ")
        );
        Ok(())
    }
}

/// The most records a command takes: ten million take minutes even on the
/// mock; more is a typo, and would only fill memory with ids.
pub const MAX_RECORDS: u64 = 10_000_000;

/// `--records`: a whole number from 1 to [`MAX_RECORDS`], with a message
/// that says so (clap's own would call `-5` an unexpected argument).
pub fn records(text: &str) -> Result<u64, String> {
    match text.parse::<i128>() {
        Ok(n) if (1..=MAX_RECORDS as i128).contains(&n) => Ok(n as u64),
        _ => Err(format!(
            "the number of records is a whole number from 1 to {MAX_RECORDS}, e.g. -n 2000"
        )),
    }
}

/// The mock cluster, else Kafka at `bootstrap`, else where the environment says.
/// Writes a record as pretty JSON to `path`, or says which file it could not write.
pub fn write_json(
    path: &std::path::Path,
    value: &impl serde::Serialize,
) -> lab::Result<()> {
    let text = serde_json::to_string_pretty(value).expect("a record serializes");
    std::fs::write(path, text).map_err(|source| lab::Error::Io {
        doing: format!("cannot write {}", path.display()),
        source,
    })
}

pub fn cluster(bootstrap: Option<&str>, mock: bool) -> lab::Result<Cluster> {
    match (bootstrap, mock) {
        (_, true) => Cluster::mock(),
        (Some(b), false) => Cluster::connect(b),
        (None, false) => Cluster::from_env(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run one semantic on the happy path and print what the audit counted
    Run(run::RunArgs),
    /// Print the producer and consumer settings of a semantic, with reasons
    Settings {
        /// Only this semantic [default: all three]
        #[arg(long, short)]
        semantic: Option<Semantic>,
        /// Markdown tables (as in the book) instead of plain text
        #[arg(long)]
        markdown: bool,
        /// Also show this client-settings file, secrets redacted [default: $KAFKA_CLIENT_CONFIG]
        #[arg(long)]
        client_config: Option<std::path::PathBuf>,
    },
    /// Check that a broker answers, and say which
    Ping {
        #[command(flatten)]
        target: Target,
    },
    /// Inject a failure into one semantic and count what it did
    Scenario(scenario::ScenarioArgs),
    /// The exactly-once processor paused inside its transaction past its
    /// session timeout while a successor takes its partitions (KIP-447's zombie)
    ZombieProcessor(scenario::ZombieArgs),
    /// A consumer writing to a database (SQLite) and sending notifications,
    /// SIGKILLed between its steps: rows and notifications counted by id
    SideEffects(side_effects::SideEffectsArgs),
    /// Every semantic under every fault, repeated, in one table
    Matrix(matrix::MatrixArgs),
    /// Seeded fault schedules (broker kills and pauses, lost responses,
    /// processor kills, rebalances, zombies) against one long pipeline on
    /// the three-broker cluster, judged by the checker; minutes per schedule
    Nemesis(nemesis::NemesisArgs),
    /// Draw recorded results as charts (SVG and PNG) into a directory
    #[command(group = clap::ArgGroup::new("input").required(true).multiple(true))]
    Charts {
        /// A matrix recorded with `lab matrix --json FILE`
        #[arg(long, group = "input")]
        from_matrix: Option<PathBuf>,
        /// Outcomes recorded as a JSON list (e.g. book/src/generated/first-run.json)
        #[arg(long, group = "input")]
        from_outcomes: Option<PathBuf>,
        /// Where to write matrix.svg/.png and outcomes.svg/.png
        #[arg(long)]
        out: PathBuf,
    },
    /// Throughput and latency per semantic, side by side and against Kafka's ProducerPerformance
    Bench(bench::BenchArgs),
    /// The consume-transform-produce pipeline, at-least-once beside exactly-once, over commit intervals
    PipelineBench(pipeline::PipelineArgs),
    /// The holes a client can still fall into, on Apache Kafka: (a) a late
    /// Produce request of a finished transaction, (c) group metadata taken
    /// before a rebalance; about a minute
    Holes {
        /// Also write the measurement as JSON here
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Hole (b), on the three-broker cluster: the partition leader SIGKILLed
    /// with requests in flight; idempotent, transactional and plain acks=all
    /// producers; about half a minute per producer and seed
    HolesLeader(holes_leader::HolesLeaderArgs),
    /// Remove the topics and consumer groups the lab's runs left on a broker (nothing else)
    Clean {
        /// Only list what would be removed
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: Target,
    },
    /// A child process of the crash scenarios (started by the lab itself)
    #[command(hide = true)]
    Worker {
        /// Its orders: the JSON of a `WorkerSpec`
        spec: String,
    },
}

fn main() -> ExitCode {
    match dispatch(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", lab::connection::redact(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: Command) -> lab::Result<()> {
    match command {
        Command::Run(args) => args.run(),
        Command::Settings {
            semantic,
            markdown,
            client_config,
        } => {
            if let Some(file) = client_config {
                std::env::set_var(lab::connection::ENV, file);
            }
            settings(semantic, markdown)
        }
        Command::Ping { target } => {
            println!("ok: {}", target.cluster()?.describe());
            Ok(())
        }
        Command::Scenario(args) => args.run(),
        Command::ZombieProcessor(args) => args.run(),
        Command::SideEffects(args) => args.run(),
        Command::Matrix(args) => args.run(),
        Command::Nemesis(args) => args.run(),
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
            Ok(())
        }
        Command::Bench(args) => bench::run(&args),
        Command::PipelineBench(args) => args.run(),
        Command::Holes { json, target } => {
            let record = lab::faults::holes::measure_holes(&target.cluster()?)?;
            println!("{}", lab::faults::holes::holes_markdown(&record));
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&record).map_err(|e| {
                    lab::Error::BadConfig(format!("cannot write JSON: {e}"))
                })?;
                std::fs::write(&path, text).map_err(|e| {
                    lab::Error::BadConfig(format!(
                        "cannot write {}: {e}",
                        path.display()
                    ))
                })?;
            }
            Ok(())
        }
        Command::HolesLeader(args) => args.run(),
        Command::Clean { dry_run, target } => clean(&target.cluster()?, dry_run),
        Command::Worker { spec } => {
            lab::faults::crash::worker::run(&WorkerSpec::from_json(&spec)?)
        }
    }
}

/// `lab clean`: lists what it removes (or would, with `--dry-run`).
fn clean(cluster: &Cluster, dry_run: bool) -> lab::Result<()> {
    let (verb, list) = if dry_run {
        ("would remove", lab::clean::leftovers(cluster)?)
    } else {
        ("removed", lab::clean::clean(cluster)?)
    };
    println!(
        "{verb} {} topic(s) and {} consumer group(s) of the lab from {}",
        list.topics.len(),
        list.groups.len(),
        cluster.describe()
    );
    for topic in &list.topics {
        println!("  topic {topic}");
    }
    for group in &list.groups {
        println!("  group {group}");
    }
    Ok(())
}

fn settings(semantic: Option<Semantic>, markdown: bool) -> lab::Result<()> {
    let chosen = semantic.map(|s| vec![s]).unwrap_or(Semantic::ALL.to_vec());
    for s in chosen {
        if markdown {
            println!("{}", s.settings_markdown());
        } else {
            let table = lab::semantics::Setting::text_table;
            println!("{s}: producer\n{}", table(&s.producer_settings()));
            println!("{s}: consumer\n{}", table(&s.consumer_settings()));
        }
    }
    if let Some(file) = lab::connection::file() {
        lab::connection::settings()?; // a file that cannot be read, said plainly
        println!("every client, from {} (secrets redacted):", file.display());
        for (key, value) in lab::connection::shown() {
            println!("  {key}={value}");
        }
    }
    Ok(())
}
