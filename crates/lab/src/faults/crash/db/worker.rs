//! The child process of the database-sink scenario: a consumer that writes
//! every record of its batch to a database table and sends one
//! notification per record, in the order its [`DbVariant`] says, and dies
//! with SIGKILL at the step its orders name.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::bindings::rd_kafka_resp_err_t as RespErr;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::spec::{DbSinkSpec, DbStep, DbVariant};
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::crash::protocol::Event;
use crate::faults::die_now;
use crate::liveness::BrokerWatch;
use crate::produce::{self, LoggingContext};
use crate::semantics::Semantic;
use crate::sink::{Notifications, OffsetWrite, ResultStore, Row, SqliteStore, Table};
use crate::support::lock;

/// How long the worker may see no record at all before it gives up.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

fn report(event: Event) {
    println!("{}", event.to_line());
}

// ANCHOR: assign_from_db
/// The consumer's context: on every assignment, each partition starts at
/// the offset the database holds for it (or at the beginning), not at
/// Kafka's committed offset. It runs inside `poll`, before any record of the
/// new assignment is fetched.
struct AssignFromDb {
    /// The offsets-in-database variant's store; `None`: Kafka's offsets.
    db: Option<(std::path::PathBuf, Table)>,
    /// A failure inside the callback, for the loop to return.
    failed: Mutex<Option<Error>>,
}

impl AssignFromDb {
    fn start_where_the_db_says(&self, tpl: &mut TopicPartitionList) -> Result<()> {
        let Some((file, table)) = &self.db else {
            return Ok(());
        };
        let mut store = SqliteStore::open(file, *table)?;
        for mut element in tpl.elements() {
            let stored = store.stored_offsets(element.topic())?;
            let start = match stored.get(&element.partition()) {
                Some(&next) => Offset::Offset(next),
                None => Offset::Beginning,
            };
            element
                .set_offset(start)
                .doing("setting a partition's start offset")?;
        }
        Ok(())
    }
}

impl ClientContext for AssignFromDb {}

impl ConsumerContext for AssignFromDb {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let assigning = err == RespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        let started = if assigning {
            let started = self.start_where_the_db_says(tpl);
            report(Event::Assigned {
                partitions: tpl.elements().iter().map(|e| e.partition()).collect(),
            });
            started
        } else {
            Ok(())
        };
        let result = started.and(crate::consume::apply_rebalance(consumer, err, tpl));
        if let Err(e) = result {
            lock(&self.failed).get_or_insert(e);
        }
    }
}
// ANCHOR_END: assign_from_db

/// One worker: its orders, its clients and stores, and what it has read.
struct Worker<'a> {
    w: &'a DbSinkSpec,
    consumer: BaseConsumer<AssignFromDb>,
    /// The Kafka-transaction variant's producer.
    producer: Option<BaseProducer<LoggingContext>>,
    store: SqliteStore,
    notifications: Notifications,
    watch: BrokerWatch,
    /// Records taken so far, this batch included.
    consumed: u64,
    at_end: HashSet<i32>,
    last_record: Instant,
    /// Whether it has paused (it pauses once).
    paused: bool,
    /// Resumed after a pause: the next transaction is the held batch's.
    resumed: bool,
}

/// `lab worker '{"role":"db-sink",...}'`: consumes until the topic is done
/// (or until its crash point).
pub fn run(w: &DbSinkSpec) -> Result<()> {
    w.check()?;
    let cluster = Cluster::connect(&w.bootstrap)?;
    let store = SqliteStore::open(&w.db, w.variant.table())?;
    let notifications = Notifications::open(&w.notifications)?;
    let producer = match &w.output {
        Some(_) => Some(transactional_producer(&cluster, w)?),
        None => None,
    };
    let mut worker = Worker {
        consumer: subscribe(&cluster, w)?,
        producer,
        store,
        notifications,
        watch: cluster.watch(format!("consuming {} into {}", w.input, w.db.display())),
        consumed: 0,
        at_end: HashSet::new(),
        last_record: Instant::now(),
        paused: false,
        resumed: false,
        w,
    };
    loop {
        let rows = worker.next_batch()?;
        if rows.is_empty() {
            if worker.finished()? {
                break;
            }
            continue;
        }
        worker.consumed += rows.len() as u64;
        worker.pause_if_told(&rows)?;
        // Processing takes time: a rebalance can move a partition while its
        // batch is held here, before it is written.
        std::thread::sleep(Duration::from_millis(w.pace_ms));
        match w.variant {
            DbVariant::RowThenCommit | DbVariant::UpsertThenCommit => {
                worker.row_then_commit(&rows)?
            }
            DbVariant::CommitThenRow => worker.commit_then_row(&rows)?,
            DbVariant::OffsetsInDb => worker.offsets_in_db(&rows)?,
            DbVariant::KafkaTransaction => worker.kafka_transaction(&rows)?,
        }
    }
    report(Event::Done);
    Ok(())
}

fn subscribe(cluster: &Cluster, w: &DbSinkSpec) -> Result<BaseConsumer<AssignFromDb>> {
    let semantic = match w.variant {
        DbVariant::KafkaTransaction => Semantic::ExactlyOnce,
        _ => Semantic::AtLeastOnce,
    };
    let mut config = semantic.consumer_config(
        cluster.bootstrap(),
        &w.group,
        &crate::faults::crash::worker::crash_consumer_overrides(),
    );
    config.set("enable.partition.eof", "true");
    let context = AssignFromDb {
        db: (w.variant == DbVariant::OffsetsInDb)
            .then(|| (w.db.clone(), w.variant.table())),
        failed: Mutex::new(None),
    };
    let consumer: BaseConsumer<AssignFromDb> = config
        .create_with_context(context)
        .doing("creating the consumer")?;
    consumer
        .subscribe(&[&w.input])
        .doing(format!("subscribing to {}", w.input))?;
    Ok(consumer)
}

fn transactional_producer(
    cluster: &Cluster,
    w: &DbSinkSpec,
) -> Result<BaseProducer<LoggingContext>> {
    let id = format!("{}-db-processor", w.group);
    let producer: BaseProducer<LoggingContext> = Semantic::ExactlyOnce
        .producer_config(cluster.bootstrap(), Some(&id), &[])?
        .create_with_context(LoggingContext(Default::default()))
        .doing("creating the transactional producer")?;
    produce::init_transactions(&producer)?;
    Ok(producer)
}

impl Worker<'_> {
    /// Up to a batch of records; fewer when nothing more is waiting.
    fn next_batch(&mut self) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        while rows.len() < self.w.batch {
            let polled = self.consumer.poll(Duration::from_millis(100));
            if let Some(e) = lock(&self.consumer.context().failed).take() {
                return Err(e);
            }
            match polled {
                None => {
                    self.watch.check()?;
                    break;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    self.at_end.insert(p);
                    self.watch.heard();
                }
                Some(Err(e)) if crate::consume::transient(&e) => self.watch.check()?,
                Some(Err(e)) => return Err(e).doing("consuming"),
                Some(Ok(m)) => {
                    self.at_end.remove(&m.partition());
                    self.watch.heard();
                    self.last_record = Instant::now();
                    if let Some(id) = crate::record::parse_key(m.key()) {
                        rows.push(Row {
                            id,
                            topic: m.topic().to_string(),
                            partition: m.partition(),
                            offset: m.offset(),
                        });
                    }
                }
            }
        }
        Ok(rows)
    }

    /// Whether the topic is done: for the offsets-in-database variant, when
    /// the database's offsets reach every partition's end (whichever
    /// instance applied them); for the others, when this consumer has read
    /// every partition to its end.
    fn finished(&mut self) -> Result<bool> {
        let done = if self.w.variant == DbVariant::OffsetsInDb {
            let stored = self.store.stored_offsets(&self.w.input)?;
            self.w.end_offsets.iter().enumerate().all(|(p, &end)| {
                end == 0 || stored.get(&(p as i32)).is_some_and(|&at| at >= end)
            })
        } else {
            self.at_end.len() >= self.w.end_offsets.len()
        };
        if !done && self.last_record.elapsed() > IDLE_LIMIT {
            return Err(Error::Stalled {
                stage: "database-sink consumer",
                waited: IDLE_LIMIT,
                detail: format!(
                    "no record arrived and the topic is not done (at the end of {} of {} partitions)",
                    self.at_end.len(),
                    self.w.end_offsets.len()
                ),
            });
        }
        Ok(done)
    }

    /// Dies here if the orders say so: the batch's ids go to the parent first.
    fn step(&self, step: DbStep, rows: &[Row]) {
        if self.dies_at(step) {
            report(Event::InGap {
                ids: rows.iter().map(|r| r.id).collect(),
            });
            die_now();
        }
    }

    /// Stops this process (SIGSTOP) holding `rows` if the orders say so,
    /// once the parent can read its process id; runs on when resumed.
    fn pause_if_told(&mut self, rows: &[Row]) -> Result<()> {
        let Some((at, file)) = &self.w.pause else {
            return Ok(());
        };
        if self.paused || self.consumed < *at {
            return Ok(());
        }
        report(Event::Paused {
            ids: rows.iter().map(|r| r.id).collect(),
        });
        let written = file.with_extension("writing");
        std::fs::write(&written, std::process::id().to_string())
            .and_then(|()| std::fs::rename(&written, file))
            .doing(format!("cannot write {}", file.display()))?;
        // SAFETY: raise(3) with a signal number has no memory-safety preconditions.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
        self.paused = true;
        self.resumed = true;
        self.last_record = Instant::now();
        Ok(())
    }

    fn dies_at(&self, step: DbStep) -> bool {
        self.w
            .crash
            .is_some_and(|(k, at)| at == step && self.consumed >= k)
    }

    /// Writes the batch in one database transaction (with the offsets if
    /// `offsets`); returns the rows applied.
    fn write(&mut self, rows: &[Row], offsets: bool) -> Result<Vec<Row>> {
        let dies = self.dies_at(DbStep::InDbTransaction);
        let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
        let offsets = offsets.then_some(self.w.offset_write);
        self.store.apply(rows, offsets, &mut || {
            if dies {
                report(Event::InGap { ids: ids.clone() });
                die_now();
            }
        })
    }

    fn notify(&mut self, rows: &[Row]) -> Result<()> {
        let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
        self.notifications.send(&ids)?;
        report(Event::Processed {
            records: ids.len() as u64,
        });
        Ok(())
    }

    fn commit_to_kafka(&mut self, rows: &[Row]) -> Result<()> {
        self.consumer
            .commit(&next_offsets(rows), CommitMode::Sync)
            .doing("committing offsets to Kafka")
    }

    /// Variants 1 and 3: the database, the notifications, then Kafka.
    fn row_then_commit(&mut self, rows: &[Row]) -> Result<()> {
        self.write(rows, false)?;
        self.step(DbStep::AfterDbCommit, rows);
        self.notify(rows)?;
        self.step(DbStep::AfterNotify, rows);
        self.commit_to_kafka(rows)?;
        self.step(DbStep::AfterKafkaCommit, rows);
        Ok(())
    }

    /// Variant 2: Kafka first, then the database and the notifications.
    fn commit_then_row(&mut self, rows: &[Row]) -> Result<()> {
        self.commit_to_kafka(rows)?;
        self.step(DbStep::AfterKafkaCommit, rows);
        self.write(rows, false)?;
        self.step(DbStep::AfterDbCommit, rows);
        self.notify(rows)?;
        self.step(DbStep::AfterNotify, rows);
        Ok(())
    }

    // ANCHOR: offsets_in_db
    /// Variant 4: the rows and the next offsets in one database transaction,
    /// which leaves out any record below the offsets it already holds (read
    /// again after a crash, or by an instance whose partition has moved).
    /// Nothing is committed to Kafka. Only the rows applied are notified,
    /// after the commit: a notification is never sent twice, and one is
    /// lost if the process dies between the commit and the send.
    fn offsets_in_db(&mut self, rows: &[Row]) -> Result<()> {
        let applied = self.write(rows, true)?;
        self.step(DbStep::AfterDbCommit, rows);
        self.notify(&applied)?;
        self.step(DbStep::AfterNotify, rows);
        if applied.is_empty() && self.w.offset_write == OffsetWrite::CompareAndSet {
            self.start_again_where_the_db_says(rows)?;
        }
        if std::mem::take(&mut self.resumed) {
            let stored = self.store.stored_offsets(&self.w.input)?;
            report(Event::AfterPause {
                applied: applied.len() as u64,
                offsets: stored.into_iter().collect(),
            });
        }
        Ok(())
    }
    // ANCHOR_END: offsets_in_db

    /// After a compare-and-set refused a batch (another consumer moved its
    /// partitions on), reads on from where the database says; a partition
    /// this consumer no longer owns refuses the seek, and the rebalance
    /// that comes starts it afresh anyway.
    fn start_again_where_the_db_says(&mut self, rows: &[Row]) -> Result<()> {
        let stored = self.store.stored_offsets(&self.w.input)?;
        let partitions: HashSet<i32> = rows.iter().map(|r| r.partition).collect();
        for p in partitions {
            if let Some(&next) = stored.get(&p) {
                let _ = self.consumer.seek(
                    &self.w.input,
                    p,
                    Offset::Offset(next),
                    Duration::from_secs(5),
                );
            }
        }
        Ok(())
    }

    /// Variant 5: inside a Kafka transaction, the output records, then the
    /// database write and the notifications, then the consumed offsets and
    /// the commit of the transaction.
    fn kafka_transaction(&mut self, rows: &[Row]) -> Result<()> {
        let producer = self.producer.as_ref().expect("checked: an output topic");
        let output = self.w.output.as_deref().expect("checked: an output topic");
        producer
            .begin_transaction()
            .doing("beginning a transaction")?;
        for r in rows {
            produce::send_watched(producer, output, r.id, 100, &mut self.watch)?;
        }
        produce::drain_watched(producer, Duration::from_secs(60), &mut self.watch)?;
        self.write(rows, false)?;
        self.step(DbStep::AfterDbCommit, rows);
        self.notify(rows)?;
        self.step(DbStep::AfterNotify, rows);
        let producer = self.producer.as_ref().expect("checked: an output topic");
        let metadata = self.consumer.group_metadata().ok_or_else(|| {
            Error::BadConfig(
                "the consumer has no group metadata: is group.id set?".into(),
            )
        })?;
        let offsets = next_offsets(rows);
        self.watch.patiently(
            "adding the consumed offsets to the transaction",
            Duration::from_secs(30),
            |t| producer.send_offsets_to_transaction(&offsets, &metadata, t),
        )?;
        produce::commit_watched(producer, &mut self.watch)?;
        self.step(DbStep::AfterKafkaCommit, rows);
        Ok(())
    }
}

/// Per partition, the offset after the batch's last record.
fn next_offsets(rows: &[Row]) -> TopicPartitionList {
    crate::consume::next_offsets_of(
        rows.iter()
            .map(|r| (r.topic.as_str(), r.partition, r.offset)),
    )
}
