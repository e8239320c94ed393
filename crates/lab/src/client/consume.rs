//! Consumer loops, one per semantic: commit before processing, commit after
//! processing, and read-process-write with the consumed offsets committed
//! inside the producer's transaction. Beside them, the loop the course
//! corrects: auto-commit, which a widely copied recipe calls at-most-once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::bindings::rd_kafka_resp_err_t as RespErr;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::liveness::BrokerWatch;
use crate::produce;
use crate::record;
use crate::semantics::Semantic;
use crate::stats::StatsContext;

/// How many records a consumer takes per poll round (and per transaction).
pub const BATCH: usize = 500;

/// How long a consumer may see nothing new before the run is declared stalled.
pub const IDLE_LIMIT: Duration = Duration::from_secs(45);

/// What the consumer side of a run did.
#[derive(Clone, Debug, Default)]
pub struct ConsumeReport {
    /// Ids in the order they were processed; an id twice was processed twice.
    pub processed: Vec<u64>,
    /// Ids written in transactions that were aborted (exactly-once only).
    pub aborted: Vec<u64>,
    /// Offset commits made (or transactions committed).
    pub commits: u64,
    pub elapsed: Duration,
}

/// Where processed records go, and the hook the crash scenarios die in.
pub trait Sink {
    /// Processes a batch of records (by id). At-most-once and at-least-once
    /// call this; exactly-once's sink is its output topic.
    fn process(&mut self, ids: &[u64]) -> Result<()>;

    /// Called in the gap between the two steps of every batch (commit and
    /// process, in the semantic's order), with the number of records this
    /// consumer has taken so far, this batch included, and the batch's ids.
    fn between_steps(&mut self, _consumed: u64, _batch: &[u64]) {}

    /// Exactly-once: Kafka refused to add the offsets to a transaction or
    /// to commit it (`error`); `aborted` says whether the transaction was
    /// then aborted. The loop returns the error next.
    fn refused(&mut self, _error: &Error, _aborted: bool) {}

    /// The auto-commit loop's hook, called twice per batch: once it has been
    /// handed over (its offsets are stored, so the timer may commit them) and
    /// once it has been processed. `group` asks the broker what is committed.
    fn auto_commit_step(
        &mut self,
        _step: AutoCommitStep,
        _consumed: u64,
        _batch: usize,
        _group: &GroupOffsets<'_>,
    ) -> Result<()> {
        Ok(())
    }
}

/// Where the auto-commit loop is in a batch when it calls its hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCommitStep {
    /// Handed over by `poll`, not processed yet.
    Handed,
    /// Processed.
    Processed,
}

/// The in-memory sink of the happy path.
impl Sink for Vec<u64> {
    fn process(&mut self, ids: &[u64]) -> Result<()> {
        self.extend_from_slice(ids);
        Ok(())
    }
}

/// Consumes all of `input` as a member of `group`, per `semantic`, until every
/// partition has been read to its end, processing into `sink`. Exactly-once
/// writes each record to `output` in a transaction that also carries the
/// consumed offsets. `overrides` are extra consumer settings.
#[allow(clippy::too_many_arguments)]
pub fn consume(
    cluster: &Cluster,
    semantic: Semantic,
    input: &str,
    output: Option<&str>,
    group: &str,
    overrides: &[(String, String)],
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(u64),
) -> Result<ConsumeReport> {
    let setup = ConsumeSetup {
        consumer_overrides: overrides.to_vec(),
        ..ConsumeSetup::default()
    };
    consume_with(
        cluster, semantic, input, output, group, &setup, sink, progress,
    )
}

/// How a consumer (and exactly-once's processor) is set up beyond its
/// semantic's settings.
#[derive(Clone, Debug)]
pub struct ConsumeSetup {
    /// Extra consumer settings, applied last.
    pub consumer_overrides: Vec<(String, String)>,
    /// Exactly-once: the processor's `transactional.id` (by default one per
    /// group, `<group>-processor`, so a restarted processor fences the last).
    pub transactional_id: Option<String>,
    /// Exactly-once: extra settings of the processor's producer.
    pub producer_overrides: Vec<(String, String)>,
    /// How long the consumer may see nothing at all before the run is
    /// declared stalled.
    pub idle_limit: Duration,
}

impl Default for ConsumeSetup {
    fn default() -> ConsumeSetup {
        ConsumeSetup {
            consumer_overrides: Vec::new(),
            transactional_id: None,
            producer_overrides: Vec::new(),
            idle_limit: IDLE_LIMIT,
        }
    }
}

/// [`consume`], set up as `setup` says.
#[allow(clippy::too_many_arguments)]
pub fn consume_with(
    cluster: &Cluster,
    semantic: Semantic,
    input: &str,
    output: Option<&str>,
    group: &str,
    setup: &ConsumeSetup,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(u64),
) -> Result<ConsumeReport> {
    let started = Instant::now();
    let partitions = cluster.partition_count(input)?;
    let consumer =
        subscribe(cluster, semantic, group, &setup.consumer_overrides, input)?;

    let mut report = ConsumeReport::default();
    let mut drained = Drained::new(
        partitions,
        cluster.watch(format!("consuming {input} ({semantic})")),
    );
    drained.idle_limit = setup.idle_limit;
    match semantic {
        Semantic::AtMostOnce | Semantic::AtLeastOnce => loop {
            let batch = next_batch(&consumer, &mut drained)?;
            if batch.is_empty() {
                if drained.all() {
                    break;
                }
                continue;
            }
            // ANCHOR: commit_order
            let offsets = next_offsets(&batch);
            let ids: Vec<u64> = batch.iter().map(|r| r.id).collect();
            let consumed = report.processed.len() as u64 + ids.len() as u64;
            if semantic == Semantic::AtMostOnce {
                // Commit first: after a crash in the gap, the batch is never seen again.
                commit(&consumer, &offsets, &mut drained)?;
                sink.between_steps(consumed, &ids);
                sink.process(&ids)?;
            } else {
                // Process first: after a crash in the gap, the batch is processed again.
                sink.process(&ids)?;
                sink.between_steps(consumed, &ids);
                commit(&consumer, &offsets, &mut drained)?;
            }
            // ANCHOR_END: commit_order
            report.processed.extend(ids);
            report.commits += 1;
            progress(report.processed.len() as u64);
        },
        Semantic::ExactlyOnce => {
            let output = output.ok_or_else(|| {
                Error::BadConfig(
                    "exactly-once needs an output topic to write to".into(),
                )
            })?;
            transform(
                cluster,
                &consumer,
                output,
                (group, setup),
                &mut drained,
                &mut report,
                sink,
                progress,
            )?;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Read-process-write: consumed records are written to `output`, and the
/// consumed offsets are committed in the same transaction, using the consumer's
/// group metadata (KIP-447), so either both happen or neither does.
#[allow(clippy::too_many_arguments)]
fn transform(
    cluster: &Cluster,
    consumer: &BaseConsumer<StatsContext>,
    output: &str,
    (group, setup): (&str, &ConsumeSetup),
    drained: &mut Drained,
    report: &mut ConsumeReport,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    // ANCHOR: read_process_write
    // One transactional.id per processor instance: a restart with the same id
    // fences the previous instance and aborts whatever it left open.
    let transactional_id = setup
        .transactional_id
        .clone()
        .unwrap_or_else(|| processor_transactional_id(group));
    let producer: BaseProducer<produce::LoggingContext> = Semantic::ExactlyOnce
        .producer_config(
            cluster.bootstrap(),
            Some(&transactional_id),
            &setup.producer_overrides,
        )?
        .create_with_context(produce::LoggingContext(Default::default()))
        .doing("creating the transactional producer")?;
    produce::init_transactions(&producer)?;
    loop {
        let batch = next_batch(consumer, drained)?;
        if batch.is_empty() {
            if drained.all() {
                return Ok(());
            }
            continue;
        }
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
        let watch = &mut drained.watch;
        for r in &batch {
            produce::send_watched(&producer, output, r.id, r.value_len, watch)?;
        }
        let metadata = consumer.group_metadata().ok_or_else(|| {
            Error::BadConfig(
                "the consumer has no group metadata: is group.id set?".into(),
            )
        })?;
        produce::drain_watched(&producer, Duration::from_secs(60), watch)?;
        // The outputs are in the log now, inside the open transaction.
        let ids: Vec<u64> = batch.iter().map(|r| r.id).collect();
        sink.between_steps(report.processed.len() as u64 + batch.len() as u64, &ids);
        let offsets = next_offsets(&batch);
        let sent = watch.patiently(
            "adding the consumed offsets to the transaction",
            Duration::from_secs(30),
            |t| producer.send_offsets_to_transaction(&offsets, &metadata, t),
        );
        let committed = sent.and_then(|()| produce::commit_watched(&producer, watch));
        if let Err(error) = committed {
            return Err(refused(&producer, error, sink));
        }
        report.commits += 1;
        report.processed.extend(batch.iter().map(|r| r.id));
        progress(report.processed.len() as u64);
    }
    // ANCHOR_END: read_process_write
}

/// A processor whose transaction Kafka refused to complete (a zombie fenced
/// by its group, a producer fenced by a successor): the transaction is
/// aborted if librdkafka says it must be, and the sink is told. Returns the
/// refusal as the error.
fn refused(
    producer: &BaseProducer<produce::LoggingContext>,
    error: Error,
    sink: &mut dyn Sink,
) -> Error {
    let must_abort = matches!(
        &error,
        Error::Kafka { source: KafkaError::Transaction(e), .. } if e.txn_requires_abort()
    );
    let aborted = must_abort
        && produce::drain(producer, Duration::from_secs(10)).is_ok()
        && producer.abort_transaction(Duration::from_secs(30)).is_ok();
    sink.refused(&error, aborted);
    error
}

/// The `transactional.id` of the read-process-write processor of `group`.
pub fn processor_transactional_id(group: &str) -> String {
    format!("{group}-processor")
}

/// The part of a consumed record the loops need (a `BorrowedMessage` cannot
/// outlive the next poll).
pub(crate) struct Consumed {
    pub id: u64,
    pub partition: i32,
    pub offset: i64,
    pub topic: String,
    pub value_len: usize,
}

impl Consumed {
    fn from_message(m: &BorrowedMessage<'_>) -> Option<Consumed> {
        Some(Consumed {
            id: record::parse_key(m.key())?,
            partition: m.partition(),
            offset: m.offset(),
            topic: m.topic().to_string(),
            value_len: m.payload().map(<[u8]>::len).unwrap_or(0),
        })
    }
}

/// Which partitions have been read to their end, and the watch on the
/// brokers that every record (or partition end) consumed feeds.
pub(crate) struct Drained {
    partitions: usize,
    at_end: HashSet<i32>,
    last_progress: Instant,
    watch: BrokerWatch,
    idle_limit: Duration,
}

impl Drained {
    pub(crate) fn new(partitions: usize, watch: BrokerWatch) -> Drained {
        Drained {
            partitions,
            at_end: HashSet::new(),
            last_progress: Instant::now(),
            watch,
            idle_limit: IDLE_LIMIT,
        }
    }

    pub(crate) fn all(&self) -> bool {
        self.at_end.len() >= self.partitions
    }
}

/// Polls up to `BATCH` records; returns early when nothing more is waiting.
/// Fails if nothing at all arrives for `IDLE_LIMIT`, or sooner if no broker
/// answers.
pub(crate) fn next_batch(
    consumer: &BaseConsumer<StatsContext>,
    drained: &mut Drained,
) -> Result<Vec<Consumed>> {
    let mut batch = Vec::new();
    while batch.len() < BATCH {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                drained.watch.check()?;
                break;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                drained.at_end.insert(p);
                drained.last_progress = Instant::now();
                drained.watch.heard();
                if drained.all() {
                    break;
                }
            }
            Some(Err(e)) if transient(&e) => drained.watch.check()?,
            Some(Err(e)) => return Err(e).doing("consuming"),
            Some(Ok(m)) => {
                drained.at_end.remove(&m.partition());
                drained.last_progress = Instant::now();
                drained.watch.heard();
                if let Some(r) = Consumed::from_message(&m) {
                    batch.push(r);
                }
            }
        }
    }
    if batch.is_empty()
        && !drained.all()
        && drained.last_progress.elapsed() > drained.idle_limit
    {
        return Err(Error::Stalled {
            stage: "consumer",
            waited: drained.idle_limit,
            detail: format!(
                "read {} of {} partitions to their end; is another consumer in the group holding the rest?",
                drained.at_end.len(),
                drained.partitions
            ),
        });
    }
    Ok(batch)
}

/// Errors a consumer reports and then recovers from by itself, such as a lost
/// connection to a broker that died: worth ignoring, not worth failing a run.
pub(crate) fn transient(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        error,
        KafkaError::MessageConsumption(
            C::BrokerTransportFailure | C::AllBrokersDown | C::OperationTimedOut
        )
    )
}

/// The offsets to commit after `batch`: per partition, one past the last record.
pub(crate) fn next_offsets(batch: &[Consumed]) -> TopicPartitionList {
    next_offsets_of(
        batch
            .iter()
            .map(|r| (r.topic.as_str(), r.partition, r.offset)),
    )
}

/// [`next_offsets`] of any batch, given each record's topic, partition and
/// offset.
pub(crate) fn next_offsets_of<'a>(
    records: impl IntoIterator<Item = (&'a str, i32, i64)>,
) -> TopicPartitionList {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for (topic, partition, offset) in records {
        let slot = next.entry((topic, partition)).or_insert(0);
        *slot = (*slot).max(offset + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("a plain offset is always valid");
    }
    list
}

/// What a consumer context's own rebalance callback does once it has set the
/// offsets it wants: takes the partitions of an assignment (`err` is
/// `ASSIGN_PARTITIONS`) or gives back those of a revocation, incrementally
/// under the cooperative protocol, wholesale under the eager one.
pub(crate) fn apply_rebalance<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    err: RespErr,
    tpl: &TopicPartitionList,
) -> Result<()> {
    let cooperative = matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    );
    match err {
        RespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS if cooperative => consumer
            .incremental_assign(tpl)
            .doing("assigning partitions"),
        RespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
            consumer.assign(tpl).doing("assigning partitions")
        }
        _ if cooperative => consumer
            .incremental_unassign(tpl)
            .doing("giving partitions back"),
        _ => consumer.unassign().doing("giving partitions back"),
    }
}

/// A consumer of `semantic` in `group`, subscribed to `input`. Shared, so
/// that a commit can wait on a thread of its own (see [`commit`]).
fn subscribe(
    cluster: &Cluster,
    semantic: Semantic,
    group: &str,
    overrides: &[(String, String)],
    input: &str,
) -> Result<Arc<BaseConsumer<StatsContext>>> {
    let mut config = semantic.consumer_config(cluster.bootstrap(), group, overrides);
    // Lab mechanics, not part of the guarantee: report reaching a partition's
    // end, so the loop knows when the topic is drained.
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer<StatsContext> = config
        .create_with_context(StatsContext)
        .doing("creating the consumer")?;
    consumer
        .subscribe(&[input])
        .doing(format!("subscribing to {input}"))?;
    Ok(Arc::new(consumer))
}

// ANCHOR: auto_commit_settings
/// The consumer settings of a widely copied "at-most-once" consumer: no
/// commit of its own, librdkafka commits on a timer. The interval is the
/// default of both librdkafka and the Java client; a shorter one (recipes
/// often use 100 ms) narrows both windows of the timer but closes neither.
pub fn auto_commit_settings() -> Vec<(String, String)> {
    [
        // Commit in the background, every auto.commit.interval.ms.
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", AUTO_COMMIT_INTERVAL_MS),
        // What the timer commits: the offset of every record `poll` has
        // handed over, processed or not (librdkafka's default).
        ("enable.auto.offset.store", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
// ANCHOR_END: auto_commit_settings

/// `auto.commit.interval.ms` of the auto-commit loop, in milliseconds.
pub const AUTO_COMMIT_INTERVAL_MS: &str = "5000";

/// Consumes all of `input` as a member of `group` the way the widely copied
/// auto-commit consumer does: take records, process them, and never commit,
/// leaving that to librdkafka's auto-commit timer. `overrides` are extra
/// consumer settings, applied after [`auto_commit_settings`].
pub fn consume_auto_commit(
    cluster: &Cluster,
    input: &str,
    group: &str,
    overrides: &[(String, String)],
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(u64),
) -> Result<ConsumeReport> {
    let started = Instant::now();
    let partitions = cluster.partition_count(input)?;
    let mut settings = auto_commit_settings();
    settings.extend_from_slice(overrides);
    // At-most-once's other settings (auto.offset.reset, isolation.level) stay.
    let consumer = subscribe(cluster, Semantic::AtMostOnce, group, &settings, input)?;

    let mut report = ConsumeReport::default();
    let mut drained = Drained::new(
        partitions,
        cluster.watch(format!("consuming {input} (auto-commit)")),
    );
    // Per partition, one past the last record handed over: what the timer commits.
    let mut handed: BTreeMap<(String, i32), i64> = BTreeMap::new();
    // ANCHOR: auto_commit_loop
    loop {
        // Each record `poll` hands over has its offset stored at once: from
        // here on, the timer may commit it, whatever happens to it next.
        let batch = next_batch(&consumer, &mut drained)?;
        if batch.is_empty() {
            if drained.all() {
                break;
            }
            continue;
        }
        for r in &batch {
            let next = handed.entry((r.topic.clone(), r.partition)).or_insert(0);
            *next = (*next).max(r.offset + 1);
        }
        let ids: Vec<u64> = batch.iter().map(|r| r.id).collect();
        let consumed = report.processed.len() as u64 + ids.len() as u64;
        let group_offsets =
            GroupOffsets::new(&consumer, &handed, "records handed over");
        sink.auto_commit_step(
            AutoCommitStep::Handed,
            consumed,
            ids.len(),
            &group_offsets,
        )?;
        sink.process(&ids)?;
        sink.auto_commit_step(
            AutoCommitStep::Processed,
            consumed,
            ids.len(),
            &group_offsets,
        )?;
        // No commit here: the timer does it, on its own schedule.
        report.processed.extend(ids);
        progress(report.processed.len() as u64);
    }
    // ANCHOR_END: auto_commit_loop
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The group's committed offsets as the broker holds them, next to what the
/// auto-commit loop has handed over: what lets a crash hook die on a chosen
/// side of an auto-commit.
pub struct GroupOffsets<'a> {
    consumer: &'a BaseConsumer<StatsContext>,
    /// Per partition, the offset the group's commits are to reach.
    target: &'a BTreeMap<(String, i32), i64>,
    /// What `target` stands for, in a message.
    what: &'static str,
}

impl<'a> GroupOffsets<'a> {
    pub(crate) fn new(
        consumer: &'a BaseConsumer<StatsContext>,
        target: &'a BTreeMap<(String, i32), i64>,
        what: &'static str,
    ) -> GroupOffsets<'a> {
        GroupOffsets {
            consumer,
            target,
            what,
        }
    }

    /// Waits until the group's committed offsets reach the target (every
    /// record handed over so far, or stored so far), asking the group coordinator (OffsetFetch) every 10 ms, so it
    /// returns within a few milliseconds of the auto-commit that got there.
    /// Returns how long it waited.
    pub fn wait_until_committed(&self, limit: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let committed = self.committed()?;
            let covered = self.target.iter().all(|(partition, next)| {
                committed.get(partition).is_some_and(|c| c >= next)
            });
            if covered {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(Error::Stalled {
                    stage: "auto-commit",
                    waited: limit,
                    detail: format!(
                        "the group's committed offsets never reached the {} \
                         (committed {committed:?}, {} {:?}); is enable.auto.commit=true?",
                        self.what, self.what, self.target
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The group's committed offsets, as the group coordinator holds them now.
    pub(crate) fn committed(&self) -> Result<BTreeMap<(String, i32), i64>> {
        let list = self
            .consumer
            .committed(Duration::from_secs(10))
            .doing("asking the group coordinator for the committed offsets")?;
        let committed = list
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                _ => None,
            })
            .collect();
        Ok(committed)
    }
}

/// Commits `offsets` and waits for the answer. A commit blocks until its
/// coordinator answers or librdkafka gives up (45 s and more with the
/// broker gone), so it waits on a thread of its own while the watch looks
/// for a broker: with none answering, the run fails after about 10 s.
fn commit(
    consumer: &Arc<BaseConsumer<StatsContext>>,
    offsets: &TopicPartitionList,
    drained: &mut Drained,
) -> Result<()> {
    let consumer = consumer.clone();
    let offsets = offsets.clone();
    let committed = drained.watch.wait_on_thread(move || {
        let result = consumer.commit(&offsets, CommitMode::Sync);
        // The list goes first: one that outlives its consumer hangs the
        // consumer's drop.
        drop(offsets);
        drop(consumer);
        result
    })?;
    committed.map_err(|source| {
        drained.watch.explain(Error::Kafka {
            doing: "committing offsets".into(),
            source,
        })
    })
}
