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
            Some(Err(e)) if crate::consume::transient(&e) => {}
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
    /// Records the application set out to deliver: ids `0..source`.
    pub source: u64,
    /// Records handed to a producer client, replays after a crash included.
    pub sent: u64,
    /// Distinct ids whose delivery report said success (for acks=0: "left the
    /// client", since nobody confirms anything).
    pub acknowledged: u64,
    /// Distinct ids the log holds, as a read_committed reader sees it.
    pub durable: u64,
    /// Extra copies in the log: a record written twice counts once here.
    pub written_twice: u64,
    /// Acknowledged ids the log does not hold: the broker said "safe" and lost
    /// it. Kafka's own system tests use this rule.
    pub lost_in_log: u64,
    /// Records of aborted transactions in the log: a read_uncommitted reader
    /// sees them, a read_committed reader must not.
    pub aborted_in_log: u64,
    /// Distinct ids that reached the end of the pipeline (processed, or in the
    /// output topic for exactly-once).
    pub delivered: u64,
    /// End to end: source records that never reached the end of the pipeline.
    pub lost: u64,
    /// End to end: deliveries beyond the first of each id.
    pub duplicated: u64,
    /// Records of aborted transactions that the reader nevertheless saw.
    pub aborted_reads: u64,
}

/// The raw observations of a run, all as lists of ids (one entry per copy).
#[derive(Clone, Debug, Default)]
pub struct Observed<'a> {
    pub source: u64,
    pub sent: u64,
    pub acknowledged: &'a [u64],
    /// The log as a read_committed reader sees it.
    pub in_log: &'a [u64],
    /// The log as a read_uncommitted reader sees it (empty if not read: then
    /// `aborted_in_log` is 0).
    pub in_log_uncommitted: &'a [u64],
    pub delivered: &'a [u64],
    /// Ids written in transactions known to be aborted (each copy once).
    pub aborted: &'a [u64],
}

/// Counts what happened from the raw observations.
pub fn count(o: &Observed<'_>) -> Counts {
    let acked: HashSet<u64> = o.acknowledged.iter().copied().collect();
    let log = copies(o.in_log);
    let out = copies(o.delivered);
    let uncommitted = copies(o.in_log_uncommitted);
    // A delivery of an id from an aborted transaction is an aborted read unless
    // it is accounted for by a committed copy in the log.
    let aborted = copies(o.aborted);
    let aborted_reads = aborted
        .keys()
        .map(|id| {
            let seen = out.get(id).copied().unwrap_or(0);
            let committed = log.get(id).copied().unwrap_or(0);
            seen.saturating_sub(committed.min(1))
        })
        .sum();
    Counts {
        source: o.source,
        sent: o.sent,
        acknowledged: acked.len() as u64,
        durable: log.len() as u64,
        written_twice: extra(&log),
        lost_in_log: acked.iter().filter(|id| !log.contains_key(id)).count() as u64,
        aborted_in_log: uncommitted
            .iter()
            .map(|(id, n)| n.saturating_sub(log.get(id).copied().unwrap_or(0)))
            .sum(),
        delivered: out.len() as u64,
        lost: (0..o.source).filter(|id| !out.contains_key(id)).count() as u64,
        duplicated: extra(&out),
        aborted_reads,
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
        let c = count(&Observed {
            source: 10,
            sent: 10,
            acknowledged: &ids,
            in_log: &ids,
            delivered: &ids,
            ..Default::default()
        });
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
        // The consumer processed 1 three times and never saw 2.
        let c = count(&Observed {
            source: 6,
            sent: 6,
            acknowledged: &[0, 1, 2, 3, 4],
            in_log: &[3, 0, 1, 3, 2],
            delivered: &[0, 1, 1, 3, 1],
            ..Default::default()
        });
        assert_eq!(c.durable, 4);
        assert_eq!(c.written_twice, 1);
        assert_eq!(c.lost_in_log, 1); // 4: acknowledged, not in the log
        assert_eq!(c.delivered, 3);
        assert_eq!(c.lost, 3); // 2, 4 and 5 never delivered
        assert_eq!(c.duplicated, 2); // two extra copies of 1
    }

    #[test]
    fn an_unacknowledged_record_that_vanishes_is_lost_but_not_lost_in_the_log() {
        // At-most-once may drop a record nobody confirmed: lost end to end, but
        // the broker broke no promise.
        let c = count(&Observed {
            source: 3,
            sent: 3,
            acknowledged: &[0, 1],
            in_log: &[0, 1],
            delivered: &[0, 1],
            ..Default::default()
        });
        assert_eq!((c.lost, c.lost_in_log), (1, 0));
    }

    #[test]
    fn aborted_records_are_counted_in_the_log_and_when_a_reader_sees_them() {
        // 7 and 8 were written in an aborted transaction; 7 was then written
        // again and committed. A correct read_committed reader sees 7 once.
        let committed = [5, 6, 7];
        let uncommitted = [5, 6, 7, 8, 7];
        let fine = count(&Observed {
            source: 9,
            in_log: &committed,
            in_log_uncommitted: &uncommitted,
            delivered: &committed,
            aborted: &[7, 8],
            ..Default::default()
        });
        assert_eq!(fine.aborted_in_log, 2);
        assert_eq!(fine.aborted_reads, 0);
        // A reader that does not filter (the mock cluster) sees both aborted copies.
        let leaky = count(&Observed {
            source: 9,
            in_log: &committed,
            delivered: &uncommitted,
            aborted: &[7, 8],
            ..Default::default()
        });
        assert_eq!(leaky.aborted_reads, 2);
    }
}
