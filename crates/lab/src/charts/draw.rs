//! Drawing. One layout for every chart: title, subtitle, legend, the panels,
//! then the caption and notes at the bottom. The panels themselves are drawn
//! by [`bars`](super::bars) and [`xy`], with the pieces they share
//! here: a panel's heading, its plot, wrapped text.

use std::ops::Range;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::bars::draw_panel;
use super::model::{Bar, Body, Chart};
use super::style::{
    font, CAPTION_SIZE, HEADING_SIZE, INK, LEGEND_SIZE, MUTED, REFUSED, SUBTITLE_SIZE,
    TITLE_SIZE,
};
use super::xy;
use crate::support::distinct;

/// What drawing on a plotters backend gives: `T`, or the backend's error.
pub(super) type DrawResult<DB, T = ()> =
    std::result::Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A panel's plot: numbers on both axes.
pub(super) type Plot<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Where a panel's plot sits in its area, in pixels: the margins, and the room
/// for each axis's labels.
pub(super) struct Frame {
    pub(super) top: i32,
    pub(super) left: i32,
    pub(super) right: i32,
    pub(super) x_labels: i32,
    pub(super) y_labels: i32,
}

impl Frame {
    /// The plot of `x` by `y` inside this frame of `area`.
    pub(super) fn plot<'a, DB: DrawingBackend>(
        &self,
        area: &'a DrawingArea<DB, Shift>,
        x: Range<f64>,
        y: Range<f64>,
    ) -> DrawResult<DB, Plot<'a, DB>> {
        ChartBuilder::on(area)
            .margin_top(self.top as u32)
            .margin_left(self.left as u32)
            .margin_right(self.right as u32)
            .x_label_area_size(self.x_labels as u32)
            .y_label_area_size(self.y_labels as u32)
            .build_cartesian_2d(x, y)
    }
}

/// Where a point of the plot lies in pixels of `area` (plotters gives the
/// pixels of the whole drawing; text and shapes drawn on the area need these).
pub(super) fn at<DB: DrawingBackend>(
    chart: &Plot<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    point: (f64, f64),
) -> (i32, i32) {
    let base = area.get_base_pixel();
    let (px, py) = chart.backend_coord(&point);
    (px - base.0, py - base.1)
}

pub(super) fn draw_chart<DB: DrawingBackend>(
    chart: &Chart,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (width, _) = root.dim_in_pixel();
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
    let foot_top = draw_foot(chart, root)?;

    let body = root
        .clone()
        .shrink((0, y), (width, (foot_top - 8 - y).max(40) as u32));
    draw_body(chart, &body)
}

/// The caption and notes, wrapped to the width, from the bottom up. Returns
/// the y of their top.
fn draw_foot<DB: DrawingBackend>(
    chart: &Chart,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult<DB, i32> {
    let (width, height) = root.dim_in_pixel();
    let side = 16;
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
    Ok(foot_top)
}

/// The panels, stacked evenly in `body`; the bars' x axis is named under the
/// last panel only.
fn draw_body<DB: DrawingBackend>(
    chart: &Chart,
    body: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
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

/// What a legend entry shows beside its name.
enum Mark {
    Swatch(RGBColor),
    Dot,
    Refused,
    Line(RGBColor),
    Point(RGBColor),
    Band,
}

/// A legend mark's width and height (pixels), and the gap between entries.
const SWATCH: i32 = 16;
const GAP: i32 = 28;

/// The legend: one row (wrapped if needed) of colour swatches and names,
/// centred, then the markers for a run and a refused cell. Returns the y below it.
fn draw_legend<DB: DrawingBackend>(
    chart: &Chart,
    root: &DrawingArea<DB, Shift>,
    top: i32,
    width: u32,
) -> DrawResult<DB, i32> {
    let items = legend_items(chart);
    let style = font(LEGEND_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
    let rows = legend_rows(root, &items, &style, width)?;
    let row_height = LEGEND_SIZE as i32 + 10;
    let mut y = top + row_height / 2;
    for row in rows {
        let total: i32 =
            row.iter().map(|(_, w)| w).sum::<i32>() + GAP * (row.len() as i32 - 1);
        let mut x = (width as i32 - total) / 2;
        for (i, item_width) in row {
            let (mark, name) = &items[i];
            draw_mark(root, mark, x, y)?;
            root.draw_text(name, &style, (x + SWATCH + 6, y))?;
            x += item_width + GAP;
        }
        y += row_height;
    }
    Ok(y - row_height / 2)
}

/// The legend's entries: a mark and a name per series, then the markers the
/// panels use beyond the series' colours.
fn legend_items(chart: &Chart) -> Vec<(Mark, String)> {
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
                    Some(xy::XyStyle::Spans) => Mark::Swatch(s.color),
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
    items
}

/// Lays the items out in rows that fit the width: per row, each item's index
/// and width.
fn legend_rows<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    items: &[(Mark, String)],
    style: &TextStyle,
    width: u32,
) -> DrawResult<DB, Vec<Vec<(usize, i32)>>> {
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut row_width = 0;
    for (i, (_, name)) in items.iter().enumerate() {
        let (w, _) = root.estimate_text_size(name, style)?;
        let item = SWATCH + 6 + w as i32;
        if row_width > 0 && row_width + GAP + item > width as i32 - 40 {
            rows.push(Vec::new());
            row_width = 0;
        }
        if row_width > 0 {
            row_width += GAP;
        }
        rows.last_mut().expect("one row at least").push((i, item));
        row_width += item;
    }
    Ok(rows)
}

/// A legend entry's mark, its left edge at `x`, centred on `y`.
fn draw_mark<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    mark: &Mark,
    x: i32,
    y: i32,
) -> DrawResult<DB> {
    let (x0, y0, x1, y1) = (x, y - SWATCH / 2, x + SWATCH, y + SWATCH / 2);
    match mark {
        Mark::Swatch(color) => {
            root.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.filled()))
        }
        Mark::Dot => root.draw(&Circle::new((x + SWATCH / 2, y), 4, INK.filled())),
        Mark::Refused => {
            root.draw(&Rectangle::new([(x0, y0), (x1, y1)], REFUSED.filled()))?;
            root.draw(&Rectangle::new([(x0, y0), (x1, y1)], MUTED.stroke_width(1)))
        }
        Mark::Line(color) => root.draw(&PathElement::new(
            vec![(x0, y), (x1, y)],
            color.stroke_width(3),
        )),
        Mark::Point(color) => {
            root.draw(&Circle::new((x + SWATCH / 2, y), 5, color.filled()))
        }
        Mark::Band => {
            root.draw(&Rectangle::new([(x0, y0), (x1, y1)], xy::BAND.filled()))
        }
    }
}

/// A panel's heading, at `x` from the left (wrapped at spaces if it is wider
/// than the area); returns how far down the plot starts (None without a
/// heading: the caller's own margin).
pub(super) fn draw_heading<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    heading: Option<&str>,
    x: i32,
) -> DrawResult<DB, Option<i32>> {
    let Some(heading) = heading else {
        return Ok(None);
    };
    let style = font(HEADING_SIZE).pos(Pos::new(HPos::Left, VPos::Top));
    let max = (area.dim_in_pixel().0 as i32 - x - 12).max(100) as u32;
    let lines = wrap(area, &style, heading, " ", max)?;
    let line = HEADING_SIZE as i32 + 6;
    for (i, text) in lines.iter().enumerate() {
        area.draw_text(text, &style, (x, 6 + i as i32 * line))?;
    }
    Ok(Some(
        HEADING_SIZE as i32 + 16 + line * (lines.len() as i32 - 1),
    ))
}

/// Splits `text` at `separator` into lines no wider than `max` pixels (a piece
/// wider than that on its own keeps its own line).
pub(super) fn wrap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    style: &TextStyle,
    text: &str,
    separator: &str,
    max: u32,
) -> DrawResult<DB, Vec<String>> {
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
