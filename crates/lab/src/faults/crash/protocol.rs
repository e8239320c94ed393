//! What the crash scenarios' parent and its child processes say to each other,
//! written down as types. The parent (the scenario) gives its orders as one
//! [`WorkerSpec`], the JSON argument of `lab worker`; the child (the
//! [`worker`](super::worker)) reports what it did as [`Event`]s, one JSON
//! object per line on its stdout.
//!
//! Both sides import this module and neither imports the other. The parent
//! reads every line as an event: a line that is not one is an error that
//! quotes it, so a typo on either side fails the scenario instead of quietly
//! changing its counts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::group_protocol::GroupProtocol;
use crate::produce::DeliveryStatus;
use crate::semantics::Semantic;

/// The orders of one worker process: `lab worker '<the JSON of this>'`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum WorkerSpec {
    Produce(ProduceSpec),
    Consume(ConsumeSpec),
    /// The side-effects scenario's consumer, writing to a database.
    DbSink(super::db::DbSinkSpec),
}

/// A producer worker: send ids `0..records` of a source to `topic`,
/// recovering its position by the semantic's rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceSpec {
    pub semantic: Semantic,
    pub bootstrap: String,
    pub topic: String,
    /// Ids 0..records make up the source.
    pub records: u64,
    pub payload_bytes: usize,
    /// The worker's own durable state (its position in the source).
    pub state: PathBuf,
    /// Die with SIGKILL at record id N (see the worker's docs for where exactly).
    pub crash_at: Option<u64>,
    /// Extra producer settings KEY=VALUE, applied after the semantic's.
    pub overrides: Vec<(String, String)>,
}

/// A consumer worker: consume `input` in `group` into `sink` (or, for
/// exactly-once, into `output`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeSpec {
    pub semantic: Semantic,
    pub bootstrap: String,
    pub input: String,
    /// Exactly-once: the output topic.
    pub output: Option<String>,
    pub group: String,
    /// At-most-once and at-least-once: processed ids are appended here.
    pub sink: PathBuf,
    /// Die with SIGKILL in the gap between the two steps of the batch that
    /// holds this worker's Nth record (with the auto-commit variants: on the
    /// side of an auto-commit that `crash_when` names).
    pub crash_at: Option<u64>,
    /// Run one of the widely copied consumers the scenario tests (or the
    /// pattern that fixes one) instead of the semantic's own loop.
    pub variant: Option<ConsumerVariant>,
    /// With an auto-commit variant and `crash_at`: which side of an
    /// auto-commit the crash falls on.
    pub crash_when: Option<AutoCommitCrash>,
    /// The consumer group protocol the worker's consumer speaks.
    #[serde(default)]
    pub group_protocol: GroupProtocol,
    /// Exactly-once: stop (SIGSTOP) inside the open transaction of the batch
    /// that holds this worker's Nth record, its output written, its offsets
    /// not yet sent, once the process id is in the file (the zombie).
    #[serde(default)]
    pub pause_at: Option<(u64, PathBuf)>,
    /// Exactly-once: the processor's own `transactional.id` (by default one
    /// per group, so a replacement fences the last).
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// A slow processor: after writing each batch, before committing it,
    /// wait this many microseconds per record of the batch (scenario D's
    /// exactly-once run, so that the run lasts while leaders die in turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_per_record_us: Option<u64>,
    /// Consumer settings applied after the crash scenarios' own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_overrides: Vec<(String, String)>,
}

impl WorkerSpec {
    /// Where the worker finds Kafka.
    pub fn bootstrap(&self) -> &str {
        match self {
            WorkerSpec::Produce(p) => &p.bootstrap,
            WorkerSpec::Consume(c) => &c.bootstrap,
            WorkerSpec::DbSink(d) => &d.bootstrap,
        }
    }

    /// The single argument of `lab worker`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a worker spec serializes")
    }

    /// Reads the argument of `lab worker`.
    pub fn from_json(text: &str) -> Result<WorkerSpec> {
        serde_json::from_str(text).map_err(|e| {
            Error::BadConfig(format!(
                "`lab worker` takes the JSON of a WorkerSpec (the crash scenarios start it \
                 themselves); got {text:?}: {e}"
            ))
        })
    }
}

impl ConsumeSpec {
    /// Refuses orders the worker cannot carry out as written.
    pub fn check(&self) -> Result<()> {
        if self.crash_when.is_some() && !self.variant.is_some_and(|v| v.auto_commits())
        {
            return Err(Error::BadConfig(
                "crash_when chooses a side of an auto-commit: it needs an auto-commit variant \
                 (auto-commit or store-after-processing)"
                    .into(),
            ));
        }
        if self.crash_when.is_some() && self.crash_at.is_none() {
            return Err(Error::BadConfig(
                "crash_when says on which side of an auto-commit to die: it needs crash_at"
                    .into(),
            ));
        }
        if self.pause_at.is_some() && self.semantic != Semantic::ExactlyOnce {
            return Err(Error::BadConfig(
                "pause_at stops a processor inside its transaction: it needs exactly-once"
                    .into(),
            ));
        }
        if self.variant.is_some() && self.output.is_some() {
            return Err(Error::BadConfig(
                "the consumer variants process into the sink; drop the output topic"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A consumer of scenario C as widely copied recipes write it, or as the
/// course corrects it. Each runs as real child processes, SIGKILLed and
/// replaced in the same group, and is audited by id like every scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerVariant {
    /// The recipe's "at-most-once": `enable.auto.commit=true`, no commit of
    /// its own. Killed once just after an auto-commit covered records it had
    /// not processed, and once just after processing records no auto-commit
    /// had covered yet.
    AutoCommit,
    /// librdkafka's at-least-once pattern: auto-commit on,
    /// `enable.auto.offset.store=false`, each offset stored after processing.
    /// Killed at the same two points as [`AutoCommit`](Self::AutoCommit).
    StoreAfterProcessing,
    /// At-least-once behind a processor that remembers the ids it has seen
    /// in a set in memory, which the restarted process does not have.
    DedupInMemory,
    /// At-least-once behind seen ids kept with the results: a restarted
    /// process reads them back.
    DedupDurable,
}

impl ConsumerVariant {
    pub const ALL: [ConsumerVariant; 4] = [
        ConsumerVariant::AutoCommit,
        ConsumerVariant::StoreAfterProcessing,
        ConsumerVariant::DedupInMemory,
        ConsumerVariant::DedupDurable,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerVariant::AutoCommit => "auto-commit",
            ConsumerVariant::StoreAfterProcessing => "store-after-processing",
            ConsumerVariant::DedupInMemory => "dedup-in-memory",
            ConsumerVariant::DedupDurable => "dedup-durable",
        }
    }

    /// Every variant's name, for help texts and error messages.
    pub fn names() -> [&'static str; 4] {
        ConsumerVariant::ALL.map(ConsumerVariant::name)
    }

    /// The variant named `text` (as [`name`](Self::name) spells it).
    pub fn parse(text: &str) -> Result<ConsumerVariant> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        ConsumerVariant::ALL
            .into_iter()
            .find(|v| v.name() == wanted)
            .ok_or_else(|| {
                Error::BadConfig(format!(
                    "unknown consumer variant {text:?}: use one of {}",
                    ConsumerVariant::names().join(", ")
                ))
            })
    }

    /// What the variant is, in a few words (table rows, chart groups).
    pub fn label(self) -> &'static str {
        match self {
            ConsumerVariant::AutoCommit => "auto-commit",
            ConsumerVariant::StoreAfterProcessing => {
                "auto-commit, offsets stored after processing"
            }
            ConsumerVariant::DedupInMemory => "seen ids in memory",
            ConsumerVariant::DedupDurable => "seen ids kept with the results",
        }
    }

    /// The semantic the variant's consumer claims (and whose settings it
    /// starts from).
    pub fn semantic(self) -> Semantic {
        match self {
            ConsumerVariant::AutoCommit => Semantic::AtMostOnce,
            ConsumerVariant::StoreAfterProcessing
            | ConsumerVariant::DedupInMemory
            | ConsumerVariant::DedupDurable => Semantic::AtLeastOnce,
        }
    }

    /// Whether the variant leaves its commits to librdkafka's auto-commit
    /// timer (and so can die on a chosen side of one).
    pub fn auto_commits(self) -> bool {
        matches!(
            self,
            ConsumerVariant::AutoCommit | ConsumerVariant::StoreAfterProcessing
        )
    }
}

impl std::fmt::Display for ConsumerVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ConsumerVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ConsumerVariant::parse(s)
    }
}

/// How Kafka refused a processor's transaction, as the worker reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What the processor was doing ("adding the consumed offsets to the
    /// transaction", "committing a transaction").
    pub doing: String,
    /// librdkafka's error code, as its name (`UNKNOWN_MEMBER_ID`).
    pub code: String,
    /// librdkafka's message.
    pub message: String,
    /// Whether the processor then aborted its transaction.
    pub aborted: bool,
}

/// Which side of an auto-commit the auto-commit consumer dies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AutoCommitCrash {
    /// Just after the timer committed a batch handed over but not processed:
    /// the replacement starts after it, so it is lost.
    CommittedNotProcessed,
    /// Just after processing a batch that no commit covers yet: the
    /// replacement starts before it, so it is processed again.
    ProcessedNotCommitted,
}

/// One thing a worker reports to the parent, one line each. A worker writes
/// each line straight to the pipe, so the parent still has it after a SIGKILL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Event {
    /// A producer starts at this id of the source (where its recovery rule
    /// put it).
    Resumed { id: u64 },
    /// A producer handed the record over to its client.
    Handed { id: u64 },
    /// The broker acknowledged the record.
    Acked { id: u64 },
    /// The record's delivery failed; what librdkafka knows of it.
    Failed { id: u64, status: DeliveryStatus },
    /// Exactly-once: a transaction committed, ending with this id.
    Committed { through: u64 },
    /// A consumer processed this many records of a batch into its sink.
    Processed { records: u64 },
    /// A consumer skipped this many records of a batch as seen before.
    Skipped { records: u64 },
    /// A consumer dies in the gap between its two steps with this batch: the
    /// scenario's fault window.
    InGap { ids: Vec<u64> },
    /// A consumer dies with this many records committed, not processed.
    CommittedUnprocessed { records: u64 },
    /// A consumer dies with this many records processed, not committed.
    ProcessedUncommitted { records: u64 },
    /// A consumer was assigned these partitions (by a rebalance).
    Assigned { partitions: Vec<i32> },
    /// A consumer stops itself (SIGSTOP) holding this batch, not yet written.
    Paused { ids: Vec<u64> },
    /// A paused consumer, resumed, ended the transaction of the batch it
    /// held: the rows it applied, and the offsets the database held after.
    AfterPause {
        applied: u64,
        offsets: Vec<(i32, i64)>,
    },
    /// A consumer got its first batch this many ms after it started.
    FirstBatch { ms: u64 },
    /// Kafka refused an exactly-once processor's transaction: what it was
    /// doing, librdkafka's error code and message, and whether the
    /// transaction was aborted.
    Refused {
        doing: String,
        code: String,
        message: String,
        aborted: bool,
    },
    /// A consumer has committed this many records so far (its own count,
    /// since it started), after each commit.
    Progress { records: u64 },
    /// The worker has finished its work.
    Done,
    /// The worker gives up: no broker answered at `bootstrap` for
    /// `waited_ms` while it was `doing` something (its last line).
    NoBroker {
        bootstrap: String,
        waited_ms: u64,
        doing: String,
        cause: String,
    },
}

impl Event {
    /// The event as one line of JSON (without its newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("an event serializes")
    }

    /// Reads one line a worker wrote.
    pub fn parse(line: &str) -> Result<Event> {
        serde_json::from_str(line).map_err(|e| Error::Process {
            what: "the lab worker".into(),
            detail: format!(
                "it wrote a line that is not an event of the crash protocol: \
                 {line:?} ({e})"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each event. The match makes a new event fail to compile here
    /// until it is added to the list.
    fn every_event() -> Vec<Event> {
        let events = vec![
            Event::Resumed { id: 805 },
            Event::Handed { id: 7 },
            Event::Acked { id: 7 },
            Event::Failed {
                id: 9,
                status: DeliveryStatus::PossiblyPersisted,
            },
            Event::Committed { through: 99 },
            Event::Processed { records: 500 },
            Event::Skipped { records: 3 },
            Event::InGap {
                ids: vec![4, 1, 1999],
            },
            Event::CommittedUnprocessed { records: 500 },
            Event::ProcessedUncommitted { records: 12 },
            Event::Assigned {
                partitions: vec![0, 2],
            },
            Event::Paused { ids: vec![3, 4] },
            Event::AfterPause {
                applied: 2,
                offsets: vec![(0, 5)],
            },
            Event::FirstBatch { ms: 6120 },
            Event::Progress { records: 1500 },
            Event::Refused {
                doing: "committing".into(),
                code: "UNKNOWN_MEMBER_ID".into(),
                message: "Broker: Unknown member".into(),
                aborted: true,
            },
            Event::Done,
            Event::NoBroker {
                bootstrap: "127.0.0.1:9092".into(),
                waited_ms: 10_250,
                doing: "producing to t".into(),
                cause: "Local: Broker transport failure".into(),
            },
        ];
        for event in &events {
            match event {
                Event::Resumed { .. }
                | Event::Handed { .. }
                | Event::Acked { .. }
                | Event::Failed { .. }
                | Event::Committed { .. }
                | Event::Processed { .. }
                | Event::Skipped { .. }
                | Event::InGap { .. }
                | Event::CommittedUnprocessed { .. }
                | Event::ProcessedUncommitted { .. }
                | Event::Assigned { .. }
                | Event::Paused { .. }
                | Event::AfterPause { .. }
                | Event::FirstBatch { .. }
                | Event::Progress { .. }
                | Event::Refused { .. }
                | Event::Done
                | Event::NoBroker { .. } => {}
            }
        }
        events
    }

    #[test]
    fn every_event_survives_a_line_of_json() {
        for event in every_event() {
            let line = event.to_line();
            assert!(!line.contains('\n'), "{line}");
            assert!(line.starts_with("{\"event\":"), "{line}");
            assert_eq!(Event::parse(&line).unwrap(), event, "{line}");
        }
        assert_eq!(
            Event::InGap { ids: vec![1, 2] }.to_line(),
            r#"{"event":"in-gap","ids":[1,2]}"#
        );
    }

    #[test]
    fn a_line_that_is_no_event_is_refused_and_quoted() {
        for (line, why) in [
            (r#"{"event":"handed-over","id":3}"#, "unknown variant"),
            ("handed 3", "expected value"),
            (r#"{"event":"handed"}"#, "missing field `id`"),
            (r#"{"event":"acked","id":-1}"#, "invalid value"),
            (r#"{"event":"acked","id":1,"extra":2}"#, "unknown field"),
            ("", "EOF"),
        ] {
            let err = Event::parse(line).unwrap_err().to_string();
            assert!(err.contains("not an event of the crash protocol"), "{err}");
            assert!(err.contains(&format!("{line:?}")), "{err}");
            assert!(err.contains(why), "{line}: {err}");
        }
    }

    fn consume_spec() -> ConsumeSpec {
        ConsumeSpec {
            semantic: Semantic::AtMostOnce,
            bootstrap: "127.0.0.1:9092".into(),
            input: "in".into(),
            output: None,
            group: "g".into(),
            sink: "/tmp/g.sink".into(),
            crash_at: Some(360),
            variant: Some(ConsumerVariant::AutoCommit),
            crash_when: Some(AutoCommitCrash::CommittedNotProcessed),
            group_protocol: GroupProtocol::Classic,
            pause_at: None,
            transactional_id: None,
            pause_per_record_us: None,
            consumer_overrides: Vec::new(),
        }
    }

    #[test]
    fn worker_specs_survive_json() {
        let produce = WorkerSpec::Produce(ProduceSpec {
            semantic: Semantic::ExactlyOnce,
            bootstrap: "127.0.0.1:9092".into(),
            topic: "t".into(),
            records: 2000,
            payload_bytes: 100,
            state: "/tmp/t.position".into(),
            crash_at: None,
            overrides: vec![("linger.ms".into(), "5".into())],
        });
        for spec in [produce, WorkerSpec::Consume(consume_spec())] {
            let json = spec.to_json();
            assert_eq!(WorkerSpec::from_json(&json).unwrap(), spec, "{json}");
        }
        assert!(consume_spec().check().is_ok());
        let stored = ConsumeSpec {
            variant: Some(ConsumerVariant::StoreAfterProcessing),
            ..consume_spec()
        };
        assert!(
            stored.check().is_ok(),
            "it dies on a side of an auto-commit too"
        );
        let err =
            WorkerSpec::from_json(r#"{"role":"consume","semantic":"at-most-once"}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("missing field"), "{err}");
    }

    #[test]
    fn orders_the_worker_cannot_carry_out_are_refused() {
        let no_crash_point = ConsumeSpec {
            crash_at: None,
            ..consume_spec()
        };
        let not_auto_commit = ConsumeSpec {
            variant: Some(ConsumerVariant::DedupDurable),
            ..consume_spec()
        };
        let with_output = ConsumeSpec {
            crash_when: None,
            output: Some("out".into()),
            ..consume_spec()
        };
        let paused_at_most_once = ConsumeSpec {
            pause_at: Some((10, "/tmp/pid".into())),
            variant: None,
            crash_when: None,
            ..consume_spec()
        };
        for (spec, says) in [
            (paused_at_most_once, "needs exactly-once"),
            (no_crash_point, "needs crash_at"),
            (not_auto_commit, "needs an auto-commit variant"),
            (with_output, "drop the output topic"),
        ] {
            let err = spec.check().unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn variant_names_round_trip_and_an_unknown_one_lists_them() {
        for v in ConsumerVariant::ALL {
            assert_eq!(v.name().parse::<ConsumerVariant>().unwrap(), v);
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.name()));
        }
        assert_eq!(
            ConsumerVariant::parse("Dedup_In_Memory").unwrap(),
            ConsumerVariant::DedupInMemory
        );
        let err = "dedup".parse::<ConsumerVariant>().unwrap_err().to_string();
        assert!(
            err.contains(
                "auto-commit, store-after-processing, dedup-in-memory, dedup-durable"
            ),
            "{err}"
        );
    }
}
