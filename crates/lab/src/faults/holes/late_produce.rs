//! Hole (a): a Produce request of a finished transaction that reaches the
//! broker late, while the producer's next transaction is open.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::Producer;
use serde::{Deserialize, Serialize};

use super::broker_config::{
    broker_setting, first_broker_id, SettingGuard, VERIFICATION,
};
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::eos_stress::{init_transactional, write_open, TxnError};
use crate::faults::proxy::{error_name, now_ms, ApiKey, ChaosProxy, HeldRequest};
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;

/// Records per transaction: T0 writes ids 0..10, T1 10..20, T2 20..30.
pub const PER_TRANSACTION: u64 = 10;

/// How the client gives up on the held request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LateCase {
    /// `socket.timeout.ms` (2 s) ends the request while its records still
    /// have time: librdkafka reconnects and sends them again, T1 commits.
    Retried,
    /// `message.timeout.ms` (3 s) ends the records themselves: T1 can only
    /// be aborted.
    Expired,
}

impl LateCase {
    pub const ALL: [LateCase; 2] = [LateCase::Retried, LateCase::Expired];

    fn timeouts(self) -> [(&'static str, &'static str); 2] {
        match self {
            LateCase::Retried => [
                ("socket.timeout.ms", "2000"),
                ("message.timeout.ms", "30000"),
            ],
            LateCase::Expired => [
                ("socket.timeout.ms", "30000"),
                ("message.timeout.ms", "3000"),
            ],
        }
    }
}

/// The workload of one late-Produce run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateProduceOptions {
    pub case: LateCase,
    /// How long the proxy holds T1's Produce request (longer than T1 lasts).
    pub hold: Duration,
    /// Turn the broker's partition verification off for this run (set back
    /// when it ends). None: leave the broker as it is.
    pub verification: Option<bool>,
}

impl LateProduceOptions {
    pub fn new(case: LateCase) -> LateProduceOptions {
        LateProduceOptions {
            case,
            hold: Duration::from_secs(10),
            verification: None,
        }
    }
}

/// What one late-Produce run saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateProduceReport {
    pub case: LateCase,
    pub topic: String,
    /// `transaction.partition.verification.enable` during the run.
    pub verification: String,
    /// How T1 ended: "committed", or the commit's error and "aborted".
    pub t1_end: String,
    pub t1_committed: bool,
    /// T2 committed (it was open when the held request arrived).
    pub t2_committed: bool,
    /// The held request and the broker's answer to it.
    pub held: HeldRequest,
    /// The broker's answer, by name (`INVALID_TXN_STATE`, `NONE`: appended).
    pub late_errors: Vec<String>,
    /// Milliseconds between the end of T1 and the held request reaching the
    /// broker (positive: after T1 ended).
    pub arrived_after_t1_ms: i64,
    /// Whether T2 was open (begun, records written, not yet committed) when
    /// the held request reached the broker.
    pub arrived_during_t2: bool,
    /// A read_committed reader, per transaction: how many of its ids it saw,
    /// and how many times in all (T0, T1, T2).
    pub committed_seen: BTreeMap<String, (u64, u64)>,
    /// Ids a read_uncommitted reader sees that a read_committed one does not.
    pub aborted_in_log: u64,
    /// T1's ids visible to a read_committed reader although T1 aborted, plus
    /// ids seen more than once: 0 unless the late request got in.
    pub anomalies: u64,
    /// Delivery failures the client reported, by error text.
    pub delivery_failures: BTreeMap<String, u64>,
}

/// Runs hole (a) once: see the module's documentation and the book's section
/// "Holes a client can still fall into".
pub fn late_produce(
    cluster: &Cluster,
    options: &LateProduceOptions,
) -> Result<LateProduceReport> {
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    let broker = first_broker_id(cluster)?;
    let _guard = match options.verification {
        Some(on) => Some(SettingGuard::set(
            cluster,
            broker,
            VERIFICATION,
            &on.to_string(),
        )?),
        None => None,
    };
    let verification = broker_setting(cluster, broker, VERIFICATION)?;
    let topic = cluster.fresh_name("hole-late-produce");
    cluster.create_topic(&topic, 1)?;
    let proxy = ChaosProxy::start(cluster.bootstrap())?;
    let log = Arc::new(DeliveryLog::default());
    let overrides: Vec<(String, String)> = options
        .case
        .timeouts()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = Semantic::ExactlyOnce.producer_config(
        &proxy.bootstrap(),
        Some(&format!("{topic}-producer")),
        &overrides,
    )?;
    let producer = init_transactional(config, log.clone())?;
    // T0 warms the connections up.
    write_open(&producer, &topic, 0..PER_TRANSACTION)?;
    produce::commit(&producer)?;
    let (t1_end, t1_committed, t1_ended_at) =
        late_t1(&producer, &proxy, &topic, options.hold)?;
    let t2_began_at = now_ms();
    write_open(&producer, &topic, 2 * PER_TRANSACTION..3 * PER_TRANSACTION)?;
    let held = wait_for_answer(&proxy, options.hold + Duration::from_secs(20))?;
    let forwarded = held.forwarded_at_ms.unwrap_or(0);
    let t2_committed = produce::commit(&producer).is_ok();
    drop(producer);
    drop(proxy);
    let mut report = LateProduceReport {
        case: options.case,
        topic: topic.clone(),
        verification,
        t1_end,
        t1_committed,
        t2_committed,
        late_errors: held.error_codes.iter().map(|&c| error_name(c)).collect(),
        arrived_after_t1_ms: forwarded as i64 - t1_ended_at as i64,
        arrived_during_t2: forwarded >= t2_began_at,
        held,
        committed_seen: BTreeMap::new(),
        aborted_in_log: 0,
        anomalies: 0,
        delivery_failures: BTreeMap::new(),
    };
    audit(cluster, &topic, &log, &mut report)?;
    Ok(report)
}

/// T1: its Produce request is held by the proxy; the commit waits for it and
/// either succeeds (after a retry) or fails, and then T1 is aborted. Returns
/// how T1 ended, whether it committed, and when it ended.
fn late_t1(
    producer: &rdkafka::producer::BaseProducer<LoggingContext>,
    proxy: &ChaosProxy,
    topic: &str,
    hold: Duration,
) -> Result<(String, bool, u64)> {
    producer.begin_transaction().doing("beginning T1")?;
    proxy.inject_request_hold(ApiKey::Produce, 1, hold);
    let t1 = PER_TRANSACTION..2 * PER_TRANSACTION;
    for id in t1 {
        produce::send(producer, topic, id, 100)?;
    }
    // Deliveries either arrive (after a retry) or fail: both are reported.
    let _ = produce::drain(producer, Duration::from_secs(60));
    match producer.commit_transaction(Duration::from_secs(60)) {
        Ok(()) => Ok(("committed".into(), true, now_ms())),
        Err(e) => {
            let error = TxnError::of(&e);
            producer
                .abort_transaction(Duration::from_secs(60))
                .doing("aborting T1 after its commit failed")?;
            Ok((
                format!("commit failed with {error}; aborted"),
                false,
                now_ms(),
            ))
        }
    }
}

/// Waits until the held request has been answered by the broker.
fn wait_for_answer(proxy: &ChaosProxy, limit: Duration) -> Result<HeldRequest> {
    let mut answered = None;
    crate::support::wait_until(
        "held request",
        limit,
        Duration::from_millis(100),
        || {
            answered = proxy
                .stats()
                .held
                .into_iter()
                .next()
                .filter(|h| h.answered_at_ms.is_some());
            Ok(answered.is_none().then(|| {
                "the held Produce request has no answer from the broker yet".to_string()
            }))
        },
    )?;
    answered.ok_or_else(|| Error::BadConfig("no held request".into()))
}

/// Reads the topic back both ways and counts, per transaction.
fn audit(
    cluster: &Cluster,
    topic: &str,
    log: &DeliveryLog,
    report: &mut LateProduceReport,
) -> Result<()> {
    let committed = read_ids(cluster, topic, Isolation::ReadCommitted)?;
    let uncommitted = read_ids(cluster, topic, Isolation::ReadUncommitted)?;
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for &id in &committed {
        *counts.entry(id).or_insert(0) += 1;
    }
    for (t, name) in ["T0", "T1", "T2"].iter().enumerate() {
        let ids = t as u64 * PER_TRANSACTION..(t as u64 + 1) * PER_TRANSACTION;
        let distinct = ids.clone().filter(|id| counts.contains_key(id)).count() as u64;
        let total: u64 = ids.filter_map(|id| counts.get(&id)).sum();
        report
            .committed_seen
            .insert(name.to_string(), (distinct, total));
    }
    report.aborted_in_log = uncommitted.len().saturating_sub(committed.len()) as u64;
    let duplicates: u64 = counts.values().map(|&n| n - 1).sum();
    let t1_leaked = if report.t1_committed {
        0
    } else {
        report.committed_seen["T1"].0
    };
    report.anomalies = duplicates + t1_leaked;
    let (_, failed) = log.take();
    for f in failed {
        *report.delivery_failures.entry(f.error.clone()).or_insert(0) += 1;
    }
    Ok(())
}
