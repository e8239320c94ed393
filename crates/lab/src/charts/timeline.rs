//! A run's timeline: every record by id (records are sent in id order, so the
//! x axis is the order of the run), how many times it was delivered, and the
//! scenario's fault window shaded. Lost records sit at 0, duplicated ones at
//! 2 or more, and the claim the chart makes is visible: whatever went wrong
//! went wrong inside the window.
//!
//! ```no_run
//! let json = std::fs::read_to_string("book/src/generated/timeline.json")?;
//! let runs: Vec<lab::experiments::timelines::TimelineRun> = serde_json::from_str(&json)?;
//! lab::charts::timeline_chart(&runs).save_png("timeline.png")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use plotters::style::RGBColor;

use super::model::Chart;
use super::style::{BLUE, VERMILLION};
use super::xy::{xy_chart, Band, XyPanel, XySeries, XyStyle};
use crate::audit::checker::{History, Verdict, SHOWN};
use crate::audit::IdRanges;
pub use crate::experiments::timelines::TimelineRun;
use crate::faults::crash::db::{DbOutcome, DbVariant};
use crate::outcome::Outcome;
use crate::support::distinct;

/// Records delivered once: the background the faults stand out against.
const ONCE: RGBColor = RGBColor(160, 160, 160);

/// The names of the three series (one legend entry each).
pub const LOST: &str = "lost (delivered 0 times)";
pub const DUPLICATED: &str = "duplicated (delivered 2+ times)";
pub const DELIVERED_ONCE: &str = "delivered once";

/// The timeline of one outcome, alone.
pub fn outcome_timeline(outcome: &Outcome) -> Chart {
    let title = match &outcome.fault {
        Some(_) => format!("{}: the fate of every record", outcome.semantic),
        None => format!("{}: the fate of every record, no fault", outcome.semantic),
    };
    xy_chart(
        title,
        outcome.fault.clone(),
        caption(&[outcome]),
        vec![panel(outcome.semantic.to_string(), outcome)],
    )
}

/// The timelines of several runs of one scenario, a panel each (in the order
/// given). A refused run gets no panel but a note saying why, so a refusal
/// never looks like a clean run.
pub fn timeline_chart(runs: &[TimelineRun]) -> Chart {
    let scenarios = distinct(runs.iter().map(|r| r.scenario.label()));
    let title = format!(
        "{}: the fate of every record, one run per semantic",
        scenarios.join(", ")
    );
    let outcomes: Vec<&Outcome> =
        runs.iter().filter_map(|r| r.result.as_ref().ok()).collect();
    let panels = runs
        .iter()
        .filter_map(|r| Some(panel(r.case.label(), r.result.as_ref().ok()?)))
        .collect();
    let seeds = distinct(runs.iter().map(|r| r.seed));
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let subtitle = format!(
        "y: times each record was delivered; shaded: the fault window; seed {}",
        seeds.join(", ")
    );
    let mut chart = xy_chart(title, Some(subtitle), caption(&outcomes), panels);
    for r in runs {
        if let Err(why) = &r.result {
            chart
                .notes
                .push(format!("{}: refused by the lab: {why}", r.case.label()));
        }
    }
    let panels = outcomes.len().max(1) as u32;
    chart.with_size(super::style::BOOK_WIDTH, (180 + 300 * panels).min(1400))
}

/// Where the numbers come from: backend(s), Kafka and librdkafka versions.
fn caption(outcomes: &[&Outcome]) -> String {
    let sources = distinct(outcomes.iter().map(|o| o.backend_description.clone()));
    let kafka = distinct(outcomes.iter().map(|o| o.kafka_version.clone()));
    let librdkafka = distinct(outcomes.iter().map(|o| o.librdkafka_version.clone()));
    if sources.is_empty() {
        return "No run recorded.".into();
    }
    let mut caption = format!("Measured on {}", sources.join("; "));
    // The backend's description names its Kafka version; say it if not.
    if kafka.iter().any(|v| !caption.contains(v.as_str())) {
        caption += &format!(" (Kafka {})", kafka.join(", "));
    }
    caption
        + &format!(
            ", librdkafka {}. x: record id; records are sent in id order.",
            librdkafka.join(", ")
        )
}

/// One outcome's panel: lost and duplicated records as points, the records
/// delivered once as a line at 1 (one segment per unbroken stretch), the
/// fault window as a band.
fn panel(name: String, outcome: &Outcome) -> XyPanel {
    let c = &outcome.counts;
    let mut heading = format!("{name}: {} lost, {} duplicated", c.lost, c.duplicated);
    if c.aborted_in_log > 0 {
        heading += &format!(", {} aborted in the log", c.aborted_in_log);
    }
    let f = &outcome.fates;
    let mut p = fate_panel(heading, outcome.records, &|id| f.times_delivered(id));
    if let Some(w) = &outcome.window {
        // A window that reached no record is drawn as a sliver at its place,
        // so its label still shows where the fault was.
        let sliver = (outcome.records as f64 * 0.004).max(0.5);
        let (from, to) = (w.from as f64, w.to as f64);
        let (from, to) = if to - from < sliver {
            (from - sliver / 2.0, from + sliver / 2.0)
        } else {
            (from, to)
        };
        let label = if w.ids.len() < w.to - w.from {
            format!("{} ({} of the ids in this range)", w.label, w.ids.len())
        } else {
            w.label.clone()
        };
        p.bands.push(Band { from, to, label });
    }
    p
}

/// A panel of the fates of ids `0..records`, given how many times each was
/// delivered: lost and duplicated ids as points, the ids delivered once as a
/// line at 1 (one segment per unbroken stretch).
fn fate_panel(heading: String, records: u64, times: &dyn Fn(u64) -> u64) -> XyPanel {
    let mut p = XyPanel::new("record id (in send order)", "times delivered");
    p.heading = Some(heading);
    let (mut lost, mut duplicated) = (Vec::new(), Vec::new());
    // Stretches of ids delivered exactly once, as horizontal segments.
    let mut stretch: Option<(u64, u64)> = None;
    let mut once = Vec::new();
    for id in 0..records {
        match times(id) {
            1 => {
                stretch = Some(stretch.map_or((id, id), |(a, _)| (a, id)));
                continue;
            }
            0 => lost.push((id as f64, 0.0)),
            n => duplicated.push((id as f64, n as f64)),
        }
        once.extend(stretch.take());
    }
    once.extend(stretch);
    for (a, b) in once {
        // A lone id still gets a visible dash.
        let (a, b) = if a == b {
            (a as f64 - 0.4, b as f64 + 0.4)
        } else {
            (a as f64, b as f64)
        };
        p.series.push(
            XySeries::new(DELIVERED_ONCE, XyStyle::Line, vec![(a, 1.0), (b, 1.0)])
                .with_color(ONCE),
        );
    }
    if !lost.is_empty() {
        p.series
            .push(XySeries::new(LOST, XyStyle::Points, lost).with_color(VERMILLION));
    }
    if !duplicated.is_empty() {
        p.series.push(
            XySeries::new(DUPLICATED, XyStyle::Points, duplicated).with_color(BLUE),
        );
    }
    p
}

/// One run of [`ids_timeline`], known only by its lost and duplicated ids.
pub struct IdsRun<'a> {
    pub heading: String,
    /// The run's ids are `0..records`.
    pub records: u64,
    pub lost: &'a IdRanges,
    /// Drawn at 2: the run does not say how many times.
    pub duplicated: &'a IdRanges,
}

/// The timeline of runs known by their lost and duplicated ids, such as a
/// graded exercise's seeded runs: a panel each, so a learner sees where their
/// own program lost or repeated records.
pub fn ids_timeline(title: String, subtitle: String, runs: &[IdsRun]) -> Chart {
    let panels = runs
        .iter()
        .map(|r| {
            fate_panel(r.heading.clone(), r.records, &|id| {
                if r.lost.contains(id) {
                    0
                } else if r.duplicated.contains(id) {
                    2
                } else {
                    1
                }
            })
        })
        .collect();
    let chart = xy_chart(
        title,
        Some(subtitle),
        "x: record id; y: times your program's output holds it (2 for any repeat)."
            .into(),
        panels,
    );
    let panels = runs.len().max(1) as u32;
    chart.with_size(super::style::BOOK_WIDTH, (180 + 260 * panels).min(1400))
}

/// The legend entry of a pipeline history's records that nothing is wrong with.
pub const WRITTEN: &str = "in the committed output";

/// A whole exactly-once pipeline's history as the checker judged it: every
/// committed output record at the moment the processor wrote it (x: seconds
/// on the history's clock in milliseconds, y: record id), each anomaly the verdict shows as
/// a point of its own kind (the first few of each kind, as the verdict keeps
/// them) and every fault step as a shaded band.
pub fn history_timeline(h: &History, v: &Verdict) -> Chart {
    let s = |ms: u64| ms as f64;
    let mut p = XyPanel::new("milliseconds since the first input record", "record id");
    p.x_unit = super::Unit::Millis;
    p.heading = Some(match v.clean() {
        true => "exactly once held".into(),
        false => format!("{} anomalies", v.all().iter().map(|a| a.count).sum::<u64>()),
    });
    let written = h
        .committed
        .iter()
        .map(|r| (s(r.at_ms), r.id as f64))
        .collect();
    p.series
        .push(XySeries::new(WRITTEN, XyStyle::Points, written).with_color(ONCE));
    // Drawn last-kind first, so a lost record stays on top of the same
    // record's offsets finding.
    for a in v.all().into_iter().rev().filter(|a| a.count > 0) {
        let points = a.shown.iter().map(|f| (s(f.at_ms), f.id as f64)).collect();
        p.series.push(XySeries::new(
            format!("{} ({})", a.kind.label(), a.count),
            XyStyle::Points,
            points,
        ));
    }
    let end = h
        .uncommitted
        .iter()
        .chain(&h.committed)
        .map(|r| r.at_ms)
        .max();
    for f in &h.faults {
        let from = h.moment(f.from);
        let to = f
            .until
            .map_or(end.unwrap_or(from), |u| h.moment(u))
            .max(from + 1);
        p.bands.push(Band {
            from: s(from),
            to: s(to),
            label: f.name.clone(),
        });
    }
    xy_chart(
        "An exactly-once pipeline's history, judged",
        Some(format!(
            "{} input records, {} committed output records",
            v.input_records, v.committed_records
        )),
        format!(
            "Grey: committed output records, when written. Coloured: anomalies \
             (up to {SHOWN} of each kind). Shaded: faults."
        ),
        vec![p],
    )
}

/// The side-effects scenario's legend: what a panel counts per id.
pub const MISSING: &str = "missing (0 times)";
pub const REPEATED: &str = "repeated (2+ times)";
pub const ONCE_EXACTLY: &str = "once";

/// The timeline of the side-effects scenario: the first seed's crash run of
/// the naive consumer (row, then Kafka commit) and of the consumer that keeps
/// its offsets in the database, two panels each: the rows of the table and
/// the notifications sent, per id. Shaded: the batch each killed worker held.
pub fn side_effects_timeline(runs: &[DbOutcome]) -> Chart {
    let mut panels = Vec::new();
    let mut shown = Vec::new();
    for variant in [DbVariant::RowThenCommit, DbVariant::OffsetsInDb] {
        let Some(run) = runs
            .iter()
            .filter(|r| r.variant == variant && !r.rebalance && r.paused.is_none())
            .min_by_key(|r| r.seed)
        else {
            continue;
        };
        shown.push(run);
        let name = match variant {
            DbVariant::RowThenCommit => "1. row, then Kafka commit",
            _ => "4. offsets in the database",
        };
        panels.push(db_panel(name, run, true));
        panels.push(db_panel(name, run, false));
    }
    let seeds: Vec<String> = distinct(shown.iter().map(|r| r.seed))
        .iter()
        .map(u64::to_string)
        .collect();
    let sources = distinct(shown.iter().map(|r| {
        format!(
            "{}, librdkafka {}",
            r.backend_description, r.librdkafka_version
        )
    }));
    let caption = format!(
        "Measured on {}. x: record id; y: times the table or the notifications log holds it \
         (2 for any repeat); shaded: the stretch of ids the killed workers' batches came from.",
        sources.join("; ")
    );
    let chart = xy_chart(
        "A database sink under two SIGKILLs, id by id",
        Some(format!(
            "the table's rows and the notifications sent; seed {}",
            seeds.join(", ")
        )),
        caption,
        panels,
    );
    let panels = (2 * shown.len()).max(1) as u32;
    chart.with_size(super::style::BOOK_WIDTH, (180 + 260 * panels).min(1400))
}

/// One panel of [`side_effects_timeline`]: the table's rows (`table`) or the
/// notifications sent, per id, of `run`.
fn db_panel(name: &str, run: &DbOutcome, table: bool) -> XyPanel {
    let f = &run.fates;
    let (what, place, repeated, missing) = if table {
        ("table rows", "table", &f.rows_duplicated, &f.rows_missing)
    } else {
        (
            "notifications",
            "log",
            &f.notifications_duplicated,
            &f.notifications_missing,
        )
    };
    let times = |id| {
        if table {
            f.rows_of(id)
        } else {
            f.notifications_of(id)
        }
    };
    let heading = format!(
        "{name}: {what}: {} ids repeated, {} missing",
        repeated.len(),
        missing.len()
    );
    let mut p = fate_panel(heading, run.records, &times);
    p.y_desc = format!("times in the {place}");
    for s in &mut p.series {
        s.name = match s.name.as_str() {
            LOST => MISSING.into(),
            DUPLICATED => REPEATED.into(),
            _ => ONCE_EXACTLY.into(),
        };
    }
    // The killed workers' batches share a stretch of ids (each
    // holds ids of one partition at a time): one band for all.
    let held = IdRanges::from_ids(f.held_when_killed.iter().flat_map(|h| h.iter()));
    if let Some((a, b)) = held.bounds() {
        p.bands.push(Band {
            from: a as f64,
            to: b as f64,
            label: format!(
                "batches of the {} killed workers ({} of these ids)",
                f.held_when_killed.len(),
                held.len()
            ),
        });
    }
    p
}
