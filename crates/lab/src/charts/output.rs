//! A chart drawn: on any plotters backend, as SVG or PNG (files or a string),
//! inline in a notebook, and the files `lab charts` writes.

use std::io;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::draw_chart;
use super::font::{register_fonts, CrispText};
use super::matrix::matrix_chart;
use super::model::Chart;
use super::outcomes::outcomes_chart;
use crate::error::{Doing, Error, Result};
use crate::experiments::matrix::Cell;
use crate::outcome::Outcome;

impl Chart {
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

/// `lab charts`: reads recorded JSON (a matrix, a list of outcomes, or both)
/// and writes `matrix.svg`/`.png` and `outcomes.svg`/`.png` into `out`.
/// Returns the files written.
pub fn write_charts(
    from_matrix: Option<&Path>,
    from_outcomes: Option<&Path>,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
        let text = std::fs::read_to_string(path)
            .doing(format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::BadData(format!("{} is not what I expected: {e}", path.display()))
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
    let cannot = |path: &Path, source: io::Error| Error::Io {
        doing: format!("cannot write {}", path.display()),
        source,
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
