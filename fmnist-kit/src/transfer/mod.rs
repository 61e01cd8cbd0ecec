//! Transfer learning from ImageNet (notebook 04, `fmnist transfer`, `fmnist embed`):
//!
//! - [`extract`]: a backbone's trunk as a feature extractor ([`FeatureExtractor`]) with
//!   ImageNet or random weights ([`Weights`]), and the cache of its features;
//! - [`stages`]: the original's two stages ([`TransferRun`]): a head on the frozen trunk's
//!   cached features, then fine-tuning with the first part of the trunk frozen;
//! - [`few_labels`]: from scratch vs frozen features vs fine-tuned with 10 or 100 labels per
//!   class ([`few_label_study`]).
//!
//! The networks themselves ([`crate::models::TransferNet`], the trunks) live in `models`.

pub mod extract;
pub mod few_labels;
mod prepare;
pub mod stages;

pub use crate::models::{Weights, INCEPTION_RECIPE};
pub use extract::{CachedFeatures, FeatureExtractor, WeightsRecord};
pub use few_labels::{
    few_label_study, labelled_subset, FewLabelMethod, FewLabelRow, FewLabelSettings, FewLabelStudy,
};
pub use stages::{StageOne, TransferFields, TransferResult, TransferRun};
