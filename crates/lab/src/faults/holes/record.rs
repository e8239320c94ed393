//! Both holes measured once, as the book records them, and the table the
//! book shows.

use serde::{Deserialize, Serialize};

use super::late_produce::{
    late_produce, LateCase, LateProduceOptions, LateProduceReport,
};
use super::stale_metadata::{stale_metadata, MetadataUse, StaleMetadataReport};
use crate::cluster::Cluster;
use crate::error::Result;

/// One measurement of every hole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolesRecord {
    /// The cluster, as [`Cluster::describe`] says.
    pub cluster: String,
    pub late: Vec<LateProduceReport>,
    pub metadata: Vec<StaleMetadataReport>,
}

/// Runs (a) in both cases, with the broker's partition verification as it
/// is configured (on) and then turned off, and (c) both ways (about two
/// minutes).
pub fn measure_holes(cluster: &Cluster) -> Result<HolesRecord> {
    let mut late = Vec::new();
    for verification in [None, Some(false)] {
        for case in LateCase::ALL {
            let options = LateProduceOptions {
                verification,
                ..LateProduceOptions::new(case)
            };
            late.push(late_produce(cluster, &options)?);
        }
    }
    let mut metadata = Vec::new();
    for m in [MetadataUse::TakenOnce, MetadataUse::FreshPerCommit] {
        metadata.push(stale_metadata(cluster, m)?);
    }
    Ok(HolesRecord {
        cluster: cluster.describe(),
        late,
        metadata,
    })
}

/// The book's table: one row per run, what the client did, what Kafka
/// answered, what a read_committed reader saw.
pub fn holes_markdown(record: &HolesRecord) -> String {
    let mut out = String::from(
        "| Hole | Run | What the client did | Kafka's answer | read_committed reader |\n\
         |---|---|---|---|---|\n",
    );
    for r in &record.late {
        let run = match r.case {
            LateCase::Retried => "request timed out, records still valid",
            LateCase::Expired => "records timed out",
        };
        // `transaction.partition.verification.enable`, in words that wrap.
        let verification = if r.verification == "false" {
            "off"
        } else {
            "on"
        };
        let run = format!("{run}; partition verification {verification}");
        let client = if r.t1_committed {
            "sent the batch again, committed T1".to_string()
        } else {
            "aborted T1 (commit failed: records timed out)".to_string()
        };
        let (t1, _) = r.committed_seen.get("T1").copied().unwrap_or((0, 0));
        let (t2, _) = r.committed_seen.get("T2").copied().unwrap_or((0, 0));
        out.push_str(&format!(
            "| (a) late Produce of T1 | {run} | {client} | `{}` to the request that arrived {:.1} s after T1 ended, T2 open on its partition (epoch {}, sequence {}) | T1: {t1} of 10 ids, T2: {t2} of 10; {} anomalies |\n",
            r.late_errors.join(", "),
            r.arrived_after_t1_ms as f64 / 1000.0,
            r.held.batches.first().map_or(-1, |b| b.producer_epoch as i32),
            r.held.batches.first().map_or(-1, |b| b.base_sequence),
            r.anomalies,
        ));
    }
    for r in &record.metadata {
        let run = match r.metadata {
            MetadataUse::TakenOnce => "metadata taken once, at the start",
            MetadataUse::FreshPerCommit => "metadata taken fresh per commit",
        };
        let answer = if r.errors.is_empty() {
            "accepted every time".to_string()
        } else {
            let codes: Vec<String> = r
                .errors
                .keys()
                .map(|e| e.split(" (").next().unwrap_or(e).to_string())
                .collect();
            format!(
                "`{}` to {} of {} transactions after the rebalance",
                codes.join(", "),
                r.errors.values().sum::<u64>(),
                r.tried_after_rebalance
            )
        };
        out.push_str(&format!(
            "| (c) group metadata | {run} | committed {} transactions ({} after the rebalance), aborted {} | {answer} | {} of {} ids missing, {} duplicated |\n",
            r.committed, r.committed_after_rebalance, r.aborted, r.missing, r.records, r.duplicated,
        ));
    }
    out
}
