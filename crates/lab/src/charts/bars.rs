//! Drawing one panel of grouped bars: the value axis, each bar with its runs
//! and its value (or a refused cell's pale column), the group names under it.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use super::draw::{at, draw_heading, wrap, DrawResult, Frame, Plot};
use super::format::{format_value, median};
use super::model::{Bar, Panel, Series};
use super::style::{
    font, AXIS_DESC_SIZE, GRID, GROUP_SIZE, INK, MUTED, REFUSED, TICK_SIZE, VALUE_SIZE,
};

/// The height of a line of group names.
const GROUP_LINE: i32 = GROUP_SIZE as i32 + 4;

fn group_style() -> TextStyle<'static> {
    font(GROUP_SIZE).pos(Pos::new(HPos::Center, VPos::Top))
}

/// One panel of grouped bars, its value labels, and the group names under it.
pub(super) fn draw_panel<DB: DrawingBackend>(
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
    let mut labels = Vec::new();
    for g in &panel.groups {
        labels.push(wrap(
            area,
            &group_style(),
            g,
            " ",
            (group_px - 10).max(40) as u32,
        )?);
    }
    let lines = labels.iter().map(Vec::len).max().unwrap_or(1) as i32;
    let x_area = 8
        + lines * GROUP_LINE
        + if x_desc.is_some() {
            AXIS_DESC_SIZE as i32 + 12
        } else {
            4
        };

    let top =
        draw_heading(area, panel.heading.as_deref(), y_area + left)?.unwrap_or(10);
    // Value labels wider than their bar stand upright, and the axis grows to
    // leave them room above the highest bar.
    let bar_px = group_px as f64 * bar_width(panel) * 0.88;
    let label_px = widest_value_label(area, panel)?;
    let upright = label_px as f64 > bar_px - 2.0;
    let plot_px = area.dim_in_pixel().1 as i32 - top - x_area;
    let room = if upright { label_px + 14 } else { 0 };
    let y_top = y_top(panel, room, plot_px);
    let frame = Frame {
        top,
        left,
        right,
        x_labels: x_area,
        y_labels: y_area,
    };
    let mut chart = frame.plot(area, 0f64..n as f64, 0f64..y_top)?;
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
    draw_bars(&mut chart, area, panel, series, y_top, upright)?;
    draw_group_names(&chart, area, &labels, x_desc)
}

/// The width of a bar, in groups (a group is 1 wide).
fn bar_width(panel: &Panel) -> f64 {
    let widest = panel
        .bars
        .iter()
        .map(|g| g.iter().flatten().count())
        .max()
        .unwrap_or(1)
        .max(1);
    0.8 / widest as f64
}

/// The widest value label of the panel, in pixels.
fn widest_value_label<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> DrawResult<DB, i32> {
    let mut widest = 0;
    for bar in panel.bars.iter().flatten().flatten() {
        if let Bar::Runs(runs) = bar {
            let text = format_value(bar_value(panel, runs), panel.unit, false);
            let (w, _) = area.estimate_text_size(&text, &font(VALUE_SIZE))?;
            widest = widest.max(w as i32);
        }
    }
    Ok(widest)
}

/// A bar's height: the mean of its runs, or their median for a benchmark.
fn bar_value(panel: &Panel, runs: &[f64]) -> f64 {
    if panel.median {
        median(runs)
    } else {
        runs.iter().sum::<f64>() / runs.len().max(1) as f64
    }
}

/// The top of the value axis: the highest value, with headroom for the value
/// labels above the highest bar (`room` pixels of the plot's `plot_px`, for
/// upright labels).
fn y_top(panel: &Panel, room: i32, plot_px: i32) -> f64 {
    let values = || panel.bars.iter().flatten().flatten();
    let max = values()
        .filter_map(|b| match b {
            Bar::Runs(runs) => runs.iter().cloned().reduce(f64::max),
            Bar::Refused => None,
        })
        .fold(0.0, f64::max);
    if max > 0.0 {
        let upright = room as f64 / plot_px.max(room + 40) as f64;
        max * 1.15_f64.max(1.0 / (1.0 - upright))
    } else {
        1.0
    }
}

/// Every bar of every group, side by side within the group's slot.
fn draw_bars<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    series: &[Series],
    y_top: f64,
    upright: bool,
) -> DrawResult<DB> {
    // Every group gets the same bar width, sized for the fullest group.
    let bar_w = bar_width(panel);
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
            let color = series.get(s).map(|s| s.color).unwrap_or(MUTED);
            match bar {
                Bar::Runs(runs) => {
                    draw_runs(chart, area, panel, runs, (x0, x1), color, upright)?
                }
                Bar::Refused => draw_refused(chart, area, (x0, x1), y_top)?,
            }
        }
    }
    Ok(())
}

/// A bar from `x0` to `x1`: the mean (or median) of its runs, a dot per run
/// when there are several, and its value above it (`upright`: turned to read
/// upwards, when values are wider than bars).
fn draw_runs<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    runs: &[f64],
    (x0, x1): (f64, f64),
    color: RGBColor,
    upright: bool,
) -> DrawResult<DB> {
    let mean = bar_value(panel, runs);
    chart.draw_series(std::iter::once(Rectangle::new(
        [(x0, 0.0), (x1, mean)],
        color.filled(),
    )))?;
    // A bar of (nearly) zero still shows its colour, as a strip
    // on the axis: which semantic a "0" belongs to matters most.
    let (px0, py0) = at(chart, area, (x0, 0.0));
    let (px1, py1) = at(chart, area, (x1, mean));
    if py0 - py1 < 4 {
        area.draw(&Rectangle::new(
            [(px0, py0 - 4), (px1, py0)],
            color.filled(),
        ))?;
    }
    if runs.len() > 1 {
        let step = (x1 - x0) / (runs.len() + 1) as f64;
        chart.draw_series(runs.iter().enumerate().map(|(i, v)| {
            Circle::new((x0 + step * (i + 1) as f64, *v), 4, INK.filled())
        }))?;
    }
    // Above the bar and above its highest dot.
    let highest = runs.iter().cloned().fold(mean, f64::max);
    let (px, py) = at(chart, area, ((x0 + x1) / 2.0, highest));
    let clearance = if runs.len() > 1 { 10 } else { 6 };
    let style = if upright {
        font(VALUE_SIZE)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Left, VPos::Center))
    } else {
        font(VALUE_SIZE).pos(Pos::new(HPos::Center, VPos::Bottom))
    };
    area.draw_text(
        &format_value(mean, panel.unit, false),
        &style,
        (px, py.min(py0 - 4) - clearance),
    )
}

/// A cell the lab refused to run, from `x0` to `x1`.
fn draw_refused<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    (x0, x1): (f64, f64),
    y_top: f64,
) -> DrawResult<DB> {
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
    let (px, py) = at(chart, area, ((x0 + x1) / 2.0, y_top * 0.5));
    area.draw_text(
        "refused: not run",
        &font(VALUE_SIZE + 1)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Center)),
        (px, py),
    )
}

/// Group names under the axis, centred on their group (`labels`: each
/// group's wrapped lines); then the axis name.
fn draw_group_names<DB: DrawingBackend>(
    chart: &Plot<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    labels: &[Vec<String>],
    x_desc: Option<&str>,
) -> DrawResult<DB> {
    let (_, axis_y) = at(chart, area, (0.0, 0.0));
    for (g, lines_of) in labels.iter().enumerate() {
        let (px, _) = at(chart, area, (g as f64 + 0.5, 0.0));
        for (i, text) in lines_of.iter().enumerate() {
            area.draw_text(
                text,
                &group_style(),
                (px, axis_y + 10 + i as i32 * GROUP_LINE),
            )?;
        }
    }
    if let Some(desc) = x_desc {
        let lines = labels.iter().map(Vec::len).max().unwrap_or(1) as i32;
        let n = labels.len().max(1);
        let (x_mid, _) = at(chart, area, (n as f64 / 2.0, 0.0));
        area.draw_text(
            desc,
            &font(AXIS_DESC_SIZE)
                .color(&MUTED)
                .pos(Pos::new(HPos::Center, VPos::Top)),
            (x_mid, axis_y + 12 + lines * GROUP_LINE),
        )?;
    }
    Ok(())
}
