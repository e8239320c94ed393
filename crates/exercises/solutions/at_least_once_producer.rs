//! Solution: save a position only past records the broker acknowledged.
//! Send a batch, flush (which waits for every delivery report), check that
//! no report said failure, and only then save. A crash before the save
//! makes the replacement send the batch again (duplicates, allowed), never
//! skip it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lab::exercise::kit::{Kit, Outcome};
use lab::rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use lab::rdkafka::ClientContext;

/// Counts the delivery reports that said failure.
#[derive(Default)]
struct Failures(AtomicU64);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

pub fn run(kit: &mut Kit) -> Outcome {
    let producer: BaseProducer<Failures> = kit
        .producer_config()
        .set("acks", "all")
        .set("linger.ms", "100")
        .create_with_context(Failures::default())?;
    let topic = kit.output_topic().to_owned();

    let mut next = kit.saved_position()?;
    while next < kit.source_len() {
        let end = (next + 50).min(kit.source_len());
        for id in next..end {
            let key = lab::record::key(id);
            let value = lab::record::value(id, 100);
            kit.send(&producer, BaseRecord::to(&topic).key(&key).payload(&value))?;
        }
        producer.flush(Duration::from_secs(30))?;
        if producer.context().0.load(Ordering::SeqCst) > 0 {
            return Err("a record was not delivered: not saving past it (restart to send it again)".into());
        }
        next = end;
        kit.save_position(next)?;
    }
    Ok(())
}
