//! One pass of one case on a fresh topic: a warm-up, then the measured loop,
//! with the producer alone or with a consumer reading along (the end-to-end
//! reader).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::broker_log::{growth, BrokerLog, LogProbe};
use super::payload::{now_us, parse_stamp, PayloadTemplate};
use super::wire::{LatestStatistics, WireCounts, STATS_EVERY};
use super::{BenchOptions, Case, TransactionStats};
use crate::cluster::{Backend, Cluster};
use crate::error::{Doing, Error, Result};
use crate::metrics::{LatencyHistogram, LatencySummary, Throughput};
use crate::produce;
use crate::support::lock;

/// Ids of warm-up records start here, so the end-to-end reader can tell them
/// from measured ones (measured records have ids `0..records`).
pub const WARMUP_ID_BASE: u64 = 1 << 62;

/// How long the end-to-end reader waits for missing records after the
/// producer has finished (acks=0 may lose some).
const READER_IDLE: Duration = Duration::from_secs(5);

/// Files each delivery report's send-to-ack time in a histogram. The opaque
/// of each record is the microsecond (since `origin`) it was handed over.
struct BenchContext {
    origin: Instant,
    acks: Mutex<LatencyHistogram>,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    statistics: LatestStatistics,
}

impl BenchContext {
    fn new() -> BenchContext {
        BenchContext {
            origin: Instant::now(),
            acks: Mutex::new(LatencyHistogram::new()),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            statistics: LatestStatistics::default(),
        }
    }

    fn stamp(&self) -> usize {
        self.origin.elapsed().as_micros() as usize
    }

    fn reset(&self) {
        lock(&self.acks).reset();
        self.failed.store(0, Ordering::Relaxed);
        *lock(&self.first_error) = None;
    }
}

impl ClientContext for BenchContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.statistics.deliver(statistics);
    }
}

impl ProducerContext for BenchContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: usize) {
        match result {
            Ok(_) => {
                let now = self.origin.elapsed().as_micros() as u64;
                lock(&self.acks).record_us(now.saturating_sub(sent_at as u64));
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                lock(&self.first_error).get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// What one pass measured.
pub(super) struct Pass {
    pub(super) settings: BTreeMap<String, String>,
    pub(super) throughput: Throughput,
    pub(super) ack_latency: LatencySummary,
    pub(super) failed: u64,
    pub(super) first_error: Option<String>,
    pub(super) transactions: Option<TransactionStats>,
    /// With a reader: what it received, and its latency.
    pub(super) received: u64,
    pub(super) end_to_end: Option<LatencySummary>,
    /// How the broker's log grew over the measured window; with the reason
    /// when it is unknown.
    pub(super) broker_log: BrokerLog,
    pub(super) broker_unknown: Option<String>,
    /// librdkafka's counters over the measured part (None if its statistics
    /// did not come in time).
    pub(super) wire: Option<WireCounts>,
    /// The log's size when the clock started (with a [`LogProbe`]).
    log_at_start: Option<u64>,
}

/// Between the producer and the end-to-end reader of a pass.
#[derive(Default)]
struct ReaderShared {
    warmup_seen: AtomicU64,
    producer_done: AtomicBool,
    reader_gone: AtomicBool,
}

impl ReaderShared {
    /// Waits (up to 30 s) until the reader has every warm-up record, or is gone.
    fn wait_for_warmup(&self, warmup_records: u64) {
        // The reader is caught up (and so fetching) once it has the warm-up.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.warmup_seen.load(Ordering::SeqCst) < warmup_records
            && !self.reader_gone.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// One pass of one case on a fresh topic, with or without a reader.
pub(super) fn produce_pass(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    with_reader: bool,
) -> Result<Pass> {
    let topic = cluster.fresh_name(&format!("bench-{}", case.slug()));
    cluster.create_topic(&topic, options.partitions)?;
    let pass = watched_pass(cluster, case, options, with_reader, &topic)
        // A reader that missed records the mock threw away must not say so.
        .and_then(|pass| cluster.check_kept_everything(&topic).map(|()| pass));
    delete_topic(cluster, &topic);
    pass
}

/// A pass on `topic` with the broker's log watched (where the lab can see
/// it): the pass's `broker_log`, or why it is unknown.
fn watched_pass(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    with_reader: bool,
    topic: &str,
) -> Result<Pass> {
    let probe = match LogProbe::find(cluster, topic, options.partitions) {
        Ok(probe) => probe,
        Err(why) => {
            let mut pass =
                produce_pass_on(cluster, case, options, with_reader, topic, None)?;
            pass.broker_log = BrokerLog::Unknown;
            pass.broker_unknown = Some(why);
            return Ok(pass);
        }
    };
    // The client is this process.
    let client = std::sync::atomic::AtomicU32::new(std::process::id());
    let (pass, samples) = probe.watch(&client, || {
        produce_pass_on(cluster, case, options, with_reader, topic, Some(&probe))
    });
    let mut pass = pass?;
    let records = options.warmup_records + pass.throughput.records;
    match pass
        .log_at_start
        .and_then(|from| growth(&samples, from, records))
    {
        Some(g) => pass.broker_log = BrokerLog::Grew(g),
        None => {
            pass.broker_log = BrokerLog::Unknown;
            pass.broker_unknown = Some(format!(
                "the log did not grow over more than one sample ({} ms apart): too short a run to time",
                super::broker_log::SAMPLE_EVERY.as_millis()
            ));
        }
    }
    Ok(pass)
}

/// Deletes a benchmark topic once measured: a run writes gigabytes, which
/// would otherwise stay on the broker's disk for the retention time (the
/// broker removes the files a minute later, `log.segment.delete.delay.ms`).
/// Best effort: a topic left behind is only disk space.
pub fn delete_topic(cluster: &Cluster, topic: &str) {
    if cluster.backend() != Backend::Kafka {
        return; // the mock cluster keeps its topics in memory, and goes with them
    }
    let _ = cluster.delete_topics(&[topic]);
}

fn produce_pass_on(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    with_reader: bool,
    topic: &str,
    probe: Option<&LogProbe>,
) -> Result<Pass> {
    let shared = ReaderShared::default();
    let bootstrap = cluster.bootstrap().to_string();
    let group = cluster.fresh_name("bench-reader");
    std::thread::scope(|scope| {
        let reader = with_reader.then(|| {
            let (shared, group, bootstrap) = (&shared, &group, &bootstrap);
            scope.spawn(move || {
                let read = read_end_to_end(bootstrap, topic, group, options, shared);
                shared.reader_gone.store(true, Ordering::SeqCst);
                read
            })
        });
        let produced = produce_measured(
            cluster,
            case,
            options,
            topic,
            reader.as_ref().map(|_| &shared),
            probe,
        );
        shared.producer_done.store(true, Ordering::SeqCst);
        let read = reader.map(|r| {
            r.join().unwrap_or_else(|_| {
                Err(Error::Process {
                    what: "the end-to-end reader thread".into(),
                    detail: "it panicked".into(),
                })
            })
        });
        let mut pass = produced?;
        if let Some(read) = read {
            let (histogram, received) = read?;
            pass.received = received;
            pass.end_to_end = Some(histogram.summary());
        }
        Ok(pass)
    })
}

/// The producer of a pass: the case's settings on its semantic's, the
/// options' overrides last; transactions initialised for a transactional
/// case. Returns it with the settings (the transactional id left out).
fn bench_producer(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
) -> Result<(BaseProducer<BenchContext>, BTreeMap<String, String>)> {
    let transactional_id = cluster.fresh_name("bench-tx");
    let mut overrides = case.lab_overrides(options.one_in_flight);
    overrides.extend(options.producer_overrides.iter().cloned());
    let mut config = case.semantic().producer_config(
        cluster.bootstrap(),
        Some(&transactional_id),
        &overrides,
    )?;
    let settings: BTreeMap<String, String> = config
        .config_map()
        .iter()
        .filter(|(k, _)| !["transactional.id", "bootstrap.servers"].contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Not among the settings shown: it only lets the bench read librdkafka's counters.
    config.set(
        "statistics.interval.ms",
        STATS_EVERY.as_millis().to_string(),
    );
    let producer: BaseProducer<BenchContext> = config
        .create_with_context(BenchContext::new())
        .doing("creating the benchmark producer")?;
    if case.commit_interval().is_some() {
        producer
            .init_transactions(Duration::from_secs(30))
            .doing("initialising transactions")?;
    }
    Ok((producer, settings))
}

/// Warm-up: connections, metadata, the transaction coordinator, the JIT of
/// the broker. Acknowledged (and committed) before the clock starts.
fn warm_up(
    producer: &BaseProducer<BenchContext>,
    interval: Option<Duration>,
    options: &BenchOptions,
    topic: &str,
    template: &mut PayloadTemplate,
) -> Result<()> {
    if interval.is_some() {
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
    }
    for i in 0..options.warmup_records {
        send(producer, topic, template.fill(WARMUP_ID_BASE + i, now_us()))?;
    }
    if interval.is_some() {
        produce::commit(producer)
    } else {
        produce::drain(producer, Duration::from_secs(120))
    }
}

/// A pass's producer on `topic`: the warm-up, then the measured records (with
/// `reader`, once the end-to-end reader has the warm-up).
// long: the measured part stays here in one piece, with the counters it keeps: the
// book shows it whole (the `measured_loop` listing).
fn produce_measured(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    topic: &str,
    reader: Option<&ReaderShared>,
    probe: Option<&LogProbe>,
) -> Result<Pass> {
    let (producer, settings) = bench_producer(cluster, case, options)?;
    let interval = case.commit_interval();
    let mut template = PayloadTemplate::new(options.record_bytes);
    warm_up(&producer, interval, options, topic, &mut template)?;
    if let Some(shared) = reader {
        shared.wait_for_warmup(options.warmup_records);
    }
    producer.context().reset();
    let poll = || {
        producer.poll(Duration::from_millis(10));
    };
    let wire_at_start = producer.context().statistics.fresh(poll);

    let log_at_start = probe.map(LogProbe::size);
    let started = Instant::now();
    let mut commits = 0u64;
    let mut commit_time = Duration::ZERO;
    let mut transaction_started = started;
    if interval.is_some() {
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
    }
    // ANCHOR: measured_loop
    let mut id = 0;
    // The last commit, after the loop, is one more.
    while id < options.records
        || (interval.is_some() && commits + 1 < options.min_commits)
    {
        send(&producer, topic, template.fill(id, now_us()))?;
        id += 1;
        if let Some(interval) = interval {
            if transaction_started.elapsed() >= interval {
                let t = Instant::now();
                produce::commit(&producer)?;
                commit_time += t.elapsed();
                commits += 1;
                producer
                    .begin_transaction()
                    .doing("beginning a transaction")?;
                transaction_started = Instant::now();
            }
        }
    }
    if interval.is_some() {
        let t = Instant::now();
        produce::commit(&producer)?;
        commit_time += t.elapsed();
        commits += 1;
    } else {
        produce::drain(&producer, Duration::from_secs(330))?;
    }
    let elapsed = started.elapsed();
    // ANCHOR_END: measured_loop
    let wire_at_end = producer.context().statistics.fresh(poll);

    let context = producer.context();
    let ack_latency = lock(&context.acks).summary();
    let failed = context.failed.load(Ordering::Relaxed);
    let first_error = lock(&context.first_error).clone();
    Ok(Pass {
        settings,
        throughput: Throughput::new(id, id * options.record_bytes as u64, elapsed),
        ack_latency,
        failed,
        first_error,
        transactions: interval.map(|i| TransactionStats {
            commit_interval_ms: i.as_millis() as u64,
            commits,
            commit_seconds: commit_time.as_secs_f64(),
            mean_commit_ms: commit_time.as_secs_f64() * 1000.0 / commits.max(1) as f64,
        }),
        received: 0,
        end_to_end: None,
        broker_log: BrokerLog::NotChecked,
        broker_unknown: None,
        wire: wire_at_end
            .zip(wire_at_start)
            .map(|(end, start)| end.since(&start)),
        log_at_start,
    })
}

/// Hands one value (no key) to the client, waiting for room if its queue is full.
fn send(
    producer: &BaseProducer<BenchContext>,
    topic: &str,
    payload: &[u8],
) -> Result<()> {
    let record = BaseRecord::<(), [u8], usize>::with_opaque_to(
        topic,
        producer.context().stamp(),
    )
    .payload(payload);
    produce::send_waiting(producer, record, Duration::from_millis(1), None)
}

/// The end-to-end reader: a consumer assigned every partition of `topic` from
/// the beginning, timing each measured record from its `sent_at_us` stamp.
fn read_end_to_end(
    bootstrap: &str,
    topic: &str,
    group: &str,
    options: &BenchOptions,
    shared: &ReaderShared,
) -> Result<(LatencyHistogram, u64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .doing("creating the end-to-end reader")?;
    let mut list = TopicPartitionList::new();
    for p in 0..options.partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .doing("assigning the end-to-end reader")?;
    }
    consumer
        .assign(&list)
        .doing("assigning the end-to-end reader")?;
    // A partition list that outlives its consumer makes dropping the consumer hang.
    drop(list);
    let mut histogram = LatencyHistogram::new();
    let mut received = 0u64;
    let mut last_message = Instant::now();
    while received < options.records {
        if shared.producer_done.load(Ordering::SeqCst)
            && last_message.elapsed() > READER_IDLE
        {
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(message) = message else {
            continue; // transient fetch errors; a lasting one ends by idleness
        };
        last_message = Instant::now();
        let Some((id, sent_at_us)) = message.payload().and_then(parse_stamp) else {
            continue;
        };
        if id >= WARMUP_ID_BASE {
            shared.warmup_seen.fetch_add(1, Ordering::SeqCst);
        } else {
            histogram.record_us(now_us().saturating_sub(sent_at_us));
            received += 1;
        }
    }
    Ok((histogram, received))
}
