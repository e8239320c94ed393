//! Solution: the consumer's offsets go into the transaction, with the
//! group's metadata (so a successor of an older generation is fenced), and
//! the consumer commits nothing of its own. The output records and the
//! input's offsets then commit together, or not at all.

use std::time::Duration;

use lab::exercise::kit::{poll_batch, Kit, Outcome};
use lab::rdkafka::consumer::{BaseConsumer, Consumer};
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
        let group = consumer
            .group_metadata()
            .ok_or("the consumer has no group metadata")?;
        producer.send_offsets_to_transaction(&consumer.position()?, &group, TIMEOUT)?;
        kit.commit_transaction(&producer, TIMEOUT)?;
    }
    Ok(())
}
