//! The charts of a `lab pipeline-bench` report: per cluster, throughput and
//! end-to-end latency over the commit interval, both pipelines.

use plotters::style::RGBColor;

use super::model::{Chart, Unit};
use super::style::{BLUE, GREEN, MUTED, ORANGE, SKY};
use super::xy::{xy_chart, Scale, XyPanel, XySeries, XyStyle};
use crate::experiments::pipeline::{Cell, ClusterRun, Pipeline, PipelineReport};

/// One chart per cluster, with the file stem the book and `lab
/// pipeline-bench --charts` give it.
pub fn pipeline_charts(report: &PipelineReport) -> Vec<(&'static str, Chart)> {
    report
        .clusters
        .iter()
        .map(|run| {
            let stem = match run.brokers {
                1 => "pipeline-one-broker",
                3 => "pipeline-three-brokers",
                _ => "pipeline-cluster",
            };
            (stem, pipeline_chart(report, run))
        })
        .collect()
}

/// Throughput (top) and end-to-end latency, p50 and p99 (bottom), of both
/// pipelines over the commit interval on one cluster, with the interval
/// itself drawn as the line a `read_committed` reader's wait follows.
pub fn pipeline_chart(report: &PipelineReport, run: &ClusterRun) -> Chart {
    let o = &report.options;
    let mut top = XyPanel::new("commit interval (ms)", "records per second");
    top.heading = Some("Throughput: a backlog through the pipeline".into());
    top.x_scale = Scale::Log10;
    top.y_unit = Unit::Rate;
    let mut bottom = XyPanel::new("commit interval (ms)", "latency (ms)");
    bottom.heading = Some(format!(
        "End to end at {} records/s, p50 and p99 (to a read_committed read)",
        o.rate
    ));
    bottom.x_scale = Scale::Log10;
    bottom.y_scale = Scale::Log10;
    bottom.y_unit = Unit::Millis;
    for (pipeline, color, tail) in [
        (Pipeline::AtLeastOnce, BLUE, SKY),
        (Pipeline::ExactlyOnce, GREEN, ORANGE),
    ] {
        let cells: Vec<&Cell> = run
            .cells
            .iter()
            .filter(|c| c.pipeline == pipeline)
            .collect();
        top.series.push(line(pipeline.label(), &cells, color, |c| {
            c.throughput.records_per_sec
        }));
        bottom
            .series
            .push(line(pipeline.label(), &cells, color, |c| {
                c.latency.p50_us as f64 / 1000.0
            }));
        bottom.series.push(line(
            &format!("{} p99", pipeline.label()),
            &cells,
            tail,
            |c| c.latency.p99_us as f64 / 1000.0,
        ));
    }
    let intervals: Vec<(f64, f64)> = run
        .cells
        .iter()
        .map(|c| (c.commit_interval_ms as f64, c.commit_interval_ms as f64))
        .collect();
    bottom.series.push(
        XySeries::new("the commit interval", XyStyle::Line, sorted(intervals))
            .with_color(MUTED),
    );
    xy_chart(
        "The pipeline over the commit interval",
        Some(format!(
            "{}; {} records of {} B per backlog, one partition",
            run.setup(),
            o.records,
            o.record_bytes
        )),
        format!(
            "Measured on {}, librdkafka {}; {} CPUs.",
            run.backend_description, report.librdkafka_version, report.cpus
        ),
        vec![top, bottom],
    )
}

fn line(name: &str, cells: &[&Cell], color: RGBColor, y: fn(&Cell) -> f64) -> XySeries {
    let points = cells
        .iter()
        .map(|c| (c.commit_interval_ms as f64, y(c)))
        .collect();
    XySeries::new(name, XyStyle::Line, sorted(points)).with_color(color)
}

fn sorted(mut points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points.dedup();
    points
}
