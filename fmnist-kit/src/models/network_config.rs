//! What a network is built from: a typed configuration per network ([`NetworkConfig`]). The
//! same configuration is written beside a checkpoint (`network.json`, as
//! `{"model": <name>, "config": <its settings>}`) so that the weights can be loaded into the
//! same network again.

use tch::nn;

use super::backbone::Backbone;
use super::classifier::Classifier;
use super::cnn4::{Cnn4, Cnn4Config};
use super::kind::ModelKind;
use super::resnet::{ResNet, ResNetConfig};
use super::transfer::{TransferConfig, TransferHead, TransferNet};
use crate::error::{Error, Result};

/// A network and its settings: everything needed to build it (its variables start random; a
/// checkpoint or a trunk's weights fill them in).
#[derive(Clone, Debug, PartialEq)]
pub enum NetworkConfig {
    /// The original's 4-layer CNN ([`Cnn4`]).
    Cnn4(Cnn4Config),
    /// The original's ResNet ([`ResNet`]).
    ResNet(ResNetConfig),
    /// An ImageNet trunk with the original's head, on images ([`TransferNet`]).
    Transfer(Backbone, TransferConfig),
    /// The head of a transfer network alone, on the trunk's pooled features `[N, D]`
    /// ([`TransferHead`]): stage 1 of a transfer run.
    Head(Backbone, TransferConfig),
}

impl NetworkConfig {
    /// The network of `kind` with its defaults (the original's settings).
    pub fn default_for(kind: ModelKind) -> NetworkConfig {
        match kind {
            ModelKind::Cnn4 => NetworkConfig::Cnn4(Cnn4Config::default()),
            ModelKind::ResNet => NetworkConfig::ResNet(ResNetConfig::default()),
            ModelKind::InceptionV3 => {
                NetworkConfig::Transfer(Backbone::InceptionV3, TransferConfig::default())
            }
            ModelKind::EfficientNetLite0 => {
                NetworkConfig::Transfer(Backbone::EfficientNetLite0, TransferConfig::default())
            }
        }
    }

    /// Which network this builds (a head counts as its transfer network).
    pub fn kind(&self) -> ModelKind {
        match self {
            NetworkConfig::Cnn4(_) => ModelKind::Cnn4,
            NetworkConfig::ResNet(_) => ModelKind::ResNet,
            NetworkConfig::Transfer(b, _) | NetworkConfig::Head(b, _) => {
                ModelKind::for_backbone(*b)
            }
        }
    }

    /// The side a network that resizes its 28×28 input resizes it to.
    pub fn input_size(&self) -> Option<usize> {
        match self {
            NetworkConfig::Transfer(_, c) | NetworkConfig::Head(_, c) => Some(c.input_size),
            NetworkConfig::Cnn4(_) | NetworkConfig::ResNet(_) => None,
        }
    }

    /// The same network resizing its input to `size` (networks that take 28×28 as they are
    /// ignore it).
    pub fn with_input_size(mut self, size: Option<usize>) -> NetworkConfig {
        if let (Some(s), NetworkConfig::Transfer(_, c) | NetworkConfig::Head(_, c)) =
            (size, &mut self)
        {
            c.input_size = s;
        }
        self
    }

    /// The same network with its filters at `percent` % of these (`None`: unchanged). Only the
    /// ResNet has a width to change ([`ResNetConfig::with_width`]); for the others a `Some` is
    /// [`Error::InvalidParameter`].
    pub fn with_width_percent(self, percent: Option<u32>) -> Result<NetworkConfig> {
        match (percent, self) {
            (None, network) => Ok(network),
            (Some(p), NetworkConfig::ResNet(c)) => {
                Ok(NetworkConfig::ResNet(c.with_width(f64::from(p) / 100.0)?))
            }
            (Some(_), network) => Err(Error::param(
                "width",
                format!(
                    "only the ResNet has a width to change, not the {}",
                    network.kind()
                ),
            )),
        }
    }

    /// Builds the network's variables under `vs` (initialised from torch's global generator).
    pub fn build(&self, vs: &nn::Path) -> Result<Box<dyn Classifier>> {
        Ok(match self {
            NetworkConfig::Cnn4(c) => Box::new(Cnn4::new(vs, c)?),
            NetworkConfig::ResNet(c) => Box::new(ResNet::new(vs, c)?),
            NetworkConfig::Transfer(b, c) => Box::new(TransferNet::new(vs, *b, c)?),
            NetworkConfig::Head(b, c) => Box::new(TransferHead::new(vs, *b, c)?),
        })
    }

    /// The settings as `network.json` stores them under `"config"`.
    pub fn settings_json(&self) -> serde_json::Value {
        let value = match self {
            NetworkConfig::Cnn4(c) => serde_json::to_value(c),
            NetworkConfig::ResNet(c) => serde_json::to_value(c),
            NetworkConfig::Transfer(_, c) => serde_json::to_value(c),
            NetworkConfig::Head(_, c) => {
                serde_json::to_value(c).map(|c| serde_json::json!({ "head_only": true, "head": c }))
            }
        };
        value.unwrap_or_default()
    }

    /// The network of `kind` with the settings `network.json` stores (`null` or missing fields
    /// take the defaults). Settings that do not parse are [`Error::Data`] naming `field`.
    pub fn from_settings_json(
        kind: ModelKind,
        settings: &serde_json::Value,
        source: &std::path::Path,
    ) -> Result<NetworkConfig> {
        fn parse<T: serde::de::DeserializeOwned + Default>(
            v: &serde_json::Value,
            source: &std::path::Path,
            kind: ModelKind,
        ) -> Result<T> {
            if v.is_null() {
                return Ok(T::default());
            }
            serde_json::from_value(v.clone()).map_err(|e| {
                Error::data(
                    source,
                    "field \"config\"",
                    format!("not a valid {kind} configuration: {e}"),
                )
            })
        }
        Ok(match NetworkConfig::default_for(kind) {
            NetworkConfig::Cnn4(_) => NetworkConfig::Cnn4(parse(settings, source, kind)?),
            NetworkConfig::ResNet(_) => NetworkConfig::ResNet(parse(settings, source, kind)?),
            NetworkConfig::Transfer(b, _) | NetworkConfig::Head(b, _) => {
                NetworkConfig::Transfer(b, parse(settings, source, kind)?)
            }
        })
    }
}

impl From<ModelKind> for NetworkConfig {
    /// The network of `kind` with its defaults.
    fn from(kind: ModelKind) -> NetworkConfig {
        NetworkConfig::default_for(kind)
    }
}
