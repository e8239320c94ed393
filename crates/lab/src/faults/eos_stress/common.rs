//! What the scenarios share besides their writers and readers: how a
//! transactional call failed, the start of a run, and the audit that turns
//! what the producers did into an [`Outcome`].

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::{EosStressOptions, PAYLOAD_BYTES};
use crate::audit;
use crate::cluster::Cluster;
use crate::error::Result;
use crate::outcome::{FaultWindow, Outcome};
use crate::produce::{DeliveryLog, Failure};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;

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
    pub(crate) fn of(error: &KafkaError) -> TxnError {
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

/// How a commit that Kafka must refuse ended, in words: `what` failed with
/// the error, or SUCCEEDED (which Kafka must never allow).
pub(super) fn commit_verdict(what: &str, error: &Option<TxnError>) -> String {
    match error {
        Some(e) => format!("{what} failed with {e}"),
        None => format!("{what} SUCCEEDED"),
    }
}

/// The start of every scenario: refuses the mock cluster and too small a
/// workload, then creates a fresh topic of `partitions` named after `name`.
/// Returns the topic and when the run began: its produce time counts from
/// there, topic creation included.
pub(super) fn begin(
    cluster: &Cluster,
    options: &EosStressOptions,
    name: &str,
    partitions: i32,
) -> Result<(String, Instant)> {
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    options.check()?;
    let started = Instant::now();
    let topic = cluster.fresh_name(name);
    cluster.create_topic(&topic, partitions)?;
    Ok((topic, started))
}

/// What the producers of a scenario did, for [`audited`].
pub(super) struct Produced<'a> {
    pub records: u64,
    pub sent: u64,
    pub logs: &'a [&'a Arc<DeliveryLog>],
    /// The ids of the transaction the fault ended in an abort, if it did.
    pub aborted: Option<Range<u64>>,
    pub fault: String,
    pub produce_seconds: f64,
}

/// Reads `topic` back both ways and counts, by id, what happened.
pub(super) fn audited(
    cluster: &Cluster,
    topic: &str,
    produced: Produced<'_>,
) -> Result<Outcome> {
    let mut acknowledged = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    for log in produced.logs {
        let (acked, failed) = log.take();
        acknowledged.extend(acked);
        failures.extend(failed);
    }
    let in_log = read_ids(cluster, topic, Isolation::ReadCommitted)?;
    let in_log_uncommitted = read_ids(cluster, topic, Isolation::ReadUncommitted)?;
    let aborted = produced.aborted.filter(|ids| !ids.is_empty());
    let mut outcome = Outcome {
        fault: Some(produced.fault),
        payload_bytes: PAYLOAD_BYTES,
        // What fits this scenario's timeline: the records of the transaction
        // the fault ended in an abort, if it did.
        window: aborted.clone().map(|ids| {
            FaultWindow::span("written in a transaction that was then aborted", ids)
        }),
        failures,
        produce_seconds: produced.produce_seconds,
        // No consumer stage: the producers' topic is read back by the audit.
        consume_seconds: 0.0,
        ..Outcome::new(
            cluster,
            Semantic::ExactlyOnce,
            produced.records,
            topic.to_string(),
        )
    };
    outcome.record_audit(&audit::Observed {
        source: produced.records,
        sent: produced.sent,
        acknowledged: &acknowledged,
        in_log: &in_log,
        in_log_uncommitted: &in_log_uncommitted,
        delivered: &in_log,
        aborted: &aborted.unwrap_or_default().collect::<Vec<u64>>(),
    });
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_error_keeps_librdkafkas_classification() {
        let e =
            TxnError::of(&KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull));
        assert_eq!(e.code, RDKafkaErrorCode::QueueFull);
        assert!(!e.fatal && !e.requires_abort);
        assert!(e.to_string().starts_with("QueueFull"), "{e}");
    }

    #[test]
    fn an_aborted_range_is_the_same_window_as_its_ids() {
        let label = "written in a transaction that was then aborted";
        assert_eq!(
            FaultWindow::span(label, 3..17),
            FaultWindow::of_ids(label, (3..17).collect(), 0)
        );
    }
}
