//! `lab holes-leader`: hole (b) on the three-broker cluster. The broker
//! leading partition 0 is SIGKILLed while the producer has requests in
//! flight, for the idempotent, transactional and plain acks=all producers.

use std::path::PathBuf;

use lab::faults::holes::{
    leader_in_flight_markdown, measure_leader_in_flight, InFlightProducer,
    IN_FLIGHT_RECORDS,
};

use crate::Target;

#[derive(clap::Args)]
pub struct HolesLeaderArgs {
    /// How many kill points (seeds S, S+1, ...); each takes about half a minute per producer
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    seeds: u64,
    /// The first seed: the same seed kills the leader after the same number of records
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Records per trial (at least 1000)
    #[arg(long, default_value_t = IN_FLIGHT_RECORDS, value_parser = crate::records, allow_negative_numbers = true)]
    records: u64,
    /// Only this producer: idempotent, transactional or plain (repeatable) [default: all three]
    #[arg(long, value_parser = producer)]
    producer: Vec<InFlightProducer>,
    /// Also write every trial as JSON here
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

fn producer(text: &str) -> Result<InFlightProducer, String> {
    InFlightProducer::parse(text).map_err(|e| e.to_string())
}

impl HolesLeaderArgs {
    pub fn run(self) -> lab::Result<()> {
        let cluster = self.target.cluster()?;
        let producers = if self.producer.is_empty() {
            InFlightProducer::ALL.to_vec()
        } else {
            self.producer.clone()
        };
        let seeds: Vec<u64> =
            (self.seed..self.seed.saturating_add(self.seeds)).collect();
        let record = measure_leader_in_flight(
            &cluster,
            self.records,
            &seeds,
            &producers,
            &mut |t| {
                eprintln!(
                    "seed {} {}: broker {} killed after {} records ({} unacknowledged); \
                     {} lost, {} duplicated, {:.0} s",
                    t.seed,
                    t.producer.slug(),
                    t.killed_broker,
                    t.killed_after,
                    t.unacknowledged_at_kill,
                    t.audit.lost,
                    t.audit.duplicated,
                    t.seconds
                );
            },
        )?;
        println!("{}", leader_in_flight_markdown(&record));
        if let Some(path) = &self.json {
            crate::write_json(path, &record)?;
        }
        Ok(())
    }
}
