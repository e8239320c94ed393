//! Fault A, "the ack is lost after the write", on Apache Kafka through the
//! chaos proxy: the Produce request reaches the broker and is appended, the
//! response never reaches the producer (dropped, or the connection is cut).
//!
//! At-least-once retries and writes the batch twice; an idempotent producer
//! retries too, and the broker recognises the batch by its sequence number.
//! librdkafka's mock cluster gets the second half wrong (it does not
//! de-duplicate without a transactional.id), so this is shown on real Kafka.
//!
//! Ignored by a plain `cargo test` (they need a broker); `cargo xtask test`
//! starts one and runs them with `--include-ignored`. By hand:
//!
//!     cargo xtask kafka up            # and `--three` for the three-broker test
//!     cargo test -p lab --test lost_ack -- --include-ignored --nocapture

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lab::audit::{read_ids, Isolation};
use lab::faults::proxy::{ChaosProxy, ProduceFault, ProxyStats};
use lab::{Backend, Cluster, RunOptions, Semantic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use rdkafka::ClientContext;

/// Records per test, and how many are acknowledged before the fault is armed.
const N: u64 = 2000;
const BEFORE_FAULT: u64 = 400;

/// librdkafka's client-side timeout of a request in flight (not
/// request.timeout.ms, which is the broker's wait for replicas): a dropped
/// ack is noticed, and the batch retried, after this long.
const SOCKET_TIMEOUT_MS: &str = "2000";

const THREE_BROKERS: &str = "127.0.0.1:19092";

fn kafka() -> Cluster {
    let cluster = Cluster::from_env().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cluster.backend(),
        Backend::Kafka,
        "these tests need Apache Kafka"
    );
    cluster
}

/// Files each delivery report by record id.
#[derive(Default)]
struct Deliveries {
    acknowledged: Mutex<Vec<u64>>,
    failed: Mutex<Vec<(u64, String)>>,
}

struct Reports(Arc<Deliveries>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        match result {
            Ok(_) => self.0.acknowledged.lock().unwrap().push(id as u64),
            Err((e, _)) => self
                .0
                .failed
                .lock()
                .unwrap()
                .push((id as u64, e.to_string())),
        }
    }
}

#[derive(Debug)]
struct Produced {
    acknowledged: Vec<u64>,
    failed: Vec<(u64, String)>,
    stats: ProxyStats,
    elapsed: Duration,
}

fn send(producer: &BaseProducer<Reports>, topic: &str, id: u64) {
    let key = lab::record::key(id);
    let value = lab::record::value(id, 100);
    let mut record = BaseRecord::with_opaque_to(topic, id as usize)
        .key(&key)
        .payload(&value);
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("sending record {id}: {e}"),
        }
    }
    producer.poll(Duration::ZERO);
}

/// Produces ids `0..N` to `topic` through `proxy` with the at-least-once
/// settings plus `overrides`. After the first `BEFORE_FAULT` records are all
/// acknowledged (nothing in flight), `fault` is armed: it hits the very next
/// Produce request, carrying some of the records that follow.
fn produce_with_fault(
    proxy: &ChaosProxy,
    topic: &str,
    overrides: &[(&str, &str)],
    fault: ProduceFault,
) -> Produced {
    let started = Instant::now();
    let mut settings = vec![(
        "socket.timeout.ms".to_string(),
        SOCKET_TIMEOUT_MS.to_string(),
    )];
    settings.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let config = Semantic::AtLeastOnce
        .producer_config(&proxy.bootstrap(), None, &settings)
        .unwrap();
    let deliveries = Arc::new(Deliveries::default());
    let producer: BaseProducer<Reports> = config
        .create_with_context(Reports(deliveries.clone()))
        .unwrap();

    for id in 0..BEFORE_FAULT {
        send(&producer, topic, id);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(
        deliveries.acknowledged.lock().unwrap().len() as u64,
        BEFORE_FAULT
    );
    assert_eq!(
        proxy.stats().responses_dropped + proxy.stats().connections_cut,
        0
    );

    proxy.inject(fault);
    for id in BEFORE_FAULT..N {
        send(&producer, topic, id);
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    assert_eq!(
        proxy.fault(),
        ProduceFault::None,
        "the fault was never used"
    );
    drop(producer);

    let acknowledged = std::mem::take(&mut *deliveries.acknowledged.lock().unwrap());
    let failed = std::mem::take(&mut *deliveries.failed.lock().unwrap());
    Produced {
        acknowledged,
        failed,
        stats: proxy.stats(),
        elapsed: started.elapsed(),
    }
}

/// What the log holds, read directly from the broker (not through the
/// proxy), counted by id.
struct Audit {
    copies: BTreeMap<u64, u64>,
}

impl Audit {
    fn read(cluster: &Cluster, topic: &str) -> Audit {
        let mut copies = BTreeMap::new();
        for id in read_ids(cluster, topic, Isolation::ReadUncommitted).unwrap() {
            *copies.entry(id).or_insert(0) += 1;
        }
        Audit { copies }
    }

    fn lost(&self, acknowledged: &[u64]) -> Vec<u64> {
        acknowledged
            .iter()
            .copied()
            .filter(|id| !self.copies.contains_key(id))
            .collect()
    }

    /// Extra copies beyond the first, over all ids.
    fn duplicates(&self) -> u64 {
        self.copies.values().map(|n| n - 1).sum()
    }

    fn duplicated_ids(&self) -> Vec<u64> {
        self.copies
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(&id, _)| id)
            .collect()
    }
}

/// Runs fault A once and checks what every semantic guarantees: every record
/// acknowledged, none lost, nothing but ids of our own. Returns the audit.
fn lost_ack(
    name: &str,
    overrides: &[(&str, &str)],
    fault: ProduceFault,
) -> (Produced, Audit) {
    let cluster = kafka();
    let proxy = ChaosProxy::start(cluster.bootstrap()).unwrap();
    let topic = cluster.fresh_name(&format!("lost-ack-{name}"));
    cluster.create_topic(&topic, 3).unwrap();

    let produced = produce_with_fault(&proxy, &topic, overrides, fault);
    let audit = Audit::read(&cluster, &topic);

    assert!(produced.failed.is_empty(), "{:?}", produced.failed);
    let acked: HashSet<u64> = produced.acknowledged.iter().copied().collect();
    assert_eq!(
        acked,
        (0..N).collect::<HashSet<u64>>(),
        "every record is acknowledged once retried"
    );
    assert_eq!(
        produced.acknowledged.len() as u64,
        N,
        "one delivery report per record"
    );
    assert_eq!(
        audit.lost(&produced.acknowledged),
        Vec::<u64>::new(),
        "acknowledged but not in the log"
    );
    assert_eq!(audit.copies.len() as u64, N, "distinct ids in the log");
    assert!(audit.copies.keys().all(|&id| id < N));
    assert_eq!(produced.stats.malformed_frames, 0, "{:?}", produced.stats);
    println!(
        "{name}: {N} records, {} duplicates in the log ({} ids, {:?}..={:?}), {:.2} s, proxy {:?}",
        audit.duplicates(),
        audit.duplicated_ids().len(),
        audit.duplicated_ids().first(),
        audit.duplicated_ids().last(),
        produced.elapsed.as_secs_f64(),
        produced.stats
    );
    (produced, audit)
}

const IDEMPOTENT: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("max.in.flight.requests.per.connection", "5"),
];

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn through_the_proxy_clients_see_only_the_proxys_ports() {
    let direct = kafka();
    let proxy = ChaosProxy::start(direct.bootstrap()).unwrap();
    let via = Cluster::connect(&proxy.bootstrap()).unwrap();
    assert_eq!(via.broker_count(), direct.broker_count());

    let consumer: BaseConsumer = via.client_config().create().unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let routes = proxy.routes();
    let proxy_ports: HashSet<u16> = routes.iter().map(|r| r.local.port()).collect();
    let upstream_ports: HashSet<u16> = routes
        .iter()
        .filter_map(|r| r.upstream.parse::<SocketAddr>().ok())
        .map(|a| a.port())
        .collect();
    assert_eq!(metadata.brokers().len(), direct.broker_count());
    for broker in metadata.brokers() {
        assert_eq!(broker.host(), "127.0.0.1");
        let port = broker.port() as u16;
        assert!(
            proxy_ports.contains(&port),
            "broker {} at port {port}, not a proxy port {routes:?}",
            broker.id()
        );
        assert!(!upstream_ports.contains(&port));
    }
    let stats = proxy.stats();
    assert!(stats.connections >= 2, "{stats:?}");
    assert_eq!(stats.malformed_frames, 0);
    println!("routes: {routes:?}");
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn the_proxy_is_transparent_for_a_whole_exactly_once_run() {
    // Transactions and a consumer group go through FindCoordinator, Metadata,
    // InitProducerId, ...: all of it through the proxy, no fault armed.
    let direct = kafka();
    let proxy = ChaosProxy::start(direct.bootstrap()).unwrap();
    let via = Cluster::connect(&proxy.bootstrap()).unwrap();
    let outcome =
        lab::run(&via, Semantic::ExactlyOnce, &RunOptions::records(500)).unwrap();
    let c = &outcome.counts;
    assert_eq!(
        (c.acknowledged, c.durable, c.delivered),
        (500, 500, 500),
        "{outcome}"
    );
    assert_eq!(
        (c.lost, c.duplicated, c.aborted_reads),
        (0, 0, 0),
        "{outcome}"
    );
    let stats = proxy.stats();
    assert!(stats.produce_requests > 0, "{stats:?}");
    assert_eq!(stats.malformed_frames, 0, "{stats:?}");
    println!("exactly-once through the proxy: {outcome}\nproxy {stats:?}");
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn at_least_once_writes_twice_when_an_ack_is_dropped() {
    let (produced, audit) =
        lost_ack("alo-drop", &[], ProduceFault::DropResponses { count: 1 });
    assert_eq!(produced.stats.responses_dropped, 1);
    assert!(
        audit.duplicates() > 0,
        "the batch whose ack was dropped was retried and written twice"
    );
    // Only records sent after the fault was armed can have been retried.
    assert!(audit.duplicated_ids().iter().all(|&id| id >= BEFORE_FAULT));
    // It took at least one socket.timeout.ms to notice.
    assert!(produced.elapsed >= Duration::from_millis(2000));
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn an_idempotent_producer_writes_once_when_an_ack_is_dropped() {
    let (produced, audit) = lost_ack(
        "idem-drop",
        IDEMPOTENT,
        ProduceFault::DropResponses { count: 1 },
    );
    assert_eq!(produced.stats.responses_dropped, 1);
    assert_eq!(
        audit.duplicates(),
        0,
        "the broker recognised the retried batch"
    );
    assert!(
        produced.elapsed >= Duration::from_millis(2000),
        "the retry did happen"
    );
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn at_least_once_writes_twice_when_the_connection_is_cut_after_the_request() {
    let (produced, audit) =
        lost_ack("alo-cut", &[], ProduceFault::CutAfterRequest { count: 1 });
    assert_eq!(produced.stats.connections_cut, 1);
    assert!(
        audit.duplicates() > 0,
        "the batch in flight when the connection died was written twice"
    );
    assert!(audit.duplicated_ids().iter().all(|&id| id >= BEFORE_FAULT));
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn an_idempotent_producer_writes_once_when_the_connection_is_cut_after_the_request() {
    let (produced, audit) = lost_ack(
        "idem-cut",
        IDEMPOTENT,
        ProduceFault::CutAfterRequest { count: 1 },
    );
    assert_eq!(produced.stats.connections_cut, 1);
    assert_eq!(audit.duplicates(), 0);
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn an_ack_later_than_the_socket_timeout_is_as_good_as_lost() {
    // 3 s late, with socket.timeout.ms=2000: the client gives up on the
    // request, reconnects and sends the batch again.
    let delay = Duration::from_millis(3000);
    let (produced, audit) = lost_ack(
        "alo-late",
        &[],
        ProduceFault::DelayResponses { count: 1, delay },
    );
    assert_eq!(produced.stats.responses_delayed, 1);
    assert!(audit.duplicates() > 0);
    assert!(audit.duplicated_ids().iter().all(|&id| id >= BEFORE_FAULT));
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn an_ack_within_the_socket_timeout_is_merely_slow() {
    let delay = Duration::from_millis(1000);
    let (produced, audit) = lost_ack(
        "alo-slow",
        &[],
        ProduceFault::DelayResponses { count: 1, delay },
    );
    assert_eq!(produced.stats.responses_delayed, 1);
    assert_eq!(audit.duplicates(), 0, "nothing was retried");
    assert!(produced.elapsed >= delay);
}

/// Retries `attempt` until it succeeds or `limit` has passed.
fn within<T>(
    limit: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: not within {limit:?}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn three_brokers_appear_at_three_proxy_ports() {
    let three = std::env::var("KAFKA_THREE_BOOTSTRAP_SERVERS")
        .unwrap_or_else(|_| THREE_BROKERS.into());
    let answers = three
        .split(',')
        .next()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
        .unwrap_or(false);
    assert!(
        answers,
        "no broker answers at {three}: start the three-broker cluster with \
         `cargo xtask kafka up --three` (cargo xtask test does)"
    );
    let proxy = ChaosProxy::start(&three).unwrap();
    // Other scenarios pause and kill these brokers (fault D): wait until all
    // three are registered again rather than fail on someone else's fault.
    let metadata = within(Duration::from_secs(90), "three brokers listed", || {
        let via = Cluster::connect(&proxy.bootstrap()).map_err(|e| e.to_string())?;
        let consumer: BaseConsumer =
            via.client_config().create().map_err(|e| e.to_string())?;
        let m = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        match m.brokers().len() {
            3 => Ok(m),
            n => Err(format!("{n} brokers listed")),
        }
    });
    let routes = proxy.routes();
    let mut ports: Vec<u16> =
        metadata.brokers().iter().map(|b| b.port() as u16).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "three distinct ports: {ports:?}");
    for broker in metadata.brokers() {
        assert_eq!(broker.host(), "127.0.0.1");
        let route = routes
            .iter()
            .find(|r| r.local.port() == broker.port() as u16)
            .unwrap_or_else(|| {
                panic!(
                    "broker {} at a port the proxy does not own: {routes:?}",
                    broker.id()
                )
            });
        assert!(
            route
                .upstream
                .ends_with(&format!(":{}", 19091 + broker.id())),
            "{route:?}"
        );
    }

    // Leaders spread over the three brokers, all reached through the proxy,
    // with an ack dropped on the way: nothing lost, the batch written twice.
    let direct = within(Duration::from_secs(60), "the direct connection", || {
        Cluster::connect(THREE_BROKERS).map_err(|e| e.to_string())
    });
    let topic = direct.fresh_name("lost-ack-three");
    direct.create_topic(&topic, 3).unwrap();
    let produced = produce_with_fault(
        &proxy,
        &topic,
        &[],
        ProduceFault::DropResponses { count: 1 },
    );
    let audit = Audit::read(&direct, &topic);
    assert!(produced.failed.is_empty(), "{:?}", produced.failed);
    assert_eq!(audit.lost(&produced.acknowledged), Vec::<u64>::new());
    assert_eq!(audit.copies.len() as u64, N);
    assert!(audit.duplicates() > 0);
    assert_eq!(produced.stats.malformed_frames, 0);
    println!(
        "three brokers: routes {routes:?}; {} duplicates after one dropped ack",
        audit.duplicates()
    );
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn a_producer_that_does_not_retry_reports_the_lost_ack_as_possibly_persisted() {
    // acks=1 without retries: the batch whose response was dropped fails, and
    // librdkafka can only say "possibly persisted". The log shows it was.
    use lab::faults::lost_ack::{lost_ack, LostAckOptions};
    use lab::produce::DeliveryStatus;
    let cluster = kafka();
    let mut options = LostAckOptions::new(N, 4);
    options.overrides = vec![
        ("acks".into(), "1".into()),
        ("message.timeout.ms".into(), "3000".into()),
    ];
    let o = lost_ack(&cluster, Semantic::AtMostOnce, &options).unwrap();
    println!("{o}");
    assert!(!o.failures.is_empty(), "the dropped batch must fail\n{o}");
    assert!(
        o.failures
            .iter()
            .all(|f| f.status == DeliveryStatus::PossiblyPersisted),
        "{:?}",
        o.failures
    );
    // Reported failed, yet durable: the producer cannot tell, the log can.
    assert_eq!(o.counts.durable, N, "{o}");
    assert_eq!(
        o.counts.duplicated, 0,
        "nothing retried, nothing doubled\n{o}"
    );
}
