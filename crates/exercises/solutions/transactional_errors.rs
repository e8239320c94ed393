//! Solution: each failed transactional call is classified on
//! `KafkaError::Transaction(e)`. A retriable commit is called again (the
//! commit went on in the background); an abortable one is aborted and its
//! batch sent again, an oversized payload emptied; a fatal one (fenced)
//! ends the program at once with `EXIT_FENCED`.

use std::time::Duration;

use lab::exercise::kit::{Kit, Outcome, EXIT_FENCED};
use lab::rdkafka::error::{KafkaError, KafkaResult};
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
            for id in batch.clone() {
                let (key, mut payload) = (lab::record::key(id), kit.payload(id));
                if redo && payload.len() > kit.output_limit() {
                    payload.clear();
                }
                kit.send(
                    &producer,
                    BaseRecord::to(&output).key(&key).payload(&payload),
                )?;
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
