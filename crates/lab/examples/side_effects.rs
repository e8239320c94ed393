//! Side effects outside Kafka: the two designs that survive a batch delivered
//! twice.
//!
//! Shows: a write to another system (a database, here) cannot join a Kafka
//! transaction, so a consumer that crashes after the write and before its
//! commit gets the same batch again. Two designs make that harmless: store the
//! consumed offsets with the result in the database's own transaction, or key
//! every write by message id so that repeating it changes nothing.
//!
//! A model, not a Kafka run: no broker is needed. A JSON file stands in for the
//! database (one atomic file replace is one database transaction), and "the
//! batch comes again after a crash" is simulated by reopening the database from
//! disk, as a new process would, and handing it the same batch. Run it:
//!
//!     cargo run -p lab --example side_effects
//!
//! The book's chapter "Exactly-once: side effects outside Kafka" includes the
//! anchored parts.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a consumer took from one partition in one poll.
struct Batch {
    partition: i32,
    first_offset: i64,
    /// Message ids, one per record, in offset order.
    ids: Vec<u64>,
}

// ANCHOR: database
/// The external system: result rows keyed by message id, and, in the same
/// store, the next offset to read per partition.
#[derive(Default, Serialize, Deserialize)]
struct Database {
    rows: BTreeMap<u64, String>,
    next_offsets: BTreeMap<i32, i64>,
}

impl Database {
    fn open(path: &Path) -> Database {
        fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// One transaction: write everything to a new file, then rename it over
    /// the old one. A crash leaves either the old state or the new, never half.
    fn commit(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_string(self)?)?;
        fs::rename(&tmp, path)
    }
}
// ANCHOR_END: database

// ANCHOR: keyed_write
/// Design 1: an idempotent write. The row's key is the message id, so
/// writing the same message again replaces a row with an identical one.
fn write_keyed(db: &mut Database, batch: &Batch) {
    for id in &batch.ids {
        db.rows.insert(*id, format!("result of {id}"));
    }
}
// ANCHOR_END: keyed_write

// ANCHOR: offsets_with_result
/// Design 2: the offsets travel with the result. Records below the stored
/// next offset were already applied and are skipped; the rest are written,
/// and the new next offset goes into the same database transaction.
fn write_with_offsets(db: &mut Database, batch: &Batch) {
    let next = db.next_offsets.get(&batch.partition).copied().unwrap_or(0);
    for (i, id) in batch.ids.iter().enumerate() {
        let offset = batch.first_offset + i as i64;
        if offset >= next {
            db.rows.insert(*id, format!("result of {id}"));
        }
    }
    let end = batch.first_offset + batch.ids.len() as i64;
    db.next_offsets.insert(batch.partition, next.max(end));
}

/// Where a restarted consumer starts: the database says, not the group's
/// committed offsets (it would `assign` the partition and seek there).
fn resume_at(db: &Database, partition: i32) -> i64 {
    db.next_offsets.get(&partition).copied().unwrap_or(0)
}
// ANCHOR_END: offsets_with_result

/// A scratch file for the stand-in database, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "lab-side-effects-{}-{name}.json",
            std::process::id()
        ));
        let _ = fs::remove_file(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn main() -> std::io::Result<()> {
    let batch = Batch {
        partition: 0,
        first_offset: 40,
        ids: (1000..1005).collect(),
    };

    // ANCHOR: redelivery
    // Design 1. The first process writes the batch, then dies before it
    // commits its offsets to Kafka. A new process gets the same batch.
    let keyed = Scratch::new("keyed");
    let mut db = Database::open(&keyed.0);
    write_keyed(&mut db, &batch);
    db.commit(&keyed.0)?;
    let mut db = Database::open(&keyed.0); // the restart: state from disk only
    write_keyed(&mut db, &batch);
    db.commit(&keyed.0)?;
    println!(
        "keyed write: {} rows for {} messages",
        db.rows.len(),
        batch.ids.len()
    );
    assert_eq!(db.rows.len(), batch.ids.len());

    // Design 2. Same crash. The new process asks the database where to start,
    // and the batch it would have read again lies behind that point.
    let stored = Scratch::new("offsets");
    let mut db = Database::open(&stored.0);
    write_with_offsets(&mut db, &batch);
    db.commit(&stored.0)?;
    let mut db = Database::open(&stored.0);
    let start = resume_at(&db, batch.partition);
    println!("offsets with the result: resume partition 0 at offset {start}");
    assert_eq!(start, batch.first_offset + batch.ids.len() as i64);
    // Even if the batch is handed over again (say, the consumer seeked by the
    // group's committed offset by mistake), the stored offsets filter it out.
    write_with_offsets(&mut db, &batch);
    db.commit(&stored.0)?;
    assert_eq!(db.rows.len(), batch.ids.len());
    // ANCHOR_END: redelivery
    Ok(())
}
