//! What actually happened, counted by record id: read back what the log holds
//! and compare it with what the producer was told and what the consumer did.
//!
//! `lost` follows the rule Kafka's own system tests use: a record the producer
//! was told is safe, but that is not there at the end.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::record;

/// Which records a reader may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Only records of committed transactions (and non-transactional ones).
    ReadCommitted,
    /// Everything in the log, aborted and open transactions included.
    ReadUncommitted,
}

impl Isolation {
    fn setting(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// Every id in `topic`, once per copy, read from the beginning of every
/// partition to its end without joining a group or committing anything.
pub fn read_ids(
    cluster: &Cluster,
    topic: &str,
    isolation: Isolation,
) -> Result<Vec<u64>> {
    let partitions = cluster.partition_count(topic)?;
    let consumer: BaseConsumer = cluster
        .client_config()
        // librdkafka wants a group id even for assign(); nothing is committed.
        .set("group.id", cluster.fresh_name("audit"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation.setting())
        .create()
        .doing("creating the audit reader")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .doing("assigning partitions")?;
    }
    consumer
        .assign(&assignment)
        .doing(format!("reading {topic}"))?;
    drop(assignment);

    let mut ids = Vec::new();
    let mut at_end = HashSet::new();
    let limit = Duration::from_secs(60);
    let mut last_progress = Instant::now();
    while at_end.len() < partitions {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if last_progress.elapsed() > limit {
                    return Err(Error::Stalled {
                        stage: "audit read-back",
                        waited: limit,
                        detail: format!(
                            "{} of {partitions} partitions of {topic} read to the end \
                             (a read_committed reader waits behind an open transaction)",
                            at_end.len()
                        ),
                    });
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => return Err(e).doing(format!("reading {topic}")),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                last_progress = Instant::now();
                if let Some(id) = record::parse_key(m.key()) {
                    ids.push(id);
                }
            }
        }
    }
    Ok(ids)
}

/// The counts that say whether a guarantee held, all by record id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Records the producer handed to the client.
    pub sent: u64,
    /// Records whose delivery report said success (for acks=0: "left the client").
    pub acknowledged: u64,
    /// Distinct ids the log holds, as a read_committed reader sees it.
    pub durable: u64,
    /// Extra copies in the log: a record written twice counts once here.
    pub written_twice: u64,
    /// Acknowledged ids the log does not hold.
    pub lost_in_log: u64,
    /// Distinct ids that reached the end of the pipeline (processed, or in the
    /// output topic for exactly-once).
    pub delivered: u64,
    /// End to end: acknowledged ids that never reached the end of the pipeline.
    pub lost: u64,
    /// End to end: deliveries beyond the first of each id.
    pub duplicated: u64,
    /// Records of aborted transactions that the reader nevertheless saw.
    pub aborted_reads: u64,
}

/// Counts what happened from the raw observations, all lists of ids.
pub fn count(
    sent: u64,
    acknowledged: &[u64],
    in_log: &[u64],
    delivered: &[u64],
    aborted: &[u64],
) -> Counts {
    let acked: HashSet<u64> = acknowledged.iter().copied().collect();
    let log = copies(in_log);
    let out = copies(delivered);
    let aborted: HashSet<u64> = aborted.iter().copied().collect();
    Counts {
        sent,
        acknowledged: acked.len() as u64,
        durable: log.len() as u64,
        written_twice: extra(&log),
        lost_in_log: acked.iter().filter(|id| !log.contains_key(id)).count() as u64,
        delivered: out.len() as u64,
        lost: acked.iter().filter(|id| !out.contains_key(id)).count() as u64,
        duplicated: extra(&out),
        aborted_reads: delivered.iter().filter(|id| aborted.contains(id)).count()
            as u64,
    }
}

fn copies(ids: &[u64]) -> HashMap<u64, u64> {
    let mut map = HashMap::new();
    for &id in ids {
        *map.entry(id).or_insert(0) += 1;
    }
    map
}

fn extra(copies: &HashMap<u64, u64>) -> u64 {
    copies.values().map(|n| n - 1).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_counts_nothing_lost_or_duplicated() {
        let ids: Vec<u64> = (0..10).collect();
        let c = count(10, &ids, &ids, &ids, &[]);
        assert_eq!(
            (c.sent, c.acknowledged, c.durable, c.delivered),
            (10, 10, 10, 10)
        );
        assert_eq!(
            (c.lost, c.duplicated, c.written_twice, c.lost_in_log),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn duplicates_and_losses_are_counted_by_id_not_by_position() {
        // The log holds 3 twice and lacks 4, which was acknowledged.
        let acked = [0, 1, 2, 3, 4];
        let log = [3, 0, 1, 3, 2];
        // The consumer processed 1 three times and never saw 2.
        let delivered = [0, 1, 1, 3, 1];
        let c = count(6, &acked, &log, &delivered, &[]);
        assert_eq!(c.sent, 6);
        assert_eq!(c.durable, 4);
        assert_eq!(c.written_twice, 1);
        assert_eq!(c.lost_in_log, 1);
        assert_eq!(c.delivered, 3);
        assert_eq!(c.lost, 2); // 2 and 4
        assert_eq!(c.duplicated, 2); // two extra copies of 1
    }

    #[test]
    fn unacknowledged_records_that_vanish_are_not_lost() {
        // At-most-once may drop a record it was never told about: that is its
        // contract, and the audit must not call it a loss of an acknowledged write.
        let c = count(3, &[0, 1], &[0, 1], &[0, 1], &[]);
        assert_eq!(c.lost, 0);
    }

    #[test]
    fn aborted_records_seen_by_a_reader_are_counted() {
        let c = count(4, &[0, 1, 2, 3], &[0, 1, 2, 3], &[0, 1, 2, 3, 9], &[9, 8]);
        assert_eq!(c.aborted_reads, 1);
    }
}
