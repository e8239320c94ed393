//! # Exercise: an at-least-once consumer that survives SIGKILL
//!
//! This consumer commits each batch as soon as it has polled it ("so that a
//! slow processing step never holds the group back"), then processes it.
//!
//! The grader kills it with SIGKILL right after its 2nd commit in one run,
//! and right after processing its 130th record in another, starts a
//! replacement in the same consumer group, and counts what `kit.process`
//! received, by id.
//!
//! **Goal: no record lost**, wherever the crash falls. Processing a few
//! twice is the price at-least-once pays, and is allowed.
//!
//! Grade it with `cargo xtask exercise at-least-once-consumer`, or from the
//! notebook `notebooks/03-at-least-once.ipynb`. The book: "At-least-once".

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
        kit.commit(&consumer, CommitMode::Sync)?;
        for message in &batch {
            kit.process(message)?;
        }
    }
    Ok(())
}
