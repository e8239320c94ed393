//! Hole (c): the consumer group metadata a read-process-write processor
//! hands to `send_offsets_to_transaction`, taken once at the start (and so
//! stale after a rebalance) or fresh for every commit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::eos_stress::{init_transactional, write_acknowledged, TxnError};
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;

/// Input records of a run, and records per transaction.
const RECORDS: u64 = 3000;
const PER_TRANSACTION: usize = 50;
/// The first processor commits this many transactions before the second
/// one joins the group.
const BEFORE_JOIN: u64 = 5;
/// Each transaction takes at least this long (a processor's work), so that
/// the rebalance falls in the middle of the stream.
const PACE: Duration = Duration::from_millis(100);
/// A processor stops once it has seen nothing for this long after the join.
const IDLE: Duration = Duration::from_secs(8);
/// The first processor gives up after this many failed transactions in a
/// row (a stale metadata never heals).
const GIVE_UP: u64 = 10;
/// The longest a run may take.
const LIMIT: Duration = Duration::from_secs(120);

/// When the processor takes its consumer's group metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataUse {
    /// Once, at the first assignment, reused for every commit.
    TakenOnce,
    /// Fresh from the consumer before every `send_offsets_to_transaction`.
    FreshPerCommit,
}

/// What one run saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleMetadataReport {
    pub metadata: MetadataUse,
    pub input: String,
    pub output: String,
    pub records: u64,
    /// Transactions the first processor committed, and aborted.
    pub committed: u64,
    pub aborted: u64,
    /// The errors of its `send_offsets_to_transaction` and commits after the
    /// rebalance, by text, with how often each came.
    pub errors: BTreeMap<String, u64>,
    /// Transactions the first processor committed after its assignment
    /// changed (the rebalance), and the transactions it tried then.
    pub committed_after_rebalance: u64,
    pub tried_after_rebalance: u64,
    /// Transactions the joining processor committed.
    pub joiner_committed: u64,
    /// A read_committed reader of the output at the end of the run: input ids
    /// missing from it (not processed by the end: a stall, not a loss, when
    /// the group's offsets still point before them), ids more than once.
    pub missing: u64,
    pub duplicated: u64,
}

/// Runs hole (c) once with the first processor using `metadata`.
pub fn stale_metadata(
    cluster: &Cluster,
    metadata: MetadataUse,
) -> Result<StaleMetadataReport> {
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    let input = cluster.fresh_name("hole-metadata-in");
    let output = cluster.fresh_name("hole-metadata-out");
    let group = cluster.fresh_name("hole-metadata-group");
    cluster.create_topic(&input, 2)?;
    cluster.create_topic(&output, 2)?;
    let config =
        Semantic::AtLeastOnce.producer_config(cluster.bootstrap(), None, &[])?;
    let source: BaseProducer<LoggingContext> = config
        .create_with_context(LoggingContext(Default::default()))
        .doing("creating the source producer")?;
    write_acknowledged(&source, &input, 0..RECORDS)?;
    drop(source);

    let first = Processor::new(cluster, &group, &input, &output, "a", metadata)?;
    let joined = Arc::new(AtomicBool::new(false));
    let joiner = {
        let bootstrap = cluster.bootstrap().to_string();
        let (joined, group) = (joined.clone(), group.clone());
        let (input, output) = (input.clone(), output.clone());
        std::thread::spawn(move || -> Result<Tally> {
            let started = Instant::now();
            while !joined.load(Ordering::SeqCst) {
                if started.elapsed() > LIMIT {
                    return Err(Error::BadConfig(
                        "the first processor never got going".into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let cluster = Cluster::connect(&bootstrap)?;
            let p = Processor::new(
                &cluster,
                &group,
                &input,
                &output,
                "b",
                MetadataUse::FreshPerCommit,
            )?;
            p.run(None)
        })
    };
    let tally = first.run(Some(&joined));
    // The joiner is waited for even if the first processor failed.
    joined.store(true, Ordering::SeqCst);
    let joiner_tally = joiner
        .join()
        .map_err(|_| Error::BadConfig("the joining processor panicked".into()))??;
    let tally = tally?;
    let seen = read_ids(cluster, &output, Isolation::ReadCommitted)?;
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for id in seen {
        *counts.entry(id).or_insert(0) += 1;
    }
    Ok(StaleMetadataReport {
        metadata,
        input,
        output,
        records: RECORDS,
        committed: tally.committed,
        aborted: tally.aborted,
        errors: tally.errors,
        committed_after_rebalance: tally.committed_after,
        tried_after_rebalance: tally.tried_after,
        joiner_committed: joiner_tally.committed,
        missing: (0..RECORDS).filter(|id| !counts.contains_key(id)).count() as u64,
        duplicated: counts.values().map(|&n| n - 1).sum(),
    })
}

#[derive(Clone, Debug, Default)]
struct Tally {
    committed: u64,
    aborted: u64,
    errors: BTreeMap<String, u64>,
    committed_after: u64,
    tried_after: u64,
}

/// One read-process-write processor: a consumer in the group and a
/// transactional producer of its own.
struct Processor {
    consumer: BaseConsumer,
    producer: BaseProducer<LoggingContext>,
    input: String,
    output: String,
    metadata: MetadataUse,
}

impl Processor {
    fn new(
        cluster: &Cluster,
        group: &str,
        input: &str,
        output: &str,
        name: &str,
        metadata: MetadataUse,
    ) -> Result<Processor> {
        let consumer: BaseConsumer = Semantic::ExactlyOnce
            .consumer_config(cluster.bootstrap(), group, &[])
            .create()
            .doing("creating a processor's consumer")?;
        consumer
            .subscribe(&[input])
            .doing(format!("subscribing to {input}"))?;
        let config = Semantic::ExactlyOnce.producer_config(
            cluster.bootstrap(),
            Some(&format!("{group}-{name}")),
            &[],
        )?;
        let producer = init_transactional(config, Arc::new(DeliveryLog::default()))?;
        Ok(Processor {
            consumer,
            producer,
            input: input.to_string(),
            output: output.to_string(),
            metadata,
        })
    }

    /// Processes until idle for [`IDLE`] after the join; `joined` (first
    /// processor only) is raised after [`BEFORE_JOIN`] commits.
    fn run(self, joined: Option<&AtomicBool>) -> Result<Tally> {
        let mut tally = Tally::default();
        let mut taken: Option<ConsumerGroupMetadata> = None;
        let mut first_assignment = Vec::new();
        let mut failed_in_a_row = 0;
        let started = Instant::now();
        let mut last_seen = Instant::now();
        loop {
            let join_done = joined.is_none_or(|j| j.load(Ordering::SeqCst));
            if (join_done && last_seen.elapsed() > IDLE) || started.elapsed() > LIMIT {
                return Ok(tally);
            }
            let batch = self.poll_batch()?;
            if batch.is_empty() {
                continue;
            }
            last_seen = Instant::now();
            std::thread::sleep(PACE);
            let assigned = self.assigned()?;
            if taken.is_none() {
                taken = self.consumer.group_metadata();
                first_assignment = assigned.clone();
            }
            let after = assigned != first_assignment;
            tally.tried_after += u64::from(after);
            let fresh;
            let metadata = match self.metadata {
                MetadataUse::TakenOnce => taken.as_ref(),
                MetadataUse::FreshPerCommit => {
                    fresh = self.consumer.group_metadata();
                    fresh.as_ref()
                }
            }
            .ok_or_else(|| {
                Error::BadConfig("the consumer has no group metadata".into())
            })?;
            match self.transact(&batch, metadata) {
                Ok(()) => {
                    failed_in_a_row = 0;
                    tally.committed += 1;
                    tally.committed_after += u64::from(after);
                }
                Err(e) => {
                    failed_in_a_row += 1;
                    let text = plain_error(&e.to_string(), &self.input);
                    *tally.errors.entry(text).or_insert(0) += 1;
                    if e.fatal || failed_in_a_row >= GIVE_UP {
                        return Ok(tally);
                    }
                    // Every delivery report first, or librdkafka refuses to abort.
                    let _ = produce::drain(&self.producer, Duration::from_secs(30));
                    self.producer
                        .abort_transaction(Duration::from_secs(30))
                        .doing("aborting a transaction")?;
                    tally.aborted += 1;
                    self.rewind()?;
                }
            }
            if let Some(j) = joined {
                if tally.committed >= BEFORE_JOIN {
                    j.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// Up to [`PER_TRANSACTION`] records: (partition, offset, id).
    fn poll_batch(&self) -> Result<Vec<(i32, i64, u64)>> {
        let mut batch = Vec::new();
        while batch.len() < PER_TRANSACTION {
            match self.consumer.poll(Duration::from_millis(100)) {
                None => break,
                Some(Ok(m)) => {
                    if let Some(id) = crate::record::parse_key(m.key()) {
                        batch.push((m.partition(), m.offset(), id));
                    }
                }
                Some(Err(e)) if crate::consume::transient(&e) => break,
                Some(Err(e)) => return Err(e).doing("consuming"),
            }
        }
        Ok(batch)
    }

    /// One transaction: the outputs, the consumed offsets with `metadata`,
    /// the commit. The first failure is returned as librdkafka classifies it.
    fn transact(
        &self,
        batch: &[(i32, i64, u64)],
        metadata: &ConsumerGroupMetadata,
    ) -> std::result::Result<(), TxnError> {
        let txn = |e: rdkafka::error::KafkaError| TxnError::of(&e);
        self.producer.begin_transaction().map_err(txn)?;
        for &(_, _, id) in batch {
            produce::send(&self.producer, &self.output, id, 100).map_err(|e| {
                TxnError {
                    code: rdkafka::types::RDKafkaErrorCode::Fail,
                    fatal: false,
                    requires_abort: true,
                    message: e.to_string(),
                }
            })?;
        }
        let mut offsets = TopicPartitionList::new();
        let topic = &self.input;
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for &(p, o, _) in batch {
            let e = next.entry(p).or_insert(o + 1);
            *e = (*e).max(o + 1);
        }
        for (p, o) in next {
            let _ = offsets.add_partition_offset(topic, p, Offset::Offset(o));
        }
        self.producer
            .send_offsets_to_transaction(&offsets, metadata, Duration::from_secs(30))
            .map_err(txn)?;
        let _ = produce::drain(&self.producer, Duration::from_secs(30));
        self.producer
            .commit_transaction(Duration::from_secs(30))
            .map_err(txn)
    }

    /// The partitions assigned now.
    fn assigned(&self) -> Result<Vec<i32>> {
        let list = self.consumer.assignment().doing("reading the assignment")?;
        let mut partitions: Vec<i32> =
            list.elements().iter().map(|e| e.partition()).collect();
        partitions.sort_unstable();
        Ok(partitions)
    }

    /// After an abort: back to the group's committed offsets.
    fn rewind(&self) -> Result<()> {
        let assigned = self.consumer.assignment().doing("reading the assignment")?;
        let committed = self
            .consumer
            .committed_offsets(assigned, Duration::from_secs(10))
            .doing("reading the committed offsets")?;
        let mut to = TopicPartitionList::new();
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            let _ = to.add_partition_offset(e.topic(), e.partition(), offset);
        }
        drop(committed);
        self.consumer
            .seek_partitions(to, Duration::from_secs(10))
            .doing("rewinding to the committed offsets")?;
        Ok(())
    }
}

/// An error's text without what changes from run to run: the topic's name
/// and librdkafka's "(after N ms)".
fn plain_error(text: &str, topic: &str) -> String {
    let text = text.replace(topic, "<input>");
    match text.rfind(" (after ") {
        Some(i) if text.ends_with("ms)") => text[..i].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_loses_its_topic_name_and_its_timing() {
        let e = "IllegalGeneration (abortable): Failed on t-1((null))[0](Broker: x) (after 13ms)";
        assert_eq!(
            plain_error(e, "t-1"),
            "IllegalGeneration (abortable): Failed on <input>((null))[0](Broker: x)"
        );
        assert_eq!(plain_error("no timing", "topic-9"), "no timing");
    }
}
