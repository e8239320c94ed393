//! Charts of recorded results: what a run or the scenario matrix counted, and
//! the benchmark numbers, as charts a learner can read at a glance: grouped
//! bars here, lines and points over a numeric axis in `xy`, and the charts
//! built from them in `bench`, `timeline`, `monitor` and `corrections`.
//!
//! Every chart is a [`Chart`]: build one from recorded data, then draw it on any
//! plotters backend ([`Chart::draw`]), or use a shortcut: [`Chart::to_svg_string`],
//! [`Chart::save_svg`], [`Chart::save_png`]. A notebook cell that ends with a
//! `Chart` shows it inline ([`Chart::evcxr_display`]).
//!
//! ```no_run
//! let json = std::fs::read_to_string("book/src/generated/matrix.json")?;
//! let cells: Vec<lab::experiments::matrix::Cell> = serde_json::from_str(&json)?;
//! lab::charts::matrix_chart(&cells).save_png("matrix.png")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every chart carries a caption naming what produced its numbers (the backend
//! and Kafka version), taken from the data itself: a chart without it would be
//! a claim without a source.
//!
//! SVG keeps its text as text, so an SVG needs no font to be viewed. A PNG has
//! its letters drawn into pixels, and plotters' `ttf` feature would need the
//! system's fonts (fontconfig). So the lab ships one font file,
//! `assets/DejaVuSans.ttf` (Bitstream Vera licence, see the file beside it), and
//! registers it with plotters' `ab_glyph` renderer: PNGs look the same on every
//! machine, CI included. The same metrics lay out the SVGs.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};

use ab_glyph::{point, Font, FontRef, ScaleFont};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle, FontTransform};
use plotters_backend::{
    BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind,
};

use crate::audit::Counts;
use crate::error::{Error, Result};
use crate::experiments::matrix::{Case, Cell, Scenario};
use crate::outcome::Outcome;
use crate::semantics::Semantic;

/// The font family every chart asks for; [`register_fonts`] maps it to the
/// shipped font.
const FAMILY: &str = "sans-serif";
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the shipped font with plotters (once per process). Every drawing
/// function here calls it; call it yourself before drawing your own plotters
/// chart with text.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            panic!("the shipped font assets/DejaVuSans.ttf does not parse");
        }
    });
}

// The chart kinds beyond the bars of this file, one file each.
mod bench;
mod corrections;
mod monitor;
pub mod timeline;
mod xy;
pub use bench::{
    bench_charts, bench_latency_chart, bench_throughput_chart, exactly_once_cost_chart,
};
pub use corrections::corrections_chart;
pub use monitor::{monitoring_chart, open_transaction_chart};
pub use timeline::{outcome_timeline, timeline_chart, TimelineRun};
pub use xy::{xy_chart, Band, Scale, XyPanel, XySeries, XyStyle};

// Colours from the Okabe-Ito palette: distinguishable with colour blindness.
pub const GREEN: RGBColor = RGBColor(0, 158, 115);
pub const VERMILLION: RGBColor = RGBColor(213, 94, 0);
pub const BLUE: RGBColor = RGBColor(0, 114, 178);
pub const SKY: RGBColor = RGBColor(86, 180, 233);
pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
pub const PURPLE: RGBColor = RGBColor(204, 121, 167);
const INK: RGBColor = RGBColor(30, 30, 30);
const MUTED: RGBColor = RGBColor(90, 90, 90);
const GRID: RGBColor = RGBColor(225, 225, 225);
const REFUSED: RGBColor = RGBColor(232, 232, 232);

/// How the numbers of a chart are written on its axis and above its bars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A count: `1,390`.
    Count,
    /// A rate: `312 k`, `1.2 M`.
    Rate,
    /// Milliseconds: `0.42`, `12.5`, `180`.
    Millis,
}

/// One bar: the mean of its runs (each run also drawn as a dot when there
/// are several), or a cell the lab refused to run.
#[derive(Clone, Debug, PartialEq)]
enum Bar {
    Runs(Vec<f64>),
    Refused,
}

/// A series: one colour, one legend entry.
#[derive(Clone, Debug)]
struct Series {
    name: String,
    color: RGBColor,
}

/// One panel of grouped bars: a group per category along the x axis, in each
/// group a bar per series that has a value there.
#[derive(Clone, Debug)]
struct Panel {
    /// Printed above the panel (when a chart has several).
    heading: Option<String>,
    y_desc: String,
    unit: Unit,
    groups: Vec<String>,
    /// `bars[group][series]`; `None`: no such bar in this group.
    bars: Vec<Vec<Option<Bar>>>,
    /// A bar of several runs stands for their median (a benchmark's figure)
    /// instead of their mean (a count).
    median: bool,
}

/// What a chart draws under its legend.
#[derive(Clone, Debug)]
enum Body {
    /// Panels of grouped bars.
    Bars(Vec<Panel>),
    /// Panels of lines and points over a numeric x axis ([`xy`]).
    Xy(Vec<xy::XyPanel>),
}

/// A chart built from recorded data, ready to draw on any plotters backend.
#[derive(Clone, Debug)]
pub struct Chart {
    title: String,
    subtitle: Option<String>,
    x_desc: String,
    series: Vec<Series>,
    body: Body,
    /// The source of the numbers: backend and Kafka version.
    caption: String,
    /// Further lines under the caption (e.g. why a cell was refused).
    notes: Vec<String>,
    size: (u32, u32),
}

impl Chart {
    /// The title printed on top.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The caption naming what produced the numbers.
    pub fn caption(&self) -> &str {
        &self.caption
    }

    /// Size in pixels (SVG and PNG alike).
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Replaces the title.
    pub fn with_title(mut self, title: impl Into<String>) -> Chart {
        self.title = title.into();
        self
    }

    /// Replaces the line under the title.
    pub fn with_subtitle(mut self, subtitle: impl Into<String>) -> Chart {
        self.subtitle = Some(subtitle.into());
        self
    }

    /// Changes the size in pixels.
    pub fn with_size(mut self, width: u32, height: u32) -> Chart {
        self.size = (width, height);
        self
    }

    /// Draws the chart on any plotters drawing area (its whole area).
    pub fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        register_fonts();
        draw_chart(self, root)
    }

    /// The chart as an SVG document (text stays text: no font needed to view it).
    pub fn to_svg_string(&self) -> String {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            self.draw(&root)
                .and_then(|()| root.present())
                .expect("drawing into a string does not fail");
        }
        svg
    }

    /// Writes the chart as an SVG file.
    pub fn save_svg(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.to_svg_string())
    }

    /// Writes the chart as a PNG file, text drawn with the shipped font.
    pub fn save_png(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let root =
            CrispText(BitMapBackend::new(path.as_ref(), self.size)).into_drawing_area();
        self.draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Shows the chart inline when a notebook cell ends with it (evcxr looks for
    /// this method by name).
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.to_svg_string()
        );
    }
}

/// Delivered, lost and duplicated records per semantic, a group of bars each.
/// Several outcomes of one semantic are averaged, each run drawn as a dot.
pub fn outcomes_chart(outcomes: &[Outcome]) -> Chart {
    let series = vec![
        Series {
            name: "delivered".into(),
            color: GREEN,
        },
        Series {
            name: "lost".into(),
            color: VERMILLION,
        },
        Series {
            name: "duplicated".into(),
            color: BLUE,
        },
    ];
    let metrics: [fn(&Counts) -> u64; 3] =
        [|c| c.delivered, |c| c.lost, |c| c.duplicated];
    let mut groups = Vec::new();
    let mut bars = Vec::new();
    for semantic in Semantic::ALL {
        let runs: Vec<&Outcome> =
            outcomes.iter().filter(|o| o.semantic == semantic).collect();
        if runs.is_empty() {
            continue;
        }
        groups.push(semantic.to_string());
        bars.push(
            metrics
                .iter()
                .map(|metric| {
                    Some(Bar::Runs(
                        runs.iter().map(|o| metric(&o.counts) as f64).collect(),
                    ))
                })
                .collect(),
        );
    }
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

    let faults = distinct(outcomes.iter().map(|o| {
        o.fault
            .clone()
            .unwrap_or_else(|| "happy path, no fault".into())
    }));
    let records = distinct(outcomes.iter().map(|o| thousands(o.records as f64)));
    let per_semantic = outcomes.len() / groups.len().max(1);
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
    Chart {
        title: "What each delivery semantic delivered".into(),
        subtitle: Some(subtitle),
        x_desc: "delivery semantic".into(),
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

/// The scenario matrix: lost records (top) and duplicated records (bottom) per
/// failure scenario and semantic. A bar is the mean over the repetitions, a dot
/// one repetition; a cell the lab refused to run is a grey bar marked so.
pub fn matrix_chart(cells: &[Cell]) -> Chart {
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| cells.iter().any(|c| c.scenario == *s))
        .collect();
    let mut cases: Vec<Case> = Case::all()
        .into_iter()
        .filter(|k| cells.iter().any(|c| c.case == *k))
        .collect();
    for c in cells {
        if !cases.contains(&c.case) {
            cases.push(c.case.clone());
        }
    }
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
        median: false,
        heading: Some(heading.into()),
        y_desc: y_desc.into(),
        unit: Unit::Count,
        groups: scenarios.iter().map(|s| s.label().to_string()).collect(),
        bars: scenarios
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
            .collect(),
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

    // Which backend ran which scenario, from the cells that ran (a refused
    // cell names the cluster it was refused on, not one that measured).
    let mut by_backend: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let ran: Vec<&Cell> = cells.iter().filter(|c| c.result.is_ok()).collect();
    let sourced = if ran.is_empty() {
        cells.iter().collect()
    } else {
        ran
    };
    for c in sourced {
        let letter = scenario_letter(c.scenario);
        let letters = by_backend.entry(c.backend.clone()).or_default();
        if !letters.contains(&letter) {
            letters.push(letter);
        }
    }
    let mut sources: Vec<(String, Vec<String>)> = by_backend.into_iter().collect();
    sources.sort_by(|a, b| a.1.cmp(&b.1));
    let caption = if sources.is_empty() {
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
    };
    let notes = distinct(cells.iter().filter_map(|c| {
        c.result.as_ref().err().map(|why| {
            format!(
                "Refused: {} / {}: {}",
                c.scenario.label(),
                c.case.label(),
                why
            )
        })
    }));

    let repetitions = distinct(cells.iter().map(|c| c.repetition)).len();
    let records = distinct(
        cells
            .iter()
            .filter_map(|c| c.result.as_ref().ok())
            .map(|counts| thousands(counts.source as f64)),
    );
    let subtitle = format!(
        "{} run{} per cell{}; bar: mean, dot: one run",
        repetitions,
        if repetitions == 1 { "" } else { "s" },
        match records.as_slice() {
            [one] => format!(" of {one} records"),
            _ => String::new(),
        }
    );
    Chart {
        title: "Lost and duplicated records per failure scenario".into(),
        subtitle: Some(subtitle),
        x_desc: "failure scenario".into(),
        series,
        body: Body::Bars(panels),
        caption,
        notes,
        size: (1100, 860),
    }
}

/// Records per second, one bar per label. `measured_on` names the backend and
/// Kafka version (e.g. `Outcome::backend_description`): it becomes the caption.
pub fn throughput_chart<S: AsRef<str>>(measured_on: &str, rows: &[(S, f64)]) -> Chart {
    Chart {
        title: "Throughput".into(),
        subtitle: None,
        x_desc: "configuration".into(),
        series: vec![Series {
            name: "records per second".into(),
            color: BLUE,
        }],
        body: Body::Bars(vec![Panel {
            heading: None,
            y_desc: "records per second".into(),
            unit: Unit::Rate,
            groups: rows
                .iter()
                .map(|(label, _)| label.as_ref().to_string())
                .collect(),
            bars: rows
                .iter()
                .map(|(_, rate)| vec![Some(Bar::Runs(vec![*rate]))])
                .collect(),
            median: false,
        }]),
        caption: format!("Measured on {measured_on}."),
        notes: Vec::new(),
        size: (1000, 600),
    }
}

/// Latency percentiles in milliseconds, `(label, p50, p99, p99.9)` per row, a
/// group of three bars each. `measured_on` becomes the caption, as in
/// [`throughput_chart`].
pub fn latency_chart<S: AsRef<str>>(
    measured_on: &str,
    rows: &[(S, f64, f64, f64)],
) -> Chart {
    let series = [("p50", SKY), ("p99", BLUE), ("p99.9", PURPLE)]
        .into_iter()
        .map(|(name, color)| Series {
            name: name.into(),
            color,
        })
        .collect();
    Chart {
        title: "Latency percentiles".into(),
        subtitle: None,
        x_desc: "configuration".into(),
        series,
        body: Body::Bars(vec![Panel {
            heading: None,
            y_desc: "latency (ms)".into(),
            unit: Unit::Millis,
            groups: rows.iter().map(|r| r.0.as_ref().to_string()).collect(),
            bars: rows
                .iter()
                .map(|(_, p50, p99, p999)| {
                    [p50, p99, p999]
                        .into_iter()
                        .map(|v| Some(Bar::Runs(vec![*v])))
                        .collect()
                })
                .collect(),
            median: false,
        }]),
        caption: format!("Measured on {measured_on}."),
        notes: Vec::new(),
        size: (1000, 600),
    }
}

/// `lab charts`: reads recorded JSON (a matrix, a list of outcomes, or both)
/// and writes `matrix.svg`/`.png` and `outcomes.svg`/`.png` into `out`.
/// Returns the files written.
pub fn write_charts(
    from_matrix: Option<&Path>,
    from_outcomes: Option<&Path>,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::BadConfig(format!("cannot read {}: {e}", path.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            Error::BadConfig(format!("{} is not what I expected: {e}", path.display()))
        })
    }
    let mut charts = Vec::new();
    if let Some(path) = from_matrix {
        charts.push(("matrix", matrix_chart(&read::<Vec<Cell>>(path)?)));
    }
    if let Some(path) = from_outcomes {
        charts.push(("outcomes", outcomes_chart(&read::<Vec<Outcome>>(path)?)));
    }
    if charts.is_empty() {
        return Err(Error::BadConfig(
            "nothing to chart: give --from-matrix FILE and/or --from-outcomes FILE"
                .into(),
        ));
    }
    save_all(&charts, out)
}

/// Writes each chart as `NAME.svg` and `NAME.png` into `out` (created if
/// missing). Returns the files written.
pub fn save_all(charts: &[(&str, Chart)], out: &Path) -> Result<Vec<PathBuf>> {
    let cannot = |path: &Path, e: io::Error| {
        Error::BadConfig(format!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(out).map_err(|e| cannot(out, e))?;
    let mut written = Vec::new();
    for (name, chart) in charts {
        let svg = out.join(format!("{name}.svg"));
        chart.save_svg(&svg).map_err(|e| cannot(&svg, e))?;
        let png = out.join(format!("{name}.png"));
        chart.save_png(&png).map_err(|e| cannot(&png, e))?;
        written.extend([svg, png]);
    }
    Ok(written)
}

// ---------------------------------------------------------------------------
// Drawing. One layout for every chart: title, subtitle, legend, the panels,
// then the caption and notes at the bottom.

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&INK)
}

const TITLE_SIZE: u32 = 28;
const SUBTITLE_SIZE: u32 = 17;
const LEGEND_SIZE: u32 = 17;
const HEADING_SIZE: u32 = 18;
const AXIS_DESC_SIZE: u32 = 17;
const TICK_SIZE: u32 = 15;
const GROUP_SIZE: u32 = 17;
const VALUE_SIZE: u32 = 14;
const CAPTION_SIZE: u32 = 14;

fn draw_chart<DB: DrawingBackend>(
    chart: &Chart,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (width, height) = root.dim_in_pixel();
    let side = 16;
    let mut y = 12;

    root.draw_text(
        &chart.title,
        &font(TITLE_SIZE).pos(Pos::new(HPos::Center, VPos::Top)),
        (width as i32 / 2, y),
    )?;
    y += TITLE_SIZE as i32 + 8;
    if let Some(subtitle) = &chart.subtitle {
        root.draw_text(
            subtitle,
            &font(SUBTITLE_SIZE)
                .color(&MUTED)
                .pos(Pos::new(HPos::Center, VPos::Top)),
            (width as i32 / 2, y),
        )?;
        y += SUBTITLE_SIZE as i32 + 10;
    }
    y = draw_legend(chart, root, y, width)? + 6;

    // The caption and notes, wrapped to the width, from the bottom up.
    let caption_style = font(CAPTION_SIZE).color(&MUTED);
    let mut foot = wrap(
        root,
        &caption_style,
        &chart.caption,
        "; ",
        width - 2 * side as u32,
    )?;
    for note in &chart.notes {
        foot.extend(wrap(
            root,
            &caption_style,
            note,
            " ",
            width - 2 * side as u32,
        )?);
    }
    let line = CAPTION_SIZE as i32 + 5;
    let foot_top = height as i32 - 10 - line * foot.len() as i32;
    for (i, text) in foot.iter().enumerate() {
        root.draw_text(text, &caption_style, (side, foot_top + i as i32 * line))?;
    }

    let body = root
        .clone()
        .shrink((0, y), (width, (foot_top - 8 - y).max(40) as u32));
    match &chart.body {
        Body::Bars(panels) => {
            let areas = body.split_evenly((panels.len().max(1), 1));
            let last = panels.len().saturating_sub(1);
            for (i, (panel, area)) in panels.iter().zip(areas.iter()).enumerate() {
                let x_desc = (i == last).then_some(chart.x_desc.as_str());
                draw_panel(panel, &chart.series, area, x_desc)?;
            }
        }
        Body::Xy(panels) => {
            let areas = body.split_evenly((panels.len().max(1), 1));
            for (panel, area) in panels.iter().zip(areas.iter()) {
                xy::draw_xy_panel(panel, &chart.series, area)?;
            }
        }
    }
    Ok(())
}

/// The legend: one row (wrapped if needed) of colour swatches and names,
/// centred, then the markers for a run and a refused cell. Returns the y below it.
fn draw_legend<DB: DrawingBackend>(
    chart: &Chart,
    root: &DrawingArea<DB, Shift>,
    top: i32,
    width: u32,
) -> std::result::Result<i32, DrawingAreaErrorKind<DB::ErrorType>> {
    enum Mark {
        Swatch(RGBColor),
        Dot,
        Refused,
        Line(RGBColor),
        Point(RGBColor),
        Band,
    }
    let mut items: Vec<(Mark, String)> = Vec::new();
    match &chart.body {
        Body::Bars(panels) => {
            items.extend(
                chart
                    .series
                    .iter()
                    .map(|s| (Mark::Swatch(s.color), s.name.clone())),
            );
            let bars = || {
                panels
                    .iter()
                    .flat_map(|p| p.bars.iter().flatten().flatten())
            };
            if bars().any(|b| matches!(b, Bar::Runs(r) if r.len() > 1)) {
                items.push((Mark::Dot, "one run".into()));
            }
            if bars().any(|b| *b == Bar::Refused) {
                items.push((Mark::Refused, "refused: not run (reason below)".into()));
            }
        }
        Body::Xy(panels) => {
            for s in &chart.series {
                let style = panels
                    .iter()
                    .flat_map(|p| &p.series)
                    .find(|x| x.name == s.name)
                    .map(|x| x.style);
                let mark = match style {
                    Some(xy::XyStyle::Points) => Mark::Point(s.color),
                    _ => Mark::Line(s.color),
                };
                items.push((mark, s.name.clone()));
            }
            // Each band is labelled where it is drawn; several different
            // labels get one legend entry instead of repeating them all.
            match distinct(panels.iter().flat_map(|p| &p.bands).map(|b| &b.label))
                .as_slice()
            {
                [] => {}
                [one] => items.push((Mark::Band, (*one).clone())),
                _ => {
                    items.push((Mark::Band, "shaded: as labelled in each panel".into()))
                }
            }
        }
    }
    let style = font(LEGEND_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
    let swatch = 16;
    let gap = 28;
    // Lay the items out in rows that fit the width.
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut row_width = 0;
    for (i, (_, name)) in items.iter().enumerate() {
        let (w, _) = root.estimate_text_size(name, &style)?;
        let item = swatch + 6 + w as i32;
        if row_width > 0 && row_width + gap + item > width as i32 - 40 {
            rows.push(Vec::new());
            row_width = 0;
        }
        if row_width > 0 {
            row_width += gap;
        }
        rows.last_mut().expect("one row at least").push((i, item));
        row_width += item;
    }
    let row_height = LEGEND_SIZE as i32 + 10;
    let mut y = top + row_height / 2;
    for row in rows {
        let total: i32 =
            row.iter().map(|(_, w)| w).sum::<i32>() + gap * (row.len() as i32 - 1);
        let mut x = (width as i32 - total) / 2;
        for (i, item_width) in row {
            let (mark, name) = &items[i];
            let (x0, y0, x1, y1) = (x, y - swatch / 2, x + swatch, y + swatch / 2);
            match mark {
                Mark::Swatch(color) => {
                    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.filled()))?
                }
                Mark::Dot => {
                    root.draw(&Circle::new((x + swatch / 2, y), 4, INK.filled()))?
                }
                Mark::Refused => {
                    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], REFUSED.filled()))?;
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x1, y1)],
                        MUTED.stroke_width(1),
                    ))?;
                }
                Mark::Line(color) => root.draw(&PathElement::new(
                    vec![(x0, y), (x1, y)],
                    color.stroke_width(3),
                ))?,
                Mark::Point(color) => {
                    root.draw(&Circle::new((x + swatch / 2, y), 5, color.filled()))?
                }
                Mark::Band => {
                    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], xy::BAND.filled()))?
                }
            }
            root.draw_text(name, &style, (x + swatch + 6, y))?;
            x += item_width + gap;
        }
        y += row_height;
    }
    Ok(y - row_height / 2)
}

/// One panel of grouped bars, its value labels, and the group names under it.
fn draw_panel<DB: DrawingBackend>(
    panel: &Panel,
    series: &[Series],
    area: &DrawingArea<DB, Shift>,
    x_desc: Option<&str>,
) -> DrawResult<DB> {
    let (width, _) = area.dim_in_pixel();
    let n = panel.groups.len().max(1);
    let y_area = 90;
    let (left, right) = (12, 24);
    let group_px = (width as i32 - y_area - left - right) / n as i32;

    // Group names wrap at spaces to fit their slot.
    let group_style = font(GROUP_SIZE).pos(Pos::new(HPos::Center, VPos::Top));
    let mut labels = Vec::new();
    for g in &panel.groups {
        labels.push(wrap(
            area,
            &group_style,
            g,
            " ",
            (group_px - 10).max(40) as u32,
        )?);
    }
    let lines = labels.iter().map(Vec::len).max().unwrap_or(1) as i32;
    let line = GROUP_SIZE as i32 + 4;
    let x_area = 8
        + lines * line
        + if x_desc.is_some() {
            AXIS_DESC_SIZE as i32 + 12
        } else {
            4
        };

    let top =
        draw_heading(area, panel.heading.as_deref(), y_area + left)?.unwrap_or(10);

    let values = || panel.bars.iter().flatten().flatten();
    let max = values()
        .filter_map(|b| match b {
            Bar::Runs(runs) => runs.iter().cloned().reduce(f64::max),
            Bar::Refused => None,
        })
        .fold(0.0, f64::max);
    // Headroom for the value labels above the highest bar.
    let y_top = if max > 0.0 { max * 1.15 } else { 1.0 };

    let mut chart = ChartBuilder::on(area)
        .margin_top(top as u32)
        .margin_left(left as u32)
        .margin_right(right as u32)
        .x_label_area_size(x_area as u32)
        .y_label_area_size(y_area as u32)
        .build_cartesian_2d(0f64..n as f64, 0f64..y_top)?;
    let unit = panel.unit;
    let formatter = move |v: &f64| format_value(*v, unit, true);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .y_label_formatter(&formatter)
        .y_desc(panel.y_desc.as_str())
        .axis_desc_style(font(AXIS_DESC_SIZE))
        .label_style(font(TICK_SIZE))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(MUTED)
        .draw()?;

    // Every group gets the same bar width, sized for the fullest group.
    let widest = panel
        .bars
        .iter()
        .map(|g| g.iter().flatten().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let bar_w = 0.8 / widest as f64;
    let value_style = font(VALUE_SIZE).pos(Pos::new(HPos::Center, VPos::Bottom));
    let base = area.get_base_pixel();
    for (g, group) in panel.bars.iter().enumerate() {
        let present: Vec<(usize, &Bar)> = group
            .iter()
            .enumerate()
            .filter_map(|(s, b)| b.as_ref().map(|b| (s, b)))
            .collect();
        let start = g as f64 + 0.5 - bar_w * present.len() as f64 / 2.0;
        for (k, (s, bar)) in present.into_iter().enumerate() {
            let x0 = start + k as f64 * bar_w + bar_w * 0.06;
            let x1 = start + (k + 1) as f64 * bar_w - bar_w * 0.06;
            let xc = (x0 + x1) / 2.0;
            let color = series.get(s).map(|s| s.color).unwrap_or(MUTED);
            match bar {
                Bar::Runs(runs) => {
                    let mean = if panel.median {
                        median(runs)
                    } else {
                        runs.iter().sum::<f64>() / runs.len().max(1) as f64
                    };
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, 0.0), (x1, mean)],
                        color.filled(),
                    )))?;
                    // A bar of (nearly) zero still shows its colour, as a strip
                    // on the axis: which semantic a "0" belongs to matters most.
                    let (px0, py0) = chart.backend_coord(&(x0, 0.0));
                    let (px1, py1) = chart.backend_coord(&(x1, mean));
                    if py0 - py1 < 4 {
                        area.draw(&Rectangle::new(
                            [
                                (px0 - base.0, py0 - base.1 - 4),
                                (px1 - base.0, py0 - base.1),
                            ],
                            color.filled(),
                        ))?;
                    }
                    if runs.len() > 1 {
                        let step = (x1 - x0) / (runs.len() + 1) as f64;
                        chart.draw_series(runs.iter().enumerate().map(|(i, v)| {
                            Circle::new(
                                (x0 + step * (i + 1) as f64, *v),
                                4,
                                INK.filled(),
                            )
                        }))?;
                    }
                    // Above the bar and above its highest dot.
                    let highest = runs.iter().cloned().fold(mean, f64::max);
                    let (px, py) = chart.backend_coord(&(xc, highest));
                    let clearance = if runs.len() > 1 { 10 } else { 6 };
                    area.draw_text(
                        &format_value(mean, unit, false),
                        &value_style,
                        (px - base.0, py.min(py0 - 4) - base.1 - clearance),
                    )?;
                }
                Bar::Refused => {
                    // The whole height, pale: a column marked "no data here",
                    // not a bar to be read against the axis.
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, 0.0), (x1, y_top)],
                        REFUSED.filled(),
                    )))?;
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, 0.0), (x1, y_top)],
                        MUTED.stroke_width(1),
                    )))?;
                    let (px, py) = chart.backend_coord(&(xc, y_top * 0.5));
                    area.draw_text(
                        "refused: not run",
                        &font(VALUE_SIZE + 1)
                            .transform(FontTransform::Rotate270)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                        (px - base.0, py - base.1),
                    )?;
                }
            }
        }
    }

    // Group names under the axis, centred on their group; then the axis name.
    let (_, axis_y) = chart.backend_coord(&(0.0, 0.0));
    let axis_y = axis_y - base.1;
    for (g, lines_of) in labels.iter().enumerate() {
        let (px, _) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
        for (i, text) in lines_of.iter().enumerate() {
            area.draw_text(
                text,
                &group_style,
                (px - base.0, axis_y + 10 + i as i32 * line),
            )?;
        }
    }
    if let Some(desc) = x_desc {
        let (x_mid, _) = chart.backend_coord(&(n as f64 / 2.0, 0.0));
        area.draw_text(
            desc,
            &font(AXIS_DESC_SIZE)
                .color(&MUTED)
                .pos(Pos::new(HPos::Center, VPos::Top)),
            (x_mid - base.0, axis_y + 12 + lines * line),
        )?;
    }
    Ok(())
}

/// A panel's heading, at `x` from the left; returns how far down the plot
/// starts (None without a heading: the caller's own margin).
fn draw_heading<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    heading: Option<&str>,
    x: i32,
) -> std::result::Result<Option<i32>, DrawingAreaErrorKind<DB::ErrorType>> {
    let Some(heading) = heading else {
        return Ok(None);
    };
    area.draw_text(
        heading,
        &font(HEADING_SIZE).pos(Pos::new(HPos::Left, VPos::Top)),
        (x, 6),
    )?;
    Ok(Some(HEADING_SIZE as i32 + 16))
}

/// Splits `text` at `separator` into lines no wider than `max` pixels (a piece
/// wider than that on its own keeps its own line).
fn wrap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    style: &TextStyle,
    text: &str,
    separator: &str,
    max: u32,
) -> std::result::Result<Vec<String>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let pieces: Vec<&str> = text.split(separator).collect();
    for (i, piece) in pieces.iter().enumerate() {
        // Keep the separator's visible part (e.g. ';') at the end of its piece.
        let piece = if i + 1 < pieces.len() {
            format!("{piece}{}", separator.trim_end())
        } else {
            piece.to_string()
        };
        let candidate = if current.is_empty() {
            piece.clone()
        } else {
            format!("{current} {piece}")
        };
        if !current.is_empty() && area.estimate_text_size(&candidate, style)?.0 > max {
            lines.push(std::mem::replace(&mut current, piece));
        } else {
            current = candidate;
        }
    }
    lines.push(current);
    Ok(lines)
}

/// A pixel backend (the PNG one) whose text is laid out glyph by glyph with
/// each glyph's side bearing and kerning, at sub-pixel positions. Plotters' own
/// ab_glyph drawing drops the bearings: "consu mer", "at-l east". Everything but
/// text goes straight to the wrapped backend.
struct CrispText<B>(B);

fn shipped_font() -> &'static FontRef<'static> {
    static PARSED: OnceLock<FontRef<'static>> = OnceLock::new();
    PARSED.get_or_init(|| {
        FontRef::try_from_slice(FONT)
            .expect("the shipped font assets/DejaVuSans.ttf parses")
    })
}

impl<B: DrawingBackend> DrawingBackend for CrispText<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(
        &mut self,
    ) -> std::result::Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> std::result::Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.present()
    }
    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> std::result::Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_pixel(point, color)
    }
    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> std::result::Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> std::result::Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> std::result::Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> std::result::Result<(), DrawingErrorKind<B::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        // The same scale as plotters' layout estimate, so what was measured
        // is what gets drawn.
        let font = shipped_font().as_scaled(style.size() as f32);
        let mut pen = 0f32;
        let mut placed = Vec::new();
        let mut previous = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = previous {
                pen += font.kern(p, id);
            }
            placed.push((id, pen));
            pen += font.h_advance(id);
            previous = Some(id);
        }
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -pen / 2.0,
            HPos::Right => -pen,
        };
        // The baseline: below the top by the ascent; centred on capital letters;
        // above the bottom by the descent.
        let cap_height = font
            .outline_glyph(font.scaled_glyph('H'))
            .map(|g| -g.px_bounds().min.y)
            .unwrap_or(font.ascent() * 0.7);
        let baseline = match style.anchor().v_pos {
            VPos::Top => font.ascent(),
            VPos::Center => cap_height / 2.0,
            VPos::Bottom => font.descent(),
        };
        let transform = style.transform();
        let (w, h) = self.get_size();
        for (id, x) in placed {
            let glyph =
                id.with_scale_and_position(font.scale(), point(dx + x, baseline));
            let Some(outline) = font.outline_glyph(glyph) else {
                continue; // a space
            };
            let bounds = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|gx, gy, coverage| {
                if coverage > 0.02 {
                    let (x, y) = transform.transform(
                        bounds.min.x as i32 + gx as i32,
                        bounds.min.y as i32 + gy as i32,
                    );
                    pixels.push(((pos.0 + x, pos.1 + y), coverage.min(1.0)));
                }
            });
            for ((x, y), coverage) in pixels {
                if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                    let alpha = color.alpha * f64::from(coverage);
                    self.0.draw_pixel(
                        (x, y),
                        BackendColor {
                            alpha,
                            rgb: color.rgb,
                        },
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// A number for an axis tick (`tick`) or a value label.
fn format_value(v: f64, unit: Unit, tick: bool) -> String {
    match unit {
        // A count has no fractional ticks: their grid lines stay, unlabelled.
        Unit::Count if tick && v.fract().abs() > 1e-9 => String::new(),
        Unit::Count => {
            if tick || v.fract() == 0.0 || v >= 100.0 {
                thousands(v)
            } else {
                format!("{v:.1}")
            }
        }
        Unit::Rate => {
            if v >= 1e6 {
                format!("{} M", trim(v / 1e6, 2))
            } else if v >= 1e3 {
                format!("{} k", trim(v / 1e3, 1))
            } else {
                trim(v, 1)
            }
        }
        Unit::Millis => {
            if v >= 100.0 {
                format!("{v:.0}")
            } else if v >= 10.0 {
                trim(v, 1)
            } else {
                trim(v, 2)
            }
        }
    }
}

/// `v` with at most `decimals` decimals, trailing zeros dropped.
fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `1390.2` as `1,390`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < -0.5 {
        out.insert(0, '-');
    }
    out
}

fn scenario_letter(scenario: Scenario) -> String {
    scenario
        .label()
        .split(' ')
        .next()
        .unwrap_or("?")
        .to_string()
}

/// The lower middle value (the benchmark's own choice of median run).
fn median(runs: &[f64]) -> f64 {
    let mut sorted = runs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

/// The distinct values, in order of first appearance.
pub(crate) fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1390.0), "1,390");
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(format_value(12.0, Unit::Count, false), "12");
        assert_eq!(format_value(12.5, Unit::Count, false), "12.5");
        assert_eq!(format_value(0.5, Unit::Count, true), "");
        assert_eq!(format_value(312_400.0, Unit::Rate, false), "312.4 k");
        assert_eq!(format_value(1_000_000.0, Unit::Rate, false), "1 M");
        assert_eq!(format_value(0.425, Unit::Millis, false), "0.42");
        assert_eq!(format_value(180.2, Unit::Millis, false), "180");
    }
}
