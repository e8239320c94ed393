//! `lab scenario`: one failure scenario for one semantic (or one of scenario
//! C's corrected consumers), and the names the command line takes for both.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use lab::faults::crash::worker::parse_key_value;
use lab::faults::crash::{consumer_crash_variant, ConsumerVariant, CrashOptions};
use lab::faults::{Scenario, ScenarioOptions};
use lab::group_protocol::GroupProtocol;
use lab::Semantic;

use crate::{Leave, Target};

#[derive(clap::Args)]
pub struct ScenarioArgs {
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
    /// consumer-crash only: a widely copied consumer (or librdkafka's
    /// store-after-processing pattern) instead of a semantic's own
    #[arg(long, value_parser = variant_parser(), conflicts_with = "semantic")]
    variant: Option<ConsumerVariant>,
    /// consumer-crash only: the consumers' group protocol, classic or
    /// consumer (KIP-848, Kafka 4.0+; the broker's session timeout applies)
    #[arg(long, default_value = "classic", value_parser = protocol_parser())]
    group_protocol: GroupProtocol,
    #[arg(long, short = 'n', default_value_t = 2000, value_parser = crate::records, allow_negative_numbers = true)]
    records: u64,
    /// Chooses the (reproducible) crash point
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    leave: Leave,
}

/// Scenarios by name, with the names listed in `--help` and in the error.
pub fn scenario_parser() -> impl TypedValueParser<Value = Scenario> {
    PossibleValuesParser::new(Scenario::ALL.map(Scenario::name))
        .map(|name| name.parse::<Scenario>().expect("a listed name"))
}

/// `--group-protocol`: the library's names, listed in the help and in the
/// error for an unknown one.
pub fn protocol_parser() -> impl TypedValueParser<Value = GroupProtocol> {
    PossibleValuesParser::new(GroupProtocol::ALL.map(GroupProtocol::name))
        .try_map(|name| name.parse::<GroupProtocol>())
}

/// `--variant`: the library's names of the variants, listed in the help and
/// in the error for an unknown one, and parsed by `ConsumerVariant`'s `FromStr`.
fn variant_parser() -> impl TypedValueParser<Value = ConsumerVariant> {
    PossibleValuesParser::new(
        ConsumerVariant::ALL.map(|v| PossibleValue::new(v.name()).help(v.label())),
    )
    .try_map(|name| name.parse::<ConsumerVariant>())
}

impl ScenarioArgs {
    pub fn run(self) -> lab::Result<()> {
        // Refused before connecting: a wrong combination needs no broker to say so.
        if self.group_protocol != GroupProtocol::Classic
            && self.fault != Scenario::ConsumerCrash
        {
            return Err(lab::Error::BadConfig(
                "--group-protocol chooses how scenario C's consumers join their group:                  use it with --fault consumer-crash"
                    .into(),
            ));
        }
        let semantic = match (self.semantic, self.variant) {
            (_, Some(variant)) if self.fault == Scenario::ConsumerCrash => {
                return self.run_variant(variant)
            }
            (_, Some(_)) => {
                return Err(lab::Error::BadConfig(
                    "--variant is a consumer of scenario C: use it with --fault consumer-crash"
                        .into(),
                ))
            }
            (Some(semantic), None) => semantic,
            (None, None) => {
                return Err(lab::Error::BadConfig(
                    "name a --semantic (or, with consumer-crash, a --variant)".into(),
                ))
            }
        };
        let cluster = self.target.cluster()?;
        let options = ScenarioOptions {
            producer_overrides: self.producer_set,
            group_protocol: self.group_protocol,
            ..ScenarioOptions::new(semantic, self.records, self.seed)
        };
        let outcome = self.fault.run(&cluster, None, &options)?;
        if self.json {
            println!("{}", outcome.to_json());
        } else {
            println!("{outcome}");
        }
        self.leave.tidy(&cluster, &outcome)
    }

    fn run_variant(&self, variant: ConsumerVariant) -> lab::Result<()> {
        let cluster = self.target.cluster()?;
        let options = CrashOptions {
            group_protocol: self.group_protocol,
            ..CrashOptions::new(self.records, self.seed)
        };
        let run = consumer_crash_variant(&cluster, variant, &options)?;
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&run).expect("outcomes serialize")
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
        self.leave.tidy(&cluster, &run.outcome)
    }
}

/// `lab zombie-processor`: the exactly-once processor stopped inside its
/// transaction past its session timeout while a successor takes over.
#[derive(clap::Args)]
pub struct ZombieArgs {
    /// The processors' group protocol: classic, or consumer (KIP-848, whose
    /// session timeout is the broker's: 45 s unless the broker allows less)
    #[arg(long, default_value = "classic", value_parser = protocol_parser())]
    group_protocol: GroupProtocol,
    #[arg(long, short = 'n', default_value_t = 2000, value_parser = crate::records, allow_negative_numbers = true)]
    records: u64,
    /// Chooses the (reproducible) record the processor stops at
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    leave: Leave,
}

impl ZombieArgs {
    pub fn run(self) -> lab::Result<()> {
        let cluster = self.target.cluster()?;
        let options = CrashOptions {
            group_protocol: self.group_protocol,
            ..CrashOptions::new(self.records, self.seed)
        };
        let z = lab::faults::crash::zombie_processor(&cluster, &options)?;
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&z).expect("outcomes serialize")
            );
        } else {
            println!("{}", z.outcome);
            println!(
                "  paused {:.1} s (session timeout {} ms, transaction timeout {} ms) holding {} \
                 records; the successor got its first records after {:.1} s",
                z.paused_seconds,
                z.session_timeout_ms,
                z.transaction_timeout_ms,
                z.held,
                z.takeover_seconds
            );
            match &z.refused {
                Some(r) => println!(
                    "  resumed, the zombie was refused while {}: {}\n    {}\n  its transaction {}",
                    r.doing,
                    r.code,
                    r.message,
                    if r.aborted { "was aborted" } else { "could not be aborted" }
                ),
                None => println!("  resumed, the zombie's commit was ACCEPTED"),
            }
        }
        self.leave.tidy(&cluster, &z.outcome)
    }
}
