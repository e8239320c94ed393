//! The scenario matrix: what each failure scenario did to each semantic.

use std::collections::BTreeMap;

use super::format::thousands;
use super::model::{Bar, Chart, Panel, Series, Unit};
use super::style::{BLUE, GREEN, ORANGE, PURPLE, SKY, VERMILLION};
use crate::audit::Counts;
use crate::experiments::matrix::{
    Case, Cell, DbCell, DbCounts, DbVariant, Matrix, DATABASE_SCENARIO,
};
use crate::faults::Scenario;
use crate::support::distinct;
use plotters::style::RGBColor;

/// The scenario matrix: lost records (top) and duplicated records (bottom) per
/// failure scenario and semantic. A bar is the mean over the repetitions, a dot
/// one repetition; a cell the lab refused to run is a grey bar marked so.
pub fn matrix_chart(cells: &[Cell]) -> Chart {
    matrix_chart_of(&Matrix {
        cells: cells.to_vec(),
        database: Vec::new(),
    })
}

/// The colours of the database rows' consumers, apart from the semantics'.
const DATABASE_COLORS: [RGBColor; 5] = [
    ORANGE,
    PURPLE,
    RGBColor(200, 180, 30),
    RGBColor(90, 90, 90),
    RGBColor(140, 86, 75),
];

/// [`matrix_chart`] with the matrix's database rows (scenario F) as one more
/// group, a bar per consumer: its table's rows lost and duplicated.
pub fn matrix_chart_of(matrix: &Matrix) -> Chart {
    let cells = &matrix.cells;
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| cells.iter().any(|c| c.scenario == *s))
        .collect();
    let cases = cases(cells);
    let variants = distinct(matrix.database.iter().map(|c| c.variant));
    let series = series(&cases, &variants);
    let mut groups: Vec<String> =
        scenarios.iter().map(|s| s.label().to_string()).collect();
    if !variants.is_empty() {
        groups.push(DATABASE_SCENARIO.into());
    }
    let panel = |heading: &str,
                 y_desc: &str,
                 metric: fn(&Counts) -> u64,
                 rows: fn(&DbCounts) -> u64| {
        let mut bars = bars(cells, &scenarios, &cases, metric);
        for group in &mut bars {
            group.extend(variants.iter().map(|_| None));
        }
        if !variants.is_empty() {
            let mut group: Vec<Option<Bar>> = cases.iter().map(|_| None).collect();
            group.extend(
                variants
                    .iter()
                    .map(|v| database_bar(&matrix.database, *v, rows)),
            );
            bars.push(group);
        }
        Panel {
            heading: Some(heading.into()),
            ..Panel::new(y_desc, Unit::Count, groups.clone(), bars)
        }
    };
    let panels = vec![
        panel(
            "Lost: source records never delivered",
            "lost records",
            |c| c.lost,
            |d| d.rows_lost,
        ),
        panel(
            "Duplicated: deliveries beyond the first",
            "duplicated records",
            |c| c.duplicated,
            |d| d.rows_duplicated,
        ),
    ];
    let mut chart = Chart::bars(
        "Lost and duplicated records per failure scenario",
        "failure scenario",
        series,
        panels,
        caption(matrix),
    )
    .with_subtitle(subtitle(cells))
    .with_size(
        super::style::BOOK_WIDTH,
        if variants.is_empty() { 860 } else { 960 },
    );
    chart.notes = refusals(matrix);
    if !variants.is_empty() {
        chart.notes.push(
            "F: a consumer writing each record to a database table, killed twice; \
             its bars count the table's rows by record id."
                .into(),
        );
    }
    chart
}

/// A series per case, in the semantics' colours, then one per database
/// consumer in colours of their own.
fn series(cases: &[Case], variants: &[DbVariant]) -> Vec<Series> {
    let palette = [VERMILLION, BLUE, SKY, GREEN, ORANGE, PURPLE];
    let mut series: Vec<Series> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| Series {
            name: case.label(),
            color: palette[i % palette.len()],
        })
        .collect();
    series.extend(variants.iter().enumerate().map(|(i, v)| Series {
        name: v.label().into(),
        color: DATABASE_COLORS[i % DATABASE_COLORS.len()],
    }));
    series
}

/// The bar of one database consumer: its runs, or a refused bar.
fn database_bar(
    cells: &[DbCell],
    variant: DbVariant,
    metric: fn(&DbCounts) -> u64,
) -> Option<Bar> {
    bar_of(
        cells
            .iter()
            .filter(|c| c.variant == variant)
            .map(|c| c.result.as_ref().ok().map(|counts| metric(counts) as f64)),
    )
}

/// The bar of a cell's runs (each its value, or `None` if refused): no bar
/// without runs, a refused bar if none ran.
fn bar_of(runs: impl Iterator<Item = Option<f64>>) -> Option<Bar> {
    let runs: Vec<Option<f64>> = runs.collect();
    if runs.is_empty() {
        return None;
    }
    let values: Vec<f64> = runs.into_iter().flatten().collect();
    Some(if values.is_empty() {
        Bar::Refused
    } else {
        Bar::Runs(values)
    })
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
                    bar_of(
                        cells
                            .iter()
                            .filter(|c| c.scenario == *scenario && c.case == *case)
                            .map(|c| c.result.as_ref().ok().map(|n| metric(n) as f64)),
                    )
                })
                .collect()
        })
        .collect()
}

/// Which backend ran which scenario.
fn caption(matrix: &Matrix) -> String {
    let cells = &matrix.cells;
    // From the cells that ran (a refused cell names the cluster it was
    // refused on, not one that measured).
    let mut by_backend: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let ran: Vec<&Cell> = cells.iter().filter(|c| c.result.is_ok()).collect();
    let sourced = if ran.is_empty() {
        cells.iter().collect()
    } else {
        ran
    };
    let database = matrix.database.iter().filter(|c| c.result.is_ok());
    let lettered = sourced
        .into_iter()
        .map(|c| (c.backend.clone(), c.scenario.letter().to_string()))
        .chain(database.map(|c| (c.backend.clone(), "F".to_string())));
    for (backend, letter) in lettered {
        let letters = by_backend.entry(backend).or_default();
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
fn refusals(matrix: &Matrix) -> Vec<String> {
    let cells = matrix.cells.iter().filter_map(|c| {
        c.result.as_ref().err().map(|why| {
            format!(
                "Refused: {} / {}: {}",
                c.scenario.label(),
                c.case.label(),
                why
            )
        })
    });
    let database = matrix.database.iter().filter_map(|c| {
        let why = c.result.as_ref().err()?;
        Some(format!(
            "Refused: {DATABASE_SCENARIO} / {}: {why}",
            c.variant.label()
        ))
    });
    distinct(cells.chain(database))
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
