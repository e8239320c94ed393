//! What a chart is made of, before it is drawn: its series, its panels of
//! bars or of x-y lines, the words around them.

use plotters::style::RGBColor;

use super::xy;

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
pub(super) enum Bar {
    Runs(Vec<f64>),
    Refused,
}

impl Bar {
    /// A bar per metric, of the value each of `runs` gives it.
    pub(super) fn per_metric<T>(
        runs: &[&T],
        metrics: &[fn(&T) -> f64],
    ) -> Vec<Option<Bar>> {
        metrics
            .iter()
            .map(|metric| Some(Bar::Runs(runs.iter().map(|r| metric(r)).collect())))
            .collect()
    }
}

/// A series: one colour, one legend entry.
#[derive(Clone, Debug)]
pub(super) struct Series {
    pub(super) name: String,
    pub(super) color: RGBColor,
}

impl Series {
    /// The series of `(name, colour)` pairs, in legend order.
    pub(super) fn list(pairs: &[(&str, RGBColor)]) -> Vec<Series> {
        pairs
            .iter()
            .map(|(name, color)| Series {
                name: (*name).into(),
                color: *color,
            })
            .collect()
    }
}

/// One panel of grouped bars: a group per category along the x axis, in each
/// group a bar per series that has a value there.
#[derive(Clone, Debug)]
pub(super) struct Panel {
    /// Printed above the panel (when a chart has several).
    pub(super) heading: Option<String>,
    pub(super) y_desc: String,
    pub(super) unit: Unit,
    pub(super) groups: Vec<String>,
    /// `bars[group][series]`; `None`: no such bar in this group.
    pub(super) bars: Vec<Vec<Option<Bar>>>,
    /// A bar of several runs stands for their median (a benchmark's figure)
    /// instead of their mean (a count).
    pub(super) median: bool,
}

impl Panel {
    /// A panel without a heading, its bars the mean of their runs.
    pub(super) fn new(
        y_desc: &str,
        unit: Unit,
        groups: Vec<String>,
        bars: Vec<Vec<Option<Bar>>>,
    ) -> Panel {
        Panel {
            heading: None,
            y_desc: y_desc.into(),
            unit,
            groups,
            bars,
            median: false,
        }
    }
}

/// What a chart draws under its legend.
#[derive(Clone, Debug)]
pub(super) enum Body {
    /// Panels of grouped bars.
    Bars(Vec<Panel>),
    /// Panels of lines and points over a numeric x axis ([`xy`]).
    Xy(Vec<xy::XyPanel>),
}

/// A chart built from recorded data, ready to draw on any plotters backend.
#[derive(Clone, Debug)]
pub struct Chart {
    pub(super) title: String,
    pub(super) subtitle: Option<String>,
    pub(super) x_desc: String,
    pub(super) series: Vec<Series>,
    pub(super) body: Body,
    /// The source of the numbers: backend and Kafka version.
    pub(super) caption: String,
    /// Further lines under the caption (e.g. why a cell was refused).
    pub(super) notes: Vec<String>,
    pub(super) size: (u32, u32),
}

impl Chart {
    /// A chart of bar panels, [`BOOK_WIDTH`](super::style::BOOK_WIDTH) x 600 pixels, without a subtitle or notes:
    /// the `with_` methods change what a chart needs otherwise.
    pub(super) fn bars(
        title: &str,
        x_desc: &str,
        series: Vec<Series>,
        panels: Vec<Panel>,
        caption: String,
    ) -> Chart {
        Chart {
            title: title.into(),
            subtitle: None,
            x_desc: x_desc.into(),
            series,
            body: Body::Bars(panels),
            caption,
            notes: Vec::new(),
            size: (super::style::BOOK_WIDTH, 600),
        }
    }

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
}
