//! Scenario E, exactly-once under stress, on Apache Kafka: the faults that
//! aim at the transaction protocol itself rather than at one Produce request.
//!
//! - [`zombie_fenced`]: a producer stalls inside a transaction; a new
//!   instance with the same `transactional.id` starts, fences it and aborts
//!   its transaction. The zombie's next transactional call fails.
//! - [`lost_end_txn`](fn@lost_end_txn): the coordinator commits, but the
//!   answer to the producer's EndTxn request is lost (the chaos proxy drops
//!   it). The producer times out, retries the commit, and the coordinator
//!   recognises it.
//! - [`transaction_timeout`]: a producer stalls longer than its
//!   `transaction.timeout.ms`; the coordinator aborts the transaction, the
//!   late commit fails, a new instance re-sends what was not committed.
//! - [`open_transaction_holds_back_readers`]: while one producer's
//!   transaction is open, read_committed readers stop at the last stable
//!   offset, even for records of other producers written after it began.
//!
//! Each producer writes ids `0..records` (the source) to one topic, which is
//! then audited: `delivered` is what a read_committed reader sees in it,
//! `aborted in log` what only a read_uncommitted reader sees. librdkafka's
//! mock cluster does not simulate transactions, so every scenario here is
//! refused on it.
//!
//! Each `*_report` function returns the [`Outcome`](crate::Outcome) together with the facts
//! behind it (the error the zombie got, the proxy's counts, the offsets a
//! reader was held at), so tests and notebooks check numbers, not prose.
//!
//! One file a scenario (`zombie.rs`, `lost_end_txn.rs`, `timeout.rs`,
//! `open_transaction.rs`); what they share is in `writer.rs` (transactional
//! producers and their writes), `readers.rs` (readers that do not wait for
//! the end of a partition) and `common.rs` (the start of a run, the audit).

mod common;
mod lost_end_txn;
mod open_transaction;
mod readers;
mod timeout;
mod writer;
mod zombie;

use std::time::Duration;

use crate::error::{Error, Result};

pub use common::TxnError;
pub use lost_end_txn::{lost_end_txn, lost_end_txn_report, LostEndTxnReport};
pub use open_transaction::{
    open_transaction_holds_back_readers, open_transaction_holds_back_readers_report,
    HeldBackReport,
};
pub use readers::read_bounded;
pub use timeout::{transaction_timeout, transaction_timeout_report, TimeoutReport};
pub use zombie::{zombie_fenced, zombie_fenced_report, ZombieReport};
// The monitored run of scenario E4 writes the same way.
pub(crate) use writer::{init_transactional, write_acknowledged, write_open};

/// Records per committed transaction.
pub const TRANSACTION_SIZE: u64 = 100;

/// The client-side timeout of a request in flight in
/// [`lost_end_txn`](fn@lost_end_txn): the lost EndTxn answer is noticed, and
/// the request retried, after this long.
pub const SOCKET_TIMEOUT_MS: &str = "2000";

/// The `transaction.timeout.ms` of the producer that stalls in
/// [`transaction_timeout`]. The coordinator looks for expired transactions
/// every `transaction.abort.timed.out.transaction.cleanup.interval.ms`
/// (10 s by default), so the abort comes 3 to 13 s after the transaction began.
pub const TRANSACTION_TIMEOUT_MS: u64 = 3000;

/// How long a reader of [`open_transaction_holds_back_readers`] keeps reading
/// after it reached every offset it may see, to show that nothing more comes.
pub const GRACE: Duration = Duration::from_secs(1);

const PAYLOAD_BYTES: usize = 100;
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a coordinator may take to abort an expired transaction before
/// the scenario gives up: the timeout, a cleanup interval, and room to spare.
const ABORT_LIMIT: Duration = Duration::from_secs(45);
/// The longest a bounded reader may take to reach the offsets it must reach.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// The workload of a scenario-E run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EosStressOptions {
    /// Source records: ids `0..records`. At least 10.
    pub records: u64,
    /// Chooses how many records the fault catches, and where.
    pub seed: u64,
}

impl EosStressOptions {
    pub fn new(records: u64, seed: u64) -> EosStressOptions {
        EosStressOptions { records, seed }
    }

    fn check(&self) -> Result<()> {
        if self.records < 10 {
            return Err(Error::BadConfig(format!(
                "scenario E needs at least 10 records, not {}",
                self.records
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Cluster;

    #[test]
    fn every_scenario_is_refused_on_the_mock_cluster_with_the_reason() {
        use crate::faults::{Scenario, ScenarioOptions};
        let mock = Cluster::mock().unwrap();
        let options = ScenarioOptions::new(crate::Semantic::ExactlyOnce, 100, 1);
        let stress: Vec<Scenario> = Scenario::ALL
            .into_iter()
            .filter(|s| s.exactly_once_only())
            .collect();
        assert_eq!(stress.len(), 4, "E1 to E4");
        for name in stress {
            let err = name
                .run(&mock, None, &options)
                .err()
                .unwrap_or_else(|| panic!("{name} ran on the mock cluster"));
            assert!(matches!(err, Error::Unsupported { .. }), "{name}: {err}");
            assert!(err.to_string().contains("read_committed"), "{name}: {err}");
        }
    }

    #[test]
    fn too_few_records_are_refused() {
        let err = EosStressOptions::new(9, 1).check().unwrap_err();
        assert!(err.to_string().contains("at least 10"), "{err}");
        EosStressOptions::new(10, 1).check().unwrap();
    }
}
