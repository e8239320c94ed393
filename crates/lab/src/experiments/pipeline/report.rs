//! The pipeline report as the book shows it: Markdown tables, and the
//! published statements checked against it, every figure from the report.

use super::{Cell, ClusterRun, ConsumerCost, Pipeline, PipelineReport};
use crate::metrics::{format_us, MB};

/// The coordinator requests a commit costs, in the order the tables show them:
/// the transaction coordinator's four, then the group coordinator's commit.
pub const COMMIT_REQUESTS: [&str; 5] = [
    "AddPartitionsToTxn",
    "AddOffsetsToTxn",
    "TxnOffsetCommit",
    "EndTxn",
    "OffsetCommit",
];

/// A difference this small (as a fraction) is a tie on one noisy machine.
pub const NOISE: f64 = 0.05;

/// Both pipelines' tables, one section per cluster, and the workload.
pub fn pipeline_markdown(report: &PipelineReport) -> String {
    let mut out = String::new();
    for run in &report.clusters {
        out += &format!("**{}** ({})\n\n", run.setup(), run.backend_description);
        out += &cells_table(run);
        out += "\n";
        out += &broker_table(run);
        out += "\n";
    }
    let o = &report.options;
    out += &format!(
        "Per cell: a backlog of {} records of {} B for the throughput, then a steady stream of {} \
         records/s for at least {} s and {} commit intervals for the latency; one partition per \
         topic; librdkafka {}, {} CPUs (load average {} before, {} after); {:.0} s in all.\n",
        o.records,
        o.record_bytes,
        o.rate,
        o.latency_seconds,
        o.min_commits,
        report.librdkafka_version,
        report.cpus,
        load(report.load_before),
        load(report.load_after),
        report.seconds,
    );
    let flawed: Vec<String> = report
        .clusters
        .iter()
        .flat_map(|run| run.cells.iter().map(move |c| (run, c)))
        .filter(|(_, c)| c.missing > 0 || c.duplicates > 0)
        .map(|(run, c)| {
            format!(
                "{} at {} ms on {}: {} missing, {} duplicated",
                c.pipeline.label(),
                c.commit_interval_ms,
                run.setup(),
                c.missing,
                c.duplicates
            )
        })
        .collect();
    out += &if flawed.is_empty() {
        "In every cell the downstream reader saw every input id exactly once.\n"
            .to_string()
    } else {
        format!(
            "Not every id arrived exactly once: {}.\n",
            flawed.join("; ")
        )
    };
    out
}

fn load(l: Option<f64>) -> String {
    l.map_or_else(|| "unknown".into(), |l| format!("{l:.2}"))
}

/// Throughput and latency per pipeline and interval.
fn cells_table(run: &ClusterRun) -> String {
    let mut out = String::from(
        "| pipeline | commit interval | records/s | MB/s | × at-least-once | commits in backlog | e2e p50 | e2e p99 | e2e p99.9 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in &run.cells {
        let vs =
            vs_at_least_once(run, c).map_or_else(|| "–".into(), |r| format!("{r:.2}"));
        out += &format!(
            "| {} | {} | {:.0} | {:.1} | {} | {} | {} | {} | {} |\n",
            c.pipeline.label(),
            interval(c.commit_interval_ms),
            c.throughput.records_per_sec,
            c.throughput.mb_per_sec,
            vs,
            c.throughput_commits,
            format_us(c.latency.p50_us as f64),
            format_us(c.latency.p99_us as f64),
            format_us(c.latency.p999_us as f64),
        );
    }
    out
}

/// What the broker was asked to do per commit, and the markers it wrote.
fn broker_table(run: &ClusterRun) -> String {
    // The request counts share one column that wraps: a column per request
    // type made the table wider than the book's page.
    let mut out = String::from(
        "| pipeline | commit interval | commits | mean commit | markers in output | markers/s \
         | requests per commit |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    for c in &run.cells {
        out += &format!(
            "| {} | {} | {} | {} | {} | {:.1} |",
            c.pipeline.label(),
            interval(c.commit_interval_ms),
            c.commits,
            format_us(c.mean_commit_ms * 1000.0),
            c.markers,
            c.markers_per_sec(),
        );
        let requests: Vec<String> = COMMIT_REQUESTS
            .iter()
            .filter(|kind| c.per_commit(kind) > 0.0)
            .map(|kind| format!("{:.2} {kind}", c.per_commit(kind)))
            .collect();
        let requests = if requests.is_empty() {
            "-".to_string()
        } else {
            requests.join(", ")
        };
        out += &format!(" {requests} |\n");
    }
    out
}

/// `10 ms`, `1 s`.
fn interval(ms: u64) -> String {
    if ms >= 1000 && ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// A cell's throughput as a fraction of at-least-once's at the same interval.
pub(super) fn vs_at_least_once(run: &ClusterRun, cell: &Cell) -> Option<f64> {
    let base = run.cell(Pipeline::AtLeastOnce, cell.commit_interval_ms)?;
    Some(cell.throughput.records_per_sec / base.throughput.records_per_sec)
}

/// The consumer's own cost as a table and a line on the log read.
pub fn consumer_cost_markdown(cost: &ConsumerCost) -> String {
    let mut out = String::from(
        "| isolation.level | records handed over | of aborted transactions | records/s | MB/s | log offsets/s | runs, k records/s |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &cost.reads {
        let runs: Vec<String> = r
            .runs_records_per_sec
            .iter()
            .map(|x| format!("{:.0}", x / 1000.0))
            .collect();
        out += &format!(
            "| `{}` | {} | {} | {:.0} | {:.1} | {:.0} | {} |\n",
            r.isolation,
            r.records,
            r.aborted_seen,
            r.throughput.records_per_sec,
            r.throughput.bytes as f64 / MB / r.throughput.seconds.max(1e-9),
            r.offsets_per_sec,
            runs.join(", "),
        );
    }
    let o = &cost.options;
    out += &format!(
        "\nThe log: {} records of {} B in {} transactions of {}, {} of them aborted; {} offsets, \
         of which {} hold commit or abort markers; on {}. Each isolation level read it {} times, \
         in turns; the figures are the median read.",
        o.records,
        o.record_bytes,
        cost.transactions,
        o.transaction_records,
        cost.aborted_transactions,
        cost.log_offsets,
        cost.markers,
        cost.backend_description,
        o.repetitions,
    );
    if let Some(ratio) = cost.committed_vs_uncommitted() {
        out += &format!(
            " In log offsets per second, `read_committed` ran at {ratio:.2}× the speed of \
             `read_uncommitted`."
        );
    }
    out + "\n"
}

/// The published statements about the pipeline's cost, checked: the
/// throughput cost of transactions at 100 ms, and the latency a
/// `read_committed` reader pays per commit interval.
pub fn claims_markdown(report: &PipelineReport) -> String {
    let mut out =
        String::from("| claim | on | measured here | holds |\n|---|---|---|---|\n");
    for run in &report.clusters {
        let at_100 = run
            .cell(Pipeline::ExactlyOnce, 100)
            .and_then(|c| vs_at_least_once(run, c));
        let (measured, holds) = match at_100 {
            Some(r) => (
                format!(
                    "exactly-once at {r:.2}× at-least-once's throughput ({:+.0} %)",
                    (r - 1.0) * 100.0
                ),
                verdict(r >= 1.0 - 0.03 - NOISE),
            ),
            None => ("not measured".into(), "–"),
        };
        out += &format!(
            "| transactions committed every 100 ms cost about 3 % throughput for 1 KB records \
             (Confluent) | {} | {measured} | {holds} |\n",
            run.setup()
        );
        let eos: Vec<&Cell> = run
            .cells
            .iter()
            .filter(|c| c.pipeline == Pipeline::ExactlyOnce)
            .collect();
        let waits: Vec<String> = eos
            .iter()
            .map(|c| {
                format!(
                    "{}: p50 {} ({:.2}× the interval)",
                    interval(c.commit_interval_ms),
                    format_us(c.latency.p50_us as f64),
                    c.latency.p50_us as f64 / 1000.0 / c.commit_interval_ms as f64
                )
            })
            .collect();
        let half = eos.iter().all(|c| {
            c.latency.p50_us as f64 / 1000.0 >= 0.45 * c.commit_interval_ms as f64
        });
        out += &format!(
            "| a `read_committed` reader waits for the commit: the median record waits about \
             half an interval or more | {} | {} | {} |\n",
            run.setup(),
            if waits.is_empty() { "not measured".into() } else { waits.join("; ") },
            if eos.is_empty() { "–" } else { verdict(half) },
        );
    }
    out
}

fn verdict(holds: bool) -> &'static str {
    if holds {
        "yes"
    } else {
        "**no**"
    }
}
