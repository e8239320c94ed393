//! The nemesis's charts: one schedule's faults over time as both pipelines
//! met them ([`nemesis_timeline`]), and every recorded schedule's outcome
//! side by side ([`nemesis_summary_chart`]). Both are drawn from the recorded
//! JSON alone.
//!
//! ```no_run
//! let json = std::fs::read_to_string("book/src/generated/nemesis.json")?;
//! let record: lab::faults::nemesis::NemesisRecord = serde_json::from_str(&json)?;
//! for (stem, chart) in lab::charts::nemesis_charts(&record) {
//!     chart.save_png(format!("{stem}.png"))?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use plotters::style::RGBColor;

use super::format::thousands;
use super::model::Chart;
use super::style::{BLUE, GREEN, INK, MUTED, ORANGE, PURPLE, SKY, VERMILLION};
use super::xy::{xy_chart, XyPanel, XySeries, XyStyle};
use crate::audit::checker::{Verdict, SHOWN};
use crate::faults::nemesis::{
    FaultKind, NemesisRecord, NemesisRun, PipelineRun, Summary,
};
use crate::semantics::Semantic;

/// The legend entries that are not fault kinds.
pub const PROGRESS: &str = "records committed when a step struck";
pub const FAILED: &str = "processor failed, replaced";
pub const HUNG: &str = "processor hung, replaced";
pub const ANOMALY: &str = "anomaly found by the checker";

/// The names of the rows under the faults.
const REPLACED_ROW: &str = "processors the lab replaced (not a planned fault)";
const ANOMALY_ROW: &str = "anomalies";
/// The row's name when a run's record does not say where the checker's
/// clock starts (recorded before it did): its anomalies are not moved.
const ANOMALY_ROW_UNALIGNED: &str = "anomalies (on the checker's clock)";

/// Anomalies stand out in red, a colour no fault kind has.
const RED: RGBColor = RGBColor(200, 0, 0);
const LIGHT: RGBColor = RGBColor(170, 170, 170);

/// A colour per fault kind: warm for the brokers, blues for the proxy's
/// responses, greens and purples for the processors.
pub fn kind_color(kind: FaultKind) -> RGBColor {
    match kind {
        FaultKind::BrokerKill => VERMILLION,
        FaultKind::FollowerPause => ORANGE,
        FaultKind::LostProduceResponse => BLUE,
        FaultKind::DelayedProduceResponse => SKY,
        FaultKind::LostEndTxnResponse => RGBColor(51, 34, 136),
        FaultKind::ProcessorKill => PURPLE,
        FaultKind::SecondProcessor => GREEN,
        FaultKind::ZombiePause => RGBColor(136, 34, 85),
    }
}

/// The charts the book draws from a record, with their file stems: the
/// summary, the first schedule's timeline, and the timeline of every
/// schedule whose exactly-once verdict is not clean.
pub fn nemesis_charts(record: &NemesisRecord) -> Vec<(String, Chart)> {
    let mut charts =
        vec![("nemesis-summary".to_string(), nemesis_summary_chart(record))];
    for (i, run) in record.runs.iter().enumerate() {
        if i == 0 || !run.exactly_once.verdict.clean() {
            let mut chart = nemesis_timeline(run);
            chart.caption =
                format!("Measured on {}; {}", record.cluster, chart.caption);
            charts.push((format!("nemesis-timeline-seed-{}", run.seed), chart));
        }
    }
    charts
}

/// The pipelines of a run, exactly-once first.
fn pipelines(run: &NemesisRun) -> Vec<&PipelineRun> {
    std::iter::once(&run.exactly_once)
        .chain(&run.at_least_once)
        .collect()
}

/// A verdict in words, from its counts: for exactly-once whether it is
/// clean and its four main counts, for at-least-once what it lost and
/// duplicated; any other kind found is added.
pub fn verdict_words(semantic: Semantic, v: &Verdict) -> String {
    let main: &[&crate::audit::checker::Anomalies] = match semantic {
        Semantic::ExactlyOnce => {
            &[&v.lost, &v.duplicated, &v.aborted_reads, &v.out_of_order]
        }
        _ => &[&v.lost, &v.duplicated],
    };
    let mut counts: Vec<String> = main
        .iter()
        .map(|a| format!("{} {}", a.count, a.kind.label()))
        .collect();
    for a in v.all() {
        if a.count > 0 && !main.iter().any(|m| m.kind == a.kind) {
            counts.push(format!("{} {}", a.count, a.kind.label()));
        }
    }
    match semantic {
        Semantic::ExactlyOnce => format!(
            "{semantic}: {} ({})",
            if v.clean() { "clean" } else { "NOT clean" },
            counts.join(", ")
        ),
        _ => format!("{semantic}: {}", counts.join(", ")),
    }
}

/// The rows of a timeline, from the top: the steps' progress (unnamed: its
/// labels say it), a row per fault kind that struck in either pipeline,
/// then the replaced processors and the anomalies if there are any.
struct Rows {
    progress: f64,
    kinds: Vec<(FaultKind, f64)>,
    replaced: Option<f64>,
    anomalies: Option<f64>,
    named: Vec<(f64, String)>,
}

impl Rows {
    fn of(run: &NemesisRun) -> Rows {
        let all = pipelines(run);
        let kinds: Vec<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|k| all.iter().any(|p| struck(p).any(|i| i.kind == *k)))
            .collect();
        let replaced = all.iter().any(|p| !p.executed.replacements.is_empty());
        let anomalies = all.iter().any(|p| !p.verdict.clean());
        let count = 1 + kinds.len() + usize::from(replaced) + usize::from(anomalies);
        let mut y = count as f64;
        let mut next = || {
            y -= 1.0;
            y
        };
        let mut rows = Rows {
            progress: next(),
            kinds: kinds.into_iter().map(|k| (k, next())).collect(),
            replaced: replaced.then(&mut next),
            anomalies: anomalies.then(&mut next),
            named: Vec::new(),
        };
        // The progress row has no name (its labels say what it is).
        rows.named = std::iter::once((rows.progress, String::new()))
            .chain(rows.kinds.iter().map(|(k, y)| (*y, k.label().to_string())))
            .chain(rows.replaced.map(|y| (y, REPLACED_ROW.to_string())))
            .chain(rows.anomalies.map(|y| {
                let aligned = all.iter().all(|p| p.checker_clock_ms.is_some());
                let name = if aligned {
                    ANOMALY_ROW
                } else {
                    ANOMALY_ROW_UNALIGNED
                };
                (y, name.to_string())
            }))
            .collect();
        rows
    }

    fn count(&self) -> usize {
        self.named.len()
    }
}

/// The faults of a pipeline run that struck (a skipped one did not).
fn struck(p: &PipelineRun) -> impl Iterator<Item = &crate::faults::nemesis::Injected> {
    p.executed
        .injected
        .iter()
        .filter(|i| !i.detail.starts_with("skipped"))
}

/// Where a timeline's x axis ends: the last thing either pipeline did.
fn end_of(run: &NemesisRun) -> f64 {
    pipelines(run)
        .iter()
        .flat_map(|p| {
            let e = &p.executed;
            let anomalies = p.verdict.all().into_iter().flat_map(|a| {
                a.shown.iter().map(|f| {
                    (f.at_ms as i64 + p.checker_clock_ms.unwrap_or(0)) as f64 / 1000.0
                })
            });
            std::iter::once(e.seconds)
                .chain(e.injected.iter().map(|i| i.ended_s))
                .chain(e.replacements.iter().map(|r| r.at_s))
                .chain(anomalies)
                .collect::<Vec<f64>>()
        })
        .fold(1.0, f64::max)
}

/// One schedule's timeline: a panel per pipeline (exactly-once, then
/// at-least-once if it ran), over the seconds since that pipeline started.
/// Each fault is a bar on its kind's row from when it struck to when it
/// ended; the top row marks each step with the records committed when it
/// struck; below the faults, the processors the lab replaced and the
/// anomalies the checker found. Each panel's heading is its verdict.
pub fn nemesis_timeline(run: &NemesisRun) -> Chart {
    let rows = Rows::of(run);
    let end = end_of(run) * 1.02;
    let panels: Vec<XyPanel> = pipelines(run)
        .into_iter()
        .map(|p| timeline_panel(p, &rows, end))
        .collect();
    let notes = timeline_notes(run);
    let height = 330 + panels.len() as u32 * (150 + 30 * rows.count() as u32);
    let mut chart = xy_chart(
        "One fault schedule, as both pipelines met it",
        Some(format!(
            "seed {}: {} steps over {} records; each bar a fault, from start to end",
            run.seed, run.schedule.options.steps, run.schedule.options.records
        )),
        format!(
            "x: seconds since each pipeline started; numbers on the top row: records \
             committed when a step struck; anomalies: the first {SHOWN} of each kind, when \
             the record in question was written (a lost record: about when it went missing)."
        ),
        panels,
    );
    chart.notes = notes;
    chart.with_size(super::style::BOOK_WIDTH, height.min(1400))
}

/// One pipeline's panel of [`nemesis_timeline`].
fn timeline_panel(p: &PipelineRun, rows: &Rows, end: f64) -> XyPanel {
    let mut panel = XyPanel::new("seconds since the pipeline started", "");
    panel.heading = Some(verdict_words(p.semantic, &p.verdict));
    panel.x_range = Some((0.0, end));
    panel.rows = rows.named.clone();
    for (kind, y) in &rows.kinds {
        let points: Vec<(f64, f64)> = struck(p)
            .filter(|i| i.kind == *kind)
            .flat_map(|i| [(i.started_s, *y), (i.ended_s.max(i.started_s), *y)])
            .collect();
        if !points.is_empty() {
            panel.series.push(
                XySeries::new(kind.label(), XyStyle::Spans, points)
                    .with_color(kind_color(*kind)),
            );
        }
    }
    panel.series.push(progress(p, rows.progress));
    if let Some(y) = rows.replaced {
        for (hung, name, color) in [(false, FAILED, INK), (true, HUNG, MUTED)] {
            let points: Vec<(f64, f64)> = p
                .executed
                .replacements
                .iter()
                .filter(|r| r.hung == hung)
                .map(|r| (r.at_s, y))
                .collect();
            if !points.is_empty() {
                panel.series.push(
                    XySeries::new(name, XyStyle::Points, points).with_color(color),
                );
            }
        }
    }
    if let Some(y) = rows.anomalies {
        if let Some(series) = anomalies(&p.verdict, y, p.checker_clock_ms.unwrap_or(0))
        {
            panel.series.push(series);
        }
    }
    panel
}

/// A point per step where it struck, labelled with the records committed then.
fn progress(p: &PipelineRun, y: f64) -> XySeries {
    // A step's faults strike together: its first one says when.
    let mut by_step = std::collections::BTreeMap::new();
    for i in &p.executed.injected {
        by_step.entry(i.step).or_insert((i.started_s, i.at_records));
    }
    let steps: Vec<(f64, u64)> = by_step.into_values().collect();
    XySeries::new(
        PROGRESS,
        XyStyle::Points,
        steps.iter().map(|s| (s.0, y)).collect(),
    )
    .with_color(LIGHT)
    .with_labels(steps.iter().map(|s| thousands(s.1 as f64)).collect())
}

/// The anomalies the verdict shows, one point (labelled with its kind) per
/// kind and tenth of a second, in seconds on the pipeline's clock
/// (`clock_ms`: where the checker's clock starts on it; 0 for runs recorded
/// before it was known, which stay on the checker's clock).
fn anomalies(v: &Verdict, y: f64, clock_ms: i64) -> Option<XySeries> {
    let mut points: Vec<(i64, &str)> = Vec::new();
    for a in v.all() {
        for f in &a.shown {
            let at = (f.at_ms as i64 + clock_ms + 50).div_euclid(100);
            if !points.contains(&(at, a.kind.label())) {
                points.push((at, a.kind.label()));
            }
        }
    }
    (!points.is_empty()).then(|| {
        XySeries::new(
            ANOMALY,
            XyStyle::Points,
            points.iter().map(|p| (p.0 as f64 / 10.0, y)).collect(),
        )
        .with_color(RED)
        .with_labels(points.iter().map(|p| p.1.to_string()).collect())
    })
}

/// What the bars cannot show: faults skipped and steps never reached.
fn timeline_notes(run: &NemesisRun) -> Vec<String> {
    let mut notes = Vec::new();
    for p in pipelines(run) {
        for i in &p.executed.injected {
            if let Some(why) = i.detail.strip_prefix("skipped") {
                notes.push(format!(
                    "{}, step {}: {} not struck ({})",
                    p.semantic,
                    i.step + 1,
                    i.kind.label(),
                    why.trim_start_matches(':').trim()
                ));
            }
        }
        for s in &p.executed.not_reached {
            notes.push(format!(
                "{}, step {}: not reached, the pipeline had finished",
                p.semantic,
                s + 1
            ));
        }
    }
    notes
}

/// Every schedule of a record side by side (x: its seed): what at-least-once
/// lost and duplicated, every anomaly exactly-once showed (0 when clean),
/// and how many faults struck.
pub fn nemesis_summary_chart(record: &NemesisRecord) -> Chart {
    let rows: Vec<Summary> = record.runs.iter().map(Summary::of).collect();
    xy_chart(
        "Every schedule: what each pipeline's output held",
        Some(format!(
            "{} schedules of {} records each, both pipelines under the same faults",
            record.runs.len(),
            distinct_records(&rows)
        )),
        format!(
            "Measured on {}; x: the schedule's seed; y: counts from the checker's verdicts.",
            record.cluster
        ),
        summary_panels(&rows, &record.runs),
    )
    .with_size(super::style::BOOK_WIDTH, 980)
}

/// The three panels of [`nemesis_summary_chart`], over one x range; a
/// series with no point (at-least-once not run) is left out. Exactly-once's
/// anomalies are every kind the checker counts, so 0 means clean.
fn summary_panels(rows: &[Summary], runs: &[NemesisRun]) -> Vec<XyPanel> {
    let anomalies: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| {
            let all = r.exactly_once.verdict.all();
            (
                r.seed as f64,
                all.iter().map(|a| a.count).sum::<u64>() as f64,
            )
        })
        .collect();
    let seeds = rows.iter().map(|s| s.seed as f64);
    let range = (
        seeds.clone().fold(f64::INFINITY, f64::min) - 0.5,
        seeds.fold(f64::NEG_INFINITY, f64::max) + 0.5,
    );
    let panel = |heading: &str, y_desc: &str, series: Vec<XySeries>| {
        let mut p = XyPanel::new("seed (one schedule each)", y_desc);
        p.heading = Some(heading.into());
        p.x_range = range.0.is_finite().then_some(range);
        p.series = series
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .collect();
        p
    };
    let points = |name: &str, color, value: fn(&Summary) -> Option<u64>| {
        let points = rows
            .iter()
            .filter_map(|s| Some((s.seed as f64, value(s)? as f64)))
            .collect();
        XySeries::new(name, XyStyle::Points, points).with_color(color)
    };
    vec![
        panel(
            "At-least-once under the same faults",
            "records",
            vec![
                points("at-least-once: duplicated", BLUE, |s| s.alo_duplicated),
                points("at-least-once: lost", VERMILLION, |s| s.alo_lost),
            ],
        ),
        panel(
            "Exactly-once: anomalies of every kind the checker counts (0: clean)",
            "anomalies",
            vec![
                XySeries::new("exactly-once: anomalies", XyStyle::Points, anomalies)
                    .with_color(GREEN),
            ],
        ),
        panel(
            "Faults that struck the exactly-once run",
            "faults",
            vec![points("faults that struck", MUTED, |s| {
                Some(s.faults as u64)
            })],
        ),
    ]
}

/// The records per schedule ("20000", or "1000 to 20000" if they differ).
fn distinct_records(rows: &[Summary]) -> String {
    let lo = rows.iter().map(|s| s.records).min().unwrap_or(0);
    let hi = rows.iter().map(|s| s.records).max().unwrap_or(0);
    match lo == hi {
        true => lo.to_string(),
        false => format!("{lo} to {hi}"),
    }
}
