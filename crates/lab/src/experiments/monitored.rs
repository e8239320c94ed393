//! Monitored runs: scenarios run under a [`Monitor`] of librdkafka's
//! statistics, the monitoring chapter's tables, and scenario E4 again with a
//! read_committed reader that keeps reading across the commit
//! ([`open_transaction_lag`]), so its statistics show it held at the last
//! stable offset while the transaction is open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::eos_stress::{self, EosStressOptions};
use crate::faults::Scenario;
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::semantics::Semantic;
use crate::stats::*;
use crate::support::distinct;
use crate::support::wait_until;
use crate::support::Seeded;

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
    let reader = start_reader(cluster, &monitor, &topic, stop.clone())?;
    let split = Split {
        before,
        in_transaction,
        records,
    };
    let result = write_around_an_open_transaction(cluster, &monitor, &topic, split);
    stop.store(true, Ordering::Relaxed);
    let read = reader.join().map_err(|_| Error::Process {
        what: "the read_committed reader thread".into(),
        detail: "it panicked".into(),
    })?;
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

/// Where the records of [`open_transaction_lag`] go: `before` plainly, the
/// next `in_transaction` in producer A's open transaction (while producer B
/// goes on writing plainly), up to `records`.
#[derive(Clone, Copy)]
struct Split {
    before: u64,
    in_transaction: u64,
    records: u64,
}

/// The read_committed reader, watched, reading and committing on its own
/// thread until `stop`.
fn start_reader(
    cluster: &Cluster,
    monitor: &Monitor,
    topic: &str,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<()>>> {
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
        .subscribe(&[topic])
        .doing(format!("subscribing to {topic}"))?;
    Ok(std::thread::spawn(move || read_and_commit(consumer, &stop)))
}

/// Producer B writes plainly before, during and after producer A's
/// transaction, which stays open for [`HOLD_OPEN`]; the reader's commits are
/// the checkpoints.
fn write_around_an_open_transaction(
    cluster: &Cluster,
    monitor: &Monitor,
    topic: &str,
    split: Split,
) -> Result<()> {
    let Split {
        before,
        in_transaction,
        records,
    } = split;
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
    let a = eos_stress::init_transactional(a_config, Arc::new(DeliveryLog::default()))?;

    eos_stress::write_acknowledged(&b, topic, 0..before)?;
    // A baseline: the reader has committed everything there is.
    wait_for(monitor, READER, |p| p.committed_offset == before as i64)?;
    monitor.event(OPENED);
    eos_stress::write_open(&a, topic, before..before + in_transaction)?;
    eos_stress::write_acknowledged(&b, topic, before + in_transaction..records)?;
    hold_polling(&a, &b, HOLD_OPEN);
    produce::commit(&a)?;
    monitor.event(COMMITTED);
    // The commit marker takes one offset: the reader ends at the high watermark.
    wait_for(monitor, READER, |p| {
        p.hi_offset > records as i64 && p.committed_offset == p.hi_offset
    })?;
    hold_polling(&a, &b, Duration::from_secs(1));
    Ok(())
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
    wait_until(
        "open-transaction run",
        limit,
        Duration::from_millis(20),
        || {
            let last = monitor.last_of(role);
            let partition = last
                .as_ref()
                .and_then(|c| c.partitions.iter().find(|p| p.partition == 0));
            Ok((!partition.is_some_and(&wanted)).then(|| {
            format!("the {role}'s statistics never showed the awaited offsets: last {partition:?}")
        }))
        },
    )
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

/// What a monitored run is run under: no fault, or one of the scenarios.
/// Recorded as `happy-path` or the scenario's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum MonitoredScenario {
    /// `lab::run`: produce, then consume, no fault.
    HappyPath,
    /// One of the failure scenarios (A, E1-E3 are monitored; see [`Self::plan`]).
    Fault(Scenario),
}

impl MonitoredScenario {
    /// What each semantic is run under: every semantic on the happy path and
    /// under a lost ack, and exactly-once under the transactional faults.
    pub fn plan() -> Vec<(MonitoredScenario, Semantic)> {
        use MonitoredScenario::{Fault, HappyPath};
        let mut plan = Vec::new();
        for scenario in [HappyPath, Fault(Scenario::LostAck)] {
            plan.extend(Semantic::ALL.map(|s| (scenario, s)));
        }
        for scenario in [
            Scenario::ZombieFenced,
            Scenario::LostEndTxn,
            Scenario::TransactionTimeout,
        ] {
            plan.push((Fault(scenario), Semantic::ExactlyOnce));
        }
        plan
    }

    pub fn label(self) -> String {
        match self {
            MonitoredScenario::HappyPath => "happy path".into(),
            MonitoredScenario::Fault(s) => s.label(),
        }
    }
}

impl From<MonitoredScenario> for String {
    fn from(m: MonitoredScenario) -> String {
        match m {
            MonitoredScenario::HappyPath => "happy-path".into(),
            MonitoredScenario::Fault(s) => s.name().into(),
        }
    }
}

impl TryFrom<String> for MonitoredScenario {
    type Error = Error;
    fn try_from(name: String) -> Result<MonitoredScenario> {
        match name.as_str() {
            "happy-path" => Ok(MonitoredScenario::HappyPath),
            other => other.parse().map(MonitoredScenario::Fault),
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
    use MonitoredScenario::{Fault, HappyPath};
    if let Fault(s) = scenario {
        s.check_applies_to(semantic)?;
    }
    let monitor = Monitor::new();
    let stress = EosStressOptions::new(records, seed);
    let (outcome, transactions_aborted) = monitor.during(|| -> Result<_> {
        Ok(match scenario {
            HappyPath => (
                crate::run(cluster, semantic, &crate::RunOptions::records(records))?,
                0,
            ),
            Fault(Scenario::LostAck) => {
                let options = lost_ack::LostAckOptions::new(records, seed);
                (lost_ack::lost_ack(cluster, semantic, &options)?, 0)
            }
            // These report what the coordinator aborted, which no counter shows.
            Fault(Scenario::ZombieFenced) => {
                let r = e::zombie_fenced_report(cluster, &stress)?;
                (r.outcome, r.zombie_error.is_some() as u64)
            }
            Fault(Scenario::LostEndTxn) => {
                (e::lost_end_txn_report(cluster, &stress)?.outcome, 0)
            }
            Fault(Scenario::TransactionTimeout) => {
                let r = e::transaction_timeout_report(cluster, &stress)?;
                (r.outcome, r.commit_error.is_some() as u64)
            }
            Fault(other) => {
                return Err(Error::BadConfig(format!(
                    "{} is not among the monitored scenarios (happy path, A, E1-E3)",
                    other.label()
                )))
            }
        })
    })?;
    let recording = monitor.recording();
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
        txn_states: txn_states(&recording),
        recording,
    })
}

/// Each producer's transaction states in order, e.g.
/// `producer 1: Init > Ready > InTransaction`.
fn txn_states(recording: &Recording) -> Vec<String> {
    recording
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
        .collect()
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

/// The recorded runs as the book's tables, one row per run: what the audit
/// counted, then the statistics that explain it (one table of thirteen
/// columns did not fit a page).
pub fn markdown(record: &MonitoringRecord) -> String {
    let mut out = String::from(
        "What the audit counted:\n\n\
         | scenario | semantic | lost | duplicated | records sent again \
         | transactions aborted (lab) | consumer lag, max |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in &record.runs {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario.label(),
            r.semantic,
            r.lost,
            r.duplicated,
            r.producers.records_resent,
            r.transactions_aborted,
            if r.recording.clients.iter().any(|c| c.kind == "consumer") {
                r.consumer_max_lag.to_string()
            } else {
                "(no consumer)".into()
            }
        );
    }
    out +=
        "\nWhat the producers' statistics said (highest `producer_epoch`: - when no \
            producer had one):\n\n\
            | run | `req_timeouts` | `txretries` | `txerrs` | `EndTxn` requests \
            | `epoch_cnt` | highest `producer_epoch` |\n\
            |---|---:|---:|---:|---:|---:|---:|\n";
    for r in &record.runs {
        let p = &r.producers;
        out += &format!(
            "| {}, {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario.label(),
            r.semantic,
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

    #[test]
    fn the_open_transaction_run_is_refused_on_the_mock_cluster() {
        let mock = Cluster::mock().unwrap();
        let err =
            open_transaction_lag(&mock, &EosStressOptions::new(100, 1)).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }

    #[test]
    fn a_monitored_scenario_is_recorded_by_its_name() {
        let happy = MonitoredScenario::HappyPath;
        let a = MonitoredScenario::Fault(Scenario::LostAck);
        assert_eq!(serde_json::to_string(&happy).unwrap(), "\"happy-path\"");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"lost-ack\"");
        for m in [happy, a, MonitoredScenario::Fault(Scenario::ZombieFenced)] {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<MonitoredScenario>(&json).unwrap(), m);
        }
        let err =
            serde_json::from_str::<MonitoredScenario>("\"sad-path\"").unwrap_err();
        assert!(err.to_string().contains("no scenario is called"), "{err}");
    }
}
