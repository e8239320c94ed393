//! # Exercise: retriable, abortable, fatal
//!
//! This transactional producer writes the source (ids `0..kit.source_len()`,
//! the payload of each from `kit.payload(id)`) to the output topic, in
//! transactions of 50 ids. When a commit fails, it tries the commit again,
//! five times at most, and then gives up with the error.
//!
//! The grader makes three things happen to it, for real, in each run:
//! - the answer to one commit is lost on its way back (a chaos proxy between
//!   your producer and Kafka swallows it): that `kit.commit_transaction`
//!   call times out;
//! - one record's payload is larger than the output topic takes
//!   (`kit.output_limit()` bytes): the broker refuses it;
//! - a successor with the same `transactional.id` starts and fences this
//!   producer.
//!
//! **Goal:** tell the three kinds of error apart on
//! `KafkaError::Transaction(e)`, in this order, and act on each:
//! - `e.is_retriable()`: call the same function again;
//! - `e.txn_requires_abort()`: `kit.abort_transaction`, then send the whole
//!   batch again in a new transaction. On that redo, a record whose payload
//!   is longer than `kit.output_limit()` goes out with an empty payload (its
//!   id stays in the key, so the output still holds every id once). The
//!   first attempt sends every payload as it is;
//! - `e.is_fatal()`: stop at once, sending and committing nothing more:
//!   `std::process::exit(EXIT_FENCED)`.
//!
//! Once a transaction has failed, `kit.send` fails too, with
//! `KafkaError::MessageProduction(RDKafkaErrorCode::State)` (or `Fatal`
//! once fenced): the error reaches your sends before your commit if it
//! comes while you are still sending. Stop sending then, and call
//! `commit_transaction`: it returns the transaction's error, with its kind.
//!
//! The committed output must then hold every id before the fenced
//! transaction exactly once. Commit and abort through the kit
//! (`kit.commit_transaction`, `kit.abort_transaction`, `kit.send`): the
//! grader's errors fall there, and it sees what your program did next.
//!
//! Grade it with `cargo xtask exercise transactional-errors`, or from the
//! notebook `notebooks/05-transactions.ipynb`. The book: "Transactions",
//! section "Errors in your own loop".

use std::time::Duration;

#[allow(unused_imports)] // for your solution
use lab::exercise::kit::EXIT_FENCED;
use lab::exercise::kit::{Kit, Outcome};
#[allow(unused_imports)] // for your solution
use lab::rdkafka::error::KafkaError;
use lab::rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Ids per transaction.
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
        producer.begin_transaction()?;
        for id in batch.clone() {
            let (key, payload) = (lab::record::key(id), kit.payload(id));
            kit.send(
                &producer,
                BaseRecord::to(&output).key(&key).payload(&payload),
            )?;
        }
        // When the commit fails, try it again (five times at most).
        let mut attempts = 1;
        while let Err(e) = kit.commit_transaction(&producer, TIMEOUT) {
            println!("the commit of ids {batch:?} failed: {e}");
            if attempts == 5 {
                return Err(e.into());
            }
            attempts += 1;
        }
        next = batch.end;
    }
    Ok(())
}
