//! Charts of recorded librdkafka statistics ([`crate::stats`]): the counters
//! each semantic should be watched for, per scenario, and a read_committed
//! reader's offsets over time while a transaction is open.

use super::model::{Bar, Chart, Panel, Series, Unit};
use super::style::{BLUE, GREEN, ORANGE, PURPLE, SKY, VERMILLION};
use super::xy::{xy_chart, Band, XyPanel, XySeries, XyStyle};
use crate::experiments::monitored::{
    MonitoredRun, MonitoredScenario, MonitoringRecord, OpenTransactionLag,
};
use crate::stats::PartitionCounters;
use crate::support::distinct;

/// Per run (scenario x semantic): the records the audit found duplicated and
/// lost beside the records librdkafka sent again (top), and the events its
/// statistics and the lab counted (bottom).
pub fn monitoring_chart(record: &MonitoringRecord) -> Chart {
    let runs = &record.runs;
    let groups: Vec<String> = runs.iter().map(group_label).collect();
    type Metric = fn(&MonitoredRun) -> f64;
    let panel = |heading: &str, y_desc: &str, metrics: &[Metric]| Panel {
        heading: Some(heading.into()),
        ..Panel::new(
            y_desc,
            Unit::Count,
            groups.clone(),
            runs.iter()
                .map(|r| Bar::per_metric(&[r], metrics))
                .collect(),
        )
    };
    let records: [Metric; 3] = [
        |r| r.producers.records_resent as f64,
        |r| r.duplicated as f64,
        |r| r.lost as f64,
    ];
    let events: [Metric; 3] = [
        |r| r.producers.request_timeouts as f64,
        |r| r.producers.producer_id_assignments as f64,
        |r| r.transactions_aborted as f64,
    ];
    let names = [
        ("records sent again (txmsgs beyond msgs)", ORANGE),
        ("duplicated (audit)", BLUE),
        ("lost (audit)", VERMILLION),
        ("request timeouts (req_timeouts)", SKY),
        ("producer id assignments (epoch_cnt)", GREEN),
        ("transactions aborted (lab events)", PURPLE),
    ];
    // Each panel draws its own three series; the legend lists all six, so the
    // bottom panel's bars are shifted to the last three colours.
    let mut bottom = panel(
        "Events: what librdkafka and the lab counted",
        "count",
        &events,
    );
    for group in &mut bottom.bars {
        let mut shifted = vec![None, None, None];
        shifted.append(group);
        *group = shifted;
    }
    let mut top = panel(
        "Records: sent again by the producer, and what the audit found",
        "records",
        &records,
    );
    for group in &mut top.bars {
        group.extend([None, None, None]);
    }
    Chart::bars(
        "What librdkafka statistics showed, per scenario and semantic",
        "scenario, semantic",
        Series::list(&names),
        vec![top, bottom],
        caption(
            runs.iter().map(|r| r.backend_description.as_str()),
            runs.iter().map(|r| r.librdkafka_version.as_str()),
            " (scenarios A and E2 through the chaos proxy)",
        ),
    )
    .with_subtitle(format!(
        "{} records per run; statistics every {} ms",
        distinct(runs.iter().map(|r| r.records.to_string())).join(", "),
        distinct(runs.iter().map(|r| r.recording.interval_ms.to_string())).join(", ")
    ))
    .with_size(super::style::BOOK_WIDTH, 900)
}

fn group_label(run: &MonitoredRun) -> String {
    let semantic = match run.semantic {
        crate::Semantic::AtMostOnce => "AMO",
        crate::Semantic::AtLeastOnce => "ALO",
        crate::Semantic::ExactlyOnce => "EOS",
    };
    let short = match run.scenario {
        MonitoredScenario::HappyPath => "happy path",
        MonitoredScenario::Fault(s) => s.letter(),
    };
    format!("{short}, {semantic}")
}

/// The series names of [`open_transaction_chart`], for tests and captions.
pub const HIGH_WATERMARK: &str = "high watermark (hi_offset)";
pub const LAST_STABLE_OFFSET: &str = "last stable offset (ls_offset)";
pub const READER_COMMITTED: &str = "committed offset of the reader";
pub const BEHIND_HIGH_WATERMARK: &str = "reader behind the high watermark";
pub const CONSUMER_LAG: &str = "librdkafka consumer_lag (against the LSO)";

/// A read_committed reader's view of one partition during E4, from its
/// statistics: the high watermark runs ahead of the last stable offset while
/// the transaction is open (shaded), the reader waits at the LSO, and all
/// three meet once the transaction commits. Below: the reader's lag measured
/// against the high watermark, and librdkafka's own `consumer_lag`.
pub fn open_transaction_chart(run: &OpenTransactionLag) -> Chart {
    let series = run
        .reader()
        .map(|r| r.partition_series(0))
        .unwrap_or_default();
    let line = |name: &str, value: fn(&PartitionCounters) -> Option<i64>| {
        XySeries::new(
            name,
            XyStyle::Steps,
            series
                .iter()
                .filter_map(|(t, p)| value(p).map(|v| (*t, v as f64)))
                .collect(),
        )
    };
    let bands: Vec<Band> = run
        .open_window()
        .map(|(from, to)| Band {
            from,
            to,
            label: "transaction open".into(),
        })
        .into_iter()
        .collect();

    let mut offsets = XyPanel::new("seconds since the reader started", "offset");
    offsets.heading = Some("The partition as the reader's statistics saw it".into());
    offsets.series = vec![
        line(HIGH_WATERMARK, |p| known(p.hi_offset)),
        line(LAST_STABLE_OFFSET, |p| known(p.ls_offset)),
        // Dots: where they sit on the LSO's line is the point.
        XySeries {
            style: XyStyle::Points,
            ..line(READER_COMMITTED, |p| known(p.committed_offset))
        },
    ];
    offsets.bands = bands.clone();
    let mut lag = XyPanel::new("seconds since the reader started", "records");
    lag.heading = Some("The reader's lag, two ways".into());
    lag.series = vec![
        line(
            BEHIND_HIGH_WATERMARK,
            PartitionCounters::behind_high_watermark,
        ),
        line(CONSUMER_LAG, |p| {
            (p.consumer_lag >= 0).then_some(p.consumer_lag)
        }),
    ];
    lag.bands = bands;
    xy_chart(
        "A read_committed reader behind an open transaction",
        Some(format!(
            "one partition: {} records, then {} in a transaction held open, {} more outside it",
            run.before, run.in_transaction, run.after
        )),
        caption(
            [run.backend_description.as_str()],
            [run.librdkafka_version.as_str()],
            "",
        ),
        vec![offsets, lag],
    )
}

/// librdkafka writes -1001 for an offset it does not know yet.
fn known(v: i64) -> Option<i64> {
    (v >= 0).then_some(v)
}

fn caption<'a>(
    backends: impl IntoIterator<Item = &'a str>,
    librdkafka: impl IntoIterator<Item = &'a str>,
    note: &str,
) -> String {
    // "..., through the chaos proxy" is the same broker: name it once.
    let backends = distinct(
        backends
            .into_iter()
            .map(|b| b.trim_end_matches(", through the chaos proxy")),
    );
    format!(
        "Measured on {}{note}, librdkafka {}.",
        backends.join("; "),
        distinct(librdkafka).join(", ")
    )
}
