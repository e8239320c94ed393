//! Bar charts from plain numbers measured elsewhere: throughput, and latency
//! percentiles.

use super::model::{Bar, Chart, Panel, Series, Unit};
use super::style::{BLUE, PURPLE, SKY};

/// Records per second, one bar per label. `measured_on` names the backend and
/// Kafka version (e.g. `Outcome::backend_description`): it becomes the caption.
pub fn throughput_chart<S: AsRef<str>>(measured_on: &str, rows: &[(S, f64)]) -> Chart {
    Chart::bars(
        "Throughput",
        "configuration",
        Series::list(&[("records per second", BLUE)]),
        vec![Panel::new(
            "records per second",
            Unit::Rate,
            rows.iter()
                .map(|(label, _)| label.as_ref().to_string())
                .collect(),
            rows.iter()
                .map(|(_, rate)| vec![Some(Bar::Runs(vec![*rate]))])
                .collect(),
        )],
        format!("Measured on {measured_on}."),
    )
}

/// Latency percentiles in milliseconds, `(label, p50, p99, p99.9)` per row, a
/// group of three bars each. `measured_on` becomes the caption, as in
/// [`throughput_chart`].
pub fn latency_chart<S: AsRef<str>>(
    measured_on: &str,
    rows: &[(S, f64, f64, f64)],
) -> Chart {
    Chart::bars(
        "Latency percentiles",
        "configuration",
        Series::list(&[("p50", SKY), ("p99", BLUE), ("p99.9", PURPLE)]),
        vec![Panel::new(
            "latency (ms)",
            Unit::Millis,
            rows.iter().map(|r| r.0.as_ref().to_string()).collect(),
            rows.iter()
                .map(|(_, p50, p99, p999)| {
                    [p50, p99, p999]
                        .into_iter()
                        .map(|v| Some(Bar::Runs(vec![*v])))
                        .collect()
                })
                .collect(),
        )],
        format!("Measured on {measured_on}."),
    )
}
