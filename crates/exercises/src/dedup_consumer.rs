//! # Exercise: de-duplication that survives a restart
//!
//! At-least-once delivers some records twice: a producer's retry writes a
//! record again, and a consumer's replacement re-reads what was processed
//! but not committed. A widely copied fix keeps the ids already processed
//! in a set and skips a record whose id is in it. This consumer does that.
//!
//! The input holds ids 100 to 149 twice (a producer's retries). The grader
//! kills the consumer with SIGKILL right after it processes its 130th
//! record in one run, and right after its 3rd commit in another, starts a
//! replacement in the same group, and counts what `kit.process` received.
//!
//! **Goal: every record processed exactly once**, across the crash.
//!
//! Grade it with `cargo xtask exercise dedup-consumer` (notebook
//! `notebooks/07-side-effects.ipynb` grades its other exercise,
//! offsets-in-database). The book: "Side effects outside Kafka".

use std::collections::HashSet;

use lab::exercise::kit::{poll_batch, Kit, Outcome};
use lab::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

pub fn run(kit: &mut Kit) -> Outcome {
    let consumer: BaseConsumer = kit
        .consumer_config()
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[kit.input_topic()])?;

    let mut seen: HashSet<u64> = HashSet::new();
    while !kit.finished() {
        let batch = poll_batch(&consumer, 50)?;
        if batch.is_empty() {
            continue;
        }
        for message in &batch {
            let id = Kit::id_of(message).ok_or("a record without an id")?;
            if seen.insert(id) {
                kit.process(message)?;
            }
        }
        kit.commit(&consumer, CommitMode::Sync)?;
    }
    Ok(())
}
