//! Hole (b) measured as the book records it (every producer, several
//! kill points), and the tables the book shows.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::leader_in_flight::{
    leader_in_flight, InFlightProducer, LeaderInFlightOptions, LeaderInFlightReport,
    IN_FLIGHT_PARTITIONS, IN_FLIGHT_PER_TRANSACTION, PAYLOAD_BYTES,
    UNACKNOWLEDGED_AT_MOST,
};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::read::Isolation;

/// Every trial of the book's record: for each seed, the three producers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderInFlightRecord {
    /// The cluster, as [`Cluster::describe`] says.
    pub cluster: String,
    pub records: u64,
    pub per_transaction: u64,
    pub partitions: i32,
    /// The most records the client held unacknowledged (None in a record
    /// made before the lab bounded it).
    #[serde(default)]
    pub unacknowledged_at_most: Option<u64>,
    pub seeds: Vec<u64>,
    pub trials: Vec<LeaderInFlightReport>,
    pub seconds: f64,
}

/// Runs each of `producers` once per seed (seed by seed, so that each
/// producer's trials are spread over the same stretch of time); `progress`
/// hears of each trial as it ends.
pub fn measure_leader_in_flight(
    cluster: &Cluster,
    records: u64,
    seeds: &[u64],
    producers: &[InFlightProducer],
    progress: &mut dyn FnMut(&LeaderInFlightReport),
) -> Result<LeaderInFlightRecord> {
    let started = Instant::now();
    let mut trials = Vec::new();
    for &seed in seeds {
        for &producer in producers {
            let options = LeaderInFlightOptions::new(records, seed);
            let report = leader_in_flight(cluster, producer, &options)?;
            progress(&report);
            trials.push(report);
        }
    }
    Ok(LeaderInFlightRecord {
        cluster: cluster.describe(),
        records,
        per_transaction: IN_FLIGHT_PER_TRANSACTION,
        partitions: IN_FLIGHT_PARTITIONS,
        unacknowledged_at_most: Some(UNACKNOWLEDGED_AT_MOST),
        seeds: seeds.to_vec(),
        trials,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `lo–hi`, or one number when they are equal (thousands separated).
fn spread(values: impl Iterator<Item = u64>) -> String {
    let values: Vec<u64> = values.collect();
    match (values.iter().min(), values.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => thousands(*lo),
        (Some(lo), Some(hi)) => format!("{}–{}", thousands(*lo), thousands(*hi)),
        _ => "–".into(),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count over trials: the total, and in how many trials it was not zero.
fn over_trials(values: impl Iterator<Item = u64>) -> String {
    let values: Vec<u64> = values.collect();
    let total: u64 = values.iter().sum();
    let trials = values.iter().filter(|&&v| v > 0).count();
    if total == 0 {
        "0".into()
    } else {
        format!("{} (in {trials} of {})", thousands(total), values.len())
    }
}

/// Transactions aborted over the transactional trials, and the copies they
/// left that only a read_uncommitted reader sees (None without such trials).
fn aborted(trials: &[LeaderInFlightReport]) -> Option<String> {
    let transactional: Vec<&LeaderInFlightReport> = trials
        .iter()
        .filter(|t| t.producer == InFlightProducer::Transactional)
        .collect();
    if transactional.is_empty() {
        return None;
    }
    let count = over_trials(
        transactional
            .iter()
            .map(|t| t.aborted_transactions.len() as u64),
    );
    let copies: u64 = transactional.iter().map(|t| t.aborted_in_log).sum();
    Some(format!(
        "{count}, leaving {} aborted copies in the log",
        thousands(copies)
    ))
}

/// The reader the audit used, as the table says it.
fn reader(producer: InFlightProducer) -> &'static str {
    match producer.isolation() {
        Isolation::ReadCommitted => "read_committed",
        Isolation::ReadUncommitted => "read_uncommitted",
    }
}

/// The book's summary: one row per producer over all its trials (five
/// columns, so that it fits the book's column), a sentence for what every
/// trial shares, then a line per trial.
pub fn leader_in_flight_markdown(record: &LeaderInFlightRecord) -> String {
    let mut out = String::from(
        "| Producer (reader) | Trials | At the kill: records unacknowledged; requests awaiting an answer | Lost / duplicated / out of order | Producer id/epoch assignments |\n\
         |---|---|---|---|---|\n",
    );
    for producer in InFlightProducer::ALL {
        let trials: Vec<&LeaderInFlightReport> = record
            .trials
            .iter()
            .filter(|t| t.producer == producer)
            .collect();
        if trials.is_empty() {
            continue;
        }
        let each =
            |f: fn(&LeaderInFlightReport) -> u64| trials.iter().map(move |t| f(t));
        let ids = if producer == InFlightProducer::PlainAcksAll {
            "–".to_string()
        } else {
            spread(each(|t| t.producer_id_assignments.max(0) as u64))
        };
        out.push_str(&format!(
            "| {} ({}) | {} | {}; {} | {} / {} / {} | {ids} |\n",
            producer.name(),
            reader(producer),
            trials.len(),
            spread(each(|t| t.unacknowledged_at_kill)),
            spread(each(|t| t.requests_awaiting_answer.unwrap_or(0))),
            over_trials(each(|t| t.audit.lost)),
            over_trials(each(|t| t.audit.duplicated)),
            over_trials(each(|t| t.audit.out_of_order)),
        ));
    }
    let trials = &record.trials;
    out.push_str(&format!(
        "\nAcknowledged per trial: {} of {}; failed deliveries: {}.",
        spread(trials.iter().map(|t| t.acknowledged)),
        thousands(record.records),
        over_trials(trials.iter().map(|t| t.failures.values().sum())),
    ));
    if let Some(aborted) = aborted(trials) {
        out.push_str(&format!(
            " Transactions the transactional producer aborted: {aborted} \
             (what a read_uncommitted reader would see)."
        ));
    }
    out.push('\n');
    out + &trials_list(record)
}

/// One line per trial, under a line saying what each trial wrote (a list,
/// not a table: a table of this many columns is wider than the book).
fn trials_list(record: &LeaderInFlightRecord) -> String {
    let mut out = String::new();
    let bound = record.unacknowledged_at_most.map_or(String::new(), |n| {
        format!(
            ", the client holding at most {} unacknowledged",
            thousands(n)
        )
    });
    out.push_str(&format!(
        "\nEach trial, {} records of {} bytes to {} partitions ({} per transaction{bound}):\n\n",
        thousands(record.records),
        PAYLOAD_BYTES,
        record.partitions,
        thousands(record.per_transaction),
    ));
    for t in &record.trials {
        let partitions: Vec<String> =
            t.killed_partitions.iter().map(i32::to_string).collect();
        let coordinator = match t.killed_coordinator {
            Some(true) => " and the transaction coordinator",
            _ => "",
        };
        let awaiting = t.requests_awaiting_answer.map_or(String::new(), |n| {
            let s = if n == 1 { "" } else { "s" };
            format!(" and {} request{s} awaiting an answer", thousands(n))
        });
        let resent = t.records_resent.map_or(String::new(), |n| {
            format!("; {} records sent again", thousands(n))
        });
        out.push_str(&format!(
            "- seed {}, {}: broker {} killed (it led partitions {}{coordinator}) after record {}, \
             with {} records unacknowledged{awaiting}; new leaders after {:.1} s, back in sync \
             after {:.1} s; {} acknowledged, {} failed; {} lost, {} duplicated, {} out of \
             order{resent}\n",
            t.seed,
            t.producer.slug(),
            t.killed_broker,
            partitions.join(", "),
            thousands(t.killed_after),
            thousands(t.unacknowledged_at_kill),
            t.taken_over_s,
            t.back_in_sync_s,
            thousands(t.acknowledged),
            thousands(t.failures.values().sum()),
            thousands(t.audit.lost),
            thousands(t.audit.duplicated),
            thousands(t.audit.out_of_order),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::faults::holes::Tally;

    fn trial(
        producer: InFlightProducer,
        seed: u64,
        duplicated: u64,
    ) -> LeaderInFlightReport {
        LeaderInFlightReport {
            producer,
            seed,
            topic: "t".into(),
            records: 30_000,
            killed_broker: 2,
            killed_partitions: vec![0, 3],
            killed_coordinator: (producer == InFlightProducer::Transactional)
                .then_some(true),
            killed_after: 12_345,
            unacknowledged_at_kill: 1_000 * seed,
            requests_awaiting_answer: Some(4),
            taken_over_s: 9.54,
            back_in_sync_s: 21.0,
            acknowledged: 30_000,
            failures: BTreeMap::new(),
            aborted_transactions: vec![],
            fatal: None,
            audit: Tally {
                read: 30_000 + duplicated,
                duplicated,
                ..Tally::default()
            },
            aborted_in_log: 0,
            retries: 17,
            records_resent: Some(420),
            producer_id_assignments: 1,
            producer_epoch: 0,
            seconds: 30.0,
        }
    }

    #[test]
    fn the_tables_sum_each_producer_and_show_every_trial() {
        let record = LeaderInFlightRecord {
            cluster: "Apache Kafka 4.4.0, 3 brokers at 127.0.0.1:19092".into(),
            records: 30_000,
            per_transaction: 2_000,
            partitions: 6,
            unacknowledged_at_most: Some(5_000),
            seeds: vec![1, 2],
            trials: vec![
                trial(InFlightProducer::Idempotent, 1, 0),
                trial(InFlightProducer::PlainAcksAll, 1, 250),
                trial(InFlightProducer::Idempotent, 2, 0),
                trial(InFlightProducer::PlainAcksAll, 2, 0),
                trial(InFlightProducer::Transactional, 1, 0),
            ],
            seconds: 150.0,
        };
        let md = leader_in_flight_markdown(&record);
        let row = |start: &str| {
            md.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row {start}:\n{md}"))
                .to_string()
        };
        let idem = row("| idempotent, no transactions (read_uncommitted) | 2 |");
        assert!(idem.contains("| 1,000–2,000; 4 |"), "{idem}");
        assert!(idem.ends_with("| 0 / 0 / 0 | 1 |"), "{idem}");
        let plain = row("| acks=all, retries, no idempotence (read_uncommitted) | 2 |");
        assert!(plain.contains("| 0 / 250 (in 1 of 2) / 0 |"), "{plain}");
        let txn = row("| transactional (read_committed) | 1 |");
        assert!(txn.ends_with("| 0 / 0 / 0 | 1 |"), "{txn}");
        assert!(md.contains(
            "Acknowledged per trial: 30,000 of 30,000; failed deliveries: 0."
        ));
        assert!(md.contains("aborted: 0, leaving 0 aborted copies in the log"));
        // One line per trial, the killed broker with what it led.
        assert_eq!(
            md.matches("broker 2 killed (it led partitions 0, 3)")
                .count(),
            4,
            "{md}"
        );
        assert_eq!(
            md.matches("(it led partitions 0, 3 and the transaction coordinator)")
                .count(),
            1
        );
        assert!(md.contains("- seed 2, plain: broker 2 killed"), "{md}");
        assert!(
            md.contains("new leaders after 9.5 s, back in sync after 21.0 s"),
            "{md}"
        );
        assert!(md.contains(
            "0 lost, 250 duplicated, 0 out of order; 420 records sent again"
        ));
        // Nothing of the summary is a table wider than five columns.
        assert!(md
            .lines()
            .filter(|l| l.starts_with('|'))
            .all(|l| l.matches('|').count() == 6));
        assert!(md.contains(
            "30,000 records of 100 bytes to 6 partitions (2,000 per transaction, the client \
         holding at most 5,000 unacknowledged)"
        ));
    }
}
