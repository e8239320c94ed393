//! Solution: commit a batch's offsets first, then process it. A crash while
//! processing loses the rest of the batch (the group has moved past it), and
//! never repeats a record.

use lab::exercise::kit::{poll_batch, Kit, Outcome};
use lab::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

pub fn run(kit: &mut Kit) -> Outcome {
    let consumer: BaseConsumer = kit
        .consumer_config()
        // Offsets move when this loop says so, not on a timer.
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[kit.input_topic()])?;

    while !kit.finished() {
        let batch = poll_batch(&consumer, 50)?;
        if batch.is_empty() {
            continue;
        }
        kit.commit(&consumer, CommitMode::Sync)?;
        for message in &batch {
            kit.process(message)?;
        }
    }
    Ok(())
}
