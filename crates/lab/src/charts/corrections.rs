//! The corrections of scenario C as one chart: lost and duplicated records
//! for the widely copied consumers and the patterns that correct them, a bar
//! per count.

use super::format::thousands;
use super::model::{Bar, Chart, Panel, Series, Unit};
use super::style::{BLUE, VERMILLION};
use crate::faults::crash::{ConsumerVariant, VariantOutcome};
use crate::support::distinct;

/// Lost and duplicated records per consumer variant of scenario C (a bar: the
/// mean of the seeded runs, a dot: one run). The caption names the backend,
/// Kafka and librdkafka versions the runs came from.
pub fn corrections_chart(runs: &[VariantOutcome]) -> Chart {
    let series = Series::list(&[("lost", VERMILLION), ("duplicated", BLUE)]);
    let metrics: [fn(&VariantOutcome) -> f64; 2] = [
        |r| r.outcome.counts.lost as f64,
        |r| r.outcome.counts.duplicated as f64,
    ];
    let mut groups = Vec::new();
    let mut bars = Vec::new();
    for variant in ConsumerVariant::ALL {
        let mine: Vec<&VariantOutcome> =
            runs.iter().filter(|r| r.variant == variant).collect();
        if mine.is_empty() {
            continue;
        }
        groups.push(format!("{} ({})", variant.label(), variant.semantic()));
        bars.push(Bar::per_metric(&mine, &metrics));
    }
    let sources = distinct(runs.iter().map(|r| {
        format!(
            "{}, librdkafka {}",
            r.outcome.backend_description, r.outcome.librdkafka_version
        )
    }));
    let caption = if sources.is_empty() {
        "Measured on: no runs.".to_string()
    } else {
        format!("Measured on {}.", sources.join("; "))
    };
    let seeds = distinct(runs.iter().map(|r| r.seed)).len();
    let records = distinct(runs.iter().map(|r| thousands(r.outcome.records as f64)));
    let subtitle = format!(
        "consumer SIGKILLed and replaced in its group; {seeds} seeded run{}{}; \
         bar: mean, dot: one run",
        if seeds == 1 { "" } else { "s" },
        match records.as_slice() {
            [one] => format!(" of {one} records"),
            _ => String::new(),
        }
    );
    Chart::bars(
        "Scenario C, corrected: auto-commit, offsets stored after processing, seen-id sets",
        "consumer (the semantic it claims)",
        series,
        vec![Panel::new("records", Unit::Count, groups, bars)],
        caption,
    )
    .with_subtitle(subtitle)
}
