//! E4, an open transaction holds back read_committed readers: they stop at
//! the last stable offset, even for records of other producers written after
//! the transaction began.

use std::sync::Arc;

use rdkafka::producer::BaseProducer;

use super::common::{audited, begin, Produced};
use super::readers::{read_bounded, OffsetReader};
use super::writer::{transactional_producer, write_acknowledged, write_open};
use super::{EosStressOptions, GRACE};
use crate::cluster::Cluster;
use crate::error::{Doing, Result};
use crate::outcome::Outcome;
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::read::Isolation;
use crate::semantics::Semantic;
use crate::support::Seeded;

/// What [`open_transaction_holds_back_readers_report`] measured. Offsets are
/// of the topic's single partition.
#[derive(Clone, Debug)]
pub struct HeldBackReport {
    pub outcome: Outcome,
    /// Records producer B wrote before A's transaction began (ids `0..before`).
    pub before: u64,
    /// Records of A's transaction, open while the readers read.
    pub in_open_transaction: u64,
    /// Records B wrote (acks=all, acknowledged) after A's transaction began.
    pub after: u64,
    /// The last stable offset while A's transaction was open: A's first offset.
    pub last_stable_offset_while_open: i64,
    /// The high watermark while A's transaction was open.
    pub high_watermark_while_open: i64,
    /// Records a read_committed reader saw while A's transaction was open.
    pub read_committed_while_open: u64,
    /// Of those, B's records written after A's transaction began.
    pub read_committed_after_while_open: u64,
    /// Records a read_uncommitted reader saw while A's transaction was open.
    pub read_uncommitted_while_open: u64,
    /// Distinct ids a read_committed reader saw after A committed.
    pub read_committed_after_commit: u64,
}

/// An open transaction holds back read_committed readers: see
/// [`open_transaction_holds_back_readers_report`].
pub fn open_transaction_holds_back_readers(
    cluster: &Cluster,
    options: &EosStressOptions,
) -> Result<Outcome> {
    open_transaction_holds_back_readers_report(cluster, options).map(|r| r.outcome)
}

/// One partition. Producer B (not transactional, acks=all) writes a few
/// records; transactional producer A begins a transaction and writes records
/// (acknowledged, so in the log) without committing; B writes more records,
/// all acknowledged. While A's transaction is open, a read_committed reader
/// stops at the last stable offset, A's first record: it sees B's early
/// records and none of B's later ones, although they are committed in the
/// only sense a non-transactional record can be. A read_uncommitted reader
/// sees everything. Once A commits, read_committed readers see everything too.
pub fn open_transaction_holds_back_readers_report(
    cluster: &Cluster,
    options: &EosStressOptions,
) -> Result<HeldBackReport> {
    let (topic, started) = begin(cluster, options, "exactly-once-held-back", 1)?;
    let records = options.records;
    let before = records / 10;
    let in_open_transaction =
        Seeded::new(options.seed).in_range(records / 5..records / 2);
    let after = records - before - in_open_transaction;
    let a_ids = before..before + in_open_transaction;
    let after_ids = a_ids.end..records;

    let b_log = Arc::new(DeliveryLog::default());
    let b: BaseProducer<LoggingContext> = Semantic::AtLeastOnce
        .producer_config(cluster.bootstrap(), None, &[])?
        .create_with_context(LoggingContext(b_log.clone()))
        .doing("creating producer B")?;
    let a_log = Arc::new(DeliveryLog::default());
    let a = transactional_producer(
        cluster.bootstrap(),
        &format!("{topic}-producer-a"),
        &[],
        &a_log,
    )?;

    write_acknowledged(&b, &topic, 0..before)?;
    write_open(&a, &topic, a_ids.clone())?;
    write_acknowledged(&b, &topic, after_ids.clone())?;
    let open = read_while_open(cluster, &topic)?;
    produce::commit(&a)?;
    drop(a);
    drop(b);
    let produce_seconds = started.elapsed().as_secs_f64();

    let read_committed_while_open = open.committed.len() as u64;
    let read_committed_after_while_open = open
        .committed
        .iter()
        .filter(|id| after_ids.contains(id))
        .count() as u64;
    let read_uncommitted_while_open = open.uncommitted.len() as u64;
    let fault = format!(
        "open transaction (seed {}): B wrote {before} records, A opened a transaction and \
         wrote {in_open_transaction}, B wrote {after} more (acknowledged); while A's \
         transaction was open the last stable offset stood at {} (high watermark {}): \
         read_committed saw {read_committed_while_open} records, \
         {read_committed_after_while_open} of B's {after} later ones; read_uncommitted saw \
         {read_uncommitted_while_open}; then A committed",
        options.seed, open.last_stable_offset, open.high_watermark
    );
    let outcome = audited(
        cluster,
        &topic,
        Produced {
            records,
            sent: records,
            logs: &[&b_log, &a_log],
            aborted: None,
            fault,
            produce_seconds,
        },
    )?;
    let read_committed_after_commit = outcome.counts.delivered;
    Ok(HeldBackReport {
        outcome,
        before,
        in_open_transaction,
        after,
        last_stable_offset_while_open: open.last_stable_offset,
        high_watermark_while_open: open.high_watermark,
        read_committed_while_open,
        read_committed_after_while_open,
        read_uncommitted_while_open,
        read_committed_after_commit,
    })
}

/// What the readers of the single partition saw while A's transaction was open.
struct WhileOpen {
    last_stable_offset: i64,
    high_watermark: i64,
    /// Ids a read_committed reader saw, up to the last stable offset.
    committed: Vec<u64>,
    /// Ids a read_uncommitted reader saw, up to the high watermark.
    uncommitted: Vec<u64>,
}

/// Reads `topic` both ways while a transaction is open, each reader up to the
/// offsets it may see and then for [`GRACE`] more.
fn read_while_open(cluster: &Cluster, topic: &str) -> Result<WhileOpen> {
    let offsets = OffsetReader::new(cluster, topic, 1)?;
    let (last_stable_offset, high_watermark) = offsets.get(0)?;
    let committed = read_bounded(
        cluster,
        topic,
        Isolation::ReadCommitted,
        &[last_stable_offset],
        GRACE,
    )?;
    let uncommitted = read_bounded(
        cluster,
        topic,
        Isolation::ReadUncommitted,
        &[high_watermark],
        GRACE,
    )?;
    Ok(WhileOpen {
        last_stable_offset,
        high_watermark,
        committed,
        uncommitted,
    })
}
