//! The SQLite store: one file, three tables.
//!
//! - `results(id, topic, kafka_partition, kafka_offset)`: one row per record
//!   written; `id` is the primary key only for a [`Table::KeyedById`] store.
//! - `consumed_offsets(topic, kafka_partition, next_offset)`: where the
//!   consumer resumes, for the consumers that keep their offsets here.
//! - `lab_meta(key, value)`: how `results` was created, so a file made for
//!   one kind of table is not reused for the other.
//!
//! Every batch is one `BEGIN IMMEDIATE` transaction: it takes the write lock
//! at once, so two consumers sharing the file (during a rebalance) apply
//! their batches one after the other, each reading the offsets the other
//! committed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::{OffsetWrite, ResultStore, Row, Table};
use crate::error::{Error, Result};

/// How long a writer waits for another one's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A results store in one SQLite file.
pub struct SqliteStore {
    file: PathBuf,
    conn: Connection,
    table: Table,
}

/// `error` as the lab's error: the file, what was being done, SQLite's
/// reason, and what to do.
fn database_error(file: &Path, doing: &str, error: rusqlite::Error) -> Error {
    let hint = match error.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => {
            "The file or its folder is read-only: make both writable, or choose another file."
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "Another process holds the database locked: stop it, or choose another file."
        }
        Some(ErrorCode::CannotOpen) => {
            "SQLite cannot open the file: check that its folder exists and that you may write there."
        }
        Some(ErrorCode::NotADatabase) => {
            "The file is not an SQLite database: choose another file name."
        }
        _ => "Nothing of the failed transaction was kept; fix the cause and run again.",
    };
    Error::Database {
        file: file.to_path_buf(),
        doing: doing.to_string(),
        cause: error.to_string(),
        hint,
    }
}

impl SqliteStore {
    /// Opens (creating if need be) the store in `file`, its results table
    /// keyed as `table` says. A missing folder, a read-only or locked file,
    /// or a file created for the other kind of table is an error naming the
    /// file; nothing is written then.
    pub fn open(file: &Path, table: Table) -> Result<SqliteStore> {
        SqliteStore::open_waiting(file, table, BUSY_TIMEOUT)
    }

    /// [`open`](Self::open), waiting at most `busy` for another process's
    /// lock on the file (in every later transaction too).
    pub fn open_waiting(
        file: &Path,
        table: Table,
        busy: Duration,
    ) -> Result<SqliteStore> {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(Error::Database {
                    file: file.to_path_buf(),
                    doing: "opening".into(),
                    cause: format!("the folder {} does not exist", dir.display()),
                    hint:
                        "Create the folder first, or choose a file in an existing one.",
                });
            }
        }
        let fail = |doing: &'static str| move |e| database_error(file, doing, e);
        let conn = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(fail("opening"))?;
        conn.busy_timeout(busy)
            .map_err(fail("setting the busy timeout"))?;
        let mut store = SqliteStore {
            file: file.to_path_buf(),
            conn,
            table,
        };
        store.create_tables()?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// How the results table is keyed.
    pub fn table(&self) -> Table {
        self.table
    }

    fn fail<'a>(
        &'a self,
        doing: &'a str,
    ) -> impl FnOnce(rusqlite::Error) -> Error + 'a {
        move |e| database_error(&self.file, doing, e)
    }

    /// Creates the tables if they are not there, in one transaction, and
    /// checks that an existing results table is keyed as asked.
    fn create_tables(&mut self) -> Result<()> {
        let file = &self.file.clone();
        let fail = |doing: &'static str| move |e| database_error(file, doing, e);
        let key = match self.table {
            Table::Plain => "",
            Table::KeyedById => " PRIMARY KEY",
        };
        let wanted = format!("{:?}", self.table);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail("creating the tables"))?;
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS lab_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS results (
                 id INTEGER NOT NULL{key}, topic TEXT NOT NULL,
                 kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS consumed_offsets (
                 topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL,
                 next_offset INTEGER NOT NULL, PRIMARY KEY (topic, kafka_partition));
             INSERT OR IGNORE INTO lab_meta VALUES ('results_table', '{wanted}');"
        ))
        .map_err(fail("creating the tables"))?;
        let made: String = tx
            .query_row(
                "SELECT value FROM lab_meta WHERE key = 'results_table'",
                [],
                |r| r.get(0),
            )
            .map_err(fail("reading how the results table was made"))?;
        if made != wanted {
            return Err(Error::Database {
                file: self.file.clone(),
                doing: "opening".into(),
                cause: format!("its results table is {made}, not {wanted}"),
                hint: "Each variant needs a fresh file: delete this one or choose another name.",
            });
        }
        tx.commit().map_err(fail("creating the tables"))
    }
}

impl ResultStore for SqliteStore {
    // ANCHOR: apply
    fn apply(
        &mut self,
        rows: &[Row],
        offsets: Option<OffsetWrite>,
        before_commit: &mut dyn FnMut(),
    ) -> Result<Vec<Row>> {
        let file = &self.file.clone();
        let fail = |doing: &'static str| move |e| database_error(file, doing, e);
        let insert = match self.table {
            Table::Plain => {
                "INSERT INTO results (id, topic, kafka_partition, kafka_offset)
                 VALUES (?1, ?2, ?3, ?4)"
            }
            Table::KeyedById => {
                "INSERT INTO results (id, topic, kafka_partition, kafka_offset)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE
                 SET topic = ?2, kafka_partition = ?3, kafka_offset = ?4"
            }
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail("beginning a transaction"))?;
        if offsets == Some(OffsetWrite::CompareAndSet)
            && !still_ours(&tx, rows).map_err(fail("compare-and-set of the offsets"))?
        {
            return Ok(Vec::new()); // dropped: rolled back, nothing written
        }
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let mut applied = Vec::new();
        for row in rows {
            if offsets == Some(OffsetWrite::SkipApplied) {
                let key = (row.topic.clone(), row.partition);
                if !next.contains_key(&key) {
                    let stored = stored_offset(&tx, &row.topic, row.partition)
                        .map_err(fail("reading the stored offsets"))?;
                    next.insert(key.clone(), stored.unwrap_or(0));
                }
                let slot = next.get_mut(&key).expect("inserted above");
                if row.offset < *slot {
                    continue; // applied already, by this consumer or another
                }
            }
            if offsets.is_some() {
                next.insert((row.topic.clone(), row.partition), row.offset + 1);
            }
            tx.execute(
                insert,
                params![row.id as i64, row.topic, row.partition, row.offset],
            )
            .map_err(fail("writing a result row"))?;
            applied.push(row.clone());
        }
        for ((topic, partition), offset) in &next {
            tx.execute(
                "INSERT INTO consumed_offsets VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic, kafka_partition) DO UPDATE SET next_offset = ?3",
                params![topic, partition, offset],
            )
            .map_err(fail("storing the consumed offsets"))?;
        }
        before_commit();
        tx.commit().map_err(fail("committing a batch"))?;
        Ok(applied)
    }
    // ANCHOR_END: apply

    fn stored_offsets(&mut self, topic: &str) -> Result<BTreeMap<i32, i64>> {
        let mut query = self
            .conn
            .prepare("SELECT kafka_partition, next_offset FROM consumed_offsets WHERE topic = ?1")
            .map_err(self.fail("reading the stored offsets"))?;
        let rows = query
            .query_map([topic], |r| Ok((r.get::<_, i32>(0)?, r.get::<_, i64>(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<BTreeMap<_, _>>>());
        rows.map_err(|e| database_error(&self.file, "reading the stored offsets", e))
    }

    fn ids(&mut self) -> Result<Vec<u64>> {
        let mut query = self
            .conn
            .prepare("SELECT id FROM results")
            .map_err(self.fail("reading the results"))?;
        let ids = query
            .query_map([], |r| r.get::<_, i64>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>());
        ids.map(|ids| ids.into_iter().map(|id| id as u64).collect())
            .map_err(|e| database_error(&self.file, "reading the results", e))
    }
}

/// The next offset stored for one partition, inside `tx`.
fn stored_offset(
    tx: &rusqlite::Transaction<'_>,
    topic: &str,
    partition: i32,
) -> rusqlite::Result<Option<i64>> {
    match tx.query_row(
        "SELECT next_offset FROM consumed_offsets WHERE topic = ?1 AND kafka_partition = ?2",
        params![topic, partition],
        |r| r.get(0),
    ) {
        Ok(offset) => Ok(Some(offset)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e),
    }
}

// ANCHOR: compare_and_set
/// The fence of [`OffsetWrite::CompareAndSet`], inside the batch's
/// transaction: each partition's stored offset moves from the batch's first
/// offset to its next one only if it still is the first one (no row yet:
/// the partition's first batch). False if any partition had moved on: the
/// caller then drops the transaction.
fn still_ours(tx: &rusqlite::Transaction<'_>, rows: &[Row]) -> rusqlite::Result<bool> {
    let mut span: BTreeMap<(&str, i32), (i64, i64)> = BTreeMap::new();
    for row in rows {
        let (first, next) = span
            .entry((row.topic.as_str(), row.partition))
            .or_insert((row.offset, row.offset + 1));
        *first = (*first).min(row.offset);
        *next = (*next).max(row.offset + 1);
    }
    for ((topic, partition), (first, next)) in span {
        let moved = tx.execute(
            "UPDATE consumed_offsets SET next_offset = ?4
             WHERE topic = ?1 AND kafka_partition = ?2 AND next_offset = ?3",
            params![topic, partition, first, next],
        )?;
        let added = moved == 0
            && tx.execute(
                "INSERT INTO consumed_offsets VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic, kafka_partition) DO NOTHING",
                params![topic, partition, next],
            )? == 1;
        if moved == 0 && !added {
            return Ok(false);
        }
    }
    Ok(true)
}
// ANCHOR_END: compare_and_set

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("lab-sqlite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const SKIP: Option<OffsetWrite> = Some(OffsetWrite::SkipApplied);

    fn row(id: u64, partition: i32, offset: i64) -> Row {
        Row {
            id,
            topic: "t".into(),
            partition,
            offset,
        }
    }

    #[test]
    fn a_plain_table_keeps_every_write_and_a_keyed_one_each_id_once() {
        let dir = dir("kinds");
        let batch = [row(1, 0, 0), row(2, 0, 1)];
        let mut plain = SqliteStore::open(&dir.join("plain.db"), Table::Plain).unwrap();
        let mut keyed =
            SqliteStore::open(&dir.join("keyed.db"), Table::KeyedById).unwrap();
        for store in [&mut plain, &mut keyed] {
            for _ in 0..2 {
                store.apply(&batch, None, &mut || {}).unwrap();
            }
        }
        let mut ids = plain.ids().unwrap();
        ids.sort_unstable();
        assert_eq!(ids, [1, 1, 2, 2]);
        assert_eq!(keyed.ids().unwrap().len(), 2);
        // A file made for one kind is refused for the other, by name.
        drop(plain);
        let err = SqliteStore::open(&dir.join("plain.db"), Table::KeyedById)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("plain.db") && err.contains("Plain"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn offsets_kept_with_the_rows_skip_what_was_applied_and_roll_back_with_them() {
        let dir = dir("offsets");
        let file = dir.join("o.db");
        let mut store = SqliteStore::open(&file, Table::Plain).unwrap();
        let first = [row(10, 0, 0), row(11, 0, 1), row(20, 1, 0)];
        assert_eq!(store.apply(&first, SKIP, &mut || {}).unwrap().len(), 3);
        // Read again (a crash, or a batch from before a rebalance): only the new one.
        let again = [row(11, 0, 1), row(12, 0, 2)];
        let applied = store.apply(&again, SKIP, &mut || {}).unwrap();
        assert_eq!(applied, [row(12, 0, 2)]);
        assert_eq!(
            store.stored_offsets("t").unwrap(),
            BTreeMap::from([(0, 3), (1, 1)])
        );
        // A batch whose transaction never commits leaves neither rows nor offsets.
        let mut other = SqliteStore::open(&file, Table::Plain).unwrap();
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            other.apply(&[row(13, 0, 3)], SKIP, &mut || panic!("killed"))
        }));
        assert!(failed.is_err());
        drop(other);
        assert_eq!(store.ids().unwrap().len(), 4);
        assert_eq!(store.stored_offsets("t").unwrap()[&0], 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_late_batch_moves_the_offsets_back_unless_the_store_compares_them_first() {
        let dir = dir("late");
        let ahead = [row(0, 0, 0), row(1, 0, 1), row(2, 0, 2), row(3, 0, 3)];
        // Read from offset 0 before another consumer took the partition to 4.
        let late = [row(0, 0, 0), row(1, 0, 1)];
        let cases = [
            (OffsetWrite::Overwrite, 6, 2, 2),
            (OffsetWrite::SkipApplied, 4, 4, 0),
            (OffsetWrite::CompareAndSet, 4, 4, 0),
        ];
        for (write, rows, offset, applied) in cases {
            let file = dir.join(format!("{write}.db"));
            let mut store = SqliteStore::open(&file, Table::Plain).unwrap();
            // A first batch with nothing stored yet passes the compare-and-set.
            let first =
                store.apply(&ahead, Some(OffsetWrite::CompareAndSet), &mut || {});
            assert_eq!(first.unwrap().len(), 4);
            let got = store.apply(&late, Some(write), &mut || {}).unwrap();
            assert_eq!(got.len(), applied, "{write}");
            assert_eq!(store.ids().unwrap().len(), rows, "{write}");
            assert_eq!(store.stored_offsets("t").unwrap()[&0], offset, "{write}");
        }
        // The batch that does start at the stored offset goes through.
        let mut store =
            SqliteStore::open(&dir.join("compare-and-set.db"), Table::Plain).unwrap();
        let next = [row(4, 0, 4), row(9, 1, 7)];
        let got = store.apply(&next, Some(OffsetWrite::CompareAndSet), &mut || {});
        assert_eq!(got.unwrap().len(), 2);
        assert_eq!(
            store.stored_offsets("t").unwrap(),
            BTreeMap::from([(0, 5), (1, 8)])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_that_cannot_be_opened_or_written_says_which_file_and_why() {
        let dir = dir("bad");
        let err = SqliteStore::open(&dir.join("nowhere/x.db"), Table::Plain)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("nowhere/x.db") && err.contains("Create the folder"),
            "{err}"
        );

        // Locked by another connection: both opening and writing say so, and
        // the failed batch leaves nothing behind.
        let file = dir.join("locked.db");
        let wait = Duration::from_millis(200);
        let mut store = SqliteStore::open_waiting(&file, Table::Plain, wait).unwrap();
        let other = Connection::open(&file).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let err = SqliteStore::open_waiting(&file, Table::Plain, wait)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("locked.db") && err.contains("locked"), "{err}");
        let err = store
            .apply(&[row(1, 0, 0)], SKIP, &mut || {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("locked.db") && err.contains("stop it"),
            "{err}"
        );
        other.execute_batch("ROLLBACK").unwrap();
        assert!(store.ids().unwrap().is_empty());
        assert!(store.stored_offsets("t").unwrap().is_empty());

        let not_db = dir.join("notes.txt");
        std::fs::write(&not_db, "not a database, just text that is long enough")
            .unwrap();
        let err = SqliteStore::open(&not_db, Table::Plain)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("notes.txt") && err.contains("not an SQLite database"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
