//! Lines and points over a numeric x axis: a latency distribution, the cost of
//! exactly-once over commit intervals, a run's timeline with its fault window.
//!
//! Build the panels, then [`xy_chart`] gives a [`Chart`] like the bar charts:
//! the same title, legend and caption, the same SVG, PNG and notebook output.
//!
//! ```
//! use lab::charts::{xy_chart, Scale, Unit, XyPanel, XySeries, XyStyle};
//! let mut panel = XyPanel::new("commit interval (ms)", "records per second");
//! panel.x_scale = Scale::Log10;
//! panel.y_unit = Unit::Rate;
//! panel.series.push(XySeries::new(
//!     "transactional",
//!     XyStyle::Line,
//!     vec![(10.0, 2.1e5), (100.0, 3.0e5), (1000.0, 3.2e5)],
//! ));
//! let chart = xy_chart("Cost of exactly-once", None, "Measured on ...".into(), vec![panel]);
//! assert!(chart.to_svg_string().contains("transactional"));
//! ```

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::draw::{at, draw_heading, DrawResult, Frame, Plot};
use super::format::{format_value, trim};
use super::model::{Body, Chart, Series, Unit};
use super::style::{
    font, AXIS_DESC_SIZE, BLUE, GREEN, GRID, INK, MUTED, ORANGE, PURPLE, SKY,
    TICK_SIZE, VERMILLION,
};
use crate::support::distinct;

/// The fill of a shaded x range.
pub(super) const BAND: RGBColor = RGBColor(253, 226, 180);

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XyStyle {
    /// Points joined in order of x.
    Line,
    /// Separate dots.
    Points,
    /// A staircase: each value holds until the next point's x.
    Steps,
    /// Bars from point to point, in pairs: the first and second point are
    /// one bar, the third and fourth the next. A pair at one y is a
    /// horizontal bar (a fault from its start to its end, on its row).
    Spans,
}

/// How an axis maps values to positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Powers of ten equally spaced (values must be > 0).
    Log10,
    /// Percentiles (0 to 100) spaced by their nines: 90, 99, 99.9, 99.99
    /// equally apart, the way latency distributions are read.
    Nines,
}

/// One named series; the same name in several panels is one legend entry
/// and one colour.
#[derive(Clone, Debug)]
pub struct XySeries {
    pub name: String,
    pub style: XyStyle,
    pub points: Vec<(f64, f64)>,
    /// A colour of the palette's choosing if `None`.
    pub color: Option<RGBColor>,
    /// Words written above the points, one per point in order (none if
    /// empty); labels that would overlap are stacked.
    pub labels: Vec<String>,
}

impl XySeries {
    pub fn new(
        name: impl Into<String>,
        style: XyStyle,
        points: Vec<(f64, f64)>,
    ) -> XySeries {
        XySeries {
            name: name.into(),
            style,
            points,
            color: None,
            labels: Vec::new(),
        }
    }

    pub fn with_color(mut self, color: RGBColor) -> XySeries {
        self.color = Some(color);
        self
    }

    /// Writes `labels` above the points, one per point in order.
    pub fn with_labels(mut self, labels: Vec<String>) -> XySeries {
        self.labels = labels;
        self
    }
}

/// A shaded range of x, labelled (a fault window, an open transaction).
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// One panel: axes, series and shaded ranges.
#[derive(Clone, Debug)]
pub struct XyPanel {
    /// Printed above the panel.
    pub heading: Option<String>,
    pub x_desc: String,
    pub y_desc: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub x_unit: Unit,
    pub y_unit: Unit,
    /// A linear y axis starts at 0 unless this is false.
    pub y_from_zero: bool,
    pub series: Vec<XySeries>,
    pub bands: Vec<Band>,
    /// Named rows instead of a numeric y axis (a timeline of kinds): each
    /// row's y and its name, written above the row's line at the left of
    /// the plot (an empty name: the line only). Empty: a numeric y axis.
    pub rows: Vec<(f64, String)>,
    /// The x range in data units, to line several panels up; fitted to the
    /// data if `None`.
    pub x_range: Option<(f64, f64)>,
}

impl XyPanel {
    /// Linear axes, counts on both, y from zero, nothing drawn yet.
    pub fn new(x_desc: impl Into<String>, y_desc: impl Into<String>) -> XyPanel {
        XyPanel {
            heading: None,
            x_desc: x_desc.into(),
            y_desc: y_desc.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            x_unit: Unit::Count,
            y_unit: Unit::Count,
            y_from_zero: true,
            series: Vec::new(),
            bands: Vec::new(),
            rows: Vec::new(),
            x_range: None,
        }
    }
}

/// A chart of x-y panels stacked top to bottom. `caption` names what produced
/// the numbers (backend and Kafka version), as on every chart.
pub fn xy_chart(
    title: impl Into<String>,
    subtitle: Option<String>,
    caption: String,
    panels: Vec<XyPanel>,
) -> Chart {
    let palette = [BLUE, VERMILLION, GREEN, ORANGE, SKY, PURPLE];
    let names = distinct(panels.iter().flat_map(|p| &p.series).map(|s| &s.name));
    let series = names
        .iter()
        .enumerate()
        .map(|(i, name)| Series {
            name: (*name).clone(),
            color: panels
                .iter()
                .flat_map(|p| &p.series)
                .find(|s| &&s.name == name)
                .and_then(|s| s.color)
                .unwrap_or(palette[i % palette.len()]),
        })
        .collect();
    let height = 200 + 420 * panels.len().max(1) as u32;
    Chart {
        title: title.into(),
        subtitle,
        x_desc: String::new(),
        series,
        body: Body::Xy(panels),
        caption,
        notes: Vec::new(),
        size: (super::style::BOOK_WIDTH, height.min(1400)),
    }
}

impl Scale {
    fn to_axis(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log10 => v.max(1e-12).log10(),
            Scale::Nines => -(1.0 - v.clamp(0.0, 99.9999) / 100.0).log10(),
        }
    }
}

/// The axis range (in axis units) holding every value, with a little room.
fn axis_range(scale: Scale, values: &[f64], from_zero: bool) -> (f64, f64) {
    let t: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite() && (scale != Scale::Log10 || **v > 0.0))
        .map(|v| scale.to_axis(*v))
        .collect();
    let (mut lo, mut hi) = t
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    match scale {
        Scale::Linear => {
            if from_zero {
                lo = lo.min(0.0);
            }
            if hi - lo < 1e-9 {
                hi = lo + 1.0;
            }
            let pad = (hi - lo) * 0.06;
            (if from_zero && lo >= 0.0 { lo } else { lo - pad }, hi + pad)
        }
        Scale::Log10 => {
            let pad = ((hi - lo) * 0.04).max(0.05);
            (lo - pad, hi + pad)
        }
        Scale::Nines => (0.0, hi.max(1.0) + 0.15),
    }
}

/// Tick values (in data units) within an axis range; a count's step is whole.
fn ticks(scale: Scale, unit: Unit, (lo, hi): (f64, f64)) -> Vec<f64> {
    match scale {
        Scale::Linear => {
            let mut raw = (hi - lo) / 6.0;
            if unit == Unit::Count {
                raw = raw.max(1.0);
            }
            let magnitude = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 2.5, 5.0, 10.0]
                .into_iter()
                .map(|m| m * magnitude)
                .find(|s| *s >= raw)
                .unwrap_or(raw);
            let mut v = (lo / step).ceil() * step;
            let mut out = Vec::new();
            while v <= hi + step * 1e-9 {
                out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
                v += step;
            }
            out
        }
        Scale::Log10 => {
            let decades = (hi - lo).round() as i32;
            let steps: &[f64] = if decades > 4 {
                &[1.0]
            } else {
                &[1.0, 2.0, 5.0]
            };
            let mut out = Vec::new();
            for e in lo.floor() as i32..=hi.ceil() as i32 {
                for m in steps {
                    let v = m * 10f64.powi(e);
                    let t = v.log10();
                    if t >= lo - 1e-9 && t <= hi + 1e-9 {
                        out.push(v);
                    }
                }
            }
            out
        }
        Scale::Nines => [0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999]
            .into_iter()
            .filter(|p| Scale::Nines.to_axis(*p) <= hi + 1e-9)
            .collect(),
    }
}

fn tick_label(scale: Scale, unit: Unit, v: f64) -> String {
    match scale {
        Scale::Nines => format!("{}%", trim(v, 4)),
        Scale::Linear => format_value(v, unit, true),
        // Log ticks are 1, 2, 5 x 10^k: print them whole, whatever the unit.
        Scale::Log10 => format_value(v, unit, false),
    }
}

/// Draws one x-y panel into its area.
pub(super) fn draw_xy_panel<DB: DrawingBackend>(
    panel: &XyPanel,
    series: &[Series],
    area: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    // Named rows need no room for numbers at the left.
    let y_area = if panel.rows.is_empty() { 96 } else { 20 };
    let (left, right) = (12, 28);
    let top =
        draw_heading(area, panel.heading.as_deref(), y_area + left)?.unwrap_or(12);
    let (x, y) = panel_ranges(panel);
    let frame = Frame {
        top,
        left,
        right,
        x_labels: TICK_SIZE as i32 + AXIS_DESC_SIZE as i32 + 26,
        y_labels: y_area,
    };
    let mut chart = frame.plot(area, x.0..x.1, y.0..y.1)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc(panel.x_desc.as_str())
        .y_desc(panel.y_desc.as_str())
        .axis_desc_style(font(AXIS_DESC_SIZE))
        .axis_style(MUTED)
        .draw()?;
    draw_bands(&mut chart, area, panel, x, y)?;
    draw_grid(&mut chart, area, panel, x, y)?;
    for s in &panel.series {
        let color = series
            .iter()
            .find(|x| x.name == s.name)
            .map(|x| x.color)
            .unwrap_or(MUTED);
        draw_series(&mut chart, panel, s, color)?;
    }
    Ok(())
}

/// The x and y axis ranges (in axis units) of a panel's points and bands.
fn panel_ranges(panel: &XyPanel) -> ((f64, f64), (f64, f64)) {
    let xs: Vec<f64> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(panel.bands.iter().flat_map(|b| [b.from, b.to]))
        .collect();
    let ys: Vec<f64> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let x = match panel.x_range {
        Some((a, b)) => (panel.x_scale.to_axis(a), panel.x_scale.to_axis(b)),
        None => axis_range(panel.x_scale, &xs, false),
    };
    if let Some((lo, hi)) = row_range(&panel.rows) {
        // Room above the top row for its name and two lines of its points' labels.
        return (x, (lo - 0.6, hi + 1.3));
    }
    let (y0, mut y1) = axis_range(panel.y_scale, &ys, panel.y_from_zero);
    if !panel.bands.is_empty() {
        y1 += (y1 - y0) * 0.1; // room for the bands' labels above the data
    }
    (x, (y0, y1))
}

/// Shaded ranges first, under everything else; their labels at the top.
fn draw_bands<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    panel: &XyPanel,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> DrawResult<DB> {
    let band_label = font(TICK_SIZE).pos(Pos::new(HPos::Left, VPos::Top));
    for band in &panel.bands {
        let (a, b) = (
            panel.x_scale.to_axis(band.from),
            panel.x_scale.to_axis(band.to),
        );
        chart.draw_series(std::iter::once(Rectangle::new(
            [(a.min(b), y0), (a.max(b), y1)],
            BAND.filled(),
        )))?;
        let (px, py) = at(chart, area, (a.min(b), y1));
        // A label that would run off the plot's right edge ends at it instead.
        let (right_edge, _) = at(chart, area, (x1, y1));
        let width = area
            .estimate_text_size(&band.label, &band_label)
            .map_or(0, |(w, _)| w as i32);
        let (left_edge, _) = at(chart, area, (x0, y1));
        let x = (px + 4).min(right_edge - width - 4).max(left_edge + 4);
        area.draw_text(&band.label, &band_label.color(&MUTED), (x, py + 4))?;
    }
    Ok(())
}

/// Grid lines and tick labels, our own so that log and percentile axes get
/// round numbers.
fn draw_grid<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    panel: &XyPanel,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> DrawResult<DB> {
    if panel.rows.is_empty() {
        grid_lines(
            chart,
            area,
            axis_ticks(panel.y_scale, panel.y_unit, (y0, y1)),
            |t| [(x0, t), (x1, t)],
            &font(TICK_SIZE).pos(Pos::new(HPos::Right, VPos::Center)),
            (-8, 0),
        )?;
    } else {
        draw_rows(chart, area, &panel.rows, (x0, x1))?;
    }
    grid_lines(
        chart,
        area,
        axis_ticks(panel.x_scale, panel.x_unit, (x0, x1)),
        |t| [(t, y0), (t, y1)],
        &font(TICK_SIZE).pos(Pos::new(HPos::Center, VPos::Top)),
        (0, 6),
    )
}

/// The lowest and highest row, if there are rows.
fn row_range(rows: &[(f64, String)]) -> Option<(f64, f64)> {
    let ys = rows.iter().map(|r| r.0);
    let lo = ys.clone().fold(f64::INFINITY, f64::min);
    let hi = ys.fold(f64::NEG_INFINITY, f64::max);
    lo.is_finite().then_some((lo, hi))
}

/// Height (pixels) of a [`XyStyle::Spans`] bar, and the size of the names
/// and labels written on a plot.
const SPAN_HEIGHT: i32 = 12;
const LABEL_SIZE: u32 = 13;

/// Each row's line, and its name above the line at the plot's left.
fn draw_rows<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    rows: &[(f64, String)],
    (x0, x1): (f64, f64),
) -> DrawResult<DB> {
    let style = font(LABEL_SIZE)
        .color(&MUTED)
        .pos(Pos::new(HPos::Left, VPos::Bottom));
    for (y, name) in rows {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x0, *y), (x1, *y)],
            GRID.stroke_width(1),
        )))?;
        if !name.is_empty() {
            let (px, py) = at(chart, area, (x0, *y));
            area.draw_text(name, &style, (px + 4, py - SPAN_HEIGHT / 2 - 2))?;
        }
    }
    Ok(())
}

/// An axis's ticks: where each lies (in axis units) and its label.
fn axis_ticks(scale: Scale, unit: Unit, range: (f64, f64)) -> Vec<(f64, String)> {
    ticks(scale, unit, range)
        .into_iter()
        .map(|v| (scale.to_axis(v), tick_label(scale, unit, v)))
        .collect()
}

/// A grid line per tick, from `line(tick)`'s first point to its second, and
/// the tick's label at the first point, moved by `offset` pixels.
fn grid_lines<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    ticks: Vec<(f64, String)>,
    line: impl Fn(f64) -> [(f64, f64); 2],
    style: &TextStyle,
    offset: (i32, i32),
) -> DrawResult<DB> {
    for (t, label) in ticks {
        let [from, to] = line(t);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![from, to],
            GRID.stroke_width(1),
        )))?;
        let (px, py) = at(chart, area, from);
        area.draw_text(&label, style, (px + offset.0, py + offset.1))?;
    }
    Ok(())
}

/// One series in its colour, as a line, a staircase or dots.
fn draw_series<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    panel: &XyPanel,
    s: &XySeries,
    color: RGBColor,
) -> DrawResult<DB> {
    let mut points: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter(|(x, y)| {
            x.is_finite()
                && y.is_finite()
                && (panel.x_scale != Scale::Log10 || *x > 0.0)
                && (panel.y_scale != Scale::Log10 || *y > 0.0)
        })
        .map(|(x, y)| (panel.x_scale.to_axis(*x), panel.y_scale.to_axis(*y)))
        .collect();
    // Labels go with the points in their given order (all kept, or none).
    if !s.labels.is_empty() && points.len() == s.points.len() {
        draw_labels(chart, &points, &s.labels, &panel.rows)?;
    }
    match s.style {
        XyStyle::Line => {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart.draw_series(LineSeries::new(points, color.stroke_width(3)))?;
        }
        XyStyle::Steps => {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut stairs = Vec::with_capacity(points.len() * 2);
            for (i, p) in points.iter().enumerate() {
                if i > 0 {
                    stairs.push((p.0, points[i - 1].1));
                }
                stairs.push(*p);
            }
            chart.draw_series(LineSeries::new(stairs, color.stroke_width(2)))?;
        }
        XyStyle::Points => {
            chart.draw_series(
                points.iter().map(|p| Circle::new(*p, 4, color.filled())),
            )?;
        }
        XyStyle::Spans => draw_spans(chart, &points, color)?,
    }
    Ok(())
}

/// The bars of a [`XyStyle::Spans`] series, [`SPAN_HEIGHT`] pixels thick
/// and at least 3 pixels long, however short their span.
fn draw_spans<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    points: &[(f64, f64)],
    color: RGBColor,
) -> DrawResult<DB> {
    let half = SPAN_HEIGHT / 2;
    let bars: Vec<_> = points
        .chunks_exact(2)
        .map(|pair| {
            let (a, b) = (chart.backend_coord(&pair[0]), chart.backend_coord(&pair[1]));
            // Pixel offsets from the first point: plotters' y grows downwards.
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let (x0, x1) = (dx.min(0), dx.max(0).max(dx.min(0) + 3));
            let corners = if dy == 0 {
                [(x0, -half), (x1, half)]
            } else {
                [(-half, dy.min(0)), (half, dy.max(0))]
            };
            EmptyElement::at(pair[0]) + Rectangle::new(corners, color.filled())
        })
        .collect();
    chart.draw_series(bars)?;
    Ok(())
}

/// Each point's label above it, in order of x; a label that would overlap
/// the one before it, or its row's name, goes a line higher (two lines at
/// most).
fn draw_labels<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    points: &[(f64, f64)],
    labels: &[String],
    rows: &[(f64, String)],
) -> DrawResult<DB> {
    let style = font(LABEL_SIZE)
        .color(&INK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let width = |text: &str| {
        chart
            .plotting_area()
            .estimate_text_size(text, &style)
            .map_or(0, |(w, _)| w as i32)
    };
    // Where the name of the row a point sits on ends (pixels), if any.
    let left = chart.plotting_area().get_pixel_range().0.start;
    let names: Vec<(f64, i32)> = rows
        .iter()
        .filter(|(_, name)| !name.is_empty())
        .map(|(y, name)| (*y, left + 4 + width(name)))
        .collect();
    let mut placed: Vec<(f64, f64, &String, i32)> = points
        .iter()
        .zip(labels)
        .map(|(p, l)| (p.0, p.1, l, width(l)))
        .collect();
    placed.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The right edge (pixels) of the last label on each line.
    let mut right = [i32::MIN; 2];
    let line = LABEL_SIZE as i32 + 2;
    for (x, y, label, label_width) in placed {
        let (px, _) = chart.backend_coord(&(x, y));
        let half = label_width / 2;
        let name = names.iter().find(|n| n.0 == y).map_or(i32::MIN, |n| n.1);
        let level = usize::from(px - half <= right[0].max(name) + 4);
        right[level] = px + half;
        let dy = -7 - line * level as i32;
        chart.draw_series(std::iter::once(
            EmptyElement::at((x, y)) + Text::new(label.clone(), (0, dy), style.clone()),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_round_and_inside_the_range() {
        let range = axis_range(Scale::Log10, &[10.0, 3000.0], false);
        assert!(
            range.0 < 1.0 && range.1 > 3000f64.log10() && range.1 < 4.0,
            "{range:?}"
        );
        let t = ticks(Scale::Log10, Unit::Count, range);
        assert_eq!(t, [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]);
    }

    #[test]
    fn linear_ticks_step_by_round_numbers() {
        let t = ticks(Scale::Linear, Unit::Count, (0.0, 1000.0));
        assert_eq!(t, [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        let t = ticks(Scale::Linear, Unit::Millis, (0.0, 2.6));
        assert_eq!(t.first(), Some(&0.0));
        assert!(
            t.windows(2).all(|w| (w[1] - w[0] - 0.5).abs() < 1e-9),
            "{t:?}"
        );
        // Times delivered: 0, 1, 2, never 0.5.
        assert_eq!(
            ticks(Scale::Linear, Unit::Count, (0.0, 2.2)),
            [0.0, 1.0, 2.0]
        );
    }

    #[test]
    fn percentiles_are_spaced_by_their_nines() {
        let one = Scale::Nines.to_axis(90.0);
        let two = Scale::Nines.to_axis(99.0);
        let three = Scale::Nines.to_axis(99.9);
        assert!((one - 1.0).abs() < 1e-9 && (two - 2.0).abs() < 1e-9);
        assert!((three - 3.0).abs() < 1e-6);
        let range = axis_range(Scale::Nines, &[50.0, 99.9], false);
        let t = ticks(Scale::Nines, Unit::Millis, range);
        assert_eq!(t, [0.0, 50.0, 90.0, 99.0, 99.9]);
        assert_eq!(tick_label(Scale::Nines, Unit::Millis, 99.9), "99.9%");
    }

    #[test]
    fn a_named_series_keeps_one_colour_across_panels() {
        let mut a = XyPanel::new("x", "y");
        a.series.push(
            XySeries::new("lost", XyStyle::Points, vec![(1.0, 0.0)])
                .with_color(VERMILLION),
        );
        let mut b = XyPanel::new("x", "y");
        b.series
            .push(XySeries::new("lost", XyStyle::Points, vec![(2.0, 0.0)]));
        b.series.push(XySeries::new(
            "other",
            XyStyle::Line,
            vec![(2.0, 1.0), (3.0, 2.0)],
        ));
        b.bands.push(Band {
            from: 1.5,
            to: 2.5,
            label: "fault".into(),
        });
        let chart = xy_chart("t", None, "Measured on nothing.".into(), vec![a, b]);
        assert_eq!(chart.series.len(), 2);
        assert_eq!(chart.series[0].color, VERMILLION);
        let svg = chart.to_svg_string();
        for text in ["lost", "other", "fault", "Measured on nothing."] {
            assert!(svg.contains(text), "{text}");
        }
    }
}
