//! The child processes of the crash scenarios: `lab worker '<spec>'`, a
//! producer or a consumer as its [`WorkerSpec`] orders. Each reports what it
//! did on stdout as [`Event`]s, one line each (each line is written straight
//! to the pipe, so the parent still has it after a SIGKILL), and at its crash
//! point kills itself with SIGKILL.
//!
//! A restarted producer worker recovers by its semantic's rule, from its own
//! state, the way a real application would: [`crate::recovery`] keeps the
//! rules.
//!
//! A consumer worker can also run one of the variants of scenario C
//! (`variant`, see [`ConsumerVariant`]): the auto-commit consumer and
//! librdkafka's store-after-processing pattern, each dying on either side of
//! an auto-commit, and the at-least-once consumer behind a set of seen ids,
//! kept in memory or with the results.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer};

use super::protocol::{
    AutoCommitCrash, ConsumeSpec, ConsumerVariant, Event, ProduceSpec, WorkerSpec,
};
use super::topic_sink::TopicSink;
use crate::cluster::Cluster;
use crate::consume::{self, AutoCommitStep, ConsumeSetup, GroupOffsets, Sink};
use crate::error::{Doing, Result};
use crate::faults::die_now;
use crate::group_protocol::GroupProtocol;
use crate::liveness::BrokerWatch;
use crate::offset_store::{self, StoreAfterProcessingSink, StoredOffsets};
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::recovery::SourcePosition;
use crate::semantics::Semantic;

/// Exactly-once commits a transaction every this many records.
pub const TRANSACTION_SIZE: u64 = 100;

/// Consumer settings of the crash scenarios: a dead member leaves the group
/// after 6 s (the broker's minimum) instead of 45 s, so its replacement gets
/// the partitions quickly.
pub fn crash_consumer_overrides() -> Vec<(String, String)> {
    crash_consumer_overrides_for(GroupProtocol::Classic)
}

/// [`crash_consumer_overrides`] for a consumer speaking `protocol`. Under the
/// consumer protocol (KIP-848) the session timeout is the broker's
/// (`group.consumer.session.timeout.ms`, 45 s by default, and a group may not
/// go below `group.consumer.min.session.timeout.ms`): librdkafka refuses
/// `session.timeout.ms` there.
pub fn crash_consumer_overrides_for(protocol: GroupProtocol) -> Vec<(String, String)> {
    match protocol {
        GroupProtocol::Classic => vec![
            protocol.setting(),
            ("session.timeout.ms".into(), "6000".into()),
        ],
        GroupProtocol::Consumer => vec![protocol.setting()],
    }
}

/// The paused processor's `transaction.timeout.ms`: longer than any pause
/// the zombie scenario makes (the broker's longest session timeout, 60 s by
/// default, and the successor's work), so that it is the group that fences
/// the zombie, not the transaction coordinator's timeout.
pub const ZOMBIE_TRANSACTION_TIMEOUT_MS: u64 = 180_000;

/// The error code of a Kafka error, by librdkafka's name for it
/// (`UNKNOWN_MEMBER_ID`), or the error's kind if it has none.
pub fn error_code_name(error: &crate::Error) -> String {
    let code = match error {
        crate::Error::Kafka { source, .. } => source.rdkafka_error_code(),
        _ => None,
    };
    let Some(code) = code else {
        return "no Kafka error code".into();
    };
    // RDKafkaErrorCode's names are librdkafka's, in CamelCase.
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// Parses `KEY=VALUE`, as the `--producer-set` flags of `lab` write a setting.
/// (Kept here, where the bench's flag finds it; the workers get their
/// overrides already parsed, in their [`ProduceSpec`].)
pub fn parse_key_value(text: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// One line to the parent. `println!` writes each line through to the pipe.
fn report(event: Event) {
    println!("{}", event.to_line());
}

/// `lab worker '<spec>'`: runs the worker the spec orders.
pub fn run(spec: &WorkerSpec) -> Result<()> {
    match spec {
        WorkerSpec::Produce(spec) => produce(spec),
        WorkerSpec::Consume(spec) => consume(spec),
        WorkerSpec::DbSink(spec) => told(super::db::worker::run(spec)),
    }
}

/// `result`, after telling the parent, if no broker answers, as an event:
/// the parent then gives the same error and stops the worker at once (a
/// client whose broker is gone takes seconds to close).
fn told<T>(result: Result<T>) -> Result<T> {
    if let Err(crate::Error::NoBroker {
        bootstrap,
        waited,
        doing,
        cause,
    }) = &result
    {
        report(Event::NoBroker {
            bootstrap: bootstrap.clone(),
            waited_ms: waited.as_millis() as u64,
            doing: doing.clone(),
            cause: cause.clone(),
        });
    }
    result
}

/// The producer worker.
pub fn produce(w: &ProduceSpec) -> Result<()> {
    let cluster = told(Cluster::connect(&w.bootstrap))?;
    let (producer, log) = reporting_producer(&cluster, w)?;
    // Told while the producer is still there.
    told(produce_source(w, &cluster, &producer, &log))
}

/// The producer worker's work, on its producer: resume, send the rest of
/// the source, die at the crash point if there is one.
fn produce_source(
    w: &ProduceSpec,
    cluster: &Cluster,
    producer: &BaseProducer<LoggingContext>,
    log: &DeliveryLog,
) -> Result<()> {
    let mut watch = cluster.watch(format!("producing to {}", w.topic));
    let mut heard = 0;

    let mut position = SourcePosition::new(w.semantic, &w.state);
    let start = position.resume(cluster, &w.topic, producer)?;
    report(Event::Resumed { id: start });

    if w.semantic == Semantic::ExactlyOnce {
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
    }
    for id in start..w.records {
        position.before_send(id)?;
        if w.crash_at == Some(id) {
            // Told before the send, so that nothing stands between the send
            // and the kill: at-most-once's record must still be in the buffer.
            report(Event::Handed { id });
            produce::send_watched(producer, &w.topic, id, w.payload_bytes, &mut watch)?;
            die_after_handing(w.semantic, producer)?;
        }
        produce::send_watched(producer, &w.topic, id, w.payload_bytes, &mut watch)?;
        report(Event::Handed { id });
        produce::listen(log, &mut heard, &mut watch)?;
        let (acknowledged, _) = log.take();
        position.acknowledged(&acknowledged)?;
        if position.checkpoint_due(id) {
            // Flush, then save: every record handed over is acknowledged, so
            // the checkpoint lands exactly here and a crash after it replays
            // less than one interval, whatever the timing.
            produce::drain_watched(producer, Duration::from_secs(60), &mut watch)?;
            let (acknowledged, _) = log.take();
            position.acknowledged(&acknowledged)?;
        }
        if w.semantic == Semantic::ExactlyOnce && (id + 1) % TRANSACTION_SIZE == 0 {
            produce::commit_watched(producer, &mut watch)?;
            report(Event::Committed { through: id });
            producer
                .begin_transaction()
                .doing("beginning a transaction")?;
        }
    }
    finish(w, producer, &mut watch)?;
    position.finished(w.records)?;
    report(Event::Done);
    Ok(())
}

/// The semantic's producer, reporting each acknowledgement and failure to
/// the parent as it arrives; the log keeps the acknowledged ids for
/// at-least-once's checkpoints.
fn reporting_producer(
    cluster: &Cluster,
    w: &ProduceSpec,
) -> Result<(BaseProducer<LoggingContext>, Arc<DeliveryLog>)> {
    let transactional_id = format!("{}-producer", w.topic);
    let config = w.semantic.producer_config(
        cluster.bootstrap(),
        Some(&transactional_id),
        &w.overrides,
    )?;
    let log = Arc::new(DeliveryLog::with_callback(|id, result| match result {
        Ok(()) => report(Event::Acked { id }),
        Err(f) => report(Event::Failed {
            id,
            status: f.status,
        }),
    }));
    let producer = config
        .create_with_context(LoggingContext(log.clone()))
        .doing("creating the producer")?;
    Ok((producer, log))
}

/// The producer's crash point, just after handing a record over. Returns
/// only if the flush before dying fails.
fn die_after_handing(
    semantic: Semantic,
    producer: &BaseProducer<LoggingContext>,
) -> Result<()> {
    match semantic {
        // The record sits in the client's buffer (linger.ms): gone.
        Semantic::AtMostOnce => die_now(),
        // Acknowledged, but the checkpoint is not saved yet.
        Semantic::AtLeastOnce | Semantic::ExactlyOnce => {
            produce::flush(producer, Duration::from_secs(60))?;
            die_now()
        }
    }
}

/// The end of the source: exactly-once commits its last transaction; the
/// others wait for every acknowledgement, and at-least-once saves its final
/// checkpoint.
fn finish(
    w: &ProduceSpec,
    producer: &BaseProducer<LoggingContext>,
    watch: &mut BrokerWatch,
) -> Result<()> {
    if w.semantic == Semantic::ExactlyOnce {
        produce::commit_watched(producer, watch)?;
        report(Event::Committed {
            through: w.records.saturating_sub(1),
        });
    } else {
        produce::flush_watched(producer, Duration::from_secs(330), watch)?;
    }
    Ok(())
}

/// How long a crash hook waits for the auto-commit timer: three intervals,
/// and then some for a slow broker.
const AUTO_COMMIT_WAIT: Duration = Duration::from_secs(25);

// ANCHOR: seen_ids
/// A processor that remembers the ids of the records processed so far; a
/// record whose id is among them is skipped.
struct SeenIds {
    ids: HashSet<u64>,
}

impl SeenIds {
    /// As the usual recipe keeps them: in memory, so every new process
    /// starts with none.
    fn in_memory() -> SeenIds {
        SeenIds {
            ids: HashSet::new(),
        }
    }

    /// Kept with the results: the sink holds each processed id, written in
    /// the same write as the result, so a restarted process reads back every
    /// id the dead one processed, and none it did not.
    fn from_results(sink: &Path) -> Result<SeenIds> {
        let text = match fs::read_to_string(sink) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(crate::Error::Io {
                    doing: format!("cannot read the results in {}", sink.display()),
                    source,
                })
            }
        };
        let ids = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        Ok(SeenIds { ids })
    }

    /// The ids of `batch` not seen before, now marked as seen.
    fn unseen(&mut self, batch: &[u64]) -> Vec<u64> {
        batch
            .iter()
            .copied()
            .filter(|id| self.ids.insert(*id))
            .collect()
    }
}
// ANCHOR_END: seen_ids

/// The consumer worker's sink: a file of processed ids, one per line.
struct FileSink {
    file: fs::File,
    semantic: Semantic,
    crash_at: Option<u64>,
    /// The variants with a seen-id set: skip records whose id is in it.
    seen: Option<SeenIds>,
    /// The auto-commit variants: which side of an auto-commit to die on.
    crash_when: Option<AutoCommitCrash>,
    /// Processed-not-committed: a commit has just covered everything so far;
    /// die after the next batch is processed.
    armed: bool,
    /// Records in the batch being processed, before any were skipped.
    batch: usize,
    /// When the worker started, and whether its first batch was reported.
    started: Instant,
    first_reported: bool,
    /// Exactly-once's zombie: stop inside the transaction of this record's
    /// batch, once the process id is in the file.
    pause_at: Option<(u64, std::path::PathBuf)>,
    paused: bool,
    /// Kafka refused a transaction after the pause.
    refused: bool,
    /// A slow processor's pause per record, between its two steps.
    pause_per_record: Duration,
}

impl FileSink {
    /// Opens the spec's sink for appending, with the variant's seen ids
    /// (read back from the sink when they are kept with the results).
    fn open(w: &ConsumeSpec, semantic: Semantic) -> Result<FileSink> {
        let seen = match w.variant {
            Some(ConsumerVariant::DedupInMemory) => Some(SeenIds::in_memory()),
            Some(ConsumerVariant::DedupDurable) => {
                Some(SeenIds::from_results(&w.sink)?)
            }
            Some(
                ConsumerVariant::AutoCommit | ConsumerVariant::StoreAfterProcessing,
            )
            | None => None,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&w.sink)
            .doing(format!("cannot open {}", w.sink.display()))?;
        Ok(FileSink {
            file,
            semantic,
            crash_at: w.crash_at,
            seen,
            crash_when: w.crash_when,
            armed: false,
            batch: 0,
            started: Instant::now(),
            first_reported: false,
            pause_at: w.pause_at.clone(),
            paused: false,
            refused: false,
            pause_per_record: Duration::from_micros(w.pause_per_record_us.unwrap_or(0)),
        })
    }
}

impl Sink for FileSink {
    fn process(&mut self, ids: &[u64]) -> Result<()> {
        self.batch = ids.len();
        let fresh = match &mut self.seen {
            Some(seen) => seen.unseen(ids),
            None => ids.to_vec(),
        };
        if fresh.len() < ids.len() {
            report(Event::Skipped {
                records: (ids.len() - fresh.len()) as u64,
            });
        }
        let mut text = String::new();
        for id in &fresh {
            text += &format!("{id}\n");
        }
        // One write(2): in the kernel's page cache, it survives our SIGKILL.
        self.file
            .write_all(text.as_bytes())
            .doing("cannot write the sink")?;
        report(Event::Processed {
            records: fresh.len() as u64,
        });
        Ok(())
    }

    fn between_steps(&mut self, consumed: u64, batch: &[u64]) {
        if !self.first_reported {
            self.first_reported = true;
            report(Event::FirstBatch {
                ms: self.started.elapsed().as_millis() as u64,
            });
        }
        self.pause_if_told(consumed, batch);
        if self.crash_at.is_some_and(|k| consumed >= k) {
            // At-least-once dies here with the batch processed, not committed
            // (at-most-once with it committed, not processed yet).
            if self.semantic == Semantic::AtLeastOnce {
                report(Event::ProcessedUncommitted {
                    records: self.batch as u64,
                });
            }
            // The batch caught in the gap: the parent's fault window.
            report(Event::InGap {
                ids: batch.to_vec(),
            });
            die_now();
        }
        // A slow processor: the batch is written (for exactly-once, inside
        // the open transaction) and not yet committed while it works.
        std::thread::sleep(self.pause_per_record * batch.len() as u32);
    }

    fn refused(&mut self, error: &crate::Error, aborted: bool) {
        let doing = match error {
            crate::Error::Kafka { doing, .. } => doing.clone(),
            _ => "ending a transaction".into(),
        };
        let message = match error {
            crate::Error::Kafka { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        self.refused = self.paused;
        report(Event::Refused {
            doing,
            code: error_code_name(error),
            message,
            aborted,
        });
    }

    fn auto_commit_step(
        &mut self,
        step: AutoCommitStep,
        consumed: u64,
        batch: usize,
        group: &GroupOffsets<'_>,
    ) -> Result<()> {
        let (Some(k), Some(when)) = (self.crash_at, self.crash_when) else {
            return Ok(());
        };
        if consumed < k {
            return Ok(());
        }
        // ANCHOR: auto_commit_crash
        match (when, step) {
            // Processing is slow (here: it waits) and the timer fires meanwhile:
            // it commits the batch's stored offsets. Then the process dies.
            (AutoCommitCrash::CommittedNotProcessed, AutoCommitStep::Handed) => {
                group.wait_until_committed(AUTO_COMMIT_WAIT)?;
                report(Event::CommittedUnprocessed {
                    records: batch as u64,
                });
                die_now()
            }
            // Wait for a commit to cover everything processed so far: the next
            // one is a whole interval (5 s) away, far longer than taking and
            // processing one more batch, so that batch dies uncommitted.
            (AutoCommitCrash::ProcessedNotCommitted, AutoCommitStep::Processed)
                if !self.armed =>
            {
                group.wait_until_committed(AUTO_COMMIT_WAIT)?;
                self.armed = true;
                Ok(())
            }
            (AutoCommitCrash::ProcessedNotCommitted, AutoCommitStep::Processed) => {
                report(Event::ProcessedUncommitted {
                    records: batch as u64,
                });
                die_now()
            }
            _ => Ok(()),
        }
        // ANCHOR_END: auto_commit_crash
    }
}

impl FileSink {
    /// Stops this process (SIGSTOP) holding `batch`, its output written in
    /// the open transaction, if the orders say so; runs on when resumed.
    /// If the pid file cannot be written the parent never resumes it, so
    /// the worker dies instead (the parent's wait for the file then fails).
    fn pause_if_told(&mut self, consumed: u64, batch: &[u64]) {
        let Some((at, file)) = &self.pause_at else {
            return;
        };
        if self.paused || consumed < *at {
            return;
        }
        report(Event::Paused {
            ids: batch.to_vec(),
        });
        let writing = file.with_extension("writing");
        let written = fs::write(&writing, std::process::id().to_string())
            .and_then(|()| fs::rename(&writing, file));
        if written.is_err() {
            die_now();
        }
        // SAFETY: raise(3) with a signal number has no memory-safety preconditions.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
        self.paused = true;
    }
}

/// librdkafka's store-after-processing pattern dies at the same points as
/// plain auto-commit: after a whole interval with a batch handed over and
/// unprocessed (the timer fires, but has nothing of the batch to commit), and
/// just after processing and storing a batch no commit has covered yet.
impl StoreAfterProcessingSink for FileSink {
    fn store_step(
        &mut self,
        step: AutoCommitStep,
        consumed: u64,
        batch: usize,
        offsets: &StoredOffsets<'_>,
    ) -> Result<()> {
        let (Some(k), Some(when)) = (self.crash_at, self.crash_when) else {
            return Ok(());
        };
        if consumed < k {
            return Ok(());
        }
        match (when, step) {
            (AutoCommitCrash::CommittedNotProcessed, AutoCommitStep::Handed) => {
                offsets.wait_for_an_auto_commit(AUTO_COMMIT_WAIT)?;
                // What the broker says the timer committed of this batch.
                report(Event::CommittedUnprocessed {
                    records: offsets.committed_unprocessed()?,
                });
                die_now()
            }
            (AutoCommitCrash::ProcessedNotCommitted, AutoCommitStep::Processed)
                if !self.armed =>
            {
                offsets.wait_until_committed(AUTO_COMMIT_WAIT)?;
                self.armed = true;
                Ok(())
            }
            (AutoCommitCrash::ProcessedNotCommitted, AutoCommitStep::Processed) => {
                report(Event::ProcessedUncommitted {
                    records: batch as u64,
                });
                die_now()
            }
            _ => Ok(()),
        }
    }
}

/// The consumer worker.
pub fn consume(w: &ConsumeSpec) -> Result<()> {
    w.check()?;
    let cluster = told(Cluster::connect(&w.bootstrap))?;
    // The seen-id variants ride on at-least-once's own loop.
    let semantic = w.variant.map_or(w.semantic, ConsumerVariant::semantic);
    let mut sink = FileSink::open(w, semantic)?;
    let overrides = [
        crash_consumer_overrides_for(w.group_protocol),
        w.consumer_overrides.clone(),
    ]
    .concat();
    match w.variant {
        Some(ConsumerVariant::AutoCommit) => {
            told(consume::consume_auto_commit(
                &cluster,
                &w.input,
                &w.group,
                &overrides,
                &mut sink,
                &mut |_| {},
            ))?;
        }
        Some(ConsumerVariant::StoreAfterProcessing) => {
            told(offset_store::consume_store_after_processing(
                &cluster,
                &w.input,
                &w.group,
                &overrides,
                &mut sink,
                &mut |_| {},
            ))?;
        }
        _ => {
            let setup = setup_of(w);
            let run = |target: &mut dyn Sink| {
                consume::consume_with(
                    &cluster,
                    semantic,
                    &w.input,
                    w.output.as_deref(),
                    &w.group,
                    &setup,
                    target,
                    &mut |records| report(Event::Progress { records }),
                )
            };
            // At-least-once with an output topic: read-process-write, each
            // batch written and acknowledged before its offsets are committed.
            let consumed = match (&w.output, semantic) {
                (Some(output), Semantic::AtLeastOnce) => {
                    let mut target = told(TopicSink::new(&cluster, output, &mut sink))?;
                    run(&mut target)
                }
                _ => run(&mut sink),
            };
            // A zombie whose transaction Kafka refused has said so: its work
            // is over, and the refusal is the scenario's result.
            if consumed.is_err() && sink.refused {
                return Ok(());
            }
            told(consumed)?;
        }
    }
    report(Event::Done);
    Ok(())
}

/// The consumer (and processor) setup of a consumer worker: the crash
/// scenarios' group settings for its protocol; the zombie's own
/// transactional.id and a transaction timeout longer than its pause. Under
/// the consumer protocol a replacement may wait a whole broker-side session
/// timeout (up to 60 s by default) before it gets a partition.
fn setup_of(w: &ConsumeSpec) -> ConsumeSetup {
    let mut producer_overrides = Vec::new();
    if w.pause_at.is_some() {
        producer_overrides.push((
            "transaction.timeout.ms".to_string(),
            ZOMBIE_TRANSACTION_TIMEOUT_MS.to_string(),
        ));
    }
    let idle_limit = match w.group_protocol {
        GroupProtocol::Classic => consume::IDLE_LIMIT,
        GroupProtocol::Consumer => consume::IDLE_LIMIT + Duration::from_secs(60),
    };
    ConsumeSetup {
        consumer_overrides: [
            crash_consumer_overrides_for(w.group_protocol),
            w.consumer_overrides.clone(),
        ]
        .concat(),
        transactional_id: w.transactional_id.clone(),
        producer_overrides,
        idle_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_named_as_librdkafka_names_them() {
        use rdkafka::error::KafkaError;
        use rdkafka::types::RDKafkaErrorCode;
        let named = |code| {
            error_code_name(&crate::Error::Kafka {
                doing: "committing".into(),
                source: KafkaError::MessageConsumption(code),
            })
        };
        assert_eq!(
            named(RDKafkaErrorCode::UnknownMemberId),
            "UNKNOWN_MEMBER_ID"
        );
        assert_eq!(
            named(RDKafkaErrorCode::IllegalGeneration),
            "ILLEGAL_GENERATION"
        );
        assert_eq!(
            named(RDKafkaErrorCode::StaleMemberEpoch),
            "STALE_MEMBER_EPOCH"
        );
        assert_eq!(
            error_code_name(&crate::Error::BadConfig("x".into())),
            "no Kafka error code"
        );
    }

    #[test]
    fn seen_ids_kept_with_the_results_survive_a_restart_and_in_memory_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("lab-seen-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let sink = dir.join("results");
        fs::write(&sink, "3\n4\n5\n").unwrap();
        // Within one process both skip a repeated id.
        let mut memory = SeenIds::in_memory();
        assert_eq!(memory.unseen(&[1, 2, 1]), [1, 2]);
        // A new process: only the set read back from the results knows 3..=5.
        assert_eq!(SeenIds::in_memory().unseen(&[3, 4, 6]), [3, 4, 6]);
        assert_eq!(
            SeenIds::from_results(&sink).unwrap().unseen(&[3, 4, 6]),
            [6]
        );
        // No results yet: nothing seen, not an error.
        let none = SeenIds::from_results(&dir.join("absent")).unwrap();
        assert!(none.ids.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
