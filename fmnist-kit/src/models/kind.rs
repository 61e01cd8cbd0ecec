//! Which network: the name of each network the kit knows. What the kit knows about each is in
//! its row of the table ([`super::table::MODELS`], through `ModelKind::spec`).

use serde::{Deserialize, Serialize};

use super::backbone::Backbone;

/// Which network. Its facts are in its row of [`super::MODELS`] (`ModelKind::spec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModelKind {
    #[serde(rename = "cnn4")]
    Cnn4,
    #[serde(rename = "resnet")]
    ResNet,
    /// InceptionV3's trunk with the original's head ([`super::TransferNet`]).
    #[serde(rename = "inception-v3")]
    InceptionV3,
    /// EfficientNet-Lite0's trunk with the original's head ([`super::TransferNet`]).
    #[serde(rename = "efficientnet-lite0")]
    EfficientNetLite0,
}

impl ModelKind {
    /// The transfer network of a backbone.
    pub fn for_backbone(backbone: Backbone) -> ModelKind {
        match backbone {
            Backbone::InceptionV3 => ModelKind::InceptionV3,
            Backbone::EfficientNetLite0 => ModelKind::EfficientNetLite0,
        }
    }
}
