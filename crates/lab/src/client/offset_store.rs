//! librdkafka's own at-least-once pattern for a consumer that keeps
//! auto-commit: `enable.auto.offset.store=false`, and the application stores
//! each record's offset itself once it has processed the record. The timer
//! still commits every `auto.commit.interval.ms`, but only what was stored,
//! so it can never commit a record the application has not finished.
//!
//! librdkafka's introduction describes it under "At-least-once processing":
//! <https://github.com/confluentinc/librdkafka/blob/master/INTRODUCTION.md#at-least-once-processing>.
//! Beside it, in [`crate::consume`], is plain auto-commit, which stores each
//! offset as `poll` hands the record over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::cluster::Cluster;
use crate::consume::{
    next_batch, next_offsets, AutoCommitStep, ConsumeReport, Drained, GroupOffsets,
    Sink, AUTO_COMMIT_INTERVAL_MS,
};
use crate::error::{Doing, Result};
use crate::semantics::Semantic;
use crate::stats::StatsContext;

// ANCHOR: store_after_processing_settings
/// The consumer settings of librdkafka's at-least-once pattern: the timer
/// still commits, but only offsets the application stored.
pub fn store_after_processing_settings() -> Vec<(String, String)> {
    [
        // Commit in the background, every auto.commit.interval.ms, as before.
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", AUTO_COMMIT_INTERVAL_MS),
        // But `poll` no longer stores anything: the timer commits only the
        // offsets the loop stores after processing.
        ("enable.auto.offset.store", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
// ANCHOR_END: store_after_processing_settings

/// A sink for [`consume_store_after_processing`], with the hook the crash
/// scenario dies in: called once a batch has been handed over (nothing of it
/// stored) and once it has been processed and its offsets stored.
pub trait StoreAfterProcessingSink: Sink {
    fn store_step(
        &mut self,
        _step: AutoCommitStep,
        _consumed: u64,
        _batch: usize,
        _offsets: &StoredOffsets<'_>,
    ) -> Result<()> {
        Ok(())
    }
}

/// The in-memory sink of a happy path.
impl StoreAfterProcessingSink for Vec<u64> {}

/// Consumes all of `input` as a member of `group` with auto-commit on and the
/// offset store in the loop's hands: process a batch, then store its offsets.
/// `overrides` are extra consumer settings, applied after
/// [`store_after_processing_settings`].
pub fn consume_store_after_processing(
    cluster: &Cluster,
    input: &str,
    group: &str,
    overrides: &[(String, String)],
    sink: &mut dyn StoreAfterProcessingSink,
    progress: &mut dyn FnMut(u64),
) -> Result<ConsumeReport> {
    let started = Instant::now();
    let partitions = cluster.partition_count(input)?;
    let mut settings = store_after_processing_settings();
    settings.extend_from_slice(overrides);
    // At-least-once's other settings (auto.offset.reset, isolation.level) stay.
    let mut config =
        Semantic::AtLeastOnce.consumer_config(cluster.bootstrap(), group, &settings);
    // Lab mechanics: report a partition's end, so the loop knows when to stop.
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer<StatsContext> = config
        .create_with_context(StatsContext)
        .doing("creating the consumer")?;
    consumer
        .subscribe(&[input])
        .doing(format!("subscribing to {input}"))?;

    let mut report = ConsumeReport::default();
    let mut drained = Drained::new(
        partitions,
        cluster.watch(format!(
            "consuming {input} (offsets stored after processing)"
        )),
    );
    let mut handed: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
    let mut stored: BTreeMap<(String, i32), i64> = BTreeMap::new();
    // ANCHOR: store_after_processing_loop
    loop {
        // `poll` hands records over and stores nothing: the timer cannot
        // commit them yet.
        let batch = next_batch(&consumer, &mut drained)?;
        if batch.is_empty() {
            if drained.all() {
                break;
            }
            continue;
        }
        for r in &batch {
            let slot = handed
                .entry((r.topic.clone(), r.partition))
                .or_insert((r.offset, 0));
            *slot = (slot.0.min(r.offset), slot.1.max(r.offset + 1));
        }
        let ids: Vec<u64> = batch.iter().map(|r| r.id).collect();
        let consumed = report.processed.len() as u64 + ids.len() as u64;
        let offsets = StoredOffsets::new(&consumer, &handed, &stored);
        sink.store_step(AutoCommitStep::Handed, consumed, ids.len(), &offsets)?;
        sink.process(&ids)?;
        // Processed: now, and only now, the offsets become eligible for the
        // next auto-commit (per partition, the offset after the last record).
        consumer
            .store_offsets(&next_offsets(&batch))
            .doing("storing the processed records' offsets")?;
        note_next(&mut stored, &batch);
        let offsets = StoredOffsets::new(&consumer, &handed, &stored);
        sink.store_step(AutoCommitStep::Processed, consumed, ids.len(), &offsets)?;
        report.processed.extend(ids);
        progress(report.processed.len() as u64);
    }
    // ANCHOR_END: store_after_processing_loop
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Per partition, one past the last record of `batch` (never moving back).
fn note_next(
    next: &mut BTreeMap<(String, i32), i64>,
    batch: &[crate::consume::Consumed],
) {
    for r in batch {
        let slot = next.entry((r.topic.clone(), r.partition)).or_insert(0);
        *slot = (*slot).max(r.offset + 1);
    }
}

/// What the loop has handed over and stored, beside what the group
/// coordinator holds as committed: what lets a crash hook die on a chosen
/// side of an auto-commit, and count what that commit covered.
pub struct StoredOffsets<'a> {
    consumer: &'a BaseConsumer<StatsContext>,
    /// Per partition: the first offset this consumer was handed, and one
    /// past the last.
    handed: &'a BTreeMap<(String, i32), (i64, i64)>,
    /// Per partition: one past the last record stored after processing.
    stored: &'a BTreeMap<(String, i32), i64>,
}

impl<'a> StoredOffsets<'a> {
    fn new(
        consumer: &'a BaseConsumer<StatsContext>,
        handed: &'a BTreeMap<(String, i32), (i64, i64)>,
        stored: &'a BTreeMap<(String, i32), i64>,
    ) -> StoredOffsets<'a> {
        StoredOffsets {
            consumer,
            handed,
            stored,
        }
    }

    /// Waits until the group's committed offsets reach everything stored so
    /// far (see [`GroupOffsets::wait_until_committed`]).
    pub fn wait_until_committed(&self, limit: Duration) -> Result<Duration> {
        self.group().wait_until_committed(limit)
    }

    /// The group's offsets, measured against what was stored.
    fn group(&self) -> GroupOffsets<'a> {
        GroupOffsets::new(
            self.consumer,
            self.stored,
            "offsets stored after processing",
        )
    }

    /// Lets a whole auto-commit interval pass, and then some, so that the
    /// timer has fired at least once, and waits for what was stored to be
    /// committed.
    pub fn wait_for_an_auto_commit(&self, limit: Duration) -> Result<()> {
        let interval: u64 = AUTO_COMMIT_INTERVAL_MS
            .parse()
            .expect("the interval is a number of milliseconds");
        std::thread::sleep(Duration::from_millis(interval + 1000));
        self.wait_until_committed(limit).map(|_| ())
    }

    /// Records handed over but not processed whose offsets the group has
    /// committed anyway, as the group coordinator reports them now: what a
    /// replacement would skip.
    pub fn committed_unprocessed(&self) -> Result<u64> {
        let committed = self.committed()?;
        let mut records = 0;
        for (partition, &(first, next)) in self.handed {
            let processed = self.stored.get(partition).copied().unwrap_or(first);
            if let Some(&c) = committed.get(partition) {
                records += (c.min(next) - processed).max(0) as u64;
            }
        }
        Ok(records)
    }

    fn committed(&self) -> Result<BTreeMap<(String, i32), i64>> {
        self.group().committed()
    }
}
