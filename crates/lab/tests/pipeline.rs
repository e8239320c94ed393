//! `lab pipeline-bench` on real Apache Kafka, small: the exactly-once
//! pipeline hands every input id on exactly once, its `read_committed`
//! reader waits for the commit (longer at a longer interval), the broker
//! writes one marker per transaction, and a `read_committed` reader of a log
//! with aborted transactions never sees their records. Nothing is asserted
//! about speed: on a busy machine that would be a coin toss.
//!
//! Ignored by a plain `cargo test`. By hand:
//!
//!     KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
//!     KAFKA_THREE_BOOTSTRAP_SERVERS=127.0.0.1:19092 \
//!     cargo test -p lab --test pipeline -- --include-ignored

mod common;

use common::kafka;
use lab::experiments::pipeline::{
    claims_markdown, consumer_cost, consumer_cost_markdown, pipeline_bench,
    pipeline_markdown, Cell, ConsumerCostOptions, Pipeline, PipelineOptions,
};

fn small(intervals: &[u64]) -> PipelineOptions {
    PipelineOptions {
        records: 2_000,
        record_bytes: 1024,
        rate: 1_000,
        latency_seconds: 1.0,
        min_commits: 2,
        commit_intervals_ms: intervals.to_vec(),
        pipelines: Pipeline::ALL.to_vec(),
        consumer_cost: None,
    }
}

/// What every cell must show, whatever the machine's speed.
fn check_cell(c: &Cell, records: u64) {
    let what = format!("{:?} at {} ms", c.pipeline, c.commit_interval_ms);
    let streamed = c.latency.count;
    assert!(streamed > 0, "{what}: no latency measured: {c:?}");
    assert_eq!((c.missing, c.duplicates), (0, 0), "{what}: {c:?}");
    // Every id once in the output: the backlog and the stream, nothing more.
    assert_eq!(c.output_records, records + streamed, "{what}: {c:?}");
    assert!(
        c.throughput.records_per_sec > 0.0 && c.commits >= 2,
        "{what}: {c:?}"
    );
    assert!(c.latency.is_ordered(), "{what}: {:?}", c.latency);
    match c.pipeline {
        Pipeline::ExactlyOnce => {
            // One output partition: one commit marker per transaction.
            assert_eq!(c.markers, c.commits as i64, "{what}: {c:?}");
            assert!(c.per_commit("EndTxn") >= 1.0, "{what}: {:?}", c.requests);
            assert!(
                c.per_commit("TxnOffsetCommit") >= 1.0,
                "{what}: {:?}",
                c.requests
            );
            assert_eq!(
                c.per_commit("OffsetCommit"),
                0.0,
                "{what}: {:?}",
                c.requests
            );
        }
        Pipeline::AtLeastOnce => {
            assert_eq!(c.markers, 0, "{what}: {c:?}");
            assert!(
                c.per_commit("OffsetCommit") >= 1.0,
                "{what}: {:?}",
                c.requests
            );
            assert_eq!(c.per_commit("EndTxn"), 0.0, "{what}: {:?}", c.requests);
        }
    }
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn exactly_once_hands_every_id_on_once_and_its_reader_waits_for_the_commit() {
    let cluster = kafka();
    let options = small(&[10, 1000]);
    let report = pipeline_bench(&[&cluster], &options, &mut |_| {}).unwrap();
    let run = &report.clusters[0];
    assert_eq!(run.cells.len(), 4, "{run:?}");
    for c in &run.cells {
        check_cell(c, options.records);
    }
    let p50 = |ms| {
        run.cell(Pipeline::ExactlyOnce, ms)
            .map(|c| c.latency.p50_us)
            .unwrap()
    };
    // A record waits for the end of its transaction: about half an interval
    // at the median, so a 1 s interval shows in the latency.
    assert!(
        p50(1000) > p50(10),
        "1 s: {} µs, 10 ms: {} µs",
        p50(1000),
        p50(10)
    );
    assert!(
        p50(1000) >= 300_000,
        "1 s interval, median {} µs",
        p50(1000)
    );
    let tables = pipeline_markdown(&report);
    assert!(tables.contains("| exactly-once | 1 s |"), "{tables}");
    assert!(tables.contains("exactly once.\n"), "{tables}");
    let claims = claims_markdown(&report);
    assert!(
        claims.contains("| 1 broker | not measured | – |"),
        "{claims}"
    );
    let charts = lab::charts::pipeline_charts(&report);
    assert_eq!(charts.len(), 1);
    assert!(charts[0].1.to_svg_string().contains("exactly-once p99"));
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn read_committed_never_hands_over_an_aborted_record() {
    let cluster = kafka();
    let options = ConsumerCostOptions {
        records: 2_000,
        record_bytes: 512,
        transaction_records: 100,
        abort_every: 5,
        repetitions: 1,
    };
    let cost = consumer_cost(&cluster, &options).unwrap();
    assert_eq!((cost.transactions, cost.aborted_transactions), (20, 4));
    // Every transaction, committed or aborted, ends with one marker.
    assert_eq!(cost.markers, 20, "{cost:?}");
    let read = |name: &str| cost.reads.iter().find(|r| r.isolation == name).unwrap();
    let committed = read("read_committed");
    let uncommitted = read("read_uncommitted");
    assert_eq!((committed.records, committed.aborted_seen), (1_600, 0));
    assert_eq!(
        (uncommitted.records, uncommitted.aborted_seen),
        (2_000, 400)
    );
    assert!(cost.committed_vs_uncommitted().is_some_and(|r| r > 0.0));
    let table = consumer_cost_markdown(&cost);
    assert!(table.contains("| `read_committed` | 1600 | 0 |"), "{table}");
}

#[test]
#[ignore = "needs Apache Kafka's three-broker cluster at KAFKA_THREE_BOOTSTRAP_SERVERS"]
fn three_brokers_replicate_the_pipeline_with_min_isr_two() {
    let three = common::three_brokers();
    let options = small(&[100]);
    let report = pipeline_bench(&[&three], &options, &mut |_| {}).unwrap();
    let run = &report.clusters[0];
    assert_eq!(run.setup(), "3 brokers, replication 3, min ISR 2");
    for c in &run.cells {
        check_cell(c, options.records);
    }
}

#[test]
fn options_that_measure_nothing_are_refused_with_what_to_change() {
    let mut options = small(&[]);
    let err = options.check().unwrap_err().to_string();
    assert!(err.contains("--commit-interval-ms"), "{err}");
    options.commit_intervals_ms = vec![120_000];
    let err = options.check().unwrap_err().to_string();
    assert!(err.contains("transaction.timeout.ms"), "{err}");
    options.commit_intervals_ms = vec![100];
    options.pipelines.clear();
    assert!(options
        .check()
        .unwrap_err()
        .to_string()
        .contains("at-least-once or exactly-once"));
}

/// The book's recorded run, drawn: one chart per cluster, in the book's
/// column, with both pipelines and the interval line, as SVG and PNG.
#[test]
fn the_recorded_run_draws_one_chart_per_cluster() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../book/src/generated/pipeline.json");
    let text = std::fs::read_to_string(&path)
        .expect("book/src/generated/pipeline.json: record it with `cargo xtask regen --only pipeline`");
    let report: lab::experiments::pipeline::PipelineReport =
        serde_json::from_str(&text).expect("pipeline.json is a pipeline report");
    let charts = lab::charts::pipeline_charts(&report);
    let stems: Vec<&str> = charts.iter().map(|(stem, _)| *stem).collect();
    assert_eq!(stems, ["pipeline-one-broker", "pipeline-three-brokers"]);
    for (stem, chart) in &charts {
        let (width, height) = chart.size();
        assert!(width <= lab::charts::BOOK_WIDTH, "{stem}: {width} px wide");
        let svg = chart.to_svg_string();
        for text in [
            "at-least-once p99",
            "exactly-once p99",
            "the commit interval",
            "Apache Kafka",
        ] {
            assert!(svg.contains(text), "{stem}.svg shows {text:?}");
        }
        let png = chart.to_png_bytes();
        assert_eq!(&png[1..4], b"PNG", "{stem}.png");
        let size = (
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            u32::from_be_bytes(png[20..24].try_into().unwrap()),
        );
        assert_eq!(size, (width, height), "{stem}.png");
        // LAB_CHARTS_KEEP=DIR keeps the PNGs, to look at them.
        if let Some(keep) = std::env::var_os("LAB_CHARTS_KEEP") {
            let keep = std::path::PathBuf::from(keep);
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::write(keep.join(format!("{stem}.png")), &png).unwrap();
        }
    }
}
