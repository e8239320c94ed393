//! Records the [`History`] of a finished exactly-once pipeline run from
//! Kafka: both topics read back (the output twice, `read_committed` and
//! `read_uncommitted`), and the group's committed offsets. The only part of
//! the checker that talks to Kafka.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{FaultStep, GroupOffset, History, Position, Seen};
use crate::cluster::Cluster;
use crate::error::{Doing, Result};
use crate::read::{read_located, Isolation, Located};

/// What a finished run left behind, by name.
#[derive(Clone, Debug)]
pub struct Pipeline<'a> {
    pub input: &'a str,
    pub output: &'a str,
    pub group: &'a str,
}

/// The history of the finished run `p`, with the fault steps that were in
/// force and the output positions known to be aborted (from the log's
/// markers, see [`crate::audit::dump_log`]; `None` if not known). Run it
/// after the pipeline has finished: an open transaction holds a
/// `read_committed` reader back.
pub fn record(
    cluster: &Cluster,
    p: &Pipeline<'_>,
    faults: Vec<FaultStep>,
    aborted: Option<Vec<Position>>,
) -> Result<History> {
    let input = read_located(cluster, p.input, Isolation::ReadCommitted)?;
    let committed = read_located(cluster, p.output, Isolation::ReadCommitted)?;
    let uncommitted = read_located(cluster, p.output, Isolation::ReadUncommitted)?;
    let group_offsets = group_offsets(cluster, p.input, p.group)?;
    let started_at_ms = input
        .iter()
        .chain(&uncommitted)
        .filter_map(|r| r.timestamp_ms)
        .min()
        .unwrap_or(0);
    let seen = |records: Vec<Located>| -> Vec<Seen> {
        let mut out: Vec<Seen> = records
            .into_iter()
            .map(|r| Seen {
                id: r.id,
                partition: r.partition,
                offset: r.offset,
                at_ms: r
                    .timestamp_ms
                    .map_or(0, |t| t.saturating_sub(started_at_ms).max(0) as u64),
            })
            .collect();
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    };
    Ok(History {
        started_at_ms,
        input: seen(input),
        committed: seen(committed),
        uncommitted: seen(uncommitted),
        aborted,
        group_offsets,
        faults,
    })
}

/// The group's committed offsets of every partition of `input` (partitions
/// it never committed are left out).
pub fn group_offsets(
    cluster: &Cluster,
    input: &str,
    group: &str,
) -> Result<Vec<GroupOffset>> {
    let partitions = cluster.partition_count(input)?;
    let mut config = cluster.client_config();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer =
        config.create().doing("creating the offsets reader")?;
    let offsets = {
        // Dropped before the consumer: a list that outlives it hangs its drop.
        let mut list = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            list.add_partition(input, p);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .doing(format!("asking for group {group}'s committed offsets"))?;
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(next) => Some(GroupOffset {
                    partition: e.partition(),
                    next,
                }),
                _ => None,
            })
            .collect()
    };
    drop(consumer);
    Ok(offsets)
}
