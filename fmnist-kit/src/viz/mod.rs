//! Figures drawn with plotters into an RGB bitmap, shown inline in evcxr and saved as PNG.
//!
//! A [`Figure`] owns its pixels. Left as the last expression of a notebook cell it shows itself
//! (evcxr calls its `evcxr_display` method, which prints a base64 PNG). Only the last rich
//! output of each kind survives in a cell, so compose several figures with [`Figure::hstack`] /
//! [`Figure::vstack`] instead of showing them one by one.
//!
//! The rooms: [`figure`] (the owned picture, stacking, PNG, display), [`image_grid`] (tiles of
//! images with titles), [`charts`] (bar charts and class scatter plots): drawing primitives that
//! know nothing of the walkthrough; and [`walkthrough`], the figures the notebooks show
//! (class samples, training curves, augmentation rows, confusion heatmap, galleries), built on
//! them, and [`transfer`], notebook 04's figures.

use std::sync::Once;

use plotters::style::FontStyle;

use crate::data::NUM_CLASSES;
use crate::error::Error;

pub mod charts;
pub mod figure;
pub mod image_grid;
pub mod transfer;
pub mod walkthrough;

pub use crate::display::Html;
pub use charts::{BarChart, ClassScatter};
pub use figure::{message, Figure};
pub use image_grid::{image_grid, ImageGridConfig, ImageTile};
pub use transfer::{backbone_inputs, few_label_chart};
pub use walkthrough::{
    augmentation_rows, class_balance, class_mean_grid, class_samples_grid, confusion_heatmap,
    erasing_grid, prediction_gallery, training_curves,
};

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
