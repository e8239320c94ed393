//! Solution: the rows and each partition's next offset commit in one
//! database transaction, and every assignment starts where the database
//! says. Nothing is committed to Kafka: a crash before the commit loses the
//! rows and the offsets together, a crash after it keeps both, and a
//! partition that moves to another instance starts after the last row
//! written for it, whoever wrote it.

use std::collections::BTreeMap;

use lab::exercise::kit::{poll_batch, Kit, Outcome, StartFrom};
use lab::rdkafka::consumer::{BaseConsumer, Consumer};
use lab::rdkafka::message::Message;
use lab::rdkafka::Offset;
use lab::rusqlite::{params, Connection, OptionalExtension};

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
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
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
            next.insert(message.partition(), message.offset() + 1);
        }
        for (partition, offset) in next {
            tx.execute(
                "INSERT INTO consumed_offsets (topic, kafka_partition, next_offset)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic, kafka_partition) DO UPDATE SET next_offset = ?3",
                params![kit.input_topic(), partition, offset],
            )?;
        }
        kit.commit_db(tx)?;
    }
    Ok(())
}

/// Where `partition` of `topic` starts when this consumer is assigned it.
fn start_from(
    db: &Connection,
    topic: &str,
    partition: i32,
) -> lab::rusqlite::Result<Offset> {
    let next: Option<i64> = db
        .query_row(
            "SELECT next_offset FROM consumed_offsets WHERE topic = ?1 AND kafka_partition = ?2",
            params![topic, partition],
            |row| row.get(0),
        )
        .optional()?;
    Ok(next.map_or(Offset::Beginning, Offset::Offset))
}
