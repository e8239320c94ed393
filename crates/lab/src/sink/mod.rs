//! Stores outside Kafka that a consumer writes its results to: a database
//! behind the small [`ResultStore`] trait ([`sqlite::SqliteStore`] is the one
//! the course ships: SQLite compiled into the lab, nothing to install), and
//! an append-only log of notifications sent ([`Notifications`]), the kind of
//! side effect no transaction can take back.
//!
//! Nothing here knows Kafka: a record is its id and where it was read
//! (topic, partition, offset), and offsets are plain numbers the store keeps
//! when asked to.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Doing, Result};

pub mod sqlite;

pub use sqlite::SqliteStore;

/// One consumed record as a store sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The record's id (the key the producer gave it, never its offset).
    pub id: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// How the results table is keyed, chosen when the store is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Table {
    /// No key: every write adds a row, so a record written twice is two rows.
    Plain,
    /// The record id is the primary key and every write is an upsert: a
    /// record written twice is one row.
    KeyedById,
}

/// How a batch's transaction keeps the consumed offsets beside its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OffsetWrite {
    /// Leaves out every row below the offset the store holds for its
    /// partition, and moves each offset only forward.
    #[default]
    SkipApplied,
    /// Writes every row and sets each partition's offset to the batch's
    /// next one, whatever the store held: the transaction as it is usually
    /// written.
    Overwrite,
    /// Writes the batch only if, for each of its partitions, the store still
    /// holds the batch's first offset (or nothing yet): a compare-and-set on
    /// the offsets row. Otherwise it writes nothing: another consumer has
    /// moved the partition on, and this one no longer owns it.
    CompareAndSet,
}

impl OffsetWrite {
    pub const ALL: [OffsetWrite; 3] = [
        OffsetWrite::SkipApplied,
        OffsetWrite::Overwrite,
        OffsetWrite::CompareAndSet,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            OffsetWrite::SkipApplied => "skip-applied",
            OffsetWrite::Overwrite => "overwrite",
            OffsetWrite::CompareAndSet => "compare-and-set",
        }
    }

    /// What the transaction does with the offsets, in a few words.
    pub fn label(self) -> &'static str {
        match self {
            OffsetWrite::SkipApplied => "rows below the stored offset left out",
            OffsetWrite::Overwrite => "offsets overwritten",
            OffsetWrite::CompareAndSet => "offsets compare-and-set",
        }
    }
}

impl std::fmt::Display for OffsetWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for OffsetWrite {
    type Err = crate::Error;
    fn from_str(text: &str) -> Result<OffsetWrite> {
        OffsetWrite::ALL
            .into_iter()
            .find(|w| w.name() == text.trim())
            .ok_or_else(|| {
                crate::Error::BadConfig(format!(
                    "unknown way to write offsets {text:?}: use one of {}",
                    OffsetWrite::ALL.map(OffsetWrite::name).join(", ")
                ))
            })
    }
}

/// A store of results, written a batch at a time, each batch in one
/// transaction of the store.
pub trait ResultStore {
    /// Writes `rows` in one transaction. With `offsets`, the same transaction
    /// also keeps, per partition, the offset after the last record applied,
    /// as [`OffsetWrite`] says ([`OffsetWrite::SkipApplied`]: every row below
    /// the offset already held is left out, a batch read before a rebalance
    /// moved the partition, or read again after a crash).
    /// `before_commit` runs with the transaction open, all written.
    /// Returns the rows applied, in order (none: a compare-and-set refused).
    fn apply(
        &mut self,
        rows: &[Row],
        offsets: Option<OffsetWrite>,
        before_commit: &mut dyn FnMut(),
    ) -> Result<Vec<Row>>;

    /// The offsets the store keeps for `topic`: partition -> next offset.
    fn stored_offsets(&mut self, topic: &str) -> Result<BTreeMap<i32, i64>>;

    /// Every id in the results table, one entry per row.
    fn ids(&mut self) -> Result<Vec<u64>>;
}

/// An append-only file of notifications sent (an email, a push message): one
/// id per line, one `write(2)` per batch, so what was sent before a SIGKILL
/// stays sent. Nothing can take a line back.
pub struct Notifications {
    path: PathBuf,
    file: fs::File,
}

impl Notifications {
    /// Opens `path` for appending, creating it.
    pub fn open(path: &Path) -> Result<Notifications> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .doing(format!(
                "cannot open the notifications log {} (does its folder exist, may we write it?)",
                path.display()
            ))?;
        Ok(Notifications {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Sends one notification per id.
    pub fn send(&mut self, ids: &[u64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
        self.file
            .write_all(text.as_bytes())
            .doing(format!("cannot append to {}", self.path.display()))
    }

    /// The ids notified so far in the log at `path`, one entry per
    /// notification (none if there is no log yet).
    pub fn read(path: &Path) -> Result<Vec<u64>> {
        match fs::read_to_string(path) {
            Ok(text) => {
                Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(crate::Error::Io {
                doing: format!("cannot read the notifications log {}", path.display()),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_append_and_read_back_in_order() {
        let dir =
            std::env::temp_dir().join(format!("lab-notify-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sent.log");
        assert!(Notifications::read(&path).unwrap().is_empty());
        let mut log = Notifications::open(&path).unwrap();
        log.send(&[3, 4]).unwrap();
        log.send(&[]).unwrap();
        drop(log);
        Notifications::open(&path).unwrap().send(&[3]).unwrap();
        assert_eq!(Notifications::read(&path).unwrap(), [3, 4, 3]);
        let err = Notifications::open(&dir.join("missing/sent.log"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing/sent.log"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
