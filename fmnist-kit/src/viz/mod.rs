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
//! (class samples, augmentation rows, confusion heatmap, galleries), built on
//! them, [`curves`], loss and accuracy per epoch, [`transfer`], notebook 04's figures, and
//! [`diagram`], how a network is built (the ResNet's blocks).

pub mod charts;
pub mod curves;
pub mod diagram;
pub mod figure;
pub mod image_grid;
pub mod lr_find;
mod style;
pub mod transfer;
pub mod walkthrough;

pub use crate::display::Html;
pub use charts::{baseline_below, BarChart, ClassScatter};
pub use curves::{compare_curves, training_curves};
pub use diagram::residual_block_diagram;
pub use figure::{message, Figure};
pub use image_grid::{image_grid, ImageGridConfig, ImageTile};
pub use lr_find::lr_finder_figure;
pub use transfer::{backbone_inputs, few_label_chart};
pub use walkthrough::{
    augmentation_rows, class_balance, class_mean_grid, class_samples_grid, confusion_heatmap,
    erasing_grid, prediction_gallery, probability_gallery, split_balance,
};

pub use style::CLASS_COLORS;
