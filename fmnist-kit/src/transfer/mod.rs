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

use tch::nn;

use crate::error::Result;
use crate::models::Backbone;

pub mod extract;
pub mod few_labels;
pub mod stages;

pub use crate::models::{Weights, INCEPTION_RECIPE};
pub use extract::{CachedFeatures, FeatureExtractor, WeightsRecord};
pub use few_labels::{
    few_label_study, labelled_subset, FewLabelMethod, FewLabelRow, FewLabelSettings, FewLabelStudy,
};
pub use stages::{StageOne, TransferFields, TransferResult, TransferRun};

/// Copies every variable of `from` into the variable of the same name in `to`.
pub(crate) fn copy_by_name(to: &nn::VarStore, from: &nn::VarStore) -> Result<()> {
    let vars = to.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, t) in from.variables() {
            if let Some(v) = vars.get(&name) {
                v.shallow_clone().f_copy_(&t)?;
            }
        }
        Ok(())
    })
}

/// Sets the first part of the trunk ([`Backbone::frozen_when_fine_tuning`]) to not train.
pub(crate) fn freeze_early_layers(vs: &nn::VarStore, backbone: Backbone) {
    let frozen = backbone.frozen_when_fine_tuning();
    for (name, v) in vs.variables() {
        if let Some(rest) = name.strip_prefix("trunk.") {
            if frozen.iter().any(|p| rest.starts_with(p)) {
                let _ = v.set_requires_grad(false);
            }
        }
    }
}
