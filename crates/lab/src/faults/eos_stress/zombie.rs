//! E1, the zombie producer: a producer stalls inside a transaction and is
//! fenced by its successor.

use std::sync::Arc;

use super::common::{audited, begin, commit_verdict, Produced, TxnError};
use super::writer::{late_commit, transactional_producer, write_committed, write_open};
use super::EosStressOptions;
use crate::cluster::Cluster;
use crate::error::Result;
use crate::outcome::Outcome;
use crate::produce::DeliveryLog;
use crate::support::Seeded;

/// What [`zombie_fenced_report`] saw.
#[derive(Clone, Debug)]
pub struct ZombieReport {
    pub outcome: Outcome,
    /// Records the zombie wrote in the transaction that was then aborted.
    pub zombie_records: u64,
    /// How the zombie's commit failed (None: it succeeded, which Kafka must
    /// never allow).
    pub zombie_error: Option<TxnError>,
    /// Transactions the new instance committed.
    pub transactions: u64,
}

/// A zombie producer is fenced by its successor: see [`zombie_fenced_report`].
pub fn zombie_fenced(cluster: &Cluster, options: &EosStressOptions) -> Result<Outcome> {
    zombie_fenced_report(cluster, options).map(|r| r.outcome)
}

/// Producer P1 begins a transaction and writes some source records (all
/// acknowledged: they are in the log), then stalls. P2, a new instance with
/// the same `transactional.id`, calls `init_transactions`: the coordinator
/// bumps the producer epoch, which fences P1, and aborts P1's open
/// transaction. P1 wakes up and tries to commit; that must fail. P2 then
/// writes the whole source in committed transactions.
pub fn zombie_fenced_report(
    cluster: &Cluster,
    options: &EosStressOptions,
) -> Result<ZombieReport> {
    let (topic, started) = begin(cluster, options, "exactly-once-zombie", 3)?;
    let records = options.records;
    let transactional_id = format!("{topic}-processor");
    let zombie_records = Seeded::new(options.seed).in_range(records / 10..records / 2);

    let zombie_log = Arc::new(DeliveryLog::default());
    let zombie = transactional_producer(
        cluster.bootstrap(),
        &transactional_id,
        &[],
        &zombie_log,
    )?;
    write_open(&zombie, &topic, 0..zombie_records)?;

    let log = Arc::new(DeliveryLog::default());
    let successor =
        transactional_producer(cluster.bootstrap(), &transactional_id, &[], &log)?;
    let zombie_error = late_commit(zombie);
    let transactions = write_committed(&successor, &topic, 0..records)?;
    drop(successor);
    let produce_seconds = started.elapsed().as_secs_f64();

    let fault = format!(
        "zombie producer (seed {}): instance 1 of transactional.id {transactional_id} \
         wrote {zombie_records} records in a transaction and stalled; instance 2 called \
         init_transactions, which fenced instance 1 and aborted its transaction; \
         {}; instance 2 wrote all {records} records in {transactions} \
         committed transactions",
        options.seed,
        commit_verdict("its commit", &zombie_error)
    );
    let outcome = audited(
        cluster,
        &topic,
        Produced {
            records,
            sent: zombie_records + records,
            logs: &[&zombie_log, &log],
            // Aborted by the coordinator when P2 started, unless the commit
            // went through.
            aborted: zombie_error.as_ref().map(|_| 0..zombie_records),
            fault,
            produce_seconds,
        },
    )?;
    Ok(ZombieReport {
        outcome,
        zombie_records,
        zombie_error,
        transactions,
    })
}
