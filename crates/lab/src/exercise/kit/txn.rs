//! The kit's side of the transactional exercise: the three errors the
//! grader injects inside the learner's process, for real, on real Kafka.
//!
//! - Retriable: the producer talks to Kafka through a chaos proxy; on the
//!   commit the grader picked, the proxy swallows the answer to EndTxn and
//!   the call is given at most 1 s, so it returns a retriable timeout while
//!   librdkafka sends the EndTxn again after `socket.timeout.ms`.
//! - Abortable: one source record is larger than the output topic's
//!   `max.message.bytes` ([`Kit::payload`]); the broker refuses it and the
//!   transaction can only be aborted.
//! - Fatal: before the commit the grader picked, a successor producer with
//!   the same `transactional.id` calls `init_transactions` and fences the
//!   learner's.
//!
//! Each error the learner's calls get is journaled with librdkafka's
//! classification, for the grader to explain what the program did next.

use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::ClientConfig;

use super::{Entry, ErrorPlan, Kit};
use crate::error::Result;
use crate::faults::proxy::{ApiKey, ChaosProxy};

/// The exit code of a program that stopped because it was fenced: what the
/// transactional exercise asks for after a fatal error.
pub const EXIT_FENCED: i32 = 3;

/// The exit code the kit gives a program it stopped after
/// `ABORTABLE_LIMIT` abortable errors in a row (redoing a batch that can
/// never commit).
pub const EXIT_GAVE_UP: i32 = 4;

/// Abortable errors in a row, with no commit between them, after which the
/// kit stops the program.
const ABORTABLE_LIMIT: u64 = 6;

/// How long the commit whose answer is lost may wait.
const LOST_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// The injected errors of one run, and how far they got.
pub(super) struct Faults {
    pub(super) proxy: ChaosProxy,
    plan: ErrorPlan,
    /// The largest id sent so far.
    max_sent: Option<u64>,
    answer_dropped: bool,
    fenced: bool,
    abortable_in_a_row: u64,
}

impl Faults {
    pub(super) fn start(bootstrap: &str, plan: ErrorPlan) -> Result<Faults> {
        Ok(Faults {
            proxy: ChaosProxy::start(bootstrap)?,
            plan,
            max_sent: None,
            answer_dropped: false,
            fenced: false,
            abortable_in_a_row: 0,
        })
    }

    fn sent_past(&self, id: u64) -> bool {
        self.max_sent.is_some_and(|sent| sent >= id)
    }
}

impl Kit {
    /// `producer.abort_transaction(timeout)`, after a flush (an abort needs
    /// every delivery report served first).
    pub fn abort_transaction<C: ProducerContext>(
        &mut self,
        producer: &BaseProducer<C>,
        timeout: Duration,
    ) -> KafkaResult<()> {
        // A flush in a failed transaction fails too; the abort says how.
        let _ = producer.flush(timeout);
        if let Err(e) = producer.abort_transaction(timeout) {
            self.note_txn_error("abort_transaction", &e);
            return Err(e);
        }
        let _ = self.write(&Entry::TransactionAborted);
        Ok(())
    }

    pub(super) fn note_sent(&mut self, id: u64) {
        if let Some(faults) = &mut self.faults {
            faults.max_sent = Some(faults.max_sent.map_or(id, |m| m.max(id)));
        }
    }

    pub(super) fn note_committed(&mut self) {
        if let Some(faults) = &mut self.faults {
            faults.abortable_in_a_row = 0;
        }
    }

    /// Journals a failed transactional call with librdkafka's
    /// classification, and stops a program stuck in abortable errors.
    pub(super) fn note_txn_error(&mut self, call: &str, error: &KafkaError) {
        let entry = match error {
            KafkaError::Transaction(e) => Entry::TxnError {
                call: call.into(),
                code: format!("{:?}", e.code()),
                retriable: e.is_retriable(),
                abortable: e.txn_requires_abort(),
                fatal: e.is_fatal(),
                message: e.to_string(),
            },
            other => Entry::TxnError {
                call: call.into(),
                code: format!("{:?}", other.rdkafka_error_code()),
                retriable: false,
                abortable: false,
                fatal: false,
                message: other.to_string(),
            },
        };
        let abortable = matches!(
            entry,
            Entry::TxnError {
                abortable: true,
                ..
            }
        );
        let _ = self.write(&entry);
        let Some(faults) = &mut self.faults else {
            return;
        };
        if !abortable {
            return;
        }
        faults.abortable_in_a_row += 1;
        let abortable = faults.abortable_in_a_row;
        if abortable >= ABORTABLE_LIMIT {
            let _ = self.write(&Entry::GaveUp { abortable });
            eprintln!(
                "the grader stopped your program: {abortable} abortable errors in a row, \
                 with no commit between them"
            );
            std::process::exit(EXIT_GAVE_UP);
        }
    }

    /// The grader's errors that fall on a commit: the fence, or the lost
    /// answer (then the commit may wait at most [`LOST_ANSWER_WAIT`]).
    /// Returns the timeout the commit gets.
    pub(super) fn before_commit(&mut self, timeout: Duration) -> KafkaResult<Duration> {
        let Some(faults) = &mut self.faults else {
            return Ok(timeout);
        };
        if !faults.fenced && faults.sent_past(faults.plan.fence) {
            faults.fenced = true;
            fence(&self.spec.bootstrap, &self.spec.transactional_id)?;
            let _ = self.write(&Entry::Fenced);
            return Ok(timeout);
        }
        if !faults.answer_dropped && faults.sent_past(faults.plan.lost_answer) {
            faults.answer_dropped = true;
            faults.proxy.inject_response_drop(ApiKey::EndTxn, 1);
            let _ = self.write(&Entry::AnswerDropped);
            return Ok(timeout.min(LOST_ANSWER_WAIT));
        }
        Ok(timeout)
    }
}

/// A successor with the same `transactional.id` registers itself: the
/// coordinator bumps the epoch, aborts the open transaction, and every
/// older instance is fenced.
fn fence(bootstrap: &str, transactional_id: &str) -> KafkaResult<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id);
    crate::connection::apply(&mut config);
    let successor: BaseProducer = config.create()?;
    successor.init_transactions(Duration::from_secs(30))
}
