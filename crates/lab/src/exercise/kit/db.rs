//! The kit's side of the database exercise (`offsets-in-database`): the
//! grader's SQLite file, the database commit the grader's crashes fall
//! around, and the consumer context that starts each assigned partition
//! where the learner's `start_from` says.
//!
//! The learner writes two things: the database transaction of a batch (its
//! rows, and whatever else belongs in it), and `start_from`, asked for every
//! partition of every assignment (at the start and after each rebalance).
//! The kit applies the answers before any record of the assignment is
//! fetched: that is the seek.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::bindings::rd_kafka_resp_err_t as RespErr;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use super::{Entry, Kit, Step};
use crate::error::{Error, Result};
use crate::support::lock;

/// How long a database call waits for another process's lock.
const BUSY: Duration = Duration::from_secs(10);

/// The learner's answer to "where does this partition start?": given the
/// database, the topic and the partition, the offset to start from
/// (`Offset::Stored`: the group's committed offset in Kafka).
pub type StartFromFn = fn(&Connection, &str, i32) -> rusqlite::Result<Offset>;

/// Partitions a rebalance took away since [`drop_revoked`] last looked.
static REVOKED: Mutex<Vec<(String, i32)>> = Mutex::new(Vec::new());

/// Leaves out of `batch` the records of partitions a rebalance has taken
/// away since the last call.
pub(super) fn drop_revoked(batch: &mut Vec<BorrowedMessage<'_>>) {
    let revoked = std::mem::take(&mut *lock(&REVOKED));
    if !revoked.is_empty() {
        batch.retain(|m| {
            !revoked
                .iter()
                .any(|(t, p)| t == m.topic() && *p == m.partition())
        });
    }
}

fn database_error(file: &Path, doing: &str, e: rusqlite::Error) -> Error {
    Error::Database {
        file: file.to_path_buf(),
        doing: doing.into(),
        cause: e.to_string(),
        hint:
            "Check the SQL against the tables results(id, topic, kafka_partition, \
               kafka_offset) and consumed_offsets(topic, kafka_partition, next_offset).",
    }
}

/// The consumer context of the database exercise: on every assignment it
/// asks the learner's `start_from` for each partition and starts it there.
pub struct StartFrom {
    start_from: StartFromFn,
    database: PathBuf,
    journal: PathBuf,
}

impl Kit {
    /// Database exercises: a connection to the grader's SQLite file, which
    /// holds the (empty) tables `results(id, topic, kafka_partition,
    /// kafka_offset)` and `consumed_offsets(topic, kafka_partition,
    /// next_offset)`, the latter's primary key `(topic, kafka_partition)`.
    /// Its transactions begin IMMEDIATE (they take the write lock at once)
    /// and wait up to 10 s for another process's lock.
    pub fn database(&self) -> Result<Connection> {
        let file = self.database_file()?;
        let mut conn =
            Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_WRITE)
                .map_err(|e| database_error(file, "opening", e))?;
        conn.busy_timeout(BUSY)
            .map_err(|e| database_error(file, "setting the busy timeout", e))?;
        conn.set_transaction_behavior(TransactionBehavior::Immediate);
        Ok(conn)
    }

    fn database_file(&self) -> Result<&PathBuf> {
        self.spec.database.as_ref().ok_or_else(|| {
            Error::BadConfig(format!(
                "the exercise {} has no database: kit.database() is for \
                 offsets-in-database",
                self.spec.exercise
            ))
        })
    }

    /// `tx.commit()`: commits a database transaction. The grader's crash
    /// may fall right before the commit (the transaction is then rolled
    /// back) or right after it.
    pub fn commit_db(&mut self, tx: rusqlite::Transaction<'_>) -> Result<()> {
        let file = self.database_file()?.clone();
        let (rows, offsets) = committed_state(&tx, &self.spec.input)
            .map_err(|e| database_error(&file, "reading the transaction's rows", e))?;
        self.after(Step::BeforeDbCommit);
        tx.commit()
            .map_err(|e| database_error(&file, "committing a transaction", e))?;
        let _ = self.write(&Entry::DbCommitted { rows, offsets });
        self.after(Step::DbCommit);
        std::thread::sleep(Duration::from_millis(self.spec.pace_ms));
        Ok(())
    }

    /// The consumer context to create the consumer with
    /// (`config.create_with_context(kit.start_from(start_from))`): on every
    /// assignment, each partition starts where `start_from` says.
    pub fn start_from(&self, start_from: StartFromFn) -> StartFrom {
        StartFrom {
            start_from,
            database: self.spec.database.clone().unwrap_or_default(),
            journal: self.spec.journal.clone(),
        }
    }

    /// Whether the offsets the database keeps reach the end of every input
    /// partition.
    pub(super) fn stored_to_the_end(&mut self) -> rusqlite::Result<bool> {
        let Some(file) = &self.spec.database else {
            return Ok(false);
        };
        if self.db_reader.is_none() {
            let conn =
                Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            conn.busy_timeout(BUSY)?;
            self.db_reader = Some(conn);
        }
        let conn = self.db_reader.as_ref().expect("just opened");
        let stored = stored_offsets(conn, &self.spec.input)?;
        Ok(self.spec.input_end.iter().enumerate().all(|(p, end)| {
            *end == 0 || stored.iter().any(|(q, at)| *q == p as i32 && at >= end)
        }))
    }
}

/// The rows of the results table and the offsets kept for `topic`, as a
/// transaction sees them.
fn committed_state(
    conn: &Connection,
    topic: &str,
) -> rusqlite::Result<(u64, Vec<(i32, i64)>)> {
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))?;
    Ok((rows as u64, stored_offsets(conn, topic)?))
}

/// The offsets `consumed_offsets` keeps for `topic`: (partition, next offset).
pub fn stored_offsets(
    conn: &Connection,
    topic: &str,
) -> rusqlite::Result<Vec<(i32, i64)>> {
    let mut query = conn.prepare(
        "SELECT kafka_partition, next_offset FROM consumed_offsets WHERE topic = ?1 \
         ORDER BY kafka_partition",
    )?;
    let rows = query.query_map(params![topic], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

impl StartFrom {
    fn journal(&self, entry: &Entry) {
        let line = serde_json::to_string(entry).expect("an entry serializes") + "\n";
        if let Ok(mut file) = OpenOptions::new().append(true).open(&self.journal) {
            let _ = file.write_all(line.as_bytes());
        }
    }

    /// Sets each partition's start offset from the learner's `start_from`;
    /// an error there ends the program with the error (it cannot be handed
    /// back through the consumer's poll).
    fn start_each(&self, tpl: &mut TopicPartitionList) {
        let fail = |what: String| -> ! {
            eprintln!("{what}");
            std::process::exit(1);
        };
        let conn = Connection::open_with_flags(
            &self.database,
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.busy_timeout(BUSY).map(|()| c))
        .unwrap_or_else(|e| {
            fail(format!(
                "the kit cannot open the database {}: {e}",
                self.database.display()
            ))
        });
        let mut starts = Vec::new();
        for mut element in tpl.elements() {
            let (topic, partition) = (element.topic().to_string(), element.partition());
            let offset =
                (self.start_from)(&conn, &topic, partition).unwrap_or_else(|e| {
                    fail(format!(
                    "your start_from failed for partition {partition} of {topic}: {e}"
                ))
                });
            starts.push((partition, format!("{offset:?}")));
            if let Err(e) = element.set_offset(offset) {
                fail(format!(
                    "partition {partition} cannot start at {offset:?} (from your \
                     start_from): {e}"
                ));
            }
        }
        self.journal(&Entry::Assigned { starts });
    }
}

impl ClientContext for StartFrom {}

impl ConsumerContext for StartFrom {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if err == RespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            self.start_each(tpl);
        } else {
            let gone: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            self.journal(&Entry::Revoked {
                partitions: gone.iter().map(|(_, p)| *p).collect(),
            });
            lock(&REVOKED).extend(gone);
        }
        let result = crate::consume::apply_rebalance(consumer, err, tpl);
        if let Err(e) = result {
            eprintln!("the kit could not apply a rebalance ({err:?}): {e}");
            std::process::exit(1);
        }
    }
}
