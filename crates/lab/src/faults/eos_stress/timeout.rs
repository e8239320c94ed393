//! E3, the transaction timeout: a producer stalls longer than its
//! `transaction.timeout.ms`, and the coordinator aborts its transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::{audited, begin, commit_verdict, Produced, TxnError};
use super::readers::OffsetReader;
use super::writer::{late_commit, transactional_producer, write_committed, write_open};
use super::{EosStressOptions, ABORT_LIMIT, TRANSACTION_TIMEOUT_MS};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::outcome::Outcome;
use crate::produce::DeliveryLog;
use crate::support::Seeded;

/// What [`transaction_timeout_report`] saw.
#[derive(Clone, Debug)]
pub struct TimeoutReport {
    pub outcome: Outcome,
    /// Records committed before the producer stalled.
    pub committed_before: u64,
    /// Records of the transaction left open.
    pub stalled_records: u64,
    /// Offsets between the last stable offset and the high watermark, summed
    /// over the partitions, when the producer stalled: the open transaction's
    /// records, invisible to read_committed readers.
    pub held_back_at_stall: i64,
    /// From the stall until the coordinator's abort markers were in the log.
    pub waited_for_abort: Duration,
    /// How the stalled producer's late commit failed (None: it succeeded).
    pub commit_error: Option<TxnError>,
}

/// A producer outlives its transaction: see [`transaction_timeout_report`].
pub fn transaction_timeout(
    cluster: &Cluster,
    options: &EosStressOptions,
) -> Result<Outcome> {
    transaction_timeout_report(cluster, options).map(|r| r.outcome)
}

/// A producer with `transaction.timeout.ms` of [`TRANSACTION_TIMEOUT_MS`]
/// commits a few transactions, then begins another, writes records in it
/// (acknowledged: they are in the log) and stalls, e.g. in a long GC pause.
/// The coordinator aborts the expired transaction, bumping the producer
/// epoch; the scenario waits for that by watching the last stable offset
/// catch up with the high watermark (no sleeping on a guess). The stalled
/// producer's commit then fails, and a new instance with the same
/// `transactional.id` re-sends everything not committed.
pub fn transaction_timeout_report(
    cluster: &Cluster,
    options: &EosStressOptions,
) -> Result<TimeoutReport> {
    let partitions = 3;
    let (topic, started) =
        begin(cluster, options, "exactly-once-txn-timeout", partitions)?;
    let records = options.records;
    let transactional_id = format!("{topic}-producer");
    let mut seeded = Seeded::new(options.seed);
    let committed_before = seeded.in_range(records / 10..records / 2);
    let stalled_records = seeded.in_range(records / 10..records / 4).max(1);
    let stalled = committed_before..committed_before + stalled_records;
    let overrides = timeout_overrides();
    // Both instances: the one that stalls and the one that recovers.
    let instance = |log: &Arc<DeliveryLog>| {
        transactional_producer(cluster.bootstrap(), &transactional_id, &overrides, log)
    };

    let log = Arc::new(DeliveryLog::default());
    let producer = instance(&log)?;
    write_committed(&producer, &topic, 0..committed_before)?;
    write_open(&producer, &topic, stalled.clone())?;
    let offsets = OffsetReader::new(cluster, &topic, partitions)?;
    let held_back_at_stall = offsets.held_back()?;
    // The stall: the producer does nothing while the coordinator expires it.
    let stall_started = Instant::now();
    offsets.wait_until_nothing_held_back(ABORT_LIMIT)?;
    let waited_for_abort = stall_started.elapsed();
    let commit_error = late_commit(producer);

    // The application's recovery: a new instance re-sends what is not committed.
    let resend_from = match commit_error {
        Some(_) => stalled.start,
        None => stalled.end,
    };
    let successor_log = Arc::new(DeliveryLog::default());
    let successor = instance(&successor_log)?;
    write_committed(&successor, &topic, resend_from..records)?;
    drop(successor);
    let produce_seconds = started.elapsed().as_secs_f64();

    let fault = format!(
        "transaction timeout (seed {}): after {committed_before} committed records the \
         producer (transaction.timeout.ms={TRANSACTION_TIMEOUT_MS}) wrote {stalled_records} \
         more in a transaction and stalled; {held_back_at_stall} offsets were held back from \
         read_committed readers until the coordinator aborted it {:.1} s later; \
         {}; a new instance re-sent records {resend_from}..{records}",
        options.seed,
        waited_for_abort.as_secs_f64(),
        commit_verdict("the late commit", &commit_error)
    );
    let outcome = audited(
        cluster,
        &topic,
        Produced {
            records,
            sent: records + (stalled.end - resend_from),
            logs: &[&log, &successor_log],
            aborted: commit_error.as_ref().map(|_| stalled.clone()),
            fault,
            produce_seconds,
        },
    )?;
    Ok(TimeoutReport {
        outcome,
        committed_before,
        stalled_records,
        held_back_at_stall,
        waited_for_abort,
        commit_error,
    })
}

/// The settings of both instances: the short transaction timeout, and what
/// librdkafka requires alongside it.
fn timeout_overrides() -> [(String, String); 3] {
    let timeout = TRANSACTION_TIMEOUT_MS.to_string();
    [
        ("transaction.timeout.ms".to_string(), timeout.clone()),
        // librdkafka refuses a message timeout longer than the transaction's,
        // and a socket timeout longer than the transaction's + 100 ms.
        ("message.timeout.ms".to_string(), timeout.clone()),
        ("socket.timeout.ms".to_string(), timeout),
    ]
}
