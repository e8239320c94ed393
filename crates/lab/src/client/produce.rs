//! Producer loops, one per semantic: fire-and-forget, acknowledged with
//! retries, and idempotent inside transactions.
//!
//! Each record's id rides along as the delivery "opaque", so the delivery
//! report says exactly which ids were acknowledged and which failed.

use std::ops::Range;
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
use crate::error::{Doing, Result};
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
    // ANCHOR: produce_loop
    let transactional = semantic == Semantic::ExactlyOnce;
    if transactional {
        producer
            .init_transactions(Duration::from_secs(30))
            .doing("initialising transactions")?;
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
    }

    let mut sent = 0;
    for id in options.ids.clone() {
        send(&producer, topic, id, options.payload_bytes)?;
        sent += 1;
        if transactional && sent % options.transaction_size.max(1) == 0 {
            commit(&producer)?;
            producer
                .begin_transaction()
                .doing("beginning a transaction")?;
        }
        if sent % 256 == 0 {
            progress(sent);
        }
    }
    if transactional {
        commit(&producer)?;
    } else {
        // Waits for every delivery report; with acks=0 they come at once.
        producer
            .flush(Duration::from_secs(330))
            .doing("waiting for the last acknowledgements")?;
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

/// Hands one record to the client, waiting for room if its queue is full.
pub(crate) fn send<C: ProducerContext<DeliveryOpaque = usize>>(
    producer: &BaseProducer<C>,
    topic: &str,
    id: u64,
    payload_bytes: usize,
) -> Result<()> {
    let key = record::key(id);
    let value = record::value(id, payload_bytes);
    let record = BaseRecord::with_opaque_to(topic, id as usize)
        .key(&key)
        .payload(&value);
    send_waiting(producer, record, Duration::from_millis(10))
        .doing(format!("sending record {id}"))
}

/// Hands `record` to the client; while its queue is full, polls for `wait`
/// (delivery reports are what free room) and tries again.
pub(crate) fn send_waiting<'a, K, P, C>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
    wait: Duration,
) -> std::result::Result<(), KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
    C: ProducerContext,
{
    loop {
        match producer.send(record) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(wait);
            }
            Err((e, _)) => return Err(e),
        }
    }
}

// ANCHOR: commit_transaction
/// Commits the open transaction, draining delivery reports first. The
/// rdkafka crate's `BaseProducer::commit_transaction` calls its own
/// `BaseProducer::flush` before librdkafka's commit, and that flush waits for
/// delivery reports in polls of up to 100 ms, which would make frequent
/// commits look far slower than Kafka is.
pub(crate) fn commit<C: ProducerContext>(producer: &BaseProducer<C>) -> Result<()> {
    drain(producer, Duration::from_secs(60))?;
    producer
        .commit_transaction(Duration::from_secs(60))
        .doing("committing a transaction")
}
// ANCHOR_END: commit_transaction

/// Polls until every record handed over has its delivery report.
pub(crate) fn drain<C: ProducerContext>(
    producer: &BaseProducer<C>,
    limit: Duration,
) -> Result<()> {
    // Polling is the wait: each poll serves delivery reports for up to 5 ms.
    wait_until("producer", limit, Duration::ZERO, || {
        let in_flight = producer.in_flight_count();
        if in_flight == 0 {
            return Ok(None);
        }
        producer.poll(Duration::from_millis(5));
        Ok(Some(format!("{in_flight} records still in flight")))
    })
}
