//! Solution: each failed transactional call is classified on
//! `KafkaError::Transaction(e)`. A retriable commit is called again (the
//! commit went on in the background); an abortable one is aborted and its
//! batch sent again, an oversized payload emptied; a fatal one (fenced)
//! ends the program at once with `EXIT_FENCED`. A send that fails because
//! the transaction already failed stops the batch, and the commit says how.

use std::ops::Range;
use std::time::Duration;

use lab::exercise::kit::{Kit, Outcome, EXIT_FENCED};
use lab::rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use lab::rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const BATCH: u64 = 50;
const TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(kit: &mut Kit) -> Outcome {
    let producer: BaseProducer = kit
        .producer_config()
        .set("transactional.id", kit.transactional_id())
        .create()?;
    producer.init_transactions(TIMEOUT)?;
    let output = kit.output_topic().to_owned();

    let mut next = 0;
    while next < kit.source_len() {
        let batch = next..(next + BATCH).min(kit.source_len());
        let mut redo = false;
        loop {
            producer.begin_transaction()?;
            match send_batch(kit, &producer, &output, batch.clone(), redo) {
                Ok(()) => {}
                // The transaction has already failed (State), or this producer
                // was fenced (Fatal): the commit returns that error, with its kind.
                Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::State | RDKafkaErrorCode::Fatal,
                )) => println!("a send failed: the transaction is failing"),
                Err(e) => return Err(e.into()),
            }
            match commit(kit, &producer) {
                Ok(()) => break,
                Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                    println!("abortable ({e}): aborting, then ids {batch:?} again");
                    kit.abort_transaction(&producer, TIMEOUT)?;
                    redo = true;
                }
                Err(KafkaError::Transaction(e)) if e.is_fatal() => {
                    println!("fatal ({e}): stopping, nothing more is sent");
                    std::process::exit(EXIT_FENCED);
                }
                Err(e) => return Err(e.into()),
            }
        }
        next = batch.end;
    }
    Ok(())
}

/// Sends the ids of `batch`; on a redo, an oversized payload goes out empty.
fn send_batch(
    kit: &mut Kit,
    producer: &BaseProducer,
    output: &str,
    batch: Range<u64>,
    redo: bool,
) -> KafkaResult<()> {
    for id in batch {
        let (key, mut payload) = (lab::record::key(id), kit.payload(id));
        if redo && payload.len() > kit.output_limit() {
            payload.clear();
        }
        kit.send(producer, BaseRecord::to(output).key(&key).payload(&payload))?;
    }
    Ok(())
}

/// Commits, calling `commit_transaction` again while its error is retriable.
fn commit(kit: &mut Kit, producer: &BaseProducer) -> KafkaResult<()> {
    loop {
        match kit.commit_transaction(producer, TIMEOUT) {
            Err(KafkaError::Transaction(e)) if e.is_retriable() => {
                println!("retriable ({e}): committing again");
            }
            other => return other,
        }
    }
}
