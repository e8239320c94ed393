//! Hole (b): a partition leader dies while the producer has requests in
//! flight to it. A duplicate was reported against librdkafka's idempotent
//! producer during leader changes ([librdkafka issue
//! #4953](https://github.com/confluentinc/librdkafka/issues/4953)): an
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` answer on one partition made the client
//! start a new producer epoch, and a batch of another partition that had
//! been written but not acknowledged was sent again under that epoch, which
//! the broker cannot match against the old one.
//!
//! The same workload, the same kill points, three producers: idempotent
//! (at-least-once's settings with `enable.idempotence=true`), transactional
//! (exactly-once's, a commit every [`IN_FLIGHT_PER_TRANSACTION`] records) and plain
//! acks=all with retries and no idempotence (at-least-once's own), as the
//! baseline. Each trial writes to a fresh topic of [`IN_FLIGHT_PARTITIONS`]
//! partitions on the course's three-broker cluster, sends as fast as the
//! client takes records, and SIGKILLs the broker leading partition 0 at a
//! seeded point with records in flight. A helper thread waits until the
//! other brokers have taken over what it led, starts it again and waits
//! until every replica is back in sync, while the producer goes on sending
//! and then flushes (its timeouts are far longer than the outage). The topic
//! is read back by id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{BaseProducer, Producer};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::eos_stress::{init_transactional, TxnError};
use crate::faults::leader::exactly_once::{kill_and_restart, leaders_of, Names, Role};
use crate::faults::leader::three_local_brokers;
use crate::local::LocalBroker;
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::read::{read_located, Isolation, Located};
use crate::semantics::Semantic;
use crate::stats::Monitor;
use crate::support::Seeded;

/// Partitions of each trial's topic: two led by each broker. The reported
/// duplicate landed on a partition other than the one whose error started
/// the new epoch, and one producer id spans all of a producer's partitions:
/// the dying broker takes two partitions' requests with it, and four more
/// partitions are being written on the brokers that live.
pub const IN_FLIGHT_PARTITIONS: i32 = 6;

/// Records per trial: enough that the client is still busy when the
/// leader dies, few enough that a trial is over in about half a minute.
pub const IN_FLIGHT_RECORDS: u64 = 30_000;

/// The transactional producer commits every this many records.
pub const IN_FLIGHT_PER_TRANSACTION: u64 = 2_000;

/// Bytes of each record's value.
pub(crate) const PAYLOAD_BYTES: usize = 100;

/// The most records the client holds unacknowledged
/// (`queue.buffering.max.messages`): a sender faster than the brokers
/// waits for room, so a kill point is a point in the stream, with the
/// records before it mostly acknowledged and up to this many queued or in
/// requests in flight. Without it, every record was handed over before
/// the first acknowledgement came back.
pub const UNACKNOWLEDGED_AT_MOST: u64 = 5_000;

/// How often a transaction that had to be aborted is written again.
const TRANSACTION_ATTEMPTS: usize = 3;

/// The producers compared.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum InFlightProducer {
    /// At-least-once's settings plus `enable.idempotence=true`: acks=all,
    /// 5 requests in flight, retries until `message.timeout.ms`.
    Idempotent,
    /// Exactly-once's producer: idempotent, with a `transactional.id`.
    Transactional,
    /// At-least-once's own settings: acks=all, retries, no idempotence.
    PlainAcksAll,
}

impl InFlightProducer {
    pub const ALL: [InFlightProducer; 3] = [
        InFlightProducer::Idempotent,
        InFlightProducer::Transactional,
        InFlightProducer::PlainAcksAll,
    ];

    /// Its name on the command line: `idempotent`, `transactional`, `plain`.
    pub fn parse(text: &str) -> Result<InFlightProducer> {
        let wanted = text.trim().to_ascii_lowercase();
        InFlightProducer::ALL
            .into_iter()
            .find(|p| p.slug() == wanted)
            .ok_or_else(|| {
                Error::BadConfig(format!(
                    "unknown producer {text:?}: use idempotent, transactional or plain"
                ))
            })
    }

    /// How the book's table names it.
    pub fn name(self) -> &'static str {
        match self {
            InFlightProducer::Idempotent => "idempotent, no transactions",
            InFlightProducer::Transactional => "transactional",
            InFlightProducer::PlainAcksAll => "acks=all, retries, no idempotence",
        }
    }

    /// Its short name: `idempotent`, `transactional`, `plain`.
    pub fn slug(self) -> &'static str {
        match self {
            InFlightProducer::Idempotent => "idempotent",
            InFlightProducer::Transactional => "transactional",
            InFlightProducer::PlainAcksAll => "plain",
        }
    }

    /// The semantic whose settings it starts from.
    fn semantic(self) -> Semantic {
        match self {
            InFlightProducer::Transactional => Semantic::ExactlyOnce,
            _ => Semantic::AtLeastOnce,
        }
    }

    /// The settings it changes from its semantic's: idempotence for the
    /// idempotent one, and for all a short linger so that the client sends
    /// many small requests, five at a time per broker, and a bounded queue
    /// ([`UNACKNOWLEDGED_AT_MOST`]).
    fn overrides(self) -> Vec<(String, String)> {
        let mut out = vec![
            ("linger.ms".to_string(), "2".to_string()),
            (
                "queue.buffering.max.messages".to_string(),
                UNACKNOWLEDGED_AT_MOST.to_string(),
            ),
        ];
        if self == InFlightProducer::Idempotent {
            out.push(("enable.idempotence".into(), "true".into()));
        }
        out
    }

    /// What the audit reads: what a reader of this producer's output would.
    pub(crate) fn isolation(self) -> Isolation {
        match self {
            InFlightProducer::Transactional => Isolation::ReadCommitted,
            _ => Isolation::ReadUncommitted,
        }
    }
}

/// One trial's workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInFlightOptions {
    pub records: u64,
    /// Chooses after how many records the leader dies.
    pub seed: u64,
    /// Records per transaction (the transactional producer only).
    pub per_transaction: u64,
}

impl LeaderInFlightOptions {
    pub fn new(records: u64, seed: u64) -> LeaderInFlightOptions {
        LeaderInFlightOptions {
            records,
            seed,
            per_transaction: IN_FLIGHT_PER_TRANSACTION,
        }
    }

    /// The number of records handed to the client before the leader dies:
    /// between a quarter and three quarters of the run, by seed.
    pub fn kill_point(&self) -> u64 {
        Seeded::new(self.seed).in_range(self.records / 4..self.records * 3 / 4)
    }
}

/// What one trial measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderInFlightReport {
    pub producer: InFlightProducer,
    pub seed: u64,
    pub topic: String,
    pub records: u64,
    /// The broker SIGKILLed (it led partition 0), and the partitions it led.
    pub killed_broker: u32,
    pub killed_partitions: Vec<i32>,
    /// Whether it was also the transaction coordinator of the
    /// `transactional.id` (the transactional producer only).
    pub killed_coordinator: Option<bool>,
    /// Records handed to the client when the leader died.
    pub killed_after: u64,
    /// Records handed over and not yet acknowledged at that moment
    /// (`in_flight_count`: queued in the client or in a request).
    pub unacknowledged_at_kill: u64,
    /// Requests sent and not answered, over all the client's connections,
    /// in its last statistics before the kill (50 ms apart).
    pub requests_awaiting_answer: Option<u64>,
    /// Seconds from the kill to new leaders for all it led, and to it being
    /// back and in sync after its restart.
    pub taken_over_s: f64,
    pub back_in_sync_s: f64,
    /// Ids the producer was told are safe: acknowledged, or for the
    /// transactional producer, written in a committed transaction.
    pub acknowledged: u64,
    /// Delivery reports that said failure, by error.
    pub failures: BTreeMap<String, u64>,
    /// Transactions aborted (and written again), with why.
    pub aborted_transactions: Vec<String>,
    /// A fatal error of the client, if it had one.
    pub fatal: Option<String>,
    pub audit: Tally,
    /// Copies only a read_uncommitted reader sees (what aborted
    /// transactions left in the log).
    pub aborted_in_log: u64,
    /// Requests sent again (librdkafka's `txretries`; a request lost with
    /// its connection is not retried as such, its records are re-queued).
    pub retries: u64,
    /// Records sent more than once (`txmsgs` beyond the records produced):
    /// the records of requests that died with the leader, among others
    /// (None in a record made before the lab counted it).
    #[serde(default)]
    pub records_resent: Option<u64>,
    /// Producer id and epoch assignments (1: the epoch never changed;
    /// 0: not idempotent), and the last epoch.
    pub producer_id_assignments: i64,
    pub producer_epoch: i64,
    /// The whole trial, topic creation to audit.
    pub seconds: f64,
}

/// The log read back by id: what the reader of [`InFlightProducer`]'s
/// isolation level sees.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Copies read.
    pub read: u64,
    /// Acknowledged ids the reader never saw.
    pub lost: u64,
    /// Ids of the run the reader never saw, acknowledged or not.
    pub missing: u64,
    /// Copies beyond the first.
    pub duplicated: u64,
    /// Ids whose first copy sits, in its partition, after the first copy of
    /// a later id: written out of the order they were sent in.
    pub out_of_order: u64,
}

/// Counts `located` (in log order per partition) against the run's ids
/// `0..records` and what the producer was told is safe.
pub fn tally(records: u64, acknowledged: &[u64], located: &[Located]) -> Tally {
    let mut copies: HashMap<u64, u64> = HashMap::new();
    let mut highest: HashMap<i32, u64> = HashMap::new();
    let mut out_of_order = 0;
    for l in located {
        let n = copies.entry(l.id).or_insert(0);
        *n += 1;
        if *n > 1 {
            continue;
        }
        let top = highest.entry(l.partition).or_insert(l.id);
        if l.id < *top {
            out_of_order += 1;
        }
        *top = (*top).max(l.id);
    }
    let acked: HashSet<u64> = acknowledged.iter().copied().collect();
    Tally {
        read: located.len() as u64,
        lost: acked.iter().filter(|id| !copies.contains_key(id)).count() as u64,
        missing: (0..records).filter(|id| !copies.contains_key(id)).count() as u64,
        duplicated: copies.values().map(|n| n - 1).sum(),
        out_of_order,
    }
}

/// What the kill found.
#[derive(Default)]
struct Struck {
    killed_after: u64,
    unacknowledged: u64,
    awaiting: Option<u64>,
    at: Option<Instant>,
}

/// When the killed broker's partitions had new leaders, and when it was
/// back in sync after its restart.
type Restarted = (Instant, Instant);

/// Where one trial writes, and who dies.
struct Stage {
    topic: String,
    transactional_id: String,
    victim: LocalBroker,
    killed_partitions: Vec<i32>,
    killed_coordinator: Option<bool>,
}

/// Runs one trial of hole (b) for `producer`: see the module's
/// documentation. Needs the course's three-broker cluster.
pub fn leader_in_flight(
    cluster: &Cluster,
    producer: InFlightProducer,
    options: &LeaderInFlightOptions,
) -> Result<LeaderInFlightReport> {
    check(options)?;
    let local = three_local_brokers(cluster)?;
    let started = Instant::now();
    let stage = set_up(cluster, &local, producer)?;
    let monitor = Monitor::with_interval(Duration::from_millis(50));
    let log = Arc::new(DeliveryLog::default());
    let client = create_producer(cluster, producer, &stage, &monitor, &log)?;
    let (sent, struck, restarted) =
        send_and_strike(cluster, local, &client, producer, options, &stage, &monitor);
    let sent = sent?;
    let restarted = restarted?;
    // Its last statistics (retries, epoch) are reported.
    monitor.during(|| Monitor::settle(&client));
    let fatal = client
        .client()
        .fatal_error()
        .map(|(c, m)| format!("{c:?}: {m}"));
    drop(client);
    let mut report = report_of(producer, options, &stage, &struck, restarted, sent);
    report.fatal = fatal;
    stats_into(&monitor, &mut report);
    audit(cluster, &log, &mut report)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Sends every record on a thread of its own, which SIGKILLs the leader at
/// the kill point; this thread then waits for the new leaders, restarts the
/// killed broker and waits until it is back in sync. Returns what was sent,
/// what the kill found, and when the leaders took over and the broker was
/// back (None: the sender failed before the kill point).
fn send_and_strike(
    cluster: &Cluster,
    local: crate::local::LocalCluster,
    client: &BaseProducer<LoggingContext>,
    producer: InFlightProducer,
    options: &LeaderInFlightOptions,
    stage: &Stage,
    monitor: &Monitor,
) -> (Result<Sent>, Struck, Result<Option<Restarted>>) {
    let names = Names {
        input: stage.topic.clone(),
        output: stage.topic.clone(),
        group: format!("{}-group", stage.topic),
        transactional_id: stage.transactional_id.clone(),
    };
    std::thread::scope(|s| {
        let (killed, heard) = mpsc::channel::<Struck>();
        let (topic, victim) = (&stage.topic, &stage.victim);
        // The producer sends on a thread of its own; this one kills and
        // restarts the leader when told.
        let sender = s.spawn(move || {
            let mut strike = |client: &BaseProducer<LoggingContext>, handed: u64| {
                // The latest statistics first, then the moment of death.
                client.poll(Duration::ZERO);
                let awaiting = monitor.last_of("producer").map(|c| c.in_flight);
                let unacknowledged = client.in_flight_count().max(0) as u64;
                victim.signal(libc::SIGKILL);
                let _ = killed.send(Struck {
                    killed_after: handed,
                    unacknowledged,
                    awaiting,
                    at: Some(Instant::now()),
                });
            };
            send_all(client, producer, topic, options, &mut strike)
        });
        let (struck, restarted) = match heard.recv() {
            Ok(struck) => {
                let mut local = local;
                let restarted = match cluster.client_config().create::<BaseConsumer>() {
                    Ok(metadata) => kill_and_restart(
                        cluster,
                        &mut local,
                        &metadata,
                        &names,
                        victim.node_id,
                    ),
                    Err(e) => {
                        // Never leave the cluster a broker short.
                        let _ = local.restart(victim.node_id);
                        Err(e).doing("creating a metadata client")
                    }
                };
                (struck, restarted.map(Some))
            }
            // The sender ended before the kill point: it failed.
            Err(_) => (Struck::default(), Ok(None)),
        };
        let sent = sender.join().unwrap_or_else(|_| {
            Err(Error::Process {
                what: "the producer's thread".into(),
                detail: "it panicked".into(),
            })
        });
        (sent, struck, restarted)
    })
}

/// Refuses a workload too small to kill a leader in the middle of.
fn check(options: &LeaderInFlightOptions) -> Result<()> {
    if options.records < 1_000 {
        return Err(Error::BadConfig(format!(
            "hole (b) kills the leader in the middle of the run: give it at least 1000 \
             records, not {}",
            options.records
        )));
    }
    if options.per_transaction == 0 {
        return Err(Error::BadConfig(
            "records per transaction must be at least 1".into(),
        ));
    }
    Ok(())
}

/// A fresh topic, who leads its partitions, and the broker that will die.
fn set_up(
    cluster: &Cluster,
    local: &crate::local::LocalCluster,
    producer: InFlightProducer,
) -> Result<Stage> {
    let topic = cluster.fresh_name(&format!("hole-leader-{}", producer.slug()));
    cluster.create_topic(&topic, IN_FLIGHT_PARTITIONS)?;
    let transactional_id = format!("{topic}-producer");
    let metadata: BaseConsumer = cluster
        .client_config()
        .create()
        .doing("creating a metadata client")?;
    let group = format!("{topic}-group");
    let leaders = leaders_of(
        cluster,
        &metadata,
        (&topic, &topic, &group, &transactional_id),
    )?;
    let leader_of_0 = leaders
        .iter()
        .find(|(led, _)| led.role == Role::Output && led.partition == Some(0))
        .map(|(_, leader)| *leader)
        .filter(|&l| l >= 0)
        .ok_or_else(|| Error::BadData(format!("{topic} partition 0 has no leader")))?;
    let victim = local
        .brokers
        .iter()
        .find(|b| b.node_id as i32 == leader_of_0)
        .cloned()
        .ok_or_else(|| {
            Error::BadConfig(format!(
                "broker {leader_of_0} leads {topic} partition 0 but is not one of the \
                 course's local brokers: start them with `cargo xtask kafka up --three`"
            ))
        })?;
    let killed_partitions = leaders
        .iter()
        .filter(|(led, leader)| led.role == Role::Output && *leader == leader_of_0)
        .filter_map(|(led, _)| led.partition)
        .collect();
    let killed_coordinator = (producer == InFlightProducer::Transactional).then(|| {
        leaders.iter().any(|(led, leader)| {
            led.role == Role::TransactionCoordinator && *leader == leader_of_0
        })
    });
    Ok(Stage {
        topic,
        transactional_id,
        victim,
        killed_partitions,
        killed_coordinator,
    })
}

/// The producer, built from its semantic's settings with its overrides,
/// watched by `monitor` (its statistics every 50 ms).
fn create_producer(
    cluster: &Cluster,
    producer: InFlightProducer,
    stage: &Stage,
    monitor: &Monitor,
    log: &Arc<DeliveryLog>,
) -> Result<BaseProducer<LoggingContext>> {
    let config = monitor.during(|| {
        producer.semantic().producer_config(
            cluster.bootstrap(),
            Some(&stage.transactional_id),
            &producer.overrides(),
        )
    })?;
    if producer == InFlightProducer::Transactional {
        init_transactional(config, log.clone())
    } else {
        config
            .create_with_context(LoggingContext(log.clone()))
            .doing("creating the producer")
    }
}

/// What the sending side did.
#[derive(Default)]
struct Sent {
    /// Ids in committed transactions (the transactional producer only).
    committed: Vec<u64>,
    aborted: Vec<String>,
}

/// Sends every id, calling `strike` once, just before the id at the kill
/// point, with records in flight; then waits for every delivery report.
fn send_all(
    client: &BaseProducer<LoggingContext>,
    producer: InFlightProducer,
    topic: &str,
    options: &LeaderInFlightOptions,
    strike: &mut dyn FnMut(&BaseProducer<LoggingContext>, u64),
) -> Result<Sent> {
    let kill_at = options.kill_point();
    let mut struck = false;
    let mut send = |id: u64| -> Result<()> {
        // The client is under way: acknowledgements have come back, and
        // records are unacknowledged.
        let under_way =
            client.context().0.delivered_count() > 0 && client.in_flight_count() > 0;
        if !struck && id >= kill_at && under_way {
            strike(client, id);
            struck = true;
        }
        produce::send(client, topic, id, PAYLOAD_BYTES)
    };
    if producer != InFlightProducer::Transactional {
        for id in 0..options.records {
            send(id)?;
        }
        // The longest the client may need: at-least-once's message.timeout.ms
        // is 300 s, far longer than the outage.
        produce::flush(client, Duration::from_secs(330))?;
        return Ok(Sent::default());
    }
    let mut sent = Sent::default();
    let step = options.per_transaction as usize;
    for start in (0..options.records).step_by(step) {
        let ids = start..(start + options.per_transaction).min(options.records);
        write_transaction(client, ids.clone(), &mut send, &mut sent.aborted)?;
        sent.committed.extend(ids);
    }
    Ok(sent)
}

/// Writes `ids` in one transaction and commits it; a transaction that must
/// be aborted is aborted and written again, up to [`TRANSACTION_ATTEMPTS`]
/// times, as an application would.
fn write_transaction(
    client: &BaseProducer<LoggingContext>,
    ids: Range<u64>,
    send: &mut dyn FnMut(u64) -> Result<()>,
    aborted: &mut Vec<String>,
) -> Result<()> {
    for attempt in 1..=TRANSACTION_ATTEMPTS {
        client
            .begin_transaction()
            .doing("beginning a transaction")?;
        for id in ids.clone() {
            send(id)?;
        }
        let error = match produce::commit(client) {
            Ok(()) => return Ok(()),
            Err(Error::Kafka { source, .. }) => TxnError::of(&source),
            Err(other) => return Err(other),
        };
        if !error.requires_abort || attempt == TRANSACTION_ATTEMPTS {
            return Err(Error::Process {
                what: format!("committing the transaction of ids {ids:?}"),
                detail: error.to_string(),
            });
        }
        aborted.push(format!("ids {ids:?}: {error}"));
        // librdkafka aborts only once every delivery report was served.
        produce::drain(client, Duration::from_secs(120))?;
        client
            .abort_transaction(Duration::from_secs(60))
            .doing("aborting a transaction")?;
    }
    unreachable!("the last attempt returns")
}

/// The report so far: what was set up, struck and sent.
fn report_of(
    producer: InFlightProducer,
    options: &LeaderInFlightOptions,
    stage: &Stage,
    struck: &Struck,
    restarted: Option<Restarted>,
    sent: Sent,
) -> LeaderInFlightReport {
    let since_kill = |t: Instant| {
        struck
            .at
            .map_or(0.0, |at| t.saturating_duration_since(at).as_secs_f64())
    };
    let (taken_over_s, back_in_sync_s) = restarted
        .map(|(taken, back)| (since_kill(taken), since_kill(back)))
        .unwrap_or((0.0, 0.0));
    LeaderInFlightReport {
        producer,
        seed: options.seed,
        topic: stage.topic.clone(),
        records: options.records,
        killed_broker: stage.victim.node_id,
        killed_partitions: stage.killed_partitions.clone(),
        killed_coordinator: stage.killed_coordinator,
        killed_after: struck.killed_after,
        unacknowledged_at_kill: struck.unacknowledged,
        requests_awaiting_answer: struck.awaiting,
        taken_over_s,
        back_in_sync_s,
        acknowledged: sent.committed.len() as u64,
        failures: BTreeMap::new(),
        aborted_transactions: sent.aborted,
        fatal: None,
        audit: Tally::default(),
        aborted_in_log: 0,
        retries: 0,
        records_resent: None,
        producer_id_assignments: 0,
        producer_epoch: -1,
        seconds: 0.0,
    }
}

/// The producer's last statistics: retries, producer id and epoch.
fn stats_into(monitor: &Monitor, report: &mut LeaderInFlightReport) {
    let recording = monitor.recording();
    let totals = recording
        .clients_named("producer")
        .next()
        .map(|c| c.totals());
    if let Some(totals) = totals {
        report.retries = totals.retries;
        report.records_resent = Some(totals.records_resent);
        report.producer_id_assignments = totals.producer_id_assignments;
        report.producer_epoch = totals.producer_epoch;
    }
}

/// Reads the topic back as the producer's readers would, and counts.
fn audit(
    cluster: &Cluster,
    log: &DeliveryLog,
    report: &mut LeaderInFlightReport,
) -> Result<()> {
    let (acknowledged, failed) = log.take();
    for f in failed {
        *report.failures.entry(f.error).or_insert(0) += 1;
    }
    let transactional = report.producer == InFlightProducer::Transactional;
    // The transactional producer's safe ids are its committed ones; a
    // record acknowledged inside an aborted transaction is not safe.
    let safe: Vec<u64> = if transactional {
        (0..report.acknowledged).collect()
    } else {
        report.acknowledged = acknowledged.len() as u64;
        acknowledged
    };
    let located = read_located(cluster, &report.topic, report.producer.isolation())?;
    report.audit = tally(report.records, &safe, &located);
    if transactional {
        let everything =
            read_located(cluster, &report.topic, Isolation::ReadUncommitted)?;
        report.aborted_in_log =
            (everything.len() as u64).saturating_sub(located.len() as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: u64, partition: i32, offset: i64) -> Located {
        Located {
            id,
            partition,
            offset,
            timestamp_ms: None,
        }
    }

    #[test]
    fn the_tally_counts_lost_missing_duplicated_and_reordered_ids() {
        // Partition 0: 0, 2, 4, then 2 again (a retried batch), then 6.
        // Partition 1: 3 before 1 (out of order), 5 never written.
        let located = [
            at(0, 0, 0),
            at(2, 0, 1),
            at(4, 0, 2),
            at(2, 0, 3),
            at(6, 0, 4),
            at(3, 1, 0),
            at(1, 1, 1),
        ];
        // 5 was acknowledged and is missing: lost. 7 was never acknowledged.
        let t = tally(8, &[0, 1, 2, 3, 4, 5, 6], &located);
        assert_eq!(
            t,
            Tally {
                read: 7,
                lost: 1,
                missing: 2,
                duplicated: 1,
                out_of_order: 1,
            }
        );
        // A later copy of an id is a duplicate, never "out of order".
        let clean = tally(2, &[0, 1], &[at(0, 0, 0), at(1, 0, 1), at(0, 0, 2)]);
        assert_eq!(
            (clean.duplicated, clean.out_of_order, clean.lost),
            (1, 0, 0)
        );
    }

    #[test]
    fn the_kill_point_is_seeded_and_in_the_middle_half() {
        for seed in 1..50 {
            let o = LeaderInFlightOptions::new(30_000, seed);
            let k = o.kill_point();
            assert!((7_500..22_500).contains(&k), "seed {seed}: {k}");
            assert_eq!(k, LeaderInFlightOptions::new(30_000, seed).kill_point());
        }
        let points: HashSet<u64> = (1..6)
            .map(|s| LeaderInFlightOptions::new(30_000, s).kill_point())
            .collect();
        assert_eq!(points.len(), 5, "{points:?}");
    }

    #[test]
    fn each_producer_starts_from_the_courses_settings() {
        let config = |p: InFlightProducer| {
            let c = p
                .semantic()
                .producer_config("127.0.0.1:1", Some("t"), &p.overrides())
                .unwrap();
            let get = |k: &str| c.get(k).map(str::to_string);
            assert_eq!(get("queue.buffering.max.messages"), Some("5000".into()));
            (
                get("enable.idempotence"),
                get("acks"),
                get("max.in.flight.requests.per.connection"),
                get("transactional.id"),
            )
        };
        let five = Some("5".to_string());
        let all = Some("all".to_string());
        assert_eq!(
            config(InFlightProducer::Idempotent),
            (Some("true".into()), all.clone(), five.clone(), None)
        );
        assert_eq!(
            config(InFlightProducer::Transactional),
            (
                Some("true".into()),
                all.clone(),
                five.clone(),
                Some("t".into())
            )
        );
        assert_eq!(
            config(InFlightProducer::PlainAcksAll),
            (Some("false".into()), all, five, None)
        );
    }

    #[test]
    fn too_small_a_run_is_refused_with_what_to_do() {
        let e = check(&LeaderInFlightOptions::new(10, 1)).unwrap_err();
        assert!(e.to_string().contains("at least 1000 records"), "{e}");
        let mut o = LeaderInFlightOptions::new(5_000, 1);
        o.per_transaction = 0;
        assert!(check(&o).is_err());
    }
}
