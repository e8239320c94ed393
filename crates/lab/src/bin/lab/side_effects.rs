//! `lab side-effects`: a consumer writing to a database and sending
//! notifications, SIGKILLed between its steps, audited by record id.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use lab::faults::crash::db::{
    db_sink_scenario, DbOptions, DbOutcome, DbVariant, OffsetWrite,
};

use crate::Target;

#[derive(clap::Args)]
pub struct SideEffectsArgs {
    /// The consumer to run (a name, or its number 1-5) [default: all five]
    #[arg(long, short, value_parser = variant_parser())]
    variant: Vec<DbVariant>,
    #[arg(long, short = 'n', default_value_t = 2000, value_parser = crate::records, allow_negative_numbers = true)]
    records: u64,
    /// Chooses the (reproducible) crash points
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// offsets-in-db only: two instances sharing the partitions through a
    /// rebalance, instead of crashes
    #[arg(long)]
    rebalance: bool,
    /// offsets-in-db only: the first instance stopped (SIGSTOP) holding a
    /// batch, past its session timeout, while a second takes its partitions;
    /// then resumed. How both keep their offsets in the database transaction
    #[arg(long, value_name = "OFFSETS", value_parser = offset_write_parser(), conflicts_with = "rebalance")]
    paused: Option<OffsetWrite>,
    /// Print the outcomes as a JSON list
    #[arg(long)]
    json: bool,
    /// Keep the run's topics, group, database and notifications log
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    target: Target,
}

/// `--variant`: names and numbers, listed in the help.
pub(crate) fn variant_parser() -> impl TypedValueParser<Value = DbVariant> {
    let mut values: Vec<PossibleValue> = DbVariant::ALL
        .map(|v| PossibleValue::new(v.name()).help(v.label()))
        .to_vec();
    values.extend(["1", "2", "3", "4", "5"].map(|n| PossibleValue::new(n).hide(true)));
    PossibleValuesParser::new(values).try_map(|name| name.parse::<DbVariant>())
}

/// `--paused`: the ways to keep the offsets, listed in the help.
fn offset_write_parser() -> impl TypedValueParser<Value = OffsetWrite> {
    let values = OffsetWrite::ALL.map(|w| PossibleValue::new(w.name()).help(w.label()));
    PossibleValuesParser::new(values).try_map(|name| name.parse::<OffsetWrite>())
}

impl SideEffectsArgs {
    pub fn run(self) -> lab::Result<()> {
        let variants = match self.variant.as_slice() {
            [] if self.rebalance || self.paused.is_some() => {
                vec![DbVariant::OffsetsInDb]
            }
            [] => DbVariant::ALL.to_vec(),
            chosen => chosen.to_vec(),
        };
        let cluster = self.target.cluster()?;
        let options = DbOptions {
            rebalance: self.rebalance,
            paused: self.paused,
            ..DbOptions::new(self.records, self.seed)
        };
        let mut outcomes = Vec::new();
        for variant in variants {
            let outcome = db_sink_scenario(&cluster, variant, &options)?;
            if !self.json {
                println!("{outcome}");
            }
            self.tidy(&cluster, &outcome)?;
            outcomes.push(outcome);
        }
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&outcomes).expect("outcomes serialize")
            );
        }
        Ok(())
    }

    /// Deletes the run's topics, group and files unless asked to keep them.
    fn tidy(&self, cluster: &lab::Cluster, outcome: &DbOutcome) -> lab::Result<()> {
        if self.keep {
            eprintln!(
                "kept the database {} and the notifications log {}",
                outcome.database.display(),
                outcome.notifications_log.display()
            );
            return Ok(());
        }
        if cluster.backend() == lab::Backend::Kafka {
            lab::clean::remove(
                cluster,
                &lab::clean::Leftovers {
                    topics: outcome.topics.clone(),
                    groups: vec![outcome.group.clone()],
                },
            )?;
        }
        let _ = std::fs::remove_file(&outcome.database);
        let _ = std::fs::remove_file(&outcome.notifications_log);
        Ok(())
    }
}
