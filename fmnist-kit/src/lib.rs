//! # fmnist-kit
//!
//! A Rust workbench for Fashion-MNIST in Jupyter notebooks (the evcxr kernel), on libtorch
//! through `tch`. The modules follow the walkthrough:
//!
//! - [`data`]: read `data.tar.gz` or the official idx files, cache, split, class names;
//! - [`augment`]: batched, seeded flips, shifts, zoom, brightness and random erasing;
//! - [`models`]: the original's 4-layer CNN and ResNet, with summaries;
//! - [`train`]: the trainer (two recipes, fused Adam/SGD, LR schedules, early stopping,
//!   checkpoints, resume);
//! - [`grid`]: k-fold grid search over the CNN's learning rate, optimizer, dropout, dense size;
//! - [`metrics`]: accuracy, log loss, confusion matrix, scikit-learn's classification report;
//! - [`features`]: feature maps of every layer, tiled as the original, and Grad-CAM;
//! - [`profile`]: every size a notebook uses (`FMNIST_PROFILE` = smoke | quick | full);
//! - [`tsne`]: PCA + t-SNE of raw pixels or learned features, 10-NN accuracy of an embedding;
//! - [`viz`]: figures that show inline in evcxr and save as PNG.
//!
//! Every fallible function returns [`Result`] with the one [`Error`] type.

pub mod augment;
pub mod data;
pub mod error;
pub mod features;
pub mod grid;
pub mod metrics;
pub mod models;
pub mod profile;
pub mod train;
pub mod tsne;
pub mod viz;

pub use error::{Error, Result};
pub use profile::{Profile, ProfileName};
