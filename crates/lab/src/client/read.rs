//! Reading a topic back to its end: every id in the log, once per copy,
//! without joining a group or committing anything. The audit counts from it,
//! and exactly-once's producer asks it where to resume.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

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
    /// The value of librdkafka's `isolation.level` that asks for it.
    pub(crate) fn setting(self) -> &'static str {
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
    read_ids_with(cluster, topic, reader_config(cluster, "audit", isolation))
}

/// Every id in `topic`, read from the beginning with `config` (a reader's,
/// which may carry a learner's settings): what such a reader would see.
pub fn read_ids_with(
    cluster: &Cluster,
    topic: &str,
    config: ClientConfig,
) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    read_each(cluster, topic, config, &mut |m| {
        if let Some(id) = record::parse_key(m.key()) {
            ids.push(id);
        }
    })?;
    Ok(ids)
}

/// One record of ours as a reader found it: its id, where it sits in the
/// log, and its timestamp (the producer's creation time, in milliseconds
/// since the epoch; `None` if the record carries none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    pub id: u64,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
}

/// Every record of ours in `topic` with its partition, offset and timestamp,
/// in the order read (each partition in offset order), as a reader with
/// `isolation` sees it.
pub fn read_located(
    cluster: &Cluster,
    topic: &str,
    isolation: Isolation,
) -> Result<Vec<Located>> {
    let mut found = Vec::new();
    let config = reader_config(cluster, "history", isolation);
    read_each(cluster, topic, config, &mut |m| {
        if let Some(id) = record::parse_key(m.key()) {
            found.push(Located {
                id,
                partition: m.partition(),
                offset: m.offset(),
                timestamp_ms: m.timestamp().to_millis(),
            });
        }
    })?;
    Ok(found)
}

/// Reads `topic` from the beginning of every partition to its end with
/// `config`, handing each record to `each`.
fn read_each(
    cluster: &Cluster,
    topic: &str,
    mut config: ClientConfig,
    each: &mut dyn FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<()> {
    cluster.check_kept_everything(topic)?;
    let partitions = cluster.partition_count(topic)?;
    let consumer: BaseConsumer = config
        .set("enable.partition.eof", "true")
        .create()
        .doing("creating the audit reader")?;
    assign_from_beginning(&consumer, topic, partitions)?;

    let mut watch = cluster.watch(format!("reading {topic} back"));
    let mut at_end = HashSet::new();
    let limit = Duration::from_secs(60);
    let mut last_progress = Instant::now();
    while at_end.len() < partitions {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                watch.check()?;
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
                watch.heard();
            }
            Some(Err(e)) if crate::consume::transient(&e) => watch.check()?,
            Some(Err(e)) => return Err(e).doing(format!("reading {topic}")),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                last_progress = Instant::now();
                watch.heard();
                each(&m);
            }
        }
    }
    Ok(())
}

/// The configuration of a reader that joins no group and commits nothing,
/// named after its `purpose`: what reads a topic back, as opposed to a
/// semantic's consumer.
pub fn reader_config(
    cluster: &Cluster,
    purpose: &str,
    isolation: Isolation,
) -> ClientConfig {
    let mut config = cluster.client_config();
    config
        // librdkafka wants a group id even for assign(); nothing is committed.
        .set("group.id", cluster.fresh_name(purpose))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation.setting());
    config
}

/// Assigns `consumer` partitions `0..partitions` of `topic`, each from its
/// beginning, without joining a group.
pub(crate) fn assign_from_beginning(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: usize,
) -> Result<()> {
    // Dropped on return, before the consumer: a list that outlives its
    // consumer hangs the consumer's drop.
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .doing("assigning partitions")?;
    }
    consumer
        .assign(&assignment)
        .doing(format!("reading {topic}"))
}
