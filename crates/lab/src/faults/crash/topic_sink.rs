//! At-least-once read-process-write: a consumer worker's sink that writes
//! each batch to an output topic with an idempotent `acks=all` producer and
//! waits for every acknowledgement before the loop commits the batch's
//! offsets. A crash between the two steps writes the batch again (a
//! duplicate), never loses it. The nemesis runs it beside exactly-once.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::BaseProducer;

use crate::cluster::Cluster;
use crate::consume::Sink;
use crate::error::{Doing, Error, Result};
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::semantics::Semantic;

/// How long one batch may take to be acknowledged.
const ACK_LIMIT: Duration = Duration::from_secs(120);

pub(super) struct TopicSink<'a> {
    producer: BaseProducer<LoggingContext>,
    log: Arc<DeliveryLog>,
    output: String,
    /// The worker's own sink, for its hooks (the slow processor's pause).
    inner: &'a mut dyn Sink,
}

impl<'a> TopicSink<'a> {
    pub(super) fn new(
        cluster: &Cluster,
        output: &str,
        inner: &'a mut dyn Sink,
    ) -> Result<TopicSink<'a>> {
        let log = Arc::new(DeliveryLog::default());
        let overrides = [("enable.idempotence".to_string(), "true".to_string())];
        let producer = Semantic::AtLeastOnce
            .producer_config(cluster.bootstrap(), None, &overrides)?
            .create_with_context(LoggingContext(log.clone()))
            .doing("creating the at-least-once processor's producer")?;
        Ok(TopicSink {
            producer,
            log,
            output: output.to_string(),
            inner,
        })
    }
}

impl Sink for TopicSink<'_> {
    fn process(&mut self, ids: &[u64]) -> Result<()> {
        for &id in ids {
            produce::send(&self.producer, &self.output, id, 100)?;
        }
        produce::flush(&self.producer, ACK_LIMIT)?;
        let (_, failed) = self.log.take();
        if let Some(first) = failed.first() {
            // Not committed: a replacement reads the batch again.
            return Err(Error::Process {
                what: "the at-least-once processor".into(),
                detail: format!(
                    "{} of {} records were not acknowledged (first: id {}), so the batch's \
                     offsets are not committed",
                    failed.len(),
                    ids.len(),
                    first.id
                ),
            });
        }
        Ok(())
    }

    fn between_steps(&mut self, consumed: u64, batch: &[u64]) {
        self.inner.between_steps(consumed, batch);
    }
}
