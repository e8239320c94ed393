//! `lab bench` on a real Apache Kafka broker, with a small workload: that it
//! runs and that every figure is well-formed. It never asserts that anything
//! is fast, nor an order between the semantics: on a busy CI machine that
//! would be a coin toss, and reporting it is the benchmark's job.
//!
//! Ignored by a plain `cargo test`; `cargo xtask test` starts a broker and
//! runs it. By hand:
//!
//!     cargo xtask kafka up
//!     cargo test -p lab --test bench -- --include-ignored

mod common;

use common::kafka;
use lab::experiments::bench::{bench, BenchOptions, BenchReport, BrokerLog, Case};
use lab::metrics::{LatencySummary, Throughput};

const RECORDS: u64 = 2_000;

fn positive(what: &str, x: f64) {
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
}

fn check_throughput(what: &str, t: &Throughput, records: u64, bytes: u64) {
    assert_eq!((t.records, t.bytes), (records, records * bytes), "{what}");
    positive(&format!("{what} seconds"), t.seconds);
    positive(&format!("{what} records/s"), t.records_per_sec);
    positive(&format!("{what} MB/s"), t.mb_per_sec);
    // throughput * time = records
    let back = t.records_per_sec * t.seconds;
    assert!(
        (back - records as f64).abs() <= records as f64 * 1e-6,
        "{what}: {back} != {records}"
    );
}

fn check_latency(what: &str, l: &LatencySummary, count: u64) {
    assert_eq!(l.count, count, "{what}: {l:?}");
    positive(&format!("{what} p50"), l.p50_us as f64);
    positive(&format!("{what} mean"), l.mean_us);
    assert!(
        l.min_us <= l.p50_us
            && l.p50_us <= l.p99_us
            && l.p99_us <= l.p999_us
            && l.p999_us <= l.max_us,
        "{what}: percentiles out of order: {l:?}"
    );
}

#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn bench_measures_every_case_and_producer_performance() {
    let cluster = kafka();
    let options = BenchOptions {
        warmup_records: 500,
        repetitions: 2,
        // A small workload dirties little; never wait for the disk in CI.
        settle_dirty_mb: 0,
        // A short interval, so that the small workload spans several commits.
        cases: Case::defaults(&[5]),
        // Exactly RECORDS per case, so that every figure can be checked against it.
        min_commits: 1,
        producer_performance_runs: 1,
        ..BenchOptions::new(RECORDS, 512)
    };
    let report = bench(&cluster, &options).unwrap();
    println!("{report}");

    assert_eq!(
        report.figures.len(),
        options.cases.len(),
        "{:?}",
        report.notes
    );
    assert_eq!(report.backend_description, cluster.describe());
    assert!(report.backend_description.starts_with("Apache Kafka"));
    let encoding = report.payload_encoding;
    positive("json ns", encoding.json_ns_per_record);
    positive("template ns", encoding.template_ns_per_record);

    for f in &report.figures {
        let what = f.label.as_str();
        assert_eq!(f.backend_description, cluster.describe(), "{what}");
        assert_eq!(f.kafka_version, cluster.kafka_version(), "{what}");
        assert_eq!((f.records, f.record_bytes), (RECORDS, 512), "{what}");
        assert_eq!(f.failed, 0, "{what}: {:?}", f.first_error);
        check_throughput(what, &f.throughput, RECORDS, 512);
        assert_eq!(f.throughput_runs.len(), 2, "{what}");
        assert!(
            f.throughput_runs.contains(&f.throughput.records_per_sec),
            "{what}"
        );
        check_latency(&format!("{what} ack"), &f.ack_latency, RECORDS);

        let e2e = f.end_to_end.as_ref().expect("end-to-end pass");
        assert_eq!(e2e.received, RECORDS, "{what}");
        check_latency(&format!("{what} end-to-end"), &e2e.latency, RECORDS);
        check_throughput(&format!("{what} e2e pass"), &e2e.throughput, RECORDS, 512);

        positive(&format!("{what} vs acks=all"), f.vs_acks_all.unwrap());
        let pp = f.producer_performance.as_ref().unwrap_or_else(|| {
            panic!("{what}: no ProducerPerformance: {:?}", report.notes)
        });
        assert_eq!(pp.result.records, RECORDS, "{what}");
        positive(&format!("{what} PP records/s"), pp.result.records_per_sec);
        positive(&format!("{what} PP MB/s"), pp.result.mb_per_sec);
        assert!(
            pp.result.p50_ms <= pp.result.p99_ms
                && pp.result.p99_ms <= pp.result.p999_ms
        );
        positive(&format!("{what} vs PP"), f.vs_producer_performance.unwrap());
        // Both clients warm up alike: ProducerPerformance was given the lab's warm-up.
        assert_eq!(pp.warmup_records, options.warmup_records, "{what}");
        let warmup = pp.command.iter().position(|a| a == "--warmup-records");
        assert_eq!(
            warmup.map(|i| pp.command[i + 1].as_str()),
            Some("500"),
            "{what}: {:?}",
            pp.command
        );
        assert!(pp.whole_run.is_some(), "{what}: no whole-run summary");
        // One run of each client per round: one pair.
        assert_eq!(f.vs_producer_performance_pairs.len(), 1, "{what}");
        // The broker's side was looked at (a run this small may be too short to time).
        assert_ne!(f.broker_log, BrokerLog::NotChecked, "{what}");
        assert_ne!(pp.broker_log, BrokerLog::NotChecked, "{what}");

        match f.case {
            Case::Transactional { commit_interval_ms } => {
                let t = f.transactions.expect("transaction stats");
                assert_eq!(t.commit_interval_ms, commit_interval_ms);
                assert!(t.commits >= 1, "{t:?}");
                positive(&format!("{what} commit ms"), t.mean_commit_ms);
                assert!(pp.command.iter().any(|a| a == "--transaction-duration-ms"));
            }
            _ => assert!(f.transactions.is_none()),
        }
    }
    let all = report.figure(Case::AcksAll).unwrap();
    assert_eq!(all.vs_acks_all, Some(1.0));

    // The report round-trips through JSON (floats to within their last digit).
    let back: BenchReport = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(back.options, report.options);
    assert_eq!(back.figures.len(), report.figures.len());
    for (b, f) in back.figures.iter().zip(&report.figures) {
        assert_eq!(
            (&b.label, b.case, &b.backend_description),
            (&f.label, f.case, &f.backend_description)
        );
        assert_eq!(b.ack_latency.p999_us, f.ack_latency.p999_us);
        let (x, y) = (b.throughput.records_per_sec, f.throughput.records_per_sec);
        assert!((x - y).abs() <= y * 1e-12, "{x} != {y}");
    }
}

/// A long commit interval is measured as that interval: the transactional
/// case keeps sending until it has committed `min_commits` transactions, each
/// about one interval long, instead of committing once at the end of a run
/// far shorter than the interval.
#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn a_long_commit_interval_runs_for_several_intervals() {
    let cluster = kafka();
    let interval_ms = 400;
    let options = BenchOptions {
        warmup_records: 200,
        repetitions: 1,
        settle_dirty_mb: 0,
        cases: vec![Case::Transactional {
            commit_interval_ms: interval_ms,
        }],
        min_commits: 3,
        end_to_end: false,
        producer_performance: false,
        ..BenchOptions::new(200, 256)
    };
    let report = bench(&cluster, &options).unwrap();
    let f = &report.figures[0];
    let t = f.transactions.expect("transaction stats");
    assert!(t.commits >= 3, "{t:?}");
    // Two whole intervals passed before the last commit.
    assert!(
        f.throughput.seconds >= 2.0 * interval_ms as f64 / 1000.0,
        "{:?}",
        f.throughput
    );
    // It sent past the 200 records asked for, and counts what it sent.
    assert!(f.throughput.records > 200, "{:?}", f.throughput);
    assert_eq!(f.throughput.bytes, f.throughput.records * 256);
    assert_eq!(f.failed, 0, "{:?}", f.first_error);
}

/// The broker's side of a run on the course's local broker: the rate its log
/// grew at, for the lab and for ProducerPerformance, positive and of the
/// client's order of magnitude; and `--case`'s choice is what runs.
#[test]
#[ignore = "needs Apache Kafka: run through `cargo xtask test`"]
fn the_broker_log_gives_a_second_figure_for_both_clients() {
    let cluster = kafka();
    if lab::local::LocalCluster::serving(cluster.bootstrap()).is_none() {
        eprintln!("skipped: the broker was not started by `cargo xtask kafka up`");
        return;
    }
    let names = ["acks-1".to_string(), "acks-all".to_string()];
    let options = BenchOptions {
        warmup_records: 2_000,
        repetitions: 2,
        settle_dirty_mb: 0,
        cases: Case::named(&names, &[]).unwrap(),
        end_to_end: false,
        producer_performance_runs: 2,
        ..BenchOptions::new(20_000, 1024)
    };
    let report = bench(&cluster, &options).unwrap();
    println!("{report}");
    let cases: Vec<Case> = report.figures.iter().map(|f| f.case).collect();
    assert_eq!(cases, [Case::Acks1, Case::AcksAll], "{:?}", report.notes);
    for f in &report.figures {
        let what = f.label.as_str();
        let lab = f.broker_log.records_per_sec().unwrap_or_else(|| {
            panic!("{what}: no broker figure for the lab: {:?}", report.notes)
        });
        positive(&format!("{what} broker"), lab);
        let BrokerLog::Grew(g) = f.broker_log else {
            unreachable!()
        };
        // 1 KB records take a little more on the log (batch and record framing).
        assert!(
            g.bytes_per_record > 1024.0 && g.bytes_per_record < 1200.0,
            "{what}: {g:?}"
        );
        assert!(g.bytes >= 20_000 * 1024, "{what}: {g:?}");
        // Same order of magnitude as the client's own figure (not a check of
        // agreement: on a busy machine that is the report's warning's job).
        let ratio = f.throughput.records_per_sec / lab;
        assert!(ratio > 0.2 && ratio < 5.0, "{what}: lab/broker {ratio}");
        let pp = f
            .producer_performance
            .as_ref()
            .expect("ProducerPerformance ran");
        let java = pp.broker_log.records_per_sec().unwrap_or_else(|| {
            panic!(
                "{what}: no broker figure for ProducerPerformance: {:?}",
                report.notes
            )
        });
        positive(&format!("{what} Java broker"), java);
        assert_eq!(f.vs_producer_performance_pairs.len(), 2, "{what}");
        let (lo, hi) = (
            f.vs_producer_performance_pairs
                .iter()
                .copied()
                .fold(f64::MAX, f64::min),
            f.vs_producer_performance_pairs
                .iter()
                .copied()
                .fold(0.0, f64::max),
        );
        let median = f.vs_producer_performance.unwrap();
        assert!(lo <= median && median <= hi, "{what}: {lo} {median} {hi}");
    }
    let page = report.markdown();
    assert!(page.contains("| broker |"), "{page}");
    assert!(page.contains("| pairs |"), "{page}");
}
