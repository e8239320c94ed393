//! The learner's side of a write-code exercise: the [`Kit`] a learner's
//! program gets, running as a child process of the [grader](super::code).
//!
//! The learner writes the Kafka client code: the configuration, the poll
//! loop, the commits, the transactions, with rdkafka itself. The kit hands
//! out only what the grader decided (addresses, topic and group names) and
//! wraps the three steps a fault can fall between: [`Kit::process`] (the side
//! effect the audit counts), [`Kit::commit`] and [`Kit::commit_transaction`]
//! (the consumer's and the producer's commits), and [`Kit::send`]. At the
//! seeded point the grader chose, the wrapper kills the process with SIGKILL,
//! right after the step: no destructor runs, nothing is flushed.
//!
//! What the program did is written to a journal, one JSON line per step,
//! straight to the file (so the grader still has it after the SIGKILL); the
//! learner's own `println!`s go to the terminal and never confuse it.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::catalog::{ErrorPlan, OUTPUT_LIMIT, POISON_BYTES};
use crate::error::{Error, Result};
use crate::record;

mod db;
mod txn;
pub use db::{StartFrom, StartFromFn};
use txn::Faults;
pub use txn::{EXIT_FENCED, EXIT_GAVE_UP};

/// What a learner's exercise function returns: any error, with `?`.
pub type Outcome = std::result::Result<(), Box<dyn std::error::Error>>;

/// A learner's exercise: a function of the exercises crate.
pub type ExerciseFn = fn(&mut Kit) -> Outcome;

/// The step right after which the grader's crash falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// [`Kit::process`]: the side effect of one record.
    Process,
    /// [`Kit::commit`]: the consumer's offsets committed.
    Commit,
    /// [`Kit::send`]: one record handed to the producer.
    Send,
    /// [`Kit::commit_transaction`]: a transaction committed.
    CommitTransaction,
    /// [`Kit::commit_db`]: a database transaction committed.
    DbCommit,
    /// [`Kit::commit_db`], before the commit: the transaction written, not
    /// committed (a crash here rolls it back).
    BeforeDbCommit,
}

impl Step {
    /// How the step reads in a sentence ("right after ... #3").
    pub fn phrase(self) -> &'static str {
        match self {
            Step::Process => "processing record",
            Step::Commit => "commit",
            Step::Send => "sending record",
            Step::CommitTransaction => "committing transaction",
            Step::DbCommit => "database commit",
            Step::BeforeDbCommit => "database commit",
        }
    }
}

/// Die right after the `nth` call (counting from 1) of `step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashPoint {
    pub step: Step,
    pub nth: u64,
}

impl std::fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = match self.step {
            Step::BeforeDbCommit => "right before",
            _ => "right after",
        };
        write!(f, "{when} {} #{}", self.step.phrase(), self.nth)
    }
}

/// The grader's orders to one run of a learner's program: the JSON of this
/// is its second argument (`exercises NAME '<json>'`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KitSpec {
    pub exercise: String,
    pub bootstrap: String,
    pub input: String,
    /// The end offset of each input partition: the input is complete before
    /// the program starts.
    pub input_end: Vec<i64>,
    pub output: Option<String>,
    pub group: String,
    pub transactional_id: String,
    /// Producer exercises: the source is ids `0..records`.
    pub records: u64,
    /// The results store: one processed id per line.
    pub results: PathBuf,
    /// Producer exercises: where the program keeps its position in the
    /// source (its own durable state, as an application's database would).
    pub position: PathBuf,
    pub journal: PathBuf,
    pub crash: Option<CrashPoint>,
    /// [`Kit::finished`] says yes after this long without a step.
    pub idle_limit_ms: u64,
    /// Transactional exercises: the errors the kit injects.
    #[serde(default)]
    pub errors: Option<ErrorPlan>,
    /// Database exercises: the SQLite file with the tables `results` and
    /// `consumed_offsets`.
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// Database exercises: a pause after each database commit, in
    /// milliseconds (processing time: the rebalance run's first instance is
    /// still at work when the second joins).
    #[serde(default)]
    pub pace_ms: u64,
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Entry {
    Started {
        pid: u32,
    },
    Processed {
        id: u64,
        partition: i32,
        offset: i64,
    },
    /// A commit of the consumer's positions (partition, next offset).
    Committed {
        positions: Vec<(i32, i64)>,
    },
    Sent {
        id: u64,
    },
    /// A producer saved its position: the next id it will send.
    Saved {
        next: u64,
    },
    TransactionCommitted,
    /// The grader's crash is about to fall.
    Dying {
        at: String,
    },
    /// [`Kit::finished`] said yes; `how`: "committed" or "idle".
    Finished {
        how: String,
    },
    /// [`Kit::send`] failed.
    SendFailed {
        id: u64,
        error: String,
    },
    /// A transactional call of the kit failed; `call` names it.
    TxnError {
        call: String,
        code: String,
        retriable: bool,
        abortable: bool,
        fatal: bool,
        message: String,
    },
    /// [`Kit::abort_transaction`] succeeded.
    TransactionAborted,
    /// The grader's fault: the answer to this commit will be lost.
    AnswerDropped,
    /// The grader's fault: a successor fenced this producer.
    Fenced,
    /// The kit stopped a program stuck in abortable errors.
    GaveUp {
        abortable: u64,
    },
    /// [`Kit::commit_db`] committed: the table's rows and the offsets the
    /// database keeps (partition, next offset), as committed.
    DbCommitted {
        rows: u64,
        offsets: Vec<(i32, i64)>,
    },
    /// Partitions assigned, and where the program's `start_from` started
    /// each (partition, offset as rdkafka names it).
    Assigned {
        starts: Vec<(i32, String)>,
    },
    /// Partitions taken away by a rebalance.
    Revoked {
        partitions: Vec<i32>,
    },
}

/// What a learner's program gets: names, settings to start from, and the
/// wrapped steps.
pub struct Kit {
    spec: KitSpec,
    journal: File,
    results: File,
    calls: [u64; 6],
    last_step: Instant,
    last_check: Option<Instant>,
    offsets_reader: Option<BaseConsumer>,
    /// Database exercises: reads the offsets the database keeps.
    db_reader: Option<rusqlite::Connection>,
    /// Transactional exercises: the chaos proxy the producer talks through,
    /// and what was injected so far.
    faults: Option<Faults>,
}

impl Kit {
    /// The kit for `spec`, journal and results opened for appending.
    pub fn new(spec: KitSpec) -> Result<Kit> {
        let open = |path: &PathBuf| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| Error::Io {
                    doing: format!("opening {}", path.display()),
                    source,
                })
        };
        let mut kit = Kit {
            journal: open(&spec.journal)?,
            results: open(&spec.results)?,
            spec,
            calls: [0; 6],
            last_step: Instant::now(),
            last_check: None,
            offsets_reader: None,
            db_reader: None,
            faults: None,
        };
        if let Some(plan) = kit.spec.errors {
            kit.faults = Some(Faults::start(&kit.spec.bootstrap, plan)?);
        }
        kit.write(&Entry::Started {
            pid: std::process::id(),
        })?;
        Ok(kit)
    }

    pub fn bootstrap(&self) -> &str {
        &self.spec.bootstrap
    }

    /// The topic to consume: records whose key is their id.
    pub fn input_topic(&self) -> &str {
        &self.spec.input
    }

    /// The topic to produce to (read-process-write exercises).
    pub fn output_topic(&self) -> &str {
        self.spec.output.as_deref().unwrap_or("")
    }

    pub fn group(&self) -> &str {
        &self.spec.group
    }

    /// The same for every run of this exercise's program: what lets a
    /// successor fence the one the grader killed.
    pub fn transactional_id(&self) -> &str {
        &self.spec.transactional_id
    }

    /// A consumer configuration to start from: where the broker is, the
    /// group, and a 6 s session timeout (a killed member leaves its
    /// partitions to its replacement in seconds, not 45). Everything that
    /// makes a guarantee is yours to set.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.spec.bootstrap)
            .set("group.id", &self.spec.group)
            .set("session.timeout.ms", "6000");
        crate::connection::apply(&mut config);
        config
    }

    /// A producer configuration to start from: where the broker is. In a
    /// transactional exercise that is the grader's chaos proxy, and a lost
    /// answer is given up on (and the request sent again) after 2 s
    /// (`socket.timeout.ms`).
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        match &self.faults {
            Some(faults) => config
                .set("bootstrap.servers", faults.proxy.bootstrap())
                .set("socket.timeout.ms", "2000"),
            None => config.set("bootstrap.servers", &self.spec.bootstrap),
        };
        crate::connection::apply(&mut config);
        config
    }

    /// The id a lab record carries in its key.
    pub fn id_of(message: &impl Message) -> Option<u64> {
        record::parse_key(message.key())
    }

    /// Processes one record: its id goes into the results store (the side
    /// effect the audit counts). The grader's crash may fall right after.
    pub fn process(&mut self, message: &impl Message) -> Result<()> {
        let id = Kit::id_of(message).ok_or_else(|| {
            Error::BadData(format!(
                "a record without a lab id in its key (offset {} of partition {})",
                message.offset(),
                message.partition()
            ))
        })?;
        writeln!(self.results, "{id}").map_err(|source| Error::Io {
            doing: "writing the results store".into(),
            source,
        })?;
        self.write(&Entry::Processed {
            id,
            partition: message.partition(),
            offset: message.offset(),
        })?;
        self.after(Step::Process);
        Ok(())
    }

    /// The ids already in the results store: what every earlier run of
    /// this program processed, read back from where the results are kept.
    pub fn processed_ids(&self) -> Result<HashSet<u64>> {
        let text =
            fs::read_to_string(&self.spec.results).map_err(|source| Error::Io {
                doing: "reading the results store".into(),
                source,
            })?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Producer exercises: how many records the source holds (ids
    /// `0..source_len()`).
    pub fn source_len(&self) -> u64 {
        self.spec.records
    }

    /// Producer exercises: the payload of source record `id`. In a
    /// transactional exercise one of them is larger than
    /// [`Kit::output_limit`].
    pub fn payload(&self, id: u64) -> Vec<u8> {
        match self.spec.errors {
            Some(plan) if plan.poison == id => record::value(id, POISON_BYTES),
            _ => record::value(id, 100),
        }
    }

    /// Transactional exercises: the largest record the output topic takes
    /// (its `max.message.bytes`); the broker refuses a larger one.
    pub fn output_limit(&self) -> usize {
        OUTPUT_LIMIT
    }

    /// Producer exercises: the position this program saved last (0 on the
    /// first run): the next id to send.
    pub fn saved_position(&self) -> Result<u64> {
        match fs::read_to_string(&self.spec.position) {
            Ok(text) => text.trim().parse().map_err(|_| {
                Error::BadData(format!("the saved position is not a number: {text:?}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(Error::Io {
                doing: "reading the saved position".into(),
                source,
            }),
        }
    }

    /// Producer exercises: saves `next` as the position to resume from,
    /// durably (written aside, then renamed over the old one).
    pub fn save_position(&mut self, next: u64) -> Result<()> {
        let aside = self.spec.position.with_extension("new");
        fs::write(&aside, next.to_string())
            .and_then(|()| fs::rename(&aside, &self.spec.position))
            .map_err(|source| Error::Io {
                doing: "saving the position".into(),
                source,
            })?;
        self.write(&Entry::Saved { next })
    }

    /// `consumer.commit_consumer_state(mode)`: commits the consumer's
    /// current positions. The grader's crash may fall right after.
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        mode: CommitMode,
    ) -> KafkaResult<()> {
        consumer.commit_consumer_state(mode)?;
        let positions = consumer
            .position()?
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect();
        let _ = self.write(&Entry::Committed { positions });
        self.after(Step::Commit);
        Ok(())
    }

    /// `producer.send(record)`, noting the record's id. The grader's crash
    /// may fall right after.
    pub fn send<'a, K, P, C>(
        &mut self,
        producer: &BaseProducer<C>,
        record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
    ) -> KafkaResult<()>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
        C: ProducerContext,
    {
        let id = record::parse_key(record.key.map(|k| k.to_bytes()));
        if let Err((e, _)) = producer.send(record) {
            if let Some(id) = id {
                let error = e.to_string();
                let _ = self.write(&Entry::SendFailed { id, error });
            }
            return Err(e);
        }
        if let Some(id) = id {
            let _ = self.write(&Entry::Sent { id });
            self.note_sent(id);
        }
        self.after(Step::Send);
        Ok(())
    }

    /// `producer.commit_transaction(timeout)`. The grader's crash may fall
    /// right after. In a transactional exercise the grader's errors fall
    /// here: on the commit it picked, a successor fences this producer
    /// first, or the commit's answer is lost and this call is given at most
    /// 1 s (so it comes back with a retriable timeout, whatever `timeout`).
    pub fn commit_transaction<C: ProducerContext>(
        &mut self,
        producer: &BaseProducer<C>,
        timeout: Duration,
    ) -> KafkaResult<()> {
        let timeout = self.before_commit(timeout)?;
        if let Err(e) = producer.commit_transaction(timeout) {
            self.note_txn_error("commit_transaction", &e);
            return Err(e);
        }
        let _ = self.write(&Entry::TransactionCommitted);
        self.note_committed();
        self.after(Step::CommitTransaction);
        Ok(())
    }

    /// Whether the work is done: the group's committed offsets have reached
    /// the end of every input partition, or nothing was processed, sent or
    /// committed for a while (a program that never commits still ends).
    /// Asks the broker at most twice a second.
    pub fn finished(&mut self) -> bool {
        let idle = Duration::from_millis(self.spec.idle_limit_ms);
        if self.last_step.elapsed() > idle {
            let _ = self.write(&Entry::Finished { how: "idle".into() });
            return true;
        }
        if self
            .last_check
            .is_some_and(|t| t.elapsed() < Duration::from_millis(500))
        {
            return false;
        }
        self.last_check = Some(Instant::now());
        if self.stored_to_the_end().unwrap_or(false)
            || self.committed_to_the_end().unwrap_or(false)
        {
            let _ = self.write(&Entry::Finished {
                how: "committed".into(),
            });
            return true;
        }
        false
    }

    fn committed_to_the_end(&mut self) -> KafkaResult<bool> {
        if self.offsets_reader.is_none() {
            // Same group, never subscribed: it reads the group's committed
            // offsets without joining it.
            self.offsets_reader = Some(self.consumer_config().create()?);
        }
        let reader = self.offsets_reader.as_ref().expect("just created");
        let mut wanted = TopicPartitionList::new();
        for p in 0..self.spec.input_end.len() as i32 {
            wanted.add_partition(&self.spec.input, p);
        }
        let committed = reader.committed_offsets(wanted, Duration::from_secs(5))?;
        Ok(self.spec.input_end.iter().enumerate().all(|(p, end)| {
            match committed.find_partition(&self.spec.input, p as i32) {
                Some(e) => matches!(e.offset(), Offset::Offset(o) if o >= *end),
                None => false,
            }
        }))
    }

    fn write(&mut self, entry: &Entry) -> Result<()> {
        let line = serde_json::to_string(entry).expect("an entry serializes");
        writeln!(self.journal, "{line}").map_err(|source| Error::Io {
            doing: "writing the exercise journal".into(),
            source,
        })
    }

    /// Counts the step and dies if the grader chose this one.
    fn after(&mut self, step: Step) {
        self.last_step = Instant::now();
        let i = step as usize;
        self.calls[i] += 1;
        if let Some(crash) = self.spec.crash {
            if crash.step == step && crash.nth == self.calls[i] {
                let _ = self.write(&Entry::Dying {
                    at: crash.to_string(),
                });
                crate::faults::die_now();
            }
        }
    }
}

/// Up to `max` records from `consumer`, as many as arrive with no gap
/// longer than 100 ms: a batch to process and commit together. A record of
/// a partition that a rebalance took away while the batch was being taken
/// (seen by [`StartFrom`]) is left out. (This is all it does; the loop is
/// yours.)
pub fn poll_batch<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    max: usize,
) -> KafkaResult<Vec<BorrowedMessage<'_>>> {
    let mut batch = Vec::new();
    while batch.len() < max {
        let polled = consumer.poll(Duration::from_millis(100));
        let stop = polled.is_none();
        if let Some(message) = polled {
            batch.push(message?);
        }
        // A rebalance inside that poll took partitions away: their records
        // held here are no longer this consumer's to write (their new owner
        // starts where the database says).
        db::drop_revoked(&mut batch);
        if stop {
            break;
        }
    }
    Ok(batch)
}

/// The `main` of an exercises binary: `NAME '<KitSpec json>'` runs the
/// exercise of that name from `table` with a kit. An error or a panic in
/// the learner's code ends the process with a message and exit code 1.
pub fn main(table: &[(&str, ExerciseFn)]) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    let [name, json] = args.as_slice() else {
        eprintln!(
            "usage: exercises NAME SPEC: the grader starts this program itself; run \
             `cargo xtask exercise NAME` (NAME is one of {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    let Some((_, exercise)) = table.iter().find(|(n, _)| n == name) else {
        eprintln!("no exercise {name:?}: use one of {}", names.join(", "));
        std::process::exit(2);
    };
    let spec: KitSpec = match serde_json::from_str(json) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("the grader's orders are not a KitSpec ({e}): {json}");
            std::process::exit(2);
        }
    };
    let result = Kit::new(spec)
        .map_err(|e| e.into())
        .and_then(|mut kit| exercise(&mut kit));
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("your program stopped with an error: {e}");
            std::process::exit(1);
        }
    }
}
