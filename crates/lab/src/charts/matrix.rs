//! The scenario matrix: what each failure scenario did to each semantic.

use std::collections::BTreeMap;

use super::format::thousands;
use super::model::{Bar, Chart, Panel, Series, Unit};
use super::style::{BLUE, GREEN, ORANGE, PURPLE, SKY, VERMILLION};
use crate::audit::Counts;
use crate::experiments::matrix::{Case, Cell};
use crate::faults::Scenario;
use crate::support::distinct;

/// The scenario matrix: lost records (top) and duplicated records (bottom) per
/// failure scenario and semantic. A bar is the mean over the repetitions, a dot
/// one repetition; a cell the lab refused to run is a grey bar marked so.
pub fn matrix_chart(cells: &[Cell]) -> Chart {
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| cells.iter().any(|c| c.scenario == *s))
        .collect();
    let cases = cases(cells);
    let palette = [VERMILLION, BLUE, SKY, GREEN, ORANGE, PURPLE];
    let series: Vec<Series> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| Series {
            name: case.label(),
            color: palette[i % palette.len()],
        })
        .collect();
    let panel = |heading: &str, y_desc: &str, metric: fn(&Counts) -> u64| Panel {
        heading: Some(heading.into()),
        ..Panel::new(
            y_desc,
            Unit::Count,
            scenarios.iter().map(|s| s.label().to_string()).collect(),
            bars(cells, &scenarios, &cases, metric),
        )
    };
    let panels = vec![
        panel(
            "Lost: source records never delivered",
            "lost records",
            |c| c.lost,
        ),
        panel(
            "Duplicated: deliveries beyond the first",
            "duplicated records",
            |c| c.duplicated,
        ),
    ];
    let mut chart = Chart::bars(
        "Lost and duplicated records per failure scenario",
        "failure scenario",
        series,
        panels,
        caption(cells),
    )
    .with_subtitle(subtitle(cells))
    .with_size(super::style::BOOK_WIDTH, 860);
    chart.notes = refusals(cells);
    chart
}

/// The cases in the matrix, in the lab's order, then any it does not know.
fn cases(cells: &[Cell]) -> Vec<Case> {
    let mut cases: Vec<Case> = Case::all()
        .into_iter()
        .filter(|k| cells.iter().any(|c| c.case == *k))
        .collect();
    for c in cells {
        if !cases.contains(&c.case) {
            cases.push(c.case.clone());
        }
    }
    cases
}

/// `bars[scenario][case]` of one metric: the runs of the cell, a refused
/// cell's grey bar, or no bar where the matrix has no such cell.
fn bars(
    cells: &[Cell],
    scenarios: &[Scenario],
    cases: &[Case],
    metric: fn(&Counts) -> u64,
) -> Vec<Vec<Option<Bar>>> {
    scenarios
        .iter()
        .map(|scenario| {
            cases
                .iter()
                .map(|case| {
                    let runs: Vec<&Cell> = cells
                        .iter()
                        .filter(|c| c.scenario == *scenario && c.case == *case)
                        .collect();
                    if runs.is_empty() {
                        return None;
                    }
                    let values: Vec<f64> = runs
                        .iter()
                        .filter_map(|c| c.result.as_ref().ok())
                        .map(|counts| metric(counts) as f64)
                        .collect();
                    Some(if values.is_empty() {
                        Bar::Refused
                    } else {
                        Bar::Runs(values)
                    })
                })
                .collect()
        })
        .collect()
}

/// Which backend ran which scenario.
fn caption(cells: &[Cell]) -> String {
    // From the cells that ran (a refused cell names the cluster it was
    // refused on, not one that measured).
    let mut by_backend: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let ran: Vec<&Cell> = cells.iter().filter(|c| c.result.is_ok()).collect();
    let sourced = if ran.is_empty() {
        cells.iter().collect()
    } else {
        ran
    };
    for c in sourced {
        let letter = c.scenario.letter().to_string();
        let letters = by_backend.entry(c.backend.clone()).or_default();
        if !letters.contains(&letter) {
            letters.push(letter);
        }
    }
    let mut sources: Vec<(String, Vec<String>)> = by_backend.into_iter().collect();
    sources.sort_by(|a, b| a.1.cmp(&b.1));
    if sources.is_empty() {
        "Measured on: no cells.".to_string()
    } else {
        format!(
            "Measured on {}.",
            sources
                .iter()
                .map(|(backend, letters)| format!("{backend} ({})", letters.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

/// Why each refused cell was refused, a note each.
fn refusals(cells: &[Cell]) -> Vec<String> {
    distinct(cells.iter().filter_map(|c| {
        c.result.as_ref().err().map(|why| {
            format!(
                "Refused: {} / {}: {}",
                c.scenario.label(),
                c.case.label(),
                why
            )
        })
    }))
}

/// The runs per cell and the records each sent.
fn subtitle(cells: &[Cell]) -> String {
    let repetitions = distinct(cells.iter().map(|c| c.repetition)).len();
    let records = distinct(
        cells
            .iter()
            .filter_map(|c| c.result.as_ref().ok())
            .map(|counts| thousands(counts.source as f64)),
    );
    format!(
        "{} run{} per cell{}; bar: mean, dot: one run",
        repetitions,
        if repetitions == 1 { "" } else { "s" },
        match records.as_slice() {
            [one] => format!(" of {one} records"),
            _ => String::new(),
        }
    )
}
