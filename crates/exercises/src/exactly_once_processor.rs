//! # Exercise: the exactly-once read-process-write loop
//!
//! This processor reads the input, writes each record to the output topic
//! in a transaction, commits the transaction, and then commits its
//! consumer's offsets. Each step is right on its own.
//!
//! The grader kills it with SIGKILL right after it commits its 2nd
//! transaction in one run, and right after it sends its 130th record in
//! another, starts a replacement with the same `transactional.id` in the
//! same group, and reads the output with `isolation.level=read_committed`.
//!
//! **Goal: every record exactly once in the committed output.**
//!
//! Grade it with `cargo xtask exercise exactly-once-processor`, or from the
//! notebook `notebooks/06-read-process-write.ipynb`. The book:
//! "Read-process-write".

use std::time::Duration;

use lab::exercise::kit::{poll_batch, Kit, Outcome};
use lab::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use lab::rdkafka::message::Message;
use lab::rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(kit: &mut Kit) -> Outcome {
    let consumer: BaseConsumer = kit
        .consumer_config()
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[kit.input_topic()])?;
    let producer: BaseProducer = kit
        .producer_config()
        .set("transactional.id", kit.transactional_id())
        .create()?;
    producer.init_transactions(TIMEOUT)?;
    let output = kit.output_topic().to_owned();

    while !kit.finished() {
        let batch = poll_batch(&consumer, 50)?;
        if batch.is_empty() {
            continue;
        }
        producer.begin_transaction()?;
        for message in &batch {
            let record = BaseRecord::to(&output)
                .key(message.key().unwrap_or_default())
                .payload(message.payload().unwrap_or_default());
            kit.send(&producer, record)?;
        }
        kit.commit_transaction(&producer, TIMEOUT)?;
        kit.commit(&consumer, CommitMode::Sync)?;
    }
    Ok(())
}
