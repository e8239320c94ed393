//! What to watch per semantic, measured: librdkafka's own statistics,
//! recorded as a time series while a scenario runs.
//!
//! librdkafka keeps counters of everything it does (requests sent, retried,
//! timed out; the idempotent producer's id and epoch; the transaction's state;
//! each partition's high watermark, last stable offset and the consumer's
//! offsets). With `statistics.interval.ms` set it emits them as one JSON
//! document per interval, and rdkafka hands that to the client context's
//! [`ClientContext::stats_raw`] when the client is polled.
//!
//! A [`Monitor`] turns statistics on for the clients it is asked to watch,
//! keeps the few counters that tell the semantics apart ([`Counters`], not
//! the whole JSON), and stamps each report with the time since the monitor
//! started. [`Monitor::during`] watches every client the lab builds through
//! [`Semantic::producer_config`] and [`Semantic::consumer_config`] while a
//! scenario runs on the current thread, so the scenarios need no change:
//!
//! ```no_run
//! use lab::faults::lost_ack::{lost_ack, LostAckOptions};
//! use lab::monitor::Monitor;
//! use lab::{Cluster, Semantic};
//! let cluster = Cluster::from_env()?;
//! let monitor = Monitor::new();
//! let outcome = monitor.during(|| {
//!     lost_ack(&cluster, Semantic::AtLeastOnce, &LostAckOptions::new(2000, 1))
//! })?;
//! let recording = monitor.recording();
//! println!("retries: {}", recording.clients[0].totals().retries);
//! # Ok::<(), lab::Error>(())
//! ```
//!
//! [`open_transaction_lag`] is scenario E4 again with a read_committed reader
//! that keeps reading (and committing) across the commit, so its statistics
//! show it held at the last stable offset while the transaction is open.
//!
//! Not every fact is a librdkafka counter: a transaction aborted by the
//! coordinator (fencing, timeout) never passes through the client's abort, so
//! the lab counts aborted transactions from its own events (what each
//! scenario's report says), and records the `txn_state` transitions beside.
//!
//! [`Semantic::producer_config`]: crate::Semantic::producer_config
//! [`Semantic::consumer_config`]: crate::Semantic::consumer_config

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};

use crate::charts::distinct;
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::eos_stress::{self, EosStressOptions};
use crate::faults::Seeded;
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::semantics::Semantic;

/// How often the lab asks librdkafka for statistics: often enough to see a
/// retry or a transaction's few seconds, rare enough to cost nothing.
pub const INTERVAL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------
// One statistics report, reduced to what matters.
// ---------------------------------------------------------------------------

/// The counters of one statistics report that tell the semantics apart.
/// librdkafka keeps its request counters per broker connection; these are
/// summed over the connections (the bootstrap, the learned brokers, and the
/// logical group and transaction coordinators).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Records waiting in the producer's queues (`msg_cnt`).
    pub queued: u64,
    /// Requests sent (brokers' `tx`).
    pub requests: u64,
    /// Records handed to the producer so far (partitions' `msgs`).
    pub records_produced: u64,
    /// Records sent to brokers, each time it was sent (`txmsgs`): a record
    /// whose request timed out is put back in the queue and sent again in a
    /// new request, which `txretries` does not count but this does.
    pub records_transmitted: u64,
    /// Requests sent again after a failure or a timeout (brokers' `txretries`).
    pub retries: u64,
    /// Requests that got no answer in time (brokers' `req_timeouts`):
    /// `socket.timeout.ms` for a request in flight.
    pub request_timeouts: u64,
    /// Requests that could not be sent (brokers' `txerrs`).
    pub transmit_errors: u64,
    /// Responses that failed to arrive whole (brokers' `rxerrs`).
    pub receive_errors: u64,
    /// Connections lost (brokers' `disconnects`).
    pub disconnects: u64,
    /// Requests sent and not answered yet (brokers' `waitresp_cnt`).
    pub in_flight: u64,
    /// EndTxn requests sent: one per commit or abort, plus retries.
    pub end_txn_requests: u64,
    /// The idempotent or transactional producer's state (`eos`), if any.
    pub eos: Option<EosState>,
    /// Every partition the client knows, except librdkafka's internal
    /// "unassigned" one.
    pub partitions: Vec<PartitionCounters>,
}

/// The `eos` object: the idempotent producer's id and epoch, the transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EosState {
    /// e.g. `Assigned`, `RequestPID`, `FatalError`.
    pub idemp_state: String,
    /// e.g. `Ready`, `InTransaction`, `CommittingTransaction`, `AbortableError`.
    pub txn_state: String,
    pub producer_id: i64,
    pub producer_epoch: i64,
    /// Producer id (and epoch) assignments since the client started: 1 after
    /// `init_transactions`, more after each epoch bump.
    pub epoch_cnt: i64,
}

/// One partition's offsets as the client saw them. librdkafka writes
/// -1001 (`RD_KAFKA_OFFSET_INVALID`) for an offset it does not know yet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCounters {
    pub topic: String,
    pub partition: i32,
    /// The high watermark: the end of what is replicated (`hi_offset`).
    pub hi_offset: i64,
    /// The last stable offset: where the first open transaction begins, what
    /// a read_committed consumer may read up to (`ls_offset`).
    pub ls_offset: i64,
    /// One past the last record handed to the application (`app_offset`).
    pub app_offset: i64,
    /// The offset the consumer would commit next (`stored_offset`).
    pub stored_offset: i64,
    pub committed_offset: i64,
    /// librdkafka's lag: the end offset minus the committed offset, where the
    /// end is the last stable offset for read_committed and the high
    /// watermark otherwise; -1 while either is unknown.
    pub consumer_lag: i64,
    /// The same, from the stored offset.
    pub consumer_lag_stored: i64,
    /// Records waiting to be produced to this partition (`msgq_cnt`).
    pub queued: i64,
}

impl PartitionCounters {
    /// How far this consumer's stored position is behind the high watermark,
    /// whatever its isolation level lets it see (None while unknown).
    pub fn behind_high_watermark(&self) -> Option<i64> {
        // Once the partition is let go (the consumer closing), only the
        // committed offset is left.
        let position = self.stored_offset.max(self.committed_offset);
        (self.hi_offset >= 0 && position >= 0)
            .then(|| (self.hi_offset - position).max(0))
    }

    /// Offsets between the last stable offset and the high watermark: the
    /// records an open transaction holds back from read_committed readers.
    pub fn held_back(&self) -> Option<i64> {
        (self.hi_offset >= 0 && self.ls_offset >= 0)
            .then(|| (self.hi_offset - self.ls_offset).max(0))
    }
}

/// One statistics report: which client sent it, and its counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// librdkafka's handle name, e.g. `rdkafka#producer-3`.
    pub name: String,
    /// The client's `client.id`.
    pub client_id: String,
    /// `producer` or `consumer`.
    pub kind: String,
    pub counters: Counters,
}

impl Report {
    /// Reads one statistics JSON document as librdkafka emits it. Fields the
    /// lab does not use are ignored, and absent ones count as zero, so a
    /// librdkafka that adds or drops a field does not break the recording.
    pub fn parse(json: &[u8]) -> Result<Report> {
        let raw: raw::Stats = serde_json::from_slice(json).map_err(|e| {
            Error::BadConfig(format!(
                "this is not librdkafka statistics JSON ({e}); it is what a client \
                 with statistics.interval.ms > 0 hands to ClientContext::stats_raw"
            ))
        })?;
        let mut c = Counters {
            queued: raw.msg_cnt,
            records_transmitted: raw.txmsgs,
            eos: raw.eos.map(|e| EosState {
                idemp_state: e.idemp_state,
                txn_state: e.txn_state,
                producer_id: e.producer_id,
                producer_epoch: e.producer_epoch,
                epoch_cnt: e.epoch_cnt,
            }),
            ..Counters::default()
        };
        for b in raw.brokers.values() {
            c.requests += b.tx;
            c.retries += b.txretries;
            c.request_timeouts += b.req_timeouts;
            c.transmit_errors += b.txerrs;
            c.receive_errors += b.rxerrs;
            c.disconnects += b.disconnects;
            c.in_flight += b.waitresp_cnt.max(0) as u64;
            c.end_txn_requests +=
                b.req.get("EndTxn").copied().unwrap_or(0).max(0) as u64;
        }
        for (topic, t) in &raw.topics {
            for p in t.partitions.values().filter(|p| p.partition >= 0) {
                // The unassigned partition -1 counts a record again while it
                // waits for its partition's leader: left out.
                c.records_produced += p.msgs;
                c.partitions.push(PartitionCounters {
                    topic: topic.clone(),
                    partition: p.partition,
                    hi_offset: p.hi_offset,
                    ls_offset: p.ls_offset,
                    app_offset: p.app_offset,
                    stored_offset: p.stored_offset,
                    committed_offset: p.committed_offset,
                    consumer_lag: p.consumer_lag,
                    consumer_lag_stored: p.consumer_lag_stored,
                    queued: p.msgq_cnt,
                });
            }
        }
        // JSON objects have no order; a stable one makes equal reports equal.
        c.partitions
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(Report {
            name: raw.name,
            client_id: raw.client_id,
            kind: raw.kind,
            counters: c,
        })
    }
}

/// The shape of librdkafka's statistics JSON, the fields the lab reads.
mod raw {
    use std::collections::HashMap;

    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Stats {
        pub name: String,
        pub client_id: String,
        #[serde(rename = "type")]
        pub kind: String,
        pub msg_cnt: u64,
        pub txmsgs: u64,
        pub brokers: HashMap<String, Broker>,
        pub topics: HashMap<String, Topic>,
        pub eos: Option<Eos>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Broker {
        pub tx: u64,
        pub txretries: u64,
        pub req_timeouts: u64,
        pub txerrs: u64,
        pub rxerrs: u64,
        pub disconnects: u64,
        pub waitresp_cnt: i64,
        pub req: HashMap<String, i64>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Topic {
        pub partitions: HashMap<String, Partition>,
    }

    #[derive(Deserialize)]
    #[serde(default)]
    pub struct Partition {
        pub partition: i32,
        pub hi_offset: i64,
        pub ls_offset: i64,
        pub app_offset: i64,
        pub stored_offset: i64,
        pub committed_offset: i64,
        pub consumer_lag: i64,
        pub consumer_lag_stored: i64,
        pub msgq_cnt: i64,
        pub msgs: u64,
    }

    impl Default for Partition {
        fn default() -> Partition {
            const INVALID: i64 = -1001;
            Partition {
                partition: -1,
                hi_offset: INVALID,
                ls_offset: INVALID,
                app_offset: INVALID,
                stored_offset: INVALID,
                committed_offset: INVALID,
                consumer_lag: -1,
                consumer_lag_stored: -1,
                msgq_cnt: 0,
                msgs: 0,
            }
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Eos {
        pub idemp_state: String,
        pub txn_state: String,
        pub producer_id: i64,
        pub producer_epoch: i64,
        pub epoch_cnt: i64,
    }
}

// ---------------------------------------------------------------------------
// The recording.
// ---------------------------------------------------------------------------

/// The counters of one report, stamped with the time since the monitor started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at_seconds: f64,
    pub counters: Counters,
}

/// Everything one client reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientSeries {
    /// What the client is in the scenario, e.g. `producer 1`,
    /// `consumer 1`, `read_committed reader`.
    pub role: String,
    /// `producer` or `consumer`.
    pub kind: String,
    /// When the client was configured, in seconds since the monitor started.
    pub created_at_seconds: f64,
    /// One sample per report that differed from the one before (an idle
    /// client repeats itself; the last report is always kept).
    pub samples: Vec<Sample>,
}

/// A client's counters at the end of a run (they only grow), and the largest
/// gauges seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub retries: u64,
    /// Records sent more than once (`txmsgs` beyond the records produced).
    pub records_resent: u64,
    pub request_timeouts: u64,
    pub transmit_errors: u64,
    pub disconnects: u64,
    pub end_txn_requests: u64,
    /// Producer id assignments (`epoch_cnt`); 0 for a plain producer.
    pub producer_id_assignments: i64,
    /// The last producer epoch seen (-1: not idempotent).
    pub producer_epoch: i64,
    /// The largest librdkafka `consumer_lag` seen, summed over partitions.
    pub max_consumer_lag: i64,
    /// The largest distance from the stored offsets to the high watermarks.
    pub max_behind_high_watermark: i64,
}

impl ClientSeries {
    /// The last counters reported (None: the client never reported).
    pub fn last(&self) -> Option<&Counters> {
        self.samples.last().map(|s| &s.counters)
    }

    /// The counters at the end, and the largest lags seen.
    pub fn totals(&self) -> Totals {
        let max = |f: fn(&Counters) -> u64| {
            self.samples
                .iter()
                .map(|s| f(&s.counters))
                .max()
                .unwrap_or(0)
        };
        let eos = self.last().and_then(|c| c.eos.clone());
        let sum_lag = |c: &Counters, f: fn(&PartitionCounters) -> Option<i64>| {
            c.partitions.iter().filter_map(f).sum::<i64>()
        };
        Totals {
            requests: max(|c| c.requests),
            retries: max(|c| c.retries),
            records_resent: max(|c| {
                c.records_transmitted.saturating_sub(c.records_produced)
            }),
            request_timeouts: max(|c| c.request_timeouts),
            transmit_errors: max(|c| c.transmit_errors),
            disconnects: max(|c| c.disconnects),
            end_txn_requests: max(|c| c.end_txn_requests),
            producer_id_assignments: eos.as_ref().map_or(0, |e| e.epoch_cnt),
            producer_epoch: eos.as_ref().map_or(-1, |e| e.producer_epoch),
            max_consumer_lag: self
                .samples
                .iter()
                .map(|s| {
                    sum_lag(&s.counters, |p| {
                        (p.consumer_lag >= 0).then_some(p.consumer_lag)
                    })
                })
                .max()
                .unwrap_or(0),
            max_behind_high_watermark: self
                .samples
                .iter()
                .map(|s| sum_lag(&s.counters, PartitionCounters::behind_high_watermark))
                .max()
                .unwrap_or(0),
        }
    }

    /// The transaction states in the order they were seen, each with the
    /// time it was first reported (a state shorter than the interval may be
    /// missed).
    pub fn txn_states(&self) -> Vec<(f64, String)> {
        let mut out: Vec<(f64, String)> = Vec::new();
        for s in &self.samples {
            if let Some(eos) = &s.counters.eos {
                if out
                    .last()
                    .map(|(_, st)| st != &eos.txn_state)
                    .unwrap_or(true)
                {
                    out.push((s.at_seconds, eos.txn_state.clone()));
                }
            }
        }
        out
    }

    /// The partition `(topic, partition)` of every sample that has it.
    pub fn partition_series(&self, partition: i32) -> Vec<(f64, &PartitionCounters)> {
        self.samples
            .iter()
            .filter_map(|s| {
                s.counters
                    .partitions
                    .iter()
                    .find(|p| p.partition == partition)
                    .map(|p| (s.at_seconds, p))
            })
            .collect()
    }
}

/// Something the lab itself did or saw, on the monitor's clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at_seconds: f64,
    pub what: String,
}

/// What a monitor recorded: every watched client's series, and the lab's events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// `statistics.interval.ms`.
    pub interval_ms: u64,
    pub clients: Vec<ClientSeries>,
    pub events: Vec<Event>,
}

impl Recording {
    /// The clients whose role starts with `role` (e.g. `producer`).
    pub fn clients_named<'a>(
        &'a self,
        role: &'a str,
    ) -> impl Iterator<Item = &'a ClientSeries> {
        self.clients
            .iter()
            .filter(move |c| c.role.starts_with(role))
    }

    /// The time of the first event that says `what` exactly.
    pub fn event_at(&self, what: &str) -> Option<f64> {
        self.events
            .iter()
            .find(|e| e.what == what)
            .map(|e| e.at_seconds)
    }
}

// ---------------------------------------------------------------------------
// The monitor.
// ---------------------------------------------------------------------------

/// Turns statistics on for the clients it watches and records their reports.
/// Cheap to clone (all clones record into one recording).
#[derive(Clone, Debug)]
pub struct Monitor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: u64,
    started: Instant,
    interval: Duration,
    clients: Mutex<Vec<Watched>>,
    events: Mutex<Vec<Event>>,
}

#[derive(Debug)]
struct Watched {
    client_id: String,
    /// The role it was watched as, without its number.
    role: String,
    series: ClientSeries,
    /// The last report, kept even when equal to the one before, so the series
    /// ends at the client's last word.
    last: Option<Sample>,
}

/// Which monitor a `client.id` reports to: statistics arrive on whatever
/// thread polls the client, carrying only its `client.id`.
fn registry() -> &'static Mutex<HashMap<String, Weak<Inner>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Inner>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

thread_local! {
    /// The monitor [`Monitor::during`] made active on this thread.
    static ACTIVE: RefCell<Option<Monitor>> = const { RefCell::new(None) };
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor::new()
    }
}

impl Monitor {
    /// A monitor asking for statistics every [`INTERVAL`].
    pub fn new() -> Monitor {
        Monitor::with_interval(INTERVAL)
    }

    /// A monitor asking for statistics every `interval` (at least 1 ms).
    pub fn with_interval(interval: Duration) -> Monitor {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Monitor {
            inner: Arc::new(Inner {
                id: NEXT.fetch_add(1, Ordering::Relaxed),
                started: Instant::now(),
                interval: interval.max(Duration::from_millis(1)),
                clients: Mutex::new(Vec::new()),
                events: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Seconds since this monitor started: the clock of every sample and event.
    pub fn elapsed(&self) -> f64 {
        self.inner.started.elapsed().as_secs_f64()
    }

    // ANCHOR: watch
    /// Turns statistics on for a client about to be created from `config`,
    /// and gives it a `client.id` by which its reports find this monitor.
    /// `role` names it in the recording (a number is added: `producer 1`).
    pub fn watch(&self, config: &mut ClientConfig, role: &str) {
        let mut clients = lock(&self.inner.clients);
        let n = clients.iter().filter(|c| c.role == role).count() + 1;
        let client_id = format!("lab-monitor-{}-{}", self.inner.id, clients.len() + 1);
        // librdkafka builds the JSON on its own thread every interval and
        // queues it; the callback runs when the application polls the client.
        config.set(
            "statistics.interval.ms",
            self.inner.interval.as_millis().to_string(),
        );
        config.set("client.id", &client_id);
        registry()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client_id.clone(), Arc::downgrade(&self.inner));
        clients.push(Watched {
            client_id,
            role: role.to_string(),
            series: ClientSeries {
                role: format!("{role} {n}"),
                kind: String::new(),
                created_at_seconds: self.elapsed(),
                samples: Vec::new(),
            },
            last: None,
        });
    }
    // ANCHOR_END: watch

    /// Notes something the lab did, on the monitor's clock.
    pub fn event(&self, what: impl Into<String>) {
        let at_seconds = self.elapsed();
        lock(&self.inner.events).push(Event {
            at_seconds,
            what: what.into(),
        });
    }

    /// Runs `f` with this monitor active on the current thread: every client
    /// the lab configures there meanwhile (through `Semantic::producer_config`
    /// and `consumer_config`) is watched. Clients of child processes and of
    /// other threads are not.
    pub fn during<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<Monitor>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                ACTIVE.with(|a| *a.borrow_mut() = previous);
            }
        }
        let previous = ACTIVE.with(|a| a.borrow_mut().replace(self.clone()));
        let _restore = Restore(previous);
        f()
    }

    /// The recording so far. A client that never reported (it lived less
    /// than an interval without being polled) is left out.
    pub fn recording(&self) -> Recording {
        let clients = lock(&self.inner.clients)
            .iter()
            .filter_map(|w| {
                let last = w.last.as_ref()?;
                let mut series = w.series.clone();
                if series.samples.last() != Some(last) {
                    series.samples.push(last.clone());
                }
                Some(series)
            })
            .collect();
        Recording {
            interval_ms: self.inner.interval.as_millis() as u64,
            clients,
            events: lock(&self.inner.events).clone(),
        }
    }

    /// The last counters the first client watched as `role` (e.g.
    /// `read_committed reader`) reported.
    pub fn last_of(&self, role: &str) -> Option<Counters> {
        lock(&self.inner.clients)
            .iter()
            .find(|w| w.role == role)
            .and_then(|w| w.last.as_ref().map(|s| s.counters.clone()))
    }

    /// Polls `producer` for a little over one statistics interval if this
    /// thread's monitor watches it, so its last counters (e.g. the records
    /// sent again after a timeout) are reported before it is dropped.
    pub(crate) fn settle<C: rdkafka::producer::ProducerContext>(
        producer: &rdkafka::producer::BaseProducer<C>,
    ) {
        let interval = ACTIVE.with(|a| a.borrow().as_ref().map(|m| m.inner.interval));
        if let Some(interval) = interval {
            let until = Instant::now() + interval * 3 / 2;
            while Instant::now() < until {
                producer.poll(Duration::from_millis(10));
            }
        }
    }

    fn file(&self, report: Report) {
        let at_seconds = self.elapsed();
        let mut clients = lock(&self.inner.clients);
        let Some(w) = clients.iter_mut().find(|w| w.client_id == report.client_id)
        else {
            return;
        };
        w.series.kind = report.kind;
        let sample = Sample {
            at_seconds,
            counters: report.counters,
        };
        let changed =
            w.series.samples.last().map(|s| &s.counters) != Some(&sample.counters);
        if changed {
            w.series.samples.push(sample.clone());
        }
        w.last = Some(sample);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
        for w in lock(&self.clients).iter() {
            registry.remove(&w.client_id);
        }
    }
}

/// Runs `f` with no monitor active on this thread (for a configuration built
/// only to check its settings).
pub(crate) fn unwatched<T>(f: impl FnOnce() -> T) -> T {
    let previous = ACTIVE.with(|a| a.borrow_mut().take());
    let out = f();
    ACTIVE.with(|a| *a.borrow_mut() = previous);
    out
}

/// Watches a client about to be created from `config` if a monitor is active
/// on this thread ([`Monitor::during`]). The lab's configs call this.
pub(crate) fn watch_if_active(config: &mut ClientConfig, role: &str) {
    ACTIVE.with(|a| {
        if let Some(monitor) = a.borrow().as_ref() {
            monitor.watch(config, role);
        }
    });
}

// ANCHOR: deliver
/// Files one statistics report with the monitor watching its client. The
/// lab's client contexts call this from `ClientContext::stats_raw`; a report
/// of a client no monitor watches (or one that does not parse) is dropped.
pub fn deliver(json: &[u8]) {
    let Ok(report) = Report::parse(json) else {
        return;
    };
    let monitor = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&report.client_id)
        .and_then(Weak::upgrade);
    if let Some(inner) = monitor {
        Monitor { inner }.file(report);
    }
}
// ANCHOR_END: deliver

/// The context of the lab's consumers: statistics go to [`deliver`], the rest
/// is rdkafka's default behaviour.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatsContext;

impl ClientContext for StatsContext {
    fn stats_raw(&self, statistics: &[u8]) {
        deliver(statistics);
    }
}

impl ConsumerContext for StatsContext {}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-push; the data is fine.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// Scenario E4 with a reader that keeps reading.
// ---------------------------------------------------------------------------

/// How long [`open_transaction_lag`] keeps its transaction open once every
/// record is written: long enough for a line on a chart, short enough to wait.
pub const HOLD_OPEN: Duration = Duration::from_secs(3);

/// The role of the reader in [`open_transaction_lag`]'s recording.
pub const READER: &str = "read_committed reader";

/// The lab's event names in [`open_transaction_lag`]'s recording.
pub const OPENED: &str = "transaction opened";
pub const COMMITTED: &str = "transaction committed";

/// What [`open_transaction_lag`] recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenTransactionLag {
    /// e.g. `Apache Kafka 4.1.1, 1 broker at 127.0.0.1:9092`.
    pub backend_description: String,
    pub librdkafka_version: String,
    pub topic: String,
    /// Records B wrote before A's transaction, in it, and after it began.
    pub before: u64,
    pub in_transaction: u64,
    pub after: u64,
    /// The reader, producer A (transactional) and producer B (plain), and the
    /// lab's events [`OPENED`] and [`COMMITTED`].
    pub recording: Recording,
}

impl OpenTransactionLag {
    /// The reader's series.
    pub fn reader(&self) -> Option<&ClientSeries> {
        self.recording.clients_named(READER).next()
    }

    /// `(opened, committed)` on the monitor's clock.
    pub fn open_window(&self) -> Option<(f64, f64)> {
        Some((
            self.recording.event_at(OPENED)?,
            self.recording.event_at(COMMITTED)?,
        ))
    }

    /// The reader's partition-0 counters reported strictly inside the open
    /// window.
    pub fn reader_while_open(&self) -> Vec<&PartitionCounters> {
        let (Some(reader), Some((from, to))) = (self.reader(), self.open_window())
        else {
            return Vec::new();
        };
        reader
            .partition_series(0)
            .into_iter()
            .filter(|(t, _)| *t > from && *t < to)
            .map(|(_, p)| p)
            .collect()
    }

    /// The reader's last partition-0 counters.
    pub fn reader_at_end(&self) -> Option<&PartitionCounters> {
        self.reader()?.partition_series(0).last().map(|(_, p)| *p)
    }
}

/// Scenario E4 on one partition, watched through librdkafka's statistics:
/// a read_committed reader (a consumer group member that commits what it
/// reads) is started first; producer B writes records, transactional producer
/// A opens a transaction and writes records, B writes more, A holds its
/// transaction open for [`HOLD_OPEN`], then commits. The reader keeps going
/// until it has read and committed up to the high watermark. Its statistics
/// show the high watermark running ahead of the last stable offset while the
/// transaction is open, and the reader held at that offset.
pub fn open_transaction_lag(
    cluster: &Cluster,
    options: &EosStressOptions,
) -> Result<OpenTransactionLag> {
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    if options.records < 10 {
        return Err(Error::BadConfig(format!(
            "the open-transaction run needs at least 10 records, not {}",
            options.records
        )));
    }
    let records = options.records;
    let topic = cluster.fresh_name("exactly-once-open-lag");
    cluster.create_topic(&topic, 1)?;
    let before = records / 10;
    let in_transaction = Seeded::new(options.seed).in_range(records / 5..records / 2);
    let after = records - before - in_transaction;
    let monitor = Monitor::new();

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let mut config = Semantic::ExactlyOnce.consumer_config(
            cluster.bootstrap(),
            &cluster.fresh_name("open-lag-reader"),
            &[],
        );
        monitor.watch(&mut config, READER);
        let consumer: BaseConsumer<StatsContext> = config
            .create_with_context(StatsContext)
            .doing("creating the read_committed reader")?;
        consumer
            .subscribe(&[&topic])
            .doing(format!("subscribing to {topic}"))?;
        let stop = stop.clone();
        std::thread::spawn(move || read_and_commit(consumer, &stop))
    };
    let result = (|| {
        let role = READER;
        let b_log = Arc::new(DeliveryLog::default());
        let mut b_config =
            Semantic::AtLeastOnce.producer_config(cluster.bootstrap(), None, &[])?;
        monitor.watch(&mut b_config, "producer B");
        let b: rdkafka::producer::BaseProducer<LoggingContext> = b_config
            .create_with_context(LoggingContext(b_log))
            .doing("creating producer B")?;
        let mut a_config = Semantic::ExactlyOnce.producer_config(
            cluster.bootstrap(),
            Some(&format!("{topic}-producer-a")),
            &[],
        )?;
        monitor.watch(&mut a_config, "producer A");
        let a =
            eos_stress::init_transactional(a_config, Arc::new(DeliveryLog::default()))?;

        eos_stress::write_acknowledged(&b, &topic, 0..before)?;
        // A baseline: the reader has committed everything there is.
        wait_for(&monitor, role, |p| p.committed_offset == before as i64)?;
        monitor.event(OPENED);
        eos_stress::write_open(&a, &topic, before..before + in_transaction)?;
        eos_stress::write_acknowledged(&b, &topic, before + in_transaction..records)?;
        hold_polling(&a, &b, HOLD_OPEN);
        produce::commit(&a)?;
        monitor.event(COMMITTED);
        // The commit marker takes one offset: the reader ends at the high watermark.
        wait_for(&monitor, role, |p| {
            p.hi_offset > records as i64 && p.committed_offset == p.hi_offset
        })?;
        hold_polling(&a, &b, Duration::from_secs(1));
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let read = reader
        .join()
        .map_err(|_| Error::BadConfig("the read_committed reader panicked".into()))?;
    result?;
    read?;
    Ok(OpenTransactionLag {
        backend_description: cluster.describe(),
        librdkafka_version: crate::cluster::librdkafka_version(),
        topic,
        before,
        in_transaction,
        after,
        recording: monitor.recording(),
    })
}

/// The reader's loop: poll, commit what was read, until told to stop.
fn read_and_commit(
    consumer: BaseConsumer<StatsContext>,
    stop: &AtomicBool,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(_)) => {
                // Drain what is already fetched, then commit it in one go.
                while let Some(Ok(_)) = consumer.poll(Duration::ZERO) {}
                consumer
                    .commit_consumer_state(CommitMode::Sync)
                    .doing("committing the reader's offsets")?;
            }
            Some(Err(e)) if crate::consume::transient(&e) => {}
            Some(Err(e)) => return Err(e).doing("reading"),
            None => {}
        }
    }
    Ok(())
}

/// Polls both producers for `how_long` (their statistics arrive when polled).
fn hold_polling<C: rdkafka::producer::ProducerContext>(
    a: &rdkafka::producer::BaseProducer<C>,
    b: &rdkafka::producer::BaseProducer<LoggingContext>,
    how_long: Duration,
) {
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        a.poll(Duration::from_millis(20));
        b.poll(Duration::ZERO);
    }
}

/// Waits until `role`'s last report shows partition 0 as `wanted` (30 s at most).
fn wait_for(
    monitor: &Monitor,
    role: &str,
    wanted: impl Fn(&PartitionCounters) -> bool,
) -> Result<()> {
    let limit = Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    loop {
        let last = monitor.last_of(role);
        let partition = last
            .as_ref()
            .and_then(|c| c.partitions.iter().find(|p| p.partition == 0));
        if partition.is_some_and(&wanted) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Stalled {
                stage: "open-transaction run",
                waited: limit,
                detail: format!("the {role}'s statistics never showed the awaited offsets: last {partition:?}"),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The statistics every producer of a run reported, summed: what a bar chart
/// shows per scenario.
pub fn producer_totals(recording: &Recording) -> Totals {
    let mut sum = Totals {
        producer_epoch: -1,
        ..Totals::default()
    };
    for c in recording.clients.iter().filter(|c| c.kind == "producer") {
        let t = c.totals();
        sum.requests += t.requests;
        sum.retries += t.retries;
        sum.records_resent += t.records_resent;
        sum.request_timeouts += t.request_timeouts;
        sum.transmit_errors += t.transmit_errors;
        sum.disconnects += t.disconnects;
        sum.end_txn_requests += t.end_txn_requests;
        sum.producer_id_assignments += t.producer_id_assignments;
        sum.producer_epoch = sum.producer_epoch.max(t.producer_epoch);
    }
    sum
}

// ---------------------------------------------------------------------------
// The scenarios, monitored.
// ---------------------------------------------------------------------------

/// A scenario recorded with its clients' statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MonitoredScenario {
    /// `lab::run`: produce, then consume, no fault.
    HappyPath,
    /// Scenario A: the chaos proxy swallows one Produce response.
    LostAck,
    /// E1: a zombie producer is fenced by its successor.
    ZombieFenced,
    /// E2: the answer to a commit (EndTxn) is lost.
    LostEndTxn,
    /// E3: a producer outlives its transaction.
    TransactionTimeout,
}

impl MonitoredScenario {
    /// What each semantic is run under: every semantic on the happy path and
    /// under a lost ack, and exactly-once under the transactional faults.
    pub fn plan() -> Vec<(MonitoredScenario, Semantic)> {
        let mut plan = Vec::new();
        for scenario in [MonitoredScenario::HappyPath, MonitoredScenario::LostAck] {
            plan.extend(Semantic::ALL.map(|s| (scenario, s)));
        }
        for scenario in [
            MonitoredScenario::ZombieFenced,
            MonitoredScenario::LostEndTxn,
            MonitoredScenario::TransactionTimeout,
        ] {
            plan.push((scenario, Semantic::ExactlyOnce));
        }
        plan
    }

    pub fn label(self) -> &'static str {
        match self {
            MonitoredScenario::HappyPath => "happy path",
            MonitoredScenario::LostAck => "A: lost ack",
            MonitoredScenario::ZombieFenced => "E1: zombie fenced",
            MonitoredScenario::LostEndTxn => "E2: lost EndTxn",
            MonitoredScenario::TransactionTimeout => "E3: transaction timeout",
        }
    }
}

/// One monitored run: what the audit counted, what the lab's own events say,
/// and what librdkafka's statistics say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitoredRun {
    pub scenario: MonitoredScenario,
    pub semantic: Semantic,
    /// e.g. `Apache Kafka 4.1.1, 1 broker at 127.0.0.1:9092, through the chaos proxy`.
    pub backend_description: String,
    pub librdkafka_version: String,
    pub records: u64,
    /// From the audit, by record id.
    pub lost: u64,
    pub duplicated: u64,
    /// Records of aborted transactions in the log (only read_uncommitted sees them).
    pub aborted_in_log: u64,
    /// Transactions the coordinator aborted, from the scenario's own report
    /// (a fenced or timed-out producer never calls abort, so librdkafka has
    /// no counter for it).
    pub transactions_aborted: u64,
    /// Every producer's statistics, summed.
    pub producers: Totals,
    /// The largest librdkafka `consumer_lag` of the run's consumers.
    pub consumer_max_lag: i64,
    /// Each producer's transaction states in order, e.g.
    /// `producer 1: Init > Ready > InTransaction`.
    pub txn_states: Vec<String>,
    pub recording: Recording,
}

/// Runs `scenario` for `semantic` with every client the lab builds watched.
pub fn run_monitored(
    cluster: &Cluster,
    scenario: MonitoredScenario,
    semantic: Semantic,
    records: u64,
    seed: u64,
) -> Result<MonitoredRun> {
    use crate::faults::{eos_stress as e, lost_ack};
    use MonitoredScenario::*;
    if scenario != HappyPath && scenario != LostAck && semantic != Semantic::ExactlyOnce
    {
        return Err(Error::BadConfig(format!(
            "{} is a scenario of exactly-once, not of {semantic}",
            scenario.label()
        )));
    }
    let monitor = Monitor::new();
    let stress = EosStressOptions::new(records, seed);
    let (outcome, transactions_aborted) = monitor.during(|| -> Result<_> {
        Ok(match scenario {
            HappyPath => (
                crate::run(cluster, semantic, &crate::RunOptions::records(records))?,
                0,
            ),
            LostAck => {
                let options = lost_ack::LostAckOptions::new(records, seed);
                (lost_ack::lost_ack(cluster, semantic, &options)?, 0)
            }
            ZombieFenced => {
                let r = e::zombie_fenced_report(cluster, &stress)?;
                (r.outcome, r.zombie_error.is_some() as u64)
            }
            LostEndTxn => (e::lost_end_txn_report(cluster, &stress)?.outcome, 0),
            TransactionTimeout => {
                let r = e::transaction_timeout_report(cluster, &stress)?;
                (r.outcome, r.commit_error.is_some() as u64)
            }
        })
    })?;
    let recording = monitor.recording();
    let txn_states = recording
        .clients
        .iter()
        .filter(|c| c.kind == "producer")
        .filter_map(|c| {
            let states = c.txn_states();
            (!states.is_empty()).then(|| {
                let names: Vec<String> = states.into_iter().map(|(_, s)| s).collect();
                format!("{}: {}", c.role, names.join(" > "))
            })
        })
        .collect();
    Ok(MonitoredRun {
        scenario,
        semantic,
        backend_description: outcome.backend_description.clone(),
        librdkafka_version: outcome.librdkafka_version.clone(),
        records,
        lost: outcome.counts.lost,
        duplicated: outcome.counts.duplicated,
        aborted_in_log: outcome.counts.aborted_in_log,
        transactions_aborted,
        producers: producer_totals(&recording),
        consumer_max_lag: recording
            .clients
            .iter()
            .filter(|c| c.kind == "consumer")
            .map(|c| c.totals().max_consumer_lag)
            .max()
            .unwrap_or(0),
        txn_states,
        recording,
    })
}

/// What the chapter on monitoring shows: every planned run, and E4 watched
/// from a read_committed reader.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitoringRecord {
    pub runs: Vec<MonitoredRun>,
    pub open_transaction: OpenTransactionLag,
}

/// Measures [`MonitoredScenario::plan`] and [`open_transaction_lag`] on
/// `cluster`; `progress` is told each run's name as it starts.
pub fn measure(
    cluster: &Cluster,
    records: u64,
    seed: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<MonitoringRecord> {
    let mut runs = Vec::new();
    for (scenario, semantic) in MonitoredScenario::plan() {
        progress(&format!("{} / {semantic}", scenario.label()));
        runs.push(run_monitored(cluster, scenario, semantic, records, seed)?);
    }
    progress("E4: open transaction, read_committed reader");
    let open_transaction =
        open_transaction_lag(cluster, &EosStressOptions::new(records, seed))?;
    Ok(MonitoringRecord {
        runs,
        open_transaction,
    })
}

/// The recorded runs as the book's table: one row per run, the audit's
/// counts beside the statistics that explain them.
pub fn markdown(record: &MonitoringRecord) -> String {
    let mut out = String::from(
        "| scenario | semantic | lost | duplicated | records sent again | `req_timeouts` \
         | `txretries` | `txerrs` | `EndTxn` requests | `epoch_cnt` | highest `producer_epoch` \
         | transactions aborted (lab) | consumer `consumer_lag` max |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &record.runs {
        let p = &r.producers;
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario.label(),
            r.semantic,
            r.lost,
            r.duplicated,
            p.records_resent,
            p.request_timeouts,
            p.retries,
            p.transmit_errors,
            p.end_txn_requests,
            p.producer_id_assignments,
            if p.producer_epoch < 0 {
                "-".to_string()
            } else {
                p.producer_epoch.to_string()
            },
            r.transactions_aborted,
            if r.recording.clients.iter().any(|c| c.kind == "consumer") {
                r.consumer_max_lag.to_string()
            } else {
                "(no consumer)".into()
            }
        );
    }
    let backends: Vec<&str> = distinct(record.runs.iter().map(|r| {
        r.backend_description
            .trim_end_matches(", through the chaos proxy")
    }));
    let versions = distinct(record.runs.iter().map(|r| r.librdkafka_version.as_str()));
    let records = distinct(record.runs.iter().map(|r| r.records));
    let intervals = distinct(record.runs.iter().map(|r| r.recording.interval_ms));
    out += &format!(
        "\nMeasured on {} (A and E2 through the lab's chaos proxy), librdkafka {}; {} records \
         per run, statistics every {} ms. Records sent again: the producers' `txmsgs` beyond \
         the records they were given (partitions' `msgs`). It, `txretries`, `req_timeouts`, `txerrs` and the EndTxn \
         requests are summed over every producer of the run and every broker connection; \
         `epoch_cnt` is summed over the producers (each counts its own producer id \
         assignments).\n\nTransaction states each producer reported (`eos.txn_state`, in order):\n\n",
        backends.join("; "),
        versions.join(", "),
        records.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
        intervals.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
    );
    for r in record.runs.iter().filter(|r| !r.txn_states.is_empty()) {
        out += &format!(
            "- {} / {}: {}\n",
            r.scenario.label(),
            r.semantic,
            r.txn_states.join("; ")
        );
    }
    out
}

/// E4 as the reader's statistics saw it: the partition before, during and
/// after the open transaction.
pub fn open_transaction_markdown(run: &OpenTransactionLag) -> String {
    let mut out = String::from(
        "| when | `hi_offset` | `ls_offset` | reader's `committed_offset` | behind the high \
         watermark | `consumer_lag` |\n|---|---|---|---|---|---|\n",
    );
    let row = |when: &str, p: Option<&PartitionCounters>| match p {
        Some(p) => format!(
            "| {when} | {} | {} | {} | {} | {} |\n",
            p.hi_offset,
            p.ls_offset,
            p.committed_offset,
            p.behind_high_watermark()
                .map_or("unknown".into(), |v| v.to_string()),
            p.consumer_lag
        ),
        None => format!("| {when} | no report | | | | |\n"),
    };
    let while_open = run.reader_while_open();
    // The report with the most held back: the transaction's records and B's after it.
    let widest = while_open
        .iter()
        .copied()
        .max_by_key(|p| p.held_back().unwrap_or(0));
    let before = run.open_window().and_then(|(from, _)| {
        run.reader()?
            .partition_series(0)
            .into_iter()
            .rev()
            .find(|(t, _)| *t <= from)
            .map(|(_, p)| p)
    });
    out += &row("before the transaction opened", before);
    out += &row("transaction open, everything written", widest);
    out += &row("after the commit, at the end", run.reader_at_end());
    let window = run
        .open_window()
        .map_or("unknown".into(), |(from, to)| format!("{:.1} s", to - from));
    out += &format!(
        "\nOne partition: producer B wrote {} records, producer A opened a transaction and \
         wrote {}, B wrote {} more; A kept the transaction open ({window} in all, of which {} s \
         after the last write) and then committed. Every row is one statistics report of the \
         read_committed reader ({} reports that differed from the one before while the \
         transaction was open). Measured on {}, \
         librdkafka {}.\n",
        run.before,
        run.in_transaction,
        run.after,
        HOLD_OPEN.as_secs(),
        while_open.len(),
        run.backend_description,
        run.librdkafka_version
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCER: &str =
        include_str!("../tests/fixtures/statistics-transactional-producer.json");
    const CONSUMER: &str =
        include_str!("../tests/fixtures/statistics-read-committed-consumer.json");

    #[test]
    fn a_transactional_producers_report_keeps_its_eos_state() {
        let report = Report::parse(PRODUCER.as_bytes()).unwrap();
        assert_eq!(report.kind, "producer");
        let c = &report.counters;
        let eos = c
            .eos
            .as_ref()
            .expect("a transactional producer reports eos");
        assert_eq!(eos.txn_state, "InTransaction");
        assert_eq!(eos.idemp_state, "Assigned");
        assert_eq!(eos.epoch_cnt, 1);
        assert!(eos.producer_id >= 0 && eos.producer_epoch >= 0, "{eos:?}");
        // Summed over the broker and the transaction coordinator connections.
        assert!(c.requests > 0);
        assert_eq!(
            (c.retries, c.request_timeouts, c.transmit_errors),
            (0, 0, 0)
        );
        // The internal "unassigned" partition -1 is left out.
        assert_eq!(
            c.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
            [0, 1]
        );
    }

    #[test]
    fn a_read_committed_consumers_report_shows_the_open_transaction() {
        let report = Report::parse(CONSUMER.as_bytes()).unwrap();
        assert_eq!(report.kind, "consumer");
        assert!(report.counters.eos.is_none());
        let held: Vec<Option<i64>> = report
            .counters
            .partitions
            .iter()
            .map(PartitionCounters::held_back)
            .collect();
        // Partition 1 holds the open transaction's records above its LSO.
        assert_eq!(held, [Some(0), Some(10)]);
        let p1 = &report.counters.partitions[1];
        assert_eq!((p1.hi_offset, p1.ls_offset), (10, 0));
        // Nothing committed or stored yet: librdkafka cannot say a lag.
        assert_eq!(p1.consumer_lag, -1);
        assert_eq!(p1.behind_high_watermark(), None);
    }

    #[test]
    fn the_lab_reads_the_same_fields_as_rdkafkas_own_statistics_type() {
        for json in [PRODUCER, CONSUMER] {
            let theirs: rdkafka::statistics::Statistics =
                serde_json::from_str(json).unwrap();
            let ours = Report::parse(json.as_bytes()).unwrap();
            assert_eq!(ours.name, theirs.name);
            assert_eq!(ours.counters.queued, theirs.msg_cnt);
            let sum = |f: fn(&rdkafka::statistics::Broker) -> u64| {
                theirs.brokers.values().map(f).sum::<u64>()
            };
            assert_eq!(ours.counters.requests, sum(|b| b.tx));
            assert_eq!(ours.counters.retries, sum(|b| b.txretries));
            assert_eq!(ours.counters.request_timeouts, sum(|b| b.req_timeouts));
            assert_eq!(ours.counters.transmit_errors, sum(|b| b.txerrs));
            assert_eq!(
                ours.counters.eos.as_ref().map(|e| e.epoch_cnt),
                theirs.eos.as_ref().map(|e| e.epoch_cnt)
            );
            for p in &ours.counters.partitions {
                let t = &theirs.topics[&p.topic].partitions[&p.partition];
                assert_eq!(
                    (p.hi_offset, p.ls_offset, p.consumer_lag),
                    (t.hi_offset, t.ls_offset, t.consumer_lag)
                );
            }
        }
    }

    #[test]
    fn what_is_not_statistics_json_is_refused_with_what_it_should_be() {
        let err = Report::parse(b"[1, 2]").unwrap_err().to_string();
        assert!(err.contains("statistics.interval.ms"), "{err}");
    }

    #[test]
    fn a_watched_client_reports_only_changes_and_its_last_word() {
        let monitor = Monitor::with_interval(Duration::from_millis(250));
        let mut checked_only = ClientConfig::new();
        let mut config = ClientConfig::new();
        monitor.during(|| {
            watch_if_active(&mut checked_only, "producer");
            watch_if_active(&mut config, "producer");
        });
        assert_eq!(config.get("statistics.interval.ms"), Some("250"));
        let client_id = config.get("client.id").unwrap().to_string();
        let json = PRODUCER.replace(
            "\"client_id\": \"rdkafka\"",
            &format!("\"client_id\": \"{client_id}\""),
        );
        assert_ne!(json, PRODUCER, "the fixture names its client.id");
        for _ in 0..3 {
            deliver(json.as_bytes());
        }
        deliver(PRODUCER.as_bytes()); // client.id "rdkafka": nobody watches it
        let recording = monitor.recording();
        assert_eq!(recording.interval_ms, 250);
        // The configuration that never reported is left out.
        let [client] = recording.clients.as_slice() else {
            panic!("one client: {recording:?}")
        };
        assert_eq!(client.role, "producer 2");
        // A configuration built outside any monitor's watch is left alone.
        let mut checked = ClientConfig::new();
        monitor.during(|| unwatched(|| watch_if_active(&mut checked, "producer")));
        assert_eq!(checked.get("client.id"), None);
        // The first report, then the repeated last one.
        assert_eq!(client.samples.len(), 2);
        assert_eq!(client.txn_states().len(), 1);
        assert_eq!(client.totals().producer_id_assignments, 1);
        // Outside `during`, configs are left alone.
        let mut untouched = ClientConfig::new();
        watch_if_active(&mut untouched, "producer");
        assert_eq!(untouched.get("statistics.interval.ms"), None);
    }

    #[test]
    fn the_open_transaction_run_is_refused_on_the_mock_cluster() {
        let mock = Cluster::mock().unwrap();
        let err =
            open_transaction_lag(&mock, &EosStressOptions::new(100, 1)).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }
}
