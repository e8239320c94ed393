//! The two corrections of scenario C as one chart: lost and duplicated records
//! for the source notes' consumers and the corrected one, a bar per count.

use super::{
    distinct, thousands, Bar, Body, Chart, Panel, Series, Unit, BLUE, VERMILLION,
};
use crate::faults::crash::{ConsumerVariant, VariantOutcome};

/// Lost and duplicated records per consumer variant of scenario C (a bar: the
/// mean of the seeded runs, a dot: one run). The caption names the backend,
/// Kafka and librdkafka versions the runs came from.
pub fn corrections_chart(runs: &[VariantOutcome]) -> Chart {
    let series = vec![
        Series {
            name: "lost".into(),
            color: VERMILLION,
        },
        Series {
            name: "duplicated".into(),
            color: BLUE,
        },
    ];
    let metrics: [fn(&VariantOutcome) -> u64; 2] =
        [|r| r.outcome.counts.lost, |r| r.outcome.counts.duplicated];
    let mut groups = Vec::new();
    let mut bars = Vec::new();
    for variant in ConsumerVariant::ALL {
        let mine: Vec<&VariantOutcome> =
            runs.iter().filter(|r| r.variant == variant).collect();
        if mine.is_empty() {
            continue;
        }
        groups.push(format!("{} ({})", variant.label(), variant.semantic()));
        bars.push(
            metrics
                .iter()
                .map(|metric| {
                    Some(Bar::Runs(mine.iter().map(|r| metric(r) as f64).collect()))
                })
                .collect(),
        );
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
    Chart {
        title: "Scenario C, corrected: auto-commit and seen-id sets".into(),
        subtitle: Some(subtitle),
        x_desc: "consumer (the semantic it claims)".into(),
        series,
        body: Body::Bars(vec![Panel {
            heading: None,
            y_desc: "records".into(),
            unit: Unit::Count,
            groups,
            bars,
            median: false,
        }]),
        caption,
        notes: Vec::new(),
        size: (1000, 600),
    }
}
