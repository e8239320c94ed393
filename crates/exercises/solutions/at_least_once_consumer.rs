//! Solution: process the batch, then commit. A committed offset then only
//! ever covers processed records; a crash before the commit makes the
//! replacement process the batch again (duplicates, allowed), never skip it.

use lab::exercise::kit::{poll_batch, Kit, Outcome};
use lab::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

pub fn run(kit: &mut Kit) -> Outcome {
    let consumer: BaseConsumer = kit
        .consumer_config()
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[kit.input_topic()])?;

    while !kit.finished() {
        let batch = poll_batch(&consumer, 50)?;
        if batch.is_empty() {
            continue;
        }
        for message in &batch {
            kit.process(message)?;
        }
        kit.commit(&consumer, CommitMode::Sync)?;
    }
    Ok(())
}
