//! Configure exercises: the learner writes client settings (key, value
//! pairs), and the lab runs its real scenario with them: the chaos proxy's
//! lost acknowledgement, a SIGKILLed transactional producer, a new consumer
//! group. The verdict says what the settings did, with ids.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use crate::audit::IdRanges;
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::crash::{producer_crash, CrashOptions};
use crate::faults::lost_ack::{lost_ack, LostAckOptions};
use crate::produce::{produce, ProduceOptions};
use crate::read::{read_ids, read_ids_with, reader_config, Isolation};
use crate::record;
use crate::semantics::Semantic;

/// One configure exercise.
#[derive(Clone, Copy, Debug)]
pub struct ConfigureExercise {
    pub name: &'static str,
    pub title: &'static str,
    /// The book page it belongs to, under `book/src/`.
    pub page: &'static str,
    pub hint: &'static str,
}

/// Every configure exercise, in the order of the book.
pub const EXERCISES: &[ConfigureExercise] = &[
    ConfigureExercise {
        name: "new-group-reads-everything",
        title: "A new consumer group that misses nothing written before it started",
        page: "at-least-once.md",
        hint: "A group with no committed offset starts where auto.offset.reset says: \
               librdkafka's default is `latest`, the end of the log.",
    },
    ConfigureExercise {
        name: "no-duplicates-after-lost-ack",
        title: "Stop the duplicates of a lost acknowledgement, without transactions",
        page: "exactly-once/idempotent-producer.md",
        hint:
            "A retry is a new write unless the broker can tell it is one: what setting \
               gives each batch a producer id and a sequence number?",
    },
    ConfigureExercise {
        name: "reader-skips-aborted",
        title: "A downstream reader that never sees an aborted transaction",
        page: "exactly-once/transactions.md",
        hint: "Aborted records stay in the log; whether a reader skips them is the \
               reader's isolation level.",
    },
];

/// What the lab measured with the learner's settings.
#[derive(Clone, Debug)]
pub struct ConfigureVerdict {
    pub exercise: &'static ConfigureExercise,
    pub settings: Vec<(String, String)>,
    /// One line per run: what was counted.
    pub runs: Vec<String>,
    /// Empty when the settings did what was asked.
    pub problems: Vec<String>,
}

impl ConfigureVerdict {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for ConfigureVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.passed() { "✔" } else { "✘" };
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(f, "{mark} {}: {}", self.exercise.name, self.exercise.title)?;
        writeln!(
            f,
            "  your settings: {}",
            if settings.is_empty() {
                "(none: the client's defaults)".into()
            } else {
                settings.join(", ")
            }
        )?;
        for run in &self.runs {
            writeln!(f, "  {run}")?;
        }
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        if !self.passed() {
            writeln!(f, "  Hint: {}", self.exercise.hint)?;
        }
        Ok(())
    }
}

/// Runs the configure exercise `name` with the learner's `settings`.
pub fn try_settings(
    cluster: &Cluster,
    name: &str,
    settings: &[(&str, &str)],
) -> Result<ConfigureVerdict> {
    let exercise = EXERCISES
        .iter()
        .find(|e| e.name == name.trim())
        .ok_or_else(|| {
            Error::BadConfig(format!(
                "no configure exercise {name:?}: use one of {}",
                EXERCISES
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    cluster.require_faithful(Semantic::ExactlyOnce)?;
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut verdict = ConfigureVerdict {
        exercise,
        settings,
        runs: Vec::new(),
        problems: Vec::new(),
    };
    match exercise.name {
        "new-group-reads-everything" => new_group(cluster, &mut verdict)?,
        "no-duplicates-after-lost-ack" => lost_ack_duplicates(cluster, &mut verdict)?,
        _ => reader_isolation(cluster, &mut verdict)?,
    }
    Ok(verdict)
}

/// Records written before the group's first poll, then a new group with
/// the learner's settings reads for up to 10 s.
fn new_group(cluster: &Cluster, verdict: &mut ConfigureVerdict) -> Result<()> {
    const RECORDS: u64 = 500;
    let topic = cluster.fresh_name("exercise-new-group");
    cluster.create_topic(&topic, 2)?;
    let options = ProduceOptions {
        ids: 0..RECORDS,
        payload_bytes: 100,
        transaction_size: 100,
        overrides: Vec::new(),
    };
    produce(
        cluster,
        Semantic::AtLeastOnce,
        &topic,
        &options,
        &mut |_| {},
    )?;
    let mut config = cluster.client_config();
    config.set("group.id", cluster.fresh_name("exercise-group"));
    for (k, v) in &verdict.settings {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config
        .create()
        .doing("creating a consumer with your settings")?;
    consumer.subscribe(&[&topic]).doing("subscribing")?;
    let mut seen = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) && (seen.len() as u64) < RECORDS {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.doing("consuming with your settings")?;
            seen.extend(record::parse_key(message.key()));
        }
    }
    let missed: IdRanges = (0..RECORDS).filter(|id| !seen.contains(id)).collect();
    verdict.runs.push(format!(
        "{RECORDS} records written, then a new group subscribed: it read {} in {:.1} s",
        seen.len(),
        started.elapsed().as_secs_f64()
    ));
    if !missed.is_empty() {
        verdict.problems.push(format!(
            "{} records never read (ids {}): the group had no committed offset, so the \
             consumer started where auto.offset.reset put it, after everything already in \
             the log. Nothing failed, and they are lost to this group all the same.",
            missed.len(),
            super::code::show(&missed)
        ));
    }
    Ok(())
}

/// Scenario A with an at-least-once producer and the learner's settings on
/// top, for two seeds.
fn lost_ack_duplicates(
    cluster: &Cluster,
    verdict: &mut ConfigureVerdict,
) -> Result<()> {
    if verdict
        .settings
        .iter()
        .any(|(k, _)| k == "transactional.id")
    {
        return Err(Error::BadConfig(
            "this exercise asks for no transactions: remove transactional.id".into(),
        ));
    }
    for seed in [1, 2] {
        let options = LostAckOptions {
            overrides: verdict.settings.clone(),
            ..LostAckOptions::new(2000, seed)
        };
        let outcome = lost_ack(cluster, Semantic::AtLeastOnce, &options)?;
        let c = &outcome.counts;
        verdict.runs.push(format!(
            "seed {seed}: one Produce response dropped by the proxy; {} records in the log, \
             {} lost, {} duplicated",
            c.durable + c.written_twice,
            c.lost,
            c.duplicated
        ));
        let twice: IdRanges = outcome.fates.duplicated_ids().collect();
        if c.duplicated > 0 {
            verdict.problems.push(format!(
                "seed {seed}: {} records written twice (ids {}): the broker wrote their batch, \
                 its answer was lost, the producer sent the batch again, and the broker could \
                 not tell the retry from new records.",
                c.duplicated,
                super::code::show(&twice)
            ));
            break;
        }
        if c.lost > 0 {
            verdict.problems.push(format!(
                "seed {seed}: {} records lost: these settings gave up on records.",
                c.lost
            ));
            break;
        }
    }
    Ok(())
}

/// Scenario B for exactly-once (a transactional producer SIGKILLed inside
/// a transaction, its successor aborting it), then the topic read by a
/// reader with the learner's settings.
fn reader_isolation(cluster: &Cluster, verdict: &mut ConfigureVerdict) -> Result<()> {
    let outcome =
        producer_crash(cluster, Semantic::ExactlyOnce, &CrashOptions::new(1000, 1))?;
    let topic = &outcome.input_topic;
    let committed = read_ids(cluster, topic, Isolation::ReadCommitted)?;
    let mut config =
        reader_config(cluster, "exercise-reader", Isolation::ReadCommitted);
    // The Java client's default, written out: yours replace it.
    config.set("isolation.level", "read_uncommitted");
    for (k, v) in &verdict.settings {
        config.set(k, v);
    }
    let yours = read_ids_with(cluster, topic, config)?;
    let mut extra: HashMap<u64, i64> = HashMap::new();
    for id in &yours {
        *extra.entry(*id).or_default() += 1;
    }
    for id in &committed {
        *extra.entry(*id).or_default() -= 1;
    }
    let aborted: IdRanges = extra
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(id, _)| *id)
        .collect();
    verdict.runs.push(format!(
        "a transactional producer killed inside a transaction, its successor aborting it: \
         {} records of aborted transactions in the log; your reader read {} records, a \
         read_committed one {}",
        outcome.counts.aborted_in_log,
        yours.len(),
        committed.len()
    ));
    if !aborted.is_empty() {
        verdict.problems.push(format!(
            "Your reader saw {} records of the aborted transaction (ids {}): the dead \
             producer wrote them, its successor aborted them, and they stay in the log, \
             marked. A reader that reads them acts on records that, as far as Kafka is \
             concerned, were never written.",
            aborted.len(),
            super::code::show(&aborted)
        ));
    }
    Ok(())
}
