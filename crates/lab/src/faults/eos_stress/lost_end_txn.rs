//! E2, the lost EndTxn response: the coordinator commits, but the answer to
//! the producer's EndTxn request is lost on its way back (the chaos proxy
//! drops it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::{audited, begin, Produced};
use super::writer::{self, transactional_producer, write_open};
use super::{EosStressOptions, SOCKET_TIMEOUT_MS, TRANSACTION_SIZE};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::faults::proxy::{ApiKey, ChaosProxy, ProxyStats};
use crate::outcome::Outcome;
use crate::produce::{self, DeliveryLog};
use crate::support::Seeded;

/// What [`lost_end_txn_report`] saw.
#[derive(Clone, Debug)]
pub struct LostEndTxnReport {
    pub outcome: Outcome,
    /// Transactions committed (each with one EndTxn, plus the retry).
    pub transactions: u64,
    /// The transaction whose EndTxn response was dropped (0-based).
    pub victim: u64,
    /// How long that commit took: at least `socket.timeout.ms`.
    pub victim_commit: Duration,
    /// The proxy's counts: EndTxn requests forwarded and responses dropped.
    pub proxy: ProxyStats,
}

/// The answer to a commit is lost: see [`lost_end_txn_report`].
pub fn lost_end_txn(cluster: &Cluster, options: &EosStressOptions) -> Result<Outcome> {
    lost_end_txn_report(cluster, options).map(|r| r.outcome)
}

/// The producer talks to Kafka through the chaos proxy, in transactions of
/// [`TRANSACTION_SIZE`] records. Before one of them (chosen by the seed) is
/// committed, the proxy is told to drop the response to the next EndTxn
/// request: the coordinator receives it and commits, the producer hears
/// nothing. After `socket.timeout.ms` librdkafka retries the EndTxn; the
/// coordinator, whose transaction is already complete, answers that the
/// commit succeeded. The records are committed exactly once.
pub fn lost_end_txn_report(
    cluster: &Cluster,
    options: &EosStressOptions,
) -> Result<LostEndTxnReport> {
    let (topic, started) = begin(cluster, options, "exactly-once-lost-end-txn", 3)?;
    let records = options.records;
    let proxy = ChaosProxy::start(cluster.bootstrap())?;
    let transactional_id = format!("{topic}-producer");
    let overrides = [(
        "socket.timeout.ms".to_string(),
        SOCKET_TIMEOUT_MS.to_string(),
    )];
    let log = Arc::new(DeliveryLog::default());
    let producer = transactional_producer(
        &proxy.bootstrap(),
        &transactional_id,
        &overrides,
        &log,
    )?;
    let transactions = records.div_ceil(TRANSACTION_SIZE);
    // Not the first (if there is another): the coordinator connection is warm,
    // and the fault hits a producer in the middle of its work.
    let first = if transactions > 1 { 1 } else { 0 };
    let victim = Seeded::new(options.seed).in_range(first..transactions);
    let mut victim_commit = Duration::ZERO;
    for (t, ids) in (0..).zip(writer::transactions(0..records)) {
        write_open(&producer, &topic, ids)?;
        if t == victim {
            // Nothing is in flight: the next EndTxn is this commit's.
            proxy.inject_response_drop(ApiKey::EndTxn, 1);
            let commit_started = Instant::now();
            produce::commit(&producer)?;
            victim_commit = commit_started.elapsed();
        } else {
            produce::commit(&producer)?;
        }
    }
    drop(producer);
    let produce_seconds = started.elapsed().as_secs_f64();
    let stats = proxy.stats();
    drop(proxy);

    let fault = format!(
        "the response to the EndTxn (commit) of transaction {} of {transactions} was \
         dropped by the chaos proxy (seed {}): {} EndTxn response(s) dropped, {} EndTxn \
         request(s) for {transactions} commits; that commit took {:.1} s \
         (socket.timeout.ms={SOCKET_TIMEOUT_MS}, then a retry)",
        victim + 1,
        options.seed,
        stats.dropped_of(ApiKey::EndTxn),
        stats.requests_of(ApiKey::EndTxn),
        victim_commit.as_secs_f64()
    );
    let produced = Produced {
        records,
        sent: records,
        logs: &[&log],
        aborted: None,
        fault,
        produce_seconds,
    };
    let mut outcome = audited(cluster, &topic, produced)?;
    outcome.backend_description =
        format!("{}, through the chaos proxy", cluster.describe());
    Ok(LostEndTxnReport {
        outcome,
        transactions,
        victim,
        victim_commit,
        proxy: stats,
    })
}
