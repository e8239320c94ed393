//! What `read_committed` costs the consumer itself: the same log of
//! transactions (commit markers, and some aborted transactions) read to its
//! end with each isolation level, in turns.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::metrics::Throughput;
use crate::produce;
use crate::read::{self, Isolation};
use crate::semantics::Semantic;

/// The log to read, and how often.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerCostOptions {
    pub records: u64,
    pub record_bytes: usize,
    /// Records per transaction.
    pub transaction_records: u64,
    /// Every this many transactions, one is aborted (0: none).
    pub abort_every: u64,
    /// Reads per isolation level, alternating.
    pub repetitions: u32,
}

impl Default for ConsumerCostOptions {
    /// 40,000 records of 1 KB in transactions of 100, every fifth aborted,
    /// each isolation level read 3 times.
    fn default() -> Self {
        ConsumerCostOptions {
            records: 40_000,
            record_bytes: 1024,
            transaction_records: 100,
            abort_every: 5,
            repetitions: 3,
        }
    }
}

/// One isolation level's reads of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationRead {
    /// `read_committed` or `read_uncommitted`.
    pub isolation: String,
    /// Records the reader was handed.
    pub records: u64,
    /// Records of aborted transactions among them.
    pub aborted_seen: u64,
    /// The median read by time, and each read's records per second.
    pub throughput: Throughput,
    pub runs_records_per_sec: Vec<f64>,
    /// Log offsets (records, markers, aborted records) passed per second.
    pub offsets_per_sec: f64,
}

/// The consumer's cost, measured on one log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerCost {
    pub backend_description: String,
    pub options: ConsumerCostOptions,
    pub transactions: u64,
    pub aborted_transactions: u64,
    /// The log's end offset, and how many of its offsets hold markers.
    pub log_offsets: i64,
    pub markers: i64,
    pub reads: Vec<IsolationRead>,
}

impl ConsumerCost {
    /// `read_committed`'s median throughput as a fraction of
    /// `read_uncommitted`'s, in log offsets per second.
    pub fn committed_vs_uncommitted(&self) -> Option<f64> {
        let rate = |name: &str| {
            self.reads
                .iter()
                .find(|r| r.isolation == name)
                .map(|r| r.offsets_per_sec)
        };
        Some(rate("read_committed")? / rate("read_uncommitted")?)
    }
}

/// Writes the log on a fresh topic, reads it with both isolation levels in
/// turns, deletes it.
pub fn consumer_cost(
    cluster: &Cluster,
    options: &ConsumerCostOptions,
) -> Result<ConsumerCost> {
    if options.records == 0
        || options.transaction_records == 0
        || options.repetitions == 0
    {
        return Err(Error::BadConfig(
            "the consumer-cost log needs records, records per transaction and repetitions of at least 1"
                .into(),
        ));
    }
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    let topic = cluster.fresh_name("pipeline-txn-log");
    cluster.create_topic(&topic, 1)?;
    let measured = measure_on(cluster, options, &topic);
    let _ = cluster.delete_topics(&[&topic]);
    measured
}

fn measure_on(
    cluster: &Cluster,
    options: &ConsumerCostOptions,
    topic: &str,
) -> Result<ConsumerCost> {
    let aborted = write_log(cluster, options, topic)?;
    let log_offsets = cluster.end_offsets(topic)?.iter().sum::<i64>();
    let mut runs: Vec<(Isolation, Duration, Vec<u64>)> = Vec::new();
    for _ in 0..options.repetitions {
        for isolation in [Isolation::ReadCommitted, Isolation::ReadUncommitted] {
            let started = Instant::now();
            let ids = read::read_ids(cluster, topic, isolation)?;
            runs.push((isolation, started.elapsed(), ids));
        }
    }
    let reads = [Isolation::ReadCommitted, Isolation::ReadUncommitted]
        .into_iter()
        .map(|isolation| {
            let mut mine: Vec<&(Isolation, Duration, Vec<u64>)> =
                runs.iter().filter(|r| r.0 == isolation).collect();
            mine.sort_by_key(|r| r.1);
            let (_, elapsed, ids) = mine[mine.len() / 2];
            let records = ids.len() as u64;
            IsolationRead {
                isolation: isolation.setting().to_string(),
                records,
                aborted_seen: ids.iter().filter(|id| aborted.contains(id)).count()
                    as u64,
                throughput: Throughput::new(
                    records,
                    records * options.record_bytes as u64,
                    *elapsed,
                ),
                runs_records_per_sec: mine
                    .iter()
                    .map(|r| r.2.len() as f64 / r.1.as_secs_f64().max(1e-9))
                    .collect(),
                offsets_per_sec: log_offsets as f64 / elapsed.as_secs_f64().max(1e-9),
            }
        })
        .collect();
    let transactions = options.records.div_ceil(options.transaction_records);
    let aborted_transactions = match options.abort_every {
        0 => 0,
        n => transactions / n,
    };
    Ok(ConsumerCost {
        backend_description: cluster.describe(),
        options: options.clone(),
        transactions,
        aborted_transactions,
        log_offsets,
        // Every record of the log is ours; the other offsets are markers.
        markers: log_offsets - options.records as i64,
        reads,
    })
}

/// Writes `options.records` records in transactions, aborting every
/// `abort_every`-th; returns the aborted ids.
fn write_log(
    cluster: &Cluster,
    options: &ConsumerCostOptions,
    topic: &str,
) -> Result<HashSet<u64>> {
    let transactional_id = format!("{topic}-writer");
    let producer: BaseProducer<produce::LoggingContext> = Semantic::ExactlyOnce
        .producer_config(cluster.bootstrap(), Some(&transactional_id), &[])?
        .create_with_context(produce::LoggingContext(Default::default()))
        .doing("creating the transactional writer")?;
    produce::init_transactions(&producer)?;
    let mut watch = cluster.watch(format!("writing transactions to {topic}"));
    let mut aborted = HashSet::new();
    let mut id = 0;
    let mut n = 0u64;
    while id < options.records {
        n += 1;
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
        let ids = id..(id + options.transaction_records).min(options.records);
        id = ids.end;
        for i in ids.clone() {
            produce::send_watched(
                &producer,
                topic,
                i,
                options.record_bytes,
                &mut watch,
            )?;
        }
        if options.abort_every > 0 && n % options.abort_every == 0 {
            // An abort needs the delivery reports polled first.
            produce::drain_watched(&producer, Duration::from_secs(60), &mut watch)?;
            watch.patiently(
                "aborting a transaction",
                Duration::from_secs(60),
                |t| producer.abort_transaction(t),
            )?;
            aborted.extend(ids);
        } else {
            produce::commit_watched(&producer, &mut watch)?;
        }
    }
    Ok(aborted)
}
