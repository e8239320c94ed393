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
//! use lab::stats::Monitor;
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
//! Not every fact is a librdkafka counter: a transaction aborted by the
//! coordinator (fencing, timeout) never passes through the client's abort, so
//! the lab counts aborted transactions from its own events (what each
//! scenario's report says), and records the `txn_state` transitions beside.
//!
//! [`Semantic::producer_config`]: crate::Semantic::producer_config
//! [`Semantic::consumer_config`]: crate::Semantic::consumer_config

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerContext;
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::support::lock;

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
            Error::BadData(format!(
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

/// The requests a client has sent so far, by request type (`Produce`,
/// `EndTxn`, `TxnOffsetCommit`, ...), summed over its broker connections
/// (the logical group and transaction coordinators included): librdkafka's
/// per-broker `req` counters of one statistics report.
pub fn requests_by_type(
    json: &[u8],
) -> Result<std::collections::BTreeMap<String, u64>> {
    let raw: raw::Stats = serde_json::from_slice(json).map_err(|e| {
        Error::BadData(format!("this is not librdkafka statistics JSON ({e})"))
    })?;
    let mut out = std::collections::BTreeMap::new();
    for broker in raw.brokers.values() {
        for (kind, n) in &broker.req {
            *out.entry(kind.clone()).or_insert(0) += (*n).max(0) as u64;
        }
    }
    Ok(out)
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
        lock(registry()).insert(client_id.clone(), Arc::downgrade(&self.inner));
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
        let mut registry = lock(registry());
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
    let monitor = lock(registry())
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

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCER: &str =
        include_str!("../../tests/fixtures/statistics-transactional-producer.json");
    const CONSUMER: &str =
        include_str!("../../tests/fixtures/statistics-read-committed-consumer.json");

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
    fn requests_are_counted_by_type_over_every_connection() {
        let requests = requests_by_type(PRODUCER.as_bytes()).unwrap();
        // FindCoordinator went to the broker, AddPartitionsToTxn to the
        // transaction coordinator: both connections count.
        assert_eq!(requests["FindCoordinator"], 2);
        assert_eq!(requests["AddPartitionsToTxn"], 1);
        assert_eq!(requests["Metadata"], 3);
        assert_eq!(requests["EndTxn"], 0);
        assert!(requests_by_type(b"[1]").is_err());
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
}
