//! The look every chart shares: the palette and the sizes of its text.

use plotters::prelude::*;

use super::font::FAMILY;

// Colours from the Okabe-Ito palette: distinguishable with colour blindness.
pub const GREEN: RGBColor = RGBColor(0, 158, 115);
pub const VERMILLION: RGBColor = RGBColor(213, 94, 0);
pub const BLUE: RGBColor = RGBColor(0, 114, 178);
pub const SKY: RGBColor = RGBColor(86, 180, 233);
pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
pub const PURPLE: RGBColor = RGBColor(204, 121, 167);
pub(super) const INK: RGBColor = RGBColor(30, 30, 30);
pub(super) const MUTED: RGBColor = RGBColor(90, 90, 90);
pub(super) const GRID: RGBColor = RGBColor(225, 225, 225);
pub(super) const REFUSED: RGBColor = RGBColor(232, 232, 232);

pub(super) fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&INK)
}

/// The width every chart is drawn at: the book's text column (mdBook's
/// `--content-max-width`, 750 px). A wider chart is shrunk to fit the column,
/// its text with it: drawn at 1500 px, the 14 px captions showed at 7 px.
/// `cargo xtask book --check` fails on an image shrunk that much.
pub const BOOK_WIDTH: u32 = 750;

pub(super) const TITLE_SIZE: u32 = 28;
pub(super) const SUBTITLE_SIZE: u32 = 17;
pub(super) const LEGEND_SIZE: u32 = 17;
pub(super) const HEADING_SIZE: u32 = 18;
pub(super) const AXIS_DESC_SIZE: u32 = 17;
pub(super) const TICK_SIZE: u32 = 15;
pub(super) const GROUP_SIZE: u32 = 17;
pub(super) const VALUE_SIZE: u32 = 14;
pub(super) const CAPTION_SIZE: u32 = 14;
