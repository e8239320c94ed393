//! Where a producer that reads a source starts again after a crash: each
//! semantic's restart rule, as the book teaches it. The source is the ids
//! `0..n`; the position is the next id to send, kept in a file that is
//! written, then renamed, so a crash never leaves half of one.
//!
//! - at-most-once saves its position *before* it hands a record over, and
//!   continues after the last record it handed over;
//! - at-least-once saves its position *after* the acknowledgements, behind
//!   the longest run of acknowledged ids, every [`CHECKPOINT_EVERY`] records
//!   (its caller waits for every acknowledgement first, see
//!   [`SourcePosition::checkpoint_due`]), and replays from there;
//! - exactly-once keeps no file: a new producer with the same
//!   `transactional.id` fences the dead one, and resumes after the last
//!   record the log holds as committed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use rdkafka::producer::{BaseProducer, ProducerContext};

use crate::cluster::Cluster;
use crate::error::{Doing, Result};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;

/// At-least-once saves its position every this many records, as a source
/// connector saves its offsets on an interval.
pub const CHECKPOINT_EVERY: u64 = 100;

/// A producer's position in its source, kept by its semantic's rule.
pub struct SourcePosition {
    semantic: Semantic,
    file: PathBuf,
    acked: Acked,
}

impl SourcePosition {
    /// The position `semantic` keeps in `file` (a file that does not exist
    /// yet means the start of the source).
    pub fn new(semantic: Semantic, file: &Path) -> SourcePosition {
        SourcePosition {
            semantic,
            file: file.to_path_buf(),
            acked: Acked::new(0),
        }
    }

    /// Where a (re)started producer begins. For exactly-once this also
    /// initialises the producer's transactions.
    pub fn resume<C: ProducerContext>(
        &mut self,
        cluster: &Cluster,
        topic: &str,
        producer: &BaseProducer<C>,
    ) -> Result<u64> {
        // ANCHOR: recover
        let start = match self.semantic {
            Semantic::AtMostOnce | Semantic::AtLeastOnce => read_position(&self.file),
            Semantic::ExactlyOnce => {
                // Fences any earlier instance with this transactional.id and
                // aborts its open transaction, then asks the log what is committed.
                crate::produce::init_transactions(producer)?;
                read_ids(cluster, topic, Isolation::ReadCommitted)?
                    .into_iter()
                    .max()
                    .map_or(0, |id| id + 1)
            }
        };
        // ANCHOR_END: recover
        self.acked = Acked::new(start);
        Ok(start)
    }

    /// Called before record `id` is handed over.
    pub fn before_send(&mut self, id: u64) -> Result<()> {
        // ANCHOR: position_first
        if self.semantic == Semantic::AtMostOnce {
            // Position first, then send: a record is never handed over twice,
            // even if we die right after.
            write_position(&self.file, id + 1)?;
        }
        // ANCHOR_END: position_first
        Ok(())
    }

    /// Whether a checkpoint is due once record `id` is handed over: every
    /// [`CHECKPOINT_EVERY`] records, for at-least-once. The caller then waits
    /// for every acknowledgement and passes them to [`Self::acknowledged`],
    /// which saves the position right after `id`. Without that wait the
    /// checkpoint trails the records in flight, and a crash replays however
    /// many that was: a number timing decides, not the seed.
    pub fn checkpoint_due(&self, id: u64) -> bool {
        self.semantic == Semantic::AtLeastOnce && (id + 1) % CHECKPOINT_EVERY == 0
    }

    /// Called with the ids acknowledged since the last call.
    pub fn acknowledged(&mut self, ids: &[u64]) -> Result<()> {
        // ANCHOR: checkpoint_after_ack
        if self.semantic == Semantic::AtLeastOnce {
            // Only behind acknowledged records: everything before the
            // checkpoint is in Kafka, whatever happens next.
            if let Some(checkpoint) = self.acked.record(ids) {
                write_position(&self.file, checkpoint)?;
            }
        }
        // ANCHOR_END: checkpoint_after_ack
        Ok(())
    }

    /// Called once all `records` of the source are acknowledged.
    pub fn finished(&mut self, records: u64) -> Result<()> {
        if self.semantic == Semantic::AtLeastOnce {
            write_position(&self.file, records)?;
        }
        Ok(())
    }
}

/// The contiguous prefix of acknowledged ids, for at-least-once checkpoints.
struct Acked {
    through: u64,
    pending: BTreeSet<u64>,
    saved: u64,
}

impl Acked {
    fn new(start: u64) -> Acked {
        Acked {
            through: start,
            pending: BTreeSet::new(),
            saved: start,
        }
    }

    /// Adds acknowledged ids; returns a new checkpoint when the prefix has
    /// grown by `CHECKPOINT_EVERY` since the last one.
    fn record(&mut self, ids: &[u64]) -> Option<u64> {
        self.pending.extend(ids.iter().copied());
        while self.pending.remove(&self.through) {
            self.through += 1;
        }
        (self.through >= self.saved + CHECKPOINT_EVERY).then(|| {
            self.saved = self.through;
            self.through
        })
    }
}

fn read_position(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_position(path: &Path, next: u64) -> Result<()> {
    // Write then rename, so a crash never leaves a half-written position.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, next.to_string())
        .and_then(|_| fs::rename(&tmp, path))
        .doing(format!("cannot save the position in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_follow_the_contiguous_prefix_of_acknowledgements() {
        let mut a = Acked::new(0);
        // Acks arrive out of order across partitions; 0 is missing.
        assert_eq!(a.record(&(1..150).collect::<Vec<_>>()), None);
        assert_eq!(a.record(&[0]), Some(150));
        assert_eq!(a.record(&(150..200).collect::<Vec<_>>()), None);
        assert_eq!(a.record(&(200..260).collect::<Vec<_>>()), Some(260));
    }

    #[test]
    fn each_semantic_saves_its_position_by_its_own_rule() {
        let dir =
            std::env::temp_dir().join(format!("lab-position-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let saved = |name: &str| read_position(&dir.join(name));

        // At-most-once: before the send, one past the record handed over.
        let mut at_most = SourcePosition::new(Semantic::AtMostOnce, &dir.join("amo"));
        at_most.before_send(41).unwrap();
        at_most.acknowledged(&(0..500).collect::<Vec<_>>()).unwrap();
        assert_eq!(saved("amo"), 42, "acks do not move at-most-once's position");

        // At-least-once: nothing before the acks; behind them after.
        let mut at_least = SourcePosition::new(Semantic::AtLeastOnce, &dir.join("alo"));
        at_least.before_send(41).unwrap();
        assert_eq!(saved("alo"), 0, "a send alone saves nothing");
        at_least
            .acknowledged(&(0..CHECKPOINT_EVERY).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(saved("alo"), CHECKPOINT_EVERY);
        assert!(at_least.checkpoint_due(CHECKPOINT_EVERY - 1));
        assert!(!at_least.checkpoint_due(CHECKPOINT_EVERY));
        assert!(!at_most.checkpoint_due(CHECKPOINT_EVERY - 1));
        at_least.finished(2000).unwrap();
        assert_eq!(saved("alo"), 2000);

        // Exactly-once keeps no file: the log is its position.
        let mut exactly = SourcePosition::new(Semantic::ExactlyOnce, &dir.join("eos"));
        exactly.before_send(41).unwrap();
        exactly.acknowledged(&(0..500).collect::<Vec<_>>()).unwrap();
        exactly.finished(2000).unwrap();
        assert!(!dir.join("eos").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
