//! The charts of a `lab bench` report: throughput per case beside Kafka's own
//! ProducerPerformance, the latency distribution per semantic, and the cost
//! of exactly-once as a curve over the commit interval.

use plotters::style::RGBColor;

use super::format::thousands;
use super::model::{Bar, Chart, Panel, Series, Unit};
use super::style::{BLUE, GREEN, MUTED, ORANGE, PURPLE, SKY, VERMILLION};
use super::xy::{xy_chart, Scale, XyPanel, XySeries, XyStyle};
use crate::experiments::bench::{BenchReport, Case, Figure};
use crate::metrics::LatencySummary;

/// Every chart of a report, with the file stem the book and `lab bench
/// --charts` give it.
pub fn bench_charts(report: &BenchReport) -> Vec<(&'static str, Chart)> {
    vec![
        ("bench-throughput", bench_throughput_chart(report)),
        ("bench-latency", bench_latency_chart(report)),
        ("bench-eos-cost", exactly_once_cost_chart(report)),
    ]
}

/// What measured it, for every caption.
fn caption(report: &BenchReport) -> String {
    format!(
        "Measured on {}, librdkafka {}; {} CPUs.",
        report.backend_description, report.librdkafka_version, report.cpus
    )
}

fn workload(report: &BenchReport) -> String {
    let o = &report.options;
    format!(
        "{} records of {} B per case, {} partition{}, max.in.flight={}",
        thousands(o.records as f64),
        o.record_bytes,
        o.partitions,
        if o.partitions == 1 { "" } else { "s" },
        if o.one_in_flight { 1 } else { 5 }
    )
}

/// Records per second per case: the lab (librdkafka; bar: the median run,
/// dots: every run) beside ProducerPerformance (Java client) on the same case.
/// Two panels, so that the column's width holds every group's name: the cases
/// without transactions, and the transactional ones by commit interval.
pub fn bench_throughput_chart(report: &BenchReport) -> Chart {
    let panel =
        |heading: &str, figures: Vec<&Figure>, label: fn(&Figure) -> String| Panel {
            heading: Some(heading.into()),
            median: true,
            ..Panel::new(
                "records per second",
                Unit::Rate,
                figures.iter().map(|f| label(f)).collect(),
                figures.iter().map(|f| throughput_bars(f)).collect(),
            )
        };
    let (transactional, plain): (Vec<&Figure>, Vec<&Figure>) = report
        .figures
        .iter()
        .partition(|f| matches!(f.case, Case::Transactional { .. }));
    let mut panels = Vec::new();
    if !plain.is_empty() {
        panels.push(panel("Without transactions", plain, |f| f.label.clone()));
    }
    if !transactional.is_empty() {
        panels.push(panel(
            "Transactional, by commit interval",
            transactional,
            |f| match f.case {
                Case::Transactional { commit_interval_ms } => {
                    format!("every {commit_interval_ms} ms")
                }
                _ => f.label.clone(),
            },
        ));
    }
    let height = 240 + 330 * panels.len() as u32;
    Chart::bars(
        "Throughput per delivery guarantee",
        "producer configuration",
        Series::list(&[
            ("lab (librdkafka)", BLUE),
            ("ProducerPerformance (Java client)", ORANGE),
        ]),
        panels,
        caption(report),
    )
    .with_subtitle(format!(
        "{}; bar: the median run, dot: one run",
        workload(report)
    ))
    .with_size(super::style::BOOK_WIDTH, height)
}

/// One case's bars: the lab's runs, and ProducerPerformance's if it ran.
fn throughput_bars(f: &Figure) -> Vec<Option<Bar>> {
    vec![
        Some(Bar::Runs(if f.throughput_runs.is_empty() {
            vec![f.throughput.records_per_sec]
        } else {
            f.throughput_runs.clone()
        })),
        f.producer_performance.as_ref().map(|p| {
            Bar::Runs(if p.records_per_sec_runs.is_empty() {
                vec![p.result.records_per_sec]
            } else {
                p.records_per_sec_runs.clone()
            })
        }),
    ]
}

/// The latency curve of one summary: (percentile, milliseconds).
fn curve(l: &LatencySummary) -> Vec<(f64, f64)> {
    if l.percentiles.is_empty() {
        // A report recorded before whole curves were kept.
        return vec![
            (0.0, l.min_us as f64),
            (50.0, l.p50_us as f64),
            (99.0, l.p99_us as f64),
            (99.9, l.p999_us as f64),
        ]
        .into_iter()
        .map(|(p, us)| (p, us / 1000.0))
        .collect();
    }
    // A percentile says something only if at least ten records lie above
    // it: p99.99 of 20,000 records is the second-slowest record.
    l.percentiles
        .iter()
        .filter(|(p, _)| (100.0 - p) / 100.0 * l.count as f64 >= 10.0)
        .map(|&(p, us)| (p, us as f64 / 1000.0))
        .collect()
}

/// The cases a latency chart shows: one per guarantee's typical setting (a
/// line per commit interval would hide the others).
fn latency_cases(report: &BenchReport) -> Vec<&Figure> {
    let wanted = |c: Case| match c {
        Case::Transactional { commit_interval_ms } => {
            commit_interval_ms == 100 || commit_interval_ms == 1000
        }
        _ => true,
    };
    report.figures.iter().filter(|f| wanted(f.case)).collect()
}

fn case_color(case: Case) -> RGBColor {
    match case {
        Case::Acks0 => VERMILLION,
        Case::Acks1 => ORANGE,
        Case::AcksAll => BLUE,
        Case::Idempotent => SKY,
        Case::Transactional { commit_interval_ms } if commit_interval_ms <= 100 => {
            GREEN
        }
        Case::Transactional { .. } => PURPLE,
    }
}

/// Latency distributions: send to acknowledgement (producer alone), and end
/// to end (producer to a read_committed consumer), percentiles by their nines.
pub fn bench_latency_chart(report: &BenchReport) -> Chart {
    let cases = latency_cases(report);
    let panel = |heading: &str, pick: fn(&Figure) -> Option<&LatencySummary>| {
        let mut p =
            XyPanel::new("percentile (of the measured records)", "latency (ms)");
        p.heading = Some(heading.into());
        p.x_scale = Scale::Nines;
        p.y_scale = Scale::Log10;
        p.y_unit = Unit::Millis;
        p.series = cases
            .iter()
            .filter_map(|f| {
                let l = pick(f)?;
                (l.count > 0).then(|| {
                    XySeries::new(f.label.clone(), XyStyle::Line, curve(l))
                        .with_color(case_color(f.case))
                })
            })
            .collect();
        p
    };
    let panels = vec![
        panel("Send to acknowledgement (producer alone)", |f| {
            Some(&f.ack_latency)
        }),
        panel(
            "End to end: send to a read_committed consumer receiving it",
            |f| f.end_to_end.as_ref().map(|e| &e.latency),
        ),
    ];
    xy_chart(
        "Latency distribution per delivery guarantee",
        Some(format!(
            "{}; a saturating load, so most of it is time queued in the client",
            workload(report)
        )),
        caption(report),
        panels,
    )
}

/// The cost of exactly-once over the commit interval: throughput (top) and
/// end-to-end median latency (bottom) of the transactional cases, against
/// the idempotent producer (the same settings without transactions) and
/// acks=all. Frequent commits cost throughput; rare ones cost latency, since
/// a read_committed consumer sees a record only once its transaction commits.
pub fn exactly_once_cost_chart(report: &BenchReport) -> Chart {
    let transactional: Vec<(u64, &Figure)> = report
        .figures
        .iter()
        .filter_map(|f| match f.case {
            Case::Transactional { commit_interval_ms } => Some((commit_interval_ms, f)),
            _ => None,
        })
        .collect();
    let xs: Vec<f64> = transactional.iter().map(|(ms, _)| *ms as f64).collect();
    let (lo, hi) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(0.0, f64::max),
    );
    let span = lo.is_finite().then_some((lo, hi));
    let mut chart = xy_chart(
        "The cost of exactly-once over the commit interval",
        Some(format!("{}; a commit every interval", workload(report))),
        caption(report),
        vec![
            cost_throughput_panel(report, &transactional, span),
            cost_latency_panel(report, &transactional, span),
        ],
    );
    if transactional.is_empty() {
        chart.notes.push(
            "No transactional case in this report (the mock cluster refuses them)."
                .into(),
        );
    }
    chart
}

/// A reference's level across the commit intervals `span` (none without one).
fn flat(span: Option<(f64, f64)>, y: f64) -> Vec<(f64, f64)> {
    match span {
        Some((lo, hi)) => vec![(lo, y), (hi, y)],
        None => Vec::new(),
    }
}

/// The references a transactional case is weighed against, each a colour.
const REFERENCES: [(Case, RGBColor); 2] =
    [(Case::Idempotent, SKY), (Case::AcksAll, BLUE)];

/// The transactional cases' curve: `y` of each case that has it, over its
/// commit interval.
fn transactional_line(
    transactional: &[(u64, &Figure)],
    y: fn(&Figure) -> Option<f64>,
) -> XySeries {
    XySeries::new(
        "transactional",
        XyStyle::Line,
        transactional
            .iter()
            .filter_map(|(ms, f)| Some((*ms as f64, y(f)?)))
            .collect(),
    )
    .with_color(GREEN)
}

/// The exactly-once cost's top panel: throughput over the commit interval.
fn cost_throughput_panel(
    report: &BenchReport,
    transactional: &[(u64, &Figure)],
    span: Option<(f64, f64)>,
) -> XyPanel {
    let mut top = XyPanel::new("commit interval (ms)", "records per second");
    top.heading = Some("Throughput (producer alone, median run)".into());
    top.x_scale = Scale::Log10;
    top.y_unit = Unit::Rate;
    top.series.push(transactional_line(transactional, |f| {
        Some(f.throughput.records_per_sec)
    }));
    top.series.push(
        XySeries::new(
            "transactional, one run",
            XyStyle::Points,
            transactional
                .iter()
                .flat_map(|(ms, f)| f.throughput_runs.iter().map(|r| (*ms as f64, *r)))
                .collect(),
        )
        .with_color(MUTED),
    );
    for (case, color) in REFERENCES {
        if let Some(f) = report.figure(case) {
            top.series.push(
                XySeries::new(
                    format!("{} (no transactions)", f.label),
                    XyStyle::Line,
                    flat(span, f.throughput.records_per_sec),
                )
                .with_color(color),
            );
        }
    }
    top
}

/// The exactly-once cost's bottom panel: end-to-end median latency over the
/// commit interval.
fn cost_latency_panel(
    report: &BenchReport,
    transactional: &[(u64, &Figure)],
    span: Option<(f64, f64)>,
) -> XyPanel {
    let mut bottom = XyPanel::new("commit interval (ms)", "median latency (ms)");
    bottom.heading =
        Some("End to end, median: send to a read_committed consumer".into());
    bottom.x_scale = Scale::Log10;
    bottom.y_scale = Scale::Log10;
    bottom.y_unit = Unit::Millis;
    bottom.series.push(transactional_line(transactional, |f| {
        let e = f.end_to_end.as_ref()?;
        Some(e.latency.p50_us as f64 / 1000.0)
    }));
    for (case, color) in REFERENCES {
        if let Some(e) = report.figure(case).and_then(|f| f.end_to_end.as_ref()) {
            bottom.series.push(
                XySeries::new(
                    format!("{} (no transactions)", case.label()),
                    XyStyle::Line,
                    flat(span, e.latency.p50_us as f64 / 1000.0),
                )
                .with_color(color),
            );
        }
    }
    bottom
}
