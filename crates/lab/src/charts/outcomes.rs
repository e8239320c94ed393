//! What each delivery semantic delivered, from the outcomes of runs.

use super::format::thousands;
use super::model::{Bar, Chart, Panel, Series, Unit};
use super::style::{BLUE, GREEN, VERMILLION};
use crate::outcome::Outcome;
use crate::semantics::Semantic;
use crate::support::distinct;

/// Delivered, lost and duplicated records per semantic, a group of bars each.
/// Several outcomes of one semantic are averaged, each run drawn as a dot.
pub fn outcomes_chart(outcomes: &[Outcome]) -> Chart {
    let series = Series::list(&[
        ("delivered", GREEN),
        ("lost", VERMILLION),
        ("duplicated", BLUE),
    ]);
    let metrics: [fn(&Outcome) -> f64; 3] = [
        |o| o.counts.delivered as f64,
        |o| o.counts.lost as f64,
        |o| o.counts.duplicated as f64,
    ];
    let mut groups = Vec::new();
    let mut bars = Vec::new();
    for semantic in Semantic::ALL {
        let runs: Vec<&Outcome> =
            outcomes.iter().filter(|o| o.semantic == semantic).collect();
        if runs.is_empty() {
            continue;
        }
        groups.push(semantic.to_string());
        bars.push(Bar::per_metric(&runs, &metrics));
    }
    let per_semantic = outcomes.len() / groups.len().max(1);
    Chart::bars(
        "What each delivery semantic delivered",
        "delivery semantic",
        series,
        vec![Panel::new("records", Unit::Count, groups, bars)],
        caption(outcomes),
    )
    .with_subtitle(subtitle(outcomes, per_semantic))
}

/// The backends and librdkafka versions that produced the outcomes.
fn caption(outcomes: &[Outcome]) -> String {
    let mut sources = distinct(outcomes.iter().map(|o| o.backend_description.clone()));
    if sources.is_empty() {
        sources.push("no runs".into());
    }
    let mut caption = format!("Measured on {}", sources.join("; "));
    let librdkafka = distinct(outcomes.iter().map(|o| o.librdkafka_version.clone()));
    if !librdkafka.is_empty() {
        caption += &format!(", librdkafka {}", librdkafka.join(", "));
    }
    caption.push('.');
    caption
}

/// The records sent per run, the fault (when all runs had the same), and how
/// to read the dots when a semantic has several runs.
fn subtitle(outcomes: &[Outcome], per_semantic: usize) -> String {
    let faults = distinct(outcomes.iter().map(|o| {
        o.fault
            .clone()
            .unwrap_or_else(|| "happy path, no fault".into())
    }));
    let records = distinct(outcomes.iter().map(|o| thousands(o.records as f64)));
    let mut subtitle = match records.as_slice() {
        [] => "no runs recorded".to_string(),
        [one] => format!("{one} records sent per run"),
        _ => "records sent per run vary".to_string(),
    };
    if faults.len() == 1 {
        subtitle += &format!("; {}", faults[0]);
    }
    if per_semantic > 1 {
        subtitle += "; bar: mean of the runs, dot: one run";
    }
    subtitle
}
