//! The networks of the walkthrough, one file each, and the one table that says what the rest of
//! the kit needs to know about them ([`MODELS`]).
//!
//! - [`Cnn4`] (`cnn4.rs`): the original's 4-layer CNN, 660,054 trainable parameters;
//! - [`ResNet`] (`resnet.rs`): the original's ResNet-18 layout for 28×28 images, 11,178,378;
//! - [`TransferNet`] (`transfer.rs`): an ImageNet backbone's trunk ([`Trunk`], `trunk.rs`) with
//!   the original's head, on two backbones ([`Backbone`], `backbone.rs`): InceptionV3 (`inception_v3.rs`, named as
//!   torchvision's) and EfficientNet-Lite0 (`efficientnet_lite0.rs`, named as the PyPI reference
//!   its ImageNet weights were made for). They resize the images themselves.
//!
//! Every network takes images `[N, 1, 28, 28]` (floats in 0..1) and returns logits `[N, 10]`,
//! and implements [`Classifier`] (`classifier.rs`): it names its layers, reports its L2 penalty and records its
//! intermediate outputs for feature maps. Like Keras, convolutions carry biases and batch norm
//! has epsilon 1e-3. Its running statistics move at PyTorch's rate 0.1 rather than Keras's 0.01
//! (momentum 0.99): at Keras's rate, after the 188 batches of a first epoch the running statistics
//! were still far from the data, and the validation accuracy read 0.19 while the training
//! accuracy was 0.72 (measured), which misleads early stopping and the learning-rate schedule.
//! Counts follow Keras: batch norm's scale and shift are trainable, its running statistics not.
//!
//! **Adding a network**: write `models/<name>.rs` with its settings struct, its network struct and
//! its [`Classifier`] impl; add a variant to [`ModelKind`] (`kind.rs`) and to [`NetworkConfig`]
//! (`network_config.rs`, whose `match`es the compiler then lists), and a row to [`MODELS`]
//! (`table.rs`: its name, Grad-CAM layer, batch sizes, memory layout, original settings and the
//! sizes each profile trains it with). The CLI, the profiles, training, evaluation, feature maps
//! and the benchmarks read that row.
//!
//! This file only declares the rooms and re-exports: each file imports the traits and types it
//! needs from its neighbours, and no file depends on one that depends on it.

pub mod backbone;
mod classifier;
mod cnn4;
mod efficientnet_lite0;
mod inception_v3;
mod kind;
mod layers;
mod network_config;
mod resnet;
mod summary;
mod table;
mod transfer;
mod trunk;

pub use backbone::{
    load_trunk_weights, preprocess, Backbone, Weights, WeightsInfo, INCEPTION_RECIPE,
};
pub use classifier::Classifier;
pub use cnn4::{Activation, Cnn4, Cnn4Config};
pub use efficientnet_lite0::EfficientNetLite0;
pub use inception_v3::InceptionV3;
pub use kind::ModelKind;
pub(crate) use layers::is_channels_last;
pub use layers::{to_channels_last, Recorder};
pub use network_config::NetworkConfig;
pub use resnet::{ResNet, ResNetConfig};
pub use summary::{summary, LayerSummary, ModelSummary, ParameterCounts};
pub use table::{ModelSpec, OriginalSettings, ProfileSizes, RunSizes, MODELS};
pub use transfer::{TransferConfig, TransferHead, TransferNet};
pub use trunk::Trunk;
