//! Producer loops, one per semantic: fire-and-forget, acknowledged with
//! retries, and idempotent inside transactions.
//!
//! Each record's id rides along as the delivery "opaque", so the delivery
//! report says exactly which ids were acknowledged and which failed.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use rdkafka::ClientContext;

use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::record;
use crate::semantics::Semantic;

/// What the producer side of a run did.
#[derive(Clone, Debug, Default)]
pub struct ProduceReport {
    /// Records handed to the client.
    pub sent: u64,
    /// Ids whose delivery report said success. With acks=0 that only means the
    /// record left the client: nobody confirmed it.
    pub acknowledged: Vec<u64>,
    /// Ids whose delivery report said failure, with librdkafka's reason.
    pub failed: Vec<(u64, String)>,
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

/// Collects delivery reports by record id.
#[derive(Default)]
pub struct DeliveryLog {
    acknowledged: Mutex<Vec<u64>>,
    failed: Mutex<Vec<(u64, String)>>,
}

/// The producer context that files each delivery report in a `DeliveryLog`.
pub struct LoggingContext(pub Arc<DeliveryLog>);

impl ClientContext for LoggingContext {}

impl ProducerContext for LoggingContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        match result {
            Ok(_) => lock(&self.0.acknowledged).push(id as u64),
            Err((error, _)) => {
                lock(&self.0.failed).push((id as u64, error.to_string()))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-push; the data is fine.
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    progress(sent);
    let acknowledged = std::mem::take(&mut *lock(&log.acknowledged));
    let failed = std::mem::take(&mut *lock(&log.failed));
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
    let mut record = BaseRecord::with_opaque_to(topic, id as usize)
        .key(&key)
        .payload(&value);
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e).doing(format!("sending record {id}")),
        }
    }
    producer.poll(Duration::ZERO);
    Ok(())
}

/// Commits the open transaction, draining delivery reports first:
/// `commit_transaction`'s own flush polls in 100 ms steps, which would make
/// frequent commits look far slower than Kafka is.
pub(crate) fn commit<C: ProducerContext>(producer: &BaseProducer<C>) -> Result<()> {
    drain(producer, Duration::from_secs(60))?;
    producer
        .commit_transaction(Duration::from_secs(60))
        .doing("committing a transaction")
}

/// Polls until every record handed over has its delivery report.
pub(crate) fn drain<C: ProducerContext>(
    producer: &BaseProducer<C>,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            return Err(Error::Stalled {
                stage: "producer",
                waited: limit,
                detail: format!(
                    "{} records still in flight",
                    producer.in_flight_count()
                ),
            });
        }
        producer.poll(Duration::from_millis(5));
    }
    Ok(())
}
