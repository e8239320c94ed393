//! Scenario D: the partition leader dies. On the course's three-broker
//! cluster (replication factor 3, min.insync.replicas=2), made deterministic
//! rather than lucky: the leader's two followers are paused (SIGSTOP), so the
//! leader alone holds the next records; then the leader is killed (SIGKILL)
//! and the followers resume and elect a new leader that never saw them.
//!
//! With acks=1 the leader acknowledged those records on its own: they are
//! lost although the producer was told they were safe. With acks=all it
//! acknowledged nothing the followers lacked: the producer retries them to the
//! new leader and loses nothing.
//!
//! Exactly-once runs a whole read-process-write pipeline instead, while the
//! brokers leading what it depends on die in turn: see [`exactly_once`].

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};

use crate::audit;
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::local::{LocalBroker, LocalCluster};
use crate::outcome::{FaultWindow, Outcome};
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;
use crate::support::wait_until;
use crate::support::Seeded;

pub mod exactly_once;

/// The workload of a leader failure.
#[derive(Clone, Debug)]
pub struct LeaderFailureOptions {
    pub records: u64,
    /// Chooses how many records go in before the followers are paused.
    pub seed: u64,
    /// Extra producer settings, e.g. `acks=1`.
    pub overrides: Vec<(String, String)>,
}

/// Resumes paused brokers whatever happens, so a failed scenario never leaves
/// a cluster frozen.
struct Paused<'a>(Vec<&'a LocalBroker>);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        for b in &self.0 {
            b.signal(libc::SIGCONT);
        }
    }
}

/// Why scenario D needs the local three-broker cluster.
fn refuse(cluster: &Cluster, why: &str) -> Error {
    Error::Unsupported {
        what: "the leader-failure scenario".into(),
        backend: cluster.describe(),
        why: why.into(),
    }
}

/// Runs scenario D for `semantic` (at-most-once or at-least-once: override
/// `acks` to compare; exactly-once: [`exactly_once::run`]'s
/// pipeline, and its outcome).
pub fn leader_failure(
    cluster: &Cluster,
    semantic: Semantic,
    options: &LeaderFailureOptions,
) -> Result<Outcome> {
    if semantic == Semantic::ExactlyOnce {
        return exactly_once::run(cluster, options).map(|run| run.outcome);
    }
    let mut local = three_local_brokers(cluster)?;
    let started = Instant::now();
    let topic = cluster.fresh_name(&format!("{semantic}-leader-failure"));
    cluster.create_topic(&topic, 1)?;
    let leader_id = leader_of(cluster, &topic)?;
    let config =
        semantic.producer_config(cluster.bootstrap(), None, &options.overrides)?;
    let acks = config.get("acks").unwrap_or("all").to_string();
    let log = std::sync::Arc::new(DeliveryLog::default());
    let producer: BaseProducer<LoggingContext> = config
        .create_with_context(LoggingContext(log.clone()))
        .doing("creating the producer")?;
    let struck = strike(cluster, &local, leader_id, &producer, &log, &topic, options)?;
    let after = failover(cluster, &producer, &log, &topic);
    drop(producer);
    // Bring the killed broker back whatever happened, so the next run has three.
    local.restart(leader_id).map_err(|e| Error::Process {
        what: format!("restarting broker {leader_id}"),
        detail: e.to_string(),
    })?;
    let (acknowledged, in_log) = after?;
    wait_for_brokers(cluster, local.brokers.len())?;

    let Struck {
        replicated,
        acked_by_leader_alone,
        paused_at,
        killed_at,
    } = struck;
    let since = |t: Instant| t.duration_since(started).as_secs_f64();
    let mut outcome = Outcome {
        // Everything sent while the followers were paused reached the leader
        // alone; the records it acknowledged then are the ones at risk.
        window: Some(FaultWindow {
            seconds: Some([since(paused_at), since(killed_at)]),
            ..FaultWindow::span(
                format!(
                    "followers paused, leader killed: {acked_by_leader_alone} of these \
                     acknowledged by the leader alone"
                ),
                replicated..options.records,
            )
        }),
        fault: Some(format!(
            "acks={acks}: leader broker {leader_id} SIGKILLed after its followers were paused \
             (SIGSTOP) for records {replicated}..{}, {acked_by_leader_alone} of them acknowledged \
             by the leader alone (seed {})",
            options.records, options.seed
        )),
        produce_seconds: started.elapsed().as_secs_f64(),
        ..Outcome::new(cluster, semantic, options.records, topic)
    };
    outcome.record_audit(&audit::Observed {
        source: options.records,
        sent: options.records,
        acknowledged: &acknowledged,
        in_log: &in_log,
        delivered: &in_log,
        ..Default::default()
    });
    Ok(outcome)
}

/// The course's own three-broker cluster behind `cluster`, or why D cannot run.
pub(crate) fn three_local_brokers(cluster: &Cluster) -> Result<LocalCluster> {
    if cluster.backend() == crate::Backend::Mock {
        return Err(refuse(cluster, "librdkafka's mock cluster does not replicate, so no follower can take over"));
    }
    LocalCluster::serving(cluster.bootstrap())
        .filter(|c| c.brokers.len() >= 3)
        .ok_or_else(|| {
            refuse(
                cluster,
                "it stops and kills broker processes, so it needs the course's own three-broker \
                 cluster: `cargo xtask kafka up --three`, then KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092",
            )
        })
}

/// What happened up to the leader's death.
struct Struck {
    /// Records before this id reached every replica.
    replicated: u64,
    acked_by_leader_alone: usize,
    paused_at: Instant,
    killed_at: Instant,
}

/// Sends every record in two phases, replicated then leader-only, and kills
/// the leader; its followers wake and elect one of themselves.
fn strike(
    cluster: &Cluster,
    local: &LocalCluster,
    leader_id: u32,
    producer: &BaseProducer<LoggingContext>,
    log: &DeliveryLog,
    topic: &str,
    options: &LeaderFailureOptions,
) -> Result<Struck> {
    let leader = local
        .brokers
        .iter()
        .find(|b| b.node_id == leader_id)
        .ok_or_else(|| {
            refuse(
                cluster,
                "the partition leader is not one of the local brokers",
            )
        })?;
    let followers: Vec<&LocalBroker> = local
        .brokers
        .iter()
        .filter(|b| b.node_id != leader_id)
        .collect();

    // Phase 1: replicated everywhere. The high watermark only passes a record
    // once every in-sync replica has it.
    let replicated =
        Seeded::new(options.seed).in_range(options.records / 4..options.records / 2);
    for id in 0..replicated {
        produce::send(producer, topic, id, 100)?;
    }
    produce::flush(producer, Duration::from_secs(60))?;
    wait_for_high_watermark(cluster, topic, replicated as i64)?;

    // Phase 2: the followers are frozen; only the leader gets these records.
    let paused_at = Instant::now();
    let paused = Paused(followers);
    for f in &paused.0 {
        f.signal(libc::SIGSTOP);
    }
    drain_pending_fetches(cluster, topic)?;
    for id in replicated..options.records {
        produce::send(producer, topic, id, 100)?;
    }
    // acks=0 and acks=1 are answered by the leader alone, so they all come
    // back; acks=all waits for the frozen followers and gets no answer.
    let deadline = Instant::now() + Duration::from_secs(4);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(50));
    }
    let acked_by_leader_alone = log.acknowledged_count() - replicated as usize;

    // The leader dies; the followers wake and elect one of themselves.
    let killed_at = Instant::now();
    leader.signal(libc::SIGKILL);
    while leader.alive() {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(paused);
    Ok(Struck {
        replicated,
        acked_by_leader_alone,
        paused_at,
        killed_at,
    })
}

/// After the failover: unacknowledged records are retried to the new leader
/// (if the semantic retries); then the log is read back.
fn failover(
    cluster: &Cluster,
    producer: &BaseProducer<LoggingContext>,
    log: &DeliveryLog,
    topic: &str,
) -> Result<(Vec<u64>, Vec<u64>)> {
    produce::flush(producer, Duration::from_secs(120))?;
    let (acknowledged, _failed) = log.take();
    let in_log = read_ids(cluster, topic, Isolation::ReadCommitted)?;
    Ok((acknowledged, in_log))
}

/// A follower paused (SIGSTOP) may still have one fetch request waiting at
/// the leader, which would carry the next records into its socket buffer, to
/// be appended when it wakes: a scenario that depends on luck. One marker
/// record (not one of the source ids, so the audit ignores it) answers those
/// waiting fetches first; after it, the followers cannot ask for more.
fn drain_pending_fetches(cluster: &Cluster, topic: &str) -> Result<()> {
    // Let any fetch request the followers' kernels had already sent arrive.
    std::thread::sleep(Duration::from_millis(300));
    let marker: BaseProducer = cluster
        .client_config()
        .set("acks", "0")
        .create()
        .doing("creating the marker producer")?;
    marker
        .send(
            rdkafka::producer::BaseRecord::<str, str>::to(topic)
                .key("marker")
                .payload("followers paused"),
        )
        .map_err(|(e, _)| e)
        .doing("sending the marker")?;
    produce::flush(&marker, Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_millis(500));
    Ok(())
}

fn leader_of(cluster: &Cluster, topic: &str) -> Result<u32> {
    let consumer: BaseConsumer = cluster
        .client_config()
        .create()
        .doing("creating a metadata client")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .doing("reading metadata")?;
    metadata
        .topics()
        .first()
        .and_then(|t| t.partitions().first())
        .map(|p| p.leader())
        .filter(|&l| l >= 0)
        .map(|l| l as u32)
        .ok_or_else(|| Error::Stalled {
            stage: "leader lookup",
            waited: Duration::from_secs(10),
            detail: format!("{topic} has no leader"),
        })
}

fn wait_for_high_watermark(
    cluster: &Cluster,
    topic: &str,
    at_least: i64,
) -> Result<()> {
    let consumer: BaseConsumer = cluster
        .client_config()
        .create()
        .doing("creating a metadata client")?;
    wait_until(
        "replication",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let (_, high) = consumer
                .fetch_watermarks(topic, 0, Duration::from_secs(5))
                .doing("reading watermarks")?;
            Ok((high < at_least)
                .then(|| format!("high watermark {high}, expected {at_least}")))
        },
    )
}

pub(crate) fn wait_for_brokers(cluster: &Cluster, count: usize) -> Result<()> {
    wait_until(
        "broker restart",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let answering =
                crate::cluster::probe(cluster.bootstrap(), Duration::from_secs(3));
            Ok((!answering.is_ok_and(|n| n >= count))
                .then(|| format!("fewer than {count} brokers answer")))
        },
    )
}
