//! # Exercise: an at-least-once producer that resumes after SIGKILL
//!
//! This producer sends the source's records (ids 0 to 299) to the output
//! topic with acks=all, and remembers how far it got, so that a restarted
//! process resumes there instead of sending everything again.
//!
//! The grader kills it with SIGKILL right after it hands its 150th record
//! to the client in one run, and its 260th in another, starts a
//! replacement (which reads the saved position), and counts by id what
//! the output topic holds.
//!
//! **Goal: no record lost.** Sending a few twice is the price at-least-once
//! pays, and is allowed.
//!
//! Grade it with `cargo xtask exercise at-least-once-producer`, or from the
//! notebook `notebooks/03-at-least-once.ipynb`. The book: "At-least-once".

use std::time::Duration;

use lab::exercise::kit::{Kit, Outcome};
use lab::rdkafka::producer::{BaseProducer, BaseRecord, Producer};

pub fn run(kit: &mut Kit) -> Outcome {
    let producer: BaseProducer = kit
        .producer_config()
        .set("acks", "all")
        // Bigger batches, fewer requests.
        .set("linger.ms", "100")
        .create()?;
    let topic = kit.output_topic().to_owned();

    let mut next = kit.saved_position()?;
    while next < kit.source_len() {
        let key = lab::record::key(next);
        let value = lab::record::value(next, 100);
        kit.send(&producer, BaseRecord::to(&topic).key(&key).payload(&value))?;
        next += 1;
        // Remember where we are, so that a restart does not start over.
        kit.save_position(next)?;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}
