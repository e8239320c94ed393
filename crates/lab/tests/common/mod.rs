//! Shared by the integration tests: the real broker, and an independent
//! recount of a topic that shares no code with `lab::audit`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use lab::{Backend, Cluster};

/// The broker at KAFKA_BOOTSTRAP_SERVERS, which must be Apache Kafka.
pub fn kafka() -> Cluster {
    let cluster = Cluster::from_env().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cluster.backend(),
        Backend::Kafka,
        "these tests need Apache Kafka"
    );
    cluster
}

/// The three-broker cluster at KAFKA_THREE_BOOTSTRAP_SERVERS (the course's
/// own on 127.0.0.1:19092-19094 if unset).
pub fn three_brokers() -> Cluster {
    let bootstrap = std::env::var("KAFKA_THREE_BOOTSTRAP_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:19092".into());
    let cluster = Cluster::connect(&bootstrap).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cluster.broker_count(), 3, "{}", cluster.describe());
    cluster
}

/// Makes the crash workers use this test build's `lab` binary.
pub fn use_this_lab_binary() {
    // SAFETY (edition 2021: set_var is safe): every test sets the same value.
    std::env::set_var("LAB_WORKER_BIN", env!("CARGO_BIN_EXE_lab"));
}

/// How many copies of each id `topic` holds, read by a plain consumer from
/// the low to the high watermark of every partition. Written separately from
/// `lab::read::read_ids`, so the two check each other.
pub fn recount(
    bootstrap: &str,
    topic: &str,
    read_committed: bool,
) -> HashMap<u64, u32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("recount-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .expect("a plain consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut ends = HashMap::new();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        if high > low {
            ends.insert(p, high);
        }
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    drop(list);
    let mut counts = HashMap::new();
    // Done when every partition's position has reached its high watermark
    // (the position moves past transaction markers, which are never delivered).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        assert!(Instant::now() < deadline, "recount of {topic} stalled");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let m = message.expect("no consumer error");
            let id: u64 = std::str::from_utf8(m.key().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            *counts.entry(id).or_insert(0) += 1;
        }
        let positions = consumer.position().unwrap();
        for e in positions.elements() {
            if let Offset::Offset(pos) = e.offset() {
                if ends.get(&e.partition()).is_some_and(|&end| pos >= end) {
                    ends.remove(&e.partition());
                }
            }
        }
    }
    counts
}

/// The claim a timeline chart makes about a run: the fault window it recorded
/// holds every lost and every duplicated id, and the fates it draws agree with
/// the counts.
pub fn window_covers_every_fate(o: &lab::Outcome) {
    let w = o
        .window
        .as_ref()
        .unwrap_or_else(|| panic!("no fault window recorded\n{o}"));
    if let Some((first, last)) = w.ids.bounds() {
        assert!(
            w.from <= first && last < w.to,
            "the window's ids lie within {}..{}\n{o}",
            w.from,
            w.to
        );
    }
    assert_eq!(o.fates.lost.len(), o.counts.lost, "lost, id by id\n{o}");
    assert_eq!(
        o.fates.extra_copies(),
        o.counts.duplicated,
        "duplicated, id by id\n{o}"
    );
    let outside = o.fates_outside_window();
    assert!(
        outside.is_empty(),
        "{} lost or duplicated ids outside the fault window {}..{} ({}), first {:?}\n{o}",
        outside.len(),
        w.from,
        w.to,
        w.label,
        &outside[..outside.len().min(10)]
    );
}
