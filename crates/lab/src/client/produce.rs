//! Producer loops, one per semantic: fire-and-forget, acknowledged with
//! retries, and idempotent inside transactions.
//!
//! Each record's id rides along as the delivery "opaque", so the delivery
//! report says exactly which ids were acknowledged and which failed.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::liveness::{self, BrokerWatch};
use crate::record;
use crate::semantics::Semantic;
use crate::support::{lock, wait_until};

/// What the producer side of a run did.
#[derive(Clone, Debug, Default)]
pub struct ProduceReport {
    /// Records handed to the client.
    pub sent: u64,
    /// Ids whose delivery report said success. With acks=0 that only means the
    /// record left the client: nobody confirmed it.
    pub acknowledged: Vec<u64>,
    /// Records whose delivery report said failure.
    pub failed: Vec<Failure>,
    pub elapsed: Duration,
}

/// What to produce.
#[derive(Clone, Debug)]
pub struct ProduceOptions {
    pub ids: Range<u64>,
    pub payload_bytes: usize,
    /// Exactly-once only: records per transaction.
    pub transaction_size: u64,
    /// Extra producer settings, applied after the semantic's (and checked).
    pub overrides: Vec<(String, String)>,
}

/// A record the producer was never told was safe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub id: u64,
    /// What librdkafka knows about whether the broker has it.
    pub status: DeliveryStatus,
    pub error: String,
}

/// librdkafka's verdict on a record whose delivery failed
/// (`rd_kafka_message_status`): what a lost acknowledgement looks like from
/// the producer's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryStatus {
    /// Never sent, or the broker said it did not write it: safe to resend.
    NotPersisted,
    /// Sent, but no answer came: it may be in the log. Resending may duplicate it.
    PossiblyPersisted,
    /// The broker acknowledged it.
    Persisted,
}

impl DeliveryStatus {
    fn of(message: &rdkafka::message::BorrowedMessage<'_>) -> DeliveryStatus {
        use rdkafka::bindings::rd_kafka_msg_status_t as S;
        // SAFETY: the message is borrowed for the whole call, so the pointer is
        // valid; rd_kafka_message_status only reads it.
        match unsafe { rdkafka::bindings::rd_kafka_message_status(message.ptr()) } {
            S::RD_KAFKA_MSG_STATUS_PERSISTED => DeliveryStatus::Persisted,
            S::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED => {
                DeliveryStatus::PossiblyPersisted
            }
            _ => DeliveryStatus::NotPersisted,
        }
    }
}

/// What a [`DeliveryLog`] calls with each delivery report: the record's id,
/// and whether it was delivered.
type ReportHook = Box<dyn Fn(u64, Result<(), &Failure>) + Send + Sync>;

/// Collects delivery reports by record id.
#[derive(Default)]
pub struct DeliveryLog {
    acknowledged: Mutex<Vec<u64>>,
    failed: Mutex<Vec<Failure>>,
    /// Successful delivery reports so far, never reset: news from a broker.
    delivered: AtomicU64,
    /// Called with each report as it arrives (the crash workers print them).
    on_report: Option<ReportHook>,
}

impl DeliveryLog {
    /// A log that also calls `on_report` for every delivery report.
    pub fn with_callback(
        on_report: impl Fn(u64, Result<(), &Failure>) + Send + Sync + 'static,
    ) -> Self {
        DeliveryLog {
            on_report: Some(Box::new(on_report)),
            ..Default::default()
        }
    }

    /// How many acknowledgements have arrived (and not been taken) so far.
    pub fn acknowledged_count(&self) -> usize {
        lock(&self.acknowledged).len()
    }

    /// Successful delivery reports since the log was made (taken or not).
    pub fn delivered_count(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Takes the acknowledged ids and failures collected so far.
    pub fn take(&self) -> (Vec<u64>, Vec<Failure>) {
        (
            std::mem::take(&mut *lock(&self.acknowledged)),
            std::mem::take(&mut *lock(&self.failed)),
        )
    }
}

/// The producer context that files each delivery report in a `DeliveryLog`.
pub struct LoggingContext(pub Arc<DeliveryLog>);

impl ClientContext for LoggingContext {
    /// Statistics (only sent when a `monitor::Monitor` turned them on).
    fn stats_raw(&self, statistics: &[u8]) {
        crate::stats::deliver(statistics);
    }
}

impl ProducerContext for LoggingContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let id = id as u64;
        match result {
            Ok(_) => {
                if let Some(report) = &self.0.on_report {
                    report(id, Ok(()));
                }
                lock(&self.0.acknowledged).push(id);
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                let failure = Failure {
                    id,
                    status: DeliveryStatus::of(message),
                    error: error.to_string(),
                };
                if let Some(report) = &self.0.on_report {
                    report(id, Err(&failure));
                }
                lock(&self.0.failed).push(failure);
            }
        }
    }
}

/// Produces `options.ids` to `topic` the way `semantic` prescribes. `progress`
/// is called with the number of records handed over so far.
pub fn produce(
    cluster: &Cluster,
    semantic: Semantic,
    topic: &str,
    options: &ProduceOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ProduceReport> {
    let started = Instant::now();
    let transactional_id = format!("{topic}-producer");
    let config = semantic.producer_config(
        cluster.bootstrap(),
        Some(&transactional_id),
        &options.overrides,
    )?;
    let log = Arc::new(DeliveryLog::default());
    let producer: BaseProducer<LoggingContext> = config
        .create_with_context(LoggingContext(log.clone()))
        .doing("creating the producer")?;
    let mut watch = cluster
        .watch(format!("producing to {topic}"))
        .meanwhile(meanwhile(semantic));
    let mut heard = 0;
    // ANCHOR: produce_loop
    let transactional = semantic == Semantic::ExactlyOnce;
    if transactional {
        init_transactions(&producer)?;
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
    }

    let mut sent = 0;
    for id in options.ids.clone() {
        send_watched(&producer, topic, id, options.payload_bytes, &mut watch)?;
        sent += 1;
        if transactional && sent % options.transaction_size.max(1) == 0 {
            commit_watched(&producer, &mut watch)?;
            producer
                .begin_transaction()
                .doing("beginning a transaction")?;
        }
        if sent % 256 == 0 {
            progress(sent);
            // Acknowledgements are news from a broker; none for a while
            // makes the watch ask whether any broker is still there.
            listen(&log, &mut heard, &mut watch)?;
        }
    }
    if transactional {
        commit_watched(&producer, &mut watch)?;
    } else {
        // Waits for every delivery report; with acks=0 they come at once.
        flush_watched(&producer, Duration::from_secs(330), &mut watch)?;
    }
    // ANCHOR_END: produce_loop
    progress(sent);
    crate::stats::Monitor::settle(&producer);
    let (acknowledged, failed) = log.take();
    Ok(ProduceReport {
        sent,
        acknowledged,
        failed,
        elapsed: started.elapsed(),
    })
}

/// What a producer of `semantic` does while no broker answers, in the line
/// the lab writes meanwhile.
fn meanwhile(semantic: Semantic) -> &'static str {
    match semantic {
        Semantic::AtMostOnce => "at-most-once: the records wait in the client's queue",
        Semantic::AtLeastOnce => {
            "at-least-once keeps retrying every record until message.timeout.ms"
        }
        Semantic::ExactlyOnce => {
            "exactly-once: the open transaction waits for its records"
        }
    }
}

/// Tells `watch` of the acknowledgements `log` got since `heard`, and lets
/// it look for a broker if there were none for a while.
pub(crate) fn listen(
    log: &DeliveryLog,
    heard: &mut u64,
    watch: &mut BrokerWatch,
) -> Result<()> {
    let delivered = log.delivered_count();
    if delivered > *heard {
        *heard = delivered;
        watch.heard();
    }
    watch.check()
}

/// Hands one record to the client, waiting for room if its queue is full
/// (and failing if no broker answers meanwhile).
pub(crate) fn send<C: ProducerContext<DeliveryOpaque = usize>>(
    producer: &BaseProducer<C>,
    topic: &str,
    id: u64,
    payload_bytes: usize,
) -> Result<()> {
    let record = record_of(id, payload_bytes);
    send_waiting(
        producer,
        record.borrowed(topic),
        Duration::from_millis(10),
        None,
    )
    .map_err(|e| in_sending(e, id))
}

/// [`send`], with the caller's watch on the brokers.
pub(crate) fn send_watched<C: ProducerContext<DeliveryOpaque = usize>>(
    producer: &BaseProducer<C>,
    topic: &str,
    id: u64,
    payload_bytes: usize,
    watch: &mut BrokerWatch,
) -> Result<()> {
    let record = record_of(id, payload_bytes);
    send_waiting(
        producer,
        record.borrowed(topic),
        Duration::from_millis(10),
        Some(watch),
    )
    .map_err(|e| in_sending(e, id))
}

/// A record's key and value, made from its id.
struct Owned {
    id: u64,
    key: String,
    value: Vec<u8>,
}

fn record_of(id: u64, payload_bytes: usize) -> Owned {
    Owned {
        id,
        key: record::key(id),
        value: record::value(id, payload_bytes),
    }
}

impl Owned {
    fn borrowed<'a>(
        &'a self,
        topic: &'a str,
    ) -> BaseRecord<'a, String, Vec<u8>, usize> {
        BaseRecord::with_opaque_to(topic, self.id as usize)
            .key(&self.key)
            .payload(&self.value)
    }
}

/// Names the record in a librdkafka error; a missing broker says so itself.
fn in_sending(error: Error, id: u64) -> Error {
    match error {
        Error::Kafka { source, .. } => Error::Kafka {
            doing: format!("sending record {id}"),
            source,
        },
        other => other,
    }
}

/// Hands `record` to the client; while its queue is full, polls for `wait`
/// (delivery reports are what free room) and tries again, asking `watch`
/// (or, if none is given, a watch of its own) whether any broker answers.
pub(crate) fn send_waiting<'a, K, P, C>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
    wait: Duration,
    mut watch: Option<&mut BrokerWatch>,
) -> Result<()>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
    C: ProducerContext,
{
    let mut own: Option<BrokerWatch> = None;
    loop {
        match producer.send(record) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(wait);
                // No guessing from the queue's length (librdkafka counts
                // its error events there too): the watch asks the brokers.
                let watch = match watch.as_deref_mut() {
                    Some(w) => w,
                    None => own.get_or_insert_with(|| {
                        BrokerWatch::of_client(producer.client(), "producing")
                    }),
                };
                watch.check()?;
            }
            Err((e, _)) => return Err(e).doing("sending a record"),
        }
    }
}

/// Initialises transactions: fences any earlier producer with the same
/// `transactional.id` and aborts what it left open. Asked for in slices, and
/// again after one that timed out (librdkafka allows it), failing early if
/// no broker answers.
pub(crate) fn init_transactions<C: ProducerContext>(
    producer: &BaseProducer<C>,
) -> Result<()> {
    BrokerWatch::of_client(producer.client(), "initialising transactions").patiently(
        "initialising transactions",
        Duration::from_secs(30),
        |t| producer.init_transactions(t),
    )
}

/// Commits the open transaction (see [`commit_watched`]).
pub(crate) fn commit<C: ProducerContext>(producer: &BaseProducer<C>) -> Result<()> {
    commit_watched(
        producer,
        &mut BrokerWatch::of_client(producer.client(), "committing a transaction"),
    )
}

// ANCHOR: commit_transaction
/// Commits the open transaction, draining delivery reports first. The
/// rdkafka crate's `BaseProducer::commit_transaction` calls its own
/// `BaseProducer::flush` before librdkafka's commit, and that flush waits for
/// delivery reports in polls of up to 100 ms, which would make frequent
/// commits look far slower than Kafka is. The commit is asked for in slices,
/// and asked again after a slice that timed out (the commit goes on in the
/// background meanwhile), so that `watch` can look for a broker.
pub(crate) fn commit_watched<C: ProducerContext>(
    producer: &BaseProducer<C>,
    watch: &mut BrokerWatch,
) -> Result<()> {
    drain_watched(producer, Duration::from_secs(60), watch)?;
    watch.patiently("committing a transaction", Duration::from_secs(60), |t| {
        producer.commit_transaction(t)
    })
}
// ANCHOR_END: commit_transaction

/// Polls until every record handed over has its delivery report.
pub(crate) fn drain<C: ProducerContext>(
    producer: &BaseProducer<C>,
    limit: Duration,
) -> Result<()> {
    drain_watched(
        producer,
        limit,
        &mut BrokerWatch::of_client(producer.client(), "waiting for acknowledgements"),
    )
}

/// [`drain`], with the caller's watch on the brokers.
pub(crate) fn drain_watched<C: ProducerContext>(
    producer: &BaseProducer<C>,
    limit: Duration,
    watch: &mut BrokerWatch,
) -> Result<()> {
    // Polling is the wait: each poll serves delivery reports for up to 5 ms.
    wait_until("producer", limit, Duration::ZERO, || {
        let in_flight = producer.in_flight_count();
        if in_flight == 0 {
            return Ok(None);
        }
        watch.check()?;
        producer.poll(Duration::from_millis(5));
        Ok(Some(format!("{in_flight} records still in flight")))
    })
}

/// Flushes the producer (every queued record is sent at once, linger or
/// not) and waits up to `limit` for every delivery report, failing early if
/// no broker answers meanwhile.
pub(crate) fn flush<C: ProducerContext>(
    producer: &BaseProducer<C>,
    limit: Duration,
) -> Result<()> {
    flush_watched(
        producer,
        limit,
        &mut BrokerWatch::of_client(producer.client(), "waiting for acknowledgements"),
    )
}

/// [`flush`], with the caller's watch on the brokers: flushes in slices of
/// a second, and looks at the watch between them.
pub(crate) fn flush_watched<C: ProducerContext>(
    producer: &BaseProducer<C>,
    limit: Duration,
    watch: &mut BrokerWatch,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        match producer.flush(Duration::from_secs(1)) {
            Ok(()) => {
                watch.heard();
                return Ok(());
            }
            Err(e) if liveness::unanswered(&e) && Instant::now() < deadline => {
                watch.check()?;
            }
            Err(source) => {
                return Err(watch.explain(Error::Kafka {
                    doing: "waiting for the last acknowledgements".into(),
                    source,
                }))
            }
        }
    }
}
