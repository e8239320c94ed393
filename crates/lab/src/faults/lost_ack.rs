//! Scenario A: the acknowledgement is lost after the write. The producer talks
//! to Kafka through the chaos proxy; once the first records are safely
//! acknowledged, the proxy forwards the next Produce request to the broker (the
//! records are appended) and swallows its response. The producer hears nothing,
//! times out after `socket.timeout.ms`, and, if its semantic retries, sends the
//! same records again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer};

use crate::audit;
use crate::audit::IdRanges;
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::proxy::{ChaosProxy, ProduceFault, ProxyStats};
use crate::outcome::{FaultWindow, Outcome};
use crate::produce::{self, DeliveryLog, LoggingContext};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;
use crate::support::lock;
use crate::support::Seeded;

/// The client-side timeout of a request in flight, lowered so the scenario
/// takes seconds: in librdkafka this is `socket.timeout.ms`, not
/// `request.timeout.ms` (which only bounds the broker's wait for replicas).
pub const SOCKET_TIMEOUT_MS: &str = "2000";

/// The workload of a lost-ack run.
#[derive(Clone, Debug)]
pub struct LostAckOptions {
    pub records: u64,
    /// Chooses after how many acknowledged records the fault is armed.
    pub seed: u64,
    /// What the proxy does to the next Produce request.
    pub fault: ProduceFault,
    /// Extra producer settings (e.g. acks=1 to see a failed record's status).
    pub overrides: Vec<(String, String)>,
}

impl LostAckOptions {
    pub fn new(records: u64, seed: u64) -> LostAckOptions {
        LostAckOptions {
            records,
            seed,
            fault: ProduceFault::DropResponses { count: 1 },
            overrides: Vec::new(),
        }
    }
}

/// Runs scenario A for `semantic` on a real broker.
pub fn lost_ack(
    cluster: &Cluster,
    semantic: Semantic,
    options: &LostAckOptions,
) -> Result<Outcome> {
    refuse_the_mock(cluster)?;
    let started = Instant::now();
    let topic = cluster.fresh_name(&format!("{semantic}-lost-ack"));
    cluster.create_topic(&topic, 3)?;
    let proxy = ChaosProxy::start(cluster.bootstrap())?;
    let mut client = Client::through(&proxy, semantic, &topic, &options.overrides)?;
    let sent = client.send_with_fault(&proxy, &topic, options)?;
    crate::stats::Monitor::settle(&client.producer);
    drop(client.producer);
    let stats = proxy.stats();
    drop(proxy);
    let (acknowledged, failed) = client.log.take();
    let reported = std::mem::take(&mut *lock(&client.reported));
    let window = fault_window(
        options.fault,
        sent.armed_at,
        options.records,
        (sent.armed, &sent.handed_at),
        &reported,
        &stats,
    );
    let possibly = failed
        .iter()
        .filter(|f| f.status == produce::DeliveryStatus::PossiblyPersisted)
        .count();
    let mut outcome = Outcome {
        window: Some(window.with_seconds_since(started)),
        backend_description: format!("{}, through the chaos proxy", cluster.describe()),
        fault: Some(format!(
            "{:?} armed after record {} (seed {}): {} response(s) dropped, {} connection(s) \
             cut; {} record(s) failed, {possibly} of them 'possibly persisted'",
            options.fault,
            sent.armed_at,
            options.seed,
            stats.responses_dropped,
            stats.connections_cut,
            failed.len()
        )),
        failures: failed,
        produce_seconds: started.elapsed().as_secs_f64(),
        ..Outcome::new(cluster, semantic, options.records, topic.clone())
    };
    let in_log = read_ids(cluster, &topic, Isolation::ReadCommitted)?;
    let in_log_uncommitted = read_ids(cluster, &topic, Isolation::ReadUncommitted)?;
    outcome.record_audit(&audit::Observed {
        source: options.records,
        sent: options.records,
        acknowledged: &acknowledged,
        in_log: &in_log,
        in_log_uncommitted: &in_log_uncommitted,
        delivered: &in_log,
        aborted: &[],
    });
    Ok(outcome)
}

fn refuse_the_mock(cluster: &Cluster) -> Result<()> {
    if cluster.backend() == crate::Backend::Mock {
        return Err(Error::Unsupported {
            what: "the lost-ack scenario".into(),
            backend: cluster.describe(),
            why: "the chaos proxy needs a real broker behind it; librdkafka's mock cluster never \
                  appends a request it answers with an error, and its idempotence is not Kafka's"
                .into(),
        });
    }
    Ok(())
}

/// The producer of the run, talking to Kafka through the proxy, and what it heard.
struct Client {
    producer: BaseProducer<LoggingContext>,
    log: Arc<DeliveryLog>,
    /// When each delivery report arrived: the records of the request whose
    /// answer the proxy swallowed are the ones that had to wait out the timeout.
    reported: Arc<Mutex<Vec<(u64, Instant)>>>,
    transactional: bool,
}

/// What the sending side saw of the fault.
struct Sent {
    /// Records before this id were acknowledged before the proxy was armed.
    armed_at: u64,
    armed: Instant,
    /// When each record from `armed_at` on was handed over: a record of the
    /// struck request hears back only after the timeout, counted from here.
    handed_at: Vec<Instant>,
}

impl Client {
    fn through(
        proxy: &ChaosProxy,
        semantic: Semantic,
        topic: &str,
        extra: &[(String, String)],
    ) -> Result<Client> {
        let mut overrides = vec![(
            "socket.timeout.ms".to_string(),
            SOCKET_TIMEOUT_MS.to_string(),
        )];
        overrides.extend(extra.iter().cloned());
        let transactional_id = format!("{topic}-producer");
        let config = semantic.producer_config(
            &proxy.bootstrap(),
            Some(&transactional_id),
            &overrides,
        )?;
        let reported: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let log = Arc::new(DeliveryLog::with_callback({
            let reported = reported.clone();
            move |id, _| lock(&reported).push((id, Instant::now()))
        }));
        let producer: BaseProducer<LoggingContext> = config
            .create_with_context(LoggingContext(log.clone()))
            .doing("creating the producer")?;
        let transactional = semantic == Semantic::ExactlyOnce;
        if transactional {
            producer
                .init_transactions(Duration::from_secs(30))
                .doing("initialising transactions")?;
            begin(&producer)?;
        }
        Ok(Client {
            producer,
            log,
            reported,
            transactional,
        })
    }

    /// Sends every record, arming the proxy at a seeded point once everything
    /// before it is acknowledged and nothing is in flight, so the fault hits
    /// exactly the next Produce request.
    fn send_with_fault(
        &mut self,
        proxy: &ChaosProxy,
        topic: &str,
        options: &LostAckOptions,
    ) -> Result<Sent> {
        let producer = &self.producer;
        let armed_at = Seeded::new(options.seed)
            .in_range(options.records / 5..options.records / 2);
        for id in 0..armed_at {
            produce::send(producer, topic, id, 100)?;
        }
        if self.transactional {
            produce::commit(producer)?;
            begin(producer)?;
        } else {
            produce::flush(producer, Duration::from_secs(60))?;
        }
        let armed = Instant::now();
        proxy.inject(options.fault);
        let mut handed_at = Vec::with_capacity((options.records - armed_at) as usize);
        for id in armed_at..options.records {
            produce::send(producer, topic, id, 100)?;
            handed_at.push(Instant::now());
            if self.transactional && (id + 1) % 500 == 0 {
                produce::commit(producer)?;
                begin(producer)?;
            }
        }
        if self.transactional {
            produce::commit(producer)?;
        } else {
            produce::flush(producer, Duration::from_secs(120))?;
        }
        Ok(Sent {
            armed_at,
            armed,
            handed_at,
        })
    }
}

fn begin(producer: &BaseProducer<LoggingContext>) -> Result<()> {
    producer
        .begin_transaction()
        .doing("beginning a transaction")
}

/// A fault window with the times it began and ended, both relative to `start`.
struct Timed {
    window: FaultWindow,
    from: Instant,
    to: Instant,
}

impl Timed {
    fn with_seconds_since(self, start: Instant) -> FaultWindow {
        let since = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
        FaultWindow {
            seconds: Some([since(self.from), since(self.to)]),
            ..self.window
        }
    }
}

/// Where the fault struck, from what the producer saw. Nothing was in flight
/// when the proxy was armed, so its fault hit the next Produce request, which
/// carried records sent after the arming. When the answer is swallowed (or
/// held back past `socket.timeout.ms`), the records of that request are the
/// ones whose delivery report came more than the timeout after they were
/// handed over: an answered request is reported within milliseconds. When the connection is cut, the
/// client retries at once, so the window is every record after the arming.
fn fault_window(
    fault: ProduceFault,
    armed_at: u64,
    records: u64,
    (armed, handed_at): (Instant, &[Instant]),
    reported: &[(u64, Instant)],
    stats: &ProxyStats,
) -> Timed {
    let timeout = Duration::from_millis(SOCKET_TIMEOUT_MS.parse().unwrap_or(2000));
    let waits_out_the_timeout = match fault {
        ProduceFault::DropResponses { .. } => true,
        ProduceFault::DelayResponses { delay, .. } => delay > timeout,
        ProduceFault::None | ProduceFault::CutAfterRequest { .. } => false,
    };
    let last_report = reported.iter().map(|r| r.1).max().unwrap_or(armed);
    let struck =
        stats.responses_dropped + stats.responses_delayed + stats.connections_cut;
    if struck == 0 {
        // acks=0: the request asks for no answer, so the fault had nothing to drop.
        return Timed {
            window: FaultWindow::span(
                format!("proxy armed after record {armed_at}; an acks=0 request has no answer to lose"),
                armed_at..armed_at,
            ),
            from: armed,
            to: armed,
        };
    }
    if waits_out_the_timeout {
        let late: Vec<&(u64, Instant)> = reported
            .iter()
            .filter(|(id, at)| {
                id.checked_sub(armed_at)
                    .and_then(|i| handed_at.get(i as usize))
                    .is_some_and(|handed| {
                        at.saturating_duration_since(*handed) >= timeout
                    })
            })
            .collect();
        let ids: IdRanges = late.iter().map(|r| r.0).collect();
        let to = late.iter().map(|r| r.1).max().unwrap_or(armed);
        let label = format!(
            "ack lost: {} records waited out socket.timeout.ms ({} ms), then were sent again",
            ids.len(),
            timeout.as_millis()
        );
        return Timed {
            window: FaultWindow {
                from: armed_at,
                ..FaultWindow::of_ids(label, ids, armed_at)
            },
            from: armed,
            to,
        };
    }
    let label = match fault {
        ProduceFault::DelayResponses { delay, .. } => format!(
            "answer delayed {} ms, within socket.timeout.ms: records from the arming on waited",
            delay.as_millis()
        ),
        _ => "connection cut after a request: records from the arming on were retried".to_string(),
    };
    Timed {
        window: FaultWindow::span(label, armed_at..records),
        from: armed,
        to: last_report,
    }
}
