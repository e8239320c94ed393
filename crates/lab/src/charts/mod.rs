//! Charts of recorded results: what a run or the scenario matrix counted, and
//! the benchmark numbers, as charts a learner can read at a glance: grouped
//! bars (drawn in `bars`), lines and points over a numeric axis in `xy`, and
//! the charts built from them in `outcomes`, `matrix`, `plain`, `bench`,
//! `timeline`, `monitor`, `corrections`, `pipeline` and `nemesis`.
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

// The model, its drawing and its output; then the charts, one file each.
mod bars;
mod draw;
mod font;
mod format;
mod model;
mod output;
mod style;

mod bench;
mod corrections;
mod matrix;
mod monitor;
pub mod nemesis;
mod outcomes;
mod pipeline;
mod plain;
pub mod timeline;
mod xy;

pub use bench::{
    bench_charts, bench_latency_chart, bench_throughput_chart, exactly_once_cost_chart,
};
pub use corrections::corrections_chart;
pub use font::register_fonts;
pub use matrix::{matrix_chart, matrix_chart_of};
pub use model::{Chart, Unit};
pub use monitor::{monitoring_chart, open_transaction_chart};
pub use nemesis::{
    kind_color, nemesis_charts, nemesis_summary_chart, nemesis_timeline, verdict_words,
};
pub use outcomes::outcomes_chart;
pub use output::{save_all, write_charts};
pub use pipeline::{pipeline_chart, pipeline_charts};
pub use plain::{latency_chart, throughput_chart};
pub use style::{BLUE, BOOK_WIDTH, GREEN, ORANGE, PURPLE, SKY, VERMILLION};
pub use timeline::{
    history_timeline, ids_timeline, outcome_timeline, side_effects_timeline,
    timeline_chart, IdsRun, TimelineRun,
};
pub use xy::{xy_chart, Band, Scale, XyPanel, XySeries, XyStyle};
