//! Scenario E, exactly-once under stress, on Apache Kafka: the faults that
//! aim at the transaction protocol itself rather than at one Produce request.
//!
//! - [`zombie_fenced`]: a producer stalls inside a transaction; a new
//!   instance with the same `transactional.id` starts, fences it and aborts
//!   its transaction. The zombie's next transactional call fails.
//! - [`lost_end_txn`]: the coordinator commits, but the answer to the
//!   producer's EndTxn request is lost (the chaos proxy drops it). The
//!   producer times out, retries the commit, and the coordinator recognises it.
//! - [`transaction_timeout`]: a producer stalls longer than its
//!   `transaction.timeout.ms`; the coordinator aborts the transaction, the
//!   late commit fails, a new instance re-sends what was not committed.
//! - [`open_transaction_holds_back_readers`]: while one producer's
//!   transaction is open, read_committed readers stop at the last stable
//!   offset, even for records of other producers written after it began.
//!
//! Each producer writes ids `0..records` (the source) to one topic, which is
//! then audited: `delivered` is what a read_committed reader sees in it,
//! `aborted in log` what only a read_uncommitted reader sees. librdkafka's
//! mock cluster does not simulate transactions, so every scenario here is
//! refused on it.
//!
//! Each `*_report` function returns the [`Outcome`] together with the facts
//! behind it (the error the zombie got, the proxy's counts, the offsets a
//! reader was held at), so tests and notebooks check numbers, not prose.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::audit::{self, read_ids, Isolation};
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::proxy::{ApiKey, ChaosProxy, ProxyStats};
use crate::outcome::Outcome;
use crate::produce::{self, DeliveryLog, Failure, LoggingContext};
use crate::semantics::Semantic;
use crate::support::Seeded;

/// Records per committed transaction.
pub const TRANSACTION_SIZE: u64 = 100;

/// The client-side timeout of a request in flight in [`lost_end_txn`]: the
/// lost EndTxn answer is noticed, and the request retried, after this long.
pub const SOCKET_TIMEOUT_MS: &str = "2000";

/// The `transaction.timeout.ms` of the producer that stalls in
/// [`transaction_timeout`]. The coordinator looks for expired transactions
/// every `transaction.abort.timed.out.transaction.cleanup.interval.ms`
/// (10 s by default), so the abort comes 3 to 13 s after the transaction began.
pub const TRANSACTION_TIMEOUT_MS: u64 = 3000;

/// How long a reader of [`open_transaction_holds_back_readers`] keeps reading
/// after it reached every offset it may see, to show that nothing more comes.
pub const GRACE: Duration = Duration::from_secs(1);

const PAYLOAD_BYTES: usize = 100;
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a coordinator may take to abort an expired transaction before
/// the scenario gives up: the timeout, a cleanup interval, and room to spare.
const ABORT_LIMIT: Duration = Duration::from_secs(45);
/// The longest a bounded reader may take to reach the offsets it must reach.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// The workload of a scenario-E run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EosStressOptions {
    /// Source records: ids `0..records`. At least 10.
    pub records: u64,
    /// Chooses how many records the fault catches, and where.
    pub seed: u64,
}

impl EosStressOptions {
    pub fn new(records: u64, seed: u64) -> EosStressOptions {
        EosStressOptions { records, seed }
    }

    fn check(&self) -> Result<()> {
        if self.records < 10 {
            return Err(Error::BadConfig(format!(
                "scenario E needs at least 10 records, not {}",
                self.records
            )));
        }
        Ok(())
    }
}

/// A scenario-E function: same shape as every other scenario.
pub type StressScenario = fn(&Cluster, &EosStressOptions) -> Result<Outcome>;

/// The four scenarios, by name, in the order the book presents them.
pub const ALL: [(&str, StressScenario); 4] = [
    ("zombie fenced", zombie_fenced),
    ("lost EndTxn response", lost_end_txn),
    ("transaction timeout", transaction_timeout),
    (
        "open transaction holds back readers",
        open_transaction_holds_back_readers,
    ),
];

/// A transactional call's failure as librdkafka classifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnError {
    /// e.g. `RDKafkaErrorCode::Fenced` (librdkafka's `_FENCED`, -144).
    pub code: RDKafkaErrorCode,
    /// The producer instance is unusable: only a new one can go on.
    pub fatal: bool,
    /// The transaction must be aborted, after which the instance can go on.
    pub requires_abort: bool,
    pub message: String,
}

impl TxnError {
    fn of(error: &KafkaError) -> TxnError {
        match error {
            KafkaError::Transaction(e) => TxnError {
                code: e.code(),
                fatal: e.is_fatal(),
                requires_abort: e.txn_requires_abort(),
                message: e.to_string(),
            },
            other => TxnError {
                code: other.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                fatal: false,
                requires_abort: false,
                message: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for TxnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.fatal {
            "fatal"
        } else if self.requires_abort {
            "abortable"
        } else {
            "retriable or permanent"
        };
        write!(f, "{:?} ({kind}): {}", self.code, self.message)
    }
}

// ---------------------------------------------------------------------------
// 1. The zombie producer.
// ---------------------------------------------------------------------------

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
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    options.check()?;
    let started = Instant::now();
    let records = options.records;
    let topic = cluster.fresh_name("exactly-once-zombie");
    cluster.create_topic(&topic, 3)?;
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
    let zombie_error = zombie
        .commit_transaction(COMMIT_TIMEOUT)
        .err()
        .map(|e| TxnError::of(&e));
    // Monitored runs: the zombie's last statistics (its fenced state) are reported.
    crate::stats::Monitor::settle(&zombie);
    drop(zombie);
    let transactions = write_committed(&successor, &topic, 0..records)?;
    drop(successor);
    let produce_seconds = started.elapsed().as_secs_f64();

    // Aborted by the coordinator when P2 started, unless the commit went through.
    let aborted: Vec<u64> = match &zombie_error {
        Some(_) => (0..zombie_records).collect(),
        None => Vec::new(),
    };
    let zombie_result = match &zombie_error {
        Some(e) => format!("its commit failed with {e}"),
        None => "its commit SUCCEEDED".to_string(),
    };
    let fault = format!(
        "zombie producer (seed {}): instance 1 of transactional.id {transactional_id} \
         wrote {zombie_records} records in a transaction and stalled; instance 2 called \
         init_transactions, which fenced instance 1 and aborted its transaction; \
         {zombie_result}; instance 2 wrote all {records} records in {transactions} \
         committed transactions",
        options.seed
    );
    let outcome = audited(
        cluster,
        &topic,
        Produced {
            records,
            sent: zombie_records + records,
            logs: &[&zombie_log, &log],
            aborted: &aborted,
            fault,
            backend_description: cluster.describe(),
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

// ---------------------------------------------------------------------------
// 2. The lost EndTxn response.
// ---------------------------------------------------------------------------

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
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    options.check()?;
    let started = Instant::now();
    let records = options.records;
    let topic = cluster.fresh_name("exactly-once-lost-end-txn");
    cluster.create_topic(&topic, 3)?;
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
    for t in 0..transactions {
        let ids = t * TRANSACTION_SIZE..((t + 1) * TRANSACTION_SIZE).min(records);
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
    let outcome = audited(
        cluster,
        &topic,
        Produced {
            records,
            sent: records,
            logs: &[&log],
            aborted: &[],
            fault,
            backend_description: format!(
                "{}, through the chaos proxy",
                cluster.describe()
            ),
            produce_seconds,
        },
    )?;
    Ok(LostEndTxnReport {
        outcome,
        transactions,
        victim,
        victim_commit,
        proxy: stats,
    })
}

// ---------------------------------------------------------------------------
// 3. The transaction timeout.
// ---------------------------------------------------------------------------

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
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    options.check()?;
    let started = Instant::now();
    let records = options.records;
    let topic = cluster.fresh_name("exactly-once-txn-timeout");
    let partitions = 3;
    cluster.create_topic(&topic, partitions)?;
    let transactional_id = format!("{topic}-producer");
    let mut seeded = Seeded::new(options.seed);
    let committed_before = seeded.in_range(records / 10..records / 2);
    let stalled_records = seeded.in_range(records / 10..records / 4).max(1);
    let stalled = committed_before..committed_before + stalled_records;
    let timeout = TRANSACTION_TIMEOUT_MS.to_string();
    let overrides = [
        ("transaction.timeout.ms".to_string(), timeout.clone()),
        // librdkafka refuses a message timeout longer than the transaction's,
        // and a socket timeout longer than the transaction's + 100 ms.
        ("message.timeout.ms".to_string(), timeout.clone()),
        ("socket.timeout.ms".to_string(), timeout),
    ];

    let log = Arc::new(DeliveryLog::default());
    let producer = transactional_producer(
        cluster.bootstrap(),
        &transactional_id,
        &overrides,
        &log,
    )?;
    write_committed(&producer, &topic, 0..committed_before)?;
    write_open(&producer, &topic, stalled.clone())?;
    let offsets = OffsetReader::new(cluster, &topic, partitions)?;
    let held_back_at_stall = offsets.held_back()?;
    // The stall: the producer does nothing while the coordinator expires it.
    let stall_started = Instant::now();
    offsets.wait_until_nothing_held_back(ABORT_LIMIT)?;
    let waited_for_abort = stall_started.elapsed();
    let commit_error = producer
        .commit_transaction(COMMIT_TIMEOUT)
        .err()
        .map(|e| TxnError::of(&e));
    crate::stats::Monitor::settle(&producer);
    drop(producer);

    // The application's recovery: a new instance re-sends what is not committed.
    let resend_from = match commit_error {
        Some(_) => stalled.start,
        None => stalled.end,
    };
    let successor_log = Arc::new(DeliveryLog::default());
    let successor = transactional_producer(
        cluster.bootstrap(),
        &transactional_id,
        &overrides,
        &successor_log,
    )?;
    write_committed(&successor, &topic, resend_from..records)?;
    drop(successor);
    let produce_seconds = started.elapsed().as_secs_f64();

    let aborted: Vec<u64> = match commit_error {
        Some(_) => stalled.clone().collect(),
        None => Vec::new(),
    };
    let late_commit = match &commit_error {
        Some(e) => format!("the late commit failed with {e}"),
        None => "the late commit SUCCEEDED".to_string(),
    };
    let fault = format!(
        "transaction timeout (seed {}): after {committed_before} committed records the \
         producer (transaction.timeout.ms={TRANSACTION_TIMEOUT_MS}) wrote {stalled_records} \
         more in a transaction and stalled; {held_back_at_stall} offsets were held back from \
         read_committed readers until the coordinator aborted it {:.1} s later; \
         {late_commit}; a new instance re-sent records {resend_from}..{records}",
        options.seed,
        waited_for_abort.as_secs_f64()
    );
    let outcome = audited(
        cluster,
        &topic,
        Produced {
            records,
            sent: records + (stalled.end - resend_from),
            logs: &[&log, &successor_log],
            aborted: &aborted,
            fault,
            backend_description: cluster.describe(),
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

// ---------------------------------------------------------------------------
// 4. An open transaction holds back read_committed readers.
// ---------------------------------------------------------------------------

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
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    options.check()?;
    let started = Instant::now();
    let records = options.records;
    let topic = cluster.fresh_name("exactly-once-held-back");
    cluster.create_topic(&topic, 1)?;
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

    let offsets = OffsetReader::new(cluster, &topic, 1)?;
    let (last_stable_offset_while_open, high_watermark_while_open) = offsets.get(0)?;
    let committed = read_bounded(
        cluster,
        &topic,
        Isolation::ReadCommitted,
        &[last_stable_offset_while_open],
        GRACE,
    )?;
    let uncommitted = read_bounded(
        cluster,
        &topic,
        Isolation::ReadUncommitted,
        &[high_watermark_while_open],
        GRACE,
    )?;
    produce::commit(&a)?;
    drop(a);
    drop(b);
    let produce_seconds = started.elapsed().as_secs_f64();

    let read_committed_while_open = committed.len() as u64;
    let read_committed_after_while_open =
        committed.iter().filter(|id| after_ids.contains(id)).count() as u64;
    let read_uncommitted_while_open = uncommitted.len() as u64;
    let fault = format!(
        "open transaction (seed {}): B wrote {before} records, A opened a transaction and \
         wrote {in_open_transaction}, B wrote {after} more (acknowledged); while A's \
         transaction was open the last stable offset stood at \
         {last_stable_offset_while_open} (high watermark {high_watermark_while_open}): \
         read_committed saw {read_committed_while_open} records, \
         {read_committed_after_while_open} of B's {after} later ones; read_uncommitted saw \
         {read_uncommitted_while_open}; then A committed",
        options.seed
    );
    let outcome = audited(
        cluster,
        &topic,
        Produced {
            records,
            sent: records,
            logs: &[&b_log, &a_log],
            aborted: &[],
            fault,
            backend_description: cluster.describe(),
            produce_seconds,
        },
    )?;
    let read_committed_after_commit = outcome.counts.delivered;
    Ok(HeldBackReport {
        outcome,
        before,
        in_open_transaction,
        after,
        last_stable_offset_while_open,
        high_watermark_while_open,
        read_committed_while_open,
        read_committed_after_while_open,
        read_uncommitted_while_open,
        read_committed_after_commit,
    })
}

// ---------------------------------------------------------------------------
// Readers that do not wait for the end of a partition.
// ---------------------------------------------------------------------------

/// Every id in `topic`, read from the beginning with `isolation` until the
/// reader's position has reached `reach[p]` in every partition `p` (the
/// offsets it may see: the high watermark, or for read_committed the last
/// stable offset), and then for `grace` more, to show that nothing else comes.
///
/// Unlike [`audit::read_ids`] it never waits for an end-of-partition event,
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
    let mut assignment = TopicPartitionList::new();
    for p in 0..reach.len() as i32 {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .doing("assigning partitions")?;
    }
    consumer
        .assign(&assignment)
        .doing(format!("reading {topic}"))?;
    drop(assignment);
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
    cluster
        .client_config()
        // librdkafka wants a group id even for assign(); nothing is committed.
        .set("group.id", cluster.fresh_name("eos-stress-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation_setting(isolation))
        .create()
        .doing("creating a reader")
}

fn isolation_setting(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::ReadCommitted => "read_committed",
        Isolation::ReadUncommitted => "read_uncommitted",
    }
}

/// Asks the broker for the last stable offset (what a read_committed client's
/// ListOffsets returns as the end) and the high watermark of each partition.
struct OffsetReader<'a> {
    topic: &'a str,
    partitions: i32,
    committed: BaseConsumer,
    uncommitted: BaseConsumer,
}

impl<'a> OffsetReader<'a> {
    fn new(
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
    fn get(&self, p: i32) -> Result<(i64, i64)> {
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
    fn held_back(&self) -> Result<i64> {
        let mut sum = 0;
        for p in 0..self.partitions {
            let (stable, high) = self.get(p)?;
            sum += high - stable;
        }
        Ok(sum)
    }

    fn wait_until_nothing_held_back(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let held = self.held_back()?;
            if held == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Stalled {
                    stage: "transaction timeout",
                    waited: limit,
                    detail: format!(
                        "{held} offsets of {} still behind an open transaction",
                        self.topic
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------
// Producing and auditing.
// ---------------------------------------------------------------------------

type TxProducer = BaseProducer<LoggingContext>;

/// A transactional producer with its transactions initialised (which fences
/// any earlier instance with the same `transactional_id`).
fn transactional_producer(
    bootstrap: &str,
    transactional_id: &str,
    overrides: &[(String, String)],
    log: &Arc<DeliveryLog>,
) -> Result<TxProducer> {
    let config = Semantic::ExactlyOnce.producer_config(
        bootstrap,
        Some(transactional_id),
        overrides,
    )?;
    init_transactional(config, log.clone())
}

/// A transactional producer from `config`, its transactions initialised.
pub(crate) fn init_transactional(
    config: rdkafka::ClientConfig,
    log: Arc<DeliveryLog>,
) -> Result<TxProducer> {
    let transactional_id = config.get("transactional.id").unwrap_or("?").to_string();
    let producer: TxProducer = config
        .create_with_context(LoggingContext(log))
        .doing("creating a transactional producer")?;
    producer
        .init_transactions(INIT_TIMEOUT)
        .doing(format!("initialising transactions of {transactional_id}"))?;
    Ok(producer)
}

/// Writes `ids` in committed transactions of [`TRANSACTION_SIZE`] records;
/// returns how many transactions.
fn write_committed(producer: &TxProducer, topic: &str, ids: Range<u64>) -> Result<u64> {
    let mut transactions = 0;
    let mut start = ids.start;
    while start < ids.end {
        let end = (start + TRANSACTION_SIZE).min(ids.end);
        write_open(producer, topic, start..end)?;
        produce::commit(producer)?;
        transactions += 1;
        start = end;
    }
    Ok(transactions)
}

/// Begins a transaction, writes `ids` in it and waits for every delivery
/// report: the records are in the log, the transaction stays open.
pub(crate) fn write_open(
    producer: &TxProducer,
    topic: &str,
    ids: Range<u64>,
) -> Result<()> {
    producer
        .begin_transaction()
        .doing("beginning a transaction")?;
    for id in ids {
        produce::send(producer, topic, id, PAYLOAD_BYTES)?;
    }
    produce::drain(producer, Duration::from_secs(60))?;
    // Monitored runs: the open transaction shows in the statistics.
    crate::stats::Monitor::settle(producer);
    Ok(())
}

/// Writes `ids` without a transaction and waits until all are acknowledged.
pub(crate) fn write_acknowledged(
    producer: &BaseProducer<LoggingContext>,
    topic: &str,
    ids: Range<u64>,
) -> Result<()> {
    for id in ids {
        produce::send(producer, topic, id, PAYLOAD_BYTES)?;
    }
    producer
        .flush(Duration::from_secs(60))
        .doing("waiting for acknowledgements")
}

/// What the producers of a scenario did, for [`audited`].
struct Produced<'a> {
    records: u64,
    sent: u64,
    logs: &'a [&'a Arc<DeliveryLog>],
    aborted: &'a [u64],
    fault: String,
    backend_description: String,
    produce_seconds: f64,
}

/// Reads `topic` back both ways and counts, by id, what happened.
fn audited(cluster: &Cluster, topic: &str, produced: Produced<'_>) -> Result<Outcome> {
    let mut acknowledged = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    for log in produced.logs {
        let (acked, failed) = log.take();
        acknowledged.extend(acked);
        failures.extend(failed);
    }
    let in_log = read_ids(cluster, topic, Isolation::ReadCommitted)?;
    let in_log_uncommitted = read_ids(cluster, topic, Isolation::ReadUncommitted)?;
    let (counts, fates) = audit::audit(&audit::Observed {
        source: produced.records,
        sent: produced.sent,
        acknowledged: &acknowledged,
        in_log: &in_log,
        in_log_uncommitted: &in_log_uncommitted,
        delivered: &in_log,
        aborted: produced.aborted,
    });
    Ok(Outcome {
        semantic: Semantic::ExactlyOnce,
        backend: cluster.backend(),
        backend_description: produced.backend_description,
        kafka_version: cluster.kafka_version().to_string(),
        librdkafka_version: crate::cluster::librdkafka_version(),
        input_topic: topic.to_string(),
        output_topic: None,
        group: String::new(),
        fault: Some(produced.fault),
        records: produced.records,
        payload_bytes: PAYLOAD_BYTES,
        counts,
        fates,
        // What fits this scenario's timeline: the records of the transaction
        // the fault ended in an abort, if it did.
        window: (!produced.aborted.is_empty()).then(|| {
            crate::outcome::FaultWindow::of_ids(
                "written in a transaction that was then aborted",
                produced.aborted.iter().copied().collect(),
                0,
            )
        }),
        failures,
        produce_seconds: produced.produce_seconds,
        // No consumer stage: the producers' topic is read back by the audit.
        consume_seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_is_refused_on_the_mock_cluster_with_the_reason() {
        let mock = Cluster::mock().unwrap();
        for (name, scenario) in ALL {
            let err = scenario(&mock, &EosStressOptions::new(100, 1))
                .err()
                .unwrap_or_else(|| panic!("{name} ran on the mock cluster"));
            assert!(matches!(err, Error::Unsupported { .. }), "{name}: {err}");
            assert!(err.to_string().contains("read_committed"), "{name}: {err}");
        }
    }

    #[test]
    fn too_few_records_are_refused() {
        let err = EosStressOptions::new(9, 1).check().unwrap_err();
        assert!(err.to_string().contains("at least 10"), "{err}");
        EosStressOptions::new(10, 1).check().unwrap();
    }

    #[test]
    fn a_transaction_error_keeps_librdkafkas_classification() {
        let e =
            TxnError::of(&KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull));
        assert_eq!(e.code, RDKafkaErrorCode::QueueFull);
        assert!(!e.fatal && !e.requires_abort);
        assert!(e.to_string().starts_with("QueueFull"), "{e}");
    }
}
