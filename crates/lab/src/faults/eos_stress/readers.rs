//! Readers that do not wait for the end of a partition, and the offsets that
//! show a read_committed reader held back: the last stable offset against
//! the high watermark.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::Offset;

use super::READ_LIMIT;
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::read::Isolation;
use crate::support::wait_until;

/// Every id in `topic`, read from the beginning with `isolation` until the
/// reader's position has reached `reach[p]` in every partition `p` (the
/// offsets it may see: the high watermark, or for read_committed the last
/// stable offset), and then for `grace` more, to show that nothing else comes.
///
/// Unlike [`crate::read::read_ids`] it never waits for an end-of-partition event,
/// which a read_committed reader behind an open transaction may never get.
/// Fails if `reach` is not reached within 30 s.
pub fn read_bounded(
    cluster: &Cluster,
    topic: &str,
    isolation: Isolation,
    reach: &[i64],
    grace: Duration,
) -> Result<Vec<u64>> {
    let consumer = reader(cluster, isolation)?;
    crate::read::assign_from_beginning(&consumer, topic, reach.len())?;
    let started = Instant::now();
    let mut reached_at: Option<Instant> = None;
    let mut ids = Vec::new();
    loop {
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(m)) => {
                if let Some(id) = crate::record::parse_key(m.key()) {
                    ids.push(id);
                }
            }
            Some(Err(e)) if crate::consume::transient(&e) => {}
            Some(Err(e)) => return Err(e).doing(format!("reading {topic}")),
        }
        match reached_at {
            Some(t) if t.elapsed() >= grace => return Ok(ids),
            Some(_) => {}
            None => {
                if positions_reached(&consumer, reach)? {
                    reached_at = Some(Instant::now());
                } else if started.elapsed() > READ_LIMIT {
                    return Err(Error::Stalled {
                        stage: "bounded read",
                        waited: READ_LIMIT,
                        detail: format!(
                            "a {isolation:?} reader of {topic} did not reach offsets \
                             {reach:?} ({} ids read)",
                            ids.len()
                        ),
                    });
                }
            }
        }
    }
}

/// Whether the consumer's position is at or past `reach[p]` in every partition.
fn positions_reached(consumer: &BaseConsumer, reach: &[i64]) -> Result<bool> {
    // Dropped before the consumer is (a list that outlives it hangs its drop).
    let positions = consumer.position().doing("reading the reader's position")?;
    let reached = reach.iter().enumerate().all(|(p, &end)| {
        end <= 0
            || positions.elements().iter().any(|e| {
                e.partition() == p as i32
                    && matches!(e.offset(), Offset::Offset(at) if at >= end)
            })
    });
    Ok(reached)
}

fn reader(cluster: &Cluster, isolation: Isolation) -> Result<BaseConsumer> {
    crate::read::reader_config(cluster, "eos-stress-reader", isolation)
        .create()
        .doing("creating a reader")
}

/// Asks the broker for the last stable offset (what a read_committed client's
/// ListOffsets returns as the end) and the high watermark of each partition.
pub(super) struct OffsetReader<'a> {
    topic: &'a str,
    partitions: i32,
    committed: BaseConsumer,
    uncommitted: BaseConsumer,
}

impl<'a> OffsetReader<'a> {
    pub(super) fn new(
        cluster: &Cluster,
        topic: &'a str,
        partitions: i32,
    ) -> Result<OffsetReader<'a>> {
        Ok(OffsetReader {
            topic,
            partitions,
            committed: reader(cluster, Isolation::ReadCommitted)?,
            uncommitted: reader(cluster, Isolation::ReadUncommitted)?,
        })
    }

    /// `(last stable offset, high watermark)` of partition `p`.
    pub(super) fn get(&self, p: i32) -> Result<(i64, i64)> {
        let timeout = Duration::from_secs(10);
        let doing = || format!("reading the offsets of {}/{p}", self.topic);
        let (_, stable) = self
            .committed
            .fetch_watermarks(self.topic, p, timeout)
            .doing(doing())?;
        let (_, high) = self
            .uncommitted
            .fetch_watermarks(self.topic, p, timeout)
            .doing(doing())?;
        Ok((stable, high))
    }

    /// Offsets between the last stable offset and the high watermark, summed
    /// over the partitions: 0 when no transaction is open.
    pub(super) fn held_back(&self) -> Result<i64> {
        let mut sum = 0;
        for p in 0..self.partitions {
            let (stable, high) = self.get(p)?;
            sum += high - stable;
        }
        Ok(sum)
    }

    pub(super) fn wait_until_nothing_held_back(&self, limit: Duration) -> Result<()> {
        wait_until(
            "transaction timeout",
            limit,
            Duration::from_millis(100),
            || {
                let held = self.held_back()?;
                Ok((held > 0).then(|| {
                    format!(
                        "{held} offsets of {} still behind an open transaction",
                        self.topic
                    )
                }))
            },
        )
    }
}
