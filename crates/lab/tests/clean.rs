//! `lab clean` removes exactly the lab's topics and consumer groups.
//!
//! Ignored by a plain `cargo test`: it needs Apache Kafka (`cargo xtask test`
//! starts one), and it removes every topic the lab left there.

mod common;

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn topics(bootstrap: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect()
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn clean_removes_the_labs_topics_and_groups_and_nothing_else() {
    let cluster = common::kafka();
    let theirs = format!("orders-of-a-learner-{}", std::process::id());
    cluster.create_topic(&theirs, 1).unwrap();
    let ours = cluster.fresh_name("clean-test");
    cluster.create_topic(&ours, 1).unwrap();
    // A group exists once it has committed an offset.
    let group = cluster.fresh_name("clean-test-group");
    {
        let consumer: BaseConsumer = cluster
            .client_config()
            .set("group.id", &group)
            .create()
            .unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&ours, 0, Offset::Offset(0))
            .unwrap();
        // A broker just started may not have its group coordinator yet.
        let started = Instant::now();
        while let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "committing: {e}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    let found = lab::clean::leftovers(&cluster).unwrap();
    assert!(found.topics.contains(&ours), "{found:?}");
    assert!(found.groups.contains(&group), "{found:?}");
    assert!(!found.topics.contains(&theirs), "{found:?}");

    let removed = lab::clean::clean(&cluster).unwrap();
    assert!(removed.topics.contains(&ours), "{removed:?}");
    assert!(removed.groups.contains(&group), "{removed:?}");
    assert!(
        removed.topics.iter().all(|t| lab::clean::is_lab_name(t)),
        "{removed:?}"
    );
    // Deleting a topic is asynchronous on the broker: wait for it to go.
    let started = Instant::now();
    while topics(cluster.bootstrap()).contains(&ours) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{ours} is still there"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        topics(cluster.bootstrap()).contains(&theirs),
        "the learner's topic stays"
    );
    let after = lab::clean::leftovers(&cluster).unwrap();
    assert!(!after.groups.contains(&group), "{after:?}");

    lab::experiments::bench::delete_topic(&cluster, &theirs);
}
