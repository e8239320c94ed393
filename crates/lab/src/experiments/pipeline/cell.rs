//! One cell: fresh topics, the upstream producer, the processor, and the
//! downstream `read_committed` reader, for one pipeline at one interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;

use super::{Cell, Pipeline, PipelineOptions};
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::liveness::BrokerWatch;
use crate::metrics::{LatencyHistogram, Throughput};
use crate::read::{self, Isolation};
use crate::support::lock;
use crate::{consume, produce};

/// How long the processor or the reader may see nothing new before the
/// cell is declared stalled.
const IDLE_LIMIT: Duration = Duration::from_secs(45);

/// Microseconds since the epoch: the clock of the records' `sent_at_us`.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The context of the processor's two clients: delivery reports counted,
/// and the requests sent by type, from each statistics report.
#[derive(Default)]
pub(super) struct CountingContext {
    acknowledged: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    requests: Mutex<BTreeMap<String, u64>>,
}

impl ClientContext for CountingContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Ok(requests) = crate::stats::requests_by_type(statistics) {
            *lock(&self.requests) = requests;
        }
        crate::stats::deliver(statistics);
    }
}

impl ConsumerContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, _id: usize) {
        match result {
            Ok(_) => {
                self.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                lock(&self.first_error).get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// What the threads of a cell tell each other, on one clock.
struct Shared {
    origin: Instant,
    backlog: u64,
    total: u64,
    /// Microseconds since `origin` (0: not yet).
    first_processed_us: AtomicU64,
    backlog_read_us: AtomicU64,
    processor_gone: AtomicBool,
    reader_gone: AtomicBool,
}

impl Shared {
    fn stamp(&self) -> u64 {
        (self.origin.elapsed().as_micros() as u64).max(1)
    }
}

/// Measures one cell on fresh topics, deleted afterwards.
pub(super) fn run_cell(
    cluster: &Cluster,
    pipeline: Pipeline,
    interval_ms: u64,
    min_isr: Option<u32>,
    options: &PipelineOptions,
) -> Result<Cell> {
    let slug = format!("{}-{interval_ms}ms", pipeline.label());
    let input = cluster.fresh_name(&format!("pipeline-in-{slug}"));
    let output = cluster.fresh_name(&format!("pipeline-out-{slug}"));
    let isr = min_isr.map(|n| n.to_string());
    let configs: Vec<(&str, &str)> = isr
        .as_deref()
        .map(|n| vec![("min.insync.replicas", n)])
        .unwrap_or_default();
    cluster.create_topic_with(&input, 1, &configs)?;
    cluster.create_topic_with(&output, 1, &configs)?;
    let cell = run_on(cluster, pipeline, interval_ms, options, &input, &output);
    let _ = cluster.delete_topics(&[&input, &output]);
    cell
}

fn run_on(
    cluster: &Cluster,
    pipeline: Pipeline,
    interval_ms: u64,
    options: &PipelineOptions,
    input: &str,
    output: &str,
) -> Result<Cell> {
    let interval = Duration::from_millis(interval_ms);
    let stream_seconds = options
        .latency_seconds
        .max(interval.as_secs_f64() * options.min_commits as f64);
    let stream = (stream_seconds * options.rate as f64).ceil().max(1.0) as u64;
    let shared = Shared {
        origin: Instant::now(),
        backlog: options.records,
        total: options.records + stream,
        first_processed_us: AtomicU64::new(0),
        backlog_read_us: AtomicU64::new(0),
        processor_gone: AtomicBool::new(false),
        reader_gone: AtomicBool::new(false),
    };
    let upstream = Upstream::new(cluster, input)?;
    upstream.send_backlog(0..options.records, options.record_bytes)?;
    let group = cluster.fresh_name("pipeline-processor");
    let bootstrap = cluster.bootstrap();
    let reader_config =
        read::reader_config(cluster, "pipeline-reader", Isolation::ReadCommitted);
    std::thread::scope(|scope| {
        let shared = &shared;
        let processor = scope.spawn(move || {
            let done =
                process(bootstrap, pipeline, interval, input, output, &group, shared);
            shared.processor_gone.store(true, Ordering::SeqCst);
            done
        });
        let reader = scope.spawn(move || {
            let done = read_downstream(bootstrap, reader_config, output, shared);
            shared.reader_gone.store(true, Ordering::SeqCst);
            done
        });
        // The steady stream starts once the backlog is through.
        let streamed = wait_for_backlog(shared).and_then(|()| {
            upstream.send_steady(
                options.records..shared.total,
                options.record_bytes,
                options.rate,
            )
        });
        let processed = join(processor, "the processor thread");
        let read = join(reader, "the downstream reader thread");
        let streamed = streamed?;
        let (processed, read) = (processed?, read?);
        let end = cluster.end_offsets(output)?.iter().sum::<i64>();
        Ok(figures(
            pipeline,
            interval_ms,
            options,
            shared,
            streamed,
            processed,
            read,
            end,
        ))
    })
}

/// The cell's figures, from what its threads reported and the output's end
/// offset (`end`).
#[allow(clippy::too_many_arguments)]
fn figures(
    pipeline: Pipeline,
    interval_ms: u64,
    options: &PipelineOptions,
    shared: &Shared,
    (stream_rate, stream_seconds): (f64, f64),
    processed: Processed,
    read: Read,
    end: i64,
) -> Cell {
    let first = shared.first_processed_us.load(Ordering::SeqCst);
    let backlog_read = shared.backlog_read_us.load(Ordering::SeqCst);
    let seconds = backlog_read.saturating_sub(first) as f64 / 1e6;
    let commit_us = &processed.commit_done_us;
    let last_commit = commit_us.last().copied().unwrap_or(first);
    Cell {
        pipeline,
        commit_interval_ms: interval_ms,
        throughput: Throughput::from_seconds(
            options.records,
            options.records * options.record_bytes as u64,
            seconds,
        ),
        throughput_commits: commit_us.iter().filter(|&&t| t <= backlog_read).count()
            as u64,
        latency: read.latency.summary(),
        stream_rate,
        stream_seconds,
        commits: commit_us.len() as u64,
        mean_commit_ms: processed.commit_seconds * 1000.0
            / commit_us.len().max(1) as f64,
        output_records: processed.acknowledged,
        missing: shared.total - read.distinct,
        duplicates: read.duplicates,
        // Every output record is acknowledged once (idempotence, or no
        // retry): the other offsets hold markers.
        markers: end - processed.acknowledged as i64,
        processor_seconds: last_commit.saturating_sub(first) as f64 / 1e6,
        requests: processed.requests,
    }
}

fn join<T>(
    handle: std::thread::ScopedJoinHandle<'_, Result<T>>,
    what: &str,
) -> Result<T> {
    handle.join().unwrap_or_else(|_| {
        Err(Error::Process {
            what: what.into(),
            detail: "it panicked".into(),
        })
    })
}

/// Waits until the reader has the whole backlog, or a thread gave up.
fn wait_for_backlog(shared: &Shared) -> Result<()> {
    while shared.backlog_read_us.load(Ordering::SeqCst) == 0 {
        if shared.processor_gone.load(Ordering::SeqCst)
            || shared.reader_gone.load(Ordering::SeqCst)
        {
            return Err(Error::Process {
                what: "the pipeline".into(),
                detail:
                    "the processor or the reader stopped before the backlog was through"
                        .into(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// The upstream producer: at-least-once's settings (acks=all, retries).
struct Upstream<'a> {
    producer: BaseProducer<produce::LoggingContext>,
    topic: &'a str,
    watch: Mutex<BrokerWatch>,
}

impl<'a> Upstream<'a> {
    fn new(cluster: &Cluster, topic: &'a str) -> Result<Upstream<'a>> {
        let producer = crate::Semantic::AtLeastOnce
            .producer_config(cluster.bootstrap(), None, &[])?
            .create_with_context(produce::LoggingContext(Default::default()))
            .doing("creating the upstream producer")?;
        Ok(Upstream {
            producer,
            topic,
            watch: Mutex::new(cluster.watch(format!("producing to {topic}"))),
        })
    }

    /// As fast as it can, every acknowledgement waited for.
    fn send_backlog(&self, ids: std::ops::Range<u64>, bytes: usize) -> Result<()> {
        let mut watch = lock(&self.watch);
        for id in ids {
            produce::send_watched(&self.producer, self.topic, id, bytes, &mut watch)?;
        }
        produce::drain_watched(&self.producer, Duration::from_secs(120), &mut watch)
    }

    /// At `rate` records per second; returns the rate achieved and how long
    /// the stream lasted.
    fn send_steady(
        &self,
        ids: std::ops::Range<u64>,
        bytes: usize,
        rate: u64,
    ) -> Result<(f64, f64)> {
        let mut watch = lock(&self.watch);
        let started = Instant::now();
        let first = ids.start;
        let count = ids.end - ids.start;
        for id in ids {
            let due = Duration::from_secs_f64((id - first) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            produce::send_watched(&self.producer, self.topic, id, bytes, &mut watch)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        produce::drain_watched(&self.producer, Duration::from_secs(120), &mut watch)?;
        Ok((count as f64 / seconds.max(1e-9), seconds))
    }
}

/// What the processor did.
struct Processed {
    acknowledged: u64,
    /// When each commit finished, in µs on the shared clock.
    commit_done_us: Vec<u64>,
    commit_seconds: f64,
    requests: BTreeMap<String, u64>,
}

/// The processor's clients, each semantic's own settings, statistics on
/// (the request counters per commit come from them).
fn processor_clients(
    bootstrap: &str,
    pipeline: Pipeline,
    group: &str,
    input: &str,
) -> Result<(BaseConsumer<CountingContext>, BaseProducer<CountingContext>)> {
    let semantic = pipeline.semantic();
    let stats = [("statistics.interval.ms".to_string(), "100".to_string())];
    let consumer: BaseConsumer<CountingContext> = semantic
        .consumer_config(bootstrap, group, &stats)
        .create_with_context(CountingContext::default())
        .doing("creating the processor's consumer")?;
    consumer
        .subscribe(&[input])
        .doing(format!("subscribing to {input}"))?;
    let transactional_id = format!("{group}-processor");
    let producer: BaseProducer<CountingContext> = semantic
        .producer_config(bootstrap, Some(&transactional_id), &stats)?
        .create_with_context(CountingContext::default())
        .doing("creating the processor's producer")?;
    if pipeline == Pipeline::ExactlyOnce {
        produce::init_transactions(&producer)?;
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
    }
    Ok((consumer, producer))
}

// long: the read-process-write loop in one piece, as the book describes it:
// poll, write each record on, commit by time (and after the backlog).
/// The processor: reads every input record, writes it on unchanged (its value
/// keeps the upstream send time), and commits every `interval` per its
/// pipeline, until it has every id once.
fn process(
    bootstrap: &str,
    pipeline: Pipeline,
    interval: Duration,
    input: &str,
    output: &str,
    group: &str,
    shared: &Shared,
) -> Result<Processed> {
    let (consumer, producer) = processor_clients(bootstrap, pipeline, group, input)?;
    let mut watch = BrokerWatch::new(
        bootstrap,
        format!("processing {input} ({})", pipeline.label()),
    );
    let mut seen = vec![false; shared.total as usize];
    let (mut distinct, mut backlog_seen) = (0u64, 0u64);
    let mut next_offset: Option<(i32, i64)> = None;
    let mut commit = Committer {
        pipeline,
        input,
        done_us: Vec::new(),
        seconds: 0.0,
    };
    let mut last_commit = Instant::now();
    let mut last_record = Instant::now();
    let mut backlog_committed = false;
    while distinct < shared.total {
        match consumer.poll(Duration::from_millis(20)) {
            None => watch.check()?,
            Some(Err(e)) if consume::transient(&e) => watch.check()?,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(e).doing("consuming the input"),
            Some(Ok(m)) => {
                watch.heard();
                last_record = Instant::now();
                let _ = shared.first_processed_us.compare_exchange(
                    0,
                    shared.stamp(),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                let Some(id) = crate::record::parse_key(m.key()) else {
                    continue;
                };
                let record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(
                    output,
                    id as usize,
                )
                .key(m.key().unwrap_or_default())
                .payload(m.payload().unwrap_or_default());
                produce::send_waiting(
                    &producer,
                    record,
                    Duration::from_millis(1),
                    Some(&mut watch),
                )?;
                next_offset = Some((m.partition(), m.offset() + 1));
                if let Some(slot) = seen.get_mut(id as usize) {
                    if !*slot {
                        *slot = true;
                        distinct += 1;
                        backlog_seen += u64::from(id < shared.backlog);
                    }
                }
            }
        }
        if last_record.elapsed() > IDLE_LIMIT {
            return Err(stalled("processor", distinct, shared.total));
        }
        let backlog_through = !backlog_committed && backlog_seen == shared.backlog;
        if (last_commit.elapsed() >= interval || backlog_through)
            && next_offset.is_some()
        {
            backlog_committed |= backlog_through;
            commit.commit(&consumer, &producer, next_offset, &mut watch, shared)?;
            next_offset = None;
            last_commit = Instant::now();
        }
    }
    commit.commit(&consumer, &producer, next_offset, &mut watch, shared)?;
    // One more statistics report of each client, after the last commit.
    let settle = Instant::now() + Duration::from_millis(250);
    while Instant::now() < settle {
        producer.poll(Duration::from_millis(10));
        let _ = consumer.poll(Duration::from_millis(10));
    }
    let context = producer.context();
    if let Some(error) = lock(&context.first_error).clone() {
        return Err(Error::BadData(format!(
            "{} output records were not delivered (first error: {error})",
            context.failed.load(Ordering::Relaxed)
        )));
    }
    let mut requests = lock(&context.requests).clone();
    for (kind, n) in lock(&consumer.context().requests).iter() {
        *requests.entry(kind.clone()).or_insert(0) += n;
    }
    Ok(Processed {
        acknowledged: context.acknowledged.load(Ordering::Relaxed),
        commit_done_us: commit.done_us,
        commit_seconds: commit.seconds,
        requests,
    })
}

/// Commits the processor's progress per its pipeline, and times it.
struct Committer<'a> {
    pipeline: Pipeline,
    input: &'a str,
    done_us: Vec<u64>,
    seconds: f64,
}

impl Committer<'_> {
    fn commit(
        &mut self,
        consumer: &BaseConsumer<CountingContext>,
        producer: &BaseProducer<CountingContext>,
        next_offset: Option<(i32, i64)>,
        watch: &mut BrokerWatch,
        shared: &Shared,
    ) -> Result<()> {
        let Some((partition, offset)) = next_offset else {
            return Ok(()); // nothing consumed since the last commit
        };
        let started = Instant::now();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(self.input, partition, Offset::Offset(offset))
            .doing("listing the offsets to commit")?;
        // ANCHOR: pipeline_commit
        match self.pipeline {
            Pipeline::AtLeastOnce => {
                // The outputs acknowledged first, then the offsets.
                produce::drain_watched(producer, Duration::from_secs(60), watch)?;
                consumer
                    .commit(&offsets, CommitMode::Sync)
                    .doing("committing the consumed offsets")?;
            }
            Pipeline::ExactlyOnce => {
                let metadata = consumer.group_metadata().ok_or_else(|| {
                    Error::BadConfig(
                        "the processor's consumer has no group metadata".into(),
                    )
                })?;
                watch.patiently(
                    "adding the consumed offsets to the transaction",
                    Duration::from_secs(30),
                    |t| producer.send_offsets_to_transaction(&offsets, &metadata, t),
                )?;
                produce::commit_watched(producer, watch)?;
                producer
                    .begin_transaction()
                    .doing("beginning a transaction")?;
            }
        }
        // ANCHOR_END: pipeline_commit
        drop(offsets);
        self.seconds += started.elapsed().as_secs_f64();
        self.done_us.push(shared.stamp());
        Ok(())
    }
}

fn stalled(stage: &'static str, have: u64, total: u64) -> Error {
    Error::Stalled {
        stage,
        waited: IDLE_LIMIT,
        detail: format!("had {have} of {total} records, then nothing new"),
    }
}

/// What the downstream reader saw.
struct Read {
    latency: LatencyHistogram,
    distinct: u64,
    duplicates: u64,
}

/// The id and send time of a record's value (the padding is skipped).
#[derive(Deserialize)]
struct Stamp {
    id: u64,
    sent_at_us: u64,
}

/// The downstream reader: `read_committed`, from the beginning of the output,
/// no group. Times each record of the steady stream from its upstream send.
fn read_downstream(
    bootstrap: &str,
    config: rdkafka::ClientConfig,
    output: &str,
    shared: &Shared,
) -> Result<Read> {
    let consumer: BaseConsumer =
        config.create().doing("creating the downstream reader")?;
    read::assign_from_beginning(&consumer, output, 1)?;
    let mut watch = BrokerWatch::new(bootstrap, format!("reading {output}"));
    let mut seen = vec![0u8; shared.total as usize];
    let mut read = Read {
        latency: LatencyHistogram::new(),
        distinct: 0,
        duplicates: 0,
    };
    let mut backlog_read = 0;
    let mut last_record = Instant::now();
    while read.distinct < shared.total {
        let message = match consumer.poll(Duration::from_millis(50)) {
            None => {
                watch.check()?;
                let quiet = last_record.elapsed();
                if quiet > IDLE_LIMIT
                    || (shared.processor_gone.load(Ordering::SeqCst)
                        && quiet > Duration::from_secs(5))
                {
                    break; // what is missing is counted as missing
                }
                continue;
            }
            Some(Err(e)) if consume::transient(&e) => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(e)) => return Err(e).doing("reading the output"),
            Some(Ok(m)) => m,
        };
        let at = now_us();
        watch.heard();
        last_record = Instant::now();
        let Some(stamp) = message
            .payload()
            .and_then(|p| serde_json::from_slice::<Stamp>(p).ok())
        else {
            continue;
        };
        let Some(count) = seen.get_mut(stamp.id as usize) else {
            continue;
        };
        *count = count.saturating_add(1);
        if *count > 1 {
            read.duplicates += 1;
            continue;
        }
        read.distinct += 1;
        if stamp.id < shared.backlog {
            backlog_read += 1;
            if backlog_read == shared.backlog {
                shared
                    .backlog_read_us
                    .store(shared.stamp(), Ordering::SeqCst);
            }
        } else {
            read.latency.record_us(at.saturating_sub(stamp.sent_at_us));
        }
    }
    Ok(read)
}
