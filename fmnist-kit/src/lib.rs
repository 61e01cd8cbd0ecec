//! # fmnist-kit
//!
//! A Rust workbench for Fashion-MNIST in Jupyter notebooks (the evcxr kernel), on libtorch
//! through `tch`. The modules follow the walkthrough:
//!
//! - [`data`]: read `data.tar.gz` or the official idx files, cache, the 80/20 split, class names;
//! - [`augment`]: batched, seeded flips, shifts, zoom, brightness and random erasing;
//! - [`models`]: one file per network and the table of what the kit knows about each;
//! - [`train`]: settings and recipes, optimisers (fused CPU Adam), checkpoint files, the
//!   training loop, and the trained network for inference;
//! - [`profile`]: every size a notebook uses (`FMNIST_PROFILE` = smoke | quick | full), and
//!   what each profile uses for each network;
//! - [`run`]: one call for a profile's training run (`fmnist train`, notebooks 02 and 03);
//! - [`transfer`]: ImageNet backbones as feature extractors (cached), the two-stage transfer
//!   run, and the few-label comparison (notebook 04, `fmnist transfer`, `fmnist embed`);
//! - [`grid`]: k-fold grid search over the CNN's learning rate, optimizer, dropout, dense size;
//! - [`metrics`]: accuracy, log loss, confusion matrix, scikit-learn's classification report;
//! - [`features`]: feature maps of every layer, tiled as the original, and Grad-CAM;
//! - [`tsne`]: PCA + t-SNE of raw pixels or learned features, 10-NN accuracy of an embedding;
//! - [`viz`]: figures that show inline in evcxr and save as PNG;
//! - [`display`]: HTML output for notebook cells; [`util`]: atomic writes, JSON files, hashes;
//!   [`tensorboard`]: TensorBoard's event files, which every training writes.
//!
//! Every fallible function returns [`Result`] with the one [`Error`] type.

pub mod error;
pub mod tensorboard;
pub mod util;

pub mod data;

pub mod augment;

pub mod models;

pub mod train;

pub mod profile;

pub mod run;

pub mod transfer;

pub mod grid;

pub mod metrics;

pub mod features;

pub mod tsne;

pub mod display;
pub mod viz;

pub use error::{Error, Result};
pub use profile::{Profile, ProfileName};
