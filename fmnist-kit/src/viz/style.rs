//! What every figure shares: the font, one colour per class, and plotters' errors as the kit's.

use std::sync::Once;

use plotters::style::FontStyle;

use crate::data::NUM_CLASSES;
use crate::error::Error;

pub(crate) const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the bundled DejaVu Sans with plotters (once per loaded copy of the kit).
pub(crate) fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font bundled with the crate; a failure would only
        // mean text is not drawn, which the draw calls then report as an error.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, FONT_BYTES);
    });
}

/// Matplotlib's `tab10` colours, one per class.
pub const CLASS_COLORS: [(u8, u8, u8); NUM_CLASSES] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

pub(crate) fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Plot(e.to_string())
}
