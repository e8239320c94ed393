//! A chart drawn: on any plotters backend, as SVG or PNG (files or a string),
//! inline in a notebook, and the files `lab charts` writes.

use std::io;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::draw_chart;
use super::font::{register_fonts, CrispText};
use super::matrix::matrix_chart_of;
use super::model::Chart;
use super::outcomes::outcomes_chart;
use crate::error::{Doing, Error, Result};
use crate::experiments::matrix::Matrix;
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

    /// The chart as PNG bytes, drawn in memory with the shipped font.
    pub fn to_png_bytes(&self) -> Vec<u8> {
        use image::ImageEncoder;
        let (width, height) = self.size;
        let mut rgb = vec![0u8; width as usize * height as usize * 3];
        {
            let root = CrispText(BitMapBackend::with_buffer(&mut rgb, self.size))
                .into_drawing_area();
            self.draw(&root)
                .and_then(|()| root.present())
                .expect("drawing into memory does not fail");
        }
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&rgb, width, height, image::ColorType::Rgb8)
            .expect("encoding a PNG into memory does not fail");
        png
    }

    /// What a notebook cell shows: the SVG (sharp, its text selectable) and a
    /// PNG beside it in the same display bundle. JupyterLab shows a notebook
    /// reopened untrusted without its HTML, so there the PNG is what renders.
    pub fn display_bundle(&self) -> String {
        format!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT\n\
             EVCXR_BEGIN_CONTENT image/png\n{}\nEVCXR_END_CONTENT",
            self.to_svg_string(),
            base64(&self.to_png_bytes())
        )
    }

    /// Shows the chart inline when a notebook cell ends with it (evcxr looks for
    /// this method by name).
    pub fn evcxr_display(&self) {
        println!("{}", self.display_bundle());
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
        charts.push(("matrix", matrix_chart_of(&read::<Matrix>(path)?)));
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

/// Standard base64 with padding, as Jupyter wants a PNG in a display bundle.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
