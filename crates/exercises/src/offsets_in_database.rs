//! # Exercise: exactly-once into a database
//!
//! This consumer writes every record of the input to the table `results`
//! of an SQLite database, one database transaction per batch, and then
//! commits its offsets to Kafka: the database first, then Kafka. Each step
//! is right on its own.
//!
//! The grader kills it with SIGKILL right after its 3rd database commit in
//! one run, right before its 2nd in another, and starts a replacement in
//! the same group; in a third run two instances work at once and the group
//! moves partitions between them. Then it counts the table's rows by id.
//!
//! **Goal: every id exactly once in the table.** Two commits (the
//! database's, then Kafka's) can always be split by a crash. Keep the
//! offsets in the database instead:
//! - in the batch's transaction, also write each partition's next offset
//!   (its last record's offset + 1) to `consumed_offsets(topic,
//!   kafka_partition, next_offset)`, whose primary key is `(topic,
//!   kafka_partition)`;
//! - in `start_from`, which the kit calls for every partition of every
//!   assignment (at the start and after each rebalance), start where the
//!   database says: `Offset::Offset(next)`, or `Offset::Beginning` when it
//!   holds nothing for that partition. Kafka's committed offsets are then
//!   never read.
//!
//! Grade it with `cargo xtask exercise offsets-in-database`, or from the
//! notebook `notebooks/07-side-effects.ipynb`. The book: "Side effects
//! outside Kafka", section "4. Offsets in the database transaction".

use lab::exercise::kit::{poll_batch, Kit, Outcome, StartFrom};
use lab::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use lab::rdkafka::message::Message;
use lab::rdkafka::Offset;
use lab::rusqlite::{params, Connection};

pub fn run(kit: &mut Kit) -> Outcome {
    let consumer: BaseConsumer<StartFrom> = kit
        .consumer_config()
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(kit.start_from(start_from))?;
    consumer.subscribe(&[kit.input_topic()])?;
    let mut db = kit.database()?;

    while !kit.finished() {
        let batch = poll_batch(&consumer, 50)?;
        if batch.is_empty() {
            continue;
        }
        let tx = db.transaction()?;
        for message in &batch {
            let id = Kit::id_of(message).ok_or("a record without an id")?;
            tx.execute(
                "INSERT INTO results (id, topic, kafka_partition, kafka_offset)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    id as i64,
                    message.topic(),
                    message.partition(),
                    message.offset()
                ],
            )?;
        }
        kit.commit_db(tx)?;
        kit.commit(&consumer, CommitMode::Sync)?;
    }
    Ok(())
}

/// Where `partition` of `topic` starts when this consumer is assigned it.
fn start_from(
    _db: &Connection,
    _topic: &str,
    _partition: i32,
) -> lab::rusqlite::Result<Offset> {
    Ok(Offset::Stored) // the group's committed offset in Kafka
}
