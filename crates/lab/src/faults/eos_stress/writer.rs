//! Transactional producers and how the scenarios write: in committed
//! transactions, in a transaction left open, or without a transaction. The
//! records themselves go through [`crate::produce`]'s `send`, `drain` and
//! `commit`.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, Producer};

use super::common::TxnError;
use super::{COMMIT_TIMEOUT, INIT_TIMEOUT, PAYLOAD_BYTES, TRANSACTION_SIZE};
use crate::error::{Doing, Result};
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::semantics::Semantic;

pub(super) type TxProducer = BaseProducer<LoggingContext>;

/// A transactional producer with its transactions initialised (which fences
/// any earlier instance with the same `transactional_id`).
pub(super) fn transactional_producer(
    bootstrap: &str,
    transactional_id: &str,
    overrides: &[(String, String)],
    log: &Arc<DeliveryLog>,
) -> Result<TxProducer> {
    let config = Semantic::ExactlyOnce.producer_config(
        bootstrap,
        Some(transactional_id),
        overrides,
    )?;
    init_transactional(config, log.clone())
}

/// A transactional producer from `config`, its transactions initialised.
pub(crate) fn init_transactional(
    config: rdkafka::ClientConfig,
    log: Arc<DeliveryLog>,
) -> Result<TxProducer> {
    let transactional_id = config.get("transactional.id").unwrap_or("?").to_string();
    let producer: TxProducer = config
        .create_with_context(LoggingContext(log))
        .doing("creating a transactional producer")?;
    producer
        .init_transactions(INIT_TIMEOUT)
        .doing(format!("initialising transactions of {transactional_id}"))?;
    Ok(producer)
}

/// `ids` cut into the transactions they are written in: [`TRANSACTION_SIZE`]
/// records each, the last one possibly shorter.
pub(super) fn transactions(ids: Range<u64>) -> impl Iterator<Item = Range<u64>> {
    let end = ids.end;
    ids.step_by(TRANSACTION_SIZE as usize)
        .map(move |start| start..(start + TRANSACTION_SIZE).min(end))
}

/// Writes `ids` in committed transactions of [`TRANSACTION_SIZE`] records;
/// returns how many transactions.
pub(super) fn write_committed(
    producer: &TxProducer,
    topic: &str,
    ids: Range<u64>,
) -> Result<u64> {
    let mut count = 0;
    for transaction in transactions(ids) {
        write_open(producer, topic, transaction)?;
        produce::commit(producer)?;
        count += 1;
    }
    Ok(count)
}

/// Begins a transaction, writes `ids` in it and waits for every delivery
/// report: the records are in the log, the transaction stays open.
pub(crate) fn write_open(
    producer: &TxProducer,
    topic: &str,
    ids: Range<u64>,
) -> Result<()> {
    producer
        .begin_transaction()
        .doing("beginning a transaction")?;
    for id in ids {
        produce::send(producer, topic, id, PAYLOAD_BYTES)?;
    }
    produce::drain(producer, Duration::from_secs(60))?;
    // Monitored runs: the open transaction shows in the statistics.
    crate::stats::Monitor::settle(producer);
    Ok(())
}

/// Writes `ids` without a transaction and waits until all are acknowledged.
pub(crate) fn write_acknowledged(
    producer: &BaseProducer<LoggingContext>,
    topic: &str,
    ids: Range<u64>,
) -> Result<()> {
    for id in ids {
        produce::send(producer, topic, id, PAYLOAD_BYTES)?;
    }
    produce::flush(producer, Duration::from_secs(60))
}

/// The commit of a producer that Kafka has given up on (fenced, or its
/// transaction expired), which must fail: how it failed (None: it succeeded).
/// The producer is dropped after it.
pub(super) fn late_commit(producer: TxProducer) -> Option<TxnError> {
    let error = producer
        .commit_transaction(COMMIT_TIMEOUT)
        .err()
        .map(|e| TxnError::of(&e));
    // Monitored runs: the producer's last statistics (its fenced or expired
    // state) are reported.
    crate::stats::Monitor::settle(&producer);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_cut_into_transactions_of_transaction_size() {
        let cut: Vec<Range<u64>> = transactions(0..250).collect();
        assert_eq!(cut, [0..100, 100..200, 200..250]);
        let mut cut = transactions(30..130);
        assert_eq!((cut.next(), cut.next()), (Some(30..130), None));
        assert_eq!(transactions(7..7).count(), 0);
    }
}
