//! The shipped font: registered with plotters (layout, SVG), and drawn glyph
//! by glyph into PNGs by [`CrispText`].

use std::sync::{Once, OnceLock};

use ab_glyph::{point, Font, FontRef, GlyphId, PxScaleFont, ScaleFont};
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::FontStyle;
use plotters_backend::{
    BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind,
};

/// The font family every chart asks for; [`register_fonts`] maps it to the
/// shipped font.
pub(super) const FAMILY: &str = "sans-serif";
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

/// A pixel backend (the PNG one) whose text is laid out glyph by glyph with
/// each glyph's side bearing and kerning, at sub-pixel positions. Plotters' own
/// ab_glyph drawing drops the bearings: "consu mer", "at-l east". Everything but
/// text goes straight to the wrapped backend.
pub(super) struct CrispText<B>(pub(super) B);

fn shipped_font() -> &'static FontRef<'static> {
    static PARSED: OnceLock<FontRef<'static>> = OnceLock::new();
    PARSED.get_or_init(|| {
        FontRef::try_from_slice(FONT)
            .expect("the shipped font assets/DejaVuSans.ttf parses")
    })
}

type Scaled = PxScaleFont<&'static FontRef<'static>>;

/// Each glyph of `text` with its x from the start (kerned), and the width of
/// the whole.
fn lay_out(font: &Scaled, text: &str) -> (Vec<(GlyphId, f32)>, f32) {
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
    (placed, pen)
}

/// The baseline: below the top by the ascent; centred on capital letters;
/// above the bottom by the descent.
fn baseline(font: &Scaled, v_pos: VPos) -> f32 {
    let cap_height = font
        .outline_glyph(font.scaled_glyph('H'))
        .map(|g| -g.px_bounds().min.y)
        .unwrap_or(font.ascent() * 0.7);
    match v_pos {
        VPos::Top => font.ascent(),
        VPos::Center => cap_height / 2.0,
        VPos::Bottom => font.descent(),
    }
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
        let (placed, pen) = lay_out(&font, text);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -pen / 2.0,
            HPos::Right => -pen,
        };
        let baseline = baseline(&font, style.anchor().v_pos);
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
