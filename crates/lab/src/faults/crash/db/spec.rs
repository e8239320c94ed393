//! The orders of a database-sink worker, and the names of its variants and
//! of the steps it can die between.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sink::{OffsetWrite, Table};

/// How a consumer writes each record to the database, and when it tells
/// Kafka it is done: the five consumers of the side-effects scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DbVariant {
    /// Insert the rows, send the notifications, then commit the offsets to
    /// Kafka: the naive pattern.
    RowThenCommit,
    /// Commit the offsets to Kafka, then insert the rows and notify.
    CommitThenRow,
    /// Upsert the rows keyed by record id, notify, then commit to Kafka.
    UpsertThenCommit,
    /// Rows and the consumed offsets in one database transaction; Kafka's
    /// committed offsets ignored; on every assignment the consumer starts
    /// where the database says.
    OffsetsInDb,
    /// A Kafka transaction (output records and consumed offsets) wrapped
    /// around the database write.
    KafkaTransaction,
}

impl DbVariant {
    pub const ALL: [DbVariant; 5] = [
        DbVariant::RowThenCommit,
        DbVariant::CommitThenRow,
        DbVariant::UpsertThenCommit,
        DbVariant::OffsetsInDb,
        DbVariant::KafkaTransaction,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            DbVariant::RowThenCommit => "row-then-commit",
            DbVariant::CommitThenRow => "commit-then-row",
            DbVariant::UpsertThenCommit => "upsert-then-commit",
            DbVariant::OffsetsInDb => "offsets-in-db",
            DbVariant::KafkaTransaction => "kafka-transaction",
        }
    }

    /// The variant named `text`, by name or by its number (1 to 5).
    pub fn parse(text: &str) -> Result<DbVariant> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        DbVariant::ALL
            .into_iter()
            .enumerate()
            .find(|(i, v)| v.name() == wanted || (i + 1).to_string() == wanted)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                Error::BadConfig(format!(
                    "unknown database variant {text:?}: use one of {} (or 1 to 5)",
                    DbVariant::ALL.map(DbVariant::name).join(", ")
                ))
            })
    }

    /// What the variant does, in a few words (table rows).
    pub fn label(self) -> &'static str {
        match self {
            DbVariant::RowThenCommit => "1. row, then Kafka commit",
            DbVariant::CommitThenRow => "2. Kafka commit, then row",
            DbVariant::UpsertThenCommit => "3. upsert by id, then Kafka commit",
            DbVariant::OffsetsInDb => "4. offsets in the database transaction",
            DbVariant::KafkaTransaction => "5. Kafka transaction around the write",
        }
    }

    /// How its results table is keyed.
    pub fn table(self) -> Table {
        match self {
            DbVariant::UpsertThenCommit => Table::KeyedById,
            _ => Table::Plain,
        }
    }

    /// The two steps its two killed workers die after, in order: the
    /// points where its order of steps leaves the database and Kafka
    /// disagreeing.
    pub fn crash_steps(self) -> [DbStep; 2] {
        match self {
            DbVariant::RowThenCommit
            | DbVariant::UpsertThenCommit
            | DbVariant::KafkaTransaction => {
                [DbStep::AfterDbCommit, DbStep::AfterNotify]
            }
            DbVariant::CommitThenRow => {
                [DbStep::AfterKafkaCommit, DbStep::AfterDbCommit]
            }
            DbVariant::OffsetsInDb => [DbStep::InDbTransaction, DbStep::AfterDbCommit],
        }
    }
}

impl std::fmt::Display for DbVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DbVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DbVariant::parse(s)
    }
}

/// A point in a batch's steps where a worker may be killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DbStep {
    /// Rows (and offsets) written, the database transaction still open.
    InDbTransaction,
    /// The database transaction committed; no notification sent yet.
    AfterDbCommit,
    /// The batch's notifications sent; Kafka not told yet.
    AfterNotify,
    /// The offsets committed to Kafka; the database not written yet.
    AfterKafkaCommit,
}

impl DbStep {
    /// Where the worker was, in words.
    pub fn describe(self) -> &'static str {
        match self {
            DbStep::InDbTransaction => "inside the database transaction, before its commit",
            DbStep::AfterDbCommit => "just after the database commit, before the notifications",
            DbStep::AfterNotify => {
                "after the database commit and the notifications, before the Kafka commit"
            }
            DbStep::AfterKafkaCommit => "just after the Kafka commit, before the database write",
        }
    }
}

/// A database-sink worker: consume `input` in `group` into the database
/// `db` and the notifications log `notifications`, as `variant` does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbSinkSpec {
    pub variant: DbVariant,
    pub bootstrap: String,
    pub input: String,
    /// The Kafka-transaction variant's output topic.
    pub output: Option<String>,
    pub group: String,
    pub db: PathBuf,
    pub notifications: PathBuf,
    /// Per partition of `input`: the offset after its last record.
    pub end_offsets: Vec<i64>,
    /// Records per batch.
    pub batch: usize,
    /// A pause between taking each batch and writing it, in milliseconds
    /// (processing time: a second instance joins while the first is at
    /// work, and partitions move while batches are held).
    pub pace_ms: u64,
    /// Die at this step of the batch that holds the worker's Nth record.
    pub crash: Option<(u64, DbStep)>,
    /// How the offsets-in-database variant's transaction keeps the offsets.
    #[serde(default)]
    pub offset_write: OffsetWrite,
    /// Stop (SIGSTOP) just after taking the batch that holds the worker's
    /// Nth record, before its database transaction, once its process id is
    /// in the file; the parent resumes it (SIGCONT).
    #[serde(default)]
    pub pause: Option<(u64, PathBuf)>,
}

impl DbSinkSpec {
    /// Refuses orders the worker cannot carry out as written.
    pub fn check(&self) -> Result<()> {
        if (self.variant == DbVariant::KafkaTransaction) != self.output.is_some() {
            return Err(Error::BadConfig(
                "the kafka-transaction variant, and only it, writes to an output topic"
                    .into(),
            ));
        }
        if self.pause.is_some() && self.variant != DbVariant::OffsetsInDb {
            return Err(Error::BadConfig(
                "only the offsets-in-db variant's worker pauses".into(),
            ));
        }
        if self.batch == 0 {
            return Err(Error::BadConfig("a batch holds at least one record".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_by_name_or_number_and_an_unknown_one_lists_them() {
        for (i, v) in DbVariant::ALL.into_iter().enumerate() {
            assert_eq!(v.name().parse::<DbVariant>().unwrap(), v);
            assert_eq!((i + 1).to_string().parse::<DbVariant>().unwrap(), v);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        let err = "6".parse::<DbVariant>().unwrap_err().to_string();
        assert!(err.contains("row-then-commit, commit-then-row"), "{err}");
        assert_eq!(DbVariant::UpsertThenCommit.table(), Table::KeyedById);
    }
}
