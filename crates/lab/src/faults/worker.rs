//! The child processes of the crash scenarios: `lab worker produce` and
//! `lab worker consume`. Each reports what it did on stdout, one line per
//! event (each line is written straight to the pipe, so the parent still has
//! it after a SIGKILL), and at its crash point kills itself with SIGKILL.
//!
//! A restarted worker recovers by its semantic's rule, from its own state,
//! the way a real application would:
//! - at-most-once continues after the last record it handed over (it saves
//!   its position *before* handing a record over);
//! - at-least-once replays from its last checkpoint of acknowledged records;
//! - exactly-once starts a new producer with the same `transactional.id`
//!   (which fences the dead one and aborts its open transaction) and resumes
//!   after the last record the log holds as committed.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, Producer};

use crate::audit::{read_ids, Isolation};
use crate::cluster::Cluster;
use crate::consume::{self, Sink};
use crate::error::{Doing, Result};
use crate::faults::die_now;
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::semantics::Semantic;

/// At-least-once saves its position every this many acknowledged records, as
/// a source connector saves its offsets on an interval.
pub const CHECKPOINT_EVERY: u64 = 100;

/// Exactly-once commits a transaction every this many records.
pub const TRANSACTION_SIZE: u64 = 100;

/// Consumer settings of the crash scenarios: a dead member leaves the group
/// after 6 s (the broker's minimum) instead of 45 s, so its replacement gets
/// the partitions quickly.
pub fn crash_consumer_overrides() -> Vec<(String, String)> {
    vec![("session.timeout.ms".into(), "6000".into())]
}

/// Arguments of `lab worker produce`.
#[derive(Clone, Debug, clap::Args)]
pub struct ProduceWorker {
    #[arg(long)]
    pub semantic: crate::Semantic,
    #[arg(long)]
    pub bootstrap: String,
    #[arg(long)]
    pub topic: String,
    /// Ids 0..records make up the source.
    #[arg(long)]
    pub records: u64,
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// The worker's own durable state (its position in the source).
    #[arg(long)]
    pub state: PathBuf,
    /// Die with SIGKILL at record id N (see the module docs for where exactly).
    #[arg(long)]
    pub crash_at: Option<u64>,
    /// Extra producer settings KEY=VALUE.
    #[arg(long = "producer-set", value_parser = parse_key_value)]
    pub overrides: Vec<(String, String)>,
}

/// Arguments of `lab worker consume`.
#[derive(Clone, Debug, clap::Args)]
pub struct ConsumeWorker {
    #[arg(long)]
    pub semantic: crate::Semantic,
    #[arg(long)]
    pub bootstrap: String,
    #[arg(long)]
    pub input: String,
    /// Exactly-once: the output topic.
    #[arg(long)]
    pub output: Option<String>,
    #[arg(long)]
    pub group: String,
    /// At-most-once and at-least-once: processed ids are appended here.
    #[arg(long)]
    pub sink: PathBuf,
    /// Die with SIGKILL in the gap between the two steps of the batch that
    /// holds this worker's Nth record.
    #[arg(long)]
    pub crash_at: Option<u64>,
}

pub fn parse_key_value(text: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// One line to the parent. `println!` writes each line through to the pipe.
fn report(line: std::fmt::Arguments<'_>) {
    println!("{line}");
}

/// `lab worker produce`.
pub fn produce(w: &ProduceWorker) -> Result<()> {
    let cluster = Cluster::connect(&w.bootstrap)?;
    let transactional_id = format!("{}-producer", w.topic);
    let config = w.semantic.producer_config(
        cluster.bootstrap(),
        Some(&transactional_id),
        &w.overrides,
    )?;
    let log = Arc::new(DeliveryLog::with_callback(|id, result| match result {
        Ok(()) => report(format_args!("acked {id}")),
        Err(f) => report(format_args!("failed {id} {:?}", f.status)),
    }));
    let producer: BaseProducer<LoggingContext> = config
        .create_with_context(LoggingContext(log.clone()))
        .doing("creating the producer")?;

    let start = match w.semantic {
        Semantic::AtMostOnce | Semantic::AtLeastOnce => read_state(&w.state),
        Semantic::ExactlyOnce => {
            // Fences any earlier instance with this transactional.id and
            // aborts its open transaction, then asks the log what is committed.
            producer
                .init_transactions(Duration::from_secs(30))
                .doing("initialising transactions")?;
            read_ids(&cluster, &w.topic, Isolation::ReadCommitted)?
                .into_iter()
                .max()
                .map_or(0, |id| id + 1)
        }
    };
    report(format_args!("resumed {start}"));

    let mut acked = Acked::new(start);
    let transactional = w.semantic == Semantic::ExactlyOnce;
    if transactional {
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
    }
    for id in start..w.records {
        if w.semantic == Semantic::AtMostOnce {
            // Position first, then send: a record is never handed over twice,
            // even if we die right after.
            write_state(&w.state, id + 1)?;
        }
        produce::send(&producer, &w.topic, id, w.payload_bytes)?;
        report(format_args!("handed {id}"));
        if w.crash_at == Some(id) {
            match w.semantic {
                // The record sits in the client's buffer (linger.ms): gone.
                Semantic::AtMostOnce => die_now(),
                // Acknowledged, but the checkpoint is not saved yet.
                Semantic::AtLeastOnce | Semantic::ExactlyOnce => {
                    producer.flush(Duration::from_secs(60)).doing("flushing")?;
                    die_now()
                }
            }
        }
        match w.semantic {
            Semantic::AtMostOnce => {}
            Semantic::AtLeastOnce => {
                let (ids, _) = log.take();
                if let Some(checkpoint) = acked.record(&ids) {
                    write_state(&w.state, checkpoint)?;
                }
            }
            Semantic::ExactlyOnce => {
                if (id + 1) % TRANSACTION_SIZE == 0 {
                    produce::commit(&producer)?;
                    report(format_args!("committed {id}"));
                    producer
                        .begin_transaction()
                        .doing("beginning a transaction")?;
                }
            }
        }
    }
    if transactional {
        produce::commit(&producer)?;
        report(format_args!("committed {}", w.records.saturating_sub(1)));
    } else {
        producer.flush(Duration::from_secs(330)).doing("flushing")?;
        if w.semantic == Semantic::AtLeastOnce {
            write_state(&w.state, w.records)?;
        }
    }
    report(format_args!("done"));
    Ok(())
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

fn read_state(path: &PathBuf) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_state(path: &PathBuf, next: u64) -> Result<()> {
    // Write then rename, so a crash never leaves a half-written position.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, next.to_string())
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| {
            crate::Error::BadConfig(format!(
                "cannot save state in {}: {e}",
                path.display()
            ))
        })
}

/// The consumer worker's sink: a file of processed ids, one per line.
struct FileSink {
    file: fs::File,
    crash_at: Option<u64>,
}

impl Sink for FileSink {
    fn process(&mut self, ids: &[u64]) -> Result<()> {
        let mut text = String::new();
        for id in ids {
            text += &format!("{id}\n");
        }
        // One write(2): in the kernel's page cache, it survives our SIGKILL.
        self.file.write_all(text.as_bytes()).map_err(|e| {
            crate::Error::BadConfig(format!("cannot write the sink: {e}"))
        })?;
        report(format_args!("processed {}", ids.len()));
        Ok(())
    }

    fn between_steps(&mut self, consumed: u64, batch: &[u64]) {
        if self.crash_at.is_some_and(|k| consumed >= k) {
            // The batch caught in the gap: the parent's fault window.
            for id in batch {
                report(format_args!("in-gap {id}"));
            }
            die_now();
        }
    }
}

/// `lab worker consume`.
pub fn consume(w: &ConsumeWorker) -> Result<()> {
    let cluster = Cluster::connect(&w.bootstrap)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&w.sink)
        .map_err(|e| {
            crate::Error::BadConfig(format!("cannot open {}: {e}", w.sink.display()))
        })?;
    let mut sink = FileSink {
        file,
        crash_at: w.crash_at,
    };
    consume::consume(
        &cluster,
        w.semantic,
        &w.input,
        w.output.as_deref(),
        &w.group,
        &crash_consumer_overrides(),
        &mut sink,
        &mut |_| {},
    )?;
    report(format_args!("done"));
    Ok(())
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
}
