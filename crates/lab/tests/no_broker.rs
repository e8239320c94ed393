//! A lost broker is noticed within about 10 s on every path of a run, with
//! one error that names the address and says how to start a broker.
//!
//! The broker "goes away" honestly without touching the shared one: each test
//! talks to Kafka through the lab's own chaos proxy and stops the proxy
//! (every listener and every connection closed), which to the clients is a
//! broker process that died: connections cut, new ones refused.
//!
//! Ignored by a plain `cargo test` (they need a broker). By hand:
//!
//!     cargo xtask kafka up
//!     cargo test -p lab --test no_broker -- --include-ignored --nocapture

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lab::consume;
use lab::faults::crash::{producer_crash, CrashOptions};
use lab::faults::proxy::ChaosProxy;
use lab::produce::{self, ProduceOptions};
use lab::read::{read_ids, Isolation};
use lab::{Cluster, Error, RunOptions, Semantic, Stage};

/// The bound the lab promises: the error within 15 s of the broker's going.
const BOUND: Duration = Duration::from_secs(15);

/// A proxy in front of the shared broker, and the cluster as seen through it.
fn behind_proxy() -> (Arc<ChaosProxy>, Cluster) {
    let upstream = common::kafka();
    let proxy = Arc::new(ChaosProxy::start(upstream.bootstrap()).unwrap());
    let cluster = Cluster::connect(&proxy.bootstrap()).unwrap();
    assert_eq!(cluster.bootstrap(), proxy.bootstrap());
    (proxy, cluster)
}

/// The one error a learner must see: no broker, at this address, what to do.
fn assert_no_broker<T: std::fmt::Debug>(
    result: lab::Result<T>,
    address: &str,
    doing: &str,
    took: Duration,
) {
    let err = result.expect_err("the run must fail without a broker");
    let text = err.to_string();
    println!("after {took:?}:\n{text}\n");
    assert!(matches!(err, Error::NoBroker { .. }), "{text}");
    assert!(
        text.contains(&format!("no Kafka broker answers at {address}")),
        "{text}"
    );
    assert!(text.contains(doing), "{text}");
    assert!(text.contains("cargo xtask kafka up"), "{text}");
    assert!(text.contains("KAFKA_BOOTSTRAP_SERVERS"), "{text}");
    assert!(took < BOUND, "the error took {took:?}: {text}");
}

/// `records` records of at-least-once in a fresh topic, through `cluster`.
fn topic_with_records(cluster: &Cluster, records: u64) -> String {
    let topic = cluster.fresh_name("no-broker-in");
    cluster.create_topic(&topic, 3).unwrap();
    let report = produce::produce(
        cluster,
        Semantic::AtLeastOnce,
        &topic,
        &ProduceOptions {
            ids: 0..records,
            payload_bytes: 100,
            transaction_size: 500,
            overrides: Vec::new(),
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.acknowledged.len() as u64, records);
    topic
}

#[test]
#[ignore = "needs Kafka"]
fn a_run_started_after_the_broker_went_away_fails_while_creating_its_topic() {
    let (proxy, cluster) = behind_proxy();
    proxy.stop();
    let started = Instant::now();
    let result = lab::run(&cluster, Semantic::AtLeastOnce, &RunOptions::records(100));
    assert_no_broker(
        result,
        &proxy.bootstrap(),
        "creating topic",
        started.elapsed(),
    );
}

#[test]
#[ignore = "needs Kafka"]
fn producing_with_no_broker_fails_for_every_semantic() {
    let (proxy, cluster) = behind_proxy();
    let topic = cluster.fresh_name("no-broker-produce");
    cluster.create_topic(&topic, 3).unwrap();
    proxy.stop();
    for semantic in Semantic::ALL {
        let started = Instant::now();
        let result = produce::produce(
            &cluster,
            semantic,
            &topic,
            &ProduceOptions {
                ids: 0..1000,
                payload_bytes: 100,
                transaction_size: 500,
                overrides: Vec::new(),
            },
            &mut |_| {},
        );
        let doing = match semantic {
            // Exactly-once first asks for its producer id.
            Semantic::ExactlyOnce => "initialising transactions".to_string(),
            _ => format!("producing to {topic}"),
        };
        assert_no_broker(result, &proxy.bootstrap(), &doing, started.elapsed());
    }
}

#[test]
#[ignore = "needs Kafka"]
fn consuming_and_auditing_with_no_broker_fail() {
    let (proxy, cluster) = behind_proxy();
    let topic = topic_with_records(&cluster, 2000);
    proxy.stop();

    let started = Instant::now();
    let result = consume::consume(
        &cluster,
        Semantic::AtLeastOnce,
        &topic,
        None,
        &cluster.fresh_name("no-broker-group"),
        &[],
        &mut Vec::new(),
        &mut |_| {},
    );
    // The consumer first asks how many partitions the topic has.
    let address = proxy.bootstrap();
    assert_no_broker(result, &address, &topic, started.elapsed());

    let started = Instant::now();
    let result = read_ids(&cluster, &topic, Isolation::ReadCommitted);
    assert_no_broker(result, &address, &topic, started.elapsed());
}

/// Runs `semantic` through the proxy and stops the proxy once `stage` has
/// reached `at` records; returns the result and how long after the stop it came.
fn run_until_the_broker_goes(
    semantic: Semantic,
    records: u64,
    stage: Stage,
    at: u64,
) -> (lab::Result<lab::Outcome>, Duration, String) {
    let (proxy, cluster) = behind_proxy();
    let mut stopped: Option<Instant> = None;
    let result = lab::run_with_progress(
        &cluster,
        semantic,
        &RunOptions::records(records),
        &mut |s, n| {
            if stopped.is_none() && s == stage && n >= at {
                proxy.stop();
                stopped = Some(Instant::now());
            }
        },
    );
    let took = stopped
        .unwrap_or_else(|| panic!("the run never reached {stage:?} {at}: {result:?}"))
        .elapsed();
    (result, took, proxy.bootstrap())
}

#[test]
#[ignore = "needs Kafka"]
fn at_least_once_stops_retrying_and_says_why_when_the_broker_goes_mid_run() {
    // Far more records than the run gets through in 15 s: without the watch,
    // the producer would queue them and retry for message.timeout.ms (5 min).
    let (result, took, address) = run_until_the_broker_goes(
        Semantic::AtLeastOnce,
        2_000_000,
        Stage::Produce,
        50_000,
    );
    assert_no_broker(result, &address, "while producing", took);
}

#[test]
#[ignore = "needs Kafka"]
fn at_most_once_fails_when_the_broker_goes_mid_run() {
    let (result, took, address) = run_until_the_broker_goes(
        Semantic::AtMostOnce,
        2_000_000,
        Stage::Produce,
        50_000,
    );
    assert_no_broker(result, &address, "while producing", took);
}

#[test]
#[ignore = "needs Kafka"]
fn exactly_once_fails_when_the_broker_goes_mid_run() {
    let (result, took, address) = run_until_the_broker_goes(
        Semantic::ExactlyOnce,
        200_000,
        Stage::Produce,
        10_000,
    );
    assert_no_broker(result, &address, "while producing", took);
}

#[test]
#[ignore = "needs Kafka"]
fn a_consumer_fails_when_the_broker_goes_mid_run() {
    for semantic in [Semantic::AtLeastOnce, Semantic::ExactlyOnce] {
        let (result, took, address) =
            run_until_the_broker_goes(semantic, 50_000, Stage::Consume, 5_000);
        assert_no_broker(result, &address, "while consuming", took);
    }
}

#[test]
#[ignore = "needs Kafka"]
fn the_audit_fails_when_the_broker_goes_as_it_starts() {
    let (result, took, address) =
        run_until_the_broker_goes(Semantic::AtLeastOnce, 20_000, Stage::Audit, 0);
    assert_no_broker(result, &address, "at-least-once-happy-path-in", took);
}

#[test]
#[ignore = "needs Kafka"]
fn a_crash_scenario_fails_when_the_broker_goes_while_its_worker_runs() {
    common::use_this_lab_binary();
    // State files go to a cache of this test's own (the workers inherit it).
    let cache =
        std::env::temp_dir().join(format!("lab-no-broker-{}", std::process::id()));
    std::env::set_var("KAFKA_COURSE_CACHE", &cache);
    let (proxy, cluster) = behind_proxy();
    // Stops the proxy a moment into the first worker's run (topic creation
    // takes well under a second; the worker sends for a minute).
    let stopper = {
        let proxy = proxy.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(4));
            proxy.stop();
            Instant::now()
        })
    };
    let result = producer_crash(
        &cluster,
        Semantic::AtLeastOnce,
        &CrashOptions::new(2_000_000, 7),
    );
    let stopped_at = stopper.join().unwrap();
    let took = stopped_at.elapsed();
    assert_no_broker(result, &proxy.bootstrap(), "worker", took);
    // Its state went to a folder of this cluster's own, not the shared one.
    let folder = cache
        .join("scenarios")
        .join(proxy.bootstrap().replace(':', "_"))
        .join("producer-crash");
    assert!(folder.is_dir(), "no {}", folder.display());
    std::fs::remove_dir_all(&cache).unwrap();
}
